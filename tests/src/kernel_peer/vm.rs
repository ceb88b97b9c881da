//! A kernel DRBD 8.4.11 peer booted under qemu (`tests/kernel-peer/run.sh`).
//!
//! Besides the console and the control words of `kp_wait_ctl`, a guest script that ends in
//! `kp_serve IDLE_S` (tests/kernel-peer/guest/kp-lib.sh) takes shell commands from the host one at a
//! time through the control disk ([`KernelPeerVm::guest`]): the host drives a long scenario in
//! several phases from Rust and reads each command's output back from the console.
//! [`KernelPeerVm::kill_hard`] cuts the guest's power and [`KernelPeerVm::reboot`] boots it
//! again on the same data disk image, for crash tests of a kernel Primary.
//!
//! Failures panic with the guest kernel's DRBD messages first and then the whole console log, so a
//! kernel that refuses something says why in the test's failure message.

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

pub use crate::tools::free_tcp_port as free_port;

/// The longest command line the control disk carries (it is one 4 KiB block).
const MAX_COMMAND_BYTES: usize = 3900;

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
    /// The number of the last command sent with [`KernelPeerVm::guest`].
    last_command: u32,
    /// The guest script file (the same script runs again after [`KernelPeerVm::reboot`]).
    script: PathBuf,
    /// What it was booted with (the script text is in `script`).
    config: VmConfig,
    /// How many times it was rebooted (each boot writes its own console log).
    boots: u32,
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
        let child = spawn_qemu(&script, &disk, &ctl, &log, &config);
        KernelPeerVm {
            child,
            dir,
            log,
            ctl,
            disk,
            last_command: 0,
            script,
            config,
            boots: 0,
        }
    }

    /// Kills qemu at once (SIGKILL to its process group, as a power cut: whatever the guest had
    /// not yet handed to qemu's disk is lost) and waits for it to end.
    pub fn kill_hard(&mut self) {
        if self.running() {
            // SAFETY: kill(2) with the negated pid of the process group we created for the
            // child; it only sends a signal.
            unsafe {
                libc::kill(-(self.child.id() as i32), libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }

    /// Boots the VM again on the same data disk image (the guest's DRBD meta-data and data
    /// survive) with the same script, after [`KernelPeerVm::kill_hard`] or a poweroff. The new
    /// boot's console goes to a new log (the old one stays in `dir` as `console.log`,
    /// `console-1.log`, ...); the control disk starts empty, so command numbers start again.
    pub fn reboot(&mut self) {
        self.kill_hard();
        self.boots += 1;
        self.log = self.dir.path().join(format!("console-{}.log", self.boots));
        self.last_command = 0;
        self.child = spawn_qemu(&self.script, &self.disk, &self.ctl, &self.log, &self.config);
    }

    /// The console output so far.
    pub fn console(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The guest kernel's DRBD messages so far (console lines that mention drbd), the last `max`.
    pub fn drbd_dmesg(&self, max: usize) -> String {
        let console = self.console();
        let lines: Vec<&str> = console
            .lines()
            .filter(|l| l.contains("drbd") && l.trim_start().starts_with('['))
            .collect();
        lines[lines.len().saturating_sub(max)..].join("\n")
    }

    /// Panics with `msg`, the guest kernel's DRBD messages and the console log.
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n===== guest kernel DRBD messages (last 60) =====\n{}\n\
             ===== kernel peer console ({}) =====\n{}\n===== end of console =====",
            self.drbd_dmesg(60),
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
        let mut block = vec![0u8; 512];
        block[..word.len()].copy_from_slice(word.as_bytes());
        block[word.len()] = b'\n';
        self.write_ctl(&block);
    }

    fn write_ctl(&self, block: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.ctl)
            .expect("open control disk");
        f.write_all(block)
            .and_then(|_| f.sync_all())
            .expect("write control disk");
    }

    /// Runs one line of shell in the guest (its script must be in `kp_serve`) and returns its
    /// output; fails with the console when it exits non-zero or takes longer than `timeout`.
    pub fn guest(&mut self, command: &str, timeout: Duration) -> String {
        let (rc, out) = self.guest_status(command, timeout);
        if rc != 0 {
            self.fail(&format!(
                "guest command {command:?} exited with {rc}; its output:\n{out}"
            ));
        }
        out
    }

    /// As [`KernelPeerVm::guest`], returning the exit status too instead of failing on it.
    pub fn guest_status(&mut self, command: &str, timeout: Duration) -> (i32, String) {
        assert!(
            !command.contains('\n') && command.len() <= MAX_COMMAND_BYTES,
            "a guest command is one line of at most {MAX_COMMAND_BYTES} bytes: {command:?}"
        );
        self.last_command += 1;
        let n = self.last_command;
        let mut block = format!("KPCMD {n} {command} #KPEND-{n}\n").into_bytes();
        block.resize(4096, 0);
        self.write_ctl(&block);
        let end = format!("KP-CMD-END {n} ");
        let deadline = Instant::now() + timeout;
        loop {
            let console = self.console();
            // The console file may hold the marker before the status and its newline (the
            // serial port's writes reach the file in pieces): wait for the whole line.
            let found = console
                .find(&end)
                .filter(|at| console[at + end.len()..].contains('\n'));
            if let Some(at) = found {
                let rc: String = console[at + end.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                let begin = format!("KP-CMD-BEGIN {n}\n");
                let begin_crlf = format!("KP-CMD-BEGIN {n}\r\n");
                let start = console
                    .find(&begin)
                    .map(|i| i + begin.len())
                    .or_else(|| console.find(&begin_crlf).map(|i| i + begin_crlf.len()))
                    .unwrap_or(at);
                let out = console[start.min(at)..at].replace('\r', "");
                return (rc.parse().unwrap_or(-1), out);
            }
            if !self.running() {
                self.fail(&format!(
                    "the VM exited while running guest command {command:?}"
                ));
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "guest command {command:?} did not finish within {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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

    /// The value of the first `KP-RESULT key VALUE` line of `text`.
    pub fn result_in(&self, text: &str, key: &str) -> String {
        let marker = format!("KP-RESULT {key} ");
        text.lines()
            .find_map(|l| {
                l.find(&marker).map(|at| {
                    l[at + marker.len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                })
            })
            .map(str::to_string)
            .unwrap_or_else(|| self.fail(&format!("no KP-RESULT {key} in:\n{text}")))
    }
}

/// Starts tests/kernel-peer/run.sh (qemu) in its own process group.
fn spawn_qemu(script: &Path, disk: &Path, ctl: &Path, log: &Path, config: &VmConfig) -> Child {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("tests/kernel-peer/run.sh"))
        .arg("--script")
        .arg(script)
        .arg("--disk")
        .arg(disk)
        .arg("--fwd")
        .arg(config.fwd_port.to_string())
        .arg("--ctl")
        .arg(ctl)
        .arg("--log")
        .arg(log)
        .arg("--timeout")
        .arg(config.timeout.as_secs().to_string());
    for (k, v) in &config.env {
        cmd.arg("--env").arg(format!("{k}={v}"));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    cmd.spawn().expect("spawn tests/kernel-peer/run.sh")
}

impl Drop for KernelPeerVm {
    fn drop(&mut self) {
        self.kill_hard();
    }
}
