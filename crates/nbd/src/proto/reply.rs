//! Transmission replies: simple replies and structured reply chunks.
//!
//! Encoders append to a caller-owned buffer (the connection's reply buffer) so
//! the hot path allocates nothing; READ data is never copied here, only its
//! chunk header is built. Decoders exist for clients and tests.

use super::consts::{
    chunk, MAX_STRING_BYTES, SIMPLE_REPLY_BYTES, SIMPLE_REPLY_MAGIC, STRUCTURED_HEADER_BYTES,
    STRUCTURED_REPLY_MAGIC,
};
use super::request::be_u64;
use super::ProtoError;

/// One `base:allocation` extent of a block status reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Length in bytes (non-zero on the wire).
    pub length: u32,
    /// Status flags (`STATE_HOLE`, `STATE_ZERO`).
    pub flags: u32,
}

/// The header of a simple reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimpleReply {
    /// NBD error value, zero on success.
    pub error: u32,
    /// Cookie of the request answered.
    pub cookie: u64,
}

impl SimpleReply {
    /// Encodes the 16-byte header (READ data follows on success).
    pub fn encode(&self) -> [u8; SIMPLE_REPLY_BYTES] {
        let mut out = [0u8; SIMPLE_REPLY_BYTES];
        out[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        out[4..8].copy_from_slice(&self.error.to_be_bytes());
        out[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        out
    }

    /// Decodes a 16-byte simple reply header.
    pub fn decode(bytes: &[u8; SIMPLE_REPLY_BYTES]) -> Result<SimpleReply, ProtoError> {
        let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if magic != SIMPLE_REPLY_MAGIC {
            return Err(ProtoError::BadReplyMagic(magic));
        }
        Ok(SimpleReply {
            error: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            cookie: be_u64(&bytes[8..16]),
        })
    }
}

/// The header of one structured reply chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Chunk flags (`chunk::FLAG_DONE`).
    pub flags: u16,
    /// Chunk type (`chunk::TYPE_*`).
    pub chunk_type: u16,
    /// Cookie of the request answered.
    pub cookie: u64,
    /// Payload length in bytes.
    pub length: u32,
}

impl ChunkHeader {
    /// Encodes the 20-byte chunk header.
    pub fn encode(&self) -> [u8; STRUCTURED_HEADER_BYTES] {
        let mut out = [0u8; STRUCTURED_HEADER_BYTES];
        out[0..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
        out[4..6].copy_from_slice(&self.flags.to_be_bytes());
        out[6..8].copy_from_slice(&self.chunk_type.to_be_bytes());
        out[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        out[16..20].copy_from_slice(&self.length.to_be_bytes());
        out
    }

    /// Decodes a 20-byte chunk header.
    pub fn decode(bytes: &[u8; STRUCTURED_HEADER_BYTES]) -> Result<ChunkHeader, ProtoError> {
        let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if magic != STRUCTURED_REPLY_MAGIC {
            return Err(ProtoError::BadReplyMagic(magic));
        }
        Ok(ChunkHeader {
            flags: u16::from_be_bytes([bytes[4], bytes[5]]),
            chunk_type: u16::from_be_bytes([bytes[6], bytes[7]]),
            cookie: be_u64(&bytes[8..16]),
            length: u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
        })
    }
}

/// Appends a simple reply header.
pub fn put_simple_reply(out: &mut Vec<u8>, cookie: u64, error: u32) {
    out.extend_from_slice(&SimpleReply { error, cookie }.encode());
}

/// Appends the header of a final `OFFSET_DATA` chunk (chunk header plus the
/// 8-byte offset); `data_bytes` of data must follow. Fails if the chunk length
/// does not fit in 32 bits.
pub fn put_offset_data_header(
    out: &mut Vec<u8>,
    cookie: u64,
    offset: u64,
    data_bytes: u32,
) -> Result<(), ProtoError> {
    let length = data_bytes
        .checked_add(8)
        .ok_or(ProtoError::ChunkTooLong(data_bytes))?;
    let header = ChunkHeader {
        flags: chunk::FLAG_DONE,
        chunk_type: chunk::TYPE_OFFSET_DATA,
        cookie,
        length,
    };
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&offset.to_be_bytes());
    Ok(())
}

/// Appends a final `ERROR` chunk carrying `error` and a human-readable message
/// (cut to the spec's 4096-byte string limit on a character boundary).
pub fn put_error_chunk(out: &mut Vec<u8>, cookie: u64, error: u32, message: &str) {
    let message = truncate_str(message, MAX_STRING_BYTES);
    // At most 4096 bytes, so both casts are lossless.
    let message_bytes = message.len() as u16;
    let header = ChunkHeader {
        flags: chunk::FLAG_DONE,
        chunk_type: chunk::TYPE_ERROR,
        cookie,
        length: 6 + u32::from(message_bytes),
    };
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&message_bytes.to_be_bytes());
    out.extend_from_slice(message.as_bytes());
}

/// Appends a final `BLOCK_STATUS` chunk for one metadata context. The caller
/// guarantees 1..=`MAX_EXTENTS_PER_CHUNK` extents, so the length fits.
pub fn put_block_status_chunk(out: &mut Vec<u8>, cookie: u64, context_id: u32, extents: &[Extent]) {
    let length = 4 + 8 * extents.len() as u64;
    let header = ChunkHeader {
        flags: chunk::FLAG_DONE,
        chunk_type: chunk::TYPE_BLOCK_STATUS,
        cookie,
        length: u32::try_from(length).unwrap_or(u32::MAX),
    };
    out.reserve(STRUCTURED_HEADER_BYTES + length as usize);
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&context_id.to_be_bytes());
    for extent in extents {
        out.extend_from_slice(&extent.length.to_be_bytes());
        out.extend_from_slice(&extent.flags.to_be_bytes());
    }
}

/// Parses the payload of an `ERROR` chunk into (error, message).
pub fn parse_error_chunk(payload: &[u8]) -> Result<(u32, String), ProtoError> {
    if payload.len() < 6 {
        return Err(ProtoError::Truncated("error chunk"));
    }
    let error = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
    let message_bytes = usize::from(u16::from_be_bytes([payload[4], payload[5]]));
    let message = payload
        .get(6..6 + message_bytes)
        .ok_or(ProtoError::Truncated("error chunk message"))?;
    Ok((error, String::from_utf8_lossy(message).into_owned()))
}

/// Parses the payload of a `BLOCK_STATUS` chunk into (context id, extents).
pub fn parse_block_status_chunk(payload: &[u8]) -> Result<(u32, Vec<Extent>), ProtoError> {
    if payload.len() < 4 || (payload.len() - 4) % 8 != 0 {
        return Err(ProtoError::Truncated("block status chunk"));
    }
    let context_id = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
    let extents = payload[4..]
        .chunks_exact(8)
        .map(|d| Extent {
            length: u32::from_be_bytes([d[0], d[1], d[2], d[3]]),
            flags: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
        })
        .collect();
    Ok((context_id, extents))
}

/// Makes device-reported extents a valid `BLOCK_STATUS` descriptor list for a
/// request of `request_len` bytes: drops zero-length extents, stops once the
/// request is covered (so the first N-1 sum to less than the request), clips
/// the total to the request, keeps at most `MAX_EXTENTS_PER_CHUNK`, and keeps
/// only the first with `req_one`. Fails when no extent is left.
pub fn normalize_extents(
    extents: &mut Vec<Extent>,
    request_len: u32,
    req_one: bool,
) -> Result<(), &'static str> {
    let max_count = if req_one {
        1
    } else {
        super::consts::MAX_EXTENTS_PER_CHUNK
    };
    let mut covered: u32 = 0;
    let mut kept = 0usize;
    for i in 0..extents.len() {
        if covered >= request_len || kept >= max_count {
            break;
        }
        let extent = extents[i];
        if extent.length == 0 {
            continue;
        }
        let length = extent.length.min(request_len - covered);
        extents[kept] = Extent {
            length,
            flags: extent.flags,
        };
        covered += length;
        kept += 1;
    }
    extents.truncate(kept);
    if extents.is_empty() {
        return Err("device returned no non-empty extent");
    }
    Ok(())
}

/// The longest prefix of `s` of at most `max_bytes` bytes ending on a char boundary.
pub(crate) fn truncate_str(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::consts::errno;

    #[test]
    fn golden_simple_reply() {
        let mut out = Vec::new();
        put_simple_reply(&mut out, 0x1122_3344_5566_7788, errno::EINVAL);
        assert_eq!(
            out,
            [0x67, 0x44, 0x66, 0x98, 0, 0, 0, 22, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
            "NBD simple reply format changed"
        );
    }

    #[test]
    fn golden_offset_data_and_error_chunks() {
        let mut out = Vec::new();
        put_offset_data_header(&mut out, 7, 0x200, 4).unwrap();
        assert_eq!(
            out,
            [
                0x66, 0x8e, 0x33, 0xef, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 12, 0, 0, 0,
                0, 0, 0, 2, 0
            ],
            "NBD OFFSET_DATA chunk format changed"
        );
        out.clear();
        put_error_chunk(&mut out, 7, errno::EIO, "bad");
        assert_eq!(
            out,
            [
                0x66, 0x8e, 0x33, 0xef, 0, 1, 0x80, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 9, 0, 0, 0,
                5, 0, 3, b'b', b'a', b'd'
            ],
            "NBD ERROR chunk format changed"
        );
        assert_eq!(
            parse_error_chunk(&out[20..]).unwrap(),
            (5, "bad".to_string())
        );
        assert!(put_offset_data_header(&mut out, 1, 0, u32::MAX - 7).is_err());
    }

    #[test]
    fn block_status_chunk_round_trips() {
        let extents = [
            Extent {
                length: 4096,
                flags: 0,
            },
            Extent {
                length: 8192,
                flags: 3,
            },
        ];
        let mut out = Vec::new();
        put_block_status_chunk(&mut out, 9, 1, &extents);
        let header = ChunkHeader::decode(out[..20].try_into().unwrap()).unwrap();
        assert_eq!(header.length, 4 + 16);
        assert_eq!(header.chunk_type, chunk::TYPE_BLOCK_STATUS);
        assert_eq!(
            parse_block_status_chunk(&out[20..]).unwrap(),
            (1, extents.to_vec())
        );
    }

    #[test]
    fn extents_are_clipped_to_the_request() {
        let e = |length, flags| Extent { length, flags };
        let mut v = vec![e(0, 1), e(100, 0), e(0, 2), e(300, 3), e(50, 0)];
        normalize_extents(&mut v, 250, false).unwrap();
        assert_eq!(v, [e(100, 0), e(150, 3)]);
        let mut v = vec![e(1000, 2), e(10, 0)];
        normalize_extents(&mut v, 250, true).unwrap();
        assert_eq!(v, [e(250, 2)]);
        let mut v = vec![e(100, 0), e(10, 1)];
        normalize_extents(&mut v, 250, true).unwrap();
        assert_eq!(v, [e(100, 0)]);
        let mut v = vec![e(0, 0)];
        assert!(normalize_extents(&mut v, 250, false).is_err());
    }

    #[test]
    fn long_error_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(3000);
        let cut = truncate_str(&long, MAX_STRING_BYTES);
        assert!(cut.len() <= MAX_STRING_BYTES && cut.len() >= MAX_STRING_BYTES - 1);
        let mut out = Vec::new();
        put_error_chunk(&mut out, 1, errno::EIO, &long);
        let (_, message) = parse_error_chunk(&out[20..]).unwrap();
        assert_eq!(message, cut);
    }
}
