//! The three DRBD packet headers (`p_header80`, `p_header95`, `p_header100`), all big-endian.
//!
//! | kind | bytes | layout |
//! | --- | --- | --- |
//! | h80  | 8  | u32 magic 0x83740267, u16 command, u16 length |
//! | h95  | 8  | u16 magic 0x835a, u16 command, u32 length |
//! | h100 | 16 | u32 magic 0x8620ec20, u16 volume, u16 command, u32 length, u32 pad (0) |
//!
//! The kind is recognised from the magic, so decoding accepts any of them. A node sends h80 for
//! P_INITIAL_DATA/P_INITIAL_META/P_CONNECTION_FEATURES and h100 once protocol >= 100 is agreed.

use crate::WireError;

/// h80 magic (`DRBD_MAGIC`).
pub const MAGIC_H80: u32 = 0x8374_0267;
/// h95 magic (`DRBD_MAGIC_BIG`).
pub const MAGIC_H95: u16 = 0x835a;
/// h100 magic (`DRBD_MAGIC_100`).
pub const MAGIC_H100: u32 = 0x8620_ec20;

/// Which header layout a packet uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderKind {
    /// 8 bytes, 16-bit length, no volume: before agreement and protocol < 95.
    H80,
    /// 8 bytes, 32-bit length, no volume: protocol 95..99 for packets over 32 KiB.
    H95,
    /// 16 bytes, 32-bit length, volume number: protocol >= 100.
    H100,
}

impl HeaderKind {
    /// Encoded size of the header in bytes.
    pub fn len_bytes(self) -> usize {
        match self {
            HeaderKind::H80 | HeaderKind::H95 => 8,
            HeaderKind::H100 => 16,
        }
    }

    /// Largest payload length this header can describe.
    pub fn max_payload_bytes(self) -> u64 {
        match self {
            HeaderKind::H80 => u64::from(u16::MAX),
            HeaderKind::H95 | HeaderKind::H100 => u64::from(u32::MAX),
        }
    }
}

impl std::fmt::Display for HeaderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            HeaderKind::H80 => "h80",
            HeaderKind::H95 => "h95",
            HeaderKind::H100 => "h100",
        })
    }
}

/// A decoded packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The layout it was (or will be) encoded with.
    pub kind: HeaderKind,
    /// Volume number (always 0 for h80/h95).
    pub volume: u16,
    /// Raw command number (see [`crate::Command`]).
    pub command: u16,
    /// Payload bytes following the header.
    pub length: u32,
}

impl Header {
    /// Decodes a header from the start of `buf`. `Ok(None)` means more bytes are needed.
    pub fn decode(buf: &[u8]) -> Result<Option<Header>, WireError> {
        let Some(first) = buf.get(..4) else {
            return Ok(None);
        };
        let magic = u32::from_be_bytes([first[0], first[1], first[2], first[3]]);
        let kind = if magic == MAGIC_H80 {
            HeaderKind::H80
        } else if magic == MAGIC_H100 {
            HeaderKind::H100
        } else if (magic >> 16) as u16 == MAGIC_H95 {
            HeaderKind::H95
        } else {
            return Err(WireError::BadMagic { magic });
        };
        let Some(h) = buf.get(..kind.len_bytes()) else {
            return Ok(None);
        };
        let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
        let be32 = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let header = match kind {
            HeaderKind::H80 => Header {
                kind,
                volume: 0,
                command: be16(4),
                length: u32::from(be16(6)),
            },
            HeaderKind::H95 => Header {
                kind,
                volume: 0,
                command: be16(2),
                length: be32(4),
            },
            HeaderKind::H100 => {
                let pad = be32(12);
                if pad != 0 {
                    return Err(WireError::HeaderPadNotZero { pad });
                }
                Header {
                    kind,
                    volume: be16(4),
                    command: be16(6),
                    length: be32(8),
                }
            }
        };
        Ok(Some(header))
    }

    /// Appends the encoded header to `out`. Fails when the length or volume does not fit the kind.
    pub fn encode(&self, packet: &'static str, out: &mut Vec<u8>) -> Result<(), WireError> {
        if u64::from(self.length) > self.kind.max_payload_bytes() {
            return Err(WireError::TooLongForHeader {
                packet,
                length: self.length as usize,
                kind: self.kind,
                max: self.kind.max_payload_bytes(),
            });
        }
        if self.volume != 0 && self.kind != HeaderKind::H100 {
            return Err(WireError::VolumeNeedsH100 {
                volume: self.volume,
                kind: self.kind,
            });
        }
        match self.kind {
            HeaderKind::H80 => {
                out.extend_from_slice(&MAGIC_H80.to_be_bytes());
                out.extend_from_slice(&self.command.to_be_bytes());
                // Checked above: length <= u16::MAX.
                out.extend_from_slice(&(self.length as u16).to_be_bytes());
            }
            HeaderKind::H95 => {
                out.extend_from_slice(&MAGIC_H95.to_be_bytes());
                out.extend_from_slice(&self.command.to_be_bytes());
                out.extend_from_slice(&self.length.to_be_bytes());
            }
            HeaderKind::H100 => {
                out.extend_from_slice(&MAGIC_H100.to_be_bytes());
                out.extend_from_slice(&self.volume.to_be_bytes());
                out.extend_from_slice(&self.command.to_be_bytes());
                out.extend_from_slice(&self.length.to_be_bytes());
                out.extend_from_slice(&0u32.to_be_bytes());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_headers() {
        let mut out = Vec::new();
        Header {
            kind: HeaderKind::H80,
            volume: 0,
            command: 0xfff2,
            length: 0,
        }
        .encode("P_INITIAL_DATA", &mut out)
        .unwrap();
        // Seen from the kernel peer as the first bytes of its data socket.
        assert_eq!(
            out,
            [0x83, 0x74, 0x02, 0x67, 0xff, 0xf2, 0x00, 0x00],
            "h80 format changed"
        );
        out.clear();
        Header {
            kind: HeaderKind::H100,
            volume: 3,
            command: 0x0e,
            length: 4,
        }
        .encode("P_STATE", &mut out)
        .unwrap();
        assert_eq!(
            out,
            [0x86, 0x20, 0xec, 0x20, 0, 3, 0, 0x0e, 0, 0, 0, 4, 0, 0, 0, 0],
            "h100 format changed"
        );
        out.clear();
        Header {
            kind: HeaderKind::H95,
            volume: 0,
            command: 0,
            length: 0x10000,
        }
        .encode("P_DATA", &mut out)
        .unwrap();
        assert_eq!(out, [0x83, 0x5a, 0, 0, 0, 1, 0, 0], "h95 format changed");
    }

    #[test]
    fn decode_rejects_and_waits() {
        assert_eq!(Header::decode(&[0x83, 0x74, 0x02]), Ok(None));
        assert_eq!(
            Header::decode(&[0x86, 0x20, 0xec, 0x20, 0, 0, 0, 0]),
            Ok(None)
        );
        assert_eq!(
            Header::decode(&[1, 2, 3, 4, 5, 6, 7, 8]),
            Err(WireError::BadMagic { magic: 0x0102_0304 })
        );
        let mut h = vec![
            0x86, 0x20, 0xec, 0x20, 0, 0, 0, 0x13, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        assert_eq!(
            Header::decode(&h),
            Err(WireError::HeaderPadNotZero { pad: 1 })
        );
        h[15] = 0;
        assert_eq!(
            Header::decode(&h),
            Ok(Some(Header {
                kind: HeaderKind::H100,
                volume: 0,
                command: 0x13,
                length: 0
            }))
        );
    }

    #[test]
    fn encode_rejects_what_does_not_fit() {
        let mut out = Vec::new();
        let too_long = Header {
            kind: HeaderKind::H80,
            volume: 0,
            command: 0,
            length: 0x1_0000,
        };
        assert!(matches!(
            too_long.encode("P_DATA", &mut out),
            Err(WireError::TooLongForHeader { .. })
        ));
        let volume = Header {
            kind: HeaderKind::H80,
            volume: 1,
            command: 0,
            length: 0,
        };
        assert!(matches!(
            volume.encode("P_DATA", &mut out),
            Err(WireError::VolumeNeedsH100 { .. })
        ));
    }
}
