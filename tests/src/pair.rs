//! Two rdbd nodes, `alice` and `bob`, replicating resource `r0` between 64 MiB backing
//! files with internal meta-data: on loopback, or in two network namespaces joined by
//! a veth pair ([`crate::netns::NetPair`]).
//!
//! The configuration is written per node so that the two sides can differ (a wrong
//! secret, a protocol mismatch); tests add `net`, `disk` and `handlers` options.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::fixture::scratch_dir;
use crate::netns::NetPair;
use crate::node::Node;
use crate::tools::{free_tcp_port, run, stdout};

/// A 64 MiB file with internal meta-data leaves 130992 sectors of data.
pub const DATA_BYTES: u64 = 130_992 * 512;

/// What a pair is made of; every field is optional text spliced into drbd.conf.
#[derive(Debug, Clone, Default)]
pub struct PairOptions {
    /// Extra `net` options on alice.
    pub net_a: String,
    /// Extra `net` options on bob.
    pub net_b: String,
    /// Extra `disk` options on both.
    pub disk: String,
    /// Extra `handlers` section body on both (`split-brain "/path/to/x";`).
    pub handlers: String,
    /// Extra `resource`-level lines on both (e.g. `startup { ... }`).
    pub resource_extra: String,
    /// Put the nodes in two network namespaces joined by a veth pair.
    pub netns: bool,
    /// Size of each backing file in MiB (`None`: 64, whose data area is [`DATA_BYTES`]).
    pub size_mib: Option<u64>,
}

/// Two nodes and their files.
///
/// Field order matters: the nodes (whose drop stops their daemons) go before the
/// namespaces and the directory that holds their configuration and run directories.
pub struct Pair {
    /// Node `alice`.
    pub a: Node,
    /// Node `bob`.
    pub b: Node,
    /// alice's backing file.
    pub disk_a: PathBuf,
    /// bob's backing file.
    pub disk_b: PathBuf,
    /// alice's replication port.
    pub port_a: u16,
    /// bob's replication port.
    pub port_b: u16,
    /// The replication addresses (`127.0.0.1` twice on loopback).
    pub addr: [String; 2],
    /// The namespaces, when the pair runs in them.
    pub net: Option<NetPair>,
    /// The scratch directory.
    pub dir: tempfile::TempDir,
}

fn write_config(dir: &Path, name: &str, net: &str, o: &PairOptions, p: &Pair) -> PathBuf {
    let path = dir.join(name);
    let text = format!(
        "global {{ usage-count no; }}\n\
         common {{ net {{ connect-int 1; ping-int 2; max-buffers 8000; {net} }} disk {{ c-plan-ahead 0; resync-rate 400M; {disk} }} handlers {{ {handlers} }} }}\n\
         resource r0 {{\n\
           {extra}\n\
           on alice {{ device /dev/drbd0; disk {d}/alice.img; address {addr_a}:{port_a}; meta-disk internal; }}\n\
           on bob {{ device /dev/drbd0; disk {d}/bob.img; address {addr_b}:{port_b}; meta-disk internal; }}\n\
         }}\n",
        disk = o.disk,
        handlers = o.handlers,
        extra = o.resource_extra,
        d = dir.display(),
        addr_a = p.addr[0],
        addr_b = p.addr[1],
        port_a = p.port_a,
        port_b = p.port_b,
    );
    std::fs::write(&path, text).unwrap();
    path
}

impl Pair {
    /// Files, meta-data (`create-md --force`) and configuration; nothing is up yet.
    pub fn with(o: PairOptions) -> Pair {
        let dir = scratch_dir();
        let net = o.netns.then(NetPair::new);
        let addr = match &net {
            Some(n) => n.addr.clone(),
            None => ["127.0.0.1".to_string(), "127.0.0.1".to_string()],
        };
        let disk_a = dir.path().join("alice.img");
        let disk_b = dir.path().join("bob.img");
        for d in [&disk_a, &disk_b] {
            std::fs::File::create(d)
                .unwrap()
                .set_len(o.size_mib.unwrap_or(64) << 20)
                .unwrap();
        }
        let conf_a = dir.path().join("a.conf");
        let conf_b = dir.path().join("b.conf");
        let mut a = Node::new(dir.path(), "alice", &conf_a);
        let mut b = Node::new(dir.path(), "bob", &conf_b);
        if let Some(n) = &net {
            a = a.in_netns(&n.ns[0]);
            b = b.in_netns(&n.ns[1]);
        }
        let pair = Pair {
            a,
            b,
            disk_a,
            disk_b,
            port_a: free_tcp_port(),
            port_b: free_tcp_port(),
            addr,
            net,
            dir,
        };
        write_config(pair.dir.path(), "a.conf", &o.net_a, &o, &pair);
        write_config(pair.dir.path(), "b.conf", &o.net_b, &o, &pair);
        pair.a.adm_ok(&["create-md", "--force", "r0"]);
        pair.b.adm_ok(&["create-md", "--force", "r0"]);
        pair
    }

    /// A loopback pair with extra net options per node.
    pub fn new(net_a: &str, net_b: &str) -> Pair {
        Pair::with_disk_options(net_a, net_b, "")
    }

    /// As [`Pair::new`], with extra disk options on both nodes.
    pub fn with_disk_options(net_a: &str, net_b: &str, disk: &str) -> Pair {
        Pair::with(PairOptions {
            net_a: net_a.to_string(),
            net_b: net_b.to_string(),
            disk: disk.to_string(),
            ..PairOptions::default()
        })
    }

    /// Up both, `primary --force` on alice, wait for the initial sync.
    pub fn synced(net: &str) -> Pair {
        Pair::synced_with(net, "")
    }

    /// As [`Pair::synced`], with extra disk options.
    pub fn synced_with(net: &str, disk: &str) -> Pair {
        let p = Pair::with_disk_options(net, net, disk);
        p.up_and_sync();
        p
    }

    /// Up both, `primary --force` on alice, wait until both are UpToDate.
    pub fn up_and_sync(&self) {
        self.up_and_force_primary();
        self.wait_in_sync();
    }

    /// Up both, wait until they are connected, `primary --force` on alice: the initial
    /// sync starts (and is not waited for).
    pub fn up_and_force_primary(&self) {
        self.a.adm_ok(&["up", "r0"]);
        self.b.adm_ok(&["up", "r0"]);
        wait_line(&self.a, "cs:Connected ro:Secondary/Secondary", 30);
        self.a.adm_ok(&["primary", "--force", "r0"]);
    }

    /// `secondary` on alice, then `down` on both.
    pub fn demote_and_down(&self) {
        self.a.adm_ok(&["secondary", "r0"]);
        self.a.adm_ok(&["down", "r0"]);
        self.b.adm_ok(&["down", "r0"]);
    }

    /// Waits until alice is Primary and both are Connected and UpToDate.
    pub fn wait_in_sync(&self) {
        wait_line(
            &self.a,
            "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate",
            60,
        );
        wait_line(
            &self.b,
            "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
            30,
        );
    }

    /// A node's daemon log.
    pub fn log(node: &Node) -> String {
        node_log(node)
    }
}

/// A node's daemon log (`<run-dir>/rdbd.log`).
pub fn node_log(node: &Node) -> String {
    std::fs::read_to_string(node.run_dir.join("rdbd.log")).unwrap_or_default()
}

/// Waits until the node's status file contains `what`.
pub fn wait_line(node: &Node, what: &str, secs: u64) -> String {
    node.wait_status(what, Duration::from_secs(secs), |t| t.contains(what))
}

/// Waits until the node's log contains `what`.
pub fn wait_log(node: &Node, what: &str, secs: u64) -> String {
    let start = Instant::now();
    loop {
        let log = node_log(node);
        if log.contains(what) {
            return log;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "no {what:?} in {}'s log:\n{log}",
            node.name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// fio with crc32c verify through the NBD export at `uri`.
pub fn fio_verify(uri: &str, rw: &str, bs: &str, qd: &str, size: &str) {
    let out = run(Command::new("fio")
        .args([
            "--name=verify",
            "--ioengine=nbd",
            "--verify=crc32c",
            "--do_verify=1",
            "--verify_state_save=0",
            "--output-format=json",
        ])
        .arg(format!("--size={size}"))
        .arg(format!("--uri={uri}"))
        .arg(format!("--rw={rw}"))
        .arg(format!("--bs={bs}"))
        .arg(format!("--iodepth={qd}")));
    assert!(
        out.status.success(),
        "fio {rw} {bs} QD{qd} failed: {}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
}
