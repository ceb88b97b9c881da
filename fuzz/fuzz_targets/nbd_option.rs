#![no_main]
// Filled in by the crate that owns this decoder.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = data;
});
