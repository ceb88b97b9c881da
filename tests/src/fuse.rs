//! An NBD export as a local block device without the kernel nbd driver:
//! `nbdfuse` exposes it as a file, `losetup` turns the file into a loop device.
//! Everything is undone on drop, in reverse order.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::tools::{run, run_ok, stdout};

/// A loop device backed by an NBD export through nbdfuse.
pub struct NbdLoop {
    mountpoint: PathBuf,
    nbdfuse: Child,
    /// The loop device, e.g. `/dev/loop3`.
    pub device: PathBuf,
    mounted: Option<PathBuf>,
}

impl NbdLoop {
    /// Exposes `uri` under `dir` and attaches a loop device to it.
    pub fn attach(dir: &Path, uri: &str) -> NbdLoop {
        let mountpoint = dir.join("nbdfuse");
        std::fs::create_dir_all(&mountpoint).expect("mountpoint");
        let pidfile = dir.join("nbdfuse.pid");
        let _ = std::fs::remove_file(&pidfile);
        let nbdfuse = Command::new("nbdfuse")
            .arg("-P")
            .arg(&pidfile)
            .arg(mountpoint.join("disk"))
            .arg(uri)
            .spawn()
            .expect("run nbdfuse (scripts/install-deps.sh installs libnbd-bin)");
        let start = Instant::now();
        while !pidfile.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nbdfuse did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = run_ok(
            Command::new("losetup")
                .args(["-f", "--show"])
                .arg(mountpoint.join("disk")),
        );
        let device = PathBuf::from(stdout(&out).trim());
        NbdLoop {
            mountpoint,
            nbdfuse,
            device,
            mounted: None,
        }
    }

    /// `mkfs.ext4 -q` on the device.
    pub fn mkfs_ext4(&self) {
        run_ok(
            Command::new("mkfs.ext4")
                .args(["-q", "-F"])
                .arg(&self.device),
        );
    }

    /// Mounts the device on `at`.
    pub fn mount(&mut self, at: &Path) {
        std::fs::create_dir_all(at).expect("mount dir");
        run_ok(Command::new("mount").arg(&self.device).arg(at));
        self.mounted = Some(at.to_path_buf());
    }

    /// Unmounts it again.
    pub fn umount(&mut self) {
        if let Some(at) = self.mounted.take() {
            run_ok(Command::new("umount").arg(&at));
        }
    }

    /// `fsck.ext4 -n -f`: true when the file system is clean, with fsck's output.
    pub fn fsck_clean(&self) -> (bool, String) {
        let out = run(Command::new("fsck.ext4")
            .args(["-n", "-f"])
            .arg(&self.device));
        (
            out.status.success(),
            format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr)),
        )
    }
}

impl Drop for NbdLoop {
    fn drop(&mut self) {
        self.umount_quiet();
        let _ = Command::new("losetup").arg("-d").arg(&self.device).output();
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mountpoint)
            .output();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.nbdfuse.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.nbdfuse.kill();
        let _ = self.nbdfuse.wait();
    }
}

impl NbdLoop {
    fn umount_quiet(&mut self) {
        if let Some(at) = self.mounted.take() {
            let _ = Command::new("umount").arg(&at).output();
        }
    }
}
