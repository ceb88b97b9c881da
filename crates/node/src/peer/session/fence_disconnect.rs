//! `disconnect` of a Primary with `fencing` (DRBD drbd_nl.c `conn_try_disconnect`):
//! the Primary may not lose a peer that could still be UpToDate, so the disconnect is a
//! cluster-wide state change `conn Disconnecting, pdsk Outdated` (P_CONN_ST_CHG_REQ):
//! the peer outdates its disk and answers, then both drop the connection, and the
//! Primary records the peer as Outdated (meta-data flag PEER_OUT_DATED).
//!
//! Without fencing, or when the peer is known not to be UpToDate, `disconnect` drops
//! the connection at once, as before. A peer that refuses, does not answer within
//! [`REPLY_TIMEOUT`], or loses the connection first is dropped unconfirmed: the
//! connection manager then runs fence-peer as for a lost connection (DRBD:
//! SS_OUTDATE_WO_CONN, then `conn_try_outdate_peer`).

use std::time::{Duration, Instant};

use rdbd_replicator::peer_state::convert_request;
use rdbd_types::{ConnState, DiskState, Role};
use rdbd_wire::{Packet, StateChange, StateChangeReply, StateField};
use tokio::sync::oneshot;

use super::{End, Session};

/// How long the Primary waits for the peer's answer.
pub(super) const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A disconnect waiting for the peer to confirm it outdated itself.
pub(super) struct PendingDisconnect {
    tx: oneshot::Sender<()>,
    sent: Instant,
}

impl Session<'_> {
    /// `disconnect` while connected.
    pub(super) fn disconnect_requested(&mut self, tx: oneshot::Sender<()>) -> Result<(), End> {
        let ctx = self.ctx;
        let st = ctx.resource.state();
        let outdate_peer = ctx.resource.hooks.fencing().fences()
            && st.role == Role::Primary
            && st.peer_disk >= DiskState::Consistent
            && self.pending_disconnect.is_none();
        if !outdate_peer {
            return Err(End::Disconnect(tx));
        }
        tracing::info!(resource = %ctx.name(), "fencing: asking the peer to outdate its disk before disconnecting");
        self.send_data(Packet::ConnStChgReq(
            StateChange::new()
                .conn(ConnState::Disconnecting)
                .pdsk(DiskState::Outdated),
        ));
        self.pending_disconnect = Some(PendingDisconnect {
            tx,
            sent: Instant::now(),
        });
        Ok(())
    }

    /// P_CONN_ST_CHG_REPLY: the peer's answer to our disconnect.
    pub(super) async fn on_conn_state_reply(&mut self, r: StateChangeReply) -> Result<(), End> {
        let Some(pending) = self.pending_disconnect.take() else {
            return Ok(());
        };
        let ctx = self.ctx;
        if r.is_success() {
            let before = ctx.resource.state();
            // Disconnecting with the peer Outdated in one change; the core starts a new
            // generation for a Primary (DRBD after_state_ch, "lost contact to peer's copy
            // of the data"), which the connection's cleanup will not do for an Outdated
            // peer.
            ctx.peer_outdated_for_disconnect().await;
            tracing::info!(resource = %ctx.name(), "pdsk( {} -> Outdated )", before.peer_disk);
            return Err(End::Disconnect(pending.tx));
        }
        tracing::warn!(resource = %ctx.name(), retcode = r.retcode, "the peer refused to outdate its disk; disconnecting, the peer gets fenced");
        Err(End::DisconnectUnconfirmed(pending.tx))
    }

    /// From the tick: a peer that does not answer is dropped.
    pub(super) fn check_disconnect_timeout(&mut self) -> Result<(), End> {
        if self
            .pending_disconnect
            .as_ref()
            .is_some_and(|p| p.sent.elapsed() >= REPLY_TIMEOUT)
        {
            if let Some(p) = self.pending_disconnect.take() {
                tracing::warn!(resource = %self.ctx.name(), "the peer did not answer the disconnect in time; disconnecting, the peer gets fenced");
                return Err(End::DisconnectUnconfirmed(p.tx));
            }
        }
        Ok(())
    }

    /// The session ended while a fencing disconnect waited for the peer: the peer may
    /// not be Outdated, so the disconnect ends unconfirmed (the peer gets fenced).
    pub(super) fn finish_disconnect(&mut self, end: End) -> End {
        match (self.pending_disconnect.take(), end) {
            (Some(p), End::Lost(_, reason)) => {
                tracing::warn!(resource = %self.ctx.name(), "the connection ended before the peer confirmed it is Outdated: {reason}");
                End::DisconnectUnconfirmed(p.tx)
            }
            (_, end) => end,
        }
    }

    /// The peer's P_CONN_ST_CHG_REQ asks for our disk Outdated (its `pdsk`): a
    /// Secondary with consistent data outdates it and records that. Returns the reply
    /// code and whether this was such a request (then the requester closes the
    /// connection once it has the reply).
    pub(super) async fn outdate_on_peer_request(&mut self, req: StateChange) -> (i32, bool) {
        let ours = convert_request(req);
        let wants_outdated = ours.mask.get(StateField::Disk) != 0
            && rdbd_wire::state::disk_from(ours.val.get(StateField::Disk))
                == Some(DiskState::Outdated);
        if !wants_outdated {
            return (1, false);
        }
        let ctx = self.ctx;
        let st = ctx.resource.state();
        if st.role == Role::Primary {
            // SS_PRIMARY_NOP: a Primary does not outdate itself.
            return (-7, false);
        }
        if st.disk > DiskState::Outdated {
            ctx.update(|st| st.disk = DiskState::Outdated);
            tracing::info!(resource = %ctx.name(), "the peer disconnects with fencing: disk( {} -> Outdated )", st.disk);
            ctx.persist(|_| {}).await;
        }
        (1, true)
    }
}
