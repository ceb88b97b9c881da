//! Incremental stream decoder: feed the bytes a socket delivers, take out whole frames.
//!
//! Invariants: the buffer never holds more than one header plus one bounded payload beyond what
//! the caller fed; a header is validated (magic, command, length limit) before its payload is
//! awaited. After an error the stream is unusable (DRBD drops the connection); the decoder keeps
//! returning the same error.
//!
//! Large data packets need not pass through the buffer: [`Decoder::take_pending_bulk`] hands out
//! a data packet whose header and `p_data` are complete, with the bulk bytes buffered so far, and
//! the caller reads the rest of the bulk from the stream itself into memory of its choice (an
//! aligned buffer the disk writes from), then completes the frame with [`PendingBulk::finish`].

use bytes::{Buf, Bytes, BytesMut};

use crate::frame::{check_header, Frame, Limits};
use crate::header::{Header, HeaderKind};
use crate::packet::reader::Reader;
use crate::packet::{DataHeader, DataPacket, Packet, DATA_HEADER_BYTES};
use crate::{Command, WireError};

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

    /// When the buffered bytes begin with a data packet (`P_DATA`, `P_DATA_REPLY`,
    /// `P_RS_DATA_REPLY`) whose header and `p_data` are complete, whose bulk data is not, and
    /// whose bulk is at least `min_bulk_bytes` long: takes it out of the buffer and returns it
    /// with the bulk bytes buffered so far (a prefix of the bulk, the whole buffer). The caller
    /// reads the remaining `bulk_bytes() - prefix.len()` bytes from the stream itself (they must
    /// not be fed) and completes the frame with [`PendingBulk::finish`]. `Ok(None)` otherwise;
    /// the header is validated as by [`Decoder::next_frame`], with the same errors.
    pub fn take_pending_bulk(
        &mut self,
        min_bulk_bytes: usize,
    ) -> Result<Option<(PendingBulk, Bytes)>, WireError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.try_take_pending_bulk(min_bulk_bytes);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    fn try_take_pending_bulk(
        &mut self,
        min_bulk_bytes: usize,
    ) -> Result<Option<(PendingBulk, Bytes)>, WireError> {
        let Some(header) = Header::decode(&self.buf)? else {
            return Ok(None);
        };
        let command = check_header(&header, &self.limits)?;
        if !matches!(
            command,
            Command::Data | Command::DataReply | Command::RsDataReply
        ) {
            return Ok(None);
        }
        let head_bytes = header.kind.len_bytes();
        let length = header.length as usize;
        let Some(bulk_bytes) = length.checked_sub(DATA_HEADER_BYTES) else {
            // Too short for a p_data: next_frame reports it once the payload is in.
            return Ok(None);
        };
        let fixed_end = head_bytes + DATA_HEADER_BYTES;
        let complete = self.buf.len() >= head_bytes + length;
        if bulk_bytes < min_bulk_bytes.max(1) || self.buf.len() < fixed_end || complete {
            return Ok(None);
        }
        let data_header = {
            let mut r = Reader::new(&self.buf[head_bytes..fixed_end], command.name());
            DataHeader::read(&mut r)?
        };
        self.buf.advance(fixed_end);
        let prefix = self.buf.split().freeze();
        Ok(Some((
            PendingBulk {
                kind: header.kind,
                volume: header.volume,
                command,
                header: data_header,
                bulk_bytes,
            },
            prefix,
        )))
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

/// A data packet taken out of a [`Decoder`] before its bulk data arrived
/// ([`Decoder::take_pending_bulk`]): its header and `p_data` are decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBulk {
    kind: HeaderKind,
    volume: u16,
    command: Command,
    header: DataHeader,
    bulk_bytes: usize,
}

impl PendingBulk {
    /// The length of the bulk data, in bytes (bounded by the decoder's limits).
    pub fn bulk_bytes(&self) -> usize {
        self.bulk_bytes
    }

    /// The `p_data` of the packet.
    pub fn data_header(&self) -> &DataHeader {
        &self.header
    }

    /// The frame, with `bulk` (exactly [`PendingBulk::bulk_bytes`] long) as its data.
    pub fn finish(self, bulk: Bytes) -> Result<Frame, WireError> {
        if bulk.len() != self.bulk_bytes {
            return Err(WireError::BadLength {
                packet: self.command.name(),
                length: DATA_HEADER_BYTES + bulk.len(),
                expected: "the length its header announced",
            });
        }
        let data = DataPacket {
            header: self.header,
            payload: bulk,
        };
        let packet = match self.command {
            Command::Data => Packet::Data(data),
            Command::DataReply => Packet::DataReply(data),
            _ => Packet::RsDataReply(data),
        };
        Ok(Frame {
            kind: self.kind,
            volume: self.volume,
            packet,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::DpFlags;

    fn data_frame(len: usize) -> (Frame, Vec<u8>) {
        let frame = Frame::new(
            HeaderKind::H100,
            Packet::Data(DataPacket {
                header: DataHeader {
                    sector: 8,
                    block_id: 77,
                    seq_num: 3,
                    dp_flags: DpFlags::SEND_WRITE_ACK,
                },
                payload: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>()),
            }),
        );
        let bytes = frame.to_bytes().unwrap();
        (frame, bytes)
    }

    #[test]
    fn a_large_data_packet_is_handed_out_once_its_p_data_is_in() {
        let (frame, bytes) = data_frame(8192);
        let mut d = Decoder::new();
        // Header, but not all of p_data: nothing yet.
        d.feed(&bytes[..16 + 10]);
        assert_eq!(d.take_pending_bulk(4096).unwrap(), None);
        d.feed(&bytes[16 + 10..100]);
        // Below the threshold: left to next_frame.
        assert_eq!(d.take_pending_bulk(8193).unwrap(), None);
        let (pending, prefix) = d.take_pending_bulk(4096).unwrap().unwrap();
        assert_eq!(pending.bulk_bytes(), 8192);
        assert_eq!(pending.data_header().block_id, 77);
        assert_eq!(&prefix[..], &bytes[16 + 24..100]);
        assert_eq!(d.buffered_bytes(), 0);
        let mut bulk = prefix.to_vec();
        bulk.extend_from_slice(&bytes[100..]);
        assert_eq!(pending.finish(Bytes::from(bulk)).unwrap(), frame);
    }

    #[test]
    fn complete_or_non_data_packets_stay_with_next_frame() {
        let (frame, bytes) = data_frame(8192);
        let mut d = Decoder::new();
        d.feed(&bytes);
        assert_eq!(d.take_pending_bulk(1).unwrap(), None, "complete packet");
        assert_eq!(d.next_frame().unwrap(), Some(frame));
        let ping = Frame::new(HeaderKind::H100, Packet::Ping)
            .to_bytes()
            .unwrap();
        d.feed(&ping);
        assert_eq!(d.take_pending_bulk(0).unwrap(), None);
        assert!(d.next_frame().unwrap().is_some());
    }

    #[test]
    fn a_bad_header_fails_the_bulk_path_and_the_decoder() {
        let mut d = Decoder::new();
        d.feed(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(d.take_pending_bulk(1).is_err());
        assert!(d.next_frame().is_err(), "the error sticks");
    }

    #[test]
    fn a_bulk_of_the_wrong_length_is_refused() {
        let (_, bytes) = data_frame(8192);
        let mut d = Decoder::new();
        d.feed(&bytes[..64]);
        let (pending, _) = d.take_pending_bulk(1).unwrap().unwrap();
        let err = pending.finish(Bytes::from(vec![0u8; 100])).unwrap_err();
        assert!(err.to_string().contains("P_DATA"), "{err}");
    }
}
