//! Synchronous I/O on the meta-data: [`MetaDataDevice`] reads and writes the superblock, the AL
//! ring and bitmap pages of a file or block device with std file I/O (no async runtime needed).
//!
//! With `md_flushes` on, every meta-data write is followed by fdatasync, where DRBD issues
//! FUA/flush (superblock, AL transactions, bitmap pages).

mod apply_al;
mod probe;
mod raw;

pub use apply_al::ApplyAlReport;
pub use probe::{detect_fs, detect_md, probe, ExistingMd, FsSignature, ProbeResult, PROBE_BYTES};
pub use raw::RawDevice;

use std::path::{Path, PathBuf};

use crate::al::{initialized_ring, AlWrite};
use crate::bitmap::Bitmap;
use crate::consts::*;
use crate::error::{MetaError, Result};
use crate::layout::{bitmap_bytes_for, AlStripes, Layout, LayoutKind};
use crate::superblock::{MdFlags, MdMagic, Superblock, SUPERBLOCK_BYTES};

/// Where the meta-data of a backing device lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MetaDiskKind {
    /// At the end of the backing device.
    Internal,
    /// The whole of `meta_path`.
    FlexExternal {
        /// Meta-data device.
        meta_path: PathBuf,
    },
    /// 128 MiB slot `index` of `meta_path`.
    Indexed {
        /// Meta-data device.
        meta_path: PathBuf,
        /// Slot index.
        index: u8,
    },
}

impl MetaDiskKind {
    /// The layout kind.
    pub fn layout_kind(&self) -> LayoutKind {
        match self {
            MetaDiskKind::Internal => LayoutKind::Internal,
            MetaDiskKind::FlexExternal { .. } => LayoutKind::FlexExternal,
            MetaDiskKind::Indexed { index, .. } => LayoutKind::Indexed(*index),
        }
    }

    /// The device holding the meta-data.
    pub fn meta_path<'a>(&'a self, data_path: &'a Path) -> &'a Path {
        match self {
            MetaDiskKind::Internal => data_path,
            MetaDiskKind::FlexExternal { meta_path } | MetaDiskKind::Indexed { meta_path, .. } => {
                meta_path
            }
        }
    }
}

/// How to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// Open read-write.
    pub writable: bool,
    /// fdatasync after meta-data writes (DRBD's `md-flushes`, default on).
    pub md_flushes: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            writable: true,
            md_flushes: true,
        }
    }
}

/// Superblock byte offset for `kind` on a device of `md_device_bytes` (independent of the AL).
pub fn superblock_offset(kind: LayoutKind, md_device_bytes: u64) -> Result<u64> {
    match kind {
        LayoutKind::Internal => (md_device_bytes & !4095).checked_sub(4096).ok_or_else(|| {
            MetaError::DeviceTooSmall(format!(
                "{md_device_bytes} bytes cannot hold a 4 KiB superblock"
            ))
        }),
        LayoutKind::FlexExternal => Ok(0),
        LayoutKind::Indexed(i) => Ok(u64::from(i) * MD_128MB_SECT * SECTOR_BYTES),
    }
}

/// Reads and validates the superblock of `dev` for `kind`; returns it with its layout.
pub fn read_valid_superblock(dev: &RawDevice, kind: LayoutKind) -> Result<(Superblock, Layout)> {
    let offset = superblock_offset(kind, dev.size_bytes())?;
    let block = dev.read_vec(SUPERBLOCK_BYTES, offset)?;
    let sb = Superblock::decode(&block, offset)?;
    let layout = Layout::compute(kind, dev.size_bytes(), sb.al)?;
    sb.validate_layout(&layout)?;
    Ok((sb, layout))
}

/// Open meta-data with a valid v08 superblock.
#[derive(Debug)]
pub struct MetaDataDevice {
    dev: RawDevice,
    layout: Layout,
    sb: Superblock,
    md_flushes: bool,
    data_device_bytes: u64,
}

impl MetaDataDevice {
    /// Opens the meta-data of `data_path`; fails with a message naming what is wrong if there is
    /// no valid v08 meta-data.
    pub fn open(
        data_path: &Path,
        meta: &MetaDiskKind,
        opts: OpenOptions,
    ) -> Result<MetaDataDevice> {
        let dev = RawDevice::open(meta.meta_path(data_path), opts.writable)?;
        let data_device_bytes = match meta {
            MetaDiskKind::Internal => dev.size_bytes(),
            _ => RawDevice::open(data_path, false)?.size_bytes(),
        };
        let (sb, layout) = read_valid_superblock(&dev, meta.layout_kind())?;
        Ok(MetaDataDevice {
            dev,
            layout,
            sb,
            md_flushes: opts.md_flushes,
            data_device_bytes,
        })
    }

    /// Writes fresh meta-data (initialized AL, zeroed bitmap, new superblock) without looking
    /// at what was there; callers check with [`probe`] first.
    pub fn create(
        data_path: &Path,
        meta: &MetaDiskKind,
        al: AlStripes,
        opts: OpenOptions,
    ) -> Result<MetaDataDevice> {
        let dev = RawDevice::open(meta.meta_path(data_path), true)?;
        let data_device_bytes = match meta {
            MetaDiskKind::Internal => dev.size_bytes(),
            _ => RawDevice::open(data_path, false)?.size_bytes(),
        };
        let layout = Layout::compute(meta.layout_kind(), dev.size_bytes(), al)?;
        let sb = Superblock::new_created(&layout);
        let mut md = MetaDataDevice {
            dev,
            layout,
            sb,
            md_flushes: opts.md_flushes,
            data_device_bytes,
        };
        md.initialize_al()?;
        md.zero_bitmap(md.create_bitmap_bytes())?;
        md.write_superblock(&sb)?;
        Ok(md)
    }

    /// Bitmap bytes create-md zeroes (drbdmeta: sized for the meta device, within the area).
    pub fn create_bitmap_bytes(&self) -> u64 {
        bitmap_bytes_for(self.dev.size_bytes() / SECTOR_BYTES).min(self.layout.bitmap_area_bytes())
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The superblock as last read or written.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// The meta-data device.
    pub fn raw(&self) -> &RawDevice {
        &self.dev
    }

    /// Path of the meta-data device.
    pub fn path(&self) -> &Path {
        self.dev.path()
    }

    /// Size of the backing (data) device in sectors.
    pub fn data_device_sectors(&self) -> u64 {
        self.data_device_bytes / SECTOR_BYTES
    }

    /// The data size DRBD would offer (bitmap limits and internal meta-data subtracted).
    pub fn usable_data_sectors(&self) -> u64 {
        self.layout.usable_data_sectors(self.data_device_sectors())
    }

    /// `la_size_sect` clipped to what the layout supports (as drbdmeta does).
    pub fn clipped_la_size_sect(&self) -> u64 {
        self.sb.la_size_sect.min(self.layout.max_data_sectors())
    }

    fn flush_if(&self) -> Result<()> {
        if self.md_flushes {
            self.dev.flush()?;
        }
        Ok(())
    }

    /// Flushes the meta-data device.
    pub fn flush(&self) -> Result<()> {
        self.dev.flush()
    }

    /// Writes `sb` (layout fields forced to this device's layout) and flushes.
    pub fn write_superblock(&mut self, sb: &Superblock) -> Result<()> {
        let mut sb = *sb;
        sb.apply_layout(&self.layout);
        self.dev
            .write_at(&sb.encode(), self.layout.md_offset_bytes)?;
        self.flush_if()?;
        self.sb = sb;
        Ok(())
    }

    /// Changes the superblock with `f` and writes it.
    pub fn update_superblock(&mut self, f: impl FnOnce(&mut Superblock)) -> Result<()> {
        let mut sb = self.sb;
        f(&mut sb);
        self.write_superblock(&sb)
    }

    /// Writes new generation UUIDs.
    pub fn set_uuids(&mut self, uuids: crate::superblock::Uuids) -> Result<()> {
        self.update_superblock(|sb| sb.uuids = uuids)
    }

    /// Sets (`on`) or clears the `MDF_*` bits of `mask` and writes the superblock.
    pub fn set_flags(&mut self, mask: u32, on: bool) -> Result<()> {
        self.update_superblock(|sb| sb.flags.set(mask, on))
    }

    /// Marks the meta-data in use, as the kernel does on attach: magic 84_UNCLEAN, AL not clean.
    pub fn mark_unclean(&mut self) -> Result<()> {
        self.update_superblock(|sb| {
            sb.magic = MdMagic::Unclean;
            sb.flags.set(MdFlags::AL_CLEAN, false);
        })
    }

    /// Marks the meta-data cleanly detached: magic 08, AL clean. Only correct when no write is
    /// in flight and the bitmap is on disk.
    pub fn mark_clean(&mut self) -> Result<()> {
        self.update_superblock(|sb| {
            sb.magic = MdMagic::Clean;
            sb.flags.set(MdFlags::AL_CLEAN, true);
        })
    }

    /// Reads the whole AL ring (at most 32 MiB).
    pub fn read_al_ring(&self) -> Result<Vec<u8>> {
        self.dev.read_vec(
            self.layout.al_bytes() as usize,
            self.layout.al_offset_bytes(),
        )
    }

    /// Writes one AL transaction block and flushes.
    pub fn write_al(&mut self, w: &AlWrite) -> Result<()> {
        if w.ring_block >= self.layout.al.size_4k() {
            return Err(MetaError::BadRange {
                first_sector: w.ring_block.into(),
                sectors: 8,
            });
        }
        self.dev.write_at(
            &w.block_bytes(),
            self.layout.al_offset_bytes() + w.offset_in_al_bytes(),
        )?;
        self.flush_if()
    }

    /// Fills the AL ring with `INITIALIZED` blocks (create-md / apply-al) and flushes.
    pub fn initialize_al(&mut self) -> Result<()> {
        self.dev.write_at(
            &initialized_ring(self.layout.al),
            self.layout.al_offset_bytes(),
        )?;
        self.flush_if()
    }

    fn zero_bitmap(&mut self, bytes: u64) -> Result<()> {
        self.dev.write_zeros(bytes, self.layout.bm_offset_bytes())?;
        self.flush_if()
    }

    /// Reads a bitmap of `bits` bits from disk (bounded by the on-disk bitmap area).
    pub fn read_bitmap(&self, bits: u64) -> Result<Bitmap> {
        let bytes = bits.div_ceil(BITS_PER_4K) * BLOCK_4K_BYTES as u64;
        let area = self.layout.bitmap_area_bytes();
        if bytes > area.next_multiple_of(BLOCK_4K_BYTES as u64) {
            return Err(MetaError::BitmapTooLarge {
                bytes,
                limit_bytes: area,
            });
        }
        let readable = bytes.min(area);
        let mut raw = self
            .dev
            .read_vec(readable as usize, self.layout.bm_offset_bytes())?;
        raw.resize(bytes as usize, 0);
        Bitmap::from_le_bytes(bits, &raw)
    }

    /// Bitmap for the usable data size of this device.
    pub fn read_data_bitmap(&self) -> Result<Bitmap> {
        self.read_bitmap(crate::layout::bitmap_bits_for(self.usable_data_sectors()))
    }

    /// Writes the dirty pages of `bm` (and marks them clean); returns how many were written.
    pub fn write_bitmap_pages(&mut self, bm: &mut Bitmap) -> Result<u32> {
        let pages = bm.dirty_pages();
        let area = self.layout.bitmap_area_bytes();
        for &p in &pages {
            let offset = u64::from(p) * BLOCK_4K_BYTES as u64;
            let bytes = bm.page_bytes(p).ok_or(MetaError::BitmapRange {
                bit: u64::from(p) * BITS_PER_4K,
                bits: bm.bits(),
            })?;
            let len = (area.saturating_sub(offset)).min(BLOCK_4K_BYTES as u64) as usize;
            self.dev
                .write_at(&bytes[..len], self.layout.bm_offset_bytes() + offset)?;
        }
        if !pages.is_empty() {
            self.flush_if()?;
        }
        bm.take_dirty_pages();
        Ok(pages.len() as u32)
    }

    /// Zeroes the superblock (wipe-md) and flushes.
    pub fn wipe(self) -> Result<()> {
        self.dev
            .write_at(&[0u8; SUPERBLOCK_BYTES], self.layout.md_offset_bytes)?;
        self.dev.flush()
    }
}

/// Bits in a 4 KiB bitmap page.
const BITS_PER_4K: u64 = BLOCK_4K_BYTES as u64 * 8;
