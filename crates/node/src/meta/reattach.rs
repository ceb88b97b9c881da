//! Detaching and re-attaching the meta-data of a resource that stays up (`rdbdadm
//! detach` / `attach`, D84 drbd_nl.c `drbd_adm_detach`, `drbd_adm_attach`).
//!
//! - [`ResourceMeta::release`]: the dirty bitmap pages and the clean superblock are
//!   written, the device claims are dropped (drbdmeta or another daemon may open the
//!   devices now), and every later meta-data write becomes a no-op (Diskless).
//! - [`ResourceMeta::reattach`]: claims the devices again, applies the activity log,
//!   reads the superblock and the bitmap exactly as `up` does, and swaps them in.
//!
//! Invariant: while detached nothing writes to the meta-data devices (every writer in
//! `meta.rs` checks [`ResourceMeta::is_detached`] first).

use std::path::Path;
use std::sync::atomic::Ordering;

use rdbd_metadata::MetaDiskKind;

use super::{lock, AttachInfo, MetaIoError, ResourceMeta};

/// The attach-time settings of the meta-data (from the resource's `disk` section).
#[derive(Debug, Clone, Copy)]
pub struct AttachSettings {
    /// `al-extents`.
    pub al_extents: u32,
    /// `md-flushes`.
    pub md_flushes: bool,
    /// `fencing dont-care` (the peer's disk is not assumed Outdated).
    pub fencing_dont_care: bool,
}

impl ResourceMeta {
    /// True between [`ResourceMeta::release`] and [`ResourceMeta::reattach`].
    pub fn is_detached(&self) -> bool {
        self.detached.load(Ordering::SeqCst)
    }

    /// Writes the bitmap and the clean superblock, then releases the devices. No write
    /// may be in flight.
    pub async fn release(&self) -> Result<(), MetaIoError> {
        self.detach().await?;
        self.detached.store(true, Ordering::SeqCst);
        lock(&self.claims).clear();
        Ok(())
    }

    /// Attaches the meta-data of `data_path` again (blocking: call from a blocking
    /// context). The data size must be the one the resource runs with.
    pub fn reattach(
        &self,
        data_path: &Path,
        kind: &MetaDiskKind,
        settings: AttachSettings,
    ) -> Result<AttachInfo, MetaIoError> {
        if !self.is_detached() {
            return Err(MetaIoError::Mismatch("the disk is attached already".into()));
        }
        let (fresh, info) = ResourceMeta::attach(
            data_path,
            kind,
            settings.al_extents,
            settings.md_flushes,
            settings.fencing_dont_care,
            self.al_updates,
        )?;
        if fresh.data_sectors() != self.data_sectors() {
            // Leave the meta-data as it was found: clean.
            let _ = lock(&fresh.dev).mark_clean();
            return Err(MetaIoError::Mismatch(format!(
                "the meta-data of {} describes {} data sectors, the resource runs with {} (resize, or down and up)",
                data_path.display(),
                fresh.data_sectors(),
                self.data_sectors()
            )));
        }
        std::mem::swap(&mut *lock(&self.dev), &mut *lock(&fresh.dev));
        std::mem::swap(&mut *lock(&self.al), &mut *lock(&fresh.al));
        std::mem::swap(&mut *lock(&self.bitmap), &mut *lock(&fresh.bitmap));
        std::mem::swap(&mut *lock(&self.claims), &mut *lock(&fresh.claims));
        self.detached.store(false, Ordering::SeqCst);
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tests::attached;

    #[test]
    fn release_frees_the_claim_and_reattach_reads_the_bitmap_again() {
        let (_dir, path, meta) = attached(64 << 20, 67);
        assert!(
            rdbd_metadata::claim::claim(&path).is_err(),
            "claimed while attached"
        );
        meta.set_out_of_sync(8 * 4096, 3 * 4096);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(meta.release()).unwrap();
        assert!(meta.is_detached());
        drop(rdbd_metadata::claim::claim(&path).expect("released by detach"));
        // Writes to a detached meta-data are refused, not performed.
        assert!(matches!(
            rt.block_on(meta.begin_write(0, 4096)),
            Err(MetaIoError::Detached)
        ));
        let settings = AttachSettings {
            al_extents: 67,
            md_flushes: true,
            fencing_dont_care: true,
        };
        meta.reattach(&path, &MetaDiskKind::Internal, settings)
            .unwrap();
        assert!(!meta.is_detached());
        assert_eq!(
            meta.bitmap_weight(),
            3,
            "the bits written at detach are read back"
        );
        assert!(rdbd_metadata::claim::claim(&path).is_err(), "claimed again");
        assert!(meta
            .reattach(&path, &MetaDiskKind::Internal, settings)
            .is_err());
    }
}
