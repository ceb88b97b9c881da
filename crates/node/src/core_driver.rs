//! The daemon as a driver of the sans-I/O state machine (`rdbd_replicator::state`).
//!
//! Every [`Resource`] owns one [`Core`]: a `NodeState` behind the resource's state lock.
//! It is the only place where the DRBD state (role, peer, conn, disk, pdsk), the clients
//! holding the device open, CRASHED_PRIMARY and the generation identifiers live; everything
//! else reads snapshots ([`Resource::state`], [`Resource::generations`]). A change is an
//! event fed to the core; the actions it returns are executed here:
//!
//! - `WriteMeta`: numbered under the lock ([`IdentifierWrite::seq`]) and written by
//!   `ResourceMeta::write_identifiers`, which skips a write overtaken by a newer one, so the
//!   superblock only ever records what the core decided, in order.
//! - `SetAllOutOfSync` / `ClearBitmap`: the bitmap, written before the identifiers.
//! - `StateChanged`, `Log`: log lines; `SendUuids`: P_UUIDS + P_STATE through the session.
//! - `Completed` / `Refused` / `SendStateRequest`: returned to the admin command that asked.
//! - `SendState`, `CloseConnection`, `SetOutOfSyncFromLog`: the session does these itself
//!   (it sends P_STATE where DRBD does, ends the connection and fails the transfer log).
//!
//! Admin changes that a client may act on at once (`primary`: PRIMARY_IND and the new
//! generation) are made durable first ([`Resource::step_durable`]): the event is stepped on
//! a copy of the core, its meta-data written, then stepped for real; the copy's random
//! generator is the same, so both produce the same identifiers.

use rdbd_replicator::generation::Generations;
use rdbd_replicator::state::{Action, Event, NodeState, Request, StateError as RuleError};
use rdbd_types::Role;

use crate::meta::{IdentifierWrite, MetaIoError};
use crate::resource::{Resource, ResourceState};

/// The state machine of one resource and the number of its last identifier write.
#[derive(Debug)]
pub struct Core {
    node: NodeState,
    meta_seq: u64,
}

/// What one step decided: the actions, with the meta-data write taken out and numbered.
#[derive(Debug, Default)]
pub struct Stepped {
    /// The actions other than `WriteMeta`, in order.
    pub actions: Vec<Action>,
    /// The identifiers and flags to write first.
    pub meta: Option<IdentifierWrite>,
}

impl Stepped {
    /// How a request ended, if this step decided it.
    pub fn outcome(&self, request: Request) -> Option<Result<(), RuleError>> {
        self.actions.iter().find_map(|a| match a {
            Action::Completed(r) if *r == request => Some(Ok(())),
            Action::Refused { request: r, error } if *r == request => Some(Err(*error)),
            _ => None,
        })
    }

    /// The role the core asks the peer to agree to (P_STATE_CHG_REQ), if any.
    pub fn state_request(&self) -> Option<Role> {
        self.actions.iter().find_map(|a| match a {
            Action::SendStateRequest { role } => Some(*role),
            _ => None,
        })
    }
}

impl Core {
    /// A core attached to the meta-data read at `up`.
    pub fn new(cfg: rdbd_replicator::state::Config, gens: Generations, md_flags: u32) -> Core {
        let mut node = NodeState::new(cfg, rand::random());
        let out = node.step(Event::Attach { gens, md_flags });
        debug_assert!(out.contains(&Action::Completed(Request::Attach)), "{out:?}");
        Core { node, meta_seq: 0 }
    }

    /// The state machine (read-only).
    pub fn node(&self) -> &NodeState {
        &self.node
    }

    /// The snapshot the rest of the daemon reads.
    pub fn snapshot(&self) -> ResourceState {
        let s = self.node.state();
        ResourceState {
            role: s.role,
            disk: s.disk,
            cstate: s.conn,
            peer_role: s.peer,
            peer_disk: s.pdsk,
            open_clients: self.node.open_count(),
        }
    }

    /// Feeds one event.
    pub fn step(&mut self, event: Event) -> Stepped {
        let out = self.node.step(event);
        self.number(out)
    }

    /// Takes the connection's split-brain policies (read by the next handshake).
    pub fn set_policies(&mut self, policies: rdbd_replicator::sync_handshake::Policies) {
        let cfg = self.node.config();
        self.node
            .set_config(rdbd_replicator::state::Config { policies, ..cfg });
    }

    /// Changes the identifiers (bookkeeping the session still does itself).
    pub fn update_generations(&mut self, f: impl FnOnce(&mut Generations)) -> Stepped {
        let out = self.node.update_generations(f);
        self.number(out)
    }

    /// The identifiers and flags as they are now, as a write.
    pub fn current_identifiers(&mut self) -> IdentifierWrite {
        self.meta_seq += 1;
        IdentifierWrite {
            gens: self.node.gens(),
            md_flags: self.node.md_flags(),
            seq: self.meta_seq,
        }
    }

    fn number(&mut self, out: Vec<Action>) -> Stepped {
        let mut stepped = Stepped::default();
        for a in out {
            match a {
                Action::WriteMeta { gens, md_flags } => {
                    self.meta_seq += 1;
                    stepped.meta = Some(IdentifierWrite {
                        gens,
                        md_flags,
                        seq: self.meta_seq,
                    });
                }
                other => stepped.actions.push(other),
            }
        }
        stepped
    }

    /// A copy to try an event on (same random generator: same identifiers).
    fn trial(&self) -> Core {
        Core {
            node: self.node.clone(),
            meta_seq: self.meta_seq,
        }
    }
}

impl Resource {
    /// Feeds `event` to the core; the caller executes the result ([`Resource::execute`]).
    pub fn step(&self, event: Event) -> Stepped {
        self.with_core(|c| c.step(event))
    }

    /// The UUID flags the core reports (crashed primary, `--discard-my-data`,
    /// inconsistent), as P_UUIDS carries them.
    pub fn uuid_flags(&self) -> u64 {
        self.with_core(|c| c.node().uuid_flags())
    }

    /// `connect --discard-my-data` in effect (kept by the core until a handshake got
    /// through).
    pub fn discard_my_data(&self) -> bool {
        self.with_core(|c| c.node().discard_my_data())
    }

    /// Feeds `event` and executes what it decided in the background (for callers that
    /// cannot wait: the meta-data write is spawned, ordered by its number).
    pub fn step_and_spawn(&self, event: Event) -> Stepped {
        let stepped = self.step(event);
        self.execute_in_background(&stepped);
        stepped
    }

    /// Logs, sends and spawns the meta-data write of `stepped` without waiting.
    pub fn execute_in_background(&self, stepped: &Stepped) {
        if let Some(w) = stepped.meta {
            let write = self.meta.write_identifiers(w);
            let name = self.name.clone();
            tokio::spawn(async move {
                if let Err(e) = write.await {
                    tracing::error!(resource = %name, error = %e, "writing the identifiers failed");
                }
            });
        }
        self.log_and_send(&stepped.actions);
    }

    /// Executes `stepped`: the bitmap, then the identifiers (awaited), then the rest.
    pub async fn execute(&self, stepped: &Stepped) -> Result<(), MetaIoError> {
        self.write_bitmap_actions(&stepped.actions).await?;
        if let Some(w) = stepped.meta {
            self.meta.write_identifiers(w).await?;
        }
        self.log_and_send(&stepped.actions);
        Ok(())
    }

    /// Writes the identifiers and flags as the core has them now and waits for it.
    pub async fn flush_identifiers(&self) -> Result<(), MetaIoError> {
        let w = self.with_core(|c| c.current_identifiers());
        self.meta.write_identifiers(w).await
    }

    /// An admin event whose meta-data must be durable before its effect is visible: tried
    /// on a copy of the core, its bitmap and identifiers written, then stepped for real
    /// (whatever the real step decides differently is written too).
    pub async fn step_durable(&self, event: Event) -> Result<Stepped, MetaIoError> {
        let trial = self.with_core(|c| {
            let mut copy = c.trial();
            let stepped = copy.step(event);
            // The copy's write number is used up: later writes of the real core come after.
            c.meta_seq = copy.meta_seq;
            stepped
        });
        self.write_bitmap_actions(&trial.actions).await?;
        if let Some(w) = trial.meta {
            self.meta.write_identifiers(w).await?;
        }
        let real = self.step(event);
        if let Some(w) = real.meta.filter(|w| {
            trial
                .meta
                .is_none_or(|t| (t.gens, t.md_flags) != (w.gens, w.md_flags))
        }) {
            self.meta.write_identifiers(w).await?;
        }
        self.log_and_send(&real.actions);
        Ok(real)
    }

    async fn write_bitmap_actions(&self, actions: &[Action]) -> Result<(), MetaIoError> {
        for a in actions {
            match a {
                Action::SetAllOutOfSync => self.meta.invalidate_bitmap().await?,
                Action::ClearBitmap => self.meta.clear_bitmap().await?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Logs (`StateChanged`, `Log`, `LogLine`) and tells the peer (`SendUuids`) what
    /// `actions` say; the rest is left to the caller.
    pub(crate) fn log_and_send(&self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::StateChanged { old, new, warning } => {
                    if let Some(w) = warning {
                        tracing::warn!(resource = %self.name, "{}", w.text());
                    }
                    log_change(&self.name, old, new);
                    crate::status_file::state_changed();
                }
                Action::Log(line) => tracing::info!(resource = %self.name, "{line}"),
                Action::LogLine(line) => {
                    use rdbd_replicator::sync_handshake::Level;
                    match line.level {
                        Level::Info => tracing::info!(resource = %self.name, "{}", line.text),
                        Level::Warn => tracing::warn!(resource = %self.name, "{}", line.text),
                        Level::Err | Level::Alert => {
                            tracing::error!(resource = %self.name, "{}", line.text)
                        }
                    }
                }
                Action::SendUuids { .. } => {
                    if let Some(link) = self.peer_link() {
                        link.state_changed();
                    }
                }
                _ => {}
            }
        }
    }
}

fn log_change(name: &str, old: &rdbd_wire::DrbdState, new: &rdbd_wire::DrbdState) {
    let mut parts = Vec::new();
    if old.role != new.role {
        parts.push(format!("role( {} -> {} )", old.role, new.role));
    }
    if old.peer != new.peer {
        parts.push(format!("peer( {} -> {} )", old.peer, new.peer));
    }
    if old.disk != new.disk {
        parts.push(format!("disk( {} -> {} )", old.disk, new.disk));
    }
    if old.pdsk != new.pdsk {
        parts.push(format!("pdsk( {} -> {} )", old.pdsk, new.pdsk));
    }
    if !parts.is_empty() {
        tracing::debug!(resource = %name, "{}", parts.join(" "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdbd_replicator::generation::md_flag::{CONSISTENT, WAS_UP_TO_DATE};
    use rdbd_types::DiskState;

    const GEN: Generations = Generations {
        current: 0xAB00,
        bitmap: 0,
        history: [0, 0],
    };

    #[test]
    fn identifier_writes_are_numbered_in_decision_order() {
        let mut core = Core::new(Default::default(), GEN, CONSISTENT | WAS_UP_TO_DATE);
        assert_eq!(core.snapshot().disk, DiskState::UpToDate);
        let promoted = core.step(Event::Promote { force: false });
        assert_eq!(promoted.outcome(Request::Promote), Some(Ok(())));
        let first = promoted
            .meta
            .expect("PRIMARY_IND and a new generation are written");
        assert_eq!(first.gens, core.node().gens());
        let demoted = core.step(Event::Demote);
        let second = demoted.meta.expect("PRIMARY_IND goes");
        assert!(second.seq > first.seq);
        assert!(!promoted
            .actions
            .iter()
            .any(|a| matches!(a, Action::WriteMeta { .. })));
    }

    #[test]
    fn a_trial_decides_the_same_identifiers_as_the_real_step() {
        let mut core = Core::new(Default::default(), GEN, CONSISTENT | WAS_UP_TO_DATE);
        let trial = core.trial().step(Event::Promote { force: false });
        let real = core.step(Event::Promote { force: false });
        assert_eq!(trial.meta, real.meta);
        assert_eq!(core.snapshot().role, Role::Primary);
    }

    #[test]
    fn refusals_come_back_as_outcomes() {
        let mut core = Core::new(Default::default(), GEN, 0);
        assert_eq!(core.snapshot().disk, DiskState::Inconsistent);
        let s = core.step(Event::Promote { force: false });
        assert_eq!(
            s.outcome(Request::Promote),
            Some(Err(RuleError::NoUpToDateDisk))
        );
        assert_eq!(s.outcome(Request::Demote), None);
        assert_eq!(core.snapshot().role, Role::Secondary);
    }
}
