#![no_main]
//! Decodes arbitrary bytes as NBD transmission requests and validates them
//! against connection parameters taken from the input: must never panic, and
//! whatever decodes must re-encode to the same bytes.
use libfuzzer_sys::fuzz_target;
use rdbd_nbd::proto::{
    normalize_extents, validate_request, Command, Request, TransmissionParams, REQUEST_BYTES,
};
use rdbd_nbd::Extent;

fuzz_target!(|data: &[u8]| {
    if data.len() < REQUEST_BYTES + 16 {
        return;
    }
    let (header, rest) = data.split_at(REQUEST_BYTES);
    let header: &[u8; REQUEST_BYTES] = header.try_into().expect("split at REQUEST_BYTES");
    let Ok(req) = Request::decode(header) else {
        return;
    };
    assert_eq!(&req.encode(), header, "request did not round-trip");
    let word = |i: usize| u32::from_be_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
    let params = TransmissionParams {
        size_bytes: u64::from(word(0)) << (rest[4] % 24),
        flags: u16::from_be_bytes([rest[5], rest[6]]),
        block_size_min: 1 << (rest[7] % 17),
        payload_max_bytes: word(8),
        structured: rest[12] & 1 != 0,
        meta_context_id: (rest[12] & 2 != 0).then_some(1),
    };
    // Commands that address a range must lie inside the export once validated
    // (FLUSH and DISC carry no range: their offset and length are ignored).
    let ranged = !matches!(req.command, Command::Flush | Command::Disconnect);
    if ranged && validate_request(&req, &params).is_ok() && req.length > 0 {
        let end = req.offset.checked_add(u64::from(req.length));
        assert!(end.is_some_and(|end| end <= params.size_bytes), "validated request outside the export");
    }
    let mut extents: Vec<Extent> = rest[13..]
        .chunks_exact(4)
        .map(|c| Extent {
            length: u32::from(u16::from_be_bytes([c[0], c[1]])),
            flags: u32::from(c[2]),
        })
        .collect();
    if normalize_extents(&mut extents, req.length.max(1), req.flags & 8 != 0).is_ok() {
        let total: u64 = extents.iter().map(|e| u64::from(e.length)).sum();
        assert!(total <= u64::from(req.length.max(1)));
    }
});
