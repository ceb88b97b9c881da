#![no_main]
//! Decodes arbitrary bytes as an NBD option header plus payload and parses
//! the payload as every option type: must never panic.
use libfuzzer_sys::fuzz_target;
use rdbd_nbd::proto::{
    parse_info_request, parse_meta_context_request, ClientOption, OptionHeader, OPTION_HEADER_BYTES,
};

fuzz_target!(|data: &[u8]| {
    if data.len() >= OPTION_HEADER_BYTES {
        let (header, payload) = data.split_at(OPTION_HEADER_BYTES);
        let header: &[u8; OPTION_HEADER_BYTES] =
            header.try_into().expect("split at OPTION_HEADER_BYTES");
        if let Ok(parsed) = OptionHeader::decode(header) {
            assert_eq!(&parsed.encode(), header, "option header did not round-trip");
            let _ = ClientOption::parse(parsed.option, payload);
        }
    }
    for option in 0..12 {
        let _ = ClientOption::parse(option, data);
    }
    if let Ok(request) = parse_info_request(data) {
        assert_eq!(parse_info_request(&request.encode()), Ok(request));
    }
    if let Ok(request) = parse_meta_context_request(data) {
        assert_eq!(parse_meta_context_request(&request.encode()), Ok(request));
    }
});
