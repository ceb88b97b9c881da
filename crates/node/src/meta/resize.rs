//! Growing the meta-data with its backing device, and shrinking the usable size
//! (`rdbdadm resize`; D84 drbd_nl.c `drbd_determine_dev_size`, drbd_bitmap.c
//! `drbd_bm_resize`, drbd_main.c `drbd_md_sync`).
//!
//! Shrinking ([`ResourceMeta::shrink`]) leaves the meta-data where it is (the device did
//! not change): only the last agreed size `la_size_sect` in the superblock goes down and
//! the bitmap is cut to it (bits past the new end dropped, their on-disk bytes zeroed).
//! The superblock is written before the bitmap: a crash in between leaves the new size
//! with stale bits past its end, which an attach ignores ([`attach_data_sectors`],
//! [`clip_bitmap`]: like DRBD's attach, rdbd keeps `la_size_sect` when it is below what
//! the device offers, so a shrink survives `down`/`up`).
//!
//! Internal meta-data sits at the end of the backing device, so after the device grew
//! the meta-data moves to the new end: a new superblock, the activity-log ring copied
//! byte for byte (its replay stays what it was), the bitmap grown (new bits set when
//! the new area must be resynced), and the vacated old meta-data area zeroed (it is data
//! area now; both nodes of a pair then agree on it even with `--assume-clean`).
//!
//! Invariants: the caller holds writes off (no data write and no AL transaction runs
//! while the meta-data moves: the commit lock is held); [`ResourceMeta::grow`] never
//! shrinks and [`ResourceMeta::shrink`] never grows.

use std::path::Path;
use std::sync::atomic::Ordering;

use rdbd_metadata::device::RawDevice;
use rdbd_metadata::layout::{bitmap_bits_for, bitmap_bytes_for};
use rdbd_metadata::{
    Bitmap, Layout, LayoutKind, MetaDataDevice, MetaDiskKind, MetaError, OpenOptions,
};

use super::{lock, MetaIoError, ResourceMeta, SECTOR_BYTES};

/// What a grow (or a shrink) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grown {
    /// The data size before, sectors.
    pub old_sectors: u64,
    /// The data size now, sectors.
    pub new_sectors: u64,
}

/// The data size (sectors) the backing device offers once the meta-data is placed for
/// its current size (D84 `drbd_get_max_capacity`).
pub fn capacity_sectors(
    data_path: &Path,
    kind: &MetaDiskKind,
    current: &Layout,
) -> Result<u64, MetaError> {
    let md_bytes = RawDevice::open(kind.meta_path(data_path), false)?.size_bytes();
    let data_bytes = match kind {
        MetaDiskKind::Internal => md_bytes,
        _ => RawDevice::open(data_path, false)?.size_bytes(),
    };
    let layout = Layout::compute(kind.layout_kind(), md_bytes, current.al)?;
    Ok(layout.usable_data_sectors(data_bytes / SECTOR_BYTES))
}

/// The data size (sectors) an attach runs with: the last agreed size when it is set and
/// below what the device offers (a shrink, or a device that grew while down: DRBD 8.4's
/// `drbd_new_dev_size` keeps `la_size_sect` without a peer), else what the device offers.
pub fn attach_data_sectors(dev: &MetaDataDevice) -> u64 {
    let usable = dev.usable_data_sectors();
    match dev.superblock().la_size_sect {
        0 => usable,
        agreed => agreed.min(usable),
    }
}

/// `bitmap` cut (or extended with clear bits) to `bits` bits.
pub fn clip_bitmap(bitmap: &Bitmap, bits: u64) -> Result<Bitmap, MetaError> {
    if bitmap.bits() == bits {
        return Ok(bitmap.clone());
    }
    let mut out = Bitmap::new(bits)?;
    for (first, len) in bitmap.runs() {
        let end = first.saturating_add(len).min(bits);
        if first < end {
            out.set_range(first, end)?;
        }
    }
    Ok(out)
}

impl ResourceMeta {
    /// Shrinks the usable size to `new_sectors` (less than now, more than 0): the
    /// superblock records it, the bitmap is cut to it. The meta-data does not move.
    /// Blocking: call from a blocking context, with writes held off.
    pub fn shrink(&self, new_sectors: u64) -> Result<Grown, MetaIoError> {
        if self.is_detached() {
            return Err(MetaIoError::Detached);
        }
        let _commit = self.commit.blocking_lock();
        let mut dev = lock(&self.dev);
        let mut bitmap = lock(&self.bitmap);
        let old_sectors = self.data_sectors();
        if new_sectors == 0 || new_sectors >= old_sectors {
            return Err(MetaIoError::Mismatch(format!(
                "cannot shrink from {old_sectors} to {new_sectors} sectors"
            )));
        }
        let mut kept = clip_bitmap(&bitmap, bitmap_bits_for(new_sectors))?;
        dev.update_superblock(|sb| sb.la_size_sect = new_sectors)?;
        kept.mark_all_dirty();
        dev.write_bitmap_pages(&mut kept)?;
        // The pages past the cut bitmap's last one held the dropped bits.
        let area = dev.layout().bitmap_area_bytes();
        let (start, end) = (
            bitmap_bytes_for(new_sectors).min(area),
            bitmap_bytes_for(old_sectors).min(area),
        );
        if end > start {
            let at = dev.layout().bm_offset_bytes() + start;
            dev.raw().write_zeros(end - start, at)?;
        }
        dev.flush()?;
        *bitmap = kept;
        self.data_sectors.store(new_sectors, Ordering::SeqCst);
        Ok(Grown {
            old_sectors,
            new_sectors,
        })
    }

    /// The current meta-data layout.
    pub fn layout(&self) -> Layout {
        *lock(&self.dev).layout()
    }

    /// Where the meta-data lives, as the attached device says.
    pub fn kind(&self) -> MetaDiskKind {
        let dev = lock(&self.dev);
        let meta_path = dev.path().to_path_buf();
        match dev.layout().kind {
            LayoutKind::Internal => MetaDiskKind::Internal,
            LayoutKind::FlexExternal => MetaDiskKind::FlexExternal { meta_path },
            LayoutKind::Indexed(index) => MetaDiskKind::Indexed { meta_path, index },
        }
    }

    /// Moves and grows the meta-data for a data size of `target_sectors` (at most what
    /// the device offers). Blocking: call from a blocking context, with writes held off.
    pub fn grow(
        &self,
        data_path: &Path,
        kind: &MetaDiskKind,
        target_sectors: u64,
        new_area_out_of_sync: bool,
    ) -> Result<Grown, MetaIoError> {
        if self.is_detached() {
            return Err(MetaIoError::Detached);
        }
        let _commit = self.commit.blocking_lock();
        let mut dev = lock(&self.dev);
        let mut bitmap = lock(&self.bitmap);
        let old_sectors = self.data_sectors();
        let old_layout = *dev.layout();
        let old_sb = *dev.superblock();
        if target_sectors < old_sectors {
            return Err(MetaIoError::Mismatch(format!(
                "{target_sectors} sectors is smaller than the current {old_sectors}: rdbd does not shrink"
            )));
        }
        let ring = dev.read_al_ring()?;
        // The new place: a fresh superblock, AL and bitmap area at the device's new end.
        let opts = OpenOptions {
            writable: true,
            md_flushes: true,
        };
        let mut new_dev = MetaDataDevice::create(data_path, kind, old_layout.al, opts)?;
        let new_layout = *new_dev.layout();
        let capacity = new_dev.usable_data_sectors();
        let new_sectors = target_sectors.min(capacity);
        if new_sectors < old_sectors {
            return Err(MetaIoError::Mismatch(format!(
                "the device offers {capacity} sectors, less than the {old_sectors} in use"
            )));
        }
        new_dev
            .raw()
            .write_at(&ring, new_layout.al_offset_bytes())?;
        let old_bits = bitmap.bits();
        let new_bits = bitmap_bits_for(new_sectors);
        let mut grown = clip_bitmap(&bitmap, new_bits)?;
        if new_area_out_of_sync && new_bits > old_bits {
            grown.set_range(old_bits, new_bits)?;
        }
        grown.mark_all_dirty();
        new_dev.write_bitmap_pages(&mut grown)?;
        let mut sb = old_sb;
        sb.apply_layout(&new_layout);
        sb.la_size_sect = new_sectors;
        new_dev.write_superblock(&sb)?;
        // The old meta-data area is data area now (internal meta-data only).
        if matches!(kind, MetaDiskKind::Internal)
            && new_layout.md_offset_bytes > old_layout.md_offset_bytes
        {
            let start = old_layout.bm_offset_bytes();
            let end = old_layout.md_offset_bytes + 4096;
            new_dev.raw().write_zeros(end - start, start)?;
        }
        new_dev.flush()?;
        *dev = new_dev;
        *bitmap = grown;
        self.data_sectors.store(new_sectors, Ordering::SeqCst);
        Ok(Grown {
            old_sectors,
            new_sectors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tests::attached;

    #[test]
    fn grow_moves_the_meta_data_and_keeps_the_bits() {
        let (_dir, path, meta) = attached(64 << 20, 67);
        let old = meta.data_sectors();
        meta.set_out_of_sync(4096 * 10, 4096);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(96 << 20)
            .unwrap();
        let offered = capacity_sectors(&path, &MetaDiskKind::Internal, &meta.layout()).unwrap();
        assert!(offered > old);
        let grown = meta
            .grow(&path, &MetaDiskKind::Internal, offered, true)
            .unwrap();
        assert_eq!(grown.old_sectors, old);
        assert_eq!(grown.new_sectors, offered);
        assert_eq!(meta.data_sectors(), offered);
        // Old bit kept, every new bit set, nothing else.
        let old_bits = bitmap_bits_for(old);
        assert_eq!(
            meta.bitmap_weight(),
            1 + bitmap_bits_for(offered) - old_bits
        );
        // The moved meta-data opens from the new end with the new size.
        block_on(meta.detach()).unwrap();
        let dev =
            MetaDataDevice::open(&path, &MetaDiskKind::Internal, OpenOptions::default()).unwrap();
        assert_eq!(dev.superblock().la_size_sect, offered);
        assert_eq!(dev.layout().md_offset_bytes, (96 << 20) - 4096);
        let bm = dev.read_data_bitmap().unwrap();
        assert!(bm.test(10) && !bm.test(9) && bm.test(old_bits));
    }

    #[test]
    fn grow_refuses_to_shrink() {
        let (_dir, path, meta) = attached(64 << 20, 67);
        let old = meta.data_sectors();
        let err = meta
            .grow(&path, &MetaDiskKind::Internal, old - 8, false)
            .unwrap_err();
        assert!(err.to_string().contains("does not shrink"), "{err}");
    }

    #[test]
    fn shrink_cuts_the_bitmap_and_survives_a_reattach() {
        // 256 MiB: 65536 bits, two bitmap pages (sparse file).
        let (_dir, path, meta) = attached(256 << 20, 67);
        let old = meta.data_sectors();
        let new_sectors = (32 << 20) / 512;
        // One bit below the new end, one past it in the second bitmap page.
        meta.set_out_of_sync(4096 * 7, 4096);
        meta.set_out_of_sync(50_000 * 4096, 4096);
        assert_eq!(meta.bitmap_weight(), 2);
        let shrunk = meta.shrink(new_sectors).unwrap();
        assert_eq!((shrunk.old_sectors, shrunk.new_sectors), (old, new_sectors));
        assert_eq!(meta.data_sectors(), new_sectors);
        assert_eq!(
            meta.bitmap_weight(),
            1,
            "the bit past the new end is dropped"
        );
        assert!(meta.shrink(new_sectors).is_err(), "not smaller");
        assert!(meta.shrink(0).is_err(), "nothing left");
        block_on(meta.detach()).unwrap();
        // The meta-data did not move; the superblock has the new size, the dropped
        // bit's bytes are zero on disk.
        let dev =
            MetaDataDevice::open(&path, &MetaDiskKind::Internal, OpenOptions::default()).unwrap();
        assert_eq!(dev.superblock().la_size_sect, new_sectors);
        assert_eq!(dev.layout().md_offset_bytes, (256 << 20) - 4096);
        let full = dev.read_data_bitmap().unwrap();
        assert!(full.test(7) && full.count() == 1, "{}", full.count());
        // An attach runs with the shrunk size and its bitmap.
        assert_eq!(attach_data_sectors(&dev), new_sectors);
        drop((dev, meta));
        let (again, info) =
            ResourceMeta::attach(&path, &MetaDiskKind::Internal, 67, true, true, true).unwrap();
        assert_eq!(info.size_bytes, new_sectors * 512);
        assert_eq!(again.data_sectors(), new_sectors);
        assert_eq!(again.bitmap_weight(), 1);
    }

    #[test]
    fn clip_bitmap_keeps_the_bits_below_the_cut() {
        let mut bm = Bitmap::new(100_000).unwrap();
        bm.set_range(10, 20).unwrap();
        bm.set_range(60_000, 70_000).unwrap();
        let cut = clip_bitmap(&bm, 65_000).unwrap();
        assert_eq!(cut.bits(), 65_000);
        assert_eq!(cut.count(), 10 + 5_000);
        let longer = clip_bitmap(&cut, 200_000).unwrap();
        assert_eq!(longer.count(), cut.count());
        assert!(!longer.test(199_999));
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }
}
