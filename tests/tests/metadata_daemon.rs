//! The daemon's meta-data against the real drbdmeta: the activity log after a
//! crash (SIGKILL of a Primary), the bitmap of writes made while not connected, and
//! the clean/unclean superblock.

use std::path::{Path, PathBuf};
use std::process::Command;

use rdbd_tests::bins::bin;
use rdbd_tests::fixture::Standalone;
use rdbd_tests::tools::{require, run, run_ok, stderr, stdout};

const EXTENT_BYTES: u64 = 4 << 20;

/// Writes 4 KiB blocks at `offsets` through NBD with python3-libnbd, with a flush at the end.
fn write_blocks(uri: &str, offsets: &[u64]) {
    let list = offsets
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let script = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nfor o in sys.argv[2].split(','):\n    h.pwrite(b'\\x5a' * 4096, int(o))\nh.flush()\nh.shutdown()\n";
    run_ok(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(uri)
            .arg(list),
    );
}

/// `drbdmeta --force - v08 FILE internal CMD`.
fn drbdmeta(file: &Path, cmd: &str) -> std::process::Output {
    let out = run(Command::new("drbdmeta")
        .arg("--force")
        .arg("-")
        .arg("v08")
        .arg(file)
        .arg("internal")
        .arg(cmd));
    let _ = std::fs::remove_file("/var/lib/drbd/drbd-minor--1.lkbd");
    out
}

fn rdbdmeta(file: &Path, cmd: &str) -> std::process::Output {
    run(Command::new(bin("rdbdmeta"))
        .arg("--force")
        .arg("-")
        .arg("v08")
        .arg(file)
        .arg("internal")
        .arg(cmd))
}

/// A `# name value` comment of drbdmeta's dump-md.
fn dump_comment(dump: &str, name: &str) -> u64 {
    dump.lines()
        .find_map(|l| l.strip_prefix(&format!("# {name} ")))
        .and_then(|v| v.trim_end_matches(';').trim().parse().ok())
        .unwrap_or_else(|| panic!("no '# {name}' in dump:\n{dump}"))
}

/// The bitmap area of an internal-meta-data file, as bytes, and its bit count.
fn bitmap_bytes(file: &Path) -> Vec<u8> {
    let dump = stdout(&drbdmeta(file, "dump-md"));
    let bm_offset = dump_comment(&dump, "bm_offset");
    let al_offset = dump_comment(&dump, "al_offset");
    let data = std::fs::read(file).unwrap();
    data[bm_offset as usize..al_offset as usize].to_vec()
}

fn bit_set(bitmap: &[u8], block: u64) -> bool {
    bitmap[(block / 8) as usize] & (1 << (block % 8)) != 0
}

fn copy(from: &Path, to: PathBuf) -> PathBuf {
    std::fs::copy(from, &to).unwrap();
    to
}

#[test]
fn a_crashed_primary_leaves_an_activity_log_both_tools_apply_identically() {
    require("drbdmeta");
    let s = Standalone::up(256);
    // Blocks in 12 extents, some far apart.
    let offsets: Vec<u64> = (0..12u64)
        .map(|i| i * 5 * EXTENT_BYTES + (i % 3) * 8192)
        .collect();
    write_blocks(&s.uri(), &offsets);
    // The live superblock is unclean and says Primary.
    let gi = stdout(&drbdmeta(
        &copy(&s.disk, s.dir.path().join("live.img")),
        "get-gi",
    ));
    assert!(
        !gi.is_empty(),
        "drbdmeta get-gi on the attached meta-data printed nothing"
    );

    s.node.crash();
    let a = copy(&s.disk, s.dir.path().join("a.img"));
    let b = copy(&s.disk, s.dir.path().join("b.img"));
    let out = drbdmeta(&a, "apply-al");
    assert!(
        out.status.success(),
        "drbdmeta apply-al: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = rdbdmeta(&b, "apply-al");
    assert!(
        out.status.success(),
        "rdbdmeta apply-al: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let (bm_a, bm_b) = (bitmap_bytes(&a), bitmap_bytes(&b));
    assert_eq!(
        bm_a, bm_b,
        "drbdmeta and rdbdmeta apply-al left different bitmaps"
    );
    for &o in &offsets {
        assert!(
            bit_set(&bm_a, o / 4096),
            "written block at {o} not marked out of sync after apply-al"
        );
    }
    // Whole hot extents are marked (1024 bits each), nothing far away.
    assert!(bit_set(&bm_a, offsets[3] / 4096 + 1000));
    assert!(
        !bit_set(&bm_a, offsets[1] / 4096 + 2 * 1024 + 5),
        "an extent never written is marked"
    );

    // The daemon itself applies the AL on up and reports the same out-of-sync amount.
    s.node.adm_ok(&["up", "r0"]);
    let oos_kib = bm_a.iter().map(|b| u64::from(b.count_ones())).sum::<u64>() * 4;
    let text = s.node.wait_status(
        "status after restart",
        std::time::Duration::from_secs(5),
        |t| t.contains("oos:"),
    );
    assert!(
        text.contains(&format!("oos:{oos_kib}\n")),
        "expected oos:{oos_kib} after restart, status:\n{text}"
    );
}

#[test]
fn writes_while_not_connected_are_in_the_bitmap_after_a_clean_down() {
    require("drbdmeta");
    let s = Standalone::up(128);
    let offsets: Vec<u64> = vec![0, 4096, 3 * EXTENT_BYTES + 40960, 20 * EXTENT_BYTES];
    write_blocks(&s.uri(), &offsets);
    s.node.adm_ok(&["secondary", "r0"]);
    s.node.adm_ok(&["down", "r0"]);
    // Clean: drbdmeta reads it without apply-al, and both tools agree on the bits.
    let ours = stdout(&run_ok(
        Command::new(bin("rdbdmeta"))
            .args(["--force", "-", "v08"])
            .arg(&s.disk)
            .args(["internal", "dump-md"]),
    ));
    let theirs = drbdmeta(&s.disk, "dump-md");
    assert!(
        theirs.status.success(),
        "drbdmeta dump-md after a clean down: {}",
        stderr(&theirs)
    );
    let theirs = stdout(&theirs);
    assert_eq!(dump_comment(&theirs, "bits-set"), 4, "{theirs}");
    let bm_section = |d: &str| d[d.find("bm {").expect("bm section")..].to_string();
    assert_eq!(
        bm_section(&ours),
        bm_section(&theirs),
        "bitmap sections differ"
    );
    let bitmap = bitmap_bytes(&s.disk);
    for o in offsets {
        assert!(bit_set(&bitmap, o / 4096), "block at {o} not in the bitmap");
    }
    // Flags: consistent, was-up-to-date, not primary (drbdmeta get-gi prints them).
    let gi = stdout(&drbdmeta(&s.disk, "get-gi"));
    let fields: Vec<&str> = gi.trim().split(':').collect();
    assert_eq!(fields.len(), 11, "get-gi: {gi}");
    assert_eq!(
        &fields[4..8],
        &["1", "1", "0", "0"],
        "consistent, was up to date, not primary, not connected in {gi}"
    );
}
