//! Split-brain recovery policies, manual recovery and bitmap-based resyncs, end to end
//! with two real daemons: that the expected side wins and that only the changed blocks
//! move.
//!
//! - after-sb-0pri `discard-node-bob` (as written in drbd.conf, and as the
//!   `discard-remote` / `discard-local` pair drbdadm turns it into); after-sb-1pri `consensus` (both outcomes) and
//!   `violently-as0p` (with `rr-conflict violently`); `rr-conflict` left at its default
//!   (`disconnect`): the Primary refuses to become SyncTarget and nothing is touched;
//! - `rdbdadm connect --discard-my-data r0` (the option after the command);
//! - disconnect, write known blocks, reconnect: the out-of-sync count is the number of
//!   dirtied 4 KiB blocks, and the SyncTarget receives exactly that many KiB (`nr:`);
//! - a full sync interrupted at about 40 % by SIGKILL of the SyncTarget resumes where it
//!   stopped.
//!
//! A split brain is made by `rdbd_tests::split_brain`: a synced pair (alice Primary)
//! disconnects, bob becomes Primary too, alice writes 2 MiB at 0 and bob 4 MiB at
//! 16 MiB, then the sides take the roles the scenario needs and connect. The changed
//! blocks of both sides (512 + 1024 bits) are what a bitmap-based resync moves.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use rdbd_tests::node::Node;
use rdbd_tests::pair::{node_log, wait_line, wait_log, Pair, PairOptions, DATA_BYTES};
use rdbd_tests::split_brain::{connect_both, data_checksum, write_blocks, SplitBrain};
use rdbd_tests::tools::{last_number_after, require};

/// A 3 s ping-timeout: a loaded machine must not drop the connection mid-test.
const NET: &str = "ping-timeout 30;";

/// KiB alice writes while split (at 0).
const WRITE_A_KIB: u64 = 2 << 10;
/// KiB bob writes while split (at 16 MiB).
const WRITE_B_KIB: u64 = 4 << 10;

fn checksum(path: &Path) -> String {
    data_checksum(path)
}

/// A status-file field such as `oos:` or `nr:`.
fn field(status: &str, key: &str) -> u64 {
    status
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in the status:\n{status}"))
}

/// Polls the node's status until `key` is `want` or `secs` passed; the last status.
fn wait_field(node: &Node, key: &str, want: u64, secs: u64) -> String {
    let start = Instant::now();
    loop {
        let status = node.status_file();
        if field(&status, key) == want || start.elapsed() > Duration::from_secs(secs) {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// KiB and bits of the last `Began resync as <role> (will sync N KB [B bits set])`.
fn began_resync(log: &str, role: &str) -> Option<(u64, u64)> {
    let key = format!("Began resync as {role} (will sync");
    let at = log.rfind(&key)?;
    let line = log[at..].lines().next()?;
    Some((
        last_number_after(line, "will sync")?,
        last_number_after(line, "[")?,
    ))
}

/// How many `Began resync as <role>` lines the node's log has.
fn count_began(node: &Node, role: &str) -> usize {
    node_log(node)
        .matches(&format!("Began resync as {role}"))
        .count()
}

/// Waits for a `Began resync as <role>` line after the `before` ones already in the
/// log and returns its KiB and bits.
fn wait_next_began(node: &Node, role: &str, before: usize, secs: u64) -> (u64, u64) {
    let start = Instant::now();
    loop {
        let log = node_log(node);
        if log.matches(&format!("Began resync as {role}")).count() > before {
            return began_resync(&log, role)
                .unwrap_or_else(|| panic!("unparsable resync line:\n{log}"));
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "no new 'Began resync as {role}' on {}:\n{log}",
            node.name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until both nodes are Connected and UpToDate/UpToDate.
fn wait_both_uptodate(p: &Pair, secs: u64) {
    for n in [&p.a, &p.b] {
        n.wait_status(
            "Connected UpToDate/UpToDate",
            Duration::from_secs(secs),
            |t| t.contains("cs:Connected") && t.contains("ds:UpToDate/UpToDate"),
        );
    }
}

/// Roles when connecting after the split.
#[derive(Clone, Copy)]
struct Roles {
    a_primary: bool,
    b_primary: bool,
}

/// A split pair, not connected, and the resync lines already in the logs.
struct Split {
    p: Pair,
    sum_a: String,
    sum_b: String,
    /// (SyncTarget, SyncSource) resync lines in alice's and bob's logs before connecting.
    began: [(usize, usize); 2],
}

/// A synced pair with `net` on both nodes, split: both Primary while disconnected,
/// alice writes [`WRITE_A_KIB`] at 0, bob [`WRITE_B_KIB`] at 16 MiB, then `roles`.
fn split(net: &str, roles: Roles) -> Split {
    split_per_node(net, net, roles)
}

/// [`split`] with different net options on alice and bob.
fn split_per_node(net_a: &str, net_b: &str, roles: Roles) -> Split {
    let sb = SplitBrain {
        net_a: format!("{NET} {net_a}"),
        net_b: format!("{NET} {net_b}"),
        handlers: false,
        write_a_bytes: WRITE_A_KIB << 10,
        write_b_bytes: WRITE_B_KIB << 10,
        a_primary: roles.a_primary,
        b_primary: roles.b_primary,
    }
    .make();
    let p = sb.p;
    let began = [&p.a, &p.b].map(|n| (count_began(n, "SyncTarget"), count_began(n, "SyncSource")));
    Split {
        p,
        sum_a: sb.sum_a,
        sum_b: sb.sum_b,
        began,
    }
}

/// Both end UpToDate with `winner`'s data (0 alice, 1 bob), and the resync was
/// bitmap-based: the loser's SyncTarget line names exactly the blocks either side
/// changed while split (DRBD merges both bitmaps), not the whole device.
fn expect_bitmap_resync_from(sb: &Split, winner: usize) {
    let p = &sb.p;
    let (source, target) = if winner == 0 {
        (&p.a, &p.b)
    } else {
        (&p.b, &p.a)
    };
    let changed_kib = WRITE_A_KIB + WRITE_B_KIB;
    let (kib, bits) = wait_next_began(target, "SyncTarget", sb.began[1 - winner].0, 60);
    assert_eq!(
        (kib, bits),
        (changed_kib, changed_kib / 4),
        "{}'s resync covers exactly the blocks changed while split (the device has {} KiB)",
        target.name,
        DATA_BYTES >> 10
    );
    let (kib, _) = wait_next_began(source, "SyncSource", sb.began[winner].1, 30);
    assert_eq!(kib, changed_kib, "{}'s SyncSource line", source.name);
    wait_both_uptodate(p, 60);
    let expected = if winner == 0 { &sb.sum_a } else { &sb.sum_b };
    let name = ["alice", "bob"][winner];
    assert_eq!(&checksum(&p.disk_a), expected, "alice holds {name}'s data");
    assert_eq!(&checksum(&p.disk_b), expected, "bob holds {name}'s data");
}

/// Neither side connects (the one that refused is StandAlone, the other is not
/// Connected), and both data areas are untouched.
fn expect_refused(sb: &Split, refuser: &Node, reason: &str) {
    let p = &sb.p;
    wait_log(refuser, reason, 30);
    wait_line(refuser, "cs:StandAlone", 30);
    // Still apart a moment later: nobody reconnects and resyncs.
    std::thread::sleep(Duration::from_secs(2));
    for n in [&p.a, &p.b] {
        let status = n.status_file();
        assert!(
            !status.contains("cs:Connected") && !status.contains("cs:Sync"),
            "{} must stay disconnected:\n{status}\n{}",
            n.name,
            node_log(n)
        );
        assert_eq!(
            (count_began(n, "SyncTarget"), count_began(n, "SyncSource")),
            sb.began[usize::from(n.name == "bob")],
            "{} started a resync",
            n.name
        );
    }
    assert!(refuser.status_file().contains("cs:StandAlone"));
    assert_eq!(checksum(&p.disk_a), sb.sum_a, "alice's data untouched");
    assert_eq!(checksum(&p.disk_b), sb.sum_b, "bob's data untouched");
}

const BOTH_SECONDARY: Roles = Roles {
    a_primary: false,
    b_primary: false,
};

const ALICE_PRIMARY: Roles = Roles {
    a_primary: true,
    b_primary: false,
};

/// after-sb-0pri that discards bob, as drbdadm hands it to the kernel for
/// `discard-node-bob`: `discard-remote` on alice, `discard-local` on bob.
const DISCARD_BOB: [&str; 2] = [
    "after-sb-0pri discard-remote;",
    "after-sb-0pri discard-local;",
];
/// The same for `discard-node-alice`.
const DISCARD_ALICE: [&str; 2] = [
    "after-sb-0pri discard-local;",
    "after-sb-0pri discard-remote;",
];

/// `policy` per node with `extra` on both.
fn split_with(policy: [&str; 2], extra: &str, roles: Roles) -> Split {
    split_per_node(
        &format!("{} {extra}", policy[0]),
        &format!("{} {extra}", policy[1]),
        roles,
    )
}

/// 0pri `discard-node-bob` (or its rewritten form): bob loses although bob has more
/// changes and is the younger primary (discard-least-changes or discard-older-primary
/// would keep bob's data).
fn expect_bob_discarded(sb: &Split) {
    connect_both(&sb.p);
    expect_bitmap_resync_from(sb, 0);
    wait_log(
        &sb.p.b,
        "Split-Brain detected, 0 primaries, automatically solved. Sync from peer node",
        10,
    );
}

#[test]
fn discard_node_bob_in_drbd_conf_discards_bobs_changes() {
    expect_bob_discarded(&split("after-sb-0pri discard-node-bob;", BOTH_SECONDARY));
}

#[test]
fn discard_node_bob_as_discard_local_and_remote_discards_bobs_changes() {
    expect_bob_discarded(&split_with(DISCARD_BOB, "", BOTH_SECONDARY));
}

#[test]
fn consensus_discards_the_secondary_when_the_0pri_policy_agrees() {
    let sb = split_with(DISCARD_BOB, "after-sb-1pri consensus;", ALICE_PRIMARY);
    connect_both(&sb.p);
    expect_bitmap_resync_from(&sb, 0);
    wait_line(&sb.p.a, "ro:Primary/Secondary", 10);
    wait_log(
        &sb.p.a,
        "Split-Brain detected, 1 primaries, automatically solved. Sync from this node",
        10,
    );
}

#[test]
fn consensus_disconnects_when_the_0pri_policy_would_discard_the_primary() {
    let sb = split_with(DISCARD_ALICE, "after-sb-1pri consensus;", ALICE_PRIMARY);
    connect_both(&sb.p);
    expect_refused(
        &sb,
        &sb.p.a,
        "Split-Brain detected but unresolved, dropping connection!",
    );
    wait_log(
        &sb.p.b,
        "Split-Brain detected but unresolved, dropping connection!",
        30,
    );
    wait_line(&sb.p.a, "ro:Primary/Unknown", 10);
}

#[test]
fn violently_as0p_with_rr_conflict_violently_discards_the_primarys_data() {
    // The 0pri result discards alice, the Primary: only rr-conflict violently lets the
    // Primary become SyncTarget.
    let sb = split_with(
        DISCARD_ALICE,
        "after-sb-1pri violently-as0p; rr-conflict violently;",
        ALICE_PRIMARY,
    );
    connect_both(&sb.p);
    expect_bitmap_resync_from(&sb, 1);
    wait_line(&sb.p.a, "ro:Primary/Secondary", 10);
    wait_log(
        &sb.p.a,
        "Becoming SyncTarget, violating the stable-data",
        10,
    );
}

#[test]
fn rr_conflict_default_refuses_to_make_the_primary_sync_target() {
    // violently-as0p says "alice loses", but rr-conflict (default disconnect) forbids
    // the Primary to become SyncTarget.
    let sb = split_with(
        DISCARD_ALICE,
        "after-sb-1pri violently-as0p;",
        ALICE_PRIMARY,
    );
    connect_both(&sb.p);
    expect_refused(&sb, &sb.p.a, "I shall become SyncTarget, but I am primary!");
    wait_line(&sb.p.a, "ro:Primary/Unknown", 10);
}

#[test]
fn connect_with_discard_my_data_after_the_command_resyncs_the_victim() {
    let sb = split("", BOTH_SECONDARY);
    let p = &sb.p;
    connect_both(p);
    for n in [&p.a, &p.b] {
        wait_log(
            n,
            "Split-Brain detected but unresolved, dropping connection!",
            30,
        );
        wait_line(n, "cs:StandAlone", 30);
    }
    assert_eq!(checksum(&p.disk_a), sb.sum_a, "alice's data untouched");
    assert_eq!(checksum(&p.disk_b), sb.sum_b, "bob's data untouched");
    // Victim: alice, with the option after the command.
    p.a.adm_ok(&["connect", "--discard-my-data", "r0"]);
    p.b.adm_ok(&["connect", "r0"]);
    expect_bitmap_resync_from(&sb, 1);
    wait_log(
        &p.a,
        "Split-Brain detected, manually solved. Sync from peer node",
        10,
    );
    // The flag was used up: a later reconnect finds nothing to resync.
    let resyncs = node_log(&p.a).matches("Began resync").count();
    p.a.adm_ok(&["disconnect", "r0"]);
    p.a.adm_ok(&["connect", "r0"]);
    wait_both_uptodate(p, 30);
    assert_eq!(
        node_log(&p.a).matches("Began resync").count(),
        resyncs,
        "no second resync"
    );
    assert_eq!(checksum(&p.disk_a), sb.sum_b);
}

#[test]
fn reconnect_resyncs_exactly_the_dirty_blocks() {
    require("qemu-io");
    let p = Pair::synced(NET);
    p.a.adm_ok(&["disconnect", "r0"]);
    p.b.adm_ok(&["disconnect", "r0"]);
    wait_line(&p.a, "cs:StandAlone ro:Primary/Unknown", 30);
    wait_line(&p.b, "cs:StandAlone ro:Secondary/Unknown", 30);
    // Aligned single blocks, a 1 KiB write inside one block and an unaligned 8 KiB
    // write that touches three: the bitmap has 4 KiB granularity.
    let mut writes: Vec<(u64, u64)> = (0..32u64).map(|i| (i * 97 * 4096, 4096)).collect();
    writes.push((5000 * 4096 + 1024, 1024));
    writes.push((6000 * 4096 + 2048, 8192));
    write_blocks(&p.a, 0x5c, &writes);
    let dirty: BTreeSet<u64> = writes
        .iter()
        .flat_map(|&(offset, len)| offset / 4096..(offset + len).div_ceil(4096))
        .collect();
    let dirty_kib = dirty.len() as u64 * 4;
    // The status file is rewritten periodically: wait for the writes to show.
    let status_a = wait_field(&p.a, "oos:", dirty_kib, 10);
    assert_eq!(
        field(&status_a, "oos:"),
        dirty_kib,
        "alice's oos: counts the {} dirtied 4 KiB blocks:\n{status_a}",
        dirty.len()
    );
    let nr_before_kib = field(&p.b.status_file(), "nr:");
    let targets = count_began(&p.b, "SyncTarget");
    connect_both(&p);
    let (kib, bits) = wait_next_began(&p.b, "SyncTarget", targets, 60);
    assert_eq!((kib, bits), (dirty_kib, dirty.len() as u64));
    wait_both_uptodate(&p, 60);
    wait_line(&p.a, "oos:0", 10);
    // nr: counts the payload of P_DATA and P_RS_DATA_REPLY only (not the bitmap
    // exchange), and nothing writes during the resync: its growth on the SyncTarget is
    // the resync data, which must be exactly the dirty blocks.
    let nr_after_kib = field(&p.b.status_file(), "nr:");
    assert_eq!(
        nr_after_kib - nr_before_kib,
        dirty_kib,
        "bob received exactly the out-of-sync KiB"
    );
    assert_eq!(checksum(&p.disk_a), checksum(&p.disk_b), "data equal");
}

/// The `sync'ed:` percent of a status file, while a resync runs.
fn synced_percent(status: &str) -> Option<f64> {
    let rest = &status[status.find("sync'ed:")? + "sync'ed:".len()..];
    rest.trim_start().split('%').next()?.trim().parse().ok()
}

/// A fresh pair at `resync-rate 8M` whose initial full sync (alice SyncSource) has
/// reached 40 %: the pair and the percent bob showed.
fn full_sync_at_40_percent() -> (Pair, f64) {
    let p = Pair::with(PairOptions {
        net_a: NET.into(),
        net_b: NET.into(),
        resource_extra: "disk { c-plan-ahead 0; resync-rate 8M; }".into(),
        ..PairOptions::default()
    });
    p.a.adm_ok(&["up", "r0"]);
    p.b.adm_ok(&["up", "r0"]);
    wait_line(&p.a, "cs:Connected ro:Secondary/Secondary", 30);
    p.a.adm_ok(&["primary", "--force", "r0"]);
    let full_kib = DATA_BYTES >> 10;
    let (full, _) = wait_next_began(&p.b, "SyncTarget", 0, 30);
    assert_eq!(full, full_kib, "the initial sync is a full sync");
    let start = Instant::now();
    let at = loop {
        let status = p.b.status_file();
        if let Some(pct) = synced_percent(&status) {
            if pct >= 40.0 {
                break pct;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the sync did not reach 40 %:\n{status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    (p, at)
}

#[test]
fn full_sync_interrupted_by_killing_the_target_resumes_where_it_stopped() {
    let (p, at_kill) = full_sync_at_40_percent();
    let full_kib = DATA_BYTES >> 10;
    p.b.crash();
    wait_line(&p.a, "ro:Primary/Unknown", 30);
    let oos_a_kib = field(&p.a.status_file(), "oos:");
    assert!(
        oos_a_kib < full_kib * 7 / 10,
        "alice's bitmap was cleared as blocks arrived: oos {oos_a_kib} of {full_kib} KiB"
    );
    let sources = count_began(&p.a, "SyncSource");
    p.b.adm_ok(&["up", "r0"]);
    let (resumed_kib, _) = wait_next_began(&p.a, "SyncSource", sources, 30);
    eprintln!(
        "killed at {at_kill} %, alice's oos {oos_a_kib} KiB, resumed with {resumed_kib} of {full_kib} KiB"
    );
    // bob's on-disk bitmap lags behind what bob had received by what it had not yet
    // written back (rdbd writes it about once a second, ~8 MiB at 8 MiB/s; DRBD per
    // resync extent): allow 16 MiB on top of alice's out-of-sync count, never the
    // whole device.
    assert!(
        resumed_kib <= oos_a_kib + (16 << 10) && resumed_kib < full_kib * 85 / 100,
        "the resync after the restart covers {resumed_kib} of {full_kib} KiB (killed at {at_kill} %, alice's oos {oos_a_kib} KiB)"
    );
    assert!(
        resumed_kib >= oos_a_kib,
        "the resync covers at least alice's out-of-sync blocks ({resumed_kib} < {oos_a_kib})"
    );
    p.wait_in_sync();
    assert_eq!(checksum(&p.disk_a), checksum(&p.disk_b), "data equal");
}

#[test]
fn full_sync_interrupted_by_killing_the_source_resumes_where_it_stopped() {
    let (p, at_kill) = full_sync_at_40_percent();
    let full_kib = DATA_BYTES >> 10;
    p.a.crash();
    wait_line(&p.b, "ro:Secondary/Unknown ds:Inconsistent/DUnknown", 30);
    // bob's bitmap was cleared as blocks arrived: it names only the remainder.
    let status_b = p.b.status_file();
    let oos_b_kib = field(&status_b, "oos:");
    assert!(
        oos_b_kib < full_kib * 7 / 10,
        "bob's bitmap shows only the remainder: oos {oos_b_kib} of {full_kib} KiB\n{status_b}"
    );
    let nr_before_kib = field(&status_b, "nr:");
    let targets = count_began(&p.b, "SyncTarget");
    // alice restarts after the crash (Secondary, crashed primary) and reconnects.
    p.a.adm_ok(&["up", "r0"]);
    let (resumed_kib, _) = wait_next_began(&p.b, "SyncTarget", targets, 30);
    eprintln!(
        "killed at {at_kill} %, bob's oos {oos_b_kib} KiB, resumed with {resumed_kib} of {full_kib} KiB"
    );
    // The resync is the union of both bitmaps (DRBD ORs them in the bitmap exchange):
    // alice's on-disk bitmap lags behind the acks it had received by what it had not
    // yet written back (about a second, ~8 MiB at 8 MiB/s): allow 16 MiB on top of
    // bob's count, never the whole device.
    assert!(
        resumed_kib >= oos_b_kib,
        "the resync covers at least bob's out-of-sync blocks ({resumed_kib} < {oos_b_kib})"
    );
    assert!(
        resumed_kib <= oos_b_kib + (16 << 10) && resumed_kib < full_kib * 85 / 100,
        "the resync after the restart covers {resumed_kib} of {full_kib} KiB (killed at {at_kill} %, bob's oos {oos_b_kib} KiB)"
    );
    for n in [&p.a, &p.b] {
        n.wait_status(
            "Connected UpToDate/UpToDate",
            Duration::from_secs(60),
            |t| t.contains("cs:Connected") && t.contains("ds:UpToDate/UpToDate"),
        );
    }
    // nr: counts the P_RS_DATA_REPLY payload: what bob received after the restart is
    // the resumed resync, not the device.
    let received_kib = field(&p.b.status_file(), "nr:") - nr_before_kib;
    assert_eq!(
        received_kib, resumed_kib,
        "bob received exactly the resumed resync ({full_kib} KiB device)"
    );
    assert_eq!(checksum(&p.disk_a), checksum(&p.disk_b), "data equal");
}
