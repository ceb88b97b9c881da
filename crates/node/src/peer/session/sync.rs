//! The session's sync handshake and resync state changes (D84 drbd_receiver.c
//! `drbd_sync_handshake`, `receive_bitmap`, `receive_sync_uuid`; drbd_worker.c
//! `drbd_resync_finished`); the core decides (`Event::PeerParams`, `BitmapExchanged`,
//! `SyncUuid`, `ResyncDone`), the session runs the handlers and does the I/O:
//!
//! - the handshake decides NoSync (Connected), Source (WFBitMapS) or Target (WFBitMapT),
//!   or refuses (split brain, unrelated data, a Primary that would become SyncTarget, two
//!   Primaries): the connection is dropped (StandAlone until `connect`);
//! - WFBitMapS sends our bitmap; until the target's bitmap arrived application writes
//!   complete locally and send `P_OUT_OF_SYNC` (`crate::peer::out_of_sync`; before
//!   protocol 96 they are held off); then `P_SYNC_UUID` and SyncSource;
//! - WFBitMapT waits for the source's bitmap, ORs it in, answers with ours, WFSyncUUID;
//!   `P_SYNC_UUID` starts the SyncTarget's pump;
//! - the end: the target when its bitmap is empty, the source when the target reports
//!   Connected/UpToDate.

use std::sync::Arc;

use rdbd_replicator::resync::bitmap_xfer::{
    BitmapPacket, BitmapReceiver, BitmapSender, Progress as XferProgress, XferParams,
};
use rdbd_replicator::state::{Action, PeerParams, StateError};
use rdbd_replicator::sync_handshake::{self as sh, Policies, RrConflict};
use rdbd_replicator::uuid_compare::generations_of;
use rdbd_types::{ConnState, DiskState};
use rdbd_wire::{HeaderKind, Packet};

use super::{End, Session, SyncPhase};
use crate::peer::io::Outgoing;
use crate::peer::out_of_sync::OUT_OF_SYNC_MIN_PROTOCOL;
use crate::peer::resync::{Progress, TargetPump};

impl Session<'_> {
    /// `drbd_sync_handshake` and the state it leads to: the core decides
    /// ([`Event::PeerParams`]: NoSync, Source, Target or a refusal, the identifier
    /// fix-ups, the handlers, the new state); the session runs the handlers and does the
    /// I/O (the bitmap exchange).
    pub(super) async fn sync_handshake(&mut self, peer_disk: DiskState) -> Result<(), End> {
        let ctx = self.ctx;
        self.resolve_negotiating(ctx.resource.state());
        let own = ctx.resource.generations();
        let params = PeerParams {
            gens: generations_of(&self.peer.uuids),
            uuid_flags: self.peer.uuids.flags,
            role: self.peer.state.role,
            disk: peer_disk,
            peer_changed_blocks: self.peer.uuids.dirty_bits,
            own_changed_blocks: ctx.resource.meta.bitmap_weight(),
            agreed_pro_version: self.peer.agreed_version,
            agreed_features: self.peer.agreed_features,
        };
        // A full sync's bitmap is set with application writes drained (DRBD:
        // drbd_queue_bitmap_io); not held while the handlers run.
        let guard = Arc::clone(&ctx.link.resync_lock).write_owned().await;
        let actions = ctx.handshake_event(params, self.policies()).await;
        drop(guard);
        // The core's record of the peer's identifiers, with the handshake's fix-ups.
        let peer_g = ctx.resource.with_core(|c| c.node().peer_gens());
        self.peer.uuids.current = peer_g.current;
        self.peer.uuids.bitmap = peer_g.bitmap;
        self.peer.uuids.history = peer_g.history;
        // DRBD runs these synchronously in the receiver (initial-split-brain, split-brain,
        // pri-lost-after-sb, pri-lost), in the order the handshake decided them.
        for a in &actions {
            if let Action::RunHandler(h) = a {
                crate::handlers::run(&ctx.resource, crate::handlers::Handler::from_handshake(*h))
                    .await;
            }
        }
        for a in &actions {
            match a {
                Action::HandshakeRefused(reason) => {
                    return Err(End::Dropped(format!(
                        "the sync handshake refused the peer: {reason:?} (own current {:016X} bitmap {:016X}, peer current {:016X} bitmap {:016X})",
                        own.current, own.bitmap, self.peer.uuids.current, self.peer.uuids.bitmap
                    )))
                }
                // Without allow-two-primaries (which rdbd does not implement) the state
                // change into any connected state fails while both are Primary
                // (SS_TWO_PRIMARIES): receive_state drops the connection (C_DISCONNECTING,
                // then StandAlone); DISCARD_MY_DATA stays.
                Action::ConnectionRefused(StateError::TwoPrimaries) => {
                    return Err(End::Dropped(
                        "the peer is Primary too; dual-primary (allow-two-primaries) is not supported by rdbd".into(),
                    ))
                }
                Action::ConnectionRefused(e) => {
                    return Err(End::Dropped(format!(
                        "the state the sync handshake chose was refused: {e}"
                    )))
                }
                _ => {}
            }
        }
        self.send_state();
        match ctx.resource.state().cstate {
            ConnState::WFBitMapS => {
                // No write between the bitmap we send and the mode it starts: a write
                // before is in the bitmap or was replicated, a write after is described
                // by P_OUT_OF_SYNC (or waits, before protocol 96).
                let guard = Arc::clone(&ctx.link.resync_lock).write_owned().await;
                self.send_bitmap()?;
                let rx = self.bitmap_receiver()?;
                if self.peer.agreed_version >= OUT_OF_SYNC_MIN_PROTOCOL {
                    // Writes go on, described to the peer by P_OUT_OF_SYNC.
                    ctx.link.begin_out_of_sync_only(self.data.clone());
                    drop(guard);
                    self.sync = SyncPhase::BitmapS(rx, None);
                } else {
                    // Before protocol 96, DRBD freezes application I/O while the bitmaps cross.
                    self.sync = SyncPhase::BitmapS(rx, Some(guard));
                }
            }
            ConnState::WFBitMapT => {
                self.sync = SyncPhase::BitmapT(self.bitmap_receiver()?);
            }
            _ => {}
        }
        Ok(())
    }

    /// The connection's split-brain policies (net section).
    fn policies(&self) -> Policies {
        let ctx = self.ctx;
        let settings = &ctx.cfg.settings;
        let policy = |v: &str| sh::parse_after_sb(v, &ctx.cfg.local_name).unwrap_or_default();
        Policies {
            after_sb_0pri: policy(&settings.after_sb_0pri),
            after_sb_1pri: policy(&settings.after_sb_1pri),
            after_sb_2pri: policy(&settings.after_sb_2pri),
            rr_conflict: RrConflict::parse(&settings.rr_conflict).unwrap_or_default(),
            always_asbp: settings.always_asbp,
            dry_run: false,
        }
    }

    fn xfer_params(&self) -> XferParams {
        XferParams::for_protocol(self.peer.agreed_version, self.ctx.cfg.settings.use_rle)
    }

    /// A receiver for the peer's bitmap (merged into ours once complete).
    pub(super) fn bitmap_receiver(&self) -> Result<BitmapReceiver, End> {
        let bits = self.ctx.resource.meta.bitmap_bits();
        BitmapReceiver::new(
            vec![0; bits.div_ceil(64) as usize],
            bits,
            self.xfer_params(),
        )
        .map_err(|e| End::Lost(ConnState::ProtocolError, format!("bitmap receiver: {e}")))
    }

    fn send_bitmap(&self) -> Result<(), End> {
        let meta = &self.ctx.resource.meta;
        let (words, bits) = (meta.bitmap_words(), meta.bitmap_bits());
        let mut sender = BitmapSender::new(&words, bits, self.xfer_params()).map_err(|e| {
            End::Lost(
                ConnState::ProtocolError,
                format!("encoding the bitmap: {e}"),
            )
        })?;
        for p in sender.by_ref() {
            let _ = self
                .data
                .send(Outgoing::new(HeaderKind::H100, p.into_packet()));
        }
        if let Some(line) = sender
            .stats()
            .log_line("send", bits.div_ceil(64), &self.xfer_params())
        {
            tracing::info!(resource = %self.ctx.name(), "{line}");
        }
        Ok(())
    }

    /// A `P_BITMAP` / `P_COMPRESSED_BITMAP`.
    pub(super) async fn on_bitmap(&mut self, p: &Packet) -> Result<(), End> {
        let ctx = self.ctx;
        let packet = match p {
            Packet::Bitmap(b) => BitmapPacket::Plain(b.clone()),
            Packet::CompressedBitmap(c) => BitmapPacket::Compressed(c.clone()),
            _ => return Ok(()),
        };
        let params = self.xfer_params();
        let done = match &mut self.sync {
            SyncPhase::BitmapS(rx, _) | SyncPhase::BitmapT(rx) => {
                let progress = rx.receive(&packet).map_err(|e| {
                    End::Lost(ConnState::ProtocolError, format!("the peer's bitmap: {e}"))
                })?;
                if progress == XferProgress::Complete {
                    if let Some(line) = rx.stats().log_line(
                        "receive",
                        ctx.resource.meta.bitmap_bits().div_ceil(64),
                        &params,
                    ) {
                        tracing::info!(resource = %ctx.name(), "{line}");
                    }
                }
                progress == XferProgress::Complete
            }
            _ => {
                return Err(self.protocol_error(format!(
                    "a bitmap packet while {}",
                    ctx.resource.state().cstate
                )))
            }
        };
        if !done {
            return Ok(());
        }
        match std::mem::replace(&mut self.sync, SyncPhase::None) {
            SyncPhase::BitmapS(rx, guard) => {
                ctx.resource.meta.merge_bitmap(&rx.into_words());
                crate::handlers::resync::before_resync_source(&ctx.resource)
                    .await
                    .map_err(End::Dropped)?;
                let uuid = ctx.bitmap_exchanged_source().await;
                ctx.write_bitmap().await;
                // Every P_OUT_OF_SYNC is queued before P_SYNC_UUID; later writes are P_DATA.
                ctx.link.end_out_of_sync_only();
                self.send_data(Packet::SyncUuid { uuid });
                self.sync_started();
                self.send_state();
                let weight = ctx.resource.meta.bitmap_weight();
                tracing::info!(resource = %ctx.name(), "Began resync as SyncSource (will sync {} KB [{weight} bits set]).", weight * 4);
                self.sync = SyncPhase::Source(Progress::new(weight));
                drop(guard);
            }
            SyncPhase::BitmapT(rx) => {
                ctx.resource.meta.merge_bitmap(&rx.into_words());
                ctx.write_bitmap().await;
                self.send_bitmap()?;
                ctx.bitmap_exchanged_target().await;
                self.sync = SyncPhase::WaitSyncUuid;
            }
            other => self.sync = other,
        }
        Ok(())
    }

    /// `P_SYNC_UUID`: the target starts pulling.
    pub(super) async fn on_sync_uuid(&mut self, uuid: u64) -> Result<(), End> {
        let ctx = self.ctx;
        if !matches!(self.sync, SyncPhase::WaitSyncUuid) {
            return Err(
                self.protocol_error(format!("P_SYNC_UUID while {}", ctx.resource.state().cstate))
            );
        }
        crate::handlers::resync::before_resync_target(&ctx.resource)
            .await
            .map_err(End::Dropped)?;
        ctx.update(|st| st.disk = DiskState::Inconsistent);
        ctx.sync_uuid_received(uuid).await;
        self.sync_started();
        self.send_state();
        let weight = ctx.resource.meta.bitmap_weight();
        tracing::info!(resource = %ctx.name(), "Began resync as SyncTarget (will sync {} KB [{weight} bits set]).", weight * 4);
        let mut pump = TargetPump::new(ctx, weight)
            .with_max_request_bytes(self.peer.sizes.max_bio_size_bytes)
            .with_csums(crate::peer::csums::target_alg(
                ctx,
                self.peer.agreed_version,
            ));
        pump.on_step(ctx);
        let complete = pump.pump(ctx, &self.data);
        self.sync = SyncPhase::Target(pump);
        if complete {
            self.finish_target().await;
        }
        Ok(())
    }

    /// The target's bitmap is empty: UpToDate, the source's identifiers, Connected.
    pub(super) async fn finish_target(&mut self) {
        let ctx = self.ctx;
        if let SyncPhase::Target(pump) = &self.sync {
            let line = pump.progress.done_line(pump.progress.total_blocks());
            tracing::info!(resource = %ctx.name(), "{line}");
        }
        self.csums_summary();
        self.sync = SyncPhase::None;
        ctx.link.set_sync_progress(None);
        let g = ctx
            .resync_done(Some(generations_of(&self.peer.uuids)))
            .await;
        ctx.write_bitmap().await;
        tracing::info!(resource = %ctx.name(), current = format!("{:016X}", g.current), "Resync done; conn( SyncTarget -> Connected ) disk( Inconsistent -> UpToDate )");
        self.send_state();
        crate::handlers::resync::resync_finished(&ctx.resource, true);
    }

    /// The target reported the end: the peer is UpToDate, our bitmap identifier retires.
    pub(super) async fn finish_source(&mut self) {
        let ctx = self.ctx;
        if let SyncPhase::Source(progress) = &self.sync {
            let line = progress.done_line(progress.total_blocks());
            tracing::info!(resource = %ctx.name(), "{line}");
        }
        ctx.link.source_gate.stop();
        self.csums_summary();
        self.sync = SyncPhase::None;
        ctx.link.set_sync_progress(None);
        let g = ctx.resync_done(None).await;
        ctx.write_bitmap().await;
        let left = ctx.resource.meta.bitmap_weight();
        tracing::info!(resource = %ctx.name(), current = format!("{:016X}", g.current), bits_left = left, "Resync done; conn( SyncSource -> Connected ) pdsk( Inconsistent -> UpToDate )");
        self.send_state();
        crate::handlers::resync::resync_finished(&ctx.resource, false);
    }
}
