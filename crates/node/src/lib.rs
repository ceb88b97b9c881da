//! The rdbd node daemon as a library.
//!
//! One daemon per node serves all of the node's resources:
//!
//! - [`daemon`]: start-up (run directory, sockets, listeners), the control loop and shutdown.
//! - [`resource`]: one resource's live state (role, disk, counters, open clients).
//! - [`core_driver`]: the resource's state machine (`rdbd_replicator::state`) and the
//!   execution of its actions (meta-data writes, log lines, packets).
//! - [`events`]: the `events2` stream on the control socket.
//! - [`export`]: the NBD side: which exports exist, who may open them, and the
//!   per-request path from an NBD command to the local disk.
//! - [`handlers`]: DRBD's handlers (split-brain, fence-peer, resync, ...) and fencing.
//! - [`lifecycle`]: `attach`, `detach`, `invalidate-remote`, `adjust` on a resource that is up.
//! - [`control`]: the handlers of `rdbdadm`'s requests on `<run-dir>/control.sock`.
//! - [`metrics`]: Prometheus metrics over HTTP (`metrics-address`).
//! - [`status_file`]: `<run-dir>/drbd`, the `/proc/drbd`-format status file.
//! - [`options`]: the global options every binary shares (`--config`, `--node`, `--run-dir`).

pub mod cli;
pub mod control;
pub mod core_driver;
pub mod daemon;
pub mod events;
pub mod export;
pub mod handlers;
pub mod lifecycle;
pub mod meta;
pub mod metrics;
pub mod options;
pub mod peer;
pub mod resource;
pub mod state_change;
pub mod status_file;

pub use daemon::{run, DaemonError};
pub use options::NodeOptions;
