//! Two test hosts joined by a veth pair, each in a network namespace this test
//! creates (and deletes on drop). Traffic between them never leaves the machine.
//!
//! Namespace and interface names are unique per process and pair, so tests that run
//! concurrently do not collide. Links can be cut and restored to partition the hosts,
//! and code can run inside either namespace. rdbd-ha's tests use this pair too.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::tools::{run, run_ok};

static NEXT_PAIR: AtomicU32 = AtomicU32::new(0);

/// Two namespaces `a` and `b` joined by `veth`.
pub struct NetPair {
    /// Namespace names.
    pub ns: [String; 2],
    /// IPv4 address of each host.
    pub addr: [String; 2],
    /// The veth end in each namespace.
    pub veth: [String; 2],
}

impl NetPair {
    /// Creates the namespaces, the veth pair, addresses and loopback.
    pub fn new() -> NetPair {
        // Names carry the whole pid (unique among live processes) and a per-process
        // counter, so concurrent test processes never share (or delete) a namespace; a
        // leftover of the same name can only come from a dead process that had our pid.
        // Interface names stay within IFNAMSIZ: "rv" + 7 pid digits + counter + side.
        let n = format!(
            "{}x{}",
            std::process::id(),
            NEXT_PAIR.fetch_add(1, Ordering::SeqCst) % 100
        );
        let ns = [format!("rdbd{n}a"), format!("rdbd{n}b")];
        let veth = [format!("rv{n}a"), format!("rv{n}b")];
        // Each pair has namespaces of its own, so the addresses only need to differ
        // between the two sides.
        let addr = ["10.213.0.1".to_string(), "10.214.0.1".to_string()];
        for name in &ns {
            let _ = run(Command::new("ip").args(["netns", "del", name]));
            run_ok(Command::new("ip").args(["netns", "add", name]));
            run_ok(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]));
        }
        run_ok(Command::new("ip").args([
            "link", "add", &veth[0], "netns", &ns[0], "type", "veth", "peer", "name", &veth[1],
            "netns", &ns[1],
        ]));
        for i in 0..2 {
            run_ok(Command::new("ip").args([
                "-n",
                &ns[i],
                "addr",
                "add",
                &format!("{}/8", addr[i]),
                "dev",
                &veth[i],
            ]));
            run_ok(Command::new("ip").args(["-n", &ns[i], "link", "set", &veth[i], "up"]));
        }
        NetPair { ns, addr, veth }
    }

    /// A command run inside host `i`'s namespace.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns[i], program]);
        cmd
    }

    /// Cuts the link (both ends down): a partition.
    pub fn cut(&self) {
        self.set_link("down");
    }

    /// Restores the link.
    pub fn heal(&self) {
        self.set_link("up");
    }

    /// Both veth ends `up` or `down`.
    fn set_link(&self, state: &str) {
        for i in 0..2 {
            run_ok(Command::new("ip").args([
                "-n",
                &self.ns[i],
                "link",
                "set",
                &self.veth[i],
                state,
            ]));
        }
    }

    /// Runs `make` on a thread that entered host `i`'s namespace (setns only changes the
    /// calling thread), so sockets it creates live in that namespace.
    pub fn inside<T: Send + 'static>(
        &self,
        i: usize,
        make: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/run/netns/{}", self.ns[i]);
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("open the namespace");
            // SAFETY: setns(2) on this thread with a namespace fd we keep open for the call.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            make()
        })
        .join()
        .expect("thread in the namespace")
    }
}

impl Default for NetPair {
    fn default() -> Self {
        NetPair::new()
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        for name in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_reach_each_other_until_cut() {
        let pair = NetPair::new();
        let ping = |from: usize, to: usize| {
            run(pair
                .command(from, "ping")
                .args(["-c", "1", "-W", "1", &pair.addr[to]]))
            .status
            .success()
        };
        assert!(ping(0, 1) && ping(1, 0));
        pair.cut();
        assert!(!ping(0, 1));
        pair.heal();
        let start = std::time::Instant::now();
        while !ping(0, 1) {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "link did not come back"
            );
        }
    }
}
