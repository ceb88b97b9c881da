//! The single writer of a connection's replies, shared by its request tasks
//! ("flat combining", no separate writer task).
//!
//! A finished request appends its encoded reply to the pending batch under a
//! short std mutex. If no task is writing, it becomes the writer: it takes
//! the socket out of the queue, swaps the batch out and writes it with one
//! (vectored) write, and repeats until the batch is empty; replies added
//! meanwhile by other tasks ride along, so a burst of completions costs one
//! syscall and no task ever waits for another's write. When other requests
//! are in flight the new writer first lets the runtime run every other ready
//! task once (`lingers`): completions that arrived together (one io_uring
//! reap wakes them all, typically on the same worker) then append their
//! replies before the write instead of each paying its own syscall. A lone
//! request (QD1) is written at once. Small READ data is
//! copied into the batch; READ data of [`DIRECT_BYTES`] or more is kept as
//! its own buffer and written in place by the vectored write.
//!
//! Invariants: `writing` is true exactly while a writer owns the socket
//! (`io` is `None`); a writer only stops after seeing an empty batch under the
//! lock, so no reply is stranded. Each reply carries its request's in-flight
//! permit, released only after the reply was written: replies waiting for
//! the socket count against `max_requests_in_flight` (backpressure).
//!
//! When a socket write fails the writer is marked failed, later replies are
//! discarded (their permits still released) and the request loop is woken
//! through [`ReplyWriter::failed`].

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use rdbd_types::AlignedBuf;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, OwnedSemaphorePermit};

/// READ payloads at least this long are written from their own buffer.
const DIRECT_BYTES: usize = 32 * 1024;

pub(crate) struct ReplyWriter<W> {
    queue: Mutex<Queue<W>>,
    failed: AtomicBool,
    failure: Notify,
    /// Signalled whenever a writer hands the socket back.
    idle: Notify,
    first_error: Mutex<Option<String>>,
}

struct Queue<W> {
    writing: bool,
    batch: Batch,
    /// The socket and a spare batch; taken by the active writer.
    io: Option<(W, Batch)>,
}

/// Replies waiting to be written.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Large payloads, each to be written after `bytes[..position]`.
    large: Vec<(usize, AlignedBuf)>,
    permits: Vec<OwnedSemaphorePermit>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.large.is_empty() && self.permits.is_empty()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.large.clear();
        self.permits.clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<W: AsyncWrite + Unpin + Send> ReplyWriter<W> {
    pub(crate) fn new(io: W) -> Self {
        let spare = Batch {
            bytes: Vec::with_capacity(64 * 1024),
            ..Batch::default()
        };
        ReplyWriter {
            queue: Mutex::new(Queue {
                writing: false,
                batch: Batch {
                    bytes: Vec::with_capacity(64 * 1024),
                    ..Batch::default()
                },
                io: Some((io, spare)),
            }),
            failed: AtomicBool::new(false),
            failure: Notify::new(),
            idle: Notify::new(),
            first_error: Mutex::new(None),
        }
    }

    /// Sends one reply: the bytes `encode` appends (headers), then `data`.
    /// `permit` is released once the reply has been written (or discarded).
    /// With `linger`, a task that becomes the writer yields once before
    /// writing so that replies about to be sent join its batch.
    pub(crate) async fn send(
        &self,
        encode: impl FnOnce(&mut Vec<u8>),
        data: Option<AlignedBuf>,
        permit: Option<OwnedSemaphorePermit>,
        linger: bool,
    ) {
        let writer = {
            let mut queue = lock(&self.queue);
            if self.failed.load(Ordering::Acquire) {
                return;
            }
            let batch = &mut queue.batch;
            encode(&mut batch.bytes);
            if let Some(data) = data {
                if data.len() >= DIRECT_BYTES {
                    let position = batch.bytes.len();
                    batch.large.push((position, data));
                } else {
                    batch.bytes.extend_from_slice(&data);
                }
            }
            batch.permits.extend(permit);
            if queue.writing {
                return;
            }
            queue.writing = true;
            queue.io.take()
        };
        let Some((mut io, mut batch)) = writer else {
            // Unreachable: `io` is present whenever `writing` was false.
            return;
        };
        if linger {
            yield_to_ready_tasks().await;
        }
        loop {
            {
                let mut queue = lock(&self.queue);
                if queue.batch.is_empty() {
                    queue.io = Some((io, batch));
                    queue.writing = false;
                    break;
                }
                std::mem::swap(&mut queue.batch, &mut batch);
            }
            if !self.failed.load(Ordering::Acquire) {
                if let Err(e) = write_batch(&mut io, &batch).await {
                    self.fail(e);
                }
            }
            batch.clear();
        }
        self.idle.notify_one();
    }

    /// Resolves once a socket write has failed.
    pub(crate) async fn failed(&self) {
        if self.failed.load(Ordering::Acquire) {
            return;
        }
        self.failure.notified().await;
    }

    /// The first write error, if any.
    pub(crate) fn error(&self) -> Option<String> {
        lock(&self.first_error).clone()
    }

    /// Waits for the active writer (if any) and shuts the socket's write side down.
    pub(crate) async fn finish(&self) {
        let mut io = loop {
            if let Some((io, _)) = lock(&self.queue).io.take() {
                break io;
            }
            self.idle.notified().await;
        };
        let _ = io.shutdown().await;
    }

    fn fail(&self, e: io::Error) {
        tracing::debug!(error = %e, "writing a reply failed");
        lock(&self.first_error).get_or_insert_with(|| e.to_string());
        self.failed.store(true, Ordering::Release);
        self.failure.notify_one();
    }
}

/// Lets the executor run its other ready tasks once: the task wakes itself
/// and returns `Pending`. Unlike `tokio::task::yield_now` (which defers the
/// task until the runtime has polled its I/O driver, one more `epoll_wait`),
/// tokio requeues a self-woken task at the back of the worker's run queue.
async fn yield_to_ready_tasks() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Writes a batch: its bytes with the large payloads spliced in at their
/// positions, as few (vectored) writes as the socket allows.
async fn write_batch<W: AsyncWrite + Unpin>(io: &mut W, batch: &Batch) -> io::Result<()> {
    if batch.large.is_empty() {
        io.write_all(&batch.bytes).await?;
        return io.flush().await;
    }
    let mut slices = Vec::with_capacity(2 * batch.large.len() + 1);
    let mut done = 0;
    for (position, data) in &batch.large {
        if *position > done {
            slices.push(IoSlice::new(&batch.bytes[done..*position]));
            done = *position;
        }
        slices.push(IoSlice::new(data));
    }
    if done < batch.bytes.len() {
        slices.push(IoSlice::new(&batch.bytes[done..]));
    }
    let mut rest: &mut [IoSlice<'_>] = &mut slices;
    while !rest.is_empty() {
        let n = io.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    use tokio::sync::Semaphore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_replies_all_arrive_intact_and_release_permits() {
        let (server, mut client) = tokio::io::duplex(4096);
        let writer = Arc::new(ReplyWriter::new(server));
        let slots = Arc::new(Semaphore::new(64));
        let mut tasks = Vec::new();
        for i in 0..64u32 {
            let writer = writer.clone();
            let permit = slots.clone().try_acquire_owned().unwrap();
            tasks.push(tokio::spawn(async move {
                let len = if i % 4 == 0 { DIRECT_BYTES + 1 } else { 100 };
                let data = AlignedBuf::from_slice(&vec![i as u8; len]);
                let header = [i.to_be_bytes(), (len as u32).to_be_bytes()].concat();
                writer
                    .send(
                        |b| b.extend_from_slice(&header),
                        Some(data),
                        Some(permit),
                        i % 2 == 0,
                    )
                    .await;
            }));
        }
        let reader = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..64 {
                let i = client.read_u32().await.unwrap();
                let len = client.read_u32().await.unwrap() as usize;
                let mut data = vec![0u8; len];
                client.read_exact(&mut data).await.unwrap();
                assert!(data.iter().all(|&b| b == i as u8), "reply {i} corrupted");
                seen.push(i);
            }
            seen.sort();
            seen
        });
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(reader.await.unwrap(), (0..64).collect::<Vec<_>>());
        let all =
            tokio::time::timeout(std::time::Duration::from_secs(5), slots.acquire_many(64)).await;
        assert!(
            all.is_ok(),
            "permits were not released after the replies were written"
        );
        writer.finish().await;
    }

    #[tokio::test]
    async fn a_closed_socket_marks_the_writer_failed() {
        let (server, client) = tokio::io::duplex(16);
        drop(client);
        let writer = ReplyWriter::new(server);
        writer
            .send(
                |b| b.extend_from_slice(b"hello world, this is long"),
                None,
                None,
                false,
            )
            .await;
        tokio::time::timeout(std::time::Duration::from_secs(1), writer.failed())
            .await
            .unwrap();
        assert!(writer.error().is_some());
        writer.finish().await;
    }
}
