//! The OCF agent `scripts/ocf/rdbd` (ocf:rdbd:rdbd) on both nodes of a replicated pair,
//! driven the way Pacemaker drives a promotable clone (`ms` with clone-max 2,
//! master-max 1, notify true): probes, start on both, notifications with the
//! `OCF_RESKEY_CRM_meta_notify_*` environment Pacemaker sets, promote, monitor, demote,
//! promote on the other node, stop. Master scores are read from a stub `crm_master`
//! (Pacemaker is not installed); they follow ocf:linbit:drbd's rules:
//! 1000 while the peer is unknown, 10000 with the peer connected (or as Primary).
//!
//! Then `ocf-tester` with the clone parameters against one node of a pair whose other
//! node is up: its promotions and demotions are real ones, with a connected peer.

use std::process::Command;
use std::time::{Duration, Instant};

use rdbd_tests::fixture::scratch_dir;
use rdbd_tests::ha::{ocf_agent_copy, ocf_params, OcfAgent};
use rdbd_tests::node::Node;
use rdbd_tests::pair::{node_log, wait_line, Pair};
use rdbd_tests::tools::{require, run_ok, stderr, stdout};

const OCF_SUCCESS: i32 = 0;
const OCF_ERR_GENERIC: i32 = 1;
const OCF_NOT_RUNNING: i32 = 7;
const OCF_RUNNING_MASTER: i32 = 8;

const NAMES: [&str; 2] = ["alice", "bob"];
const INSTANCES: [&str; 2] = ["p_rdbd:0", "p_rdbd:1"];

/// The clone's instances on the given nodes, as Pacemaker lists them (space-terminated).
fn list(nodes: &[usize], names: &[&str]) -> String {
    nodes.iter().map(|&i| format!("{} ", names[i])).collect()
}

/// The notify environment of one transition.
struct Transition<'a> {
    operation: &'a str,
    start: &'a [usize],
    stop: &'a [usize],
    promote: &'a [usize],
    demote: &'a [usize],
    /// Instances active (started) before the transition.
    active: &'a [usize],
    /// Instances promoted before the transition.
    master: &'a [usize],
}

impl Transition<'_> {
    /// `OCF_RESKEY_CRM_meta_notify_*` for `kind` (`pre` or `post`), with both the old
    /// (master/slave) and the new (promoted/unpromoted) names.
    fn env(&self, kind: &str) -> Vec<(String, String)> {
        let slave: Vec<usize> = self
            .active
            .iter()
            .copied()
            .filter(|i| !self.master.contains(i))
            .collect();
        let inactive: Vec<usize> = (0..2).filter(|i| !self.active.contains(i)).collect();
        let mut env = vec![
            ("type".to_string(), kind.to_string()),
            ("operation".to_string(), self.operation.to_string()),
        ];
        for (what, set) in [
            ("start", self.start),
            ("stop", self.stop),
            ("promote", self.promote),
            ("demote", self.demote),
            ("active", self.active),
            ("inactive", &inactive[..]),
            ("master", self.master),
            ("promoted", self.master),
            ("slave", &slave[..]),
            ("unpromoted", &slave[..]),
        ] {
            env.push((format!("{what}_resource"), list(set, &INSTANCES)));
            env.push((format!("{what}_uname"), list(set, &NAMES)));
        }
        env.push(("all_uname".into(), list(&[0, 1], &NAMES)));
        env.push(("available_uname".into(), list(&[0, 1], &NAMES)));
        env.into_iter()
            .map(|(k, v)| (format!("OCF_RESKEY_CRM_meta_notify_{k}"), v))
            .collect()
    }
}

struct Cluster {
    p: Pair,
    agents: [OcfAgent; 2],
    /// Last: the agents' directories.
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// A synced pair, both nodes down (as Pacemaker finds them), an agent per node.
    fn new() -> Cluster {
        let p = Pair::synced("protocol C;");
        p.a.adm_ok(&["secondary", "r0"]);
        p.a.adm_ok(&["down", "r0"]);
        p.b.adm_ok(&["down", "r0"]);
        let dir = scratch_dir();
        let agent = |i: usize, n: &Node| {
            let d = dir.path().join(NAMES[i]);
            std::fs::create_dir_all(&d).unwrap();
            OcfAgent::new(&d, n, INSTANCES[i])
        };
        let agents = [agent(0, &p.a), agent(1, &p.b)];
        Cluster {
            agents,
            p,
            _dir: dir,
        }
    }

    fn node(&self, i: usize) -> &Node {
        [&self.p.a, &self.p.b][i]
    }

    /// Runs `action` on node `i` (monitor: as the recurring monitor, interval 10 s).
    fn action(&self, i: usize, action: &str) -> (i32, String) {
        self.agents[i].run_with(action, &[("OCF_RESKEY_CRM_meta_interval", "10000")])
    }

    fn expect(&self, i: usize, action: &str, rc: i32) {
        let (got, text) = self.action(i, action);
        assert_eq!(
            got,
            rc,
            "{action} on {}: {text}\nstatus:\n{}",
            NAMES[i],
            self.node(i).status_file()
        );
    }

    /// Sends the `kind` notification of `t` to every active instance.
    fn notify(&self, kind: &str, t: &Transition<'_>, to: &[usize]) {
        let env = t.env(kind);
        let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        for &i in to {
            let (rc, text) = self.agents[i].run_with("notify", &extra);
            assert_eq!(rc, OCF_SUCCESS, "notify on {}: {text}", NAMES[i]);
            assert!(
                text.contains(&format!("notify {kind}-{}", t.operation)),
                "the agent logs the notification: {text}"
            );
        }
    }

    /// Pre notification, the action on `on`, post notification (to the instances
    /// active before and after).
    fn transition(&self, t: &Transition<'_>, action: &str, on: &[usize], notified: &[usize]) {
        self.notify("pre", t, t.active);
        for &i in on {
            self.expect(i, action, OCF_SUCCESS);
        }
        self.notify("post", t, notified);
    }

    /// The last master score `crm_master` was given on node `i` since the last look
    /// (`None`: removed).
    fn score(&self, i: usize) -> Option<Option<i64>> {
        self.agents[i].crm_calls().last().map(|call| {
            call.strip_prefix("-Q -l reboot -v ")
                .map(|v| v.parse().unwrap())
        })
    }

    fn role(&self, i: usize) -> String {
        self.node(i).adm_ok(&["role", "r0"]).trim().to_string()
    }
}

/// Writes 256 KiB of `byte` at offset 0 through NBD and flushes.
fn nbd_write(uri: &str, byte: u8) {
    let script = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nh.pwrite(bytes([int(sys.argv[2])]) * 262144, 0)\nh.flush()\nh.shutdown()\n";
    run_ok(
        Command::new("/usr/bin/python3")
            .args(["-c", script, uri])
            .arg(byte.to_string()),
    );
}

/// The distinct byte values of the first 256 KiB, read through NBD.
fn nbd_read_bytes(uri: &str) -> Vec<u8> {
    let script = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nb = h.pread(262144, 0)\nprint(' '.join(str(x) for x in sorted(set(b))))\nh.shutdown()\n";
    let out = run_ok(Command::new("/usr/bin/python3").args(["-c", script, uri]));
    stdout(&out)
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect()
}

fn wait_connected(c: &Cluster) {
    for i in 0..2 {
        wait_line(c.node(i), "cs:Connected", 30);
        wait_line(c.node(i), "ds:UpToDate/UpToDate", 30);
    }
}

#[test]
fn promotable_clone_lifecycle_on_both_nodes() {
    let c = Cluster::new();
    // Probes: not running anywhere.
    for i in 0..2 {
        let (rc, text) = c.agents[i].run_with("monitor", &[("OCF_RESKEY_CRM_meta_interval", "0")]);
        assert_eq!(rc, OCF_NOT_RUNNING, "probe on {}: {text}", c.node(i).name);
    }

    // Start both (Pacemaker starts the instances in parallel; here one after the other).
    let start = Transition {
        operation: "start",
        start: &[0, 1],
        stop: &[],
        promote: &[],
        demote: &[],
        active: &[],
        master: &[],
    };
    c.expect(0, "start", OCF_SUCCESS);
    assert_eq!(
        c.score(0),
        Some(Some(1000)),
        "UpToDate, Secondary, peer unknown"
    );
    c.expect(1, "start", OCF_SUCCESS);
    wait_connected(&c);
    c.notify("post", &start, &[0, 1]);
    for i in 0..2 {
        assert_eq!(
            c.score(i),
            Some(Some(10000)),
            "{}: UpToDate with a connected UpToDate peer",
            c.node(i).name
        );
        c.expect(i, "monitor", OCF_SUCCESS);
        assert_eq!(c.score(i), Some(Some(10000)));
        assert_eq!(c.role(i), "Secondary/Secondary");
    }

    // Promote alice.
    let promote_a = Transition {
        operation: "promote",
        start: &[],
        stop: &[],
        promote: &[0],
        demote: &[],
        active: &[0, 1],
        master: &[],
    };
    c.transition(&promote_a, "promote", &[0], &[0, 1]);
    assert_eq!(c.role(0), "Primary/Secondary");
    assert_eq!(c.role(1), "Secondary/Primary");
    c.expect(0, "monitor", OCF_RUNNING_MASTER);
    c.expect(1, "monitor", OCF_SUCCESS);
    assert_eq!(c.score(0), Some(Some(10000)), "Primary");
    assert_eq!(c.score(1), Some(Some(10000)), "UpToDate, peer known");
    nbd_write(&c.p.a.nbd_uri("r0"), 0xa1);

    // A second promotion is refused while alice is Primary (master-max 1 is rdbd's
    // rule too): the agent fails after its retries, bob stays Secondary.
    let start_t = Instant::now();
    let (rc, text) = c.action(1, "promote");
    assert_eq!(rc, OCF_ERR_GENERIC, "{text}");
    assert!(start_t.elapsed() < Duration::from_secs(30));
    assert_eq!(c.role(1), "Secondary/Primary");
    assert_eq!(c.role(0), "Primary/Secondary");

    // Switch-over: demote alice, promote bob; the data moved with it.
    let demote_a = Transition {
        operation: "demote",
        start: &[],
        stop: &[],
        promote: &[],
        demote: &[0],
        active: &[0, 1],
        master: &[0],
    };
    c.transition(&demote_a, "demote", &[0], &[0, 1]);
    c.expect(0, "monitor", OCF_SUCCESS);
    assert_eq!(c.role(0), "Secondary/Secondary");
    let promote_b = Transition {
        promote: &[1],
        ..promote_a
    };
    c.transition(&promote_b, "promote", &[1], &[0, 1]);
    c.expect(1, "monitor", OCF_RUNNING_MASTER);
    c.expect(0, "monitor", OCF_SUCCESS);
    assert_eq!(c.role(1), "Primary/Secondary");
    assert_eq!(nbd_read_bytes(&c.p.b.nbd_uri("r0")), vec![0xa1]);
    c.agents[0].crm_calls();
    c.agents[1].crm_calls();

    // Stop: demote bob first (Pacemaker never stops a promoted instance directly),
    // then stop both; the scores go.
    let demote_b = Transition {
        demote: &[1],
        master: &[1],
        ..demote_a
    };
    c.transition(&demote_b, "demote", &[1], &[0, 1]);
    let stop = Transition {
        operation: "stop",
        start: &[],
        stop: &[0, 1],
        promote: &[],
        demote: &[],
        active: &[0, 1],
        master: &[],
    };
    c.notify("pre", &stop, &[0, 1]);
    for i in 0..2 {
        c.agents[i].crm_calls();
        c.expect(i, "stop", OCF_SUCCESS);
        assert_eq!(c.score(i), Some(None), "{}: score removed", c.node(i).name);
        c.expect(i, "monitor", OCF_NOT_RUNNING);
        assert_eq!(
            c.node(i).adm_run(&["role", "r0"]).status.code(),
            Some(10),
            "down"
        );
    }
}

#[test]
fn a_stopped_peer_changes_the_scores_and_its_start_resyncs() {
    let c = Cluster::new();
    for i in 0..2 {
        c.expect(i, "start", OCF_SUCCESS);
    }
    wait_connected(&c);
    c.expect(0, "promote", OCF_SUCCESS);
    c.agents[1].crm_calls();
    // bob stops: alice keeps running as master, its score stays (Primary).
    c.expect(1, "stop", OCF_SUCCESS);
    wait_line(&c.p.a, "ro:Primary/Unknown", 20);
    c.expect(0, "monitor", OCF_RUNNING_MASTER);
    assert_eq!(c.score(0), Some(Some(10000)));
    nbd_write(&c.p.a.nbd_uri("r0"), 0xb2);
    // bob starts again: it resyncs and is promotable after the post-start notify.
    c.expect(1, "start", OCF_SUCCESS);
    wait_connected(&c);
    let start = Transition {
        operation: "start",
        start: &[1],
        stop: &[],
        promote: &[],
        demote: &[],
        active: &[0],
        master: &[0],
    };
    c.notify("post", &start, &[0, 1]);
    assert_eq!(c.score(1), Some(Some(10000)));
    c.expect(1, "monitor", OCF_SUCCESS);
    // Demote alice, promote bob: bob has what alice wrote while bob was stopped.
    c.expect(0, "demote", OCF_SUCCESS);
    c.expect(1, "promote", OCF_SUCCESS);
    assert_eq!(nbd_read_bytes(&c.p.b.nbd_uri("r0")), vec![0xb2]);
    c.expect(1, "demote", OCF_SUCCESS);
    // alice stops: bob, Secondary with the peer gone, drops to the "peer unknown" score.
    c.expect(0, "stop", OCF_SUCCESS);
    wait_line(&c.p.b, "ro:Secondary/Unknown ds:UpToDate/DUnknown", 20);
    c.agents[1].crm_calls();
    c.expect(1, "monitor", OCF_SUCCESS);
    assert_eq!(c.score(1), Some(Some(1000)));
    c.expect(1, "stop", OCF_SUCCESS);
}

#[test]
fn ocf_tester_with_clone_parameters_on_a_node_of_the_pair() {
    require("ocf-tester");
    require("xmllint");
    let c = Cluster::new();
    // bob runs (Secondary); ocf-tester starts, promotes, demotes and stops alice.
    c.expect(1, "start", OCF_SUCCESS);
    let dir = scratch_dir();
    let agent = ocf_agent_copy(dir.path());
    let mut cmd = Command::new("ocf-tester");
    cmd.arg("-n").arg("p_rdbd");
    for (k, v) in ocf_params(&c.p.a) {
        cmd.arg("-o").arg(format!("{k}={v}"));
    }
    for (k, v) in [
        ("CRM_meta_clone_max", "2"),
        ("CRM_meta_clone_node_max", "1"),
        ("CRM_meta_master_max", "1"),
        ("CRM_meta_master_node_max", "1"),
        ("CRM_meta_notify", "true"),
        ("CRM_meta_globally_unique", "false"),
    ] {
        cmd.arg("-o").arg(format!("{k}={v}"));
    }
    let log_before = node_log(&c.p.a).len();
    let out = cmd.arg(&agent).output().expect("run ocf-tester");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success() && text.contains("passed all tests"),
        "ocf-tester:\n{text}\nalice:\n{}\nbob:\n{}",
        c.p.a.status_file(),
        c.p.b.status_file()
    );
    // The run was against a real pair: alice's replication to bob started and she was
    // promoted. ocf-tester's actions follow each other within milliseconds, so whether
    // the connection gets through its handshake during the run is a matter of timing
    // (both outcomes were seen); the promotion of a connected node, with notifications,
    // is asserted by the lifecycle test above.
    let log = node_log(&c.p.a)[log_before..].to_string();
    assert!(
        log.contains("replication with bob starts"),
        "alice replicates to bob:\n{log}"
    );
    assert!(log.contains("role=Primary"), "alice was promoted:\n{log}");
    // alice was left stopped; bob is still running, Secondary, UpToDate.
    assert_eq!(c.p.a.adm_run(&["role", "r0"]).status.code(), Some(10));
    assert_eq!(c.role(1), "Secondary/Unknown");
    assert_eq!(
        c.node(1).adm_ok(&["dstate", "r0"]).trim(),
        "UpToDate/DUnknown"
    );
}

/// Pacemaker may "start" an instance it finds up (after its own restart): started means
/// Secondary and connected, so the agent demotes a Primary and reconnects a StandAlone
/// resource, as ocf:linbit:drbd does.
#[test]
fn start_of_a_primary_standalone_resource_demotes_and_reconnects() {
    let c = Cluster::new();
    for i in 0..2 {
        c.node(i).adm_ok(&["up", "r0"]);
    }
    wait_connected(&c);
    c.p.a.adm_ok(&["primary", "r0"]);
    c.p.a.adm_ok(&["disconnect", "r0"]);
    wait_line(&c.p.a, "cs:StandAlone ro:Primary/Unknown", 10);
    c.expect(0, "monitor", OCF_RUNNING_MASTER);
    c.expect(0, "start", OCF_SUCCESS);
    assert_eq!(c.role(0).split('/').next(), Some("Secondary"));
    wait_line(
        &c.p.a,
        "cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate",
        30,
    );
    c.expect(0, "monitor", OCF_SUCCESS);
    c.expect(1, "start", OCF_SUCCESS);
    for i in 0..2 {
        c.expect(i, "stop", OCF_SUCCESS);
    }
}
