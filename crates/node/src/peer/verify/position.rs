//! Where a verify run got to (D84 drbd_state.c `_drbd_set_state`: leaving VerifyS /
//! VerifyT for Connected or less sets `ov_start_sector` to the first block not verified and
//! logs `Online Verify reached sector S` unless the run reached the end of the device;
//! drbd_nl.c `drbd_adm_start_ov`: the next `verify` without `--start` resumes there;
//! drbd_worker.c `drbd_resync_finished`: a run that reached the end resets it to 0).
//!
//! [`Position`] counts the blocks verified from the run's first block. The run's owner calls
//! [`Position::ended`] when verify ends in order (all blocks, or the stop sector); a run
//! dropped without that (the connection broke, the session ended) ends in `Drop`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rdbd_replicator::resync::plan::SECTORS_PER_BLOCK;

use crate::peer::PeerLink;
use crate::resource::Resource;

/// The sector a run that verified `done_blocks` from `first_bit` (of `bits` blocks) reached;
/// `None` when nothing is left to verify (the next run starts at 0 again).
pub(crate) fn reached_sector(first_bit: u64, done_blocks: u64, bits: u64) -> Option<u64> {
    let reached_bit = first_bit.saturating_add(done_blocks);
    (reached_bit < bits).then(|| reached_bit * SECTORS_PER_BLOCK)
}

/// The position of one verify run.
#[derive(Debug)]
pub(crate) struct Position {
    resource: Arc<Resource>,
    link: Arc<PeerLink>,
    first_bit: u64,
    done_blocks: u64,
    bits: u64,
    ended: bool,
}

impl Position {
    /// A run over a device of `capacity_sectors` that starts at `first_bit`.
    pub(crate) fn new(
        resource: &Arc<Resource>,
        link: &Arc<PeerLink>,
        first_bit: u64,
        capacity_sectors: u64,
    ) -> Self {
        Position {
            resource: Arc::clone(resource),
            link: Arc::clone(link),
            first_bit,
            done_blocks: 0,
            bits: capacity_sectors.div_ceil(SECTORS_PER_BLOCK),
            ended: false,
        }
    }

    /// VerifyT learns its first block from the first `P_OV_REQUEST`.
    pub(crate) fn set_first_bit(&mut self, first_bit: u64) {
        self.first_bit = first_bit;
    }

    /// One more block verified.
    pub(crate) fn verified(&mut self) {
        self.done_blocks += 1;
    }

    /// The run ended: logs the position unless the device end was reached, and remembers
    /// where the next `verify` starts.
    pub(crate) fn ended(&mut self) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let next = match reached_sector(self.first_bit, self.done_blocks, self.bits) {
            Some(sector) => {
                tracing::info!(resource = %self.resource.name, "Online Verify reached sector {sector}");
                sector
            }
            None => 0,
        };
        self.link.ov_start_sector.store(next, Ordering::Relaxed);
    }
}

impl Drop for Position {
    fn drop(&mut self) {
        self.ended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reached_position_is_the_first_block_not_verified() {
        // 100 blocks from block 10 of 16376: the next run starts at block 110.
        assert_eq!(reached_sector(10, 100, 16_376), Some(880));
        // Nothing verified (VerifyT before the first request): sector 0 / the start.
        assert_eq!(reached_sector(0, 0, 16_376), Some(0));
        assert_eq!(reached_sector(7, 0, 16_376), Some(56));
        // The end of the device: no position, the next run starts at 0.
        assert_eq!(reached_sector(0, 16_376, 16_376), None);
        assert_eq!(reached_sector(16_375, 1, 16_376), None);
        assert_eq!(reached_sector(u64::MAX, 5, 16_376), None);
    }
}
