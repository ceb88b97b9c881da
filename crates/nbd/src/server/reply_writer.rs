//! The single writer of a connection's replies, shared by its request tasks.
//!
//! A request task that has its reply takes the writer lock and writes the
//! reply itself (no hop to a writer task). Replies are gathered in a buffer
//! and flushed to the socket only when no other finished reply is waiting
//! for the lock (`waiting` counts them), so a burst of completions becomes
//! one `write` syscall. READ data of [`DIRECT_BYTES`] or more is not copied
//! into the buffer but written with one vectored write after the pending
//! bytes.
//!
//! Invariant: every task that increments `waiting` takes the lock, writes,
//! and decrements; the one that brings it to zero flushes. So no reply stays
//! in the buffer while nobody is going to flush it.
//!
//! When a socket write fails the writer is marked failed, later replies are
//! dropped, and the request loop is woken through [`ReplyWriter::failed`].

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex as StdMutex;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Mutex, Notify};

/// READ payloads at least this long are written directly from the device buffer.
const DIRECT_BYTES: usize = 32 * 1024;
/// The buffer is written out once it holds this much, even with replies waiting.
const FLUSH_BYTES: usize = 256 * 1024;

pub(crate) struct ReplyWriter<W> {
    state: Mutex<WriterState<W>>,
    waiting: AtomicUsize,
    failed: AtomicBool,
    failure: Notify,
    first_error: StdMutex<Option<String>>,
}

struct WriterState<W> {
    io: W,
    buf: Vec<u8>,
}

impl<W: AsyncWrite + Unpin + Send> ReplyWriter<W> {
    pub(crate) fn new(io: W) -> Self {
        ReplyWriter {
            state: Mutex::new(WriterState { io, buf: Vec::with_capacity(64 * 1024) }),
            waiting: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            failure: Notify::new(),
            first_error: StdMutex::new(None),
        }
    }

    /// Sends one reply: the bytes `encode` appends (headers), then `data`.
    pub(crate) async fn send(&self, encode: impl FnOnce(&mut Vec<u8>), data: &[u8]) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let mut state = self.state.lock().await;
        if !self.failed.load(Ordering::Acquire) {
            if let Err(e) = state.append(encode, data).await {
                self.fail(e);
            }
        }
        let still_waiting = self.waiting.fetch_sub(1, Ordering::AcqRel) - 1;
        if still_waiting == 0 && !self.failed.load(Ordering::Acquire) {
            if let Err(e) = state.write_buffer().await {
                self.fail(e);
            }
        }
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
        self.first_error.lock().ok().and_then(|e| e.clone())
    }

    /// Writes what is buffered and shuts the socket's write side down.
    pub(crate) async fn finish(&self) {
        let mut state = self.state.lock().await;
        if !self.failed.load(Ordering::Acquire) {
            if let Err(e) = state.write_buffer().await {
                self.fail(e);
            }
        }
        let _ = state.io.shutdown().await;
    }

    fn fail(&self, e: io::Error) {
        tracing::debug!(error = %e, "writing a reply failed");
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| e.to_string());
        }
        self.failed.store(true, Ordering::Release);
        self.failure.notify_one();
    }
}

impl<W: AsyncWrite + Unpin> WriterState<W> {
    async fn append(&mut self, encode: impl FnOnce(&mut Vec<u8>), data: &[u8]) -> io::Result<()> {
        encode(&mut self.buf);
        if data.len() >= DIRECT_BYTES {
            self.write_with(data).await?;
        } else {
            self.buf.extend_from_slice(data);
            if self.buf.len() >= FLUSH_BYTES {
                self.write_buffer().await?;
            }
        }
        Ok(())
    }

    async fn write_buffer(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.io.write_all(&self.buf).await?;
            self.buf.clear();
        }
        self.io.flush().await
    }

    /// Writes the buffer followed by `data`, vectored, handling short writes.
    async fn write_with(&mut self, data: &[u8]) -> io::Result<()> {
        let (mut head, mut tail) = (0usize, 0usize);
        while head < self.buf.len() || tail < data.len() {
            let slices = [IoSlice::new(&self.buf[head..]), IoSlice::new(&data[tail..])];
            let n = self.io.write_vectored(&slices).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let from_head = n.min(self.buf.len() - head);
            head += from_head;
            tail += n - from_head;
        }
        self.buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn concurrent_replies_all_arrive_intact() {
        let (server, mut client) = tokio::io::duplex(4096);
        let writer = Arc::new(ReplyWriter::new(server));
        let mut tasks = Vec::new();
        for i in 0..64u32 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                let data = vec![i as u8; if i % 4 == 0 { DIRECT_BYTES + 1 } else { 100 }];
                let len = data.len() as u32;
                writer.send(|b| b.extend_from_slice(&[&i.to_be_bytes()[..], &len.to_be_bytes()[..]].concat()), &data).await;
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
    }

    #[tokio::test]
    async fn a_closed_socket_marks_the_writer_failed() {
        let (server, client) = tokio::io::duplex(16);
        drop(client);
        let writer = ReplyWriter::new(server);
        writer.send(|b| b.extend_from_slice(b"hello world, this is long"), &[]).await;
        tokio::time::timeout(std::time::Duration::from_secs(1), writer.failed()).await.unwrap();
        assert!(writer.error().is_some());
    }
}
