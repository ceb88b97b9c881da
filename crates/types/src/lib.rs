//! Shared domain types of rdbd.
//!
//! - [`state`]: DRBD 8.4's connection, role and disk states with the exact names
//!   that `/proc/drbd`, `drbdadm cstate/role/dstate` print.
//! - [`Protocol`]: the replication protocols A, B and C.
//! - [`buf::AlignedBuf`]: a heap buffer aligned for `O_DIRECT` I/O, owned and
//!   handed between the NBD server, the storage engine and the replicator.

pub mod buf;
pub mod state;

pub use buf::AlignedBuf;
pub use state::{ConnState, DiskState, Protocol, Role};
