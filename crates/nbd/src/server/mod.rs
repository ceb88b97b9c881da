//! The NBD server: accept loops and the per-connection driver.
//!
//! A connection runs the handshake on the whole stream (bounded by
//! [`ServerLimits::handshake_timeout`]), then splits it: the reading half goes
//! to the request loop ([`transmission`]), the writing half to the shared
//! reply writer ([`reply_writer`]). TCP and Unix streams are split with
//! `into_split` (no lock), other streams with `tokio::io::split`.

mod frame_reader;
mod handshake;
mod reply_writer;
mod sizes;
mod transmission;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tracing::Instrument;

use crate::error::NbdError;
use crate::export::Exports;

pub use sizes::BlockSizes;

/// Resource bounds of every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Largest READ/WRITE payload (also caps the advertised maximum block size).
    pub max_request_bytes: u32,
    /// Requests outstanding per connection before the server stops reading.
    pub max_requests_in_flight: usize,
    /// Time allowed from accept to the end of option haggling.
    pub handshake_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_request_bytes: 32 * 1024 * 1024,
            max_requests_in_flight: 128,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves one client on `stream`: handshake, then transmission until the
/// client disconnects. Returns `Ok` on `NBD_CMD_DISC`, `NBD_OPT_ABORT` or EOF
/// at a request boundary.
pub async fn serve_connection<S, E>(
    stream: S,
    exports: Arc<E>,
    limits: ServerLimits,
) -> Result<(), NbdError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    E: Exports,
{
    serve_split(stream, exports, limits, tokio::io::split).await
}

/// Accepts clients on a Unix socket forever, one task per client.
pub async fn serve_unix<E: Exports>(
    listener: UnixListener,
    exports: Arc<E>,
    limits: ServerLimits,
) -> std::io::Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(e).await?;
                continue;
            }
        };
        spawn_client(
            serve_split(stream, exports.clone(), limits, |s| s.into_split()),
            "unix".to_string(),
        );
    }
}

/// Accepts clients on a TCP socket forever, one task per client, with `TCP_NODELAY`.
pub async fn serve_tcp<E: Exports>(
    listener: TcpListener,
    exports: Arc<E>,
    limits: ServerLimits,
) -> std::io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_failed(e).await?;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        spawn_client(
            serve_split(stream, exports.clone(), limits, |s| s.into_split()),
            peer.to_string(),
        );
    }
}

fn spawn_client<F>(serve: F, peer: String)
where
    F: std::future::Future<Output = Result<(), NbdError>> + Send + 'static,
{
    static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);
    let client = NEXT_CLIENT.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("nbd_client", client, %peer);
    tokio::spawn(
        async move {
            tracing::debug!("client connected");
            match serve.await {
                Ok(()) => tracing::debug!("client disconnected"),
                Err(e) if e.is_disconnect() => tracing::info!(error = %e, "client went away"),
                Err(e) => tracing::warn!(error = %e, "connection closed"),
            }
        }
        .instrument(span),
    );
}

/// Transient accept errors (aborted handshakes, fd exhaustion) are logged and
/// retried after a pause; anything else ends the accept loop.
async fn accept_failed(e: std::io::Error) -> std::io::Result<()> {
    use std::io::ErrorKind::*;
    let transient = matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    );
    if !transient {
        return Err(e);
    }
    tracing::warn!(error = %e, "accept failed; retrying");
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}

async fn serve_split<S, R, W, E>(
    mut stream: S,
    exports: Arc<E>,
    limits: ServerLimits,
    split: impl FnOnce(S) -> (R, W),
) -> Result<(), NbdError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
    E: Exports,
{
    let negotiation = handshake::negotiate(&mut stream, &*exports, &limits);
    let negotiated = match tokio::time::timeout(limits.handshake_timeout, negotiation).await {
        Err(_elapsed) => return Err(NbdError::HandshakeTimeout(limits.handshake_timeout)),
        Ok(result) => result?,
    };
    let Some(negotiated) = negotiated else {
        return Ok(());
    };
    let (reader, writer) = split(stream);
    transmission::run(reader, writer, negotiated, &limits).await
}
