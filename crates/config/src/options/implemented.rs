//! THE list of configuration options rdbd implements today.
//!
//! Every other DRBD 8.4 option is parsed, validated and kept in the model, but
//! [`crate::Config::unimplemented_options`] names it so the daemon can warn.
//! When a feature lands, add its option here (and nowhere else).

use super::table::SectionKind;

/// Options of option sections that rdbd acts on: (section, option name).
pub const IMPLEMENTED_OPTIONS: &[(SectionKind, &str)] = &[
    // rdbd never reports usage anywhere, so there is nothing to implement.
    (SectionKind::Global, "usage-count"),
    // rdbd extensions.
    (SectionKind::Global, "nbd-address"),
    (SectionKind::Global, "metrics-address"),
    // Replication.
    (SectionKind::Net, "protocol"),
    (SectionKind::Net, "cram-hmac-alg"),
    (SectionKind::Net, "shared-secret"),
    (SectionKind::Net, "after-sb-0pri"),
    (SectionKind::Net, "after-sb-1pri"),
    (SectionKind::Net, "after-sb-2pri"),
    (SectionKind::Net, "rr-conflict"),
    (SectionKind::Net, "always-asbp"),
    (SectionKind::Net, "use-rle"),
    (SectionKind::Net, "connect-int"),
    (SectionKind::Net, "ping-int"),
    (SectionKind::Net, "ping-timeout"),
    (SectionKind::Net, "timeout"),
    (SectionKind::Net, "ko-count"),
    (SectionKind::Net, "max-epoch-size"),
    (SectionKind::Net, "max-buffers"),
    (SectionKind::Net, "sndbuf-size"),
    (SectionKind::Net, "rcvbuf-size"),
    // Online verify and checksum-based resync.
    (SectionKind::Net, "verify-alg"),
    (SectionKind::Net, "csums-alg"),
    (SectionKind::Net, "csums-after-crash-only"),
    // Local disk and resync.
    (SectionKind::Disk, "al-extents"),
    (SectionKind::Disk, "resync-rate"),
    (SectionKind::Disk, "c-plan-ahead"),
    (SectionKind::Disk, "c-fill-target"),
    (SectionKind::Disk, "c-delay-target"),
    (SectionKind::Disk, "c-max-rate"),
    (SectionKind::Disk, "c-min-rate"),
    (SectionKind::Disk, "resync-after"),
    (SectionKind::Disk, "disk-flushes"),
    (SectionKind::Disk, "disk-drain"),
    (SectionKind::Disk, "al-updates"),
    (SectionKind::Disk, "md-flushes"),
    // Fencing and handlers (rdbd-node's `handlers` module).
    (SectionKind::Disk, "fencing"),
    (SectionKind::Handlers, "pri-on-incon-degr"),
    (SectionKind::Handlers, "pri-lost-after-sb"),
    (SectionKind::Handlers, "pri-lost"),
    (SectionKind::Handlers, "initial-split-brain"),
    (SectionKind::Handlers, "split-brain"),
    (SectionKind::Handlers, "fence-peer"),
    (SectionKind::Handlers, "unfence-peer"),
    (SectionKind::Handlers, "local-io-error"),
    (SectionKind::Handlers, "before-resync-target"),
    (SectionKind::Handlers, "after-resync-target"),
    (SectionKind::Handlers, "before-resync-source"),
    (SectionKind::Handlers, "out-of-sync"),
];

/// Statements of `on HOST { }` sections rdbd acts on. Anything else found in a
/// host section (per-host `disk { }` options, `options { }`,
/// `alternate-link-address`, `proxy`, address families other than ipv4/ipv6)
/// is reported as not implemented.
pub const IMPLEMENTED_HOST_STATEMENTS: &[&str] = &[
    "device",
    "minor",
    "disk",
    "address",
    "meta-disk",
    "flexible-meta-disk",
    "nbd-address",
];

/// Whether rdbd implements `name` of `section`.
pub fn is_implemented(section: SectionKind, name: &str) -> bool {
    IMPLEMENTED_OPTIONS
        .iter()
        .any(|(s, n)| *s == section && *n == name)
}
