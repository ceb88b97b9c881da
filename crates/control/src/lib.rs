//! The control-socket protocol between `rdbdadm` (and `rdbd-ha`) and the `rdbd` daemon,
//! and the status model both sides render.
//!
//! The daemon listens on `<run-dir>/control.sock`. A client sends one [`Request`] as a
//! JSON line and reads one [`Response`] line back; a connection may carry several
//! exchanges. The protocol is private to one node (a unix socket, root only), so it is
//! JSON for readability, bounded to [`MAX_LINE_BYTES`] per message.
//!
//! - [`status`]: the per-resource status snapshot and its renderers (`/proc/drbd` of
//!   DRBD 8.4, `drbdadm status` of DRBD 9) and a parser of the `/proc/drbd` format.
//! - [`client`]: a blocking client for the command-line tools.

pub mod client;
pub mod exit_code;
pub mod message;
pub mod status;

pub use client::{Client, ClientError};
pub use message::{AdminCommand, Request, Response, MAX_LINE_BYTES};
pub use status::{Counters, ResourceStatus};
