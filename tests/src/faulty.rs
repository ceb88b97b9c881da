//! A backing "disk" that fails on demand: a 64 MiB nbdkit `memory` disk behind the
//! `error` filter, exposed as a file by nbdfuse. Reads fail with EIO while the trigger
//! file exists. Stopped (unmounted, processes killed) on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::tools::require;

/// The faulty disk of one test.
pub struct FaultyDisk {
    /// The disk file to configure as the backing device.
    pub disk: PathBuf,
    /// While this file exists, reads fail with EIO.
    pub trigger: PathBuf,
    nbdkit: Child,
    nbdfuse: Child,
    mountpoint: PathBuf,
}

fn wait_for(path: &Path, what: &str) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} did not appear"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl FaultyDisk {
    /// Starts nbdkit and nbdfuse with their files under `dir`.
    pub fn start(dir: &Path) -> FaultyDisk {
        for tool in ["nbdkit", "nbdfuse", "fusermount3"] {
            require(tool);
        }
        let sock = dir.join("kit.sock");
        let trigger = dir.join("inject");
        let nbdkit = Command::new("nbdkit")
            .arg("--foreground")
            .arg("-U")
            .arg(&sock)
            .args([
                "--filter=error",
                "memory",
                "64M",
                "error-pread=EIO",
                "error-pread-rate=100%",
            ])
            .arg(format!("error-file={}", trigger.display()))
            .spawn()
            .expect("nbdkit");
        wait_for(&sock, "nbdkit socket");
        let mountpoint = dir.join("fuse");
        std::fs::create_dir_all(&mountpoint).unwrap();
        let pidfile = dir.join("nbdfuse.pid");
        let nbdfuse = Command::new("nbdfuse")
            .arg("-P")
            .arg(&pidfile)
            .arg(mountpoint.join("disk"))
            .arg(format!("nbd+unix:///?socket={}", sock.display()))
            .spawn()
            .expect("nbdfuse");
        let faulty = FaultyDisk {
            disk: mountpoint.join("disk"),
            trigger,
            nbdkit,
            nbdfuse,
            mountpoint,
        };
        wait_for(&pidfile, "nbdfuse");
        faulty
    }
}

impl Drop for FaultyDisk {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mountpoint)
            .output();
        let _ = self.nbdfuse.kill();
        let _ = self.nbdfuse.wait();
        let _ = self.nbdkit.kill();
        let _ = self.nbdkit.wait();
    }
}
