//! The Pacemaker OCF agent `scripts/ocf/rdbd` (ocf:rdbd:rdbd) against a real standalone
//! rdbd resource: `ocf-tester` (resource-agents), then exit codes and master scores
//! through a recording `crm_master`.
//!
//! With a peer (scores with a known peer, promote refused while the peer is Primary,
//! notify with real peer transitions, ocf-tester with clone parameters): ha_ocf_pair.rs.

use std::process::Command;

use rdbd_tests::fixture::{scratch_dir, Standalone};
use rdbd_tests::ha::{ocf_agent_copy as agent, ocf_params, OcfAgent, Reap};
use rdbd_tests::tools::{require, stderr, stdout};

/// A standalone r0 with UpToDate data, down (as Pacemaker finds it before `start`).
fn uptodate_down() -> Standalone {
    let s = Standalone::up(64);
    s.node.adm_ok(&["secondary", "r0"]);
    s.node.adm_ok(&["down", "r0"]);
    s
}

#[test]
fn ocf_tester_passes_on_a_standalone_resource() {
    require("ocf-tester");
    require("xmllint");
    let s = uptodate_down();
    let _reap = Reap(&s.node, vec![]);
    let dir = scratch_dir();
    let agent = agent(dir.path());
    let mut cmd = Command::new("ocf-tester");
    cmd.arg("-n").arg("rdbd_r0");
    for (k, v) in ocf_params(&s.node) {
        cmd.arg("-o").arg(format!("{k}={v}"));
    }
    let out = cmd.arg(&agent).output().expect("run ocf-tester");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success() && text.contains("passed all tests"),
        "ocf-tester:\n{text}"
    );
    assert_eq!(
        s.node.adm_run(&["role", "r0"]).status.code(),
        Some(10),
        "left down by the last stop"
    );
}

#[test]
fn exit_codes_and_master_scores() {
    let s = uptodate_down();
    let _reap = Reap(&s.node, vec![]);
    let dir = scratch_dir();
    let a = OcfAgent::new(dir.path(), &s.node, "p_rdbd_r0");

    assert_eq!(a.run("validate-all"), 0);
    assert_eq!(a.run("monitor"), 7, "down: OCF_NOT_RUNNING");
    assert_eq!(a.run("start"), 0);
    assert_eq!(s.node.adm_ok(&["role", "r0"]).trim(), "Secondary/Unknown");
    assert_eq!(
        a.crm_calls(),
        vec!["-Q -l reboot -v 1000"],
        "UpToDate, Secondary, peer unknown"
    );
    assert_eq!(a.run("monitor"), 0, "Secondary: OCF_SUCCESS");
    a.crm_calls();
    assert_eq!(a.run("promote"), 0);
    assert_eq!(s.node.adm_ok(&["role", "r0"]).trim(), "Primary/Unknown");
    assert_eq!(
        a.crm_calls(),
        vec!["-Q -l reboot -v 10000"],
        "UpToDate and Primary"
    );
    assert_eq!(a.run("monitor"), 8, "Primary: OCF_RUNNING_MASTER");
    let (rc, text) = a.run_with(
        "notify",
        &[
            ("OCF_RESKEY_CRM_meta_notify_type", "post"),
            ("OCF_RESKEY_CRM_meta_notify_operation", "promote"),
        ],
    );
    assert_eq!(rc, 0);
    assert!(text.contains("notify post-promote"), "{text}");
    a.crm_calls();
    // stop demotes first, then takes the resource down and removes the score.
    assert_eq!(a.run("stop"), 0);
    assert_eq!(s.node.adm_run(&["role", "r0"]).status.code(), Some(10));
    assert_eq!(a.crm_calls(), vec!["-l reboot -D"]);
    assert_eq!(a.run("stop"), 0, "stop is idempotent");
    assert_eq!(
        a.run("demote"),
        7,
        "demote of a stopped resource: not running"
    );

    // Configuration errors.
    assert_eq!(
        a.run_with("validate-all", &[("OCF_RESKEY_drbd_resource", "nosuch")])
            .0,
        6
    );
    assert_eq!(
        a.run_with("validate-all", &[("OCF_RESKEY_CRM_meta_clone_max", "3")])
            .0,
        6
    );
    assert_eq!(
        a.run_with("validate-all", &[("OCF_RESKEY_CRM_meta_master_max", "2")])
            .0,
        6
    );
    assert_eq!(
        a.run_with(
            "validate-all",
            &[("OCF_RESKEY_adjust_master_score", "1 2 3")]
        )
        .0,
        6
    );
    assert_eq!(
        a.run_with(
            "validate-all",
            &[("OCF_RESKEY_rdbdadm", "/nonexistent/rdbdadm")]
        )
        .0,
        5
    );
    assert_eq!(
        a.run_with("start", &[("OCF_RESKEY_drbd_resource", "")]).0,
        6
    );
    // `resource` is an alias.
    assert_eq!(
        a.run_with(
            "validate-all",
            &[
                ("OCF_RESKEY_drbd_resource", ""),
                ("OCF_RESKEY_resource", "r0")
            ]
        )
        .0,
        0
    );
    assert_eq!(a.run("migrate_to"), 3, "unimplemented action");
    // Custom scores.
    a.crm_calls();
    assert_eq!(
        a.run_with("start", &[("OCF_RESKEY_adjust_master_score", "0 5 50 500")])
            .0,
        0
    );
    assert_eq!(a.crm_calls(), vec!["-Q -l reboot -v 50"]);
    assert_eq!(a.run("stop"), 0);
}

#[test]
fn inconsistent_data_gets_no_score_and_is_not_promoted() {
    let s = Standalone::configured(64);
    let _reap = Reap(&s.node, vec![]);
    s.node.adm_ok(&["create-md", "--force", "r0"]);
    let dir = scratch_dir();
    let a = OcfAgent::new(dir.path(), &s.node, "p_rdbd_r0");
    assert_eq!(a.run("start"), 0);
    assert_eq!(
        s.node.adm_ok(&["dstate", "r0"]).trim(),
        "Inconsistent/DUnknown"
    );
    assert_eq!(
        a.crm_calls(),
        vec!["-l reboot -D"],
        "Inconsistent: no master score"
    );
    let (rc, text) = a.run_with("promote", &[]);
    assert_eq!(rc, 1, "promote of Inconsistent data fails: {text}");
    assert!(text.contains("UpToDate"), "rdbd's reason is logged: {text}");
    assert_eq!(s.node.adm_ok(&["role", "r0"]).trim(), "Secondary/Unknown");
    assert_eq!(a.run("stop"), 0);
}

#[test]
fn metadata_is_valid_against_the_ocf_dtd() {
    require("xmllint");
    let dir = scratch_dir();
    let agent = agent(dir.path());
    let out = Command::new(&agent).arg("meta-data").output().unwrap();
    assert!(out.status.success());
    let xml = stdout(&out);
    for a in [
        "start",
        "stop",
        "monitor",
        "promote",
        "demote",
        "notify",
        "meta-data",
        "validate-all",
    ] {
        assert!(
            xml.contains(&format!("<action name=\"{a}\"")),
            "action {a} in meta-data"
        );
    }
    let mut lint = Command::new("xmllint")
        .args(["--noout", "--valid", "-"])
        .current_dir("/usr/share/resource-agents")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    lint.stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(out.status.success(), "xmllint: {}", stderr(&out));
}
