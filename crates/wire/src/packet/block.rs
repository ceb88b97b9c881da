//! Block requests, acks and descriptors: `p_block_req`, `p_block_ack`, `p_block_desc`,
//! `p_barrier`, `p_barrier_ack`, `p_delay_probe93`.

use super::reader::Reader;
use crate::WireError;

/// `block_id` of P_OV_RESULT: the block verified equal.
pub const ID_IN_SYNC: u64 = 4711;
/// `block_id` of P_OV_RESULT: the block differs.
pub const ID_OUT_OF_SYNC: u64 = 4712;
/// `block_id` of resync requests and their acks (`ID_SYNCER`, -1).
pub const ID_SYNCER: u64 = u64::MAX;

/// `struct p_block_req` (24 bytes): P_DATA_REQUEST, P_RS_DATA_REQUEST, P_OV_REQUEST, P_RS_THIN_REQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BlockRequest {
    /// First 512-byte sector.
    pub sector: u64,
    /// Requester's handle, echoed in the reply.
    pub block_id: u64,
    /// Bytes requested (`blksize`).
    pub size_bytes: u32,
}

impl BlockRequest {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<BlockRequest, WireError> {
        let req = BlockRequest {
            sector: r.u64()?,
            block_id: r.u64()?,
            size_bytes: r.u32()?,
        };
        let _pad = r.u32()?;
        Ok(req)
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sector.to_be_bytes());
        out.extend_from_slice(&self.block_id.to_be_bytes());
        out.extend_from_slice(&self.size_bytes.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
    }
}

/// A `p_block_req` followed by a digest: P_CSUM_RS_REQUEST (csums-alg) or P_OV_REPLY (verify-alg).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DigestRequest {
    /// The block.
    pub request: BlockRequest,
    /// The digest of the block's data (1..=64 bytes).
    pub digest: Vec<u8>,
}

/// `struct p_block_ack` (24 bytes): the meta-socket acks, P_OV_RESULT, P_RS_IS_IN_SYNC, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BlockAck {
    /// First 512-byte sector.
    pub sector: u64,
    /// The requester's handle from the request (or ID_SYNCER / ID_IN_SYNC / ID_OUT_OF_SYNC).
    pub block_id: u64,
    /// Bytes acked (`blksize`).
    pub size_bytes: u32,
    /// Sequence number (`seq_num`).
    pub seq_num: u32,
}

impl BlockAck {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<BlockAck, WireError> {
        Ok(BlockAck {
            sector: r.u64()?,
            block_id: r.u64()?,
            size_bytes: r.u32()?,
            seq_num: r.u32()?,
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sector.to_be_bytes());
        out.extend_from_slice(&self.block_id.to_be_bytes());
        out.extend_from_slice(&self.size_bytes.to_be_bytes());
        out.extend_from_slice(&self.seq_num.to_be_bytes());
    }
}

/// `struct p_block_desc` (16 bytes): P_OUT_OF_SYNC, P_RS_DEALLOCATED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BlockDesc {
    /// First 512-byte sector.
    pub sector: u64,
    /// Bytes described (`blksize`).
    pub size_bytes: u32,
}

impl BlockDesc {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<BlockDesc, WireError> {
        let desc = BlockDesc {
            sector: r.u64()?,
            size_bytes: r.u32()?,
        };
        let _pad = r.u32()?;
        Ok(desc)
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sector.to_be_bytes());
        out.extend_from_slice(&self.size_bytes.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
    }
}

/// `struct p_barrier`: closes the current write epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Barrier {
    /// Epoch handle; the kernel sends it in host order and expects it echoed in P_BARRIER_ACK.
    pub barrier: u32,
}

/// `struct p_barrier_ack`: every write of the epoch is on stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BarrierAck {
    /// The handle from P_BARRIER, echoed unchanged.
    pub barrier: u32,
    /// Number of writes in the epoch.
    pub set_size: u32,
}

/// `struct p_delay_probe93` (the 8.4 kernel ignores its contents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DelayProbe {
    /// Matches the probe sent on the other socket.
    pub seq_num: u32,
    /// Microseconds after the reference time point.
    pub offset_us: u32,
}
