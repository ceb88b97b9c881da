//! The error type of the meta-data crate: each variant names exactly what was wrong.

use std::path::PathBuf;

/// Everything that can go wrong reading, validating or writing DRBD v08 meta-data.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The superblock magic is not a v08 magic.
    #[error("bad magic {magic:#010x} at offset {offset_bytes} (not DRBD v08 meta-data)")]
    BadMagic {
        /// Magic found.
        magic: u32,
        /// Byte offset of the superblock on the meta-data device.
        offset_bytes: u64,
    },
    /// The superblock is another DRBD meta-data version.
    #[error("DRBD {version} meta-data at offset {offset_bytes}, not v08 (magic {magic:#010x})")]
    OtherVersion {
        /// "v07" or "v09".
        version: &'static str,
        /// Magic found.
        magic: u32,
        /// Byte offset of the superblock.
        offset_bytes: u64,
    },
    /// `bm_bytes_per_bit` is not 4096.
    #[error("unsupported bm_bytes_per_bit {0} (v08 meta-data needs 4096)")]
    BadBytesPerBit(u32),
    /// AL striping is out of range.
    #[error("invalid activity log striping: al_stripes={stripes}, al_stripe_size_4k={stripe_size_4k} ({reason})")]
    BadAlStripes {
        /// `al_stripes`.
        stripes: u32,
        /// `al_stripe_size_4k`.
        stripe_size_4k: u32,
        /// What rule was broken.
        reason: &'static str,
    },
    /// A layout field does not match what the layout kind and device size require.
    #[error("{field} is {found}, expected {expected} for {layout} meta-data")]
    BadLayout {
        /// Superblock field name.
        field: &'static str,
        /// Value on disk.
        found: i64,
        /// Value the layout requires.
        expected: i64,
        /// Layout kind, e.g. "internal".
        layout: String,
    },
    /// The device cannot hold the requested layout.
    #[error("device too small: {0}")]
    DeviceTooSmall(String),
    /// The device is too large for the layout.
    #[error("device too large: {0}")]
    DeviceTooLarge(String),
    /// A buffer is shorter than the structure decoded from it.
    #[error("{what} truncated: needs {needed} bytes, got {got}")]
    Truncated {
        /// Structure name.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// An AL transaction block has the wrong magic.
    #[error("AL transaction: bad magic {0:#010x} (expected 0x69cb65a2)")]
    AlBadMagic(u32),
    /// An AL transaction block fails its checksum.
    #[error("AL transaction {tr_number}: crc32c mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    AlBadCrc {
        /// Transaction number in the block.
        tr_number: u32,
        /// CRC stored in the block.
        stored: u32,
        /// CRC computed over the block.
        computed: u32,
    },
    /// An AL transaction claims more updates than fit.
    #[error("AL transaction {tr_number}: n_updates {n_updates} exceeds 64")]
    AlTooManyUpdates {
        /// Transaction number.
        tr_number: u32,
        /// Claimed updates.
        n_updates: u16,
    },
    /// `al-extents` out of range.
    #[error("al-extents {0} out of range 67..=65534")]
    AlExtentsOutOfRange(u32),
    /// Not enough unused AL slots for a write right now.
    #[error("activity log busy: write needs {needed} extent(s), only {available} can be activated now; wait for writes to complete")]
    AlBusy {
        /// Extents the write touches.
        needed: u32,
        /// Slots that can be taken now.
        available: u32,
    },
    /// `end_write` for an extent that is not active.
    #[error("activity log: end_write on extent {0}, which is not in use")]
    AlNotActive(u32),
    /// A write range is empty or overflows.
    #[error("invalid I/O range: {first_sector}+{sectors} sectors")]
    BadRange {
        /// First sector.
        first_sector: u64,
        /// Length in sectors.
        sectors: u64,
    },
    /// No usable AL found during replay.
    #[error(
        "no usable activity log found (no valid transaction block); do you need to create-md?"
    )]
    AlNoData,
    /// Some AL blocks valid but none an update.
    #[error("no valid AL update transaction found, but {corrupt} corrupt block(s)")]
    AlNoValidUpdate {
        /// Corrupt or unreadable blocks.
        corrupt: u32,
    },
    /// A bitmap operation was out of range.
    #[error("bitmap: bit {bit} out of range (bitmap has {bits} bits)")]
    BitmapRange {
        /// Offending bit.
        bit: u64,
        /// Bits in the bitmap.
        bits: u64,
    },
    /// A bitmap is too large to hold in memory.
    #[error("bitmap of {bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    BitmapTooLarge {
        /// Requested bytes.
        bytes: u64,
        /// Limit.
        limit_bytes: u64,
    },
    /// Parse error in a dump-md document.
    #[error("dump parse error in line {line}: {msg}")]
    Parse {
        /// 1-based line number.
        line: u32,
        /// What was expected or wrong.
        msg: String,
    },
    /// Another process (an attached rdbd resource) holds the device.
    #[error("{0} is in use: it is attached by a running rdbd resource (run 'rdbdadm down' first)")]
    DeviceInUse(PathBuf),
    /// I/O on the meta-data device failed.
    #[error("{op} {path} at byte {offset_bytes}: {source}")]
    Io {
        /// "read", "write", "flush", "open", ...
        op: &'static str,
        /// Device or file.
        path: PathBuf,
        /// Byte offset of the access.
        offset_bytes: u64,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, MetaError>;
