//! `drbdadm status` in DRBD 9's format, which monitoring scripts grep today.
//!
//! ```text
//! r0 role:Primary
//!   disk:UpToDate
//!   bob role:Secondary
//!     peer-disk:UpToDate
//! ```
//! Fields appear only when they say something: `connection:Connecting` while the
//! peer is away, `replication:SyncSource ... done:37.50` while syncing. `--verbose`
//! and `--statistics` add fields as drbd-utils' `drbdsetup status` does (see
//! [`render`]); rdbd adds the NBD URI to the verbose device line.

use std::fmt::Write;

use rdbd_types::ConnState;

use super::{ResourceStatus, SyncProgress};

/// What `rdbdadm status` prints besides the essentials.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusOptions {
    /// `--verbose`.
    pub verbose: bool,
    /// `--statistics`.
    pub statistics: bool,
}

/// Renders one resource; resources are separated by an empty line by the caller.
///
/// Which fields appear follows drbd-utils' `drbdsetup status` (the 8.4 build prints
/// DRBD 9's layout): `--verbose` adds `suspended:`, `volume:0 minor:N`, the connection's
/// `connection:`/`role:`/`congested:`, `volume:0 replication:` and `resync-suspended:`;
/// `--statistics` adds a line of device counters (`size:` and the AL/bitmap/pending
/// counters only with `--verbose`) and one of peer counters (`out-of-sync:` when not
/// zero or with `--verbose`, `pending:`/`unacked:` with `--verbose`); both together add
/// `write-ordering:`. All sizes are KiB. rdbd adds `nbd-uri:` to the verbose device line.
pub fn render(r: &ResourceStatus, opts: StatusOptions) -> String {
    let mut out = String::new();
    let mut head = vec![r.name.clone(), format!("role:{}", r.role)];
    if opts.verbose || r.suspended {
        let suspended = if r.suspended { "user" } else { "no" };
        head.push(format!("suspended:{suspended}"));
    }
    line(&mut out, 0, &head);
    if opts.verbose && opts.statistics {
        let wo = write_ordering_name(r.write_ordering);
        line(&mut out, 4, &[format!("write-ordering:{wo}")]);
    }
    if r.is_unconfigured() {
        out.push_str("  disk:Diskless\n");
        return out;
    }
    device_lines(&mut out, r, opts);
    let Some(peer) = &r.peer_name else {
        return out;
    };
    let connected = r.cstate.is_connected();
    let mut conn = vec![peer.clone()];
    if opts.verbose || !connected {
        conn.push(format!("connection:{}", connection_name(r.cstate)));
    }
    if opts.verbose || connected {
        conn.push(format!("role:{}", r.peer_role));
    }
    if opts.verbose {
        conn.push("congested:no".into());
    }
    line(&mut out, 2, &conn);
    if opts.verbose || opts.statistics || connected {
        peer_device_lines(&mut out, r, opts);
    }
    out
}

/// `  [volume:0 minor:N] disk:X [nbd-uri:U] [blocked:no]` and the counters line.
fn device_lines(out: &mut String, r: &ResourceStatus, opts: StatusOptions) {
    let mut dev = Vec::new();
    if opts.verbose {
        dev.push("volume:0".to_string());
        dev.push(format!("minor:{}", r.minor));
    }
    dev.push(format!("disk:{}", r.disk));
    if opts.verbose {
        dev.push(format!("nbd-uri:{}", r.nbd_uri));
    }
    let c = &r.counters;
    if opts.statistics {
        line(out, 2, &dev);
        dev = Vec::new();
        if opts.verbose {
            dev.push(format!("size:{}", r.size_bytes / 1024));
        }
        dev.push(format!("read:{}", c.dr_kib));
        dev.push(format!("written:{}", c.dw_kib));
        if opts.verbose {
            dev.push(format!("al-writes:{}", c.al_writes));
            dev.push(format!("bm-writes:{}", c.bm_writes));
            dev.push(format!("upper-pending:{}", c.app_pending));
            dev.push(format!("lower-pending:{}", c.local_pending));
            dev.push("al-suspended:no".into());
        }
    }
    if opts.verbose {
        dev.push("blocked:no".into());
    }
    if !dev.is_empty() {
        line(out, if opts.statistics { 6 } else { 2 }, &dev);
    }
}

/// `    [volume:0] [replication:X] peer-disk:Y [done:P] [resync-suspended:S]` and the
/// peer counters line.
fn peer_device_lines(out: &mut String, r: &ResourceStatus, opts: StatusOptions) {
    let mut pd = Vec::new();
    if opts.verbose {
        pd.push("volume:0".to_string());
    }
    let syncing_or_beyond = r.cstate.is_connected() && r.cstate != ConnState::Connected;
    if opts.verbose || syncing_or_beyond {
        pd.push(format!("replication:{}", replication_name(r.cstate)));
    }
    pd.push(format!("peer-disk:{}", r.peer_disk));
    if let Some(sync) = &r.sync {
        pd.push(format!("done:{:.2}", done_percent(r, sync)));
    }
    if opts.verbose || r.user_isp || r.peer_isp || r.aftr_isp {
        pd.push(format!("resync-suspended:{}", resync_suspended(r)));
    }
    line(out, 4, &pd);
    if opts.statistics {
        let c = &r.counters;
        let mut stats = vec![
            format!("received:{}", c.nr_kib),
            format!("sent:{}", c.ns_kib),
        ];
        if opts.verbose || c.out_of_sync_kib != 0 {
            stats.push(format!("out-of-sync:{}", c.out_of_sync_kib));
        }
        if opts.verbose {
            stats.push(format!("pending:{}", c.peer_pending));
            stats.push(format!("unacked:{}", c.unacked));
        }
        line(out, 8, &stats);
    }
}

/// `done:` as drbdsetup computes it for a resync: the part of the device that is not
/// out of sync (`100 * (1 - out-of-sync / size)`); for an online verify, the part of
/// the verify run done.
fn done_percent(r: &ResourceStatus, sync: &SyncProgress) -> f64 {
    let size_kib = r.size_bytes / 1024;
    let resync = matches!(
        r.cstate,
        ConnState::SyncSource
            | ConnState::SyncTarget
            | ConnState::PausedSyncS
            | ConnState::PausedSyncT
    );
    if resync && size_kib > 0 {
        let oos_kib = r.counters.out_of_sync_kib.min(size_kib);
        100.0 * (1.0 - oos_kib as f64 / size_kib as f64)
    } else {
        100.0 * (sync.total_blocks.saturating_sub(sync.left_blocks)) as f64
            / sync.total_blocks.max(1) as f64
    }
}

/// One line: `indent` spaces, the fields separated by one space.
fn line(out: &mut String, indent: usize, fields: &[String]) {
    let _ = writeln!(out, "{:indent$}{}", "", fields.join(" "));
}

/// DRBD 9's name for an 8.4 connection state (`connection:` field).
fn connection_name(cstate: ConnState) -> &'static str {
    match cstate {
        ConnState::WFConnection | ConnState::Unconnected | ConnState::WFReportParams => {
            "Connecting"
        }
        c if c.is_connected() => "Connected",
        other => other.name(),
    }
}

/// DRBD 9's replication state for an 8.4 connection state (`replication:` field):
/// `Established` when connected and idle, `Off` without a connection.
fn replication_name(cstate: ConnState) -> &'static str {
    match cstate {
        ConnState::Connected => "Established",
        c if c.is_connected() => c.name(),
        _ => "Off",
    }
}

/// `resync-suspended:` as drbdsetup spells it: `no`, or `user`, `peer`, `dependency`
/// joined by commas.
fn resync_suspended(r: &ResourceStatus) -> String {
    let reasons: Vec<&str> = [
        (r.user_isp, "user"),
        (r.peer_isp, "peer"),
        (r.aftr_isp, "dependency"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    if reasons.is_empty() {
        "no".into()
    } else {
        reasons.join(",")
    }
}

/// `write-ordering:` from `/proc/drbd`'s `wo:` letter.
fn write_ordering_name(wo: char) -> &'static str {
    match wo {
        'b' => "barrier",
        'f' => "flush",
        'd' => "drain",
        _ => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::SyncProgress;
    use rdbd_types::{DiskState, Role};

    #[test]
    fn standalone_connected_and_syncing() {
        let mut r = ResourceStatus::unconfigured("r0", 0);
        r.role = Role::Primary;
        r.disk = DiskState::UpToDate;
        assert_eq!(
            render(&r, StatusOptions::default()),
            "r0 role:Primary\n  disk:UpToDate\n"
        );

        r.peer_name = Some("bob".into());
        r.cstate = ConnState::WFConnection;
        assert_eq!(
            render(&r, StatusOptions::default()),
            "r0 role:Primary\n  disk:UpToDate\n  bob connection:Connecting\n"
        );

        r.cstate = ConnState::SyncSource;
        r.peer_role = Role::Secondary;
        r.peer_disk = DiskState::Inconsistent;
        r.size_bytes = 3200 * 1024;
        r.counters.out_of_sync_kib = 2000;
        r.sync = Some(SyncProgress {
            total_blocks: 800,
            left_blocks: 500,
            speed_kib_per_s: 0,
            average_kib_per_s: 0,
            want_kib_per_s: 0,
            finish_s: 0,
            stalled: false,
        });
        assert_eq!(
            render(&r, StatusOptions::default()),
            "r0 role:Primary\n  disk:UpToDate\n  bob role:Secondary\n    replication:SyncSource peer-disk:Inconsistent done:37.50\n"
        );
    }

    fn connected_primary() -> ResourceStatus {
        let mut r = ResourceStatus::unconfigured("r0", 3);
        r.role = Role::Primary;
        r.disk = DiskState::UpToDate;
        r.peer_name = Some("bob".into());
        r.cstate = ConnState::Connected;
        r.peer_role = Role::Secondary;
        r.peer_disk = DiskState::UpToDate;
        r.write_ordering = 'f';
        r.size_bytes = 65496 * 1024;
        r.nbd_uri = "nbd://127.0.0.1:10809/r0".into();
        r.counters.dr_kib = 7;
        r.counters.dw_kib = 1024;
        r.counters.ns_kib = 1030;
        r.counters.al_writes = 2;
        r.counters.bm_writes = 1;
        r
    }

    /// drbdsetup-84's `status --verbose --statistics` layout (DRBD 9's), peer named.
    #[test]
    fn verbose_and_statistics_as_drbdsetup() {
        let r = connected_primary();
        let both = StatusOptions {
            verbose: true,
            statistics: true,
        };
        assert_eq!(
            render(&r, both),
            "r0 role:Primary suspended:no\n\
             \x20   write-ordering:flush\n\
             \x20 volume:0 minor:3 disk:UpToDate nbd-uri:nbd://127.0.0.1:10809/r0\n\
             \x20     size:65496 read:7 written:1024 al-writes:2 bm-writes:1 upper-pending:0 lower-pending:0 al-suspended:no blocked:no\n\
             \x20 bob connection:Connected role:Secondary congested:no\n\
             \x20   volume:0 replication:Established peer-disk:UpToDate resync-suspended:no\n\
             \x20       received:0 sent:1030 out-of-sync:0 pending:0 unacked:0\n"
        );
        let stats = StatusOptions {
            verbose: false,
            statistics: true,
        };
        assert_eq!(
            render(&r, stats),
            "r0 role:Primary\n  disk:UpToDate\n      read:7 written:1024\n  bob role:Secondary\n    peer-disk:UpToDate\n        received:0 sent:1030\n"
        );
        let verbose = StatusOptions {
            verbose: true,
            statistics: false,
        };
        assert_eq!(
            render(&r, verbose),
            "r0 role:Primary suspended:no\n  volume:0 minor:3 disk:UpToDate nbd-uri:nbd://127.0.0.1:10809/r0 blocked:no\n  bob connection:Connected role:Secondary congested:no\n    volume:0 replication:Established peer-disk:UpToDate resync-suspended:no\n"
        );
    }

    #[test]
    fn disconnected_peer_with_out_of_sync_data() {
        let mut r = connected_primary();
        r.cstate = ConnState::StandAlone;
        r.peer_role = Role::Unknown;
        r.peer_disk = DiskState::DUnknown;
        r.counters.out_of_sync_kib = 512;
        r.user_isp = true;
        let stats = StatusOptions {
            verbose: false,
            statistics: true,
        };
        assert_eq!(
            render(&r, stats),
            "r0 role:Primary\n  disk:UpToDate\n      read:7 written:1024\n  bob connection:StandAlone\n    peer-disk:DUnknown resync-suspended:user\n        received:0 sent:1030 out-of-sync:512\n"
        );
        assert_eq!(
            render(&r, StatusOptions::default()),
            "r0 role:Primary\n  disk:UpToDate\n  bob connection:StandAlone\n"
        );
    }
}
