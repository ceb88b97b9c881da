//! Socket plumbing of a connection: one writer task and one reader task per socket.
//!
//! - [`Outbox`]: frames queued for a socket, in order. The writer task batches whatever
//!   is queued into one buffered write (TCP_NODELAY is set, so each batch leaves at once)
//!   and reports, for protocol A, which requests were handed to the socket. The meta
//!   socket's writer lets the other ready tasks run before it gathers a batch: its acks
//!   come from one task per write, and each would otherwise leave in its own `sendto`
//!   (DRBD corks the meta socket while it sends the acks of a batch of completions).
//! - [`spawn_reader`]: decodes frames with rdbd-wire's bounded [`Decoder`] and forwards them;
//!   a decoding error or EOF ends the stream with a reason. The bulk of a large data packet
//!   is read from the socket straight into a pooled [`AlignedBuf`], from which the disk
//!   writes it (no copy in user space).

use std::io::IoSlice;

use bytes::Bytes;
use rdbd_types::AlignedBuf;
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
/// protocol-A requests among them are completed once written; without (the meta socket)
/// the writer gathers the acks of the tasks ready at the same time into one write.
pub fn spawn_writer(
    mut sock: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    report: mpsc::UnboundedSender<Written>,
    link: Option<std::sync::Arc<super::PeerLink>>,
) -> tokio::task::JoinHandle<()> {
    // The data socket's writer (the one with a link) gets its frames in bursts from one
    // task already; the meta socket's acks come from many.
    let gather = link.is_none();
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
        while let Some(first) = rx.recv().await {
            if gather && rx.is_empty() {
                // Every task that is ready runs first and queues its ack.
                tokio::task::yield_now().await;
            }
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

/// The most bytes one `read` of a peer socket takes into the decoder: many small packets
/// per system call, while a large `P_DATA`'s bulk is mostly read straight into its own
/// buffer ([`DIRECT_BULK_MIN_BYTES`]), a 1 MiB one in a few system calls.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Data packets with at least this much bulk data whose bulk is not buffered yet get
/// the rest read straight into an aligned buffer. Smaller ones go through the decoder:
/// their copy is cheap, and one read takes many of them.
const DIRECT_BULK_MIN_BYTES: usize = 32 << 10;

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
                        if !deliver(which, frame, &mut handler, &tx).await {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(invalid_packet(which, &e)).await;
                        return;
                    }
                }
            }
            match dec.take_pending_bulk(DIRECT_BULK_MIN_BYTES) {
                Ok(None) => {}
                Ok(Some((pending, prefix))) => {
                    let bulk = match read_bulk(&mut sock, pending.bulk_bytes(), &prefix).await {
                        Ok(bulk) => bulk,
                        Err(e) => {
                            let _ = tx
                                .send(Incoming::Closed(which, format!("{which} socket: {e}")))
                                .await;
                            return;
                        }
                    };
                    match pending.finish(bulk) {
                        Ok(frame) => {
                            if !deliver(which, frame, &mut handler, &tx).await {
                                return;
                            }
                            continue;
                        }
                        Err(e) => {
                            let _ = tx.send(invalid_packet(which, &e)).await;
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(invalid_packet(which, &e)).await;
                    return;
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

/// Hands `frame` to the ack handler or the session; false when the session is gone.
async fn deliver(
    which: Sock,
    frame: Frame,
    handler: &mut Option<AckHandler>,
    tx: &mpsc::Sender<Incoming>,
) -> bool {
    if handler.as_mut().is_some_and(|h| h(&frame.packet)) {
        return true;
    }
    tx.send(Incoming::Frame(which, frame)).await.is_ok()
}

fn invalid_packet(which: Sock, e: &rdbd_wire::WireError) -> Incoming {
    Incoming::Closed(
        which,
        format!("the peer sent an invalid packet on the {which} socket: {e}"),
    )
}

/// A data packet's bulk of `len` bytes: `prefix` (already received), then the rest
/// straight from the socket into the same aligned buffer.
async fn read_bulk(sock: &mut OwnedReadHalf, len: usize, prefix: &[u8]) -> std::io::Result<Bytes> {
    // `len` is bounded by the decoder's limits and `prefix` is shorter than it.
    let mut bulk = AlignedBuf::for_overwrite(len);
    bulk[..prefix.len()].copy_from_slice(prefix);
    // read_exact fills every byte or fails, and a failed buffer is dropped: stale bytes of
    // a recycled buffer never reach anyone.
    sock.read_exact(&mut bulk[prefix.len()..]).await?;
    Ok(Bytes::from_owner(bulk))
}
