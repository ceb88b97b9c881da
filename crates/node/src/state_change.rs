//! Every local state change of a [`Resource`] (role, disk, connection, the peer's disk and
//! role) goes through [`change`]: it builds the old and the new [`DrbdState`] and lets
//! DRBD 8.4's rules decide (`rdbd_replicator::state::rules::check_change`: `sanitize_state`,
//! `is_valid_transition`, and for soft changes `is_valid_state` and
//! `is_valid_soft_transition`), then applies the sanitized state or returns the refusal
//! with DRBD's code and text.
//!
//! - Soft changes ([`ChangeKind::Soft`]) are what a user asked for (`primary`, `secondary`,
//!   `outdate`, `invalidate`, `attach`, `detach`): refused when the rules say so.
//! - Hard changes ([`ChangeKind::Hard`]) are what happened (the connection broke, the peer
//!   reported its state, a resync ended): sanitized like DRBD does; a change that breaks
//!   the transition rules (which DRBD refuses even for hard changes) is logged with DRBD's
//!   text and not applied.
//!
//! Invariant: the state stored in a [`Resource`] is always the sanitized state of the last
//! accepted change (`sanitize_state` is idempotent on it).

use rdbd_replicator::state::rules::{self, ChangeKind, Checked, RuleContext, SanitizeWarning};
use rdbd_replicator::state::{Fencing, StateError as RuleError};
use rdbd_types::{ConnState, DiskState};
use rdbd_wire::DrbdState;

use crate::handlers::fencing::FencePolicy;
use crate::resource::{Resource, ResourceState};

/// What an accepted change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sanitized new state equals the old one (DRBD `SS_NOTHING_TO_DO`).
    NothingToDo,
    /// The state changed from `old` to `new`.
    Changed {
        /// Before.
        old: ResourceState,
        /// After (sanitized).
        new: ResourceState,
    },
}

/// The DRBD state of a resource state (the suspend and pause bits are not modelled here:
/// `rules` only reads them in `sanitize_state`, which keeps them).
pub fn drbd_state(st: &ResourceState) -> DrbdState {
    DrbdState {
        role: st.role,
        peer: st.peer_role,
        conn: st.cstate,
        disk: st.disk,
        pdsk: st.peer_disk,
        susp: false,
        aftr_isp: false,
        peer_isp: false,
        user_isp: false,
        susp_nod: false,
        susp_fen: false,
    }
}

fn fencing_of(policy: FencePolicy) -> Fencing {
    match policy {
        FencePolicy::DontCare => Fencing::DontCare,
        FencePolicy::ResourceOnly => Fencing::ResourceOnly,
        FencePolicy::ResourceAndStonith => Fencing::ResourceAndStonith,
    }
}

/// What the rules read besides the state: rdbd has no `allow-two-primaries` (refused at
/// the handshake), a net configuration exactly for replicated resources.
pub fn rule_context(resource: &Resource, st: &ResourceState) -> RuleContext {
    RuleContext {
        two_primaries: false,
        has_net_config: resource.protocol.is_some(),
        fencing: fencing_of(resource.hooks.fencing()),
        open_count: st.open_clients,
        state_sent: false,
    }
}

/// The pure decision: the old state, the requested one, the rules' verdict.
pub fn check(
    old: &ResourceState,
    requested: &ResourceState,
    kind: ChangeKind,
    cx: &RuleContext,
) -> Result<Option<(ResourceState, Option<SanitizeWarning>)>, RuleError> {
    let os = drbd_state(old);
    let ns = drbd_state(requested);
    if kind == ChangeKind::Hard {
        // What happened is recorded as it is (the session keeps the peer's view itself);
        // only DRBD's transition rules, which bind hard changes too, are enforced.
        if requested == old {
            return Ok(None);
        }
        rules::is_valid_transition(&os, &ns)?;
        return Ok(Some((requested.clone(), None)));
    }
    match rules::check_change(&os, ns, kind, cx, None)? {
        Checked::NothingToDo => Ok(None),
        Checked::Valid(ns, warning) => {
            let mut new = requested.clone();
            new.role = ns.role;
            new.peer_role = ns.peer;
            new.cstate = ns.conn;
            new.disk = ns.disk;
            new.peer_disk = ns.pdsk;
            Ok(Some((new, warning)))
        }
    }
}

/// Requests a change: `f` edits a copy of the state; the rules decide under the state lock
/// whether (and in what sanitized form) it is applied.
pub fn change(
    resource: &Resource,
    kind: ChangeKind,
    f: impl FnOnce(&mut ResourceState),
) -> Result<Outcome, RuleError> {
    let result: Result<Outcome, RuleError> = resource.update_state_unchecked(|st| {
        let old = st.clone();
        let mut requested = old.clone();
        f(&mut requested);
        if requested == old {
            return Ok(Outcome::NothingToDo);
        }
        let cx = rule_context(resource, &old);
        match check(&old, &requested, kind, &cx)? {
            None => Ok(Outcome::NothingToDo),
            Some((new, warning)) => {
                if let Some(w) = warning {
                    tracing::warn!(resource = %resource.name, "{}", w.text());
                }
                *st = new.clone();
                Ok(Outcome::Changed { old, new })
            }
        }
    });
    match &result {
        Ok(Outcome::Changed { old, new }) => {
            // The peer's disk counts once the handshake is through: DRBD applies the peer's
            // disk state together with the state the handshake chose, so during
            // WFReportParams the crashed-primary flag still decides the sync source.
            let both_up_to_date = |s: &ResourceState| {
                s.disk == DiskState::UpToDate
                    && s.peer_disk == DiskState::UpToDate
                    && s.cstate >= ConnState::Connected
            };
            // drbd_state.c after_state_ch: both disks UpToDate ends the crashed-primary state.
            if both_up_to_date(new) && !both_up_to_date(old) {
                resource.meta.clear_crashed_primary();
            }
            crate::status_file::state_changed();
            log_change(resource, old, new)
        }
        Ok(Outcome::NothingToDo) => {}
        Err(e) => {
            tracing::warn!(resource = %resource.name, code = e.code(), ?kind, "State change failed: ({}) {e}", e.code())
        }
    }
    result
}

/// Whether a soft change would be accepted now, without applying it: the sanitized new
/// state (`None`: nothing to do). For changes that must be recorded in the meta-data first.
pub fn dry_run(
    resource: &Resource,
    f: impl FnOnce(&mut ResourceState),
) -> Result<Option<ResourceState>, RuleError> {
    let old = resource.state();
    let mut requested = old.clone();
    f(&mut requested);
    if requested == old {
        return Ok(None);
    }
    let cx = rule_context(resource, &old);
    Ok(check(&old, &requested, ChangeKind::Soft, &cx)?.map(|(new, _)| new))
}

/// A hard change ([`change`] with [`ChangeKind::Hard`]) whose refusal is only logged.
pub fn hard(resource: &Resource, f: impl FnOnce(&mut ResourceState)) {
    let _ = change(resource, ChangeKind::Hard, f);
}

fn log_change(resource: &Resource, old: &ResourceState, new: &ResourceState) {
    let mut parts = Vec::new();
    if old.role != new.role {
        parts.push(format!("role( {} -> {} )", old.role, new.role));
    }
    if old.peer_role != new.peer_role {
        parts.push(format!("peer( {} -> {} )", old.peer_role, new.peer_role));
    }
    if old.disk != new.disk {
        parts.push(format!("disk( {} -> {} )", old.disk, new.disk));
    }
    if old.peer_disk != new.peer_disk {
        parts.push(format!("pdsk( {} -> {} )", old.peer_disk, new.peer_disk));
    }
    if !parts.is_empty() {
        tracing::debug!(resource = %resource.name, "{}", parts.join(" "));
    }
}

/// The connection states a hard change of the connection passes through so that every
/// step obeys `is_valid_conn_transition`: StandAlone only leaves to Unconnected,
/// Disconnecting only to StandAlone, Timeout..TearDown only to Unconnected or
/// Disconnecting (DRBD: `conn( StandAlone -> Unconnected )` before WFConnection).
pub fn conn_path(old: ConnState, new: ConnState) -> Vec<ConnState> {
    use ConnState as C;
    let mut path = Vec::new();
    let mut at = old;
    while at != new && path.len() < 3 {
        let next = match at {
            C::StandAlone if !matches!(new, C::Unconnected | C::Disconnecting) => C::Unconnected,
            C::Disconnecting if new != C::StandAlone => C::StandAlone,
            c if (C::Timeout..=C::TearDown).contains(&c)
                && !matches!(new, C::Unconnected | C::Disconnecting) =>
            {
                C::Unconnected
            }
            _ => new,
        };
        path.push(next);
        at = next;
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdbd_types::{DiskState, Role};

    #[test]
    fn connection_paths_follow_drbds_order() {
        use ConnState as C;
        assert_eq!(
            conn_path(C::StandAlone, C::WFConnection),
            [C::Unconnected, C::WFConnection]
        );
        assert_eq!(
            conn_path(C::Disconnecting, C::Unconnected),
            [C::StandAlone, C::Unconnected]
        );
        assert_eq!(conn_path(C::BrokenPipe, C::Unconnected), [C::Unconnected]);
        assert_eq!(conn_path(C::Connected, C::Connected), Vec::<C>::new());
        for (a, b) in [
            (C::StandAlone, C::WFConnection),
            (C::Disconnecting, C::WFConnection),
            (C::Timeout, C::WFConnection),
        ] {
            let mut at = a;
            for c in conn_path(a, b) {
                let mk = |conn| DrbdState {
                    conn,
                    ..drbd_state(&st(
                        Role::Secondary,
                        C::StandAlone,
                        DiskState::UpToDate,
                        DiskState::DUnknown,
                    ))
                };
                assert_eq!(
                    rules::is_valid_transition(&mk(at), &mk(c)),
                    Ok(()),
                    "{at} -> {c}"
                );
                at = c;
            }
        }
    }

    fn st(role: Role, cstate: ConnState, disk: DiskState, peer_disk: DiskState) -> ResourceState {
        ResourceState {
            role,
            disk,
            cstate,
            peer_role: if cstate >= ConnState::Connected {
                Role::Secondary
            } else {
                Role::Unknown
            },
            peer_disk,
            open_clients: 0,
        }
    }

    fn cx() -> RuleContext {
        RuleContext {
            has_net_config: true,
            ..RuleContext::default()
        }
    }

    #[test]
    fn promoting_without_up_to_date_data_is_refused_with_drbds_code() {
        let old = st(
            Role::Secondary,
            ConnState::StandAlone,
            DiskState::Outdated,
            DiskState::DUnknown,
        );
        let new = ResourceState {
            role: Role::Primary,
            ..old.clone()
        };
        let e = check(&old, &new, ChangeKind::Soft, &cx()).unwrap_err();
        assert_eq!(e, RuleError::NoUpToDateDisk);
        assert_eq!(e.code(), -2);
        assert_eq!(e.to_string(), "Need access to UpToDate data");
    }

    #[test]
    fn demoting_while_open_is_refused_and_closed_is_applied() {
        let mut old = st(
            Role::Primary,
            ConnState::Connected,
            DiskState::UpToDate,
            DiskState::UpToDate,
        );
        old.open_clients = 1;
        let new = ResourceState {
            role: Role::Secondary,
            ..old.clone()
        };
        let held = RuleContext {
            open_count: old.open_clients,
            ..cx()
        };
        let e = check(&old, &new, ChangeKind::Soft, &held).unwrap_err();
        assert_eq!(e, RuleError::DeviceInUse);
        old.open_clients = 0;
        let new = ResourceState {
            role: Role::Secondary,
            ..old.clone()
        };
        let (applied, _) = check(&old, &new, ChangeKind::Soft, &cx()).unwrap().unwrap();
        assert_eq!(applied.role, Role::Secondary);
    }

    #[test]
    fn outdating_a_standalone_primary_needs_up_to_date_data() {
        let old = st(
            Role::Primary,
            ConnState::StandAlone,
            DiskState::UpToDate,
            DiskState::DUnknown,
        );
        let new = ResourceState {
            disk: DiskState::Outdated,
            ..old.clone()
        };
        assert_eq!(
            check(&old, &new, ChangeKind::Soft, &cx()),
            Err(RuleError::NoUpToDateDisk)
        );
    }

    #[test]
    fn detaching_a_primary_needs_a_connected_up_to_date_peer() {
        let alone = st(
            Role::Primary,
            ConnState::StandAlone,
            DiskState::UpToDate,
            DiskState::DUnknown,
        );
        let detached = ResourceState {
            disk: DiskState::Diskless,
            ..alone.clone()
        };
        assert_eq!(
            check(&alone, &detached, ChangeKind::Soft, &cx()),
            Err(RuleError::NoUpToDateDisk)
        );
        let connected = st(
            Role::Primary,
            ConnState::Connected,
            DiskState::UpToDate,
            DiskState::UpToDate,
        );
        let detached = ResourceState {
            disk: DiskState::Diskless,
            ..connected.clone()
        };
        assert!(check(&connected, &detached, ChangeKind::Soft, &cx()).is_ok());
    }

    #[test]
    fn outdating_while_connected_is_nothing_to_do_as_in_drbd() {
        // sanitize_state: Outdated vanishes while Connected.
        let old = st(
            Role::Secondary,
            ConnState::Connected,
            DiskState::UpToDate,
            DiskState::UpToDate,
        );
        let new = ResourceState {
            disk: DiskState::Outdated,
            ..old.clone()
        };
        assert_eq!(check(&old, &new, ChangeKind::Soft, &cx()), Ok(None));
    }

    #[test]
    fn disconnecting_is_sanitized_to_an_unknown_peer() {
        let old = st(
            Role::Primary,
            ConnState::Connected,
            DiskState::UpToDate,
            DiskState::UpToDate,
        );
        let new = ResourceState {
            cstate: ConnState::Disconnecting,
            ..old.clone()
        };
        let (applied, _) = check(&old, &new, ChangeKind::Soft, &cx()).unwrap().unwrap();
        assert_eq!(applied.peer_role, Role::Unknown);
        assert_eq!(applied.peer_disk, DiskState::DUnknown);
    }

    #[test]
    fn hard_changes_obey_the_connection_order() {
        let old = st(
            Role::Secondary,
            ConnState::StandAlone,
            DiskState::UpToDate,
            DiskState::DUnknown,
        );
        let new = ResourceState {
            cstate: ConnState::WFConnection,
            ..old.clone()
        };
        assert_eq!(
            check(&old, &new, ChangeKind::Hard, &cx()),
            Err(RuleError::NeedConnection)
        );
    }
}
