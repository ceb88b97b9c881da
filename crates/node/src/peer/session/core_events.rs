//! The connection's changes as events of the resource's state machine
//! (`crate::core_driver`): the connection manager and the session report what happened
//! (`Connect`, `SocketUp`, `NetFailure`, `Disconnect`, `ConnectionClosed`, the peer's
//! role request, P_UUIDS, the sync handshake, the peer's later P_STATE, the fencing
//! disconnect's confirmation, the bitmap exchange, P_SYNC_UUID, the end of a resync) and
//! the core decides the new state and the generation identifiers.
//!
//! Actions the session performs itself are dropped here: the handshake sends its own
//! P_UUIDS and P_STATE, the session ends the connection and fails its transfer log
//! (`CloseConnection`, `SetOutOfSyncFromLog`), and it answers the peer's request itself.
//! A step the core does not take (its connection state is not the one the event starts
//! from, e.g. after a refused handshake) falls back to the observed path
//! ([`Ctx::set_cstate`]), so the shown state is always the one the manager reached.

use rdbd_replicator::generation::Generations;
use rdbd_replicator::state::{Action, Event, NetFailure, PeerParams, StateError};
use rdbd_replicator::sync_handshake::Policies;
use rdbd_replicator::uuid_compare::generations_of;
use rdbd_types::{ConnState, DiskState, Role};
use rdbd_wire::{StateChange, StateField};

use super::Ctx;

impl Ctx {
    /// Steps the core with `event`, logging each connection state change it made
    /// (`conn( A -> B )`, as DRBD logs it).
    fn step_logging_conn(&self, event: Event) -> crate::core_driver::Stepped {
        let stepped = self.resource.step(event);
        for a in &stepped.actions {
            if let Action::StateChanged { old, new, .. } = a {
                if old.conn != new.conn {
                    tracing::info!(resource = %self.name(), "conn( {} -> {} )", old.conn, new.conn);
                }
            }
        }
        stepped
    }

    /// The sync handshake: `Event::PeerParams` with the connection's split-brain
    /// `policies`. Logs what the core decided in its order (the handshake's lines at
    /// their levels, `conn( A -> B )`); a full sync's bitmap, the identifiers and the
    /// flags are durable when this returns. Returns every action; the session runs the
    /// handlers and the bitmap exchange, and ends a refused connection.
    pub(super) async fn handshake_event(
        &self,
        params: PeerParams,
        policies: Policies,
    ) -> Vec<Action> {
        let before = self.resource.state().cstate;
        let mut stepped = self.resource.with_core(|c| {
            c.set_policies(policies);
            c.step(Event::PeerParams(params))
        });
        for a in &stepped.actions {
            match a {
                Action::LogLine(_) | Action::Log(_) => {
                    self.resource.log_and_send(std::slice::from_ref(a))
                }
                Action::StateChanged { old, new, .. } if old.conn != new.conn => {
                    tracing::info!(resource = %self.name(), "conn( {} -> {} )", old.conn, new.conn);
                }
                _ => {}
            }
        }
        let all = stepped.actions.clone();
        stepped
            .actions
            .retain(|a| matches!(a, Action::StateChanged { .. } | Action::SetAllOutOfSync));
        if let Err(e) = self.resource.execute(&stepped).await {
            tracing::error!(resource = %self.name(), error = %e, "writing the handshake's bitmap or identifiers failed");
        }
        self.after_conn_change(before, self.resource.state().cstate);
        all
    }

    /// Feeds a connection event; returns the actions the session acts on itself.
    fn conn_event(&self, event: Event) -> Vec<Action> {
        let before = self.resource.state().cstate;
        let mut stepped = self.step_logging_conn(event);
        let for_session = |a: &Action| {
            matches!(
                a,
                Action::SendUuids { .. }
                    | Action::SendState(_)
                    | Action::SendStateReply(_)
                    | Action::CloseConnection
                    | Action::SetOutOfSyncFromLog
                    | Action::StartConnecting
            )
        };
        let (rest, own): (Vec<Action>, Vec<Action>) =
            stepped.actions.drain(..).partition(for_session);
        stepped.actions = own;
        self.resource.execute_in_background(&stepped);
        self.after_conn_change(before, self.resource.state().cstate);
        rest
    }

    /// `connect [--discard-my-data]` (the manager starts listening): StandAlone ->
    /// Unconnected -> WFConnection. The core keeps `discard_my_data` until a handshake
    /// got through.
    pub(super) fn connecting(&self, discard_my_data: bool) {
        if self.resource.state().cstate == ConnState::StandAlone {
            self.conn_event(Event::Connect { discard_my_data });
        }
        self.set_cstate(ConnState::WFConnection);
    }

    /// Both sockets are up: WFConnection -> WFReportParams.
    pub(super) fn socket_up(&self, resolve_conflicts: bool) {
        if self.resource.state().cstate == ConnState::WFConnection {
            self.conn_event(Event::SocketUp { resolve_conflicts });
        }
        self.set_cstate(ConnState::WFReportParams);
    }

    /// The connection broke in state `cs` (Timeout, BrokenPipe, NetworkFailure,
    /// ProtocolError; anything else is observed as it is), then the sockets are closed:
    /// -> Unconnected -> WFConnection, the manager reconnects.
    pub(super) fn connection_lost(&self, cs: ConnState) {
        let kind = match cs {
            ConnState::Timeout => Some(NetFailure::Timeout),
            ConnState::BrokenPipe => Some(NetFailure::BrokenPipe),
            ConnState::NetworkFailure => Some(NetFailure::NetworkFailure),
            ConnState::ProtocolError => Some(NetFailure::ProtocolError),
            _ => None,
        };
        match kind {
            Some(kind) if self.resource.state().cstate >= ConnState::WFReportParams => {
                self.conn_event(Event::NetFailure(kind));
            }
            _ => self.set_cstate(cs),
        }
        if self.resource.state().cstate == cs {
            self.conn_event(Event::ConnectionClosed);
        }
        if self.resource.state().cstate == cs {
            self.set_cstate(ConnState::Unconnected);
        }
    }

    /// `disconnect`, or a handshake that drops the connection: -> Disconnecting; the
    /// manager then goes StandAlone ([`Ctx::standalone`]).
    pub(super) fn disconnecting(&self) {
        if self.resource.state().cstate != ConnState::StandAlone {
            self.conn_event(Event::Disconnect);
        }
        self.set_cstate(ConnState::Disconnecting);
    }

    /// The sockets of a disconnect are closed: Disconnecting -> StandAlone.
    pub(super) fn standalone(&self) {
        if self.resource.state().cstate == ConnState::Disconnecting {
            self.conn_event(Event::ConnectionClosed);
        }
        self.set_cstate(ConnState::StandAlone);
    }

    /// The peer asks to change its role (P_STATE_CHG_REQ with only the peer's role, in our
    /// terms): the core decides (DRBD's rules; with RESOLVE_CONFLICTS a concurrent
    /// promotion of ours wins). `None`: not a role-only request.
    pub(super) fn peer_role_request(&self, ours: &StateChange) -> Option<i32> {
        if ours.mask.0 != StateField::Peer.mask() {
            return None;
        }
        let role = rdbd_wire::state::role_from(ours.val.get(StateField::Peer))?;
        let reply = self
            .conn_event(Event::PeerStateRequest { role })
            .into_iter()
            .chain(std::iter::once(Action::SendStateReply(Err(
                StateError::FailedByPeer,
            ))))
            .find_map(|a| match a {
                Action::SendStateReply(r) => Some(r),
                _ => None,
            })?;
        Some(match reply {
            Ok(()) => rdbd_replicator::peer_state::SS_SUCCESS,
            Err(e) => {
                if role == Role::Primary {
                    tracing::warn!(resource = %self.name(), "refused the peer's promotion: {e}");
                }
                e.code()
            }
        })
    }

    /// A later P_STATE of a connected peer (`receive_state` without a handshake): the
    /// core records the peer's role and disk.
    /// A new generation it starts (the peer's disk went away) goes to the peer as
    /// P_UUIDS (`SendUuids`, through the link).
    pub(super) fn peer_state(&self, role: Role, disk: DiskState, conn: ConnState) {
        let before = self.resource.state().cstate;
        let stepped = self.step_logging_conn(Event::PeerState { role, disk, conn });
        self.resource.execute_in_background(&stepped);
        self.after_conn_change(before, self.resource.state().cstate);
    }

    /// The peer confirmed it outdated its disk for our fencing `disconnect`: the core goes
    /// Disconnecting with the peer Outdated (a Primary starts a new generation); durable
    /// when this returns.
    pub(super) async fn peer_outdated_for_disconnect(&self) {
        let before = self.resource.state().cstate;
        let mut stepped = self.step_logging_conn(Event::PeerOutdatedForDisconnect);
        stepped
            .actions
            .retain(|a| matches!(a, Action::StateChanged { .. } | Action::Log(_)));
        if let Err(e) = self.resource.execute(&stepped).await {
            tracing::error!(resource = %self.name(), error = %e, "writing the identifiers failed");
        }
        self.after_conn_change(before, self.resource.state().cstate);
    }

    /// Online verify starts: VerifyS (`source`, the peer agreed) or VerifyT (the peer's
    /// request, which the session checked).
    pub(super) fn verify_started(&self, source: bool) {
        if self.resource.state().cstate == ConnState::Connected {
            self.conn_event(Event::StartVerify { source });
        }
        self.set_cstate(if source {
            ConnState::VerifyS
        } else {
            ConnState::VerifyT
        });
    }

    /// Online verify ended: -> Connected.
    pub(super) fn verify_done(&self) {
        self.conn_event(Event::VerifyDone);
        self.set_cstate(ConnState::Connected);
    }

    /// The pause flags (the link's `aftr_isp`, `peer_isp`, `user_isp`) as they are now:
    /// the core pauses or resumes a running resync.
    pub(super) fn sync_pause_flags(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let link = &self.link;
        self.conn_event(Event::SyncPauseFlags {
            aftr_isp: link.aftr_isp.load(SeqCst),
            peer_isp: link.peer_isp.load(SeqCst),
            user_isp: link.user_isp.load(SeqCst),
        });
    }

    /// The peer's identifiers (every P_UUIDS): the core's record of them.
    pub(super) fn peer_uuids(&self, uuids: &rdbd_wire::Uuids) {
        self.resource.step(Event::PeerUuids(generations_of(uuids)));
    }

    /// Feeds a resync event and waits until its identifiers are durable; `None`: the
    /// core was not in a state the event starts from.
    async fn resync_event(&self, event: Event, from: &[ConnState]) -> Option<Vec<Action>> {
        if !from.contains(&self.resource.state().cstate) {
            return None;
        }
        let before = self.resource.state().cstate;
        let mut stepped = self.step_logging_conn(event);
        let rest = std::mem::take(&mut stepped.actions);
        stepped.actions = rest
            .iter()
            .filter(|a| matches!(a, Action::StateChanged { .. } | Action::Log(_)))
            .cloned()
            .collect();
        if let Err(e) = self.resource.execute(&stepped).await {
            tracing::error!(resource = %self.name(), error = %e, "writing the identifiers failed");
        }
        self.after_conn_change(before, self.resource.state().cstate);
        Some(rest)
    }

    /// The bitmaps were exchanged on the SyncSource: a new bitmap identifier (durable),
    /// WFBitMapS -> SyncSource. Returns the identifier P_SYNC_UUID carries.
    pub(super) async fn bitmap_exchanged_source(&self) -> u64 {
        let actions = self
            .resync_event(Event::BitmapExchanged, &[ConnState::WFBitMapS])
            .await;
        if let Some(uuid) = actions.iter().flatten().find_map(|a| match a {
            Action::SendSyncUuid(uuid) => Some(*uuid),
            _ => None,
        }) {
            return uuid;
        }
        // Reached along a path the core did not see (e.g. invalidate-remote).
        let random = rand::random::<u64>() & !1;
        let g = self
            .persist(move |g| {
                rdbd_replicator::sync_handshake::source_sync_uuid(g, random);
            })
            .await;
        self.set_cstate(ConnState::SyncSource);
        g.bitmap
    }

    /// The bitmaps were exchanged on the SyncTarget: WFBitMapT -> WFSyncUUID.
    pub(super) async fn bitmap_exchanged_target(&self) {
        self.resync_event(Event::BitmapExchanged, &[ConnState::WFBitMapT])
            .await;
        self.set_cstate(ConnState::WFSyncUUID);
    }

    /// P_SYNC_UUID on the SyncTarget: the identifier becomes our current one (durable),
    /// WFSyncUUID -> SyncTarget.
    pub(super) async fn sync_uuid_received(&self, uuid: u64) {
        let taken = self
            .resync_event(Event::SyncUuid(uuid), &[ConnState::WFSyncUUID])
            .await;
        if taken.is_none() {
            let role = self.resource.state().role;
            self.persist(move |g| {
                rdbd_replicator::sync_handshake::target_sync_uuid_received(g, uuid, role)
            })
            .await;
            self.set_cstate(ConnState::SyncTarget);
        }
    }

    /// Every block was resynced: the SyncTarget takes the source's identifiers `peer`, the
    /// SyncSource retires its bitmap identifier (durable); both disks UpToDate, Connected.
    /// Returns our identifiers.
    pub(super) async fn resync_done(&self, peer: Option<Generations>) -> Generations {
        use ConnState as C;
        if let Some(peer) = peer {
            self.resource.step(Event::PeerUuids(peer));
        }
        let from = [C::SyncSource, C::PausedSyncS, C::SyncTarget, C::PausedSyncT];
        let target = matches!(self.resource.state().cstate, C::SyncTarget | C::PausedSyncT);
        if self.resync_event(Event::ResyncDone, &from).await.is_none() {
            // Not in a sync state the core knows: record it as the session sees it.
            let role = self.resource.state().role;
            self.update(|st| {
                if target {
                    st.disk = DiskState::UpToDate;
                }
                st.peer_disk = DiskState::UpToDate;
                st.cstate = C::Connected;
            });
            let mut peer = peer.unwrap_or_default();
            return self
                .persist(move |g| {
                    if target {
                        rdbd_replicator::sync_handshake::resync_finished_target(g, &mut peer, role)
                    } else {
                        let mut peer = *g;
                        rdbd_replicator::sync_handshake::resync_finished_source(g, &mut peer)
                    }
                })
                .await;
        }
        self.resource.generations()
    }
}
