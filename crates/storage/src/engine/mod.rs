//! The I/O engines behind [`crate::LocalDisk`]: io_uring on a dedicated
//! thread ([`uring`]) or inline with a tokio runtime ([`uring::inline`]),
//! or `pread`/`pwrite` on a thread pool ([`pool`]).
//!
//! Both take the same [`Request`] — an owned buffer, an offset and a reply
//! channel — and answer with a [`Done`] that hands the buffer back, so no
//! buffer is ever borrowed across an await point and a cancelled caller
//! cannot free memory the kernel is still writing to.

pub(crate) mod pool;
pub(crate) mod uring;

use std::io;

use bytes::Bytes;
use rdbd_types::{AlignedBuf, SharedBuf};
use tokio::sync::oneshot;

/// The memory a read fills or a write takes its data from.
pub(crate) enum IoBuf {
    /// Owned: reads and writes.
    Owned(AlignedBuf),
    /// Shared read-only with other users: writes only.
    Shared(SharedBuf),
    /// Received bytes whose memory is already aligned for the file
    /// ([`crate::LocalDisk::write_bytes`]): writes only, never written to.
    Bytes(Bytes),
}

impl IoBuf {
    /// The number of bytes the request moves.
    pub fn len(&self) -> usize {
        match self {
            IoBuf::Owned(b) => b.len(),
            IoBuf::Shared(b) => b.len(),
            IoBuf::Bytes(b) => b.len(),
        }
    }

    /// The bytes, for writing them out.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            IoBuf::Owned(b) => b,
            IoBuf::Shared(b) => b,
            IoBuf::Bytes(b) => b,
        }
    }

    /// The bytes to fill; `None` for shared memory, which is never written to.
    pub fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        match self {
            IoBuf::Owned(b) => Some(b),
            IoBuf::Shared(_) | IoBuf::Bytes(_) => None,
        }
    }

    /// The owned buffer, `None` for a shared one.
    pub fn into_owned(self) -> Option<AlignedBuf> {
        match self {
            IoBuf::Owned(b) => Some(b),
            IoBuf::Shared(_) | IoBuf::Bytes(_) => None,
        }
    }
}

/// What a [`Request`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Fill the whole buffer from `offset`.
    Read,
    /// Write the whole buffer at `offset`; with `fua` durable on completion.
    Write { fua: bool },
    /// `fdatasync`.
    Flush,
}

/// One operation handed to an engine.
pub(crate) struct Request {
    pub kind: Kind,
    pub offset: u64,
    /// The data buffer (`None` for [`Kind::Flush`]); `len()` bytes move.
    /// A read needs an owned one.
    pub buf: Option<IoBuf>,
    /// Bytes already transferred (short transfers are continued).
    pub done_bytes: usize,
    pub reply: oneshot::Sender<Done>,
}

/// The answer to a [`Request`].
pub(crate) struct Done {
    pub result: io::Result<()>,
    pub buf: Option<IoBuf>,
}

impl Request {
    /// Answers the caller; a caller that went away just drops the buffer.
    pub fn complete(self, result: io::Result<()>) {
        let _ = self.reply.send(Done {
            result,
            buf: self.buf,
        });
    }
}

/// The engine a disk uses.
pub(crate) enum Backend {
    Uring(uring::UringEngine),
    UringInline(uring::inline::InlineUring),
    Sync(pool::SyncEngine),
}

impl Backend {
    /// Queues `req`; the answer arrives on its reply channel.
    pub fn submit(&self, req: Request) {
        match self {
            Backend::Uring(e) => e.submit(req),
            Backend::UringInline(e) => e.submit(req),
            Backend::Sync(e) => e.submit(req),
        }
    }

    /// The engine and how it runs, for logs.
    pub fn detail(&self) -> &'static str {
        match self {
            Backend::Uring(_) => "io_uring (ring thread)",
            Backend::UringInline(_) => "io_uring (inline with the tokio runtime)",
            Backend::Sync(_) => "sync (pread/pwrite thread pool)",
        }
    }

    /// "io_uring" or "sync".
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Uring(_) | Backend::UringInline(_) => "io_uring",
            Backend::Sync(_) => "sync",
        }
    }
}
