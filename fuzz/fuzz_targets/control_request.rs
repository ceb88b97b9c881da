#![no_main]
//! Fuzzes the control socket's JSON-lines decoding: arbitrary bytes decoded as a daemon-side
//! `Request` and as a client-side `Response` must give a value or an error, never a panic; a
//! request that decodes must encode as one JSON line that decodes to the same request.
use libfuzzer_sys::fuzz_target;
use rdbd_control::{Request, Response};

fuzz_target!(|data: &[u8]| {
    // The daemon reads a line (at most MAX_LINE_BYTES, newline included) and decodes it whole.
    if let Ok(request) = serde_json::from_slice::<Request>(data) {
        let line = serde_json::to_string(&request).expect("a request encodes");
        assert!(!line.contains('\n'), "encoded request spans lines: {line}");
        let again: Request = serde_json::from_str(&line).expect("an encoded request decodes");
        assert_eq!(again, request, "request changed through encode → decode");
        let _ = (request.op_name(), request.resource());
    }
    if let Ok(response) = serde_json::from_slice::<Response>(data) {
        let line = serde_json::to_string(&response).expect("a response encodes");
        assert!(!line.contains('\n'), "encoded response spans lines: {line}");
        let _ = serde_json::from_str::<Response>(&line).expect("an encoded response decodes");
    }
});
