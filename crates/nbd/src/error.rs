//! The error type of a served connection.

use std::time::Duration;

use crate::export::OpenError;
use crate::proto::ProtoError;

/// Why a connection ended other than by a clean `NBD_CMD_DISC`, `NBD_OPT_ABORT` or EOF.
#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    /// Reading from or writing to the client failed.
    #[error("socket I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The client did not finish the handshake in time.
    #[error("handshake not finished within {0:?}")]
    HandshakeTimeout(Duration),
    /// The client set handshake flags this server does not know.
    #[error("client sent unknown handshake flags {0:#x}")]
    UnknownClientFlags(u32),
    /// The client sent malformed bytes (bad magic, oversized option, ...).
    #[error("client violated the protocol: {0}")]
    Protocol(#[from] ProtoError),
    /// `NBD_OPT_EXPORT_NAME` named an export that cannot be opened; this option
    /// has no error reply, so the connection is closed.
    #[error("NBD_OPT_EXPORT_NAME {name:?} refused: {reason}")]
    ExportRefused {
        /// The requested export.
        name: String,
        /// Why it could not be opened.
        reason: OpenError,
    },
    /// A WRITE announced a payload too large to drain; the connection is closed.
    #[error("WRITE of {length_bytes} bytes exceeds the {max_bytes}-byte limit")]
    WriteTooLarge {
        /// The announced length.
        length_bytes: u32,
        /// The largest payload this server reads.
        max_bytes: u32,
    },
    /// Sending a reply failed, so the connection was given up.
    #[error("sending a reply failed: {0}")]
    ReplyWriteFailed(String),
}

impl NbdError {
    /// True when the client merely went away (EOF, reset, broken pipe).
    pub fn is_disconnect(&self) -> bool {
        use std::io::ErrorKind::*;
        match self {
            NbdError::Io(e) => matches!(
                e.kind(),
                UnexpectedEof | ConnectionReset | BrokenPipe | ConnectionAborted
            ),
            _ => false,
        }
    }
}
