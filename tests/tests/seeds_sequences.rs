//! The command sequences users type in the seeds (`/work/shared/seeds/`), replayed with
//! `rdbdadm` in place of `drbdadm` on a replicated pair (`alice` and `bob`, resource
//! `r0` in place of the seeds' `data`, `r1` and `mystore`), checking what each seed
//! expects to see: the `/proc/drbd` lines (the status file), `role`/`dstate` output,
//! exit codes, and the data through NBD.
//!
//! Every command line is run by `bash` (the seeds' shell) with a `drbdadm` on PATH that is `rdbdadm` with the
//! node's configuration, node name and run directory, so lines are typed as in the seeds
//! (`drbdadm -- --overwrite-data-of-peer primary r0`, `drbdadm role r0 | grep Primary`).
//!
//! - seed 000 (NFS+DRBD+Heartbeat): create-md, up, `cat /proc/drbd`,
//!   `-- --overwrite-data-of-peer primary`, write, `down`/`up` of the secondary (its
//!   disk read directly while down), then the split-brain recovery of §1.10:
//!   `secondary`, `disconnect`, `-- --discard-my-data connect` on the victim, `connect` on
//!   the survivor;
//! - seed 001 (CentOS 7.6 NFS): `up all`, `primary --force`, `role` on both, `dstate`,
//!   `mkfs.ext4` and `mount` of the device (nbdfuse + loop), files written, `umount`,
//!   `secondary all` and `primary` on the other node, mounted there: the files with their
//!   content, fsck clean;
//! - seed 002 (keepalived check script): the script's `drbdadm role r1|grep Primary`
//!   branches, promoting and demoting through the script;
//! - seed 003 (MFS): `-- --overwrite-data-of-peer primary all`, `primary r0` and
//!   `primary all` again (no-ops), SyncSource then Connected in `/proc/drbd`, a second
//!   Primary refused with exit code 11 (the seed's "Multiple primaries not allowed"),
//!   switch-over with `secondary all` / `primary all`;
//! - seed 004 (mystore): `primary --force`, `mke2fs -t ext4` and `mount` (nbdfuse + loop),
//!   `fstab` copied in and edited, `umount`, `secondary`, `primary` on the other node,
//!   mounted there: the edit is there, fsck clean; `umount`, `secondary`,
//!   `service drbd stop` (`down all` on both).
//!
//! The `/proc/drbd` line of each node is checked after every role change.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rdbd_tests::bins::bin;
use rdbd_tests::fuse::NbdLoop;
use rdbd_tests::node::Node;
use rdbd_tests::pair::{node_log, Pair, PairOptions, DATA_BYTES};
use rdbd_tests::tools::{run, run_ok, sha256_prefix, stderr, stdout};

/// Debian's interpreter: it has python3-libnbd.
const PYTHON: &str = "/usr/bin/python3";

/// A pair whose backing files hold no meta-data yet (the seeds start with `create-md`),
/// each node with a `drbdadm` wrapper directory.
struct Seed {
    p: Pair,
    wrappers: [PathBuf; 2],
}

impl Seed {
    fn new() -> Seed {
        Seed::with(PairOptions::default())
    }

    fn with(o: PairOptions) -> Seed {
        let p = Pair::with(o);
        // Pair::with wrote meta-data; the seeds begin on fresh disks.
        for d in [&p.disk_a, &p.disk_b] {
            let f = std::fs::OpenOptions::new().write(true).open(d).unwrap();
            f.set_len(0).unwrap();
            f.set_len(64 << 20).unwrap();
        }
        let wrappers = [wrapper(&p, &p.a), wrapper(&p, &p.b)];
        Seed { p, wrappers }
    }

    /// As [`Seed::new`], with seed 000's meta-data layout: `meta-disk DEV [0];`, an
    /// indexed external meta-data device per node (128 MiB per index, as drbdmeta
    /// sizes them), so the whole backing file is data.
    fn with_indexed_meta_disk() -> Seed {
        let s = Seed::new();
        let md = |name: &str| s.p.dir.path().join(format!("{name}-md.img"));
        for name in ["alice", "bob"] {
            std::fs::File::create(md(name))
                .unwrap()
                .set_len(128 << 20)
                .unwrap();
        }
        for (n, conf) in [(&s.p.a, "a.conf"), (&s.p.b, "b.conf")] {
            let path = s.p.dir.path().join(conf);
            let text = std::fs::read_to_string(&path).unwrap();
            let mut out = String::new();
            for line in text.lines() {
                let host = ["alice", "bob"]
                    .into_iter()
                    .find(|h| line.trim_start().starts_with(&format!("on {h} ")));
                out.push_str(&match host {
                    Some(h) => line.replace(
                        "meta-disk internal;",
                        &format!("meta-disk {} [0];", md(h).display()),
                    ),
                    None => line.to_string(),
                });
                out.push('\n');
            }
            assert!(out.contains(" [0];"), "{}: {out}", n.name);
            std::fs::write(&path, out).unwrap();
        }
        s
    }

    fn node(&self, i: usize) -> &Node {
        [&self.p.a, &self.p.b][i]
    }

    /// Runs one command line of a seed on node `i`.
    fn sh(&self, i: usize, line: &str) -> Output {
        let path = format!(
            "{}:{}",
            self.wrappers[i].display(),
            std::env::var("PATH").unwrap_or_default()
        );
        run(Command::new("bash").arg("-c").arg(line).env("PATH", path))
    }

    /// As [`Seed::sh`], which must succeed; returns stdout.
    fn ok(&self, i: usize, line: &str) -> String {
        let out = self.sh(i, line);
        assert!(
            out.status.success(),
            "{} `{line}` failed ({}):\n{}{}\n{}",
            self.node(i).name,
            out.status,
            stdout(&out),
            stderr(&out),
            self.diag()
        );
        stdout(&out)
    }

    /// `cat /proc/drbd` on node `i`, waiting until it shows `what`.
    fn proc_drbd(&self, i: usize, what: &str, secs: u64) -> String {
        let start = Instant::now();
        loop {
            let text = self.node(i).status_file();
            if text.contains(what) {
                return text;
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "{}: timed out waiting for {what:?}\n{}",
                self.node(i).name,
                self.diag()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until node `i` sees its peer Secondary: the operator's look at
    /// `/proc/drbd` between `secondary` here and `primary` there (the peer learns of the
    /// demotion by a state packet, in DRBD as in rdbd).
    fn peer_demoted(&self, i: usize) {
        self.proc_drbd(i, "ro:Secondary/Secondary", 10);
    }

    /// Node `i`'s `/dev/drbd0`: its export as a loop device through nbdfuse.
    fn device(&self, i: usize) -> NbdLoop {
        let dir = self
            .p
            .dir
            .path()
            .join(format!("fuse-{}", self.node(i).name));
        NbdLoop::attach(&dir, &self.node(i).nbd_uri("r0"))
    }

    /// The mount point the seed uses (`/nfs`, `/drbd`) on node `i`.
    fn mount_point(&self, i: usize, name: &str) -> PathBuf {
        self.p
            .dir
            .path()
            .join(format!("{}-{name}", self.node(i).name))
    }

    /// `umount`, the device released (nbdfuse gone), then `fsck -n -f` clean.
    fn umount_fsck_release(&self, mut dev: NbdLoop) {
        dev.umount();
        let (clean, report) = dev.fsck_clean();
        assert!(clean, "fsck after umount:\n{report}");
        drop(dev);
    }

    /// A seed line that is refused while the device is still held open (the daemon
    /// notices the NBD client that nbdfuse closed a moment later).
    fn ok_once_released(&self, i: usize, line: &str) -> String {
        let start = Instant::now();
        loop {
            let out = self.sh(i, line);
            if out.status.success() {
                return stdout(&out);
            }
            assert!(
                start.elapsed() < Duration::from_secs(10) && stderr(&out).contains("held open"),
                "{} `{line}` failed ({}):\n{}{}\n{}",
                self.node(i).name,
                out.status,
                stdout(&out),
                stderr(&out),
                self.diag()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `drbdadm create-md r0` then `up_line` on both nodes (the seeds' first step).
    fn create_md_and_up(&self, up_line: &str) {
        for i in 0..2 {
            self.ok(i, "drbdadm create-md r0");
            self.ok(i, up_line);
        }
    }

    /// Seed 000's steps 7 and 8: `create-md` and `up r0` on both, connected with nothing
    /// synced, then `-- --overwrite-data-of-peer primary r0` on node 0 and the initial sync.
    fn initial_sync(&self) {
        self.create_md_and_up("drbdadm up r0");
        self.proc_drbd(0, UNSYNCED, 30);
        self.ok(0, "drbdadm -- --overwrite-data-of-peer primary r0");
        self.wait_synced(0, 60, 30);
    }

    /// `down_line` on both nodes.
    fn down_both(&self, down_line: &str) {
        for i in 0..2 {
            self.ok(i, down_line);
        }
    }

    /// Waits until both nodes show the resource in sync with node `primary` Primary:
    /// `primary_secs` for the Primary's line (with protocol C and no I/O suspended), then
    /// `peer_secs` for the Secondary's. Returns the Primary's `/proc/drbd`.
    fn wait_synced(&self, primary: usize, primary_secs: u64, peer_secs: u64) -> String {
        let synced = self.proc_drbd(primary, PRIMARY_SYNCED_C, primary_secs);
        self.proc_drbd(1 - primary, PEER_OF_PRIMARY_SYNCED, peer_secs);
        synced
    }

    /// Node `i`'s device mounted at the seed's mount point `name` (after `mkfs.ext4` when
    /// `mkfs`).
    fn mount(&self, i: usize, name: &str, mkfs: bool) -> (NbdLoop, PathBuf) {
        let mut dev = self.device(i);
        if mkfs {
            dev.mkfs_ext4();
        }
        let mnt = self.mount_point(i, name);
        dev.mount(&mnt);
        (dev, mnt)
    }

    /// `umount` and fsck of node `i`'s device, then `secondary_line` there once the
    /// device is released: `/proc/drbd` shows both Secondary.
    fn umount_and_demote(&self, dev: NbdLoop, i: usize, secondary_line: &str) {
        self.umount_fsck_release(dev);
        self.ok_once_released(i, secondary_line);
        self.proc_drbd(
            i,
            " 0: cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate C r-----",
            10,
        );
    }

    /// The manual switch-over: [`Seed::umount_and_demote`] on node `from`, then
    /// `drbdadm primary r0` on the other node once it sees the demotion.
    fn switch_over(&self, dev: NbdLoop, from: usize, secondary_line: &str) {
        let to = 1 - from;
        self.umount_and_demote(dev, from, secondary_line);
        self.peer_demoted(to);
        self.ok(to, "drbdadm primary r0");
        self.proc_drbd(to, &format!(" 0: {PRIMARY_SYNCED_C}"), 10);
    }

    /// Both backing files hold the same first `len_bytes`.
    fn assert_same_data(&self, len_bytes: u64) {
        assert_eq!(
            sha256_prefix(&self.p.disk_a, len_bytes),
            sha256_prefix(&self.p.disk_b, len_bytes)
        );
    }

    /// Both nodes' status files and the end of their logs.
    fn diag(&self) -> String {
        let mut out = String::new();
        for n in [&self.p.a, &self.p.b] {
            let log = node_log(n);
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            out.push_str(&format!(
                "--- {} status:\n{}--- {} log (last lines):\n{}\n",
                n.name,
                n.status_file(),
                n.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        out
    }
}

/// A directory holding `drbdadm`: rdbdadm with the node's global options.
fn wrapper(p: &Pair, n: &Node) -> PathBuf {
    let dir = p.dir.path().join(format!("bin-{}", n.name));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("drbdadm");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nRDBD_DAEMON='{}' exec '{}' -c '{}' --node '{}' --run-dir '{}' \"$@\"\n",
            bin("rdbd").display(),
            bin("rdbdadm").display(),
            n.config.display(),
            n.name,
            n.run_dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Writes `len` bytes of `byte` at `offset` through NBD in 256 KiB requests (what the
/// kernel's NBD client sends for a file system's writes), then flushes.
fn nbd_fill(uri: &str, offset: u64, len: usize, byte: u8) {
    let script = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\noff, n, b = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])\nfor o in range(0, n, 262144):\n    h.pwrite(bytes([b]) * min(262144, n - o), off + o)\nh.flush()\nh.shutdown()\n";
    run_ok(
        Command::new(PYTHON)
            .args(["-c", script, uri])
            .arg(offset.to_string())
            .arg(len.to_string())
            .arg(byte.to_string()),
    );
}

/// The distinct byte values of a range read through NBD.
fn nbd_bytes(uri: &str, offset: u64, len: usize) -> Vec<u8> {
    let script = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nb = h.pread(int(sys.argv[3]), int(sys.argv[2]))\nprint(' '.join(str(x) for x in sorted(set(b))))\nh.shutdown()\n";
    let out = run_ok(
        Command::new(PYTHON)
            .args(["-c", script, uri])
            .arg(offset.to_string())
            .arg(len.to_string()),
    );
    stdout(&out)
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect()
}

/// The distinct byte values of a range of a backing file (read directly, as the seed
/// mounts the secondary's partition while it is down).
fn file_bytes(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).unwrap();
    buf.sort_unstable();
    buf.dedup();
    buf
}

const MIB: usize = 1 << 20;

/// `/proc/drbd` of both nodes connected, before the initial sync.
const UNSYNCED: &str = "cs:Connected ro:Secondary/Secondary ds:Inconsistent/Inconsistent";

/// `/proc/drbd` of the Primary of a pair in sync (protocol C, no I/O suspended).
const PRIMARY_SYNCED_C: &str = "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----";

/// `/proc/drbd` of the Secondary of a pair in sync.
const PEER_OF_PRIMARY_SYNCED: &str = "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate";

/// DRBD's log line for a split brain no after-sb policy resolved.
const SPLIT_BRAIN: &str = "Split-Brain detected but unresolved, dropping connection!";

#[test]
fn seed_000_initial_sync_secondary_down_up_and_split_brain_recovery() {
    let s = Seed::new();
    // 7: initialise. 8: primary on data-1-1 only, sync to the peer.
    s.initial_sync();
    // 9: write on the primary (the seed copies files into the mounted device).
    let uri_a = s.p.a.nbd_uri("r0");
    nbd_fill(&uri_a, 0, 2 * MIB, 0x11);
    // data-1-2: down, look at the partition directly, up again.
    s.ok(1, "drbdadm down r0");
    assert_eq!(
        file_bytes(&s.p.disk_b, 0, 2 * MIB),
        vec![0x11],
        "the secondary's disk holds what the primary wrote"
    );
    s.ok(1, "drbdadm up r0");
    s.wait_synced(0, 30, 30);

    // 1.10: a split brain. Both sides lose the link and both write as Primary.
    s.ok(0, "drbdadm disconnect r0");
    s.ok(1, "drbdadm disconnect r0");
    s.ok(1, "drbdadm primary r0");
    let uri_b = s.p.b.nbd_uri("r0");
    nbd_fill(&uri_b, 4 * MIB as u64, MIB, 0x22);
    nbd_fill(&uri_a, 8 * MIB as u64, MIB, 0x33);
    s.ok(0, "drbdadm connect r0");
    s.ok(1, "drbdadm connect r0");
    // The handshake finds the split brain (both changed their data since they parted;
    // after-sb-2pri disconnect, the default) and drops the connection: "Primary/Unknown"
    // on both, as the seed describes, never Connected.
    let start = Instant::now();
    while !(0..2).any(|i| node_log(s.node(i)).contains(SPLIT_BRAIN)) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no split brain detected\n{}",
            s.diag()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..2 {
        let status = s.proc_drbd(i, "ro:Primary/Unknown", 10);
        assert!(!status.contains("cs:Connected"), "{}", s.diag());
    }
    // 1) on the node whose changes are thrown away.
    s.ok(1, "drbdadm secondary r0");
    s.ok(1, "drbdadm disconnect r0");
    s.ok(1, "drbdadm -- --discard-my-data connect r0");
    // 2) on the primary: "if not WFConnection, connect by hand". As in DRBD 8.4, each
    // side ran the sync handshake on the other's UUIDs and state and found the split
    // brain, so both are StandAlone (neither retries). `cstate` says what /proc/drbd says.
    s.proc_drbd(0, " cs:StandAlone ", 20);
    let cstate = s.ok(0, "drbdadm cstate r0");
    assert_eq!(cstate, "StandAlone\n", "{}", s.diag());
    s.ok(0, "drbdadm connect r0");
    s.wait_synced(0, 60, 30);
    // The victim's write is gone, the survivor's is there.
    s.ok(0, "drbdadm secondary r0");
    s.peer_demoted(1);
    s.ok(1, "drbdadm primary r0");
    let uri_b = s.p.b.nbd_uri("r0");
    assert_eq!(nbd_bytes(&uri_b, 4 * MIB as u64, MIB), vec![0]);
    assert_eq!(nbd_bytes(&uri_b, 8 * MIB as u64, MIB), vec![0x33]);
    assert_eq!(nbd_bytes(&uri_b, 0, 2 * MIB), vec![0x11]);
    s.ok(1, "drbdadm secondary r0");
    s.down_both("drbdadm down r0");
    s.assert_same_data(DATA_BYTES);
}

#[test]
fn seed_001_up_all_force_primary_role_dstate_and_switch_over() {
    let s = Seed::new();
    s.create_md_and_up("drbdadm up all");
    s.proc_drbd(1, "cs:Connected ro:Secondary/Secondary", 30);
    s.ok(0, "drbdadm primary --force r0");
    assert_eq!(s.ok(0, "drbdadm role r0"), "Primary/Secondary\n");
    assert_eq!(s.ok(1, "drbdadm role r0"), "Secondary/Primary\n");
    s.proc_drbd(1, "ds:UpToDate/UpToDate", 60);
    assert_eq!(s.ok(1, "drbdadm dstate r0"), "UpToDate/UpToDate\n");
    s.proc_drbd(0, &format!(" 0: {PRIMARY_SYNCED_C}"), 10);
    // ct74: mkfs.ext4 /dev/drbd0; mount /dev/drbd0 /nfs; files into it.
    let (dev, nfs) = s.mount(0, "nfs", true);
    let big: Vec<u8> = (0..3 * MIB).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::create_dir_all(nfs.join("share")).unwrap();
    std::fs::write(
        nfs.join("share/exports"),
        "/nfs 192.168.137.0/24(rw,sync)\n",
    )
    .unwrap();
    std::fs::write(nfs.join("share/big.bin"), &big).unwrap();
    // Writes went to bob as well (dw here, nr there).
    s.proc_drbd(
        0,
        " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate",
        5,
    );
    // umount /nfs; drbdadm secondary all (refused while the device is held open).
    // ct75: drbdadm primary r0; mount /dev/drbd0 /nfs: the files are there.
    s.switch_over(dev, 0, "drbdadm secondary all");
    s.proc_drbd(0, &format!(" 0: {PEER_OF_PRIMARY_SYNCED}"), 10);
    assert_eq!(s.ok(1, "drbdadm role r0"), "Primary/Secondary\n");
    assert_eq!(s.ok(0, "drbdadm role r0"), "Secondary/Primary\n");
    let (dev, nfs) = s.mount(1, "nfs", false);
    assert_eq!(
        std::fs::read_to_string(nfs.join("share/exports")).unwrap(),
        "/nfs 192.168.137.0/24(rw,sync)\n"
    );
    assert!(
        std::fs::read(nfs.join("share/big.bin")).unwrap() == big,
        "big.bin differs"
    );
    s.umount_fsck_release(dev);
}

/// The keepalived check script of seed 002 (its DRBD part, `r1` -> `r0`), run as is:
/// on the master it promotes when `role` shows no Primary; on the backup it demotes.
const CHECK_MASTER: &str = r#"
drbdadm role r0|grep Primary &>/dev/null
if [ $? -ne 0 ];then
    drbdadm primary r0 || exit 1
    echo promoted
fi
"#;
const CHECK_BACKUP: &str = r#"
drbdadm role r0|grep Primary &>/dev/null
if [ $? -eq 0 ];then
    drbdadm secondary r0 || exit 1
    echo demoted
fi
"#;

#[test]
fn seed_002_keepalived_check_script_promotes_and_demotes() {
    let s = Seed::new();
    s.create_md_and_up("drbdadm up r0");
    s.proc_drbd(0, "cs:Connected", 30);
    s.ok(0, "drbdadm primary --force r0");
    s.proc_drbd(1, "ds:UpToDate/UpToDate", 60);
    // alice is master and already Primary: nothing to do; bob (backup) is Secondary.
    // (`grep Primary` also matches "Secondary/Primary": the seed's script has that
    // flaw; rdbdadm prints the same text, so it behaves the same.)
    assert_eq!(s.ok(0, CHECK_MASTER), "");
    assert_eq!(
        s.ok(1, CHECK_BACKUP).trim(),
        "demoted",
        "the flawed grep: `secondary` on a Secondary, a no-op"
    );
    assert_eq!(s.ok(1, "drbdadm role r0"), "Secondary/Primary\n");
    // notify_stop on alice: `drbdadm secondary r1`; keepalived moves the VIP to bob.
    s.ok(0, "drbdadm secondary r0");
    s.peer_demoted(1);
    assert_eq!(s.ok(1, CHECK_MASTER).trim(), "promoted");
    assert_eq!(s.ok(1, "drbdadm role r0"), "Primary/Secondary\n");
    assert_eq!(s.ok(1, CHECK_BACKUP).trim(), "demoted");
    assert_eq!(s.ok(1, "drbdadm role r0"), "Secondary/Secondary\n");
}

#[test]
fn seed_003_overwrite_primary_all_and_second_primary_refused() {
    let s = Seed::new();
    // `service drbd start`: up every resource.
    s.create_md_and_up("drbdadm up all");
    s.proc_drbd(0, UNSYNCED, 30);
    s.ok(0, "drbdadm -- --overwrite-data-of-peer primary all");
    s.ok(0, "drbdadm primary r0");
    s.ok(0, "drbdadm primary all");
    let synced = s.wait_synced(0, 60, 30);
    assert!(synced.contains(" oos:0"), "{synced}");
    // Promoting mfs-bak while mfs-master is Primary is refused (exit code 11).
    let out = s.sh(1, "drbdadm primary all");
    assert_eq!(
        out.status.code(),
        Some(11),
        "second Primary: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(s.ok(1, "drbdadm role r0"), "Secondary/Primary\n");
    // Initdrbd stop on the master, start on the backup.
    s.ok(0, "drbdadm secondary all");
    s.peer_demoted(1);
    s.ok(1, "drbdadm primary all");
    s.wait_synced(1, 10, 10);
    s.ok(1, "drbdadm secondary r0");
    s.peer_demoted(0);
    s.ok(0, "drbdadm primary r0");
    s.proc_drbd(0, "ro:Primary/Secondary", 10);
}

#[test]
fn seed_004_mystore_manual_switch_over_and_service_stop() {
    let s = Seed::new();
    s.create_md_and_up("drbdadm up all");
    s.proc_drbd(0, "cs:Connected", 30);
    s.ok(0, "drbdadm primary --force r0");
    // `watch cat /proc/drbd` after the promotion: syncing, then in sync.
    s.proc_drbd(0, "ro:Primary/Secondary ds:UpToDate/", 10);
    s.proc_drbd(0, "ds:UpToDate/UpToDate", 60);
    // mke2fs -t ext4 /dev/drbd0; mount /dev/drbd0 /drbd; cp /etc/fstab .; vim fstab.
    let (dev, mnt) = s.mount(0, "drbd", true);
    let fstab = std::fs::read_to_string("/etc/fstab").unwrap_or_default();
    std::fs::write(mnt.join("fstab"), &fstab).unwrap();
    let edited = format!("{fstab}# edited on node1: /dev/drbd0 /drbd ext4 defaults 0 0\n");
    std::fs::write(mnt.join("fstab"), &edited).unwrap();
    // umount /dev/drbd0; drbdadm secondary mystore.
    // The other node: drbdadm primary mystore; mount; the edit is there.
    s.switch_over(dev, 0, "drbdadm secondary r0");
    let (dev, mnt) = s.mount(1, "drbd", false);
    assert_eq!(std::fs::read_to_string(mnt.join("fstab")).unwrap(), edited);
    // Before handing over to Pacemaker: umount, demote where Primary, stop drbd on both.
    s.umount_and_demote(dev, 1, "drbdadm secondary r0");
    s.down_both("drbdadm down all");
    for i in 0..2 {
        let out = s.sh(i, "drbdadm role r0");
        assert!(!out.status.success(), "down: role fails");
        let status = s.node(i).status_file();
        assert!(!status.contains("cs:Connected"), "after down:\n{status}");
    }
    s.assert_same_data(DATA_BYTES);
}

/// Seed 000 with its own meta-data layout (`meta-disk /dev/sdb2 [0];`): the same
/// initial sequence, and the secondary's whole backing disk is the data while it is
/// down (the seed mounts /dev/sdb1 directly).
#[test]
fn seed_000_with_indexed_external_meta_disk() {
    let s = Seed::with_indexed_meta_disk();
    s.initial_sync();
    // The whole 64 MiB file is data: the last MiB is writable through NBD.
    let uri_a = s.p.a.nbd_uri("r0");
    nbd_fill(&uri_a, 63 * MIB as u64, MIB, 0x5e);
    nbd_fill(&uri_a, 0, MIB, 0x5f);
    s.ok(1, "drbdadm down r0");
    assert_eq!(file_bytes(&s.p.disk_b, 63 * MIB as u64, MIB), vec![0x5e]);
    assert_eq!(file_bytes(&s.p.disk_b, 0, MIB), vec![0x5f]);
    s.ok(1, "drbdadm up r0");
    s.wait_synced(0, 30, 30);
    s.ok(0, "drbdadm secondary r0");
    s.down_both("drbdadm down r0");
    s.assert_same_data(64 << 20);
}
