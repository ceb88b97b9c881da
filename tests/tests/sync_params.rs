//! The peers' sync parameters (`P_SYNC_PARAM89`) between two rdbd nodes, as DRBD 8.4 treats
//! them (drbd_receiver.c `receive_SyncParam`, drbd_nl.c `drbd_adm_disk_opts`):
//!
//! - at connect each side adopts the other's resync-rate: with alice at `resync-rate 4M`
//!   and bob at `16M`, bob as SyncTarget paces its requests at alice's 4M (`want: 4,096`)
//!   and both log what they adopted;
//! - `adjust` of alice's resync-rate while connected sends her new parameters; bob's running
//!   resync takes them at once (`want:` follows, the resync gets measurably faster);
//! - `adjust` of alice's verify-alg while connected (DRBD `net-options`) does not reconnect:
//!   bob logs `using verify-alg: "sha1"` and his verify then hashes with it; while verify
//!   runs the change is refused (`Can not change verify-alg while online verify runs`), and a
//!   rate adjusted meanwhile paces bob's running verify.
//!
//! An unknown verify-alg can only come from a kernel peer (rdbd refuses unknown algorithms
//! in its own configuration): see `kernel_peer_sync_params`.

use std::path::Path;
use std::time::{Duration, Instant};

use rdbd_tests::node::Node;
use rdbd_tests::pair::{node_log, wait_line, wait_log, Pair, PairOptions};
use rdbd_tests::tools::{number_after, stderr, stdout};

/// A long ping-timeout: a loaded test machine must not drop the connection mid-test.
const NET: &str = "ping-timeout 30;";

/// Replaces `from` in a configuration file.
fn replace_in(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{config:?} has no '{from}':\n{text}");
    std::fs::write(config, text.replace(from, to)).unwrap();
}

/// Replaces the static rate in a configuration file (the pair's carry `resync-rate 400M`).
fn set_rate(config: &Path, from: &str, to: &str) {
    replace_in(
        config,
        &format!("resync-rate {from};"),
        &format!("resync-rate {to};"),
    );
}

/// `want:` and `oos:` of a node's status while it is SyncTarget.
fn target_figures(node: &Node) -> Option<(u64, u64)> {
    let text = node.status_file();
    if !text.contains("cs:SyncTarget") {
        return None;
    }
    let line = text.lines().find(|l| l.contains("want:"))?;
    Some((number_after(line, "want:")?, number_after(&text, "oos:")?))
}

/// Waits until bob's `want:` is `want_kib`; returns bob's oos then.
fn wait_want(p: &Pair, want_kib: u64, secs: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = None;
    loop {
        if let Some((want, oos)) = target_figures(&p.b) {
            if want == want_kib {
                return oos;
            }
            last = Some(want);
        }
        assert!(
            Instant::now() < deadline,
            "bob's want: stayed {last:?}, not {want_kib} K/sec\n{}",
            p.b.status_file()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// KiB/s bob's oos went down over `window` (still SyncTarget at the end).
fn measured_kib_per_s(p: &Pair, window: Duration) -> u64 {
    let (_, before) = target_figures(&p.b).expect("bob is SyncTarget");
    let start = Instant::now();
    std::thread::sleep(window);
    // A resync that ended within the window counts as 0 left (underestimates the speed).
    let after = match target_figures(&p.b) {
        Some((_, oos)) => oos,
        None if p.b.status_file().contains("ds:UpToDate/UpToDate") => 0,
        None => panic!(
            "bob is neither SyncTarget nor in sync:\n{}",
            p.b.status_file()
        ),
    };
    let ms = start.elapsed().as_millis().max(1) as u64;
    eprintln!("oos {before} -> {after} KiB in {ms} ms");
    before.saturating_sub(after) * 1000 / ms
}

#[test]
fn each_side_adopts_the_peers_rate_and_adjust_sends_it() {
    let p = Pair::with(PairOptions {
        net_a: NET.into(),
        net_b: NET.into(),
        ..PairOptions::default()
    });
    set_rate(&p.a.config, "400M", "4M");
    set_rate(&p.b.config, "400M", "16M");
    p.up_and_force_primary();
    // DRBD: bob's disk_conf takes alice's 4M at connect (and alice's takes bob's 16M); the
    // SyncTarget's controller paces the resync.
    let oos_at_start = wait_want(&p, 4096, 30);
    let adopted_b = wait_log(&p.b, "adopted the peer's sync parameters", 10);
    assert!(
        adopted_b.contains("resync-rate 16384 -> 4096"),
        "bob's log does not name the adopted rate: {adopted_b}"
    );
    let adopted_a = wait_log(&p.a, "adopted the peer's sync parameters", 10);
    assert!(
        adopted_a.contains("resync-rate 4096 -> 16384"),
        "alice's log does not name the adopted rate: {adopted_a}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let slow_kib = measured_kib_per_s(&p, Duration::from_secs(2));
    assert!(
        slow_kib <= 4096 * 3 / 2,
        "at alice's 4M bob resynced {slow_kib} KiB/s (started at oos {oos_at_start})"
    );
    // 64 MiB at 4M: about 16 s in all; at least 8 s are left here.
    set_rate(&p.a.config, "4M", "12M");
    p.a.adm_ok(&["adjust", "r0"]);
    wait_want(&p, 12 * 1024, 10);
    let fast_kib = measured_kib_per_s(&p, Duration::from_millis(1500));
    assert!(
        fast_kib >= slow_kib * 3 / 2 && fast_kib >= 6144,
        "after adjust to 12M bob resynced {fast_kib} KiB/s (before: {slow_kib})"
    );
    let adopted_b = wait_log(&p.b, "resync-rate 4096 -> 12288", 10);
    assert!(
        adopted_b.contains("adopted the peer's sync parameters"),
        "{adopted_b}"
    );
    wait_line(
        &p.b,
        "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        30,
    );
}

/// How many connections `node`'s log shows.
fn handshakes(node: &Node) -> usize {
    node_log(node).matches("Handshake successful").count()
}

#[test]
fn adjusted_digest_algorithms_and_rates_are_adopted_without_a_reconnect() {
    let p = Pair::synced(&format!("verify-alg md5; {NET}"));
    let connections = (handshakes(&p.a), handshakes(&p.b));
    // net-options verify-alg while connected: sent, adopted, no reconnect.
    replace_in(&p.a.config, "verify-alg md5;", "verify-alg sha1;");
    p.a.adm_ok(&["adjust", "r0"]);
    wait_log(&p.b, "using verify-alg: \"sha1\"", 10);
    // A slow rate for bob's verify, from alice's adjust.
    set_rate(&p.a.config, "400M", "4M");
    p.a.adm_ok(&["adjust", "r0"]);
    wait_log(&p.b, "resync-rate 409600 -> 4096", 10);
    p.b.adm_ok(&["verify", "r0"]);
    wait_line(&p.b, "cs:VerifyS", 10);
    // DRBD refuses a verify-alg change while online verify runs (ERR_VERIFY_RUNNING).
    replace_in(&p.a.config, "verify-alg sha1;", "verify-alg crc32c;");
    let refused = p.a.adm_run(&["adjust", "r0"]);
    let text = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(
        !refused.status.success()
            && text.contains("Can not change verify-alg while online verify runs"),
        "adjust during verify: {text}"
    );
    // Back to sha1 and a fast rate: bob's running verify speeds up and, both sides now
    // hashing with sha1 (bob's own file still says md5), finds nothing.
    replace_in(&p.a.config, "verify-alg crc32c;", "verify-alg sha1;");
    set_rate(&p.a.config, "4M", "400M");
    p.a.adm_ok(&["adjust", "r0"]);
    let log = wait_log(&p.b, "Online verify done", 30);
    assert!(!log.contains("Online verify found"), "{log}");
    assert_eq!(
        (handshakes(&p.a), handshakes(&p.b)),
        connections,
        "an adjust reconnected:\n{}",
        node_log(&p.a)
    );
}
