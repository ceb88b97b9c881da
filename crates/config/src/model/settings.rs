//! [`Settings`]: a resource's options as typed values, with DRBD 8.4's
//! defaults (from `drbd_limits.h`) for everything not written.
//!
//! Units are in the field names: `_ds` tenths of a second, `_s` seconds,
//! `_kib` KiB (per second for rates), `_sect` 512-byte sectors. The few names
//! without a suffix follow DRBD's option names and units: `c_plan_ahead` and
//! `c_delay_target` are tenths of a second, `wfc_timeout`, `degr_wfc_timeout`
//! and `outdated_wfc_timeout` seconds.

use rdbd_types::Protocol;

use super::{Resource, Section};
use crate::options::{spec, OptionKind, SectionKind};

/// Every DRBD 8.4 option of a resource, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    // net
    /// `protocol`.
    pub protocol: Protocol,
    /// `timeout` (1/10 s, default 60).
    pub timeout_ds: u32,
    /// `max-epoch-size` (default 2048).
    pub max_epoch_size: u32,
    /// `max-buffers` (default 2048).
    pub max_buffers: u32,
    /// `unplug-watermark` (default 128).
    pub unplug_watermark: u32,
    /// `connect-int` (s, default 10).
    pub connect_int_s: u32,
    /// `ping-int` (s, default 10).
    pub ping_int_s: u32,
    /// `ping-timeout` (1/10 s, default 5).
    pub ping_timeout_ds: u32,
    /// `sndbuf-size` (bytes, 0 = auto).
    pub sndbuf_size_bytes: u32,
    /// `rcvbuf-size` (bytes, 0 = auto).
    pub rcvbuf_size_bytes: u32,
    /// `ko-count` (default 7).
    pub ko_count: u32,
    /// `allow-two-primaries`.
    pub allow_two_primaries: bool,
    /// `cram-hmac-alg`: peer authentication digest, None = no authentication.
    pub cram_hmac_alg: Option<String>,
    /// `shared-secret`.
    pub shared_secret: Option<String>,
    /// `after-sb-0pri` (default disconnect).
    pub after_sb_0pri: String,
    /// `after-sb-1pri` (default disconnect).
    pub after_sb_1pri: String,
    /// `after-sb-2pri` (default disconnect).
    pub after_sb_2pri: String,
    /// `always-asbp`.
    pub always_asbp: bool,
    /// `rr-conflict` (default disconnect).
    pub rr_conflict: String,
    /// `data-integrity-alg`.
    pub data_integrity_alg: Option<String>,
    /// `tcp-cork` (default yes).
    pub tcp_cork: bool,
    /// `on-congestion` (default block).
    pub on_congestion: String,
    /// `congestion-fill` (sectors, 0 = off).
    pub congestion_fill_sect: u64,
    /// `congestion-extents` (default 1237).
    pub congestion_extents: u32,
    /// `csums-alg`.
    pub csums_alg: Option<String>,
    /// `csums-after-crash-only`.
    pub csums_after_crash_only: bool,
    /// `verify-alg`.
    pub verify_alg: Option<String>,
    /// `use-rle` (default yes).
    pub use_rle: bool,
    /// `socket-check-timeout` (1/10 s, 0 = off).
    pub socket_check_timeout_ds: u32,
    // disk
    /// `size`: user-set device size in sectors.
    pub size_sect: Option<u64>,
    /// `max-bio-bvecs`.
    pub max_bio_bvecs: u32,
    /// `on-io-error` (default detach).
    pub on_io_error: String,
    /// `fencing` (default dont-care).
    pub fencing: String,
    /// `disk-barrier` (default no).
    pub disk_barrier: bool,
    /// `disk-flushes` (default yes).
    pub disk_flushes: bool,
    /// `disk-drain` (default yes).
    pub disk_drain: bool,
    /// `md-flushes` (default yes).
    pub md_flushes: bool,
    /// `resync-rate` / 8.3 `rate` (KiB/s, default 250).
    pub resync_rate_kib: u32,
    /// `resync-after` / 8.3 `after`: the resource this one resyncs after.
    pub resync_after: Option<String>,
    /// `al-extents` (default 1237), raised to DRBD's minimum of 67.
    pub al_extents: u32,
    /// `al-updates` (default yes).
    pub al_updates: bool,
    /// `discard-zeroes-if-aligned` (default yes).
    pub discard_zeroes_if_aligned: bool,
    /// `disable-write-same` (default no).
    pub disable_write_same: bool,
    /// `c-plan-ahead` (1/10 s, default 20; 0 = fixed `resync-rate`).
    pub c_plan_ahead: u32,
    /// `c-delay-target` (1/10 s, default 10).
    pub c_delay_target: u32,
    /// `c-fill-target` (sectors, default 100).
    pub c_fill_target_sect: u32,
    /// `c-max-rate` (KiB/s, default 102400).
    pub c_max_rate_kib: u32,
    /// `c-min-rate` (KiB/s, default 250).
    pub c_min_rate_kib: u32,
    /// `disk-timeout` (1/10 s, 0 = off).
    pub disk_timeout_ds: u32,
    /// `read-balancing` (default prefer-local).
    pub read_balancing: String,
    /// `rs-discard-granularity` (bytes, 0 = off).
    pub rs_discard_granularity_bytes: u32,
    // startup
    /// `wfc-timeout` (s, 0 = forever).
    pub wfc_timeout: u32,
    /// `degr-wfc-timeout` (s, 0 = forever).
    pub degr_wfc_timeout: u32,
    /// `outdated-wfc-timeout` (s, 0 = forever).
    pub outdated_wfc_timeout: u32,
    /// `wait-after-sb`.
    pub wait_after_sb: bool,
    /// `become-primary-on` host names.
    pub become_primary_on: Vec<String>,
    /// `stacked-timeouts`.
    pub stacked_timeouts: bool,
    // options
    /// `cpu-mask`.
    pub cpu_mask: Option<String>,
    /// `on-no-data-accessible` (default io-error).
    pub on_no_data_accessible: String,
}

/// Reads typed values of one section, falling back to the table's default.
struct Reader<'a> {
    section: &'a Section,
    kind: SectionKind,
}

impl Reader<'_> {
    fn number(&self, name: &str) -> u64 {
        let Some(OptionKind::Number { unit, default, .. }) = spec(self.kind, name).map(|s| s.kind)
        else {
            return 0;
        };
        self.section
            .get_scaled(name, unit)
            .ok()
            .flatten()
            .unwrap_or(default)
    }

    fn u32(&self, name: &str) -> u32 {
        u32::try_from(self.number(name)).unwrap_or(u32::MAX)
    }

    fn flag(&self, name: &str) -> bool {
        let default = matches!(
            spec(self.kind, name).map(|s| s.kind),
            Some(OptionKind::Flag { default: true })
        );
        self.section
            .get_bool(name)
            .ok()
            .flatten()
            .unwrap_or(default)
    }

    fn choice(&self, name: &str) -> String {
        let default = match spec(self.kind, name).map(|s| s.kind) {
            Some(OptionKind::Choice { default, .. }) => default,
            _ => "",
        };
        self.section.get(name).unwrap_or(default).to_string()
    }

    fn text(&self, name: &str) -> Option<String> {
        self.section.get(name).map(str::to_string)
    }

    fn present(&self, name: &str) -> bool {
        self.section.get(name) == Some("yes")
    }
}

impl Settings {
    /// Resolves `resource`'s sections.
    pub fn resolve(resource: &Resource) -> Settings {
        let net = Reader {
            section: &resource.net,
            kind: SectionKind::Net,
        };
        let disk = Reader {
            section: &resource.disk,
            kind: SectionKind::Disk,
        };
        let startup = Reader {
            section: &resource.startup,
            kind: SectionKind::Startup,
        };
        let options = Reader {
            section: &resource.options,
            kind: SectionKind::Options,
        };
        Settings {
            protocol: resource.protocol,
            timeout_ds: net.u32("timeout"),
            max_epoch_size: net.u32("max-epoch-size"),
            max_buffers: net.u32("max-buffers"),
            unplug_watermark: net.u32("unplug-watermark"),
            connect_int_s: net.u32("connect-int"),
            ping_int_s: net.u32("ping-int"),
            ping_timeout_ds: net.u32("ping-timeout"),
            sndbuf_size_bytes: net.u32("sndbuf-size"),
            rcvbuf_size_bytes: net.u32("rcvbuf-size"),
            ko_count: net.u32("ko-count"),
            allow_two_primaries: net.flag("allow-two-primaries"),
            cram_hmac_alg: net.text("cram-hmac-alg"),
            shared_secret: net.text("shared-secret"),
            after_sb_0pri: net.choice("after-sb-0pri"),
            after_sb_1pri: net.choice("after-sb-1pri"),
            after_sb_2pri: net.choice("after-sb-2pri"),
            always_asbp: net.flag("always-asbp"),
            rr_conflict: net.choice("rr-conflict"),
            data_integrity_alg: net.text("data-integrity-alg"),
            tcp_cork: net.flag("tcp-cork"),
            on_congestion: net.choice("on-congestion"),
            congestion_fill_sect: net.number("congestion-fill"),
            congestion_extents: net.u32("congestion-extents"),
            csums_alg: net.text("csums-alg"),
            csums_after_crash_only: net.flag("csums-after-crash-only"),
            verify_alg: net.text("verify-alg"),
            use_rle: net.flag("use-rle"),
            socket_check_timeout_ds: net.u32("socket-check-timeout"),
            size_sect: resource
                .disk
                .get_scaled("size", crate::options::units::Unit::Sectors)
                .ok()
                .flatten()
                .filter(|s| *s > 0),
            max_bio_bvecs: disk.u32("max-bio-bvecs"),
            on_io_error: disk.choice("on-io-error"),
            fencing: disk.choice("fencing"),
            disk_barrier: disk.flag("disk-barrier"),
            disk_flushes: disk.flag("disk-flushes"),
            disk_drain: disk.flag("disk-drain"),
            md_flushes: disk.flag("md-flushes"),
            resync_rate_kib: disk.u32("resync-rate"),
            resync_after: disk.text("resync-after"),
            al_extents: disk.u32("al-extents").max(67),
            al_updates: disk.flag("al-updates"),
            discard_zeroes_if_aligned: disk.flag("discard-zeroes-if-aligned"),
            disable_write_same: disk.flag("disable-write-same"),
            c_plan_ahead: disk.u32("c-plan-ahead"),
            c_delay_target: disk.u32("c-delay-target"),
            c_fill_target_sect: disk.u32("c-fill-target"),
            c_max_rate_kib: disk.u32("c-max-rate"),
            c_min_rate_kib: disk.u32("c-min-rate"),
            disk_timeout_ds: disk.u32("disk-timeout"),
            read_balancing: disk.choice("read-balancing"),
            rs_discard_granularity_bytes: disk.u32("rs-discard-granularity"),
            wfc_timeout: startup.u32("wfc-timeout"),
            degr_wfc_timeout: startup.u32("degr-wfc-timeout"),
            outdated_wfc_timeout: startup.u32("outdated-wfc-timeout"),
            wait_after_sb: startup.flag("wait-after-sb"),
            become_primary_on: startup
                .text("become-primary-on")
                .map(|hosts| hosts.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            stacked_timeouts: startup.present("stacked-timeouts"),
            cpu_mask: options.text("cpu-mask"),
            on_no_data_accessible: options.choice("on-no-data-accessible"),
        }
    }
}
