//! Who runs each group, and when rdbd may be promoted: pure functions, each answer
//! with its reason.
//!
//! Invariant: a group runs on at most one node. A node acquires a group only when the
//! peer is heard not holding it, or is known down (left cleanly or fenced). A silent
//! peer may still be running: it is fenced first, and with no stonith command, or a
//! failed one, the node refuses.

use rdbd_types::{ConnState, DiskState, Role};

use crate::membership::Liveness;

/// This node's view of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalGroup {
    /// Some resource of the group may be running here (starting, started, stopping).
    pub holds: bool,
    /// A start or stop is in progress.
    pub busy: bool,
    /// This node could run it now (see [`eligible`]).
    pub eligible: bool,
    /// The operator asked this node to take it (`takeover`).
    pub requested: bool,
    /// This node is the group's preferred node.
    pub preferred_here: bool,
}

/// This node's global state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalNode {
    /// Maintenance mode: no decisions.
    pub maintenance: bool,
    /// Standby: prefer the peer while it is alive.
    pub standby: bool,
    /// Reaches a ping node (or none configured).
    pub ping_ok: bool,
    /// A stonith command is configured.
    pub can_fence: bool,
    /// auto_failback on.
    pub auto_failback: bool,
}

/// The peer as last heard, for one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerGroup {
    /// Liveness.
    pub liveness: Liveness,
    /// It holds the group (last heartbeat).
    pub holds: bool,
    /// It could run it.
    pub eligible: bool,
    /// Its operator asked it to take the group.
    pub requested: bool,
    /// It reaches a ping node.
    pub ping_ok: bool,
    /// rdbd's replication link to the peer is up (the peer is alive whatever the
    /// heartbeats say).
    pub replication_connected: bool,
}

/// What to do about a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start the group here.
    Acquire(String),
    /// Stop the group here.
    Release(String),
    /// Run the stonith command against the peer, then decide again.
    Fence(String),
    /// Nothing to do now (the reason says why, for the log).
    Stay(String),
}

/// Whether this node may run a group now: not in standby or maintenance, reaches a
/// ping node, not given up after monitor failures, and every rdbd disk may be promoted.
pub fn eligible(node: &LocalNode, failed: bool, disks_ok: bool) -> Result<(), String> {
    if node.maintenance {
        return Err("maintenance mode".into());
    }
    if node.standby {
        return Err("standby".into());
    }
    if !node.ping_ok {
        return Err("no ping node reachable".into());
    }
    if failed {
        return Err("gave the group up after monitor failures (rdbd-ha takeover clears it)".into());
    }
    if !disks_ok {
        return Err("an rdbd disk may not be promoted".into());
    }
    Ok(())
}

/// Decides one group.
pub fn decide(node: &LocalNode, me: &LocalGroup, peer: &PeerGroup) -> Decision {
    use Decision::*;
    if node.maintenance {
        return Stay("maintenance mode".into());
    }
    if me.busy {
        return Stay("a start or stop is in progress".into());
    }
    let peer_alive = matches!(peer.liveness, Liveness::Alive);
    if me.holds {
        if node.standby && peer_alive && peer.eligible {
            return Release("standby: handing the group to the peer".into());
        }
        if node.standby && !peer_alive {
            return Stay("standby requested but the peer is not alive to take the group".into());
        }
        if peer_alive && peer.requested && peer.eligible && !me.requested {
            return Release("the peer's operator requested takeover".into());
        }
        if peer_alive && peer.holds {
            return if me.preferred_here {
                Stay("BOTH nodes hold the group; the peer (not preferred) must release".into())
            } else {
                Release("BOTH nodes hold the group; releasing here (the peer is preferred)".into())
            };
        }
        if node.auto_failback && !me.preferred_here && !me.requested && peer_alive && peer.eligible
        {
            return Release("auto_failback: the preferred node is back and eligible".into());
        }
        if !node.ping_ok && peer_alive && peer.ping_ok && peer.eligible {
            return Release("no ping node reachable here; the peer reaches one".into());
        }
        return Stay("running here".into());
    }
    if !me.eligible {
        return Stay("not eligible here".into());
    }
    match peer.liveness {
        Liveness::Waiting => Stay("waiting for the peer (initdead)".into()),
        Liveness::Alive => {
            if peer.holds {
                Stay("the peer runs it".into())
            } else if me.requested && (!peer.requested || me.preferred_here) {
                Acquire("takeover requested here; the peer does not hold it".into())
            } else if peer.requested && peer.eligible {
                Stay("the peer's operator requested it".into())
            } else if !peer.eligible {
                Acquire("the peer does not hold it and is not eligible".into())
            } else if me.preferred_here {
                Acquire("preferred node; the peer does not hold it".into())
            } else {
                Stay("the preferred peer will take it".into())
            }
        }
        Liveness::Left | Liveness::Fenced => Acquire(format!(
            "the peer is {}",
            if peer.liveness == Liveness::Left {
                "gone (clean shutdown)"
            } else {
                "fenced"
            }
        )),
        Liveness::Dead => {
            if peer.replication_connected {
                Stay("heartbeats stopped but rdbd's replication link to the peer is up: the peer is alive; refusing".into())
            } else if node.can_fence {
                Fence("the peer is dead to heartbeats and may still run the group".into())
            } else {
                Stay("the peer is dead to heartbeats but cannot be proved down and no stonith command is configured; refusing to take over".into())
            }
        }
    }
}

/// DRBD's promotion rule: UpToDate, or Consistent while the peer is Outdated.
pub fn may_promote(local: DiskState, peer: DiskState) -> Result<(), String> {
    match (local, peer) {
        (DiskState::UpToDate, _) => Ok(()),
        (DiskState::Consistent, DiskState::Outdated) => Ok(()),
        (l, p) => Err(format!(
            "disk {l}/{p}: promotion needs UpToDate, or Consistent with an Outdated peer"
        )),
    }
}

/// Whether the replication connection proves the peer alive.
pub fn replication_peer_alive(cstate: ConnState) -> bool {
    !matches!(
        cstate,
        ConnState::StandAlone
            | ConnState::Disconnecting
            | ConnState::Unconnected
            | ConnState::Timeout
            | ConnState::BrokenPipe
            | ConnState::NetworkFailure
            | ConnState::ProtocolError
            | ConnState::TearDown
            | ConnState::WFConnection
    )
}

/// Whether the peer is Primary on the replication link (a second promotion must wait).
pub fn peer_is_primary(cstate: ConnState, peer_role: Role) -> bool {
    replication_peer_alive(cstate) && peer_role == Role::Primary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> LocalNode {
        LocalNode {
            ping_ok: true,
            ..Default::default()
        }
    }
    fn me(preferred_here: bool) -> LocalGroup {
        LocalGroup {
            eligible: true,
            preferred_here,
            ..Default::default()
        }
    }
    fn peer(liveness: Liveness) -> PeerGroup {
        PeerGroup {
            liveness,
            holds: false,
            eligible: true,
            requested: false,
            ping_ok: true,
            replication_connected: false,
        }
    }

    #[test]
    fn both_alive_preferred_takes_it() {
        assert!(matches!(
            decide(&node(), &me(true), &peer(Liveness::Alive)),
            Decision::Acquire(_)
        ));
        assert!(matches!(
            decide(&node(), &me(false), &peer(Liveness::Alive)),
            Decision::Stay(_)
        ));
        let mut p = peer(Liveness::Alive);
        p.eligible = false;
        assert!(
            matches!(decide(&node(), &me(false), &p), Decision::Acquire(r) if r.contains("not eligible"))
        );
        p.holds = true;
        assert!(
            matches!(decide(&node(), &me(true), &p), Decision::Stay(r) if r.contains("peer runs"))
        );
    }

    #[test]
    fn dead_peer_needs_fencing() {
        assert!(
            matches!(decide(&node(), &me(false), &peer(Liveness::Dead)), Decision::Stay(r) if r.contains("no stonith"))
        );
        let fencing = LocalNode {
            can_fence: true,
            ..node()
        };
        assert!(matches!(
            decide(&fencing, &me(false), &peer(Liveness::Dead)),
            Decision::Fence(_)
        ));
        assert!(matches!(
            decide(&node(), &me(false), &peer(Liveness::Fenced)),
            Decision::Acquire(_)
        ));
        assert!(matches!(
            decide(&node(), &me(false), &peer(Liveness::Left)),
            Decision::Acquire(_)
        ));
        let mut p = peer(Liveness::Dead);
        p.replication_connected = true;
        assert!(
            matches!(decide(&fencing, &me(false), &p), Decision::Stay(r) if r.contains("replication"))
        );
        assert!(matches!(
            decide(&node(), &me(true), &peer(Liveness::Waiting)),
            Decision::Stay(_)
        ));
    }

    #[test]
    fn not_eligible_never_acquires() {
        let mut m = me(true);
        m.eligible = false;
        for l in [
            Liveness::Alive,
            Liveness::Dead,
            Liveness::Left,
            Liveness::Fenced,
        ] {
            assert!(matches!(
                decide(
                    &LocalNode {
                        can_fence: true,
                        ..node()
                    },
                    &m,
                    &peer(l)
                ),
                Decision::Stay(_)
            ));
        }
        let n = LocalNode {
            ping_ok: false,
            ..node()
        };
        assert_eq!(
            eligible(&n, false, true),
            Err("no ping node reachable".into())
        );
        assert!(eligible(&node(), true, true).is_err());
        assert!(eligible(&node(), false, false).is_err());
        assert!(eligible(&node(), false, true).is_ok());
    }

    #[test]
    fn failback_standby_takeover_ping() {
        let holding = LocalGroup {
            holds: true,
            ..me(false)
        };
        let fb = LocalNode {
            auto_failback: true,
            ..node()
        };
        assert!(
            matches!(decide(&fb, &holding, &peer(Liveness::Alive)), Decision::Release(r) if r.contains("auto_failback"))
        );
        assert!(matches!(
            decide(&node(), &holding, &peer(Liveness::Alive)),
            Decision::Stay(_)
        ));
        let sb = LocalNode {
            standby: true,
            ..node()
        };
        assert!(matches!(
            decide(&sb, &holding, &peer(Liveness::Alive)),
            Decision::Release(_)
        ));
        assert!(matches!(
            decide(&sb, &holding, &peer(Liveness::Dead)),
            Decision::Stay(_)
        ));
        let mut p = peer(Liveness::Alive);
        p.requested = true;
        assert!(
            matches!(decide(&node(), &LocalGroup { holds: true, ..me(true) }, &p), Decision::Release(r) if r.contains("requested"))
        );
        let req = LocalGroup {
            requested: true,
            ..me(false)
        };
        assert!(matches!(
            decide(&node(), &req, &peer(Liveness::Alive)),
            Decision::Acquire(_)
        ));
        let noping = LocalNode {
            ping_ok: false,
            ..node()
        };
        assert!(
            matches!(decide(&noping, &holding, &peer(Liveness::Alive)), Decision::Release(r) if r.contains("ping"))
        );
        let mut both = peer(Liveness::Alive);
        both.holds = true;
        assert!(
            matches!(decide(&node(), &holding, &both), Decision::Release(r) if r.contains("BOTH"))
        );
        assert!(matches!(
            decide(
                &node(),
                &LocalGroup {
                    holds: true,
                    ..me(true)
                },
                &both
            ),
            Decision::Stay(_)
        ));
        let busy = LocalGroup {
            busy: true,
            ..me(true)
        };
        assert!(matches!(
            decide(&node(), &busy, &peer(Liveness::Left)),
            Decision::Stay(_)
        ));
        let maint = LocalNode {
            maintenance: true,
            ..node()
        };
        assert!(matches!(
            decide(&maint, &me(true), &peer(Liveness::Left)),
            Decision::Stay(_)
        ));
    }

    #[test]
    fn promotion_rule() {
        use DiskState::*;
        assert!(may_promote(UpToDate, DUnknown).is_ok());
        assert!(may_promote(UpToDate, UpToDate).is_ok());
        assert!(may_promote(Consistent, Outdated).is_ok());
        assert!(may_promote(Consistent, DUnknown).is_err());
        assert!(may_promote(Outdated, DUnknown).is_err());
        assert!(may_promote(Inconsistent, UpToDate).is_err());
        assert!(may_promote(Diskless, UpToDate).is_err());
        assert!(replication_peer_alive(ConnState::Connected));
        assert!(!replication_peer_alive(ConnState::WFConnection));
        assert!(!replication_peer_alive(ConnState::StandAlone));
        assert!(peer_is_primary(ConnState::Connected, Role::Primary));
        assert!(!peer_is_primary(ConnState::WFConnection, Role::Primary));
    }
}
