//! The io_uring engine: one dedicated thread owns the ring.
//!
//! Callers push [`Request`]s onto a mutex-protected vector and, only when the
//! ring thread has announced that it is going to sleep, signal an eventfd.
//! The ring thread keeps an `IORING_OP_READ` of that eventfd armed, so one
//! `io_uring_enter(GETEVENTS)` sleeps on both new submissions and I/O
//! completions. Each loop iteration moves every queued request into the SQ,
//! reaps every CQE, and submits the whole batch with the same syscall that
//! waits, so under load many requests share one `io_uring_enter`.
//!
//! Invariants:
//! - A request's buffer is owned by its slot from submission until its final
//!   CQE; the kernel never sees memory that the caller could free.
//! - The thread exits only when shutting down with no request in flight and
//!   no eventfd read armed, so no kernel operation outlives its memory.
//! - At most `slots.len()` requests are in the kernel; more wait in `backlog`.
//!
//! The ring is created on the ring thread itself, with
//! `SINGLE_ISSUER | DEFER_TASKRUN` where the kernel supports it (completion
//! work then runs only when the thread asks for events: no interrupts of the
//! thread while it is busy).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use io_uring::{opcode, squeue, types, IoUring};

use super::Request;
use crate::sys;
use sqe::{FileRef, Outcome};

pub(crate) mod inline;
pub(crate) mod plug;
mod sqe;

/// `user_data` of the eventfd read.
const WAKE_USER_DATA: u64 = u64::MAX;

struct Shared {
    incoming: Mutex<Vec<Request>>,
    /// Set by the ring thread before it sleeps; whoever clears it signals `wake_fd`.
    sleeping: AtomicBool,
    shutting_down: AtomicBool,
    wake_fd: OwnedFd,
}

/// Handle to the ring thread.
pub(crate) struct UringEngine {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl UringEngine {
    /// Starts the ring thread for `file` with at most `max_in_flight`
    /// requests in the kernel. Fails when io_uring is unusable (disabled by
    /// sysctl or seccomp, kernel too old for `IORING_OP_READ/WRITE`).
    pub fn start(file: Arc<File>, max_in_flight: usize) -> io::Result<UringEngine> {
        let shared = Arc::new(Shared {
            incoming: Mutex::new(Vec::with_capacity(max_in_flight)),
            sleeping: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            wake_fd: sys::eventfd()?,
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("rdbd-disk-uring".into())
            .spawn(move || {
                let ring_entries =
                    u32::try_from(max_in_flight.saturating_mul(2).max(8)).unwrap_or(4096);
                match RingThread::new(file, thread_shared, ring_entries, max_in_flight.max(1)) {
                    Ok(mut ring_thread) => {
                        let _ = ready_tx.send(Ok(()));
                        ring_thread.run();
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?;
        let started = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the io_uring thread exited during setup")));
        match started {
            Ok(()) => Ok(UringEngine {
                shared,
                thread: Some(thread),
            }),
            Err(e) => {
                let _ = thread.join();
                Err(e)
            }
        }
    }

    /// Queues `req` for the ring thread.
    pub fn submit(&self, req: Request) {
        self.shared
            .incoming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(req);
        if self.shared.sleeping.swap(false, Ordering::SeqCst) {
            sys::eventfd_signal(self.shared.wake_fd.as_raw_fd());
        }
    }
}

impl Drop for UringEngine {
    /// Waits for every request in flight, then stops the ring thread.
    fn drop(&mut self) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        sys::eventfd_signal(self.shared.wake_fd.as_raw_fd());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Ring setups, cheapest completion handling first.
#[derive(Debug, Clone, Copy)]
enum RingMode {
    SingleIssuerDeferTaskrun,
    CoopTaskrun,
    Plain,
}

/// Creates a ring with the cheapest completion mode the kernel offers.
fn create_ring(entries: u32) -> io::Result<IoUring> {
    let mut last_err = io::Error::from_raw_os_error(libc::EINVAL);
    for mode in [
        RingMode::SingleIssuerDeferTaskrun,
        RingMode::CoopTaskrun,
        RingMode::Plain,
    ] {
        let built = match mode {
            RingMode::SingleIssuerDeferTaskrun => IoUring::builder()
                .setup_single_issuer()
                .setup_defer_taskrun()
                .setup_submit_all()
                .build(entries),
            RingMode::CoopTaskrun => IoUring::builder().setup_coop_taskrun().build(entries),
            RingMode::Plain => IoUring::new(entries),
        };
        match built {
            Ok(ring) => {
                tracing::debug!(?mode, entries, "io_uring ring created");
                return Ok(ring);
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = e,
            Err(e) => return Err(e),
        }
    }
    Err(last_err)
}

struct RingThread {
    ring: IoUring,
    shared: Arc<Shared>,
    /// Keeps the descriptor open while the ring uses it.
    _file: Arc<File>,
    /// How SQEs name the file.
    file_ref: FileRef,
    slots: Vec<Option<Request>>,
    free_slots: Vec<usize>,
    in_flight: usize,
    backlog: VecDeque<Request>,
    incoming: Vec<Request>,
    completions: Vec<(u64, i32)>,
    /// Target of the eventfd read; boxed so its address is stable.
    wake_buf: Box<u64>,
    wake_armed: bool,
}

impl RingThread {
    fn new(
        file: Arc<File>,
        shared: Arc<Shared>,
        entries: u32,
        max_in_flight: usize,
    ) -> io::Result<RingThread> {
        let ring = create_ring(entries)?;
        sqe::check_opcodes(&ring)?;
        let file_ref = sqe::register_file(&ring, file.as_raw_fd());
        Ok(RingThread {
            ring,
            shared,
            _file: file,
            file_ref,
            slots: (0..max_in_flight).map(|_| None).collect(),
            free_slots: (0..max_in_flight).rev().collect(),
            in_flight: 0,
            backlog: VecDeque::new(),
            incoming: Vec::with_capacity(max_in_flight),
            completions: Vec::with_capacity(entries as usize * 2),
            wake_buf: Box::new(0),
            wake_armed: false,
        })
    }

    fn run(&mut self) {
        self.arm_wake();
        loop {
            self.take_incoming();
            if self.reap() > 0 {
                continue;
            }
            // Nothing completed: announce sleep, re-check the queue (a
            // submitter that saw `sleeping == false` did not signal), then
            // submit the batch and wait for the next completion or wakeup.
            self.shared.sleeping.store(true, Ordering::SeqCst);
            if !self
                .shared
                .incoming
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
            {
                self.shared.sleeping.store(false, Ordering::SeqCst);
                continue;
            }
            if self.shared.shutting_down.load(Ordering::SeqCst)
                && self.in_flight == 0
                && self.backlog.is_empty()
                && !self.wake_armed
            {
                break;
            }
            if let Err(e) = self.ring.submit_and_wait(1) {
                match e.raw_os_error() {
                    Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY) => {}
                    _ => {
                        tracing::error!(error = %e, "io_uring_enter failed; retrying in 1 ms");
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
            }
            self.shared.sleeping.store(false, Ordering::SeqCst);
        }
        tracing::debug!("io_uring thread stopped");
    }

    /// Moves queued requests into free slots and the SQ, oldest first.
    fn take_incoming(&mut self) {
        {
            let mut q = self
                .shared
                .incoming
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !q.is_empty() {
                std::mem::swap(&mut *q, &mut self.incoming);
            }
        }
        self.backlog.extend(self.incoming.drain(..));
        while !self.backlog.is_empty() {
            let Some(slot) = self.free_slots.pop() else {
                break;
            };
            let req = self.backlog.pop_front().expect("backlog is not empty");
            self.start(slot, req);
        }
    }

    fn start(&mut self, slot: usize, req: Request) {
        self.slots[slot] = Some(req);
        self.in_flight += 1;
        self.push_sqe(slot);
    }

    fn push_sqe(&mut self, slot: usize) {
        let entry = self.slots[slot]
            .as_mut()
            .and_then(|req| sqe::sqe_for(req, self.file_ref, slot as u64));
        let Some(entry) = entry else {
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                "read or write request without a buffer",
            );
            self.finish(slot, Err(e));
            return;
        };
        self.push_entry(&entry);
    }

    fn push_entry(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: every pointer in the entry (request buffers, the boxed
            // wake buffer) stays valid until its CQE is reaped; see the
            // module invariants.
            let pushed = unsafe { self.ring.submission().push(entry) };
            if pushed.is_ok() {
                return;
            }
            // SQ full (more requests than ring entries): flush it to the kernel.
            if let Err(e) = self.ring.submit() {
                tracing::warn!(error = %e, "io_uring submit with a full SQ failed; retrying");
                std::thread::yield_now();
            }
        }
    }

    fn arm_wake(&mut self) {
        let ptr = (&mut *self.wake_buf as *mut u64).cast::<u8>();
        let entry = opcode::Read::new(types::Fd(self.shared.wake_fd.as_raw_fd()), ptr, 8)
            .build()
            .user_data(WAKE_USER_DATA);
        self.push_entry(&entry);
        self.wake_armed = true;
    }

    /// Handles every available CQE; returns how many there were.
    fn reap(&mut self) -> usize {
        self.completions.clear();
        self.completions.extend(
            self.ring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result())),
        );
        let n = self.completions.len();
        for i in 0..n {
            let (user_data, result) = self.completions[i];
            self.complete(user_data, result);
        }
        n
    }

    fn complete(&mut self, user_data: u64, result: i32) {
        if user_data == WAKE_USER_DATA {
            self.wake_armed = false;
            if result < 0 && result != -libc::EINTR && result != -libc::EAGAIN {
                tracing::error!(
                    errno = -result,
                    "reading the io_uring wakeup eventfd failed"
                );
            }
            if !self.shared.shutting_down.load(Ordering::SeqCst) {
                self.arm_wake();
            }
            return;
        }
        let slot = user_data as usize;
        let Some(req) = self.slots.get_mut(slot).and_then(|s| s.as_mut()) else {
            tracing::error!(user_data, "io_uring completion for an unknown request");
            return;
        };
        match sqe::on_cqe(req, result) {
            Outcome::Finish(r) => self.finish(slot, r),
            Outcome::Resubmit => self.push_sqe(slot),
        }
    }

    fn finish(&mut self, slot: usize, result: io::Result<()>) {
        if let Some(req) = self.slots[slot].take() {
            self.in_flight -= 1;
            self.free_slots.push(slot);
            req.complete(result);
        }
    }
}
