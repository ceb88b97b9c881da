//! The bitmap-exchange receiver against untrusted packets: arbitrary P_BITMAP and
//! P_COMPRESSED_BITMAP sequences never panic, never set a bit at or past `bm_bits`, never clear
//! a bit; RLE codes built from known runs give exactly the bits a reference model sets.

use proptest::prelude::*;
use rdbd_replicator::resync::bitmap_xfer::{
    BitmapPacket, BitmapReceiver, BitmapXferError, Progress, XferParams,
};
use rdbd_wire::{CompressedBitmap, PlainBitmap};

fn packet() -> impl Strategy<Value = BitmapPacket> {
    prop_oneof![
        proptest::collection::vec(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()], 0..80)
            .prop_map(|words| BitmapPacket::Plain(PlainBitmap { words })),
        (
            any::<bool>(),
            0u8..8,
            proptest::collection::vec(any::<u8>(), 0..200)
        )
            .prop_map(|(first_run_set, pad_bits, code)| BitmapPacket::Compressed(
                CompressedBitmap {
                    first_run_set,
                    pad_bits,
                    code,
                }
            )),
    ]
}

/// The bitmap a transfer of `runs` (alternating from `first_set`) leaves in a zeroed bitmap of
/// `bm_bits` bits, or `None` when a run reaches past the end (the receiver must refuse it).
fn reference(bm_bits: u64, first_set: bool, runs: &[u64]) -> Option<(Vec<u64>, u64)> {
    let mut words = vec![0u64; bm_bits.div_ceil(64) as usize];
    let mut at = 0u64;
    let mut set = first_set;
    for &run in runs {
        let end = at + run;
        if end > bm_bits {
            return None;
        }
        if set {
            for bit in at..end {
                words[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        at = end;
        set = !set;
    }
    Some((words, at))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_packets_never_panic_overflow_or_clear(
        bm_bits in 0u64..5000,
        h80: bool,
        packets in proptest::collection::vec(packet(), 0..20),
    ) {
        let params = XferParams::for_protocol(if h80 { 96 } else { 101 }, true);
        let bm_words = bm_bits.div_ceil(64) as usize;
        let mut rx = BitmapReceiver::new(vec![0; bm_words], bm_bits, params).unwrap();
        let mut before = vec![0u64; bm_words];
        for p in &packets {
            let was_complete = rx.is_complete();
            let result = rx.receive(p);
            if was_complete {
                prop_assert_eq!(result, Err(BitmapXferError::AlreadyComplete));
            } else if let Ok(progress) = result {
                prop_assert_eq!(progress == Progress::Complete, rx.is_complete());
            }
            let words = rx.words();
            prop_assert_eq!(words.len(), bm_words);
            for (new, old) in words.iter().zip(&before) {
                prop_assert_eq!(new & old, *old, "a packet cleared a bit");
            }
            if bm_bits % 64 != 0 {
                prop_assert_eq!(words[bm_words - 1] >> (bm_bits % 64), 0, "bit past bm_bits");
            }
            before = words.to_vec();
        }
    }

    #[test]
    fn encoded_runs_set_exactly_the_reference_bits(
        bm_bits in 1u64..5000,
        first_set: bool,
        runs in proptest::collection::vec(prop_oneof![1u64..64, 1u64..3000], 1..40),
    ) {
        let params = XferParams::default();
        let (packet, used) =
            CompressedBitmap::encode_runs(first_set, &runs, params.code_bytes_per_packet()).unwrap();
        prop_assert_eq!(used, runs.len());
        let mut rx = BitmapReceiver::new(vec![0; bm_bits.div_ceil(64) as usize], bm_bits, params).unwrap();
        let result = rx.receive(&BitmapPacket::Compressed(packet));
        match reference(bm_bits, first_set, &runs) {
            None => prop_assert!(
                matches!(result, Err(BitmapXferError::Wire(_))),
                "run past the end accepted: {:?}", result
            ),
            Some((words, end)) => {
                let want = if end == bm_bits { Progress::Complete } else { Progress::More };
                prop_assert_eq!(result, Ok(want));
                prop_assert_eq!(rx.words(), &words[..]);
            }
        }
    }
}
