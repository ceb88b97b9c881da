//! Connection setup packets: `p_connection_features`, `p_protocol`, `p_rs_param_95`
//! (P_SYNC_PARAM89), `p_uuids`, `p_sizes` (+ `o_qlim`), `p_req_state_reply`.

use rdbd_types::Protocol;

use super::reader::{check_c_string, put_c_string, Reader};
use crate::WireError;

/// Feature flag: TRIM/DISCARD on the wire (P_TRIM).
pub const FF_TRIM: u32 = 1;
/// Feature flag: thin resync (P_RS_THIN_REQ, P_RS_DEALLOCATED).
pub const FF_THIN_RESYNC: u32 = 2;
/// Feature flag: WRITE_SAME, and `o_qlim` appended to P_SIZES.
pub const FF_WSAME: u32 = 4;
/// Feature flag: WRITE_ZEROES (P_ZEROES).
pub const FF_WZEROES: u32 = 8;

/// The protocol version rdbd speaks.
pub const PROTOCOL_VERSION: u32 = 101;
/// The oldest protocol version DRBD 8.4 speaks.
pub const PROTOCOL_VERSION_MIN_84: u32 = 86;
/// Length of an algorithm-name field, `SHARED_SECRET_MAX` (NUL included).
pub const ALG_NAME_BYTES: usize = 64;

/// `struct p_connection_features` (72 bytes, sent with an h80 header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnectionFeatures {
    /// Oldest protocol version the sender speaks.
    pub protocol_min: u32,
    /// `FF_*` bits.
    pub feature_flags: u32,
    /// Newest protocol version the sender speaks (0 means "same as min").
    pub protocol_max: u32,
}

impl ConnectionFeatures {
    /// The version both sides speak (`min(our max, peer max)`), or `None` when the ranges do not
    /// overlap (the kernel logs "incompatible DRBD dialects").
    pub fn agree(&self, peer: &ConnectionFeatures) -> Option<u32> {
        let peer_max = if peer.protocol_max == 0 {
            peer.protocol_min
        } else {
            peer.protocol_max
        };
        if self.protocol_max < peer.protocol_min || self.protocol_min > peer_max {
            return None;
        }
        Some(self.protocol_max.min(peer_max))
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<ConnectionFeatures, WireError> {
        let f = ConnectionFeatures {
            protocol_min: r.u32()?,
            feature_flags: r.u32()?,
            protocol_max: r.u32()?,
        };
        let _pad_and_reserved = r.bytes(4 + 56)?;
        Ok(f)
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.protocol_min.to_be_bytes());
        out.extend_from_slice(&self.feature_flags.to_be_bytes());
        out.extend_from_slice(&self.protocol_max.to_be_bytes());
        out.resize(out.len() + 4 + 56, 0);
    }
}

impl std::fmt::Display for AfterSbPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// After-split-brain policy (`enum drbd_after_sb_p`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
pub enum AfterSbPolicy {
    /// `disconnect`.
    #[default]
    Disconnect = 0,
    /// `discard-younger-primary`.
    DiscardYoungerPrimary = 1,
    /// `discard-older-primary`.
    DiscardOlderPrimary = 2,
    /// `discard-zero-changes`.
    DiscardZeroChanges = 3,
    /// `discard-least-changes`.
    DiscardLeastChanges = 4,
    /// `discard-local`.
    DiscardLocal = 5,
    /// `discard-remote`.
    DiscardRemote = 6,
    /// `consensus`.
    Consensus = 7,
    /// `discard-secondary`.
    DiscardSecondary = 8,
    /// `call-pri-lost-after-sb`.
    CallHelper = 9,
    /// `violently-as0p`.
    Violently = 10,
}

impl AfterSbPolicy {
    /// Every policy with its drbd.conf name.
    pub const ALL: [(AfterSbPolicy, &'static str); 11] = [
        (AfterSbPolicy::Disconnect, "disconnect"),
        (
            AfterSbPolicy::DiscardYoungerPrimary,
            "discard-younger-primary",
        ),
        (AfterSbPolicy::DiscardOlderPrimary, "discard-older-primary"),
        (AfterSbPolicy::DiscardZeroChanges, "discard-zero-changes"),
        (AfterSbPolicy::DiscardLeastChanges, "discard-least-changes"),
        (AfterSbPolicy::DiscardLocal, "discard-local"),
        (AfterSbPolicy::DiscardRemote, "discard-remote"),
        (AfterSbPolicy::Consensus, "consensus"),
        (AfterSbPolicy::DiscardSecondary, "discard-secondary"),
        (AfterSbPolicy::CallHelper, "call-pri-lost-after-sb"),
        (AfterSbPolicy::Violently, "violently-as0p"),
    ];

    /// The drbd.conf name.
    pub fn name(self) -> &'static str {
        AfterSbPolicy::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("disconnect", |(_, n)| n)
    }

    /// The policy of a drbd.conf name (`discard-node-NAME` is resolved by the caller).
    pub fn from_name(name: &str) -> Option<AfterSbPolicy> {
        AfterSbPolicy::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(p, _)| *p)
    }

    /// The policy with this DRBD number.
    pub fn from_u32(value: u32) -> Option<AfterSbPolicy> {
        use AfterSbPolicy::*;
        [
            Disconnect,
            DiscardYoungerPrimary,
            DiscardOlderPrimary,
            DiscardZeroChanges,
            DiscardLeastChanges,
            DiscardLocal,
            DiscardRemote,
            Consensus,
            DiscardSecondary,
            CallHelper,
            Violently,
        ]
        .get(value as usize)
        .copied()
    }
}

/// `conn_flags` bit: the sender was told `--discard-my-data`.
pub const CF_DISCARD_MY_DATA: u32 = 1;
/// `conn_flags` bit: `--dry-run`.
pub const CF_DRY_RUN: u32 = 2;

/// `struct p_protocol` + integrity_alg: P_PROTOCOL and P_PROTOCOL_UPDATE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProtocolParams {
    /// Replication protocol (A = 1, B = 2, C = 3 on the wire).
    pub protocol: Protocol,
    /// after-sb-0pri.
    pub after_sb_0p: AfterSbPolicy,
    /// after-sb-1pri.
    pub after_sb_1p: AfterSbPolicy,
    /// after-sb-2pri.
    pub after_sb_2p: AfterSbPolicy,
    /// `CF_*` bits.
    pub conn_flags: u32,
    /// allow-two-primaries.
    pub two_primaries: bool,
    /// data-integrity-alg ("" = none); sent as the string and its NUL.
    pub integrity_alg: String,
}

const P_PROTOCOL: &str = "P_PROTOCOL";

impl ProtocolParams {
    pub(crate) fn read(
        r: &mut Reader<'_>,
        packet: &'static str,
    ) -> Result<ProtocolParams, WireError> {
        let protocol_num = r.u32()?;
        let protocol = protocol_num
            .checked_sub(1)
            .and_then(|i| Protocol::ALL.get(i as usize).copied())
            .ok_or(WireError::InvalidField {
                packet,
                field: "protocol",
                value: u64::from(protocol_num),
            })?;
        let mut asb = |field| {
            let v = r.u32()?;
            AfterSbPolicy::from_u32(v).ok_or(WireError::InvalidField {
                packet,
                field,
                value: u64::from(v),
            })
        };
        let after_sb_0p = asb("after_sb_0p")?;
        let after_sb_1p = asb("after_sb_1p")?;
        let after_sb_2p = asb("after_sb_2p")?;
        let conn_flags = r.u32()?;
        let two_primaries = r.u32()? != 0;
        let rest = r.rest();
        let integrity_alg = super::reader::c_string_from(rest, packet, "integrity_alg")?;
        Ok(ProtocolParams {
            protocol,
            after_sb_0p,
            after_sb_1p,
            after_sb_2p,
            conn_flags,
            two_primaries,
            integrity_alg,
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        check_c_string(
            &self.integrity_alg,
            ALG_NAME_BYTES,
            P_PROTOCOL,
            "integrity_alg",
        )?;
        out.extend_from_slice(&(self.protocol as u32 + 1).to_be_bytes());
        out.extend_from_slice(&(self.after_sb_0p as u32).to_be_bytes());
        out.extend_from_slice(&(self.after_sb_1p as u32).to_be_bytes());
        out.extend_from_slice(&(self.after_sb_2p as u32).to_be_bytes());
        out.extend_from_slice(&self.conn_flags.to_be_bytes());
        out.extend_from_slice(&u32::from(self.two_primaries).to_be_bytes());
        out.extend_from_slice(self.integrity_alg.as_bytes());
        out.push(0);
        Ok(())
    }
}

/// `struct p_rs_param_95`, sent as P_SYNC_PARAM89 at protocol >= 95 (always 148 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SyncParams {
    /// resync-rate in KiB/s.
    pub resync_rate_kib: u32,
    /// verify-alg ("" = none).
    pub verify_alg: String,
    /// csums-alg ("" = none).
    pub csums_alg: String,
    /// c-plan-ahead in 0.1 s units.
    pub c_plan_ahead_ds: u32,
    /// c-delay-target in 0.1 s units.
    pub c_delay_target_ds: u32,
    /// c-fill-target in sectors.
    pub c_fill_target_sectors: u32,
    /// c-max-rate in KiB/s.
    pub c_max_rate_kib: u32,
}

const P_SYNC_PARAM89: &str = "P_SYNC_PARAM89";

impl SyncParams {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<SyncParams, WireError> {
        Ok(SyncParams {
            resync_rate_kib: r.u32()?,
            verify_alg: r.c_string(ALG_NAME_BYTES, "verify_alg")?,
            csums_alg: r.c_string(ALG_NAME_BYTES, "csums_alg")?,
            c_plan_ahead_ds: r.u32()?,
            c_delay_target_ds: r.u32()?,
            c_fill_target_sectors: r.u32()?,
            c_max_rate_kib: r.u32()?,
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        out.extend_from_slice(&self.resync_rate_kib.to_be_bytes());
        put_c_string(
            out,
            &self.verify_alg,
            ALG_NAME_BYTES,
            P_SYNC_PARAM89,
            "verify_alg",
        )?;
        put_c_string(
            out,
            &self.csums_alg,
            ALG_NAME_BYTES,
            P_SYNC_PARAM89,
            "csums_alg",
        )?;
        out.extend_from_slice(&self.c_plan_ahead_ds.to_be_bytes());
        out.extend_from_slice(&self.c_delay_target_ds.to_be_bytes());
        out.extend_from_slice(&self.c_fill_target_sectors.to_be_bytes());
        out.extend_from_slice(&self.c_max_rate_kib.to_be_bytes());
        Ok(())
    }
}

/// UUID flag: the sender was told `--discard-my-data`.
pub const UUID_FLAG_DISCARD_MY_DATA: u64 = 1;
/// UUID flag: the sender was a crashed primary.
pub const UUID_FLAG_CRASHED_PRIMARY: u64 = 2;
/// UUID flag: the sender's disk is (about to be) Inconsistent.
pub const UUID_FLAG_INCONSISTENT: u64 = 4;
/// UUID flag: skip the initial sync (`new-current-uuid --clear-bitmap`).
pub const UUID_FLAG_SKIP_INITIAL_SYNC: u64 = 8;

/// `struct p_uuids` (6 x u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Uuids {
    /// Current UUID (bit 0 = primary indicator).
    pub current: u64,
    /// Bitmap UUID.
    pub bitmap: u64,
    /// History UUIDs.
    pub history: [u64; 2],
    /// Number of set bits in the sender's bitmap.
    pub dirty_bits: u64,
    /// `UUID_FLAG_*` bits.
    pub flags: u64,
}

impl Uuids {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Uuids, WireError> {
        Ok(Uuids {
            current: r.u64()?,
            bitmap: r.u64()?,
            history: [r.u64()?, r.u64()?],
            dirty_bits: r.u64()?,
            flags: r.u64()?,
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        for v in [
            self.current,
            self.bitmap,
            self.history[0],
            self.history[1],
            self.dirty_bits,
            self.flags,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// `dds_flags` bit: resize was forced.
pub const DDSF_FORCED: u16 = 1;
/// `dds_flags` bit: do not resync the new space.
pub const DDSF_NO_RESYNC: u16 = 2;

/// `struct o_qlim` (24 bytes), appended to P_SIZES when DRBD_FF_WSAME was agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct QueueLimits {
    /// Physical block size.
    pub physical_block_size_bytes: u32,
    /// Logical block size.
    pub logical_block_size_bytes: u32,
    /// Alignment offset.
    pub alignment_offset_bytes: u32,
    /// Minimum I/O size.
    pub io_min_bytes: u32,
    /// Optimal I/O size.
    pub io_opt_bytes: u32,
    /// The backing device can discard.
    pub discard_enabled: bool,
    /// Discarded blocks read as zeroes.
    pub discard_zeroes_data: bool,
    /// The backing device supports WRITE_SAME.
    pub write_same_capable: bool,
}

/// `struct p_sizes` (32 bytes, 56 with `o_qlim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sizes {
    /// Usable size of the backing device in sectors (`d_size`; 0 when diskless).
    pub backing_sectors: u64,
    /// User-requested size in sectors (`u_size`; 0 = not set).
    pub user_sectors: u64,
    /// Current size of the DRBD device in sectors (`c_size`; 0 asks the peer to reply).
    pub current_sectors: u64,
    /// Largest bio the sender submits (`max_bio_size`).
    pub max_bio_size_bytes: u32,
    /// `queue_order_type` (unused, 0).
    pub queue_order_type: u16,
    /// `DDSF_*` bits.
    pub dds_flags: u16,
    /// Queue limits, present iff DRBD_FF_WSAME was agreed.
    pub queue_limits: Option<QueueLimits>,
}

impl Sizes {
    pub(crate) fn read(r: &mut Reader<'_>, length: usize) -> Result<Sizes, WireError> {
        let mut s = Sizes {
            backing_sectors: r.u64()?,
            user_sectors: r.u64()?,
            current_sectors: r.u64()?,
            max_bio_size_bytes: r.u32()?,
            queue_order_type: r.u16()?,
            dds_flags: r.u16()?,
            queue_limits: None,
        };
        match length {
            32 => {}
            56 => {
                s.queue_limits = Some(QueueLimits {
                    physical_block_size_bytes: r.u32()?,
                    logical_block_size_bytes: r.u32()?,
                    alignment_offset_bytes: r.u32()?,
                    io_min_bytes: r.u32()?,
                    io_opt_bytes: r.u32()?,
                    discard_enabled: r.u8()? != 0,
                    discard_zeroes_data: r.u8()? != 0,
                    write_same_capable: r.u8()? != 0,
                });
                let _pad = r.u8()?;
            }
            _ => {
                return Err(WireError::BadLength {
                    packet: "P_SIZES",
                    length,
                    expected: "32, or 56 with o_qlim",
                });
            }
        }
        Ok(s)
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.backing_sectors.to_be_bytes());
        out.extend_from_slice(&self.user_sectors.to_be_bytes());
        out.extend_from_slice(&self.current_sectors.to_be_bytes());
        out.extend_from_slice(&self.max_bio_size_bytes.to_be_bytes());
        out.extend_from_slice(&self.queue_order_type.to_be_bytes());
        out.extend_from_slice(&self.dds_flags.to_be_bytes());
        if let Some(q) = &self.queue_limits {
            for v in [
                q.physical_block_size_bytes,
                q.logical_block_size_bytes,
                q.alignment_offset_bytes,
                q.io_min_bytes,
                q.io_opt_bytes,
            ] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            out.extend_from_slice(&[
                u8::from(q.discard_enabled),
                u8::from(q.discard_zeroes_data),
                u8::from(q.write_same_capable),
                0,
            ]);
        }
    }
}

/// `struct p_req_state_reply`: the answer to a state change request (`enum drbd_state_rv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StateChangeReply {
    /// `SS_*`: >= 1 success (SS_SUCCESS 1, SS_NOTHING_TO_DO 2, SS_CW_SUCCESS 3, SS_CW_NO_NEED 4),
    /// <= 0 failure (e.g. SS_TWO_PRIMARIES -1, SS_CW_FAILED_BY_PEER -10).
    pub retcode: i32,
}

impl StateChangeReply {
    /// True for the success codes.
    pub fn is_success(self) -> bool {
        self.retcode >= 1
    }
}
