//! Fuzzes the AL transaction decoder and ring replay: never panic; decoded transactions
//! round-trip; the dump-md parser (also untrusted text) never panics and stays bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdbd_metadata::al::{replay, AlTransaction};
use rdbd_metadata::dump::parse_dump;
use rdbd_metadata::AlStripes;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = AlTransaction::decode(data) {
        assert_eq!(
            AlTransaction::decode(&t.encode()).expect("re-encoded block must decode"),
            t
        );
    }
    let stripes = AlStripes::new(1 + u32::from(data.first().copied().unwrap_or(0) % 4), 8)
        .unwrap_or_default();
    if let Ok(o) = replay(data, stripes) {
        assert!(o.hot_extents.windows(2).all(|w| w[0] <= w[1]));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(doc) = parse_dump(text, |_| 4096) {
            assert!(doc.bitmap_words.len() <= 4096);
        }
    }
});
