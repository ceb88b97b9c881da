//! Reads of a diskless Primary, served by the peer (D84 drbd_req.c: a read without a
//! local disk goes to the peer as `P_DATA_REQUEST`, answered with `P_DATA_REPLY`, or
//! `P_NEG_DREPLY` when the peer cannot read).
//!
//! - [`PeerLink::read_remote`]: splits a read into requests of at most
//!   `DRBD_MAX_BIO_SIZE`, queues them on the data socket and waits for the replies;
//!   a lost connection or a negative reply fails the read.
//! - [`serve_data_request`]: the peer's side, from the local disk.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rdbd_types::DiskState;
use rdbd_wire::{BlockRequest, Packet};
use tokio::sync::oneshot;

use super::io::{Outbox, Outgoing};
use super::read_request;
use super::session::Ctx;
use super::PeerLink;

/// How long a remote read may take.
const REMOTE_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads sent to the peer and not answered yet.
#[derive(Debug, Default)]
pub(crate) struct RemoteReads {
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Option<Bytes>>>>,
}

impl RemoteReads {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Option<Bytes>>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PeerLink {
    /// Reads `[offset, offset + len)` from the peer's disk.
    pub async fn read_remote(&self, offset: u64, len: u32) -> Result<Bytes, String> {
        let data: Outbox = self
            .inner()
            .data
            .clone()
            .ok_or("not connected to a peer with data")?;
        let chunk = rdbd_wire::DRBD_MAX_BIO_SIZE as u64;
        let mut waits = Vec::new();
        let mut at = offset;
        let end = offset + u64::from(len);
        while at < end {
            let n = chunk.min(end - at);
            let block_id = self.remote_reads.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            self.remote_reads.pending().insert(block_id, tx);
            let req = BlockRequest {
                sector: at / 512,
                block_id,
                size_bytes: n as u32,
            };
            if data.send(Outgoing::h100(Packet::DataRequest(req))).is_err() {
                self.remote_reads.pending().remove(&block_id);
                return Err("the connection closed".into());
            }
            waits.push((block_id, n, rx));
            at += n;
        }
        let mut out = BytesMut::with_capacity(len as usize);
        for (block_id, n, rx) in waits {
            let reply = tokio::time::timeout(REMOTE_READ_TIMEOUT, rx).await;
            self.remote_reads.pending().remove(&block_id);
            match reply {
                Ok(Ok(Some(bytes))) if bytes.len() as u64 == n => out.extend_from_slice(&bytes),
                Ok(Ok(Some(bytes))) => {
                    return Err(format!(
                        "the peer answered {} bytes for a read of {n}",
                        bytes.len()
                    ))
                }
                Ok(Ok(None)) => return Err("the peer could not read (P_NEG_DREPLY)".into()),
                Ok(Err(_)) => return Err("the connection was lost during the read".into()),
                Err(_) => {
                    return Err(format!(
                        "the peer did not answer within {} s",
                        REMOTE_READ_TIMEOUT.as_secs()
                    ))
                }
            }
        }
        Ok(out.freeze())
    }

    /// A `P_DATA_REPLY` (`Some`) or `P_NEG_DREPLY` (`None`) for `block_id`. False when
    /// no read of ours waits for it.
    pub(crate) fn complete_remote_read(&self, block_id: u64, data: Option<Bytes>) -> bool {
        match self.remote_reads.pending().remove(&block_id) {
            Some(tx) => {
                let _ = tx.send(data);
                true
            }
            None => false,
        }
    }

    /// The connection ended: every waiting read fails.
    pub(crate) fn fail_remote_reads(&self) {
        self.remote_reads.pending().clear();
    }
}

/// Serves a diskless peer's `P_DATA_REQUEST` from the local disk.
pub(crate) fn serve_data_request(ctx: &Ctx, data: &Outbox, meta: &Outbox, req: BlockRequest) {
    let nack = move || Outgoing::h100(Packet::NegDReply(read_request::negative_reply(&req)));
    let disk_ok = ctx.resource.state().disk == DiskState::UpToDate;
    let Some(offset) = read_request::servable_offset(ctx, &req).filter(|_| disk_ok) else {
        tracing::warn!(resource = %ctx.resource.name, sector = req.sector, size = req.size_bytes, "cannot serve the peer's read; answering P_NEG_DREPLY");
        let _ = meta.send(nack());
        return;
    };
    let (resource, data, meta) = (ctx.resource.clone(), data.clone(), meta.clone());
    tokio::spawn(async move {
        match read_request::read_local(&resource, offset, &req).await {
            Ok(buf) => {
                let reply = read_request::data_reply(&req, &buf);
                let _ = data.send(Outgoing::h100(Packet::DataReply(reply)));
            }
            Err(e) => {
                tracing::error!(resource = %resource.name, offset, error = %e, "reading for the diskless peer failed");
                let _ = meta.send(nack());
            }
        }
    });
}
