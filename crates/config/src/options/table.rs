//! The complete list of DRBD 8.4 configuration options, per section.
//!
//! Facts taken from drbd-utils `user/v84/drbdadm_scanner.fl` (which keyword
//! belongs to which section, aliases, 8.3 `syncer` options, deprecated
//! options), `user/v84/linux/drbd_limits.h` and `drbdsetup-84 xml-help`
//! (ranges, default units, defaults and the allowed values of enumerations).

use super::units::Unit;

/// A section of drbd.conf that holds options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SectionKind {
    /// `global { }`.
    Global,
    /// `net { }`.
    Net,
    /// `disk { }`.
    Disk,
    /// `startup { }`.
    Startup,
    /// `handlers { }`.
    Handlers,
    /// `options { }` (resource options).
    Options,
}

impl SectionKind {
    /// The keyword of the section.
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Global => "global",
            SectionKind::Net => "net",
            SectionKind::Disk => "disk",
            SectionKind::Startup => "startup",
            SectionKind::Handlers => "handlers",
            SectionKind::Options => "options",
        }
    }

    /// The sections of a resource, in the order `drbdadm dump` prints them.
    pub const RESOURCE_SECTIONS: [SectionKind; 5] = [
        SectionKind::Options,
        SectionKind::Net,
        SectionKind::Disk,
        SectionKind::Startup,
        SectionKind::Handlers,
    ];
}

/// What values an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    /// `name;`, `name yes;` or `name no;`.
    Flag {
        /// DRBD's default.
        default: bool,
    },
    /// `name;` alone, no value (stored as "yes").
    Bare,
    /// A number with an optional unit suffix.
    Number {
        /// The unit of a number written without suffix.
        unit: Unit,
        /// Smallest allowed value, in `unit`.
        min: u64,
        /// Largest allowed value, in `unit`.
        max: u64,
        /// DRBD's default, in `unit`.
        default: u64,
    },
    /// One of a fixed set of words.
    Choice {
        /// The allowed words.
        values: &'static [&'static str],
        /// DRBD's default.
        default: &'static str,
    },
    /// Any single word or quoted string.
    Text,
    /// One or more host names up to the `;` (`become-primary-on`).
    Hosts,
    /// `IP:PORT` (rdbd's own listening addresses).
    Address,
}

/// One option of one section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// The section it belongs to.
    pub section: SectionKind,
    /// Its canonical 8.4 name.
    pub name: &'static str,
    /// Its values.
    pub kind: OptionKind,
}

const fn spec(section: SectionKind, name: &'static str, kind: OptionKind) -> OptionSpec {
    OptionSpec {
        section,
        name,
        kind,
    }
}

const fn num(unit: Unit, min: u64, max: u64, default: u64) -> OptionKind {
    OptionKind::Number {
        unit,
        min,
        max,
        default,
    }
}

const fn flag(default: bool) -> OptionKind {
    OptionKind::Flag { default }
}

const fn choice(values: &'static [&'static str], default: &'static str) -> OptionKind {
    OptionKind::Choice { values, default }
}

use OptionKind::{Address, Bare, Hosts, Text};
use SectionKind::{Disk, Global, Handlers, Net, Options, Startup};
use Unit::{KiB, One, Sectors};

/// `after-sb-0pri` values.
pub const AFTER_SB_0PRI: &[&str] = &[
    "disconnect",
    "discard-younger-primary",
    "discard-older-primary",
    "discard-zero-changes",
    "discard-least-changes",
    "discard-local",
    "discard-remote",
];
/// `after-sb-1pri` values.
pub const AFTER_SB_1PRI: &[&str] = &[
    "disconnect",
    "consensus",
    "discard-secondary",
    "call-pri-lost-after-sb",
    "violently-as0p",
];
/// `after-sb-2pri` values.
pub const AFTER_SB_2PRI: &[&str] = &["disconnect", "call-pri-lost-after-sb", "violently-as0p"];

/// Every option rdbd accepts, grouped by section.
pub const OPTIONS: &[OptionSpec] = &[
    // global { } (drbdadm_parser.c parse_global), plus rdbd's own addresses.
    spec(Global, "usage-count", choice(&["yes", "no", "ask"], "ask")),
    spec(Global, "minor-count", num(One, 1, 255, 32)),
    spec(Global, "dialog-refresh", num(One, 0, 600, 1)),
    spec(Global, "disable-ip-verification", Bare),
    spec(Global, "udev-always-use-vnr", Bare),
    spec(Global, "cmd-timeout-short", num(One, 0, 900, 5)),
    spec(Global, "cmd-timeout-medium", num(One, 0, 900, 121)),
    spec(Global, "cmd-timeout-long", num(One, 0, 900, 600)),
    spec(Global, "nbd-address", Address),
    spec(Global, "metrics-address", Address),
    // net { }
    spec(Net, "protocol", choice(&["A", "B", "C"], "C")),
    spec(Net, "timeout", num(One, 1, 600, 60)),
    spec(Net, "max-epoch-size", num(One, 1, 20000, 2048)),
    spec(Net, "max-buffers", num(One, 32, 131_072, 2048)),
    spec(Net, "unplug-watermark", num(One, 1, 131_072, 128)),
    spec(Net, "connect-int", num(One, 1, 120, 10)),
    spec(Net, "ping-int", num(One, 1, 120, 10)),
    spec(Net, "sndbuf-size", num(One, 0, 10 << 20, 0)),
    spec(Net, "rcvbuf-size", num(One, 0, 10 << 20, 0)),
    spec(Net, "ko-count", num(One, 0, 200, 7)),
    spec(Net, "allow-two-primaries", flag(false)),
    spec(Net, "cram-hmac-alg", Text),
    spec(Net, "shared-secret", Text),
    spec(Net, "after-sb-0pri", choice(AFTER_SB_0PRI, "disconnect")),
    spec(Net, "after-sb-1pri", choice(AFTER_SB_1PRI, "disconnect")),
    spec(Net, "after-sb-2pri", choice(AFTER_SB_2PRI, "disconnect")),
    spec(Net, "always-asbp", flag(false)),
    spec(
        Net,
        "rr-conflict",
        choice(&["disconnect", "call-pri-lost", "violently"], "disconnect"),
    ),
    spec(Net, "ping-timeout", num(One, 1, 300, 5)),
    spec(Net, "data-integrity-alg", Text),
    spec(Net, "tcp-cork", flag(true)),
    spec(
        Net,
        "on-congestion",
        choice(&["block", "pull-ahead", "disconnect"], "block"),
    ),
    spec(Net, "congestion-fill", num(Sectors, 0, 10 << 21, 0)),
    spec(Net, "congestion-extents", num(One, 67, 0xfffe, 1237)),
    spec(Net, "csums-alg", Text),
    spec(Net, "csums-after-crash-only", flag(false)),
    spec(Net, "verify-alg", Text),
    spec(Net, "use-rle", flag(true)),
    spec(Net, "socket-check-timeout", num(One, 0, 300, 0)),
    // disk { }
    spec(Disk, "size", num(Sectors, 0, 2 << 40, 0)),
    spec(Disk, "max-bio-bvecs", num(One, 0, 128, 0)),
    spec(
        Disk,
        "on-io-error",
        choice(&["pass_on", "call-local-io-error", "detach"], "detach"),
    ),
    spec(
        Disk,
        "fencing",
        choice(
            &["dont-care", "resource-only", "resource-and-stonith"],
            "dont-care",
        ),
    ),
    spec(Disk, "disk-barrier", flag(false)),
    spec(Disk, "disk-flushes", flag(true)),
    spec(Disk, "disk-drain", flag(true)),
    spec(Disk, "md-flushes", flag(true)),
    spec(Disk, "use-bmbv", flag(false)),
    spec(Disk, "resync-rate", num(KiB, 1, 4 << 20, 250)),
    spec(Disk, "resync-after", Text),
    // drbdadm does not range-check al-extents: the kernel clamps it.
    spec(Disk, "al-extents", num(One, 0, u32::MAX as u64, 1237)),
    spec(Disk, "al-updates", flag(true)),
    spec(Disk, "discard-zeroes-if-aligned", flag(true)),
    spec(Disk, "disable-write-same", flag(false)),
    spec(Disk, "c-plan-ahead", num(One, 0, 300, 20)),
    spec(Disk, "c-delay-target", num(One, 1, 100, 10)),
    spec(Disk, "c-fill-target", num(Sectors, 0, 1 << 20, 100)),
    spec(Disk, "c-max-rate", num(KiB, 250, 4 << 20, 102_400)),
    spec(Disk, "c-min-rate", num(KiB, 0, 4 << 20, 250)),
    spec(Disk, "disk-timeout", num(One, 0, 6000, 0)),
    spec(
        Disk,
        "read-balancing",
        choice(
            &[
                "prefer-local",
                "prefer-remote",
                "round-robin",
                "least-pending",
                "when-congested-remote",
                "32K-striping",
                "64K-striping",
                "128K-striping",
                "256K-striping",
                "512K-striping",
                "1M-striping",
            ],
            "prefer-local",
        ),
    ),
    spec(Disk, "rs-discard-granularity", num(One, 0, 1 << 20, 0)),
    // startup { }
    spec(Startup, "wfc-timeout", num(One, 0, 300_000, 0)),
    spec(Startup, "degr-wfc-timeout", num(One, 0, 300_000, 0)),
    spec(Startup, "outdated-wfc-timeout", num(One, 0, 300_000, 0)),
    spec(Startup, "wait-after-sb", flag(false)),
    spec(Startup, "become-primary-on", Hosts),
    spec(Startup, "stacked-timeouts", Bare),
    // handlers { }
    spec(Handlers, "pri-on-incon-degr", Text),
    spec(Handlers, "pri-lost-after-sb", Text),
    spec(Handlers, "pri-lost", Text),
    spec(Handlers, "initial-split-brain", Text),
    spec(Handlers, "split-brain", Text),
    spec(Handlers, "fence-peer", Text),
    spec(Handlers, "unfence-peer", Text),
    spec(Handlers, "local-io-error", Text),
    spec(Handlers, "before-resync-target", Text),
    spec(Handlers, "after-resync-target", Text),
    spec(Handlers, "before-resync-source", Text),
    spec(Handlers, "out-of-sync", Text),
    // options { }
    spec(Options, "cpu-mask", Text),
    spec(
        Options,
        "on-no-data-accessible",
        choice(&["io-error", "suspend-io"], "io-error"),
    ),
];

/// Old names drbdadm 8.4 renames: (section, old, new).
pub const ALIASES: &[(SectionKind, &str, &str)] = &[
    (Handlers, "outdate-peer", "fence-peer"),
    (Disk, "rate", "resync-rate"),
    (Disk, "after", "resync-after"),
];

/// `no-NAME;` forms of flags (old syntax): (section, written, flag).
pub const NO_FLAGS: &[(SectionKind, &str, &str)] = &[
    (Disk, "no-disk-barrier", "disk-barrier"),
    (Disk, "no-disk-flushes", "disk-flushes"),
    (Disk, "no-disk-drain", "disk-drain"),
    (Disk, "no-md-flushes", "md-flushes"),
    (Net, "no-tcp-cork", "tcp-cork"),
];

/// Options drbdadm 8.4 still reads but ignores, in any option section.
pub const DEPRECATED: &[&str] = &[
    "delay-probe-volume",
    "delay-probe-interval",
    "throttle-threshold",
    "hold-off-threshold",
];

/// The 8.3 `syncer { }` options and where drbdadm 8.4 moves each:
/// (written name, target section, 8.4 name).
pub const SYNCER: &[(&str, SectionKind, &str)] = &[
    ("rate", Disk, "resync-rate"),
    ("after", Disk, "resync-after"),
    ("al-extents", Disk, "al-extents"),
    ("c-plan-ahead", Disk, "c-plan-ahead"),
    ("c-delay-target", Disk, "c-delay-target"),
    ("c-fill-target", Disk, "c-fill-target"),
    ("c-max-rate", Disk, "c-max-rate"),
    ("c-min-rate", Disk, "c-min-rate"),
    ("verify-alg", Net, "verify-alg"),
    ("csums-alg", Net, "csums-alg"),
    ("use-rle", Net, "use-rle"),
    ("cpu-mask", Options, "cpu-mask"),
    ("on-no-data-accessible", Options, "on-no-data-accessible"),
];
