//! Tests of the bitmap exchange: golden packets, DRBD's plain/RLE switching, the receiver's
//! checks, and round trips of random bitmaps through the real wire codec.

use super::*;
use bytes::Bytes;
use proptest::prelude::*;
use rdbd_wire::Command;

fn transfer(words: &[u64], bm_bits: u64, params: XferParams) -> (Vec<BitmapPacket>, Vec<u64>) {
    let packets = bitmap_packets(words, bm_bits, params).unwrap();
    let mut rx = BitmapReceiver::new(vec![0; words.len()], bm_bits, params).unwrap();
    for (i, p) in packets.iter().enumerate() {
        let progress = rx.receive(p).unwrap();
        let last = i + 1 == packets.len();
        assert_eq!(
            progress == Progress::Complete,
            last,
            "packet {i} of {}",
            packets.len()
        );
    }
    assert!(rx.is_complete());
    (packets, rx.into_words())
}

fn masked(words: &[u64], bm_bits: u64) -> Vec<u64> {
    (0..bm_bits.div_ceil(64))
        .map(|i| masked_word(words, i, bm_bits))
        .collect()
}

#[test]
fn golden_all_set() {
    // 16374 bits all set: one compressed packet, one run.
    let words = vec![u64::MAX; 256];
    let (packets, back) = transfer(&words, 16374, XferParams::default());
    assert_eq!(
        packets,
        [BitmapPacket::Compressed(CompressedBitmap {
            first_run_set: true,
            pad_bits: 3,
            code: vec![0x7f, 0xc5, 0x1e, 0x00],
        })],
        "bitmap packet format changed"
    );
    assert_eq!(back, masked(&words, 16374));
}

#[test]
fn golden_stats_line() {
    let words = vec![0u64; 1000];
    let mut tx = BitmapSender::new(&words, 64_000, XferParams::default()).unwrap();
    let packets: Vec<_> = tx.by_ref().collect();
    assert_eq!(packets.len(), 1);
    assert_eq!(
        tx.stats().log_line("send", 1000, &XferParams::default()).as_deref(),
        Some("send bitmap stats [Bytes(packets)]: plain 0(0), RLE 21(1), total 21; compression: 99.8%")
    );
    // Incompressible: DRBD prints nothing.
    let noise = vec![0x5555_5555_5555_5555u64; 1000];
    let mut tx = BitmapSender::new(&noise, 64_000, XferParams::default()).unwrap();
    tx.by_ref().for_each(drop);
    assert_eq!(
        tx.stats().log_line("send", 1000, &XferParams::default()),
        None
    );
    assert_eq!(tx.stats().plain_packets, 3);
}

#[test]
fn empty_bitmap_is_one_empty_plain_packet() {
    let (packets, back) = transfer(&[], 0, XferParams::default());
    assert_eq!(
        packets,
        [BitmapPacket::Plain(PlainBitmap { words: vec![] })]
    );
    assert!(back.is_empty());
}

#[test]
fn incompressible_goes_plain_and_ends_with_an_empty_packet() {
    let words = vec![0x5555_5555_5555_5555u64; 1000];
    let (packets, back) = transfer(&words, 64_000, XferParams::default());
    let sizes: Vec<usize> = packets
        .iter()
        .map(|p| match p {
            BitmapPacket::Plain(p) => p.words.len(),
            BitmapPacket::Compressed(_) => panic!("noise compressed"),
        })
        .collect();
    assert_eq!(sizes, [510, 490, 0]);
    assert_eq!(back, words);
    // With the 8-byte header a packet holds 511 words.
    let (packets, _) = transfer(&words, 64_000, XferParams::for_protocol(96, true));
    assert!(matches!(&packets[0], BitmapPacket::Plain(p) if p.words.len() == 511));
}

#[test]
fn rle_off_sends_only_plain() {
    let words = vec![0u64; 100];
    for params in [
        XferParams::for_protocol(101, false),
        XferParams::for_protocol(89, true),
    ] {
        let (packets, back) = transfer(&words, 6400, params);
        assert_eq!(packets.len(), 2);
        assert!(packets.iter().all(|p| matches!(p, BitmapPacket::Plain(_))));
        assert_eq!(back, words);
    }
}

#[test]
fn plain_after_rle_restarts_at_the_word_boundary() {
    // 3 zero bits then noise: RLE from bit 0 is not worth it -> plain from word 0. Later a long
    // zero stretch compresses; the compressed packet ends at the bitmap's end.
    let mut words = vec![0x5555_5555_5555_5555u64; 600];
    words.extend(std::iter::repeat_n(0, 5000));
    let bm_bits = words.len() as u64 * 64 - 10;
    let (packets, back) = transfer(&words, bm_bits, XferParams::default());
    assert!(matches!(&packets[0], BitmapPacket::Plain(p) if p.words.len() == 510));
    assert!(matches!(packets.last(), Some(BitmapPacket::Compressed(_))));
    assert_eq!(back, masked(&words, bm_bits));
}

#[test]
fn receiver_ors_and_ignores_surplus_bits() {
    let mut words = vec![0u64; 4];
    words[1] = 0xF0;
    words[3] = u64::MAX; // bits past bm_bits = 200 must not arrive
    let params = XferParams::for_protocol(101, false);
    let packets = bitmap_packets(&words, 200, params).unwrap();
    assert!(matches!(&packets[0], BitmapPacket::Plain(p) if p.words[3] == 0xFF));
    let mut own = vec![0u64; 4];
    own[0] = 1;
    let mut rx = BitmapReceiver::new(own, 200, params).unwrap();
    // A sender that does not mask: the receiver masks.
    let unmasked = BitmapPacket::Plain(PlainBitmap {
        words: words.clone(),
    });
    assert_eq!(rx.receive(&unmasked), Ok(Progress::More));
    assert_eq!(
        rx.receive(&BitmapPacket::Plain(PlainBitmap::default())),
        Ok(Progress::Complete)
    );
    assert_eq!(rx.words(), [1, 0xF0, 0, 0xFF]);
}

#[test]
fn receiver_refuses_bad_packets() {
    let params = XferParams::default();
    let mut rx = BitmapReceiver::new(vec![0; 10], 640, params).unwrap();
    assert_eq!(
        rx.receive(&BitmapPacket::Plain(PlainBitmap { words: vec![0; 9] })),
        Err(BitmapXferError::PlainSizeMismatch {
            word_offset: 0,
            want: 10,
            got: 9
        })
    );
    // A set run past the end.
    let (too_long, _) = CompressedBitmap::encode_runs(true, &[641], 100).unwrap();
    assert!(matches!(
        rx.receive(&BitmapPacket::Compressed(too_long)),
        Err(BitmapXferError::Wire(_))
    ));
    // A clear run past the end.
    let (too_long, _) = CompressedBitmap::encode_runs(false, &[700], 100).unwrap();
    assert!(matches!(
        rx.receive(&BitmapPacket::Compressed(too_long)),
        Err(BitmapXferError::Wire(_))
    ));
    let empty = CompressedBitmap::default();
    assert_eq!(
        rx.receive(&BitmapPacket::Compressed(empty)),
        Err(BitmapXferError::CompressedEmpty)
    );
    let huge = CompressedBitmap {
        code: vec![0; 4090],
        ..Default::default()
    };
    assert!(matches!(
        rx.receive(&BitmapPacket::Compressed(huge)),
        Err(BitmapXferError::CompressedTooLarge { .. })
    ));
    // Complete, then one more packet.
    let (all, _) = CompressedBitmap::encode_runs(true, &[640], 100).unwrap();
    assert_eq!(
        rx.receive(&BitmapPacket::Compressed(all.clone())),
        Ok(Progress::Complete)
    );
    assert_eq!(
        rx.receive(&BitmapPacket::Compressed(all)),
        Err(BitmapXferError::AlreadyComplete)
    );
    assert!(BitmapSender::new(&[0; 2], 129, params).is_err());
    assert!(BitmapReceiver::new(vec![0; 2], 129, params).is_err());
}

/// A bitmap built from segments of zeros, ones and noise, so that transfers switch between
/// plain and compressed packets.
fn bitmap() -> impl Strategy<Value = (Vec<u64>, u64)> {
    let segment = prop_oneof![
        (1usize..800).prop_map(|n| vec![0u64; n]),
        (1usize..800).prop_map(|n| vec![u64::MAX; n]),
        proptest::collection::vec(any::<u64>(), 1..700),
        proptest::collection::vec(
            prop_oneof![Just(0u64), Just(1u64 << 40), Just(0xFF00)],
            1..300
        ),
    ];
    (proptest::collection::vec(segment, 0..6), 0u64..64).prop_map(|(segs, cut)| {
        let words: Vec<u64> = segs.concat();
        let bits = (words.len() as u64 * 64).saturating_sub(cut);
        (words, bits)
    })
}

fn through_wire(p: BitmapPacket, header_bytes: usize) -> BitmapPacket {
    let command = match p {
        BitmapPacket::Plain(_) => Command::Bitmap,
        BitmapPacket::Compressed(_) => Command::CompressedBitmap,
    };
    let mut bytes = Vec::new();
    p.clone().into_packet().encode_payload(&mut bytes).unwrap();
    assert_eq!(bytes.len(), p.payload_bytes());
    assert!(bytes.len() + header_bytes <= DRBD_SOCKET_BUFFER_SIZE);
    match Packet::decode(command, Bytes::from(bytes)).unwrap() {
        Packet::Bitmap(b) => BitmapPacket::Plain(b),
        Packet::CompressedBitmap(c) => BitmapPacket::Compressed(c),
        other => panic!("decoded as {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any bitmap survives the packet sequence (through the wire codec), merged into any
    /// existing bitmap as an OR, for both header sizes and with RLE on or off.
    #[test]
    fn round_trip((words, bm_bits) in bitmap(), own_seed: u64, h80: bool, rle: bool) {
        let params = XferParams::for_protocol(if h80 { 96 } else { 101 }, rle);
        let own: Vec<u64> = (0..words.len() as u64).map(|i| own_seed.rotate_left(i as u32) & 0x0101_0000_8000_0001).collect();
        let mut rx = BitmapReceiver::new(own.clone(), bm_bits, params).unwrap();
        let mut n = 0;
        for p in BitmapSender::new(&words, bm_bits, params).unwrap() {
            prop_assert!(!rx.is_complete());
            let p = through_wire(p, params.header_bytes);
            if let BitmapPacket::Plain(ref p) = p {
                prop_assert!(p.words.len() <= params.plain_words_per_packet());
            }
            rx.receive(&p).unwrap();
            n += 1;
        }
        prop_assert!(rx.is_complete(), "{} packets, not complete", n);
        let want: Vec<u64> = masked(&words, bm_bits).iter().zip(&own).map(|(a, b)| a | b).collect();
        prop_assert_eq!(rx.into_words(), want);
    }
}

#[test]
fn rle_fallback_rewinds_to_the_word_holding_the_offset() {
    // As if a compressed packet had ended at bit 100 and noise follows.
    let words = vec![0x5555_5555_5555_5555u64; 4];
    let mut tx = BitmapSender::new(&words, 256, XferParams::default()).unwrap();
    tx.bit_offset = 100;
    tx.word_offset = 1;
    let next = tx.next().unwrap();
    assert_eq!(
        next,
        BitmapPacket::Plain(PlainBitmap {
            words: words[1..].to_vec()
        })
    );
    // The receiver, after a compressed packet ending at bit 100, expects the same 3 words.
    let mut rx = BitmapReceiver::new(vec![0; 4], 256, XferParams::default()).unwrap();
    let (first, _) = CompressedBitmap::encode_runs(false, &[100], 100).unwrap();
    assert_eq!(
        rx.receive(&BitmapPacket::Compressed(first)),
        Ok(Progress::More)
    );
    assert_eq!(rx.receive(&next), Ok(Progress::More));
    assert_eq!(rx.words()[1..], words[1..]);
}
