//! The connection's life: connect, disconnect, the sockets closing, the handshake
//! (P_UUIDS + P_STATE, `drbd_sync_handshake`), the peer's later P_STATE, the bitmap exchange
//! and the end of a resync (drbd_receiver.c `receive_state`, drbd_worker.c
//! `drbd_resync_finished`).

use rdbd_types::{ConnState, DiskState, Role};

use super::{Action, NodeState, PeerParams, Request};
use crate::peer_state::{on_peer_state, PeerStateAction};
use crate::state::rules::ChangeKind;
use crate::state::{unconfigured, State, StateError};
use crate::sync_handshake::{
    handshake, resync_finished_source, resync_finished_target, source_sync_uuid, HandshakeInput,
    Level, LogLine, SyncDecision,
};
use crate::uuid_compare::{uuid_flag, CompareInput};

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

    /// `receive_state` with a sync handshake (`drbd_sync_handshake`): the decision, the
    /// identifier fix-ups, the handlers and the new state in one step.
    pub(super) fn peer_params(&mut self, p: PeerParams, out: &mut Vec<Action>) {
        let os = self.state;
        if !matches!(os.conn, ConnState::WFReportParams | ConnState::Connected) {
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
        // Without both disks there is nothing to compare: Connected (a Diskless side
        // reads and writes through its peer).
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
                agreed_pro_version: p.agreed_pro_version,
                agreed_features: p.agreed_features,
            });
            input.own_disk = own_disk;
            input.own_disk_now = self.state.disk;
            input.peer_disk = peer_disk;
            input.own_changed_blocks = p.own_changed_blocks;
            input.peer_changed_blocks = p.peer_changed_blocks;
            input.discard_my_data = self.discard_my_data;
            // call-pri-lost-after-sb cannot demote here: DRBD 8.4's drbd_change_state(role
            // Secondary) in drbd_asb_recover_1p/2p fails while the connection is being
            // established (STATE_SENT: SS_IN_TRANSIENT_STATE, silently), so the losing
            // Primary always runs pri-lost-after-sb and the split brain stays unresolved
            // (seen on a kernel 8.4.11 peer).
            input.can_demote = false;
            input.policies = self.cfg.policies;
            let h = handshake(&input);
            h.comparison
                .apply_fixups(&mut self.gens, &mut self.peer_gens);
            out.extend(h.log.iter().cloned().map(Action::LogLine));
            out.extend(h.handlers.iter().map(|&x| Action::RunHandler(x)));
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
        // A new connection is a soft change (the rules may refuse it, e.g. two
        // Primaries); a handshake on an established one is hard (DRBD's cs_flags).
        let kind = if os.conn < ConnState::Connected {
            ChangeKind::Soft
        } else {
            ChangeKind::Hard
        };
        let result = self.change(
            kind,
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
            out.push(Action::LogLine(LogLine {
                level: Level::Err,
                text: format!("State change failed: {e}"),
            }));
            out.push(Action::ConnectionRefused(e));
            self.force(|s| s.conn = ConnState::Disconnecting, out);
            return;
        }
        // DRBD clears DISCARD_MY_DATA once a P_STATE got through (end of receive_state).
        self.discard_my_data = false;
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

    pub(super) fn peer_outdated_for_disconnect(&mut self, out: &mut Vec<Action>) {
        if self.state.conn < ConnState::Connected {
            return;
        }
        self.force(
            |s| {
                s.conn = ConnState::Disconnecting;
                s.pdsk = DiskState::Outdated;
            },
            out,
        );
        out.push(Action::Completed(Request::Disconnect));
    }

    pub(super) fn start_verify(&mut self, source: bool, out: &mut Vec<Action>) {
        let conn = if source {
            ConnState::VerifyS
        } else {
            ConnState::VerifyT
        };
        match self.change(ChangeKind::Soft, |s| s.conn = conn, out) {
            Ok(_) => out.push(Action::Completed(Request::Verify)),
            Err(error) => out.push(Action::Refused {
                request: Request::Verify,
                error,
            }),
        }
    }

    pub(super) fn verify_done(&mut self, out: &mut Vec<Action>) {
        if matches!(self.state.conn, ConnState::VerifyS | ConnState::VerifyT) {
            self.force(|s| s.conn = ConnState::Connected, out);
        }
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
