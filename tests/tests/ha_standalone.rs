//! rdbd-ha's real step runner on one node with a standalone rdbd resource: VIP (in a
//! private network namespace), `rdbdadm primary` after the safety check, the export
//! attached (nbdfuse + losetup), fsck'ed and mounted, an LSB service; then a clean
//! shutdown undoes everything in reverse. The peer never runs: the stonith command
//! (`true`) "fences" it after initdead.
//!
//! What needs the pair: promotion after a real failover (peer Outdated/DUnknown after a
//! kill), resync of the returning node, the replication-link-up refusal.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdbd_tests::bins::bin;
use rdbd_tests::fixture::Standalone;
use rdbd_tests::ha::{mounted, rdbdadm_args, write_exec, HaConfig, Reap};
use rdbd_tests::tools::free_udp_port;
use rdbd_tests::tools::{require, run, run_ok, stdout};

/// A network namespace with only `lo`, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("rdbdha{}{tag}", std::process::id());
        let _ = run(Command::new("ip").args(["netns", "del", &name]));
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        run_ok(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Netns(name)
    }

    fn lo_addrs(&self) -> String {
        stdout(&run_ok(
            Command::new("ip").args(["-n", &self.0, "-o", "addr", "show", "dev", "lo"]),
        ))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.0]));
    }
}

struct Ha {
    child: Option<Child>,
    log: PathBuf,
    run_dir: PathBuf,
}

impl Ha {
    /// `rdbd-ha run` inside `ns`'s network namespace only (mounts stay visible).
    fn start(ns: &Netns, config: &Path, dir: &Path) -> Ha {
        require("nsenter");
        let log = dir.join("rdbd-ha.log");
        let run_dir = dir.join("ha-run");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", ns.0))
            .arg(bin("rdbd-ha"))
            .arg("--config")
            .arg(config)
            .args(["--node", "alice", "--run-dir"])
            .arg(&run_dir)
            .arg("run")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Ha {
            child: Some(child),
            log,
            run_dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait(&self, what: &str, timeout: Duration, pred: impl Fn() -> bool) {
        let start = Instant::now();
        while !pred() {
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; rdbd-ha log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn status(&self) -> serde_json::Value {
        let out = run_ok(
            Command::new(bin("rdbd-ha"))
                .arg("--run-dir")
                .arg(&self.run_dir)
                .args(["status", "--json"]),
        );
        serde_json::from_str(&stdout(&out)).unwrap()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        // SAFETY: kill(2) on our child (nsenter execs rdbd-ha in place).
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "rdbd-ha did not stop; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Ha {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const SVC: &str = "#!/bin/sh\nm=\"$1\"\ncase \"$2\" in\n start) echo up > \"$m/service-was-here\" && touch \"$m.active\" ;;\n stop) rm -f \"$m.active\" ;;\n status) [ -f \"$m.active\" ] || exit 3 ;;\n *) exit 2 ;;\nesac\n";

fn config(s: &Standalone, resources: &str) -> PathBuf {
    let dir = s.dir.path();
    write_exec(&dir.join("svc"), SVC);
    let groups = format!(
        "[[groups]]\nname = \"r0\"\npreferred_node = \"alice\"\nmonitor_interval_ms = 500\n{resources}"
    );
    let p = dir.join("rdbd-ha.toml");
    HaConfig {
        auto_failback: None,
        stonith: vec!["true".into()],
        run_dir: None,
        timings_ms: [200, 600, 1000, 1000],
        auth: ("sha1".into(), "HA_DB".into()),
        nodes: vec![
            ("alice".into(), format!("127.0.0.1:{}", free_udp_port())),
            ("ghost".into(), format!("127.0.0.1:{}", free_udp_port())),
        ],
        rdbdadm_args: rdbdadm_args(&s.node),
        start_stop_timeout_ms: (30000, 30000),
        groups: groups.replace("{DIR}", &dir.display().to_string()),
    }
    .write(&p);
    p
}

const GROUP: &str = r#"
[[groups.resources]]
type = "ip"
address = "10.77.0.17/24"
interface = "lo"
[[groups.resources]]
type = "rdbd"
resource = "r0"
[[groups.resources]]
type = "filesystem"
resource = "r0"
mountpoint = "{DIR}/mnt"
fstype = "ext4"
[[groups.resources]]
type = "script"
name = "{DIR}/svc"
args = ["{DIR}/mnt"]
"#;

/// A standalone resource, up and Secondary, whose data holds an ext4 file system (made
/// before the meta-data, which goes at the end) and which was UpToDate once (`primary
/// --force`), as the group expects to find it.
fn uptodate_with_ext4() -> Standalone {
    let s = Standalone::configured(64);
    run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&s.disk)
            .arg("48M"),
    );
    s.node.adm_ok(&["create-md", "--force", "r0"]);
    s.node.adm_ok(&["up", "r0"]);
    s.node.adm_ok(&["primary", "--force", "r0"]);
    s.node.adm_ok(&["secondary", "r0"]);
    s
}

/// On drop: the group's mount point and nbdfuse directory unmounted, the daemon stopped.
fn reap_group(s: &Standalone) -> Reap<'_> {
    let d = s.dir.path();
    Reap(
        &s.node,
        ["mnt", "ha-run/fuse-r0"]
            .iter()
            .map(|p| d.join(p))
            .collect(),
    )
}

#[test]
fn group_on_a_standalone_resource_starts_and_stops_for_real() {
    require("nbdfuse");
    require("losetup");
    let s = uptodate_with_ext4();
    let _reap = reap_group(&s);
    let ns = Netns::new("a");
    let cfg = config(&s, GROUP);
    let mnt = s.dir.path().join("mnt");
    let mut ha = Ha::start(&ns, &cfg, s.dir.path());

    ha.wait("the group to run", Duration::from_secs(30), || {
        s.dir.path().join("mnt.active").exists()
    });
    assert!(mounted(&mnt), "the export is mounted");
    assert_eq!(
        std::fs::read_to_string(mnt.join("service-was-here")).unwrap(),
        "up\n",
        "the service wrote into the mounted file system"
    );
    assert_eq!(s.node.adm_ok(&["role", "r0"]).trim(), "Primary/Unknown");
    assert!(
        ns.lo_addrs().contains("10.77.0.17/24"),
        "VIP on lo: {}",
        ns.lo_addrs()
    );
    let log = ha.log();
    for expect in [
        "no heartbeat within initdead",
        "stonith succeeded",
        "export attached",
        "group running",
    ] {
        assert!(log.contains(expect), "'{expect}' in the log:\n{log}");
    }
    let st = ha.status();
    assert_eq!(st["groups"][0]["state"], "running", "{st}");
    assert_eq!(st["peer"]["liveness"], "fenced", "{st}");
    // A monitor round or two passes on the real resources.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(ha.status()["groups"][0]["failures"], 0);

    // Clean shutdown: service stopped, unmounted, detached, Secondary, VIP gone.
    assert!(ha.terminate().success(), "log:\n{}", ha.log());
    assert!(!s.dir.path().join("mnt.active").exists());
    assert!(!mounted(&mnt), "unmounted");
    assert_eq!(s.node.adm_ok(&["role", "r0"]).trim(), "Secondary/Unknown");
    assert!(
        !ns.lo_addrs().contains("10.77.0.17"),
        "VIP removed: {}",
        ns.lo_addrs()
    );
    let fuse_dir = s.node.run_dir.parent().unwrap().join("ha-run/fuse-r0");
    assert!(!mounted(&fuse_dir), "nbdfuse unmounted");
    let losetup = stdout(&run_ok(Command::new("losetup").arg("-a")));
    assert!(
        !losetup.contains(&fuse_dir.display().to_string()),
        "loop device detached: {losetup}"
    );
    // The data survived: with the resource down, the backing file's data area holds a
    // clean file system with the file the service wrote.
    s.node.adm_ok(&["down", "r0"]);
    let out = run(Command::new("fsck.ext4").args(["-n", "-f"]).arg(&s.disk));
    assert!(
        out.status.success(),
        "fsck after the clean stop:\n{}{}",
        stdout(&out),
        rdbd_tests::tools::stderr(&out)
    );
    let out = run_ok(
        Command::new("debugfs")
            .args(["-R", "cat /service-was-here"])
            .arg(&s.disk),
    );
    assert_eq!(stdout(&out).trim(), "up");
}

#[test]
fn inconsistent_disk_is_never_promoted() {
    let s = Standalone::configured(64);
    let _reap = Reap(&s.node, vec![]);
    s.node.adm_ok(&["create-md", "--force", "r0"]);
    s.node.adm_ok(&["up", "r0"]);
    let ns = Netns::new("b");
    let cfg = config(&s, GROUP);
    let ha = Ha::start(&ns, &cfg, s.dir.path());
    ha.wait("the refusal", Duration::from_secs(20), || {
        ha.log().contains("rdbd disks may not be promoted")
    });
    std::thread::sleep(Duration::from_millis(1500));
    let st = ha.status();
    let eligible = st["groups"][0]["eligible"].as_str().unwrap().to_string();
    assert!(
        eligible.starts_with("no") && eligible.contains("Inconsistent"),
        "{st}"
    );
    assert_eq!(st["groups"][0]["holds"], false, "{st}");
    assert_eq!(s.node.adm_ok(&["role", "r0"]).trim(), "Secondary/Unknown");
    assert!(
        !ns.lo_addrs().contains("10.77.0.17"),
        "nothing of the group started"
    );
    assert!(!s.dir.path().join("mnt.active").exists());
}

#[test]
fn a_sigkilled_supervisor_cleans_up_when_it_restarts() {
    require("nbdfuse");
    let s = uptodate_with_ext4();
    let d = s.dir.path().to_path_buf();
    let _reap = reap_group(&s);
    let ns = Netns::new("c");
    let cfg = config(&s, GROUP);
    let mnt = d.join("mnt");
    let state = d.join("ha-run/fuse-r0.device");
    let mut ha = Ha::start(&ns, &cfg, &d);
    ha.wait("the group to run", Duration::from_secs(30), || {
        d.join("mnt.active").exists()
    });
    let recorded = std::fs::read_to_string(&state).expect("the attachment is recorded");
    let mut words = recorded.split_whitespace();
    let old_device = words.next().unwrap().to_string();
    let old_identity = words.collect::<Vec<_>>().join(" ");
    assert!(!old_identity.is_empty(), "identity recorded: {recorded}");

    // The supervisor dies; its resources stay (mount, loop device, nbdfuse).
    drop(ha);
    assert!(mounted(&mnt));
    // One line per loop device, words separated by one space.
    let loops = || {
        stdout(&run_ok(Command::new("losetup").args([
            "-l",
            "-n",
            "-O",
            "NAME,BACK-MAJ:MIN,BACK-INO",
        ])))
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
        .collect::<String>()
    };
    assert!(loops().contains(&old_identity), "{}", loops());

    // A new incarnation stops the group first (known state), then runs it again.
    ha = Ha::start(&ns, &cfg, &d);
    ha.wait("the group to run again", Duration::from_secs(30), || {
        ha.log().contains("group running")
    });
    let log = ha.log();
    let stopped = log.find("group stopped").expect("startup stop");
    assert!(stopped < log.find("group running").unwrap(), "{log}");
    let new_identity = std::fs::read_to_string(&state)
        .unwrap()
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ");
    let bound = |id: &str| loops().lines().filter(|l| l.ends_with(id)).count();
    assert_eq!(bound(&new_identity), 1, "{}", loops());
    if new_identity != old_identity {
        assert_eq!(
            bound(&old_identity),
            0,
            "old {old_device} detached: {}",
            loops()
        );
    }
    assert!(mounted(&mnt));
    assert!(ha.terminate().success(), "log:\n{}", ha.log());
    assert!(!mounted(&mnt));
    assert!(!state.exists(), "the record goes with the attachment");
}
