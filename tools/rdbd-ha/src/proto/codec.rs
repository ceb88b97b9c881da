//! Encoding and checked decoding of [`Heartbeat`] packets.

use super::{AuthMethod, Key};
use crate::config::MAX_NODE_NAME_BYTES;

/// `"RDHA"`.
pub const MAGIC: [u8; 4] = *b"RDHA";
/// The format version.
pub const VERSION: u8 = 1;
/// The fixed header's length.
pub const HEADER_BYTES: usize = 40;
/// The largest packet accepted or sent.
pub const MAX_PACKET_BYTES: usize = 256;

const _: () = assert!(HEADER_BYTES + MAX_NODE_NAME_BYTES + 32 <= MAX_PACKET_BYTES);

/// What the sender is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Started, still within initdead (it has not decided anything yet).
    Starting,
    /// Running normally.
    Running,
    /// Released every group and is going away (a clean shutdown): no fencing needed.
    Leaving,
}

impl Phase {
    fn code(self) -> u8 {
        match self {
            Phase::Starting => 0,
            Phase::Running => 1,
            Phase::Leaving => 2,
        }
    }
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => Phase::Starting,
            1 => Phase::Running,
            2 => Phase::Leaving,
            _ => return None,
        })
    }
}

/// Flag bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// The sender reaches at least one ping node (or has none configured).
    pub const PING_OK: u8 = 1;
    /// The sender is in standby (prefers the peer to run the groups).
    pub const STANDBY: u8 = 2;
    /// The sender is in maintenance mode (takes no decisions).
    pub const MAINTENANCE: u8 = 4;
    const KNOWN: u8 = 7;

    /// Whether `bit` is set.
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// One heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The sender's node name.
    pub node: String,
    /// The sender's incarnation: larger after each restart.
    pub generation: u64,
    /// Increases with every packet of one incarnation.
    pub seq: u64,
    /// What the sender is doing.
    pub phase: Phase,
    /// Flag bits.
    pub flags: Flags,
    /// Groups (bit = index) the sender runs or may have partly running.
    pub holds_mask: u32,
    /// Groups the sender could run now.
    pub eligible_mask: u32,
    /// Groups the sender asks to run (operator `takeover`).
    pub request_mask: u32,
}

/// Why a packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the header.
    #[error("{0} bytes is shorter than the {HEADER_BYTES}-byte header")]
    Short(usize),
    /// Longer than allowed.
    #[error("{0} bytes is longer than {MAX_PACKET_BYTES}")]
    Long(usize),
    /// Not an rdbd-ha packet.
    #[error("bad magic {0:02x?}")]
    Magic([u8; 4]),
    /// Another version.
    #[error("version {0}, expected {VERSION}")]
    Version(u8),
    /// The packet uses another method or key than ours.
    #[error("auth method {method} key {index}, expected {expected_method} key {expected_index}")]
    WrongKey {
        /// The packet's method code.
        method: u8,
        /// The packet's key index.
        index: u8,
        /// Our method.
        expected_method: AuthMethod,
        /// Our key index.
        expected_index: u8,
    },
    /// The node name length is out of range or past the end.
    #[error("node name length {0} out of range 1..={MAX_NODE_NAME_BYTES} or past the packet end")]
    NameLength(usize),
    /// The node name is not UTF-8.
    #[error("node name is not UTF-8")]
    NameUtf8,
    /// The packet length does not match header + name + MAC.
    #[error("packet has {got} bytes, header + name + MAC make {expected}")]
    Length {
        /// Received.
        got: usize,
        /// Expected.
        expected: usize,
    },
    /// The MAC does not match (forged, corrupted, or another secret).
    #[error("MAC mismatch (forged packet or a different secret)")]
    BadMac,
    /// Unknown phase code or flag bits.
    #[error("unknown phase {phase} or flags {flags:#x}")]
    Fields {
        /// The phase code.
        phase: u8,
        /// The flags.
        flags: u8,
    },
}

/// Encodes `hb` and appends its MAC.
pub fn encode(hb: &Heartbeat, key: &Key) -> Vec<u8> {
    let name = hb.node.as_bytes();
    assert!(
        !name.is_empty() && name.len() <= MAX_NODE_NAME_BYTES,
        "node name length checked by the configuration"
    );
    let mut p = Vec::with_capacity(HEADER_BYTES + name.len() + key.method.mac_bytes());
    p.extend_from_slice(&MAGIC);
    p.push(VERSION);
    p.push(key.method.code());
    p.push(key.index);
    p.push(name.len() as u8);
    p.extend_from_slice(&hb.generation.to_be_bytes());
    p.extend_from_slice(&hb.seq.to_be_bytes());
    p.push(hb.phase.code());
    p.push(hb.flags.0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&hb.holds_mask.to_be_bytes());
    p.extend_from_slice(&hb.eligible_mask.to_be_bytes());
    p.extend_from_slice(&hb.request_mask.to_be_bytes());
    debug_assert_eq!(p.len(), HEADER_BYTES);
    p.extend_from_slice(name);
    let mac = key.method.mac(&key.secret, &p);
    p.extend_from_slice(&mac);
    p
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

/// Checks and decodes a packet authenticated with `key`.
pub fn decode(packet: &[u8], key: &Key) -> Result<Heartbeat, PacketError> {
    if packet.len() < HEADER_BYTES {
        return Err(PacketError::Short(packet.len()));
    }
    if packet.len() > MAX_PACKET_BYTES {
        return Err(PacketError::Long(packet.len()));
    }
    let magic = [packet[0], packet[1], packet[2], packet[3]];
    if magic != MAGIC {
        return Err(PacketError::Magic(magic));
    }
    if packet[4] != VERSION {
        return Err(PacketError::Version(packet[4]));
    }
    if packet[5] != key.method.code() || packet[6] != key.index {
        return Err(PacketError::WrongKey {
            method: packet[5],
            index: packet[6],
            expected_method: key.method,
            expected_index: key.index,
        });
    }
    let name_len = usize::from(packet[7]);
    if name_len == 0 || name_len > MAX_NODE_NAME_BYTES {
        return Err(PacketError::NameLength(name_len));
    }
    let body_end = HEADER_BYTES + name_len;
    let expected = body_end + key.method.mac_bytes();
    if packet.len() != expected {
        return Err(PacketError::Length {
            got: packet.len(),
            expected,
        });
    }
    if !key
        .method
        .verify(&key.secret, &packet[..body_end], &packet[body_end..])
    {
        return Err(PacketError::BadMac);
    }
    let (phase_code, flags) = (packet[24], packet[25]);
    let phase = Phase::from_code(phase_code).ok_or(PacketError::Fields {
        phase: phase_code,
        flags,
    })?;
    if flags & !Flags::KNOWN != 0 {
        return Err(PacketError::Fields {
            phase: phase_code,
            flags,
        });
    }
    let node = std::str::from_utf8(&packet[HEADER_BYTES..body_end])
        .map_err(|_| PacketError::NameUtf8)?
        .to_string();
    Ok(Heartbeat {
        node,
        generation: be_u64(packet, 8),
        seq: be_u64(packet, 16),
        phase,
        flags: Flags(flags),
        holds_mask: be_u32(packet, 28),
        eligible_mask: be_u32(packet, 32),
        request_mask: be_u32(packet, 36),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(method: AuthMethod) -> Key {
        Key {
            method,
            index: 1,
            secret: b"HA_DB".to_vec(),
        }
    }

    fn sample() -> Heartbeat {
        Heartbeat {
            node: "ct74".into(),
            generation: 0x0102030405060708,
            seq: 9,
            phase: Phase::Running,
            flags: Flags(Flags::PING_OK),
            holds_mask: 1,
            eligible_mask: 3,
            request_mask: 0,
        }
    }

    #[test]
    fn golden_bytes() {
        let p = encode(&sample(), &key(AuthMethod::Crc));
        let header_and_name: Vec<u8> = [
            b"RDHA".as_slice(),
            &[1, 0, 1, 4],
            &[1, 2, 3, 4, 5, 6, 7, 8],
            &[0, 0, 0, 0, 0, 0, 0, 9],
            &[1, 1, 0, 0],
            &[0, 0, 0, 1],
            &[0, 0, 0, 3],
            &[0, 0, 0, 0],
            b"ct74",
        ]
        .concat();
        assert_eq!(
            &p[..44],
            &header_and_name[..],
            "heartbeat format changed: bump VERSION"
        );
        assert_eq!(&p[44..], &crc32c::crc32c(&header_and_name).to_be_bytes());
    }

    #[test]
    fn round_trip_each_method() {
        for m in [
            AuthMethod::Crc,
            AuthMethod::Sha1,
            AuthMethod::Sha256,
            AuthMethod::Md5,
        ] {
            let p = encode(&sample(), &key(m));
            assert_eq!(p.len(), HEADER_BYTES + 4 + m.mac_bytes());
            assert_eq!(decode(&p, &key(m)).unwrap(), sample());
        }
    }

    #[test]
    fn forged_and_corrupt_packets_rejected() {
        let good = key(AuthMethod::Sha1);
        let mut other = good.clone();
        other.secret = b"not the secret".to_vec();
        let forged = encode(&sample(), &other);
        assert_eq!(decode(&forged, &good), Err(PacketError::BadMac));
        let mut p = encode(&sample(), &good);
        p[30] ^= 1; // claim other groups
        assert_eq!(decode(&p, &good), Err(PacketError::BadMac));
        let p = encode(&sample(), &key(AuthMethod::Md5));
        assert!(matches!(
            decode(&p, &good),
            Err(PacketError::WrongKey { .. })
        ));
        let p = encode(&sample(), &good);
        assert!(matches!(
            decode(&p[..p.len() - 1], &good),
            Err(PacketError::Length { .. })
        ));
        assert_eq!(decode(&p[..10], &good), Err(PacketError::Short(10)));
        assert_eq!(decode(&[0u8; 300], &good), Err(PacketError::Long(300)));
        let mut p = encode(&sample(), &good);
        p[7] = 200;
        assert_eq!(decode(&p, &good), Err(PacketError::NameLength(200)));
    }

    proptest! {
        #[test]
        fn round_trip(node in "[a-z0-9.-]{1,64}", generation: u64, seq: u64, flags in 0u8..8,
                      holds: u32, eligible: u32, request: u32, phase in 0u8..3) {
            let hb = Heartbeat { node, generation, seq, phase: Phase::from_code(phase).unwrap(),
                flags: Flags(flags), holds_mask: holds, eligible_mask: eligible, request_mask: request };
            let k = key(AuthMethod::Sha256);
            prop_assert_eq!(decode(&encode(&hb, &k), &k).unwrap(), hb);
        }

        #[test]
        fn random_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes, &key(AuthMethod::Sha256));
        }
    }
}
