//! A frame is a header plus a packet: encoding with a chosen header kind, and decoding one frame
//! from the front of a byte slice, with every length checked before anything is buffered.

use bytes::Bytes;

use crate::header::{Header, HeaderKind};
use crate::packet::Packet;
use crate::{Command, WireError, MAX_PAYLOAD_BYTES};

/// Decoding limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload accepted for any packet (each command has its own, smaller, bound too).
    pub max_payload_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_payload_bytes: MAX_PAYLOAD_BYTES,
        }
    }
}

/// One packet with its header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header layout.
    pub kind: HeaderKind,
    /// The volume number (0 unless h100).
    pub volume: u16,
    /// The packet.
    pub packet: Packet,
}

impl Frame {
    /// A frame for volume 0.
    pub fn new(kind: HeaderKind, packet: Packet) -> Frame {
        Frame {
            kind,
            volume: 0,
            packet,
        }
    }

    /// Appends header and fixed payload to `out`, and returns the bulk data of a data packet
    /// (to be sent right after `out`'s bytes), so that the data is never copied.
    pub fn encode_head(&self, out: &mut Vec<u8>) -> Result<Option<Bytes>, WireError> {
        let command = self.packet.command();
        let mut payload = Vec::new();
        let bulk = self.packet.encode_payload(&mut payload)?.cloned();
        let length = payload.len() + bulk.as_ref().map_or(0, |b| b.len());
        let length_u32 = u32::try_from(length).map_err(|_| WireError::TooLongForHeader {
            packet: command.name(),
            length,
            kind: self.kind,
            max: self.kind.max_payload_bytes(),
        })?;
        Header {
            kind: self.kind,
            volume: self.volume,
            command: command.to_u16(),
            length: length_u32,
        }
        .encode(command.name(), out)?;
        out.extend_from_slice(&payload);
        Ok(bulk)
    }

    /// Appends the whole encoded frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        if let Some(bulk) = self.encode_head(out)? {
            out.extend_from_slice(&bulk);
        }
        Ok(())
    }

    /// The encoded frame as a new vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

/// Checks a decoded header against the command table and the limits; returns the command.
pub(crate) fn check_header(header: &Header, limits: &Limits) -> Result<Command, WireError> {
    let command = Command::from_u16(header.command).ok_or(WireError::UnknownCommand {
        command: header.command,
    })?;
    let (_, max) = command.payload_bounds();
    let limit = max.min(limits.max_payload_bytes);
    if header.length as usize > limit {
        return Err(WireError::PayloadTooLong {
            packet: command.name(),
            length: u64::from(header.length),
            limit: limit as u64,
        });
    }
    Ok(command)
}

/// Decodes one frame from the front of `buf`: `Ok(None)` when more bytes are needed, else the
/// frame and the number of bytes it took.
pub fn decode_frame(buf: &[u8], limits: &Limits) -> Result<Option<(Frame, usize)>, WireError> {
    let Some(header) = Header::decode(buf)? else {
        return Ok(None);
    };
    let command = check_header(&header, limits)?;
    let start = header.kind.len_bytes();
    let end = start + header.length as usize;
    let Some(payload) = buf.get(start..end) else {
        return Ok(None);
    };
    let packet = Packet::decode(command, Bytes::copy_from_slice(payload))?;
    Ok(Some((
        Frame {
            kind: header.kind,
            volume: header.volume,
            packet,
        },
        end,
    )))
}
