//! The error type of the storage engine: every failure names the operation,
//! the byte range and the underlying `io::Error`, so that the daemon can log
//! it once and answer the client with `EIO`.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// The operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoOp {
    /// A read.
    Read,
    /// A write (with or without FUA).
    Write,
    /// A cache flush (`fdatasync`).
    Flush,
    /// A discard (TRIM).
    Discard,
    /// Writing zeroes (`WRITE_ZEROES`).
    WriteZeroes,
    /// A block-status (allocation map) query.
    Allocation,
}

impl IoOp {
    /// A lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::Flush => "flush",
            IoOp::Discard => "discard",
            IoOp::WriteZeroes => "write-zeroes",
            IoOp::Allocation => "allocation query",
        }
    }
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The backing device or file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path given to [`crate::LocalDisk::open`].
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Size, block size or type of the opened device could not be determined.
    #[error("cannot determine the {what} of {path}: {source}")]
    Probe {
        /// The device.
        path: PathBuf,
        /// What was being determined ("size", "logical block size", ...).
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The path is a directory, a character device, a socket, ...
    #[error("{path} is neither a block device nor a regular file")]
    NotADisk {
        /// The offending path.
        path: PathBuf,
    },
    /// The io_uring engine was requested explicitly but cannot be used here.
    #[error("the io_uring engine was requested but is unavailable: {source}")]
    UringUnavailable {
        /// Why the ring could not be created or lacks a needed opcode.
        source: io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start the {engine} engine's threads: {source}")]
    EngineStart {
        /// "io_uring" or "sync".
        engine: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The local I/O itself failed.
    #[error("local {op} of {len} bytes at offset {offset} failed: {source}")]
    Io {
        /// The operation.
        op: IoOp,
        /// The first byte of the request.
        offset: u64,
        /// The length of the request in bytes.
        len: u64,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The request reaches beyond the end of the device.
    #[error("{op} of {len} bytes at offset {offset} is beyond the end of the device ({size_bytes} bytes)")]
    OutOfRange {
        /// The operation.
        op: IoOp,
        /// The first byte of the request.
        offset: u64,
        /// The length of the request in bytes.
        len: u64,
        /// The size of the device.
        size_bytes: u64,
    },
    /// A modifying request on a device opened read-only.
    #[error("{op} of {len} bytes at offset {offset} refused: the device was opened read-only")]
    ReadOnly {
        /// The operation.
        op: IoOp,
        /// The first byte of the request.
        offset: u64,
        /// The length of the request in bytes.
        len: u64,
    },
    /// The engine's threads are gone (a bug, or the process is shutting down).
    #[error("{op} of {len} bytes at offset {offset} failed: the storage engine has shut down")]
    EngineGone {
        /// The operation.
        op: IoOp,
        /// The first byte of the request.
        offset: u64,
        /// The length of the request in bytes.
        len: u64,
    },
}

impl StorageError {
    /// The errno a block-device frontend should report for this error:
    /// `EINVAL` for out-of-range requests, `EPERM` for writes to a
    /// read-only device, `EIO` for everything else (local I/O errors are
    /// never passed through verbatim, as DRBD does).
    pub fn errno(&self) -> i32 {
        match self {
            StorageError::OutOfRange { .. } => libc::EINVAL,
            StorageError::ReadOnly { .. } => libc::EPERM,
            _ => libc::EIO,
        }
    }

    /// The underlying OS error, when there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            StorageError::Open { source, .. }
            | StorageError::Probe { source, .. }
            | StorageError::UringUnavailable { source }
            | StorageError::EngineStart { source, .. }
            | StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_operation_range_and_cause() {
        let e = StorageError::Io {
            op: IoOp::Write,
            offset: 4096,
            len: 512,
            source: io::Error::from_raw_os_error(libc::EIO),
        };
        let text = e.to_string();
        assert!(
            text.contains("write") && text.contains("4096") && text.contains("512"),
            "{text}"
        );
        assert!(text.contains("Input/output error"), "{text}");
        assert_eq!(e.errno(), libc::EIO);
        let e = StorageError::OutOfRange {
            op: IoOp::Read,
            offset: 10,
            len: 20,
            size_bytes: 15,
        };
        assert_eq!(e.errno(), libc::EINVAL);
        assert!(e.to_string().contains("offset 10"));
    }
}
