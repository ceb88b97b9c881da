//! Property tests of the pure codec: round trips, and arbitrary bytes never panic.

use proptest::prelude::*;
use rdbd_nbd::proto::{
    normalize_extents, parse_block_status_chunk, parse_error_chunk, parse_info_request,
    parse_meta_context_request, put_block_status_chunk, put_error_chunk, validate_request,
    ChunkHeader, ClientOption, Command, InfoRequest, MetaContextRequest, OptionHeader, Request,
    SimpleReply, TransmissionParams, MAX_OPTION_BYTES,
};
use rdbd_nbd::Extent;

fn command() -> impl Strategy<Value = Command> {
    any::<u16>().prop_map(Command::from_wire)
}

fn request() -> impl Strategy<Value = Request> {
    (
        any::<u16>(),
        command(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(|(flags, command, cookie, offset, length)| Request {
            flags,
            command,
            cookie,
            offset,
            length,
        })
}

proptest! {
    #[test]
    fn request_round_trips(req in request()) {
        prop_assert_eq!(Request::decode(&req.encode()), Ok(req));
    }

    #[test]
    fn random_request_bytes_never_panic(bytes in any::<[u8; 28]>()) {
        if let Ok(req) = Request::decode(&bytes) {
            prop_assert_eq!(req.encode(), bytes);
        }
    }

    #[test]
    fn option_header_round_trips(option in any::<u32>(), length in 0..=MAX_OPTION_BYTES) {
        let header = OptionHeader { option, length };
        prop_assert_eq!(OptionHeader::decode(&header.encode()), Ok(header));
    }

    #[test]
    fn random_option_headers_never_panic(bytes in any::<[u8; 16]>()) {
        if let Ok(header) = OptionHeader::decode(&bytes) {
            prop_assert!(header.length <= MAX_OPTION_BYTES);
        }
    }

    #[test]
    fn info_requests_round_trip(name in ".{0,40}", requests in proptest::collection::vec(any::<u16>(), 0..20)) {
        let req = InfoRequest { name, requests };
        prop_assert_eq!(parse_info_request(&req.encode()), Ok(req));
    }

    #[test]
    fn meta_context_requests_round_trip(
        export_name in ".{0,40}",
        queries in proptest::collection::vec("[a-z]{1,8}:[a-z]{0,12}", 0..8),
    ) {
        let req = MetaContextRequest { export_name, queries };
        prop_assert_eq!(parse_meta_context_request(&req.encode()), Ok(req));
    }

    #[test]
    fn random_option_payloads_never_panic(option in 0u32..16, data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = ClientOption::parse(option, &data);
        let _ = parse_info_request(&data);
        let _ = parse_meta_context_request(&data);
    }

    #[test]
    fn reply_headers_round_trip(flags in any::<u16>(), chunk_type in any::<u16>(), cookie in any::<u64>(), length in any::<u32>(), error in any::<u32>()) {
        let header = ChunkHeader { flags, chunk_type, cookie, length };
        prop_assert_eq!(ChunkHeader::decode(&header.encode()), Ok(header));
        let simple = SimpleReply { error, cookie };
        prop_assert_eq!(SimpleReply::decode(&simple.encode()), Ok(simple));
    }

    #[test]
    fn error_and_block_status_chunks_round_trip(
        error in 1u32..200,
        message in ".{0,100}",
        extents in proptest::collection::vec((1u32.., any::<u32>()), 1..50),
    ) {
        let mut out = Vec::new();
        put_error_chunk(&mut out, 5, error, &message);
        prop_assert_eq!(parse_error_chunk(&out[20..]), Ok((error, message.clone())));
        let extents: Vec<Extent> = extents.into_iter().map(|(length, flags)| Extent { length, flags }).collect();
        out.clear();
        put_block_status_chunk(&mut out, 5, 1, &extents);
        prop_assert_eq!(parse_block_status_chunk(&out[20..]), Ok((1, extents)));
    }

    #[test]
    fn accepted_requests_stay_inside_the_export(
        req in request(),
        size_bytes in 0u64..(1 << 40),
        flags in any::<u16>(),
        min_shift in 0u32..17,
        payload_max_bytes in 1u32..(64 << 20),
        structured in any::<bool>(),
    ) {
        let params = TransmissionParams {
            size_bytes, flags, block_size_min: 1 << min_shift, payload_max_bytes, structured,
            meta_context_id: structured.then_some(1),
        };
        if validate_request(&req, &params).is_ok()
            && !matches!(req.command, Command::Flush | Command::Disconnect)
        {
            prop_assert!(req.length > 0);
            prop_assert!(req.offset.checked_add(u64::from(req.length)).is_some_and(|end| end <= size_bytes));
            prop_assert_eq!(req.offset % (1u64 << min_shift), 0);
            if matches!(req.command, Command::Read | Command::Write) {
                prop_assert!(req.length <= payload_max_bytes);
            }
        }
    }

    #[test]
    fn normalized_extents_are_valid(
        raw in proptest::collection::vec((0u32..10_000, any::<u32>()), 0..40),
        request_len in 1u32..100_000,
        req_one in any::<bool>(),
    ) {
        let mut extents: Vec<Extent> = raw.iter().map(|&(length, flags)| Extent { length, flags }).collect();
        match normalize_extents(&mut extents, request_len, req_one) {
            Ok(()) => {
                prop_assert!(!extents.is_empty());
                prop_assert!(extents.iter().all(|e| e.length > 0));
                let total: u64 = extents.iter().map(|e| u64::from(e.length)).sum();
                prop_assert!(total <= u64::from(request_len));
                if req_one {
                    prop_assert_eq!(extents.len(), 1);
                }
            }
            Err(_) => prop_assert!(raw.iter().all(|&(length, _)| length == 0)),
        }
    }
}
