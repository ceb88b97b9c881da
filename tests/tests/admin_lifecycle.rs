//! The resource-lifecycle commands through real processes: `detach`, `attach`,
//! `invalidate-remote` and `adjust` on a replicating pair (real `rdbd`/`rdbdadm`, NBD
//! clients, drbdmeta), ending with the data areas of both backing files compared.
//!
//! - detach on the Secondary: the claim is released (flock), drbdmeta reads clean
//!   meta-data, the Primary shows pdsk Diskless and tracks its writes; attach makes the
//!   disk SyncTarget of exactly those blocks;
//! - detach of a Primary with an NBD client is refused; a diskless Primary refuses
//!   opens; attach again serves;
//! - invalidate-remote repairs a peer whose backing file was corrupted;
//! - adjust: a protocol change reconnects both nodes with the new protocol, a StandAlone
//!   node is connected, a detached one attached, a resource that is down brought up, a
//!   changed backing disk refused; `-d` prints the commands.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rdbd_tests::node::Node;
use rdbd_tests::pair::{fio_verify, node_log, wait_line, wait_log, Pair, DATA_BYTES};
use rdbd_tests::tools::{hold_open, require, run, run_ok, sha256_prefix, stderr, stdout};

/// Both data areas equal after `down` on both nodes.
fn down_and_compare(p: &Pair, what: &str) {
    if p.a.status_file().contains("ro:Primary") {
        p.a.adm_ok(&["secondary", "r0"]);
    }
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
    assert_eq!(
        sha256_prefix(&p.disk_a, DATA_BYTES),
        sha256_prefix(&p.disk_b, DATA_BYTES),
        "{what}: the data areas differ after down"
    );
}

/// Whether another process could take the exclusive claim on `file` now.
fn claim_free(file: &Path) -> bool {
    run(Command::new("flock").arg("-n").arg(file).arg("true"))
        .status
        .success()
}

/// `drbdmeta --force - v08 FILE internal dump-md`.
fn drbdmeta_dump(file: &Path) -> std::process::Output {
    let out = run(Command::new("drbdmeta")
        .args(["--force", "-", "v08"])
        .arg(file)
        .args(["internal", "dump-md"]));
    let _ = std::fs::remove_file("/var/lib/drbd/drbd-minor--1.lkbd");
    out
}

/// Waits until `what` occurs at least `n` times in the node's log.
fn wait_count(node: &Node, what: &str, n: usize, secs: u64) {
    let start = std::time::Instant::now();
    loop {
        let log = node_log(node);
        if log.matches(what).count() >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "fewer than {n} {what:?} in {}'s log:\n{log}",
            node.name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status_of(node: &Node) -> String {
    node.status_file()
}

#[test]
fn detach_and_attach_resync_what_changed_meanwhile() {
    require("fio");
    require("drbdmeta");
    require("flock");
    let p = Pair::synced("protocol C;");
    assert!(
        !claim_free(&p.disk_b),
        "an attached disk must be claimed by the daemon"
    );
    p.b.adm_ok(&["detach", "r0"]);
    wait_line(&p.b, "ds:Diskless/UpToDate", 10);
    wait_line(&p.a, "ds:UpToDate/Diskless", 10);
    assert!(
        claim_free(&p.disk_b),
        "detach must release the claim on the backing file"
    );
    let dump = drbdmeta_dump(&p.disk_b);
    assert!(
        dump.status.success(),
        "drbdmeta must read the detached disk's meta-data (clean superblock): {}",
        stderr(&dump)
    );
    assert!(stdout(&dump).contains("la-size-sect"), "{}", stdout(&dump));
    // Written while bob is diskless: alice tracks the blocks in her bitmap.
    let uri = p.a.nbd_uri("r0");
    fio_verify(&uri, "randwrite", "4k", "16", "8M");
    p.a.wait_status(
        "out-of-sync blocks on alice",
        Duration::from_secs(10),
        |t| t.contains("ds:UpToDate/Diskless") && !t.contains(" oos:0"),
    );
    // Detach twice is harmless.
    let again = p.b.adm_ok(&["detach", "r0"]);
    assert!(again.contains("already"), "{again}");
    p.b.adm_ok(&["attach", "r0"]);
    assert!(!claim_free(&p.disk_b), "attach must claim the disk again");
    // The initial sync was the first resync as SyncTarget; the attach starts the second.
    wait_count(&p.b, "Began resync as SyncTarget", 2, 20);
    p.wait_in_sync();
    let st = status_of(&p.a);
    assert!(
        st.contains(" oos:0"),
        "resynced, nothing out of sync:\n{st}"
    );
    // Not a full sync: only the written blocks moved (8 MiB of 64).
    let log = node_log(&p.b);
    let line = log
        .lines()
        .rfind(|l| l.contains("Began resync as SyncTarget"))
        .expect("resync line");
    let kb: u64 = line
        .split("will sync ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {line}"));
    assert!(
        kb > 0 && kb <= 8 * 1024,
        "the resync after attach must cover the written blocks only: {line}"
    );
    // More writes replicate normally again.
    fio_verify(&uri, "write", "64k", "8", "4M");
    down_and_compare(&p, "detach/attach");
}

#[test]
fn a_detached_primary_keeps_serving_its_client_through_the_peer() {
    require("nbdinfo");
    require("fio");
    let p = Pair::synced("protocol C;");
    let uri = p.a.nbd_uri("r0");
    // Without a peer to serve the client, detach is refused.
    p.a.adm_ok(&["disconnect", "r0"]);
    wait_line(&p.a, "cs:StandAlone", 10);
    let mut client = hold_open(&uri);
    let out = p.a.adm_run(&["detach", "r0"]);
    assert!(
        !out.status.success(),
        "detach with a client and no peer must fail"
    );
    assert!(
        stderr(&out).contains("NBD client") && stderr(&out).contains("peer"),
        "the refusal must say why: {}",
        stderr(&out)
    );
    p.a.adm_ok(&["connect", "r0"]);
    wait_line(
        &p.a,
        "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate",
        30,
    );
    // Connected to an UpToDate peer: the open client keeps working through it.
    p.a.adm_ok(&["detach", "r0"]);
    wait_line(&p.a, "ds:Diskless/UpToDate", 10);
    wait_line(&p.b, "ds:UpToDate/Diskless", 10);
    assert!(
        claim_free(&p.disk_a),
        "the detached Primary must not hold its disk"
    );
    let _ = client.kill();
    let _ = client.wait();
    fio_verify(&uri, "randwrite", "4k", "16", "8M");
    fio_verify(&uri, "write", "128k", "4", "4M");
    let st = status_of(&p.a);
    assert!(st.contains("ds:Diskless/UpToDate"), "{st}");
    // Attach as Primary would need a SyncTarget Primary: refused with the way out.
    let out = p.a.adm_run(&["attach", "r0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("secondary"), "{}", stderr(&out));
    p.a.adm_ok(&["secondary", "r0"]);
    p.a.adm_ok(&["attach", "r0"]);
    wait_count(&p.a, "Began resync as SyncTarget", 1, 20);
    wait_line(
        &p.a,
        "cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate",
        60,
    );
    let log = node_log(&p.a);
    let line = log
        .lines()
        .rfind(|l| l.contains("Began resync as SyncTarget"))
        .expect("resync line");
    assert!(
        !line.contains(&format!("will sync {} KB", DATA_BYTES / 1024)),
        "only the blocks written through the peer are resynced: {line}"
    );
    p.a.adm_ok(&["primary", "r0"]);
    run_ok(Command::new("nbdinfo").arg(&uri));
    down_and_compare(&p, "diskless primary");
}

#[test]
fn down_of_a_detached_resource_and_up_again() {
    require("drbdmeta");
    let p = Pair::synced("protocol C;");
    p.b.adm_ok(&["detach", "r0"]);
    wait_line(&p.b, "ds:Diskless/", 10);
    p.b.adm_ok(&["down", "r0"]);
    let dump = drbdmeta_dump(&p.disk_b);
    assert!(dump.status.success(), "{}", stderr(&dump));
    p.b.adm_ok(&["up", "r0"]);
    wait_line(
        &p.b,
        "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        30,
    );
    down_and_compare(&p, "down while detached");
}

#[test]
fn invalidate_remote_repairs_a_corrupted_peer() {
    require("fio");
    let p = Pair::synced("protocol C;");
    fio_verify(&p.a.nbd_uri("r0"), "write", "128k", "8", "48M");
    // Corrupt bob's data behind the daemon's back (down, so nothing is cached).
    p.b.adm_ok(&["down", "r0"]);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&p.disk_b)
            .unwrap();
        for i in 0..64u64 {
            f.seek(SeekFrom::Start(i * 512 * 1024 + 4096)).unwrap();
            f.write_all(&[0xA5; 8192]).unwrap();
        }
        f.sync_all().unwrap();
    }
    p.b.adm_ok(&["up", "r0"]);
    wait_line(
        &p.b,
        "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        30,
    );
    assert_ne!(
        sha256_prefix(&p.disk_a, DATA_BYTES),
        sha256_prefix(&p.disk_b, DATA_BYTES),
        "the corruption must be in place before invalidate-remote"
    );
    p.a.adm_ok(&["invalidate-remote", "r0"]);
    wait_log(
        &p.a,
        "invalidate-remote: began full resync as SyncSource",
        10,
    );
    wait_log(&p.b, "the peer invalidated our disk", 10);
    p.wait_in_sync();
    let log = node_log(&p.b);
    let line = log
        .lines()
        .rfind(|l| l.contains("Began resync as SyncTarget"))
        .expect("bob resynced as SyncTarget");
    assert!(
        line.contains(&format!("will sync {} KB", DATA_BYTES.div_ceil(4096) * 4)),
        "invalidate-remote is a full sync: {line}"
    );
    down_and_compare(&p, "invalidate-remote");
}

#[test]
fn invalidate_remote_needs_a_connection() {
    let p = Pair::synced("protocol C;");
    p.a.adm_ok(&["disconnect", "r0"]);
    wait_line(&p.a, "cs:StandAlone", 10);
    let out = p.a.adm_run(&["invalidate-remote", "r0"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("connected"),
        "the refusal must say why: {}",
        stderr(&out)
    );
    p.a.adm_ok(&["connect", "r0"]);
    wait_line(&p.a, "cs:Connected", 30);
    down_and_compare(&p, "refused invalidate-remote");
}

/// Replaces `from` by `to` in a node's configuration file.
fn edit_config(node: &Node, from: &str, to: &str) {
    let text = std::fs::read_to_string(&node.config).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    std::fs::write(&node.config, text.replace(from, to)).unwrap();
}

#[test]
fn adjust_reconnects_both_nodes_with_a_changed_protocol() {
    require("fio");
    let p = Pair::synced("protocol C;");
    let dry = p.a.adm_ok(&["-d", "adjust", "r0"]);
    assert_eq!(dry.trim(), "", "nothing to do while the file matches");
    for node in [&p.a, &p.b] {
        edit_config(node, "protocol C;", "protocol A;");
    }
    let dry = p.a.adm_ok(&["-d", "adjust", "r0"]);
    assert!(
        dry.contains("disconnect r0") && dry.contains("protocol"),
        "-d adjust must print the reconnect: {dry}"
    );
    assert!(
        status_of(&p.a).contains(" C r"),
        "-d must not change anything"
    );
    p.a.adm_ok(&["adjust", "r0"]);
    p.b.adm_ok(&["adjust", "r0"]);
    for node in [&p.a, &p.b] {
        let st = wait_line(node, "cs:Connected", 30);
        assert!(st.contains(" A r"), "protocol A after adjust:\n{st}");
    }
    wait_line(&p.a, "ds:UpToDate/UpToDate", 30);
    fio_verify(&p.a.nbd_uri("r0"), "randwrite", "4k", "16", "8M");
    let st = wait_line(&p.a, "cs:Connected", 5);
    assert!(st.contains(" A r"), "{st}");
    let again = p.a.adm_ok(&["-d", "adjust", "r0"]);
    assert_eq!(again.trim(), "", "adjusted: nothing left to do");
    down_and_compare(&p, "adjust protocol");
}

#[test]
fn adjust_connects_attaches_brings_up_and_refuses_a_new_disk() {
    let p = Pair::synced("protocol C;");
    p.b.adm_ok(&["disconnect", "r0"]);
    wait_line(&p.b, "cs:StandAlone", 10);
    let dry = p.b.adm_ok(&["-d", "adjust", "r0"]);
    assert_eq!(dry.trim(), "rdbdadm connect r0");
    p.b.adm_ok(&["adjust", "r0"]);
    wait_line(
        &p.b,
        "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        30,
    );

    p.b.adm_ok(&["detach", "r0"]);
    wait_line(&p.b, "ds:Diskless/", 10);
    let dry = p.b.adm_ok(&["-d", "adjust", "r0"]);
    assert_eq!(dry.trim(), "rdbdadm attach r0");
    p.b.adm_ok(&["adjust", "r0"]);
    wait_line(
        &p.b,
        "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        30,
    );

    p.b.adm_ok(&["down", "r0"]);
    let dry = p.b.adm_ok(&["-d", "adjust", "r0"]);
    assert!(dry.contains("up r0"), "{dry}");
    p.b.adm_ok(&["adjust", "r0"]);
    wait_line(
        &p.b,
        "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        30,
    );

    let disk = p.disk_b.display().to_string();
    edit_config(
        &p.b,
        &format!("disk {disk};"),
        "disk /var/tmp/elsewhere.img;",
    );
    let out = p.b.adm_run(&["adjust", "r0"]);
    assert!(
        !out.status.success(),
        "a changed backing disk must be refused"
    );
    assert!(
        stderr(&out).contains("backing disk changed") && stderr(&out).contains("down"),
        "{}",
        stderr(&out)
    );
    edit_config(
        &p.b,
        "disk /var/tmp/elsewhere.img;",
        &format!("disk {disk};"),
    );
    down_and_compare(&p, "adjust connect/attach/up");
}

#[test]
fn a_diskless_node_connects_without_a_sync_and_attaches_later() {
    require("fio");
    let p = Pair::synced("protocol C;");
    p.b.adm_ok(&["disconnect", "r0"]);
    p.b.adm_ok(&["detach", "r0"]);
    // /proc/drbd shows a minor without disk and network as Unconfigured, as DRBD does.
    wait_line(&p.b, "cs:Unconfigured", 10);
    assert_eq!(p.b.adm_ok(&["dstate", "r0"]).trim(), "Diskless/DUnknown");
    assert_eq!(p.b.adm_ok(&["cstate", "r0"]).trim(), "StandAlone");
    fio_verify(&p.a.nbd_uri("r0"), "randwrite", "4k", "8", "4M");
    p.b.adm_ok(&["connect", "r0"]);
    wait_line(
        &p.b,
        "cs:Connected ro:Secondary/Primary ds:Diskless/UpToDate",
        30,
    );
    wait_line(
        &p.a,
        "cs:Connected ro:Primary/Secondary ds:UpToDate/Diskless",
        10,
    );
    // Writes go nowhere on bob now; alice tracks them.
    fio_verify(&p.a.nbd_uri("r0"), "randwrite", "4k", "8", "4M");
    p.b.adm_ok(&["attach", "r0"]);
    wait_count(&p.b, "Began resync as SyncTarget", 2, 20);
    wait_line(
        &p.b,
        "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        60,
    );
    down_and_compare(&p, "diskless connect, attach later");
}

#[test]
fn adjust_changes_the_rate_of_a_running_resync_in_place() {
    let p = Pair::synced("protocol C;");
    for node in [&p.a, &p.b] {
        edit_config(node, "resync-rate 400M;", "resync-rate 1M;");
    }
    let dry = p.b.adm_ok(&["-d", "adjust", "r0"]);
    assert!(
        dry.contains("resync-rate") && !dry.contains("disconnect"),
        "a disk option is applied without reconnecting: {dry}"
    );
    p.a.adm_ok(&["adjust", "r0"]);
    p.b.adm_ok(&["adjust", "r0"]);
    wait_log(&p.b, "disk options changed by adjust", 5);
    p.a.adm_ok(&["invalidate-remote", "r0"]);
    wait_line(&p.b, "cs:SyncTarget", 10);
    std::thread::sleep(Duration::from_secs(3));
    let st = status_of(&p.b);
    assert!(
        st.contains("cs:SyncTarget"),
        "at 1 MiB/s the 64 MiB full sync takes about a minute:\n{st}"
    );
    for node in [&p.a, &p.b] {
        edit_config(node, "resync-rate 1M;", "resync-rate 400M;");
    }
    p.b.adm_ok(&["adjust", "r0"]);
    p.a.adm_ok(&["adjust", "r0"]);
    wait_line(
        &p.b,
        "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        20,
    );
    let dry = p.b.adm_ok(&["-d", "adjust", "r0"]);
    assert_eq!(dry.trim(), "", "adjusted: nothing left to do");
    down_and_compare(&p, "adjust resync-rate");
}
