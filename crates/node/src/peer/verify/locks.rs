//! Online verify's block locks against application writes (D84 drbd_worker.c
//! `w_make_ov_request` takes `drbd_rs_begin_io` before a `P_OV_REQUEST` goes out and
//! `w_e_end_ov_reply` releases it after the compare; drbd_receiver.c
//! `receive_DataRequest` takes it on the VerifyT before the read; drbd_actlog.c: a
//! locked resync extent makes application writes to it wait, and the lock waits for the
//! writes already in the activity log).
//!
//! Without the lock a block written while it is being verified compares the peer's old
//! copy with our new one (or the other way round): a false "out of sync".
//!
//! rdbd locks 4 KiB blocks instead of 16 MiB resync extents, which is finer than DRBD
//! and needs no extent priority to keep writers from starving:
//!
//! - every application write registers its range for its whole life (from before the
//!   activity log until the peer acknowledged it, [`VerifyLocks::begin_write`]), after
//!   waiting until no block of the range is locked;
//! - verify locks a block at once (new writes to it wait from then on) and the block is
//!   *ready* when no registered write overlaps it any more ([`VerifyLocks::try_lock`],
//!   [`VerifyLocks::lock`]): with protocol C the peer has every earlier write of the
//!   block on disk by then;
//! - VerifyS holds the block from before its `P_OV_REQUEST` until the compare; VerifyT
//!   from before its read until the `P_OV_RESULT` (DRBD releases after the reply and
//!   locks the VerifyS's extent against the peer's writes instead: rdbd's Primary holds
//!   the block, so no new write of it can reach a VerifyS Secondary before its compare).
//!
//! A verify run owns its locks ([`VerifyLocks::start_run`] / [`VerifyLocks::end_run`]);
//! ending it releases them all, and a late lock from an ended run (a worker aborted
//! mid-way) is refused, so no block stays locked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use rdbd_replicator::resync::plan::SECTORS_PER_BLOCK;

/// Bytes per verify block.
const BLOCK_BYTES: u64 = SECTORS_PER_BLOCK * 512;

/// The blocks `[first, end)` a byte range touches.
fn blocks_of_bytes(offset: u64, len: u64) -> (u64, u64) {
    let first = offset / BLOCK_BYTES;
    let end = offset.saturating_add(len.max(1)).div_ceil(BLOCK_BYTES);
    (first, end)
}

/// The blocks `[first, end)` a verify request (`sector`, `size_bytes`) covers.
pub(crate) fn blocks_of_request(sector: u64, size_bytes: u32) -> (u64, u64) {
    blocks_of_bytes(sector.saturating_mul(512), u64::from(size_bytes))
}

#[derive(Debug, Default)]
struct Inner {
    /// The running verify's id (0: none).
    run: u64,
    last_run: u64,
    /// Blocks the running verify holds or waits for.
    locked: BTreeSet<u64>,
    /// Application writes in flight: id -> blocks `[first, end)`.
    writes: BTreeMap<u64, (u64, u64)>,
    last_write: u64,
}

impl Inner {
    fn locked_in(&self, (first, end): (u64, u64)) -> bool {
        self.locked.range(first..end).next().is_some()
    }

    fn written_in(&self, (first, end): (u64, u64)) -> bool {
        self.writes.values().any(|&(f, e)| f < end && first < e)
    }
}

/// The locks of one resource (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct VerifyLocks {
    inner: Mutex<Inner>,
    /// Woken when a lock is released or a write ends.
    released: tokio::sync::Notify,
}

/// An application write in flight; dropping it ends the write.
#[derive(Debug)]
pub(crate) struct WriteGuard<'a> {
    locks: &'a VerifyLocks,
    id: u64,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let waiting = {
            let mut i = self.locks.lock();
            i.writes.remove(&self.id);
            !i.locked.is_empty()
        };
        if waiting {
            self.locks.released.notify_waiters();
        }
    }
}

impl VerifyLocks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An application write of `len` bytes at `offset` begins: waits while verify holds
    /// one of its blocks, then registers it until the guard is dropped.
    pub(crate) async fn begin_write(&self, offset: u64, len: u64) -> WriteGuard<'_> {
        let blocks = blocks_of_bytes(offset, len);
        loop {
            // Created before the check: a release after it wakes this waiter.
            let released = self.released.notified();
            {
                let mut i = self.lock();
                if !i.locked_in(blocks) {
                    i.last_write += 1;
                    let id = i.last_write;
                    i.writes.insert(id, blocks);
                    return WriteGuard { locks: self, id };
                }
            }
            released.await;
        }
    }

    /// A verify run starts; its id names its locks.
    pub(crate) fn start_run(&self) -> u64 {
        let mut i = self.lock();
        i.last_run += 1;
        i.run = i.last_run;
        i.locked.clear();
        i.run
    }

    /// The run ended: all its locks are released.
    pub(crate) fn end_run(&self, run: u64) {
        {
            let mut i = self.lock();
            if i.run != run {
                return;
            }
            i.run = 0;
            i.locked.clear();
        }
        self.released.notify_waiters();
    }

    /// Locks the blocks of a request for `run` without waiting: `Some(true)` when no
    /// application write of them is in flight any more, `Some(false)` when some still
    /// are (new ones wait already; ask [`VerifyLocks::ready`] again later), `None` when
    /// the run has ended.
    pub(crate) fn try_lock(&self, run: u64, blocks: (u64, u64)) -> Option<bool> {
        let mut i = self.lock();
        if i.run != run || run == 0 {
            return None;
        }
        i.locked.extend(blocks.0..blocks.1);
        Some(!i.written_in(blocks))
    }

    /// No application write of `blocks` is in flight.
    pub(crate) fn ready(&self, blocks: (u64, u64)) -> bool {
        !self.lock().written_in(blocks)
    }

    /// Locks the blocks for `run` and waits until the writes of them in flight ended.
    /// False when the run has ended (nothing is locked then).
    pub(crate) async fn lock_ready(&self, run: u64, blocks: (u64, u64)) -> bool {
        match self.try_lock(run, blocks) {
            None => return false,
            Some(true) => return true,
            Some(false) => {}
        }
        loop {
            let released = self.released.notified();
            {
                let i = self.lock();
                if i.run != run {
                    return false;
                }
                if !i.written_in(blocks) {
                    return true;
                }
            }
            released.await;
        }
    }

    /// Releases the blocks of a request of `run`.
    pub(crate) fn unlock(&self, run: u64, blocks: (u64, u64)) {
        {
            let mut i = self.lock();
            if i.run != run {
                return;
            }
            for b in blocks.0..blocks.1 {
                i.locked.remove(&b);
            }
        }
        self.released.notify_waiters();
    }

    /// Blocks locked now (for tests and the log).
    #[cfg(test)]
    fn locked_count(&self) -> usize {
        self.lock().locked.len()
    }
}

impl crate::peer::PeerLink {
    /// An application write of `len` bytes at `offset` begins (see
    /// [`VerifyLocks::begin_write`]); it ends when the guard is dropped.
    pub(crate) async fn verify_write(&self, offset: u64, len: u64) -> WriteGuard<'_> {
        self.verify_locks.begin_write(offset, len).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn request_and_byte_ranges_map_to_4k_blocks() {
        assert_eq!(blocks_of_request(0, 4096), (0, 1));
        assert_eq!(blocks_of_request(8, 4096), (1, 2));
        assert_eq!(blocks_of_request(16, 512), (2, 3));
        assert_eq!(blocks_of_bytes(4096 + 1024, 1024), (1, 2));
        assert_eq!(blocks_of_bytes(4095, 2), (0, 2));
        assert_eq!(blocks_of_bytes(8192, 0), (2, 3));
    }

    #[tokio::test]
    async fn a_write_to_a_locked_block_waits_for_the_unlock() {
        let locks = Arc::new(VerifyLocks::default());
        let run = locks.start_run();
        assert_eq!(locks.try_lock(run, (10, 11)), Some(true));
        // A write elsewhere passes.
        drop(locks.begin_write(0, 4096).await);
        let l = Arc::clone(&locks);
        let writer = tokio::spawn(async move {
            let _g = l.begin_write(10 * 4096 + 100, 200).await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!writer.is_finished(), "the write did not wait for the lock");
        locks.unlock(run, (10, 11));
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the write went on after the unlock")
            .unwrap();
        assert_eq!(locks.locked_count(), 0);
    }

    #[tokio::test]
    async fn a_lock_is_ready_once_the_writes_in_flight_ended() {
        let locks = Arc::new(VerifyLocks::default());
        let run = locks.start_run();
        let guard = locks.begin_write(4096, 8192).await;
        assert_eq!(locks.try_lock(run, (2, 3)), Some(false));
        assert!(!locks.ready((2, 3)));
        let l = Arc::clone(&locks);
        let waiter = tokio::spawn(async move { l.lock_ready(run, (1, 2)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(guard);
        assert!(tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap());
        assert!(locks.ready((2, 3)));
    }

    #[tokio::test]
    async fn ending_the_run_releases_everything_and_refuses_late_locks() {
        let locks = Arc::new(VerifyLocks::default());
        let run = locks.start_run();
        assert_eq!(locks.try_lock(run, (0, 4)), Some(true));
        let l = Arc::clone(&locks);
        let writer = tokio::spawn(async move {
            let _g = l.begin_write(0, 16384).await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        locks.end_run(run);
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(locks.try_lock(run, (0, 1)), None);
        assert!(!locks.lock_ready(run, (0, 1)).await);
        assert_eq!(locks.locked_count(), 0);
        // A new run is independent of the old one.
        let next = locks.start_run();
        assert_ne!(next, run);
        locks.end_run(run);
        assert_eq!(locks.try_lock(next, (5, 6)), Some(true));
    }
}
