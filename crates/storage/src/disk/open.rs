//! Opening a [`LocalDisk`]: `O_DIRECT` with a buffered fallback, geometry
//! probing and engine selection.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::{RwLock, Semaphore};

use super::{Inner, LocalDisk, MAX_IN_FLIGHT};
use crate::engine::pool::{BlockingPool, SyncEngine};
use crate::engine::uring::inline::InlineUring;
use crate::engine::uring::UringEngine;
use crate::engine::Backend;
use crate::error::StorageError;
use crate::options::{DiskOptions, Engine};
use crate::sys;

/// Threads of the auxiliary pool (discard, fallocate, allocation queries).
const AUX_THREADS: usize = 2;

impl LocalDisk {
    /// Opens a block device or regular file.
    ///
    /// With `opts.direct` the file is opened `O_DIRECT`; a file system that
    /// refuses it (`EINVAL`), or a regular file whose length is not a
    /// multiple of the direct-I/O alignment, is used buffered instead, with a
    /// warning. With [`Engine::Auto`] a ring is tried first and the sync
    /// engine used when io_uring is unavailable; the choice is logged.
    pub fn open(path: &Path, opts: &DiskOptions) -> Result<LocalDisk, StorageError> {
        let (mut file, mut direct) =
            open_with_fallback(path, opts.read_only, opts.direct, sys::open)?;
        let probe_error = |(what, source)| StorageError::Probe {
            path: path.to_path_buf(),
            what,
            source,
        };
        let geometry =
            sys::probe(&file)
                .map_err(probe_error)?
                .ok_or_else(|| StorageError::NotADisk {
                    path: path.to_path_buf(),
                })?;
        if direct
            && !geometry.is_block_device
            && geometry.size_bytes % u64::from(geometry.direct_align) != 0
        {
            tracing::warn!(
                path = %path.display(),
                size_bytes = geometry.size_bytes,
                direct_align = geometry.direct_align,
                "file length is not a multiple of the direct I/O alignment; using buffered I/O"
            );
            file = sys::open(path, opts.read_only, false).map_err(|source| StorageError::Open {
                path: path.to_path_buf(),
                source,
            })?;
            direct = false;
        }
        let file = Arc::new(file);
        let backend = start_engine(&file, opts.engine)?;
        let aux = BlockingPool::new("rdbd-disk-aux", AUX_THREADS).map_err(|source| {
            StorageError::EngineStart {
                engine: "auxiliary",
                source,
            }
        })?;
        let io_align_bytes = if direct { geometry.direct_align } else { 1 };
        tracing::info!(
            path = %path.display(),
            size_bytes = geometry.size_bytes,
            logical_block_size = geometry.logical_block_size,
            block_device = geometry.is_block_device,
            direct,
            io_align_bytes,
            read_only = opts.read_only,
            engine = backend.detail(),
            "opened local disk"
        );
        Ok(LocalDisk {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                geometry,
                size_now_bytes: std::sync::atomic::AtomicU64::new(geometry.size_bytes),
                direct,
                io_align_bytes,
                read_only: opts.read_only,
                backend,
                aux,
                file,
                permits: Semaphore::new(MAX_IN_FLIGHT),
                rmw_lock: RwLock::new(()),
            }),
        })
    }
}

/// Opens with `O_DIRECT` when asked, retrying buffered when the file system
/// answers `EINVAL`. Returns the file and whether it is really direct.
pub(crate) fn open_with_fallback(
    path: &Path,
    read_only: bool,
    direct: bool,
    opener: impl Fn(&Path, bool, bool) -> io::Result<File>,
) -> Result<(File, bool), StorageError> {
    let open_error = |source| StorageError::Open {
        path: path.to_path_buf(),
        source,
    };
    match opener(path, read_only, direct) {
        Ok(file) => Ok((file, direct)),
        Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::warn!(path = %path.display(), "O_DIRECT refused by the file system; using buffered I/O");
            opener(path, read_only, false)
                .map(|f| (f, false))
                .map_err(open_error)
        }
        Err(e) => Err(open_error(e)),
    }
}

/// Starts the engine. io_uring runs inline with the caller's tokio runtime
/// when `open` is called inside one, else on a dedicated ring thread.
fn start_engine(file: &Arc<File>, engine: Engine) -> Result<Backend, StorageError> {
    let sync = || {
        SyncEngine::new(file.clone())
            .map(Backend::Sync)
            .map_err(|source| StorageError::EngineStart {
                engine: "sync",
                source,
            })
    };
    let uring = || -> std::io::Result<Backend> {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            match InlineUring::start(file.clone(), MAX_IN_FLIGHT, &runtime) {
                Ok(e) => return Ok(Backend::UringInline(e)),
                Err(e) => {
                    tracing::debug!(error = %e, "runtime-integrated io_uring failed; trying a ring thread")
                }
            }
        }
        UringEngine::start(file.clone(), MAX_IN_FLIGHT).map(Backend::Uring)
    };
    match engine {
        Engine::Sync => sync(),
        Engine::IoUring => uring().map_err(|source| StorageError::UringUnavailable { source }),
        Engine::Auto => match uring() {
            Ok(e) => Ok(e),
            Err(e) => {
                tracing::warn!(error = %e, "io_uring unavailable; using the sync (pread/pwrite) engine");
                sync()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn einval_on_direct_open_falls_back_to_buffered() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [0u8; 4096]).unwrap();
        let calls = RefCell::new(Vec::new());
        let opener = |p: &Path, ro: bool, direct: bool| {
            calls.borrow_mut().push(direct);
            if direct {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                sys::open(p, ro, false)
            }
        };
        let (_file, direct) = open_with_fallback(&path, false, true, opener).unwrap();
        assert!(!direct);
        assert_eq!(*calls.borrow(), vec![true, false]);
    }

    #[test]
    fn other_open_errors_are_not_retried() {
        let calls = RefCell::new(0);
        let opener = |_: &Path, _: bool, _: bool| {
            *calls.borrow_mut() += 1;
            Err::<File, _>(io::Error::from_raw_os_error(libc::EACCES))
        };
        let err = open_with_fallback(Path::new("/nope/disk"), false, true, opener).unwrap_err();
        assert_eq!(*calls.borrow(), 1);
        assert!(err.to_string().contains("/nope/disk"), "{err}");
    }
}
