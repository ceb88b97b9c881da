//! The text DRBD 8.4 shows about a running resync or verify: the two progress lines of
//! /proc/drbd (drbd_proc.c `drbd_syncer_progress`, default `proc_details` 0) and the kernel log
//! lines at resync start and end (drbd_worker.c `drbd_start_resync`, `drbd_resync_finished`).
//!
//! API:
//! - [`per_mil_done`]: progress in 0.1 % (`drbd_get_syncer_progress`).
//! - [`proc_progress`]`(&`[`Progress`]`)`: the two lines, each starting with a tab and ending with
//!   a newline:
//!   ```text
//!   <TAB>[===>................] sync'ed: 20.4% (819200/1024000)K
//!   <TAB>finish: 0:00:19 speed: 40,960 (40,960) want: 40,960 K/sec
//!   ```
//!   The speed is over the progress mark 6 marks back (~18 s), the value in parentheses the
//!   mean since the start without paused time; `want:` (the controller's rate) shows on
//!   SyncTarget and VerifyS; `(stalled)` when that mark is older than 180 s.
//! - [`thousands`]: DRBD's digit grouping (`40,960`).
//! - Log lines: [`began_line`], [`done_line`], [`csums_line`], [`verify_found_line`].

use super::rate::ResyncMarks;

/// What the progress lines need. Block counts are 4 KiB bitmap blocks.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Online verify (VerifyS / VerifyT) rather than resync.
    pub verify: bool,
    /// Blocks to resync at the start (`rs_total`).
    pub total_blocks: u64,
    /// Blocks left (resync: bitmap weight minus failed blocks; verify: `ov_left`).
    pub left_blocks: u64,
    /// The progress marks.
    pub marks: &'a ResyncMarks,
    /// Now.
    pub now_ms: u64,
    /// When the resync started.
    pub start_ms: u64,
    /// Time spent paused so far.
    pub paused_ms: u64,
    /// `Some(c_sync_rate)` on SyncTarget and VerifyS (the `want:` field).
    pub want_kib: Option<u64>,
}

/// Progress in 0.1 % (`drbd_get_syncer_progress`).
pub fn per_mil_done(total_blocks: u64, left_blocks: u64) -> u32 {
    if left_blocks > total_blocks {
        return if total_blocks == 0 { 1000 } else { 0 };
    }
    let shift = if total_blocks > u64::from(u32::MAX) {
        16
    } else {
        10
    };
    let left = left_blocks >> shift;
    let total = 1 + (total_blocks >> shift);
    (1000 - left * 1000 / total) as u32
}

/// DRBD's `seq_printf_with_thousands_grouping`.
pub fn thousands(v: u64) -> String {
    if v >= 1_000_000 {
        let rest = v % 1_000_000;
        format!("{},{:03},{:03}", v / 1_000_000, rest / 1000, rest % 1000)
    } else if v >= 1000 {
        format!("{},{:03}", v / 1000, v % 1000)
    } else {
        v.to_string()
    }
}

/// The two /proc/drbd progress lines.
pub fn proc_progress(p: &Progress<'_>) -> String {
    let (total, left) = (p.total_blocks, p.left_blocks.min(p.total_blocks));
    let res = per_mil_done(p.total_blocks, p.left_blocks);
    let x = (res / 50) as usize;
    let mut out = String::from("\t[");
    out.push_str(&"=".repeat(x.saturating_sub(1)));
    out.push('>');
    out.push_str(&".".repeat(20usize.saturating_sub(x)));
    out.push_str("] ");
    out.push_str(if p.verify { "verified:" } else { "sync'ed:" });
    out.push_str(&format!("{:3}.{}% ", res / 10, res % 10));
    if total > (4u64 << (30 - 12)) {
        out.push_str(&format!("({}/{})M", (left >> 10) * 4, (total >> 10) * 4));
    } else {
        out.push_str(&format!("({}/{})K", left * 4, total * 4));
    }
    out.push_str("\n\t");

    // ~18 s average: the mark 6 back (of 8).
    let (mark_ms, mark_left) = p.marks.mark(6);
    let mut dt = p.now_ms.saturating_sub(mark_ms) / 1000;
    let stalled = dt > 180;
    if dt == 0 {
        dt = 1;
    }
    let db = mark_left.saturating_sub(left);
    let rt = dt * (left / (db / 100 + 1)) / 100;
    out.push_str(&format!(
        "finish: {}:{:02}:{:02}",
        rt / 3600,
        (rt % 3600) / 60,
        rt % 60
    ));
    out.push_str(" speed: ");
    out.push_str(&thousands(db / dt * 4));
    out.push_str(" (");
    let mut dt = p
        .now_ms
        .saturating_sub(p.start_ms)
        .saturating_sub(p.paused_ms)
        / 1000;
    if dt == 0 {
        dt = 1;
    }
    out.push_str(&thousands((total - left) / dt * 4));
    out.push(')');
    if let Some(want) = p.want_kib {
        out.push_str(" want: ");
        out.push_str(&thousands(want));
    }
    out.push_str(" K/sec");
    if stalled {
        out.push_str(" (stalled)");
    }
    out.push('\n');
    out
}

/// `Began resync as SyncTarget (will sync 4096 KB [1024 bits set]).`
pub fn began_line(state: &str, total_blocks: u64) -> String {
    format!(
        "Began resync as {state} (will sync {} KB [{total_blocks} bits set]).",
        total_blocks * 4
    )
}

/// `Resync done (total 10 sec; paused 0 sec; 4096 K/sec)` (or `Online verify done ...`).
/// `active_ms`: time since the start minus paused time; `done_blocks`: blocks resynced
/// (verify: verified).
pub fn done_line(verify: bool, active_ms: u64, paused_ms: u64, done_blocks: u64) -> String {
    let dt = (active_ms / 1000).max(1);
    let paused = paused_ms / 1000;
    format!(
        "{} done (total {} sec; paused {paused} sec; {} K/sec)",
        if verify { "Online verify" } else { "Resync" },
        dt + paused,
        done_blocks / dt * 4
    )
}

/// The checksum-based resync summary: `N % had equal checksums, eliminated: XK; transferred
/// YK total ZK`.
pub fn csums_line(same_blocks: u64, total_blocks: u64) -> String {
    let ratio = match total_blocks {
        0 => 0,
        t if t < 100_000 => same_blocks * 100 / t,
        t => same_blocks / (t / 100),
    };
    format!(
        "{ratio} % had equal checksums, eliminated: {}K; transferred {}K total {}K",
        same_blocks * 4,
        total_blocks.saturating_sub(same_blocks) * 4,
        total_blocks * 4
    )
}

/// `Online verify found N 4k block out of sync!` (`None` when none was found; DRBD then runs
/// no `out-of-sync` handler either).
pub fn verify_found_line(out_of_sync_blocks: u64) -> Option<String> {
    (out_of_sync_blocks > 0)
        .then(|| format!("Online verify found {out_of_sync_blocks} 4k block out of sync!"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_and_per_mil() {
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(40_960), "40,960");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(1_000_005), "1,000,005");
        // Under 1024 blocks the >> 10 makes DRBD show 100 % from the start.
        assert_eq!(per_mil_done(1000, 1000), 1000);
        assert_eq!(per_mil_done(4096, 4096), 200);
        assert_eq!(per_mil_done(1000, 0), 1000);
        assert_eq!(per_mil_done(0, 0), 1000);
        assert_eq!(per_mil_done(10, 20), 0);
        assert_eq!(per_mil_done(256_000, 128_000), 502);
    }

    #[test]
    fn golden_progress_lines() {
        // 1000 MiB to sync, 40 MiB/s for 5 s.
        let total = 256_000u64;
        let mut marks = ResyncMarks::start(0, total);
        marks.advance(3_000, total - 30_720, false);
        let left = total - 51_200;
        let p = Progress {
            verify: false,
            total_blocks: total,
            left_blocks: left,
            marks: &marks,
            now_ms: 5_000,
            start_ms: 0,
            paused_ms: 0,
            want_kib: Some(40_960),
        };
        assert_eq!(
            proc_progress(&p),
            "\t[===>................] sync'ed: 20.4% (819200/1024000)K\n\
             \tfinish: 0:00:19 speed: 40,960 (40,960) want: 40,960 K/sec\n"
        );
        let v = Progress {
            verify: true,
            want_kib: None,
            now_ms: 200_000,
            start_ms: 0,
            paused_ms: 100_000,
            ..p
        };
        let text = proc_progress(&v);
        assert!(text.contains("verified: 20.4%"), "{text}");
        assert!(text.ends_with(" (2,048) K/sec (stalled)\n"), "{text}");
        // More than 4 GiB: MiB units.
        let big = Progress {
            total_blocks: 2 << 20,
            left_blocks: 1 << 20,
            ..p
        };
        assert!(
            proc_progress(&big).contains("(4096/8192)M"),
            "{}",
            proc_progress(&big)
        );
    }

    #[test]
    fn log_lines() {
        assert_eq!(
            began_line("SyncTarget", 1024),
            "Began resync as SyncTarget (will sync 4096 KB [1024 bits set])."
        );
        assert_eq!(
            done_line(false, 10_500, 2_000, 10_240),
            "Resync done (total 12 sec; paused 2 sec; 4096 K/sec)"
        );
        assert_eq!(
            done_line(true, 0, 0, 7),
            "Online verify done (total 1 sec; paused 0 sec; 28 K/sec)"
        );
        assert_eq!(
            csums_line(250, 1000),
            "25 % had equal checksums, eliminated: 1000K; transferred 3000K total 4000K"
        );
        assert_eq!(
            csums_line(0, 0),
            "0 % had equal checksums, eliminated: 0K; transferred 0K total 0K"
        );
        assert_eq!(csums_line(150_000, 200_000).split(' ').next(), Some("75"));
        assert_eq!(verify_found_line(0), None);
        assert_eq!(
            verify_found_line(3).as_deref(),
            Some("Online verify found 3 4k block out of sync!")
        );
    }
}
