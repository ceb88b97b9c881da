//! One rdbd node for a test: a temporary directory with the configuration, the run
//! directory and the backing files, driven through the real `rdbdadm`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::bins::bin;
use crate::tools::{run, run_ok};

/// A node named `name` whose files live in `dir`.
pub struct Node {
    /// The node name (`--node`).
    pub name: String,
    /// The configuration file.
    pub config: PathBuf,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The network namespace the node's commands (and so its daemon) run in.
    pub netns: Option<String>,
}

impl Node {
    /// A node using `config`, with its run directory under `dir`.
    pub fn new(dir: &Path, name: &str, config: &Path) -> Node {
        Node {
            name: name.to_string(),
            config: config.to_path_buf(),
            run_dir: dir.join(format!("run-{name}")),
            netns: None,
        }
    }

    /// The same node, its commands run inside network namespace `ns`.
    pub fn in_netns(mut self, ns: &str) -> Node {
        self.netns = Some(ns.to_string());
        self
    }

    /// `rdbdadm` with this node's global options (inside its namespace, if any).
    pub fn adm(&self) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin("rdbdadm"));
                c
            }
            None => Command::new(bin("rdbdadm")),
        };
        cmd.arg("-c")
            .arg(&self.config)
            .arg("--node")
            .arg(&self.name)
            .arg("--run-dir")
            .arg(&self.run_dir);
        cmd.env("RDBD_DAEMON", bin("rdbd"));
        cmd
    }

    /// Runs `rdbdadm ARGS`, panicking on failure; returns stdout.
    pub fn adm_ok(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&run_ok(self.adm().args(args)).stdout).into_owned()
    }

    /// Runs `rdbdadm ARGS` like [`Node::adm_ok`], retrying (up to 10 s) while it is refused
    /// because the device is held open: an NBD client that has just exited is noticed by
    /// the daemon a moment later, when its socket's end reaches the server.
    pub fn adm_ok_once_released(&self, args: &[&str]) -> String {
        let start = std::time::Instant::now();
        loop {
            let out = self.adm_run(args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10)
                    && stderr.contains("held open"),
                "rdbdadm {args:?} on {} failed ({}): {stderr}",
                self.name,
                out.status
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Runs `rdbdadm ARGS` whatever the outcome.
    pub fn adm_run(&self, args: &[&str]) -> Output {
        run(self.adm().args(args))
    }

    /// `rdbdmeta` with this node's global options.
    pub fn meta(&self) -> Command {
        Command::new(bin("rdbdmeta"))
    }

    /// The status file's text.
    pub fn status_file(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("drbd")).unwrap_or_default()
    }

    /// Waits until the status file satisfies `pred`, panicking with its last text on timeout.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            let text = self.status_file();
            if pred(&text) {
                return text;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; status file:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pid of the daemon, from its pid file.
    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.run_dir.join("rdbd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The NBD URI of a resource's export.
    pub fn nbd_uri(&self, resource: &str) -> String {
        self.adm_ok(&["nbd-uri", resource]).trim().to_string()
    }

    /// Kills the daemon with SIGKILL (a crash) and waits for it to be gone.
    pub fn crash(&self) {
        if let Some(pid) = self.daemon_pid() {
            // SAFETY: kill(2) with a pid we read from our own pid file.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let start = Instant::now();
            // SAFETY: signal 0 only checks for existence.
            while unsafe { libc::kill(pid, 0) } == 0 && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Best effort: stop the daemon; if it does not go, kill it.
        let _ = self.adm().arg("shutdown").output();
        self.crash();
    }
}
