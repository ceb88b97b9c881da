//! I/O of a diskless Primary through its peer (D84 drbd_req.c: without a local disk,
//! reads go to the peer as `P_DATA_REQUEST` and writes only to the peer).
//!
//! The Primary keeps serving its NBD clients after `detach` while it is connected to a
//! peer with UpToDate data; without one, every request fails with EIO. The peer marks
//! the blocks it receives meanwhile out of sync (it holds the only copy), so that a
//! later `attach` (as Secondary) resyncs exactly those.

use std::sync::atomic::Ordering;

use rdbd_storage::{IoOp, StorageError};
use rdbd_types::{AlignedBuf, DiskState};

use crate::peer::{PeerOutcome, WritePayload};
use crate::resource::{Resource, ResourceIoError, ResourceState};

/// Whether a diskless node can do I/O through its peer now.
pub fn serves_through_peer(st: &ResourceState) -> bool {
    st.disk == DiskState::Diskless
        && st.cstate.is_connected()
        && st.peer_disk == DiskState::UpToDate
}

fn peer_error(op: IoOp, offset: u64, len: u64, why: impl Into<String>) -> StorageError {
    StorageError::Io {
        op,
        offset,
        len,
        source: std::io::Error::other(format!("diskless: {}", why.into())),
    }
}

impl Resource {
    /// A read of a diskless node, from the peer.
    pub async fn read_through_peer(
        &self,
        offset: u64,
        len: u32,
    ) -> Result<AlignedBuf, StorageError> {
        let link = self
            .peer_link()
            .ok_or_else(|| peer_error(IoOp::Read, offset, u64::from(len), "no peer configured"))?;
        if !serves_through_peer(&self.state()) {
            return Err(peer_error(
                IoOp::Read,
                offset,
                u64::from(len),
                "no connected peer with UpToDate data",
            ));
        }
        let bytes = link
            .read_remote(offset, len)
            .await
            .map_err(|e| peer_error(IoOp::Read, offset, u64::from(len), e))?;
        self.io
            .net_received_bytes
            .fetch_add(u64::from(len), Ordering::Relaxed);
        self.io.read_requests.fetch_add(1, Ordering::Relaxed);
        Ok(AlignedBuf::from_slice(&bytes))
    }

    /// A data-changing request of a diskless node: the peer's acknowledgement (as the
    /// protocol defines it) completes it; anything else fails it.
    pub async fn write_through_peer(
        &self,
        offset: u64,
        len: u64,
        remote: Option<WritePayload>,
        fua: bool,
    ) -> Result<(), ResourceIoError> {
        let fail = |why: &str| ResourceIoError::Storage(peer_error(IoOp::Write, offset, len, why));
        if !serves_through_peer(&self.state()) {
            return Err(fail("no connected peer with UpToDate data"));
        }
        let (Some(link), Some(payload)) = (self.peer_link(), remote) else {
            return Err(fail("writes are not replicated now"));
        };
        let rx = link
            .submit_write(offset, payload, fua)
            .ok_or_else(|| fail("writes are not replicated now"))?;
        match rx.await {
            Ok(PeerOutcome::Acked) => {
                self.io.write_requests.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(fail("the peer did not acknowledge the write")),
        }
    }
}
