//! Online verify's block locks against the writes of the device (D84 drbd_worker.c
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
//! - every application write on the Primary registers its range for its whole life
//!   (from before the activity log until the peer acknowledged it,
//!   [`VerifyLocks::begin_write`]), after waiting until no block of the range is locked;
//! - every write the Secondary receives (`P_DATA`, `P_TRIM`; not resync data: verify
//!   and resync never run together) registers its range from when it is received, in
//!   receive order and before it is started, until its local disk write completed
//!   ([`VerifyLocks::begin_received_write`]). With protocol A or B the Primary's write
//!   is done (and the block free for verify) before the Secondary wrote it, so the
//!   Secondary's verify reads must wait for it: a `P_OV_REQUEST` / `P_OV_REPLY` for the
//!   block comes behind the `P_DATA` on the data socket and finds it registered;
//! - verify locks a block at once (new application writes to it wait from then on) and
//!   the block is *ready* when no registered write overlaps it any more
//!   ([`VerifyLocks::try_lock`], [`VerifyLocks::lock_ready`]): the peer has every
//!   earlier write of the block by then (with protocol C on its disk; with A or B at
//!   least on its way, ahead of the verify packet, and it waits for it as above);
//! - VerifyS holds the block from before its `P_OV_REQUEST` until the compare, and its
//!   compare read waits until the block is ready again (on a Secondary: the writes
//!   received before the `P_OV_REPLY`); VerifyT holds it from before its read until the
//!   `P_OV_RESULT` (DRBD releases after the reply and locks the VerifyS's extent
//!   against the peer's writes instead: rdbd's Primary holds the block, so no new write
//!   of it can reach a VerifyS Secondary before its compare).
//!
//! **No deadlock: a received write never waits for a verify lock.** The Secondary's
//! receive loop handles `P_DATA` and the verify packets in order; if a received write
//! waited for a block the Secondary holds as VerifyT, the lock's release (the peer's
//! `P_OV_RESULT`) could only come after packets behind that write, and the loop would
//! stand still. The Primary ordered its writes against verify already (its application
//! writes wait for its locks), so the Secondary needs the received writes only to make
//! its verify reads wait, never the other way round. Verify reads wait only for writes,
//! and writes (received ones, and application writes of unlocked blocks) finish without
//! verify.
//!
//! **Nothing to pay without a verify run.** Writes register only while a run is active
//! (`run_active`); otherwise a write just counts itself in `unregistered` until it
//! ends, two atomic operations and no mutex. A write increments `unregistered`, then
//! reads `run_active`: false, it stays counted (unregistered) until it ends; true, it
//! decrements again and registers. [`VerifyLocks::start_run`] sets `run_active`, and no
//! block of the run is ready until `unregistered` was seen at 0 after that ("settled").
//! All four accesses are SeqCst, so they are in one total order: a write that read
//! `run_active` false read it before the run's store, so its increment came before
//! that store too, and before every later load of `unregistered`, which counts it
//! until it ended. Once seen at 0, every write in flight is registered and every later
//! write reads `run_active` true, so the run stays settled. The last unregistered write
//! to end wakes the waiters when a run is active.
//!
//! A verify run owns its locks ([`VerifyLocks::start_run`] / [`VerifyLocks::end_run`]);
//! ending it releases them all, and a late lock from an ended run (a worker aborted
//! mid-way) is refused, so no block stays locked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

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
    /// The running verify saw no unregistered write in flight any more (see the module
    /// documentation): its blocks may be ready.
    settled: bool,
    /// Blocks the running verify holds or waits for.
    locked: BTreeSet<u64>,
    /// Registered writes in flight: id -> blocks `[first, end)`.
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

    fn register(&mut self, blocks: (u64, u64)) -> u64 {
        self.last_write += 1;
        let id = self.last_write;
        self.writes.insert(id, blocks);
        id
    }
}

/// The locks of one resource (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct VerifyLocks {
    inner: Mutex<Inner>,
    /// Woken when a lock is released or a write ends.
    released: tokio::sync::Notify,
    /// A verify run is active: writes register.
    run_active: AtomicBool,
    /// Writes in flight that did not register (begun while no run was active), plus
    /// for a moment each write that checks `run_active`.
    unregistered: AtomicU64,
}

/// A write in flight: `Some(id)` registered, `None` counted in `unregistered`.
type Registration = Option<u64>;

/// An application write in flight; dropping it ends the write.
#[derive(Debug)]
pub(crate) struct WriteGuard<'a> {
    locks: &'a VerifyLocks,
    registration: Registration,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.locks.end_write(self.registration);
    }
}

/// A write received from the peer, in flight until its local disk write completed;
/// dropping it ends the write.
#[derive(Debug)]
pub(crate) struct ReceivedWriteGuard {
    link: Arc<crate::peer::PeerLink>,
    registration: Registration,
}

impl Drop for ReceivedWriteGuard {
    fn drop(&mut self) {
        self.link.verify_locks.end_write(self.registration);
    }
}

impl VerifyLocks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fast path of every write: false when no run is active (the write stays
    /// counted as unregistered until [`VerifyLocks::end_write`]), true when it must
    /// register.
    fn must_register(&self) -> bool {
        self.unregistered.fetch_add(1, SeqCst);
        if !self.run_active.load(SeqCst) {
            return false;
        }
        self.uncount();
        true
    }

    /// Takes a write off the unregistered count; the last one wakes a run's waiters.
    fn uncount(&self) {
        if self.unregistered.fetch_sub(1, SeqCst) == 1 && self.run_active.load(SeqCst) {
            self.released.notify_waiters();
        }
    }

    /// A write ended.
    fn end_write(&self, registration: Registration) {
        let Some(id) = registration else {
            self.uncount();
            return;
        };
        let waiting = {
            let mut i = self.lock();
            i.writes.remove(&id);
            !i.locked.is_empty()
        };
        if waiting {
            self.released.notify_waiters();
        }
    }

    /// The running verify's blocks may be ready: no unregistered write is in flight.
    fn settled(&self, i: &mut Inner) -> bool {
        if !i.settled && self.unregistered.load(SeqCst) == 0 {
            i.settled = true;
        }
        i.settled
    }

    /// No write of `blocks` is in flight (and the run settled).
    fn ready_in(&self, i: &mut Inner, blocks: (u64, u64)) -> bool {
        self.settled(i) && !i.written_in(blocks)
    }

    /// An application write of `len` bytes at `offset` begins: while a verify run is
    /// active, waits while verify holds one of its blocks, then registers it until the
    /// guard is dropped.
    pub(crate) async fn begin_write(&self, offset: u64, len: u64) -> WriteGuard<'_> {
        if !self.must_register() {
            return WriteGuard {
                locks: self,
                registration: None,
            };
        }
        let blocks = blocks_of_bytes(offset, len);
        loop {
            // Created before the check: a release after it wakes this waiter.
            let released = self.released.notified();
            {
                let mut i = self.lock();
                if !i.locked_in(blocks) {
                    let id = i.register(blocks);
                    return WriteGuard {
                        locks: self,
                        registration: Some(id),
                    };
                }
            }
            released.await;
        }
    }

    /// A write of `len` bytes at `offset` received from the peer: registered at once
    /// while a verify run is active, whatever verify holds (it never waits, see the
    /// module documentation). The caller drops the guard once the disk write completed.
    fn begin_received_write(&self, offset: u64, len: u64) -> Registration {
        if !self.must_register() {
            return None;
        }
        Some(self.lock().register(blocks_of_bytes(offset, len)))
    }

    /// A verify run starts; its id names its locks. Its blocks are ready only once the
    /// writes that began unregistered before it ended.
    pub(crate) fn start_run(&self) -> u64 {
        let mut i = self.lock();
        i.last_run += 1;
        i.run = i.last_run;
        i.locked.clear();
        i.settled = false;
        self.run_active.store(true, SeqCst);
        i.run
    }

    /// The run ended: all its locks are released, and writes stop registering.
    pub(crate) fn end_run(&self, run: u64) {
        {
            let mut i = self.lock();
            if i.run != run {
                return;
            }
            i.run = 0;
            i.locked.clear();
            i.settled = false;
            self.run_active.store(false, SeqCst);
        }
        self.released.notify_waiters();
    }

    /// Locks the blocks of a request for `run` without waiting: `Some(true)` when no
    /// write of them is in flight any more, `Some(false)` when some still are (new
    /// application writes wait already; ask [`VerifyLocks::ready`] again later), `None`
    /// when the run has ended.
    pub(crate) fn try_lock(&self, run: u64, blocks: (u64, u64)) -> Option<bool> {
        let mut i = self.lock();
        if i.run != run || run == 0 {
            return None;
        }
        i.locked.extend(blocks.0..blocks.1);
        Some(self.ready_in(&mut i, blocks))
    }

    /// No write of `blocks` is in flight.
    pub(crate) fn ready(&self, blocks: (u64, u64)) -> bool {
        let mut i = self.lock();
        self.ready_in(&mut i, blocks)
    }

    /// Locks the blocks for `run` and waits until the writes of them in flight ended.
    /// False when the run has ended (nothing is locked then).
    pub(crate) async fn lock_ready(&self, run: u64, blocks: (u64, u64)) -> bool {
        loop {
            let released = self.released.notified();
            match self.try_lock(run, blocks) {
                None => return false,
                Some(true) => return true,
                Some(false) => {}
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

    /// Registered writes in flight (for tests).
    #[cfg(test)]
    fn registered_count(&self) -> usize {
        self.lock().writes.len()
    }
}

impl crate::peer::PeerLink {
    /// An application write of `len` bytes at `offset` begins (see
    /// [`VerifyLocks::begin_write`]); it ends when the guard is dropped.
    pub(crate) async fn verify_write(&self, offset: u64, len: u64) -> WriteGuard<'_> {
        self.verify_locks.begin_write(offset, len).await
    }

    /// A write of `len` bytes at `offset` was received from the peer (see
    /// [`VerifyLocks::begin_received_write`]); it ends when the guard is dropped, once
    /// the local disk write completed. Never waits.
    pub(crate) fn verify_received_write(
        self: &Arc<Self>,
        offset: u64,
        len: u64,
    ) -> ReceivedWriteGuard {
        ReceivedWriteGuard {
            registration: self.verify_locks.begin_received_write(offset, len),
            link: Arc::clone(self),
        }
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

    #[tokio::test]
    async fn a_write_begun_before_the_run_delays_readiness_until_it_ends() {
        let locks = Arc::new(VerifyLocks::default());
        let before = locks.begin_write(0, 4096).await;
        assert_eq!(locks.registered_count(), 0, "no run: nothing registers");
        let run = locks.start_run();
        // Where the unregistered write goes is unknown: no block is ready.
        assert_eq!(locks.try_lock(run, (10, 11)), Some(false));
        assert!(!locks.ready((0, 1)));
        let l = Arc::clone(&locks);
        let waiter = tokio::spawn(async move { l.lock_ready(run, (10, 11)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "ready while an earlier write runs");
        drop(before);
        assert!(tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the end of the write woke the verify")
            .unwrap());
        assert!(locks.ready((0, 1)));
    }

    #[tokio::test]
    async fn writes_during_a_run_register_and_received_ones_never_wait() {
        let locks = Arc::new(VerifyLocks::default());
        let run = locks.start_run();
        let write = locks.begin_write(4096, 4096).await;
        assert_eq!(locks.registered_count(), 1);
        assert_eq!(locks.try_lock(run, (1, 2)), Some(false));
        assert!(locks.ready((2, 3)), "a block the write does not touch");
        drop(write);
        assert!(locks.ready((1, 2)));
        // Block 1 is locked: a received write of it registers at once all the same,
        // and the block is not ready until it ends.
        let received = locks.begin_received_write(4096 + 512, 512);
        assert!(received.is_some());
        assert!(!locks.ready((1, 2)));
        let l = Arc::clone(&locks);
        let waiter = tokio::spawn(async move { l.lock_ready(run, (1, 2)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        locks.end_write(received);
        assert!(tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap());
        assert_eq!(locks.registered_count(), 0);
    }

    #[tokio::test]
    async fn after_the_run_writes_stop_registering_and_the_next_run_waits_for_them() {
        let locks = Arc::new(VerifyLocks::default());
        let run = locks.start_run();
        locks.end_run(run);
        let write = locks.begin_write(0, 4096).await;
        let received = locks.begin_received_write(8192, 4096);
        assert_eq!(received, None);
        assert_eq!(locks.registered_count(), 0);
        let next = locks.start_run();
        assert_eq!(locks.try_lock(next, (5, 6)), Some(false));
        drop(write);
        assert_eq!(locks.try_lock(next, (5, 6)), Some(false));
        locks.end_write(received);
        assert_eq!(locks.try_lock(next, (5, 6)), Some(true));
        // Settled: writes from now on register.
        let write = locks.begin_write(0, 4096).await;
        assert_eq!(locks.registered_count(), 1);
        assert!(locks.ready((5, 6)));
        drop(write);
    }
}
