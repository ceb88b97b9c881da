//! Resync rate control and the writes that overlap the start of a resync, through two
//! real rdbd nodes (64 MiB pairs). These check that the limiters limit (a resync that is
//! not limited fails them); they are not performance measurements.
//!
//! - `c-plan-ahead 0; resync-rate 10M`: the SyncTarget's progress line reports
//!   `want: 10,240`; the sync's average speed (`oos:` against the test's clock, fitted
//!   between 10 % and 90 % done) is at most 10 % above 10 MiB/s and the median `speed:`
//!   reading at most 10 % below (robust to a stall of a loaded machine);
//! - the dynamic controller with `c-plan-ahead 10; c-fill-target 1M; c-max-rate 16M`:
//!   `speed:` and `want:` stay at or below c-max-rate, and the sync completes;
//! - c-min-rate on the SyncSource: application reads on the (Primary) SyncSource, which
//!   the SyncTarget never sees, slow the resync down there (DRBD's
//!   `drbd_rs_should_slow_down` before serving a resync request);
//! - writes during the bitmap exchange (WFBitMapS, widened to 2 s by a sleeping
//!   `before-resync-source` handler): they keep completing (no write waits for the
//!   exchange), they are described to the peer by `P_OUT_OF_SYNC`, and after the resync
//!   both data areas are equal: once for the initial full sync, once for a resync of a
//!   few changed blocks where only `P_OUT_OF_SYNC` can tell the target about the blocks
//!   written during the exchange.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdbd_tests::node::Node;
use rdbd_tests::pair::{wait_line, Pair, PairOptions, DATA_BYTES};
use rdbd_tests::resync_speed::{assert_rate_held_from_above, sample, HeldRate, Sample};
use rdbd_tests::tools::{number_after, require, sha256_prefix, stderr, stdout};

/// A long ping-timeout: a loaded test machine must not drop the connection mid-test.
const NET: &str = "ping-timeout 30;";

const CONNECTED_A: &str = "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate";
const CONNECTED_B: &str = "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate";

/// Brings the pair up with alice forced Primary; samples bob's (the SyncTarget's) progress
/// every 50 ms until both are UpToDate. Returns the samples and how long bob was SyncTarget.
fn full_sync_samples(p: &Pair, limit: Duration) -> (Vec<Sample>, Duration) {
    p.up_and_force_primary();
    let begin = Instant::now();
    let mut started: Option<Instant> = None;
    let mut samples = Vec::new();
    loop {
        let text = p.b.status_file();
        if started.is_none() && text.contains("cs:SyncTarget") {
            started = Some(Instant::now());
        }
        if let Some(s) = started {
            if text.contains(CONNECTED_B) {
                return (samples, s.elapsed());
            }
            if let Some(x) = sample(&text, s.elapsed()) {
                samples.push(x);
            }
        }
        assert!(
            begin.elapsed() < limit,
            "the full sync did not finish in {limit:?}; samples {samples:?}\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_data_equal(p: &Pair) {
    assert_eq!(
        sha256_prefix(&p.disk_a, DATA_BYTES),
        sha256_prefix(&p.disk_b, DATA_BYTES),
        "the data areas of alice and bob differ"
    );
}

#[test]
fn static_resync_rate_limits_the_full_sync_and_is_reported() {
    let p = Pair::with(PairOptions {
        net_a: NET.into(),
        net_b: NET.into(),
        resource_extra: "disk { c-plan-ahead 0; resync-rate 10M; }".into(),
        ..PairOptions::default()
    });
    let (samples, took) = full_sync_samples(&p, Duration::from_secs(40));
    wait_line(&p.a, CONNECTED_A, 10);
    let rate_kib = 10_240u64;
    let total_kib = samples
        .iter()
        .find_map(|s| s.left_kib)
        .expect("a progress line with oos:");
    let HeldRate {
        readings_kib: readings,
        typical_kib: typical,
        figures,
        ..
    } = assert_rate_held_from_above(&samples, total_kib, took, rate_kib, "10M");
    assert!(
        typical >= rate_kib * 9 / 10,
        "the resync ran below resync-rate 10M (-10 %): {figures}"
    );
    for s in &samples {
        let want = s.want_kib.expect("the SyncTarget's line shows want:");
        assert!(
            want.abs_diff(rate_kib) <= rate_kib / 10,
            "want: {want} K/sec is not resync-rate 10M: {figures}"
        );
    }
    // A `speed:` reading covers 1 to 1.2 s of 100 ms steps, and the steps missed in a
    // stall of the machine are caught up: none is far above, though (unlimited is
    // several times faster).
    for &speed in &readings {
        assert!(
            speed <= rate_kib * 3 / 2,
            "speed: {speed} K/sec is far above resync-rate 10M: {figures}"
        );
    }
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
    assert_data_equal(&p);
}

#[test]
fn dynamic_controller_stays_at_or_below_c_max_rate() {
    let p = Pair::with(PairOptions {
        net_a: NET.into(),
        net_b: NET.into(),
        resource_extra: "disk { c-plan-ahead 10; c-fill-target 1M; c-max-rate 16M; }".into(),
        ..PairOptions::default()
    });
    let (samples, took) = full_sync_samples(&p, Duration::from_secs(40));
    wait_line(&p.a, CONNECTED_A, 10);
    let max_kib = 16_384u64;
    assert!(
        took >= Duration::from_millis(3200),
        "the 64 MiB sync at c-max-rate 16M took only {took:?}"
    );
    assert!(
        samples.iter().any(|s| s.speed_kib > 0),
        "no progress line with a speed: {samples:?}"
    );
    for s in &samples {
        assert!(
            s.speed_kib <= max_kib * 6 / 5,
            "speed: {} K/sec is above c-max-rate 16M (+20 %): {samples:?}",
            s.speed_kib
        );
        let want = s.want_kib.expect("the SyncTarget's line shows want:");
        assert!(
            want <= max_kib,
            "want: {want} K/sec is above c-max-rate: {samples:?}"
        );
    }
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
    assert_data_equal(&p);
}

#[test]
fn c_min_rate_slows_the_sync_source_while_it_serves_application_reads() {
    require("fio");
    let p = Pair::with(PairOptions {
        net_a: NET.into(),
        net_b: NET.into(),
        resource_extra: "disk { c-plan-ahead 0; resync-rate 40M; c-min-rate 500k; }".into(),
        ..PairOptions::default()
    });
    p.up_and_force_primary();
    wait_line(&p.a, "cs:SyncSource", 10);
    // 2 MB/s of reads on alice for 5 s. bob never sees them, so only alice can slow the
    // resync: as DRBD's receive_DataRequest, it waits 100 ms before serving a request
    // (up to 1 MiB) while they run, about 10 MiB/s. Unthrottled, 40M moves the 64 MiB in
    // under 2 s.
    let fio = Command::new("fio")
        .args([
            "--name=app",
            "--ioengine=nbd",
            "--rw=randread",
            "--bs=4k",
            "--rate=2m",
            "--time_based",
            "--runtime=5",
            "--size=8M",
        ])
        .arg(format!("--uri={}", p.a.nbd_uri("r0")))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fio runs");
    std::thread::sleep(Duration::from_secs(3));
    let status = p.b.status_file();
    let left_kib = number_after(&status, "oos:").expect("oos: in the status");
    let fio = fio.wait_with_output().expect("fio ends");
    assert!(fio.status.success(), "{}", stderr(&fio));
    assert!(
        left_kib > 8 << 10,
        "the SyncSource did not slow down for application reads: {left_kib} KiB left after 3 s\n{status}"
    );
    // Without application I/O the resync completes at resync-rate.
    wait_line(&p.a, CONNECTED_A, 30);
    wait_line(&p.b, CONNECTED_B, 10);
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
    assert_data_equal(&p);
}

/// Writes 4 KiB of random data at random 4 KiB blocks of `[base, base + span)` through
/// NBD every 3 ms for `secs` seconds; prints "<writes> <slowest write ms>" at the end.
const WRITER: &str = "import nbd, os, random, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
base, span, secs = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
end = time.monotonic() + secs
n, worst = 0, 0.0
while time.monotonic() < end:
    off = base + random.randrange(span // 4096) * 4096
    t = time.monotonic()
    h.pwrite(os.urandom(4096), off)
    worst = max(worst, time.monotonic() - t)
    n += 1
    time.sleep(0.003)
h.flush()
h.shutdown()
print(n, int(worst * 1000))
";

fn start_writer(node: &Node, base: u64, span: u64, secs: f64) -> Child {
    Command::new("/usr/bin/python3")
        .args(["-c", WRITER, &node.nbd_uri("r0")])
        .args([base.to_string(), span.to_string(), secs.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs")
}

/// (writes, slowest write in ms).
fn finish_writer(child: Child) -> (u64, u64) {
    let out = child.wait_with_output().expect("the writer ends");
    assert!(out.status.success(), "the writer failed: {}", stderr(&out));
    let text = stdout(&out);
    let mut it = text.split_whitespace().map(|w| w.parse::<u64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn writes_complete_during_the_bitmap_exchange_and_reach_the_target() {
    require("python3");
    let p = Pair::with(PairOptions {
        net_a: NET.into(),
        net_b: NET.into(),
        // WFBitMapS lasts 2 s: the handler runs after the bitmaps crossed and before
        // P_SYNC_UUID, while writes are still described by P_OUT_OF_SYNC.
        handlers: "before-resync-source \"sleep 2\";".into(),
        ..PairOptions::default()
    });
    // The initial full sync: every block is out of sync.
    p.up_and_force_primary();
    let mut writer = start_writer(&p.a, 0, 8 << 20, 5.0);
    let status = wait_line(&p.a, "cs:WFBitMapS", 10);
    assert!(status.contains("ds:UpToDate/Inconsistent"), "{status}");
    assert!(
        writer.try_wait().unwrap().is_none(),
        "the writer ended before the exchange began"
    );
    let (writes, slowest_ms) = finish_writer(writer);
    assert!(writes >= 100, "only {writes} writes in 5 s");
    assert!(
        slowest_ms < 1000,
        "a write waited {slowest_ms} ms: writes were held off during the bitmap exchange"
    );
    wait_line(&p.a, CONNECTED_A, 60);
    wait_line(&p.b, CONNECTED_B, 30);

    // A resync of a few blocks: bob misses 1 MiB at 32 MiB; during the exchange alice
    // writes into 16..24 MiB, which bob learns about only from P_OUT_OF_SYNC.
    p.b.adm_ok(&["disconnect", "r0"]);
    finish_writer(start_writer(&p.a, 32 << 20, 1 << 20, 0.3));
    let mut writer = start_writer(&p.a, 16 << 20, 8 << 20, 5.0);
    p.b.adm_ok(&["connect", "r0"]);
    wait_line(&p.a, "cs:WFBitMapS", 10);
    assert!(
        writer.try_wait().unwrap().is_none(),
        "the writer ended before the exchange began"
    );
    let (writes, slowest_ms) = finish_writer(writer);
    assert!(writes >= 100, "only {writes} writes in 5 s");
    assert!(slowest_ms < 1000, "a write waited {slowest_ms} ms");
    wait_line(&p.a, CONNECTED_A, 30);
    wait_line(&p.b, CONNECTED_B, 30);
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
    assert_data_equal(&p);
}
