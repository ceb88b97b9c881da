//! The session's packet dispatch: every frame from the data and meta sockets, by
//! packet and connection state, to the handler that owns it.

use super::*;

impl Session<'_> {
    pub(super) async fn on_frame(&mut self, sock: Sock, packet: Packet) -> Result<(), End> {
        let ctx = self.ctx;
        if sock == Sock::Meta {
            self.liveness.on_meta_received(now_ms(self.started));
        }
        let cs = ctx.resource.state().cstate;
        match packet {
            Packet::Ping => self.send_meta(Packet::PingAck),
            Packet::PingAck => self.liveness.on_ping_ack(now_ms(self.started)),
            Packet::RecvAck(a) => self.on_ack(AckKind::Recv, a.block_id),
            Packet::WriteAck(a) => self.on_ack(AckKind::Write, a.block_id),
            Packet::NegAck(a) => {
                if a.block_id == ID_SYNCER {
                    tracing::warn!(resource = %ctx.name(), sector = a.sector, "the peer failed to write resync data");
                } else {
                    tracing::warn!(resource = %ctx.name(), sector = a.sector, size = a.size_bytes, "the peer failed to write; blocks marked out of sync");
                    self.on_ack(AckKind::Neg, a.block_id);
                }
            }
            Packet::RsWriteAck(a) => {
                if a.block_id == ID_SYNCER {
                    ctx.resource
                        .meta
                        .set_in_sync(a.sector, u64::from(a.size_bytes) / 512);
                } else {
                    self.on_ack(AckKind::RsWrite, a.block_id);
                }
            }
            // Reads of a diskless Primary (crate::peer::remote_read).
            Packet::NegDReply(a) if ctx.link.complete_remote_read(a.block_id, None) => {}
            Packet::DataReply(d) => {
                if !ctx
                    .link
                    .complete_remote_read(d.header.block_id, Some(d.payload))
                {
                    tracing::warn!(resource = %ctx.name(), sector = d.header.sector, "a P_DATA_REPLY no read waits for");
                }
            }
            Packet::DataRequest(r) => {
                crate::peer::remote_read::serve_data_request(ctx, &self.data, &self.meta, r)
            }
            Packet::NegRsDReply(a) | Packet::NegDReply(a) => {
                tracing::warn!(resource = %ctx.name(), sector = a.sector, "the peer could not read resync data; the blocks stay out of sync");
                if let SyncPhase::Target(pump) = &mut self.sync {
                    pump.on_reply(ctx, u64::from(a.size_bytes), false);
                }
            }
            Packet::BarrierAck(b) => {
                let failed = ctx
                    .link
                    .barrier_ack(b.barrier, b.set_size)
                    .map_err(|e| self.protocol_error(e))?;
                for (sector, size) in failed {
                    ctx.resource
                        .meta
                        .set_out_of_sync(sector * 512, u64::from(size));
                }
            }
            Packet::StateChgReply(r) => {
                if self.pending_verify.is_some() {
                    self.on_verify_reply(r.retcode);
                } else if self.pending_invalidate.is_some() {
                    self.on_invalidate_reply(r.retcode).await;
                } else if let Some(tx) = self.pending_role.take() {
                    let _ = tx.send(if r.is_success() {
                        Ok(())
                    } else {
                        Err((r.retcode, peer_state::retcode_text(r.retcode).into()))
                    });
                }
            }
            Packet::ConnStChgReply(r) => self.on_conn_state_reply(r).await?,
            Packet::Data(d) => {
                if ctx.resource.state().role == Role::Primary {
                    return Err(self.protocol_error("the peer sent application data while this node is Primary (dual-primary is not supported)".into()));
                }
                ctx.resource
                    .io
                    .net_received_bytes
                    .fetch_add(d.payload.len() as u64, Ordering::Relaxed);
                self.receiver.on_data(
                    ctx,
                    &self.meta,
                    d.header,
                    WriteKind::Data(d.payload),
                    &self.events_tx,
                );
            }
            Packet::Trim(t) => {
                if ctx.resource.state().role == Role::Primary {
                    return Err(self.protocol_error(
                        "the peer sent a discard while this node is Primary".into(),
                    ));
                }
                self.receiver.on_data(
                    ctx,
                    &self.meta,
                    t.header,
                    WriteKind::Zeroes(t.size_bytes),
                    &self.events_tx,
                );
            }
            Packet::Barrier(b) => self.receiver.on_barrier(ctx, b.barrier).await,
            Packet::RsDataRequest(r) => {
                if !matches!(cs, ConnState::SyncSource | ConnState::PausedSyncS) {
                    return Err(self.protocol_error(format!("P_RS_DATA_REQUEST while {cs}")));
                }
                serve(ctx, &self.data, &self.meta, r);
            }
            Packet::RsDataReply(d) => {
                if !matches!(self.sync, SyncPhase::Target(_)) {
                    return Err(self.protocol_error(format!("P_RS_DATA_REPLY while {cs}")));
                }
                ctx.resource
                    .io
                    .net_received_bytes
                    .fetch_add(d.payload.len() as u64, Ordering::Relaxed);
                self.receiver
                    .on_rs_reply(ctx, &self.meta, d.header, d.payload, &self.events_tx);
            }
            Packet::OutOfSync(d) => crate::peer::out_of_sync::on_out_of_sync(ctx, cs, d),
            p @ (Packet::Bitmap(_) | Packet::CompressedBitmap(_)) => self.on_bitmap(&p).await?,
            Packet::SyncUuid { uuid } => self.on_sync_uuid(uuid).await?,
            Packet::State(s) => self.on_peer_state(s).await?,
            Packet::Uuids(u) => {
                if cs >= ConnState::Connected && (u.current & !1) != (self.peer.uuids.current & !1)
                {
                    self.consider_resync = true;
                }
                self.peer.uuids = u;
                ctx.peer_uuids(&u);
            }
            Packet::Sizes(s) => self.on_sizes(s).await,
            Packet::ProtocolUpdate(p) => self.on_protocol_update(p)?,
            Packet::SyncParam89(s) => {
                self.adopt_peer_sync_params(&s)?;
                self.peer.sync = s;
            }
            Packet::StateChgReq(req) => {
                let ours = convert_request(req);
                if self.on_verify_request(&ours) {
                    return Ok(());
                }
                if self.on_sync_request(&ours).await {
                    return Ok(());
                }
                let rc = match ctx.peer_role_request(&ours) {
                    Some(rc) => rc,
                    None => check_request(&ours, ctx.resource.state().role, false),
                };
                if rc < 1 {
                    tracing::warn!(resource = %ctx.name(), "refused the peer's state change: {}", peer_state::retcode_text(rc));
                } else if ours.mask.get(StateField::Peer) != 0 {
                    if let Some(role) = rdbd_wire::state::role_from(ours.val.get(StateField::Peer))
                    {
                        ctx.update(|st| st.peer_role = role);
                    }
                }
                self.send_meta(Packet::StateChgReply(StateChangeReply { retcode: rc }));
            }
            Packet::ConnStChgReq(req) => {
                let (retcode, outdated) = self.outdate_on_peer_request(req).await;
                self.send_meta(Packet::ConnStChgReply(StateChangeReply { retcode }));
                // Outdated on request: the requester closes once it has our reply.
                if !outdated
                    && req.mask.get(StateField::Conn) != 0
                    && req.val.get(StateField::Conn) == ConnState::Disconnecting as u32
                {
                    return Err(End::Lost(
                        ConnState::TearDown,
                        "the peer disconnected".into(),
                    ));
                }
            }
            p @ (Packet::OvRequest(_)
            | Packet::OvReply(_)
            | Packet::OvResult(_)
            | Packet::CsumRsRequest(_)
            | Packet::RsIsInSync(_)) => self.on_verify_packet(p).await?,
            Packet::DelayProbe(_) | Packet::UnplugRemote => {}
            other => {
                return Err(self.protocol_error(format!(
                    "unexpected packet {:?} on the {sock} socket while {cs}",
                    other.command()
                )));
            }
        }
        Ok(())
    }
}
