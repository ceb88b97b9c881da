//! Synchronous variants of the disk API for tools without an async runtime
//! (`rdbdmeta`). They drive the async methods with a minimal park/unpark
//! executor, and while they run, reads, writes and flushes are performed
//! directly on the calling thread (see [`in_blocking_call`]) instead of
//! being handed to the engine, so they work with or without a runtime and
//! never wait for a reactor that the caller may itself be blocking. Do not
//! call them from inside an async task: they block it.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use rdbd_types::AlignedBuf;

use super::LocalDisk;
use crate::error::StorageError;

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    static IN_BLOCKING_CALL: Cell<bool> = const { Cell::new(false) };
}

/// True while the current thread runs a `*_blocking` method.
pub(crate) fn in_blocking_call() -> bool {
    IN_BLOCKING_CALL.with(Cell::get)
}

struct BlockingCallGuard(bool);

impl Drop for BlockingCallGuard {
    fn drop(&mut self) {
        IN_BLOCKING_CALL.with(|f| f.set(self.0));
    }
}

/// Runs `fut` to completion on the current thread.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let _guard = BlockingCallGuard(IN_BLOCKING_CALL.with(|f| f.replace(true)));
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

impl LocalDisk {
    /// Blocking [`LocalDisk::read`].
    pub fn read_blocking(&self, offset: u64, len: usize) -> Result<AlignedBuf, StorageError> {
        block_on(self.read(offset, len))
    }

    /// Blocking [`LocalDisk::read_into`].
    pub fn read_into_blocking(
        &self,
        offset: u64,
        buf: AlignedBuf,
    ) -> Result<AlignedBuf, StorageError> {
        block_on(self.read_into(offset, buf))
    }

    /// Blocking [`LocalDisk::write_slice`].
    pub fn write_blocking(&self, offset: u64, data: &[u8], fua: bool) -> Result<(), StorageError> {
        block_on(self.write_slice(offset, data, fua))
    }

    /// Blocking [`LocalDisk::flush`].
    pub fn flush_blocking(&self) -> Result<(), StorageError> {
        block_on(self.flush())
    }

    /// Blocking [`LocalDisk::write_zeroes`].
    pub fn write_zeroes_blocking(
        &self,
        offset: u64,
        len: u64,
        may_punch_hole: bool,
    ) -> Result<(), StorageError> {
        block_on(self.write_zeroes(offset, len, may_punch_hole))
    }

    /// Blocking [`LocalDisk::discard`].
    pub fn discard_blocking(&self, offset: u64, len: u64) -> Result<(), StorageError> {
        block_on(self.discard(offset, len))
    }
}
