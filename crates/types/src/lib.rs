//! Shared domain types of rdbd.
//!
//! - [`state`]: DRBD 8.4's connection, role and disk states with the exact names
//!   that `/proc/drbd`, `drbdadm cstate/role/dstate` print.
//! - [`Protocol`]: the replication protocols A, B and C.
//! - [`buf::AlignedBuf`]: a heap buffer aligned for `O_DIRECT` I/O, owned and
//!   handed between the NBD server, the storage engine and the replicator;
//!   [`buf::SharedBuf`] its shared read-only form; [`pool`] recycles them.

pub mod buf;
pub mod pool;
pub mod state;

pub use buf::{AlignedBuf, SharedBuf};
pub use state::{ConnState, DiskState, Protocol, Role};
