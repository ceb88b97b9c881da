//! Request <-> io_uring translation shared by both io_uring engines: the
//! SQE for the untransferred rest of a request, and what a CQE means for it
//! (finished, failed, or continue a short transfer).

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types, IoUring, Probe};

use crate::engine::{Kind, Request};

/// Largest transfer per SQE; longer requests continue like short transfers.
const MAX_CHUNK_BYTES: usize = 1 << 30;

/// How SQEs name the file.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FileRef {
    /// Registered as fixed file 0.
    Fixed,
    /// A plain descriptor.
    Fd(RawFd),
}

macro_rules! build_on_file {
    ($file:expr, $op:ident ( $($arg:expr),* ) $(. $method:ident ( $($marg:expr),* ))*) => {
        match $file {
            FileRef::Fixed => opcode::$op::new(types::Fixed(0), $($arg),*)$(.$method($($marg),*))*.build(),
            FileRef::Fd(fd) => opcode::$op::new(types::Fd(fd), $($arg),*)$(.$method($($marg),*))*.build(),
        }
    };
}

/// The SQE for the rest of `req`, tagged with `user_data`; `None` when a
/// read or write carries no buffer (or a read a shared one).
///
/// The pointers stay valid while the request lives: the buffer's heap
/// block does not move when the request moves.
pub(crate) fn sqe_for(req: &mut Request, file: FileRef, user_data: u64) -> Option<squeue::Entry> {
    let pos = req.offset + req.done_bytes as u64;
    let done = req.done_bytes;
    let entry = match (req.kind, req.buf.as_mut()) {
        (Kind::Flush, _) => build_on_file!(file, Fsync().flags(types::FsyncFlags::DATASYNC)),
        (Kind::Read, Some(buf)) => {
            // A shared buffer is never a read target.
            let buf = buf.as_mut_slice()?;
            let len = (buf.len() - done).min(MAX_CHUNK_BYTES) as u32;
            let ptr = buf[done..].as_mut_ptr();
            build_on_file!(file, Read(ptr, len).offset(pos))
        }
        (Kind::Write { fua }, Some(buf)) => {
            let buf = buf.as_slice();
            let len = (buf.len() - done).min(MAX_CHUNK_BYTES) as u32;
            let ptr = buf[done..].as_ptr();
            let flags = if fua { libc::RWF_DSYNC } else { 0 };
            build_on_file!(file, Write(ptr, len).offset(pos).rw_flags(flags))
        }
        (_, None) => return None,
    };
    Some(entry.user_data(user_data))
}

/// What to do with a request after its CQE.
pub(crate) enum Outcome {
    /// Answer the caller.
    Finish(io::Result<()>),
    /// Submit the SQE for the untransferred rest again.
    Resubmit,
}

/// Interprets a CQE result for `req`, advancing its progress.
pub(crate) fn on_cqe(req: &mut Request, result: i32) -> Outcome {
    if result < 0 {
        let errno = -result;
        return if errno == libc::EAGAIN || errno == libc::EINTR {
            Outcome::Resubmit
        } else {
            Outcome::Finish(Err(io::Error::from_raw_os_error(errno)))
        };
    }
    let transferred = result as usize;
    let total = req.buf.as_ref().map_or(0, |b| b.len());
    match req.kind {
        Kind::Flush => Outcome::Finish(Ok(())),
        Kind::Read if transferred == 0 && req.done_bytes < total => Outcome::Finish(Err(
            io::Error::new(io::ErrorKind::UnexpectedEof, "read hit the end of the file"),
        )),
        Kind::Write { .. } if transferred == 0 && req.done_bytes < total => Outcome::Finish(Err(
            io::Error::new(io::ErrorKind::WriteZero, "write transferred 0 bytes"),
        )),
        Kind::Read | Kind::Write { .. } => {
            req.done_bytes += transferred;
            if req.done_bytes >= total {
                Outcome::Finish(Ok(()))
            } else {
                Outcome::Resubmit
            }
        }
    }
}

/// Fails unless the kernel supports every opcode the engines use.
pub(crate) fn check_opcodes(ring: &IoUring) -> io::Result<()> {
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (name, code) in [
        ("IORING_OP_READ", opcode::Read::CODE),
        ("IORING_OP_WRITE", opcode::Write::CODE),
        ("IORING_OP_FSYNC", opcode::Fsync::CODE),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("kernel lacks {name}"),
            ));
        }
    }
    Ok(())
}

/// Registers `fd` as fixed file 0 when the kernel allows it.
pub(crate) fn register_file(ring: &IoUring, fd: RawFd) -> FileRef {
    match ring.submitter().register_files(&[fd]) {
        Ok(()) => FileRef::Fixed,
        Err(_) => FileRef::Fd(fd),
    }
}
