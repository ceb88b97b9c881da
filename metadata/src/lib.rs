//! DRBD v08-compatible meta-data: superblock, layouts, activity log and dirty bitmap.
//!
//! The on-disk format is byte-compatible with DRBD 8.4 and drbd-utils' `drbdmeta`:
//! - [`superblock`]: the 4 KiB big-endian v08 superblock (UUIDs, flags, sizes, offsets).
//! - [`layout`]: where meta-data lives (internal / flex-external / indexed) and the usable data
//!   size, computed exactly as DRBD does.
//! - [`al`]: the activity log: 4 KiB transaction codec (DRBD's seed-0 CRC32C), the sans-I/O
//!   hot-extent LRU ([`al::ActivityLog`]) and crash replay.
//! - [`bitmap`]: the dirty bitmap (one bit per 4 KiB, little-endian 64-bit words) with run
//!   scanning and dirty-page tracking for write-back.
//! - [`dump`]: drbdmeta's `dump-md` text format (writer and bounded parser).
//! - [`device`]: synchronous I/O on a file or block device ([`device::MetaDataDevice`]),
//!   apply-al, and probing for existing data before create-md.
//!
//! Typical daemon use: [`device::MetaDataDevice::open`] → check `superblock().is_unclean()`
//! (run [`device::MetaDataDevice::apply_al`]) → `mark_unclean()` → [`al::ActivityLog`] +
//! `write_al()` per transaction, [`bitmap::Bitmap`] + `write_bitmap_pages()` → `mark_clean()`
//! on detach.

pub mod al;
pub mod bitmap;
pub mod claim;
pub mod consts;
pub mod device;
pub mod dump;
pub mod error;
pub mod layout;
pub mod superblock;

pub use al::{ActivityLog, AlTransaction, AlWrite, ExtentNr};
pub use bitmap::Bitmap;
pub use device::{MetaDataDevice, MetaDiskKind, OpenOptions};
pub use error::{MetaError, Result};
pub use layout::{AlStripes, Layout, LayoutKind};
pub use superblock::{MdFlags, MdMagic, Superblock, Uuids};
