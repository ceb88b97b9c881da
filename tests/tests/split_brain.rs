//! Split brain, its automatic and manual recovery, handlers and fencing, end to end
//! with two real daemons.
//!
//! Every split-brain scenario is made by `rdbd_tests::split_brain`: a synced pair
//! (alice Primary), both disconnect, bob becomes Primary too, each side writes its own
//! pattern through NBD, the sides take the roles the policy under test needs, and both
//! connect. The backing files' checksums before the reconnect say which side's data is
//! which; afterwards both equal the winner's (or stay untouched when nobody wins).
//!
//! Two Primaries at the reconnect (after-sb-2pri `disconnect`, `violently-as0p`,
//! `call-pri-lost-after-sb`) never resync without allow-two-primaries, which rdbd does not
//! implement: DRBD's winner cannot enter WFBitMapS with a Primary peer (SS_TWO_PRIMARIES)
//! and its loser either refuses to be a Primary SyncTarget (rr-conflict) or, with
//! call-pri-lost-after-sb, cannot demote during the handshake and runs
//! `pri-lost-after-sb`. The same run against a kernel 8.4.11 peer checks those facts.
//!
//! Handlers are the harness's shell script that appends one line per call (its argument
//! and the `DRBD_*` environment) to a log the test reads.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdbd_tests::bins::bin;
use rdbd_tests::fixture::scratch_dir;
use rdbd_tests::kernel_peer::node::Auth;
use rdbd_tests::kernel_peer::pair::{Direction, KernelPair};
use rdbd_tests::node::Node;
use rdbd_tests::pair::{node_log, wait_line, wait_log, Pair, PairOptions};
use rdbd_tests::split_brain::{connect_both, data_checksum, write_blocks, Split, SplitBrain};
use rdbd_tests::tools::{require, run_ok, stderr, stdout};

/// Writes `len_bytes` of `pattern` at `offset` through the node's NBD export (qemu-io).
fn write_pattern(node: &Node, pattern: u8, offset: u64, len_bytes: u64) {
    write_blocks(node, pattern, &[(offset, len_bytes)]);
}

/// [`wait_line`], with the node's log in the failure message.
fn wait_line_or_log(node: &Node, what: &str, secs: u64) {
    let start = Instant::now();
    while !node.status_file().contains(what) {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what:?} on {}; status:\n{}\nlog:\n{}",
            node.name,
            node.status_file(),
            node_log(node)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn checksum(path: &Path) -> String {
    data_checksum(path)
}

/// Where the scenario leaves the pair before both connect.
#[derive(Clone, Copy)]
struct Scenario {
    /// MiB alice writes while split (at 0).
    write_a_mib: u64,
    /// MiB bob writes while split (at 16 MiB).
    write_b_mib: u64,
    /// alice is Primary when connecting.
    a_primary: bool,
    /// bob is Primary when connecting.
    b_primary: bool,
}

/// A synced pair, split: both Primary while disconnected, each writes, then the roles
/// of `s`. Not connected yet.
fn split(net: &str, s: Scenario) -> Split {
    split_with_handlers(net, s, true)
}

/// [`split`]; `with_handlers: false` configures no handler, so the node that finds the
/// split brain first drops the connection at once (no handler delays it).
fn split_with_handlers(net: &str, s: Scenario, with_handlers: bool) -> Split {
    SplitBrain {
        net_a: net.to_string(),
        net_b: net.to_string(),
        handlers: with_handlers,
        write_a_bytes: s.write_a_mib << 20,
        write_b_bytes: s.write_b_mib << 20,
        a_primary: s.a_primary,
        b_primary: s.b_primary,
    }
    .make()
}

/// Both end Connected and UpToDate with the data of `winner` (0 alice, 1 bob).
fn expect_resync_from(sb: &Split, winner: usize) {
    let p = &sb.p;
    for n in [&p.a, &p.b] {
        n.wait_status(
            "Connected UpToDate/UpToDate",
            Duration::from_secs(60),
            |t| t.contains("cs:Connected") && t.contains("ds:UpToDate/UpToDate"),
        );
    }
    let (sum_a, sum_b) = (checksum(&p.disk_a), checksum(&p.disk_b));
    let expected = if winner == 0 { &sb.sum_a } else { &sb.sum_b };
    let name = ["alice", "bob"][winner];
    assert_eq!(&sum_a, expected, "alice holds {name}'s data");
    assert_eq!(&sum_b, expected, "bob holds {name}'s data");
    let log = node_log([&p.a, &p.b][winner]);
    assert!(
        log.contains("Split-Brain detected") && log.contains("automatically solved")
            || log.contains("manually solved"),
        "the winner logged the recovery:\n{log}"
    );
}

/// Both end StandAlone, data untouched, the split-brain handler ran on both.
fn expect_unresolved(sb: &Split) {
    let p = &sb.p;
    for (n, name) in [(&p.a, "alice"), (&p.b, "bob")] {
        wait_log(
            n,
            "Split-Brain detected but unresolved, dropping connection!",
            30,
        );
        // The handler runs before the connection is dropped.
        let line = sb.h.wait_call("split-brain", name, 30);
        wait_line(n, "cs:StandAlone", 30);
        assert!(line.contains(" res=r0 "), "{line}");
        assert!(
            line.contains(" minor=0 ") && line.contains(" vol=0 "),
            "{line}"
        );
        let peer = if name == "alice" { "bob" } else { "alice" };
        assert!(
            line.contains(&format!(
                " peer={peer} peers={peer} af=ipv4 addr=127.0.0.1 "
            )),
            "{line}"
        );
        assert!(
            line.contains(" home=/ path=/sbin:/usr/sbin:/bin:/usr/bin args=1"),
            "{line}"
        );
        wait_log(
            n,
            "helper command: rdbdadm split-brain minor-0 exit code 0 (0x0)",
            10,
        );
        assert!(
            !sb.h.calls("initial-split-brain", name).is_empty(),
            "initial-split-brain ran first on {name}:\n{}",
            sb.h.log()
        );
    }
    // Still StandAlone a moment later: no retry loop.
    std::thread::sleep(Duration::from_secs(2));
    for n in [&p.a, &p.b] {
        assert!(
            n.status_file().contains("cs:StandAlone"),
            "{}",
            n.status_file()
        );
    }
    assert_eq!(checksum(&p.disk_a), sb.sum_a, "alice's data untouched");
    assert_eq!(checksum(&p.disk_b), sb.sum_b, "bob's data untouched");
}

const BOTH_WRITE: Scenario = Scenario {
    write_a_mib: 2,
    write_b_mib: 4,
    a_primary: false,
    b_primary: false,
};

#[test]
fn default_policy_disconnects_and_runs_the_split_brain_handler() {
    let sb = split("", BOTH_WRITE);
    // events2 on alice shows the handler calls.
    let events = sb.p.dir.path().join("events2.txt");
    let mut child =
        sb.p.a
            .adm()
            .args(["events2", "all"])
            .stdout(std::fs::File::create(&events).unwrap())
            .spawn()
            .unwrap();
    connect_both(&sb.p);
    expect_unresolved(&sb);
    let start = Instant::now();
    let response = "response helper name:r0 volume:0 minor:0 helper:split-brain status:0";
    let text = loop {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        if text.contains(response) || start.elapsed() > Duration::from_secs(10) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    let call = "call helper name:r0 volume:0 minor:0 helper:split-brain";
    let (c, r) = (text.find(call), text.find(response));
    assert!(
        c.is_some() && r.is_some() && c < r,
        "helper lines in events2:\n{text}"
    );
    assert!(
        text.contains("call helper name:r0 volume:0 minor:0 helper:initial-split-brain"),
        "{text}"
    );
}

/// DRBD 8.4: each side runs the sync handshake on the other's P_UUIDS/P_STATE and each
/// decides split brain, so both end StandAlone, also when the first to decide drops the
/// connection at once (no handler) and the other reads the close before its decision.
#[test]
fn unresolved_split_brain_leaves_both_sides_standalone_without_handlers() {
    for round in 0..3 {
        let sb = split_with_handlers("", BOTH_WRITE, false);
        connect_both(&sb.p);
        for n in [&sb.p.a, &sb.p.b] {
            wait_log(
                n,
                "Split-Brain detected but unresolved, dropping connection!",
                30,
            );
            wait_line_or_log(n, "cs:StandAlone", 30);
        }
        // Still StandAlone a moment later: neither side retries.
        std::thread::sleep(Duration::from_secs(2));
        for n in [&sb.p.a, &sb.p.b] {
            let status = n.status_file();
            assert!(
                status.contains("cs:StandAlone"),
                "round {round}, {}: {status}\n{}",
                n.name,
                node_log(n)
            );
        }
        assert_eq!(checksum(&sb.p.disk_a), sb.sum_a, "alice's data untouched");
        assert_eq!(checksum(&sb.p.disk_b), sb.sum_b, "bob's data untouched");
    }
}

#[test]
fn after_sb_2pri_disconnect_leaves_two_primaries_standalone() {
    let sb = split(
        "after-sb-0pri discard-least-changes; after-sb-1pri discard-secondary; after-sb-2pri disconnect;",
        Scenario {
            a_primary: true,
            b_primary: true,
            ..BOTH_WRITE
        },
    );
    connect_both(&sb.p);
    expect_unresolved(&sb);
    for n in [&sb.p.a, &sb.p.b] {
        assert!(
            n.status_file().contains("ro:Primary/Unknown"),
            "{}",
            n.status_file()
        );
    }
}

#[test]
fn discard_zero_changes_syncs_the_side_without_changes_from_the_other() {
    let sb = split(
        "after-sb-0pri discard-zero-changes;",
        Scenario {
            write_a_mib: 0,
            ..BOTH_WRITE
        },
    );
    connect_both(&sb.p);
    expect_resync_from(&sb, 1);
    // The handlers of the resync ran where DRBD runs them.
    let line = sb.h.wait_call("before-resync-target", "alice", 10);
    assert!(
        line.contains(" res=r0 ") && line.contains(" peer=bob "),
        "{line}"
    );
    sb.h.wait_call("after-resync-target", "alice", 10);
    sb.h.wait_call("before-resync-source", "bob", 10);
    assert!(
        sb.h.calls("before-resync-target", "bob").is_empty(),
        "{}",
        sb.h.log()
    );
    sb.h.wait_call("initial-split-brain", "alice", 10);
    assert!(
        sb.h.calls("split-brain", "alice").is_empty(),
        "{}",
        sb.h.log()
    );
}

#[test]
fn discard_younger_primary_keeps_the_older_primarys_data() {
    let sb = split("after-sb-0pri discard-younger-primary;", BOTH_WRITE);
    connect_both(&sb.p);
    expect_resync_from(&sb, 0);
}

#[test]
fn discard_older_primary_keeps_the_younger_primarys_data() {
    let sb = split("after-sb-0pri discard-older-primary;", BOTH_WRITE);
    connect_both(&sb.p);
    expect_resync_from(&sb, 1);
}

#[test]
fn discard_least_changes_keeps_the_side_with_more_changes() {
    // alice 2 MiB, bob 4 MiB: alice has fewer changes and loses.
    {
        let sb = split("after-sb-0pri discard-least-changes;", BOTH_WRITE);
        connect_both(&sb.p);
        expect_resync_from(&sb, 1);
    }
    // The other way round.
    let sb = split(
        "after-sb-0pri discard-least-changes;",
        Scenario {
            write_a_mib: 6,
            ..BOTH_WRITE
        },
    );
    connect_both(&sb.p);
    expect_resync_from(&sb, 0);
}

#[test]
fn after_sb_1pri_discard_secondary_keeps_the_primarys_data() {
    let sb = split(
        "after-sb-1pri discard-secondary;",
        Scenario {
            a_primary: false,
            b_primary: true,
            ..BOTH_WRITE
        },
    );
    connect_both(&sb.p);
    expect_resync_from(&sb, 1);
    wait_line(&sb.p.a, "ro:Secondary/Primary", 10);
}

#[test]
fn manual_recovery_with_discard_my_data_resyncs_the_victim_from_the_survivor() {
    // The survivor (bob) stays Primary, as in DRBD's users guide.
    let sb = split(
        "",
        Scenario {
            a_primary: true,
            b_primary: true,
            ..BOTH_WRITE
        },
    );
    connect_both(&sb.p);
    expect_unresolved(&sb);
    let p = &sb.p;
    // Victim: alice.
    p.a.adm_ok(&["secondary", "r0"]);
    p.a.adm_ok(&["--", "--discard-my-data", "connect", "r0"]);
    p.b.adm_ok(&["connect", "r0"]);
    expect_resync_from(&sb, 1);
    wait_line(&p.a, "ro:Secondary/Primary ds:UpToDate/UpToDate", 10);
    // The flag was used up: a later reconnect does not discard again.
    p.a.adm_ok(&["disconnect", "r0"]);
    p.a.adm_ok(&["connect", "r0"]);
    wait_line(
        &p.a,
        "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        30,
    );
}

/// The fence-peer handler: records its environment, waits for the test's go, outdates
/// bob through bob's daemon (as crm-fence-peer / obliterate-peer would), exits 4.
fn fence_script(dir: &Path, bob: &Node) -> PathBuf {
    let script = dir.join("fence.sh");
    let adm = bin("rdbdadm");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv > {env}\nwhile [ ! -e {go} ]; do sleep 0.1; done\n{adm} -c {conf} --node bob --run-dir {run} outdate r0 || exit 1\nexit 4\n",
            env = dir.join("fence.env").display(),
            go = dir.join("go").display(),
            adm = adm.display(),
            conf = bob.config.display(),
            run = bob.run_dir.display(),
        ),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&script));
    script
}

#[test]
fn resource_and_stonith_freezes_io_until_fence_peer_outdated_the_peer() {
    require("qemu-io");
    let scripts = scratch_dir();
    // The script needs bob's paths, which exist only once the pair does: the config
    // names a wrapper that runs the real script written below.
    let wrapper = scripts.path().join("wrapper.sh");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec {}/fence.sh\n", scripts.path().display()),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&wrapper));
    let p = Pair::with(PairOptions {
        disk: "fencing resource-and-stonith;".into(),
        handlers: format!(
            "fence-peer \"{}\"; unfence-peer \"touch {}/unfenced-$RDBD_NODE\";",
            wrapper.display(),
            scripts.path().display()
        ),
        netns: true,
        ..PairOptions::default()
    });
    fence_script(scripts.path(), &p.b);
    p.up_and_sync();
    let net = p.net.as_ref().expect("netns pair");
    net.cut();
    // alice notices (ping), freezes I/O and calls fence-peer, which waits for "go".
    wait_line_or_log(&p.a, "ro:Primary/Unknown ds:UpToDate/DUnknown C s---", 30);
    wait_log(&p.a, "helper command: rdbdadm fence-peer r0", 10);
    // A write now does not complete.
    let sock = p.a.run_dir.join("nbd.sock");
    let writer = std::thread::spawn(move || {
        let started = Instant::now();
        run_ok(
            Command::new("qemu-io")
                .arg("--image-opts")
                .arg(format!("driver=nbd,path={},export=r0", sock.display()))
                .args(["-c", "write -P 0xab 1M 64k", "-c", "aio_flush"]),
        );
        started.elapsed()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !writer.is_finished(),
        "a write completed while I/O was frozen"
    );
    // bob must have noticed the loss before it can be outdated.
    wait_line(&p.b, "ro:Secondary/Unknown ds:UpToDate/DUnknown", 30);
    std::fs::write(scripts.path().join("go"), "").unwrap();
    wait_line(&p.a, "ro:Primary/Unknown ds:UpToDate/Outdated C r---", 30);
    let waited = writer.join().unwrap();
    assert!(
        waited >= Duration::from_secs(2),
        "the write waited for the fencing: {waited:?}"
    );
    let log = wait_log(&p.a, "fence-peer helper returned 4 (peer was fenced)", 10);
    assert!(
        log.contains("helper command: rdbdadm fence-peer r0 exit code 4 (0x400)"),
        "{log}"
    );
    let env = std::fs::read_to_string(scripts.path().join("fence.env")).unwrap();
    for line in [
        "DRBD_RESOURCE=r0",
        "DRBD_PEER=bob",
        "DRBD_PEERS=bob",
        "DRBD_PEER_AF=ipv4",
        &format!("DRBD_PEER_ADDRESS={}", p.addr[1]),
        "DRBD_MINOR=0",
        "DRBD_VOLUME=0",
        "HOME=/",
        "TERM=linux",
        "PATH=/sbin:/usr/sbin:/bin:/usr/bin",
        "RDBD_NODE=alice",
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "{line} in the handler's environment:\n{env}"
        );
    }
    // bob is Outdated and refuses to become Primary without --force.
    wait_line(&p.b, "ds:Outdated/DUnknown", 10);
    let out = p.b.adm_run(&["primary", "r0"]);
    assert!(
        !out.status.success(),
        "an Outdated Secondary must not be promoted"
    );
    let msg = format!("{}{}", stdout(&out), stderr(&out));
    assert!(msg.contains("Need access to UpToDate data"), "{msg}");
    // The fenced peer is recorded in alice's meta-data (MDF_PEER_OUT_DATED).
    p.a.adm_ok(&["down", "r0"]);
    p.a.adm_ok(&["up", "r0"]);
    wait_line(&p.a, "ds:UpToDate/Outdated", 10);
    p.a.adm_ok(&["primary", "r0"]);
    // Healed: bob resyncs from alice.
    net.heal();
    wait_line(
        &p.a,
        "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r---",
        60,
    );
    wait_line(
        &p.b,
        "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        30,
    );
    assert_eq!(
        checksum(&p.disk_a),
        checksum(&p.disk_b),
        "data equal after the resync"
    );
    // Both UpToDate again after a resync: unfence-peer runs on both sides.
    for node in ["alice", "bob"] {
        let marker = scripts.path().join(format!("unfenced-{node}"));
        let start = Instant::now();
        while !marker.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "unfence-peer did not run on {node}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn resource_only_fences_without_freezing_io() {
    require("qemu-io");
    let scripts = scratch_dir();
    let script = scripts.path().join("fence.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$DRBD_RESOURCE $DRBD_PEER\" > {}\nsleep 3\nexit 5\n",
            scripts.path().join("ran").display()
        ),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&script));
    let p = Pair::with(PairOptions {
        disk: "fencing resource-only;".into(),
        handlers: format!("fence-peer \"{}\";", script.display()),
        ..PairOptions::default()
    });
    p.up_and_sync();
    // bob dies: alice's peer is unreachable (exit 5: assumed dead, Outdated).
    p.b.crash();
    wait_log(&p.a, "helper command: rdbdadm fence-peer r0", 30);
    // Writes go on while the handler runs.
    let status = p.a.status_file();
    assert!(
        status.contains(" C r---"),
        "I/O is not frozen with resource-only:\n{status}"
    );
    let started = Instant::now();
    write_pattern(&p.a, 0xc3, 0, 1 << 20);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a write waited for fence-peer"
    );
    wait_line(&p.a, "ro:Primary/Unknown ds:UpToDate/Outdated", 30);
    wait_log(
        &p.a,
        "fence-peer helper returned 5 (peer is unreachable, assumed to be dead)",
        10,
    );
    let ran = std::fs::read_to_string(scripts.path().join("ran")).unwrap();
    assert_eq!(ran.trim(), "r0 bob");
}

/// DRBD 8.4.11's call-pri-lost-after-sb cannot demote the losing Primary during the
/// handshake (role changes are refused while the connection is being established:
/// STATE_SENT, SS_IN_TRANSIENT_STATE), so it runs `pri-lost-after-sb` and the split
/// brain stays unresolved on the loser, as a kernel 8.4.11 peer does. The winner, a
/// Secondary, had decided to be SyncSource and just loses the connection.
#[test]
fn call_pri_lost_after_sb_runs_pri_lost_after_sb_on_the_losing_primary() {
    // bob, the younger primary, loses (0pri discard-younger-primary) and is the one
    // Primary; nobody holds bob's device open.
    let sb = split(
        "after-sb-0pri discard-younger-primary; after-sb-1pri call-pri-lost-after-sb;",
        Scenario {
            a_primary: false,
            b_primary: true,
            ..BOTH_WRITE
        },
    );
    let p = &sb.p;
    connect_both(p);
    let line = sb.h.wait_call("pri-lost-after-sb", "bob", 30);
    assert!(
        line.contains(" res=r0 ") && line.contains(" peer=alice "),
        "{line}"
    );
    sb.h.wait_call("split-brain", "bob", 10);
    let log_b = wait_log(
        &p.b,
        "Split-Brain detected but unresolved, dropping connection!",
        30,
    );
    assert!(
        !log_b.contains("Successfully gave up primary role."),
        "{log_b}"
    );
    wait_line_or_log(&p.b, "cs:StandAlone ro:Primary/Unknown", 30);
    wait_log(
        &p.a,
        "Split-Brain detected, 1 primaries, automatically solved. Sync from this node",
        30,
    );
    assert!(
        sb.h.calls("pri-lost-after-sb", "alice").is_empty()
            && sb.h.calls("split-brain", "alice").is_empty(),
        "{}",
        sb.h.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(p.b.status_file().contains("cs:StandAlone"));
    assert_eq!(checksum(&p.disk_a), sb.sum_a, "alice's data untouched");
    assert_eq!(checksum(&p.disk_b), sb.sum_b, "bob's data untouched");
    // What pri-lost-after-sb asks for: the loser steps down; with no Primary left the
    // 0pri policy resolves it and bob resyncs from alice.
    p.b.adm_ok(&["secondary", "r0"]);
    p.b.adm_ok(&["connect", "r0"]);
    expect_resync_from(&sb, 0);
    wait_line(&p.b, "ro:Secondary/Secondary", 10);
}

#[test]
fn call_pri_lost_after_sb_runs_the_handler_when_the_primary_is_in_use() {
    require("qemu-io");
    let sb = split(
        "after-sb-0pri discard-younger-primary; after-sb-1pri call-pri-lost-after-sb;",
        Scenario {
            a_primary: false,
            b_primary: true,
            ..BOTH_WRITE
        },
    );
    // An NBD client keeps bob's device open: bob cannot demote.
    let opened_before = node_log(&sb.p.b)
        .matches("NBD client opened the export")
        .count();
    let mut client = Command::new("qemu-io")
        .arg("--image-opts")
        .arg(format!(
            "driver=nbd,path={},export=r0",
            sb.p.b.run_dir.join("nbd.sock").display()
        ))
        .args(["-c", "sleep 60000"])
        .spawn()
        .unwrap();
    let start = Instant::now();
    while node_log(&sb.p.b)
        .matches("NBD client opened the export")
        .count()
        <= opened_before
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "qemu-io did not open bob's export"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    connect_both(&sb.p);
    let line = sb.h.wait_call("pri-lost-after-sb", "bob", 30);
    assert!(line.contains(" res=r0 "), "{line}");
    sb.h.wait_call("split-brain", "bob", 10);
    wait_log(
        &sb.p.b,
        "helper command: rdbdadm pri-lost-after-sb minor-0",
        10,
    );
    wait_line(&sb.p.b, "cs:StandAlone ro:Primary/Unknown", 30);
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(checksum(&sb.p.disk_b), sb.sum_b, "bob's data untouched");
}

#[test]
fn promoting_a_disconnected_secondary_with_fencing_runs_fence_peer_first() {
    let scripts = scratch_dir();
    let code = scripts.path().join("code");
    std::fs::write(&code, "1").unwrap();
    let script = scripts.path().join("fence.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$DRBD_PEER\" >> {}\nexit $(cat {})\n",
            scripts.path().join("ran").display(),
            code.display()
        ),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&script));
    let p = Pair::with(PairOptions {
        disk: "fencing resource-only;".into(),
        handlers: format!("fence-peer \"{}\";", script.display()),
        ..PairOptions::default()
    });
    p.up_and_sync();
    p.a.crash();
    wait_line(&p.b, "ro:Secondary/Unknown ds:UpToDate/DUnknown", 30);
    // A broken handler: the peer may still be UpToDate, no promotion.
    let out = p.b.adm_run(&["primary", "r0"]);
    assert!(!out.status.success(), "promoted without fencing the peer");
    let msg = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        msg.contains("(-7) Refusing to be Primary while peer is not outdated"),
        "{msg}"
    );
    wait_log(&p.b, "fence-peer helper broken, returned 1", 10);
    // Exit code 5: the peer is down, taken as Outdated; the promotion goes on.
    std::fs::write(&code, "5").unwrap();
    p.b.adm_ok(&["primary", "r0"]);
    wait_line(&p.b, "ro:Primary/Unknown ds:UpToDate/Outdated", 10);
    let ran = std::fs::read_to_string(scripts.path().join("ran")).unwrap();
    assert_eq!(ran, "alice\nalice\n");
}

#[test]
fn a_failing_fence_peer_keeps_io_frozen_until_resume_io() {
    require("qemu-io");
    let scripts = scratch_dir();
    let script = scripts.path().join("fence.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 1\n").unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&script));
    let p = Pair::with(PairOptions {
        disk: "fencing resource-and-stonith;".into(),
        handlers: format!("fence-peer \"{}\";", script.display()),
        ..PairOptions::default()
    });
    p.up_and_sync();
    p.b.crash();
    wait_log(&p.a, "fence-peer helper broken, returned 1", 30);
    wait_line_or_log(&p.a, "ro:Primary/Unknown ds:UpToDate/DUnknown C s---", 10);
    let sock = p.a.run_dir.join("nbd.sock");
    let writer = std::thread::spawn(move || {
        run_ok(
            Command::new("qemu-io")
                .arg("--image-opts")
                .arg(format!("driver=nbd,path={},export=r0", sock.display()))
                .args(["-c", "write -P 0x5a 0 64k", "-c", "aio_flush"]),
        );
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !writer.is_finished(),
        "a write completed while I/O was frozen"
    );
    p.a.adm_ok(&["resume-io", "r0"]);
    let start = Instant::now();
    while !writer.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "resume-io did not release the write"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.join().unwrap();
    wait_line(&p.a, "ro:Primary/Unknown ds:UpToDate/DUnknown C r---", 10);
}

#[test]
fn disconnect_of_a_fencing_primary_outdates_the_peer() {
    require("qemu-io");
    let p = Pair::with(PairOptions {
        disk: "fencing resource-only;".into(),
        handlers: "fence-peer \"exit 1\";".into(),
        ..PairOptions::default()
    });
    p.up_and_sync();
    p.a.adm_ok(&["disconnect", "r0"]);
    wait_line_or_log(
        &p.a,
        "cs:StandAlone ro:Primary/Unknown ds:UpToDate/Outdated",
        10,
    );
    wait_line_or_log(&p.b, "ro:Secondary/Unknown ds:Outdated/DUnknown", 10);
    assert!(
        !node_log(&p.a).contains("helper command: rdbdadm fence-peer"),
        "a graceful disconnect needs no fence-peer"
    );
    let out = p.b.adm_run(&["primary", "r0"]);
    assert!(
        !out.status.success(),
        "an Outdated peer must not be promoted"
    );
    // The Primary's writes from now on reach bob by a resync.
    write_pattern(&p.a, 0x77, 0, 1 << 20);
    p.a.adm_ok(&["connect", "r0"]);
    p.wait_in_sync();
    assert_eq!(
        checksum(&p.disk_a),
        checksum(&p.disk_b),
        "data equal after the resync"
    );
}

/// Both Primary at the reconnect: what each side logs, then both StandAlone and
/// still Primary with their data untouched.
fn expect_two_primaries_dropped(sb: &Split, lines: [&[&str]; 2]) {
    let p = &sb.p;
    for (n, lines) in [(&p.a, lines[0]), (&p.b, lines[1])] {
        for line in lines {
            wait_log(n, line, 30);
        }
        wait_line_or_log(n, "cs:StandAlone ro:Primary/Unknown", 30);
    }
    // Still apart a moment later: nobody retries, nobody resyncs.
    std::thread::sleep(Duration::from_secs(2));
    for n in [&p.a, &p.b] {
        let status = n.status_file();
        assert!(
            status.contains("cs:StandAlone ro:Primary/Unknown"),
            "{}: {status}\n{}",
            n.name,
            node_log(n)
        );
    }
    assert_eq!(checksum(&p.disk_a), sb.sum_a, "alice's data untouched");
    assert_eq!(checksum(&p.disk_b), sb.sum_b, "bob's data untouched");
}

const TWO_PRIMARIES: Scenario = Scenario {
    a_primary: true,
    b_primary: true,
    ..BOTH_WRITE
};

/// DRBD 8.4 `drbd_asb_recover_2p` with `violently-as0p`: the after-sb-0pri verdict
/// (bob, the younger primary, loses). bob is Primary, so `rr-conflict disconnect` (the
/// default) refuses to make it SyncTarget; alice, the winner, cannot enter WFBitMapS
/// with a Primary peer without allow-two-primaries (SS_TWO_PRIMARIES in
/// `receive_state`): both drop the connection, nothing is discarded.
#[test]
fn after_sb_2pri_violently_as0p_with_two_primaries_refuses_the_primary_as_sync_target() {
    let sb = split(
        "after-sb-0pri discard-younger-primary; after-sb-2pri violently-as0p;",
        TWO_PRIMARIES,
    );
    connect_both(&sb.p);
    expect_two_primaries_dropped(
        &sb,
        [
            &[
                "Split-Brain detected, 2 primaries, automatically solved. Sync from this node",
                "State change failed: Multiple primaries not allowed by config",
            ],
            &[
                "Split-Brain detected, 2 primaries, automatically solved. Sync from peer node",
                "I shall become SyncTarget, but I am primary!",
            ],
        ],
    );
    for node in ["alice", "bob"] {
        sb.h.wait_call("initial-split-brain", node, 10);
        assert!(
            sb.h.calls("split-brain", node).is_empty(),
            "a resolved split brain runs no split-brain handler:\n{}",
            sb.h.log()
        );
    }
}

/// As above with `rr-conflict violently`: bob accepts to become SyncTarget although
/// Primary, and the state change into WFBitMapT with a Primary peer fails on bob too.
#[test]
fn after_sb_2pri_violently_as0p_with_rr_conflict_violently_still_needs_one_primary() {
    let sb = split(
        "after-sb-0pri discard-younger-primary; after-sb-2pri violently-as0p; rr-conflict violently;",
        TWO_PRIMARIES,
    );
    connect_both(&sb.p);
    expect_two_primaries_dropped(
        &sb,
        [
            &["State change failed: Multiple primaries not allowed by config"],
            &[
                "Becoming SyncTarget, violating the stable-data",
                "State change failed: Multiple primaries not allowed by config",
            ],
        ],
    );
}

/// `call-pri-lost-after-sb` with two Primaries: the after-sb-0pri loser (bob) cannot
/// give up the Primary role during the handshake (DRBD 8.4.11, see above), runs
/// `pri-lost-after-sb` and leaves the split brain unresolved (`split-brain` handler);
/// alice, the winner, cannot become SyncSource of a Primary (SS_TWO_PRIMARIES) and
/// drops the connection too. A kernel 8.4.11 peer logs the same on either side.
#[test]
fn after_sb_2pri_call_pri_lost_after_sb_runs_pri_lost_after_sb_on_the_loser() {
    let sb = split(
        "after-sb-0pri discard-younger-primary; after-sb-1pri discard-secondary; after-sb-2pri call-pri-lost-after-sb;",
        TWO_PRIMARIES,
    );
    connect_both(&sb.p);
    let line = sb.h.wait_call("pri-lost-after-sb", "bob", 30);
    assert!(
        line.contains(" res=r0 ") && line.contains(" peer=alice "),
        "{line}"
    );
    sb.h.wait_call("split-brain", "bob", 10);
    expect_two_primaries_dropped(
        &sb,
        [
            &[
                "Split-Brain detected, 2 primaries, automatically solved. Sync from this node",
                "State change failed: Multiple primaries not allowed by config",
            ],
            &[
                "helper command: rdbdadm pri-lost-after-sb minor-0",
                "Split-Brain detected but unresolved, dropping connection!",
            ],
        ],
    );
    assert!(
        sb.h.calls("pri-lost-after-sb", "alice").is_empty()
            && sb.h.calls("split-brain", "alice").is_empty(),
        "{}",
        sb.h.log()
    );
    // Recovery: the loser steps down; one Primary left, after-sb-1pri
    // discard-secondary resyncs bob from alice.
    let p = &sb.p;
    p.b.adm_ok(&["secondary", "r0"]);
    connect_both(p);
    expect_resync_from(&sb, 0);
    wait_line(&p.b, "ro:Secondary/Primary", 10);
}

/// The kernel peer's dmesg lines that mention DRBD.
fn kernel_drbd_log(p: &mut KernelPair) -> String {
    p.g("dmesg | grep -i drbd")
}

/// Waits until the kernel peer's /proc/drbd shows `cs`.
fn kernel_wait_cs(p: &mut KernelPair, cs: &str, secs: u64) {
    let start = Instant::now();
    loop {
        let text = p.g("cat /proc/drbd");
        if text.contains(&format!("cs:{cs} ")) {
            return;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let dmesg = kernel_drbd_log(p);
            p.vm.fail(&format!(
                "the kernel peer never showed cs:{cs}:\n{text}\n{dmesg}"
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// rdbd's configuration with `net` and an `initial-split-brain` handler that sleeps 5 s:
/// rdbd decides late, so the kernel has decided (and logged why) before rdbd drops the
/// connection.
fn kernel_pair_config(p: &KernelPair, net: &str) {
    p.rdbd.write_config("C", Auth::None, net);
    let text = std::fs::read_to_string(&p.rdbd.node.config).unwrap();
    std::fs::write(
        &p.rdbd.node.config,
        text.replace(
            "disk {",
            "handlers { initial-split-brain \"sleep 5\"; } disk {",
        ),
    )
    .unwrap();
}

/// after-sb-2pri with two Primaries against a kernel DRBD 8.4.11 peer, the facts the
/// rdbd-with-rdbd tests above rely on:
///
/// 1. `violently-as0p`: the kernel (older primary) wins by after-sb-0pri but cannot
///    become SyncSource of a Primary ("State change failed: Multiple primaries not
///    allowed by config", StandAlone); rdbd (younger, Primary) refuses to become
///    SyncTarget (rr-conflict disconnect).
/// 2. `call-pri-lost-after-sb` with the kernel losing (discard-older-primary): the
///    kernel does not demote during the handshake but runs pri-lost-after-sb and leaves
///    the split brain unresolved; rdbd, the winner, refuses two Primaries.
///
/// Both data areas stay untouched.
#[test]
fn kernel_peer_two_primaries_after_split_brain_end_standalone_as_in_drbd() {
    let net1 = "after-sb-0pri discard-younger-primary; after-sb-1pri discard-secondary; after-sb-2pri violently-as0p; ping-timeout 30;";
    let k1 = "--after-sb-0pri=discard-younger-primary --after-sb-1pri=discard-secondary --after-sb-2pri=violently-as0p";
    let mut p = KernelPair::boot(Direction::KernelPrimary, "C", net1);
    kernel_pair_config(&p, net1);
    p.rdbd.node.adm_ok(&["up", "r0"]);
    p.g(&format!("g_up C '{k1}'"));
    p.rdbd.wait_status(
        &p.vm,
        "cs:Connected ro:Secondary/Secondary ds:Inconsistent/Inconsistent",
        120,
    );
    p.g("kp_run drbdsetup primary 0 --force");
    p.rdbd.wait_status(
        &p.vm,
        "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        180,
    );
    p.g("g_wait_synced 60");
    // Split: the kernel stays Primary (older), rdbd is promoted later (younger).
    p.rdbd.node.adm_ok(&["disconnect", "r0"]);
    p.g("g_disconnect");
    p.rdbd.node.adm_ok(&["primary", "r0"]);
    write_blocks(&p.rdbd.node, 0xb2, &[(16 << 20, 1 << 20)]);
    p.g("g_write 0 16");
    let (ours, theirs) = (p.rdbd_area(), p.guest_area());
    assert_ne!(ours, theirs, "the split sides must differ");

    p.rdbd.node.adm_ok(&["connect", "r0"]);
    p.g(&format!("g_connect C '{k1}'"));
    kernel_wait_cs(&mut p, "StandAlone", 60);
    let dmesg = kernel_drbd_log(&mut p);
    for line in [
        "Split-Brain detected, 2 primaries, automatically solved. Sync from this node",
        "State change failed: Multiple primaries not allowed by config",
    ] {
        assert!(dmesg.contains(line), "kernel: no {line:?}:\n{dmesg}");
    }
    wait_log(
        &p.rdbd.node,
        "I shall become SyncTarget, but I am primary!",
        30,
    );
    p.rdbd
        .wait_status(&p.vm, "cs:StandAlone ro:Primary/Unknown", 30);
    assert_eq!(
        (p.rdbd_area(), p.guest_area()),
        (ours.clone(), theirs.clone())
    );

    // Phase 2: call-pri-lost-after-sb, the kernel (older primary) loses.
    let net2 = "after-sb-0pri discard-older-primary; after-sb-1pri discard-secondary; after-sb-2pri call-pri-lost-after-sb; ping-timeout 30;";
    let k2 = "--after-sb-0pri=discard-older-primary --after-sb-1pri=discard-secondary --after-sb-2pri=call-pri-lost-after-sb";
    kernel_pair_config(&p, net2);
    p.rdbd.node.adm_ok(&["adjust", "r0"]);
    let _ = p.rdbd.node.adm_run(&["disconnect", "r0"]);
    p.rdbd.wait_status(&p.vm, "cs:StandAlone", 30);
    let before = kernel_drbd_log(&mut p).lines().count();
    p.rdbd.node.adm_ok(&["connect", "r0"]);
    p.g(&format!("g_connect C '{k2}'"));
    kernel_wait_cs(&mut p, "StandAlone", 60);
    let dmesg = kernel_drbd_log(&mut p);
    let phase2: String = dmesg.lines().skip(before).collect::<Vec<_>>().join("\n");
    for line in [
        "helper command: /sbin/drbdadm pri-lost-after-sb minor-0",
        "Split-Brain detected but unresolved, dropping connection!",
    ] {
        assert!(phase2.contains(line), "kernel: no {line:?}:\n{phase2}");
    }
    assert!(
        !phase2.contains("Successfully gave up primary role."),
        "{phase2}"
    );
    assert!(
        p.g("cat /proc/drbd").contains("ro:Primary/Unknown"),
        "the kernel stays Primary"
    );
    wait_log(
        &p.rdbd.node,
        "State change failed: Multiple primaries not allowed by config",
        30,
    );
    p.rdbd
        .wait_status(&p.vm, "cs:StandAlone ro:Primary/Unknown", 30);
    assert_eq!((p.rdbd_area(), p.guest_area()), (ours, theirs));
}
