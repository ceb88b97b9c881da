//! What the server serves: the [`Exports`] catalogue, the [`BlockDevice`] an
//! opened export is, and the errors both report.
//!
//! [`DeviceError::nbd_errno`] is the single place where device errors become
//! NBD error values.

use std::future::Future;
use std::sync::Arc;

use rdbd_types::AlignedBuf;

use crate::proto::consts::{errno, tflag};
pub use crate::proto::reply::Extent;

/// What a client sees of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    /// Size in bytes.
    pub size_bytes: u64,
    /// Writes, trims and write-zeroes are refused with `EPERM`.
    pub read_only: bool,
    /// Human-readable description (`NBD_INFO_DESCRIPTION`).
    pub description: String,
    /// Minimum block size: a power of two up to 64 KiB (alignment of every request).
    pub block_size_min: u32,
    /// Preferred block size: a power of two, at least 512 and `block_size_min`.
    pub block_size_preferred: u32,
    /// Maximum READ/WRITE payload (capped by [`crate::ServerLimits::max_request_bytes`]).
    pub block_size_max: u32,
    /// `NBD_CMD_FLUSH` is supported.
    pub can_flush: bool,
    /// `NBD_CMD_FLAG_FUA` is supported.
    pub can_fua: bool,
    /// `NBD_CMD_TRIM` is supported.
    pub can_trim: bool,
    /// `NBD_CMD_WRITE_ZEROES` is supported.
    pub can_write_zeroes: bool,
    /// `NBD_CMD_FLAG_FAST_ZERO` is supported (needs `can_write_zeroes`).
    pub can_fast_zero: bool,
    /// Flush/FUA take effect across all connections to this export.
    pub can_multi_conn: bool,
    /// `NBD_CMD_CACHE` is supported.
    pub can_cache: bool,
}

impl ExportInfo {
    /// The transmission flags advertised for this export.
    pub fn transmission_flags(&self) -> u16 {
        let mut flags = tflag::HAS_FLAGS;
        let mut set = |cond: bool, flag: u16| {
            if cond {
                flags |= flag;
            }
        };
        set(self.read_only, tflag::READ_ONLY);
        set(self.can_flush, tflag::SEND_FLUSH);
        set(self.can_fua, tflag::SEND_FUA);
        set(self.can_trim, tflag::SEND_TRIM);
        set(self.can_write_zeroes, tflag::SEND_WRITE_ZEROES);
        set(
            self.can_write_zeroes && self.can_fast_zero,
            tflag::SEND_FAST_ZERO,
        );
        set(self.can_multi_conn, tflag::CAN_MULTI_CONN);
        set(self.can_cache, tflag::SEND_CACHE);
        flags
    }
}

/// Why an export cannot be described or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// No such export (`NBD_REP_ERR_UNKNOWN`).
    #[error("unknown export: {0}")]
    Unknown(String),
    /// The export exists but may not be used now (`NBD_REP_ERR_POLICY`).
    #[error("export refused by policy: {0}")]
    Policy(String),
}

/// Why a device operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// An I/O error of the backing store.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The backing store is full.
    #[error("no space left on the backing device")]
    NoSpace,
    /// The request is invalid for this device.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The operation (e.g. a fast zero) is not supported.
    #[error("operation not supported")]
    NotSupported,
    /// The device is shutting down; the client should disconnect.
    #[error("device is shutting down")]
    Shutdown,
}

impl DeviceError {
    /// The NBD error value sent to the client (the one place doing this mapping).
    pub fn nbd_errno(&self) -> u32 {
        match self {
            DeviceError::Io(e) => match e.raw_os_error() {
                Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => errno::ENOSPC,
                Some(libc::EPERM | libc::EROFS | libc::EACCES) => errno::EPERM,
                Some(libc::EINVAL) => errno::EINVAL,
                Some(libc::ESHUTDOWN) => errno::ESHUTDOWN,
                _ => errno::EIO,
            },
            DeviceError::NoSpace => errno::ENOSPC,
            DeviceError::Invalid(_) => errno::EINVAL,
            DeviceError::NotSupported => errno::ENOTSUP,
            DeviceError::Shutdown => errno::ESHUTDOWN,
        }
    }
}

/// Flags of a write-zeroes request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteZeroesFlags {
    /// Reply only once durable.
    pub fua: bool,
    /// Do not punch a hole; keep the range allocated.
    pub no_hole: bool,
    /// Fail quickly with [`DeviceError::NotSupported`] unless the zeroing is fast.
    pub fast_zero: bool,
}

/// An opened export. Requests arrive concurrently and out of order; the
/// server has already validated ranges (within the size, aligned, non-zero).
///
/// Durability contract: when `flush()` resolves, every write, trim and
/// write-zeroes whose future had resolved before `flush()` was called is on
/// stable storage; a call with `fua` resolves only once its own data is.
pub trait BlockDevice: Send + Sync + 'static {
    /// Reads `len` bytes at `offset`; the returned buffer must hold exactly `len` bytes.
    fn read(
        &self,
        offset: u64,
        len: u32,
    ) -> impl Future<Output = Result<AlignedBuf, DeviceError>> + Send;
    /// Writes `data` at `offset`.
    fn write(
        &self,
        offset: u64,
        data: AlignedBuf,
        fua: bool,
    ) -> impl Future<Output = Result<(), DeviceError>> + Send;
    /// Makes every completed write durable.
    fn flush(&self) -> impl Future<Output = Result<(), DeviceError>> + Send;
    /// Discards a range (a hint; contents become unspecified).
    fn trim(
        &self,
        offset: u64,
        len: u32,
        fua: bool,
    ) -> impl Future<Output = Result<(), DeviceError>> + Send;
    /// Zeroes a range.
    fn write_zeroes(
        &self,
        offset: u64,
        len: u32,
        flags: WriteZeroesFlags,
    ) -> impl Future<Output = Result<(), DeviceError>> + Send;
    /// Prefetches a range.
    fn cache(&self, offset: u64, len: u32) -> impl Future<Output = Result<(), DeviceError>> + Send;
    /// `base:allocation` extents starting at `offset`; at least one, non-zero lengths.
    fn block_status(
        &self,
        offset: u64,
        len: u32,
    ) -> impl Future<Output = Result<Vec<Extent>, DeviceError>> + Send;
    /// Runs `f`, which starts requests (polls their futures once) without
    /// waiting for them, with the device's I/O submissions on this thread
    /// deferred until [`BlockDevice::submit_deferred`]: a burst of requests
    /// can then reach the kernel with one system call. Default: just `f()`.
    fn defer_submissions<T>(&self, f: impl FnOnce() -> T) -> T {
        f()
    }
    /// Submits every I/O deferred on this thread. The server calls it before
    /// its task can be suspended, on the thread that deferred.
    fn submit_deferred(&self) {}
}

/// Devices shared behind an `Arc` are devices too.
impl<T: BlockDevice> BlockDevice for Arc<T> {
    fn read(
        &self,
        offset: u64,
        len: u32,
    ) -> impl Future<Output = Result<AlignedBuf, DeviceError>> + Send {
        (**self).read(offset, len)
    }
    fn write(
        &self,
        offset: u64,
        data: AlignedBuf,
        fua: bool,
    ) -> impl Future<Output = Result<(), DeviceError>> + Send {
        (**self).write(offset, data, fua)
    }
    fn flush(&self) -> impl Future<Output = Result<(), DeviceError>> + Send {
        (**self).flush()
    }
    fn trim(
        &self,
        offset: u64,
        len: u32,
        fua: bool,
    ) -> impl Future<Output = Result<(), DeviceError>> + Send {
        (**self).trim(offset, len, fua)
    }
    fn write_zeroes(
        &self,
        offset: u64,
        len: u32,
        flags: WriteZeroesFlags,
    ) -> impl Future<Output = Result<(), DeviceError>> + Send {
        (**self).write_zeroes(offset, len, flags)
    }
    fn cache(&self, offset: u64, len: u32) -> impl Future<Output = Result<(), DeviceError>> + Send {
        (**self).cache(offset, len)
    }
    fn block_status(
        &self,
        offset: u64,
        len: u32,
    ) -> impl Future<Output = Result<Vec<Extent>, DeviceError>> + Send {
        (**self).block_status(offset, len)
    }
    fn defer_submissions<U>(&self, f: impl FnOnce() -> U) -> U {
        (**self).defer_submissions(f)
    }
    fn submit_deferred(&self) {
        (**self).submit_deferred()
    }
}

/// The catalogue of exports a server offers.
pub trait Exports: Send + Sync + 'static {
    /// The opened handle; dropping it means the client went away.
    type Device: BlockDevice;
    /// (name, description) of every export, for `NBD_OPT_LIST`.
    fn list(&self) -> Vec<(String, String)>;
    /// Describes an export without opening it (`NBD_OPT_INFO`, meta context options).
    fn info(&self, name: &str) -> Result<ExportInfo, OpenError>;
    /// Opens an export (`NBD_OPT_GO`, `NBD_OPT_EXPORT_NAME`).
    fn open(&self, name: &str) -> Result<(ExportInfo, Self::Device), OpenError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_errors_map_to_nbd_errors() {
        let os = |code| DeviceError::Io(std::io::Error::from_raw_os_error(code)).nbd_errno();
        assert_eq!(os(libc::EIO), errno::EIO);
        assert_eq!(os(libc::EDQUOT), errno::ENOSPC);
        assert_eq!(os(libc::EROFS), errno::EPERM);
        assert_eq!(
            DeviceError::Io(std::io::Error::other("x")).nbd_errno(),
            errno::EIO
        );
        assert_eq!(DeviceError::NoSpace.nbd_errno(), errno::ENOSPC);
        assert_eq!(DeviceError::Invalid("x".into()).nbd_errno(), errno::EINVAL);
        assert_eq!(DeviceError::NotSupported.nbd_errno(), errno::ENOTSUP);
        assert_eq!(DeviceError::Shutdown.nbd_errno(), errno::ESHUTDOWN);
    }

    #[test]
    fn fast_zero_needs_write_zeroes() {
        let mut info = ExportInfo {
            size_bytes: 0,
            read_only: true,
            description: String::new(),
            block_size_min: 1,
            block_size_preferred: 4096,
            block_size_max: 1 << 25,
            can_flush: true,
            can_fua: false,
            can_trim: false,
            can_write_zeroes: false,
            can_fast_zero: true,
            can_multi_conn: true,
            can_cache: false,
        };
        assert_eq!(
            info.transmission_flags(),
            tflag::HAS_FLAGS | tflag::READ_ONLY | tflag::SEND_FLUSH | tflag::CAN_MULTI_CONN
        );
        info.can_write_zeroes = true;
        assert_ne!(info.transmission_flags() & tflag::SEND_FAST_ZERO, 0);
    }
}
