//! The seeds' setup end to end: two rdbd nodes replicating `r0` (protocol C) on loopback,
//! two `rdbd-ha` supervisors whose group is "rdbd Primary, the export attached, fsck'ed and
//! mounted, a service writing into it".
//!
//! - failover: a client writes and fsyncs numbered files on the primary's mount; the
//!   primary's rdbd and rdbd-ha are SIGKILLed; the survivor fences, promotes, mounts and
//!   starts the service; every file whose fsync returned is there; the time from the kill
//!   to the mounted file system is printed (target: deadtime + 2 s). The old primary
//!   returns, resyncs, stays Secondary (auto_failback off) and takes the group back on
//!   `rdbd-ha takeover`;
//! - the service fails twice: restarted, then the group is handed over cleanly;
//! - the heartbeats stop (rdbd-ha SIGSTOPped) but rdbd's replication link is up: the
//!   survivor refuses to take over even though it could fence, and no second Primary
//!   appears.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdbd_tests::bins::bin;
use rdbd_tests::fixture::scratch_dir;
use rdbd_tests::ha::{rdbdadm_args, write_exec, HaConfig};
use rdbd_tests::node::Node;
use rdbd_tests::tools::{free_tcp_port, free_udp_port};
use rdbd_tests::tools::{require, run, run_ok, stdout};

const DEADTIME_MS: u64 = 2500;
const NAMES: [&str; 2] = ["alice", "bob"];

/// The service: writes a marker into the mounted file system; `DIR/NODE.active` while up;
/// `DIR/NODE.broken` makes `status` fail.
const SVC: &str = r#"#!/bin/sh
m="$1"; flag="$2"
case "$3" in
  start) echo "$flag" > "$m/service-was-here" && touch "$flag.active" ;;
  stop) rm -f "$flag.active" ;;
  status) [ -f "$flag.broken" ] && exit 3; [ -f "$flag.active" ] || exit 3 ;;
  *) exit 2 ;;
esac
"#;

/// "Powers off" the peer: its supervisor, its rdbd, its mount and attachment.
const STONITH: &str = r#"#!/bin/sh
d="$(dirname "$0")"; peer="$1"
echo "fence $peer" >> "$d/fence.log"
for p in "$d/$peer/ha.pid" "$d/run-$peer/rdbd.pid"; do
  [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null
done
umount -l "$d/$peer/mnt" 2>/dev/null
# rdbd-ha records the attached device next to its FUSE directory.
dev=$(cut -d' ' -f1 "$d/$peer/ha-run/fuse-r0.device" 2>/dev/null)
[ -n "$dev" ] && losetup -d "$dev"
rm -f "$d/$peer/ha-run/fuse-r0.device"
fusermount3 -u -z "$d/$peer/ha-run/fuse-r0" 2>/dev/null
p="$d/$peer/ha-run/fuse-r0.nbdfuse.pid"
[ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null
rm -f "$d/$peer.active"
exit 0
"#;

/// Writes numbered 4 KiB files and fsyncs each (and the directory); prints each number
/// whose fsync returned.
const WRITER: &str = r#"
import os, sys
d, acked = sys.argv[1], open(sys.argv[2], "w")
dfd = os.open(d, os.O_RDONLY)
i = 0
while True:
    data = ("file-%08d-" % i).encode() * 256
    try:
        fd = os.open("%s/f%08d" % (d, i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.fsync(dfd)
    except OSError:
        sys.exit(0)
    acked.write("%d\n" % i)
    acked.flush()
    i += 1
"#;

struct Cluster {
    ha: [Option<Child>; 2],
    nodes: [Node; 2],
    /// Last: removed after the daemons are gone.
    dir: tempfile::TempDir,
}

impl Cluster {
    fn new(auto_failback: bool, monitor: &str) -> Cluster {
        require("nbdfuse");
        let dir = scratch_dir();
        let d = dir.path().to_path_buf();
        let (pa, pb) = (free_tcp_port(), free_tcp_port());
        let conf = d.join("rdbd.conf");
        std::fs::write(
            &conf,
            format!(
                "global {{ usage-count no; }}\n\
                 common {{ net {{ protocol C; connect-int 1; ping-int 2; ping-timeout 5; }} disk {{ c-plan-ahead 0; resync-rate 400M; }} }}\n\
                 resource r0 {{\n\
                   on alice {{ device /dev/drbd0; disk {d}/alice.img; address 127.0.0.1:{pa}; meta-disk internal; }}\n\
                   on bob {{ device /dev/drbd0; disk {d}/bob.img; address 127.0.0.1:{pb}; meta-disk internal; }}\n\
                 }}\n",
                d = d.display()
            ),
        )
        .unwrap();
        for n in NAMES {
            std::fs::File::create(d.join(format!("{n}.img")))
                .unwrap()
                .set_len(128 << 20)
                .unwrap();
            std::fs::create_dir_all(d.join(n)).unwrap();
        }
        // The file system goes into alice's data area before the meta-data (at the end);
        // the initial sync copies it to bob.
        run_ok(
            Command::new("mkfs.ext4")
                .args(["-q", "-F"])
                .arg(d.join("alice.img"))
                .arg("100M"),
        );
        let nodes = [Node::new(&d, "alice", &conf), Node::new(&d, "bob", &conf)];
        for n in &nodes {
            n.adm_ok(&["create-md", "--force", "r0"]);
            n.adm_ok(&["up", "r0"]);
        }
        let wait = |n: &Node, what: &str| {
            n.wait_status(what, Duration::from_secs(60), |t| t.contains(what));
        };
        wait(&nodes[0], "cs:Connected");
        nodes[0].adm_ok(&["primary", "--force", "r0"]);
        wait(&nodes[0], "ds:UpToDate/UpToDate");
        nodes[0].adm_ok(&["secondary", "r0"]);
        write_exec(&d.join("svc"), SVC);
        write_exec(&d.join("stonith"), STONITH);
        let (ha_a, ha_b) = (free_udp_port(), free_udp_port());
        for (i, n) in NAMES.iter().enumerate() {
            let groups = format!(
                r#"[[groups]]
name = "r0"
preferred_node = "alice"
{monitor}
[[groups.resources]]
type = "rdbd"
resource = "r0"
[[groups.resources]]
type = "filesystem"
resource = "r0"
mountpoint = "{d}/{n}/mnt"
fstype = "ext4"
[[groups.resources]]
type = "script"
name = "{d}/svc"
args = ["{d}/{n}/mnt", "{d}/{n}"]
"#,
                d = d.display(),
            );
            HaConfig {
                auto_failback: Some(auto_failback),
                stonith: vec![format!("{}/stonith", d.display()), "{peer}".into()],
                run_dir: Some(d.join(n).join("ha-run")),
                timings_ms: [200, 1000, DEADTIME_MS, 5000],
                auth: ("sha256".into(), "HA_DB".into()),
                nodes: vec![
                    ("alice".into(), format!("127.0.0.1:{ha_a}")),
                    ("bob".into(), format!("127.0.0.1:{ha_b}")),
                ],
                rdbdadm_args: rdbdadm_args(&nodes[i]),
                start_stop_timeout_ms: (60000, 30000),
                groups,
            }
            .write(&d.join(format!("{n}.toml")));
        }
        Cluster {
            ha: [None, None],
            nodes,
            dir,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn start_ha(&mut self, i: usize) {
        let n = NAMES[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(&format!("{n}-ha.log")))
            .unwrap();
        let child = Command::new(bin("rdbd-ha"))
            .arg("--config")
            .arg(self.path(&format!("{n}.toml")))
            .args(["--node", n, "run"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        std::fs::write(self.path(&format!("{n}/ha.pid")), child.id().to_string()).unwrap();
        self.ha[i] = Some(child);
    }

    fn ha_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.path(&format!("{}-ha.log", NAMES[i]))).unwrap_or_default()
    }

    fn active(&self, i: usize) -> bool {
        self.path(&format!("{}.active", NAMES[i])).exists()
    }

    fn role(&self, i: usize) -> String {
        stdout(&run(self.nodes[i].adm().args(["role", "r0"])))
            .trim()
            .to_string()
    }

    fn diag(&self) -> String {
        format!(
            "alice rdbd-ha:\n{}\nbob rdbd-ha:\n{}\nalice status:\n{}\nbob status:\n{}\nfence log:\n{}",
            self.ha_log(0),
            self.ha_log(1),
            self.nodes[0].status_file(),
            self.nodes[1].status_file(),
            std::fs::read_to_string(self.path("fence.log")).unwrap_or_default()
        )
    }

    /// Waits for `pred`, asserting all along that there is at most one Primary and one
    /// running service.
    fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&Cluster) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            assert!(
                !(self.active(0) && self.active(1)),
                "the service runs on BOTH nodes\n{}",
                self.diag()
            );
            if pred(self) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}\n{}",
                self.diag()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn hold(&self, what: &str, d: Duration, pred: impl Fn(&Cluster) -> bool) {
        let start = Instant::now();
        while start.elapsed() < d {
            assert!(pred(self), "{what} stopped holding\n{}", self.diag());
            assert!(
                !(self.role(0).starts_with("Primary") && self.role(1).starts_with("Primary")),
                "two Primaries\n{}",
                self.diag()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill_ha(&mut self, i: usize) {
        if let Some(mut c) = self.ha[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..2 {
            if let Some(c) = &self.ha[i] {
                // SAFETY: kill(2) on our child; SIGCONT in case a test stopped it.
                unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
                // SAFETY: as above; a clean shutdown unmounts and detaches.
                unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            }
        }
        for (i, name) in NAMES.iter().enumerate() {
            if let Some(mut c) = self.ha[i].take() {
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(20) {
                    if let Ok(Some(_)) = c.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.path(&format!("{name}/mnt")))
                .output();
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(self.path(&format!("{name}/ha-run/fuse-r0")))
                .output();
        }
        if let Some(keep) = std::env::var_os("RDBD_HA_TEST_KEEP_LOGS") {
            for n in NAMES {
                let _ = std::fs::copy(
                    self.path(&format!("{n}-ha.log")),
                    Path::new(&keep).join(format!("{n}-ha.log")),
                );
            }
        }
        // The rdbd daemons go while their run directories still exist.
        for n in &self.nodes {
            let _ = n.adm().args(["down", "r0"]).output();
            let _ = n.adm().arg("shutdown").output();
            n.crash();
        }
    }
}

/// Starts both supervisors, writes fsynced files on alice's mount, SIGKILLs alice's rdbd
/// and rdbd-ha, waits for bob to run the group and checks every acknowledged file there.
fn crash_primary_and_fail_over(c: &mut Cluster) -> Vec<u64> {
    c.start_ha(0);
    c.start_ha(1);
    c.wait("alice to run the group", Duration::from_secs(30), |c| {
        c.active(0)
    });
    assert!(c.role(0).starts_with("Primary/Secondary"), "{}", c.role(0));
    let mnt = c.path("alice/mnt");
    assert_eq!(
        std::fs::read_to_string(mnt.join("service-was-here"))
            .unwrap()
            .trim(),
        c.path("alice").display().to_string()
    );

    // A client writes and fsyncs numbered files.
    let writer_py = c.path("writer.py");
    std::fs::write(&writer_py, WRITER).unwrap();
    let acked_path = c.path("acked.txt");
    let mut writer = Command::new("python3")
        .arg(&writer_py)
        .arg(&mnt)
        .arg(&acked_path)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let acked = || {
        std::fs::read_to_string(&acked_path)
            .unwrap_or_default()
            .lines()
            .count()
    };
    c.wait(
        "the client to write 200 files",
        Duration::from_secs(60),
        |_| acked() >= 200,
    );

    // The primary dies: rdbd and rdbd-ha SIGKILLed.
    c.nodes[0].crash();
    c.kill_ha(0);
    let took = c.wait(
        "bob to take over",
        Duration::from_millis(DEADTIME_MS) + Duration::from_secs(30),
        |c| c.active(1),
    );
    println!(
        "SIGKILL of the primary to the file system mounted on the survivor: {:?} (deadtime {} ms; target deadtime + 2 s)",
        took, DEADTIME_MS
    );
    assert!(
        took <= Duration::from_millis(DEADTIME_MS) + Duration::from_secs(8),
        "failover took {took:?}: far beyond the deadtime + 2 s target"
    );
    let _ = writer.kill();
    let _ = writer.wait();
    let acked: Vec<u64> = std::fs::read_to_string(&acked_path)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let survivor = c.path("bob/mnt");
    for i in &acked {
        let f = survivor.join(format!("f{i:08}"));
        let data = std::fs::read(&f).unwrap_or_else(|e| {
            panic!(
                "fsynced file {i} missing on the survivor: {e}\n{}",
                c.diag()
            )
        });
        assert_eq!(
            data,
            format!("file-{i:08}-").repeat(256).into_bytes(),
            "file {i} content"
        );
    }
    println!("{} fsynced files all present on the survivor", acked.len());
    let bob_log = c.ha_log(1);
    assert!(bob_log.contains("stonith succeeded"), "{bob_log}");
    assert!(
        !bob_log.contains("fsck /dev"),
        "fsck did not fail:\n{bob_log}"
    );
    let fsck_line = bob_log
        .lines()
        .find(|l| l.contains("fsck -a: exit"))
        .unwrap_or_default();
    assert!(!fsck_line.is_empty(), "fsck ran and passed:\n{bob_log}");
    println!(
        "survivor: {}",
        fsck_line
            .split("rdbd_ha::group::shell:")
            .last()
            .unwrap_or(fsck_line)
            .trim()
    );
    assert!(c.role(1).starts_with("Primary"), "{}", c.role(1));
    acked
}

#[test]
fn sigkill_of_the_primary_fails_over_with_every_fsynced_file() {
    let mut c = Cluster::new(false, "monitor_interval_ms = 0");
    let acked = crash_primary_and_fail_over(&mut c);
    let mnt = c.path("alice/mnt");
    // The old primary returns: resyncs from bob, stays Secondary with auto_failback off.
    c.nodes[0].adm_ok(&["up", "r0"]);
    c.nodes[1].wait_status("the resync", Duration::from_secs(60), |t| {
        t.contains("ds:UpToDate/UpToDate")
    });
    c.start_ha(0);
    c.wait(
        "alice's rdbd-ha to hear bob",
        Duration::from_secs(20),
        |c| c.ha_log(0).contains("peer is alive"),
    );
    c.hold(
        "bob keeps the group (auto_failback off)",
        Duration::from_secs(3),
        |c| c.active(1) && !c.active(0),
    );
    assert!(c.role(0).starts_with("Secondary"), "{}", c.role(0));

    // takeover on alice: the group moves back, with the files written before the crash.
    let out = run_ok(
        Command::new(bin("rdbd-ha"))
            .arg("--config")
            .arg(c.path("alice.toml"))
            .args(["--node", "alice", "takeover"]),
    );
    assert!(out.status.success());
    c.wait(
        "alice to take the group back",
        Duration::from_secs(60),
        |c| c.active(0),
    );
    assert!(c.role(0).starts_with("Primary"), "{}", c.role(0));
    if let Some(last) = acked.last() {
        assert!(
            mnt.join(format!("f{last:08}")).exists(),
            "the last fsynced file is back on alice"
        );
    }
}

#[test]
fn a_failing_service_is_restarted_then_handed_over() {
    let mut c = Cluster::new(false, "monitor_interval_ms = 500\nmonitor_failures_max = 2");
    c.start_ha(0);
    c.start_ha(1);
    c.wait("alice to run the group", Duration::from_secs(30), |c| {
        c.active(0)
    });
    // The service dies once: restarted on alice.
    std::fs::remove_file(c.path("alice.active")).unwrap();
    c.wait("the restart", Duration::from_secs(10), |c| {
        c.ha_log(0).contains("restarted (failure 1)")
    });
    c.wait("the service back on alice", Duration::from_secs(10), |c| {
        c.active(0)
    });
    // It keeps failing: alice gives up, demotes; bob promotes (alice is a connected Secondary).
    std::fs::write(c.path("alice.broken"), "").unwrap();
    c.wait("bob to take the group", Duration::from_secs(30), |c| {
        c.active(1)
    });
    assert!(c.ha_log(0).contains("gave the group up"), "{}", c.diag());
    assert!(c.role(1).starts_with("Primary/Secondary"), "{}", c.role(1));
    assert!(
        !Path::new(&c.path("fence.log")).exists(),
        "a clean hand-over needs no fencing"
    );
    assert!(c.path("bob/mnt/service-was-here").exists());
}

#[test]
fn heartbeats_lost_but_replication_up_means_no_second_primary() {
    let mut c = Cluster::new(false, "monitor_interval_ms = 0");
    c.start_ha(0);
    c.start_ha(1);
    c.wait("alice to run the group", Duration::from_secs(30), |c| {
        c.active(0)
    });
    // alice's supervisor freezes: no heartbeats; her rdbd still replicates.
    let pid = c.ha[0].as_ref().unwrap().id() as i32;
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    c.wait("bob to declare alice dead", Duration::from_secs(20), |c| {
        c.ha_log(1).contains("peer is dead")
    });
    c.hold("no takeover", Duration::from_secs(4), |c| {
        !c.active(1) && c.role(1).starts_with("Secondary")
    });
    assert!(
        c.ha_log(1).contains("replication link to the peer is up"),
        "{}",
        c.diag()
    );
    assert!(
        !Path::new(&c.path("fence.log")).exists(),
        "an alive peer is not fenced"
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    c.hold("alice keeps the group", Duration::from_secs(2), |c| {
        c.active(0) && !c.active(1)
    });
}

#[test]
fn returning_primary_takes_the_group_back_with_auto_failback_on() {
    let mut c = Cluster::new(true, "monitor_interval_ms = 0");
    let acked = crash_primary_and_fail_over(&mut c);
    c.nodes[0].adm_ok(&["up", "r0"]);
    c.nodes[1].wait_status("the resync", Duration::from_secs(60), |t| {
        t.contains("ds:UpToDate/UpToDate")
    });
    c.start_ha(0);
    c.wait("the group back on alice", Duration::from_secs(60), |c| {
        c.active(0)
    });
    assert!(!c.active(1));
    assert!(c.role(0).starts_with("Primary"), "{}", c.role(0));
    assert!(c.role(1).starts_with("Secondary"), "{}", c.role(1));
    assert!(
        c.ha_log(1)
            .contains("auto_failback: the preferred node is back"),
        "{}",
        c.diag()
    );
    for i in &acked {
        assert!(
            c.path(&format!("alice/mnt/f{i:08}")).exists(),
            "fsynced file {i} back on alice"
        );
    }
}
