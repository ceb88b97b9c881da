//! [`LocalDisk`]: an opened backing device or file and its I/O engine.
//!
//! Invariants:
//! - Every request is range-checked against `size_bytes` (checked
//!   arithmetic) before it reaches an engine.
//! - In direct mode, requests reach the engine aligned to `io_align_bytes`;
//!   unaligned ones are widened through a bounce buffer ([`rw`]).
//! - Unaligned writes (read-modify-write) hold `rmw_lock` exclusively; every
//!   other modifying request holds it shared, so a read-modify-write never
//!   writes back stale bytes around a concurrent aligned write.
//! - At most [`MAX_IN_FLIGHT`] requests are queued or in the kernel; further
//!   callers wait for a permit (backpressure).

mod blocking;
mod open;
mod refresh;
mod rw;
mod space;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{oneshot, RwLock, Semaphore};

use crate::engine::pool::{self, BlockingPool};
use crate::engine::{Backend, IoBuf, Kind, Request};
use crate::error::{IoOp, StorageError};
use crate::sys::Geometry;

/// The maximum number of requests queued in or submitted by the engine.
pub const MAX_IN_FLIGHT: usize = 256;

/// An opened backing partition, block device or regular file.
///
/// Cheap to clone (an `Arc` inside); `Send + Sync`. The async methods can be
/// called from any executor (the engines run on their own threads); the
/// `*_blocking` methods suit tools without a runtime.
#[derive(Clone)]
pub struct LocalDisk {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    geometry: Geometry,
    /// The size now: `geometry.size_bytes` until [`LocalDisk::refresh_size`] saw it grow.
    size_now_bytes: std::sync::atomic::AtomicU64,
    /// Whether the file is really open with `O_DIRECT`.
    direct: bool,
    /// Alignment of offsets and lengths the engine gets: the direct-I/O
    /// alignment in direct mode, 1 in buffered mode.
    io_align_bytes: u32,
    read_only: bool,
    /// Dropped before `file`: waits for every request in flight.
    backend: Backend,
    /// Runs discard, fallocate and `SEEK_DATA` for both engines.
    aux: BlockingPool,
    file: Arc<File>,
    permits: Semaphore,
    rmw_lock: RwLock<()>,
}

impl LocalDisk {
    /// The path the disk was opened with.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The usable size in bytes (`BLKGETSIZE64`, or the file length at open).
    pub fn size_bytes(&self) -> u64 {
        self.inner
            .size_now_bytes
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The logical block size (`BLKSSZGET`; 512 for regular files).
    pub fn logical_block_size(&self) -> u32 {
        self.inner.geometry.logical_block_size
    }

    /// True for block devices, false for regular files.
    pub fn is_block_device(&self) -> bool {
        self.inner.geometry.is_block_device
    }

    /// "io_uring" or "sync".
    pub fn engine_name(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// The engine and how it runs: "io_uring (ring thread)", "io_uring
    /// (inline with the tokio runtime)" or "sync (pread/pwrite thread pool)".
    pub fn engine_detail(&self) -> &'static str {
        self.inner.backend.detail()
    }

    /// Whether I/O bypasses the page cache (`O_DIRECT` was requested and accepted).
    pub fn is_direct(&self) -> bool {
        self.inner.direct
    }

    /// Whether the disk was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// The alignment below which reads and writes take the slow
    /// bounce-buffer path (1 in buffered mode).
    pub fn io_alignment_bytes(&self) -> u32 {
        self.inner.io_align_bytes
    }

    /// Fails unless `[offset, offset + len)` lies within the device.
    fn check_range(&self, op: IoOp, offset: u64, len: u64) -> Result<(), StorageError> {
        let size_bytes = self.size_bytes();
        match offset.checked_add(len) {
            Some(end) if end <= size_bytes => Ok(()),
            _ => Err(StorageError::OutOfRange {
                op,
                offset,
                len,
                size_bytes,
            }),
        }
    }

    /// Fails when the disk is read-only.
    fn check_writable(&self, op: IoOp, offset: u64, len: u64) -> Result<(), StorageError> {
        if self.inner.read_only {
            Err(StorageError::ReadOnly { op, offset, len })
        } else {
            Ok(())
        }
    }

    /// Hands one request to the engine and waits for it, holding an
    /// in-flight permit meanwhile. Returns the buffer.
    async fn engine_io(
        &self,
        op: IoOp,
        kind: Kind,
        offset: u64,
        buf: Option<IoBuf>,
    ) -> Result<Option<IoBuf>, StorageError> {
        let len = buf.as_ref().map_or(0, |b| b.len() as u64);
        if blocking::in_blocking_call() {
            let mut buf = buf;
            let performed = match (kind, buf.as_mut()) {
                (Kind::Write { fua }, Some(b)) => {
                    crate::sys::pwrite_full(&self.inner.file, b.as_slice(), offset, fua)
                }
                (kind, b) => pool::perform_on(
                    &self.inner.file,
                    kind,
                    offset,
                    b.and_then(IoBuf::as_mut_slice),
                ),
            };
            return match performed {
                Ok(()) => Ok(buf),
                Err(source) => Err(StorageError::Io {
                    op,
                    offset,
                    len,
                    source,
                }),
            };
        }
        let gone = || StorageError::EngineGone { op, offset, len };
        let _permit = self.inner.permits.acquire().await.map_err(|_| gone())?;
        let (reply, done) = oneshot::channel();
        self.inner.backend.submit(Request {
            kind,
            offset,
            buf,
            done_bytes: 0,
            reply,
        });
        let done = done.await.map_err(|_| gone())?;
        match done.result {
            Ok(()) => Ok(done.buf),
            Err(source) => Err(StorageError::Io {
                op,
                offset,
                len,
                source,
            }),
        }
    }

    /// Runs a blocking closure on the auxiliary pool.
    async fn aux<T: Send + 'static>(
        &self,
        op: IoOp,
        offset: u64,
        len: u64,
        f: impl FnOnce(&File) -> T + Send + 'static,
    ) -> Result<T, StorageError> {
        let file = self.inner.file.clone();
        self.inner
            .aux
            .run(move || f(&file))
            .await
            .map_err(|_| StorageError::EngineGone { op, offset, len })
    }
}

impl fmt::Debug for LocalDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDisk")
            .field("path", &self.inner.path)
            .field("size_bytes", &self.size_bytes())
            .field("logical_block_size", &self.logical_block_size())
            .field("block_device", &self.is_block_device())
            .field("direct", &self.inner.direct)
            .field("engine", &self.engine_name())
            .finish()
    }
}
