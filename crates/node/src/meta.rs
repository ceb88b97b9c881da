//! The meta-data of an attached resource in the daemon's write path.
//!
//! - Attach: apply the activity log (as `drbdadm up` runs `drbdmeta apply-al`),
//!   read the superblock and bitmap, take the disk state from the flags, and mark
//!   the meta-data unclean (magic `84_UNCLEAN`) while attached.
//! - Every write first makes its 4 MiB extents hot in the activity log. A write to
//!   a cold extent waits until the AL transaction naming it is durable; concurrent
//!   writes to cold extents share one transaction. Bitmap pages are written before
//!   the transaction that evicts their extent, so the on-disk bitmap is never behind
//!   the AL.
//! - Blocks written while no up-to-date peer receives them are set in the bitmap.
//! - Detach: dirty bitmap pages, then the clean superblock.
//!
//! Invariant: no data write is submitted before the AL transaction covering its
//! extents is on disk (`begin_write` returns only then).

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rdbd_metadata::al::{extent_range, replay, AlWrite, ExtentNr};
use rdbd_metadata::claim;
use rdbd_metadata::{
    ActivityLog, Bitmap, MetaDataDevice, MetaDiskKind, MetaError, OpenOptions, Superblock,
};
use rdbd_replicator::generation::{self, Generations};
use rdbd_types::DiskState;

mod reattach;
mod resize;
pub use reattach::AttachSettings;
pub use resize::{capacity_sectors, Grown};

/// The sector size of DRBD's meta-data arithmetic.
const SECTOR_BYTES: u64 = 512;
/// Bytes per bitmap bit.
const BLOCK_BYTES: u64 = 4096;

/// Meta-data could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetaIoError {
    /// The meta-data library reported a problem.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A blocking meta-data task failed to run.
    #[error("meta-data task failed: {0}")]
    Task(String),
    /// The disk was detached (Diskless): there is no meta-data to write.
    #[error("the disk is detached (Diskless); attach it first")]
    Detached,
    /// A re-attached disk does not match the running resource.
    #[error("{0}")]
    Mismatch(String),
}

/// Meta-data writes a data write caused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetaWrites {
    /// Activity-log transactions.
    pub al_transactions: u64,
    /// Bitmap pages (of extents leaving the activity log).
    pub bitmap_pages: u64,
}

/// What attaching found.
#[derive(Debug, Clone, Copy)]
pub struct AttachInfo {
    /// The usable data size in bytes.
    pub size_bytes: u64,
    /// The disk state from the flags.
    pub disk_state: DiskState,
    /// The peer disk state the flags imply (`Outdated` or `DUnknown`).
    pub peer_disk: DiskState,
    /// Out-of-sync bits set by apply-al.
    pub apply_al_bits: u64,
    /// The generation identifiers on disk (the state machine owns them from here on).
    pub gens: Generations,
    /// The superblock flags as attach left them (CRASHED_PRIMARY and AL_DISABLED set).
    pub md_flags: u32,
}

struct AlState {
    al: ActivityLog,
    /// Extents named by a transaction that is being written and is not durable yet.
    in_flight: HashSet<ExtentNr>,
}

/// An attached resource's meta-data.
pub struct ResourceMeta {
    dev: Arc<Mutex<MetaDataDevice>>,
    al: Mutex<AlState>,
    bitmap: Mutex<Bitmap>,
    /// Serializes AL transactions (held while one is being written).
    commit: tokio::sync::Mutex<()>,
    /// Woken when an extent is released (for writes waiting on a full AL).
    released: tokio::sync::Notify,
    /// Data sectors covered by the bitmap (grows with `resize`).
    data_sectors: std::sync::atomic::AtomicU64,
    /// `al-updates yes` (default): writes go through AL transactions.
    al_updates: bool,
    /// Exclusive claims on the data and meta-data devices, held while attached.
    claims: Mutex<Vec<claim::DeviceClaim>>,
    /// Set by `detach` (the disk is no longer used): meta-data writes become no-ops
    /// until [`ResourceMeta::reattach`].
    detached: std::sync::atomic::AtomicBool,
    /// The number of the last identifier write that reached the superblock
    /// ([`IdentifierWrite::seq`]): an older write that finishes later is skipped.
    identifiers_seq: Arc<Mutex<u64>>,
}

impl std::fmt::Debug for ResourceMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceMeta")
            .field("data_sectors", &self.data_sectors())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Maps the configuration's meta-disk to the library's.
pub fn meta_disk_kind(meta: &rdbd_config::MetaDisk) -> Result<MetaDiskKind, String> {
    Ok(match meta {
        rdbd_config::MetaDisk::Internal => MetaDiskKind::Internal,
        rdbd_config::MetaDisk::FlexibleExternal(p) => MetaDiskKind::FlexExternal {
            meta_path: p.clone(),
        },
        rdbd_config::MetaDisk::Indexed(p, i) => MetaDiskKind::Indexed {
            meta_path: p.clone(),
            index: u8::try_from(*i)
                .map_err(|_| format!("meta-disk index {i} is out of range (0..=255)"))?,
        },
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, MetaError> + Send + 'static,
) -> Result<T, MetaIoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MetaIoError::Task(e.to_string()))?
        .map_err(MetaIoError::from)
}

impl ResourceMeta {
    /// Applies the AL, opens the meta-data of `data_path`, reads the bitmap and marks
    /// the meta-data unclean. Blocking: call from a blocking context.
    pub fn attach(
        data_path: &Path,
        kind: &MetaDiskKind,
        al_extents: u32,
        md_flushes: bool,
        fencing_dont_care: bool,
        al_updates: bool,
    ) -> Result<(ResourceMeta, AttachInfo), MetaError> {
        // Claim the devices first: a second daemon or rdbdmeta must not write under us.
        let mut claims = vec![claim::claim(data_path)?];
        let meta_path = kind.meta_path(data_path);
        if meta_path != data_path {
            claims.push(claim::claim(meta_path)?);
        }
        let opts = OpenOptions {
            writable: true,
            md_flushes,
        };
        let mut dev = MetaDataDevice::open(data_path, kind, opts)?;
        let report = dev.apply_al()?;
        let ring = dev.read_al_ring()?;
        let first_tr = replay(&ring, dev.layout().al)
            .ok()
            .and_then(|r| r.newest_tr_number)
            .map(|n| n.wrapping_add(1))
            .unwrap_or(0);
        let al_extents = u16::try_from(al_extents.clamp(67, 65534)).unwrap_or(u16::MAX);
        let al = ActivityLog::new(al_extents, dev.layout().al, first_tr)?;
        // A shrink's size (la_size_sect below what the device offers) survives down/up.
        let data_sectors = resize::attach_data_sectors(&dev);
        let mut bitmap = resize::clip_bitmap(
            &dev.read_data_bitmap()?,
            rdbd_metadata::layout::bitmap_bits_for(data_sectors),
        )?;
        let flags = dev.superblock().flags.0;
        // A Primary that crashed with AL updates off left no record of where it
        // wrote: everything is out of sync (drbd_adm_attach, "aka FullSync").
        let crashed_without_al = flags & generation::md_flag::PRIMARY_IND != 0
            && flags & generation::md_flag::AL_DISABLED != 0;
        if flags & generation::md_flag::FULL_SYNC != 0 || crashed_without_al {
            let bits = bitmap.bits();
            bitmap.set_range(0, bits)?;
            bitmap.mark_all_dirty();
        }
        let (disk_state, peer_disk) = generation::disk_state_at_attach(flags, fencing_dont_care);
        // drbd_adm_attach: MDF_CRASHED_PRIMARY, or MDF_PRIMARY_IND left by a Primary that
        // did not demote (a clean `down` demotes first), makes this a crashed primary; the
        // handshake uses it to pick the sync source when the current UUIDs are equal.
        let crashed_primary =
            flags & (generation::md_flag::PRIMARY_IND | generation::md_flag::CRASHED_PRIMARY) != 0;
        let size_sect = data_sectors;
        dev.update_superblock(|sb| {
            sb.flags
                .set(generation::md_flag::CRASHED_PRIMARY, crashed_primary);
            if sb.la_size_sect == 0 {
                sb.la_size_sect = size_sect;
            }
            sb.flags.set(generation::md_flag::AL_DISABLED, !al_updates);
        })?;
        dev.mark_unclean()?;
        let sb = *dev.superblock();
        let info = AttachInfo {
            size_bytes: data_sectors * SECTOR_BYTES,
            disk_state,
            peer_disk,
            apply_al_bits: report.additional_bits,
            gens: Generations {
                current: sb.uuids.current,
                bitmap: sb.uuids.bitmap,
                history: sb.uuids.history,
            },
            md_flags: sb.flags.0,
        };
        let meta = ResourceMeta {
            dev: Arc::new(Mutex::new(dev)),
            al: Mutex::new(AlState {
                al,
                in_flight: HashSet::new(),
            }),
            bitmap: Mutex::new(bitmap),
            commit: tokio::sync::Mutex::new(()),
            released: tokio::sync::Notify::new(),
            data_sectors: std::sync::atomic::AtomicU64::new(data_sectors),
            al_updates,
            claims: Mutex::new(claims),
            detached: std::sync::atomic::AtomicBool::new(false),
            identifiers_seq: Arc::new(Mutex::new(0)),
        };
        Ok((meta, info))
    }

    /// The superblock as last written.
    pub fn superblock(&self) -> Superblock {
        *lock(&self.dev).superblock()
    }

    /// Out-of-sync data in KiB.
    pub fn out_of_sync_kib(&self) -> u64 {
        lock(&self.bitmap).count() * (BLOCK_BYTES / 1024)
    }

    /// Makes the extents of `[offset, offset+len)` hot; returns once the AL
    /// transaction naming them (if one was needed) is durable. Returns what this
    /// call wrote.
    pub async fn begin_write(&self, offset: u64, len: u64) -> Result<MetaWrites, MetaIoError> {
        if self.is_detached() {
            return Err(MetaIoError::Detached);
        }
        if !self.al_updates {
            return Ok(MetaWrites::default());
        }
        let (first_sector, sectors) = (offset / SECTOR_BYTES, len.div_ceil(SECTOR_BYTES).max(1));
        let (first, last) = extent_range(first_sector, sectors)?;
        // Take references (waiting while the AL has no free slot).
        let fast = loop {
            let released = self.released.notified();
            let attempt = {
                let mut st = lock(&self.al);
                st.al
                    .begin_write(first_sector, sectors)
                    .map(|not_committed| {
                        not_committed.is_empty()
                            && (first..=last).all(|e| !st.in_flight.contains(&e))
                    })
            };
            match attempt {
                Ok(fast) => break fast,
                Err(MetaError::AlBusy { .. }) => released.await,
                Err(e) => return Err(e.into()),
            }
        };
        if fast {
            return Ok(MetaWrites::default());
        }
        // Our extents are pending or in a transaction being written. A transaction is
        // activated and written under the commit lock, so once we hold it every earlier
        // one is durable; what is still pending (ours, and any other writer's) goes
        // into one new transaction.
        let _commit = self.commit.lock().await;
        let pending = {
            let mut st = lock(&self.al);
            let w = st.al.activate();
            if let Some(w) = &w {
                let named: Vec<ExtentNr> = named_extents(w).collect();
                st.in_flight.extend(named);
            }
            w
        };
        let Some(w) = pending else {
            return Ok(MetaWrites::default());
        };
        let result = self.write_transaction(&w).await;
        let mut st = lock(&self.al);
        for e in named_extents(&w) {
            st.in_flight.remove(&e);
        }
        result.map(|bm_pages| MetaWrites {
            al_transactions: 1,
            bitmap_pages: bm_pages,
        })
    }

    /// Bitmap pages of evicted extents, then the transaction block, durably.
    async fn write_transaction(&self, w: &AlWrite) -> Result<u64, MetaIoError> {
        // Only the pages of the extents leaving the log need to reach the disk
        // first: apply-al covers the extents that stay hot.
        let pages: Vec<(u32, [u8; 4096])> = {
            let mut bm = lock(&self.bitmap);
            let mut pages: Vec<u32> = w
                .evicted
                .iter()
                .map(|&e| Bitmap::page_of_al_extent(e))
                .collect();
            pages.sort_unstable();
            pages.dedup();
            pages
                .into_iter()
                .filter_map(|p| bm.take_dirty_page(p).map(|b| (p, b)))
                .collect()
        };
        let dev = Arc::clone(&self.dev);
        let w = w.clone();
        blocking(move || {
            let mut dev = lock(&dev);
            write_bitmap_pages(&dev, &pages)?;
            dev.write_al(&w)?;
            Ok(pages.len() as u64)
        })
        .await
    }

    fn take_dirty_pages(&self) -> Vec<(u32, [u8; 4096])> {
        let mut bm = lock(&self.bitmap);
        let pages: Vec<(u32, [u8; 4096])> = bm
            .take_dirty_pages()
            .into_iter()
            .filter_map(|p| bm.page_bytes(p).map(|b| (p, b)))
            .collect();
        pages
    }

    /// Releases the extents of a write that completed.
    pub fn end_write(&self, offset: u64, len: u64) {
        if !self.al_updates {
            return;
        }
        let (first_sector, sectors) = (offset / SECTOR_BYTES, len.div_ceil(SECTOR_BYTES).max(1));
        if let Err(e) = lock(&self.al).al.end_write(first_sector, sectors) {
            // begin_write succeeded for this range, so this is a bug in our bookkeeping.
            panic!("activity log end_write for {offset}+{len}: {e}");
        }
        self.released.notify_waiters();
    }

    /// Marks `[offset, offset+len)` out of sync in memory.
    pub fn set_out_of_sync(&self, offset: u64, len: u64) {
        let (first, sectors) = (offset / SECTOR_BYTES, len.div_ceil(SECTOR_BYTES));
        let _ = lock(&self.bitmap).set_out_of_sync_sectors(first, sectors);
    }

    /// Writes the generation identifiers and flags the state machine decided
    /// (`Action::WriteMeta`, see `crate::core_driver`) into the superblock, durably. Writes
    /// are numbered when decided: one that was overtaken by a newer one is skipped, so the
    /// superblock never goes back. A no-op while detached.
    pub fn write_identifiers(
        &self,
        w: IdentifierWrite,
    ) -> impl std::future::Future<Output = Result<(), MetaIoError>> + Send + 'static {
        let detached = self.is_detached();
        let dev = Arc::clone(&self.dev);
        let last = Arc::clone(&self.identifiers_seq);
        async move {
            if detached {
                return Ok(());
            }
            blocking(move || {
                let mut dev = lock(&dev);
                let mut last = lock(&last);
                if w.seq <= *last {
                    return Ok(());
                }
                dev.update_superblock(|sb| {
                    sb.uuids.current = w.gens.current;
                    sb.uuids.bitmap = w.gens.bitmap;
                    sb.uuids.history = w.gens.history;
                    sb.flags.0 = w.md_flags;
                })?;
                *last = w.seq;
                Ok(())
            })
            .await
        }
    }

    /// Marks every block out of sync and writes the whole bitmap (invalidate).
    pub async fn invalidate_bitmap(&self) -> Result<(), MetaIoError> {
        if self.is_detached() {
            return Err(MetaIoError::Detached);
        }
        self.set_all_out_of_sync();
        let pages = self.take_dirty_pages();
        let dev = Arc::clone(&self.dev);
        blocking(move || write_bitmap_pages(&lock(&dev), &pages)).await
    }

    /// `new-current-uuid --clear-bitmap`: every out-of-sync bit is dropped, durably (the
    /// identifiers follow through [`ResourceMeta::write_identifiers`]).
    pub async fn clear_bitmap(&self) -> Result<(), MetaIoError> {
        if self.is_detached() {
            return Err(MetaIoError::Detached);
        }
        {
            let mut bm = lock(&self.bitmap);
            let bits = bm.bits();
            bm.clear_range(0, bits)?;
            bm.mark_all_dirty();
        }
        let pages = self.take_dirty_pages();
        let dev = Arc::clone(&self.dev);
        blocking(move || write_bitmap_pages(&lock(&dev), &pages)).await
    }

    /// Writes the dirty bitmap pages and the clean superblock. No write may be in flight.
    pub async fn detach(&self) -> Result<(), MetaIoError> {
        if self.is_detached() {
            return Ok(());
        }
        let pages = self.take_dirty_pages();
        let dev = Arc::clone(&self.dev);
        blocking(move || {
            let mut dev = lock(&dev);
            write_bitmap_pages(&dev, &pages)?;
            dev.mark_clean()
        })
        .await
    }

    /// Data sectors covered by the bitmap.
    pub fn data_sectors(&self) -> u64 {
        self.data_sectors.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The extents a transaction makes hot.
fn named_extents(w: &AlWrite) -> impl Iterator<Item = ExtentNr> + '_ {
    w.transaction
        .update_extent_nr
        .iter()
        .take(usize::from(w.transaction.n_updates))
        .copied()
}

/// Writes bitmap pages (index, 4 KiB image) to the bitmap area and flushes.
fn write_bitmap_pages(dev: &MetaDataDevice, pages: &[(u32, [u8; 4096])]) -> Result<(), MetaError> {
    if pages.is_empty() {
        return Ok(());
    }
    let layout = dev.layout();
    let area = layout.bitmap_area_bytes();
    for (page, bytes) in pages {
        let offset = u64::from(*page) * BLOCK_BYTES;
        let len = area.saturating_sub(offset).min(BLOCK_BYTES) as usize;
        dev.raw()
            .write_at(&bytes[..len], layout.bm_offset_bytes() + offset)?;
    }
    dev.flush()
}

/// Identifiers and flags to write, numbered in the order the state machine decided them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentifierWrite {
    /// The generation identifiers.
    pub gens: Generations,
    /// The superblock flags.
    pub md_flags: u32,
    /// Increasing per resource.
    pub seq: u64,
}

/// Replication's view of the meta-data: the bitmap as a whole (used by `crate::peer`
/// for the handshake, the bitmap exchange and resync).
impl ResourceMeta {
    /// Set bits (4 KiB blocks out of sync).
    pub fn bitmap_weight(&self) -> u64 {
        lock(&self.bitmap).count()
    }

    /// Bits in the bitmap.
    pub fn bitmap_bits(&self) -> u64 {
        lock(&self.bitmap).bits()
    }

    /// A copy of the bitmap words.
    pub fn bitmap_words(&self) -> Vec<u64> {
        lock(&self.bitmap).words().to_vec()
    }

    /// Runs `f` on the bitmap words and the number of bits, under the bitmap's lock
    /// (the resync's planning walk, without a copy).
    pub fn with_bitmap_words<R>(&self, f: impl FnOnce(&[u64], u64) -> R) -> R {
        let bm = lock(&self.bitmap);
        f(bm.words(), bm.bits())
    }

    /// ORs `words` into the bitmap (a peer's bitmap before a resync).
    pub fn merge_bitmap(&self, words: &[u64]) {
        let mut bm = lock(&self.bitmap);
        let bits = bm.bits();
        for (i, w) in words.iter().enumerate() {
            let mut b = *w;
            while b != 0 {
                let bit = i as u64 * 64 + u64::from(b.trailing_zeros());
                b &= b - 1;
                if bit < bits {
                    let _ = bm.set(bit);
                }
            }
        }
    }

    /// Sets every bit (a full sync).
    pub fn set_all_out_of_sync(&self) {
        let mut bm = lock(&self.bitmap);
        let bits = bm.bits();
        let _ = bm.set_range(0, bits);
        bm.mark_all_dirty();
    }

    /// Clears the bits of `[sector, sector + sectors)` (blocks resynced); only whole blocks.
    pub fn set_in_sync(&self, sector: u64, sectors: u64) -> u64 {
        lock(&self.bitmap)
            .set_in_sync_sectors(sector, sectors)
            .unwrap_or(0)
    }

    /// Writes the dirty bitmap pages durably (resync progress survives a crash).
    pub async fn write_dirty_bitmap(&self) -> Result<u64, MetaIoError> {
        if self.is_detached() {
            return Ok(0);
        }
        let pages = self.take_dirty_pages();
        let n = pages.len() as u64;
        let dev = Arc::clone(&self.dev);
        blocking(move || write_bitmap_pages(&lock(&dev), &pages)).await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdbd_metadata::layout::AlStripes;

    const EXTENT_BYTES: u64 = 4 << 20;

    /// A sparse file of `size_bytes` with fresh internal meta-data, attached with
    /// `al_extents` (the fixture of this module's and its submodules' tests).
    pub(super) fn attached(
        size_bytes: u64,
        al_extents: u32,
    ) -> (tempfile::TempDir, std::path::PathBuf, ResourceMeta) {
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
        // create-md leaves la_size_sect 0; attach sets it, as the kernel does.
        let (meta, info) =
            ResourceMeta::attach(&path, &MetaDiskKind::Internal, al_extents, true, true, true)
                .unwrap();
        assert_eq!(info.disk_state, DiskState::Inconsistent);
        (dir, path, meta)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap()
    }

    #[test]
    fn concurrent_writes_to_one_cold_extent_share_one_transaction() {
        let (_dir, _path, meta) = attached(512 << 20, 67);
        let meta = Arc::new(meta);
        let total = runtime().block_on(async {
            let tasks: Vec<_> = (0..16u64)
                .map(|i| {
                    let meta = Arc::clone(&meta);
                    tokio::spawn(async move {
                        meta.begin_write(3 * EXTENT_BYTES + i * 4096, 4096)
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await.unwrap().al_transactions;
            }
            total
        });
        assert_eq!(
            total, 1,
            "16 writes to one cold extent must cost one AL transaction"
        );
        for i in 0..16u64 {
            meta.end_write(3 * EXTENT_BYTES + i * 4096, 4096);
        }
        // Hot now: no transaction at all.
        let again = runtime()
            .block_on(meta.begin_write(3 * EXTENT_BYTES, 4096))
            .unwrap();
        assert_eq!(again, MetaWrites::default());
        meta.end_write(3 * EXTENT_BYTES, 4096);
    }

    #[test]
    fn an_evicted_extent_has_its_bitmap_page_on_disk_first() {
        let (_dir, path, meta) = attached(512 << 20, 67);
        let rt = runtime();
        // Extent 0 gets a write not replicated to anyone: its bit is set in memory.
        rt.block_on(meta.begin_write(0, 4096)).unwrap();
        meta.set_out_of_sync(0, 4096);
        meta.end_write(0, 4096);
        let on_disk_bit0 = |path: &Path| {
            let dev = MetaDataDevice::open(
                path,
                &MetaDiskKind::Internal,
                OpenOptions {
                    writable: false,
                    md_flushes: false,
                },
            )
            .unwrap();
            dev.read_data_bitmap().unwrap().test(0)
        };
        assert!(
            !on_disk_bit0(&path),
            "the bitmap page is written lazily, not on every write"
        );
        // 67 more distinct extents, in another bitmap page (extents 40..107): extent 0,
        // the least recently used, is evicted, and its page must reach the disk first.
        let mut pages_written = 0;
        for e in 40..(40 + 67u64) {
            let w = rt
                .block_on(meta.begin_write(e * EXTENT_BYTES, 4096))
                .unwrap();
            pages_written += w.bitmap_pages;
            meta.end_write(e * EXTENT_BYTES, 4096);
        }
        assert_eq!(
            pages_written, 1,
            "exactly the evicted extent's page is written"
        );
        assert!(
            on_disk_bit0(&path),
            "extent 0 left the activity log before its bitmap page was on disk"
        );
    }
}
