//! A small pool of blocking worker threads, and the synchronous engine built
//! on it: each request is one `pread`/`pwrite`/`fdatasync` on a worker.
//!
//! The pool does not depend on a tokio runtime, so the same engine serves the
//! async API and the `*_blocking` API of tools that have no runtime. It also
//! runs the rare operations io_uring has no opcode for (discard ioctls,
//! `fallocate`, `SEEK_DATA`) for both engines.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{IoBuf, Kind, Request};
use crate::sys;

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    shutting_down: bool,
}

#[derive(Default)]
struct PoolShared {
    queue: Mutex<Queue>,
    job_ready: Condvar,
}

/// Worker threads that run boxed jobs in FIFO order.
pub(crate) struct BlockingPool {
    shared: Arc<PoolShared>,
    workers: Vec<JoinHandle<()>>,
}

impl BlockingPool {
    /// Starts `threads` workers named `name`.
    pub fn new(name: &str, threads: usize) -> io::Result<BlockingPool> {
        let shared = Arc::new(PoolShared::default());
        let mut pool = BlockingPool {
            shared,
            workers: Vec::with_capacity(threads),
        };
        for i in 0..threads.max(1) {
            let shared = pool.shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || worker(&shared))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Queues `job`.
    pub fn execute(&self, job: Job) {
        let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.jobs.push_back(job);
        drop(q);
        self.shared.job_ready.notify_one();
    }

    /// Runs `f` on a worker; the receiver yields its result.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        self.execute(Box::new(move || {
            let _ = tx.send(f());
        }));
        rx
    }
}

fn worker(shared: &PoolShared) {
    loop {
        let job = {
            let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                if q.shutting_down {
                    return;
                }
                q = shared.job_ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        job();
    }
}

impl Drop for BlockingPool {
    /// Lets the workers finish every queued job, then joins them.
    fn drop(&mut self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shutting_down = true;
        self.shared.job_ready.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// The fallback engine: positional syscalls on a [`BlockingPool`].
pub(crate) struct SyncEngine {
    file: Arc<File>,
    pool: BlockingPool,
}

impl SyncEngine {
    /// Threads of the fallback engine: enough to keep a few requests in
    /// flight on the device without flooding a 2-core machine.
    pub const THREADS: usize = 8;

    pub fn new(file: Arc<File>) -> io::Result<SyncEngine> {
        Ok(SyncEngine {
            file,
            pool: BlockingPool::new("rdbd-disk-sync", Self::THREADS)?,
        })
    }

    pub fn submit(&self, mut req: Request) {
        let file = self.file.clone();
        self.pool.execute(Box::new(move || {
            let result = perform(&file, &mut req);
            req.complete(result);
        }));
    }
}

/// Executes one request synchronously.
pub(crate) fn perform(file: &File, req: &mut Request) -> io::Result<()> {
    let done = req.done_bytes;
    let pos = req.offset + done as u64;
    match (req.kind, req.buf.as_mut()) {
        (Kind::Write { fua }, Some(buf)) => {
            sys::pwrite_full(file, &buf.as_slice()[done..], pos, fua)
        }
        (kind, buf) => perform_on(
            file,
            kind,
            pos,
            buf.and_then(IoBuf::as_mut_slice).map(|b| &mut b[done..]),
        ),
    }
}

/// Executes one read, write or flush synchronously on the calling thread.
pub(crate) fn perform_on(
    file: &File,
    kind: Kind,
    offset: u64,
    buf: Option<&mut [u8]>,
) -> io::Result<()> {
    match (kind, buf) {
        (Kind::Read, Some(buf)) => sys::pread_full(file, buf, offset),
        (Kind::Write { fua }, Some(buf)) => sys::pwrite_full(file, buf, offset, fua),
        (Kind::Flush, _) => sys::fdatasync(file),
        (_, None) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "read or write request without a buffer",
        )),
    }
}
