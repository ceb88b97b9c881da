//! Two rdbd nodes in two network namespaces joined by a veth pair (real TCP across a
//! link that can be cut), replicating `r0`. The NBD export is a unix socket in the
//! run directory, so the clients (fio, nbdcopy, python3-libnbd) run in the root namespace.
//!
//! - protocols A, B, C: fio with verify through NBD on the primary; the veth is cut while
//!   a writer runs: the primary keeps serving and counts the writes as out of sync (`oos:`);
//!   healed, the pair reconnects by itself, resyncs from the bitmap, and after `down` both
//!   data areas are equal and hold what was written;
//! - protocols A, B, C: SIGKILL of the secondary during writes; restarted, it reconnects,
//!   resyncs, and the data areas are equal;
//! - protocol C: SIGKILL of the primary during QD1 writes; the secondary is promoted with
//!   a plain `primary` (it was UpToDate) and holds every write the client saw acknowledged;
//! - a single NBD write larger than one DRBD bio (1 MiB) is replicated in pieces.
//!
//! Run: `cargo build --bins && cargo nextest run -p rdbd-tests --test replication_netns`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdbd_tests::acked_writer::{assert_acked_present, AckedWriter};
use rdbd_tests::pair::{fio_verify, wait_line, Pair, PairOptions, DATA_BYTES};
use rdbd_tests::tools::{require, run_ok, sha256_prefix};

/// A pair in two namespaces, both on `protocol`, initially synced with alice Primary.
fn synced_netns_pair(protocol: &str) -> Pair {
    let net = format!("protocol {protocol};");
    let p = Pair::with(PairOptions {
        net_a: net.clone(),
        net_b: net,
        netns: true,
        ..PairOptions::default()
    });
    p.up_and_sync();
    p
}

/// The `oos:` counter (KiB out of sync) of a status file's text.
fn oos_kib(status: &str) -> u64 {
    status
        .split("oos:")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no oos: counter in the status:\n{status}"))
}

/// `len_mib` MiB of random data in a file of the pair's directory.
fn random_file(p: &Pair, name: &str, len_mib: u64) -> PathBuf {
    let path = p.dir.path().join(name);
    run_ok(Command::new("sh").arg("-c").arg(format!(
        "head -c {len_mib}M /dev/urandom > {}",
        path.display()
    )));
    path
}

/// `nbdcopy FILE URI` at the start of the export, in the background.
fn spawn_copy(file: &Path, uri: &str) -> Child {
    Command::new("nbdcopy")
        .arg(file)
        .arg(uri)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn nbdcopy")
}

/// How many resyncs alice's log shows so far.
fn resyncs_begun(p: &Pair) -> usize {
    Pair::log(&p.a)
        .matches("Began resync as SyncSource")
        .count()
}

/// Asserts that a resync began after `before` were logged, and that it was bitmap-based:
/// at least `min_kib` and less than the whole device.
fn assert_bitmap_resync_after(p: &Pair, before: usize, min_kib: u64) {
    let log = Pair::log(&p.a);
    assert!(
        log.matches("Began resync as SyncSource").count() > before,
        "no new resync after reconnecting:\n{log}"
    );
    let kib: u64 = log
        .rsplit("Began resync as SyncSource (will sync ")
        .next()
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable resync line:\n{log}"));
    assert!(
        kib >= min_kib && kib < DATA_BYTES / 1024,
        "a bitmap-based resync of at least {min_kib} KiB, not a full one: {kib} KiB\n{log}"
    );
}

/// The first `len` bytes of the file `path`.
fn head(path: &Path, len: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.truncate(len);
    bytes
}

/// Waits for a child, failing when it does not end within `secs` or fails.
fn wait_child(child: &mut Child, what: &str, secs: u64) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "{what} failed: {status}");
            return;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("{what} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Secondary to both, `down` both, and the two data areas compared.
fn down_and_compare(p: &Pair, what: &str) {
    p.demote_and_down();
    assert_eq!(
        sha256_prefix(&p.disk_a, DATA_BYTES),
        sha256_prefix(&p.disk_b, DATA_BYTES),
        "{what}: the data areas differ after down\nalice's log:\n{}\nbob's log:\n{}",
        Pair::log(&p.a),
        Pair::log(&p.b)
    );
}

/// What happened while bob was away: alice's status once she served alone
/// (`ro:Primary/Unknown`), and whether bob was lost while the first copy still ran.
struct Outage {
    alone_status: String,
    lost_during_writes: bool,
}

/// Copies `first_mib` MiB of random data to alice's export and loses bob (`lose_bob`)
/// while that runs; once alice serves alone, writes 4 MiB more over its start, which she
/// must count as out of sync. Then brings bob back (`bring_back`): the pair reconnects,
/// resyncs from the bitmap (at least those 4 MiB), both end UpToDate, and after `down` the
/// data areas are equal and bob's holds everything written. `outage` names the situation.
fn write_through_outage(
    p: &Pair,
    first_mib: u64,
    outage: &str,
    lose_bob: impl FnOnce(),
    bring_back: impl FnOnce(),
) -> Outage {
    let uri = p.a.nbd_uri("r0");
    let first = random_file(p, "first.bin", first_mib);
    let mut copy = spawn_copy(&first, &uri);
    std::thread::sleep(Duration::from_millis(100));
    let lost_during_writes = copy.try_wait().expect("try_wait").is_none();
    lose_bob();
    wait_child(&mut copy, &format!("nbdcopy across {outage}"), 45);
    let alone_status = wait_line(&p.a, "ro:Primary/Unknown", 30);
    // More writes while bob is gone (over the start of the first file).
    let more = random_file(p, "more.bin", 4);
    run_ok(Command::new("nbdcopy").arg(&more).arg(&uri));
    // The status file is rewritten at least once a second.
    p.a.wait_status(
        &format!("at least 4 MiB out of sync after writing during {outage}"),
        Duration::from_secs(10),
        |s| s.contains("oos:") && oos_kib(s) >= 4096,
    );

    let before = resyncs_begun(p);
    bring_back();
    wait_line(
        &p.a,
        "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate",
        60,
    );
    wait_line(&p.a, "oos:0", 30);
    assert_bitmap_resync_after(p, before, 4096);
    wait_line(
        &p.b,
        "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        30,
    );
    down_and_compare(p, outage);
    let mut written = std::fs::read(&first).unwrap();
    written[..4 << 20].copy_from_slice(&std::fs::read(&more).unwrap());
    assert!(
        written == head(&p.disk_b, written.len()),
        "the secondary has everything written before and during {outage}"
    );
    Outage {
        alone_status,
        lost_during_writes,
    }
}

/// fio verify, then a partition during writes, heal, resync; data equal after `down`.
fn fio_then_partition(protocol: &str) {
    require("fio");
    require("nbdcopy");
    let started = Instant::now();
    let p = synced_netns_pair(protocol);
    let uri = p.a.nbd_uri("r0");
    assert!(
        uri.starts_with("nbd+unix:"),
        "the export is a unix socket: {uri}"
    );
    fio_verify(&uri, "randwrite", "4k", "32", "16M");
    fio_verify(&uri, "write", "64k", "8", "16M");
    let status = wait_line(&p.a, "oos:0", 30);
    assert!(status.contains(&format!(" {protocol} r")), "{status}");

    // The link goes down while a writer runs: it must finish on the primary alone. Healed,
    // the pair reconnects by itself and resyncs from the bitmap.
    let net = p.net.as_ref().expect("netns pair");
    let outage = format!("the protocol {protocol} partition");
    let o = write_through_outage(&p, 48, &outage, || net.cut(), || net.heal());
    assert!(
        !o.alone_status.contains("cs:Connected"),
        "partitioned, not Connected:\n{}",
        o.alone_status
    );
    eprintln!(
        "protocol {protocol}: fio + partition took {:?} (cut while nbdcopy ran: {})",
        started.elapsed(),
        o.lost_during_writes
    );
}

/// SIGKILL of the secondary while the primary writes; restart, resync, data equal.
fn secondary_killed_during_writes(protocol: &str) {
    require("nbdcopy");
    let started = Instant::now();
    let p = synced_netns_pair(protocol);
    let outage = format!("the protocol {protocol} secondary crash");
    let o = write_through_outage(
        &p,
        56,
        &outage,
        || p.b.crash(),
        || {
            p.b.adm_ok(&["up", "r0"]);
        },
    );
    let status = &o.alone_status;
    assert!(
        status.contains("cs:WFConnection") || status.contains("cs:Unconnected"),
        "{status}"
    );
    eprintln!(
        "protocol {protocol}: secondary crash took {:?} (killed while nbdcopy ran: {})",
        started.elapsed(),
        o.lost_during_writes
    );
}

#[test]
fn protocol_a_fio_and_partition_across_namespaces() {
    fio_then_partition("A");
}

#[test]
fn protocol_b_fio_and_partition_across_namespaces() {
    fio_then_partition("B");
}

#[test]
fn protocol_c_fio_and_partition_across_namespaces() {
    fio_then_partition("C");
}

#[test]
fn protocol_a_secondary_killed_during_writes_across_namespaces() {
    secondary_killed_during_writes("A");
}

#[test]
fn protocol_b_secondary_killed_during_writes_across_namespaces() {
    secondary_killed_during_writes("B");
}

#[test]
fn protocol_c_secondary_killed_during_writes_across_namespaces() {
    secondary_killed_during_writes("C");
}

#[test]
fn protocol_c_primary_killed_loses_no_acknowledged_write_across_namespaces() {
    let started = Instant::now();
    let p = synced_netns_pair("C");
    let blocks = 12_000;
    let mut writer = AckedWriter::start(p.dir.path(), &p.a.nbd_uri("r0"), blocks);
    writer.wait_acked(300);
    p.a.crash();
    let acked = writer.acked();
    assert!(
        acked.len() >= 300 && acked.len() < blocks,
        "the crash interrupted the writer ({} acked)",
        acked.len()
    );
    // Failover: bob notices across the link, is still UpToDate, and becomes Primary.
    let status = wait_line(&p.b, "ro:Secondary/Unknown", 30);
    assert!(status.contains("ds:UpToDate/"), "{status}");
    p.b.adm_ok(&["primary", "r0"]);
    wait_line(&p.b, "ro:Primary/Unknown", 10);
    let back = p.dir.path().join("back.bin");
    run_ok(Command::new("nbdcopy").arg(p.b.nbd_uri("r0")).arg(&back));
    let data = std::fs::read(&back).unwrap();
    assert_acked_present(&data, &acked);
    eprintln!(
        "protocol C primary crash: {} acknowledged blocks all present, took {:?}",
        acked.len(),
        started.elapsed()
    );
}

/// A single NBD write larger than a DRBD bio (1 MiB) goes to the peer in pieces: it used to
/// panic the primary's daemon ("PayloadTooLong { packet: "P_DATA", ... }").
#[test]
fn writes_larger_than_one_bio_replicate_across_namespaces() {
    let p = synced_netns_pair("C");
    let big = random_file(&p, "big.bin", 5);
    const PWRITE: &str = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nd = open(sys.argv[2], 'rb').read()\nh.pwrite(d[:4 << 20], 0)\nh.pwrite(d[:(1 << 20) + 4096 * 3], 8 << 20)\nh.flush()\nh.shutdown()\n";
    run_ok(
        Command::new("/usr/bin/python3")
            .args(["-c", PWRITE])
            .arg(p.a.nbd_uri("r0"))
            .arg(&big),
    );
    let status = wait_line(
        &p.a,
        "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate",
        10,
    );
    assert_eq!(oos_kib(&status), 0, "{status}");
    down_and_compare(&p, "writes of 4 MiB and 1 MiB + 12 KiB");
    let data = std::fs::read(&big).unwrap();
    let on_b = head(&p.disk_b, 16 << 20);
    assert!(on_b[..4 << 20] == data[..4 << 20]);
    let odd = (1 << 20) + 4096 * 3;
    assert!(on_b[8 << 20..(8 << 20) + odd] == data[..odd]);
}
