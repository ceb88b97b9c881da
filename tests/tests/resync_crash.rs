//! Resync after a crash of the Primary, and the static resync rate measured over a
//! larger device, through two real rdbd nodes.
//!
//! - SIGKILL of a Primary that wrote into a few 4 MiB extents: its activity log still
//!   lists them as hot; `up` applies the AL (every hot extent out of sync) and the
//!   resync after reconnecting covers whole hot extents, not the device. bob's copy of
//!   one written block is damaged behind rdbd's back while both are down (it stands for
//!   a write the Primary had on its disk but never sent): the AL-based resync repairs
//!   it, so equal data at the end proves the hot extents were copied.
//! - `c-plan-ahead 0; resync-rate 40M` on a 320 MiB pair: the sync's average speed
//!   (`oos:` against the test's clock, fitted between 10 % and 90 % done) is at most
//!   10 % above 40 MiB/s and the median `speed:` reading at most 10 % below it; with the rate effectively
//!   unlimited (`resync-rate 4G`) the same sync runs faster, which shows that the
//!   limiter is what held the first one back.

use std::process::Command;
use std::time::{Duration, Instant};

use rdbd_tests::node::Node;
use rdbd_tests::pair::{node_log, wait_line, wait_log, Pair, PairOptions, DATA_BYTES};
use rdbd_tests::resync_speed::{
    assert_rate_held_from_above, fitted_speed_kib, sample, HeldRate, Sample,
};
use rdbd_tests::tools::{number_after, require, run_ok, sha256_prefix};

/// A long ping-timeout: a loaded test machine must not drop the connection mid-test.
const NET: &str = "ping-timeout 30;";

/// One activity-log extent.
const EXTENT_BYTES: u64 = 4 << 20;

/// KiB and bits of the last `Began resync as <role> (will sync N KB [B bits set])`.
fn began_resync(log: &str, role: &str) -> Option<(u64, u64)> {
    let key = format!("Began resync as {role} (will sync");
    let line = log[log.rfind(&key)?..].lines().next()?;
    Some((number_after(line, "will sync")?, number_after(line, "[")?))
}

/// Writes 4 KiB blocks of `byte` at `offsets` through NBD with python3-libnbd, then flushes.
fn write_blocks(node: &Node, byte: u8, offsets: &[u64]) {
    let list = offsets
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let script = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nfor o in sys.argv[3].split(','):\n    h.pwrite(bytes([int(sys.argv[2])]) * 4096, int(o))\nh.flush()\nh.shutdown()\n";
    run_ok(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(node.nbd_uri("r0"))
            .arg(byte.to_string())
            .arg(list),
    );
}

/// Overwrites 4 KiB at `offset` of a backing file, behind rdbd's back.
fn damage(path: &std::path::Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&[0xeeu8; 4096], offset).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn sigkill_of_the_primary_resyncs_the_hot_extents_of_its_activity_log() {
    require("python3");
    let p = Pair::synced(&format!("protocol C; {NET}"));
    // Blocks in three extents (1, 5 and 9), two blocks in each, connected.
    let extents = [1u64, 5, 9];
    let offsets: Vec<u64> = extents
        .iter()
        .flat_map(|e| [e * EXTENT_BYTES + 8192, e * EXTENT_BYTES + 3 * 4096 * 100])
        .collect();
    write_blocks(&p.a, 0x3c, &offsets);
    assert_eq!(
        sha256_prefix(&p.disk_a, DATA_BYTES),
        sha256_prefix(&p.disk_b, DATA_BYTES),
        "protocol C: bob has the writes before the crash"
    );

    p.a.crash();
    wait_line(&p.b, "ro:Secondary/Unknown", 30);
    // bob loses one written block (as if alice had it on disk and never sent it).
    p.b.adm_ok(&["down", "r0"]);
    damage(&p.disk_b, offsets[2]);
    assert_ne!(
        sha256_prefix(&p.disk_a, DATA_BYTES),
        sha256_prefix(&p.disk_b, DATA_BYTES),
        "the damage changed bob's data"
    );
    p.b.adm_ok(&["up", "r0"]);
    wait_line(&p.b, "cs:WFConnection", 30);

    let targets = node_log(&p.b).matches("Began resync as SyncTarget").count();
    p.a.adm_ok(&["up", "r0"]);
    let start = Instant::now();
    let (kib, bits) = loop {
        let log = node_log(&p.b);
        if log.matches("Began resync as SyncTarget").count() > targets {
            break began_resync(&log, "SyncTarget")
                .unwrap_or_else(|| panic!("unparsable resync line:\n{log}"));
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "bob never became SyncTarget after alice came back:\n{log}\nalice:\n{}",
            node_log(&p.a)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (source_kib, _) = began_resync(
        &wait_log(&p.a, "Began resync as SyncSource", 10),
        "SyncSource",
    )
    .expect("alice's SyncSource line");
    let extent_kib = EXTENT_BYTES >> 10;
    let full_kib = DATA_BYTES >> 10;
    eprintln!(
        "AL resync after SIGKILL: {kib} KiB ({bits} bits), alice {source_kib} KiB, of {full_kib} KiB"
    );
    assert_eq!(bits * 4, kib, "4 KiB per bit");
    assert_eq!(source_kib, kib, "both sides name the same amount");
    assert_eq!(
        kib % extent_kib,
        0,
        "the AL resync covers whole 4 MiB extents: {kib} KiB"
    );
    assert!(
        kib >= extents.len() as u64 * extent_kib,
        "the resync covers the {} hot extents: only {kib} KiB",
        extents.len()
    );
    assert!(
        kib <= full_kib / 4,
        "the resync after a crash covers {kib} of {full_kib} KiB: not AL-based"
    );
    for n in [&p.a, &p.b] {
        n.wait_status(
            "Connected Secondary/Secondary UpToDate/UpToDate",
            Duration::from_secs(60),
            |t| t.contains("cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate"),
        );
    }
    wait_line(&p.a, "oos:0", 10);
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
    assert_eq!(
        sha256_prefix(&p.disk_a, DATA_BYTES),
        sha256_prefix(&p.disk_b, DATA_BYTES),
        "the data areas differ after the AL-based resync"
    );
}

/// Backing-file size of the rate test: 8 s at 40 MiB/s.
const RATE_SIZE_MIB: u64 = 320;

/// A fresh 320 MiB pair with `disk`; up, `primary --force` on alice, samples bob's
/// progress every 50 ms until both are UpToDate. Returns the samples and the time
/// bob spent as SyncTarget.
fn full_sync(disk: &str) -> (Vec<Sample>, Duration) {
    let p = Pair::with(PairOptions {
        net_a: NET.into(),
        net_b: NET.into(),
        resource_extra: format!("disk {{ {disk} }}"),
        size_mib: Some(RATE_SIZE_MIB),
        ..PairOptions::default()
    });
    p.a.adm_ok(&["up", "r0"]);
    p.b.adm_ok(&["up", "r0"]);
    wait_line(&p.a, "cs:Connected ro:Secondary/Secondary", 30);
    p.a.adm_ok(&["primary", "--force", "r0"]);
    let begin = Instant::now();
    let mut started: Option<Instant> = None;
    let mut samples = Vec::new();
    let took = loop {
        let text = p.b.status_file();
        if started.is_none() && text.contains("cs:SyncTarget") {
            started = Some(Instant::now());
        }
        if let Some(s) = started {
            if text.contains("cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate") {
                break s.elapsed();
            }
            if let Some(x) = sample(&text, s.elapsed()) {
                samples.push(x);
            }
        }
        assert!(
            begin.elapsed() < Duration::from_secs(30),
            "the full sync with {disk} did not finish in 30 s; samples {samples:?}\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    wait_line(&p.a, "ds:UpToDate/UpToDate", 10);
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
    // The meta-data lies in the last MiB; everything before it is data.
    let data_bytes = (RATE_SIZE_MIB - 1) << 20;
    assert_eq!(
        sha256_prefix(&p.disk_a, data_bytes),
        sha256_prefix(&p.disk_b, data_bytes),
        "the data areas differ after the full sync with {disk}"
    );
    (samples, took)
}

#[test]
fn resync_rate_40m_holds_the_full_sync_near_40_mib_per_second() {
    let rate_kib = 40u64 << 10;
    let size_kib = (RATE_SIZE_MIB - 1) << 10;
    let (samples, took) = full_sync("c-plan-ahead 0; resync-rate 40M;");
    let HeldRate {
        average_kib: average,
        readings_kib: readings,
        typical_kib: typical,
        figures,
    } = assert_rate_held_from_above(&samples, size_kib, took, rate_kib, "40M");
    // A reading covers 1 to 1.2 s of 100 ms steps, and the steps missed in a stall of
    // the machine are caught up: none is far above, though.
    for &speed in &readings {
        assert!(
            speed <= rate_kib * 3 / 2,
            "speed: {speed} K/sec is far above resync-rate 40M: {figures}"
        );
    }

    let (fast_samples, fast_took) = full_sync("c-plan-ahead 0; resync-rate 4G;");
    // Too short for a fit on a fast machine: then the whole run.
    let whole_kib = size_kib as f64 / fast_took.as_secs_f64().max(0.001);
    let unlimited = fitted_speed_kib(&fast_samples, size_kib).unwrap_or(whole_kib);
    eprintln!(
        "resync-rate 4G: took {fast_took:?}, average {unlimited:.0} KiB/s (whole run {whole_kib:.0} KiB/s)"
    );
    assert!(
        fast_took < took && unlimited > average,
        "unlimited ({fast_took:?}, {unlimited:.0} KiB/s) is not faster than resync-rate 40M: the limit did not hold the 40M run: {figures}"
    );
    // Within 10 % of 40M from below too, unless this machine cannot even reach 40M
    // unlimited (then only the upper bound above holds).
    if unlimited >= (rate_kib * 11 / 10) as f64 {
        assert!(
            typical >= rate_kib * 9 / 10,
            "the resync ran below resync-rate 40M (-10 %; unlimited: {unlimited:.0} KiB/s): {figures}"
        );
    } else {
        eprintln!(
            "this machine reaches only {unlimited:.0} KiB/s unlimited: 40M not checked from below"
        );
    }
}
