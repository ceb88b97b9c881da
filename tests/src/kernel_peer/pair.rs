//! rdbd paired with the kernel peer, driven one guest command at a time: the VM booted into
//! `kp_serve` with the shell functions of [`GUEST_LIB`], the rdbd node `alice`, which side is
//! Primary ([`Direction`]), and the set-up every scenario starts from: both up, the initial full
//! sync from the Primary, both sides showing the same states ([`KernelPair::first_connect`]).

use std::time::{Duration, Instant};

use super::node::{Auth, RdbdNode};
use super::proc_drbd::{minor_line, mismatch};
use super::vm::{KernelPeerVm, VmConfig};
use super::DATA_BLOCKS;
use crate::tools::{require, sha256_prefix};

/// Shell functions for the guest, defined before `kp_serve` takes commands:
/// `g_up PROTO FLAGS` (fresh meta-data unless `KP_SKIP_CREATE_MD=1`, attach, connect),
/// `g_connect`, `g_disconnect`, `g_area` (`KP-RESULT area` = sha256 of the data area of
/// /dev/vda), `g_region SKIP_64K COUNT_64K`, `g_write SEEK_64K COUNT_64K` (random data on
/// /dev/drbd0, `KP-RESULT written`), `g_wait_cs_not CS SECS`, `g_wait_synced SECS`.
pub const GUEST_LIB: &str = r#"
g_opts() { echo "--protocol=$1 --ping-int=2 --connect-int=1 --timeout=20 $2"; }
g_up() { KP_ATTACH_OPTS='--c-plan-ahead=0 --resync-rate=100M' kp_drbd_up r0 0 /dev/vda 10.0.2.15:7789 "$PEER" $(g_opts "$1" "$2"); }
g_connect() { kp_run drbdsetup connect r0 ipv4:10.0.2.15:7789 "ipv4:$PEER" $(g_opts "$1" "$2"); }
g_disconnect() { kp_run drbdsetup disconnect ipv4:10.0.2.15:7789 "ipv4:$PEER"; }
g_area() { kp_result area "$(dd if=/dev/vda bs=24576 count=2729 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"; }
g_region() { kp_result "region-$1" "$(dd if=/dev/vda bs=65536 skip="$1" count="$2" iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"; }
g_write() { dd if=/dev/urandom of=/tmp/w bs=65536 count="$2" 2>/dev/null || return 1; kp_result written "$(sha256sum /tmp/w | cut -d' ' -f1)"; kp_run dd if=/tmp/w of=/dev/drbd0 bs=65536 seek="$1" count="$2" oflag=direct 2>&1; }
g_wait_cs_not() { i=0; while [ "$(kp_cs 0)" = "$1" ]; do sleep 1; i=$((i+1)); [ $i -lt "$2" ] || { cat /proc/drbd; return 1; }; done; }
g_wait_synced() { i=0; while ! grep -q "cs:Connected .* ds:UpToDate/UpToDate" /proc/drbd; do sleep 1; i=$((i+1)); [ $i -lt "$1" ] || { cat /proc/drbd; return 1; }; done; }
"#;

/// Which side is Primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// rdbd Primary, kernel Secondary.
    RdbdPrimary,
    /// kernel Primary, rdbd Secondary.
    KernelPrimary,
}

impl Direction {
    /// Both directions.
    pub const BOTH: [Direction; 2] = [Direction::RdbdPrimary, Direction::KernelPrimary];

    /// `rdbd-primary` or `kernel-primary`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::RdbdPrimary => "rdbd-primary",
            Direction::KernelPrimary => "kernel-primary",
        }
    }

    /// rdbd's `ro:` when connected.
    pub fn rdbd_roles(self) -> &'static str {
        match self {
            Direction::RdbdPrimary => "ro:Primary/Secondary",
            Direction::KernelPrimary => "ro:Secondary/Primary",
        }
    }
}

/// A guest command's default time limit.
pub const GUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// The VM and rdbd, one of them Primary.
pub struct KernelPair {
    /// The kernel peer (goes first so that it is killed before rdbd's files go).
    pub vm: KernelPeerVm,
    /// rdbd's node `alice`.
    pub rdbd: RdbdNode,
    /// `A`, `B` or `C`.
    pub protocol: &'static str,
    /// Who is Primary.
    pub direction: Direction,
    /// When the guest was ready.
    pub started: Instant,
}

impl KernelPair {
    /// Configures rdbd (`protocol`, `rdbd_net` besides `connect-int 1`), boots the VM on a fresh
    /// 64 MiB disk and waits until it takes commands. Nothing is up yet.
    pub fn boot(direction: Direction, protocol: &'static str, rdbd_net: &str) -> KernelPair {
        require("qemu-system-x86_64");
        let rdbd = RdbdNode::new(protocol, Auth::None, rdbd_net);
        let mut vm = KernelPeerVm::boot(VmConfig {
            script: format!("{GUEST_LIB}\nkp_serve 180\n"),
            disk_mib: 64,
            fwd_port: rdbd.fwd_port,
            env: vec![("PEER".into(), rdbd.guest_peer_addr())],
            timeout: Duration::from_secs(600),
        });
        vm.wait_console("KP-SERVE-READY", Duration::from_secs(120));
        KernelPair {
            vm,
            rdbd,
            protocol,
            direction,
            started: Instant::now(),
        }
    }

    /// Runs a guest command ([`GUEST_TIMEOUT`]); fails with the console when it fails.
    pub fn g(&mut self, cmd: &str) -> String {
        self.vm.guest(cmd, GUEST_TIMEOUT)
    }

    /// rdbd's status when connected and in sync.
    pub fn connected_state(&self) -> String {
        format!(
            "cs:Connected {} ds:UpToDate/UpToDate",
            self.direction.rdbd_roles()
        )
    }

    /// Both sides show the same connection: rdbd's status line is the kernel's mirrored (polled,
    /// since the two sides finish a transition at slightly different moments).
    pub fn assert_mirrored(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ours_text = self.rdbd.node.status_file();
            let theirs_text = self.g("cat /proc/drbd");
            let ours = minor_line(&ours_text, 0);
            let theirs = minor_line(&theirs_text, 0);
            let why = match (&ours, &theirs) {
                (Some(o), Some(t)) => mismatch(o, t),
                _ => Some("a minor line is missing".to_string()),
            };
            let expected = self.connected_state();
            match why {
                None if ours_text.contains(&expected) => return,
                _ if Instant::now() > deadline => self.vm.fail(&format!(
                    "{what}: the two sides do not show the same states ({}; rdbd should show {expected}):\n\
                     rdbd:\n{ours_text}\nkernel:\n{theirs_text}",
                    why.unwrap_or_default()
                )),
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Both up without authentication (the guest with fresh meta-data), `primary --force` on
    /// the Primary's side, the initial full sync to the Secondary, both in sync and mirrored.
    pub fn first_connect(&mut self) {
        let p = self.protocol;
        self.rdbd.node.adm_ok(&["up", "r0"]);
        self.g(&format!("g_up {p} ''"));
        self.rdbd.wait_status(
            &self.vm,
            "cs:Connected ro:Secondary/Secondary ds:Inconsistent/Inconsistent",
            120,
        );
        match self.direction {
            Direction::RdbdPrimary => {
                self.rdbd.node.adm_ok(&["primary", "--force", "r0"]);
            }
            Direction::KernelPrimary => {
                self.g("kp_run drbdsetup primary 0 --force");
            }
        }
        let state = self.connected_state();
        self.rdbd.wait_status(&self.vm, &state, 180);
        self.rdbd.wait_status(&self.vm, "oos:0", 60);
        self.g("g_wait_synced 60");
        self.assert_mirrored("after the initial sync");
    }

    /// The guest's /proc/drbd.
    pub fn proc_drbd(&mut self) -> String {
        self.g("cat /proc/drbd")
    }

    /// The sha256 of the kernel's data area (its backing disk, read with O_DIRECT).
    pub fn guest_area(&mut self) -> String {
        let out = self.g("g_area");
        self.vm.result_in(&out, "area")
    }

    /// The sha256 of rdbd's data area.
    pub fn rdbd_area(&self) -> String {
        sha256_prefix(&self.rdbd.disk, DATA_BLOCKS * 4096)
    }

    /// Fails unless the two data areas are equal.
    pub fn assert_areas_equal(&mut self, what: &str) {
        let theirs = self.guest_area();
        let ours = self.rdbd_area();
        if theirs != ours {
            self.vm.fail(&format!(
                "{what}: the data areas differ (kernel {theirs}, rdbd {ours})"
            ));
        }
    }

    /// Keeps the console and rdbd's log in target/kernel-peer/`name`-*.log.
    pub fn save_logs(&self, name: &str) {
        self.rdbd.save_logs(&self.vm, name);
    }
}

/// A counter (`ns:`, `nr:`, `dw:`, `oos:` ...) of a `/proc/drbd` or status text; `None` when
/// absent.
pub fn counter(text: &str, name: &str) -> Option<u64> {
    let key = format!(" {name}:");
    let at = text.find(&key)? + key.len();
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The sizes (KB) of every `Began resync as SyncSource/SyncTarget (will sync N KB` line of a
/// log, rdbd's or the kernel's.
pub fn resyncs_kib(log: &str) -> Vec<u64> {
    log.split("Began resync as Sync")
        .skip(1)
        .filter_map(|t| t.split("(will sync ").nth(1))
        .filter_map(|t| t.split(' ').next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_resync_sizes_are_read() {
        let text = " 0: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate C r-----\n    \
                    ns:0 nr:65496 dw:65496 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:12\n";
        assert_eq!(counter(text, "nr"), Some(65496));
        assert_eq!(counter(text, "ns"), Some(0));
        assert_eq!(counter(text, "oos"), Some(12));
        assert_eq!(counter(text, "xx"), None);
        let log = "a Began resync as SyncSource (will sync 65496 KB [16374 bits set]).\n\
                   b Began resync as SyncTarget (will sync 4096 KB [1024 bits set]).\n";
        assert_eq!(resyncs_kib(log), vec![65496, 4096]);
    }
}
