//! The session's part of online verify, checksum-based resync and pause-sync (see
//! `crate::peer::verify`, `crate::peer::csums`, `crate::peer::sync_admin`):
//!
//! - `verify`: Connected + UpToDate/UpToDate + verify-alg, then the cluster-wide state
//!   change (`P_STATE_CHG_REQ` conn VerifyS; the peer converts it to VerifyT and
//!   answers); on success VerifyS sends `P_OV_REQUEST`s every 100 ms step.
//! - The peer's request for VerifyT is checked the same way and answered.
//! - Packets: `P_OV_REQUEST` (VerifyT: digest and `P_OV_REPLY`), `P_OV_REPLY` (VerifyS:
//!   compare and `P_OV_RESULT`), `P_OV_RESULT` (VerifyT: count, set bits),
//!   `P_CSUM_RS_REQUEST` (SyncSource), `P_RS_IS_IN_SYNC` (SyncTarget).
//! - Pause: `user_isp` (ours) and `peer_isp` (the peer's `aftr_isp | user_isp` in its
//!   P_STATE) turn SyncSource/SyncTarget into PausedSyncS/PausedSyncT and back; the
//!   target's pump requests nothing while paused. A change of `user_isp` is sent to the
//!   peer in P_STATE.
//! - At connect, `verify-alg` and `csums-alg` must be supported and equal on both sides
//!   (DRBD drops the connection on "Different verify-alg settings").

use std::sync::atomic::Ordering;

use rdbd_replicator::handshake::PeerReport;
use rdbd_replicator::resync::digest::DigestAlg;
use rdbd_types::{ConnState, DiskState};
use rdbd_wire::{
    BlockRequest, DrbdState, Packet, StateChange, StateChangeReply, StateField, ID_OUT_OF_SYNC,
};

use super::{Ctx, End, Session, SyncPhase};
use crate::peer::sync_admin::{
    not_connected, state_error, SyncCommand, SyncReply, SS_NEED_CONNECTION, SS_NO_VERIFY_ALG,
    SS_RESYNC_RUNNING,
};
use crate::peer::verify::{spawn_worker, verify_alg, VerifyJob, VerifySource, VerifyTarget};

/// A `verify` waiting for the peer's answer.
pub(crate) struct PendingVerify {
    reply: SyncReply,
    source: VerifySource,
}

/// A sync command while no session runs: pause flags apply at the next resync, verify
/// needs a connection.
pub(super) fn answer_idle(c: SyncCommand, tx: SyncReply) {
    let _ = tx.send(match c {
        SyncCommand::PauseChanged => Ok(()),
        SyncCommand::Verify { .. } => Err(not_connected()),
    });
}

/// Checks the digest algorithms against the peer's P_SYNC_PARAM.
pub(super) fn check_algs(ctx: &Ctx, report: &PeerReport) -> Result<(), String> {
    let s = &ctx.cfg.settings;
    for (what, ours, peers) in [
        ("verify-alg", &s.verify_alg, &report.sync.verify_alg),
        ("csums-alg", &s.csums_alg, &report.sync.csums_alg),
    ] {
        let ours = ours.as_deref().unwrap_or("");
        if !ours.is_empty() {
            DigestAlg::parse(ours).map_err(|e| format!("{what}: {e}"))?;
        }
        if !ours.eq_ignore_ascii_case(peers) {
            return Err(format!(
                "Different {what} settings. me=\"{ours}\" peer=\"{peers}\""
            ));
        }
    }
    Ok(())
}

/// Block range of a request from the peer: `Err` is a protocol error.
fn checked_block(ctx: &Ctx, r: &BlockRequest) -> Result<u64, String> {
    let size = u64::from(r.size_bytes);
    if size == 0 || size % 512 != 0 || r.size_bytes as usize > rdbd_wire::DRBD_MAX_BIO_SIZE {
        return Err(format!(
            "a verify block of {size} bytes at sector {}",
            r.sector
        ));
    }
    crate::peer::receive::checked_range(ctx, r.sector, size)
}

impl Session<'_> {
    /// Why verify cannot start now, as DRBD checks it (`is_valid_state`,
    /// `is_valid_transition`).
    fn verify_refusal(&self) -> Option<i32> {
        let st = self.ctx.resource.state();
        if verify_alg(self.ctx).is_none() {
            return Some(SS_NO_VERIFY_ALG);
        }
        if st.cstate < ConnState::Connected {
            return Some(SS_NEED_CONNECTION);
        }
        if st.cstate != ConnState::Connected
            || !matches!(self.sync, SyncPhase::None)
            || self.pending_verify.is_some()
        {
            return Some(SS_RESYNC_RUNNING);
        }
        if st.disk != DiskState::UpToDate || st.peer_disk != DiskState::UpToDate {
            return Some(rdbd_replicator::peer_state::SS_NO_UP_TO_DATE_DISK);
        }
        None
    }

    pub(super) fn on_sync_command(&mut self, c: SyncCommand, tx: SyncReply) {
        match c {
            SyncCommand::PauseChanged => {
                self.apply_pause();
                // The peer learns our user_isp from P_STATE.
                self.send_state();
                let _ = tx.send(Ok(()));
            }
            SyncCommand::Verify {
                start_sector,
                stop_sector,
            } => {
                if let Some(code) = self.verify_refusal() {
                    let _ = tx.send(Err(state_error(code)));
                    return;
                }
                let Some(alg) = verify_alg(self.ctx) else {
                    let _ = tx.send(Err(state_error(SS_NO_VERIFY_ALG)));
                    return;
                };
                let source = VerifySource::new(self.ctx, alg, start_sector, stop_sector);
                self.send_data(Packet::StateChgReq(
                    StateChange::new().conn(ConnState::VerifyS),
                ));
                self.pending_verify = Some(PendingVerify { reply: tx, source });
            }
        }
    }

    /// The peer answered our request for VerifyS.
    pub(super) fn on_verify_reply(&mut self, retcode: i32) {
        let Some(PendingVerify { reply, source }) = self.pending_verify.take() else {
            return;
        };
        if retcode < 1 {
            tracing::warn!(resource = %self.ctx.name(), "the peer refused online verify: {}", state_error(retcode).1);
            let _ = reply.send(Err(state_error(retcode)));
            return;
        }
        if let Some(code) = self.verify_refusal().filter(|c| *c != SS_RESYNC_RUNNING) {
            let _ = reply.send(Err(state_error(code)));
            return;
        }
        tracing::info!(resource = %self.ctx.name(), "Starting Online Verify from sector {}", source.start_sector());
        let mut source = source;
        let worker = self.verify_worker(source.alg);
        source.begin(self.ctx, worker);
        self.ctx.verify_started(true);
        self.sync = SyncPhase::VerifyS(source);
        let _ = reply.send(Ok(()));
        self.pump_verify();
    }

    /// The peer asks for a state change: VerifyT is ours to check. Returns true when handled.
    pub(super) fn on_verify_request(&mut self, req: &StateChange) -> bool {
        if req.mask.get(StateField::Conn) == 0
            || req.val.get(StateField::Conn) != ConnState::VerifyT as u32
        {
            return false;
        }
        let rc = match (self.verify_refusal(), verify_alg(self.ctx)) {
            (None, Some(alg)) => {
                self.ctx.verify_started(false);
                let worker = self.verify_worker(alg);
                self.sync = SyncPhase::VerifyT(VerifyTarget::new(self.ctx, worker));
                1
            }
            (Some(code), _) => code,
            (None, None) => SS_NO_VERIFY_ALG,
        };
        if rc < 1 {
            tracing::warn!(resource = %self.ctx.name(), "refused the peer's online verify: {}", state_error(rc).1);
        }
        self.send_meta(Packet::StateChgReply(StateChangeReply { retcode: rc }));
        true
    }

    fn verify_worker(&self, alg: DigestAlg) -> crate::peer::verify::Worker {
        spawn_worker(
            self.ctx,
            alg,
            self.data.clone(),
            self.meta.clone(),
            self.events_tx.clone(),
        )
    }

    /// The worker compared a block (VerifyS).
    pub(super) async fn on_verified(&mut self, sector: u64, size_bytes: u32, equal: bool) {
        let done = match &mut self.sync {
            SyncPhase::VerifyS(s) => s.on_compared(self.ctx, sector, size_bytes, equal),
            _ => return,
        };
        if done {
            self.finish_verify().await;
        } else {
            self.pump_verify();
        }
    }

    /// Sends the `P_OV_REQUEST`s the controller allows now.
    fn pump_verify(&mut self) {
        let SyncPhase::VerifyS(src) = &mut self.sync else {
            return;
        };
        for r in src.next_requests(self.ctx) {
            let _ = self
                .data
                .send(crate::peer::io::Outgoing::h100(Packet::OvRequest(
                    BlockRequest {
                        sector: r.sector,
                        block_id: rdbd_wire::ID_SYNCER,
                        size_bytes: r.size_bytes,
                    },
                )));
        }
        self.ctx
            .link
            .counters
            .rs_pending
            .store(src.in_flight(), Ordering::Relaxed);
    }

    /// The 100 ms tick during verify.
    pub(super) async fn verify_tick(&mut self) {
        let ctx = self.ctx;
        match &mut self.sync {
            SyncPhase::VerifyS(src) => {
                src.on_step(ctx);
                ctx.link.set_sync_progress(Some(src.sample()));
                self.pump_verify();
            }
            SyncPhase::VerifyT(t) => ctx.link.set_sync_progress(Some(t.sample())),
            _ => {}
        }
    }

    /// Verify ended on this side: back to Connected, the bitmap to disk; VerifyS tells
    /// the peer (it may have stopped early).
    async fn finish_verify(&mut self) {
        let ctx = self.ctx;
        let was_source = match std::mem::replace(&mut self.sync, SyncPhase::None) {
            SyncPhase::VerifyS(mut s) => {
                s.finish(ctx);
                true
            }
            SyncPhase::VerifyT(mut t) => {
                t.finish(ctx);
                false
            }
            other => {
                self.sync = other;
                return;
            }
        };
        ctx.link.set_sync_progress(None);
        ctx.link.counters.rs_pending.store(0, Ordering::Relaxed);
        ctx.verify_done();
        ctx.write_bitmap().await;
        if was_source {
            self.send_state();
        }
    }

    /// `P_OV_REQUEST`, `P_OV_REPLY`, `P_OV_RESULT`, `P_CSUM_RS_REQUEST`, `P_RS_IS_IN_SYNC`.
    pub(super) async fn on_verify_packet(&mut self, p: Packet) -> Result<(), End> {
        let ctx = self.ctx;
        let cs = ctx.resource.state().cstate;
        match p {
            Packet::OvRequest(r) => {
                checked_block(ctx, &r).map_err(|e| self.protocol_error(e))?;
                match &mut self.sync {
                    SyncPhase::VerifyT(t) => {
                        t.on_request(ctx, r.sector);
                        t.worker.push(VerifyJob::Answer(r));
                    }
                    _ => return Err(self.protocol_error(format!("P_OV_REQUEST while {cs}"))),
                }
            }
            Packet::OvReply(d) => {
                checked_block(ctx, &d.request).map_err(|e| self.protocol_error(e))?;
                match &self.sync {
                    SyncPhase::VerifyS(s) => {
                        if let Some(w) = &s.worker {
                            w.push(VerifyJob::Compare(d));
                        }
                    }
                    // Verify ended here already (aborted): nothing to compare.
                    _ => return Ok(()),
                }
            }
            Packet::OvResult(a) => {
                let equal = a.block_id != ID_OUT_OF_SYNC;
                let done = match &mut self.sync {
                    SyncPhase::VerifyT(t) => t.on_result(ctx, a.sector, a.size_bytes, equal),
                    _ => {
                        // A late result (the peer's P_STATE ended verify here first).
                        if !equal {
                            ctx.resource
                                .meta
                                .set_out_of_sync(a.sector * 512, u64::from(a.size_bytes));
                        }
                        false
                    }
                };
                if done {
                    self.finish_verify().await;
                }
            }
            Packet::CsumRsRequest(d) => {
                if !matches!(cs, ConnState::SyncSource | ConnState::PausedSyncS) {
                    return Err(self.protocol_error(format!("P_CSUM_RS_REQUEST while {cs}")));
                }
                crate::peer::csums::serve_csum(ctx, &self.data, &self.meta, d);
            }
            Packet::RsIsInSync(a) => {
                let SyncPhase::Target(pump) = &mut self.sync else {
                    return Err(self.protocol_error(format!("P_RS_IS_IN_SYNC while {cs}")));
                };
                let size = u64::from(a.size_bytes);
                ctx.resource.meta.set_in_sync(a.sector, size / 512);
                ctx.link
                    .counters
                    .rs_same_csum_blocks
                    .fetch_add(size.div_ceil(4096), Ordering::Relaxed);
                pump.on_reply(ctx, size, true);
                if pump.pump(ctx, &self.data) {
                    self.finish_target().await;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The peer's P_STATE: its pause flags, and the end of verify when VerifyS reports
    /// Connected.
    pub(super) fn verify_peer_state(&mut self, s: &DrbdState) {
        let peer_isp = s.aftr_isp || s.user_isp;
        let old = self.ctx.link.peer_isp.swap(peer_isp, Ordering::SeqCst);
        if old != peer_isp {
            self.apply_pause();
        }
        if matches!(self.sync, SyncPhase::VerifyT(_))
            && s.conn == ConnState::Connected
            && s.disk == DiskState::UpToDate
        {
            // The explicit "verify finished" notification (stop sector reached).
            let ctx = self.ctx;
            if let SyncPhase::VerifyT(mut t) = std::mem::replace(&mut self.sync, SyncPhase::None) {
                t.finish(ctx);
            }
            ctx.link.set_sync_progress(None);
            ctx.verify_done();
            let resource = std::sync::Arc::clone(&ctx.resource);
            tokio::spawn(async move {
                if let Err(e) = resource.meta.write_dirty_bitmap().await {
                    tracing::error!(resource = %resource.name, error = %e, "writing the bitmap failed");
                }
            });
        }
    }

    /// SyncSource/SyncTarget <-> PausedSyncS/PausedSyncT per the pause flags.
    pub(super) fn apply_pause(&mut self) {
        let ctx = self.ctx;
        let paused = ctx.link.sync_paused();
        let cs = ctx.resource.state().cstate;
        let next = crate::peer::sync_admin::pause_transition(cs, paused);
        if next.is_some() {
            if paused {
                tracing::info!(resource = %ctx.name(), "Resync suspended");
            } else {
                tracing::info!(resource = %ctx.name(), "Syncer continues.");
            }
        }
        // The core takes the flags (and pauses or resumes a running resync).
        ctx.sync_pause_flags();
        if let Some(next) = next {
            ctx.set_cstate(next);
        }
    }

    /// A resync just began (SyncSource / SyncTarget): pause it at once if a flag is set;
    /// the checksum count starts at zero.
    pub(super) fn sync_started(&mut self) {
        let ctx = self.ctx;
        ctx.link
            .counters
            .rs_same_csum_blocks
            .store(0, Ordering::Relaxed);
        if ctx.resource.state().cstate == ConnState::SyncSource {
            ctx.link.source_gate.start(
                &ctx.resource,
                &ctx.link,
                ctx.resource.meta.bitmap_weight(),
                crate::peer::source_throttle::c_min_rate_kib(ctx),
            );
            // drbd_start_resync: the source's peer disk is Inconsistent from now on, whatever
            // the target reported while the bitmaps crossed (a kernel target says Outdated
            // and sends no new P_STATE when it turns Inconsistent).
            ctx.update(|st| st.peer_disk = DiskState::Inconsistent);
        }
        self.update_aftr_isp();
        self.apply_pause();
    }

    /// `resync-after`: re-evaluates `aftr_isp`; returns true when it changed.
    fn update_aftr_isp(&mut self) -> bool {
        let ctx = self.ctx;
        let after = ctx.cfg.settings.resync_after.clone();
        let held = !crate::peer::after::may_sync_now(ctx.name(), after.as_deref());
        ctx.link.set_resync_after(after);
        let old = ctx.link.aftr_isp.swap(held, Ordering::SeqCst);
        if old != held {
            tracing::info!(resource = %ctx.name(), "aftr_isp( {} -> {} )", u8::from(old), u8::from(held));
        }
        old != held
    }

    /// Every tick: a change of `aftr_isp` pauses or resumes the resync and goes to the
    /// peer in P_STATE (as DRBD sends a changed aftr_isp / user_isp).
    pub(super) fn resync_after_tick(&mut self) {
        if self.update_aftr_isp() {
            self.apply_pause();
            self.send_state();
            self.ctx.changed.notify_waiters();
        }
    }

    /// The checksum summary at the end of a resync (both sides, when csums-alg is used).
    pub(super) fn csums_summary(&self) {
        let ctx = self.ctx;
        let (used, total) = match &self.sync {
            SyncPhase::Target(pump) => (pump.csums.is_some(), pump.progress.total_blocks()),
            SyncPhase::Source(progress) => (
                crate::peer::csums::csums_alg(ctx).is_some(),
                progress.total_blocks(),
            ),
            _ => (false, 0),
        };
        crate::peer::csums::log_summary(ctx, used, total);
    }
}
