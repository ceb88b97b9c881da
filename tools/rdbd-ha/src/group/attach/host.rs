//! Where an attachment looks for NBD device nodes and for its programs (`nbd-client`,
//! `nbdfuse`, `losetup`, `fusermount3`): the real `/dev`, `/sys/block` and `$PATH` by
//! default.
//!
//! Tests point an [`AttachHost`] at a fake device directory and stub programs. That is
//! how the kernel `nbd-client` path is exercised on machines without the `nbd` kernel
//! module (no `/dev/nbd*`), such as the one these tests were written on.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The most `nbdN` devices probed.
pub const MAX_NBD_DEVICES: u32 = 64;

/// The places an attachment probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachHost {
    /// Where `nbdN` device nodes are looked for (`/dev`).
    pub dev_dir: PathBuf,
    /// Where `nbdN/pid` marks a connected NBD device and `loopN/loop/backing_file` a
    /// bound loop device (`/sys/block`).
    pub sys_block_dir: PathBuf,
    /// The directories programs are looked up in (`None`: the process's `$PATH`).
    pub search_path: Option<OsString>,
}

impl Default for AttachHost {
    fn default() -> Self {
        AttachHost {
            dev_dir: PathBuf::from("/dev"),
            sys_block_dir: PathBuf::from("/sys/block"),
            search_path: None,
        }
    }
}

impl AttachHost {
    /// The full path of program `name` in the search path, if it is there.
    pub fn find_program(&self, name: &str) -> Option<PathBuf> {
        let path = match &self.search_path {
            Some(p) => p.clone(),
            None => std::env::var_os("PATH")?,
        };
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }

    /// What to run for program `name`: its full path, or the bare name (which then
    /// fails to start with a message naming it).
    pub fn program(&self, name: &str) -> String {
        self.find_program(name)
            .map_or_else(|| name.to_string(), |p| p.display().to_string())
    }

    /// The first `DEV_DIR/nbdN` that exists and is not connected (no
    /// `SYS_BLOCK_DIR/nbdN/pid`).
    pub fn free_nbd_device(&self) -> Option<PathBuf> {
        (0..MAX_NBD_DEVICES).find_map(|i| {
            let dev = self.dev_dir.join(format!("nbd{i}"));
            let busy = self.sys_block_dir.join(format!("nbd{i}/pid")).exists();
            (dev.exists() && !busy).then_some(dev)
        })
    }

    /// Whether `device` is one of this host's NBD devices (`DEV_DIR/nbdN`).
    pub fn is_nbd_device(&self, device: &Path) -> bool {
        device.parent() == Some(self.dev_dir.as_path())
            && device
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("nbd"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }

    /// `SYS_BLOCK_DIR/loopN/loop/backing_file` of a loop device.
    pub fn loop_backing_file(&self, device: &Path) -> Option<PathBuf> {
        let name = device.file_name()?;
        Some(self.sys_block_dir.join(name).join("loop/backing_file"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nbd_devices_are_probed_in_the_given_directories() {
        let d = tempfile::tempdir().unwrap();
        let host = AttachHost {
            dev_dir: d.path().join("dev"),
            sys_block_dir: d.path().join("sys"),
            search_path: Some(d.path().join("bin").into_os_string()),
        };
        assert_eq!(host.free_nbd_device(), None);
        std::fs::create_dir_all(&host.dev_dir).unwrap();
        for n in ["nbd0", "nbd1"] {
            std::fs::write(host.dev_dir.join(n), "").unwrap();
        }
        assert_eq!(host.free_nbd_device(), Some(host.dev_dir.join("nbd0")));
        std::fs::create_dir_all(host.sys_block_dir.join("nbd0")).unwrap();
        std::fs::write(host.sys_block_dir.join("nbd0/pid"), "42\n").unwrap();
        assert_eq!(host.free_nbd_device(), Some(host.dev_dir.join("nbd1")));
        assert!(host.is_nbd_device(&host.dev_dir.join("nbd12")));
        assert!(!host.is_nbd_device(&host.dev_dir.join("nbdx")));
        assert!(!host.is_nbd_device(Path::new("/dev/loop0")));
        assert_eq!(host.find_program("nbd-client"), None);
        assert_eq!(host.program("nbd-client"), "nbd-client");
    }
}
