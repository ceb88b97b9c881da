//! The v08 superblock: 4 KiB, big-endian (D84 `struct meta_data_on_disk`).
//!
//! ```text
//! 0x00 u64 la_size_sect        0x3C u32 magic (MD_08 clean / 84_UNCLEAN attached)
//! 0x08 u64 uuid[4]             0x40 u32 md_size_sect
//!      current, bitmap,        0x44 s32 al_offset
//!      history[0], history[1]  0x48 u32 al_nr_extents
//! 0x28 u64 device_uuid         0x4C s32 bm_offset
//! 0x30 u64 reserved            0x50 u32 bm_bytes_per_bit (4096)
//! 0x38 u32 flags               0x54 u32 la_peer_max_bio_size
//!                              0x58 u32 al_stripes   0x5C u32 al_stripe_size_4k
//! 0x60 .. 0xFFF zero
//! ```
//!
//! [`Superblock::decode`] checks what can be checked without knowing the device (magic,
//! bytes-per-bit, striping, offsets consistent with *some* layout kind);
//! [`Superblock::validate_layout`] then checks it against the layout computed for the device.

use crate::consts::*;
use crate::error::{MetaError, Result};
use crate::layout::{AlStripes, Layout, LayoutKind};

/// The `MDF_*` flag word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MdFlags(pub u32);

impl MdFlags {
    /// Data is consistent.
    pub const CONSISTENT: u32 = 0x1;
    /// Node was primary.
    pub const PRIMARY_IND: u32 = 0x2;
    /// Node was connected.
    pub const CONNECTED_IND: u32 = 0x4;
    /// Full sync was in progress (all bits being set).
    pub const FULL_SYNC: u32 = 0x8;
    /// Data was up to date.
    pub const WAS_UP_TO_DATE: u32 = 0x10;
    /// Peer's disk was outdated or inconsistent.
    pub const PEER_OUT_DATED: u32 = 0x20;
    /// Crashed primary that has not seen its peer since.
    pub const CRASHED_PRIMARY: u32 = 0x40;
    /// The activity log is clean (no apply-al needed).
    pub const AL_CLEAN: u32 = 0x80;
    /// The activity log is disabled.
    pub const AL_DISABLED: u32 = 0x100;

    /// Whether all bits of `mask` are set.
    pub fn has(self, mask: u32) -> bool {
        self.0 & mask == mask
    }

    /// Sets or clears `mask`.
    pub fn set(&mut self, mask: u32, on: bool) {
        if on {
            self.0 |= mask;
        } else {
            self.0 &= !mask;
        }
    }
}

/// The four generation UUIDs of v08.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Uuids {
    /// Current data generation.
    pub current: u64,
    /// Bitmap's base generation (0 when the bitmap is not in use).
    pub bitmap: u64,
    /// History: younger, older.
    pub history: [u64; 2],
}

/// Which of the two v08 magics the superblock carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MdMagic {
    /// `DRBD_MD_MAGIC_08`: detached cleanly or via apply-al.
    Clean,
    /// `DRBD_MD_MAGIC_84_UNCLEAN`: written while attached.
    Unclean,
}

impl MdMagic {
    /// The on-disk value.
    pub fn value(self) -> u32 {
        match self {
            MdMagic::Clean => MD_MAGIC_08,
            MdMagic::Unclean => MD_MAGIC_84_UNCLEAN,
        }
    }
}

/// A decoded v08 superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// Last agreed size of the replicated device, sectors.
    pub la_size_sect: u64,
    /// Generation UUIDs.
    pub uuids: Uuids,
    /// Device UUID.
    pub device_uuid: u64,
    /// Flags.
    pub flags: MdFlags,
    /// Magic.
    pub magic: MdMagic,
    /// Meta-data size, sectors.
    pub md_size_sect: u32,
    /// AL offset relative to the superblock, sectors.
    pub al_offset_sect: i32,
    /// `al-extents` last used.
    pub al_nr_extents: u32,
    /// Bitmap offset relative to the superblock, sectors.
    pub bm_offset_sect: i32,
    /// Always 4096.
    pub bm_bytes_per_bit: u32,
    /// Peer's max bio size last agreed.
    pub la_peer_max_bio_size: u32,
    /// AL striping.
    pub al: AlStripes,
}

/// Size of the encoded superblock.
pub const SUPERBLOCK_BYTES: usize = BLOCK_4K_BYTES;

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

impl Superblock {
    /// A fresh superblock as `create-md` writes it for `layout`.
    pub fn new_created(layout: &Layout) -> Superblock {
        Superblock {
            la_size_sect: 0,
            uuids: Uuids {
                current: UUID_JUST_CREATED,
                ..Uuids::default()
            },
            device_uuid: 0,
            flags: MdFlags(MdFlags::AL_CLEAN),
            magic: MdMagic::Clean,
            md_size_sect: layout.md_size_sect,
            al_offset_sect: layout.al_offset_sect,
            al_nr_extents: AL_NR_EXTENTS_CREATE,
            bm_offset_sect: layout.bm_offset_sect,
            bm_bytes_per_bit: BM_BYTES_PER_BIT,
            la_peer_max_bio_size: 0,
            al: layout.al,
        }
    }

    /// Copies the layout fields (sizes, offsets, striping) from `layout`.
    pub fn apply_layout(&mut self, layout: &Layout) {
        self.md_size_sect = layout.md_size_sect;
        self.al_offset_sect = layout.al_offset_sect;
        self.bm_offset_sect = layout.bm_offset_sect;
        self.al = layout.al;
    }

    /// Whether apply-al must run before attaching (unclean magic or AL not clean).
    pub fn is_unclean(&self) -> bool {
        self.magic == MdMagic::Unclean || !self.flags.has(MdFlags::AL_CLEAN)
    }

    /// Encodes into a 4 KiB block.
    pub fn encode(&self) -> [u8; SUPERBLOCK_BYTES] {
        let mut b = [0u8; SUPERBLOCK_BYTES];
        b[0x00..0x08].copy_from_slice(&self.la_size_sect.to_be_bytes());
        b[0x08..0x10].copy_from_slice(&self.uuids.current.to_be_bytes());
        b[0x10..0x18].copy_from_slice(&self.uuids.bitmap.to_be_bytes());
        b[0x18..0x20].copy_from_slice(&self.uuids.history[0].to_be_bytes());
        b[0x20..0x28].copy_from_slice(&self.uuids.history[1].to_be_bytes());
        b[0x28..0x30].copy_from_slice(&self.device_uuid.to_be_bytes());
        b[0x38..0x3C].copy_from_slice(&self.flags.0.to_be_bytes());
        b[0x3C..0x40].copy_from_slice(&self.magic.value().to_be_bytes());
        b[0x40..0x44].copy_from_slice(&self.md_size_sect.to_be_bytes());
        b[0x44..0x48].copy_from_slice(&self.al_offset_sect.to_be_bytes());
        b[0x48..0x4C].copy_from_slice(&self.al_nr_extents.to_be_bytes());
        b[0x4C..0x50].copy_from_slice(&self.bm_offset_sect.to_be_bytes());
        b[0x50..0x54].copy_from_slice(&self.bm_bytes_per_bit.to_be_bytes());
        b[0x54..0x58].copy_from_slice(&self.la_peer_max_bio_size.to_be_bytes());
        b[0x58..0x5C].copy_from_slice(&self.al.stripes().to_be_bytes());
        b[0x5C..0x60].copy_from_slice(&self.al.stripe_size_4k().to_be_bytes());
        b
    }

    /// Decodes and sanity-checks a superblock read from `offset_bytes` (used in messages).
    pub fn decode(block: &[u8], offset_bytes: u64) -> Result<Superblock> {
        if block.len() < SUPERBLOCK_BYTES {
            return Err(MetaError::Truncated {
                what: "superblock",
                needed: SUPERBLOCK_BYTES,
                got: block.len(),
            });
        }
        let magic_raw = be_u32(block, 0x3C);
        let magic = match magic_raw {
            MD_MAGIC_08 => MdMagic::Clean,
            MD_MAGIC_84_UNCLEAN => MdMagic::Unclean,
            MD_MAGIC_07 => {
                return Err(MetaError::OtherVersion {
                    version: "v07",
                    magic: magic_raw,
                    offset_bytes,
                })
            }
            MD_MAGIC_09 => {
                return Err(MetaError::OtherVersion {
                    version: "v09",
                    magic: magic_raw,
                    offset_bytes,
                })
            }
            _ => {
                return Err(MetaError::BadMagic {
                    magic: magic_raw,
                    offset_bytes,
                })
            }
        };
        let bm_bytes_per_bit = be_u32(block, 0x50);
        if bm_bytes_per_bit != BM_BYTES_PER_BIT {
            return Err(MetaError::BadBytesPerBit(bm_bytes_per_bit));
        }
        let (mut stripes, mut stripe_size_4k) = (be_u32(block, 0x58), be_u32(block, 0x5C));
        if stripes == 0 && stripe_size_4k == 0 {
            // Not set by old DRBD: the fixed 32 KiB activity log.
            stripes = AL_STRIPES_DEFAULT;
            stripe_size_4k = AL_STRIPE_SIZE_4K_DEFAULT;
        }
        let al = AlStripes::new(stripes, stripe_size_4k)?;
        let sb = Superblock {
            la_size_sect: be_u64(block, 0x00),
            uuids: Uuids {
                current: be_u64(block, 0x08),
                bitmap: be_u64(block, 0x10),
                history: [be_u64(block, 0x18), be_u64(block, 0x20)],
            },
            device_uuid: be_u64(block, 0x28),
            flags: MdFlags(be_u32(block, 0x38)),
            magic,
            md_size_sect: be_u32(block, 0x40),
            al_offset_sect: be_u32(block, 0x44) as i32,
            al_nr_extents: be_u32(block, 0x48),
            bm_offset_sect: be_u32(block, 0x4C) as i32,
            bm_bytes_per_bit,
            la_peer_max_bio_size: be_u32(block, 0x54),
            al,
        };
        sb.check_offsets()?;
        Ok(sb)
    }

    /// The layout kind the offsets imply (internal if the AL lies before the superblock).
    pub fn implied_kind_is_internal(&self) -> bool {
        self.al_offset_sect < 0
    }

    /// Offsets consistent with one of the layout kinds (D84 `check_offsets_and_sizes`).
    fn check_offsets(&self) -> Result<()> {
        let al_sect = self.al.size_sect() as i64;
        let bad = |field, found: i64, expected: i64, layout: &str| MetaError::BadLayout {
            field,
            found,
            expected,
            layout: layout.to_string(),
        };
        let (al_off, bm_off, md_size) = (
            i64::from(self.al_offset_sect),
            i64::from(self.bm_offset_sect),
            i64::from(self.md_size_sect),
        );
        if al_off < 0 {
            if al_off != -al_sect {
                return Err(bad("al_offset", al_off, -al_sect, "internal"));
            }
            if md_size < 8 + al_sect + 8 {
                return Err(bad("md_size_sect", md_size, 8 + al_sect + 8, "internal"));
            }
            if bm_off != 8 - md_size {
                return Err(bad("bm_offset", bm_off, 8 - md_size, "internal"));
            }
        } else {
            if al_off != 8 {
                return Err(bad("al_offset", al_off, 8, "external"));
            }
            if bm_off != 8 + al_sect {
                return Err(bad("bm_offset", bm_off, 8 + al_sect, "external"));
            }
            if md_size <= bm_off {
                return Err(bad("md_size_sect", md_size, bm_off + 8, "external"));
            }
        }
        Ok(())
    }

    /// Checks the size/offset fields against the layout computed for the device.
    pub fn validate_layout(&self, layout: &Layout) -> Result<()> {
        let name = layout.kind.to_string();
        let check = |field, found: i64, expected: i64| {
            if found == expected {
                Ok(())
            } else {
                Err(MetaError::BadLayout {
                    field,
                    found,
                    expected,
                    layout: name.clone(),
                })
            }
        };
        check(
            "al_offset",
            self.al_offset_sect.into(),
            layout.al_offset_sect.into(),
        )?;
        check(
            "bm_offset",
            self.bm_offset_sect.into(),
            layout.bm_offset_sect.into(),
        )?;
        match layout.kind {
            // Flexible external: DRBD does not require the device to keep its size.
            LayoutKind::FlexExternal => {
                if u64::from(self.md_size_sect) * SECTOR_BYTES > layout.md_device_bytes {
                    return Err(MetaError::BadLayout {
                        field: "md_size_sect",
                        found: self.md_size_sect.into(),
                        expected: layout.md_size_sect.into(),
                        layout: name,
                    });
                }
                Ok(())
            }
            _ => check(
                "md_size_sect",
                self.md_size_sect.into(),
                layout.md_size_sect.into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Superblock {
        Superblock {
            la_size_sect: 0x0102_0304_0506_0708,
            uuids: Uuids {
                current: 0x1111_2222_3333_4445,
                bitmap: 0xAA,
                history: [0xBB, 0xCC],
            },
            device_uuid: 0xDEAD_BEEF_0000_0001,
            flags: MdFlags(0x91),
            magic: MdMagic::Unclean,
            md_size_sect: 528,
            al_offset_sect: -512,
            al_nr_extents: 1237,
            bm_offset_sect: -520,
            bm_bytes_per_bit: 4096,
            la_peer_max_bio_size: 1 << 20,
            al: AlStripes::new(4, 16).unwrap(),
        }
    }

    #[test]
    fn golden_bytes() {
        let b = sample().encode();
        #[rustfmt::skip]
        let head: [u8; 0x60] = [
            0x01,0x02,0x03,0x04,0x05,0x06,0x07,0x08, 0x11,0x11,0x22,0x22,0x33,0x33,0x44,0x45,
            0,0,0,0,0,0,0,0xAA, 0,0,0,0,0,0,0,0xBB,
            0,0,0,0,0,0,0,0xCC, 0xDE,0xAD,0xBE,0xEF,0,0,0,1,
            0,0,0,0,0,0,0,0, 0,0,0,0x91, 0x83,0x74,0x02,0x6C,
            0,0,0x02,0x10, 0xFF,0xFF,0xFE,0x00, 0,0,0x04,0xD5, 0xFF,0xFF,0xFD,0xF8,
            0,0,0x10,0, 0,0x10,0,0, 0,0,0,4, 0,0,0,16,
        ];
        assert_eq!(&b[..0x60], &head[..], "v08 superblock format changed");
        assert!(
            b[0x60..].iter().all(|&x| x == 0),
            "v08 superblock tail must be zero"
        );
        assert_eq!(Superblock::decode(&b, 0).unwrap(), sample());
    }

    #[test]
    fn bad_magic_is_named() {
        let mut b = sample().encode();
        b[0x3C..0x40].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        let e = Superblock::decode(&b, 4096).unwrap_err().to_string();
        assert_eq!(
            e,
            "bad magic 0x12345678 at offset 4096 (not DRBD v08 meta-data)"
        );
        b[0x3C..0x40].copy_from_slice(&MD_MAGIC_09.to_be_bytes());
        assert!(Superblock::decode(&b, 0)
            .unwrap_err()
            .to_string()
            .contains("v09"));
    }

    #[test]
    fn bad_fields_rejected() {
        let mut b = sample().encode();
        b[0x50..0x54].copy_from_slice(&512u32.to_be_bytes());
        assert!(Superblock::decode(&b, 0)
            .unwrap_err()
            .to_string()
            .contains("bm_bytes_per_bit 512"));
        let mut b = sample().encode();
        b[0x4C..0x50].copy_from_slice(&(-100i32).to_be_bytes());
        assert!(Superblock::decode(&b, 0)
            .unwrap_err()
            .to_string()
            .contains("bm_offset is -100"));
        let mut b = sample().encode();
        b[0x58..0x5C].copy_from_slice(&0u32.to_be_bytes());
        assert!(Superblock::decode(&b, 0)
            .unwrap_err()
            .to_string()
            .contains("striping"));
        assert!(Superblock::decode(&b[..100], 0).is_err());
    }

    #[test]
    fn zero_striping_means_default() {
        let mut s = sample();
        s.al = AlStripes::default();
        s.al_offset_sect = -64;
        s.bm_offset_sect = 8 - 80;
        s.md_size_sect = 80;
        let mut b = s.encode();
        b[0x58..0x60].fill(0);
        assert_eq!(Superblock::decode(&b, 0).unwrap(), s);
    }
}
