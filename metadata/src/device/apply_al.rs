//! apply-al: after a crash, mark the hot extents of the AL out of sync, re-initialize the AL
//! and mark the meta-data clean (drbdmeta `meta_apply_al`, 8.4 AL format).
//!
//! The bits are applied only when `PRIMARY_IND` is set. The bitmap region is the one drbdmeta
//! uses: `bm_bytes(la_size_sect)` (4 KiB pages for the last agreed size), and an extent is
//! set whole within that region, so bits past `la_size_sect` in the last page may be set,
//! exactly as drbdmeta does. `PRIMARY_IND` itself is left alone.

use super::MetaDataDevice;
use crate::al::{replay, ReplayOutcome};
use crate::bitmap::Bitmap;
use crate::error::{MetaError, Result};
use crate::layout::bitmap_bytes_for;
use crate::superblock::{MdFlags, MdMagic};

/// What apply-al did.
#[derive(Debug)]
pub struct ApplyAlReport {
    /// The replay result (`Err` only when it could be ignored: not a crashed primary).
    pub replay: std::result::Result<ReplayOutcome, MetaError>,
    /// Hot extents were applied to the bitmap.
    pub applied: bool,
    /// Bits newly set.
    pub additional_bits: u64,
    /// Hot extents that lie past the bitmap region (skipped).
    pub skipped_extents: Vec<u32>,
    /// The AL ring was re-initialized.
    pub reinitialized: bool,
    /// The superblock was rewritten (magic 08, AL_CLEAN).
    pub superblock_updated: bool,
}

impl MetaDataDevice {
    /// Runs apply-al. Fails (changing nothing) if the node was primary and the AL cannot be
    /// interpreted ([`MetaError::AlNoData`], [`MetaError::AlNoValidUpdate`]).
    pub fn apply_al(&mut self) -> Result<ApplyAlReport> {
        let ring = self.read_al_ring()?;
        let need = self.sb.flags.has(MdFlags::PRIMARY_IND);
        let replay_result = replay(&ring, self.layout.al);
        let mut report = ApplyAlReport {
            replay: Ok(ReplayOutcome {
                valid_blocks: 0,
                corrupt_blocks: 0,
                update_transactions: 0,
                newest_tr_number: None,
                hot_extents: Vec::new(),
                skipped_slots: 0,
            }),
            applied: false,
            additional_bits: 0,
            skipped_extents: Vec::new(),
            reinitialized: false,
            superblock_updated: false,
        };
        let mut reinit = false;
        match replay_result {
            Err(e) if need => return Err(e),
            Err(e) => {
                reinit = true;
                report.replay = Err(e);
            }
            Ok(outcome) => {
                if outcome.update_transactions > 0 {
                    reinit = true;
                    if need {
                        self.apply_hot_extents(&outcome.hot_extents, &mut report)?;
                    }
                }
                report.replay = Ok(outcome);
            }
        }
        if reinit {
            self.initialize_al()?;
            report.reinitialized = true;
        }
        if !self.sb.flags.has(MdFlags::AL_CLEAN) || self.sb.magic != MdMagic::Clean {
            self.update_superblock(|sb| {
                sb.flags.set(MdFlags::AL_CLEAN, true);
                sb.magic = MdMagic::Clean;
            })?;
            report.superblock_updated = true;
        }
        Ok(report)
    }

    fn apply_hot_extents(&mut self, hot: &[u32], report: &mut ApplyAlReport) -> Result<()> {
        if hot.is_empty() {
            return Ok(());
        }
        let region_bytes = bitmap_bytes_for(self.clipped_la_size_sect());
        let mut bm: Bitmap = self.read_bitmap(region_bytes * 8)?;
        for &extent in hot {
            match bm.set_al_extent(extent) {
                Some(n) => report.additional_bits += n,
                None => report.skipped_extents.push(extent),
            }
        }
        self.write_bitmap_pages(&mut bm)?;
        report.applied = true;
        Ok(())
    }
}
