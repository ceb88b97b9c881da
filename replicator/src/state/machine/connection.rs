//! The connection's life: connect, disconnect, the sockets closing, the handshake
//! (P_UUIDS + P_STATE, `drbd_sync_handshake`), the peer's later P_STATE, the bitmap exchange
//! and the end of a resync (drbd_receiver.c `receive_state`, drbd_worker.c
//! `drbd_resync_finished`).

use rdbd_types::{ConnState, DiskState, Role};

use super::{Action, NodeState, PeerParams, Request};
use crate::generation::on_demote;
use crate::peer_state::{on_peer_state, PeerStateAction};
use crate::state::rules::ChangeKind;
use crate::state::{unconfigured, State, StateError};
use crate::sync_handshake::{
    handshake, resync_finished_source, resync_finished_target, source_sync_uuid, HandshakeInput,
    SyncDecision,
};
use crate::uuid_compare::{uuid_flag, CompareInput, DRBD_FF_WSAME, PRO_VERSION_MAX};

impl NodeState {
    pub(super) fn connect(&mut self, discard_my_data: bool, out: &mut Vec<Action>) {
        if self.state.conn != ConnState::StandAlone {
            return;
        }
        self.discard_my_data = discard_my_data;
        self.force(|s| s.conn = ConnState::Unconnected, out);
        self.force(|s| s.conn = ConnState::WFConnection, out);
        out.push(Action::StartConnecting);
        out.push(Action::Completed(Request::Connect));
    }

    pub(super) fn disconnect(&mut self, out: &mut Vec<Action>) {
        match self.state.conn {
            ConnState::StandAlone => out.push(Action::Refused {
                request: Request::Disconnect,
                error: StateError::AlreadyStandAlone,
            }),
            ConnState::Disconnecting => {}
            _ => {
                self.force(|s| s.conn = ConnState::Disconnecting, out);
                out.push(Action::Completed(Request::Disconnect));
            }
        }
    }

    pub(super) fn connection_closed(&mut self, out: &mut Vec<Action>) {
        use ConnState as C;
        match self.state.conn {
            C::Disconnecting => {
                self.force(|s| s.conn = C::StandAlone, out);
                self.discard_my_data = false;
            }
            c if (C::Timeout..=C::TearDown).contains(&c) => {
                self.force(|s| s.conn = C::Unconnected, out);
                self.force(|s| s.conn = C::WFConnection, out);
                out.push(Action::StartConnecting);
            }
            _ => {}
        }
    }

    pub(super) fn peer_params(&mut self, p: PeerParams, out: &mut Vec<Action>) {
        if self.state.conn != ConnState::WFReportParams {
            return;
        }
        self.peer_gens = p.gens;
        let peer_disk = if p.disk == DiskState::Negotiating {
            if p.uuid_flags & uuid_flag::INCONSISTENT != 0 {
                DiskState::Inconsistent
            } else {
                DiskState::Consistent
            }
        } else {
            p.disk
        };
        let own_disk = match (self.state.disk, self.negotiating_fallback) {
            (DiskState::Negotiating, Some((d, _))) => d,
            (d, _) => d,
        };
        let decision = if own_disk < DiskState::Inconsistent || peer_disk < DiskState::Inconsistent
        {
            SyncDecision::NoSync
        } else {
            let mut input = HandshakeInput::new(CompareInput {
                own: self.gens,
                peer: p.gens,
                peer_flags: p.uuid_flags,
                own_crashed_primary: self.crashed_primary,
                own_role: self.state.role,
                peer_role: p.role,
                resolve_conflicts: self.resolve_conflicts,
                agreed_pro_version: PRO_VERSION_MAX,
                agreed_features: DRBD_FF_WSAME,
            });
            input.own_disk = own_disk;
            input.own_disk_now = self.state.disk;
            input.peer_disk = peer_disk;
            input.own_changed_blocks = p.own_changed_blocks;
            input.peer_changed_blocks = p.peer_changed_blocks;
            input.discard_my_data = self.discard_my_data;
            input.can_demote = self.open_count == 0;
            input.policies = self.cfg.policies;
            let h = handshake(&input);
            h.comparison
                .apply_fixups(&mut self.gens, &mut self.peer_gens);
            out.extend(h.log.iter().map(|l| Action::Log(l.text.clone())));
            out.extend(h.handlers.iter().map(|&x| Action::RunHandler(x)));
            if h.demote {
                self.force(|s| s.role = Role::Secondary, out);
                on_demote(&mut self.gens);
            }
            h.decision
        };
        let (conn, full) = match decision {
            SyncDecision::NoSync => (ConnState::Connected, false),
            SyncDecision::Source { full } => (ConnState::WFBitMapS, full),
            SyncDecision::Target { full } => (ConnState::WFBitMapT, full),
            SyncDecision::Refuse(r) => {
                out.push(Action::HandshakeRefused(r));
                self.force(|s| s.conn = ConnState::Disconnecting, out);
                return;
            }
        };
        let result = self.change(
            ChangeKind::Soft,
            |s| {
                s.conn = conn;
                s.peer = p.role;
                s.pdsk = peer_disk;
                if s.disk == DiskState::Negotiating {
                    s.disk = own_disk;
                }
            },
            out,
        );
        if let Err(e) = result {
            out.push(Action::Log(format!("refusing the connection: {e}")));
            self.force(|s| s.conn = ConnState::Disconnecting, out);
            return;
        }
        if full {
            out.push(Action::SetAllOutOfSync);
        }
        if conn != ConnState::Connected {
            out.push(Action::ExchangeBitmap);
        }
    }

    pub(super) fn peer_state(
        &mut self,
        role: Role,
        disk: DiskState,
        conn: ConnState,
        out: &mut Vec<Action>,
    ) {
        if self.state.conn < ConnState::Connected {
            return;
        }
        let peer = State {
            role,
            peer: self.state.role,
            conn,
            disk,
            pdsk: self.state.disk,
            ..unconfigured()
        };
        if on_peer_state(self.state.conn, self.state.disk, &peer, false)
            == PeerStateAction::ResyncFinished
        {
            self.finish_as_source(out);
        }
        self.force(
            |s| {
                s.peer = role;
                s.pdsk = disk;
            },
            out,
        );
    }

    pub(super) fn finish_as_source(&mut self, out: &mut Vec<Action>) {
        resync_finished_source(&mut self.gens, &mut self.peer_gens);
        self.force(
            |s| {
                s.conn = ConnState::Connected;
                s.pdsk = DiskState::UpToDate;
            },
            out,
        );
    }

    pub(super) fn resync_done(&mut self, out: &mut Vec<Action>) {
        match self.state.conn {
            ConnState::SyncTarget | ConnState::PausedSyncT => {
                resync_finished_target(&mut self.gens, &mut self.peer_gens, self.state.role);
                self.force(
                    |s| {
                        s.conn = ConnState::Connected;
                        s.disk = DiskState::UpToDate;
                        s.pdsk = DiskState::UpToDate;
                    },
                    out,
                );
            }
            ConnState::SyncSource | ConnState::PausedSyncS => self.finish_as_source(out),
            _ => {}
        }
    }

    pub(super) fn bitmap_exchanged(&mut self, out: &mut Vec<Action>) {
        match self.state.conn {
            ConnState::WFBitMapS => {
                let random = self.random_uuid();
                let uuid = source_sync_uuid(&mut self.gens, random);
                self.force(|s| s.conn = ConnState::SyncSource, out);
                out.push(Action::SendSyncUuid(uuid));
                out.push(Action::StartResync { source: true });
            }
            ConnState::WFBitMapT => self.force(|s| s.conn = ConnState::WFSyncUUID, out),
            _ => {}
        }
    }
}
