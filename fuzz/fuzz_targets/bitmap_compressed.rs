#![no_main]
//! Fuzzes the bitmap-exchange receiver (P_BITMAP and P_COMPRESSED_BITMAP, RLE/VLI) with
//! arbitrary packet sequences for a bitmap of up to a few thousand bits: it never panics, never
//! sets a bit at or past `bm_bits`, never clears a bit (it ORs), keeps the bitmap length, and
//! refuses every packet once the transfer is complete.
use libfuzzer_sys::fuzz_target;
use rdbd_replicator::resync::bitmap_xfer::{
    BitmapPacket, BitmapReceiver, BitmapXferError, Progress, XferParams,
};
use rdbd_wire::{CompressedBitmap, PlainBitmap};

/// Takes `n` bytes from the front of `data` (fewer if it is shorter).
fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = data.split_at(n.min(data.len()));
    *data = tail;
    head
}

fn byte(data: &mut &[u8]) -> u8 {
    take(data, 1).first().copied().unwrap_or(0)
}

/// The next packet: a tag byte (even: compressed, odd: plain), then its size and content.
fn next_packet(data: &mut &[u8]) -> BitmapPacket {
    let tag = byte(data);
    if tag & 1 == 0 {
        // The encoding byte as on the wire (first run polarity, pad bits), then the code.
        let len = usize::from(u16::from_le_bytes([byte(data), byte(data)]) % 4200);
        BitmapPacket::Compressed(CompressedBitmap {
            first_run_set: tag & 0x80 != 0,
            pad_bits: (tag >> 4) & 7,
            code: take(data, len).to_vec(),
        })
    } else {
        let n = usize::from(byte(data) % 80);
        let words = (0..n)
            .map(|_| {
                let b = byte(data);
                match b % 3 {
                    0 => 0,
                    1 => u64::MAX,
                    _ => u64::from(b).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                }
            })
            .collect();
        BitmapPacket::Plain(PlainBitmap { words })
    }
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let head = byte(&mut data);
    let bm_bits = u64::from(u16::from_le_bytes([byte(&mut data), byte(&mut data)]) % 5000);
    let params = XferParams::for_protocol(if head & 1 != 0 { 101 } else { 96 }, true);
    let bm_words = bm_bits.div_ceil(64) as usize;
    // Our own bitmap: empty, full, or a pattern; never with bits past bm_bits.
    let mut own: Vec<u64> = (0..bm_words)
        .map(|i| match (head >> 1) & 3 {
            0 => 0,
            1 => u64::MAX,
            _ => (i as u64).wrapping_mul(0x0101_0101_0101_0101) << (head >> 3),
        })
        .collect();
    let tail_bits = bm_bits % 64;
    if let (Some(last), true) = (own.last_mut(), tail_bits != 0) {
        *last &= (1u64 << tail_bits) - 1;
    }
    let mut receiver =
        BitmapReceiver::new(own.clone(), bm_bits, params).expect("bitmap has bm_bits bits");
    while !data.is_empty() {
        let packet = next_packet(&mut data);
        let was_complete = receiver.is_complete();
        let result = receiver.receive(&packet);
        if was_complete {
            assert_eq!(result, Err(BitmapXferError::AlreadyComplete));
        }
        if let Ok(progress) = result {
            assert_eq!(progress == Progress::Complete, receiver.is_complete());
        }
        let words = receiver.words();
        assert_eq!(words.len(), bm_words, "bitmap length changed");
        for (new, old) in words.iter().zip(&own) {
            assert_eq!(new & old, *old, "a received packet cleared a bit");
        }
        if let (Some(last), true) = (words.last(), tail_bits != 0) {
            assert_eq!(last >> tail_bits, 0, "bit set past bm_bits {bm_bits}");
        }
        own = words.to_vec();
    }
});
