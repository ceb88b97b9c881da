//! Exclusive claims on backing and meta-data devices.
//!
//! The kernel claims a DRBD backing device exclusively while it is attached, and
//! drbdmeta refuses to touch the meta-data of an attached device. rdbd does the
//! same with an advisory `flock(LOCK_EX)` on the device node or file: the daemon
//! holds it from attach to detach, and `rdbdmeta` takes it (without waiting) before
//! any command, so neither a second daemon nor a meta-data command can write under
//! a running resource. The lock goes away with the process, so a crash (SIGKILL)
//! leaves nothing to clean up.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{MetaError, Result};

/// A held claim; dropping it releases the device.
#[derive(Debug)]
pub struct DeviceClaim {
    _file: File,
    path: PathBuf,
}

impl DeviceClaim {
    /// The claimed path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Claims `path` exclusively, failing at once if another process holds it.
pub fn claim(path: &Path) -> Result<DeviceClaim> {
    let file = File::open(path).map_err(|source| MetaError::Io {
        path: path.to_path_buf(),
        op: "open for claiming",
        offset_bytes: 0,
        source,
    })?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(MetaError::DeviceInUse(path.to_path_buf()));
        }
        return Err(MetaError::Io {
            path: path.to_path_buf(),
            op: "claim (flock)",
            offset_bytes: 0,
            source: err,
        });
    }
    Ok(DeviceClaim {
        _file: file,
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, b"x").unwrap();
        let first = claim(&path).unwrap();
        let err = claim(&path).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
        drop(first);
        claim(&path).unwrap();
    }
}
