//! rdbd-ha: a small Heartbeat-style failover supervisor for rdbd.
//!
//! Layers (pure ones first):
//! - [`config`]: the TOML configuration and the readers for heartbeat's `ha.cf`,
//!   `haresources` and `authkeys`.
//! - [`proto`]: the authenticated UDP heartbeat message and the replay filter.
//! - [`membership`]: the peer liveness state machine (keepalive, warntime, deadtime,
//!   initdead, ping nodes), driven by a clock the caller passes in.
//! - [`policy`]: who should run each resource group, and the promotion safety rules.
//! - [`group`]: resource groups (start in order, stop in reverse, monitor, give up)
//!   over a [`group::StepRunner`], with the real shell runner in [`group::shell`].
//! - [`daemon`]: the I/O loop tying the above to sockets, timers and the control socket.

pub mod config;
pub mod daemon;
pub mod error;
pub mod group;
pub mod membership;
pub mod policy;
pub mod proto;

pub use error::{HaError, Result};
