//! DRBD 8.4's state rules over a [`ResourceState`] snapshot, for the checks the daemon still
//! makes outside the state machine (`detach`'s pre-check), and the connection paths of the
//! session's observed changes. The state itself is owned by the state machine
//! (`crate::core_driver`): admin changes are its events, the session's changes are
//! recorded as `Event::Observed` (transition rules only).
//!
//! - [`check`]: soft changes: `sanitize_state`, `is_valid_transition`, `is_valid_state`,
//!   `is_valid_soft_transition` (`rdbd_replicator::state::rules::check_change`); hard
//!   changes: the transition rules only.
//! - [`conn_path`]: the connection states a change passes through.

use rdbd_replicator::state::rules::{self, ChangeKind, Checked, RuleContext, SanitizeWarning};
use rdbd_replicator::state::{Fencing, StateError as RuleError};
use rdbd_types::ConnState;
use rdbd_wire::DrbdState;

use crate::handlers::fencing::FencePolicy;
use crate::resource::{Resource, ResourceState};

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

/// The state machine's name for a fencing policy.
pub fn fencing_of(policy: FencePolicy) -> Fencing {
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
