//! Replay of the on-disk AL ring after a crash (drbdmeta `replay_al_84` semantics).
//!
//! Every ring position is decoded; valid update transactions are ordered by `tr_number`
//! (wrapping, signed difference), and replayed oldest to newest: first the context window,
//! then the updates, into a slot → extent map. The extents left in the map are the hot set,
//! returned sorted. `INITIALIZED` blocks only count as valid.

use crate::al::transaction::{AlTransaction, AlTransactionType, EXTENT_FREE, SLOT_UNUSED};
use crate::consts::*;
use crate::error::{MetaError, Result};
use crate::layout::AlStripes;

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// Blocks that decoded (magic and checksum good).
    pub valid_blocks: u32,
    /// Blocks that did not.
    pub corrupt_blocks: u32,
    /// Valid update transactions (0: nothing to apply).
    pub update_transactions: u32,
    /// Highest transaction number seen among updates.
    pub newest_tr_number: Option<u32>,
    /// Hot extents at the newest transaction, sorted ascending (may repeat an extent held by
    /// two slots).
    pub hot_extents: Vec<u32>,
    /// Slot numbers ≥ 65534 that were skipped.
    pub skipped_slots: u32,
}

/// Replays the AL area `ring` (the raw bytes, `al.size_4k()` blocks in on-disk order).
pub fn replay(ring: &[u8], al: AlStripes) -> Result<ReplayOutcome> {
    let mx = al.size_4k();
    let needed = mx as usize * BLOCK_4K_BYTES;
    if ring.len() < needed {
        return Err(MetaError::Truncated {
            what: "AL ring",
            needed,
            got: ring.len(),
        });
    }
    // Logical position b (tr_number % mx) lives at on-disk block al.block_of_tr(b).
    let decoded: Vec<Option<AlTransaction>> = (0..mx)
        .map(|b| {
            let o = al.block_of_tr(b) as usize * BLOCK_4K_BYTES;
            AlTransaction::decode(&ring[o..o + BLOCK_4K_BYTES]).ok()
        })
        .collect();
    let valid_blocks = decoded.iter().filter(|t| t.is_some()).count() as u32;
    if valid_blocks == 0 {
        return Err(MetaError::AlNoData);
    }
    let corrupt_blocks = mx - valid_blocks;
    let updates: Vec<(usize, u32)> = decoded
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.as_ref().map(|t| (i, t)))
        .filter(|(_, t)| t.tr_type != AlTransactionType::Initialized)
        .map(|(i, t)| (i, t.tr_number))
        .collect();
    let mut outcome = ReplayOutcome {
        valid_blocks,
        corrupt_blocks,
        update_transactions: updates.len() as u32,
        newest_tr_number: None,
        hot_extents: Vec::new(),
        skipped_slots: 0,
    };
    let Some(&first) = updates.first() else {
        // Only initialized blocks: fine if all are valid, or only the very first write failed.
        if valid_blocks == mx || (decoded[0].is_none() && valid_blocks == mx - 1) {
            return Ok(outcome);
        }
        return Err(MetaError::AlNoValidUpdate {
            corrupt: corrupt_blocks,
        });
    };
    let (mut oldest, mut newest) = (first, first);
    for &(i, tr) in &updates[1..] {
        if (tr.wrapping_sub(oldest.1) as i32) < 0 {
            oldest = (i, tr);
        }
        if (tr.wrapping_sub(newest.1) as i32) > 0 {
            newest = (i, tr);
        }
    }
    outcome.newest_tr_number = Some(newest.1);
    let end = if newest.0 < oldest.0 {
        newest.0 + mx as usize
    } else {
        newest.0
    };
    let mut hot = vec![EXTENT_FREE; usize::from(AL_EXTENTS_MAX)];
    for b in oldest.0..=end {
        let Some(t) = decoded[b % mx as usize].as_ref() else {
            continue;
        };
        if t.tr_type == AlTransactionType::Initialized {
            continue;
        }
        for (i, &extent) in t.context.iter().enumerate() {
            let slot = usize::from(t.context_start_slot_nr) + i;
            if extent == EXTENT_FREE && slot >= usize::from(t.context_size) {
                continue;
            }
            match hot.get_mut(slot) {
                Some(h) => *h = extent,
                None => outcome.skipped_slots += 1,
            }
        }
        for (i, (&slot, &extent)) in t
            .update_slot_nr
            .iter()
            .zip(t.update_extent_nr.iter())
            .enumerate()
        {
            if i >= usize::from(t.n_updates) && slot == SLOT_UNUSED {
                continue;
            }
            match hot.get_mut(usize::from(slot)) {
                Some(h) => *h = extent,
                None => outcome.skipped_slots += 1,
            }
        }
    }
    hot.retain(|&e| e != EXTENT_FREE);
    hot.sort_unstable();
    outcome.hot_extents = hot;
    Ok(outcome)
}

/// The ring bytes of a freshly initialized AL (every block `INITIALIZED`, tr_number 0).
pub fn initialized_ring(al: AlStripes) -> Vec<u8> {
    let block = AlTransaction::initialized().encode();
    let mut ring = Vec::with_capacity(al.size_4k() as usize * BLOCK_4K_BYTES);
    for _ in 0..al.size_4k() {
        ring.extend_from_slice(&block);
    }
    ring
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::al::activity_log::ActivityLog;

    fn write(ring: &mut [u8], w: &crate::al::activity_log::AlWrite) {
        let o = w.offset_in_al_bytes() as usize;
        ring[o..o + BLOCK_4K_BYTES].copy_from_slice(&w.block_bytes());
    }

    #[test]
    fn fresh_ring_has_nothing_to_apply() {
        let al = AlStripes::default();
        let o = replay(&initialized_ring(al), al).unwrap();
        assert_eq!((o.valid_blocks, o.update_transactions), (8, 0));
        assert!(o.hot_extents.is_empty());
    }

    #[test]
    fn zeroed_ring_is_no_data() {
        assert!(matches!(
            replay(&vec![0u8; 32768], AlStripes::default()),
            Err(MetaError::AlNoData)
        ));
        assert!(replay(&[0u8; 100], AlStripes::default()).is_err());
    }

    #[test]
    fn replay_rebuilds_active_set_across_wraps_and_stripes() {
        let ring_geo = AlStripes::new(3, 4).unwrap();
        let mut ring = initialized_ring(ring_geo);
        let mut a = ActivityLog::new(67, ring_geo, u32::MAX - 5).unwrap();
        let ext = AL_EXTENT_SECT;
        for round in 0..40u64 {
            let e = (round * 37) % 150;
            a.begin_write(e * ext, 8).unwrap();
            if let Some(w) = a.activate() {
                write(&mut ring, &w);
            }
            a.end_write(e * ext, 8).unwrap();
        }
        let o = replay(&ring, ring_geo).unwrap();
        let mut expected = a.active_extents();
        expected.sort_unstable();
        assert_eq!(o.hot_extents, expected);
        assert_eq!(o.newest_tr_number, Some(a.next_tr_number().wrapping_sub(1)));
    }

    #[test]
    fn torn_newest_block_is_skipped() {
        let al = AlStripes::default();
        let mut ring = initialized_ring(al);
        let mut a = ActivityLog::new(67, al, 0).unwrap();
        a.begin_write(0, 8).unwrap();
        write(&mut ring, &a.activate().unwrap());
        a.begin_write(AL_EXTENT_SECT * 9, 8).unwrap();
        let w = a.activate().unwrap();
        write(&mut ring, &w);
        ring[w.offset_in_al_bytes() as usize + 500] ^= 0xff;
        let o = replay(&ring, al).unwrap();
        assert_eq!(o.hot_extents, vec![0]);
        assert_eq!(o.corrupt_blocks, 1);
    }
}
