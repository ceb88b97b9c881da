#![no_main]
//! Fuzzes the DRBD wire decoders: whole-frame decoding, the stream decoder fed in two pieces,
//! and the RLE bitmap decoder. Whatever decodes must re-encode and decode to the same value.
use libfuzzer_sys::fuzz_target;
use rdbd_wire::{decode_frame, Decoder, Limits, Packet};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(Some((frame, used))) = decode_frame(data, &limits) {
        assert!(used <= data.len());
        let bytes = frame.to_bytes().expect("a decoded frame encodes");
        let (again, _) = decode_frame(&bytes, &limits).expect("re-decodes").expect("complete");
        assert_eq!(again, frame);
        if let Packet::CompressedBitmap(c) = &frame.packet {
            let mut words = vec![0u64; 64];
            let _ = c.apply(&mut words, 4096, 0);
        }
    }
    let split = data.first().map_or(0, |&b| b as usize).min(data.len());
    let mut decoder = Decoder::new();
    decoder.feed(&data[..split]);
    while let Ok(Some(_)) = decoder.next_frame() {}
    decoder.feed(&data[split..]);
    while let Ok(Some(_)) = decoder.next_frame() {}
});
