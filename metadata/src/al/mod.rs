//! The activity log: transaction codec, the sans-I/O hot-extent LRU, and crash replay.

pub mod activity_log;
pub mod replay;
pub mod transaction;

pub use activity_log::{extent_range, ActivityLog, AlWrite, ExtentNr};
pub use replay::{initialized_ring, replay, ReplayOutcome};
pub use transaction::{
    block_crc, drbd_crc32c, AlTransaction, AlTransactionType, EXTENT_FREE, SLOT_UNUSED,
};
