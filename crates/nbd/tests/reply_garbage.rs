//! The reply decoders a client runs on server bytes, on random input: they never panic, and
//! whatever decodes re-encodes to the same bytes (headers, BLOCK_STATUS) or to an ERROR chunk
//! that decodes to the same error and message.

use proptest::prelude::*;
use rdbd_nbd::proto::{
    parse_block_status_chunk, parse_error_chunk, put_block_status_chunk, put_error_chunk,
    ChunkHeader, SimpleReply, SIMPLE_REPLY_BYTES, SIMPLE_REPLY_MAGIC, STRUCTURED_HEADER_BYTES,
    STRUCTURED_REPLY_MAGIC,
};

/// Reply header bytes: random, or with the right magic so the fields get decoded.
fn header_bytes<const N: usize>(magic: u32) -> impl Strategy<Value = [u8; N]> {
    (any::<bool>(), proptest::collection::vec(any::<u8>(), N)).prop_map(move |(fix, bytes)| {
        let mut out = [0u8; N];
        out.copy_from_slice(&bytes);
        if fix {
            out[..4].copy_from_slice(&magic.to_be_bytes());
        }
        out
    })
}

/// An ERROR chunk payload whose message length field is often close to the truth.
fn error_payload() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..300),
        -3i32..3,
        any::<bool>(),
    )
        .prop_map(|(error, message, skew, honest)| {
            let mut out = error.to_be_bytes().to_vec();
            let claimed = if honest {
                (message.len() as i32 + skew).clamp(0, i32::from(u16::MAX)) as u16
            } else {
                u16::MAX - (skew.unsigned_abs() as u16)
            };
            out.extend_from_slice(&claimed.to_be_bytes());
            out.extend_from_slice(&message);
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn reply_headers_decode_or_refuse(
        simple in header_bytes::<SIMPLE_REPLY_BYTES>(SIMPLE_REPLY_MAGIC),
        chunk in header_bytes::<STRUCTURED_HEADER_BYTES>(STRUCTURED_REPLY_MAGIC),
    ) {
        if let Ok(reply) = SimpleReply::decode(&simple) {
            prop_assert_eq!(reply.encode(), simple);
        }
        match ChunkHeader::decode(&chunk) {
            Ok(header) => prop_assert_eq!(header.encode(), chunk),
            Err(_) => prop_assert_ne!(&chunk[..4], &STRUCTURED_REPLY_MAGIC.to_be_bytes()[..]),
        }
    }

    #[test]
    fn error_chunk_payloads_never_panic(payload in prop_oneof![error_payload(), proptest::collection::vec(any::<u8>(), 0..40)]) {
        match parse_error_chunk(&payload) {
            Ok((error, message)) => {
                let claimed = usize::from(u16::from_be_bytes([payload[4], payload[5]]));
                prop_assert!(6 + claimed <= payload.len());
                prop_assert_eq!(&message, &String::from_utf8_lossy(&payload[6..6 + claimed]));
                let mut out = Vec::new();
                put_error_chunk(&mut out, 3, error, &message);
                if message.len() <= 4096 {
                    prop_assert_eq!(parse_error_chunk(&out[STRUCTURED_HEADER_BYTES..]), Ok((error, message)));
                }
            }
            Err(_) => prop_assert!(
                payload.len() < 6
                    || 6 + usize::from(u16::from_be_bytes([payload[4], payload[5]])) > payload.len()
            ),
        }
    }

    #[test]
    fn block_status_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        match parse_block_status_chunk(&payload) {
            Ok((context_id, extents)) => {
                let mut out = Vec::new();
                put_block_status_chunk(&mut out, 3, context_id, &extents);
                prop_assert_eq!(&out[STRUCTURED_HEADER_BYTES..], &payload[..]);
            }
            Err(_) => prop_assert!(payload.len() < 4 || (payload.len() - 4) % 8 != 0),
        }
    }
}
