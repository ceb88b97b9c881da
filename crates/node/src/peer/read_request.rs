//! What serving a peer's read request shares, whatever the kind (`P_DATA_REQUEST` of a
//! diskless peer, `P_RS_DATA_REQUEST` of a resync): the check of the requested range, the
//! local read, and the answers built from the request (D84 drbd_receiver.c
//! `receive_DataRequest`, drbd_worker.c `w_e_end_data_req` / `w_e_end_rsdata_req`).

use std::sync::atomic::Ordering;

use rdbd_storage::StorageError;
use rdbd_types::AlignedBuf;
use rdbd_wire::{BlockAck, BlockRequest, DataHeader, DataPacket, DpFlags};

use super::receive::checked_range;
use super::session::Ctx;
use crate::resource::Resource;

/// The byte offset `req` reads at, when it can be served: 1 to `DRBD_MAX_BIO_SIZE` bytes
/// inside the device.
pub(super) fn servable_offset(ctx: &Ctx, req: &BlockRequest) -> Option<u64> {
    let size_bytes = req.size_bytes as usize;
    if size_bytes == 0 || size_bytes > rdbd_wire::DRBD_MAX_BIO_SIZE {
        return None;
    }
    checked_range(ctx, req.sector, u64::from(req.size_bytes)).ok()
}

/// Reads `req`'s bytes at `offset` (from [`servable_offset`]) from the local disk,
/// counted as disk reads.
pub(super) async fn read_local(
    resource: &Resource,
    offset: u64,
    req: &BlockRequest,
) -> Result<AlignedBuf, StorageError> {
    let buf = resource.disk.read(offset, req.size_bytes as usize).await?;
    resource
        .io
        .disk_read_bytes
        .fetch_add(u64::from(req.size_bytes), Ordering::Relaxed);
    Ok(buf)
}

/// The body of the data answer (`P_DATA_REPLY`, `P_RS_DATA_REPLY`) carrying `data` for
/// `req`.
pub(super) fn data_reply(req: &BlockRequest, data: &[u8]) -> DataPacket {
    DataPacket {
        header: DataHeader {
            sector: req.sector,
            block_id: req.block_id,
            seq_num: 0,
            dp_flags: DpFlags(0),
        },
        payload: bytes::Bytes::copy_from_slice(data),
    }
}

/// The body of the negative answer (`P_NEG_DREPLY`, `P_NEG_RS_DREPLY`): the request
/// echoed.
pub(super) fn negative_reply(req: &BlockRequest) -> BlockAck {
    BlockAck {
        sector: req.sector,
        block_id: req.block_id,
        size_bytes: req.size_bytes,
        seq_num: 0,
    }
}
