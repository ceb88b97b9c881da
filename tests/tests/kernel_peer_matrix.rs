//! The kernel DRBD 8.4.11 peer matrix: both directions (rdbd Primary with the kernel Secondary,
//! the kernel Primary with rdbd Secondary) x protocols A, B, C x `cram-hmac-alg` none, sha1 and
//! sha256 — 18 combinations in six VM boots, one per direction and protocol, each running the
//! three authentication settings as phases. In every phase:
//!
//! 1. the two sides connect (phases after the first: the kernel disconnects, rdbd goes `down`,
//!    both reconnect with the phase's `cram-hmac-alg`, and both log the HMAC's size);
//!    the connection reaches Connected and both sides show the same roles and disk states
//!    (rdbd's status file against the guest's `/proc/drbd`);
//! 2. 4 MiB written on the Primary is on the Secondary's disk byte for byte;
//! 3. the peer is cut off (the guest's `eth0` goes down) while 4 MiB more is written on the
//!    Primary: the Primary keeps writing and counts the blocks out of sync; the link comes
//!    back, the two reconnect by themselves and run a bitmap-based resync;
//! 4. no write is lost (both 4 MiB regions are on both disks) and the two data areas are equal.
//!
//! The guest runs `kp_serve` (tests/kernel-peer/guest/kp-lib.sh) and the test drives it one
//! shell command at a time. A kernel that refuses something fails the test with its DRBD
//! messages at the top of the failure message.
//!
//! Run: `cargo build --bins && cargo nextest run -p rdbd-tests --test kernel_peer_matrix`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rdbd_tests::kernel_peer::node::{oos_kib, Auth, RdbdNode};
use rdbd_tests::kernel_peer::pair::{resyncs_kib, Direction, KernelPair};
use rdbd_tests::kernel_peer::vm::KernelPeerVm;
use rdbd_tests::kernel_peer::DATA_BLOCKS;
use rdbd_tests::tools::{require, run_ok, sha256_prefix, stdout};

/// rdbd's extra `net` options (besides `connect-int 1`): pings every 2 s, so that a cut link
/// is noticed quickly.
const RDBD_NET: &str = "ping-int 2;";

/// Bytes in each region a phase writes.
const REGION_BYTES: u64 = 4 << 20;
/// The same in 64 KiB blocks (the guest's `dd bs=65536`).
const REGION_64K: u64 = REGION_BYTES / 65536;

/// The running scenario.
struct Matrix {
    p: KernelPair,
}

const SHORT: Duration = Duration::from_secs(30);

impl Matrix {
    fn boot(direction: Direction, protocol: &'static str) -> Matrix {
        Matrix {
            p: KernelPair::boot(direction, protocol, RDBD_NET),
        }
    }

    fn g(&mut self, cmd: &str) -> String {
        self.p.g(cmd)
    }

    /// The sha256 of a region of the guest's disk.
    fn guest_region(&mut self, offset: u64) -> String {
        let skip = offset / 65536;
        let out = self.g(&format!("g_region {skip} {REGION_64K}"));
        self.p.vm.result_in(&out, &format!("region-{skip}"))
    }

    /// Checks that the kernel and rdbd both authenticated the peer once more than before.
    fn assert_authenticated(&self, auth: Auth, before: (usize, usize), what: &str) {
        let Some(bytes) = auth.hmac_bytes() else {
            return;
        };
        let (kernel, ours) = auth_counts(&self.p.vm, &self.p.rdbd, bytes);
        if kernel <= before.0 || ours <= before.1 {
            self.p.vm.fail(&format!(
                "{what}: cram-hmac-alg {}: the kernel logged {kernel} (before {}) \
                 \"Peer authenticated using {bytes} bytes HMAC\", rdbd {ours} (before {}) \
                 \"Peer authenticated\"\nrdbd log:\n{}",
                auth.name(),
                before.0,
                before.1,
                self.p.rdbd.log()
            ));
        }
    }

    /// Writes REGION_BYTES at `offset` on the Primary; returns the sha256 of what was written.
    fn write_on_primary(&mut self, offset: u64, name: &str) -> String {
        match self.p.direction {
            Direction::RdbdPrimary => {
                let file = self.p.rdbd.dir.path().join(name);
                run_ok(Command::new("sh").arg("-c").arg(format!(
                    "head -c {REGION_BYTES} /dev/urandom > {}",
                    file.display()
                )));
                run_ok(
                    Command::new("/usr/bin/python3")
                        .args(["-c", PWRITE])
                        .arg(self.p.rdbd.node.nbd_uri("r0"))
                        .arg(&file)
                        .arg(offset.to_string()),
                );
                sha256_prefix(&file, REGION_BYTES)
            }
            Direction::KernelPrimary => {
                let out = self.p.vm.guest(
                    &format!("g_write {} {REGION_64K}", offset / 65536),
                    Duration::from_secs(120),
                );
                self.p.vm.result_in(&out, "written")
            }
        }
    }

    /// Waits until rdbd's disk holds `sha` at `offset` (the kernel Primary's protocol A and B
    /// writes reach rdbd's disk shortly after the guest's `dd` returned).
    fn wait_rdbd_region(&self, offset: u64, sha: &str, what: &str) {
        let deadline = Instant::now() + SHORT;
        loop {
            let ours = region_sha(&self.p.rdbd.disk, offset);
            if ours == sha {
                return;
            }
            if Instant::now() > deadline {
                self.p.vm.fail(&format!(
                    "{what}: rdbd's disk at {offset} has {ours}, the written data is {sha}\nrdbd log:\n{}",
                    self.p.rdbd.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn what(&self, auth: Auth) -> String {
        format!(
            "{} protocol {} cram-hmac-alg {}",
            self.p.direction.name(),
            self.p.protocol,
            auth.name()
        )
    }

    /// The Primary counts at least what it wrote alone as out of sync.
    fn assert_primary_counts_oos(&mut self, what: &str) {
        let oos = match self.p.direction {
            Direction::RdbdPrimary => {
                let s = self
                    .p
                    .rdbd
                    .wait(&self.p.vm, "oos >= 4096", 10, |s| oos_kib(s) >= 4096);
                oos_kib(&s)
            }
            Direction::KernelPrimary => oos_kib(&self.g("cat /proc/drbd")),
        };
        if oos < REGION_BYTES / 1024 {
            self.p.vm.fail(&format!(
                "{what}: the Primary counts {oos} KiB out of sync after writing {} KiB alone",
                REGION_BYTES / 1024
            ));
        }
    }

    /// After a reconnection: a new, bitmap-based resync (at least REGION_BYTES, less than all).
    fn assert_bitmap_resync(&self, before: &[u64], what: &str) {
        let log = self.p.rdbd.log();
        let after = resyncs_kib(&log);
        let kib = after.last().copied().unwrap_or(0);
        if after.len() <= before.len() || !(REGION_BYTES / 1024..DATA_BLOCKS * 4).contains(&kib) {
            self.p.vm.fail(&format!(
                "{what}: no bitmap-based resync after reconnecting \
                 (resyncs before {before:?}, after {after:?})\nrdbd log:\n{log}"
            ));
        }
    }

    /// The two sides are cut off administratively (both disconnect) while the Primary writes,
    /// then come back: in phases after the first, rdbd goes `down` and both reconnect with the
    /// phase's `cram-hmac-alg`. Returns the region written while cut off.
    fn admin_cut_off(&mut self, k: u64, auth: Auth) -> (u64, String) {
        let what = format!("{}: cut off by disconnecting", self.what(auth));
        let p = self.p.protocol;
        let offset = k * (16 << 20) + (4 << 20);
        let auth_before = auth_counts(&self.p.vm, &self.p.rdbd, auth.hmac_bytes().unwrap_or(0));
        let resyncs_before = resyncs_kib(&self.p.rdbd.log());
        if self.p.direction == Direction::RdbdPrimary {
            self.p.rdbd.node.adm_ok(&["disconnect", "r0"]);
        }
        self.g("g_disconnect");
        if self.p.direction == Direction::KernelPrimary {
            self.p.rdbd.node.adm_ok(&["disconnect", "r0"]);
        }
        let sha = self.write_on_primary(offset, &format!("w{k}-disconnected.bin"));
        self.assert_primary_counts_oos(&what);
        if k == 0 {
            self.p.rdbd.node.adm_ok(&["connect", "r0"]);
        } else {
            // rdbd reads cram-hmac-alg at `up`; the bitmap persists across down/up.
            if self.p.direction == Direction::RdbdPrimary {
                self.p.rdbd.node.adm_ok(&["secondary", "r0"]);
            }
            self.p.rdbd.node.adm_ok(&["down", "r0"]);
            self.p.rdbd.write_config(p, auth, RDBD_NET);
            self.p.rdbd.node.adm_ok(&["up", "r0"]);
        }
        self.g(&format!("g_connect {p} '{}'", auth.drbdsetup_flags()));
        if self.p.direction == Direction::RdbdPrimary && k > 0 {
            self.p.rdbd.wait_status(
                &self.p.vm,
                "cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate",
                90,
            );
            // It was UpToDate: no --force.
            self.p.rdbd.node.adm_ok(&["primary", "r0"]);
        }
        let state = self.p.connected_state();
        self.p.rdbd.wait_status(&self.p.vm, &state, 90);
        self.p.rdbd.wait_status(&self.p.vm, "oos:0", 60);
        self.g("g_wait_synced 60");
        self.assert_bitmap_resync(&resyncs_before, &what);
        self.assert_authenticated(auth, auth_before, &what);
        self.p
            .assert_mirrored(&format!("{}: connected", self.what(auth)));
        (offset, sha)
    }

    /// Written on the Primary while connected: on the Secondary's disk byte for byte.
    fn write_connected(&mut self, k: u64, auth: Auth) -> (u64, String) {
        let what = format!("{}: connected", self.what(auth));
        let offset = k * (16 << 20);
        let sha = self.write_on_primary(offset, &format!("w{k}-connected.bin"));
        match self.p.direction {
            Direction::RdbdPrimary => {
                // pwrite + flush returned: the kernel acknowledged the barrier.
                let theirs = self.guest_region(offset);
                if theirs != sha {
                    self.p.vm.fail(&format!(
                        "{what}: the kernel's disk does not have the data written on rdbd \
                         (region at {offset}: {theirs}, written {sha})"
                    ));
                }
            }
            Direction::KernelPrimary => self.wait_rdbd_region(offset, &sha, &what),
        }
        (offset, sha)
    }

    /// The link is cut (the guest's eth0 goes down) while the Primary writes; it comes back and
    /// the two reconnect by themselves. Returns the region written while cut off.
    fn link_cut(&mut self, k: u64, auth: Auth) -> (u64, String) {
        let what = format!("{}: link cut", self.what(auth));
        let offset = k * (16 << 20) + (8 << 20);
        let auth_before = auth_counts(&self.p.vm, &self.p.rdbd, auth.hmac_bytes().unwrap_or(0));
        let resyncs_before = resyncs_kib(&self.p.rdbd.log());
        self.g("kp_run ip link set eth0 down");
        let sha = self.write_on_primary(offset, &format!("w{k}-cut.bin"));
        self.g("g_wait_cs_not Connected 60");
        let rdbd_alone = match self.p.direction {
            Direction::RdbdPrimary => "ro:Primary/Unknown",
            Direction::KernelPrimary => "ro:Secondary/Unknown",
        };
        self.p.rdbd.wait_status(&self.p.vm, rdbd_alone, 60);
        self.assert_primary_counts_oos(&what);
        self.g("kp_run ip link set eth0 up");
        let state = self.p.connected_state();
        self.p.rdbd.wait_status(&self.p.vm, &state, 90);
        self.p.rdbd.wait_status(&self.p.vm, "oos:0", 60);
        self.g("g_wait_synced 60");
        self.assert_bitmap_resync(&resyncs_before, &what);
        self.assert_authenticated(auth, auth_before, &what);
        self.p.assert_mirrored(&format!("{what}: back"));
        (offset, sha)
    }

    /// No write lost: every region is on both disks; and the two data areas are equal.
    fn assert_nothing_lost(&mut self, auth: Auth, written: &[(u64, String)]) {
        let what = self.what(auth);
        // One guest command reads every region and the whole area.
        let mut cmd = String::new();
        for (at, _) in written {
            cmd.push_str(&format!("g_region {} {REGION_64K} && ", at / 65536));
        }
        cmd.push_str("g_area");
        let out = self.g(&cmd);
        for (at, sha) in written {
            self.wait_rdbd_region(*at, sha, &what);
            let theirs = self.p.vm.result_in(&out, &format!("region-{}", at / 65536));
            if &theirs != sha {
                self.p.vm.fail(&format!(
                    "{what}: the kernel's disk lost the write at {at} ({theirs}, written {sha})"
                ));
            }
        }
        let theirs = self.p.vm.result_in(&out, "area");
        let ours = sha256_prefix(&self.p.rdbd.disk, DATA_BLOCKS * 4096);
        if theirs != ours {
            self.p.vm.fail(&format!(
                "{what}: the data areas differ (kernel {theirs}, rdbd {ours})"
            ));
        }
        eprintln!(
            "{what}: phase done at {:?} ({} regions checked)",
            self.p.started.elapsed(),
            written.len()
        );
    }

    fn finish(self) {
        let name = format!(
            "matrix-{}-{}",
            self.p.direction.name(),
            self.p.protocol.to_lowercase()
        );
        self.p.rdbd.save_logs(&self.p.vm, &name);
        if self.p.direction == Direction::RdbdPrimary {
            self.p.rdbd.node.adm_ok(&["secondary", "r0"]);
        }
        self.p.rdbd.node.adm_ok(&["down", "r0"]);
        eprintln!(
            "{name}: 3 phases in {:?} after the boot",
            self.p.started.elapsed()
        );
    }
}

/// Writes a file at an offset through NBD and flushes (python3-libnbd): URI FILE OFFSET. On a
/// replicating Primary the flush returns once the peer acknowledged the barrier.
const PWRITE: &str = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nh.pwrite(open(sys.argv[2], 'rb').read(), int(sys.argv[3]))\nh.flush()\nh.shutdown()\n";

/// How often the kernel logged an HMAC of `bytes` bytes, and rdbd "Peer authenticated".
fn auth_counts(vm: &KernelPeerVm, rdbd: &RdbdNode, bytes: usize) -> (usize, usize) {
    let kernel = vm
        .console()
        .matches(&format!("Peer authenticated using {bytes} bytes HMAC"))
        .count();
    (kernel, rdbd.log().matches("Peer authenticated").count())
}

/// The sha256 of REGION_BYTES of a file at `offset`.
fn region_sha(path: &Path, offset: u64) -> String {
    let out = run_ok(Command::new("sh").arg("-c").arg(format!(
        "dd if='{}' bs=65536 skip={} count={REGION_64K} 2>/dev/null | sha256sum | cut -c1-64",
        path.display(),
        offset / 65536
    )));
    stdout(&out).trim().to_string()
}

/// Which phase (authentication setting) also cuts the link: one per boot, a different one per
/// protocol, so that across a direction's three boots the link is cut under every setting.
fn link_cut_phase(protocol: &str) -> u64 {
    match protocol {
        "A" => 0,
        "B" => 1,
        _ => 2,
    }
}

fn run_matrix(direction: Direction, protocol: &'static str) {
    if direction == Direction::RdbdPrimary {
        require("nbdcopy");
    }
    let mut m = Matrix::boot(direction, protocol);
    m.p.first_connect();
    for (k, auth) in Auth::ALL.into_iter().enumerate() {
        let k = k as u64;
        let mut written = vec![m.admin_cut_off(k, auth)];
        written.push(m.write_connected(k, auth));
        if k == link_cut_phase(protocol) {
            written.push(m.link_cut(k, auth));
        }
        m.assert_nothing_lost(auth, &written);
    }
    m.finish();
}

/// rdbd Primary, kernel Secondary, protocol A; cram-hmac-alg none, sha1, sha256.
#[test]
fn rdbd_primary_kernel_secondary_protocol_a() {
    run_matrix(Direction::RdbdPrimary, "A");
}

/// rdbd Primary, kernel Secondary, protocol B; cram-hmac-alg none, sha1, sha256.
#[test]
fn rdbd_primary_kernel_secondary_protocol_b() {
    run_matrix(Direction::RdbdPrimary, "B");
}

/// rdbd Primary, kernel Secondary, protocol C; cram-hmac-alg none, sha1, sha256.
#[test]
fn rdbd_primary_kernel_secondary_protocol_c() {
    run_matrix(Direction::RdbdPrimary, "C");
}

/// Kernel Primary, rdbd Secondary, protocol A; cram-hmac-alg none, sha1, sha256.
#[test]
fn kernel_primary_rdbd_secondary_protocol_a() {
    run_matrix(Direction::KernelPrimary, "A");
}

/// Kernel Primary, rdbd Secondary, protocol B; cram-hmac-alg none, sha1, sha256.
#[test]
fn kernel_primary_rdbd_secondary_protocol_b() {
    run_matrix(Direction::KernelPrimary, "B");
}

/// Kernel Primary, rdbd Secondary, protocol C; cram-hmac-alg none, sha1, sha256.
#[test]
fn kernel_primary_rdbd_secondary_protocol_c() {
    run_matrix(Direction::KernelPrimary, "C");
}
