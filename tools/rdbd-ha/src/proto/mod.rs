//! The heartbeat message: a fixed 40-byte big-endian header, the sender's name and a
//! MAC over both, sent over UDP. Pure codec plus the replay filter; no I/O.
//!
//! Layout (offsets in bytes):
//! ```text
//!  0  magic "RDHA"        4  version (1)      5  auth method      6  key index
//!  7  name length (1..64) 8  generation u64  16  sequence u64     24 phase
//! 25  flags              26  reserved u16    28  holds mask u32   32 eligible mask u32
//! 36  request mask u32   40  name            40+len  MAC (4..32 bytes)
//! ```

mod auth;
mod codec;
mod replay;

pub use auth::AuthMethod;
pub use codec::{
    decode, encode, Flags, Heartbeat, PacketError, Phase, HEADER_BYTES, MAGIC, MAX_PACKET_BYTES,
    VERSION,
};
pub use replay::{ReplayFilter, Verdict};

/// A key: method, index and secret.
#[derive(Clone)]
pub struct Key {
    /// The method.
    pub method: AuthMethod,
    /// The index carried in each packet.
    pub index: u8,
    /// The secret.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({} #{}, secret hidden)", self.method, self.index)
    }
}
