//! `rdbdadm resize` through real processes: the backing files grow (`truncate`), the
//! internal meta-data moves to the new end, the pair agrees on the new size, the new
//! area is resynced (or not, with `--assume-clean`), new NBD connections see the new
//! size, and after `down` the real drbdmeta reads the moved meta-data with the new size.
//! Growing without a connected peer is refused with a clear message. Shrinking needs
//! `--size` and `--force`: both nodes end with the new size (new NBD connections see it,
//! I/O past it is refused), the meta-data stays in place with the new `la-size-sect`
//! (drbdmeta reads it), the data below the new end is unchanged on both; a shrink
//! without `--force`, to a size that is not whole 4 KiB blocks, or while a resync runs
//! is refused with the reason. Every refusal by the daemon exits with drbdsetup's code for
//! a refused resize, 10.

use std::path::Path;
use std::process::Command;

use rdbd_tests::fixture::Standalone;
use rdbd_tests::node::Node;
use rdbd_tests::pair::{fio_verify, node_log, wait_line, wait_log, Pair, PairOptions, DATA_BYTES};
use rdbd_tests::tools::{
    drbdmeta_dump_md, la_size_sect, require, run_ok, sha256_prefix, stderr, stdout, DEBIAN_PYTHON,
};

const GROWN_FILE_BYTES: u64 = 96 << 20;

/// drbdsetup's (and so drbdadm's) exit code for a resize the kernel refuses
/// ("Failure: (NNN) ...", an `ERR_*` code such as `ERR_RESIZE_RESYNC`).
const RESIZE_REFUSED_EXIT: i32 = 10;

/// `rdbdadm ARGS` on `node`, which must be refused as drbdsetup refuses a resize (exit
/// code 10); returns stderr (the reason).
fn resize_refused(node: &Node, args: &[&str]) -> String {
    let out = node.adm_run(args);
    let why = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(RESIZE_REFUSED_EXIT),
        "`{}` must be refused: {why}",
        args.join(" ")
    );
    why
}

fn nbd_size(uri: &str) -> u64 {
    let out = run_ok(Command::new("nbdinfo").arg("--size").arg(uri));
    stdout(&out).trim().parse().expect("nbdinfo --size")
}

fn grow_file(path: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(GROWN_FILE_BYTES)
        .unwrap();
}

/// Writes a pattern into `[offset, offset+len)` of the export with qemu-io.
fn write_pattern(uri: &str, offset: u64, len: u64) {
    run_ok(Command::new("qemu-io").args([
        "-f",
        "raw",
        "-c",
        &format!("write -P 0x5a {offset} {len}"),
        uri,
    ]));
}

/// A synced protocol C pair and alice's NBD URI, with the tools the grow and shrink
/// tests use (drbdmeta, nbdinfo, qemu-io, fio) required.
fn synced_pair_with_tools() -> (Pair, String) {
    for tool in ["drbdmeta", "nbdinfo", "qemu-io", "fio"] {
        require(tool);
    }
    let p = Pair::synced("protocol C;");
    let uri = p.a.nbd_uri("r0");
    (p, uri)
}

fn grow_pair(assume_clean: bool) {
    let (p, uri) = synced_pair_with_tools();
    fio_verify(&uri, "randwrite", "4k", "16", "8M");
    assert_eq!(nbd_size(&uri), DATA_BYTES);
    grow_file(&p.disk_a);
    grow_file(&p.disk_b);
    if !assume_clean {
        // Junk in bob's new area: only the resync of the new area makes them equal.
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&p.disk_b)
            .unwrap();
        f.seek(SeekFrom::Start(64 << 20)).unwrap();
        f.write_all(&vec![0xEE; 24 << 20]).unwrap();
        f.sync_all().unwrap();
    }
    if assume_clean {
        p.a.adm_ok(&["resize", "--assume-clean", "r0"]);
    } else {
        p.a.adm_ok(&["resize", "r0"]);
        wait_log(&p.a, "after the online grow", 20);
    }
    p.wait_in_sync();
    let grown = nbd_size(&uri);
    assert!(
        grown > DATA_BYTES + (24 << 20),
        "a new NBD connection sees the grown size: {grown}"
    );
    let resyncs = node_log(&p.b).matches("Began resync as SyncTarget").count();
    assert_eq!(
        resyncs,
        if assume_clean { 1 } else { 2 },
        "the initial sync, plus the new area's unless --assume-clean"
    );
    // The new area is usable and replicated.
    write_pattern(&uri, DATA_BYTES + (4 << 20), 8 << 20);
    fio_verify(&uri, "randwrite", "4k", "16", "16M");
    p.demote_and_down();
    assert_meta_and_data_agree(&p, grown);
    // Up again from the moved meta-data: same size, no resync needed.
    up_again_in_sync(&p);
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
}

/// After `down` on both: the real drbdmeta reads `size_bytes` as `la-size-sect` from each
/// node's meta-data, and the data areas below it are equal.
fn assert_meta_and_data_agree(p: &Pair, size_bytes: u64) {
    for disk in [&p.disk_a, &p.disk_b] {
        assert_eq!(
            la_size_sect(&drbdmeta_dump_md(disk)) * 512,
            size_bytes,
            "drbdmeta reads the new size from the meta-data of {}",
            disk.display()
        );
    }
    assert_eq!(
        sha256_prefix(&p.disk_a, size_bytes),
        sha256_prefix(&p.disk_b, size_bytes),
        "the data areas below the new size differ"
    );
}

/// `up` on both again: they connect UpToDate, without a resync.
fn up_again_in_sync(p: &Pair) {
    p.a.adm_ok(&["up", "r0"]);
    p.b.adm_ok(&["up", "r0"]);
    wait_line(
        &p.a,
        "cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate",
        30,
    );
}

#[test]
fn resize_grows_a_connected_pair_and_resyncs_the_new_area() {
    grow_pair(false);
}

#[test]
fn resize_with_assume_clean_skips_the_resync() {
    grow_pair(true);
}

const SHRUNK_BYTES: u64 = 32 << 20;

/// python3-libnbd with strict mode off (the server, not libnbd, must refuse): a read and
/// a write at `offset`; prints `read:ok|read:EINVAL...` and the same for the write.
fn io_at(uri: &str, offset: u64) -> String {
    let script = r#"import nbd, sys
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri(sys.argv[1])
off = int(sys.argv[2])
for name, op in (("read", lambda: h.pread(4096, off)), ("write", lambda: h.pwrite(b"x" * 4096, off))):
    try:
        op()
        print(name + ":ok")
    except nbd.Error as e:
        print(name + ":" + str(e.errnum))
h.shutdown()
"#;
    let out = run_ok(
        Command::new(DEBIAN_PYTHON)
            .args(["-c", script, uri])
            .arg(offset.to_string()),
    );
    stdout(&out)
}

#[test]
fn resize_shrinks_a_connected_pair_with_force() {
    let (p, uri) = synced_pair_with_tools();
    fio_verify(&uri, "randwrite", "4k", "16", "16M");
    // Data on both sides of the future end.
    write_pattern(&uri, SHRUNK_BYTES - (1 << 20), 2 << 20);
    write_pattern(&uri, 48 << 20, 4 << 20);
    wait_line(&p.b, "oos:0", 10);
    let kept_before = sha256_prefix(&p.disk_a, SHRUNK_BYTES);
    assert_eq!(kept_before, sha256_prefix(&p.disk_b, SHRUNK_BYTES));

    // Without --force: refused, saying why and how to confirm; nothing changed.
    let why = resize_refused(&p.a, &["resize", "--size=32M", "r0"]);
    assert!(
        why.contains("shrink") && why.contains("--force") && why.contains("--size=65536s"),
        "{why}"
    );
    // Not whole 4 KiB blocks, or less than one: refused even with --force.
    for size in ["--size=65537s", "--size=1s"] {
        let why = resize_refused(&p.a, &["resize", size, "--force", "r0"]);
        assert!(why.contains("4 KiB"), "{size}: {why}");
    }
    // An NBD client holding the device (it negotiated the old size): refused.
    let mut holder = rdbd_tests::tools::hold_open(&uri);
    let out = p.a.adm_run(&["resize", "--size=32M", "--force", "r0"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(RESIZE_REFUSED_EXIT));
    assert!(stderr(&out).contains("NBD client"), "{}", stderr(&out));
    assert_eq!(nbd_size(&uri), DATA_BYTES);

    // The drbdadm pass-through form (retried while the daemon has not yet seen the
    // holder's connection close).
    let mut tries = 0;
    loop {
        let out =
            p.a.adm_run(&["--", "--force", "--size=32M", "resize", "r0"]);
        if out.status.success() {
            break;
        }
        tries += 1;
        assert!(
            tries < 50
                && stderr(&out).contains("NBD client")
                && out.status.code() == Some(RESIZE_REFUSED_EXIT),
            "{}: {}",
            out.status,
            stderr(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        nbd_size(&uri),
        SHRUNK_BYTES,
        "a new connection sees the new size"
    );
    wait_log(&p.b, "Peer sets u_size to 65536 sectors", 10);
    assert_eq!(
        io_at(&uri, SHRUNK_BYTES),
        "read:22\nwrite:28\n",
        "I/O past the new end is refused (NBD: EINVAL for a read, ENOSPC for a write)"
    );
    assert_eq!(io_at(&uri, SHRUNK_BYTES - 4096), "read:ok\nwrite:ok\n");
    // Still replicating, no resync: both stay UpToDate.
    fio_verify(&uri, "randwrite", "4k", "16", "8M");
    wait_line(
        &p.a,
        "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate",
        10,
    );
    wait_line(&p.b, "oos:0", 10);
    p.demote_and_down();
    assert_meta_and_data_agree(&p, SHRUNK_BYTES);
    // Up again: the shrunk size stays, the pair connects without a resync.
    up_again_in_sync(&p);
    p.a.adm_ok(&["primary", "r0"]);
    assert_eq!(nbd_size(&uri), SHRUNK_BYTES);
    p.demote_and_down();
}

#[test]
fn resize_keeps_the_data_below_the_new_end() {
    // The shrink changes only the size: the bytes below the new end are those written
    // before, on both nodes (no writes in between).
    require("qemu-io");
    let p = Pair::synced("protocol C;");
    let uri = p.a.nbd_uri("r0");
    write_pattern(&uri, 0, SHRUNK_BYTES);
    write_pattern(&uri, SHRUNK_BYTES, 8 << 20);
    wait_line(&p.b, "oos:0", 10);
    let before = sha256_prefix(&p.disk_a, SHRUNK_BYTES);
    p.a.adm_ok(&["resize", "--size", "32M", "--force", "r0"]);
    p.demote_and_down();
    assert_eq!(sha256_prefix(&p.disk_a, SHRUNK_BYTES), before);
    assert_eq!(sha256_prefix(&p.disk_b, SHRUNK_BYTES), before);
}

#[test]
fn resize_refuses_a_shrink_while_a_resync_runs() {
    let p = Pair::with(PairOptions {
        net_a: "protocol C;".into(),
        net_b: "protocol C;".into(),
        resource_extra: "disk { c-plan-ahead 0; resync-rate 1M; }".into(),
        ..PairOptions::default()
    });
    p.up_and_force_primary();
    wait_line(&p.a, "cs:SyncSource", 10);
    for node in [&p.a, &p.b] {
        let why = resize_refused(node, &["resize", "--size=32M", "--force", "r0"]);
        assert!(why.contains("Resize not allowed during resync."), "{why}");
    }
    p.a.adm_ok(&["disconnect", "r0"]);
    p.demote_and_down();
}

#[test]
fn resize_refuses_a_shrink_and_a_disconnected_peer() {
    let p = Pair::synced("protocol C;");
    let why = resize_refused(&p.a, &["resize", "--size", "32M", "r0"]);
    assert!(why.contains("shrink"), "{why}");
    let out = p.a.adm_ok(&["resize", "r0"]);
    assert!(out.contains("nothing to do"), "{out}");
    p.a.adm_ok(&["disconnect", "r0"]);
    wait_line(&p.a, "cs:StandAlone", 10);
    grow_file(&p.disk_a);
    let why = resize_refused(&p.a, &["resize", "r0"]);
    assert!(why.contains("--assume-peer-has-space"), "{why}");
    let why = resize_refused(&p.a, &["resize", "--size", "200M", "r0"]);
    assert!(why.contains("larger"), "{why}");
    p.demote_and_down();
}

#[test]
fn resize_of_a_standalone_resource_with_an_explicit_size() {
    require("drbdmeta");
    require("nbdinfo");
    let s = Standalone::up(64);
    let before = s.node_size_bytes();
    grow_file(&s.disk);
    s.node.adm_ok(&["resize", "--size", "80M", "r0"]);
    assert_eq!(s.node_size_bytes(), 80 << 20);
    s.node.adm_ok(&["resize", "r0"]);
    let after = s.node_size_bytes();
    assert!(after > 80 << 20 && after > before, "{before} -> {after}");
    s.node.adm_ok(&["secondary", "r0"]);
    s.node.adm_ok(&["down", "r0"]);
    assert_eq!(la_size_sect(&drbdmeta_dump_md(&s.disk)) * 512, after);
}

#[test]
fn resize_shrinks_a_standalone_resource_and_the_size_survives_down_and_up() {
    require("drbdmeta");
    require("nbdinfo");
    require("qemu-io");
    let s = Standalone::up(64);
    write_pattern(&s.uri(), 0, 8 << 20);
    let kept = sha256_prefix(&s.disk, 8 << 20);
    let why = resize_refused(&s.node, &["resize", "--size", "8M", "r0"]);
    assert!(why.contains("--force"), "no --force: {why}");
    s.node.adm_ok(&["resize", "--size", "8M", "--force", "r0"]);
    assert_eq!(s.node_size_bytes(), 8 << 20);
    s.node.adm_ok(&["secondary", "r0"]);
    s.node.adm_ok(&["down", "r0"]);
    assert_eq!(la_size_sect(&drbdmeta_dump_md(&s.disk)) * 512, 8 << 20);
    assert_eq!(sha256_prefix(&s.disk, 8 << 20), kept);
    // The meta-data did not move: up again reads it and keeps the shrunk size.
    s.node.adm_ok(&["up", "r0"]);
    s.node.adm_ok(&["primary", "r0"]);
    assert_eq!(s.node_size_bytes(), 8 << 20);
    // Growing back to what the device offers works as any grow.
    s.node.adm_ok(&["resize", "r0"]);
    assert!(s.node_size_bytes() > 60 << 20);
    s.node.adm_ok(&["secondary", "r0"]);
    s.node.adm_ok(&["down", "r0"]);
}
