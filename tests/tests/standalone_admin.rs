//! rdbdadm on a standalone resource: roles, states, the status file, refusals, and
//! bad input (configs, out-of-range I/O) that must fail clearly and harm nothing.

use std::process::Command;

use rdbd_control::status::parse;
use rdbd_tests::fixture::Standalone;
use rdbd_tests::node::Node;
use rdbd_tests::tools::{hold_open, require, run, stderr, stdout};
use rdbd_types::{ConnState, DiskState, Role};

/// Debian's python3, which has python3-libnbd (a pyenv python may come first on PATH).
const PYTHON: &str = "/usr/bin/python3";

#[test]
fn roles_states_and_the_status_file() {
    let s = Standalone::configured(64);
    let n = &s.node;
    n.adm_ok(&["create-md", "--force", "r0"]);
    n.adm_ok(&["up", "r0"]);
    assert_eq!(n.adm_ok(&["role", "r0"]).trim(), "Secondary/Unknown");
    assert_eq!(n.adm_ok(&["cstate", "r0"]).trim(), "StandAlone");
    assert_eq!(n.adm_ok(&["dstate", "r0"]).trim(), "Inconsistent/DUnknown");

    // A fresh disk is Inconsistent: plain primary is refused, --force promotes.
    let out = n.adm_run(&["primary", "r0"]);
    // drbdsetup's exit code for SS_NO_UP_TO_DATE_DISK (-2) is 17.
    assert_eq!(out.status.code(), Some(17), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Need access to UpToDate data"),
        "{}",
        stderr(&out)
    );
    n.adm_ok(&["primary", "--force", "r0"]);
    assert_eq!(n.adm_ok(&["role", "r0"]).trim(), "Primary/Unknown");
    assert_eq!(n.adm_ok(&["dstate", "r0"]).trim(), "UpToDate/DUnknown");
    assert_eq!(
        n.adm_ok(&["status", "r0"]),
        "r0 role:Primary\n  disk:UpToDate\n"
    );

    let text = n.wait_status(
        "Primary in the status file",
        std::time::Duration::from_secs(5),
        |t| t.contains("ro:Primary"),
    );
    let (version, minors) = parse::parse(&text).expect("status file parses as /proc/drbd");
    assert!(version.starts_with("version: 8.4"), "{version}");
    assert_eq!(minors.len(), 1);
    let m = &minors[0];
    assert_eq!(m.minor, 0);
    assert_eq!(m.conn_state(), Some(ConnState::StandAlone));
    assert_eq!(m.roles, Some((Role::Primary, Role::Unknown)));
    assert_eq!(m.disks, Some((DiskState::UpToDate, DiskState::DUnknown)));
    assert_eq!(m.flags, "r-----");
    for counter in [
        "ns", "nr", "dw", "dr", "al", "bm", "lo", "pe", "ua", "ap", "ep", "oos",
    ] {
        assert!(
            m.counter(counter).is_some(),
            "counter {counter} missing in {text}"
        );
    }

    // Writes show up in dw (KiB) within a second.
    require("nbdcopy");
    let data = s.dir.path().join("data.bin");
    std::fs::write(&data, vec![7u8; 1 << 20]).unwrap();
    let out = run(Command::new("nbdcopy").arg(&data).arg(s.uri()));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = n.wait_status("dw >= 1024", std::time::Duration::from_secs(5), |t| {
        parse::parse(t)
            .ok()
            .and_then(|(_, m)| m.first().and_then(|m| m.counter("dw")))
            .unwrap_or(0)
            >= 1024
    });
    assert!(
        text.contains(" 0: cs:StandAlone ro:Primary/Unknown ds:UpToDate/DUnknown   r-----\n"),
        "{text}"
    );

    n.adm_ok(&["secondary", "r0"]);
    n.adm_ok(&["down", "r0"]);
    let out = n.adm_run(&["role", "r0"]);
    assert!(
        !out.status.success(),
        "role of a resource that is down must fail"
    );
}

#[test]
fn a_secondary_refuses_nbd_clients_and_a_held_device_refuses_secondary() {
    require("nbdinfo");
    let s = Standalone::up(32);
    let n = &s.node;
    let uri = s.uri();
    n.adm_ok(&["secondary", "r0"]);
    // libnbd prints the server's error message in its debug output.
    let out = run(Command::new("nbdinfo").env("LIBNBD_DEBUG", "1").arg(&uri));
    assert!(!out.status.success(), "nbdinfo on a Secondary must fail");
    assert!(
        stderr(&out).contains("server error message: resource r0 is Secondary"),
        "refusal must say why: {}",
        stderr(&out)
    );

    n.adm_ok(&["primary", "r0"]);
    let mut client = hold_open(&uri);
    let out = n.adm_run(&["secondary", "r0"]);
    assert_eq!(out.status.code(), Some(11));
    assert!(stderr(&out).contains("held open"), "{}", stderr(&out));
    let out = n.adm_run(&["down", "r0"]);
    assert!(
        !out.status.success(),
        "down with a client attached must fail"
    );
    assert_eq!(n.adm_ok(&["role", "r0"]).trim(), "Primary/Unknown");
    drop(client.stdin.take());
    client.wait().unwrap();
    // The server notices the client left.
    let start = std::time::Instant::now();
    loop {
        let out = n.adm_run(&["secondary", "r0"]);
        if out.status.success() {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "client never released: {}",
            stderr(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn out_of_range_io_fails_with_einval_and_the_export_keeps_working() {
    let s = Standalone::up(16);
    let script = r#"
import nbd, sys, errno
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri(sys.argv[1])
size = h.get_size()
results = []
for name, op in [
    ("read past end", lambda: h.pread(4096, size)),
    ("read straddling end", lambda: h.pread(8192, size - 4096)),
    ("write past end", lambda: h.pwrite(b"x" * 4096, size)),
    ("trim past end", lambda: h.trim(4096, size)),
]:
    try:
        op()
        results.append(name + ": no error")
    except nbd.Error as e:
        results.append(name + ": errno " + str(e.errno))
h.pwrite(b"\xaa" * 4096, 0)
assert h.pread(4096, 0) == b"\xaa" * 4096
print("\n".join(results))
print("still-works")
"#;
    let out = run(Command::new(PYTHON).arg("-c").arg(script).arg(s.uri()));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("still-works"), "{text}");
    let refusals: Vec<&str> = text.lines().filter(|l| l.contains(':')).collect();
    assert_eq!(refusals.len(), 4, "{text}");
    for line in refusals {
        // python3-libnbd gives the errno by name.
        assert!(
            line.ends_with("errno EINVAL") || line.ends_with("errno ENOSPC"),
            "out-of-range request not refused with EINVAL/ENOSPC: {line}"
        );
    }
}

#[test]
fn bad_configs_and_names_fail_clearly() {
    let s = Standalone::configured(16);
    let n = &s.node;
    // drbdadm: "'nosuch' not defined in your config (for this host)." and E_USAGE (1).
    let out = n.adm_run(&["up", "nosuch"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nosuch"), "{}", stderr(&out));

    let wrong_node = Node::new(s.dir.path(), "carol", &n.config);
    let out = wrong_node.adm_run(&["up", "r0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("carol"),
        "must name the node: {}",
        stderr(&out)
    );

    let bad = s.dir.path().join("bad.conf");
    std::fs::write(
        &bad,
        "resource r0 {\n  net { protocol C; bogus-option 1; }\n  on alice { disk /x; }\n}\n",
    )
    .unwrap();
    let bad_node = Node::new(s.dir.path(), "alice", &bad);
    let out = bad_node.adm_run(&["up", "r0"]);
    assert_eq!(out.status.code(), Some(10));
    let err = stderr(&out);
    assert!(
        err.contains("bogus-option") && err.contains("bad.conf:2:"),
        "error must name option and file:line: {err}"
    );
    assert!(
        !bad_node.run_dir.join("control.sock").exists(),
        "no daemon may start on a bad config"
    );

    let unterminated = s.dir.path().join("unterminated.conf");
    std::fs::write(&unterminated, "resource r0 {\n  on alice { disk /x;\n").unwrap();
    let out = Node::new(s.dir.path(), "alice", &unterminated).adm_run(&["up", "r0"]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unterminated.conf"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_second_daemon_on_the_same_run_dir_refuses_to_start() {
    let s = Standalone::up(16);
    let out = run(Command::new(rdbd_tests::bins::bin("rdbd"))
        .arg("--foreground")
        .arg("-c")
        .arg(&s.node.config)
        .arg("--node")
        .arg("alice")
        .arg("--run-dir")
        .arg(&s.node.run_dir));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));
    // The first one is unharmed.
    assert_eq!(s.node.adm_ok(&["role", "r0"]).trim(), "Primary/Unknown");
}

#[test]
fn a_second_node_cannot_attach_or_rewrite_a_disk_in_use() {
    let s = Standalone::up(16);
    // Another node (own daemon, own run dir) configured on the same backing file.
    let other = Node {
        name: "alice".into(),
        config: s.node.config.clone(),
        run_dir: s.dir.path().join("run-other"),
        netns: None,
    };
    let out = other.adm_run(&["up", "r0"]);
    assert!(
        !out.status.success(),
        "a second attach of the same disk must fail"
    );
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    // Meta-data commands that write are refused too, and change nothing.
    let before = std::fs::read(&s.disk).unwrap();
    let out = run(Command::new(rdbd_tests::bins::bin("rdbdmeta"))
        .args(["--force", "-", "v08"])
        .arg(&s.disk)
        .args(["internal", "create-md"]));
    assert_eq!(out.status.code(), Some(20), "{}", stderr(&out));
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    let out = s.node.adm_run(&["create-md", "--force", "r0"]);
    assert!(
        !out.status.success(),
        "rdbdadm create-md on an up resource must fail"
    );
    assert_eq!(std::fs::read(&s.disk).unwrap(), before, "the disk changed");
    // The first node is unharmed; a repeated primary is a no-op.
    s.node.adm_ok(&["primary", "r0"]);
    assert_eq!(s.node.adm_ok(&["role", "r0"]).trim(), "Primary/Unknown");
}
