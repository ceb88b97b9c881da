//! NBD protocol codec and pipelined async server.
//!
//! - [`proto`]: the wire protocol as pure code (requests, options, replies,
//!   validation) for tests and fuzzing.
//! - [`export`]: the [`Exports`] catalogue and [`BlockDevice`] trait the
//!   daemon implements.
//! - [`server`]: fixed-newstyle handshake and the pipelined transmission
//!   phase ([`serve_connection`], [`serve_unix`], [`serve_tcp`]).
//! - `testing` (cargo feature): an in-memory [`testing::MemDevice`].
//!
//! A connection has one reader loop that decodes requests and spawns one task
//! per request; replies are answered out of order through one shared,
//! batching reply writer. At most [`ServerLimits::max_requests_in_flight`]
//! requests are outstanding; when full the reader stops reading (backpressure).

pub mod error;
pub mod export;
pub mod proto;
pub mod server;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::NbdError;
pub use export::{
    BlockDevice, DeviceError, ExportInfo, Exports, Extent, OpenError, WriteZeroesFlags,
};
pub use server::{serve_connection, serve_tcp, serve_unix, ServerLimits};
