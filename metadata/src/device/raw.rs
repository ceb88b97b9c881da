//! Positioned, synchronous I/O on a file or block device with errors that name the path and
//! offset. Sizes come from `lseek(SEEK_END)`, which works for both regular files and block
//! devices.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{MetaError, Result};

/// An open file or block device.
#[derive(Debug)]
pub struct RawDevice {
    file: File,
    path: PathBuf,
    size_bytes: u64,
}

impl RawDevice {
    /// Opens `path` read-only or read-write and measures its size.
    pub fn open(path: &Path, writable: bool) -> Result<RawDevice> {
        let io = |op, source| MetaError::Io {
            op,
            path: path.to_path_buf(),
            offset_bytes: 0,
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|e| io("open", e))?;
        let size_bytes = file.seek(SeekFrom::End(0)).map_err(|e| io("measure", e))?;
        Ok(RawDevice {
            file,
            path: path.to_path_buf(),
            size_bytes,
        })
    }

    /// Path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn io_err(&self, op: &'static str, offset_bytes: u64, source: std::io::Error) -> MetaError {
        MetaError::Io {
            op,
            path: self.path.clone(),
            offset_bytes,
            source,
        }
    }

    fn check_range(&self, op: &'static str, offset_bytes: u64, len: usize) -> Result<()> {
        let end = offset_bytes.checked_add(len as u64);
        if end.is_none_or(|e| e > self.size_bytes) {
            let msg = format!(
                "{len} bytes past the device end ({} bytes)",
                self.size_bytes
            );
            return Err(self.io_err(
                op,
                offset_bytes,
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, msg),
            ));
        }
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes at `offset_bytes`.
    pub fn read_at(&self, buf: &mut [u8], offset_bytes: u64) -> Result<()> {
        self.check_range("read", offset_bytes, buf.len())?;
        self.file
            .read_exact_at(buf, offset_bytes)
            .map_err(|e| self.io_err("read", offset_bytes, e))
    }

    /// Reads `len` bytes at `offset_bytes` into a new buffer.
    pub fn read_vec(&self, len: usize, offset_bytes: u64) -> Result<Vec<u8>> {
        self.check_range("read", offset_bytes, len)?;
        let mut v = vec![0u8; len];
        self.read_at(&mut v, offset_bytes)?;
        Ok(v)
    }

    /// Writes all of `buf` at `offset_bytes`.
    pub fn write_at(&self, buf: &[u8], offset_bytes: u64) -> Result<()> {
        self.check_range("write", offset_bytes, buf.len())?;
        self.file
            .write_all_at(buf, offset_bytes)
            .map_err(|e| self.io_err("write", offset_bytes, e))
    }

    /// Writes `len` zero bytes at `offset_bytes`, in 1 MiB chunks.
    pub fn write_zeros(&self, len: u64, offset_bytes: u64) -> Result<()> {
        self.check_range(
            "write",
            offset_bytes,
            usize::try_from(len).unwrap_or(usize::MAX),
        )?;
        let chunk = vec![0u8; 1 << 20];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(chunk.len() as u64) as usize;
            self.write_at(&chunk[..n], offset_bytes + done)?;
            done += n as u64;
        }
        Ok(())
    }

    /// Flushes written data to stable storage (fdatasync).
    pub fn flush(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| self.io_err("flush", 0, e))
    }
}
