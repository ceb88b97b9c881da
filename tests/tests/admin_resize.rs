//! `rdbdadm resize` through real processes: the backing files grow (`truncate`), the
//! internal meta-data moves to the new end, the pair agrees on the new size, the new
//! area is resynced (or not, with `--assume-clean`), new NBD connections see the new
//! size, and after `down` the real drbdmeta reads the moved meta-data with the new size.
//! Shrinking and growing without a connected peer are refused with a clear message.

use std::path::Path;
use std::process::Command;

use rdbd_tests::fixture::Standalone;
use rdbd_tests::pair::{fio_verify, node_log, wait_line, wait_log, Pair, DATA_BYTES};
use rdbd_tests::tools::{require, run, run_ok, sha256_prefix, stderr, stdout};

const GROWN_FILE_BYTES: u64 = 96 << 20;

/// `drbdmeta --force - v08 FILE internal dump-md`, which must succeed.
fn drbdmeta_dump(file: &Path) -> String {
    let out = run(Command::new("drbdmeta")
        .args(["--force", "-", "v08"])
        .arg(file)
        .args(["internal", "dump-md"]));
    let _ = std::fs::remove_file("/var/lib/drbd/drbd-minor--1.lkbd");
    assert!(
        out.status.success(),
        "drbdmeta must read the moved meta-data of {}: {}",
        file.display(),
        stderr(&out)
    );
    stdout(&out)
}

/// `la-size-sect` of a drbdmeta dump.
fn la_size_sect(dump: &str) -> u64 {
    dump.lines()
        .find_map(|l| l.trim().strip_prefix("la-size-sect "))
        .and_then(|v| v.trim_end_matches(';').trim().parse().ok())
        .unwrap_or_else(|| panic!("no la-size-sect in:\n{dump}"))
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

fn grow_pair(assume_clean: bool) {
    require("drbdmeta");
    require("nbdinfo");
    require("qemu-io");
    require("fio");
    let p = Pair::synced("protocol C;");
    let uri = p.a.nbd_uri("r0");
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
    p.a.adm_ok(&["secondary", "r0"]);
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
    for disk in [&p.disk_a, &p.disk_b] {
        let dump = drbdmeta_dump(disk);
        assert_eq!(
            la_size_sect(&dump) * 512,
            grown,
            "drbdmeta reads the new size from the moved meta-data of {}",
            disk.display()
        );
    }
    assert_eq!(
        sha256_prefix(&p.disk_a, grown),
        sha256_prefix(&p.disk_b, grown),
        "the grown data areas differ"
    );
    // Up again from the moved meta-data: same size, no resync needed.
    p.a.adm_ok(&["up", "r0"]);
    p.b.adm_ok(&["up", "r0"]);
    wait_line(
        &p.a,
        "cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate",
        30,
    );
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
}

#[test]
fn resize_grows_a_connected_pair_and_resyncs_the_new_area() {
    grow_pair(false);
}

#[test]
fn resize_with_assume_clean_skips_the_resync() {
    grow_pair(true);
}

#[test]
fn resize_refuses_a_shrink_and_a_disconnected_peer() {
    let p = Pair::synced("protocol C;");
    let out = p.a.adm_run(&["resize", "--size", "32M", "r0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("shrink"), "{}", stderr(&out));
    let out = p.a.adm_ok(&["resize", "r0"]);
    assert!(out.contains("nothing to do"), "{out}");
    p.a.adm_ok(&["disconnect", "r0"]);
    wait_line(&p.a, "cs:StandAlone", 10);
    grow_file(&p.disk_a);
    let out = p.a.adm_run(&["resize", "r0"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--assume-peer-has-space"),
        "{}",
        stderr(&out)
    );
    let out = p.a.adm_run(&["resize", "--size", "200M", "r0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("larger"), "{}", stderr(&out));
    p.a.adm_ok(&["secondary", "r0"]);
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
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
    assert_eq!(la_size_sect(&drbdmeta_dump(&s.disk)) * 512, after);
}
