//! Two real `rdbd-ha` processes on 127.0.0.1 (two ports) whose group is one LSB shell
//! script writing marker files: `DIR/NODE/active` while it runs, and `DIR/events`.

#![allow(dead_code)]

pub mod netns;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const KEEPALIVE_MS: u64 = 200;
pub const DEADTIME_MS: u64 = 2500;

/// The service script: `svc DIR start|stop|status`.
const SVC: &str = r#"#!/bin/sh
d="$1"; n=$(basename "$d")
case "$2" in
  start) [ -f "$d/fail-start" ] && exit 1
         echo "$n start" >> "$d/../events"; touch "$d/active"; exit 0 ;;
  stop)  rm -f "$d/active"; echo "$n stop" >> "$d/../events"; exit 0 ;;
  status) [ -f "$d/active" ] && exit 0; exit 3 ;;
  *) exit 2 ;;
esac
"#;

/// The stonith script: "powers off" the peer: kills its rdbd-ha and removes its marker
/// (what a power-off does to a service). `exit 1` when DIR/stonith-fails exists.
const STONITH: &str = r#"#!/bin/sh
d="$(dirname "$0")"; peer="$1"
echo "fence $peer" >> "$d/fence.log"
[ -f "$d/stonith-fails" ] && exit 1
[ -f "$d/$peer/pid" ] && kill -9 "$(cat "$d/$peer/pid")" 2>/dev/null
rm -f "$d/$peer/active"
exit 0
"#;

pub struct Options {
    pub auto_failback: bool,
    pub stonith: bool,
    pub preferred: &'static str,
    pub monitor_interval_ms: u64,
    pub monitor_failures_max: u32,
    /// Give each node its own ping node `tcp:127.0.0.1:PORT` (see `Cluster::ping_port`).
    pub ping: bool,
    /// Heartbeat media instead of unicast on loopback: `udp_port` and `[[links]]` TOML
    /// (`{IFACE}` is replaced by each node's interface, see `netns`).
    pub media: Option<(u16, String)>,
    /// Run each node in its network namespace (`ip netns exec NS`), with `{IFACE}` its
    /// interface there: `[(namespace, interface); 2]`.
    pub netns: Option<[(String, String); 2]>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auto_failback: false,
            stonith: true,
            preferred: "alice",
            monitor_interval_ms: 0,
            monitor_failures_max: 3,
            ping: false,
            media: None,
            netns: None,
        }
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    /// Each node's ping node port (a test opens a listener there to make it reachable).
    pub ping_ports: [u16; 2],
    pub config: PathBuf,
    pub ports: [u16; 2],
    pub procs: [Option<Child>; 2],
    pub netns: Option<[(String, String); 2]>,
}

pub const NAMES: [&str; 2] = ["alice", "bob"];

/// A reachable ping node; unreachable again once dropped.
pub struct PingNode {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for PingNode {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fails the test when `tool` is not installed (scripts/install-deps.sh installs it).
pub fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(
        found,
        "{tool} is not installed: run scripts/install-deps.sh"
    );
}

pub fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Cluster {
    pub fn new(o: Options) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_exec(&d.join("svc"), SVC);
        write_exec(&d.join("stonith"), STONITH);
        let ports = [free_udp_port(), free_udp_port()];
        for n in NAMES {
            std::fs::create_dir_all(d.join(n)).unwrap();
        }
        let stonith = if o.stonith {
            format!(
                "stonith = [\"{}\", \"{{peer}}\"]\nstonith_timeout_ms = 5000\n",
                d.join("stonith").display()
            )
        } else {
            String::new()
        };
        let mut text = format!(
            "auto_failback = {}\n{}{stonith}\n[timings]\nkeepalive_ms = {KEEPALIVE_MS}\nwarntime_ms = 1000\ndeadtime_ms = {DEADTIME_MS}\ninitdead_ms = 5000\n\n[auth]\nmethod = \"sha256\"\nsecret = \"the-secret\"\n\n",
            o.auto_failback,
            if o.ping { "ping_nodes = [\"tcp:127.0.0.1:{PING}\"]\nping_timeout_ms = 300\n" } else { "" },
        );
        match &o.media {
            None => {
                for (i, n) in NAMES.iter().enumerate() {
                    text += &format!(
                        "[[nodes]]\nname = \"{n}\"\nheartbeat = [\"127.0.0.1:{}\"]\n\n",
                        ports[i]
                    );
                }
            }
            Some((port, links)) => {
                text = format!("udp_port = {port}\n{text}");
                for n in NAMES {
                    text += &format!("[[nodes]]\nname = \"{n}\"\n\n");
                }
                text += links;
                text += "\n";
            }
        }
        text += &format!(
            "[[groups]]\nname = \"svc\"\npreferred_node = \"{}\"\nmonitor_interval_ms = {}\nmonitor_failures_max = {}\n\n[[groups.resources]]\ntype = \"script\"\nname = \"{}\"\nargs = [\"{{DIR}}\"]\n\n[commands]\nstart_timeout_ms = 5000\nstop_timeout_ms = 5000\nstatus_timeout_ms = 2000\n",
            o.preferred,
            o.monitor_interval_ms,
            o.monitor_failures_max,
            d.join("svc").display(),
        );
        let config = d.join("cluster.toml");
        std::fs::write(&config, &text).unwrap();
        let ping_ports = [free_tcp_port(), free_tcp_port()];
        Cluster {
            dir,
            ping_ports,
            config,
            ports,
            procs: [None, None],
            netns: o.netns,
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Each node gets its own copy of the configuration with its marker directory.
    fn node_config(&self, i: usize) -> PathBuf {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let p = self.path(&format!("{}.toml", NAMES[i]));
        let text = text
            .replace("{DIR}", &self.path(NAMES[i]).display().to_string())
            .replace("{PING}", &self.ping_ports[i].to_string());
        let text = match &self.netns {
            Some(ns) => text.replace("{IFACE}", &ns[i].1),
            None => text,
        };
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn run_dir(&self, i: usize) -> PathBuf {
        self.path(&format!("{}/run", NAMES[i]))
    }

    pub fn start(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .unwrap();
        // `ip netns exec` execs the program in place: the pid is rdbd-ha's.
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns[i].0, env!("CARGO_BIN_EXE_rdbd-ha")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_rdbd-ha")),
        };
        let child = cmd
            .arg("--config")
            .arg(self.node_config(i))
            .arg("--node")
            .arg(NAMES[i])
            .arg("--run-dir")
            .arg(self.run_dir(i))
            .arg("run")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        std::fs::write(
            self.path(&format!("{}/pid", NAMES[i])),
            child.id().to_string(),
        )
        .unwrap();
        self.procs[i] = Some(child);
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.path(&format!("{}.log", NAMES[i]))
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    pub fn pid(&self, i: usize) -> i32 {
        self.procs[i].as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, i: usize, sig: i32) {
        // SAFETY: kill(2) on a child we spawned.
        unsafe { libc::kill(self.pid(i), sig) };
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (clean shutdown) and wait.
    pub fn terminate(&mut self, i: usize) -> std::process::ExitStatus {
        self.signal(i, libc::SIGTERM);
        let mut c = self.procs[i].take().unwrap();
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "rdbd-ha did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes node i's ping node reachable (drop the listener to make it unreachable).
    pub fn ping_node(&self, i: usize) -> PingNode {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.ping_ports[i])).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        // Accept (and close) probes so the backlog never fills.
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = listener.accept();
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        PingNode {
            stop,
            thread: Some(thread),
        }
    }

    pub fn active(&self, i: usize) -> bool {
        self.path(&format!("{}/active", NAMES[i])).exists()
    }

    pub fn events(&self) -> String {
        std::fs::read_to_string(self.path("events")).unwrap_or_default()
    }

    pub fn fence_log(&self) -> String {
        std::fs::read_to_string(self.path("fence.log")).unwrap_or_default()
    }

    /// Waits until `pred`, checking on the way that the group never runs on both nodes.
    pub fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&Cluster) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            self.assert_not_both();
            if pred(self) {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\nevents:\n{}\nalice:\n{}\nbob:\n{}",
                    self.events(),
                    self.log(0),
                    self.log(1)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Watches for `d`, asserting all along that the group never runs on both nodes.
    pub fn hold(&self, d: Duration, pred: impl Fn(&Cluster) -> bool, what: &str) {
        let start = Instant::now();
        while start.elapsed() < d {
            self.assert_not_both();
            assert!(
                pred(self),
                "{what} stopped holding\nevents:\n{}\nalice:\n{}\nbob:\n{}",
                self.events(),
                self.log(0),
                self.log(1)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn assert_not_both(&self) {
        assert!(
            !(self.active(0) && self.active(1)),
            "the group runs on BOTH nodes\nevents:\n{}\nalice:\n{}\nbob:\n{}",
            self.events(),
            self.log(0),
            self.log(1)
        );
    }

    /// `rdbd-ha CMD...` against node i's control socket.
    pub fn ctl(&self, i: usize, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_rdbd-ha"))
            .arg("--run-dir")
            .arg(self.run_dir(i))
            .args(args)
            .output()
            .unwrap()
    }

    /// The status, or None while the control socket is not up (yet).
    pub fn try_status(&self, i: usize) -> Option<serde_json::Value> {
        let out = self.ctl(i, &["status", "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())?
    }

    pub fn status(&self, i: usize) -> serde_json::Value {
        let out = self.ctl(i, &["status", "--json"]);
        assert!(
            out.status.success(),
            "status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..2 {
            if let Some(mut c) = self.procs[i].take() {
                // SAFETY: kill(2) on our own child; SIGCONT first in case it was stopped.
                unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
