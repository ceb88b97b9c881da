//! Tests of [`NodeState`]: lifecycles as scripts, role rules as tables.

use super::*;
use crate::generation::md_flag::{self, CONSISTENT, WAS_UP_TO_DATE};
use crate::state::Fencing;
use crate::sync_handshake::{Handler, Refusal};

const GEN: Generations = Generations {
    current: 0xAB00,
    bitmap: 0,
    history: [0, 0],
};

fn node_with(flags: u32, cfg: Config) -> NodeState {
    let mut n = NodeState::new(cfg, 7);
    let out = n.step(Event::Attach {
        gens: GEN,
        md_flags: flags,
    });
    assert!(out.contains(&Action::Completed(Request::Attach)), "{out:?}");
    n
}

fn up_to_date() -> NodeState {
    node_with(CONSISTENT | WAS_UP_TO_DATE, Config::default())
}

fn peer_params(gens: Generations, role: Role, disk: DiskState) -> Event {
    Event::PeerParams(PeerParams {
        gens,
        uuid_flags: 0,
        role,
        disk,
        peer_changed_blocks: 0,
        own_changed_blocks: 0,
        agreed_pro_version: crate::uuid_compare::PRO_VERSION_MAX,
        agreed_features: crate::uuid_compare::DRBD_FF_WSAME,
    })
}

fn connected(mut n: NodeState, peer_role: Role, resolve_conflicts: bool) -> NodeState {
    n.step(Event::Connect {
        discard_my_data: false,
    });
    n.step(Event::SocketUp { resolve_conflicts });
    let gens = n.gens();
    n.step(peer_params(gens, peer_role, DiskState::UpToDate));
    assert_eq!(n.state().conn, ConnState::Connected);
    n
}

fn refused(out: &[Action]) -> Option<StateError> {
    out.iter().find_map(|a| match a {
        Action::Refused { error, .. } => Some(*error),
        _ => None,
    })
}

#[test]
fn connection_lifecycle() {
    let mut n = up_to_date();
    assert_eq!(n.state().disk, DiskState::UpToDate, "fencing dont-care");
    let out = n.step(Event::Connect {
        discard_my_data: false,
    });
    assert_eq!(n.state().conn, ConnState::WFConnection);
    assert!(out.contains(&Action::StartConnecting));
    let out = n.step(Event::SocketUp {
        resolve_conflicts: true,
    });
    assert_eq!(n.state().conn, ConnState::WFReportParams);
    assert!(matches!(
        out[..],
        [.., Action::SendUuids { .. }, Action::SendState(_)]
    ));
    let out = n.step(peer_params(GEN, Role::Secondary, DiskState::UpToDate));
    assert_eq!(
        (n.state().conn, n.state().peer, n.state().pdsk),
        (ConnState::Connected, Role::Secondary, DiskState::UpToDate)
    );
    assert!(
        matches!(out[0], Action::WriteMeta { md_flags, .. } if md_flags & md_flag::CONNECTED_IND != 0)
    );
    for (failure, conn) in [
        (NetFailure::BrokenPipe, ConnState::BrokenPipe),
        (NetFailure::Timeout, ConnState::Timeout),
        (NetFailure::ProtocolError, ConnState::ProtocolError),
        (NetFailure::NetworkFailure, ConnState::NetworkFailure),
    ] {
        let mut m = n.clone();
        let out = m.step(Event::NetFailure(failure));
        assert_eq!(m.state().conn, conn);
        assert_eq!(
            (m.state().peer, m.state().pdsk),
            (Role::Unknown, DiskState::DUnknown)
        );
        assert!(out.contains(&Action::CloseConnection));
        assert!(out.contains(&Action::SetOutOfSyncFromLog));
        let out = m.step(Event::ConnectionClosed);
        assert_eq!(m.state().conn, ConnState::WFConnection);
        assert!(out.contains(&Action::StartConnecting));
    }
    let out = n.step(Event::Disconnect);
    assert_eq!(n.state().conn, ConnState::Disconnecting);
    assert!(out.contains(&Action::CloseConnection));
    n.step(Event::ConnectionClosed);
    assert_eq!(n.state().conn, ConnState::StandAlone);
    assert_eq!(
        refused(&n.step(Event::Disconnect)),
        Some(StateError::AlreadyStandAlone)
    );
}

type Setup = fn() -> NodeState;
/// Name, setup, event, the refusal expected, the role and disk after.
type Row = (
    &'static str,
    Setup,
    Event,
    Option<StateError>,
    Role,
    DiskState,
);

#[test]
fn role_rules_table() {
    let alone: Setup = up_to_date;
    let outdated: Setup = || node_with(CONSISTENT, Config::default());
    let inconsistent: Setup = || node_with(0, Config::default());
    let diskless: Setup = || NodeState::new(Config::default(), 1);
    let fenced: Setup = || {
        node_with(
            CONSISTENT | WAS_UP_TO_DATE,
            Config {
                fencing: Fencing::ResourceOnly,
                ..Config::default()
            },
        )
    };
    fn fenced_lost() -> NodeState {
        let cfg = Config {
            fencing: Fencing::ResourceOnly,
            ..Config::default()
        };
        let mut n = connected(
            node_with(CONSISTENT | WAS_UP_TO_DATE, cfg),
            Role::Secondary,
            false,
        );
        n.step(Event::NetFailure(NetFailure::Timeout));
        n
    }
    fn primary() -> NodeState {
        let mut n = up_to_date();
        n.step(Event::Promote { force: false });
        n
    }
    let open_primary: Setup = || {
        let mut n = primary();
        n.step(Event::OpenCount(1));
        n
    };
    #[rustfmt::skip]
    let rows: &[Row] = &[
        ("promote UpToDate", alone, Event::Promote { force: false }, None, Role::Primary, DiskState::UpToDate),
        ("promote Outdated", outdated, Event::Promote { force: false }, Some(StateError::NoUpToDateDisk), Role::Secondary, DiskState::Outdated),
        ("force Outdated", outdated, Event::Promote { force: true }, None, Role::Primary, DiskState::UpToDate),
        ("force Inconsistent", inconsistent, Event::Promote { force: true }, None, Role::Primary, DiskState::UpToDate),
        ("force Diskless", diskless, Event::Promote { force: true }, Some(StateError::NoUpToDateDisk), Role::Secondary, DiskState::Diskless),
        ("fencing: Consistent needs fence-peer", fenced, Event::Promote { force: false }, Some(StateError::NoUpToDateDisk), Role::Secondary, DiskState::Consistent),
        ("fencing: peer lost", fenced_lost, Event::Promote { force: false }, Some(StateError::PrimaryNop), Role::Secondary, DiskState::UpToDate),
        ("fencing: peer lost, forced", fenced_lost, Event::Promote { force: true }, None, Role::Primary, DiskState::UpToDate),
        ("fencing forced", fenced, Event::Promote { force: true }, None, Role::Primary, DiskState::UpToDate),
        ("demote", primary, Event::Demote, None, Role::Secondary, DiskState::UpToDate),
        ("demote while open", open_primary, Event::Demote, Some(StateError::DeviceInUse), Role::Primary, DiskState::UpToDate),
        ("outdate a Primary", primary, Event::Outdate, Some(StateError::NoUpToDateDisk), Role::Primary, DiskState::UpToDate),
        ("outdate a Secondary", alone, Event::Outdate, None, Role::Secondary, DiskState::Outdated),
        ("outdate Inconsistent", inconsistent, Event::Outdate, Some(StateError::LowerThanOutdated), Role::Secondary, DiskState::Inconsistent),
        ("detach a lone Primary", primary, Event::Detach, Some(StateError::NoUpToDateDisk), Role::Primary, DiskState::UpToDate),
        ("io error on a lone Primary", primary, Event::DiskFailed, None, Role::Primary, DiskState::Diskless),
        ("detach a Secondary", alone, Event::Detach, None, Role::Secondary, DiskState::Diskless),
    ];
    for (name, setup, event, want_err, role, disk) in rows {
        let mut n = setup();
        let out = n.step(*event);
        assert_eq!(refused(&out), *want_err, "{name}: {out:?}");
        assert_eq!((n.state().role, n.state().disk), (*role, *disk), "{name}");
    }
}

#[test]
fn promotion_alone_starts_a_generation_and_peer_loss_starts_another() {
    let mut n = up_to_date();
    let out = n.step(Event::Promote { force: false });
    assert_eq!(n.gens().bitmap, GEN.current, "disconnected: new generation");
    assert_eq!(n.gens().current & 1, 1);
    assert!(matches!(out[0], Action::WriteMeta { gens, .. } if gens == n.gens()));
    n.step(Event::Demote);
    // Connected with an UpToDate peer: the promotion keeps the generation.
    let mut c = connected(n.clone(), Role::Secondary, false);
    let before = c.gens();
    let out = c.step(Event::Promote { force: false });
    assert_eq!(
        out,
        vec![Action::SendStateRequest {
            role: Role::Primary
        }]
    );
    assert!(c.promotion_pending());
    let out = c.step(Event::StateReply(Ok(())));
    assert!(out.contains(&Action::Completed(Request::Promote)));
    assert_eq!(c.gens().current, before.current | 1);
    // Losing the peer while Primary with bitmap 0 ... the bitmap is set here, so no new
    // generation; clear it as a finished resync would.
    let mut fresh = connected(up_to_date(), Role::Secondary, false);
    fresh.step(Event::Promote { force: false });
    fresh.step(Event::StateReply(Ok(())));
    assert_eq!(fresh.gens().bitmap, 0);
    let out = fresh.step(Event::NetFailure(NetFailure::NetworkFailure));
    assert_eq!(fresh.gens().bitmap, GEN.current | 1);
    assert_ne!(fresh.gens().current & !1, GEN.current);
    assert!(matches!(out[0], Action::WriteMeta { .. }));
}

#[test]
fn two_primaries_are_refused_and_concurrent_promotions_resolved() {
    // The peer asks to become Primary while we are.
    let mut p = connected(up_to_date(), Role::Secondary, false);
    p.step(Event::Promote { force: false });
    p.step(Event::StateReply(Ok(())));
    let out = p.step(Event::PeerStateRequest {
        role: Role::Primary,
    });
    assert_eq!(
        out,
        vec![Action::SendStateReply(Err(StateError::TwoPrimaries))]
    );
    // Both ask at once: the node holding RESOLVE_CONFLICTS refuses, the other accepts.
    let mut a = connected(up_to_date(), Role::Secondary, true);
    let mut b = connected(up_to_date(), Role::Secondary, false);
    a.step(Event::Promote { force: false });
    b.step(Event::Promote { force: false });
    let a_reply = a.step(Event::PeerStateRequest {
        role: Role::Primary,
    });
    assert_eq!(
        a_reply,
        vec![Action::SendStateReply(Err(StateError::ConcurrentChange))]
    );
    let b_reply = b.step(Event::PeerStateRequest {
        role: Role::Primary,
    });
    assert!(b_reply.contains(&Action::SendStateReply(Ok(()))));
    a.step(Event::StateReply(Ok(())));
    let out = b.step(Event::StateReply(Err(StateError::ConcurrentChange)));
    assert_eq!(refused(&out), Some(StateError::ConcurrentChange));
    assert_eq!(
        (a.state().role, b.state().role),
        (Role::Primary, Role::Secondary)
    );
    assert_eq!(b.state().peer, Role::Primary);
    assert_eq!(
        refused(&b.step(Event::Promote { force: false })),
        Some(StateError::TwoPrimaries)
    );
    // Connecting two Primaries is refused by the state rules.
    let mut x = up_to_date();
    x.step(Event::Promote { force: false });
    x.step(Event::Connect {
        discard_my_data: false,
    });
    x.step(Event::SocketUp {
        resolve_conflicts: false,
    });
    let gens = x.gens();
    x.step(peer_params(gens, Role::Primary, DiskState::UpToDate));
    assert_eq!(x.state().conn, ConnState::Disconnecting);
}

#[test]
fn pending_promotion_is_decided_locally_when_the_connection_breaks() {
    let mut n = connected(up_to_date(), Role::Secondary, false);
    n.step(Event::Promote { force: false });
    let out = n.step(Event::NetFailure(NetFailure::BrokenPipe));
    assert!(out.contains(&Action::Completed(Request::Promote)));
    assert_eq!(n.state().role, Role::Primary);
    assert!(!n.promotion_pending());
}

#[test]
fn handshake_outcomes() {
    let newer = Generations {
        current: 0xCD00,
        bitmap: GEN.current,
        history: [0, 0],
    };
    let split = Generations {
        current: 0xEF00,
        bitmap: GEN.current,
        history: [0, 0],
    };
    let start = |own: Generations| {
        let mut n = NodeState::new(Config::default(), 3);
        n.step(Event::Attach {
            gens: own,
            md_flags: CONSISTENT | WAS_UP_TO_DATE,
        });
        n.step(Event::Connect {
            discard_my_data: false,
        });
        n.step(Event::SocketUp {
            resolve_conflicts: false,
        });
        n
    };
    // We are behind: SyncTarget via WFBitMapT and WFSyncUUID.
    let mut t = start(GEN);
    let out = t.step(peer_params(newer, Role::Secondary, DiskState::UpToDate));
    assert_eq!(t.state().conn, ConnState::WFBitMapT);
    assert!(out.contains(&Action::ExchangeBitmap));
    t.step(Event::BitmapExchanged);
    assert_eq!(t.state().conn, ConnState::WFSyncUUID);
    t.step(Event::SyncUuid(0x7700));
    assert_eq!(
        (t.state().conn, t.state().disk),
        (ConnState::SyncTarget, DiskState::Inconsistent)
    );
    assert_eq!(
        refused(&t.step(Event::Promote { force: false })),
        None,
        "DRBD lets a SyncTarget with an UpToDate peer become Primary"
    );
    t.step(Event::StateReply(Ok(())));
    assert_eq!(t.state().role, Role::Primary);
    t.step(Event::Demote);
    t.step(Event::ResyncDone);
    assert_eq!(
        (t.state().conn, t.state().disk),
        (ConnState::Connected, DiskState::UpToDate)
    );
    assert_eq!(t.gens().current & !1, newer.current);
    // We are ahead: SyncSource, P_SYNC_UUID, then the target's P_STATE ends it.
    let mut s = start(newer);
    s.step(peer_params(GEN, Role::Secondary, DiskState::UpToDate));
    assert_eq!(s.state().conn, ConnState::WFBitMapS);
    let out = s.step(Event::BitmapExchanged);
    assert!(out.iter().any(|a| matches!(a, Action::SendSyncUuid(_))));
    assert_eq!(s.state().pdsk, DiskState::Inconsistent);
    s.step(Event::PeerState {
        role: Role::Secondary,
        disk: DiskState::UpToDate,
        conn: ConnState::Connected,
    });
    assert_eq!(
        (s.state().conn, s.state().pdsk),
        (ConnState::Connected, DiskState::UpToDate)
    );
    assert_eq!(s.gens().bitmap, 0);
    // Both started generations: split brain, never resolved by default.
    let mut b = start(newer);
    let out = b.step(peer_params(split, Role::Secondary, DiskState::UpToDate));
    assert!(out.contains(&Action::HandshakeRefused(Refusal::SplitBrain)));
    assert!(out.contains(&Action::RunHandler(Handler::SplitBrain)));
    assert_eq!(b.state().conn, ConnState::Disconnecting);
    b.step(Event::ConnectionClosed);
    assert_eq!(b.state().conn, ConnState::StandAlone);
}

fn params_of(n: &NodeState) -> Event {
    let s = n.state();
    Event::PeerParams(PeerParams {
        gens: n.gens(),
        uuid_flags: n.uuid_flags(),
        role: s.role,
        disk: s.disk,
        peer_changed_blocks: 1,
        own_changed_blocks: 1,
        agreed_pro_version: crate::uuid_compare::PRO_VERSION_MAX,
        agreed_features: crate::uuid_compare::DRBD_FF_WSAME,
    })
}

/// Connects two nodes: sockets, P_UUIDS/P_STATE both ways, the handshake on both sides.
fn meet(a: &mut NodeState, b: &mut NodeState) {
    for n in [&mut *a, &mut *b] {
        if n.state().conn == ConnState::StandAlone {
            n.step(Event::Connect {
                discard_my_data: false,
            });
        }
    }
    a.step(Event::SocketUp {
        resolve_conflicts: true,
    });
    b.step(Event::SocketUp {
        resolve_conflicts: false,
    });
    let (pa, pb) = (params_of(a), params_of(b));
    a.step(pb);
    b.step(pa);
}

fn part(a: &mut NodeState, b: &mut NodeState) {
    for n in [a, b] {
        n.step(Event::NetFailure(NetFailure::NetworkFailure));
        n.step(Event::ConnectionClosed);
    }
}

/// A script of the DRBD 8.4 corner the simulation documents (sim/check.rs, "the DRBD 8.4
/// gap"): a SyncSource that loses the connection after its target finished keeps its
/// bitmap identifier, so neither the loss nor its next promotion starts a generation. If the
/// former target was promoted meanwhile and both wrote, the next handshake picks a direction
/// instead of detecting split brain. This test pins the behaviour the rules give today.
#[test]
fn a_source_that_missed_the_end_of_resync_is_not_seen_as_split_brain() {
    let mut a = up_to_date();
    let mut b = node_with(CONSISTENT | WAS_UP_TO_DATE, Config::default());
    a.step(Event::Promote { force: false });
    assert_ne!(
        a.gens().current & !1,
        b.gens().current,
        "a started a generation"
    );
    meet(&mut a, &mut b);
    assert_eq!(
        (a.state().conn, b.state().conn),
        (ConnState::WFBitMapS, ConnState::WFBitMapT)
    );
    let out = a.step(Event::BitmapExchanged);
    let sync_uuid = out
        .iter()
        .find_map(|x| match x {
            Action::SendSyncUuid(u) => Some(*u),
            _ => None,
        })
        .expect("the source sends P_SYNC_UUID");
    b.step(Event::BitmapExchanged);
    b.step(Event::SyncUuid(sync_uuid));
    b.step(Event::ResyncDone);
    assert_eq!(b.state().disk, DiskState::UpToDate);
    // The connection breaks before a hears that b finished: a keeps its bitmap identifier
    // and starts no generation, though it is Primary and keeps writing.
    let before = a.gens();
    part(&mut a, &mut b);
    assert_eq!(a.gens(), before, "no new generation on the SyncSource");
    assert_eq!(a.state().pdsk, DiskState::Inconsistent);
    // b is promoted while apart (a new generation), a is demoted and later meets b again.
    b.step(Event::Promote { force: false });
    a.step(Event::Demote);
    b.step(Event::Demote);
    meet(&mut a, &mut b);
    assert_eq!(
        (a.state().conn, b.state().conn),
        (ConnState::WFBitMapT, ConnState::WFBitMapS),
        "a's writes made while apart are overwritten: no split brain is detected"
    );
}

#[test]
fn invalidate_makes_the_disk_inconsistent_and_sets_every_bit() {
    let mut n = up_to_date();
    let out = n.step(Event::Invalidate);
    assert_eq!(n.state().disk, DiskState::Inconsistent);
    let bits = out.iter().position(|a| *a == Action::SetAllOutOfSync);
    assert!(bits.is_some(), "{out:?}");
    assert!(
        matches!(out[0], Action::WriteMeta { md_flags, .. } if md_flags & CONSISTENT == 0),
        "{out:?}"
    );
    assert!(out.contains(&Action::Completed(Request::Invalidate)));
    // A StandAlone Primary keeps its data (SS_NO_UP_TO_DATE_DISK).
    let mut p = up_to_date();
    p.step(Event::Promote { force: false });
    let out = p.step(Event::Invalidate);
    assert_eq!(refused(&out), Some(StateError::NoUpToDateDisk));
    assert_eq!(p.state().disk, DiskState::UpToDate);
}

#[test]
fn new_current_uuid_rotates_the_identifiers_and_may_clear_the_bitmap() {
    let mut n = up_to_date();
    let out = n.step(Event::NewCurrentUuid {
        clear_bitmap: false,
    });
    assert_ne!(n.gens().current, GEN.current);
    assert_eq!(n.gens().bitmap, GEN.current);
    assert!(matches!(out[0], Action::WriteMeta { gens, .. } if gens == n.gens()));
    assert!(!out.contains(&Action::ClearBitmap));
    let out = n.step(Event::NewCurrentUuid { clear_bitmap: true });
    assert_eq!(n.gens().bitmap, 0);
    assert!(out.contains(&Action::ClearBitmap), "{out:?}");
    let mut diskless = NodeState::new(Config::default(), 1);
    let out = diskless.step(Event::NewCurrentUuid {
        clear_bitmap: false,
    });
    assert_eq!(refused(&out), Some(StateError::IsDiskless));
}

#[test]
fn observed_states_obey_only_the_transition_rules() {
    let mut n = connected(up_to_date(), Role::Secondary, true);
    let verify = State {
        conn: ConnState::VerifyS,
        ..n.state()
    };
    let out = n.step(Event::Observed(verify));
    assert_eq!(n.state().conn, ConnState::VerifyS);
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::StateChanged { new, .. } if *new == verify)));
    // StandAlone -> WFConnection skips Unconnected: refused, nothing changes.
    let mut alone = up_to_date();
    let jump = State {
        conn: ConnState::WFConnection,
        ..alone.state()
    };
    let out = alone.step(Event::Observed(jump));
    assert_eq!(alone.state().conn, ConnState::StandAlone);
    assert!(out.iter().any(|a| matches!(a, Action::Log(_))), "{out:?}");
}

#[test]
fn a_primary_observed_losing_its_peer_starts_a_generation() {
    let mut n = connected(up_to_date(), Role::Secondary, true);
    n.step(Event::Promote { force: false });
    n.step(Event::StateReply(Ok(())));
    assert_eq!(n.state().role, Role::Primary);
    let before = n.gens();
    let lost = State {
        peer: Role::Unknown,
        pdsk: DiskState::DUnknown,
        ..n.state()
    };
    let out = n.step(Event::Observed(lost));
    assert_eq!(n.gens().bitmap, before.current);
    assert!(out.iter().any(|a| matches!(a, Action::SendUuids { .. })));
    assert!(matches!(out[0], Action::WriteMeta { gens, .. } if gens == n.gens()));
}

#[test]
fn attaching_while_connected_negotiates_with_a_peer_that_has_a_disk() {
    let mut n = connected(up_to_date(), Role::Secondary, true);
    n.step(Event::Detach);
    assert_eq!(n.state().disk, DiskState::Diskless);
    let out = n.step(Event::Attach {
        gens: GEN,
        md_flags: CONSISTENT | WAS_UP_TO_DATE,
    });
    assert!(out.contains(&Action::Completed(Request::Attach)), "{out:?}");
    assert_eq!(n.state().disk, DiskState::Negotiating);
    assert_eq!(n.state().pdsk, DiskState::UpToDate);
}

#[test]
fn generation_updates_are_written_once() {
    let mut n = up_to_date();
    let out = n.update_generations(|g| g.history[0] = 0x1234);
    assert!(matches!(out[..], [Action::WriteMeta { gens, .. }] if gens.history[0] == 0x1234));
    assert!(n.update_generations(|_| {}).is_empty());
    assert!(!n.crashed_primary());
    assert_eq!(n.open_count(), 0);
}

#[test]
fn the_sync_target_takes_the_recorded_peer_identifiers_at_the_end() {
    let mut n = node_with(0, Config::default());
    n.step(Event::Connect {
        discard_my_data: false,
    });
    n.step(Event::SocketUp {
        resolve_conflicts: false,
    });
    let source = Generations {
        current: 0xC0DE,
        bitmap: 0,
        history: [0xAB00, 0],
    };
    n.step(peer_params(source, Role::Primary, DiskState::UpToDate));
    assert_eq!(n.state().conn, ConnState::WFBitMapT);
    n.step(Event::BitmapExchanged);
    n.step(Event::SyncUuid(0x5000));
    assert_eq!(n.state().conn, ConnState::SyncTarget);
    let later = Generations {
        bitmap: 0x5000,
        ..source
    };
    n.step(Event::PeerUuids(later));
    assert_eq!(n.peer_gens(), later);
    n.step(Event::ResyncDone);
    assert_eq!(n.state().disk, DiskState::UpToDate);
    assert_eq!(n.gens().current & !1, source.current);
    assert_eq!(n.peer_gens(), n.gens());
}

#[test]
fn a_crashed_primary_keeps_its_flag_until_the_handshake_used_it() {
    let mut n = node_with(
        CONSISTENT | WAS_UP_TO_DATE | md_flag::PRIMARY_IND,
        Config::default(),
    );
    assert!(n.crashed_primary());
    n.step(Event::Connect {
        discard_my_data: false,
    });
    n.step(Event::SocketUp {
        resolve_conflicts: false,
    });
    // The driver records the peer's UpToDate disk from its P_STATE before the handshake (the
    // kernel peer's order of packets): not yet a connected pair of UpToDate disks.
    let early = State {
        pdsk: DiskState::UpToDate,
        ..n.state()
    };
    n.step(Event::Observed(early));
    assert_eq!(n.state().conn, ConnState::WFReportParams);
    assert!(n.crashed_primary(), "cleared before the handshake");
    // Equal current UUIDs, only we crashed as Primary: rule 40 makes us the SyncSource.
    let gens = n.gens();
    n.step(peer_params(gens, Role::Secondary, DiskState::UpToDate));
    assert_eq!(n.state().conn, ConnState::WFBitMapS);
    // Connected with both disks UpToDate (the resync is done): the crashed-primary state ends.
    let done = State {
        conn: ConnState::Connected,
        pdsk: DiskState::UpToDate,
        ..n.state()
    };
    n.step(Event::Observed(done));
    assert!(!n.crashed_primary());
}

/// A node in WFReportParams (`Connect` with `discard`, `SocketUp`) after `prepare`.
fn reporting(cfg: Config, discard: bool, prepare: impl FnOnce(&mut NodeState)) -> NodeState {
    let mut n = node_with(CONSISTENT | WAS_UP_TO_DATE, cfg);
    prepare(&mut n);
    n.step(Event::Connect {
        discard_my_data: discard,
    });
    n.step(Event::SocketUp {
        resolve_conflicts: false,
    });
    assert_eq!(n.state().conn, ConnState::WFReportParams);
    n
}

#[test]
fn discard_my_data_lasts_until_a_handshake_gets_through() {
    let mut n = reporting(Config::default(), true, |_| {});
    assert!(n.discard_my_data());
    assert_ne!(n.uuid_flags() & uuid_flag::DISCARD_MY_DATA, 0);
    n.step(peer_params(GEN, Role::Secondary, DiskState::UpToDate));
    assert_eq!(n.state().conn, ConnState::Connected);
    assert!(!n.discard_my_data(), "cleared by the handshake");
    assert_eq!(n.uuid_flags() & uuid_flag::DISCARD_MY_DATA, 0);
    // Both Primary without allow-two-primaries: the state the handshake chose is refused,
    // the connection dropped, and the flag stays for the next attempt (DRBD returns from
    // receive_state before clearing it).
    let mut p = reporting(Config::default(), true, |n| {
        n.step(Event::Promote { force: false });
    });
    let out = p.step(peer_params(GEN, Role::Primary, DiskState::UpToDate));
    assert!(out.contains(&Action::ConnectionRefused(StateError::TwoPrimaries)));
    assert!(
        out.contains(&Action::LogLine(crate::sync_handshake::LogLine {
            level: crate::sync_handshake::Level::Err,
            text: "State change failed: Multiple primaries not allowed by config".into(),
        }))
    );
    assert_eq!(p.state().conn, ConnState::Disconnecting);
    assert!(p.discard_my_data());
}

#[test]
fn a_losing_primary_runs_pri_lost_after_sb_and_keeps_its_role() {
    let cfg = Config {
        policies: Policies {
            after_sb_0pri: crate::sync_handshake::AfterSb::DiscardLocal,
            after_sb_1pri: crate::sync_handshake::AfterSb::CallHelper,
            ..Policies::default()
        },
        ..Config::default()
    };
    let mut n = reporting(cfg, false, |n| {
        n.step(Event::Promote { force: false });
    });
    assert_eq!(
        n.open_count(),
        0,
        "a demotion would be allowed outside the handshake"
    );
    let split = Generations {
        current: 0xEF00,
        bitmap: GEN.current,
        history: [0, 0],
    };
    let out = n.step(peer_params(split, Role::Secondary, DiskState::UpToDate));
    assert!(out.contains(&Action::RunHandler(Handler::PriLostAfterSb)));
    assert!(out.contains(&Action::HandshakeRefused(Refusal::SplitBrain)));
    assert_eq!(
        (n.state().role, n.state().conn),
        (Role::Primary, ConnState::Disconnecting),
        "DRBD 8.4 cannot demote while the connection is being established"
    );
}

#[test]
fn a_disk_attached_while_connected_is_handshaked_and_logged_with_levels() {
    let mut n = connected(up_to_date(), Role::Secondary, false);
    // The peer attached a disk that is ahead of ours (its P_STATE says Negotiating).
    let newer = Generations {
        current: 0xCD00,
        bitmap: GEN.current,
        history: [0, 0],
    };
    let out = n.step(peer_params(newer, Role::Secondary, DiskState::Negotiating));
    assert_eq!(n.state().conn, ConnState::WFBitMapT);
    assert!(out.contains(&Action::ExchangeBitmap));
    assert!(out.iter().any(|a| matches!(
        a,
        Action::LogLine(l) if l.text.starts_with("uuid_compare()=")
    )));
    // Outside WFReportParams and Connected the event is not a handshake.
    let before = n.state();
    assert!(n
        .step(peer_params(GEN, Role::Secondary, DiskState::Negotiating))
        .is_empty());
    assert_eq!(n.state(), before);
}

#[test]
fn a_fencing_disconnect_keeps_the_peer_outdated_where_a_p_state_would_not() {
    let mut p = connected(up_to_date(), Role::Secondary, true);
    p.step(Event::Promote { force: false });
    p.step(Event::StateReply(Ok(())));
    assert_eq!(p.state().role, Role::Primary);
    // A connected peer's Outdated is sanitized to UpToDate (DRBD sanitize_state).
    p.step(Event::PeerState {
        role: Role::Secondary,
        disk: DiskState::Outdated,
        conn: ConnState::Connected,
    });
    assert_eq!(p.state().pdsk, DiskState::UpToDate);
    let before = p.gens();
    let out = p.step(Event::PeerOutdatedForDisconnect);
    assert_eq!(
        (p.state().conn, p.state().pdsk),
        (ConnState::Disconnecting, DiskState::Outdated)
    );
    assert!(out.contains(&Action::CloseConnection));
    assert!(out.contains(&Action::Completed(Request::Disconnect)));
    assert_ne!(
        p.gens().current,
        before.current,
        "the peer's data is lost: a new generation"
    );
    assert_ne!(p.md_flags() & md_flag::PEER_OUT_DATED, 0);
    p.step(Event::ConnectionClosed);
    assert_eq!(
        (p.state().conn, p.state().pdsk),
        (ConnState::StandAlone, DiskState::Outdated)
    );
    // Not connected: nothing to confirm.
    assert!(p.step(Event::PeerOutdatedForDisconnect).is_empty());
}

#[test]
fn verify_and_pause_flags_are_events() {
    let mut n = connected(up_to_date(), Role::Secondary, false);
    let out = n.step(Event::StartVerify { source: true });
    assert!(out.contains(&Action::Completed(Request::Verify)));
    assert_eq!(n.state().conn, ConnState::VerifyS);
    let again = n.step(Event::StartVerify { source: false });
    assert_eq!(refused(&again), Some(StateError::ResyncRunning));
    n.step(Event::VerifyDone);
    assert_eq!(n.state().conn, ConnState::Connected);
    assert!(n.step(Event::VerifyDone).is_empty(), "not verifying");
    // Not connected: refused by DRBD's soft rules.
    let mut alone = up_to_date();
    assert_eq!(
        refused(&alone.step(Event::StartVerify { source: true })),
        Some(StateError::NeedConnection)
    );
    // A resync pauses while any flag is set and goes on when none is.
    let mut t = connected(up_to_date(), Role::Secondary, false);
    let newer = Generations {
        current: 0xCD00,
        bitmap: t.gens().current,
        history: [0, 0],
    };
    t.step(Event::PeerUuids(newer));
    t.step(peer_params(newer, Role::Secondary, DiskState::Negotiating));
    t.step(Event::BitmapExchanged);
    t.step(Event::SyncUuid(0x7700));
    assert_eq!(t.state().conn, ConnState::SyncTarget);
    let flags = |aftr_isp, peer_isp, user_isp| Event::SyncPauseFlags {
        aftr_isp,
        peer_isp,
        user_isp,
    };
    t.step(flags(false, false, true));
    assert_eq!(t.state().conn, ConnState::PausedSyncT);
    assert!(t.state().user_isp);
    t.step(flags(true, false, false));
    assert_eq!(
        t.state().conn,
        ConnState::PausedSyncT,
        "resync-after holds it"
    );
    t.step(flags(false, false, false));
    assert_eq!(t.state().conn, ConnState::SyncTarget);
    t.step(Event::ResyncDone);
    assert_eq!(t.state().conn, ConnState::Connected);
}
