#![no_main]
//! Fuzzes the `/proc/drbd` parser on arbitrary UTF-8: never panics; every parsed minor's
//! accessors work; with a version line prepended, the result is the same or another error.
use libfuzzer_sys::fuzz_target;
use rdbd_control::status::parse::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((version, minors)) = parse(text) {
        assert!(version.starts_with("version: "));
        for m in &minors {
            let _ = m.conn_state();
            let _ = m.counter("oos");
            assert!(m.flags.is_empty() || m.flags.len() == 6);
        }
    }
    // Most inputs lack the version line: also parse them as the minors after one.
    let with_version = format!("version: 8.4.11 (api:1/proto:86-101)\n{text}");
    if let Ok((_, minors)) = parse(&with_version) {
        for m in &minors {
            let _ = m.conn_state();
            let _ = m.counter("ns");
        }
    }
});
