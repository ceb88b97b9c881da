//! Placement of v08 meta-data on its device and the usable data size, exactly as DRBD computes them.
//!
//! Three kinds (D84 `drbd_md_set_sector_offsets`, drbdmeta `re_initialize_md_offsets`); all
//! offsets are signed sectors relative to the superblock:
//!
//! ```text
//! internal:         [data ....][bitmap][AL][4K superblock][pad<4K]   (end of the backing device)
//!                    al_offset = -al_sect, bm_offset = 8 - md_size_sect
//!                    md_size_sect = roundup8(ceil(dev_sect / 32768)) + 8 + al_sect
//! flex-external:    [4K superblock][AL][bitmap ..........]            (whole meta device)
//!                    al_offset = 8, bm_offset = 8 + al_sect, md_size_sect = meta device sectors
//! indexed external: slot idx at idx·128 MiB, same inner layout, md_size_sect = 262144
//! ```
//!
//! Invariants of a [`Layout`]: the whole meta-data area lies inside the meta device; for internal
//! meta-data the data area `[0, max_data_sectors)` ends exactly where the bitmap begins.

use crate::consts::*;
use crate::error::{MetaError, Result};

/// Where the meta-data lives, as in drbd.conf's `meta-disk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayoutKind {
    /// At the end of the backing (data) device.
    Internal,
    /// A whole separate meta device.
    FlexExternal,
    /// Fixed 128 MiB slot number `index` on a separate meta device.
    Indexed(u8),
}

impl std::fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayoutKind::Internal => f.write_str("internal"),
            LayoutKind::FlexExternal => f.write_str("flex-external"),
            LayoutKind::Indexed(i) => write!(f, "indexed external [{i}]"),
        }
    }
}

/// Activity-log ring geometry: `stripes` stripes of `stripe_size_4k` 4 KiB blocks each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AlStripes {
    stripes: u32,
    stripe_size_4k: u32,
}

impl Default for AlStripes {
    fn default() -> Self {
        AlStripes {
            stripes: AL_STRIPES_DEFAULT,
            stripe_size_4k: AL_STRIPE_SIZE_4K_DEFAULT,
        }
    }
}

impl AlStripes {
    /// Validates striping: both non-zero, total between 32 KiB and 32 MiB.
    pub fn new(stripes: u32, stripe_size_4k: u32) -> Result<Self> {
        let bad = |reason| MetaError::BadAlStripes {
            stripes,
            stripe_size_4k,
            reason,
        };
        if stripes == 0 || stripe_size_4k == 0 {
            return Err(bad("both must be non-zero"));
        }
        let total = u64::from(stripes) * u64::from(stripe_size_4k);
        if total < AL_SIZE_4K_MIN {
            return Err(bad("activity log smaller than 32 KiB"));
        }
        if total > AL_SIZE_4K_MAX {
            return Err(bad("activity log larger than 32 MiB"));
        }
        Ok(AlStripes {
            stripes,
            stripe_size_4k,
        })
    }

    /// From drbdmeta's options `--al-stripes` and `--al-stripe-size-kB` (rounded down to 4 KiB).
    pub fn from_kib(stripes: u32, stripe_size_kib: u64) -> Result<Self> {
        let size_4k = u32::try_from(stripe_size_kib / 4).unwrap_or(u32::MAX);
        Self::new(stripes, size_4k)
    }

    /// Number of stripes.
    pub fn stripes(&self) -> u32 {
        self.stripes
    }

    /// Blocks per stripe.
    pub fn stripe_size_4k(&self) -> u32 {
        self.stripe_size_4k
    }

    /// Total ring size in 4 KiB blocks (at most 8192).
    pub fn size_4k(&self) -> u32 {
        // Bounded by AL_SIZE_4K_MAX in `new`.
        self.stripes * self.stripe_size_4k
    }

    /// Total ring size in sectors.
    pub fn size_sect(&self) -> u32 {
        self.size_4k() * 8
    }

    /// On-disk block (within the AL area) of transaction number `tr_number`
    /// (D84 `al_tr_number_to_on_disk_sector`, in 4 KiB units).
    pub fn block_of_tr(&self, tr_number: u32) -> u32 {
        let t = tr_number % self.size_4k();
        (t % self.stripes) * self.stripe_size_4k + t / self.stripes
    }
}

/// Bitmap bytes needed to track `data_sectors` (drbdmeta `bm_bytes`): one bit per 4 KiB,
/// rounded to 64-bit words, then to whole 4 KiB pages.
pub fn bitmap_bytes_for(data_sectors: u64) -> u64 {
    let bits = data_sectors.div_ceil(BM_SECT_PER_BIT);
    let bits = bits.div_ceil(64) * 64;
    (bits / 8).div_ceil(BLOCK_4K_BYTES as u64) * BLOCK_4K_BYTES as u64
}

/// Bitmap bits needed to track `data_sectors`, not rounded.
pub fn bitmap_bits_for(data_sectors: u64) -> u64 {
    data_sectors.div_ceil(BM_SECT_PER_BIT)
}

/// A computed meta-data placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The kind.
    pub kind: LayoutKind,
    /// Size of the meta-data device (the backing device for internal), bytes.
    pub md_device_bytes: u64,
    /// Byte offset of the superblock on the meta-data device.
    pub md_offset_bytes: u64,
    /// Meta-data size in sectors (superblock field `md_size_sect`).
    pub md_size_sect: u32,
    /// AL offset relative to the superblock, sectors.
    pub al_offset_sect: i32,
    /// Bitmap offset relative to the superblock, sectors.
    pub bm_offset_sect: i32,
    /// AL geometry.
    pub al: AlStripes,
}

impl Layout {
    /// Computes the layout for a meta-data device of `md_device_bytes` bytes.
    pub fn compute(kind: LayoutKind, md_device_bytes: u64, al: AlStripes) -> Result<Layout> {
        let al_sect = u64::from(al.size_sect());
        let (md_offset_bytes, md_size_sect, al_offset_sect, bm_offset_sect) = match kind {
            LayoutKind::Internal => {
                let aligned = md_device_bytes & !4095;
                let md_offset = aligned.checked_sub(4096).ok_or_else(|| {
                    MetaError::DeviceTooSmall(format!(
                        "{md_device_bytes} bytes cannot hold a 4 KiB superblock"
                    ))
                })?;
                let bm_sect = bitmap_bytes_for(md_device_bytes / SECTOR_BYTES) / SECTOR_BYTES;
                if bm_sect > BM_MAX_BYTES_FLEX / SECTOR_BYTES {
                    return Err(MetaError::DeviceTooLarge(
                        "bitmap for that device got too large".into(),
                    ));
                }
                let md_size = bm_sect + BLOCK_4K_SECT + al_sect;
                md_offset
                    .checked_sub((md_size - BLOCK_4K_SECT) * SECTOR_BYTES)
                    .ok_or_else(|| {
                        MetaError::DeviceTooSmall(format!(
                            "{md_device_bytes} bytes cannot hold {md_size} sectors of internal meta-data"
                        ))
                    })?;
                let md_size = u32::try_from(md_size).map_err(|_| too_large(md_size))?;
                let al_off = -(al.size_sect() as i32);
                let bm_off = 8 - md_size as i32;
                (md_offset, md_size, al_off, bm_off)
            }
            LayoutKind::FlexExternal => {
                let md_size = md_device_bytes / SECTOR_BYTES;
                let min = BLOCK_4K_SECT + al_sect + BLOCK_4K_SECT;
                if md_size < min {
                    return Err(MetaError::DeviceTooSmall(format!(
                        "flex-external meta device of {md_device_bytes} bytes is smaller than {min} sectors"
                    )));
                }
                let md_size = u32::try_from(md_size).map_err(|_| too_large(md_size))?;
                (0, md_size, 8, 8 + al.size_sect() as i32)
            }
            LayoutKind::Indexed(index) => {
                if al != AlStripes::default() {
                    return Err(MetaError::BadAlStripes {
                        stripes: al.stripes,
                        stripe_size_4k: al.stripe_size_4k,
                        reason: "indexed external meta-data needs the default 32 KiB activity log",
                    });
                }
                let slot_bytes = MD_128MB_SECT * SECTOR_BYTES;
                let md_offset = u64::from(index) * slot_bytes;
                if md_device_bytes < md_offset + slot_bytes {
                    return Err(MetaError::DeviceTooSmall(format!(
                        "meta device of {md_device_bytes} bytes has no 128 MiB slot {index} (needs {} bytes)",
                        md_offset + slot_bytes
                    )));
                }
                (
                    md_offset,
                    MD_128MB_SECT as u32,
                    8,
                    8 + al.size_sect() as i32,
                )
            }
        };
        Ok(Layout {
            kind,
            md_device_bytes,
            md_offset_bytes,
            md_size_sect,
            al_offset_sect,
            bm_offset_sect,
            al,
        })
    }

    /// Byte offset of the AL ring on the meta device.
    pub fn al_offset_bytes(&self) -> u64 {
        offset_add(self.md_offset_bytes, self.al_offset_sect)
    }

    /// Byte offset of the bitmap on the meta device.
    pub fn bm_offset_bytes(&self) -> u64 {
        offset_add(self.md_offset_bytes, self.bm_offset_sect)
    }

    /// Bytes reserved for the bitmap on disk.
    pub fn bitmap_area_bytes(&self) -> u64 {
        match self.kind {
            LayoutKind::Internal => {
                u64::from((self.al_offset_sect - self.bm_offset_sect).unsigned_abs()) * SECTOR_BYTES
            }
            _ => (u64::from(self.md_size_sect) - self.bm_offset_sect as u64) * SECTOR_BYTES,
        }
    }

    /// Largest data size the meta-data supports, sectors (drbdmeta `max_usable_sect`).
    ///
    /// Internal: the data ends where the bitmap begins. External: what the on-disk bitmap can
    /// track (the data device itself is not known here; see [`Layout::usable_data_sectors`]).
    pub fn max_data_sectors(&self) -> u64 {
        match self.kind {
            LayoutKind::Internal => self.bm_offset_bytes() / SECTOR_BYTES,
            _ => (self.bitmap_area_bytes() / SECTOR_BYTES) * BM_SECT_COVERED_PER_BM_SECT,
        }
    }

    /// Data size DRBD would offer for a backing device of `data_device_sectors`
    /// (D84 `drbd_get_max_capacity`). For internal meta-data the argument is ignored.
    pub fn usable_data_sectors(&self, data_device_sectors: u64) -> u64 {
        match self.kind {
            LayoutKind::Internal => self.max_data_sectors().min(MAX_SECTORS_FLEX),
            LayoutKind::FlexExternal => data_device_sectors
                .min(MAX_SECTORS_FLEX)
                .min(self.max_data_sectors()),
            LayoutKind::Indexed(_) => data_device_sectors.min(MAX_SECTORS_FIXED_BM),
        }
    }

    /// AL ring size in bytes.
    pub fn al_bytes(&self) -> u64 {
        u64::from(self.al.size_4k()) * BLOCK_4K_BYTES as u64
    }
}

fn too_large(md_size_sect: u64) -> MetaError {
    MetaError::DeviceTooLarge(format!("md_size_sect {md_size_sect} does not fit 32 bits"))
}

/// `base + sect*512` for a signed sector offset; layouts guarantee the result is non-negative.
fn offset_add(base: u64, sect: i32) -> u64 {
    let delta = i64::from(sect) * SECTOR_BYTES as i64;
    base.checked_add_signed(delta).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn internal_md_size_matches_drbdmeta() {
        for (bytes, expected) in [
            (128 * MIB, 80),
            (1024 * MIB, 136),
            (10240 * MIB, 712),
            (1000 * 1024 * MIB, 64072),
        ] {
            let l = Layout::compute(LayoutKind::Internal, bytes, AlStripes::default()).unwrap();
            assert_eq!(l.md_size_sect, expected, "md_size_sect for {bytes} bytes");
        }
    }

    #[test]
    fn internal_128mib_offsets_match_drbdmeta_dump() {
        let l = Layout::compute(LayoutKind::Internal, 128 * MIB, AlStripes::default()).unwrap();
        assert_eq!(l.md_offset_bytes, 134213632);
        assert_eq!(l.al_offset_bytes(), 134180864);
        assert_eq!(l.bm_offset_bytes(), 134176768);
    }

    #[test]
    fn internal_64mib_leaves_kernel_usable_size() {
        let l = Layout::compute(LayoutKind::Internal, 64 * MIB, AlStripes::default()).unwrap();
        assert_eq!(l.usable_data_sectors(0), 130992);
        assert_eq!(bitmap_bits_for(l.usable_data_sectors(0)), 16374);
    }

    #[test]
    fn unaligned_internal_device_puts_superblock_in_last_aligned_4k() {
        let l = Layout::compute(
            LayoutKind::Internal,
            64 * MIB + 3 * 512,
            AlStripes::default(),
        )
        .unwrap();
        assert_eq!(l.md_offset_bytes, 64 * MIB - 4096);
    }

    #[test]
    fn striped_al_moves_the_bitmap() {
        let al = AlStripes::new(4, 16).unwrap();
        let l = Layout::compute(LayoutKind::Internal, 128 * MIB, al).unwrap();
        assert_eq!(l.al_offset_sect, -512);
        assert_eq!(l.md_size_sect, 8 + 8 + 512);
        assert_eq!(l.bm_offset_sect, 8 - 528);
        let e = Layout::compute(LayoutKind::FlexExternal, 64 * MIB, al).unwrap();
        assert_eq!(
            (e.al_offset_sect, e.bm_offset_sect, e.md_size_sect),
            (8, 520, 131072)
        );
    }

    #[test]
    fn indexed_slots() {
        let l =
            Layout::compute(LayoutKind::Indexed(2), 3 * 128 * MIB, AlStripes::default()).unwrap();
        assert_eq!(l.md_offset_bytes, 256 * MIB);
        assert_eq!(
            (l.al_offset_sect, l.bm_offset_sect, l.md_size_sect),
            (8, 72, 262144)
        );
        assert!(
            Layout::compute(LayoutKind::Indexed(3), 3 * 128 * MIB, AlStripes::default()).is_err()
        );
        assert_eq!(l.usable_data_sectors(u64::MAX), MAX_SECTORS_FIXED_BM);
    }

    #[test]
    fn al_stripes_bounds() {
        assert!(AlStripes::new(1, 7).is_err());
        assert!(AlStripes::new(0, 8).is_err());
        assert!(AlStripes::new(8192, 2).is_err());
        assert!(AlStripes::new(2, 4096).is_ok());
        assert_eq!(AlStripes::from_kib(1, 32).unwrap(), AlStripes::default());
    }

    #[test]
    fn striped_block_mapping() {
        let al = AlStripes::new(3, 4).unwrap();
        let blocks: Vec<u32> = (0..12).map(|t| al.block_of_tr(t)).collect();
        assert_eq!(blocks, vec![0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
        assert_eq!(al.block_of_tr(12), 0);
    }

    #[test]
    fn tiny_device_is_rejected() {
        assert!(Layout::compute(LayoutKind::Internal, 4095, AlStripes::default()).is_err());
        assert!(Layout::compute(LayoutKind::Internal, 8 * 4096, AlStripes::default()).is_err());
        assert!(Layout::compute(LayoutKind::Internal, 16 * 4096, AlStripes::default()).is_ok());
    }
}
