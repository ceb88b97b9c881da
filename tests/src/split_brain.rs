//! A split brain made on purpose, for the split-brain and recovery-policy tests.
//!
//! [`SplitBrain::make`]: a synced pair (alice Primary) disconnects on both sides, bob
//! becomes Primary too (after alice: bob is the younger primary), alice writes
//! [`PATTERN_A`] at [`OFFSET_A`] and bob [`PATTERN_B`] at [`OFFSET_B`] through NBD, then
//! each side takes the role the scenario asks for. Nothing is connected yet; the
//! checksums of both data areas say afterwards whose data is whose.
//!
//! [`Handlers`]: a handler script that appends one line per call (its argument, the
//! node and the `DRBD_*` environment) to a log the test reads.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::fixture::scratch_dir;
use crate::node::Node;
use crate::pair::{wait_line, Pair, PairOptions, DATA_BYTES};
use crate::tools::{require, run_ok, sha256_prefix, stdout};

/// Where alice writes while split.
pub const OFFSET_A: u64 = 0;
/// Where bob writes while split.
pub const OFFSET_B: u64 = 16 << 20;
/// The byte alice writes.
pub const PATTERN_A: u8 = 0xa1;
/// The byte bob writes.
pub const PATTERN_B: u8 = 0xb2;

/// The handlers [`Handlers::config`] configures.
pub const LOGGED: &[&str] = &[
    "split-brain",
    "initial-split-brain",
    "before-resync-target",
    "after-resync-target",
    "before-resync-source",
    "pri-lost-after-sb",
    "pri-lost",
];

/// A handler script and the log of its calls.
pub struct Handlers {
    dir: tempfile::TempDir,
}

impl Default for Handlers {
    fn default() -> Self {
        Handlers::new()
    }
}

impl Handlers {
    /// A script in a new scratch directory.
    pub fn new() -> Handlers {
        let dir = scratch_dir();
        let script = dir.path().join("h.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$1 node=$RDBD_NODE res=$DRBD_RESOURCE minor=$DRBD_MINOR vol=$DRBD_VOLUME peer=$DRBD_PEER peers=$DRBD_PEERS af=$DRBD_PEER_AF addr=$DRBD_PEER_ADDRESS home=$HOME path=$PATH args=$#\" >> {}\n",
                dir.path().join("handlers.log").display()
            ),
        )
        .unwrap();
        run_ok(Command::new("chmod").arg("+x").arg(&script));
        Handlers { dir }
    }

    /// The `handlers { }` body: every handler of [`LOGGED`] runs the script.
    pub fn config(&self) -> String {
        let script = self.dir.path().join("h.sh");
        LOGGED
            .iter()
            .map(|h| format!("{h} \"{} {h}\"; ", script.display()))
            .collect()
    }

    /// Every call so far, one line each.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("handlers.log")).unwrap_or_default()
    }

    /// Forgets the calls so far.
    pub fn clear(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("handlers.log"));
    }

    /// The lines of `handler` run on `node`.
    pub fn calls(&self, handler: &str, node: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                l.starts_with(&format!("{handler} ")) && l.contains(&format!(" node={node} "))
            })
            .map(str::to_string)
            .collect()
    }

    /// Waits up to `secs` for a call of `handler` on `node` and returns its line.
    pub fn wait_call(&self, handler: &str, node: &str, secs: u64) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.calls(handler, node).into_iter().next() {
                return l;
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "{handler} did not run on {node}; handler log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs qemu-io `write -P pattern offset len` for each `(offset, len_bytes)` through the
/// node's NBD export in one client session, then flushes.
pub fn write_blocks(node: &Node, pattern: u8, writes: &[(u64, u64)]) {
    let mut cmd = Command::new("qemu-io");
    cmd.arg("--image-opts").arg(format!(
        "driver=nbd,path={},export=r0",
        node.run_dir.join("nbd.sock").display()
    ));
    for (offset, len) in writes {
        cmd.arg("-c")
            .arg(format!("write -P {pattern:#x} {offset} {len}"));
    }
    cmd.args(["-c", "aio_flush"]);
    let out = run_ok(&mut cmd);
    assert!(!stdout(&out).contains("error"), "{}", stdout(&out));
}

/// The sha256 prefix of a backing file's data area.
pub fn data_checksum(path: &Path) -> String {
    sha256_prefix(path, DATA_BYTES)
}

/// `connect r0` on alice, then on bob.
pub fn connect_both(p: &Pair) {
    p.a.adm_ok(&["connect", "r0"]);
    p.b.adm_ok(&["connect", "r0"]);
}

/// How to make the split brain.
#[derive(Debug, Clone, Default)]
pub struct SplitBrain {
    /// Extra `net` options on alice.
    pub net_a: String,
    /// Extra `net` options on bob.
    pub net_b: String,
    /// Configure [`Handlers::config`] on both nodes. Without handlers the node that
    /// finds the split brain first drops the connection at once.
    pub handlers: bool,
    /// Bytes alice writes at [`OFFSET_A`] while split.
    pub write_a_bytes: u64,
    /// Bytes bob writes at [`OFFSET_B`] while split.
    pub write_b_bytes: u64,
    /// alice is Primary when the test connects.
    pub a_primary: bool,
    /// bob is Primary when the test connects.
    pub b_primary: bool,
}

/// A split pair, not connected.
pub struct Split {
    /// The pair.
    pub p: Pair,
    /// The handler log (empty unless [`SplitBrain::handlers`]); cleared after the split.
    pub h: Handlers,
    /// alice's data-area checksum before connecting.
    pub sum_a: String,
    /// bob's data-area checksum before connecting.
    pub sum_b: String,
}

impl SplitBrain {
    /// Makes the split brain (see the module documentation).
    pub fn make(&self) -> Split {
        require("qemu-io");
        let h = Handlers::new();
        let p = Pair::with(PairOptions {
            net_a: self.net_a.clone(),
            net_b: self.net_b.clone(),
            handlers: if self.handlers {
                h.config()
            } else {
                String::new()
            },
            ..PairOptions::default()
        });
        p.up_and_sync();
        p.a.adm_ok(&["disconnect", "r0"]);
        p.b.adm_ok(&["disconnect", "r0"]);
        wait_line(&p.a, "cs:StandAlone ro:Primary/Unknown", 30);
        wait_line(&p.b, "cs:StandAlone ro:Secondary/Unknown", 30);
        // bob is promoted after alice: bob is the younger primary.
        p.b.adm_ok(&["primary", "r0"]);
        if self.write_a_bytes > 0 {
            write_blocks(&p.a, PATTERN_A, &[(OFFSET_A, self.write_a_bytes)]);
        }
        if self.write_b_bytes > 0 {
            write_blocks(&p.b, PATTERN_B, &[(OFFSET_B, self.write_b_bytes)]);
        }
        if !self.a_primary {
            p.a.adm_ok(&["secondary", "r0"]);
        }
        if !self.b_primary {
            p.b.adm_ok(&["secondary", "r0"]);
        }
        let sum_a = data_checksum(&p.disk_a);
        let sum_b = data_checksum(&p.disk_b);
        assert_ne!(sum_a, sum_b, "the split sides must differ");
        h.clear();
        Split { p, h, sum_a, sum_b }
    }
}
