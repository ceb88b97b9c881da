//! Handshake and option tests over an in-memory pipe.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rdbd_nbd::proto::{
    info, opt, rep, tflag, InfoRequest, MetaContextRequest, OptionHeader, MAX_OPTION_BYTES,
};
use rdbd_nbd::testing::{mem_export_info, MemDevice, MemExports};
use rdbd_nbd::{NbdError, ServerLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn two_exports() -> Arc<MemExports> {
    let exports = MemExports::new();
    exports.add("disk", mem_export_info(MIB), Arc::new(MemDevice::new(MIB)));
    let mut ro = mem_export_info(2 * MIB);
    ro.read_only = true;
    ro.description = "read only".into();
    ro.can_cache = false;
    exports.add("ro", ro, Arc::new(MemDevice::new(2 * MIB)));
    Arc::new(exports)
}

fn meta(name: &str, queries: &[&str]) -> Vec<u8> {
    MetaContextRequest {
        export_name: name.into(),
        queries: queries.iter().map(|q| q.to_string()).collect(),
    }
    .encode()
}

#[tokio::test]
async fn list_names_every_export_with_its_description() {
    let (io, server) = serve_duplex(two_exports(), ServerLimits::default());
    let mut c = TestClient::greet(io, 1).await;
    let replies = c.option(opt::LIST, &[]).await;
    assert_eq!(replies.len(), 3);
    let entries: Vec<(String, String)> = replies[..2]
        .iter()
        .map(|(t, d)| {
            assert_eq!(*t, rep::SERVER);
            let len = u32::from_be_bytes(d[..4].try_into().unwrap()) as usize;
            (
                String::from_utf8(d[4..4 + len].to_vec()).unwrap(),
                String::from_utf8(d[4 + len..].to_vec()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("disk".into(), "in-memory test export".into()),
            ("ro".into(), "read only".into())
        ]
    );
    assert_eq!(replies[2], (rep::ACK, vec![]));
    // LIST with data is invalid, and haggling goes on.
    assert_eq!(c.option(opt::LIST, &[1]).await[0].0, rep::ERR_INVALID);
    assert_eq!(c.option(opt::ABORT, &[]).await, [(rep::ACK, vec![])]);
    assert!(server_result(server).await.is_ok());
}

#[tokio::test]
async fn unknown_options_and_starttls_are_refused_and_haggling_continues() {
    let (io, server) = serve_duplex(two_exports(), ServerLimits::default());
    let mut c = TestClient::greet(io, 3).await;
    let unsup = c.option(4242, b"some data").await;
    assert_eq!(unsup.len(), 1);
    assert_eq!(unsup[0].0, rep::ERR_UNSUP);
    assert!(String::from_utf8_lossy(&unsup[0].1).contains("4242"));
    assert_eq!(
        c.option(opt::EXTENDED_HEADERS, &[]).await[0].0,
        rep::ERR_UNSUP
    );
    assert_eq!(c.option(opt::STARTTLS, &[]).await[0].0, rep::ERR_POLICY);
    assert_eq!(c.go("disk", false, false).await.0, MIB);
    drop(c);
    assert!(server_result(server).await.is_ok());
}

#[tokio::test]
async fn info_describes_without_opening_and_go_reports_policy_refusals() {
    let exports = two_exports();
    exports.refuse("disk", "disk is Secondary");
    let (io, _server) = serve_duplex(exports.clone(), ServerLimits::default());
    let mut c = TestClient::greet(io, 1).await;

    let request = InfoRequest {
        name: "disk".into(),
        requests: vec![info::NAME, info::DESCRIPTION, info::BLOCK_SIZE],
    };
    let replies = c.option(opt::INFO, &request.encode()).await;
    assert_eq!(
        replies.last().unwrap().0,
        rep::ACK,
        "INFO must not open: {replies:?}"
    );
    let item = |kind: u16| {
        replies
            .iter()
            .find(|(t, d)| *t == rep::INFO && d[..2] == kind.to_be_bytes())
            .cloned()
    };
    let export = item(info::EXPORT).expect("INFO_EXPORT").1;
    assert_eq!(u64::from_be_bytes(export[2..10].try_into().unwrap()), MIB);
    let flags = u16::from_be_bytes(export[10..12].try_into().unwrap());
    let all = tflag::HAS_FLAGS
        | tflag::SEND_FLUSH
        | tflag::SEND_FUA
        | tflag::SEND_TRIM
        | tflag::SEND_WRITE_ZEROES
        | tflag::SEND_FAST_ZERO
        | tflag::CAN_MULTI_CONN
        | tflag::SEND_CACHE;
    assert_eq!(flags, all);
    assert_eq!(&item(info::NAME).unwrap().1[2..], b"disk");
    assert_eq!(
        &item(info::DESCRIPTION).unwrap().1[2..],
        b"in-memory test export"
    );
    let sizes = item(info::BLOCK_SIZE).unwrap().1;
    let word = |i: usize| u32::from_be_bytes(sizes[2 + 4 * i..6 + 4 * i].try_into().unwrap());
    assert_eq!((word(0), word(1), word(2)), (512, 4096, 32 * 1024 * 1024));

    let go = InfoRequest {
        name: "disk".into(),
        requests: vec![],
    };
    let refused = c.option(opt::GO, &go.encode()).await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0], (rep::ERR_POLICY, b"disk is Secondary".to_vec()));

    let unknown = InfoRequest {
        name: "nope".into(),
        requests: vec![],
    };
    let replies = c.option(opt::INFO, &unknown.encode()).await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0, rep::ERR_UNKNOWN);
    assert!(String::from_utf8_lossy(&replies[0].1).contains("nope"));

    // A name length pointing past the payload is ERR_INVALID, not a crash.
    let replies = c.option(opt::GO, &[0, 0, 0, 200, b'x', 0, 0]).await;
    assert_eq!(replies[0].0, rep::ERR_INVALID);

    let (size, flags) = c.go("ro", false, false).await;
    assert_eq!(size, 2 * MIB);
    assert_ne!(flags & tflag::READ_ONLY, 0);
    assert_eq!(flags & tflag::SEND_CACHE, 0);
}

#[tokio::test]
async fn meta_contexts_need_structured_replies_and_match_base_allocation() {
    let (io, _server) = serve_duplex(two_exports(), ServerLimits::default());
    let mut c = TestClient::greet(io, 1).await;
    assert_eq!(
        c.option(opt::SET_META_CONTEXT, &meta("disk", &["base:allocation"]))
            .await[0]
            .0,
        rep::ERR_INVALID
    );
    assert_eq!(
        c.option(opt::STRUCTURED_REPLY, &[1]).await[0].0,
        rep::ERR_INVALID
    );
    assert_eq!(
        c.option(opt::STRUCTURED_REPLY, &[]).await,
        [(rep::ACK, vec![])]
    );

    let context = |id: u32| {
        let mut d = id.to_be_bytes().to_vec();
        d.extend_from_slice(b"base:allocation");
        (rep::META_CONTEXT, d)
    };
    let ack = (rep::ACK, vec![]);
    assert_eq!(
        c.option(opt::LIST_META_CONTEXT, &meta("disk", &[])).await,
        [context(0), ack.clone()]
    );
    assert_eq!(
        c.option(opt::LIST_META_CONTEXT, &meta("disk", &["base:"]))
            .await,
        [context(0), ack.clone()]
    );
    assert_eq!(
        c.option(opt::LIST_META_CONTEXT, &meta("disk", &["x-other:thing"]))
            .await,
        [(rep::ACK, vec![])]
    );
    assert_eq!(
        c.option(opt::SET_META_CONTEXT, &meta("disk", &["base:"]))
            .await,
        [(rep::ACK, vec![])]
    );
    assert_eq!(
        c.option(opt::SET_META_CONTEXT, &meta("nope", &["base:allocation"]))
            .await[0]
            .0,
        rep::ERR_UNKNOWN
    );
    assert_eq!(
        c.option(
            opt::SET_META_CONTEXT,
            &meta("disk", &["x-a:b", "base:allocation"])
        )
        .await,
        [context(1), ack.clone()]
    );
    // Truncated query list.
    let mut bad = meta("disk", &["base:allocation"]);
    bad.pop();
    assert_eq!(
        c.option(opt::SET_META_CONTEXT, &bad).await[0].0,
        rep::ERR_INVALID
    );
}

#[tokio::test]
async fn export_name_sends_size_flags_and_honours_no_zeroes() {
    for (client_flags, reply_bytes) in [(1u32, 134usize), (3, 10)] {
        let (io, _server) = serve_duplex(two_exports(), ServerLimits::default());
        let mut c = TestClient::greet(io, client_flags).await;
        c.send_option(opt::EXPORT_NAME, b"disk").await;
        let mut reply = vec![0u8; reply_bytes];
        c.io.read_exact(&mut reply).await.unwrap();
        assert_eq!(u64::from_be_bytes(reply[..8].try_into().unwrap()), MIB);
        assert_eq!(
            u16::from_be_bytes([reply[8], reply[9]]) & tflag::HAS_FLAGS,
            1
        );
        assert!(reply[10..].iter().all(|&b| b == 0));
        // Transmission works right after.
        let r = c.call(rdbd_nbd::proto::Command::Read, 0, 0, 512, &[]).await;
        assert_eq!((r.error(), r.data().len()), (0, 512));
    }
}

#[tokio::test]
async fn export_name_of_an_unknown_export_closes_the_connection() {
    let (io, server) = serve_duplex(two_exports(), ServerLimits::default());
    let mut c = TestClient::greet(io, 1).await;
    c.send_option(opt::EXPORT_NAME, b"missing").await;
    assert!(c.closed().await);
    assert!(
        matches!(server_result(server).await, Err(NbdError::ExportRefused { name, .. }) if name == "missing")
    );
}

#[tokio::test]
async fn unknown_client_flags_close_the_connection() {
    let (io, server) = serve_duplex(two_exports(), ServerLimits::default());
    let mut c = TestClient::greet(io, 1 | 8).await;
    assert!(c.closed().await);
    assert!(matches!(
        server_result(server).await,
        Err(NbdError::UnknownClientFlags(9))
    ));
}

#[tokio::test]
async fn oversized_option_length_and_bad_option_magic_close_the_connection() {
    let (io, server) = serve_duplex(two_exports(), ServerLimits::default());
    let mut c = TestClient::greet(io, 1).await;
    let header = OptionHeader {
        option: opt::GO,
        length: MAX_OPTION_BYTES + 1,
    };
    c.io.write_all(&header.encode()).await.unwrap();
    assert!(c.closed().await);
    let err = server_result(server).await.unwrap_err();
    assert!(err.to_string().contains("65537-byte payload"), "{err}");

    let (io, server) = serve_duplex(two_exports(), ServerLimits::default());
    let mut c = TestClient::greet(io, 1).await;
    c.io.write_all(b"IHAVEOPX\0\0\0\x03\0\0\0\0").await.unwrap();
    assert!(c.closed().await);
    assert!(server_result(server)
        .await
        .unwrap_err()
        .to_string()
        .contains("option magic"));
}

#[tokio::test]
async fn truncated_handshake_and_silence_end_the_connection() {
    // Client goes away in the middle of an option.
    let (io, server) = serve_duplex(two_exports(), ServerLimits::default());
    let mut c = TestClient::greet(io, 1).await;
    c.io.write_all(
        &OptionHeader {
            option: opt::GO,
            length: 100,
        }
        .encode(),
    )
    .await
    .unwrap();
    c.io.write_all(&[0u8; 10]).await.unwrap();
    drop(c);
    let err = server_result(server).await.unwrap_err();
    assert!(err.is_disconnect(), "{err}");

    // Client never sends its flags.
    let limits = ServerLimits {
        handshake_timeout: Duration::from_millis(200),
        ..ServerLimits::default()
    };
    let (mut io, server) = serve_duplex(two_exports(), limits);
    let mut greeting = [0u8; 18];
    io.read_exact(&mut greeting).await.unwrap();
    assert!(matches!(
        server_result(server).await,
        Err(NbdError::HandshakeTimeout(_))
    ));
}
