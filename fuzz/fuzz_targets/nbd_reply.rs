#![no_main]
//! Fuzzes the NBD reply decoders a client uses (simple reply header, structured chunk header,
//! ERROR and BLOCK_STATUS chunk payloads): never panic; whatever decodes re-encodes to the same
//! bytes (headers) or to a payload that decodes to the same value (chunks).
use libfuzzer_sys::fuzz_target;
use rdbd_nbd::proto::{
    parse_block_status_chunk, parse_error_chunk, put_block_status_chunk, put_error_chunk,
    ChunkHeader, SimpleReply, MAX_STRING_BYTES, SIMPLE_REPLY_BYTES, STRUCTURED_HEADER_BYTES,
};

fuzz_target!(|data: &[u8]| {
    if let Some(bytes) = data.first_chunk::<SIMPLE_REPLY_BYTES>() {
        if let Ok(reply) = SimpleReply::decode(bytes) {
            assert_eq!(&reply.encode(), bytes, "simple reply did not round-trip");
        }
    }
    if let Some(bytes) = data.first_chunk::<STRUCTURED_HEADER_BYTES>() {
        if let Ok(header) = ChunkHeader::decode(bytes) {
            assert_eq!(&header.encode(), bytes, "chunk header did not round-trip");
        }
    }
    if let Ok((error, message)) = parse_error_chunk(data) {
        assert!(message.len() <= 3 * usize::from(u16::MAX));
        if message.len() <= MAX_STRING_BYTES {
            let mut out = Vec::new();
            put_error_chunk(&mut out, 1, error, &message);
            let header = ChunkHeader::decode(out[..STRUCTURED_HEADER_BYTES].try_into().unwrap())
                .expect("an encoded chunk header decodes");
            assert_eq!(header.length as usize, out.len() - STRUCTURED_HEADER_BYTES);
            assert_eq!(
                parse_error_chunk(&out[STRUCTURED_HEADER_BYTES..]),
                Ok((error, message))
            );
        }
    }
    if let Ok((context_id, extents)) = parse_block_status_chunk(data) {
        assert_eq!(4 + 8 * extents.len(), data.len());
        let mut out = Vec::new();
        put_block_status_chunk(&mut out, 1, context_id, &extents);
        assert_eq!(
            &out[STRUCTURED_HEADER_BYTES..],
            data,
            "block status chunk did not round-trip"
        );
    }
});
