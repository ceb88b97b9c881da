//! Write and data packets: `p_data` (P_DATA, P_DATA_REPLY, P_RS_DATA_REPLY) and `p_trim`
//! (P_TRIM, P_ZEROES), with the `DP_*` flag bits.

use bytes::Bytes;

use super::reader::Reader;
use crate::WireError;

/// `dp_flags` of a `p_data` (drbd_protocol.h `DP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DpFlags(pub u32);

impl DpFlags {
    /// No longer used.
    pub const HARDBARRIER: DpFlags = DpFlags(1);
    /// REQ_SYNC.
    pub const RW_SYNC: DpFlags = DpFlags(2);
    /// Resync data: the receiver may mark the block in sync.
    pub const MAY_SET_IN_SYNC: DpFlags = DpFlags(4);
    /// REQ_UNPLUG.
    pub const UNPLUG: DpFlags = DpFlags(8);
    /// REQ_FUA.
    pub const FUA: DpFlags = DpFlags(16);
    /// REQ_PREFLUSH.
    pub const FLUSH: DpFlags = DpFlags(32);
    /// REQ_DISCARD.
    pub const DISCARD: DpFlags = DpFlags(64);
    /// Protocol B write: answer with P_RECV_ACK.
    pub const SEND_RECEIVE_ACK: DpFlags = DpFlags(128);
    /// Protocol C write: answer with P_WRITE_ACK.
    pub const SEND_WRITE_ACK: DpFlags = DpFlags(256);
    /// WRITE_SAME.
    pub const WSAME: DpFlags = DpFlags(512);
    /// REQ_OP_WRITE_ZEROES.
    pub const ZEROES: DpFlags = DpFlags(1024);

    /// True when every bit of `other` is set.
    pub fn contains(self, other: DpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for DpFlags {
    type Output = DpFlags;
    fn bitor(self, rhs: DpFlags) -> DpFlags {
        DpFlags(self.0 | rhs.0)
    }
}

/// `struct p_data` (24 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DataHeader {
    /// First 512-byte sector.
    pub sector: u64,
    /// Sender's request handle, echoed in acks (opaque to the receiver).
    pub block_id: u64,
    /// Write sequence number (two-primaries ordering), 0 otherwise.
    pub seq_num: u32,
    /// `DP_*` flags.
    pub dp_flags: DpFlags,
}

/// Encoded size of [`DataHeader`].
pub const DATA_HEADER_BYTES: usize = 24;

impl DataHeader {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<DataHeader, WireError> {
        Ok(DataHeader {
            sector: r.u64()?,
            block_id: r.u64()?,
            seq_num: r.u32()?,
            dp_flags: DpFlags(r.u32()?),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sector.to_be_bytes());
        out.extend_from_slice(&self.block_id.to_be_bytes());
        out.extend_from_slice(&self.seq_num.to_be_bytes());
        out.extend_from_slice(&self.dp_flags.0.to_be_bytes());
    }
}

/// P_DATA, P_DATA_REPLY or P_RS_DATA_REPLY: a `p_data` and the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPacket {
    /// The `p_data`.
    pub header: DataHeader,
    /// Everything after the `p_data`: the data-integrity digest first when `data-integrity-alg` is
    /// configured (split it with [`DataPacket::split_digest`]), then the data.
    pub payload: Bytes,
}

impl DataPacket {
    /// Splits the payload into (digest, data) for a `data-integrity-alg` digest of `digest_bytes`.
    pub fn split_digest(&self, digest_bytes: usize) -> Option<(Bytes, Bytes)> {
        (digest_bytes <= self.payload.len()).then(|| {
            (
                self.payload.slice(..digest_bytes),
                self.payload.slice(digest_bytes..),
            )
        })
    }
}

/// P_TRIM or P_ZEROES: `struct p_trim`, a `p_data` and the size (no data follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TrimPacket {
    /// The `p_data`.
    pub header: DataHeader,
    /// Bytes to discard or zero (`bio->bi_size`).
    pub size_bytes: u32,
}
