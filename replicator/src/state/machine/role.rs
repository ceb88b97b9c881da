//! Role changes: `primary [--force]` with its retries (drbd_nl.c `drbd_set_role`), the
//! cluster-wide request to the peer and the peer's side of it (drbd_receiver.c
//! `receive_req_state`, RESOLVE_CONFLICTS for concurrent requests).

use rdbd_types::{ConnState, DiskState, Role};

use super::{Action, NodeState, Request};
use crate::generation::on_promote;
use crate::state::rules::ChangeKind;
use crate::state::{State, StateError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PendingPromote {
    pub(super) forced: bool,
    /// `--force`: the disk is taken as UpToDate.
    pub(super) disk: Option<DiskState>,
    /// `--force` with fencing: the peer is taken as Outdated.
    pub(super) pdsk: Option<DiskState>,
}

impl PendingPromote {
    pub(super) fn apply(self, s: &mut State) {
        s.role = Role::Primary;
        if let Some(d) = self.disk {
            s.disk = d;
        }
        if let Some(d) = self.pdsk {
            s.pdsk = d;
        }
    }
}

impl NodeState {
    pub(super) fn promote(&mut self, force: bool, out: &mut Vec<Action>) {
        let refuse = |error| Action::Refused {
            request: Request::Promote,
            error,
        };
        if self.state.role == Role::Primary {
            out.push(Action::Completed(Request::Promote));
            return;
        }
        if self.pending.is_some() {
            out.push(refuse(StateError::ConcurrentChange));
            return;
        }
        let mut p = PendingPromote {
            forced: false,
            disk: None,
            pdsk: None,
        };
        let attempt =
            |me: &NodeState, p: PendingPromote| me.check(ChangeKind::Soft, |s| p.apply(s));
        let mut result = attempt(self, p);
        if result == Err(StateError::NoUpToDateDisk)
            && force
            && (DiskState::Inconsistent..DiskState::UpToDate).contains(&self.state.disk)
        {
            p.disk = Some(DiskState::UpToDate);
            p.forced = true;
            result = attempt(self, p);
        }
        if result == Err(StateError::PrimaryNop) && force {
            out.push(Action::Log("Forced into split brain situation!".into()));
            p.pdsk = Some(DiskState::Outdated);
            result = attempt(self, p);
        }
        if let Err(e) = result {
            out.push(refuse(e));
            return;
        }
        if self.state.conn >= ConnState::Connected {
            self.pending = Some(p);
            out.push(Action::SendStateRequest {
                role: Role::Primary,
            });
            return;
        }
        self.apply_promotion(p, out);
    }

    pub(super) fn apply_promotion(&mut self, p: PendingPromote, out: &mut Vec<Action>) {
        let result = self.change(ChangeKind::Soft, |s| p.apply(s), out);
        match result {
            Ok(_) => {
                let connected = self.state.conn >= ConnState::Connected;
                let random = self.random_uuid();
                on_promote(&mut self.gens, connected, self.state.pdsk, p.forced, random);
                self.discard_my_data = false;
                if p.forced {
                    out.push(Action::Log(
                        "Forced to consider local data as UpToDate!".into(),
                    ));
                }
                if self.state.conn >= ConnState::WFReportParams && p.forced {
                    out.push(self.send_uuids());
                }
                out.push(Action::Completed(Request::Promote));
            }
            Err(error) => {
                if self.state.conn >= ConnState::Connected {
                    // The peer accepted a promotion that did not happen: correct its view.
                    out.push(Action::SendState(self.state));
                }
                out.push(Action::Refused {
                    request: Request::Promote,
                    error,
                });
            }
        }
    }

    pub(super) fn peer_state_request(&mut self, role: Role, out: &mut Vec<Action>) {
        if self.state.conn < ConnState::Connected {
            out.push(Action::SendStateReply(Err(StateError::NeedConnection)));
            return;
        }
        if role == Role::Primary && self.pending.is_some() && self.resolve_conflicts {
            out.push(Action::SendStateReply(Err(StateError::ConcurrentChange)));
            return;
        }
        let result = self.change(ChangeKind::Soft, |s| s.peer = role, out);
        out.push(Action::SendStateReply(result.map(|_| ())));
    }
}
