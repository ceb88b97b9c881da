//! Growing the meta-data with its backing device (`rdbdadm resize`; D84 drbd_nl.c
//! `drbd_determine_dev_size`, drbd_bitmap.c `drbd_bm_resize`, drbd_main.c `drbd_md_sync`).
//!
//! Internal meta-data sits at the end of the backing device, so after the device grew
//! the meta-data moves to the new end: a new superblock, the activity-log ring copied
//! byte for byte (its replay stays what it was), the bitmap grown (new bits set when
//! the new area must be resynced), and the vacated old meta-data area zeroed (it is data
//! area now; both nodes of a pair then agree on it even with `--assume-clean`).
//!
//! Invariants: the caller holds writes off (no data write and no AL transaction runs
//! while the meta-data moves: the commit lock is held); the size never shrinks.

use std::path::Path;
use std::sync::atomic::Ordering;

use rdbd_metadata::device::RawDevice;
use rdbd_metadata::layout::bitmap_bits_for;
use rdbd_metadata::{
    Bitmap, Layout, LayoutKind, MetaDataDevice, MetaDiskKind, MetaError, OpenOptions,
};

use super::{lock, MetaIoError, ResourceMeta, SECTOR_BYTES};

/// What a grow did.
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

impl ResourceMeta {
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
        let mut grown = Bitmap::new(new_bits)?;
        for (first, len) in bitmap.runs().collect::<Vec<_>>() {
            grown.set_range(first, (first + len).min(new_bits))?;
        }
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
    use rdbd_metadata::layout::AlStripes;

    fn attached(size_bytes: u64) -> (tempfile::TempDir, std::path::PathBuf, ResourceMeta) {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let path = dir.path().join("disk.img");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(size_bytes)
            .unwrap();
        MetaDataDevice::create(
            &path,
            &MetaDiskKind::Internal,
            AlStripes::default(),
            OpenOptions::default(),
        )
        .unwrap();
        let (meta, _) =
            ResourceMeta::attach(&path, &MetaDiskKind::Internal, 67, true, true, true).unwrap();
        (dir, path, meta)
    }

    #[test]
    fn grow_moves_the_meta_data_and_keeps_the_bits() {
        let (_dir, path, meta) = attached(64 << 20);
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
        let (_dir, path, meta) = attached(64 << 20);
        let old = meta.data_sectors();
        let err = meta
            .grow(&path, &MetaDiskKind::Internal, old - 8, false)
            .unwrap_err();
        assert!(err.to_string().contains("does not shrink"), "{err}");
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }
}
