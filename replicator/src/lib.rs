//! The replication engine of rdbd: DRBD 8.4's state machines and rules as code that
//! does no I/O; the drivers (sockets, disks, timers) live in `rdbd-node`'s `peer` module.
//!
//! - [`generation`]: generation identifiers (UUIDs) and the meta-data flags that
//!   follow from a device's state, as DRBD 8.4 keeps them.
//! - [`handshake`]: features, cram-hmac, P_PROTOCOL checks, sizes, the peer's report.
//! - [`transfer_log`]: the primary's requests, epochs, barriers and acks per protocol.
//! - [`liveness`]: ping-int / ping-timeout / timeout / ko-count.
//! - [`peer_state`]: the peer's P_STATE and state change requests.
//! - [`uuid_compare`] / [`sync_handshake`]: who syncs from whom (`drbd_uuid_compare`,
//!   `drbd_sync_handshake`) and the identifiers' bookkeeping around a resync.
//! - [`resync`]: the bitmap exchange, the resync rate controller, request planning, progress.
//! - [`state`]: the node-level state machine (connection, role and disk states with DRBD's
//!   validity rules) as `step(event) -> actions`; run by the simulation in `tests/simulation.rs`.

pub mod generation;
pub mod handshake;
pub mod liveness;
pub mod peer_state;
pub mod resync;
pub mod state;
pub mod sync_handshake;
pub mod transfer_log;
pub mod uuid_compare;
