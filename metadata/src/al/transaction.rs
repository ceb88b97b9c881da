//! The 4 KiB activity-log transaction block (D84 `struct al_transaction_on_disk`), big-endian.
//!
//! ```text
//! @0   u32 magic 0x69cb65a2      @16  u16 context_size (al-extents)
//! @4   u32 tr_number             @18  u16 context_start_slot_nr
//! @8   u32 crc32c                @20  16 reserved bytes
//! @12  u16 type (0 update, 0xffff initialized)
//! @14  u16 n_updates             @36  u16 update_slot_nr[64]
//!                                @164 u32 update_extent_nr[64]
//!                                @420 u32 context[919]
//! ```
//!
//! The checksum is DRBD's `crc32c(0, block, 4096)` with the crc field zeroed: CRC32C with seed 0
//! and no final inversion (not the standard CRC32C, which starts at !0 and inverts at the end).

use crate::consts::*;
use crate::error::{MetaError, Result};

/// Size of one transaction block.
pub const AL_TRANSACTION_BYTES: usize = BLOCK_4K_BYTES;
/// "Unused" marker of slot numbers.
pub const SLOT_UNUSED: u16 = 0xffff;
/// "Free" marker of extent numbers (`LC_FREE`).
pub const EXTENT_FREE: u32 = 0xffff_ffff;

const OFF_UPDATE_SLOTS: usize = 36;
const OFF_UPDATE_EXTENTS: usize = OFF_UPDATE_SLOTS + 2 * AL_UPDATES_PER_TRANSACTION;
const OFF_CONTEXT: usize = OFF_UPDATE_EXTENTS + 4 * AL_UPDATES_PER_TRANSACTION;
const _: () = assert!(OFF_CONTEXT == 420);
const _: () = assert!(OFF_CONTEXT + 4 * AL_CONTEXT_PER_TRANSACTION == AL_TRANSACTION_BYTES);

/// Transaction type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlTransactionType {
    /// Updates of the active set (`AL_TR_UPDATE`).
    Update,
    /// Written by create-md / apply-al (`AL_TR_INITIALIZED`).
    Initialized,
    /// Any other value (kept for round trips; replay treats it like an update).
    Other(u16),
}

impl AlTransactionType {
    fn from_u16(v: u16) -> Self {
        match v {
            0 => AlTransactionType::Update,
            0xffff => AlTransactionType::Initialized,
            x => AlTransactionType::Other(x),
        }
    }

    fn to_u16(self) -> u16 {
        match self {
            AlTransactionType::Update => 0,
            AlTransactionType::Initialized => 0xffff,
            AlTransactionType::Other(x) => x,
        }
    }
}

/// A decoded AL transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlTransaction {
    /// Transaction number.
    pub tr_number: u32,
    /// Type.
    pub tr_type: AlTransactionType,
    /// Number of valid update entries (at most 64).
    pub n_updates: u16,
    /// Number of AL slots (al-extents).
    pub context_size: u16,
    /// Slot of `context[0]`.
    pub context_start_slot_nr: u16,
    /// The 16 reserved bytes (zero when written by DRBD).
    pub reserved: [u8; 16],
    /// Slot of each update; unused entries are 0xffff.
    pub update_slot_nr: [u16; AL_UPDATES_PER_TRANSACTION],
    /// New extent of each update; unused entries are 0xffffffff.
    pub update_extent_nr: [u32; AL_UPDATES_PER_TRANSACTION],
    /// Extents of slots `context_start_slot_nr..`, 0xffffffff for free / past the end.
    pub context: Box<[u32; AL_CONTEXT_PER_TRANSACTION]>,
}

/// DRBD's checksum: CRC32C, seed 0, no final inversion.
pub fn drbd_crc32c(seed: u32, data: &[u8]) -> u32 {
    // crc32c_append(c, d) = !raw_update(!c, d); so raw_update(seed, d) = !crc32c_append(!seed, d).
    !crc32c::crc32c_append(!seed, data)
}

/// The checksum of a block as DRBD computes it: over the block with the crc field zeroed.
pub fn block_crc(block: &[u8; AL_TRANSACTION_BYTES]) -> u32 {
    let mut copy = *block;
    copy[8..12].fill(0);
    drbd_crc32c(0, &copy)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl AlTransaction {
    /// The block create-md and apply-al write into every ring slot.
    pub fn initialized() -> AlTransaction {
        AlTransaction {
            tr_number: 0,
            tr_type: AlTransactionType::Initialized,
            n_updates: 0,
            context_size: 0,
            context_start_slot_nr: 0,
            reserved: [0; 16],
            update_slot_nr: [0; AL_UPDATES_PER_TRANSACTION],
            update_extent_nr: [0; AL_UPDATES_PER_TRANSACTION],
            context: Box::new([0; AL_CONTEXT_PER_TRANSACTION]),
        }
    }

    /// Encodes, computing the checksum.
    pub fn encode(&self) -> [u8; AL_TRANSACTION_BYTES] {
        let mut b = [0u8; AL_TRANSACTION_BYTES];
        b[0..4].copy_from_slice(&AL_MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&self.tr_number.to_be_bytes());
        b[12..14].copy_from_slice(&self.tr_type.to_u16().to_be_bytes());
        b[14..16].copy_from_slice(&self.n_updates.to_be_bytes());
        b[16..18].copy_from_slice(&self.context_size.to_be_bytes());
        b[18..20].copy_from_slice(&self.context_start_slot_nr.to_be_bytes());
        b[20..36].copy_from_slice(&self.reserved);
        for (i, s) in self.update_slot_nr.iter().enumerate() {
            let at = OFF_UPDATE_SLOTS + 2 * i;
            b[at..at + 2].copy_from_slice(&s.to_be_bytes());
        }
        for (i, e) in self.update_extent_nr.iter().enumerate() {
            let at = OFF_UPDATE_EXTENTS + 4 * i;
            b[at..at + 4].copy_from_slice(&e.to_be_bytes());
        }
        for (i, e) in self.context.iter().enumerate() {
            let at = OFF_CONTEXT + 4 * i;
            b[at..at + 4].copy_from_slice(&e.to_be_bytes());
        }
        let crc = drbd_crc32c(0, &b);
        b[8..12].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes a block, checking magic, checksum and `n_updates`.
    pub fn decode(block: &[u8]) -> Result<AlTransaction> {
        let block: &[u8; AL_TRANSACTION_BYTES] = block
            .get(..AL_TRANSACTION_BYTES)
            .and_then(|s| s.try_into().ok())
            .ok_or(MetaError::Truncated {
                what: "AL transaction",
                needed: AL_TRANSACTION_BYTES,
                got: block.len(),
            })?;
        let magic = be32(block, 0);
        if magic != AL_MAGIC {
            return Err(MetaError::AlBadMagic(magic));
        }
        let tr_number = be32(block, 4);
        let stored = be32(block, 8);
        let computed = block_crc(block);
        if stored != computed {
            return Err(MetaError::AlBadCrc {
                tr_number,
                stored,
                computed,
            });
        }
        let n_updates = be16(block, 14);
        if usize::from(n_updates) > AL_UPDATES_PER_TRANSACTION {
            return Err(MetaError::AlTooManyUpdates {
                tr_number,
                n_updates,
            });
        }
        let mut reserved = [0u8; 16];
        reserved.copy_from_slice(&block[20..36]);
        let mut update_slot_nr = [0u16; AL_UPDATES_PER_TRANSACTION];
        for (i, s) in update_slot_nr.iter_mut().enumerate() {
            *s = be16(block, OFF_UPDATE_SLOTS + 2 * i);
        }
        let mut update_extent_nr = [0u32; AL_UPDATES_PER_TRANSACTION];
        for (i, e) in update_extent_nr.iter_mut().enumerate() {
            *e = be32(block, OFF_UPDATE_EXTENTS + 4 * i);
        }
        let mut context = Box::new([0u32; AL_CONTEXT_PER_TRANSACTION]);
        for (i, e) in context.iter_mut().enumerate() {
            *e = be32(block, OFF_CONTEXT + 4 * i);
        }
        Ok(AlTransaction {
            tr_number,
            tr_type: AlTransactionType::from_u16(be16(block, 12)),
            n_updates,
            context_size: be16(block, 16),
            context_start_slot_nr: be16(block, 18),
            reserved,
            update_slot_nr,
            update_extent_nr,
            context,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_seed0_without_final_xor() {
        // Bitwise reference: reflected Castagnoli polynomial, seed 0, no inversion.
        fn reference(data: &[u8]) -> u32 {
            let mut crc = 0u32;
            for &byte in data {
                crc ^= u32::from(byte);
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        (crc >> 1) ^ 0x82F6_3B78
                    } else {
                        crc >> 1
                    };
                }
            }
            crc
        }
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(drbd_crc32c(0, &data), reference(&data));
        assert_ne!(
            drbd_crc32c(0, &data),
            crc32c::crc32c(&data),
            "must differ from standard CRC32C"
        );
    }

    #[test]
    fn golden_update_block() {
        let mut t = AlTransaction::initialized();
        t.tr_type = AlTransactionType::Update;
        t.tr_number = 0x0102_0304;
        t.n_updates = 2;
        t.context_size = 1237;
        t.context_start_slot_nr = 919;
        t.update_slot_nr = [SLOT_UNUSED; 64];
        t.update_extent_nr = [EXTENT_FREE; 64];
        t.update_slot_nr[0] = 5;
        t.update_extent_nr[0] = 31;
        t.update_slot_nr[1] = 0x1234;
        t.update_extent_nr[1] = 0xA0B0_C0D0;
        t.context.fill(EXTENT_FREE);
        t.context[0] = 7;
        let b = t.encode();
        assert_eq!(
            &b[0..8],
            &[0x69, 0xcb, 0x65, 0xa2, 1, 2, 3, 4],
            "AL header format changed"
        );
        assert_eq!(
            &b[12..20],
            &[0, 0, 0, 2, 0x04, 0xD5, 0x03, 0x97],
            "AL header format changed"
        );
        assert_eq!(&b[36..40], &[0, 5, 0x12, 0x34], "AL update slots moved");
        assert_eq!(&b[40..42], &[0xff, 0xff]);
        assert_eq!(
            &b[164..172],
            &[0, 0, 0, 31, 0xA0, 0xB0, 0xC0, 0xD0],
            "AL update extents moved"
        );
        assert_eq!(
            &b[420..428],
            &[0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff],
            "AL context moved"
        );
        assert_eq!(
            u32::from_be_bytes(b[8..12].try_into().unwrap()),
            block_crc(&b)
        );
        assert_eq!(AlTransaction::decode(&b).unwrap(), t);
    }

    #[test]
    fn corrupt_blocks_rejected() {
        let good = AlTransaction::initialized().encode();
        let mut b = good;
        b[100] ^= 1;
        assert!(matches!(
            AlTransaction::decode(&b),
            Err(MetaError::AlBadCrc { .. })
        ));
        let mut b = good;
        b[0] = 0;
        assert!(matches!(
            AlTransaction::decode(&b),
            Err(MetaError::AlBadMagic(_))
        ));
        assert!(AlTransaction::decode(&good[..4000]).is_err());
        let mut t = AlTransaction::initialized();
        t.n_updates = 65;
        assert!(matches!(
            AlTransaction::decode(&t.encode()),
            Err(MetaError::AlTooManyUpdates { .. })
        ));
    }
}
