//! `/proc/drbd` of DRBD 8.4, byte for byte in layout.
//!
//! ```text
//! version: 8.4.11 (api:1/proto:86-101)
//! srcversion: rdbd-0.1.0              
//!  0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----
//!     ns:4 nr:0 dw:4 dr:136 al:1 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0
//! ```
//! A blank line precedes a minor whose predecessor is not printed (DRBD prints one
//! whenever minors are not contiguous, starting from -1), the progress lines of a
//! resync or verify start with a tab, and speeds are grouped by thousands with `,`.

use std::fmt::Write;

use rdbd_types::ConnState;

use super::{ResourceStatus, SyncProgress};

/// The version line rdbd prints: the DRBD release whose wire protocol it speaks.
pub const VERSION_LINE: &str = "version: 8.4.11 (api:1/proto:86-101)";

/// Renders the whole file for `resources` (any order; printed by minor).
pub fn render(resources: &[ResourceStatus]) -> String {
    let mut out = String::new();
    out.push_str(VERSION_LINE);
    out.push('\n');
    // The in-tree module prints its srcversion padded to 24 columns.
    let _ = writeln!(
        out,
        "srcversion: {:<24}",
        format!("rdbd-{}", env!("CARGO_PKG_VERSION"))
    );
    let mut sorted: Vec<&ResourceStatus> = resources.iter().collect();
    sorted.sort_by_key(|r| r.minor);
    let mut prev: i64 = -1;
    for r in sorted {
        if prev != i64::from(r.minor) - 1 {
            out.push('\n');
        }
        prev = i64::from(r.minor);
        render_minor(&mut out, r);
    }
    out
}

fn render_minor(out: &mut String, r: &ResourceStatus) {
    if r.is_unconfigured() {
        let _ = writeln!(out, "{:2}: cs:Unconfigured", r.minor);
        return;
    }
    // DRBD prints the protocol of the net configuration, which StandAlone has none
    // of: `drbdsetup disconnect` frees it (drbd_state.c, Disconnecting -> StandAlone).
    let protocol = match r.protocol {
        Some(p) if r.cstate != ConnState::StandAlone => p.name().chars().next().unwrap_or(' '),
        _ => ' ',
    };
    let _ = writeln!(
        out,
        "{:2}: cs:{} ro:{}/{} ds:{}/{} {} {}{}{}{}--",
        r.minor,
        r.cstate,
        r.role,
        r.peer_role,
        r.disk,
        r.peer_disk,
        protocol,
        if r.suspended { 's' } else { 'r' },
        if r.aftr_isp { 'a' } else { '-' },
        if r.peer_isp { 'p' } else { '-' },
        if r.user_isp { 'u' } else { '-' },
    );
    let c = &r.counters;
    let _ = writeln!(
        out,
        "    ns:{} nr:{} dw:{} dr:{} al:{} bm:{} lo:{} pe:{} ua:{} ap:{} ep:{} wo:{} oos:{}",
        c.ns_kib,
        c.nr_kib,
        c.dw_kib,
        c.dr_kib,
        c.al_writes,
        c.bm_writes,
        c.local_pending,
        c.peer_pending,
        c.unacked,
        c.app_pending,
        c.epochs,
        r.write_ordering,
        c.out_of_sync_kib
    );
    if let Some(sync) = &r.sync {
        if matches!(
            r.cstate,
            ConnState::SyncSource | ConnState::SyncTarget | ConnState::VerifyS | ConnState::VerifyT
        ) {
            render_progress(out, r.cstate, sync);
        }
    }
}

fn render_progress(out: &mut String, cstate: ConnState, s: &SyncProgress) {
    let res = s.per_mille_done();
    let x = res / 50;
    out.push_str("\t[");
    for _ in 1..x {
        out.push('=');
    }
    out.push('>');
    for _ in 0..20u64.saturating_sub(x) {
        out.push('.');
    }
    out.push_str("] ");
    let verifying = matches!(cstate, ConnState::VerifyS | ConnState::VerifyT);
    out.push_str(if verifying { "verified:" } else { "sync'ed:" });
    let _ = write!(out, "{:3}.{}% ", res / 10, res % 10);
    // Above 4 GiB worth of blocks DRBD switches to MiB.
    if s.total_blocks > (4u64 << 18) {
        let _ = write!(
            out,
            "({}/{})M",
            (s.left_blocks >> 10) * 4,
            (s.total_blocks >> 10) * 4
        );
    } else {
        let _ = write!(out, "({}/{})K", s.left_blocks * 4, s.total_blocks * 4);
    }
    out.push_str("\n\t");
    let rt = s.finish_s;
    let _ = write!(
        out,
        "finish: {}:{:02}:{:02}",
        rt / 3600,
        (rt % 3600) / 60,
        rt % 60
    );
    let _ = write!(
        out,
        " speed: {} ({})",
        group_thousands(s.speed_kib_per_s),
        group_thousands(s.average_kib_per_s)
    );
    if matches!(cstate, ConnState::SyncTarget | ConnState::VerifyS) {
        let _ = write!(out, " want: {}", group_thousands(s.want_kib_per_s));
    }
    let _ = writeln!(out, " K/sec{}", if s.stalled { " (stalled)" } else { "" });
}

/// `1234567` as `1,234,567`, as DRBD's `seq_printf_with_thousands_grouping`.
pub fn group_thousands(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Counters;
    use rdbd_types::{DiskState, Protocol, Role};

    fn syncing() -> ResourceStatus {
        ResourceStatus {
            cstate: ConnState::SyncSource,
            role: Role::Primary,
            peer_role: Role::Secondary,
            disk: DiskState::UpToDate,
            peer_disk: DiskState::Inconsistent,
            protocol: Some(Protocol::B),
            counters: Counters {
                ns_kib: 20480,
                dr_kib: 20480,
                al_writes: 8,
                epochs: 1,
                out_of_sync_kib: 241620,
                ..Counters::default()
            },
            sync: Some(SyncProgress {
                total_blocks: 262100 / 4,
                left_blocks: 241620 / 4,
                speed_kib_per_s: 20480,
                average_kib_per_s: 20480,
                want_kib_per_s: 0,
                finish_s: 11,
                stalled: false,
            }),
            ..ResourceStatus::unconfigured("r0", 5)
        }
    }

    /// The kernel's own output during a resync (shared/docs/kernel-peer.md), minus the
    /// srcversion line which names the build.
    #[test]
    fn matches_the_kernel_byte_for_byte_during_a_resync() {
        let text = render(&[syncing()]);
        let expected = "version: 8.4.11 (api:1/proto:86-101)\n\
            srcversion: rdbd-0.1.0              \n\
            \n\
            \x205: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent B r-----\n\
            \x20   ns:20480 nr:0 dw:0 dr:20480 al:8 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:241620\n\
            \t[>...................] sync'ed:  9.4% (241620/262100)K\n\
            \tfinish: 0:00:11 speed: 20,480 (20,480) K/sec\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn unconfigured_and_contiguous_minors() {
        let mut a = ResourceStatus::unconfigured("a", 0);
        a.disk = DiskState::UpToDate;
        let b = ResourceStatus::unconfigured("b", 1);
        let text = render(&[b, a]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2],
            " 0: cs:StandAlone ro:Secondary/Unknown ds:UpToDate/DUnknown   r-----"
        );
        assert_eq!(lines[4], " 1: cs:Unconfigured");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn thousands_grouping() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1234567), "1,234,567");
    }
}
