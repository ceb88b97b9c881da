//! DRBD 8.4 command numbers (`enum drbd_packet`) and the payload length each command may have.

use crate::{DRBD_SOCKET_BUFFER_SIZE, MAX_DIGEST_BYTES, MAX_PAYLOAD_BYTES};

macro_rules! commands {
    ($( $(#[$m:meta])* $variant:ident = $num:literal, $name:literal, $min:expr, $max:expr; )+) => {
        /// A DRBD 8.4 packet command (`enum drbd_packet` in drbd_protocol.h).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum Command {
            $( $(#[$m])* $variant = $num, )+
        }

        impl Command {
            /// Every command, in numeric order.
            pub const ALL: &'static [Command] = &[$(Command::$variant),+];

            /// The command with this number, if DRBD 8.4 defines it.
            pub fn from_u16(num: u16) -> Option<Command> {
                match num {
                    $( $num => Some(Command::$variant), )+
                    _ => None,
                }
            }

            /// DRBD's name of the packet, as the kernel logs it with a `P_` prefix.
            pub fn name(self) -> &'static str {
                match self {
                    $( Command::$variant => $name, )+
                }
            }

            /// The smallest and largest payload length (bytes after the header) of this command.
            pub fn payload_bounds(self) -> (usize, usize) {
                match self {
                    $( Command::$variant => ($min, $max), )+
                }
            }
        }
    };
}

const P_DATA_LEN: usize = 24;
const BLOCK_LEN: usize = 24;
const PROTOCOL_LEN: usize = 24;

commands! {
    /// Replicated write: `p_data` + data.
    Data = 0x00, "P_DATA", P_DATA_LEN, MAX_PAYLOAD_BYTES;
    /// Reply to P_DATA_REQUEST: `p_data` + data.
    DataReply = 0x01, "P_DATA_REPLY", P_DATA_LEN, MAX_PAYLOAD_BYTES;
    /// Reply to P_RS_DATA_REQUEST: `p_data` + data.
    RsDataReply = 0x02, "P_RS_DATA_REPLY", P_DATA_LEN, MAX_PAYLOAD_BYTES;
    /// Closes a write epoch: `p_barrier`.
    Barrier = 0x03, "P_BARRIER", 8, 8;
    /// Plain bitmap words (little-endian u64).
    Bitmap = 0x04, "P_BITMAP", 0, DRBD_SOCKET_BUFFER_SIZE;
    /// Obsolete (protocol < 96).
    BecomeSyncTarget = 0x05, "P_BECOME_SYNC_TARGET", 0, 0;
    /// Obsolete (protocol < 96).
    BecomeSyncSource = 0x06, "P_BECOME_SYNC_SOURCE", 0, 0;
    /// Unplug hint, no payload.
    UnplugRemote = 0x07, "P_UNPLUG_REMOTE", 0, 0;
    /// Read request (diskless primary): `p_block_req`.
    DataRequest = 0x08, "P_DATA_REQUEST", BLOCK_LEN, BLOCK_LEN;
    /// Resync read request: `p_block_req`.
    RsDataRequest = 0x09, "P_RS_DATA_REQUEST", BLOCK_LEN, BLOCK_LEN;
    /// Sync parameters before protocol 89 (unsupported).
    SyncParam = 0x0a, "P_SYNC_PARAM", 0, 0;
    /// Connection settings: `p_protocol` + integrity_alg.
    Protocol = 0x0b, "P_PROTOCOL", PROTOCOL_LEN, PROTOCOL_LEN + 64;
    /// The generation UUIDs: `p_uuids`.
    Uuids = 0x0c, "P_UUIDS", 48, 48;
    /// Device sizes: `p_sizes` (+ `o_qlim` with DRBD_FF_WSAME).
    Sizes = 0x0d, "P_SIZES", 32, 56;
    /// The sender's state: `p_state`.
    State = 0x0e, "P_STATE", 4, 4;
    /// The new bitmap UUID at resync start: `p_rs_uuid`.
    SyncUuid = 0x0f, "P_SYNC_UUID", 8, 8;
    /// cram-hmac challenge (64 random bytes; the kernel accepts up to 128).
    AuthChallenge = 0x10, "P_AUTH_CHALLENGE", 64, 128;
    /// cram-hmac response (the HMAC digest).
    AuthResponse = 0x11, "P_AUTH_RESPONSE", 1, 64;
    /// Cluster-wide state change request: `p_req_state`.
    StateChgReq = 0x12, "P_STATE_CHG_REQ", 8, 8;
    /// Keep-alive on the meta socket.
    Ping = 0x13, "P_PING", 0, 0;
    /// Answer to P_PING.
    PingAck = 0x14, "P_PING_ACK", 0, 0;
    /// Protocol B ack: `p_block_ack`.
    RecvAck = 0x15, "P_RECV_ACK", BLOCK_LEN, BLOCK_LEN;
    /// Protocol C ack: `p_block_ack`.
    WriteAck = 0x16, "P_WRITE_ACK", BLOCK_LEN, BLOCK_LEN;
    /// Resync write done (sets in sync): `p_block_ack`.
    RsWriteAck = 0x17, "P_RS_WRITE_ACK", BLOCK_LEN, BLOCK_LEN;
    /// Two-primaries conflict: `p_block_ack`.
    Superseded = 0x18, "P_SUPERSEDED", BLOCK_LEN, BLOCK_LEN;
    /// Write failed on the peer: `p_block_ack`.
    NegAck = 0x19, "P_NEG_ACK", BLOCK_LEN, BLOCK_LEN;
    /// Read failed on the peer: `p_block_ack`.
    NegDReply = 0x1a, "P_NEG_DREPLY", BLOCK_LEN, BLOCK_LEN;
    /// Resync read failed on the peer: `p_block_ack`.
    NegRsDReply = 0x1b, "P_NEG_RS_DREPLY", BLOCK_LEN, BLOCK_LEN;
    /// Epoch written: `p_barrier_ack`.
    BarrierAck = 0x1c, "P_BARRIER_ACK", 8, 8;
    /// Answer to P_STATE_CHG_REQ: `p_req_state_reply`.
    StateChgReply = 0x1d, "P_STATE_CHG_REPLY", 4, 4;
    /// Online-verify request: `p_block_req`.
    OvRequest = 0x1e, "P_OV_REQUEST", BLOCK_LEN, BLOCK_LEN;
    /// Online-verify reply: `p_block_req` + digest.
    OvReply = 0x1f, "P_OV_REPLY", BLOCK_LEN + 1, BLOCK_LEN + MAX_DIGEST_BYTES;
    /// Online-verify result: `p_block_ack` (block_id ID_IN_SYNC / ID_OUT_OF_SYNC).
    OvResult = 0x20, "P_OV_RESULT", BLOCK_LEN, BLOCK_LEN;
    /// Checksum-based resync request: `p_block_req` + digest.
    CsumRsRequest = 0x21, "P_CSUM_RS_REQUEST", BLOCK_LEN + 1, BLOCK_LEN + MAX_DIGEST_BYTES;
    /// Checksum matched, block is in sync: `p_block_ack`.
    RsIsInSync = 0x22, "P_RS_IS_IN_SYNC", BLOCK_LEN, BLOCK_LEN;
    /// Sync parameters (protocol >= 95 layout `p_rs_param_95`).
    SyncParam89 = 0x23, "P_SYNC_PARAM89", 148, 148;
    /// RLE+VLI encoded bitmap: `p_compressed_bm`.
    CompressedBitmap = 0x24, "P_COMPRESSED_BITMAP", 1, DRBD_SOCKET_BUFFER_SIZE;
    /// Delay probe: `p_delay_probe93`.
    DelayProbe = 0x27, "P_DELAY_PROBE", 8, 8;
    /// Ahead mode: mark a block out of sync: `p_block_desc`.
    OutOfSync = 0x28, "P_OUT_OF_SYNC", 16, 16;
    /// Cancel a resync request: `p_block_ack`.
    RsCancel = 0x29, "P_RS_CANCEL", BLOCK_LEN, BLOCK_LEN;
    /// Connection-wide state change request: `p_req_state`.
    ConnStChgReq = 0x2a, "P_CONN_ST_CHG_REQ", 8, 8;
    /// Answer to P_CONN_ST_CHG_REQ: `p_req_state_reply`.
    ConnStChgReply = 0x2b, "P_CONN_ST_CHG_REPLY", 4, 4;
    /// Retry a conflicting write: `p_block_ack`.
    RetryWrite = 0x2c, "P_RETRY_WRITE", BLOCK_LEN, BLOCK_LEN;
    /// Changed connection settings: `p_protocol` + integrity_alg.
    ProtocolUpdate = 0x2d, "P_PROTOCOL_UPDATE", PROTOCOL_LEN, PROTOCOL_LEN + 64;
    /// Discard: `p_trim`.
    Trim = 0x31, "P_TRIM", 28, 28;
    /// Thin resync request (DRBD_FF_THIN_RESYNC): `p_block_req`.
    RsThinReq = 0x32, "P_RS_THIN_REQ", BLOCK_LEN, BLOCK_LEN;
    /// Thin resync: the block is all zeroes: `p_block_desc`.
    RsDeallocated = 0x33, "P_RS_DEALLOCATED", 16, 16;
    /// WRITE_SAME (unsupported here).
    Wsame = 0x34, "P_WSAME", 28, MAX_PAYLOAD_BYTES;
    /// Write zeroes: `p_trim`.
    Zeroes = 0x36, "P_ZEROES", 28, 28;
    /// First packet on the meta socket, h80, empty.
    InitialMeta = 0xfff1, "P_INITIAL_META", 0, 0;
    /// First packet on the data socket, h80, empty.
    InitialData = 0xfff2, "P_INITIAL_DATA", 0, 0;
    /// Protocol version negotiation: `p_connection_features`.
    ConnectionFeatures = 0xfffe, "P_CONNECTION_FEATURES", 72, 72;
}

impl Command {
    /// The command number on the wire.
    pub fn to_u16(self) -> u16 {
        self as u16
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_bounds_are_ordered() {
        for &c in Command::ALL {
            assert_eq!(Command::from_u16(c.to_u16()), Some(c));
            let (min, max) = c.payload_bounds();
            assert!(min <= max, "{c}");
            assert!(c.name().starts_with("P_"));
        }
        assert_eq!(Command::from_u16(0x25), None);
        assert_eq!(Command::ConnectionFeatures.to_u16(), 0xfffe);
        assert_eq!(Command::Zeroes.to_u16(), 0x36);
    }
}
