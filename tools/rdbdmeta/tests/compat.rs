//! rdbdmeta and rdbd-metadata against the real drbdmeta (drbd-utils 9.22) on plain files:
//! create-md byte equality, dump-md documents, restore-md both ways, get-gi/show-gi,
//! apply-al of AL transactions written by our ActivityLog, and bitmaps written by our code.

mod common;

use common::*;
use rdbd_metadata::consts::AL_EXTENT_SECT;
use rdbd_metadata::{
    ActivityLog, AlStripes, MdFlags, MdMagic, MetaDataDevice, MetaDiskKind, OpenOptions,
};

const MIB: u64 = 1 << 20;

/// Start of the region both tools write: the bitmap for internal, the whole slot otherwise.
fn md_region(file: &std::path::Path, kind: &str) -> Vec<u8> {
    let dump = ok(rdbdmeta(file, kind, &["dump-md"]), "rdbdmeta dump-md");
    let bm: u64 = dump_value(&dump, "bm_offset").parse().unwrap();
    let md: u64 = dump_value(&dump, "md_offset").parse().unwrap();
    let end = std::fs::metadata(file).unwrap().len();
    let from = bm.min(md);
    let to = if kind == "internal" {
        end
    } else {
        (from + 16 * MIB).min(end)
    };
    region(file, from, to)
}

#[test]
fn create_md_is_byte_identical_to_drbdmeta() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(u64, &str, &[&str], u64)] = &[
        (128 * MIB, "internal", &[], 80),
        (1024 * MIB, "internal", &[], 136),
        (10240 * MIB, "internal", &[], 712),
        (1000 * 1024 * MIB, "internal", &[], 64072),
        (
            256 * MIB,
            "internal",
            &["--al-stripes", "4", "--al-stripe-size-kB", "64"],
            16 + 8 + 4 * 16 * 8,
        ),
        (64 * MIB, "flex-external", &[], 131072),
        (
            64 * MIB,
            "flex-external",
            &["--al-stripes", "2", "--al-stripe-size-kB", "128"],
            131072,
        ),
        (3 * 128 * MIB, "2", &[], 262144),
    ];
    for (i, (bytes, kind, al, md_size)) in cases.iter().enumerate() {
        let theirs = scratch(dir.path(), &format!("d{i}.img"), *bytes);
        let ours = scratch(dir.path(), &format!("r{i}.img"), *bytes);
        let mut cmd = vec!["create-md"];
        cmd.extend_from_slice(al);
        ok(drbdmeta(&theirs, kind, &cmd), "drbdmeta create-md");
        ok(rdbdmeta(&ours, kind, &cmd), "rdbdmeta create-md");
        let d = ok(
            drbdmeta(&ours, kind, &["dump-md"]),
            "drbdmeta dump-md of rdbdmeta's meta-data",
        );
        assert_eq!(
            dump_value(&d, "md_size_sect"),
            md_size.to_string(),
            "case {i}"
        );
        let r = ok(
            rdbdmeta(&theirs, kind, &["dump-md"]),
            "rdbdmeta dump-md of drbdmeta's meta-data",
        );
        assert_eq!(
            normalize_dump(&r),
            normalize_dump(&d),
            "case {i}: dump documents differ"
        );
        assert!(
            md_region(&theirs, kind) == md_region(&ours, kind),
            "case {i}: meta-data bytes differ"
        );
        assert_eq!(
            ok(drbdmeta(&ours, kind, &["get-gi"]), "get-gi"),
            ok(rdbdmeta(&theirs, kind, &["get-gi"]), "get-gi")
        );
    }
}

#[test]
fn get_gi_show_gi_dstate_agree_for_flag_combinations() {
    let dir = tempfile::tempdir().unwrap();
    let f = scratch(dir.path(), "gi.img", 128 * MIB);
    ok(drbdmeta(&f, "internal", &["create-md"]), "create-md");
    let gis = [
        "0123456789ABCDEF:FEDCBA9876543210:1111111111111111:2222222222222222:1:1:0:0:0:0:0",
        "0123456789ABCDEF:0:0:0:1:0:1:1:1:1:1",
        "5:6:7:8:1:1:0:1:0:1:0",
        "::::0:0:1:0:1:0:1",
    ];
    for (i, gi) in gis.iter().enumerate() {
        // Alternate which tool writes the GI.
        if i % 2 == 0 {
            ok(drbdmeta(&f, "internal", &["set-gi", gi]), "drbdmeta set-gi");
        } else {
            ok(rdbdmeta(&f, "internal", &["set-gi", gi]), "rdbdmeta set-gi");
        }
        for cmd in ["get-gi", "show-gi", "dstate"] {
            assert_eq!(
                ok(rdbdmeta(&f, "internal", &[cmd]), cmd),
                ok(drbdmeta(&f, "internal", &[cmd]), cmd),
                "{cmd} after set-gi {gi}"
            );
        }
    }
    ok(rdbdmeta(&f, "internal", &["invalidate"]), "invalidate");
    assert!(ok(drbdmeta(&f, "internal", &["show-gi"]), "show-gi").contains("need full sync"));
}

const DUMP: &str = "version \"v08\";\nuuid {\n    0x1234567890ABCDEF; 0x0000000000000002; 0x0000000000000003; 0x0000000000000004;\n    flags 0x00000091;\n}\nla-size-sect 262000;\nbm-byte-per-bit 4096;\ndevice-uuid 0x1111222233334444;\nla-peer-max-bio-size 1048576;\nal-stripes 1;\nal-stripe-size-4k 8;\nbm {\n   0x00000000000000FF; 0xFFFFFFFFFFFFFFFF; 12 times 0xFFFFFFFFFFFFFFFF; 0x8000000000000001;\n   300 times 0x0000000000000000; 0x0F0F0F0F0F0F0F0F; 3 times 0xAAAAAAAAAAAAAAAA;\n}\n";

#[test]
fn restore_md_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.txt");
    std::fs::write(&dump, DUMP).unwrap();
    let dump_s = dump.to_str().unwrap();
    let theirs = scratch(dir.path(), "t.img", 128 * MIB);
    let ours = scratch(dir.path(), "o.img", 128 * MIB);
    ok(drbdmeta(&theirs, "internal", &["create-md"]), "create-md");
    ok(drbdmeta(&ours, "internal", &["create-md"]), "create-md");
    ok(
        drbdmeta(&theirs, "internal", &["restore-md", dump_s]),
        "drbdmeta restore-md",
    );
    ok(
        rdbdmeta(&ours, "internal", &["restore-md", dump_s]),
        "rdbdmeta restore-md",
    );
    assert!(
        md_region(&theirs, "internal") == md_region(&ours, "internal"),
        "restored meta-data differs"
    );
    let d = ok(
        drbdmeta(&ours, "internal", &["dump-md"]),
        "drbdmeta dump-md",
    );
    let r = ok(
        rdbdmeta(&theirs, "internal", &["dump-md"]),
        "rdbdmeta dump-md",
    );
    assert_eq!(normalize_dump(&r), normalize_dump(&d));
    assert_eq!(
        dump_value(&r, "bits-set"),
        (8 + 13 * 64 + 2 + 32 + 3 * 32).to_string()
    );
    assert!(
        r.contains("    flags 0x00000091;"),
        "rdbdmeta shows the real flags"
    );
    // And back: our dump (with real flags) restored by drbdmeta keeps the flags.
    let ours_dump = dir.path().join("ours.txt");
    std::fs::write(&ours_dump, &r).unwrap();
    ok(
        rdbdmeta(
            &ours,
            "internal",
            &["verify-dump", ours_dump.to_str().unwrap()],
        ),
        "verify-dump",
    );
    let back = scratch(dir.path(), "b.img", 128 * MIB);
    ok(
        drbdmeta(
            &back,
            "internal",
            &["restore-md", ours_dump.to_str().unwrap()],
        ),
        "drbdmeta restore-md ours",
    );
    assert_eq!(
        ok(drbdmeta(&back, "internal", &["get-gi"]), "get-gi"),
        "1234567890ABCDEF:0000000000000002:0000000000000003:0000000000000004:1:1:0:0:0:0:0\n"
    );
    // Same bitmap page (restore-md leaves the AL alone, and this file had none).
    assert!(md_region(&back, "internal")[..4096] == md_region(&theirs, "internal")[..4096]);
}

/// Simulates a crashed primary with our ActivityLog; drbdmeta and rdbdmeta apply-al agree.
fn crashed_primary(al: AlStripes, al_extents: u16, writes: u64, dir: &std::path::Path, tag: &str) {
    let create: Vec<String> = vec![
        "create-md".into(),
        "--al-stripes".into(),
        al.stripes().to_string(),
        "--al-stripe-size-kB".into(),
        (al.stripe_size_4k() * 4).to_string(),
    ];
    let create: Vec<&str> = create.iter().map(|s| s.as_str()).collect();
    let a = scratch(dir, &format!("{tag}-a.img"), 1024 * MIB);
    ok(drbdmeta(&a, "internal", &create), "create-md");
    let mut md = MetaDataDevice::open(&a, &MetaDiskKind::Internal, OpenOptions::default()).unwrap();
    let usable = md.usable_data_sectors();
    md.update_superblock(|sb| {
        sb.la_size_sect = usable;
        sb.flags.set(
            MdFlags::PRIMARY_IND | MdFlags::CONSISTENT | MdFlags::WAS_UP_TO_DATE,
            true,
        );
    })
    .unwrap();
    md.mark_unclean().unwrap();
    let mut bm = md.read_data_bitmap().unwrap();
    bm.set_range(5, 40).unwrap();
    md.write_bitmap_pages(&mut bm).unwrap();
    let mut log = ActivityLog::new(al_extents, al, 0).unwrap();
    let mut in_flight = Vec::new();
    let extents = usable / AL_EXTENT_SECT;
    for i in 0..writes {
        let e = (i * 7919) % extents;
        let sector = e * AL_EXTENT_SECT + (i % 5) * 8;
        log.begin_write(sector, 16).unwrap();
        if let Some(w) = log.activate() {
            md.write_al(&w).unwrap();
        }
        if i % 9 == 0 {
            in_flight.push(e);
        } else {
            log.end_write(sector, 16).unwrap();
        }
    }
    assert_eq!(md.superblock().magic, MdMagic::Unclean);
    drop(md);
    let b = dir.join(format!("{tag}-b.img"));
    std::fs::copy(&a, &b).unwrap();
    let d = drbdmeta(&a, "internal", &["apply-al"]);
    assert_eq!(d.code, 0, "drbdmeta apply-al: {}", d.stderr);
    assert!(d.stderr.contains("Marked additional"), "{}", d.stderr);
    let r = rdbdmeta(&b, "internal", &["apply-al"]);
    assert_eq!(r.code, 0, "rdbdmeta apply-al: {}", r.stderr);
    assert!(
        md_region(&a, "internal") == md_region(&b, "internal"),
        "{tag}: apply-al results differ"
    );
    let marked = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("Marked"))
            .map(str::to_string)
    };
    assert_eq!(marked(&r.stderr), marked(&d.stderr));
    let md = MetaDataDevice::open(&b, &MetaDiskKind::Internal, OpenOptions::default()).unwrap();
    assert!(!md.superblock().is_unclean());
    let bm = md.read_data_bitmap().unwrap();
    for e in in_flight {
        let first = u64::from(e as u32) * 1024;
        assert!(
            (first..first + 1024).all(|bit| bm.test(bit)),
            "{tag}: in-flight extent {e} not marked"
        );
    }
    let dd = ok(drbdmeta(&a, "internal", &["dump-md"]), "dump-md");
    let rd = ok(rdbdmeta(&b, "internal", &["dump-md"]), "dump-md");
    assert_eq!(normalize_dump(&dd), normalize_dump(&rd));
}

#[test]
fn apply_al_matches_drbdmeta_default_ring() {
    let dir = tempfile::tempdir().unwrap();
    crashed_primary(AlStripes::default(), 1237, 30, dir.path(), "default");
}

#[test]
fn apply_al_matches_drbdmeta_striped_ring_with_wrap_and_eviction() {
    let dir = tempfile::tempdir().unwrap();
    crashed_primary(
        AlStripes::new(3, 4).unwrap(),
        67,
        200,
        dir.path(),
        "striped",
    );
}

#[test]
fn bitmap_written_by_us_dumps_identically() {
    let dir = tempfile::tempdir().unwrap();
    let f = scratch(dir.path(), "bm.img", 512 * MIB);
    ok(rdbdmeta(&f, "internal", &["create-md"]), "create-md");
    let mut md = MetaDataDevice::open(&f, &MetaDiskKind::Internal, OpenOptions::default()).unwrap();
    let usable = md.usable_data_sectors();
    md.update_superblock(|sb| sb.la_size_sect = usable).unwrap();
    let mut bm = md.read_data_bitmap().unwrap();
    bm.set_range(0, 3).unwrap();
    bm.set_range(1000, 70_000).unwrap();
    bm.set(bm.bits() - 1).unwrap();
    bm.set_out_of_sync_sectors(123_456, 9000).unwrap();
    let expected = bm.count();
    md.write_bitmap_pages(&mut bm).unwrap();
    let d = ok(drbdmeta(&f, "internal", &["dump-md"]), "drbdmeta dump-md");
    let r = ok(rdbdmeta(&f, "internal", &["dump-md"]), "rdbdmeta dump-md");
    assert_eq!(dump_value(&d, "bits-set"), expected.to_string());
    let bm_part = |s: &str| s[s.find("bm {").unwrap()..].to_string();
    assert_eq!(bm_part(&r), bm_part(&d));
}

#[test]
fn external_and_indexed_dumps_agree() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, bytes) in [
        ("flex-external", 96 * MIB),
        ("0", 128 * MIB),
        ("1", 256 * MIB),
    ] {
        let f = scratch(dir.path(), &format!("x{kind}.img"), bytes);
        ok(drbdmeta(&f, kind, &["create-md"]), "create-md");
        ok(
            rdbdmeta(&f, kind, &["set-gi", "AAAA:BBBB:CCCC:DDDD:1:1"]),
            "set-gi",
        );
        let d = ok(drbdmeta(&f, kind, &["dump-md"]), "dump-md");
        let r = ok(rdbdmeta(&f, kind, &["dump-md"]), "dump-md");
        assert_eq!(normalize_dump(&r), normalize_dump(&d), "{kind}");
        assert_eq!(
            ok(drbdmeta(&f, kind, &["get-gi"]), "gi"),
            ok(rdbdmeta(&f, kind, &["get-gi"]), "gi")
        );
    }
}
