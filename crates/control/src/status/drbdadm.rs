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
//! adds the minor and the NBD URI, `--statistics` the counters.

use std::fmt::Write;

use rdbd_types::ConnState;

use super::ResourceStatus;

/// What `rdbdadm status` prints besides the essentials.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusOptions {
    /// `--verbose`.
    pub verbose: bool,
    /// `--statistics`.
    pub statistics: bool,
}

/// Renders one resource; resources are separated by an empty line by the caller.
pub fn render(r: &ResourceStatus, opts: StatusOptions) -> String {
    let mut out = String::new();
    let _ = write!(out, "{} role:{}", r.name, r.role);
    if r.suspended {
        out.push_str(" suspended:user");
    }
    out.push('\n');
    if r.is_unconfigured() {
        out.push_str("  disk:Diskless\n");
        return out;
    }
    out.push_str("  ");
    if opts.verbose {
        let _ = write!(out, "volume:0 minor:{} ", r.minor);
    }
    let _ = write!(out, "disk:{}", r.disk);
    if opts.verbose {
        let _ = write!(out, " nbd-uri:{}", r.nbd_uri);
    }
    if opts.statistics {
        let c = &r.counters;
        let _ = write!(
            out,
            "\n      size:{} read:{} written:{} al-writes:{} bm-writes:{} upper-pending:{} lower-pending:{}",
            r.size_bytes / 1024,
            c.dr_kib,
            c.dw_kib,
            c.al_writes,
            c.bm_writes,
            c.app_pending,
            c.local_pending
        );
    }
    out.push('\n');
    let Some(peer) = &r.peer_name else {
        return out;
    };
    let _ = write!(out, "  {peer}");
    if r.cstate.is_connected() {
        let _ = write!(out, " role:{}", r.peer_role);
    } else {
        let _ = write!(out, " connection:{}", connection_name(r.cstate));
    }
    out.push('\n');
    if r.cstate.is_connected() {
        out.push_str("    ");
        if r.cstate != ConnState::Connected {
            let _ = write!(out, "replication:{} ", r.cstate);
        }
        let _ = write!(out, "peer-disk:{}", r.peer_disk);
        if let Some(sync) = &r.sync {
            let done = 100.0 * (sync.total_blocks.saturating_sub(sync.left_blocks)) as f64
                / sync.total_blocks.max(1) as f64;
            let _ = write!(out, " done:{done:.2}");
        }
        if opts.statistics {
            let c = &r.counters;
            let _ = write!(
                out,
                "\n        received:{} sent:{} out-of-sync:{} pending:{} unacked:{}",
                c.nr_kib, c.ns_kib, c.out_of_sync_kib, c.peer_pending, c.unacked
            );
        }
        out.push('\n');
    }
    out
}

/// DRBD 9's name for an 8.4 connection state that is not `Connected` or a sync state.
fn connection_name(cstate: ConnState) -> &'static str {
    match cstate {
        ConnState::WFConnection | ConnState::Unconnected | ConnState::WFReportParams => {
            "Connecting"
        }
        other => other.name(),
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
}
