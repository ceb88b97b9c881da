//! Growing a [`LocalDisk`] in place: after the backing file or device was enlarged
//! (`truncate`, `lvextend`), [`LocalDisk::refresh_size`] takes the new size so that
//! requests may reach the new area (`rdbdadm resize`). A smaller size is refused:
//! requests already validated against the old size must stay valid.

use std::sync::atomic::Ordering;

use super::LocalDisk;
use crate::error::StorageError;

impl LocalDisk {
    /// Reads the size again (file length or `BLKGETSIZE64`) and returns it. Fails when
    /// the device shrank or cannot be examined.
    pub fn refresh_size(&self) -> Result<u64, StorageError> {
        let now = match crate::sys::probe(&self.inner.file) {
            Ok(Some(g)) => g.size_bytes,
            Ok(None) => return Ok(self.size_bytes()),
            Err((what, source)) => {
                return Err(StorageError::Probe {
                    path: self.inner.path.clone(),
                    what,
                    source,
                })
            }
        };
        let old = self.size_bytes();
        if now < old {
            return Err(StorageError::Probe {
                path: self.inner.path.clone(),
                what: "size (the device shrank below the size in use)",
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        self.inner.size_now_bytes.store(now, Ordering::Release);
        Ok(now)
    }
}
