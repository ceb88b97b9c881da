//! outdate, invalidate and new-current-uuid on a standalone resource, up and down,
//! checked through the daemon's states and the meta-data on disk.

use std::time::Duration;

use rdbd_control::status::parse;
use rdbd_tests::fixture::Standalone;
use rdbd_tests::tools::stderr;

fn oos_kib(s: &Standalone) -> u64 {
    let text = s.node.status_file();
    let (_, minors) = parse::parse(&text).expect("status file");
    minors[0].counter("oos").expect("oos")
}

/// The fields of `rdbdadm get-gi`: current, bitmap, history... then the flag bits.
fn gi(s: &Standalone) -> Vec<String> {
    s.node
        .adm_ok(&["get-gi", "r0"])
        .trim()
        .split(':')
        .map(String::from)
        .collect()
}

#[test]
fn outdate_refuses_a_primary_and_survives_down_and_up() {
    let s = Standalone::up(16);
    let out = s.node.adm_run(&["outdate", "r0"]);
    // DRBD: a Primary without a connection and without UpToDate data breaks
    // SS_NO_UP_TO_DATE_DISK (-2); drbdsetup exits 17 for it.
    assert_eq!(out.status.code(), Some(17), "{}", stderr(&out));
    assert!(stderr(&out).contains("Primary"), "{}", stderr(&out));
    s.node.adm_ok(&["secondary", "r0"]);
    s.node.adm_ok(&["outdate", "r0"]);
    assert_eq!(s.node.adm_ok(&["dstate", "r0"]).trim(), "Outdated/DUnknown");
    let out = s.node.adm_run(&["primary", "r0"]);
    assert_eq!(
        out.status.code(),
        Some(17),
        "an Outdated disk must not be promoted without --force (drbdsetup: (-2), exit 17)"
    );
    s.node.adm_ok(&["down", "r0"]);
    // Down: the meta-data says Outdated (consistent, not was-up-to-date).
    assert_eq!(s.node.adm_ok(&["dstate", "r0"]).trim(), "Outdated");
    assert_eq!(&gi(&s)[4..6], &["1", "0"]);
    s.node.adm_ok(&["up", "r0"]);
    assert_eq!(s.node.adm_ok(&["dstate", "r0"]).trim(), "Outdated/DUnknown");
}

#[test]
fn invalidate_marks_everything_out_of_sync_up_or_down() {
    let s = Standalone::up(16);
    let size_kib = s.node_size_bytes() / 1024;
    s.node.adm_ok(&["secondary", "r0"]);
    s.node.adm_ok(&["invalidate", "r0"]);
    assert_eq!(
        s.node.adm_ok(&["dstate", "r0"]).trim(),
        "Inconsistent/DUnknown"
    );
    assert_eq!(
        oos_kib(&s),
        size_kib.div_ceil(4) * 4,
        "invalidate must mark the whole device"
    );
    s.node.adm_ok(&["down", "r0"]);
    assert_eq!(s.node.adm_ok(&["dstate", "r0"]).trim(), "Inconsistent");

    // Down: rdbdmeta does it on the disk; a good disk becomes Inconsistent.
    s.node.adm_ok(&["up", "r0"]);
    s.node.adm_ok(&["primary", "--force", "r0"]);
    s.node.adm_ok(&["secondary", "r0"]);
    s.node.adm_ok(&["down", "r0"]);
    // drbdmeta says "Consistent" for consistent, was-up-to-date meta-data.
    assert_eq!(s.node.adm_ok(&["dstate", "r0"]).trim(), "Consistent");
    s.node.adm_ok(&["invalidate", "r0"]);
    assert_eq!(s.node.adm_ok(&["dstate", "r0"]).trim(), "Inconsistent");
}

#[test]
fn new_current_uuid_clear_bitmap_forgets_out_of_sync_blocks() {
    let s = Standalone::up(16);
    let data = s.dir.path().join("data.bin");
    std::fs::write(&data, vec![3u8; 1 << 20]).unwrap();
    rdbd_tests::tools::run_ok(
        std::process::Command::new("nbdcopy")
            .arg(&data)
            .arg(s.uri()),
    );
    s.node
        .wait_status("writes in the bitmap", Duration::from_secs(3), |t| {
            !t.contains("oos:0\n")
        });
    s.node.adm_ok(&["new-current-uuid", "--clear-bitmap", "r0"]);
    s.node.adm_ok(&["secondary", "r0"]);
    let text = s
        .node
        .wait_status("oos:0", Duration::from_secs(3), |t| t.contains("oos:0\n"));
    assert!(text.contains("oos:0"), "{text}");
    s.node.adm_ok(&["down", "r0"]);
    let g = gi(&s);
    assert_eq!(
        g[1], "0000000000000000",
        "bitmap UUID must be cleared: {g:?}"
    );
    assert_ne!(g[0], "0000000000000004", "current UUID must be new: {g:?}");
    let dump = s.node.adm_ok(&["dump-md", "r0"]);
    assert!(dump.contains("# bits-set 0;"), "{dump}");
}
