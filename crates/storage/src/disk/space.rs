//! Discard, write-zeroes and the allocation map (block status).
//!
//! - Discard: `BLKDISCARD` on the block-aligned part of the range for block
//!   devices (the data afterwards is unspecified), `fallocate(PUNCH_HOLE |
//!   KEEP_SIZE)` for files (reads back zeroes). Discard is advisory: where
//!   the device or file system cannot discard, it succeeds doing nothing.
//! - Write-zeroes: `fallocate(PUNCH_HOLE)` (when holes are allowed) or
//!   `fallocate(ZERO_RANGE)` for files; for block devices the block-aligned
//!   part uses `fallocate(PUNCH_HOLE)` (when allowed) or `BLKZEROOUT` and
//!   partial blocks are written. Writing zero buffers is the fallback.
//! - Allocation: `SEEK_DATA`/`SEEK_HOLE` for files; block devices are all data.

use std::io;

use rdbd_types::AlignedBuf;

use super::LocalDisk;
use crate::error::{IoOp, StorageError};
use crate::extents::map_range;
use crate::sys;

/// Chunk size of the write-zeroes fallback that writes zero buffers.
const ZERO_CHUNK_BYTES: usize = 1 << 20;

/// Errors meaning "this device or file system cannot do that".
fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY) | Some(libc::ENOSYS) | Some(libc::EINVAL)
    )
}

/// The block-aligned part `[start, end)` of `[offset, offset + len)`, if any.
fn inner_aligned(offset: u64, len: u64, block: u32) -> Option<(u64, u64)> {
    let block = u64::from(block);
    let start = offset.checked_add(block - 1)? / block * block;
    let end = offset.checked_add(len)? / block * block;
    (start < end).then_some((start, end))
}

impl LocalDisk {
    /// Discards (TRIMs) `[offset, offset + len)`. On regular files the range
    /// then reads back as zeroes and is deallocated.
    pub async fn discard(&self, offset: u64, len: u64) -> Result<(), StorageError> {
        self.check_writable(IoOp::Discard, offset, len)?;
        self.check_range(IoOp::Discard, offset, len)?;
        let range = if self.is_block_device() {
            inner_aligned(offset, len, self.logical_block_size())
        } else {
            (len > 0).then_some((offset, offset + len))
        };
        let Some((start, end)) = range else {
            return Ok(());
        };
        let block_device = self.is_block_device();
        let _shared = self.inner.rmw_lock.read().await;
        let result = self
            .aux(IoOp::Discard, offset, len, move |file| {
                if block_device {
                    sys::blk_discard(file, start, end - start)
                } else {
                    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
                    sys::fallocate(file, mode, start, end - start)
                }
            })
            .await?;
        match result {
            Ok(()) => Ok(()),
            Err(e) if is_unsupported(&e) => {
                tracing::debug!(path = %self.path().display(), error = %e, "discard unsupported; ignored");
                Ok(())
            }
            Err(source) => Err(StorageError::Io {
                op: IoOp::Discard,
                offset,
                len,
                source,
            }),
        }
    }

    /// Makes `[offset, offset + len)` read back as zeroes. With
    /// `may_punch_hole` the range may be deallocated (NBD's default);
    /// without it the space stays allocated.
    pub async fn write_zeroes(
        &self,
        offset: u64,
        len: u64,
        may_punch_hole: bool,
    ) -> Result<(), StorageError> {
        self.check_writable(IoOp::WriteZeroes, offset, len)?;
        self.check_range(IoOp::WriteZeroes, offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let end = offset + len;
        let (start_fast, end_fast) = if self.is_block_device() {
            match inner_aligned(offset, len, self.logical_block_size()) {
                Some(r) => r,
                None => return self.write_zero_buffers(offset, end).await,
            }
        } else {
            (offset, end)
        };
        let block_device = self.is_block_device();
        let fast = {
            let _shared = self.inner.rmw_lock.read().await;
            self.aux(IoOp::WriteZeroes, offset, len, move |file| {
                zero_range_in_kernel(
                    file,
                    block_device,
                    start_fast,
                    end_fast - start_fast,
                    may_punch_hole,
                )
            })
            .await?
        };
        match fast {
            Ok(()) => {}
            Err(e) if is_unsupported(&e) => {
                tracing::debug!(path = %self.path().display(), error = %e, "kernel zeroing unsupported; writing zeroes");
                return self.write_zero_buffers(offset, end).await;
            }
            Err(source) => {
                return Err(StorageError::Io {
                    op: IoOp::WriteZeroes,
                    offset,
                    len,
                    source,
                })
            }
        }
        self.write_zero_buffers(offset, start_fast).await?;
        self.write_zero_buffers(end_fast, end).await
    }

    /// Writes zero buffers over `[start, end)`.
    async fn write_zero_buffers(&self, start: u64, end: u64) -> Result<(), StorageError> {
        let mut zeroes = AlignedBuf::zeroed(ZERO_CHUNK_BYTES.min((end - start) as usize));
        let mut pos = start;
        while pos < end {
            let n = ((end - pos) as usize).min(ZERO_CHUNK_BYTES);
            zeroes.set_len(n);
            zeroes = self.write(pos, zeroes, false).await.map_err(|e| match e {
                StorageError::Io { source, .. } => StorageError::Io {
                    op: IoOp::WriteZeroes,
                    offset: start,
                    len: end - start,
                    source,
                },
                other => other,
            })?;
            pos += n as u64;
        }
        Ok(())
    }

    /// The allocation map of `[offset, offset + len)`: consecutive
    /// `(length, is_hole)` runs covering the range, neighbours differing.
    /// Block devices report one data run.
    pub async fn allocation(
        &self,
        offset: u64,
        len: u64,
    ) -> Result<Vec<(u64, bool)>, StorageError> {
        self.check_range(IoOp::Allocation, offset, len)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        if self.is_block_device() {
            return Ok(vec![(len, false)]);
        }
        let end = offset + len;
        let result = self
            .aux(IoOp::Allocation, offset, len, move |file| {
                map_range(offset, end, |pos, data| sys::seek_extent(file, pos, data))
            })
            .await?;
        match result {
            Ok(runs) => Ok(runs),
            Err(e) if is_unsupported(&e) => Ok(vec![(len, false)]),
            Err(source) => Err(StorageError::Io {
                op: IoOp::Allocation,
                offset,
                len,
                source,
            }),
        }
    }
}

/// Zeroes a range with one kernel call (no data transfer).
fn zero_range_in_kernel(
    file: &std::fs::File,
    block_device: bool,
    offset: u64,
    len: u64,
    may_punch_hole: bool,
) -> io::Result<()> {
    let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    if block_device {
        if may_punch_hole && sys::fallocate(file, punch, offset, len).is_ok() {
            return Ok(());
        }
        return sys::blk_zeroout(file, offset, len);
    }
    if may_punch_hole {
        match sys::fallocate(file, punch, offset, len) {
            Err(e) if is_unsupported(&e) => {}
            other => return other,
        }
    }
    sys::fallocate(
        file,
        libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
        offset,
        len,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_aligned_part() {
        assert_eq!(inner_aligned(0, 4096, 512), Some((0, 4096)));
        assert_eq!(inner_aligned(100, 1000, 512), Some((512, 1024)));
        assert_eq!(inner_aligned(100, 300, 512), None);
        assert_eq!(inner_aligned(u64::MAX - 10, 5, 512), None);
    }
}
