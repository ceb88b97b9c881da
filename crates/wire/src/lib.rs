//! DRBD 8.4 wire protocol (protocol version 101): headers and packets, no sockets.
//!
//! - [`header`]: h80 / h95 / h100 headers (recognised by magic when decoding).
//! - [`Command`]: the command numbers and each command's payload length bounds.
//! - [`Packet`]: one variant per packet with typed payloads; [`Frame`] = header kind + volume +
//!   packet; [`decode_frame`] for one frame from a slice, [`Decoder`] for a byte stream.
//! - [`state`]: `union drbd_state` as [`DrbdState`] / [`StateBits`] / [`StateChange`].
//! - [`CompressedBitmap`]: P_COMPRESSED_BITMAP RLE+VLI codec ([`vli`]).
//! - [`auth`]: cram-hmac responses.
//!
//! Everything is big-endian except the plain bitmap words (little-endian). Every length from the
//! wire is checked against a bound before it is used ([`MAX_PAYLOAD_BYTES`], bitmap packets
//! [`DRBD_SOCKET_BUFFER_SIZE`], fixed packets their exact size).

pub mod auth;
mod command;
mod decoder;
mod error;
mod frame;
pub mod header;
mod packet;
pub mod state;
pub mod vli;

pub use command::Command;
pub use decoder::{Decoder, PendingBulk};
pub use error::WireError;
pub use frame::{decode_frame, Frame, Limits};
pub use header::{Header, HeaderKind};
pub use packet::*;
pub use state::{DrbdState, StateBits, StateChange, StateField};

/// Largest bio DRBD 8.4 sends in one P_DATA (`DRBD_MAX_BIO_SIZE`, 1 MiB).
pub const DRBD_MAX_BIO_SIZE: usize = 1 << 20;
/// Largest digest (data-integrity, csums, verify) carried in a packet.
pub const MAX_DIGEST_BYTES: usize = 64;
/// Largest payload of any packet: a `p_data`, a digest, and DRBD_MAX_BIO_SIZE of data
/// (rounded up to a page).
pub const MAX_PAYLOAD_BYTES: usize = DRBD_MAX_BIO_SIZE + 4096;
/// Bitmap packets fit one 4 KiB buffer, header included (`DRBD_SOCKET_BUFFER_SIZE`).
pub const DRBD_SOCKET_BUFFER_SIZE: usize = 4096;
