//! Attach, detach and local I/O errors (drbd_nl.c `drbd_adm_attach`, `drbd_adm_detach`;
//! on-io-error detach).

use rdbd_types::{ConnState, DiskState};

use super::{Action, NodeState, Request};
use crate::generation::{disk_state_at_attach, md_flag, Generations};
use crate::state::rules::ChangeKind;
use crate::state::{Fencing, StateError};

impl NodeState {
    pub(super) fn attach(&mut self, gens: Generations, md_flags: u32, out: &mut Vec<Action>) {
        let refuse = |error| Action::Refused {
            request: Request::Attach,
            error,
        };
        if self.state.disk != DiskState::Diskless {
            out.push(refuse(StateError::InTransientState));
            return;
        }
        if self.state.conn == ConnState::WFReportParams {
            out.push(refuse(StateError::InTransientState));
            return;
        }
        if let Err(e) = self.change(ChangeKind::Soft, |s| s.disk = DiskState::Attaching, out) {
            out.push(refuse(e));
            return;
        }
        self.gens = gens;
        self.md_flags = md_flags;
        self.written = Some((gens, md_flags));
        self.crashed_primary = md_flags & (md_flag::CRASHED_PRIMARY | md_flag::PRIMARY_IND) != 0;
        let (disk, pdsk) = disk_state_at_attach(md_flags, self.cfg.fencing == Fencing::DontCare);
        if self.state.conn >= ConnState::Connected {
            // Attached while connected: the peer's disk stays as it reported it; with a peer
            // that has a disk the sync handshake decides (Negotiating until then).
            let negotiate = self.state.pdsk >= DiskState::Inconsistent;
            if negotiate {
                self.negotiating_fallback = Some((disk, pdsk));
            }
            let now = if negotiate {
                DiskState::Negotiating
            } else {
                disk
            };
            self.force(|s| s.disk = now, out);
        } else {
            self.force(
                |s| {
                    s.disk = disk;
                    s.pdsk = pdsk;
                },
                out,
            );
        }
        out.push(Action::Completed(Request::Attach));
    }

    pub(super) fn detach(&mut self, io_error: bool, out: &mut Vec<Action>) {
        if self.state.disk == DiskState::Diskless {
            if !io_error {
                out.push(Action::Refused {
                    request: Request::Detach,
                    error: StateError::IsDiskless,
                });
            }
            return;
        }
        let kind = if io_error {
            ChangeKind::Hard
        } else {
            ChangeKind::Soft
        };
        if let Err(error) = self.change(kind, |s| s.disk = DiskState::Failed, out) {
            out.push(Action::Refused {
                request: Request::Detach,
                error,
            });
            return;
        }
        self.force(|s| s.disk = DiskState::Diskless, out);
        if !io_error {
            out.push(Action::Completed(Request::Detach));
        }
    }
}
