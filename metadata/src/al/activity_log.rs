//! Sans-I/O activity log: the LRU of hot 4 MiB extents and the transactions that record it.
//!
//! Mirrors DRBD 8.4's `lru_cache` + `drbd_actlog.c`:
//! - [`ActivityLog::begin_write`] takes a reference on every extent a write touches. A cold
//!   extent gets a slot: a free one (highest index first, as `lc_reset` orders the free list),
//!   else the least recently released unused one is evicted. An extent in use is never evicted;
//!   if not enough slots can be taken the call fails with [`MetaError::AlBusy`] and changes
//!   nothing (like `drbd_al_begin_io_nonblock`). At most 64 changes may be pending.
//! - [`ActivityLog::activate`] turns all pending changes into one transaction (updates: slot and
//!   new extent, most recent first; context: the next window of up to 919 slots with their
//!   extents *before* this transaction, cycling through all slots) and commits them in memory.
//!   The caller must write the bitmap pages of [`AlWrite::evicted`] extents, then the
//!   transaction block, before submitting the data writes.
//! - [`ActivityLog::end_write`] drops the references; an extent whose count reaches zero becomes
//!   the most recently used evictable extent.
//!
//! Invariant: replaying every transaction written so far (in `tr_number` order, context before
//! updates) yields exactly the committed slot → extent map, so after a crash the replay covers
//! every extent that had writes in flight.

use std::collections::{BTreeMap, HashMap};

use crate::al::transaction::{AlTransaction, AlTransactionType, EXTENT_FREE, SLOT_UNUSED};
use crate::consts::*;
use crate::error::{MetaError, Result};
use crate::layout::AlStripes;

/// Number of a 4 MiB activity-log extent (`sector >> 13`).
pub type ExtentNr = u32;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Committed extent (`lc_number`).
    number: u32,
    /// Extent after the pending transaction (`lc_new_number`).
    new_number: u32,
    /// Writes in flight.
    refcnt: u32,
    /// Key in the LRU map while unused and committed.
    lru_tick: Option<u64>,
}

/// A transaction to write, produced by [`ActivityLog::activate`].
#[derive(Debug, Clone)]
pub struct AlWrite {
    /// The transaction (tr_number included).
    pub transaction: AlTransaction,
    /// 4 KiB block within the AL area where it goes.
    pub ring_block: u32,
    /// Extents that left the active set: their bitmap pages must be on disk first.
    pub evicted: Vec<ExtentNr>,
}

impl AlWrite {
    /// The encoded block.
    pub fn block_bytes(&self) -> [u8; BLOCK_4K_BYTES] {
        self.transaction.encode()
    }

    /// Byte offset of the block from the start of the AL area.
    pub fn offset_in_al_bytes(&self) -> u64 {
        u64::from(self.ring_block) * BLOCK_4K_BYTES as u64
    }
}

/// The in-memory activity log.
#[derive(Debug, Clone)]
pub struct ActivityLog {
    slots: Vec<Slot>,
    by_extent: HashMap<u32, u16>,
    free: Vec<u16>,
    lru: BTreeMap<u64, u16>,
    tick: u64,
    pending: Vec<u16>,
    tr_number: u32,
    tr_cycle: u16,
    ring: AlStripes,
}

/// Extents `[first, last]` touched by a write (`sectors == 0` touches the first one).
pub fn extent_range(first_sector: u64, sectors: u64) -> Result<(ExtentNr, ExtentNr)> {
    let bad = || MetaError::BadRange {
        first_sector,
        sectors,
    };
    let last_sector = first_sector
        .checked_add(sectors.saturating_sub(1))
        .ok_or_else(bad)?;
    let first = u32::try_from(first_sector / AL_EXTENT_SECT).map_err(|_| bad())?;
    let last = u32::try_from(last_sector / AL_EXTENT_SECT).map_err(|_| bad())?;
    if last == EXTENT_FREE {
        return Err(bad());
    }
    Ok((first, last))
}

impl ActivityLog {
    /// A fresh, empty activity log of `al_extents` slots (67..=65534) writing into `ring`,
    /// starting with transaction number `first_tr_number`.
    pub fn new(al_extents: u16, ring: AlStripes, first_tr_number: u32) -> Result<ActivityLog> {
        if !(AL_EXTENTS_MIN..=AL_EXTENTS_MAX).contains(&al_extents) {
            return Err(MetaError::AlExtentsOutOfRange(al_extents.into()));
        }
        let slot = Slot {
            number: EXTENT_FREE,
            new_number: EXTENT_FREE,
            refcnt: 0,
            lru_tick: None,
        };
        Ok(ActivityLog {
            slots: vec![slot; usize::from(al_extents)],
            by_extent: HashMap::new(),
            free: (0..al_extents).collect(),
            lru: BTreeMap::new(),
            tick: 0,
            pending: Vec::new(),
            tr_number: first_tr_number,
            tr_cycle: 0,
            ring,
        })
    }

    /// Number of slots (`al-extents`).
    pub fn nr_slots(&self) -> u16 {
        self.slots.len() as u16
    }

    /// Next transaction number to be written.
    pub fn next_tr_number(&self) -> u32 {
        self.tr_number
    }

    /// Committed extents, in slot order (the active set).
    pub fn active_extents(&self) -> Vec<ExtentNr> {
        self.slots
            .iter()
            .map(|s| s.number)
            .filter(|&n| n != EXTENT_FREE)
            .collect()
    }

    /// Committed slot → extent map (`EXTENT_FREE` for free slots).
    pub fn slot_map(&self) -> Vec<u32> {
        self.slots.iter().map(|s| s.number).collect()
    }

    /// Whether `extent` has writes in flight.
    pub fn is_in_use(&self, extent: ExtentNr) -> bool {
        self.by_extent
            .get(&extent)
            .is_some_and(|&i| self.slots[usize::from(i)].refcnt > 0)
    }

    /// Whether changes await [`ActivityLog::activate`].
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// References every extent of the write; returns the extents that are not yet committed
    /// (the write must wait for the transaction from [`ActivityLog::activate`]).
    pub fn begin_write(&mut self, first_sector: u64, sectors: u64) -> Result<Vec<ExtentNr>> {
        let (first, last) = extent_range(first_sector, sectors)?;
        let mut misses = 0u32;
        let mut lru_hits = 0usize;
        for enr in first..=last {
            match self.by_extent.get(&enr) {
                None => misses += 1,
                Some(&i) => lru_hits += usize::from(self.slots[usize::from(i)].lru_tick.is_some()),
            }
        }
        let takeable = self.free.len() + self.lru.len() - lru_hits;
        let pending_room = AL_UPDATES_PER_TRANSACTION - self.pending.len();
        let available = takeable.min(pending_room) as u32;
        if misses > available {
            return Err(MetaError::AlBusy {
                needed: misses,
                available,
            });
        }
        // Hits first, so that a miss cannot evict an LRU extent this same write is about to use.
        for enr in first..=last {
            if let Some(&idx) = self.by_extent.get(&enr) {
                self.take_ref(idx);
            }
        }
        for enr in first..=last {
            if !self.by_extent.contains_key(&enr) {
                let idx = self.prepare_change(enr);
                self.take_ref(idx);
            }
        }
        let not_committed = (first..=last)
            .filter(|enr| {
                let s = &self.slots[usize::from(self.by_extent[enr])];
                s.number != s.new_number
            })
            .collect();
        Ok(not_committed)
    }

    fn take_ref(&mut self, idx: u16) {
        let slot = &mut self.slots[usize::from(idx)];
        if let Some(t) = slot.lru_tick.take() {
            self.lru.remove(&t);
        }
        slot.refcnt += 1;
    }

    /// Takes a free slot, else evicts the least recently used unused one; caller checked room.
    fn prepare_change(&mut self, enr: ExtentNr) -> u16 {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                let (_, i) = self
                    .lru
                    .pop_first()
                    .expect("begin_write checked that a slot can be taken");
                self.slots[usize::from(i)].lru_tick = None;
                i
            }
        };
        let slot = &mut self.slots[usize::from(idx)];
        if slot.new_number != EXTENT_FREE {
            self.by_extent.remove(&slot.new_number);
        }
        slot.new_number = enr;
        self.by_extent.insert(enr, idx);
        self.pending.push(idx);
        idx
    }

    /// Builds the transaction for all pending changes and commits them; `None` if nothing is
    /// pending.
    pub fn activate(&mut self) -> Option<AlWrite> {
        if self.pending.is_empty() {
            return None;
        }
        Some(self.write_transaction())
    }

    fn write_transaction(&mut self) -> AlWrite {
        let mut t = AlTransaction::initialized();
        t.tr_type = AlTransactionType::Update;
        t.tr_number = self.tr_number;
        t.update_slot_nr = [SLOT_UNUSED; AL_UPDATES_PER_TRANSACTION];
        t.update_extent_nr = [EXTENT_FREE; AL_UPDATES_PER_TRANSACTION];
        let mut evicted = Vec::new();
        // DRBD's to_be_changed list has the most recent change first.
        for (n, &idx) in self.pending.iter().rev().enumerate() {
            let slot = &self.slots[usize::from(idx)];
            t.update_slot_nr[n] = idx;
            t.update_extent_nr[n] = slot.new_number;
            if slot.number != EXTENT_FREE {
                evicted.push(slot.number);
            }
        }
        t.n_updates = self.pending.len() as u16;
        let n_slots = self.slots.len();
        t.context_size = n_slots as u16;
        t.context_start_slot_nr = self.tr_cycle;
        t.context.fill(EXTENT_FREE);
        let start = usize::from(self.tr_cycle);
        let window = AL_CONTEXT_PER_TRANSACTION.min(n_slots - start);
        for (i, c) in t.context.iter_mut().take(window).enumerate() {
            *c = self.slots[start + i].number;
        }
        let next_cycle = start + AL_CONTEXT_PER_TRANSACTION;
        self.tr_cycle = if next_cycle >= n_slots {
            0
        } else {
            next_cycle as u16
        };
        let ring_block = self.ring.block_of_tr(self.tr_number);
        self.tr_number = self.tr_number.wrapping_add(1);
        for idx in self.pending.drain(..) {
            let slot = &mut self.slots[usize::from(idx)];
            slot.number = slot.new_number;
        }
        AlWrite {
            transaction: t,
            ring_block,
            evicted,
        }
    }

    /// Drops the references [`ActivityLog::begin_write`] took for the same range.
    pub fn end_write(&mut self, first_sector: u64, sectors: u64) -> Result<()> {
        let (first, last) = extent_range(first_sector, sectors)?;
        for enr in first..=last {
            match self.by_extent.get(&enr) {
                Some(&i) if self.slots[usize::from(i)].refcnt > 0 => {
                    let s = &self.slots[usize::from(i)];
                    if s.number != s.new_number {
                        // Still pending: completing before activation would be a caller bug.
                        return Err(MetaError::AlNotActive(enr));
                    }
                }
                _ => return Err(MetaError::AlNotActive(enr)),
            }
        }
        for enr in first..=last {
            let idx = self.by_extent[&enr];
            let slot = &mut self.slots[usize::from(idx)];
            slot.refcnt -= 1;
            if slot.refcnt == 0 {
                self.tick += 1;
                slot.lru_tick = Some(self.tick);
                self.lru.insert(self.tick, idx);
            }
        }
        Ok(())
    }

    /// One transaction per ring block recording the whole active set (and any pending
    /// changes), as `drbd_al_initialize` does; the ring then holds no stale history.
    pub fn initialize_ring(&mut self) -> Vec<AlWrite> {
        (0..self.ring.size_4k())
            .map(|_| self.write_transaction())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn al() -> ActivityLog {
        ActivityLog::new(67, AlStripes::default(), 0).unwrap()
    }

    const EXT: u64 = AL_EXTENT_SECT;

    #[test]
    fn cold_write_needs_transaction_hot_write_does_not() {
        let mut a = al();
        assert_eq!(a.begin_write(5 * EXT, 8).unwrap(), vec![5]);
        let w = a.activate().unwrap();
        assert_eq!(w.transaction.n_updates, 1);
        assert_eq!(
            w.transaction.update_slot_nr[0], 66,
            "first free slot is the highest index"
        );
        assert_eq!(w.transaction.update_extent_nr[0], 5);
        assert_eq!(
            w.transaction.context[66], EXTENT_FREE,
            "context holds the state before"
        );
        assert_eq!(w.ring_block, 0);
        a.end_write(5 * EXT, 8).unwrap();
        assert_eq!(a.begin_write(5 * EXT + 100, 8).unwrap(), Vec::<u32>::new());
        assert!(a.activate().is_none());
    }

    #[test]
    fn write_crossing_extent_boundary_takes_two() {
        let mut a = al();
        assert_eq!(a.begin_write(EXT - 4, 8).unwrap(), vec![0, 1]);
        let w = a.activate().unwrap();
        assert_eq!(w.transaction.n_updates, 2);
        assert_eq!(
            &w.transaction.update_extent_nr[..2],
            &[1, 0],
            "most recent change first"
        );
    }

    #[test]
    fn in_use_extent_is_never_evicted_and_lru_goes_first() {
        let mut a = al();
        for e in 0..67u64 {
            a.begin_write(e * EXT, 1).unwrap();
            a.activate().unwrap();
        }
        let err = a.begin_write(100 * EXT, 1).unwrap_err();
        assert!(matches!(
            err,
            MetaError::AlBusy {
                needed: 1,
                available: 0
            }
        ));
        a.end_write(10 * EXT, 1).unwrap();
        a.end_write(3 * EXT, 1).unwrap();
        a.begin_write(100 * EXT, 1).unwrap();
        let w = a.activate().unwrap();
        assert_eq!(
            w.evicted,
            vec![10],
            "least recently released extent is evicted"
        );
        assert!(a.active_extents().contains(&3));
        assert!(!a.active_extents().contains(&10));
    }

    #[test]
    fn end_write_on_inactive_extent_is_an_error() {
        let mut a = al();
        assert!(matches!(a.end_write(0, 8), Err(MetaError::AlNotActive(0))));
        a.begin_write(0, 8).unwrap();
        assert!(
            a.end_write(0, 8).is_err(),
            "pending extent cannot complete before activation"
        );
    }

    #[test]
    fn at_most_64_pending_changes() {
        let mut a = ActivityLog::new(200, AlStripes::default(), 0).unwrap();
        for e in 0..64u64 {
            a.begin_write(e * EXT, 1).unwrap();
        }
        assert!(matches!(
            a.begin_write(64 * EXT, 1),
            Err(MetaError::AlBusy { .. })
        ));
        a.activate().unwrap();
        a.begin_write(64 * EXT, 1).unwrap();
    }

    #[test]
    fn ranges_are_checked() {
        assert!(extent_range(u64::MAX, 2).is_err());
        assert!(extent_range(u64::MAX / 2, 1).is_err());
        assert_eq!(extent_range(0, 0).unwrap(), (0, 0));
        assert!(ActivityLog::new(66, AlStripes::default(), 0).is_err());
    }

    #[test]
    fn context_cycles_through_all_slots() {
        let mut a = ActivityLog::new(2000, AlStripes::default(), 7).unwrap();
        let starts: Vec<u16> = (0..4u64)
            .map(|e| {
                a.begin_write(e * EXT, 1).unwrap();
                a.activate().unwrap().transaction.context_start_slot_nr
            })
            .collect();
        assert_eq!(starts, vec![0, 919, 1838, 0]);
        assert_eq!(a.next_tr_number(), 11);
    }
}
