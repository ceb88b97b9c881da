//! The runtime-integrated io_uring engine, used when the disk is opened
//! inside a tokio runtime.
//!
//! Callers submit from their own thread (the SQ is guarded by a mutex), so a
//! request costs no thread hop on the way in. The kernel runs a request's
//! completion work on the thread that submitted it and then signals an
//! eventfd registered with the ring; a reaper task on the tokio reactor
//! drains the CQ and wakes the callers. On a small machine this saves the
//! two cross-CPU wakeups per request that a dedicated ring thread costs.
//! Inside [`super::plug::defer_submissions`] the `io_uring_enter` is left
//! to [`super::plug::submit_deferred`], so a burst of requests shares one.
//!
//! Invariants:
//! - All SQ and CQ access happens under `state`'s mutex.
//! - A request's buffer is owned by its slot until its final CQE. If the
//!   engine is dropped with requests in flight, those requests are leaked,
//!   never freed under the kernel's feet.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use io_uring::IoUring;
use tokio::io::unix::AsyncFd;

use super::plug;
use super::sqe::{self, FileRef, Outcome};
use crate::engine::Request;
use crate::sys;

struct State {
    slots: Vec<Option<Request>>,
    free_slots: Vec<usize>,
    in_flight: usize,
    backlog: VecDeque<Request>,
    completions: Vec<(u64, i32)>,
}

pub(super) struct Shared {
    ring: IoUring,
    state: Mutex<State>,
    file_ref: FileRef,
    _file: Arc<File>,
    closing: AtomicBool,
}

/// Handle to the runtime-integrated ring.
pub(crate) struct InlineUring {
    shared: Arc<Shared>,
    reaper: tokio::task::JoinHandle<()>,
}

fn create_ring(entries: u32) -> io::Result<IoUring> {
    // COOP_TASKRUN: completion work waits for the submitting thread's next
    // kernel entry (or wakes it when it sleeps) instead of interrupting it.
    match IoUring::builder().setup_coop_taskrun().build(entries) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::new(entries),
        other => other,
    }
}

impl InlineUring {
    /// Creates the ring and spawns its reaper on `runtime`, which must have
    /// its I/O driver enabled (tokio panics otherwise).
    pub fn start(
        file: Arc<File>,
        max_in_flight: usize,
        runtime: &tokio::runtime::Handle,
    ) -> io::Result<InlineUring> {
        let entries = u32::try_from(max_in_flight.saturating_mul(2).max(8)).unwrap_or(4096);
        let ring = create_ring(entries)?;
        sqe::check_opcodes(&ring)?;
        let file_ref = sqe::register_file(&ring, file.as_raw_fd());
        let wake_fd: OwnedFd = sys::eventfd_nonblocking()?;
        ring.submitter().register_eventfd(wake_fd.as_raw_fd())?;
        let wake_fd = {
            let _in_runtime = runtime.enter();
            // SAFETY: the OwnedFd owns the descriptor, so it stays open and
            // unchanged for the AsyncFd's whole life.
            unsafe { AsyncFd::register_with_interest(wake_fd, tokio::io::Interest::READABLE) }
                .map_err(io::Error::from)?
        };
        let max_in_flight = max_in_flight.max(1);
        let shared = Arc::new(Shared {
            ring,
            state: Mutex::new(State {
                slots: (0..max_in_flight).map(|_| None).collect(),
                free_slots: (0..max_in_flight).rev().collect(),
                in_flight: 0,
                backlog: VecDeque::new(),
                completions: Vec::with_capacity(entries as usize * 2),
            }),
            file_ref,
            _file: file,
            closing: AtomicBool::new(false),
        });
        let reaper = runtime.spawn(reap_loop(shared.clone(), wake_fd));
        Ok(InlineUring { shared, reaper })
    }

    /// Submits `req` from the calling thread, or only queues its SQE
    /// inside [`plug::defer_submissions`].
    pub fn submit(&self, req: Request) {
        let mut st = self.shared.lock();
        let Some(slot) = st.free_slots.pop() else {
            st.backlog.push_back(req);
            return;
        };
        self.shared.start(&mut st, slot, req);
        drop(st);
        if !plug::defer(&self.shared) {
            self.shared.submit();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn submit(&self) {
        if let Err(e) = self.ring.submit() {
            // The SQEs stay queued and go with the next submission.
            tracing::warn!(error = %e, "io_uring submit failed");
        }
    }

    fn start(&self, st: &mut State, slot: usize, req: Request) {
        st.slots[slot] = Some(req);
        st.in_flight += 1;
        self.push_sqe(st, slot);
    }

    fn push_sqe(&self, st: &mut State, slot: usize) {
        let entry = st.slots[slot]
            .as_mut()
            .and_then(|req| sqe::sqe_for(req, self.file_ref, slot as u64));
        let Some(entry) = entry else {
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                "read or write request without a buffer",
            );
            finish(st, slot, Err(e));
            return;
        };
        loop {
            // SAFETY: the state mutex (held by the caller) serialises all SQ
            // access; the entry's buffer is owned by the slot until its CQE.
            let pushed = unsafe { self.ring.submission_shared().push(&entry) };
            if pushed.is_ok() {
                return;
            }
            self.submit();
        }
    }

    /// Handles every available CQE and starts backlogged requests.
    fn reap(&self) {
        let mut st = self.lock();
        let st = &mut *st;
        st.completions.clear();
        // SAFETY: the state mutex serialises all CQ access.
        st.completions
            .extend(unsafe { self.ring.completion_shared() }.map(|c| (c.user_data(), c.result())));
        let mut must_submit = false;
        for i in 0..st.completions.len() {
            let (user_data, result) = st.completions[i];
            let slot = user_data as usize;
            let Some(req) = st.slots.get_mut(slot).and_then(|s| s.as_mut()) else {
                tracing::error!(user_data, "io_uring completion for an unknown request");
                continue;
            };
            match sqe::on_cqe(req, result) {
                Outcome::Finish(r) => finish(st, slot, r),
                Outcome::Resubmit => {
                    self.push_sqe(st, slot);
                    must_submit = true;
                }
            }
        }
        while !st.backlog.is_empty() {
            let Some(slot) = st.free_slots.pop() else {
                break;
            };
            let req = st.backlog.pop_front().expect("backlog is not empty");
            self.start(st, slot, req);
            must_submit = true;
        }
        // SAFETY: the state mutex serialises all SQ access. Deferred SQEs
        // whose submitter has not submitted yet go along (never stranded).
        if must_submit || !unsafe { self.ring.submission_shared() }.is_empty() {
            self.submit();
        }
    }
}

fn finish(st: &mut State, slot: usize, result: io::Result<()>) {
    if let Some(req) = st.slots[slot].take() {
        st.in_flight -= 1;
        st.free_slots.push(slot);
        req.complete(result);
    }
}

async fn reap_loop(shared: Arc<Shared>, wake_fd: AsyncFd<OwnedFd>) {
    loop {
        match wake_fd.readable().await {
            Ok(mut guard) => {
                // The eventfd is not read: tokio polls it edge-triggered, and
                // every signal is a new edge even while the counter is
                // non-zero (a 64-bit counter of CQ signals never saturates).
                // That saves two syscalls per wakeup. A signal after this
                // clear sets readiness again, so no completion is missed.
                guard.clear_ready();
            }
            Err(e) => {
                tracing::error!(error = %e, "polling the io_uring eventfd failed; reaper stops");
                return;
            }
        }
        shared.reap();
        if shared.closing.load(Ordering::Acquire) && shared.lock().in_flight == 0 {
            return;
        }
    }
}

impl Drop for InlineUring {
    /// Stops the reaper. Requests still in flight belong to callers that
    /// gave up; their buffers are leaked so the kernel never writes to freed
    /// memory.
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.reaper.abort();
        let mut st = self.shared.lock();
        let leaked: Vec<Request> = st.slots.iter_mut().filter_map(Option::take).collect();
        if !leaked.is_empty() {
            tracing::debug!(
                requests = leaked.len(),
                "closing io_uring with abandoned requests in flight"
            );
        }
        std::mem::forget(leaked);
    }
}
