//! Harness for tests against a real kernel DRBD 8.4.11 peer booted under qemu
//! (`tests/kernel-peer/run.sh`). Included by the `kernel_peer_*` tests with
//! `#[path = "kernel_peer_vm.rs"] mod kernel_peer_vm;`; compiled alone it is an empty test.
//!
//! The guest sees its data disk as `/dev/vda`, its own address as 10.0.2.15 (DRBD port 7789,
//! forwarded from the host's `127.0.0.1:fwd_port`), and the host's loopback as 10.0.2.2.
//! Failures panic with the whole console log, so a VM that does not boot fails loudly.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (the parent of the tests crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent")
        .to_path_buf()
}

pub use rdbd_tests::tools::free_tcp_port as free_port;

/// What to boot.
pub struct VmConfig {
    /// Guest script (busybox sh; the helpers of tests/kernel-peer/guest/kp-lib.sh are loaded).
    pub script: String,
    /// Size of the data disk (/dev/vda) in MiB.
    pub disk_mib: u64,
    /// Host port forwarded to the guest's 7789.
    pub fwd_port: u16,
    /// Variables exported to the guest script.
    pub env: Vec<(String, String)>,
    /// Kill the VM after this long.
    pub timeout: Duration,
}

/// A running kernel-peer VM; killed (its whole process group) on drop.
pub struct KernelPeerVm {
    child: Child,
    /// Temporary directory with the disk, control file and console log.
    pub dir: tempfile::TempDir,
    /// Console log.
    pub log: PathBuf,
    /// Control disk file (write a word with [`KernelPeerVm::send_ctl`]).
    pub ctl: PathBuf,
    /// The data disk image.
    pub disk: PathBuf,
}

impl KernelPeerVm {
    /// Builds the kernel/initramfs if needed (tests/kernel-peer/build.sh) and boots the VM.
    pub fn boot(config: VmConfig) -> KernelPeerVm {
        let root = repo_root();
        let build = Command::new("bash")
            .arg(root.join("tests/kernel-peer/build.sh"))
            .output()
            .expect("run tests/kernel-peer/build.sh");
        assert!(
            build.status.success(),
            "tests/kernel-peer/build.sh failed:\n{}{}",
            String::from_utf8_lossy(&build.stdout),
            String::from_utf8_lossy(&build.stderr)
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = dir.path().join("disk.img");
        std::fs::File::create(&disk)
            .and_then(|f| f.set_len(config.disk_mib << 20))
            .expect("create disk image");
        let script = dir.path().join("guest.sh");
        std::fs::File::create(&script)
            .and_then(|mut f| f.write_all(config.script.as_bytes()))
            .expect("write guest script");
        let log = dir.path().join("console.log");
        let ctl = dir.path().join("ctl.img");
        let mut cmd = Command::new("bash");
        cmd.arg(root.join("tests/kernel-peer/run.sh"))
            .arg("--script")
            .arg(&script)
            .arg("--disk")
            .arg(&disk)
            .arg("--fwd")
            .arg(config.fwd_port.to_string())
            .arg("--ctl")
            .arg(&ctl)
            .arg("--log")
            .arg(&log)
            .arg("--timeout")
            .arg(config.timeout.as_secs().to_string());
        for (k, v) in &config.env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = cmd.spawn().expect("spawn tests/kernel-peer/run.sh");
        KernelPeerVm {
            child,
            dir,
            log,
            ctl,
            disk,
        }
    }

    /// The console output so far.
    pub fn console(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Panics with `msg` and the console log.
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n===== kernel peer console ({}) =====\n{}\n===== end of console =====",
            self.log.display(),
            self.console()
        )
    }

    /// True while qemu runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the console contains `needle`; fails (with the console) on timeout or when the
    /// VM exits first.
    pub fn wait_console(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.console().contains(needle) {
                return;
            }
            if !self.running() {
                self.fail(&format!("the VM exited before printing {needle:?}"));
            }
            if Instant::now() > deadline {
                self.fail(&format!("no {needle:?} on the console after {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes a control word (the guest's `kp_wait_ctl WORD` returns when it sees it).
    pub fn send_ctl(&self, word: &str) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.ctl)
            .expect("open control disk");
        let mut block = vec![0u8; 512];
        block[..word.len()].copy_from_slice(word.as_bytes());
        block[word.len()] = b'\n';
        f.write_all(&block)
            .and_then(|_| f.sync_all())
            .expect("write control disk");
    }

    /// Waits for qemu to exit (after the guest's poweroff); fails on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.running() {
            if Instant::now() > deadline {
                self.fail(&format!("the VM did not power off within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The guest script's exit status from the `KP-SCRIPT-EXIT rc` line, if printed.
    pub fn script_exit(&self) -> Option<i32> {
        self.console().lines().find_map(|l| {
            l.strip_prefix("KP-SCRIPT-EXIT ")
                .and_then(|rc| rc.trim().parse().ok())
        })
    }
}

impl Drop for KernelPeerVm {
    fn drop(&mut self) {
        if self.running() {
            // SAFETY: kill(2) with the negated pid of the process group we created for the child;
            // it only sends a signal.
            unsafe {
                libc::kill(-(self.child.id() as i32), libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}
