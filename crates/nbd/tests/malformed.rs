//! Malformed input on one connection of a Unix-socket server closes (or errors)
//! only that connection; a healthy connection keeps working throughout.

mod common;

use common::*;
use rdbd_nbd::proto::{errno, opt, Command, OptionHeader, Request, MAX_OPTION_BYTES};
use rdbd_nbd::{serve_unix, ServerLimits};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

async fn healthy_round_trip(c: &mut TestClient<UnixStream>, round: u8) {
    let data = vec![round; 4096];
    assert_eq!(
        c.call(Command::Write, 0, 8192, 4096, &data).await.error(),
        0
    );
    assert_eq!(
        c.call(Command::Read, 0, 8192, 4096, &[]).await.data(),
        &data[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_clients_do_not_disturb_others() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nbd.sock");
    let (exports, _device) = one_export(MIB);
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(serve_unix(listener, exports, ServerLimits::default()));

    let connect =
        || async { TestClient::greet(UnixStream::connect(&socket).await.unwrap(), 1).await };
    let mut healthy = connect().await;
    healthy.go("disk", true, true).await;
    healthy_round_trip(&mut healthy, 1).await;

    // Bad request magic: closed.
    let mut bad = connect().await;
    bad.go("disk", false, false).await;
    let mut bytes = Request {
        flags: 0,
        command: Command::Read,
        cookie: 1,
        offset: 0,
        length: 512,
    }
    .encode();
    bytes[3] ^= 0xff;
    bad.io.write_all(&bytes).await.unwrap();
    assert!(bad.closed().await, "bad magic must close the connection");
    healthy_round_trip(&mut healthy, 2).await;

    // Truncated handshake: client vanishes inside an option.
    let mut bad = connect().await;
    bad.io
        .write_all(
            &OptionHeader {
                option: opt::GO,
                length: 64,
            }
            .encode()[..10],
        )
        .await
        .unwrap();
    drop(bad);
    healthy_round_trip(&mut healthy, 3).await;

    // Oversized option length: closed before any payload is read.
    let mut bad = connect().await;
    bad.io
        .write_all(
            &OptionHeader {
                option: opt::INFO,
                length: MAX_OPTION_BYTES * 1000,
            }
            .encode(),
        )
        .await
        .unwrap();
    assert!(
        bad.closed().await,
        "oversized option must close the connection"
    );
    healthy_round_trip(&mut healthy, 4).await;

    // Unknown client flags: closed.
    let mut bad = TestClient::greet(UnixStream::connect(&socket).await.unwrap(), 0x80).await;
    assert!(bad.closed().await);

    // Requests beyond the end and unknown commands: errors, connection stays.
    let mut odd = connect().await;
    odd.go("disk", false, false).await;
    assert_eq!(
        odd.call(Command::Read, 0, MIB, 512, &[]).await.error(),
        errno::EINVAL
    );
    assert_eq!(
        odd.call(Command::Write, 0, MIB - 512, 4096, &[0; 4096])
            .await
            .error(),
        errno::ENOSPC
    );
    assert_eq!(
        odd.call(Command::Unknown(99), 0, 0, 512, &[]).await.error(),
        errno::EINVAL
    );
    assert_eq!(odd.call(Command::Read, 0, 0, 512, &[]).await.error(), 0);
    healthy_round_trip(&mut healthy, 5).await;

    // A WRITE announcing 4 GiB: EINVAL and closed. The server may close before it
    // has read all we send, so a broken pipe on our side is expected, not a failure.
    let mut bytes = Request {
        flags: 0,
        command: Command::Write,
        cookie: 99,
        offset: 0,
        length: u32::MAX,
    }
    .encode()
    .to_vec();
    bytes.extend_from_slice(&[1; 1000]);
    let _ = odd.io.write_all(&bytes).await;
    assert_eq!(odd.read_reply().await.error(), errno::EINVAL);
    assert!(
        odd.closed().await,
        "an undrainable WRITE must close the connection"
    );
    healthy_round_trip(&mut healthy, 6).await;

    // Garbage instead of a handshake.
    let mut raw = UnixStream::connect(&socket).await.unwrap();
    raw.write_all(&[0xff; 200]).await.unwrap();
    let mut garbage = TestClient::greet(raw, 0).await; // greet reads the greeting only
    assert!(garbage.closed().await);
    healthy_round_trip(&mut healthy, 7).await;
}
