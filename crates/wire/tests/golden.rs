//! Golden byte vectors: real bytes captured from a kernel DRBD 8.4.11 peer (tests/kernel-peer),
//! and bytes built by hand from the C struct layouts in drbd_protocol.h. A failure here means the
//! wire format changed: that breaks compatibility with DRBD, so fix the code, not the vector.

use bytes::Bytes;
use rdbd_types::{ConnState, DiskState, Protocol, Role};
use rdbd_wire::auth::{auth_response, verify_response, CramHmacAlg};
use rdbd_wire::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn h100(cmd: u16, len: u32) -> Vec<u8> {
    let mut v = hex("8620ec20 0000");
    v.extend_from_slice(&cmd.to_be_bytes());
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[0; 4]);
    v
}

/// Decodes `bytes` as exactly one frame, checks it equals `frame`, and that encoding `frame`
/// gives `bytes` back.
fn check(bytes: &[u8], frame: &Frame) {
    let (decoded, used) = decode_frame(bytes, &Limits::default())
        .unwrap()
        .expect("complete frame");
    assert_eq!(
        used,
        bytes.len(),
        "{}: frame length",
        frame.packet.command()
    );
    assert_eq!(
        &decoded,
        frame,
        "{}: decoded value changed",
        frame.packet.command()
    );
    assert_eq!(
        frame.to_bytes().unwrap(),
        bytes,
        "{}: wire format changed",
        frame.packet.command()
    );
}

fn f100(packet: Packet) -> Frame {
    Frame::new(HeaderKind::H100, packet)
}

// ---- captured from the kernel peer (6.1.0-56-cloud-amd64, DRBD 8.4.11) ----

#[test]
fn kernel_initial_data() {
    check(
        &hex("83740267 fff2 0000"),
        &Frame::new(HeaderKind::H80, Packet::InitialData),
    );
}

#[test]
fn kernel_connection_features() {
    let mut bytes = hex("83740267 fffe 0048  00000056 0000000f 00000065");
    bytes.resize(8 + 72, 0);
    let kernel = ConnectionFeatures {
        protocol_min: 86,
        feature_flags: FF_TRIM | FF_THIN_RESYNC | FF_WSAME | FF_WZEROES,
        protocol_max: 101,
    };
    check(
        &bytes,
        &Frame::new(HeaderKind::H80, Packet::ConnectionFeatures(kernel)),
    );
    let ours = ConnectionFeatures {
        protocol_min: PROTOCOL_VERSION,
        feature_flags: 0,
        protocol_max: PROTOCOL_VERSION,
    };
    assert_eq!(ours.agree(&kernel), Some(101));
    let old = ConnectionFeatures {
        protocol_min: 86,
        feature_flags: 0,
        protocol_max: 96,
    };
    assert_eq!(ours.agree(&old), None);
}

#[test]
fn kernel_auth_challenge_and_response() {
    // The kernel answered our challenge 01 02 .. 40 (secret "kp-secret", sha1) with this response,
    // and accepted ours ("Peer authenticated using 20 bytes HMAC").
    let challenge: Vec<u8> = (1..=64).collect();
    let mut bytes = h100(0x10, 64);
    bytes.extend_from_slice(&challenge);
    check(&bytes, &f100(Packet::AuthChallenge(challenge.clone())));
    let response = hex("88cbf3a3a891f527350ee49088ed89551db12085");
    let mut bytes = h100(0x11, 20);
    bytes.extend_from_slice(&response);
    check(&bytes, &f100(Packet::AuthResponse(response.clone())));
    assert_eq!(
        auth_response(CramHmacAlg::Sha1, b"kp-secret", &challenge),
        response,
        "cram-hmac changed"
    );
    assert!(verify_response(
        CramHmacAlg::Sha1,
        b"kp-secret",
        &challenge,
        &response
    ));
}

#[test]
fn kernel_protocol() {
    let bytes = hex("8620ec20 0000 000b 00000019 00000000  00000003 00000000 00000000 00000000 00000000 00000000 00");
    let p = ProtocolParams {
        protocol: Protocol::C,
        after_sb_0p: AfterSbPolicy::Disconnect,
        after_sb_1p: AfterSbPolicy::Disconnect,
        after_sb_2p: AfterSbPolicy::Disconnect,
        conn_flags: 0,
        two_primaries: false,
        integrity_alg: String::new(),
    };
    check(&bytes, &f100(Packet::Protocol(p)));
}

#[test]
fn kernel_sync_param89() {
    let mut bytes = h100(0x23, 148);
    bytes.extend_from_slice(&hex("000000fa"));
    bytes.resize(bytes.len() + 128, 0);
    bytes.extend_from_slice(&hex("00000014 0000000a 00000064 00019000"));
    let s = SyncParams {
        resync_rate_kib: 250,
        verify_alg: String::new(),
        csums_alg: String::new(),
        c_plan_ahead_ds: 20,
        c_delay_target_ds: 10,
        c_fill_target_sectors: 100,
        c_max_rate_kib: 102400,
    };
    check(&bytes, &f100(Packet::SyncParam89(s)));
}

#[test]
fn kernel_sizes_uuids_state_ping() {
    let mut bytes = h100(0x0d, 32);
    bytes.extend_from_slice(&hex(
        "000000000001ffb0 0000000000000000 000000000001ffb0 00100000 0000 0000",
    ));
    let sizes = Sizes {
        backing_sectors: 130992,
        user_sectors: 0,
        current_sectors: 130992,
        max_bio_size_bytes: 1 << 20,
        queue_order_type: 0,
        dds_flags: 0,
        queue_limits: None,
    };
    check(&bytes, &f100(Packet::Sizes(sizes)));

    let mut bytes = h100(0x0c, 48);
    bytes.extend_from_slice(&hex(
        "0000000000000004 0000000000000000 0000000000000000 0000000000000000 0000000000003ff6 0000000000000000",
    ));
    let uuids = Uuids {
        current: 4,
        bitmap: 0,
        history: [0, 0],
        dirty_bits: 16374,
        flags: 0,
    };
    check(&bytes, &f100(Packet::Uuids(uuids)));

    let mut bytes = h100(0x0e, 4);
    bytes.extend_from_slice(&hex("0000c882"));
    let state = DrbdState {
        role: Role::Secondary,
        peer: Role::Unknown,
        conn: ConnState::WFConnection,
        disk: DiskState::Inconsistent,
        pdsk: DiskState::DUnknown,
        susp: false,
        aftr_isp: false,
        peer_isp: false,
        user_isp: false,
        susp_nod: false,
        susp_fen: false,
    };
    check(&bytes, &f100(Packet::State(state)));

    check(&h100(0x13, 0), &f100(Packet::Ping));

    // After the handshake with rdbd (tests/tests/kernel_peer_smoke.rs): Connected,
    // Secondary/Secondary, Inconsistent/Inconsistent.
    let mut bytes = h100(0x0e, 4);
    bytes.extend_from_slice(&hex("000088aa"));
    let connected = DrbdState {
        peer: Role::Secondary,
        conn: ConnState::Connected,
        pdsk: DiskState::Inconsistent,
        ..state
    };
    check(&bytes, &f100(Packet::State(connected)));
}

// ---- built by hand from drbd_protocol.h ----

#[test]
fn data_packets() {
    let mut bytes = h100(0x00, 24 + 8);
    // p_data: sector 8, block_id 0x1122334455667788, seq_num 5, dp_flags SEND_WRITE_ACK|FUA (0x110)
    bytes.extend_from_slice(&hex("0000000000000008 1122334455667788 00000005 00000110"));
    bytes.extend_from_slice(b"abcdefgh");
    let header = DataHeader {
        sector: 8,
        block_id: 0x1122_3344_5566_7788,
        seq_num: 5,
        dp_flags: DpFlags::SEND_WRITE_ACK | DpFlags::FUA,
    };
    let data = DataPacket {
        header,
        payload: Bytes::from_static(b"abcdefgh"),
    };
    check(&bytes, &f100(Packet::Data(data.clone())));
    bytes[7] = 0x01;
    check(&bytes, &f100(Packet::DataReply(data.clone())));
    bytes[7] = 0x02;
    check(&bytes, &f100(Packet::RsDataReply(data.clone())));
    let (digest, rest) = data.split_digest(3).unwrap();
    assert_eq!((&digest[..], &rest[..]), (&b"abc"[..], &b"defgh"[..]));

    let mut bytes = h100(0x31, 28);
    bytes.extend_from_slice(&hex(
        "0000000000000010 0000000000000001 00000000 00000040 00010000",
    ));
    let trim = TrimPacket {
        header: DataHeader {
            sector: 16,
            block_id: 1,
            seq_num: 0,
            dp_flags: DpFlags::DISCARD,
        },
        size_bytes: 65536,
    };
    check(&bytes, &f100(Packet::Trim(trim)));
    bytes[7] = 0x36;
    check(&bytes, &f100(Packet::Zeroes(trim)));
}

#[test]
fn block_requests_and_acks() {
    let req = BlockRequest {
        sector: 0x100,
        block_id: ID_SYNCER,
        size_bytes: 4096,
    };
    let req_bytes = hex("0000000000000100 ffffffffffffffff 00001000 00000000");
    for (cmd, packet) in [
        (0x08u16, Packet::DataRequest(req)),
        (0x09, Packet::RsDataRequest(req)),
        (0x1e, Packet::OvRequest(req)),
        (0x32, Packet::RsThinReq(req)),
    ] {
        let mut bytes = h100(cmd, 24);
        bytes.extend_from_slice(&req_bytes);
        check(&bytes, &f100(packet));
    }
    let digest = hex("0102030405060708090a0b0c0d0e0f1011121314");
    for (cmd, packet) in [
        (
            0x21u16,
            Packet::CsumRsRequest(DigestRequest {
                request: req,
                digest: digest.clone(),
            }),
        ),
        (
            0x1f,
            Packet::OvReply(DigestRequest {
                request: req,
                digest: digest.clone(),
            }),
        ),
    ] {
        let mut bytes = h100(cmd, 44);
        bytes.extend_from_slice(&req_bytes);
        bytes.extend_from_slice(&digest);
        check(&bytes, &f100(packet));
    }

    let ack = BlockAck {
        sector: 0x200,
        block_id: ID_OUT_OF_SYNC,
        size_bytes: 4096,
        seq_num: 9,
    };
    let ack_bytes = hex("0000000000000200 0000000000001268 00001000 00000009");
    type MakeAck = fn(BlockAck) -> Packet;
    let acks: [(u16, MakeAck); 11] = [
        (0x15, Packet::RecvAck),
        (0x16, Packet::WriteAck),
        (0x17, Packet::RsWriteAck),
        (0x18, Packet::Superseded),
        (0x19, Packet::NegAck),
        (0x1a, Packet::NegDReply),
        (0x1b, Packet::NegRsDReply),
        (0x20, Packet::OvResult),
        (0x22, Packet::RsIsInSync),
        (0x29, Packet::RsCancel),
        (0x2c, Packet::RetryWrite),
    ];
    for (cmd, make) in acks {
        let mut bytes = h100(cmd, 24);
        bytes.extend_from_slice(&ack_bytes);
        check(&bytes, &f100(make(ack)));
    }

    let desc = BlockDesc {
        sector: 0x300,
        size_bytes: 0x8000,
    };
    for (cmd, packet) in [
        (0x28u16, Packet::OutOfSync(desc)),
        (0x33, Packet::RsDeallocated(desc)),
    ] {
        let mut bytes = h100(cmd, 16);
        bytes.extend_from_slice(&hex("0000000000000300 00008000 00000000"));
        check(&bytes, &f100(packet));
    }
}

#[test]
fn epochs_states_and_small_packets() {
    let mut bytes = h100(0x03, 8);
    bytes.extend_from_slice(&hex("deadbeef 00000000"));
    check(
        &bytes,
        &f100(Packet::Barrier(Barrier {
            barrier: 0xdead_beef,
        })),
    );
    let mut bytes = h100(0x1c, 8);
    bytes.extend_from_slice(&hex("deadbeef 00000011"));
    check(
        &bytes,
        &f100(Packet::BarrierAck(BarrierAck {
            barrier: 0xdead_beef,
            set_size: 17,
        })),
    );

    // NS(role, R_PRIMARY): mask 0x3, val 0x1.
    let change = StateChange::new().role(Role::Primary);
    let mut bytes = h100(0x12, 8);
    bytes.extend_from_slice(&hex("00000003 00000001"));
    check(&bytes, &f100(Packet::StateChgReq(change)));
    // NS(conn, C_DISCONNECTING): mask 31 << 4, val 1 << 4.
    let change = StateChange::new().conn(ConnState::Disconnecting);
    let mut bytes = h100(0x2a, 8);
    bytes.extend_from_slice(&hex("000001f0 00000010"));
    check(&bytes, &f100(Packet::ConnStChgReq(change)));
    let mut bytes = h100(0x1d, 4);
    bytes.extend_from_slice(&hex("fffffff6"));
    check(
        &bytes,
        &f100(Packet::StateChgReply(StateChangeReply { retcode: -10 })),
    );
    let mut bytes = h100(0x2b, 4);
    bytes.extend_from_slice(&hex("00000001"));
    check(
        &bytes,
        &f100(Packet::ConnStChgReply(StateChangeReply { retcode: 1 })),
    );

    let mut bytes = h100(0x0f, 8);
    bytes.extend_from_slice(&hex("0001000000000004"));
    check(
        &bytes,
        &f100(Packet::SyncUuid {
            uuid: 0x0001_0000_0000_0004,
        }),
    );
    let mut bytes = h100(0x27, 8);
    bytes.extend_from_slice(&hex("00000007 000003e8"));
    check(
        &bytes,
        &f100(Packet::DelayProbe(DelayProbe {
            seq_num: 7,
            offset_us: 1000,
        })),
    );

    check(&h100(0x14, 0), &f100(Packet::PingAck));
    check(&h100(0x07, 0), &f100(Packet::UnplugRemote));
    check(
        &hex("83740267 fff1 0000"),
        &Frame::new(HeaderKind::H80, Packet::InitialMeta),
    );

    // Volume 2 in an h100 header.
    let mut bytes = hex("8620ec20 0002 0013 00000000 00000000");
    let frame = Frame {
        kind: HeaderKind::H100,
        volume: 2,
        packet: Packet::Ping,
    };
    check(&bytes, &frame);
    bytes[15] = 1;
    assert_eq!(
        decode_frame(&bytes, &Limits::default()),
        Err(WireError::HeaderPadNotZero { pad: 1 })
    );
}

#[test]
fn sizes_with_queue_limits_and_protocol_with_integrity_alg() {
    let mut bytes = h100(0x0d, 56);
    bytes.extend_from_slice(&hex(
        "0000000000100000 0000000000000000 0000000000000000 00020000 0000 0001 \
         00001000 00000200 00000000 00001000 00010000 01 00 00 00",
    ));
    let sizes = Sizes {
        backing_sectors: 0x10_0000,
        user_sectors: 0,
        current_sectors: 0,
        max_bio_size_bytes: 0x2_0000,
        queue_order_type: 0,
        dds_flags: DDSF_FORCED,
        queue_limits: Some(QueueLimits {
            physical_block_size_bytes: 4096,
            logical_block_size_bytes: 512,
            alignment_offset_bytes: 0,
            io_min_bytes: 4096,
            io_opt_bytes: 65536,
            discard_enabled: true,
            discard_zeroes_data: false,
            write_same_capable: false,
        }),
    };
    check(&bytes, &f100(Packet::Sizes(sizes)));

    // The kernel sends strlen + 1 bytes of integrity_alg: "crc32c" + NUL is 7 bytes.
    let mut bytes = h100(0x2d, 24 + 7);
    bytes.extend_from_slice(&hex(
        "00000002 00000006 00000007 0000000a 00000001 00000001",
    ));
    bytes.extend_from_slice(b"crc32c\0");
    let p = ProtocolParams {
        protocol: Protocol::B,
        after_sb_0p: AfterSbPolicy::DiscardRemote,
        after_sb_1p: AfterSbPolicy::Consensus,
        after_sb_2p: AfterSbPolicy::Violently,
        conn_flags: CF_DISCARD_MY_DATA,
        two_primaries: true,
        integrity_alg: "crc32c".into(),
    };
    check(&bytes, &f100(Packet::ProtocolUpdate(p.clone())));
    bytes[7] = 0x0b;
    check(&bytes, &f100(Packet::Protocol(p)));
}

#[test]
fn bitmaps() {
    let mut bytes = h100(0x04, 16);
    bytes.extend_from_slice(&hex("0100000000000080 ffffffffffffffff"));
    check(
        &bytes,
        &f100(Packet::Bitmap(PlainBitmap {
            words: vec![0x8000_0000_0000_0001, u64::MAX],
        })),
    );

    // 16374 set bits: encoding 0xb2 (first run set, 3 pad bits, RLE_VLI_Bits), code 7f c5 1e 00.
    let mut bytes = h100(0x24, 5);
    bytes.extend_from_slice(&hex("b2 7fc51e00"));
    let c = CompressedBitmap {
        first_run_set: true,
        pad_bits: 3,
        code: hex("7fc51e00"),
    };
    check(&bytes, &f100(Packet::CompressedBitmap(c.clone())));
    let mut words = vec![0u64; 256];
    assert_eq!(c.apply(&mut words, 16374, 0).unwrap(), 16374);
    assert_eq!(
        words.iter().map(|w| w.count_ones() as u64).sum::<u64>(),
        16374
    );
}

// ---- errors name the packet and the problem ----

#[test]
fn errors_are_specific() {
    let err = |bytes: &[u8]| {
        decode_frame(bytes, &Limits::default())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(err(&h100(0x25, 0)), "unknown command 0x0025");
    let mut short = h100(0x0d, 20);
    short.resize(16 + 20, 0);
    assert_eq!(err(&short), "short payload for P_SIZES: 20 bytes, need 32");
    let mut odd = h100(0x0d, 40);
    odd.resize(16 + 40, 0);
    assert_eq!(
        err(&odd),
        "P_SIZES: payload of 40 bytes is not a valid length (32, or 56 with o_qlim)"
    );
    assert_eq!(
        err(&h100(0x00, 2 << 20)),
        "P_DATA: length 2097152 exceeds limit 1052672"
    );
    assert_eq!(err(&h100(0x13, 4)), "P_PING: length 4 exceeds limit 0");
    assert_eq!(
        err(&h100(0x04, 8192)),
        "P_BITMAP: length 8192 exceeds limit 4096"
    );
    assert_eq!(
        err(&hex("12345678 0000 0000")),
        "bad header magic 0x12345678 (expected h80 0x83740267, h95 0x835a or h100 0x8620ec20)"
    );
    let mut bad_state = h100(0x0e, 4);
    bad_state.extend_from_slice(&hex("000001f2"));
    assert_eq!(err(&bad_state), "P_STATE: invalid conn 31");
    let mut bad_enc = h100(0x24, 2);
    bad_enc.extend_from_slice(&hex("0300"));
    assert_eq!(err(&bad_enc), "P_COMPRESSED_BITMAP: invalid encoding 3");
    let mut wsame = h100(0x34, 28);
    wsame.resize(16 + 28, 0);
    assert_eq!(err(&wsame), "unsupported command P_WSAME (0x0034)");
    let mut proto = h100(0x0b, 24);
    proto.extend_from_slice(&hex(
        "00000004 00000000 00000000 00000000 00000000 00000000",
    ));
    assert_eq!(err(&proto), "P_PROTOCOL: invalid protocol 4");
}

#[test]
fn encode_errors() {
    let big = DataPacket {
        header: DataHeader::default(),
        payload: Bytes::from(vec![0u8; 70_000]),
    };
    let e = Frame::new(HeaderKind::H80, Packet::Data(big.clone()))
        .to_bytes()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "P_DATA: payload of 70024 bytes does not fit an h80 header (at most 65535)"
    );
    assert!(Frame::new(HeaderKind::H100, Packet::Data(big))
        .to_bytes()
        .is_ok());
    let s = SyncParams {
        verify_alg: "x".repeat(64),
        ..SyncParams::default()
    };
    let e = Frame::new(HeaderKind::H100, Packet::SyncParam89(s))
        .to_bytes()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "P_SYNC_PARAM89: verify_alg of 64 bytes does not fit (at most 63)"
    );
    let e = Frame::new(HeaderKind::H100, Packet::AuthChallenge(vec![1; 10]))
        .to_bytes()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "short payload for P_AUTH_CHALLENGE: 10 bytes, need 64"
    );
}
