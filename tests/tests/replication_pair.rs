//! Two rdbd nodes on loopback replicating one resource: real `rdbd`/`rdbdadm` processes,
//! real sockets, real NBD clients.
//!
//! - protocols A, B, C: initial sync after `primary --force`, fio with verify through NBD
//!   on the primary, `down` both, the data areas of both backing files equal;
//! - SIGKILL of the secondary during writes, restart: reconnects, resyncs, data equal;
//! - switch-over: the data written on one node is read back through NBD on the other;
//! - a wrong shared secret / a protocol mismatch is refused with a log line that says why,
//!   and the node keeps retrying;
//! - a peer sending garbage is disconnected with a clear log line while the primary
//!   keeps serving its client.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use rdbd_tests::acked_writer::{assert_acked_present, AckedWriter};
use rdbd_tests::pair::{fio_verify, wait_line, wait_log, Pair, DATA_BYTES};
use rdbd_tests::tools::{require, run_ok, sha256_prefix};

fn replicate_with_protocol(protocol: &str) {
    replicate_with(protocol, "", 'f');
}

/// Replicates fio-verified writes; the status must show `wo:<write_ordering>`, and
/// both data areas must be equal after `down`.
fn replicate_with(protocol: &str, disk_options: &str, write_ordering: char) {
    require("fio");
    let p = Pair::synced_with(&format!("protocol {protocol};"), disk_options);
    let uri = p.a.nbd_uri("r0");
    fio_verify(&uri, "randwrite", "4k", "32", "16M");
    fio_verify(&uri, "write", "64k", "8", "32M");
    let status = wait_line(&p.a, "ds:UpToDate/UpToDate", 10);
    assert!(
        status.contains(&format!(" {protocol} r")),
        "protocol {protocol} in the status:\n{status}"
    );
    assert!(
        status.contains(&format!(" wo:{write_ordering} ")),
        "wo:{write_ordering} in the status:\n{status}"
    );
    // Everything sent has arrived: the secondary received what the primary sent.
    p.demote_and_down();
    assert_eq!(
        sha256_prefix(&p.disk_a, DATA_BYTES),
        sha256_prefix(&p.disk_b, DATA_BYTES),
        "protocol {protocol}: the data areas differ after down"
    );
}

/// Write ordering `d` (disk-flushes no): the secondary drains each epoch before
/// the next one's writes (DRBD's WO_DRAIN_IO), without flushes.
#[test]
fn drain_write_ordering_replicates() {
    replicate_with("C", "disk-flushes no;", 'd');
}

/// Write ordering `n` (no flushes, no drain).
#[test]
fn no_write_ordering_replicates() {
    replicate_with("C", "disk-flushes no; disk-drain no;", 'n');
}

#[test]
fn protocol_a_replicates_fio_verified_writes() {
    replicate_with_protocol("A");
}

#[test]
fn protocol_b_replicates_fio_verified_writes() {
    replicate_with_protocol("B");
}

#[test]
fn protocol_c_replicates_fio_verified_writes() {
    replicate_with_protocol("C");
}

#[test]
fn killed_secondary_reconnects_and_resyncs() {
    require("nbdcopy");
    let p = Pair::synced("protocol C;");
    let uri = p.a.nbd_uri("r0");
    let data = p.dir.path().join("data.bin");
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("head -c 48M /dev/urandom > {}", data.display())),
    );
    // Write while the secondary dies.
    let mut copy = Command::new("nbdcopy")
        .arg(&data)
        .arg(&uri)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    p.b.crash();
    assert!(
        copy.wait().unwrap().success(),
        "the primary must keep serving while its peer is gone"
    );
    let status = wait_line(&p.a, "ro:Primary/Unknown", 20);
    assert!(
        status.contains("cs:WFConnection") || status.contains("cs:Unconnected"),
        "{status}"
    );
    let oos: u64 = status
        .split("oos:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        oos > 0,
        "writes after the peer died are out of sync:\n{status}"
    );
    // Restart the secondary: it reconnects by itself and resyncs.
    p.b.adm_ok(&["up", "r0"]);
    wait_line(
        &p.a,
        "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate",
        60,
    );
    let status = wait_line(&p.a, "oos:0", 30);
    assert!(
        Pair::log(&p.a).contains("Began resync as SyncSource"),
        "a resync ran:\n{status}"
    );
    p.demote_and_down();
    assert_eq!(
        sha256_prefix(&data, 48 << 20),
        sha256_prefix(&p.disk_a, 48 << 20)
    );
    assert_eq!(
        sha256_prefix(&p.disk_a, DATA_BYTES),
        sha256_prefix(&p.disk_b, DATA_BYTES),
        "data equal after the resync"
    );
}

#[test]
fn switch_over_reads_the_data_back_on_the_other_node() {
    require("nbdcopy");
    let p = Pair::synced("protocol C;");
    let data = p.dir.path().join("data.bin");
    let back = p.dir.path().join("back.bin");
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("head -c 20M /dev/urandom > {}", data.display())),
    );
    run_ok(Command::new("nbdcopy").arg(&data).arg(p.a.nbd_uri("r0")));
    // Both primary: refused.
    let out = p.b.adm_run(&["primary", "r0"]);
    assert!(!out.status.success(), "two primaries must be refused");
    p.a.adm_ok(&["secondary", "r0"]);
    wait_line(&p.b, "ro:Secondary/Secondary", 10);
    p.b.adm_ok(&["primary", "r0"]);
    wait_line(&p.a, "ro:Secondary/Primary ds:UpToDate/UpToDate", 10);
    run_ok(Command::new("nbdcopy").arg(p.b.nbd_uri("r0")).arg(&back));
    assert_eq!(
        sha256_prefix(&data, 20 << 20),
        sha256_prefix(&back, 20 << 20),
        "data read back on the new primary"
    );
}

#[test]
fn wrong_secret_is_refused_and_retried() {
    let p = Pair::new(
        "cram-hmac-alg sha256; shared-secret one;",
        "cram-hmac-alg sha256; shared-secret two;",
    );
    p.a.adm_ok(&["up", "r0"]);
    p.b.adm_ok(&["up", "r0"]);
    let log = wait_log(
        &p.a,
        "connection refused: authentication of peer failed",
        30,
    );
    assert!(log.contains("wrong shared-secret?"), "{log}");
    // The refusal names the resource and the peer (the session's span).
    let refusal = log
        .lines()
        .find(|l| l.contains("authentication of peer failed"))
        .unwrap_or_default();
    assert!(
        refusal.contains("peer{resource=r0 peer=bob}"),
        "resource and peer in the line: {refusal}"
    );
    // Still trying, never Connected.
    let start = Instant::now();
    while Pair::log(&p.a).matches("connection refused").count() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "it retries:\n{}",
            Pair::log(&p.a)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = p.a.status_file();
    assert!(!status.contains("cs:Connected"), "{status}");
}

#[test]
fn matching_secret_connects_with_sha1() {
    let p = Pair::new(
        "cram-hmac-alg sha1; shared-secret s3cr3t;",
        "cram-hmac-alg sha1; shared-secret s3cr3t;",
    );
    p.a.adm_ok(&["up", "r0"]);
    p.b.adm_ok(&["up", "r0"]);
    wait_line(&p.a, "cs:Connected", 30);
    assert!(Pair::log(&p.a).contains("Peer authenticated"));
}

/// `sndbuf-size` / `rcvbuf-size`: every end of both replication sockets (the ones each
/// node connects, and the ones it accepts) has exactly the configured kernel buffers, as
/// DRBD sets them (`ss -tm` shows `tb` / `rb`); autotuned sockets start far smaller.
#[test]
fn socket_buffer_sizes_are_set_on_every_replication_socket() {
    let net = "sndbuf-size 3M; rcvbuf-size 5M;";
    let p = Pair::new(net, net);
    p.a.adm_ok(&["up", "r0"]);
    p.b.adm_ok(&["up", "r0"]);
    wait_line(&p.a, "cs:Connected", 30);
    let filter = format!(
        "( sport = :{a} or dport = :{a} or sport = :{b} or dport = :{b} )",
        a = p.port_a,
        b = p.port_b
    );
    let out = rdbd_tests::tools::stdout(&run_ok(Command::new("ss").args([
        "-tmnH",
        "state",
        "established",
        &filter,
    ])));
    let ends: Vec<&str> = out.lines().filter(|l| l.contains("skmem:")).collect();
    // Two connections (data, meta), both ends on this machine.
    assert_eq!(ends.len(), 4, "{out}");
    for end in ends {
        assert!(
            end.contains(&format!("tb{}", 3 << 20)) && end.contains(&format!("rb{}", 5 << 20)),
            "a replication socket without sndbuf-size 3M / rcvbuf-size 5M:\n{out}"
        );
    }
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
}

#[test]
fn protocol_mismatch_is_refused_with_the_reason() {
    let p = Pair::new("protocol A;", "protocol C;");
    p.a.adm_ok(&["up", "r0"]);
    p.b.adm_ok(&["up", "r0"]);
    let log = wait_log(
        &p.a,
        "incompatible replication protocol: this node has protocol A, the peer has protocol C",
        30,
    );
    assert!(log.contains("retrying"), "{log}");
    let log = wait_log(
        &p.b,
        "incompatible replication protocol: this node has protocol C, the peer has protocol A",
        30,
    );
    assert!(log.contains("connection refused"), "{log}");
    assert!(!p.a.status_file().contains("cs:Connected"));
}

#[test]
fn garbage_from_the_peer_is_refused_and_the_primary_keeps_serving() {
    require("nbdcopy");
    let p = Pair::new("", "");
    p.a.adm_ok(&["up", "r0"]);
    p.a.adm_ok(&["primary", "--force", "r0"]);
    // Pretend to be bob: open the data socket properly, the meta socket too, then garbage.
    let addr = format!("127.0.0.1:{}", p.port_a);
    let mut data = std::net::TcpStream::connect(&addr).unwrap();
    data.write_all(&[0x83, 0x74, 0x02, 0x67, 0xff, 0xf2, 0, 0])
        .unwrap();
    let mut meta = std::net::TcpStream::connect(&addr).unwrap();
    meta.write_all(&[0x83, 0x74, 0x02, 0x67, 0xff, 0xf1, 0, 0])
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    data.write_all(b"this is not DRBD at all, but a long line of garbage bytes ..........")
        .unwrap();
    let log = wait_log(
        &p.a,
        "the peer sent an invalid packet on the data socket",
        20,
    );
    assert!(log.contains("connection lost"), "{log}");
    // Oversized length in a well-formed h100 header.
    drop((data, meta));
    let data = p.dir.path().join("data.bin");
    let back = p.dir.path().join("back.bin");
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("head -c 4M /dev/urandom > {}", data.display())),
    );
    let uri = p.a.nbd_uri("r0");
    run_ok(Command::new("nbdcopy").arg(&data).arg(&uri));
    run_ok(Command::new("nbdcopy").arg(&uri).arg(&back));
    assert_eq!(sha256_prefix(&data, 4 << 20), sha256_prefix(&back, 4 << 20));
    let status = p.a.status_file();
    assert!(
        status.contains("cs:WFConnection") || status.contains("cs:Unconnected"),
        "{status}"
    );
}

#[test]
fn protocol_c_loses_no_acknowledged_write_when_the_primary_dies() {
    let p = Pair::synced("protocol C;");
    let mut writer = AckedWriter::start(p.dir.path(), &p.a.nbd_uri("r0"), 12_000);
    // Let it write a while, then the primary dies mid-stream.
    writer.wait_acked(300);
    p.a.crash();
    let acked = writer.acked();
    assert!(
        acked.len() >= 300 && acked.len() < 12000,
        "the crash interrupted the writer ({} acked)",
        acked.len()
    );
    // Failover: bob notices, becomes Primary, and has every acknowledged block.
    wait_line(&p.b, "ro:Secondary/Unknown", 20);
    p.b.adm_ok(&["primary", "r0"]);
    let back = p.dir.path().join("back.bin");
    run_ok(Command::new("nbdcopy").arg(p.b.nbd_uri("r0")).arg(&back));
    let data = std::fs::read(&back).unwrap();
    assert_acked_present(&data, &acked);
}
