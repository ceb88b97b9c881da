//! Reads, writes and flushes, including the bounce-buffer path for requests
//! that are not aligned to the direct-I/O alignment.
//!
//! The bounce path is slow and rare: NBD clients and the replicator send
//! block-aligned requests. It exists for 512-byte requests on 4k-sector
//! devices and for byte-granular tools. Unaligned writes read the partial
//! head and tail blocks, merge the new bytes and write the widened span back
//! while holding the read-modify-write lock exclusively.

use bytes::Bytes;
use rdbd_types::{AlignedBuf, SharedBuf};

use super::LocalDisk;
use crate::align::{is_aligned, widen};
use crate::engine::{IoBuf, Kind};
use crate::error::{IoOp, StorageError};

impl LocalDisk {
    /// Reads `len` bytes at `offset` into a new aligned buffer.
    ///
    /// The buffer comes from [`AlignedBuf::for_overwrite`] (no zeroing): both
    /// engines fail a read that does not transfer every byte, and a failed
    /// read's buffer is dropped, so stale bytes never reach the caller.
    pub async fn read(&self, offset: u64, len: usize) -> Result<AlignedBuf, StorageError> {
        self.check_range(IoOp::Read, offset, len as u64)?;
        self.read_into(offset, AlignedBuf::for_overwrite(len)).await
    }

    /// Fills all `buf.len()` bytes of `buf` from `offset` and returns it.
    pub async fn read_into(
        &self,
        offset: u64,
        buf: AlignedBuf,
    ) -> Result<AlignedBuf, StorageError> {
        let len = buf.len() as u64;
        self.check_range(IoOp::Read, offset, len)?;
        if len == 0 {
            return Ok(buf);
        }
        if is_aligned(offset, len, self.inner.io_align_bytes) {
            return self.engine_read(offset, buf).await;
        }
        let mut buf = buf;
        let w = self.widened(IoOp::Read, offset, len)?;
        let bounce = self
            .engine_read(
                w.start,
                AlignedBuf::for_overwrite(self.bounce_len(IoOp::Read, offset, w.len)?),
            )
            .await?;
        let skip = w.skip as usize;
        buf.copy_from_slice(&bounce[skip..skip + len as usize]);
        Ok(buf)
    }

    /// Writes all of `buf` at `offset`; with `fua` the data is durable when
    /// this returns (`RWF_DSYNC`). Returns the buffer for reuse.
    pub async fn write(
        &self,
        offset: u64,
        buf: AlignedBuf,
        fua: bool,
    ) -> Result<AlignedBuf, StorageError> {
        let len = buf.len() as u64;
        self.check_writable(IoOp::Write, offset, len)?;
        self.check_range(IoOp::Write, offset, len)?;
        if len == 0 {
            if fua {
                self.flush().await?;
            }
            return Ok(buf);
        }
        if is_aligned(offset, len, self.inner.io_align_bytes) {
            let _shared = self.inner.rmw_lock.read().await;
            let buf = self
                .engine_io(
                    IoOp::Write,
                    Kind::Write { fua },
                    offset,
                    Some(IoBuf::Owned(buf)),
                )
                .await?;
            return Ok(buf
                .and_then(IoBuf::into_owned)
                .expect("the engine returns the written buffer"));
        }
        self.write_unaligned(offset, &buf, fua).await?;
        Ok(buf)
    }

    /// Writes all of `buf` at `offset` straight from the shared memory (which
    /// the kernel only reads); with `fua` the data is durable when this returns.
    pub async fn write_shared(
        &self,
        offset: u64,
        buf: SharedBuf,
        fua: bool,
    ) -> Result<(), StorageError> {
        let len = buf.len() as u64;
        self.check_writable(IoOp::Write, offset, len)?;
        self.check_range(IoOp::Write, offset, len)?;
        if len == 0 {
            if fua {
                self.flush().await?;
            }
            return Ok(());
        }
        if is_aligned(offset, len, self.inner.io_align_bytes) {
            let _shared = self.inner.rmw_lock.read().await;
            return self
                .engine_io(
                    IoOp::Write,
                    Kind::Write { fua },
                    offset,
                    Some(IoBuf::Shared(buf)),
                )
                .await
                .map(drop);
        }
        self.write_unaligned(offset, &buf, fua).await
    }

    /// Writes `data` at `offset`, straight from its memory when that memory is
    /// aligned for direct I/O (a payload the receiver read into an
    /// [`AlignedBuf`] and handed on as [`Bytes`]), else from an aligned copy;
    /// with `fua` the data is durable when this returns.
    pub async fn write_bytes(
        &self,
        offset: u64,
        data: Bytes,
        fua: bool,
    ) -> Result<(), StorageError> {
        let len = data.len() as u64;
        let align = self.inner.io_align_bytes;
        let memory_aligned = (data.as_ptr() as usize) % align as usize == 0;
        if len == 0 || !memory_aligned || !is_aligned(offset, len, align) {
            return self.write_slice(offset, &data, fua).await;
        }
        self.check_writable(IoOp::Write, offset, len)?;
        self.check_range(IoOp::Write, offset, len)?;
        let _shared = self.inner.rmw_lock.read().await;
        self.engine_io(
            IoOp::Write,
            Kind::Write { fua },
            offset,
            Some(IoBuf::Bytes(data)),
        )
        .await
        .map(drop)
    }

    /// Writes a copy of `data` at `offset` (convenience for small writes).
    pub async fn write_slice(
        &self,
        offset: u64,
        data: &[u8],
        fua: bool,
    ) -> Result<(), StorageError> {
        let len = data.len() as u64;
        self.check_writable(IoOp::Write, offset, len)?;
        self.check_range(IoOp::Write, offset, len)?;
        if len > 0 && !is_aligned(offset, len, self.inner.io_align_bytes) {
            return self.write_unaligned(offset, data, fua).await;
        }
        self.write(offset, AlignedBuf::from_slice(data), fua)
            .await
            .map(drop)
    }

    /// Makes every completed write durable (`fdatasync`).
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.engine_io(IoOp::Flush, Kind::Flush, 0, None)
            .await
            .map(drop)
    }

    async fn engine_read(&self, offset: u64, buf: AlignedBuf) -> Result<AlignedBuf, StorageError> {
        let buf = self
            .engine_io(IoOp::Read, Kind::Read, offset, Some(IoBuf::Owned(buf)))
            .await?;
        Ok(buf
            .and_then(IoBuf::into_owned)
            .expect("the engine returns the read buffer"))
    }

    fn widened(
        &self,
        op: IoOp,
        offset: u64,
        len: u64,
    ) -> Result<crate::align::Widened, StorageError> {
        let size_bytes = self.size_bytes();
        widen(offset, len, self.inner.io_align_bytes)
            // Device sizes are aligned in direct mode, so this only rejects overflow.
            .filter(|w| w.start + w.len <= size_bytes)
            .ok_or(StorageError::OutOfRange {
                op,
                offset,
                len,
                size_bytes,
            })
    }

    fn bounce_len(&self, op: IoOp, offset: u64, widened_len: u64) -> Result<usize, StorageError> {
        usize::try_from(widened_len).map_err(|_| StorageError::OutOfRange {
            op,
            offset,
            len: widened_len,
            size_bytes: self.size_bytes(),
        })
    }

    /// Read-modify-write of the aligned span around `[offset, offset + data.len())`.
    pub(super) async fn write_unaligned(
        &self,
        offset: u64,
        data: &[u8],
        fua: bool,
    ) -> Result<(), StorageError> {
        let len = data.len() as u64;
        let w = self.widened(IoOp::Write, offset, len)?;
        let align = u64::from(self.inner.io_align_bytes);
        let _exclusive = self.inner.rmw_lock.write().await;
        let mut bounce = AlignedBuf::zeroed(self.bounce_len(IoOp::Write, offset, w.len)?);
        let tail_start = w.start + w.len - align;
        let mut partial_blocks = Vec::with_capacity(2);
        if w.partial_head {
            partial_blocks.push(w.start);
        }
        if w.partial_tail && !(w.partial_head && tail_start == w.start) {
            partial_blocks.push(tail_start);
        }
        for block in partial_blocks {
            let old = self
                .engine_read(block, AlignedBuf::zeroed(align as usize))
                .await?;
            let at = (block - w.start) as usize;
            bounce[at..at + old.len()].copy_from_slice(&old);
        }
        let skip = w.skip as usize;
        bounce[skip..skip + data.len()].copy_from_slice(data);
        self.engine_io(
            IoOp::Write,
            Kind::Write { fua },
            w.start,
            Some(IoBuf::Owned(bounce)),
        )
        .await
        .map(drop)
    }
}
