//! Transmission-phase tests over an in-memory pipe: every command, every
//! error path, pipelining, out-of-order replies, backpressure.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rdbd_nbd::proto::{
    chunk, cmd_flag, errno, parse_block_status_chunk, parse_error_chunk, Command, Request,
};
use rdbd_nbd::testing::{mem_export_info, MemDevice, MemExports};
use rdbd_nbd::{Extent, NbdError, ServerLimits};
use tokio::io::AsyncWriteExt;

const HOLE: u32 = 3;

async fn connect(
    size: u64,
    structured: bool,
    meta: bool,
) -> (TestClient<tokio::io::DuplexStream>, Arc<MemDevice>) {
    let (exports, device) = one_export(size);
    let (io, _server) = serve_duplex(exports, ServerLimits::default());
    let mut c = TestClient::greet(io, 3).await;
    c.go("disk", structured, meta).await;
    (c, device)
}

#[tokio::test]
async fn write_then_read_round_trips_with_simple_and_structured_replies() {
    for structured in [false, true] {
        let (mut c, device) = connect(MIB, structured, false).await;
        let data: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
        let w = c
            .call(Command::Write, cmd_flag::FUA, 4096, 65536, &data)
            .await;
        assert_eq!(w.error(), 0);
        assert_eq!(device.fua_count(), 1);
        let r = c.call(Command::Read, 0, 4096, 65536, &[]).await;
        assert_eq!(r.error(), 0);
        assert_eq!(r.data(), &data[..]);
        if structured {
            let Reply::Chunk { header, payload } = &r else {
                panic!("READ must get a structured reply")
            };
            assert_eq!(header.chunk_type, chunk::TYPE_OFFSET_DATA);
            assert_eq!(u64::from_be_bytes(payload[..8].try_into().unwrap()), 4096);
        }
        // Small reads are batched through the buffer: check those too.
        let r = c.call(Command::Read, 0, 4096 + 512, 512, &[]).await;
        assert_eq!(r.data(), &data[512..1024]);
        assert_eq!(&device.contents()[4096..4096 + 65536], &data[..]);
    }
}

#[tokio::test]
async fn flush_trim_zeroes_cache_and_block_status() {
    let (mut c, device) = connect(MIB, true, true).await;
    assert_eq!(
        c.call(Command::Write, 0, 0, 16384, &[0xaa; 16384])
            .await
            .error(),
        0
    );
    assert_eq!(c.call(Command::Flush, 0, 0, 0, &[]).await.error(), 0);
    assert_eq!(device.flush_count(), 1);
    assert_eq!(c.call(Command::Cache, 0, 0, 4096, &[]).await.error(), 0);

    let status = |r: Reply| {
        let Reply::Chunk { header, payload } = r else {
            panic!("BLOCK_STATUS needs a structured reply")
        };
        assert_eq!(header.chunk_type, chunk::TYPE_BLOCK_STATUS);
        parse_block_status_chunk(&payload).unwrap()
    };
    let (id, extents) = status(c.call(Command::BlockStatus, 0, 0, 65536, &[]).await);
    assert_eq!(id, 1, "the context id negotiated by SET_META_CONTEXT");
    assert_eq!(
        extents,
        [
            Extent {
                length: 16384,
                flags: 0
            },
            Extent {
                length: 49152,
                flags: HOLE
            }
        ]
    );

    assert_eq!(c.call(Command::Trim, 0, 0, 4096, &[]).await.error(), 0);
    assert_eq!(
        c.call(Command::WriteZeroes, cmd_flag::NO_HOLE, 8192, 4096, &[])
            .await
            .error(),
        0
    );
    assert_eq!(
        c.call(
            Command::WriteZeroes,
            cmd_flag::FAST_ZERO | cmd_flag::FUA,
            12288,
            4096,
            &[]
        )
        .await
        .error(),
        0
    );
    let (_, extents) = status(c.call(Command::BlockStatus, 0, 0, 65536, &[]).await);
    assert_eq!(
        extents,
        [
            Extent {
                length: 4096,
                flags: HOLE
            },
            Extent {
                length: 8192,
                flags: 0
            },
            Extent {
                length: 53248,
                flags: HOLE
            }
        ]
    );
    let (_, one) = status(
        c.call(Command::BlockStatus, cmd_flag::REQ_ONE, 0, 65536, &[])
            .await,
    );
    assert_eq!(
        one,
        [Extent {
            length: 4096,
            flags: HOLE
        }]
    );
    let contents = device.contents();
    assert!(
        contents[..4096].iter().all(|&b| b == 0) && contents[4096..8192].iter().all(|&b| b == 0xaa)
    );
    assert!(contents[8192..16384].iter().all(|&b| b == 0));
}

#[tokio::test]
async fn invalid_requests_get_the_spec_errors_and_the_connection_survives() {
    for structured in [false, true] {
        let (mut c, device) = connect(MIB, structured, false).await;
        let cases: Vec<(Command, u16, u64, u32, Vec<u8>, u32)> = vec![
            (Command::Read, 0, MIB - 512, 1024, vec![], errno::EINVAL),
            (Command::Read, 0, u64::MAX - 511, 512, vec![], errno::EINVAL),
            (
                Command::Write,
                0,
                MIB - 512,
                1024,
                vec![1; 1024],
                errno::ENOSPC,
            ),
            (Command::WriteZeroes, 0, MIB, 512, vec![], errno::ENOSPC),
            (Command::Trim, 0, MIB, 512, vec![], errno::EINVAL),
            (Command::Read, 0, 0, 0, vec![], errno::EINVAL),
            (Command::Write, 0, 0, 0, vec![], errno::EINVAL),
            (Command::Unknown(77), 0, 0, 512, vec![], errno::EINVAL),
            (
                Command::Read,
                cmd_flag::REQ_ONE,
                0,
                512,
                vec![],
                errno::EINVAL,
            ),
            (
                Command::Write,
                cmd_flag::NO_HOLE,
                0,
                512,
                vec![2; 512],
                errno::EINVAL,
            ),
            (Command::Read, 0, 100, 512, vec![], errno::EINVAL),
            (
                Command::Read,
                0,
                0,
                32 * 1024 * 1024 + 512,
                vec![],
                errno::EINVAL,
            ),
            (Command::BlockStatus, 0, 0, 512, vec![], errno::EINVAL),
        ];
        for (command, flags, offset, length, payload, expected) in cases {
            let reply = c.call(command, flags, offset, length, &payload).await;
            assert_eq!(
                reply.error(),
                expected,
                "{command} flags={flags} {offset}+{length}"
            );
            if structured {
                let Reply::Chunk { header, payload } = &reply else {
                    panic!("errors use ERROR chunks")
                };
                assert_eq!(header.chunk_type, chunk::TYPE_ERROR);
                assert!(
                    !parse_error_chunk(payload).unwrap().1.is_empty(),
                    "error chunk carries a message"
                );
            }
        }
        // Refused writes had their payload drained: the stream is still in sync.
        assert_eq!(
            c.call(Command::Write, 0, 0, 512, &[9; 512]).await.error(),
            0
        );
        assert_eq!(
            c.call(Command::Read, 0, 0, 512, &[]).await.data(),
            &[9u8; 512][..]
        );
        assert!(
            device.contents()[MIB as usize - 512..]
                .iter()
                .all(|&b| b == 0),
            "ENOSPC write must not land"
        );
    }
}

#[tokio::test]
async fn read_only_exports_refuse_writes_with_eperm() {
    let exports = MemExports::new();
    let mut info = mem_export_info(MIB);
    info.read_only = true;
    let device = Arc::new(MemDevice::new(MIB));
    exports.add("disk", info, device.clone());
    let (io, _server) = serve_duplex(Arc::new(exports), ServerLimits::default());
    let mut c = TestClient::greet(io, 1).await;
    c.go("disk", false, false).await;
    assert_eq!(
        c.call(Command::Write, 0, 0, 4096, &[5; 4096]).await.error(),
        errno::EPERM
    );
    assert_eq!(
        c.call(Command::Trim, 0, 0, 4096, &[]).await.error(),
        errno::EPERM
    );
    assert_eq!(
        c.call(Command::WriteZeroes, 0, 0, 4096, &[]).await.error(),
        errno::EPERM
    );
    assert_eq!(c.call(Command::Read, 0, 0, 4096, &[]).await.error(), 0);
    assert!(device.contents().iter().all(|&b| b == 0));
}

#[tokio::test]
async fn device_errors_reach_the_client() {
    let (mut c, device) = connect(MIB, false, false).await;
    device.fail_range(8192, 1);
    assert_eq!(
        c.call(Command::Read, 0, 8192, 512, &[]).await.error(),
        errno::EIO
    );
    assert_eq!(
        c.call(Command::Write, 0, 8192, 512, &[1; 512])
            .await
            .error(),
        errno::EIO
    );
    let r = c.call(Command::Read, 0, 0, 512, &[]).await;
    assert_eq!((r.error(), r.data().len()), (0, 512));

    let (mut c, device) = connect(MIB, true, false).await;
    device.fail_range(0, 1);
    let Reply::Chunk { header, payload } = c.call(Command::Read, 0, 0, 512, &[]).await else {
        panic!()
    };
    assert_eq!(header.chunk_type, chunk::TYPE_ERROR);
    let (error, message) = parse_error_chunk(&payload).unwrap();
    assert_eq!(error, errno::EIO);
    assert!(message.contains("I/O error"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_come_back_out_of_order() {
    let (mut c, device) = connect(MIB, false, false).await;
    device.delay_range(0, 4096, Duration::from_millis(300));
    let slow = c.request(Command::Read, 0, 0, 4096, &[]).await;
    let fast = c.request(Command::Read, 0, 65536, 4096, &[]).await;
    let first = c.read_reply().await;
    let second = c.read_reply().await;
    assert_eq!((first.cookie(), second.cookie()), (fast, slow));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_are_bounded() {
    let (exports, device) = one_export(MIB);
    let limits = ServerLimits {
        max_requests_in_flight: 4,
        ..ServerLimits::default()
    };
    let (io, _server) = serve_duplex(exports, limits);
    let mut c = TestClient::greet(io, 1).await;
    c.go("disk", false, false).await;
    device.delay_range(0, MIB, Duration::from_millis(20));
    let mut cookies = Vec::new();
    for i in 0..32u64 {
        cookies.push(
            c.request(Command::Write, 0, i * 4096, 4096, &[i as u8; 4096])
                .await,
        );
    }
    let mut answered = Vec::new();
    for _ in 0..32 {
        let r = c.read_reply().await;
        assert_eq!(r.error(), 0);
        answered.push(r.cookie());
    }
    answered.sort();
    assert_eq!(answered, cookies);
    assert!(
        device.peak_in_flight() <= 4,
        "peak {} > 4",
        device.peak_in_flight()
    );
    assert!(device.peak_in_flight() >= 2, "requests were not pipelined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_answers_outstanding_requests_then_closes_and_drops_the_device() {
    let (exports, device) = one_export(MIB);
    let (io, server) = serve_duplex(exports.clone(), ServerLimits::default());
    let mut c = TestClient::greet(io, 1).await;
    c.go("disk", false, false).await;
    assert_eq!(
        Arc::strong_count(&device),
        3,
        "catalogue, test and connection hold the device"
    );
    device.delay_range(0, 4096, Duration::from_millis(200));
    let slow = c.request(Command::Read, 0, 0, 4096, &[]).await;
    c.request(Command::Disconnect, 0, 0, 0, &[]).await;
    let reply = c.read_reply().await;
    assert_eq!((reply.cookie(), reply.error()), (slow, 0));
    assert!(c.closed().await);
    assert!(server_result(server).await.is_ok());
    assert_eq!(
        Arc::strong_count(&device),
        2,
        "the connection's device handle is dropped"
    );
}

#[tokio::test]
async fn bad_request_magic_closes_the_connection() {
    let (mut c, _device) = connect(MIB, false, false).await;
    let mut bytes = Request {
        flags: 0,
        command: Command::Read,
        cookie: 1,
        offset: 0,
        length: 512,
    }
    .encode();
    bytes[0] = 0;
    c.io.write_all(&bytes).await.unwrap();
    assert!(c.closed().await);
}

#[tokio::test]
async fn bad_request_magic_is_reported_by_the_server() {
    let (exports, _device) = one_export(MIB);
    let (io, server) = serve_duplex(exports, ServerLimits::default());
    let mut c = TestClient::greet(io, 1).await;
    c.go("disk", false, false).await;
    c.io.write_all(&[0xee; 28]).await.unwrap();
    let err = server_result(server).await.unwrap_err();
    assert!(matches!(err, NbdError::Protocol(_)), "{err}");
    assert!(err.to_string().contains("0xeeeeeeee"), "{err}");
}

#[tokio::test]
async fn a_write_too_large_to_drain_is_refused_and_closes() {
    let (exports, _device) = one_export(MIB);
    let (io, server) = serve_duplex(exports, ServerLimits::default());
    let mut c = TestClient::greet(io, 1).await;
    c.go("disk", false, false).await;
    // The server may close before it has read all we send: a broken pipe is expected.
    let cookie = 77;
    let mut bytes = Request {
        flags: 0,
        command: Command::Write,
        cookie,
        offset: 0,
        length: u32::MAX,
    }
    .encode()
    .to_vec();
    bytes.extend_from_slice(&[0; 4096]);
    let _ = c.io.write_all(&bytes).await;
    let reply = c.read_reply().await;
    assert_eq!((reply.cookie(), reply.error()), (cookie, errno::EINVAL));
    assert!(c.closed().await);
    assert!(matches!(
        server_result(server).await,
        Err(NbdError::WriteTooLarge {
            length_bytes: u32::MAX,
            ..
        })
    ));
}

#[tokio::test]
async fn eof_between_requests_ends_cleanly_but_inside_a_payload_is_an_error() {
    let (exports, _device) = one_export(MIB);
    let (io, server) = serve_duplex(exports.clone(), ServerLimits::default());
    let mut c = TestClient::greet(io, 1).await;
    c.go("disk", false, false).await;
    drop(c);
    assert!(server_result(server).await.is_ok());

    let (io, server) = serve_duplex(exports, ServerLimits::default());
    let mut c = TestClient::greet(io, 1).await;
    c.go("disk", false, false).await;
    c.request(Command::Write, 0, 0, 4096, &[1; 100]).await;
    drop(c);
    assert!(server_result(server).await.unwrap_err().is_disconnect());
}
