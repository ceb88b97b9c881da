//! The 28-byte transmission request header: decoding and encoding.
//!
//! Layout (big endian): u32 magic, u16 command flags, u16 type, u64 cookie,
//! u64 offset, u32 length. A WRITE's payload follows and is not part of it.

use super::consts::{cmd, REQUEST_BYTES, REQUEST_MAGIC};
use super::ProtoError;

/// A transmission command, with the unknown ones kept by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `NBD_CMD_READ`.
    Read,
    /// `NBD_CMD_WRITE`.
    Write,
    /// `NBD_CMD_DISC`.
    Disconnect,
    /// `NBD_CMD_FLUSH`.
    Flush,
    /// `NBD_CMD_TRIM`.
    Trim,
    /// `NBD_CMD_CACHE`.
    Cache,
    /// `NBD_CMD_WRITE_ZEROES`.
    WriteZeroes,
    /// `NBD_CMD_BLOCK_STATUS`.
    BlockStatus,
    /// Any other command number.
    Unknown(u16),
}

impl Command {
    /// The command for a wire number.
    pub fn from_wire(value: u16) -> Command {
        match value {
            cmd::READ => Command::Read,
            cmd::WRITE => Command::Write,
            cmd::DISC => Command::Disconnect,
            cmd::FLUSH => Command::Flush,
            cmd::TRIM => Command::Trim,
            cmd::CACHE => Command::Cache,
            cmd::WRITE_ZEROES => Command::WriteZeroes,
            cmd::BLOCK_STATUS => Command::BlockStatus,
            other => Command::Unknown(other),
        }
    }

    /// The wire number of this command.
    pub fn to_wire(self) -> u16 {
        match self {
            Command::Read => cmd::READ,
            Command::Write => cmd::WRITE,
            Command::Disconnect => cmd::DISC,
            Command::Flush => cmd::FLUSH,
            Command::Trim => cmd::TRIM,
            Command::Cache => cmd::CACHE,
            Command::WriteZeroes => cmd::WRITE_ZEROES,
            Command::BlockStatus => cmd::BLOCK_STATUS,
            Command::Unknown(other) => other,
        }
    }

    /// The specification's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Command::Read => "READ",
            Command::Write => "WRITE",
            Command::Disconnect => "DISC",
            Command::Flush => "FLUSH",
            Command::Trim => "TRIM",
            Command::Cache => "CACHE",
            Command::WriteZeroes => "WRITE_ZEROES",
            Command::BlockStatus => "BLOCK_STATUS",
            Command::Unknown(_) => "UNKNOWN",
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Unknown(n) => write!(f, "UNKNOWN({n})"),
            known => f.write_str(known.name()),
        }
    }
}

/// A decoded request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Command flags (`cmd_flag::*`), unvalidated.
    pub flags: u16,
    /// The command.
    pub command: Command,
    /// Opaque client cookie echoed in the reply.
    pub cookie: u64,
    /// Byte offset into the export.
    pub offset: u64,
    /// Length in bytes (of the payload for WRITE, of the effect otherwise).
    pub length: u32,
}

impl Request {
    /// Decodes a request header; only the magic can be wrong at this level.
    pub fn decode(bytes: &[u8; REQUEST_BYTES]) -> Result<Request, ProtoError> {
        let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if magic != REQUEST_MAGIC {
            return Err(ProtoError::BadRequestMagic(magic));
        }
        Ok(Request {
            flags: u16::from_be_bytes([bytes[4], bytes[5]]),
            command: Command::from_wire(u16::from_be_bytes([bytes[6], bytes[7]])),
            cookie: be_u64(&bytes[8..16]),
            offset: be_u64(&bytes[16..24]),
            length: u32::from_be_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]),
        })
    }

    /// Encodes this request header (what a client sends).
    pub fn encode(&self) -> [u8; REQUEST_BYTES] {
        let mut out = [0u8; REQUEST_BYTES];
        out[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        out[4..6].copy_from_slice(&self.flags.to_be_bytes());
        out[6..8].copy_from_slice(&self.command.to_wire().to_be_bytes());
        out[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        out[16..24].copy_from_slice(&self.offset.to_be_bytes());
        out[24..28].copy_from_slice(&self.length.to_be_bytes());
        out
    }
}

/// Big-endian u64 from exactly 8 bytes (callers pass fixed sub-slices).
pub(crate) fn be_u64(bytes: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_request_bytes() {
        let req = Request {
            flags: 0x0001,
            command: Command::Write,
            cookie: 0x0102_0304_0506_0708,
            offset: 0x1000,
            length: 0x200,
        };
        let expected: [u8; 28] = [
            0x25, 0x60, 0x95, 0x13, 0x00, 0x01, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0,
            0, 0x10, 0x00, 0, 0, 0x02, 0x00,
        ];
        assert_eq!(req.encode(), expected, "NBD request format changed");
        assert_eq!(Request::decode(&expected), Ok(req));
    }

    #[test]
    fn bad_magic_is_reported_with_the_value() {
        let mut bytes = [0u8; 28];
        bytes[0] = 0xde;
        assert_eq!(
            Request::decode(&bytes),
            Err(ProtoError::BadRequestMagic(0xde00_0000))
        );
    }

    #[test]
    fn command_numbers_round_trip() {
        for n in 0..=20u16 {
            assert_eq!(Command::from_wire(n).to_wire(), n);
        }
        assert_eq!(Command::from_wire(7), Command::BlockStatus);
        assert_eq!(Command::from_wire(9).to_string(), "UNKNOWN(9)");
    }
}
