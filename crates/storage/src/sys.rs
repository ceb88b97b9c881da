//! Thin, safe wrappers around the Linux system calls the engine needs:
//! open with `O_DIRECT`, geometry ioctls, positional I/O with retry of short
//! transfers, `fdatasync`, `fallocate`, discard/zero-out ioctls,
//! `SEEK_DATA`/`SEEK_HOLE` and eventfd.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// `_IOR(0x12, 114, size_t)`: size of a block device in bytes.
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
/// `_IO(0x12, 104)`: logical block size of a block device.
const BLKSSZGET: libc::c_ulong = 0x1268;
/// `_IO(0x12, 119)`: discard a byte range `[u64 start, u64 len]`.
const BLKDISCARD: libc::c_ulong = 0x1277;
/// `_IO(0x12, 127)`: zero a byte range `[u64 start, u64 len]`.
const BLKZEROOUT: libc::c_ulong = 0x127f;

/// Opens `path` for the engine, with `O_DIRECT` when `direct`.
pub(crate) fn open(path: &Path, read_only: bool, direct: bool) -> io::Result<File> {
    let mut flags = 0;
    if direct {
        flags |= libc::O_DIRECT;
    }
    OpenOptions::new()
        .read(true)
        .write(!read_only)
        .custom_flags(flags)
        .open(path)
}

/// What kind of file was opened and how big it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub is_block_device: bool,
    pub size_bytes: u64,
    /// The logical block size reported to clients (512 for files).
    pub logical_block_size: u32,
    /// Offset/length alignment required by `O_DIRECT` on this file.
    pub direct_align: u32,
}

/// Which geometry query failed, for [`crate::StorageError::Probe`].
pub(crate) type ProbeError = (&'static str, io::Error);

/// Determines type, size and block sizes of an opened file. `Ok(None)` when
/// it is neither a block device nor a regular file.
pub(crate) fn probe(file: &File) -> Result<Option<Geometry>, ProbeError> {
    let meta = file.metadata().map_err(|e| ("type", e))?;
    let file_type = meta.file_type();
    if file_type.is_block_device() {
        let fd = file.as_raw_fd();
        let mut size_bytes: u64 = 0;
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid.
        let rc = unsafe { libc::ioctl(fd, BLKGETSIZE64 as _, &mut size_bytes as *mut u64) };
        if rc < 0 {
            return Err(("size", io::Error::last_os_error()));
        }
        let mut block_size: libc::c_int = 0;
        // SAFETY: BLKSSZGET writes one int through the pointer, which is valid.
        let rc = unsafe { libc::ioctl(fd, BLKSSZGET as _, &mut block_size as *mut libc::c_int) };
        if rc < 0 {
            return Err(("logical block size", io::Error::last_os_error()));
        }
        let block_size = u32::try_from(block_size)
            .ok()
            .filter(|b| b.is_power_of_two() && (512..=65536).contains(b))
            .ok_or((
                "logical block size",
                io::Error::from_raw_os_error(libc::EINVAL),
            ))?;
        Ok(Some(Geometry {
            is_block_device: true,
            size_bytes,
            logical_block_size: block_size,
            direct_align: block_size,
        }))
    } else if file_type.is_file() {
        Ok(Some(Geometry {
            is_block_device: false,
            size_bytes: meta.len(),
            logical_block_size: 512,
            direct_align: file_direct_alignment(file),
        }))
    } else {
        Ok(None)
    }
}

/// The `O_DIRECT` offset alignment of a regular file from `statx(STATX_DIOALIGN)`
/// (Linux 6.1); 4096 when unknown, which every file system accepts.
fn file_direct_alignment(file: &File) -> u32 {
    // SAFETY: statx is plain old data; all-zero is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the path is a valid empty C string, AT_EMPTY_PATH makes statx use
    // the fd, and stx is a valid out-pointer.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    let align = stx.stx_dio_offset_align;
    if rc == 0
        && stx.stx_mask & libc::STATX_DIOALIGN != 0
        && align.is_power_of_two()
        && (512..=65536).contains(&align)
    {
        align
    } else {
        4096
    }
}

/// Reads exactly `buf.len()` bytes at `offset`, retrying short reads.
pub(crate) fn pread_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(buf, offset)
}

/// Writes all of `buf` at `offset`, retrying short writes. With `dsync` the
/// data is durable on return (`RWF_DSYNC`, or `fdatasync` where the kernel
/// refuses the flag).
pub(crate) fn pwrite_full(file: &File, buf: &[u8], offset: u64, dsync: bool) -> io::Result<()> {
    if !dsync {
        return file.write_all_at(buf, offset);
    }
    let mut done = 0usize;
    while done < buf.len() {
        let rest = &buf[done..];
        let iov = libc::iovec {
            iov_base: rest.as_ptr() as *mut libc::c_void,
            iov_len: rest.len(),
        };
        let pos = offset
            .checked_add(done as u64)
            .and_then(|p| libc::off_t::try_from(p).ok())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: iov points into `buf`, which is live and `iov_len` bytes long.
        let n = unsafe { libc::pwritev2(file.as_raw_fd(), &iov, 1, pos, libc::RWF_DSYNC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS) if done == 0 => {
                    file.write_all_at(buf, offset)?;
                    return fdatasync(file);
                }
                _ => return Err(e),
            }
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write returned 0 bytes",
            ));
        }
        done += n as usize;
    }
    Ok(())
}

/// Flushes the data (not necessarily the metadata) of `file` to stable storage.
pub(crate) fn fdatasync(file: &File) -> io::Result<()> {
    file.sync_data()
}

/// `fallocate(2)` with `mode` on `[offset, offset + len)`.
pub(crate) fn fallocate(file: &File, mode: libc::c_int, offset: u64, len: u64) -> io::Result<()> {
    let off =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    loop {
        // SAFETY: plain syscall on a valid fd.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), mode, off, len) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Discards `[offset, offset + len)` of a block device (`BLKDISCARD`).
pub(crate) fn blk_discard(file: &File, offset: u64, len: u64) -> io::Result<()> {
    range_ioctl(file, BLKDISCARD, offset, len)
}

/// Zeroes `[offset, offset + len)` of a block device (`BLKZEROOUT`).
pub(crate) fn blk_zeroout(file: &File, offset: u64, len: u64) -> io::Result<()> {
    range_ioctl(file, BLKZEROOUT, offset, len)
}

fn range_ioctl(file: &File, request: libc::c_ulong, offset: u64, len: u64) -> io::Result<()> {
    let range: [u64; 2] = [offset, len];
    // SAFETY: both ioctls read two u64 through the pointer, which is valid.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request as _, range.as_ptr()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `lseek(fd, offset, SEEK_DATA or SEEK_HOLE)`: `Ok(None)` on `ENXIO`
/// (no data at or after `offset`).
pub(crate) fn seek_extent(file: &File, offset: u64, data: bool) -> io::Result<Option<u64>> {
    let whence = if data {
        libc::SEEK_DATA
    } else {
        libc::SEEK_HOLE
    };
    let off =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: plain syscall on a valid fd. The file position it moves is never
    // used: all I/O is positional.
    let rc = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENXIO) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some(rc as u64))
}

/// A close-on-exec eventfd. It is blocking on purpose: io_uring completes a
/// read of a non-blocking file with `EAGAIN` instead of waiting for data.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec, non-blocking eventfd (for polling by the tokio reactor).
pub(crate) fn eventfd_nonblocking() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd's counter, waking its reader.
pub(crate) fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64. The counter cannot reach its
    // 2^64-2 limit (the reader resets it), so the write never blocks or fails.
    let _ = unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
}
