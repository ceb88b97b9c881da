//! Establishing the two sockets of a connection the way DRBD does (D84 drbd_receiver.c
//! `conn_connect`): both nodes listen and connect. The first socket a node opens itself
//! carries `P_INITIAL_DATA` and becomes the data socket, the second `P_INITIAL_META`.
//! An accepted socket is classified by its first packet. The node that accepts the meta
//! socket holds `RESOLVE_CONFLICTS`. When both nodes open their data sockets at the same
//! time ("initial packet S crossed"), the accepted one replaces ours and a coin flip
//! decides whether we connect again or wait, until the pair settles; a pair counts as
//! established only when both sockets are still alive after a short check.

use std::net::SocketAddr;
use std::time::Duration;

use rdbd_wire::{Decoder, Frame, HeaderKind, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::sockbuf::SocketBuffers;

/// How long a complete pair of sockets must stay alive, with nothing more arriving from
/// the peer, before it counts as established.
const SETTLE_CHECK: Duration = Duration::from_millis(100);

/// The two sockets of an established connection.
#[derive(Debug)]
pub struct Sockets {
    /// The data socket.
    pub data: TcpStream,
    /// The meta socket.
    pub meta: TcpStream,
    /// This node accepted the meta socket: it wins conflicts.
    pub resolve_conflicts: bool,
}

async fn send_first(sock: &mut TcpStream, packet: Packet) -> std::io::Result<()> {
    let bytes = Frame::new(HeaderKind::H80, packet)
        .to_bytes()
        .expect("initial packets encode");
    sock.write_all(&bytes).await
}

/// Reads the first packet of an accepted socket (within `timeout`).
async fn receive_first(sock: &mut TcpStream, timeout: Duration) -> Option<Packet> {
    let mut dec = Decoder::new();
    let mut buf = [0u8; 64];
    let read = async {
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => return Some(f.packet),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "an accepted connection sent something that is not a DRBD initial packet");
                    return None;
                }
            }
            // Only the 8-byte initial packet may be consumed here.
            let want = dec.bytes_wanted().clamp(1, buf.len());
            match sock.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => dec.feed(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(timeout, read).await.ok().flatten()
}

/// Whether the socket is still open (no EOF, no error) right now.
async fn socket_okay(sock: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(1), sock.peek(&mut b)).await {
        Err(_) => true,     // nothing to read: alive
        Ok(Ok(n)) => n > 0, // data waiting: alive; 0: EOF
        Ok(Err(_)) => false,
    }
}

/// Connects to `peer` until both sockets exist. Runs until it succeeds; the caller
/// cancels it (by dropping the future) to stop trying.
pub async fn establish(
    listener: &TcpListener,
    local: SocketAddr,
    peer: SocketAddr,
    buffers: SocketBuffers,
) -> Sockets {
    let mut data: Option<TcpStream> = None;
    let mut meta: Option<TcpStream> = None;
    let mut resolve_conflicts = false;
    let mut skip_connect = false;
    loop {
        let mut randomize = false;
        // Our own connection attempt (skipped after a crossing, by a coin flip).
        if !std::mem::take(&mut skip_connect) && (data.is_none() || meta.is_none()) {
            if let Ok(Ok(mut s)) = tokio::time::timeout(
                Duration::from_millis(500),
                connect_from(local, peer, buffers),
            )
            .await
            {
                if data.is_none() {
                    if send_first(&mut s, Packet::InitialData).await.is_ok() {
                        data = Some(s);
                    }
                } else if meta.is_none() {
                    resolve_conflicts = false;
                    if send_first(&mut s, Packet::InitialMeta).await.is_ok() {
                        meta = Some(s);
                    }
                }
            }
        }
        // The peer's attempt: waited for while we miss a socket; while we have both, the
        // settle check's window (a socket of the peer's in our listen queue means that it
        // opened one of the pair as well: a crossing, not an established pair).
        let complete = data.is_some() && meta.is_some();
        let wait = if complete {
            SETTLE_CHECK
        } else {
            Duration::from_millis(200 + u64::from(rand::random::<u8>()) * 2)
        };
        let mut accepted_one = false;
        if let Ok(Ok((mut s, from))) = tokio::time::timeout(wait, listener.accept()).await {
            accepted_one = true;
            let first = receive_first(&mut s, Duration::from_secs(2)).await;
            if first.is_some() && !socket_okay(&s).await {
                // A stale attempt from the listen queue: the peer gave it up already.
                tracing::debug!(%from, "dropping a connection the peer already closed");
                continue;
            }
            match first {
                Some(Packet::InitialData) => {
                    if data.is_some() {
                        tracing::info!(%from, "initial packet S crossed");
                        randomize = true;
                    }
                    data = Some(s);
                }
                Some(Packet::InitialMeta) => {
                    resolve_conflicts = true;
                    if meta.is_some() {
                        tracing::info!(%from, "initial packet M crossed");
                        randomize = true;
                    }
                    meta = Some(s);
                }
                Some(other) => {
                    tracing::warn!(%from, packet = ?other.command(), "an accepted connection did not start with P_INITIAL_DATA or P_INITIAL_META; closed");
                }
                None => {}
            }
        }
        if let (Some(d), Some(m)) = (&data, &meta) {
            if complete && !accepted_one {
                // Nothing arrived during the settle check.
                if socket_okay(d).await && socket_okay(m).await {
                    break;
                }
                tracing::debug!(
                    "a socket of the new connection died during the check; starting over"
                );
                data = None;
                meta = None;
                continue;
            }
            if !complete {
                // Completed by the peer's socket: check it settles (next round).
                continue;
            }
            // A socket arrived during the check and replaced one of ours: check again.
            if !(socket_okay(d).await && socket_okay(m).await) {
                data = None;
                meta = None;
            }
        }
        if randomize && rand::random::<bool>() {
            skip_connect = true;
        }
    }
    let (data, meta) = (data.expect("set"), meta.expect("set"));
    for s in [&data, &meta] {
        let _ = s.set_nodelay(true);
    }
    Sockets {
        data,
        meta,
        resolve_conflicts,
    }
}

/// Connects from our replication address (so the peer sees the configured address).
async fn connect_from(
    local: SocketAddr,
    peer: SocketAddr,
    buffers: SocketBuffers,
) -> std::io::Result<TcpStream> {
    let sock = if peer.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    buffers.apply(&sock)?;
    let bind = SocketAddr::new(local.ip(), 0);
    if !local.ip().is_unspecified() {
        sock.bind(bind)?;
    }
    sock.connect(peer).await
}
