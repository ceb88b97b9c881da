//! Local storage engine of rdbd: the backing partition, block device or
//! regular file of a resource.
//!
//! [`LocalDisk::open`] opens the device with `O_DIRECT` (falling back to
//! buffered I/O where the file system refuses it), probes its size and
//! logical block size and starts an I/O engine:
//!
//! - **io_uring** ([`Engine::IoUring`]), in one of two forms:
//!   - *inline* (when `open` is called inside a tokio runtime, the daemon's
//!     case): callers push SQEs and call `io_uring_enter` on their own
//!     thread; an eventfd registered with the ring wakes a reaper task on the
//!     tokio reactor. No thread hop per request — the fastest form on a
//!     2-core machine, on par with fio's io_uring engine.
//!   - *ring thread* (opened outside a runtime): one dedicated thread owns a
//!     `SINGLE_ISSUER | DEFER_TASKRUN` ring; callers queue requests and the
//!     thread submits them in batches, sleeping in `io_uring_enter` on both
//!     completions and an eventfd doorbell read.
//! - **sync** ([`Engine::Sync`]): `pread`/`pwrite` on a small thread pool,
//!   used where io_uring is unavailable ([`Engine::Auto`] detects this at
//!   open time and logs the choice).
//!
//! FLUSH is `fdatasync`, FUA a write with `RWF_DSYNC`, TRIM `BLKDISCARD` or
//! `fallocate(PUNCH_HOLE)`, WRITE_ZEROES `BLKZEROOUT` or
//! `fallocate(ZERO_RANGE/PUNCH_HOLE)`, block status `SEEK_DATA/SEEK_HOLE`.
//! Unaligned reads and writes go through a (slow, rare) bounce buffer.
//!
//! [`defer_submissions`] and [`submit_deferred`] batch the inline ring's
//! `io_uring_enter` calls over a burst of requests started on one thread.
//!
//! The `*_blocking` methods (for tools) perform reads, writes and flushes
//! directly on the calling thread.
//!
//! Modules: [`error`] (the error type), [`options`] (open options), `align`
//! and `extents` (pure arithmetic), `sys` (syscall wrappers), `engine`
//! (io_uring and thread-pool engines), `disk` ([`LocalDisk`]).

pub(crate) mod align;
mod disk;
pub(crate) mod engine;
pub mod error;
pub(crate) mod extents;
pub mod options;
pub(crate) mod sys;

pub use disk::{LocalDisk, MAX_IN_FLIGHT};
pub use engine::uring::plug::{defer_submissions, submit_deferred};
pub use error::{IoOp, StorageError};
pub use options::{DiskOptions, Engine};
