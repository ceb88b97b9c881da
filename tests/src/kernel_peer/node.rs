//! An rdbd node `alice` at `127.0.0.1:port` whose peer `guest` is the kernel-peer VM's forwarded
//! DRBD port, with its configuration rewritten per protocol and `cram-hmac-alg` (the daemon reads
//! it at `up`), and waits that fail with the guest's console.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::vm::{repo_root, KernelPeerVm};
use crate::fixture::scratch_dir;
use crate::node::Node;

/// The shared secret of every authenticated phase.
pub const SECRET: &str = "kernel-peer-secret";

/// Peer authentication of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No `cram-hmac-alg`.
    None,
    /// `cram-hmac-alg sha1` (a 20-byte HMAC).
    Sha1,
    /// `cram-hmac-alg sha256` (a 32-byte HMAC).
    Sha256,
}

impl Auth {
    /// Every setting, in the order the matrix runs them.
    pub const ALL: [Auth; 3] = [Auth::None, Auth::Sha1, Auth::Sha256];

    /// The algorithm name, or `none`.
    pub fn name(self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Sha1 => "sha1",
            Auth::Sha256 => "sha256",
        }
    }

    /// The `net` section options for rdbd's drbd.conf.
    pub fn net_options(self) -> String {
        match self {
            Auth::None => String::new(),
            a => format!("cram-hmac-alg {}; shared-secret {SECRET};", a.name()),
        }
    }

    /// The `drbdsetup connect` flags for the kernel.
    pub fn drbdsetup_flags(self) -> String {
        match self {
            Auth::None => String::new(),
            a => format!("--cram-hmac-alg={} --shared-secret={SECRET}", a.name()),
        }
    }

    /// The HMAC length the kernel logs ("Peer authenticated using N bytes HMAC").
    pub fn hmac_bytes(self) -> Option<usize> {
        match self {
            Auth::None => None,
            Auth::Sha1 => Some(20),
            Auth::Sha256 => Some(32),
        }
    }
}

/// The `disk` section of rdbd's configuration unless a test sets its own: a static resync rate
/// well above what the guest's emulated disk and network carry.
pub const DEFAULT_DISK_OPTIONS: &str = "c-plan-ahead 0; resync-rate 100M;";

/// The rdbd side of a kernel-peer test. The node goes before the directory holding its
/// configuration and run directory, so that it is stopped first.
pub struct RdbdNode {
    /// Node `alice`.
    pub node: Node,
    /// alice's backing file (64 MiB, internal meta-data).
    pub disk: PathBuf,
    /// rdbd's replication port on 127.0.0.1.
    pub port: u16,
    /// The host port forwarded to the guest's 7789.
    pub fwd_port: u16,
    /// The scratch directory.
    pub dir: tempfile::TempDir,
}

impl RdbdNode {
    /// Files, configuration (`protocol`, `auth`, `extra_net` options; `connect-int 1;` unless
    /// they set it) and fresh meta-data.
    pub fn new(protocol: &str, auth: Auth, extra_net: &str) -> RdbdNode {
        let dir = scratch_dir();
        let disk = dir.path().join("alice.img");
        std::fs::File::create(&disk)
            .and_then(|f| f.set_len(64 << 20))
            .expect("create alice.img");
        let config = dir.path().join("rdbd.conf");
        let node = Node::new(dir.path(), "alice", &config);
        let n = RdbdNode {
            node,
            disk,
            port: super::vm::free_port(),
            fwd_port: super::vm::free_port(),
            dir,
        };
        n.write_config(protocol, auth, extra_net);
        n.node.adm_ok(&["create-md", "--force", "r0"]);
        n
    }

    /// (Re)writes the configuration with [`DEFAULT_DISK_OPTIONS`]; the daemon reads it at the
    /// next `up` (or `adjust`).
    pub fn write_config(&self, protocol: &str, auth: Auth, extra_net: &str) {
        self.write_config_with_disk(protocol, auth, extra_net, DEFAULT_DISK_OPTIONS);
    }

    /// (Re)writes the configuration with the `disk` section options `disk_options` (e.g.
    /// `c-plan-ahead 0; resync-rate 4M;`).
    pub fn write_config_with_disk(
        &self,
        protocol: &str,
        auth: Auth,
        extra_net: &str,
        disk_options: &str,
    ) {
        std::fs::write(
            &self.node.config,
            format!(
                "global {{ usage-count no; }}\n\
                 common {{ net {{ protocol {protocol}; {connect_int} {auth} {extra_net} }} disk {{ {disk_options} }} }}\n\
                 resource r0 {{\n\
                   on alice {{ device /dev/drbd0; disk {disk}; address 127.0.0.1:{port}; meta-disk internal; }}\n\
                   on guest {{ device /dev/drbd0; disk /dev/vda; address 127.0.0.1:{fwd}; meta-disk internal; }}\n\
                 }}\n",
                auth = auth.net_options(),
                connect_int = if extra_net.contains("connect-int") {
                    ""
                } else {
                    "connect-int 1;"
                },
                disk = self.disk.display(),
                port = self.port,
                fwd = self.fwd_port,
            ),
        )
        .expect("write rdbd.conf");
    }

    /// The peer address the guest connects to.
    pub fn guest_peer_addr(&self) -> String {
        format!("10.0.2.2:{}", self.port)
    }

    /// rdbd's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.node.run_dir.join("rdbd.log")).unwrap_or_default()
    }

    /// Waits until rdbd's status file satisfies `pred`; fails with rdbd's status and log and the
    /// guest's console on timeout.
    pub fn wait(
        &self,
        vm: &KernelPeerVm,
        what: &str,
        secs: u64,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            let s = self.node.status_file();
            if pred(&s) {
                return s;
            }
            if start.elapsed() > Duration::from_secs(secs) {
                let log = self.log();
                let tail: Vec<&str> = log.lines().rev().take(80).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                vm.fail(&format!(
                    "rdbd never showed {what} within {secs} s; status:\n{s}\nrdbd log (last 80 lines):\n{}",
                    tail.join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until rdbd's status file contains `text`.
    pub fn wait_status(&self, vm: &KernelPeerVm, text: &str, secs: u64) -> String {
        self.wait(vm, &format!("{text:?}"), secs, |s| s.contains(text))
    }

    /// Keeps the console and rdbd's log in target/kernel-peer/ for reading after the test.
    pub fn save_logs(&self, vm: &KernelPeerVm, name: &str) {
        let dir = repo_root().join("target/kernel-peer");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{name}-console.log")), vm.console());
        let _ = std::fs::copy(
            self.node.run_dir.join("rdbd.log"),
            dir.join(format!("{name}-rdbd.log")),
        );
    }
}

/// The `oos:` counter (KiB) of a status text; 0 when absent.
pub fn oos_kib(status: &str) -> u64 {
    status
        .split("oos:")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
