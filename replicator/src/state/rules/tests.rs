//! Table-driven tests of the validity rules, one row per DRBD rule.

use super::*;
use ConnState as C;
use DiskState as D;
use Role as R;

fn st(role: Role, peer: Role, conn: ConnState, disk: DiskState, pdsk: DiskState) -> State {
    State {
        role,
        peer,
        conn,
        disk,
        pdsk,
        ..crate::state::unconfigured()
    }
}

fn cx() -> RuleContext {
    RuleContext {
        has_net_config: true,
        ..RuleContext::default()
    }
}

#[test]
fn is_valid_state_table() {
    let in_use = RuleContext {
        open_count: 1,
        ..cx()
    };
    let two = RuleContext {
        two_primaries: true,
        ..cx()
    };
    let fenced = RuleContext {
        fencing: Fencing::ResourceOnly,
        ..cx()
    };
    #[rustfmt::skip]
    let rows: &[(&str, State, RuleContext, Result<(), StateError>)] = &[
        ("two primaries", st(R::Primary, R::Primary, C::Connected, D::UpToDate, D::UpToDate), cx(), Err(StateError::TwoPrimaries)),
        ("two primaries allowed", st(R::Primary, R::Primary, C::Connected, D::UpToDate, D::UpToDate), two, Ok(())),
        ("secondary while open", st(R::Secondary, R::Unknown, C::StandAlone, D::UpToDate, D::DUnknown), in_use, Err(StateError::DeviceInUse)),
        ("primary alone needs UpToDate", st(R::Primary, R::Unknown, C::WFConnection, D::Consistent, D::DUnknown), cx(), Err(StateError::NoUpToDateDisk)),
        ("primary alone UpToDate", st(R::Primary, R::Unknown, C::WFConnection, D::UpToDate, D::DUnknown), cx(), Ok(())),
        ("fencing: peer not outdated", st(R::Primary, R::Unknown, C::WFConnection, D::UpToDate, D::DUnknown), fenced, Err(StateError::PrimaryNop)),
        ("fencing: peer outdated", st(R::Primary, R::Unknown, C::WFConnection, D::UpToDate, D::Outdated), fenced, Ok(())),
        ("primary on the peer's data", st(R::Primary, R::Secondary, C::SyncTarget, D::Inconsistent, D::UpToDate), cx(), Ok(())),
        ("primary, no good data anywhere", st(R::Primary, R::Secondary, C::Connected, D::Inconsistent, D::Inconsistent), cx(), Err(StateError::NoUpToDateDisk)),
        ("resync without local disk", st(R::Secondary, R::Secondary, C::SyncTarget, D::Diskless, D::UpToDate), cx(), Err(StateError::NoLocalDisk)),
        ("resync without remote disk", st(R::Secondary, R::Secondary, C::SyncSource, D::UpToDate, D::Diskless), cx(), Err(StateError::NoRemoteDisk)),
        ("resync without UpToDate", st(R::Secondary, R::Secondary, C::SyncSource, D::Inconsistent, D::Inconsistent), cx(), Err(StateError::NoUpToDateDisk)),
        ("connected outdated", st(R::Secondary, R::Secondary, C::Connected, D::Outdated, D::UpToDate), cx(), Err(StateError::ConnectedOutdates)),
        ("connected, peer disk unknown", st(R::Secondary, R::Secondary, C::Connected, D::UpToDate, D::DUnknown), cx(), Err(StateError::ConnectedOutdates)),
        ("starting sync without peer", st(R::Secondary, R::Secondary, C::StartingSyncS, D::UpToDate, D::DUnknown), cx(), Err(StateError::NeedConnection)),
        ("secondary alone outdated", st(R::Secondary, R::Unknown, C::WFConnection, D::Outdated, D::DUnknown), cx(), Ok(())),
    ];
    for (name, s, c, want) in rows {
        assert_eq!(is_valid_state(s, c), *want, "{name}");
    }
}

/// Name, old state, new state, context, expected result.
type SoftRow = (
    &'static str,
    State,
    State,
    RuleContext,
    Result<(), StateError>,
);

#[test]
fn soft_transition_table() {
    let sent = RuleContext {
        state_sent: true,
        ..cx()
    };
    let sec = |conn, disk| st(R::Secondary, R::Unknown, conn, disk, D::DUnknown);
    #[rustfmt::skip]
    let rows: &[SoftRow] = &[
        ("disconnect standalone", sec(C::StandAlone, D::UpToDate), sec(C::Disconnecting, D::UpToDate), cx(), Err(StateError::AlreadyStandAlone)),
        ("disk up from diskless", sec(C::StandAlone, D::Diskless), sec(C::StandAlone, D::UpToDate), cx(), Err(StateError::IsDiskless)),
        ("attaching is fine", sec(C::StandAlone, D::Diskless), sec(C::StandAlone, D::Attaching), cx(), Ok(())),
        ("wfconnection from standalone", sec(C::StandAlone, D::UpToDate), sec(C::WFConnection, D::UpToDate), cx(), Err(StateError::NoNetConfig)),
        ("outdate inconsistent", sec(C::StandAlone, D::Inconsistent), sec(C::StandAlone, D::Outdated), cx(), Err(StateError::LowerThanOutdated)),
        ("outdate while attaching", sec(C::StandAlone, D::Attaching), sec(C::StandAlone, D::Outdated), cx(), Ok(())),
        ("disconnect while unconnected", sec(C::Unconnected, D::UpToDate), sec(C::Disconnecting, D::UpToDate), cx(), Err(StateError::InTransientState)),
        ("role change while state sent", sec(C::WFReportParams, D::UpToDate), st(R::Primary, R::Unknown, C::WFReportParams, D::UpToDate, D::DUnknown), sent, Err(StateError::InTransientState)),
        ("handshake ends while state sent", sec(C::WFReportParams, D::UpToDate), st(R::Secondary, R::Secondary, C::Connected, D::UpToDate, D::UpToDate), sent, Ok(())),
        ("promote during forced handshake", st(R::Secondary, R::Secondary, C::WFBitMapT, D::Outdated, D::UpToDate), st(R::Primary, R::Secondary, C::WFBitMapT, D::Outdated, D::UpToDate), cx(), Err(StateError::InTransientState)),
        ("promote a running sync target", st(R::Secondary, R::Secondary, C::SyncTarget, D::Inconsistent, D::UpToDate), st(R::Primary, R::Secondary, C::SyncTarget, D::Inconsistent, D::UpToDate), cx(), Ok(())),
        ("sync target from network failure", sec(C::NetworkFailure, D::UpToDate), sec(C::SyncTarget, D::Inconsistent), cx(), Err(StateError::NeedConnection)),
        ("verify without a connection", sec(C::WFConnection, D::UpToDate), sec(C::VerifyS, D::UpToDate), cx(), Err(StateError::NeedConnection)),
        ("verify during a resync", st(R::Secondary, R::Secondary, C::SyncSource, D::UpToDate, D::Inconsistent), st(R::Secondary, R::Secondary, C::VerifyS, D::UpToDate, D::Inconsistent), cx(), Err(StateError::ResyncRunning)),
        ("verify from connected", st(R::Secondary, R::Secondary, C::Connected, D::UpToDate, D::UpToDate), st(R::Secondary, R::Secondary, C::VerifyT, D::UpToDate, D::UpToDate), cx(), Ok(())),
    ];
    for (name, os, ns, c, want) in rows {
        assert_eq!(is_valid_soft_transition(os, ns, c), *want, "{name}");
    }
}

#[test]
fn transition_table() {
    let s = |conn| st(R::Secondary, R::Unknown, conn, D::UpToDate, D::DUnknown);
    #[rustfmt::skip]
    let rows: &[(ConnState, ConnState, Result<(), StateError>)] = &[
        (C::StandAlone, C::Unconnected, Ok(())),
        (C::StandAlone, C::WFConnection, Err(StateError::NeedConnection)),
        (C::StandAlone, C::Disconnecting, Err(StateError::AlreadyStandAlone)),
        (C::WFConnection, C::Connected, Err(StateError::NeedConnection)),
        (C::WFReportParams, C::Connected, Ok(())),
        (C::NetworkFailure, C::WFConnection, Err(StateError::InTransientState)),
        (C::BrokenPipe, C::Unconnected, Ok(())),
        (C::Timeout, C::Disconnecting, Ok(())),
        (C::Disconnecting, C::Unconnected, Err(StateError::InTransientState)),
        (C::Disconnecting, C::StandAlone, Ok(())),
        (C::Connected, C::Connected, Ok(())),
    ];
    for (oc, nc, want) in rows {
        assert_eq!(is_valid_transition(&s(*oc), &s(*nc)), *want, "{oc} -> {nc}");
    }
    let diskless = st(
        R::Secondary,
        R::Unknown,
        C::StandAlone,
        D::Diskless,
        D::DUnknown,
    );
    let failed = State {
        disk: D::Failed,
        ..diskless
    };
    assert_eq!(
        is_valid_transition(&diskless, &failed),
        Err(StateError::IsDiskless)
    );
}

#[test]
fn sanitize_table() {
    let base = st(
        R::Primary,
        R::Secondary,
        C::Connected,
        D::UpToDate,
        D::UpToDate,
    );
    #[rustfmt::skip]
    let rows: &[(&str, State, State, Option<SanitizeWarning>)] = &[
        ("connection loss forgets the peer",
            State { conn: C::NetworkFailure, ..base },
            State { conn: C::NetworkFailure, peer: R::Unknown, pdsk: D::DUnknown, ..base }, None),
        ("consistent becomes UpToDate when connected",
            State { disk: D::Consistent, pdsk: D::Outdated, ..base }, base, None),
        ("resync aborts when the peer's disk fails",
            State { conn: C::SyncSource, pdsk: D::Failed, ..base },
            State { pdsk: D::Failed, ..base }, Some(SanitizeWarning::AbortedResync)),
        ("sync target is Inconsistent",
            State { conn: C::SyncTarget, disk: D::UpToDate, ..base },
            State { conn: C::SyncTarget, disk: D::Inconsistent, ..base }, None),
        ("sync source's peer is Inconsistent",
            State { conn: C::SyncSource, ..base },
            State { conn: C::SyncSource, pdsk: D::Inconsistent, ..base }, None),
        ("a paused sync",
            State { conn: C::SyncTarget, disk: D::Inconsistent, user_isp: true, ..base },
            State { conn: C::PausedSyncT, disk: D::Inconsistent, user_isp: true, ..base }, None),
        ("implicit upgrade of a source's disk",
            State { conn: C::WFBitMapS, disk: D::Inconsistent, pdsk: D::Inconsistent, ..base },
            State { conn: C::WFBitMapS, disk: D::UpToDate, pdsk: D::Inconsistent, ..base },
            Some(SanitizeWarning::ImplicitlyUpgradedDisk)),
        ("connection lost while negotiating",
            State { conn: C::BrokenPipe, disk: D::Negotiating, ..base },
            State { conn: C::BrokenPipe, disk: D::Diskless, peer: R::Unknown, pdsk: D::DUnknown, ..base },
            Some(SanitizeWarning::ConnectionLostNegotiating)),
    ];
    for (name, ns, want, warn) in rows {
        let (got, w) = sanitize_state(&base, *ns, Fencing::DontCare, false, None);
        assert_eq!((got, w), (*want, *warn), "{name}");
    }
    let lost = State {
        conn: C::NetworkFailure,
        ..base
    };
    let (s, _) = sanitize_state(&base, lost, Fencing::ResourceAndStonith, false, None);
    assert!(
        s.susp_fen,
        "stonith suspends I/O when a Primary loses its peer"
    );
    let negotiating = State {
        conn: C::BrokenPipe,
        disk: D::Negotiating,
        ..base
    };
    let (s, _) = sanitize_state(
        &base,
        negotiating,
        Fencing::DontCare,
        false,
        Some((D::Consistent, D::Outdated)),
    );
    assert_eq!((s.disk, s.pdsk), (D::Consistent, D::Outdated));
}

#[test]
fn check_change_lets_an_invalid_old_state_through() {
    // A Primary with an Inconsistent disk that lost its peer is invalid; demoting is still fine.
    let os = st(
        R::Primary,
        R::Unknown,
        C::WFConnection,
        D::Inconsistent,
        D::DUnknown,
    );
    let ns = State {
        role: R::Secondary,
        ..os
    };
    assert!(matches!(
        check_change(&os, ns, ChangeKind::Soft, &cx(), None),
        Ok(Checked::Valid(..))
    ));
    // Changing something else that keeps the same violation is allowed too.
    let ns2 = State {
        conn: C::WFConnection,
        disk: D::Inconsistent,
        user_isp: true,
        ..os
    };
    assert!(check_change(&os, ns2, ChangeKind::Soft, &cx(), None).is_ok());
    // From a valid state into an invalid one: refused (soft), allowed (hard).
    let good = st(
        R::Primary,
        R::Unknown,
        C::WFConnection,
        D::UpToDate,
        D::DUnknown,
    );
    let bad = State {
        disk: D::Outdated,
        ..good
    };
    assert_eq!(
        check_change(&good, bad, ChangeKind::Soft, &cx(), None),
        Err(StateError::NoUpToDateDisk)
    );
    assert!(check_change(&good, bad, ChangeKind::Hard, &cx(), None).is_ok());
    assert_eq!(
        check_change(&good, good, ChangeKind::Soft, &cx(), None),
        Ok(Checked::NothingToDo)
    );
}
