//! Every `rdbdadm` command (the list `rdbdadm help` prints) through its success and its
//! common failures on a two-node pair, with the exit code drbdadm gives and one line on
//! stderr that names what was wrong. The table below says, per command, where its
//! success and its failures are tested; `this file` rows are the functions here.
//!
//! | command | success | common failures |
//! |---|---|---|
//! | every command | `-d` dry run: [`names_dry_runs_and_a_missing_daemon_for_every_command`] | unknown resource, resource without `on alice`, no resource, no daemon: same |
//! | attach | admin_lifecycle `detach_and_attach_resync_what_changed_meanwhile` | attached already: [`states_printed_after_each_command_on_a_pair`] |
//! | detach | admin_lifecycle `detach_and_attach_...` | Primary with an NBD client: admin_lifecycle `a_detached_primary_keeps_serving_...` |
//! | connect | [`states_printed_after_each_command_on_a_pair`]; `-- --discard-my-data`: split_brain `manual_recovery_...`, seeds_sequences 000 | no daemon: first fn |
//! | disconnect | [`states_printed_after_each_command_on_a_pair`] (twice: StandAlone stays, exit 0) | no daemon: first fn |
//! | up | [`states_printed_after_each_command_on_a_pair`], seeds_sequences (`up all`) | already up (10): this file; bad config / foreign node: standalone_admin `bad_configs_and_names_fail_clearly` |
//! | down | [`states_printed_after_each_command_on_a_pair`] (also of a resource that is down, and with no daemon: 0 as drbdsetup) | NBD client holds the device (11): this file, standalone_admin |
//! | primary | this file; `-- --overwrite-data-of-peer primary`: this file, seeds_sequences; `primary all`: seeds 003 | peer is Primary (11), Inconsistent without --force: this file |
//! | secondary | this file, seeds_sequences (`secondary all`) | NBD client holds the device (11): this file |
//! | invalidate | standalone_state_commands `invalidate_marks_everything_out_of_sync_up_or_down`, resync_verify `checksum_resync_...` | down on Inconsistent data: [`meta_data_commands_as_drbdmeta_runs_them`] |
//! | invalidate-remote | admin_lifecycle `invalidate_remote_repairs_a_corrupted_peer` | not connected (11): admin_lifecycle `invalidate_remote_needs_a_connection` |
//! | outdate | standalone_state_commands `outdate_refuses_a_primary_...`; down: [`meta_data_commands_as_drbdmeta_runs_them`] | Primary (11): standalone_state_commands |
//! | resize | admin_resize `resize_grows_a_connected_pair_...` | shrink, no peer: admin_resize `resize_refuses_a_shrink_and_a_disconnected_peer` |
//! | verify | resync_verify `verify_finds_exactly_the_corrupted_blocks_...` | no verify-alg (11): resync_verify; not connected (11): this file |
//! | pause-sync | resync_verify `pause_sync_freezes_...`, admin_status | already paused (10): resync_verify |
//! | resume-io | split_brain `a_failing_fence_peer_keeps_io_frozen_until_resume_io` | no daemon: first fn |
//! | resume-sync | resync_verify `pause_sync_freezes_...` | not paused (10): this file; resumed by the other node (10): resync_verify |
//! | adjust | admin_lifecycle `adjust_*` (and `-d`) | a changed backing disk: admin_lifecycle `adjust_connects_attaches_...` |
//! | wait-connect | this file | timeout while StandAlone (1): this file |
//! | wait-sync | this file, seeds via `Pair::up_and_sync` | timeout while StandAlone (1): this file |
//! | role / cstate / dstate | this file (after every step), seeds_sequences 001 | resource down (10), no daemon (20): this file; dstate of a down resource reads the meta-data: [`meta_data_commands_as_drbdmeta_runs_them`] |
//! | dump | admin_dump (against drbdadm-84) | unknown resource (1): admin_dump, first fn |
//! | create-md / wipe-md / apply-al | [`meta_data_commands_as_drbdmeta_runs_them`] | resource up (20, drbdmeta's "configured"): same |
//! | show-gi / get-gi / dump-md | [`meta_data_commands_as_drbdmeta_runs_them`] (get-gi equal to drbdmeta's) | no meta-data (after wipe-md): same, drbdmeta's exit code |
//! | new-current-uuid | standalone_state_commands `new_current_uuid_clear_bitmap_...` | no daemon: first fn |
//! | status | admin_status | unknown resource, no daemon: first fn |
//! | nbd-uri | every NBD test | unknown resource: first fn |
//! | events2 | events2 `events2_dumps_state_and_follows_changes` | no daemon, unknown resource: first fn |
//! | shutdown | [`states_printed_after_each_command_on_a_pair`] | NBD client holds a device (11): same |
//! | help | admin_help | unknown command (1): admin_help |
//!
//! drbdadm's exit codes (drbd-utils `user/v84`): a naming mistake (unknown resource, no
//! `on` section for this host, no resource given) is its usage error, 1; drbdsetup's
//! "Failure: (1xx)" is 10 and "State change failed: (-n)" is 11; no module (here: no
//! daemon) is 20.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdbd_tests::node::Node;
use rdbd_tests::pair::{node_log, wait_line, Pair};
use rdbd_tests::tools::{hold_open, require, run, stderr, stdout};

/// drbdadm's usage exit code (E_USAGE): naming mistakes.
const USAGE: i32 = 1;
/// drbdsetup's "Failure: (1xx) ..." exit code.
const FAILURE: i32 = 10;
/// drbdsetup's "State change failed: (-n) ..." exit code.
const STATE_CHANGE_FAILED: i32 = 11;
/// drbdsetup's exit code for "(-2) Need access to UpToDate data".
const NO_UP_TO_DATE_DISK: i32 = 17;
/// drbdsetup's exit code without the module (here: without the daemon).
const NO_DAEMON: i32 = 20;

/// How a command reaches its work, which decides what it does without a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Asks the daemon: without one, exit 20.
    Daemon,
    /// Runs rdbdmeta on the backing disk while the resource is down.
    Meta,
    /// Reads the configuration only.
    Local,
    /// Starts the daemon (`up`, `adjust` of a resource that is down).
    Starts,
    /// `down`: with no daemon the resource is down already (exit 0).
    Down,
    /// Takes no resource (`shutdown`, `help`).
    NoResource,
}

/// Every command `rdbdadm help` lists, and its kind.
const ROWS: &[(&str, Kind)] = &[
    ("attach", Kind::Daemon),
    ("detach", Kind::Daemon),
    ("connect", Kind::Daemon),
    ("disconnect", Kind::Daemon),
    ("up", Kind::Starts),
    ("down", Kind::Down),
    ("primary", Kind::Daemon),
    ("secondary", Kind::Daemon),
    ("invalidate", Kind::Meta),
    ("invalidate-remote", Kind::Daemon),
    ("outdate", Kind::Meta),
    ("resize", Kind::Daemon),
    ("verify", Kind::Daemon),
    ("pause-sync", Kind::Daemon),
    ("resume-io", Kind::Daemon),
    ("resume-sync", Kind::Daemon),
    ("adjust", Kind::Starts),
    ("wait-connect", Kind::Daemon),
    ("role", Kind::Daemon),
    ("cstate", Kind::Daemon),
    ("dstate", Kind::Meta),
    ("dump", Kind::Local),
    ("create-md", Kind::Meta),
    ("show-gi", Kind::Meta),
    ("get-gi", Kind::Meta),
    ("dump-md", Kind::Meta),
    ("wipe-md", Kind::Meta),
    ("apply-al", Kind::Meta),
    ("new-current-uuid", Kind::Daemon),
    ("status", Kind::Daemon),
    ("nbd-uri", Kind::Local),
    ("wait-sync", Kind::Daemon),
    ("events2", Kind::Daemon),
    ("shutdown", Kind::NoResource),
    ("help", Kind::NoResource),
];

/// The command words of `rdbdadm help`'s COMMANDS section.
fn help_commands(n: &Node) -> Vec<String> {
    let text = n.adm_ok(&["help"]);
    let section = text
        .split("\nCOMMANDS:\n")
        .nth(1)
        .expect("a COMMANDS section in rdbdadm help");
    section
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// Asserts a failure: exit `code`, exactly one line on stderr, containing every needle.
/// Returns the line.
fn fails(what: &str, out: &Output, code: i32, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: exit code\nstdout:\n{}stderr:\n{err}",
        stdout(out)
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: one line on stderr, got:\n{err}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{what}: stderr must name {needle:?}: {}",
            lines[0]
        );
    }
    lines[0].to_string()
}

/// Runs `rdbdadm ARGS` on `n`, which must succeed; returns stdout trimmed.
fn ok(n: &Node, args: &[&str]) -> String {
    let out = n.adm_run(args);
    assert!(
        out.status.success(),
        "{}: rdbdadm {} failed ({}):\n{}{}\nlog:\n{}",
        n.name,
        args.join(" "),
        out.status,
        stdout(&out),
        stderr(&out),
        node_log(n)
    );
    stdout(&out).trim().to_string()
}

/// `role`, `cstate` and `dstate` of `r0` on `n`, as one `role cstate dstate` string.
fn states(n: &Node) -> String {
    format!(
        "{} {} {}",
        ok(n, &["role", "r0"]),
        ok(n, &["cstate", "r0"]),
        ok(n, &["dstate", "r0"])
    )
}

/// Retries `rdbdadm ARGS` until it succeeds (the daemon notices a client that left).
fn ok_within(n: &Node, args: &[&str], secs: u64) {
    let start = Instant::now();
    loop {
        let out = n.adm_run(args);
        if out.status.success() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "rdbdadm {} kept failing: {}",
            args.join(" "),
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A pair whose alice configuration also has `r9`, a resource of two other hosts.
fn pair_with_foreign_resource() -> Pair {
    let p = Pair::new("", "");
    let foreign = "resource r9 {\n  on carol { device /dev/drbd9; disk /dev/null; address 127.0.0.1:1; meta-disk internal; }\n  on dave { device /dev/drbd9; disk /dev/null; address 127.0.0.1:2; meta-disk internal; }\n}\n";
    let mut text = std::fs::read_to_string(&p.a.config).unwrap();
    text.push_str(foreign);
    std::fs::write(&p.a.config, text).unwrap();
    p
}

#[test]
fn names_dry_runs_and_a_missing_daemon_for_every_command() {
    let p = pair_with_foreign_resource();
    let a = &p.a;
    let config = a.config.display().to_string();

    // The table covers exactly the commands rdbdadm has.
    let listed = help_commands(a);
    let rows: Vec<String> = ROWS.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(
        listed, rows,
        "rdbdadm help's commands and this file's table"
    );

    for &(command, kind) in ROWS {
        if kind == Kind::NoResource {
            continue;
        }
        let what = |case: &str| format!("{command} {case}");
        // An unknown resource: drbdadm's "'X' not defined in your config (for this
        // host)." and its usage exit code.
        let out = a.adm_run(&[command, "nosuch"]);
        fails(
            &what("nosuch"),
            &out,
            USAGE,
            &["'nosuch' not defined in your config", &config],
        );
        // A resource without an `on alice` section (drbdadm: the same message).
        let out = a.adm_run(&[command, "r9"]);
        fails(
            &what("r9"),
            &out,
            USAGE,
            &["r9", "no 'on alice' section", &config],
        );
        // No resource at all: drbdadm's "No resource names specified", exit 1.
        if !matches!(command, "dump" | "status" | "events2") {
            let out = a.adm_run(&[command]);
            fails(&what("(no resource)"), &out, USAGE, &["no resource given"]);
        }
        // Dry run: what would be done, nothing done.
        let out = a.adm_run(&["-d", command, "r0"]);
        assert!(
            out.status.success(),
            "-d {command}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let printed = stdout(&out);
        match kind {
            Kind::Daemon | Kind::Starts | Kind::Down => {
                let expected = if command == "events2" {
                    "\"op\":\"events\"".to_string()
                } else if command == "adjust" {
                    // No daemon: adjust is `up`.
                    "rdbdadm up r0".to_string()
                } else {
                    "\"resource\":\"r0\"".to_string()
                };
                assert!(
                    printed.contains(&expected) || (command == "down" && printed.is_empty()),
                    "-d {command} prints the request: {printed}"
                );
            }
            Kind::Meta => {
                let word = if matches!(command, "outdate" | "invalidate") {
                    // Up or down is decided by the daemon; -d prints the request.
                    "\"resource\":\"r0\""
                } else {
                    " v08 "
                };
                assert!(printed.contains(word), "-d {command}: {printed}");
            }
            Kind::Local | Kind::NoResource => {}
        }
    }
    assert!(
        !a.run_dir.join("control.sock").exists() && a.daemon_pid().is_none(),
        "a dry run started the daemon"
    );

    // No daemon: every command that asks it fails with 20 and says so; the others work.
    for &(command, kind) in ROWS {
        // up/adjust start the daemon; create-md, wipe-md, outdate and invalidate write
        // the meta-data (meta_data_commands_as_drbdmeta_runs_them has them).
        if matches!(kind, Kind::Starts)
            || matches!(
                command,
                "create-md" | "wipe-md" | "outdate" | "invalidate" | "help"
            )
        {
            continue;
        }
        let out = a.adm_run(&[command, "r0"]);
        match (kind, command) {
            (Kind::Daemon, _) | (Kind::NoResource, "shutdown") => {
                fails(
                    &format!("{command} r0 without a daemon"),
                    &out,
                    NO_DAEMON,
                    &["no rdbd daemon is running", "control.sock"],
                );
            }
            (Kind::Down, _) => assert!(out.status.success(), "down: {}", stderr(&out)),
            (Kind::Meta, "dstate") => assert_eq!(stdout(&out), "Inconsistent\n"),
            (Kind::Meta, "get-gi" | "show-gi" | "dump-md" | "apply-al") => {
                assert!(out.status.success(), "{command}: {}", stderr(&out))
            }
            (Kind::Local, "nbd-uri") => {
                assert!(stdout(&out).starts_with("nbd+unix:///r0?socket="))
            }
            (Kind::Local, "dump") => assert!(stdout(&out).contains("resource r0 {")),
            _ => {}
        }
    }
    assert!(a.daemon_pid().is_none(), "no command above starts a daemon");
    // `status` of everything without a daemon: nothing is configured.
    assert_eq!(
        ok(a, &["status"]),
        "# No currently configured rdbd resources found."
    );

    // `all` is every resource of this host (r0, not r9), and `--` hands options over.
    let out = ok(
        a,
        &["-d", "--", "--overwrite-data-of-peer", "primary", "all"],
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("\"op\":\"primary\",\"resource\":\"r0\",\"force\":true"),
        "{out}"
    );
    let out = ok(a, &["-d", "primary", "r0"]);
    assert!(out.contains("\"force\":false"), "{out}");
    let out = ok(a, &["-d", "--", "--discard-my-data", "connect", "r0"]);
    assert!(out.contains("\"discard_my_data\":true"), "{out}");
    // A node with no resource in the file: `all` is an error, as in drbdadm.
    let erin = Node::new(p.dir.path(), "erin", &a.config);
    let out = erin.adm_run(&["role", "all"]);
    fails("role all on erin", &out, USAGE, &["no resources", "erin"]);
}

#[test]
fn states_printed_after_each_command_on_a_pair() {
    require("nbdinfo");
    let p = Pair::new("", "");
    let (a, b) = (&p.a, &p.b);
    ok(a, &["up", "r0"]);
    ok(b, &["up", "all"]);
    wait_line(
        a,
        " 0: cs:Connected ro:Secondary/Secondary ds:Inconsistent/Inconsistent C r-----",
        30,
    );
    assert_eq!(
        states(a),
        "Secondary/Secondary Connected Inconsistent/Inconsistent"
    );

    // Already up: drbdsetup's "Failure: (161) Minor or volume exists already", 10.
    fails(
        "up twice",
        &a.adm_run(&["up", "r0"]),
        FAILURE,
        &["r0", "already up"],
    );
    // Attached already: drbdsetup attach's "Failure: (124) Device is attached to by
    // someone", 10.
    fails(
        "attach twice",
        &a.adm_run(&["attach", "r0"]),
        FAILURE,
        &["r0", "attached"],
    );
    // Inconsistent data without --force.
    fails(
        "primary without UpToDate data",
        &b.adm_run(&["primary", "r0"]),
        NO_UP_TO_DATE_DISK,
        &["r0", "(-2) Need access to UpToDate data"],
    );
    assert_eq!(
        states(b),
        "Secondary/Secondary Connected Inconsistent/Inconsistent"
    );

    // The seeds' initial promotion, options handed through `--`.
    ok(a, &["--", "--overwrite-data-of-peer", "primary", "r0"]);
    wait_line(
        a,
        " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----",
        60,
    );
    wait_line(
        b,
        " 0: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate C r-----",
        30,
    );
    ok(b, &["wait-sync", "r0"]);
    ok(a, &["wait-connect", "r0"]);
    assert_eq!(states(a), "Primary/Secondary Connected UpToDate/UpToDate");
    // Already in that state: a no-op, exit 0, nothing changes.
    ok(a, &["primary", "r0"]);
    ok(b, &["secondary", "r0"]);
    assert_eq!(states(a), "Primary/Secondary Connected UpToDate/UpToDate");
    assert_eq!(states(b), "Secondary/Primary Connected UpToDate/UpToDate");
    // The peer is Primary.
    fails(
        "second primary",
        &b.adm_run(&["primary", "r0"]),
        STATE_CHANGE_FAILED,
        &["r0", "(-1) Multiple primaries not allowed by config"],
    );
    assert_eq!(states(b), "Secondary/Primary Connected UpToDate/UpToDate");
    // Not paused: "Failure: (135) Sync-pause flag is already cleared".
    fails(
        "resume-sync not paused",
        &a.adm_run(&["resume-sync", "r0"]),
        FAILURE,
        &["(135)", "already cleared"],
    );

    // An NBD client holds the device: secondary, down and shutdown are refused.
    let mut client = hold_open(&a.nbd_uri("r0"));
    for args in [&["secondary", "r0"][..], &["down", "r0"], &["shutdown"]] {
        fails(
            &args.join(" "),
            &a.adm_run(args),
            STATE_CHANGE_FAILED,
            &["(-12) Device is held open by someone"],
        );
    }
    assert_eq!(states(a), "Primary/Secondary Connected UpToDate/UpToDate");
    assert!(a
        .status_file()
        .contains(" 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----"));
    drop(client.stdin.take());
    client.wait().unwrap();
    ok_within(a, &["secondary", "r0"], 5);
    wait_line(
        a,
        " 0: cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate C r-----",
        5,
    );

    // disconnect; again is a no-op (drbdsetup: SS_ALREADY_STANDALONE is success).
    ok(a, &["disconnect", "r0"]);
    wait_line(
        a,
        // No protocol letter: StandAlone has no net configuration in DRBD 8.4.
        " 0: cs:StandAlone ro:Secondary/Unknown ds:UpToDate/DUnknown   r-----",
        5,
    );
    wait_line(
        b,
        " 0: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown C r-----",
        10,
    );
    ok(a, &["disconnect", "r0"]);
    assert_eq!(states(a), "Secondary/Unknown StandAlone UpToDate/DUnknown");
    // Not connected.
    fails(
        "verify not connected",
        &a.adm_run(&["verify", "r0"]),
        STATE_CHANGE_FAILED,
        &["r0", "(-15) Need a connection to start verify or resync"],
    );
    for command in ["wait-connect", "wait-sync"] {
        let line = fails(
            &format!("{command} StandAlone"),
            &a.adm_run(&[command, "--timeout", "1", "r0"]),
            1,
            &["r0", "after 1 s", "cs:StandAlone"],
        );
        assert!(line.contains("not "), "{line}");
    }
    ok(a, &["connect", "r0"]);
    ok(a, &["wait-connect", "--timeout", "20", "r0"]);
    ok(b, &["wait-sync", "--timeout", "20", "r0"]);
    wait_line(
        b,
        " 0: cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate C r-----",
        10,
    );
    assert_eq!(states(a), "Secondary/Secondary Connected UpToDate/UpToDate");
    // connect on a connected resource: drbdsetup's "(125) Device has a net-config".
    fails(
        "connect while connected",
        &a.adm_run(&["connect", "r0"]),
        FAILURE,
        &["r0", "(125) Device has a net-config (use disconnect first)"],
    );
    assert_eq!(states(a), "Secondary/Secondary Connected UpToDate/UpToDate");

    // down; the peer waits for it; a second down (and one without a daemon) is a
    // no-op as drbdsetup's down of an unknown resource.
    ok(a, &["down", "r0"]);
    fails(
        "role of a resource that is down",
        &a.adm_run(&["role", "r0"]),
        FAILURE,
        &["r0", "No such resource"],
    );
    wait_line(
        b,
        " 0: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown",
        10,
    );
    ok(a, &["down", "r0"]);
    ok(a, &["down", "all"]);
    let pid = a.daemon_pid().expect("alice's daemon runs");
    ok(a, &["shutdown"]);
    let start = Instant::now();
    // SAFETY: signal 0 only checks whether the pid exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "the daemon stays");
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(a, &["down", "r0"]);
    fails(
        "shutdown twice",
        &a.adm_run(&["shutdown"]),
        NO_DAEMON,
        &["no rdbd daemon is running"],
    );
    // up starts the daemon again; the pair reconnects without a resync.
    ok(a, &["up", "r0"]);
    wait_line(
        a,
        " 0: cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate C r-----",
        30,
    );
}

/// `drbdmeta --force - v08 DISK internal ARGS`: the real tool on the same file.
fn drbdmeta(disk: &Path, args: &[&str]) -> Output {
    // --force: drbdmeta wants a block device otherwise.
    let out = run(Command::new("drbdmeta")
        .args(["--force", "-", "v08"])
        .arg(disk)
        .arg("internal")
        .args(args)
        .stdin(Stdio::null()));
    let _ = std::fs::remove_file("/var/lib/drbd/drbd-minor--1.lkbd");
    out
}

/// drbdmeta without --force, which asks before it destroys anything. It refuses a
/// plain file without --force, so it runs on a loop device of the file.
fn drbdmeta_asking(disk: &Path, command: &str) -> Output {
    let out = rdbd_tests::tools::run_ok(Command::new("losetup").args(["-f", "--show"]).arg(disk));
    let dev = stdout(&out).trim().to_string();
    let out = run(Command::new("drbdmeta")
        .args(["-", "v08", &dev, "internal", command])
        .stdin(Stdio::null()));
    let _ = run(Command::new("losetup").args(["-d", &dev]));
    let _ = std::fs::remove_file("/var/lib/drbd/drbd-minor--1.lkbd");
    out
}

#[test]
fn meta_data_commands_as_drbdmeta_runs_them() {
    require("drbdmeta");
    let p = Pair::new("", "");
    let a = &p.a;
    // get-gi: the same line as drbdmeta's, from the same file.
    let gi = ok(a, &["get-gi", "r0"]);
    let real = drbdmeta(&p.disk_a, &["get-gi"]);
    assert!(real.status.success(), "{}", stderr(&real));
    assert_eq!(gi, stdout(&real).trim());
    assert!(ok(a, &["show-gi", "r0"]).contains("Current data generation UUID"));
    let dump = ok(a, &["dump-md", "r0"]);
    assert!(dump.contains("la-size-sect"), "{dump}");
    ok(a, &["apply-al", "r0"]);
    assert_eq!(ok(a, &["dstate", "r0"]), "Inconsistent");

    // Up: the meta-data belongs to the daemon; drbdmeta says "Device is configured"
    // and exits 20.
    ok(a, &["up", "r0"]);
    assert_eq!(ok(a, &["dstate", "r0"]), "Inconsistent/DUnknown");
    for command in [
        &["create-md", "--force", "r0"][..],
        &["wipe-md", "r0"],
        &["apply-al", "r0"],
    ] {
        fails(
            &command.join(" "),
            &a.adm_run(command),
            NO_DAEMON,
            &["r0", "the resource is up", "rdbdadm down r0"],
        );
    }
    assert_eq!(ok(a, &["get-gi", "r0"]), gi, "nothing was written");
    ok(a, &["down", "r0"]);

    // Down: outdate and invalidate go to the meta-data (as drbdadm runs drbdmeta);
    // exit codes as drbdmeta's on a copy of the same file.
    let copy = p.dir.path().join("copy.img");
    for command in ["outdate", "invalidate"] {
        std::fs::copy(&p.disk_a, &copy).unwrap();
        let real = drbdmeta(&copy, &[command]);
        let out = a.adm_run(&[command, "r0"]);
        assert_eq!(
            out.status.code(),
            real.status.code(),
            "{command}: rdbdadm {}{} / drbdmeta {}",
            stdout(&out),
            stderr(&out),
            stderr(&real)
        );
    }
    // wipe-md asks first (drbdmeta's "Do you really want to wipe out the DRBD meta
    // data?"); without an answer it cancels with drbdmeta's exit code, --force wipes.
    let gi = ok(a, &["get-gi", "r0"]);
    let out = a.adm_run(&["wipe-md", "r0"]);
    let real = drbdmeta_asking(&p.disk_a, "wipe-md");
    assert_eq!(out.status.code(), real.status.code(), "{}", stderr(&out));
    assert!(!out.status.success(), "wipe-md without an answer");
    assert_eq!(ok(a, &["get-gi", "r0"]), gi, "nothing was wiped");
    // Afterwards no meta-data for either tool, with drbdmeta's exit code.
    ok(a, &["wipe-md", "--force", "r0"]);
    for command in ["get-gi", "dump-md"] {
        let real = drbdmeta(&p.disk_a, &[command]);
        let out = a.adm_run(&[command, "r0"]);
        assert!(!real.status.success(), "drbdmeta {command} after wipe-md");
        assert_eq!(
            out.status.code(),
            real.status.code(),
            "{command} after wipe-md: {}",
            stderr(&out)
        );
    }
    // create-md again: the same layout drbdmeta reads.
    ok(a, &["create-md", "--force", "r0"]);
    let real = drbdmeta(&p.disk_a, &["get-gi"]);
    assert!(real.status.success(), "{}", stderr(&real));
    assert_eq!(ok(a, &["get-gi", "r0"]), stdout(&real).trim());
    // The meta-data is where drbdmeta expects it: the last 4 KiB block holds it.
    let f = std::fs::File::open(&p.disk_a).unwrap();
    let mut block = [0u8; 4096];
    f.read_exact_at(&mut block, (64 << 20) - 4096).unwrap();
    assert!(block.iter().any(|&b| b != 0), "the superblock is written");
}
