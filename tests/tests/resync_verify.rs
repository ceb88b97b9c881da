//! Online verify, checksum-based resync and pause-sync between two real rdbd nodes.
//!
//! - verify on equal data finds nothing; after blocks of the (down) secondary's backing
//!   file were overwritten behind rdbd's back, verify finds exactly those blocks (DRBD's
//!   `Out of sync: start=S, size=N (sectors)` ranges, `Online verify found N 4k block out
//!   of sync!`, `oos:` on both nodes); `disconnect` + `connect` resyncs them and the data
//!   areas are equal again;
//! - verify without verify-alg is refused with DRBD's reason and exit code 11;
//! - with `csums-alg sha1`, a full resync after `invalidate` of a mostly equal secondary
//!   moves only the changed runs (the `had equal checksums ... transferred ... total`
//!   line), and the data areas end equal;
//! - pause-sync freezes a running resync (PausedSyncS / PausedSyncT with the `u` / `p`
//!   flags, `oos:` unchanged for 2 s), resume-sync completes it.

use std::os::unix::fs::FileExt;
use std::process::Command;
use std::time::{Duration, Instant};

use rdbd_tests::pair::{node_log, wait_line, wait_log, Pair, PairOptions, DATA_BYTES};
use rdbd_tests::tools::{run_ok, sha256_prefix};

/// Net options of every pair here: a 3 s ping-timeout, so that a loaded test machine
/// (debug builds, sha1 digests, parallel tests) does not drop the connection mid-test.
const NET: &str = "ping-timeout 30;";

const CONNECTED_A: &str = "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate";
const CONNECTED_B: &str = "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate";

/// The `oos:` of a node's status file.
fn oos_kib(text: &str) -> u64 {
    let field = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("oos:"))
        .unwrap_or_else(|| panic!("no oos: in the status:\n{text}"));
    field.parse().unwrap()
}

/// Waits until `oos:` is `kib` on `node`.
fn wait_oos(node: &rdbd_tests::node::Node, kib: u64, secs: u64) {
    node.wait_status(&format!("oos:{kib}"), Duration::from_secs(secs), |t| {
        t.contains(&format!(" oos:{kib}\n")) || t.ends_with(&format!(" oos:{kib}"))
    });
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

fn assert_data_equal(p: &Pair) {
    assert_eq!(
        sha256_prefix(&p.disk_a, DATA_BYTES),
        sha256_prefix(&p.disk_b, DATA_BYTES),
        "the data areas of alice and bob differ"
    );
}

/// Runs `verify` on `node` and waits for the n-th "Online verify done" in its log.
fn verify_and_wait(node: &rdbd_tests::node::Node, nth: usize) -> String {
    node.adm_ok(&["verify", "r0"]);
    wait_done(node, nth)
}

#[test]
fn verify_finds_exactly_the_corrupted_blocks_and_reconnect_resyncs_them() {
    let p = Pair::synced(&format!("verify-alg sha1; {NET}"));
    // Equal data: nothing found.
    let log = verify_and_wait(&p.a, 1);
    assert!(
        !log.contains("Out of sync:"),
        "verify of equal data found something:\n{log}"
    );
    assert!(!log.contains("Online verify found"), "{log}");
    wait_line(&p.a, CONNECTED_A, 10);
    assert_eq!(oos_kib(&p.a.status_file()), 0);
    wait_log(&p.b, "Online Verify start sector: 0", 10);
    wait_log(&p.b, "Online verify done", 10);
    wait_line(&p.b, CONNECTED_B, 10);

    // Corrupt blocks 100..=102 and 5000 of bob's data area while bob is down.
    p.b.adm_ok(&["down", "r0"]);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&p.disk_b)
        .unwrap();
    for block in [100u64, 101, 102, 5000] {
        f.write_at(&[0xA5; 4096], block * 4096).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    p.b.adm_ok(&["up", "r0"]);
    wait_line(&p.a, CONNECTED_A, 30);
    wait_line(&p.b, CONNECTED_B, 30);
    assert_eq!(oos_kib(&p.a.status_file()), 0);

    let log = verify_and_wait(&p.a, 2);
    let second = &log[log.find("Starting Online Verify").unwrap()..];
    let second = &second[second[1..]
        .find("Starting Online Verify")
        .map_or(0, |i| i + 1)..];
    assert!(
        second.contains("Out of sync: start=800, size=24 (sectors)"),
        "range of blocks 100-102 not logged:\n{second}"
    );
    assert!(
        second.contains("Out of sync: start=40000, size=8 (sectors)"),
        "block 5000 not logged:\n{second}"
    );
    assert_eq!(count(second, "Out of sync: start="), 2, "{second}");
    assert!(
        second.contains("Online verify found 4 4k block out of sync!"),
        "{second}"
    );
    wait_line(&p.a, "cs:Connected", 10);
    wait_oos(&p.a, 16, 10);
    wait_oos(&p.b, 16, 10);
    // Verify marks; the resync happens at the next connect.
    p.b.adm_ok(&["disconnect", "r0"]);
    p.b.adm_ok(&["connect", "r0"]);
    wait_line(&p.a, CONNECTED_A, 30);
    wait_line(&p.b, CONNECTED_B, 30);
    wait_oos(&p.a, 0, 10);
    wait_oos(&p.b, 0, 10);
    // A third verify finds nothing any more.
    let log = verify_and_wait(&p.a, 3);
    let third = &log[log.rfind("Starting Online Verify").unwrap()..];
    assert!(!third.contains("Out of sync:"), "{third}");
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
    assert_data_equal(&p);
}

#[test]
fn verify_started_on_the_secondary_shows_progress_and_honours_stop() {
    // 8 MiB/s: the 64 MiB verify takes ~8 s, long enough to see its progress.
    let p = Pair::synced_with(&format!("verify-alg crc32c; {NET}"), "resync-rate 8M;");
    p.a.adm_ok(&["down", "r0"]);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&p.disk_a)
        .unwrap();
    f.write_at(&[0x11; 4096], 7 * 4096).unwrap();
    drop(f);
    p.a.adm_ok(&["up", "r0"]);
    p.a.adm_ok(&["primary", "r0"]);
    wait_line(&p.b, CONNECTED_B, 30);
    p.b.adm_ok(&["verify", "r0"]);
    wait_line(
        &p.b,
        "cs:VerifyS ro:Secondary/Primary ds:UpToDate/UpToDate",
        5,
    );
    wait_line(
        &p.a,
        "cs:VerifyT ro:Primary/Secondary ds:UpToDate/UpToDate",
        5,
    );
    let status = wait_line(&p.b, "] verified:", 5);
    assert!(status.contains("want: 8,192 K/sec"), "{status}");
    // A second verify while one runs is refused.
    let busy = p.a.adm_run(&["verify", "r0"]);
    assert_eq!(busy.status.code(), Some(11));
    assert!(String::from_utf8_lossy(&busy.stderr).contains("already active"));
    let log = wait_done(&p.b, 1);
    assert!(
        log.contains("Out of sync: start=56, size=8 (sectors)"),
        "{log}"
    );
    assert!(
        log.contains("Online verify found 1 4k block out of sync!"),
        "{log}"
    );
    wait_oos(&p.a, 4, 10);
    wait_line(&p.a, CONNECTED_A, 10);
    // --stop: the first 16 blocks only; VerifyT learns the end from VerifyS's P_STATE.
    p.b.adm_ok(&["verify", "r0", "--stop", "128"]);
    let log = wait_done(&p.b, 2);
    let second = &log[log.rfind("Starting Online Verify").unwrap()..];
    assert!(
        second.contains("Out of sync: start=56, size=8 (sectors)"),
        "{second}"
    );
    assert!(
        second.contains("total 1 sec"),
        "a 16-block verify took long:\n{second}"
    );
    wait_done(&p.a, 2);
    wait_line(&p.a, CONNECTED_A, 10);
    wait_line(&p.b, CONNECTED_B, 10);
}

/// Waits for the n-th "Online verify done" in `node`'s log (verify already started).
fn wait_done(node: &rdbd_tests::node::Node, nth: usize) -> String {
    let start = std::time::Instant::now();
    loop {
        let log = node_log(node);
        if count(&log, "Online verify done") >= nth {
            return log;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "verify #{nth} did not finish on {}:\n{log}\nstatus:\n{}",
            node.name,
            node.status_file()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn verify_without_verify_alg_is_refused() {
    let p = Pair::synced(NET);
    let out = p.a.adm_run(&["verify", "r0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "stderr: {stderr}");
    assert!(stderr.contains("verify-alg"), "{stderr}");
    assert!(stderr.contains("(-14)"), "{stderr}");
    wait_line(&p.a, CONNECTED_A, 5);
}

/// `N % had equal checksums, eliminated: XK; transferred YK total ZK` -> (Y, Z).
fn csums_counters(log: &str) -> (u64, u64) {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("had equal checksums"))
        .unwrap_or_else(|| panic!("no checksum summary:\n{log}"));
    let number_after = |key: &str| -> u64 {
        let rest = &line[line.find(key).unwrap() + key.len()..];
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    (number_after("transferred "), number_after("total "))
}

#[test]
fn checksum_resync_moves_only_changed_blocks() {
    let p = Pair::synced(&format!("csums-alg sha1; {NET}"));
    // The initial full sync of two zeroed disks: every block was equal.
    let log = wait_log(&p.b, "had equal checksums", 10);
    let (transferred, total) = csums_counters(&log);
    assert_eq!(transferred, 0, "{log}");
    assert_eq!(total, DATA_BYTES / 1024);

    p.b.adm_ok(&["disconnect", "r0"]);
    // Ten 4 KiB blocks change on alice (two separate places) while bob is away.
    let uri = p.a.nbd_uri("r0");
    let script = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nfor i in range(5):\n    h.pwrite(b'\\x42' * 4096, (1000 + i) * 4096)\n    h.pwrite(b'\\x43' * 4096, (9000 + i) * 4096)\nh.flush()\nh.shutdown()\n";
    // The distribution's python3 has python3-libnbd.
    run_ok(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(&uri),
    );
    // bob throws its bitmap away: a full sync, but nearly all of it is equal.
    p.b.adm_ok(&["invalidate", "r0"]);
    p.b.adm_ok(&["connect", "r0"]);
    wait_line(&p.a, CONNECTED_A, 60);
    wait_line(&p.b, CONNECTED_B, 30);
    let log = node_log(&p.b);
    assert_eq!(count(&log, "had equal checksums"), 2, "{log}");
    let (transferred, total) = csums_counters(&log);
    assert_eq!(total, DATA_BYTES / 1024, "{log}");
    // The changed blocks travel in the runs that contain them: DRBD's resync requests, up
    // to 1 MiB each (aligned, as make_resync_request builds them), one run per place.
    assert!(
        (40..=2048).contains(&transferred),
        "transferred {transferred}K of {total}K"
    );
    wait_log(&p.a, "had equal checksums", 10);
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
    assert_data_equal(&p);
}

#[test]
fn pause_sync_freezes_the_resync_and_resume_sync_completes_it() {
    let p = Pair::with(PairOptions {
        net_a: NET.into(),
        net_b: NET.into(),
        disk: "resync-rate 6M;".into(),
        ..PairOptions::default()
    });
    p.up_and_force_primary();
    wait_line(&p.a, "cs:SyncSource", 10);
    std::thread::sleep(Duration::from_secs(1));
    p.a.adm_ok(&["pause-sync", "r0"]);
    wait_line(
        &p.a,
        "cs:PausedSyncS ro:Primary/Secondary ds:UpToDate/Inconsistent C r--u--",
        5,
    );
    wait_line(
        &p.b,
        "cs:PausedSyncT ro:Secondary/Primary ds:Inconsistent/UpToDate C r-p---",
        5,
    );
    // A second pause, and a resume on the node that did not pause, are refused.
    let again = p.a.adm_run(&["pause-sync", "r0"]);
    assert_eq!(again.status.code(), Some(10));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already set"));
    let other = p.b.adm_run(&["resume-sync", "r0"]);
    assert_eq!(other.status.code(), Some(10));
    assert!(String::from_utf8_lossy(&other.stderr).contains("peer"));
    // Requests in flight when the pause came settle; then nothing moves.
    std::thread::sleep(Duration::from_millis(500));
    // The target's requests still in flight at the pause (pe:) are answered first.
    let settled =
        p.b.wait_status("pe:0", Duration::from_secs(10), |t| t.contains(" pe:0 "));
    let before = oos_kib(&settled);
    assert!(before > 0, "the resync ended before the pause took effect");
    std::thread::sleep(Duration::from_secs(2));
    let status = p.b.status_file();
    assert!(status.contains("cs:PausedSyncT"), "{status}");
    assert_eq!(oos_kib(&status), before, "the resync moved while paused");
    p.a.adm_ok(&["resume-sync", "r0"]);
    wait_line(&p.b, "cs:SyncTarget", 5);
    wait_line(&p.a, CONNECTED_A, 60);
    wait_line(&p.b, CONNECTED_B, 30);
    assert!(node_log(&p.a).contains("Resync suspended"));
    assert!(node_log(&p.a).contains("Syncer continues."));
    // DRBD's summary counts the ~2.5 s paused apart (both sides saw the pause).
    for node in [&p.a, &p.b] {
        let log = node_log(node);
        let done = log
            .lines()
            .rev()
            .find(|l| l.contains("Resync done (total "))
            .unwrap_or_else(|| panic!("no resync summary:\n{log}"));
        let number_after = |key: &str| -> u64 {
            let rest = &done[done.find(key).unwrap() + key.len()..];
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap()
        };
        let (total_s, paused_s) = (number_after("(total "), number_after("; paused "));
        assert!(
            paused_s >= 2 && total_s > paused_s,
            "the pause is not in the summary: {done}"
        );
    }
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
    assert_data_equal(&p);
}

#[test]
fn c_min_rate_throttles_the_resync_while_application_writes_arrive() {
    rdbd_tests::tools::require("fio");
    let p = Pair::with(PairOptions {
        net_a: NET.into(),
        net_b: NET.into(),
        disk: "resync-rate 20M; c-min-rate 500k;".into(),
        ..PairOptions::default()
    });
    p.up_and_force_primary();
    wait_line(&p.a, "cs:SyncSource", 10);
    // 2 MB/s of application writes for 5 s: the SyncTarget sees them arrive and holds
    // the resync near c-min-rate; unthrottled, 20M would move the 64 MiB in ~3 s.
    let uri = p.a.nbd_uri("r0");
    let fio = Command::new("fio")
        .args([
            "--name=app",
            "--ioengine=nbd",
            "--rw=randwrite",
            "--bs=4k",
            "--rate=2m",
            "--time_based",
            "--runtime=5",
            "--size=8M",
        ])
        .arg(format!("--uri={uri}"))
        .output();
    let fio = fio.expect("fio runs");
    assert!(
        fio.status.success(),
        "{}",
        String::from_utf8_lossy(&fio.stderr)
    );
    let left = oos_kib(&p.b.status_file());
    assert!(
        left > 32 << 10,
        "the resync was not throttled: only {left} KiB left after 5 s of application writes"
    );
    // Without application I/O the resync runs at resync-rate again.
    wait_line(&p.a, CONNECTED_A, 20);
    wait_line(&p.b, CONNECTED_B, 10);
}

/// The `N: cs:...` line of minor `minor` in a status file.
fn minor_line(text: &str, minor: u32) -> String {
    let prefix = format!("{minor:2}: cs:");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn resync_after_holds_the_dependent_resource_until_the_first_is_done() {
    let dir = rdbd_tests::fixture::scratch_dir();
    let d = dir.path();
    let ports: Vec<u16> = (0..4).map(|_| rdbd_tests::tools::free_tcp_port()).collect();
    let mut resources = String::new();
    for (i, r) in ["r0", "r1"].iter().enumerate() {
        for host in ["alice", "bob"] {
            std::fs::File::create(d.join(format!("{host}-{r}.img")))
                .unwrap()
                .set_len(64 << 20)
                .unwrap();
        }
        let after = if i == 1 {
            "disk { resync-after r0; }"
        } else {
            ""
        };
        resources.push_str(&format!(
            "resource {r} {{ {after}\n\
               on alice {{ device /dev/drbd{i}; disk {d}/alice-{r}.img; address 127.0.0.1:{pa}; meta-disk internal; }}\n\
               on bob {{ device /dev/drbd{i}; disk {d}/bob-{r}.img; address 127.0.0.1:{pb}; meta-disk internal; }}\n\
             }}\n",
            d = d.display(),
            pa = ports[2 * i],
            pb = ports[2 * i + 1],
        ));
    }
    let config = d.join("rdbd.conf");
    std::fs::write(
        &config,
        format!(
            "global {{ usage-count no; }}\n\
             common {{ net {{ connect-int 1; ping-int 2; ping-timeout 30; max-buffers 8000; }} disk {{ c-plan-ahead 0; resync-rate 6M; }} }}\n\
             {resources}"
        ),
    )
    .unwrap();
    let a = rdbd_tests::node::Node::new(d, "alice", &config);
    let b = rdbd_tests::node::Node::new(d, "bob", &config);
    for n in [&a, &b] {
        for r in ["r0", "r1"] {
            n.adm_ok(&["create-md", "--force", r]);
            n.adm_ok(&["up", r]);
        }
    }
    a.wait_status("both connected", Duration::from_secs(30), |t| {
        minor_line(t, 0).contains("cs:Connected") && minor_line(t, 1).contains("cs:Connected")
    });
    a.adm_ok(&["primary", "--force", "r0"]);
    a.wait_status("r0 syncing", Duration::from_secs(10), |t| {
        minor_line(t, 0).contains("cs:SyncSource")
    });
    a.adm_ok(&["primary", "--force", "r1"]);
    // r1 waits for r0: paused with the `a` flag on both nodes.
    let status = a.wait_status("r1 paused after r0", Duration::from_secs(10), |t| {
        minor_line(t, 1)
            .contains("cs:PausedSyncS ro:Primary/Secondary ds:UpToDate/Inconsistent C ra")
    });
    assert!(minor_line(&status, 0).contains("cs:SyncSource"), "{status}");
    b.wait_status("r1 paused on bob", Duration::from_secs(10), |t| {
        minor_line(t, 1).contains("cs:PausedSyncT") && minor_line(t, 1).contains(" C ra")
    });
    let oos_r1 = |t: &str| -> u64 {
        let minor = t.find(" 1: cs:").expect("minor 1");
        oos_kib(&t[minor..])
    };
    let before = oos_r1(&b.status_file());
    std::thread::sleep(Duration::from_secs(1));
    let now = b.status_file();
    if minor_line(&now, 0).contains("cs:SyncTarget") {
        assert_eq!(
            oos_r1(&now),
            before,
            "r1 moved while r0 was syncing:\n{now}"
        );
    }
    // r0 done: r1 continues by itself and finishes.
    let done = |t: &str| {
        (0..2).all(|m| {
            minor_line(t, m).contains("cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate")
        })
    };
    a.wait_status("both synced", Duration::from_secs(60), done);
    let log = node_log(&a);
    let r0_done = log
        .lines()
        .position(|l| l.contains("Resync done") && l.contains("resource=r0"))
        .expect("r0 resynced");
    let r1_done = log
        .lines()
        .position(|l| l.contains("Resync done") && l.contains("resource=r1"))
        .expect("r1 resynced");
    assert!(r0_done < r1_done, "r1 finished before r0:\n{log}");
    assert!(log.contains("aftr_isp( 1 -> 0 )"), "{log}");
    for n in [&a, &b] {
        for r in ["r0", "r1"] {
            n.adm_ok(&["down", r]);
        }
    }
}

/// The number right after `key` in the last line of `log` that contains it.
fn last_number_after(log: &str, key: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(key))
        .unwrap_or_else(|| panic!("no {key:?} in the log:\n{log}"));
    let rest = &line[line.find(key).unwrap() + key.len()..];
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {key:?} in {line:?}"))
}

#[test]
fn verify_cut_by_a_disconnect_logs_where_it_got_and_the_next_one_resumes_there() {
    // 16 MiB/s: the 64 MiB verify takes ~4 s (a loaded machine: 5-8 MiB/s); it is cut
    // once a quarter of it is verified, read from the status rather than timed.
    let p = Pair::synced_with(&format!("verify-alg crc32c; {NET}"), "resync-rate 16M;");
    p.a.adm_ok(&["verify", "r0"]);
    wait_verify(&p.a, "a quarter verified", |status, _| {
        verify_progress_kib(status).is_some_and(|(left, total)| left * 4 <= total * 3)
    });
    p.b.adm_ok(&["disconnect", "r0"]);
    let key = "Online Verify reached sector ";
    let log_a = wait_log(&p.a, key, 10);
    let log_b = wait_log(&p.b, key, 10);
    assert_eq!(count(&log_a, "Online verify done"), 0, "{log_a}");
    let reached = last_number_after(&log_a, key);
    let capacity_sectors = DATA_BYTES / 512;
    assert!(
        reached > 0 && reached < capacity_sectors && reached % 8 == 0,
        "verify reached sector {reached} of {capacity_sectors}:\n{log_a}"
    );
    // The answering side counted the same requests (a reply may have been in flight).
    let reached_b = last_number_after(&log_b, key);
    assert!(
        reached_b.abs_diff(reached) <= 8 * 1024,
        "{reached_b} vs {reached}"
    );

    // Reconnected, `verify` without --start resumes there (as drbdadm verify does).
    p.b.adm_ok(&["connect", "r0"]);
    wait_line(&p.a, CONNECTED_A, 30);
    wait_line(&p.b, CONNECTED_B, 30);
    let resumed_at = Instant::now();
    let out = p.a.adm_run(&["verify", "r0"]);
    assert!(
        out.status.success(),
        "verify after the reconnect: {}\nalice:\n{}\nbob:\n{}",
        String::from_utf8_lossy(&out.stderr),
        node_log(&p.a),
        node_log(&p.b)
    );
    let (_, log) = wait_verify(&p.a, "the resumed verify done", |_, log| {
        count(log, "Online verify done") >= 1
    });
    let resumed_took = resumed_at.elapsed();
    assert_eq!(
        last_number_after(&log, "Starting Online Verify from sector "),
        reached,
        "{log}"
    );
    wait_log(&p.b, &format!("Online Verify start sector: {reached}"), 10);
    // The summary: elapsed time, no pause, and the rate of the remaining part only.
    let done = log
        .lines()
        .rev()
        .find(|l| l.contains("Online verify done (total "))
        .unwrap();
    assert!(done.contains(" sec; paused 0 sec; "), "{done}");
    let total_s = last_number_after(done, "Online verify done (total ");
    let rate_kib = last_number_after(done, " sec; paused 0 sec; ");
    // DRBD's arithmetic: blocks verified / whole seconds, in KiB.
    let verified_blocks = capacity_sectors.div_ceil(8) - reached / 8;
    assert_eq!(rate_kib, verified_blocks / total_s.max(1) * 4, "{done}");
    // The total is the resumed run's time only, not counted from the cut verify: at most
    // the whole seconds between our `verify` and seeing it done. (That it kept moving is
    // checked by `wait_verify`; where it resumed above, "Starting Online Verify from".)
    assert!(
        total_s <= resumed_took.as_secs().max(1),
        "the summary counts more than the resumed run's {resumed_took:?}: {done}"
    );
    // It reached the end: the next verify starts at 0 again; --start picks any block.
    wait_line(&p.a, CONNECTED_A, 10);
    p.a.adm_ok(&["verify", "r0", "--stop", "64"]);
    let log = wait_done(&p.a, 2);
    assert_eq!(
        last_number_after(&log, "Starting Online Verify from sector "),
        0
    );
    wait_line(&p.a, CONNECTED_A, 10);
    wait_line(&p.b, CONNECTED_B, 10);
    p.a.adm_ok(&[
        "verify",
        "r0",
        "--start",
        &reached.to_string(),
        "--stop",
        &(reached + 64).to_string(),
    ]);
    let log = wait_done(&p.a, 3);
    assert_eq!(
        last_number_after(&log, "Starting Online Verify from sector "),
        reached
    );
}

/// The KiB left of a running verify: `verified: P% (LEFT/TOTAL)K`.
fn verify_left_kib(status: &str) -> u64 {
    verify_progress_kib(status)
        .unwrap_or_else(|| panic!("no verify progress in the status:\n{status}"))
        .0
}

/// `(LEFT, TOTAL)` KiB of a running verify's `verified: P% (LEFT/TOTAL)K`, if it shows one.
fn verify_progress_kib(status: &str) -> Option<(u64, u64)> {
    let line = status.lines().find(|l| l.contains("verified:"))?;
    let figures = &line[line.find('(')? + 1..line.find(")K")?];
    let (left, total) = figures.split_once('/')?;
    let kib = |s: &str| s.replace(',', "").parse().ok();
    Some((kib(left)?, kib(total)?))
}

/// How long a verify may show no progress (`verified:` left KiB, `Online verify done`
/// lines) before [`wait_verify`] gives up. A loaded machine verifies slowly but steadily,
/// so this bounds stalls, not the whole run.
const VERIFY_STALL: Duration = Duration::from_secs(20);

/// Waits until `until(status, log)` holds on `node`; returns the status and log then.
/// Fails when the verify progress stands still for [`VERIFY_STALL`].
fn wait_verify(
    node: &rdbd_tests::node::Node,
    what: &str,
    until: impl Fn(&str, &str) -> bool,
) -> (String, String) {
    let mut seen = None;
    let mut moved = Instant::now();
    loop {
        let (status, log) = (node.status_file(), node_log(node));
        if until(&status, &log) {
            return (status, log);
        }
        let now = (
            verify_progress_kib(&status).map(|(left, _)| left),
            count(&log, "Online verify done"),
        );
        if seen != Some(now) {
            seen = Some(now);
            moved = Instant::now();
        }
        assert!(
            moved.elapsed() < VERIFY_STALL,
            "waiting for {what} on {}: no verify progress for {VERIFY_STALL:?}\nstatus:\n{status}\nlog:\n{log}",
            node.name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A status-file counter (`dw:`, `oos:`, ...) in KiB.
fn counter_kib(text: &str, key: &str) -> u64 {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in the status:\n{text}"))
}

/// fio random 4 KiB `rw` (randwrite, randread) through `uri` until killed (QD 16 over
/// the whole device).
fn spawn_fio(uri: &str, rw: &str, rate: Option<&str>) -> std::process::Child {
    rdbd_tests::tools::require("fio");
    let mut cmd = Command::new("fio");
    cmd.args([
        "--name=app",
        // A thread, not a forked job: killing fio stops the writes.
        "--thread",
        "--ioengine=nbd",
        "--bs=4k",
        "--iodepth=16",
        "--time_based",
        "--runtime=600",
        "--output=/dev/null",
    ])
    .arg(format!("--rw={rw}"))
    .arg(format!("--uri={uri}"))
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    if let Some(rate) = rate {
        cmd.arg(format!("--rate={rate}"));
    }
    cmd.spawn().expect("fio runs")
}

/// DRBD's verify locks the blocks it compares against application writes
/// (`drbd_rs_begin_io` in `w_make_ov_request` and `receive_DataRequest`), so verify
/// while the Primary writes finds nothing, whichever side started it and whatever the
/// protocol. Without the lock, a block written between the VerifyT's read and the
/// VerifyS's read compares old with new data: at 400 MiB/s thousands of blocks are in
/// flight per 100 ms step, and random writes over the device hit them every run. With
/// protocol A or B the Primary's write is done before the Secondary wrote the block, so
/// the Secondary's reads also wait for the writes it received (`rdbd_node`'s
/// `peer::verify::locks`). That race needs a `P_OV_REQUEST` / `P_OV_REPLY` to overtake
/// a write on the Secondary's disk: with a fast scratch disk its window is small (with
/// the Secondary's writes delayed by 2 ms and no registration, each run started on the
/// Secondary found 1-3 blocks).
fn verify_during_application_writes_finds_nothing(protocol: char) {
    // c-min-rate 0: the VerifyS (busy with fio's writes on either node) must not
    // throttle itself to a crawl. Write ordering `n`: a Secondary that drains every
    // epoch at its barrier (`f`, `d`) would mostly wait for the writes anyway.
    let p = Pair::synced_with(
        &format!("protocol {protocol}; verify-alg crc32c; {NET}"),
        "resync-rate 400M; c-min-rate 0; disk-flushes no; disk-drain no;",
    );
    let dw_before = counter_kib(&p.a.status_file(), "dw:");
    let mut fio = spawn_fio(&p.a.nbd_uri("r0"), "randwrite", None);
    // fio is writing before the first verify starts.
    let start = std::time::Instant::now();
    while counter_kib(&p.a.status_file(), "dw:") < dw_before + 1024 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "fio does not write: {}",
            p.a.status_file()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Runs 1-2 on the Primary (alice VerifyS), 3-4 on the Secondary (bob VerifyS).
    for run in 1..=4 {
        let (node, other) = if run <= 2 { (&p.a, &p.b) } else { (&p.b, &p.a) };
        // The previous run ended on both sides (either may see the end first).
        wait_done(node, run - 1);
        wait_done(other, run - 1);
        let dw_before = counter_kib(&p.a.status_file(), "dw:");
        // The whole device each time (not where a previous run on this node got to).
        node.adm_ok(&["verify", "r0", "--start", "0"]);
        wait_done(node, run);
        let dw_after = counter_kib(&p.a.status_file(), "dw:");
        assert!(
            dw_after > dw_before,
            "fio wrote nothing during verify #{run} ({dw_before} KiB)"
        );
    }
    let _ = fio.kill();
    let _ = fio.wait();
    for n in [&p.a, &p.b] {
        let log = wait_done(n, 4);
        assert!(
            !log.contains("Out of sync:") && !log.contains("Online verify found"),
            "protocol {protocol}: verify reported {} blocks written during the runs as out of sync on {} ({} ranges):\n{log}",
            blocks_found(&log),
            n.name,
            count(&log, "Out of sync: start="),
        );
    }
    wait_line(&p.a, CONNECTED_A, 10);
    wait_line(&p.b, CONNECTED_B, 10);
    assert_eq!(oos_kib(&p.a.status_file()), 0);
    assert_eq!(oos_kib(&p.b.status_file()), 0);
    // The killed fio's NBD connection may take a moment to close.
    let start = std::time::Instant::now();
    while !p.a.adm_run(&["down", "r0"]).status.success() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "alice stays in use"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    p.b.adm_ok(&["down", "r0"]);
    assert_data_equal(&p);
}

/// The blocks the last `Online verify found N 4k block out of sync!` of `log` reports
/// (the bitmap's weight: every block any run found).
fn blocks_found(log: &str) -> u64 {
    rdbd_tests::tools::last_number_after(log, "Online verify found ").unwrap_or(0)
}

#[test]
fn verify_during_application_writes_finds_nothing_with_protocol_c() {
    verify_during_application_writes_finds_nothing('C');
}

/// Protocol B: the Primary's write is done at the peer's `P_RECV_ACK`, before the
/// Secondary's disk write.
#[test]
fn verify_during_application_writes_finds_nothing_with_protocol_b() {
    verify_during_application_writes_finds_nothing('B');
}

/// Protocol A: the Primary's write is done once its `P_DATA` is sent.
#[test]
fn verify_during_application_writes_finds_nothing_with_protocol_a() {
    verify_during_application_writes_finds_nothing('A');
}

/// c-min-rate on the VerifyT (DRBD `receive_DataRequest`: a `P_OV_REQUEST` waits
/// 100 ms while `drbd_rs_should_slow_down`, unless the peer is Primary). Application
/// I/O only happens on the Primary, so the case is a verify started on the Secondary
/// (bob, VerifyS) while the Primary (alice, VerifyT) is busy. The application *reads*
/// only alice's disk: writes would reach bob's disk too, where the VerifyS's own
/// c-min-rate check (`drbd_try_rs_begin_io` counts all backing-device I/O) would slow
/// it down anyway.
#[test]
fn c_min_rate_on_the_primary_verify_target_slows_verify_while_it_reads() {
    let p = Pair::synced_with(
        &format!("verify-alg crc32c; {NET}"),
        "resync-rate 40M; c-min-rate 500k;",
    );
    // dr: already counts the initial sync's reads: wait for fio's own.
    let dr_before = counter_kib(&p.a.status_file(), "dr:");
    let mut fio = spawn_fio(&p.a.nbd_uri("r0"), "randread", Some("2m"));
    let start = std::time::Instant::now();
    while counter_kib(&p.a.status_file(), "dr:") < dr_before + 512 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "fio does not write: {}",
            p.a.status_file()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    p.b.adm_ok(&["verify", "r0"]);
    wait_line(&p.a, "cs:VerifyT ro:Primary/Secondary", 5);
    std::thread::sleep(Duration::from_secs(6));
    // Throttled near c-min-rate (500 KiB/s) that is a few MiB; unthrottled, even a slow
    // debug build verifies several MiB per second.
    let status = p.b.status_file();
    let log_b = node_log(&p.b);
    assert_eq!(
        count(&log_b, "Online verify done"),
        0,
        "the verify was not throttled by alice's application reads:\n{log_b}"
    );
    let verified_kib = (DATA_BYTES >> 10) - verify_left_kib(&status);
    assert!(
        verified_kib < 12 << 10,
        "the verify was not throttled by alice's application reads: {verified_kib} KiB in 6 s\n{status}"
    );
    let _ = fio.kill();
    let _ = fio.wait();
    // Without application I/O it runs at resync-rate again.
    let log = wait_done(&p.b, 1);
    let done = log
        .lines()
        .rev()
        .find(|l| l.contains("Online verify done (total "))
        .unwrap();
    let total_s = rdbd_tests::tools::number_after(done, "Online verify done (total ").unwrap();
    assert!(total_s >= 6, "{done}");
    assert!(!log.contains("Out of sync:"), "{log}");
    wait_line(&p.a, CONNECTED_A, 10);
    wait_line(&p.b, CONNECTED_B, 10);
}
