//! The session's part of `detach`, `attach`, `invalidate-remote` and `adjust`:
//!
//! - A Diskless side (ours or the peer's) connects without a sync handshake (D84
//!   `receive_state`: the handshake needs both disks), and a Primary that loses its
//!   peer's disk while connected starts a new current identifier so that the peer's
//!   re-attach resyncs exactly what changed meanwhile (D84 `after_state_ch`, "lost
//!   contact to peer's copy of the data"; also the Secondary of a diskless Primary,
//!   which then marks the writes it receives out of sync, see `receive.rs`).
//! - A re-attached disk is `Negotiating` until the handshake: the handshake takes the
//!   disk state the meta-data flags give (D84 `drbd_sync_handshake`: `mydisk =
//!   new_state_tmp.disk`).
//! - `invalidate-remote` (D84 `drbd_adm_invalidate_peer`): `P_STATE_CHG_REQ conn =
//!   StartingSyncS`. The peer (StartingSyncT in its terms) sets every bit, writes its
//!   bitmap, becomes Inconsistent and waits for `P_SYNC_UUID` (WFSyncUUID); on the
//!   success reply we set every bit, generate the sync identifier, send `P_SYNC_UUID`
//!   and run a full resync as SyncSource. No bitmap exchange (both sides are full).

use std::sync::Arc;

use rdbd_replicator::generation;
use rdbd_replicator::peer_state::{self, PeerStateAction};
use rdbd_replicator::sync_handshake as sh;
use rdbd_types::{ConnState, DiskState, Role};
use rdbd_wire::{Packet, StateChange, StateChangeReply, StateField};
use tokio::sync::oneshot;

pub(crate) use super::grow::PendingResize;
use super::{Ctx, Session, SyncPhase};
use crate::peer::resync::Progress;
use crate::peer::{Command, PeerConfig};
use crate::resource::ResourceState;

/// Answers a lifecycle command that cannot run in the current connection state.
pub(super) fn answer_not_now(cmd: Command, why: &str) {
    match cmd {
        Command::InvalidateRemote(tx) => {
            let _ = tx.send(Err(format!(
                "invalidate-remote needs a connected peer: {why}"
            )));
        }
        Command::Reconfigure(_, tx) => {
            let _ = tx.send(Err(format!("new connection settings: {why}")));
        }
        Command::Resize(_, tx) => {
            let _ = tx.send(Err(format!("resize with the peer: {why}")));
        }
        _ => {}
    }
}

/// Takes new connection settings (the manager is StandAlone).
pub(super) fn reconfigure(ctx: &mut Ctx, cfg: PeerConfig, tx: oneshot::Sender<Result<(), String>>) {
    tracing::info!(resource = %ctx.name(), protocol = %cfg.settings.protocol, local = %cfg.local, peer = %cfg.peer, "new connection settings");
    ctx.cfg = cfg;
    let _ = tx.send(Ok(()));
}

impl Session<'_> {
    /// Adjusts what a received `P_STATE` leads to for Diskless sides and tracks the
    /// loss of the peer's disk. Returns the action to take.
    pub(super) async fn lifecycle_peer_state(
        &mut self,
        before: &ResourceState,
        peer_disk: DiskState,
        action: PeerStateAction,
    ) -> PeerStateAction {
        let ctx = self.ctx;
        // The Secondary of a diskless Primary too: it receives the Primary's writes.
        // A new generation when the peer's disk went away is the state machine's (after
        // the change the caller recorded; it sends P_UUIDS through the session).
        if peer_disk != before.peer_disk
            && before.cstate >= ConnState::Connected
            && peer_disk == DiskState::Diskless
        {
            tracing::info!(resource = %ctx.name(), "pdsk( {} -> Diskless ): writes are tracked in the bitmap", before.peer_disk);
        }
        // The peer attached its disk while connected (its P_STATE says Negotiating; the
        // caller already took the real disk state from the UUID flags).
        if self.peer.state.disk == DiskState::Negotiating
            && before.cstate == ConnState::Connected
            && before.disk >= DiskState::Inconsistent
        {
            return PeerStateAction::SyncHandshake;
        }
        let diskless = before.disk == DiskState::Diskless || peer_disk == DiskState::Diskless;
        if !diskless {
            return action;
        }
        if before.cstate < ConnState::Connected {
            // The core's handshake connects without comparing identifiers.
            tracing::info!(resource = %ctx.name(), "a side is Diskless: Connected without comparing the identifiers");
            return PeerStateAction::SyncHandshake;
        }
        match action {
            PeerStateAction::SyncHandshake => PeerStateAction::Record,
            other => other,
        }
    }

    /// A re-attached disk (`Negotiating`) enters the handshake with the state its
    /// meta-data flags give. Returns the state to use.
    pub(super) fn resolve_negotiating(&self, st: ResourceState) -> ResourceState {
        if st.disk != DiskState::Negotiating {
            return st;
        }
        let ctx = self.ctx;
        let flags = ctx.resource.meta.superblock().flags.0;
        let dont_care = ctx.cfg.settings.fencing == "dont-care";
        let (disk, _) = generation::disk_state_at_attach(flags, dont_care);
        tracing::info!(resource = %ctx.name(), "disk( Negotiating -> {disk} ) for the sync handshake");
        ctx.update(|s| s.disk = disk);
        ctx.resource.state()
    }

    /// Changed disk options (`adjust`): a running resync's controller takes them now.
    pub(super) fn apply_disk_options(&mut self, cfg: &PeerConfig) {
        self.retune_running_sync(&cfg.settings);
        // drbd_adm_disk_opts: a connected node sends its new parameters; the peer adopts them.
        self.send_sync_params(&cfg.settings);
        tracing::info!(resource = %self.ctx.name(), resync_rate_kib = cfg.settings.resync_rate_kib, c_plan_ahead = cfg.settings.c_plan_ahead, "disk options changed by adjust");
    }

    /// `invalidate-remote`: asks the peer to become the target of a full sync.
    pub(super) fn start_invalidate_remote(&mut self, tx: oneshot::Sender<Result<(), String>>) {
        let st = self.ctx.resource.state();
        let refuse = if st.cstate != ConnState::Connected {
            Some(format!("the connection is {}, not Connected", st.cstate))
        } else if st.disk != DiskState::UpToDate {
            Some(format!(
                "the local disk is {}; only UpToDate data can be the source of a full sync",
                st.disk
            ))
        } else if st.peer_disk < DiskState::Inconsistent {
            Some(format!("the peer's disk is {}", st.peer_disk))
        } else if self.pending_invalidate.is_some() || self.pending_role.is_some() {
            Some("another state change is waiting for the peer".to_string())
        } else {
            None
        };
        if let Some(why) = refuse {
            let _ = tx.send(Err(format!("State change failed: (-15) {why}")));
            return;
        }
        self.ctx.set_cstate(ConnState::StartingSyncS);
        self.send_data(Packet::StateChgReq(
            StateChange::new().conn(ConnState::StartingSyncS),
        ));
        self.pending_invalidate = Some(tx);
    }

    /// The peer's answer to `invalidate-remote`.
    pub(super) async fn on_invalidate_reply(&mut self, retcode: i32) {
        let Some(tx) = self.pending_invalidate.take() else {
            return;
        };
        let ctx = self.ctx;
        if retcode < 1 {
            ctx.set_cstate(ConnState::Connected);
            let _ = tx.send(Err(format!(
                "State change failed: ({retcode}) {} (the peer refused the full sync)",
                peer_state::retcode_text(retcode)
            )));
            return;
        }
        self.begin_source_resync(
            true,
            "invalidate-remote: began full resync as SyncSource",
            ".",
        )
        .await;
        let _ = tx.send(Ok(()));
    }

    /// Starts a resync as SyncSource on a connection that is already up (invalidate-remote,
    /// an online grow): with `set_all`, every block is out of sync first. Application
    /// writes wait while the bitmap and the identifiers change; then P_SYNC_UUID, the
    /// state, and the resync.
    pub(super) async fn begin_source_resync(&mut self, set_all: bool, what: &str, after: &str) {
        let ctx = self.ctx;
        let guard = Arc::clone(&ctx.link.resync_lock).write_owned().await;
        if set_all {
            ctx.resource.meta.set_all_out_of_sync();
        }
        ctx.write_bitmap().await;
        ctx.update(|st| st.peer_disk = DiskState::Inconsistent);
        let random = rand::random::<u64>() & !1;
        let g = ctx
            .persist(move |g| {
                sh::source_sync_uuid(g, random);
            })
            .await;
        self.send_data(Packet::SyncUuid { uuid: g.bitmap });
        ctx.set_cstate(ConnState::SyncSource);
        self.send_state();
        let weight = ctx.resource.meta.bitmap_weight();
        tracing::info!(resource = %ctx.name(), "{what} (will sync {} KB [{weight} bits set]){after}", weight * 4);
        self.sync = SyncPhase::Source(Progress::new(weight));
        drop(guard);
    }

    /// A peer's request to change the connection state (`StartingSyncT` in our terms:
    /// the peer ran `invalidate-remote`). Returns false when `req` does not change the
    /// connection state (the caller handles it).
    pub(super) async fn on_sync_request(&mut self, req: &StateChange) -> bool {
        if req.mask.get(StateField::Conn) == 0 {
            return false;
        }
        let ctx = self.ctx;
        let wanted = req.val.get(StateField::Conn);
        let st = ctx.resource.state();
        let rc = if wanted != ConnState::StartingSyncT as u32 {
            tracing::warn!(resource = %ctx.name(), conn = wanted, "the peer asked for a connection state rdbd does not implement; refused");
            peer_state::SS_CW_FAILED_BY_PEER
        } else if st.cstate != ConnState::Connected || st.disk == DiskState::Diskless {
            tracing::warn!(resource = %ctx.name(), "refused to become SyncTarget: conn {} disk {}", st.cstate, st.disk);
            peer_state::SS_CW_FAILED_BY_PEER
        } else if st.role == Role::Primary {
            tracing::warn!(resource = %ctx.name(), "refused to become SyncTarget: this node is Primary and rdbd does not serve I/O from the peer");
            peer_state::SS_NO_UP_TO_DATE_DISK
        } else {
            peer_state::SS_SUCCESS
        };
        if rc < 1 {
            self.send_meta(Packet::StateChgReply(StateChangeReply { retcode: rc }));
            return true;
        }
        ctx.set_cstate(ConnState::StartingSyncT);
        ctx.resource.meta.set_all_out_of_sync();
        ctx.write_bitmap().await;
        ctx.update(|st| st.disk = DiskState::Inconsistent);
        ctx.persist(|_| {}).await;
        self.send_meta(Packet::StateChgReply(StateChangeReply { retcode: rc }));
        ctx.set_cstate(ConnState::WFSyncUUID);
        self.sync = SyncPhase::WaitSyncUuid;
        self.send_state();
        tracing::info!(resource = %ctx.name(), "the peer invalidated our disk (invalidate-remote): every block is out of sync, waiting for P_SYNC_UUID");
        true
    }
}
