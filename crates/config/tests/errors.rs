//! Bad configurations: each error names file:line:column and what was wrong.

mod common;

use std::path::Path;

use common::fixture;
use rdbd_config::{load, parse_drbd_conf, ConfigError};

const HOSTS: &str = "  on alice { device /dev/drbd0; disk /dev/sdb1; address 10.0.0.1:7789; meta-disk internal; }\n  on bob { device /dev/drbd0; disk /dev/sdb1; address 10.0.0.2:7789; meta-disk internal; }\n";

fn error_of(text: &str) -> String {
    parse_drbd_conf(text, Path::new("/etc/drbd.d/r0.res"))
        .expect_err("config must be rejected")
        .to_string()
}

fn assert_error(text: &str, want_prefix: &str) {
    let e = error_of(text);
    assert!(
        e.starts_with(want_prefix),
        "got:  {e}\nwant: {want_prefix}..."
    );
}

#[test]
fn unknown_option_names_option_section_and_position() {
    assert_error(
        &format!("resource r0 {{\n  net {{\n    foo 1;\n  }}\n{HOSTS}}}\n"),
        "/etc/drbd.d/r0.res:3:5: unknown option 'foo' in net section",
    );
    let e = error_of(&format!(
        "resource r0 {{\n  disk {{ protocol C; }}\n{HOSTS}}}\n"
    ));
    assert!(e.starts_with("/etc/drbd.d/r0.res:2:10: unknown option 'protocol' in disk section (it belongs in the net section)"), "{e}");
    assert_error(
        &format!("resource r0 {{\n  syncer {{ resync-rate 10M; }}\n{HOSTS}}}\n"),
        "/etc/drbd.d/r0.res:2:12: unknown option 'resync-rate' in syncer section",
    );
    assert_error(
        "global { foo; }\n",
        "/etc/drbd.d/r0.res:1:10: unknown option 'foo' in global section",
    );
}

#[test]
fn missing_semicolon() {
    assert_error(
        &format!(
            "resource r0 {{\n  net {{\n    max-buffers 8000\n    ko-count 4;\n  }}\n{HOSTS}}}\n"
        ),
        "/etc/drbd.d/r0.res:4:5: expected ';' after option value of max-buffers, found 'ko-count'",
    );
    assert_error(
        "resource r0 {\n  on alice { device /dev/drbd0 disk /dev/sdb1; }\n}\n",
        "/etc/drbd.d/r0.res:2:32: expected 'minor' or ';' after the device name, found 'disk'",
    );
}

#[test]
fn unterminated_brace_and_string() {
    assert_error(
        "resource r0 {\n  net {\n    protocol C;\n",
        "/etc/drbd.d/r0.res:2:7: unterminated block: '{' of net section is never closed",
    );
    assert_error(
        &format!("resource r0 {{\n{HOSTS}"),
        "/etc/drbd.d/r0.res:1:13: unterminated block: '{' of resource r0 is never closed",
    );
    assert_error(
        "resource r0 {\n  net { shared-secret \"abc;\n  }\n}\n",
        "/etc/drbd.d/r0.res:2:23: unterminated string",
    );
}

#[test]
fn bad_size_values() {
    assert_error(
        &format!("resource r0 {{\n  disk {{ resync-rate 12x; }}\n{HOSTS}}}\n"),
        "/etc/drbd.d/r0.res:2:22: invalid value '12x' for resync-rate: unknown unit 'x'",
    );
    assert_error(
        &format!("resource r0 {{\n  syncer {{ rate 9999999999; }}\n{HOSTS}}}\n"),
        "/etc/drbd.d/r0.res:2:17: invalid value '9999999999' for resync-rate: 9999999999k is out of range [1..4194304]k",
    );
    assert_error(
        &format!("resource r0 {{\n  net {{ sndbuf-size 20M; }}\n{HOSTS}}}\n"),
        "/etc/drbd.d/r0.res:2:21: invalid value '20M' for sndbuf-size: 20971520 is out of range [0..10485760]",
    );
    assert_error(
        &format!("resource r0 {{\n  net {{ after-sb-1pri discard-everything; }}\n{HOSTS}}}\n"),
        "/etc/drbd.d/r0.res:2:23: invalid value 'discard-everything' for after-sb-1pri: expected one of disconnect,",
    );
    assert_error(
        &format!("resource r0 {{\n  net {{ allow-two-primaries maybe; }}\n{HOSTS}}}\n"),
        "/etc/drbd.d/r0.res:2:29: invalid value 'maybe' for allow-two-primaries: expected yes or no",
    );
}

#[test]
fn unknown_host_and_resource() {
    let c = parse_drbd_conf(
        &format!("\n\nresource r0 {{\n{HOSTS}}}\n"),
        Path::new("/etc/drbd.conf"),
    )
    .unwrap();
    let r = c.resource("r0").unwrap();
    let e = r.host("carol").unwrap_err().to_string();
    assert_eq!(
        e,
        "/etc/drbd.conf:3:1: resource r0 has no 'on' section for host carol"
    );
    let e = c.resource("r9").unwrap_err();
    assert_eq!(e, ConfigError::UnknownResource { name: "r9".into() });
}

#[test]
fn missing_and_duplicate_statements() {
    assert_error(
        "resource r0 {\n  on alice { device /dev/drbd0; disk /dev/sdb1; meta-disk internal; address 10.0.0.1:7789; }\n  on bob {\n    disk /dev/sdb1; address 10.0.0.2:7789; meta-disk internal; }\n}\n",
        "/etc/drbd.d/r0.res:3:3: in resource r0, on bob: 'device' keyword missing",
    );
    assert_error(
        "resource r0 {\n  on alice { device /dev/drbd0; disk /dev/sdb1; meta-disk internal; }\n  on bob { device /dev/drbd0; disk /dev/sdb1; meta-disk internal; }\n}\n",
        "/etc/drbd.d/r0.res:2:3: in resource r0, on alice: 'address' keyword missing",
    );
    assert_error(
        &format!("resource r0 {{\n  net {{ }}\n  net {{ }}\n{HOSTS}}}\n"),
        "/etc/drbd.d/r0.res:3:3: duplicate net section (first given at /etc/drbd.d/r0.res:2:3)",
    );
    assert_error(
        &format!("resource r0 {{\n{HOSTS}}}\nresource r1 {{\n{HOSTS}}}\n"),
        "/etc/drbd.d/r0.res:6:3: duplicate minor 0 on host alice (first given at /etc/drbd.d/r0.res:2:3)",
    );
    assert_error(
        "resource r0 { }\n",
        "/etc/drbd.d/r0.res:1:1: resource r0 has no 'on' section",
    );
    assert_error(
        &format!("resource r0 {{\n  disk {{ resync-after r7; }}\n{HOSTS}}}\n"),
        "/etc/drbd.d/r0.res:2:10: resource 'r7' mentioned in 'resync-after' option is not known",
    );
    assert_error(
        "resource r0 {\n  on alice { device /dev/drbd0 minor 1; disk /dev/sdb1; meta-disk internal; }\n}\n",
        "/etc/drbd.d/r0.res:2:14: invalid value '/dev/drbd0' for device: explicit minor number must match",
    );
}

#[test]
fn unknown_keywords_and_includes() {
    assert_error(
        "resorce r0 { }\n",
        "/etc/drbd.d/r0.res:1:1: unknown keyword 'resorce' in the top level",
    );
    assert_error(
        "common {\n  on alice { }\n}\n",
        "/etc/drbd.d/r0.res:2:3: unknown keyword 'on' in common section",
    );
    assert_error(
        "include \"missing.conf\";\n",
        "/etc/drbd.d/r0.res:1:1: cannot include 'missing.conf': no such file",
    );
    // A glob that matches nothing is fine, as with drbdadm.
    assert!(parse_drbd_conf(
        "include \"nothing-*.res\";\n",
        Path::new("/etc/drbd.d/r0.res")
    )
    .is_ok());
    assert_error(
        &format!("resource r0 {{\n  volume 1 {{ }}\n{HOSTS}}}\n"),
        "/etc/drbd.d/r0.res:2:10: volume 1 (rdbd resources have exactly one volume, 0) is not supported by rdbd",
    );
}

/// The seed text as scraped (before the fixture repairs) is rejected with a
/// message naming the damaged spot, as drbdadm also rejects it.
#[test]
fn verbatim_broken_seeds_fail_at_the_damage() {
    let e = load(&fixture("broken/seed-003-drbd.conf")).unwrap_err();
    let at = e.location().unwrap();
    assert_eq!((at.line, at.column), (9, 1), "{e}");
    assert!(
        e.to_string()
            .contains("unknown keyword 'onmfs-master' in resource r0"),
        "{e}"
    );

    let e = load(&fixture("broken/seed-004-global_common.conf")).unwrap_err();
    let at = e.location().unwrap();
    assert_eq!((at.line, at.column), (11, 170), "{e}");
    assert!(
        e.to_string()
            .contains("unknown option '定义了如果主节点降级了怎么处理的' in handlers section"),
        "{e}"
    );
}

#[test]
fn io_errors_name_the_file() {
    let e = load(Path::new("/nonexistent/drbd.conf"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/nonexistent/drbd.conf: cannot read"), "{e}");
}
