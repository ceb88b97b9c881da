//! Corrupt, truncated and foreign meta-data: one clear line, non-zero exit, nothing modified;
//! create-md refuses to overwrite file systems and meta-data unless confirmed.

mod common;

use common::*;

const MIB: u64 = 1 << 20;

fn digest(p: &std::path::Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn created(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let f = scratch(dir, name, 8 * MIB);
    ok(rdbdmeta(&f, "internal", &["create-md"]), "create-md");
    f
}

fn poke(p: &std::path::Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .write_all_at(bytes, offset)
        .unwrap();
}

const SB: u64 = 8 * MIB - 4096;

#[test]
fn corrupt_superblocks_fail_cleanly_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, u64, Vec<u8>, &str)> = vec![
        (
            "magic",
            SB + 0x3C,
            vec![0xde, 0xad, 0xbe, 0xef],
            "bad magic 0xdeadbeef at offset 8384512 (not DRBD v08 meta-data)",
        ),
        (
            "v09",
            SB + 0x3C,
            0x8374_026du32.to_be_bytes().to_vec(),
            "v09",
        ),
        (
            "bpb",
            SB + 0x50,
            512u32.to_be_bytes().to_vec(),
            "bm_bytes_per_bit 512",
        ),
        (
            "bmoff",
            SB + 0x4C,
            (-9999i32).to_be_bytes().to_vec(),
            "bm_offset is -9999",
        ),
        (
            "mdsize",
            SB + 0x40,
            72u32.to_be_bytes().to_vec(),
            "md_size_sect",
        ),
        (
            "stripes",
            SB + 0x58,
            9000u32.to_be_bytes().to_vec(),
            "striping",
        ),
    ];
    for (name, off, bytes, expect) in cases {
        let f = created(dir.path(), &format!("{name}.img"));
        poke(&f, off, &bytes);
        let before = digest(&f);
        for cmd in [
            &["dump-md"][..],
            &["apply-al"],
            &["outdate"],
            &["invalidate"],
            &["set-gi", "1:2:3:4"],
            &["get-gi"],
        ] {
            let r = rdbdmeta(&f, "internal", cmd);
            assert_ne!(r.code, 0, "{name} {cmd:?} must fail");
            let lines: Vec<&str> = r.stderr.lines().collect();
            assert_eq!(
                lines.len(),
                1,
                "{name} {cmd:?}: one line expected, got {:?}",
                r.stderr
            );
            assert!(
                lines[0].contains(expect),
                "{name} {cmd:?}: {:?} lacks {expect:?}",
                lines[0]
            );
        }
        assert!(digest(&f) == before, "{name}: file modified");
        // drbdmeta agrees that this is not valid meta-data.
        assert_ne!(
            drbdmeta(&f, "internal", &["get-gi"]).code,
            0,
            "{name}: drbdmeta accepted it"
        );
    }
}

#[test]
fn truncated_device_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let f = scratch(dir.path(), "tiny.img", 1000);
    let r = rdbdmeta(&f, "internal", &["dump-md"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("cannot hold a 4 KiB superblock"),
        "{}",
        r.stderr
    );
    let r = rdbdmeta(&f, "internal", &["create-md"]);
    assert_ne!(r.code, 0);
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 1000);
    let r = rdbdmeta(&dir.path().join("missing.img"), "internal", &["get-gi"]);
    assert_eq!(r.code, 20, "{}", r.stderr);
    let g = created(dir.path(), "g.img");
    assert_eq!(rdbdmeta(&g, "internal", &["frobnicate"]).code, 20);
    assert_eq!(rdbdmeta(&g, "v9x", &["get-gi"]).code, 20);
    assert_eq!(
        rdbdmeta(
            &g,
            "internal",
            &[
                "create-md",
                "--al-stripes",
                "1",
                "--al-stripe-size-kB",
                "16"
            ]
        )
        .code,
        10
    );
    assert_eq!(
        rdbdmeta(&g, "internal", &["dump-md", "--al-stripes", "2"]).code,
        10
    );
}

#[test]
fn corrupt_dump_files_are_rejected_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let f = created(dir.path(), "d.img");
    let before = digest(&f);
    let bad = [
        ("version \"v09\";", "dump is 'v09'"),
        ("version \"v08\";\nuuid { 0x04; }", "line 2"),
        (
            "version \"v08\"; uuid { 0x0000000000000004; }",
            "expected 16-digit hex number",
        ),
        ("", "expected version"),
    ];
    for (i, (text, expect)) in bad.iter().enumerate() {
        let p = dir.path().join(format!("bad{i}.txt"));
        std::fs::write(&p, text).unwrap();
        for cmd in ["restore-md", "verify-dump"] {
            let r = rdbdmeta(&f, "internal", &[cmd, p.to_str().unwrap()]);
            assert_ne!(r.code, 0, "{cmd} accepted {text:?}");
            assert!(r.stderr.contains(expect), "{cmd} {text:?}: {}", r.stderr);
        }
    }
    assert!(digest(&f) == before, "a rejected dump modified the device");
}

#[test]
fn unclean_dump_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let f = created(dir.path(), "u.img");
    ok(
        rdbdmeta(&f, "internal", &["set-gi", "::::::1"]),
        "set-gi primary",
    );
    poke(&f, SB + 0x3C, &0x8374_026cu32.to_be_bytes());
    let r = rdbdmeta_in(&[], &f, "internal", &["dump-md"], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unclean"), "{}", r.stderr);
    let r = rdbdmeta(&f, "internal", &["dump-md"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("This_is_an_unclean_meta_data_dump"));
    ok(rdbdmeta(&f, "internal", &["apply-al"]), "apply-al");
    ok(
        rdbdmeta_in(&[], &f, "internal", &["dump-md"], ""),
        "dump-md after apply-al",
    );
}

#[test]
fn create_md_refuses_to_overwrite_without_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    // ext4 superblock magic at 1080.
    let f = scratch(dir.path(), "ext.img", 8 * MIB);
    poke(&f, 1080, &[0x53, 0xEF]);
    let before = digest(&f);
    let r = rdbdmeta_in(&[], &f, "internal", &["create-md"], "no\n");
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("Found ext2/ext3/ext4 filesystem"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("Do you want to proceed?\n[need to type 'yes' to confirm]"),
        "{}",
        r.stderr
    );
    assert!(digest(&f) == before, "refused create-md modified the file");
    let r = rdbdmeta_in(&[], &f, "internal", &["create-md"], "yes\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Now existing v08 meta-data: refused, then forced.
    let before = digest(&f);
    let r = rdbdmeta_in(&[], &f, "internal", &["create-md"], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("already in place"), "{}", r.stderr);
    assert!(digest(&f) == before);
    ok(rdbdmeta(&f, "internal", &["create-md"]), "forced create-md");
    // XFS on a flex-external meta device.
    let x = scratch(dir.path(), "xfs.img", 8 * MIB);
    poke(&x, 0, b"XFSB");
    assert_eq!(
        rdbdmeta_in(&[], &x, "flex-external", &["create-md"], "").code,
        1
    );
    // v09 meta-data written by drbdmeta.
    let v9 = scratch(dir.path(), "v9.img", 8 * MIB);
    let out = std::process::Command::new("drbdmeta")
        .args(["--force", "-", "v09"])
        .arg(&v9)
        .args(["internal", "create-md", "1"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("drbdmeta must be installed");
    let _ = std::fs::remove_file("/var/lib/drbd/drbd-minor--1.lkbd");
    assert!(out.status.success());
    let r = rdbdmeta_in(&[], &v9, "internal", &["create-md"], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("v09"), "{}", r.stderr);
    let r = rdbdmeta(&v9, "internal", &["get-gi"]);
    assert!(r.stderr.contains("v09 meta-data"), "{}", r.stderr);
}

#[test]
fn wipe_md_then_nothing_valid() {
    let dir = tempfile::tempdir().unwrap();
    let f = created(dir.path(), "w.img");
    ok(rdbdmeta(&f, "internal", &["wipe-md"]), "wipe-md");
    assert_ne!(rdbdmeta(&f, "internal", &["get-gi"]).code, 0);
    assert_ne!(drbdmeta(&f, "internal", &["get-gi"]).code, 0);
    ok(rdbdmeta(&f, "internal", &["wipe-md"]), "wipe-md of nothing");
    let c = created(dir.path(), "c.img");
    ok(rdbdmeta(&c, "internal", &["check-resize"]), "check-resize");
    assert_ne!(rdbdmeta(&f, "internal", &["check-resize"]).code, 0);
}
