//! Socket plumbing of a connection: one writer task and one reader task per socket.
//!
//! - [`Outbox`]: frames queued for a socket, in order. The writer task batches whatever
//!   is queued into one buffered write (TCP_NODELAY is set, so each batch leaves at once)
//!   and reports, for protocol A, which requests were handed to the socket.
//! - [`spawn_reader`]: decodes frames with rdbd-wire's bounded [`Decoder`] and forwards them;
//!   a decoding error or EOF ends the stream with a reason.

use std::io::IoSlice;

use bytes::Bytes;
use rdbd_wire::{Decoder, Frame, HeaderKind, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

/// One encoded frame and what to do once it is written.
#[derive(Debug)]
pub struct Outgoing {
    head: Vec<u8>,
    payload: Option<Bytes>,
    /// A protocol-A request to complete once this frame is on the socket.
    pub on_sent: Option<u64>,
    /// Payload bytes that count as "network send" (`ns`).
    pub data_bytes: u64,
}

impl Outgoing {
    /// Encodes `packet` with an h100 header (h80 for the initial packets).
    pub fn new(kind: HeaderKind, packet: Packet) -> Outgoing {
        let frame = Frame::new(kind, packet);
        let mut head = Vec::with_capacity(64);
        let payload = frame
            .encode_head(&mut head)
            .expect("packets we build always encode");
        let data_bytes = payload.as_ref().map_or(0, |p| p.len() as u64);
        Outgoing {
            head,
            payload,
            on_sent: None,
            data_bytes,
        }
    }

    /// An h100 frame.
    pub fn h100(packet: Packet) -> Outgoing {
        Outgoing::new(HeaderKind::H100, packet)
    }
}

/// The sending side of a socket's queue.
pub type Outbox = mpsc::UnboundedSender<Outgoing>;

/// What the writer reports back.
#[derive(Debug)]
pub enum Written {
    /// `bytes` of data were sent.
    Sent {
        /// Data bytes.
        bytes: u64,
    },
    /// The socket failed.
    Failed(String),
}

/// Writes queued frames until the queue closes or the socket fails; with `link`, the
/// protocol-A requests among them are completed once written.
pub fn spawn_writer(
    mut sock: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    report: mpsc::UnboundedSender<Written>,
    link: Option<std::sync::Arc<super::PeerLink>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
        while let Some(first) = rx.recv().await {
            let mut ids = Vec::new();
            let mut bytes = 0u64;
            let mut next = Some(first);
            let mut result = Ok(());
            while let Some(item) = next.take() {
                buf.extend_from_slice(&item.head);
                if let Some(p) = &item.payload {
                    if p.len() >= 16 * 1024 {
                        // Large payloads go out without a copy, with the queued
                        // frames before them in one vectored write.
                        result = write_all_vectored(&mut sock, &buf, p).await;
                        buf.clear();
                    } else {
                        buf.extend_from_slice(p);
                    }
                }
                ids.extend(item.on_sent);
                bytes += item.data_bytes;
                if result.is_err() || buf.len() > (1 << 20) {
                    break;
                }
                next = rx.try_recv().ok();
            }
            if result.is_ok() && !buf.is_empty() {
                result = sock.write_all(&buf).await;
                buf.clear();
            }
            if let Err(e) = result {
                let _ = report.send(Written::Failed(e.to_string()));
                return;
            }
            if let (Some(link), false) = (&link, ids.is_empty()) {
                // Protocol A: complete the requests right here, not via the session.
                link.sent(&ids);
            }
            if bytes > 0 {
                let _ = report.send(Written::Sent { bytes });
            }
        }
        let _ = sock.shutdown().await;
    })
}

/// Writes `head` then `payload`, as few `writev` calls as the socket takes.
async fn write_all_vectored(
    sock: &mut OwnedWriteHalf,
    head: &[u8],
    payload: &[u8],
) -> std::io::Result<()> {
    let mut slices = [IoSlice::new(head), IoSlice::new(payload)];
    let mut rest: &mut [IoSlice<'_>] = &mut slices;
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        let n = sock.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// Which socket a frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sock {
    /// The data socket.
    Data,
    /// The meta socket.
    Meta,
}

impl std::fmt::Display for Sock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sock::Data => "data",
            Sock::Meta => "meta",
        })
    }
}

/// A frame or the end of a socket.
#[derive(Debug)]
pub enum Incoming {
    /// A decoded frame.
    Frame(Sock, Frame),
    /// The socket ended: EOF, an I/O error, or bytes rdbd-wire rejects.
    Closed(Sock, String),
}

/// Handles a packet right in the reader task (acks: they must not queue behind data);
/// returns false for packets the session should see.
pub type AckHandler = Box<dyn FnMut(&Packet) -> bool + Send>;

/// The most bytes one `read` of a peer socket takes: a 1 MiB `P_DATA` arrives in a
/// few system calls (and wakeups) instead of sixteen.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// Reads frames from `sock` (with `dec` holding bytes already read) into `tx`.
pub fn spawn_reader(
    which: Sock,
    mut sock: OwnedReadHalf,
    mut dec: Decoder,
    tx: mpsc::Sender<Incoming>,
    mut handler: Option<AckHandler>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; READ_CHUNK_BYTES];
        loop {
            loop {
                match dec.next_frame() {
                    Ok(Some(frame)) => {
                        if handler.as_mut().is_some_and(|h| h(&frame.packet)) {
                            continue;
                        }
                        if tx.send(Incoming::Frame(which, frame)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx
                            .send(Incoming::Closed(
                                which,
                                format!(
                                    "the peer sent an invalid packet on the {which} socket: {e}"
                                ),
                            ))
                            .await;
                        return;
                    }
                }
            }
            match sock.read(&mut buf).await {
                Ok(0) => {
                    let _ = tx
                        .send(Incoming::Closed(
                            which,
                            format!("the peer closed the {which} socket"),
                        ))
                        .await;
                    return;
                }
                Ok(n) => dec.feed(&buf[..n]),
                Err(e) => {
                    let _ = tx
                        .send(Incoming::Closed(which, format!("{which} socket: {e}")))
                        .await;
                    return;
                }
            }
        }
    })
}
