//! `rdbdadm status --verbose --statistics` on a running pair: the layout of DRBD 9's
//! `drbdadm status` (drbd-utils' `drbdsetup status`, which the 8.4 build prints in the
//! same layout; /work/shared/docs/drbd-reference.md §6), with every value checked
//! against the node's `/proc/drbd` status file:
//!
//! ```text
//! r0 role:Primary suspended:no
//!     write-ordering:flush
//!   volume:0 minor:0 disk:UpToDate nbd-uri:...          (nbd-uri: rdbd's addition)
//!       size:65496 read:.. written:.. al-writes:.. bm-writes:.. upper-pending:0 lower-pending:0 al-suspended:no blocked:no
//!   bob connection:Connected role:Secondary congested:no
//!     volume:0 replication:Established peer-disk:UpToDate resync-suspended:no
//!         received:.. sent:.. out-of-sync:0 pending:0 unacked:0
//! ```
//!
//! - a known write through NBD on the primary: `written` and `sent` there, `received`
//!   on the secondary, grow by exactly its size, and equal `dw`, `ns`, `nr`;
//! - disconnected, a write shows up as `out-of-sync` (= `oos`), in the plain
//!   `--statistics` form too (where drbdsetup prints out-of-sync only when not zero);
//! - roles and disk states from both sides.

use std::collections::BTreeMap;
use std::process::Command;

use rdbd_tests::node::Node;
use rdbd_tests::pair::{wait_line, Pair, PairOptions, DATA_BYTES};
use rdbd_tests::tools::run_ok;

/// `key:value` fields of one line (the first word, a resource or peer name, is skipped
/// when it has no `:`).
fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The keys of a line, in order.
fn keys(line: &str) -> Vec<&str> {
    line.split_whitespace()
        .map(|w| w.split_once(':').map_or(w, |(k, _)| k))
        .collect()
}

/// One counter of the status file (`ns:`, `oos:`, ...).
fn proc_counter(status: &str, name: &str) -> u64 {
    status
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}: in the status file:\n{status}"))
}

fn num(f: &BTreeMap<String, String>, key: &str, text: &str) -> u64 {
    f.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {key}: in\n{text}"))
}

/// A status read: the lines of `rdbdadm status r0 OPTIONS`, with the status file read
/// just before and just after (the counters must not move in between for a comparison).
struct Snapshot {
    text: String,
    lines: Vec<String>,
    proc_drbd: String,
}

fn snapshot(n: &Node, options: &[&str]) -> Snapshot {
    for _ in 0..50 {
        let before = n.status_file();
        let mut args = vec!["status", "r0"];
        args.extend_from_slice(options);
        let text = n.adm_ok(&args);
        if n.status_file() == before {
            let lines = text.lines().map(String::from).collect();
            return Snapshot {
                text,
                lines,
                proc_drbd: before,
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{}'s status file never held still", n.name);
}

/// As [`snapshot`], for a status that keeps moving (a resync): the status file is the
/// one read just before `rdbdadm status`.
fn snapshot_moving(n: &Node, options: &[&str]) -> Snapshot {
    let proc_drbd = n.status_file();
    let mut args = vec!["status", "r0"];
    args.extend_from_slice(options);
    let text = n.adm_ok(&args);
    let lines = text.lines().map(String::from).collect();
    Snapshot {
        text,
        lines,
        proc_drbd,
    }
}

/// Checks the verbose+statistics layout and every value against the status file;
/// returns (written, sent, received) KiB.
fn check_verbose_statistics(n: &Node, role: &str, peer: &str, peer_role: &str) -> (u64, u64, u64) {
    let s = snapshot(n, &["--verbose", "--statistics"]);
    let (t, l, p) = (&s.text, &s.lines, &s.proc_drbd);
    assert_eq!(l.len(), 7, "seven lines:\n{t}");
    assert_eq!(l[0], format!("r0 role:{role} suspended:no"), "{t}");
    assert_eq!(l[1], "    write-ordering:flush", "{t}");
    assert!(p.contains(" wo:f "), "{p}");
    assert!(
        l[2].starts_with("  volume:0 minor:0 disk:UpToDate nbd-uri:nbd"),
        "{t}"
    );
    assert!(l[3].starts_with("      size:"), "{t}");
    assert_eq!(
        keys(&l[3]),
        [
            "size",
            "read",
            "written",
            "al-writes",
            "bm-writes",
            "upper-pending",
            "lower-pending",
            "al-suspended",
            "blocked"
        ],
        "{t}"
    );
    assert_eq!(
        l[4],
        format!("  {peer} connection:Connected role:{peer_role} congested:no"),
        "{t}"
    );
    assert_eq!(
        l[5], "    volume:0 replication:Established peer-disk:UpToDate resync-suspended:no",
        "{t}"
    );
    assert!(l[6].starts_with("        received:"), "{t}");
    assert_eq!(
        keys(&l[6]),
        ["received", "sent", "out-of-sync", "pending", "unacked"],
        "{t}"
    );
    // Values: KiB, as /proc/drbd's counters.
    let dev = fields(&l[3]);
    assert_eq!(num(&dev, "size", t), DATA_BYTES / 1024, "{t}");
    let peer_dev = fields(&l[6]);
    // Each status field and the /proc/drbd counter it shows.
    for (line, key, proc_key) in [
        (&dev, "read", "dr"),
        (&dev, "written", "dw"),
        (&dev, "al-writes", "al"),
        (&dev, "bm-writes", "bm"),
        (&dev, "upper-pending", "ap"),
        (&dev, "lower-pending", "lo"),
        (&peer_dev, "received", "nr"),
        (&peer_dev, "sent", "ns"),
        (&peer_dev, "out-of-sync", "oos"),
        (&peer_dev, "pending", "pe"),
        (&peer_dev, "unacked", "ua"),
    ] {
        assert_eq!(
            num(line, key, t),
            proc_counter(p, proc_key),
            "{key} vs {proc_key}:\n{t}\n{p}"
        );
    }
    assert!(
        p.contains(&format!("ro:{role}/{peer_role} ds:UpToDate/UpToDate")),
        "{p}"
    );
    (
        num(&dev, "written", t),
        num(&peer_dev, "sent", t),
        num(&peer_dev, "received", t),
    )
}

/// Writes `kib` KiB of 0x5a at `offset` through NBD in 256 KiB requests and flushes.
fn nbd_write(uri: &str, offset: u64, kib: u64) {
    let script = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\noff, n = int(sys.argv[2]), int(sys.argv[3])\nfor o in range(0, n, 262144):\n    h.pwrite(b'\\x5a' * min(262144, n - o), off + o)\nh.flush()\nh.shutdown()\n";
    run_ok(
        Command::new("/usr/bin/python3")
            .args(["-c", script, uri])
            .arg(offset.to_string())
            .arg((kib * 1024).to_string()),
    );
}

#[test]
fn verbose_statistics_layout_and_counters_after_a_known_write() {
    let p = Pair::synced("protocol C;");
    let (written_a, sent_a, _) = check_verbose_statistics(&p.a, "Primary", "bob", "Secondary");
    let (written_b, _, received_b) =
        check_verbose_statistics(&p.b, "Secondary", "alice", "Primary");
    // The initial sync went alice -> bob.
    assert!(sent_a >= DATA_BYTES / 1024 && received_b >= DATA_BYTES / 1024);
    assert!(written_b >= received_b, "bob wrote what it received");

    const WRITE_KIB: u64 = 1024;
    nbd_write(&p.a.nbd_uri("r0"), 8 << 20, WRITE_KIB);
    // Protocol C: the write is on bob's disk before the NBD write returned.
    let (written_a2, sent_a2, _) = check_verbose_statistics(&p.a, "Primary", "bob", "Secondary");
    let (_, _, received_b2) = check_verbose_statistics(&p.b, "Secondary", "alice", "Primary");
    assert_eq!(written_a2 - written_a, WRITE_KIB, "alice written");
    assert_eq!(sent_a2 - sent_a, WRITE_KIB, "alice sent");
    assert_eq!(received_b2 - received_b, WRITE_KIB, "bob received");
}

#[test]
fn statistics_show_out_of_sync_while_disconnected() {
    let p = Pair::synced("protocol C;");
    let plain = p.a.adm_ok(&["status", "r0"]);
    assert_eq!(
        plain,
        "r0 role:Primary\n  disk:UpToDate\n  bob role:Secondary\n    peer-disk:UpToDate\n"
    );
    assert_eq!(
        p.b.adm_ok(&["status", "r0"]),
        "r0 role:Secondary\n  disk:UpToDate\n  alice role:Primary\n    peer-disk:UpToDate\n"
    );
    p.a.adm_ok(&["disconnect", "r0"]);
    wait_line(&p.a, "cs:StandAlone ro:Primary/Unknown", 10);
    const WRITE_KIB: u64 = 512;
    nbd_write(&p.a.nbd_uri("r0"), 0, WRITE_KIB);

    let s = snapshot(&p.a, &["--statistics"]);
    let (t, l, proc_drbd) = (&s.text, &s.lines, &s.proc_drbd);
    assert_eq!(proc_counter(proc_drbd, "oos"), WRITE_KIB, "{proc_drbd}");
    assert_eq!(l.len(), 6, "{t}");
    assert_eq!(l[0], "r0 role:Primary", "{t}");
    assert_eq!(l[1], "  disk:UpToDate", "{t}");
    assert_eq!(keys(&l[2]), ["read", "written"], "{t}");
    assert_eq!(l[3], "  bob connection:StandAlone", "{t}");
    assert_eq!(l[4], "    peer-disk:DUnknown", "{t}");
    assert_eq!(keys(&l[5]), ["received", "sent", "out-of-sync"], "{t}");
    assert_eq!(num(&fields(&l[5]), "out-of-sync", t), WRITE_KIB, "{t}");
    assert_eq!(
        num(&fields(&l[2]), "written", t),
        proc_counter(proc_drbd, "dw"),
        "{t}"
    );

    let v = snapshot(&p.a, &["--verbose", "--statistics"]);
    assert_eq!(
        v.lines[4], "  bob connection:StandAlone role:Unknown congested:no",
        "{}",
        v.text
    );
    assert_eq!(
        v.lines[5], "    volume:0 replication:Off peer-disk:DUnknown resync-suspended:no",
        "{}",
        v.text
    );
    assert_eq!(
        num(&fields(&v.lines[6]), "out-of-sync", &v.text),
        proc_counter(&v.proc_drbd, "oos")
    );
    // Without --statistics and --verbose: nothing about the peer's disk while away.
    assert_eq!(
        p.a.adm_ok(&["status", "r0"]),
        "r0 role:Primary\n  disk:UpToDate\n  bob connection:StandAlone\n"
    );

    // Reconnected: the resync clears the out-of-sync data, and the field goes away.
    p.a.adm_ok(&["connect", "r0"]);
    wait_line(
        &p.a,
        "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate",
        30,
    );
    let s = snapshot(&p.a, &["--statistics"]);
    assert_eq!(keys(&s.lines[5]), ["received", "sent"], "{}", s.text);
    assert_eq!(proc_counter(&s.proc_drbd, "oos"), 0);
}

/// The `done:` value of a status line.
fn done_percent(line: &str) -> f64 {
    fields(line)
        .get("done")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no done: in {line:?}"))
}

#[test]
fn resync_layout_done_and_user_pause() {
    let p = Pair::with(PairOptions {
        resource_extra: "disk { resync-rate 2M; }".into(),
        ..PairOptions::default()
    });
    p.up_and_force_primary();
    wait_line(&p.a, "cs:SyncSource", 20);
    wait_line(&p.b, "cs:SyncTarget", 20);
    wait_line(&p.a, "sync'ed:", 20);

    // Plain status: replication and done only while they say something.
    let plain = snapshot_moving(&p.a, &[]);
    assert_eq!(plain.lines.len(), 4, "{}", plain.text);
    assert!(
        plain.lines[3].starts_with("    replication:SyncSource peer-disk:Inconsistent done:"),
        "{}",
        plain.text
    );
    let done = done_percent(&plain.lines[3]);
    assert!(done > 0.0 && done < 100.0, "{}", plain.text);

    let v = snapshot_moving(&p.a, &["--verbose", "--statistics"]);
    assert_eq!(
        keys(&v.lines[5]),
        [
            "volume",
            "replication",
            "peer-disk",
            "done",
            "resync-suspended"
        ],
        "{}",
        v.text
    );
    assert!(v.lines[5].contains("replication:SyncSource"), "{}", v.text);
    assert!(v.lines[5].ends_with(" resync-suspended:no"), "{}", v.text);
    // The resync moves on between the two reads: out-of-sync only shrinks.
    let oos = num(&fields(&v.lines[6]), "out-of-sync", &v.text);
    assert!(
        oos > 0 && oos <= proc_counter(&v.proc_drbd, "oos"),
        "{}\n{}",
        v.text,
        v.proc_drbd
    );
    let b = snapshot_moving(&p.b, &["--verbose"]);
    assert_eq!(
        b.lines[1],
        b.lines[1].replace("disk:UpToDate", "?"),
        "{}",
        b.text
    );
    assert!(b.lines[1].contains(" disk:Inconsistent "), "{}", b.text);
    assert!(
        b.lines[3].starts_with("    volume:0 replication:SyncTarget peer-disk:UpToDate done:"),
        "{}",
        b.text
    );

    // pause-sync: resync-suspended:user here, as /proc/drbd's `u` flag says; held
    // still, done: is exactly drbdsetup's 100 * (1 - out-of-sync / size).
    p.a.adm_ok(&["pause-sync", "r0"]);
    let status = wait_line(&p.a, "cs:PausedSyncS", 10);
    assert!(status.contains(" r--u-"), "{status}");
    let paused = snapshot(&p.a, &["--statistics"]);
    let (t, l) = (&paused.text, &paused.lines);
    assert!(
        l[4].starts_with("    replication:PausedSyncS peer-disk:Inconsistent done:")
            && l[4].ends_with(" resync-suspended:user"),
        "{t}"
    );
    let oos_kib = proc_counter(&paused.proc_drbd, "oos");
    assert_eq!(num(&fields(&l[5]), "out-of-sync", t), oos_kib, "{t}");
    let expect = 100.0 * (1.0 - oos_kib as f64 / (DATA_BYTES / 1024) as f64);
    assert_eq!(
        fields(&l[4])["done"],
        format!("{expect:.2}"),
        "{t}\n{}",
        paused.proc_drbd
    );
    p.a.adm_ok(&["resume-sync", "r0"]);
    wait_line(&p.a, "cs:SyncSource", 10);
    let plain = snapshot_moving(&p.a, &[]);
    assert!(!plain.text.contains("resync-suspended"), "{}", plain.text);
}

/// Polls `n`'s status file for up to `budget`; true once `pred` holds for its text.
fn file_within(n: &Node, budget: std::time::Duration, pred: impl Fn(&str) -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if pred(&n.status_file()) {
            return true;
        }
        if start.elapsed() >= budget {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// [`file_within`]: the file contains `needle`.
fn file_shows_within(n: &Node, needle: &str, budget: std::time::Duration) -> bool {
    file_within(n, budget, |t| t.contains(needle))
}

/// `rdbdadm events2 r0` on a node: the daemon's state changes as they happen, learnt
/// without a control request (each of which rewrites the status file itself).
struct Events {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Events {
    fn follow(n: &Node) -> Events {
        use std::io::BufRead;
        let mut child = n
            .adm()
            .args(["events2", "r0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                if line.map(|l| tx.send(l)).is_err() {
                    break;
                }
            }
        });
        Events { child, lines }
    }

    /// Waits (10 s at most) for a line that starts with `prefix` and contains `field`.
    fn wait(&self, prefix: &str, field: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no '{prefix} ... {field}' event within 10 s"));
            if line.starts_with(prefix) && line.split_whitespace().any(|w| w == field) {
                return line;
            }
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn status_file_follows_every_state_change_at_once() {
    // Causality, not timing: once a command returned (this node's change) or events2
    // reported the new state (a change the peer caused; events2 sends no control request,
    // so it does not rewrite the file itself), the file shows it within a budget far
    // below the 1 s rewrite period.
    let budget = std::time::Duration::from_millis(300);
    let p = Pair::synced("protocol C;");
    let bob_events = Events::follow(&p.b);
    bob_events.wait("exists", "-");
    for round in 0..4 {
        // Alice becomes `role` (bob stays Secondary): `ro:` is role/Secondary in her file,
        // Secondary/role in bob's once his events2 reported it.
        for role in ["Secondary", "Primary"] {
            let command = role.to_lowercase();
            p.a.adm_ok(&[&command, "r0"]);
            assert!(
                file_shows_within(&p.a, &format!("ro:{role}/Secondary"), budget),
                "round {round}: after '{command}' returned: {}",
                p.a.status_file()
            );
            bob_events.wait("change connection", &format!("role:{role}"));
            assert!(
                file_shows_within(&p.b, &format!("ro:Secondary/{role}"), budget),
                "round {round}: the peer's view of '{command}': {}",
                p.b.status_file()
            );
        }
    }
    // A connection change the peer caused (a hard state change on bob).
    p.a.adm_ok(&["disconnect", "r0"]);
    assert!(file_shows_within(&p.a, "cs:StandAlone", budget));
    let line = loop {
        let l = bob_events.wait("change connection", "role:Unknown");
        if !l.contains("connection:Connected") {
            break l;
        }
    };
    assert!(
        file_within(&p.b, budget, |t| t.contains(" cs:")
            && !t.contains("cs:Connected")),
        "the peer's disconnect ({line}): {}",
        p.b.status_file()
    );
    drop(bob_events);
    p.a.adm_ok(&["secondary", "r0"]);
    p.a.adm_ok(&["down", "r0"]);
    p.b.adm_ok(&["down", "r0"]);
}
