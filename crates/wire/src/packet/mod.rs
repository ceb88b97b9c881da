//! The packet enum: one variant per DRBD 8.4 packet rdbd uses, each with a typed payload, and
//! the payload codec (the part after the header). Fixed-size packets must have exactly their
//! size, as the kernel demands; variable ones are bounded by [`Command::payload_bounds`].

mod bitmap;
mod block;
mod data;
mod handshake;
pub(crate) mod reader;

use bytes::Bytes;

pub use bitmap::{CompressedBitmap, PlainBitmap, RLE_VLI_BITS};
pub use block::{
    Barrier, BarrierAck, BlockAck, BlockDesc, BlockRequest, DelayProbe, DigestRequest, ID_IN_SYNC,
    ID_OUT_OF_SYNC, ID_SYNCER,
};
pub use data::{DataHeader, DataPacket, DpFlags, TrimPacket, DATA_HEADER_BYTES};
pub use handshake::{
    AfterSbPolicy, ConnectionFeatures, ProtocolParams, QueueLimits, Sizes, StateChangeReply,
    SyncParams, Uuids, ALG_NAME_BYTES, CF_DISCARD_MY_DATA, CF_DRY_RUN, DDSF_FORCED, DDSF_NO_RESYNC,
    FF_THIN_RESYNC, FF_TRIM, FF_WSAME, FF_WZEROES, PROTOCOL_VERSION, PROTOCOL_VERSION_MIN_84,
    UUID_FLAG_CRASHED_PRIMARY, UUID_FLAG_DISCARD_MY_DATA, UUID_FLAG_INCONSISTENT,
    UUID_FLAG_SKIP_INITIAL_SYNC,
};

use crate::state::{DrbdState, StateBits, StateChange};
use crate::{Command, WireError};
use reader::Reader;

/// A DRBD packet with its payload decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// P_DATA: a replicated write.
    Data(DataPacket),
    /// P_DATA_REPLY: answer to P_DATA_REQUEST.
    DataReply(DataPacket),
    /// P_RS_DATA_REPLY: answer to P_RS_DATA_REQUEST.
    RsDataReply(DataPacket),
    /// P_BARRIER: end of a write epoch.
    Barrier(Barrier),
    /// P_BITMAP: plain bitmap words.
    Bitmap(PlainBitmap),
    /// P_UNPLUG_REMOTE.
    UnplugRemote,
    /// P_DATA_REQUEST.
    DataRequest(BlockRequest),
    /// P_RS_DATA_REQUEST.
    RsDataRequest(BlockRequest),
    /// P_PROTOCOL.
    Protocol(ProtocolParams),
    /// P_UUIDS.
    Uuids(Uuids),
    /// P_SIZES.
    Sizes(Sizes),
    /// P_STATE.
    State(DrbdState),
    /// P_SYNC_UUID: the new bitmap UUID.
    SyncUuid {
        /// The UUID.
        uuid: u64,
    },
    /// P_AUTH_CHALLENGE: random bytes to be HMACed by the peer.
    AuthChallenge(Vec<u8>),
    /// P_AUTH_RESPONSE: the HMAC of our challenge.
    AuthResponse(Vec<u8>),
    /// P_STATE_CHG_REQ.
    StateChgReq(StateChange),
    /// P_PING.
    Ping,
    /// P_PING_ACK.
    PingAck,
    /// P_RECV_ACK.
    RecvAck(BlockAck),
    /// P_WRITE_ACK.
    WriteAck(BlockAck),
    /// P_RS_WRITE_ACK.
    RsWriteAck(BlockAck),
    /// P_SUPERSEDED.
    Superseded(BlockAck),
    /// P_NEG_ACK.
    NegAck(BlockAck),
    /// P_NEG_DREPLY.
    NegDReply(BlockAck),
    /// P_NEG_RS_DREPLY.
    NegRsDReply(BlockAck),
    /// P_BARRIER_ACK.
    BarrierAck(BarrierAck),
    /// P_STATE_CHG_REPLY.
    StateChgReply(StateChangeReply),
    /// P_OV_REQUEST.
    OvRequest(BlockRequest),
    /// P_OV_REPLY.
    OvReply(DigestRequest),
    /// P_OV_RESULT.
    OvResult(BlockAck),
    /// P_CSUM_RS_REQUEST.
    CsumRsRequest(DigestRequest),
    /// P_RS_IS_IN_SYNC.
    RsIsInSync(BlockAck),
    /// P_SYNC_PARAM89.
    SyncParam89(SyncParams),
    /// P_COMPRESSED_BITMAP.
    CompressedBitmap(CompressedBitmap),
    /// P_DELAY_PROBE.
    DelayProbe(DelayProbe),
    /// P_OUT_OF_SYNC.
    OutOfSync(BlockDesc),
    /// P_RS_CANCEL.
    RsCancel(BlockAck),
    /// P_CONN_ST_CHG_REQ.
    ConnStChgReq(StateChange),
    /// P_CONN_ST_CHG_REPLY.
    ConnStChgReply(StateChangeReply),
    /// P_RETRY_WRITE.
    RetryWrite(BlockAck),
    /// P_PROTOCOL_UPDATE.
    ProtocolUpdate(ProtocolParams),
    /// P_TRIM.
    Trim(TrimPacket),
    /// P_RS_THIN_REQ.
    RsThinReq(BlockRequest),
    /// P_RS_DEALLOCATED.
    RsDeallocated(BlockDesc),
    /// P_ZEROES.
    Zeroes(TrimPacket),
    /// P_INITIAL_META.
    InitialMeta,
    /// P_INITIAL_DATA.
    InitialData,
    /// P_CONNECTION_FEATURES.
    ConnectionFeatures(ConnectionFeatures),
}

impl Packet {
    /// The command this packet is sent as.
    pub fn command(&self) -> Command {
        use Packet as P;
        match self {
            P::Data(_) => Command::Data,
            P::DataReply(_) => Command::DataReply,
            P::RsDataReply(_) => Command::RsDataReply,
            P::Barrier(_) => Command::Barrier,
            P::Bitmap(_) => Command::Bitmap,
            P::UnplugRemote => Command::UnplugRemote,
            P::DataRequest(_) => Command::DataRequest,
            P::RsDataRequest(_) => Command::RsDataRequest,
            P::Protocol(_) => Command::Protocol,
            P::Uuids(_) => Command::Uuids,
            P::Sizes(_) => Command::Sizes,
            P::State(_) => Command::State,
            P::SyncUuid { .. } => Command::SyncUuid,
            P::AuthChallenge(_) => Command::AuthChallenge,
            P::AuthResponse(_) => Command::AuthResponse,
            P::StateChgReq(_) => Command::StateChgReq,
            P::Ping => Command::Ping,
            P::PingAck => Command::PingAck,
            P::RecvAck(_) => Command::RecvAck,
            P::WriteAck(_) => Command::WriteAck,
            P::RsWriteAck(_) => Command::RsWriteAck,
            P::Superseded(_) => Command::Superseded,
            P::NegAck(_) => Command::NegAck,
            P::NegDReply(_) => Command::NegDReply,
            P::NegRsDReply(_) => Command::NegRsDReply,
            P::BarrierAck(_) => Command::BarrierAck,
            P::StateChgReply(_) => Command::StateChgReply,
            P::OvRequest(_) => Command::OvRequest,
            P::OvReply(_) => Command::OvReply,
            P::OvResult(_) => Command::OvResult,
            P::CsumRsRequest(_) => Command::CsumRsRequest,
            P::RsIsInSync(_) => Command::RsIsInSync,
            P::SyncParam89(_) => Command::SyncParam89,
            P::CompressedBitmap(_) => Command::CompressedBitmap,
            P::DelayProbe(_) => Command::DelayProbe,
            P::OutOfSync(_) => Command::OutOfSync,
            P::RsCancel(_) => Command::RsCancel,
            P::ConnStChgReq(_) => Command::ConnStChgReq,
            P::ConnStChgReply(_) => Command::ConnStChgReply,
            P::RetryWrite(_) => Command::RetryWrite,
            P::ProtocolUpdate(_) => Command::ProtocolUpdate,
            P::Trim(_) => Command::Trim,
            P::RsThinReq(_) => Command::RsThinReq,
            P::RsDeallocated(_) => Command::RsDeallocated,
            P::Zeroes(_) => Command::Zeroes,
            P::InitialMeta => Command::InitialMeta,
            P::InitialData => Command::InitialData,
            P::ConnectionFeatures(_) => Command::ConnectionFeatures,
        }
    }

    /// Decodes the payload of `command`. `payload` is exactly the bytes after the header.
    pub fn decode(command: Command, payload: Bytes) -> Result<Packet, WireError> {
        use Packet as P;
        let name = command.name();
        let length = payload.len();
        let (min, max) = command.payload_bounds();
        if length < min {
            return Err(WireError::ShortPayload {
                packet: name,
                length,
                need: min,
            });
        }
        if length > max {
            return Err(WireError::PayloadTooLong {
                packet: name,
                length: length as u64,
                limit: max as u64,
            });
        }
        let mut r = Reader::new(&payload, name);
        let r = &mut r;
        let packet = match command {
            Command::Data | Command::DataReply | Command::RsDataReply => {
                let header = DataHeader::read(r)?;
                let data = DataPacket {
                    header,
                    payload: payload.slice(r.pos()..),
                };
                match command {
                    Command::Data => P::Data(data),
                    Command::DataReply => P::DataReply(data),
                    _ => P::RsDataReply(data),
                }
            }
            Command::Barrier => {
                let barrier = r.u32()?;
                let _pad = r.u32()?;
                P::Barrier(Barrier { barrier })
            }
            Command::Bitmap => P::Bitmap(PlainBitmap::read(r, length)?),
            Command::UnplugRemote => P::UnplugRemote,
            Command::DataRequest => P::DataRequest(BlockRequest::read(r)?),
            Command::RsDataRequest => P::RsDataRequest(BlockRequest::read(r)?),
            Command::OvRequest => P::OvRequest(BlockRequest::read(r)?),
            Command::RsThinReq => P::RsThinReq(BlockRequest::read(r)?),
            Command::Protocol => P::Protocol(ProtocolParams::read(r, name)?),
            Command::ProtocolUpdate => P::ProtocolUpdate(ProtocolParams::read(r, name)?),
            Command::Uuids => P::Uuids(Uuids::read(r)?),
            Command::Sizes => P::Sizes(Sizes::read(r, length)?),
            Command::State => P::State(DrbdState::from_bits(StateBits(r.u32()?), name)?),
            Command::SyncUuid => P::SyncUuid { uuid: r.u64()? },
            Command::AuthChallenge => P::AuthChallenge(r.rest().to_vec()),
            Command::AuthResponse => P::AuthResponse(r.rest().to_vec()),
            Command::StateChgReq => P::StateChgReq(read_state_change(r)?),
            Command::ConnStChgReq => P::ConnStChgReq(read_state_change(r)?),
            Command::StateChgReply => P::StateChgReply(StateChangeReply { retcode: r.i32()? }),
            Command::ConnStChgReply => P::ConnStChgReply(StateChangeReply { retcode: r.i32()? }),
            Command::Ping => P::Ping,
            Command::PingAck => P::PingAck,
            Command::RecvAck => P::RecvAck(BlockAck::read(r)?),
            Command::WriteAck => P::WriteAck(BlockAck::read(r)?),
            Command::RsWriteAck => P::RsWriteAck(BlockAck::read(r)?),
            Command::Superseded => P::Superseded(BlockAck::read(r)?),
            Command::NegAck => P::NegAck(BlockAck::read(r)?),
            Command::NegDReply => P::NegDReply(BlockAck::read(r)?),
            Command::NegRsDReply => P::NegRsDReply(BlockAck::read(r)?),
            Command::OvResult => P::OvResult(BlockAck::read(r)?),
            Command::RsIsInSync => P::RsIsInSync(BlockAck::read(r)?),
            Command::RsCancel => P::RsCancel(BlockAck::read(r)?),
            Command::RetryWrite => P::RetryWrite(BlockAck::read(r)?),
            Command::BarrierAck => P::BarrierAck(BarrierAck {
                barrier: r.u32()?,
                set_size: r.u32()?,
            }),
            Command::OvReply | Command::CsumRsRequest => {
                let request = BlockRequest::read(r)?;
                let d = DigestRequest {
                    request,
                    digest: r.rest().to_vec(),
                };
                if command == Command::OvReply {
                    P::OvReply(d)
                } else {
                    P::CsumRsRequest(d)
                }
            }
            Command::SyncParam89 => P::SyncParam89(SyncParams::read(r)?),
            Command::CompressedBitmap => P::CompressedBitmap(CompressedBitmap::read(r)?),
            Command::DelayProbe => P::DelayProbe(DelayProbe {
                seq_num: r.u32()?,
                offset_us: r.u32()?,
            }),
            Command::OutOfSync => P::OutOfSync(BlockDesc::read(r)?),
            Command::RsDeallocated => P::RsDeallocated(BlockDesc::read(r)?),
            Command::Trim | Command::Zeroes => {
                let t = TrimPacket {
                    header: DataHeader::read(r)?,
                    size_bytes: r.u32()?,
                };
                if command == Command::Trim {
                    P::Trim(t)
                } else {
                    P::Zeroes(t)
                }
            }
            Command::InitialMeta => P::InitialMeta,
            Command::InitialData => P::InitialData,
            Command::ConnectionFeatures => P::ConnectionFeatures(ConnectionFeatures::read(r)?),
            Command::BecomeSyncTarget
            | Command::BecomeSyncSource
            | Command::SyncParam
            | Command::Wsame => {
                return Err(WireError::UnsupportedCommand {
                    packet: name,
                    command: command.to_u16(),
                });
            }
        };
        Ok(packet)
    }

    /// Appends the payload to `out`, except the bulk data of P_DATA / P_DATA_REPLY /
    /// P_RS_DATA_REPLY, which is returned so that it can be sent without copying (writev).
    pub fn encode_payload(&self, out: &mut Vec<u8>) -> Result<Option<&Bytes>, WireError> {
        use Packet as P;
        let start = out.len();
        let mut bulk = None;
        match self {
            P::Data(d) | P::DataReply(d) | P::RsDataReply(d) => {
                d.header.write(out);
                bulk = Some(&d.payload);
            }
            P::Barrier(b) => {
                out.extend_from_slice(&b.barrier.to_be_bytes());
                out.extend_from_slice(&0u32.to_be_bytes());
            }
            P::Bitmap(b) => b.write(out),
            P::UnplugRemote | P::Ping | P::PingAck | P::InitialMeta | P::InitialData => {}
            P::DataRequest(q) | P::RsDataRequest(q) | P::OvRequest(q) | P::RsThinReq(q) => {
                q.write(out)
            }
            P::Protocol(p) | P::ProtocolUpdate(p) => p.write(out)?,
            P::Uuids(u) => u.write(out),
            P::Sizes(s) => s.write(out),
            P::State(s) => out.extend_from_slice(&s.to_bits().0.to_be_bytes()),
            P::SyncUuid { uuid } => out.extend_from_slice(&uuid.to_be_bytes()),
            P::AuthChallenge(b) | P::AuthResponse(b) => out.extend_from_slice(b),
            P::StateChgReq(c) | P::ConnStChgReq(c) => {
                out.extend_from_slice(&c.mask.0.to_be_bytes());
                out.extend_from_slice(&c.val.0.to_be_bytes());
            }
            P::StateChgReply(r) | P::ConnStChgReply(r) => {
                out.extend_from_slice(&r.retcode.to_be_bytes())
            }
            P::RecvAck(a)
            | P::WriteAck(a)
            | P::RsWriteAck(a)
            | P::Superseded(a)
            | P::NegAck(a)
            | P::NegDReply(a)
            | P::NegRsDReply(a)
            | P::OvResult(a)
            | P::RsIsInSync(a)
            | P::RsCancel(a)
            | P::RetryWrite(a) => a.write(out),
            P::BarrierAck(b) => {
                out.extend_from_slice(&b.barrier.to_be_bytes());
                out.extend_from_slice(&b.set_size.to_be_bytes());
            }
            P::OvReply(d) | P::CsumRsRequest(d) => {
                d.request.write(out);
                out.extend_from_slice(&d.digest);
            }
            P::SyncParam89(s) => s.write(out)?,
            P::CompressedBitmap(c) => c.write(out),
            P::DelayProbe(d) => {
                out.extend_from_slice(&d.seq_num.to_be_bytes());
                out.extend_from_slice(&d.offset_us.to_be_bytes());
            }
            P::OutOfSync(d) | P::RsDeallocated(d) => d.write(out),
            P::Trim(t) | P::Zeroes(t) => {
                t.header.write(out);
                out.extend_from_slice(&t.size_bytes.to_be_bytes());
            }
            P::ConnectionFeatures(f) => f.write(out),
        }
        let command = self.command();
        let length = out.len() - start + bulk.map_or(0, |b| b.len());
        let (min, max) = command.payload_bounds();
        if length < min {
            return Err(WireError::ShortPayload {
                packet: command.name(),
                length,
                need: min,
            });
        }
        if length > max {
            return Err(WireError::PayloadTooLong {
                packet: command.name(),
                length: length as u64,
                limit: max as u64,
            });
        }
        Ok(bulk)
    }
}

fn read_state_change(r: &mut Reader<'_>) -> Result<StateChange, WireError> {
    Ok(StateChange {
        mask: StateBits(r.u32()?),
        val: StateBits(r.u32()?),
    })
}
