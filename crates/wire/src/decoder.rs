//! Incremental stream decoder: feed the bytes a socket delivers, take out whole frames.
//!
//! Invariants: the buffer never holds more than one header plus one bounded payload beyond what
//! the caller fed; a header is validated (magic, command, length limit) before its payload is
//! awaited. After an error the stream is unusable (DRBD drops the connection); the decoder keeps
//! returning the same error.

use bytes::{Buf, BytesMut};

use crate::frame::{check_header, Frame, Limits};
use crate::header::Header;
use crate::packet::Packet;
use crate::WireError;

/// Turns a byte stream into frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
    limits: Limits,
    failed: Option<WireError>,
}

impl Decoder {
    /// A decoder with the default limits.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// A decoder with explicit limits.
    pub fn with_limits(limits: Limits) -> Decoder {
        Decoder {
            limits,
            ..Decoder::default()
        }
    }

    /// Adds received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// How many more bytes the next frame needs at least (0 when one may be complete).
    pub fn bytes_wanted(&self) -> usize {
        match Header::decode(&self.buf) {
            Ok(Some(h)) => (h.kind.len_bytes() + h.length as usize).saturating_sub(self.buf.len()),
            Ok(None) => 8usize.saturating_sub(self.buf.len()).max(1),
            Err(_) => 0,
        }
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.try_next();
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    fn try_next(&mut self) -> Result<Option<Frame>, WireError> {
        let Some(header) = Header::decode(&self.buf)? else {
            return Ok(None);
        };
        let command = check_header(&header, &self.limits)?;
        let total = header.kind.len_bytes() + header.length as usize;
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(header.kind.len_bytes());
        let payload = self.buf.split_to(header.length as usize).freeze();
        let packet = Packet::decode(command, payload)?;
        Ok(Some(Frame {
            kind: header.kind,
            volume: header.volume,
            packet,
        }))
    }
}
