//! The replication engine of rdbd: DRBD 8.4's state machines and rules as code that
//! does no I/O, and (from the replication issue on) the drivers around them.
//!
//! - [`generation`]: generation identifiers (UUIDs) and the meta-data flags that
//!   follow from a device's state, as DRBD 8.4 keeps them.

pub mod generation;
pub mod resync;
pub mod sync_handshake;
pub mod uuid_compare;
