//! Property tests: every packet survives encode -> decode (whole, and fed to the stream decoder in
//! random pieces), random bytes never panic the decoders, and bitmaps survive RLE in any split.

use bytes::Bytes;
use proptest::prelude::*;
use rdbd_types::{ConnState, DiskState, Protocol, Role};
use rdbd_wire::*;

fn alg_name() -> impl Strategy<Value = String> + Clone {
    "[a-z0-9()-]{0,63}"
}

fn data_header() -> impl Strategy<Value = DataHeader> + Clone {
    (any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>()).prop_map(
        |(sector, block_id, seq_num, f)| DataHeader {
            sector,
            block_id,
            seq_num,
            dp_flags: DpFlags(f),
        },
    )
}

fn block_request() -> impl Strategy<Value = BlockRequest> + Clone {
    (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(sector, block_id, size_bytes)| {
        BlockRequest {
            sector,
            block_id,
            size_bytes,
        }
    })
}

fn block_ack() -> impl Strategy<Value = BlockAck> + Clone {
    (any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>()).prop_map(
        |(sector, block_id, size_bytes, seq_num)| BlockAck {
            sector,
            block_id,
            size_bytes,
            seq_num,
        },
    )
}

fn block_desc() -> impl Strategy<Value = BlockDesc> + Clone {
    (any::<u64>(), any::<u32>()).prop_map(|(sector, size_bytes)| BlockDesc { sector, size_bytes })
}

fn state() -> impl Strategy<Value = DrbdState> + Clone {
    (
        (
            0..Role::ALL.len(),
            0..Role::ALL.len(),
            0..ConnState::ALL.len(),
        ),
        (0..DiskState::ALL.len(), 0..DiskState::ALL.len()),
        proptest::array::uniform6(any::<bool>()),
    )
        .prop_map(|((r, p, c), (d, pd), f)| DrbdState {
            role: Role::ALL[r],
            peer: Role::ALL[p],
            conn: ConnState::ALL[c],
            disk: DiskState::ALL[d],
            pdsk: DiskState::ALL[pd],
            susp: f[0],
            aftr_isp: f[1],
            peer_isp: f[2],
            user_isp: f[3],
            susp_nod: f[4],
            susp_fen: f[5],
        })
}

fn asb() -> impl Strategy<Value = AfterSbPolicy> + Clone {
    (0u32..=10).prop_map(|v| AfterSbPolicy::from_u32(v).unwrap())
}

fn protocol() -> impl Strategy<Value = ProtocolParams> + Clone {
    (
        0..3usize,
        asb(),
        asb(),
        asb(),
        any::<u32>(),
        any::<bool>(),
        alg_name(),
    )
        .prop_map(
            |(
                p,
                after_sb_0p,
                after_sb_1p,
                after_sb_2p,
                conn_flags,
                two_primaries,
                integrity_alg,
            )| ProtocolParams {
                protocol: Protocol::ALL[p],
                after_sb_0p,
                after_sb_1p,
                after_sb_2p,
                conn_flags,
                two_primaries,
                integrity_alg,
            },
        )
}

fn sizes() -> impl Strategy<Value = Sizes> + Clone {
    let qlim = (
        proptest::array::uniform5(any::<u32>()),
        proptest::array::uniform3(any::<bool>()),
    )
        .prop_map(|(v, b)| QueueLimits {
            physical_block_size_bytes: v[0],
            logical_block_size_bytes: v[1],
            alignment_offset_bytes: v[2],
            io_min_bytes: v[3],
            io_opt_bytes: v[4],
            discard_enabled: b[0],
            discard_zeroes_data: b[1],
            write_same_capable: b[2],
        });
    (
        proptest::array::uniform3(any::<u64>()),
        any::<u32>(),
        any::<u16>(),
        any::<u16>(),
        proptest::option::of(qlim),
    )
        .prop_map(|(s, max_bio, q, dds, queue_limits)| Sizes {
            backing_sectors: s[0],
            user_sectors: s[1],
            current_sectors: s[2],
            max_bio_size_bytes: max_bio,
            queue_order_type: q,
            dds_flags: dds,
            queue_limits,
        })
}

fn packet() -> impl Strategy<Value = Packet> + Clone {
    let data = (
        data_header(),
        proptest::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(|(header, d)| DataPacket {
            header,
            payload: Bytes::from(d),
        });
    let digest = (
        block_request(),
        proptest::collection::vec(any::<u8>(), 1..=64),
    )
        .prop_map(|(request, digest)| DigestRequest { request, digest });
    let trim = (data_header(), any::<u32>())
        .prop_map(|(header, size_bytes)| TrimPacket { header, size_bytes });
    let change = (any::<u32>(), any::<u32>()).prop_map(|(m, v)| StateChange {
        mask: StateBits(m),
        val: StateBits(v),
    });
    let sync = (
        any::<u32>(),
        alg_name(),
        alg_name(),
        proptest::array::uniform4(any::<u32>()),
    )
        .prop_map(|(rate, verify_alg, csums_alg, c)| SyncParams {
            resync_rate_kib: rate,
            verify_alg,
            csums_alg,
            c_plan_ahead_ds: c[0],
            c_delay_target_ds: c[1],
            c_fill_target_sectors: c[2],
            c_max_rate_kib: c[3],
        });
    let compressed = (
        any::<bool>(),
        proptest::collection::vec(1u64..100_000, 0..200),
    )
        .prop_map(|(first, runs)| CompressedBitmap::encode_runs(first, &runs, 4000).unwrap().0);
    prop_oneof![
        data.clone().prop_map(Packet::Data),
        data.clone().prop_map(Packet::DataReply),
        data.prop_map(Packet::RsDataReply),
        any::<u32>().prop_map(|barrier| Packet::Barrier(Barrier { barrier })),
        (any::<u32>(), any::<u32>())
            .prop_map(|(barrier, set_size)| Packet::BarrierAck(BarrierAck { barrier, set_size })),
        proptest::collection::vec(any::<u64>(), 0..=512)
            .prop_map(|words| Packet::Bitmap(PlainBitmap { words })),
        compressed.prop_map(Packet::CompressedBitmap),
        block_request().prop_map(Packet::DataRequest),
        block_request().prop_map(Packet::RsDataRequest),
        block_request().prop_map(Packet::OvRequest),
        block_request().prop_map(Packet::RsThinReq),
        digest.clone().prop_map(Packet::CsumRsRequest),
        digest.prop_map(Packet::OvReply),
        protocol().prop_map(Packet::Protocol),
        protocol().prop_map(Packet::ProtocolUpdate),
        sync.prop_map(Packet::SyncParam89),
        (proptest::array::uniform6(any::<u64>())).prop_map(|u| Packet::Uuids(Uuids {
            current: u[0],
            bitmap: u[1],
            history: [u[2], u[3]],
            dirty_bits: u[4],
            flags: u[5]
        })),
        sizes().prop_map(Packet::Sizes),
        state().prop_map(Packet::State),
        any::<u64>().prop_map(|uuid| Packet::SyncUuid { uuid }),
        proptest::collection::vec(any::<u8>(), 64..=128).prop_map(Packet::AuthChallenge),
        proptest::collection::vec(any::<u8>(), 1..=64).prop_map(Packet::AuthResponse),
        change.clone().prop_map(Packet::StateChgReq),
        change.prop_map(Packet::ConnStChgReq),
        any::<i32>().prop_map(|retcode| Packet::StateChgReply(StateChangeReply { retcode })),
        any::<i32>().prop_map(|retcode| Packet::ConnStChgReply(StateChangeReply { retcode })),
        Just(Packet::Ping),
        Just(Packet::PingAck),
        Just(Packet::UnplugRemote),
        Just(Packet::InitialData),
        Just(Packet::InitialMeta),
        block_ack().prop_map(Packet::RecvAck),
        block_ack().prop_map(Packet::WriteAck),
        block_ack().prop_map(Packet::RsWriteAck),
        block_ack().prop_map(Packet::Superseded),
        block_ack().prop_map(Packet::NegAck),
        block_ack().prop_map(Packet::NegDReply),
        block_ack().prop_map(Packet::NegRsDReply),
        block_ack().prop_map(Packet::OvResult),
        block_ack().prop_map(Packet::RsIsInSync),
        block_ack().prop_map(Packet::RsCancel),
        block_ack().prop_map(Packet::RetryWrite),
        (any::<u32>(), any::<u32>())
            .prop_map(|(seq_num, offset_us)| Packet::DelayProbe(DelayProbe { seq_num, offset_us })),
        block_desc().prop_map(Packet::OutOfSync),
        block_desc().prop_map(Packet::RsDeallocated),
        trim.clone().prop_map(Packet::Trim),
        trim.prop_map(Packet::Zeroes),
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
            |(protocol_min, feature_flags, protocol_max)| {
                Packet::ConnectionFeatures(ConnectionFeatures {
                    protocol_min,
                    feature_flags,
                    protocol_max,
                })
            }
        ),
    ]
}

fn frame() -> impl Strategy<Value = Frame> + Clone {
    (packet(), any::<u16>(), 0..3u8).prop_map(|(packet, volume, k)| match k {
        0 => Frame {
            kind: HeaderKind::H100,
            volume,
            packet,
        },
        1 => Frame {
            kind: HeaderKind::H95,
            volume: 0,
            packet,
        },
        _ => Frame {
            kind: HeaderKind::H80,
            volume: 0,
            packet,
        },
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_packet_round_trips(frame in frame()) {
        let bytes = frame.to_bytes().unwrap();
        let (decoded, used) = decode_frame(&bytes, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(decoded, frame);
    }

    #[test]
    fn stream_decoder_reassembles_any_split(frames in proptest::collection::vec(frame(), 1..8), cuts in proptest::collection::vec(1usize..300, 1..50)) {
        let mut stream = Vec::new();
        for f in &frames {
            f.encode(&mut stream).unwrap();
        }
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        let mut at = 0;
        let mut cut = cuts.iter().cycle();
        while at < stream.len() {
            let end = (at + cut.next().unwrap()).min(stream.len());
            decoder.feed(&stream[at..end]);
            at = end;
            while let Some(f) = decoder.next_frame().unwrap() {
                out.push(f);
            }
        }
        prop_assert_eq!(decoder.buffered_bytes(), 0);
        prop_assert_eq!(out, frames);
    }

    #[test]
    fn bulk_read_past_the_decoder_gives_the_same_frames(frames in proptest::collection::vec(frame(), 1..8), cuts in proptest::collection::vec(1usize..300, 1..50), min_bulk in 0usize..600) {
        // As the peer reader does: whenever a data packet's bulk is pending, its rest is
        // taken straight from the stream, not fed to the decoder.
        let mut stream = Vec::new();
        for f in &frames {
            f.encode(&mut stream).unwrap();
        }
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        let mut at = 0;
        let mut cut = cuts.iter().cycle();
        loop {
            while let Some(f) = decoder.next_frame().unwrap() {
                out.push(f);
            }
            if let Some((pending, prefix)) = decoder.take_pending_bulk(min_bulk).unwrap() {
                prop_assert!(pending.bulk_bytes() >= min_bulk.max(1));
                prop_assert!(prefix.len() < pending.bulk_bytes());
                let rest = pending.bulk_bytes() - prefix.len();
                let mut bulk = prefix.to_vec();
                bulk.extend_from_slice(&stream[at..at + rest]);
                at += rest;
                out.push(pending.finish(Bytes::from(bulk)).unwrap());
                continue;
            }
            if at == stream.len() {
                break;
            }
            let end = (at + cut.next().unwrap()).min(stream.len());
            decoder.feed(&stream[at..end]);
            at = end;
        }
        prop_assert_eq!(decoder.buffered_bytes(), 0);
        prop_assert_eq!(out, frames);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_frame(&bytes, &Limits::default());
        let mut d = Decoder::new();
        d.feed(&bytes);
        while let Ok(Some(_)) = d.next_frame() {}
        let mut d = Decoder::new();
        d.feed(&bytes);
        if let Ok(Some((pending, prefix))) = d.take_pending_bulk(0) {
            prop_assert!(prefix.len() < pending.bulk_bytes());
            prop_assert!(pending.finish(prefix).is_err(), "a short bulk must not make a frame");
        }
    }

    #[test]
    fn random_payloads_never_panic(cmd in any::<u16>(), h100 in any::<bool>(), payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut bytes = Vec::new();
        let kind = if h100 { HeaderKind::H100 } else { HeaderKind::H80 };
        Header { kind, volume: 0, command: cmd, length: payload.len() as u32 }.encode("test", &mut bytes).unwrap();
        bytes.extend_from_slice(&payload);
        if let Ok(Some((frame, _))) = decode_frame(&bytes, &Limits::default()) {
            // Whatever decodes must encode and decode to the same value.
            let again = frame.to_bytes().unwrap();
            let (back, _) = decode_frame(&again, &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(back, frame);
        }
        if let Some(Command::CompressedBitmap) = Command::from_u16(cmd) {
            if let Ok(Some((Frame { packet: Packet::CompressedBitmap(c), .. }, _))) = decode_frame(&bytes, &Limits::default()) {
                let mut words = vec![0u64; 64];
                let _ = c.apply(&mut words, 4096, 0);
            }
        }
    }

    #[test]
    fn bitmap_survives_rle_in_packets(words in proptest::collection::vec(
        prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), (0u32..64).prop_map(|s| u64::MAX << s)], 1..300),
        cut_bits in 0u64..64, max_code_bytes in 8usize..200) {
        let total_bits = words.len() as u64 * 64 - cut_bits;
        let mut back = vec![0u64; words.len()];
        let mut at = 0u64;
        // The sender's loop: RLE when it pays, plain words otherwise.
        while at < total_bits {
            match CompressedBitmap::from_bitmap(&words, total_bits, at, max_code_bytes).unwrap() {
                Some((c, next)) => {
                    prop_assert!(next > at);
                    let bytes = Frame::new(HeaderKind::H100, Packet::CompressedBitmap(c)).to_bytes().unwrap();
                    let Some((Frame { packet: Packet::CompressedBitmap(c), .. }, _)) = decode_frame(&bytes, &Limits::default()).unwrap() else {
                        panic!("not a compressed bitmap");
                    };
                    prop_assert_eq!(c.apply(&mut back, total_bits, at).unwrap(), next);
                    at = next;
                }
                None => {
                    let word = (at / 64) as usize;
                    let end = (word + 8).min(words.len());
                    back[word..end].copy_from_slice(&words[word..end]);
                    at = end as u64 * 64;
                }
            }
        }
        let mask_last = if cut_bits == 0 { u64::MAX } else { u64::MAX >> cut_bits };
        let mut expected = words.clone();
        *expected.last_mut().unwrap() &= mask_last;
        *back.last_mut().unwrap() &= mask_last;
        prop_assert_eq!(back, expected);
    }
}
