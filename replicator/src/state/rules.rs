//! DRBD 8.4's state validity rules (drbd_state.c) as pure functions over [`State`].
//!
//! - [`is_valid_state`]: whether a state may be entered at all (a soft change into an invalid
//!   state is refused; "soft" = requested by a user or the peer).
//! - [`is_valid_soft_transition`]: rules about the step from the old to the new state.
//! - [`is_valid_transition`]: the few rules even hard changes (a broken network, a failed
//!   disk) obey: the connection state's order.
//! - [`sanitize_state`]: the implied changes (losing the connection makes the peer's role
//!   Unknown and its disk DUnknown; a resync aborts when a disk fails; Consistent and
//!   Outdated become UpToDate once connected; each connection state bounds both disk states).
//! - [`check_change`]: `_drbd_set_state`'s combination: sanitize, then the transition rules,
//!   then (soft only) the state rules, letting an already invalid old state through when the
//!   new one fails for the same reason.
//!
//! Online verify's rules (verify-alg, protocol 88) and multi-volume rules are not modelled.

use rdbd_types::{ConnState, DiskState, Role};

use super::{Fencing, State, StateError};

/// What the rules read besides the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleContext {
    /// `allow-two-primaries`.
    pub two_primaries: bool,
    /// A net configuration exists (`nc`); the two-primaries rule applies only then.
    pub has_net_config: bool,
    /// `fencing`.
    pub fencing: Fencing,
    /// Clients holding the device open (`open_cnt`).
    pub open_count: u32,
    /// Our state was sent while the connection is being established (`STATE_SENT`): only the
    /// connection state may change.
    pub state_sent: bool,
}

/// `is_valid_state`.
pub fn is_valid_state(ns: &State, cx: &RuleContext) -> Result<(), StateError> {
    use ConnState as C;
    use DiskState as D;
    if cx.has_net_config
        && !cx.two_primaries
        && ns.role == Role::Primary
        && ns.peer == Role::Primary
    {
        return Err(StateError::TwoPrimaries);
    }
    let beyond_connected = ns.conn > C::Connected;
    let err = if ns.role == Role::Secondary && cx.open_count > 0 {
        StateError::DeviceInUse
    } else if ns.role == Role::Primary && ns.conn < C::Connected && ns.disk < D::UpToDate {
        StateError::NoUpToDateDisk
    } else if cx.fencing >= Fencing::ResourceOnly
        && ns.role == Role::Primary
        && ns.conn < C::Connected
        && ns.pdsk >= D::DUnknown
    {
        StateError::PrimaryNop
    } else if ns.role == Role::Primary && ns.disk <= D::Inconsistent && ns.pdsk <= D::Inconsistent {
        StateError::NoUpToDateDisk
    } else if beyond_connected && ns.disk < D::Inconsistent {
        StateError::NoLocalDisk
    } else if beyond_connected && ns.pdsk < D::Inconsistent {
        StateError::NoRemoteDisk
    } else if beyond_connected && ns.disk < D::UpToDate && ns.pdsk < D::UpToDate {
        StateError::NoUpToDateDisk
    } else if matches!(
        ns.conn,
        C::Connected | C::WFBitMapS | C::SyncSource | C::PausedSyncS
    ) && ns.disk == D::Outdated
    {
        StateError::ConnectedOutdates
    } else if ns.role == Role::Primary && ns.disk < D::UpToDate && ns.pdsk < D::UpToDate {
        StateError::NoUpToDateDisk
    } else if matches!(ns.conn, C::StartingSyncS | C::StartingSyncT) && ns.pdsk == D::DUnknown {
        StateError::NeedConnection
    } else if ns.conn >= C::Connected && ns.pdsk == D::DUnknown {
        StateError::ConnectedOutdates
    } else {
        return Ok(());
    };
    Err(err)
}

/// `is_valid_soft_transition`. Like DRBD, the last matching rule decides.
pub fn is_valid_soft_transition(
    os: &State,
    ns: &State,
    cx: &RuleContext,
) -> Result<(), StateError> {
    use ConnState as C;
    use DiskState as D;
    let mut rv = Ok(());
    let starting_sync = matches!(ns.conn, C::StartingSyncS | C::StartingSyncT);
    if starting_sync && os.conn > C::Connected {
        rv = Err(StateError::ResyncRunning);
    }
    if ns.conn == C::Disconnecting && os.conn == C::StandAlone {
        rv = Err(StateError::AlreadyStandAlone);
    }
    if ns.disk > D::Attaching && os.disk == D::Diskless {
        rv = Err(StateError::IsDiskless);
    }
    if ns.conn == C::WFConnection && os.conn < C::Unconnected {
        rv = Err(StateError::NoNetConfig);
    }
    if ns.disk == D::Outdated && os.disk < D::Outdated && os.disk != D::Attaching {
        rv = Err(StateError::LowerThanOutdated);
    }
    if ns.conn == C::Disconnecting && os.conn == C::Unconnected {
        rv = Err(StateError::InTransientState);
    }
    if cx.state_sent
        && !((ns.conn == C::WFReportParams && os.conn == C::WFConnection)
            || (ns.conn >= C::Connected && os.conn == C::WFReportParams))
    {
        rv = Err(StateError::InTransientState);
    }
    if os.role != Role::Primary
        && ns.role == Role::Primary
        && ns.pdsk == D::UpToDate
        && ns.disk != D::UpToDate
        && ns.disk != D::Diskless
        && (ns.conn <= C::WFSyncUUID || ns.conn != os.conn)
    {
        rv = Err(StateError::InTransientState);
    }
    if starting_sync && os.conn < C::Connected {
        rv = Err(StateError::NeedConnection);
    }
    if matches!(ns.conn, C::SyncTarget | C::SyncSource) && os.conn < C::WFReportParams {
        rv = Err(StateError::NeedConnection);
    }
    let verify = matches!(ns.conn, C::VerifyS | C::VerifyT);
    if verify && os.conn < C::Connected {
        rv = Err(StateError::NeedConnection);
    }
    if verify && ns.conn != os.conn && os.conn > C::Connected {
        rv = Err(StateError::ResyncRunning);
    }
    if ns.conn == C::Disconnecting
        && ns.pdsk == D::Outdated
        && os.conn < C::Connected
        && os.pdsk > D::Outdated
    {
        rv = Err(StateError::OutdateWithoutConnection);
    }
    rv
}

/// `is_valid_conn_transition`; `Ok(false)`: nothing to do for the connection.
fn is_valid_conn_transition(oc: ConnState, nc: ConnState) -> Result<bool, StateError> {
    use ConnState as C;
    if oc == nc {
        return Ok(false);
    }
    if oc == C::StandAlone && nc == C::Disconnecting {
        return Err(StateError::AlreadyStandAlone);
    }
    if oc == C::StandAlone && nc != C::Unconnected {
        return Err(StateError::NeedConnection);
    }
    if oc < C::WFReportParams && nc >= C::Connected {
        return Err(StateError::NeedConnection);
    }
    if (C::Timeout..=C::TearDown).contains(&oc) && nc != C::Unconnected && nc != C::Disconnecting {
        return Err(StateError::InTransientState);
    }
    if oc == C::Disconnecting && nc != C::StandAlone {
        return Err(StateError::InTransientState);
    }
    Ok(true)
}

/// `is_valid_transition`: the rules hard changes obey too.
pub fn is_valid_transition(os: &State, ns: &State) -> Result<(), StateError> {
    is_valid_conn_transition(os.conn, ns.conn)?;
    if ns.disk == DiskState::Failed && os.disk == DiskState::Diskless {
        return Err(StateError::IsDiskless);
    }
    Ok(())
}

/// What [`sanitize_state`] warns about (`print_sanitize_warnings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanitizeWarning {
    /// "Online-verify aborted."
    AbortedOnlineVerify,
    /// "Resync aborted."
    AbortedResync,
    /// "Connection lost while negotiating, no data!"
    ConnectionLostNegotiating,
    /// "Implicitly upgraded disk"
    ImplicitlyUpgradedDisk,
    /// "Implicitly upgraded pdsk"
    ImplicitlyUpgradedPdsk,
}

impl SanitizeWarning {
    /// DRBD's text.
    pub fn text(self) -> &'static str {
        match self {
            SanitizeWarning::AbortedOnlineVerify => "Online-verify aborted.",
            SanitizeWarning::AbortedResync => "Resync aborted.",
            SanitizeWarning::ConnectionLostNegotiating => {
                "Connection lost while negotiating, no data!"
            }
            SanitizeWarning::ImplicitlyUpgradedDisk => "Implicitly upgraded disk",
            SanitizeWarning::ImplicitlyUpgradedPdsk => "Implicitly upgraded pdsk",
        }
    }
}

/// The disk-state bounds a connection state implies: (disk min, disk max, pdsk min, pdsk max).
pub fn disk_bounds(conn: ConnState) -> (DiskState, DiskState, DiskState, DiskState) {
    use ConnState as C;
    use DiskState as D;
    match conn {
        C::WFBitMapT | C::PausedSyncT | C::StartingSyncT | C::WFSyncUUID | C::Behind => {
            (D::Inconsistent, D::Outdated, D::UpToDate, D::UpToDate)
        }
        C::VerifyS | C::VerifyT => (D::UpToDate, D::UpToDate, D::UpToDate, D::UpToDate),
        C::Connected => (D::Diskless, D::UpToDate, D::Diskless, D::UpToDate),
        C::WFBitMapS | C::PausedSyncS | C::StartingSyncS | C::Ahead => {
            (D::UpToDate, D::UpToDate, D::Inconsistent, D::Consistent)
        }
        C::SyncTarget => (D::Inconsistent, D::Inconsistent, D::UpToDate, D::UpToDate),
        C::SyncSource => (D::UpToDate, D::UpToDate, D::Inconsistent, D::Inconsistent),
        _ => (D::Diskless, D::UpToDate, D::Inconsistent, D::DUnknown),
    }
}

/// `sanitize_state`. `negotiating_fallback`: the disk states an attach in progress falls back
/// to when the connection breaks during Negotiating and the identifiers did not change
/// (`new_state_tmp`); `None`: they changed, the disk detaches.
pub fn sanitize_state(
    os: &State,
    mut ns: State,
    fencing: Fencing,
    on_no_data_suspend: bool,
    negotiating_fallback: Option<(DiskState, DiskState)>,
) -> (State, Option<SanitizeWarning>) {
    use ConnState as C;
    use DiskState as D;
    let mut warn = None;
    if ns.conn < C::Connected {
        ns.peer_isp = false;
        ns.peer = Role::Unknown;
        if ns.pdsk > D::DUnknown || ns.pdsk < D::Inconsistent {
            ns.pdsk = D::DUnknown;
        }
    }
    if ns.conn == C::StandAlone && ns.disk == D::Diskless && ns.role == Role::Secondary {
        ns.aftr_isp = false;
    }
    if ns.conn > C::Connected && (ns.disk <= D::Failed || ns.pdsk <= D::Failed) {
        warn = Some(if matches!(ns.conn, C::VerifyS | C::VerifyT) {
            SanitizeWarning::AbortedOnlineVerify
        } else {
            SanitizeWarning::AbortedResync
        });
        ns.conn = C::Connected;
    }
    if ns.conn < C::Connected && ns.disk == D::Negotiating {
        match negotiating_fallback {
            Some((disk, pdsk)) => {
                ns.disk = disk;
                ns.pdsk = pdsk;
            }
            None => {
                warn = Some(SanitizeWarning::ConnectionLostNegotiating);
                ns.disk = D::Diskless;
                ns.pdsk = D::DUnknown;
            }
        }
    }
    if ns.conn >= C::Connected && ns.conn < C::Ahead {
        if matches!(ns.disk, D::Consistent | D::Outdated) {
            ns.disk = D::UpToDate;
        }
        if matches!(ns.pdsk, D::Consistent | D::Outdated) {
            ns.pdsk = D::UpToDate;
        }
    }
    let (disk_min, disk_max, pdsk_min, pdsk_max) = disk_bounds(ns.conn);
    if ns.disk > disk_max {
        ns.disk = disk_max;
    }
    if ns.disk < disk_min {
        warn = Some(SanitizeWarning::ImplicitlyUpgradedDisk);
        ns.disk = disk_min;
    }
    if ns.pdsk > pdsk_max {
        ns.pdsk = pdsk_max;
    }
    if ns.pdsk < pdsk_min {
        warn = Some(SanitizeWarning::ImplicitlyUpgradedPdsk);
        ns.pdsk = pdsk_min;
    }
    let peer_lost_primary =
        |s: &State| s.role == Role::Primary && s.conn < C::Connected && s.pdsk > D::Outdated;
    if fencing == Fencing::ResourceAndStonith && peer_lost_primary(&ns) && !peer_lost_primary(os) {
        ns.susp_fen = true;
    }
    let no_data =
        |s: &State| s.role == Role::Primary && s.disk < D::UpToDate && s.pdsk < D::UpToDate;
    if on_no_data_suspend && no_data(&ns) && !no_data(os) {
        ns.susp_nod = true;
    }
    let paused = ns.aftr_isp || ns.peer_isp || ns.user_isp;
    ns.conn = match (ns.conn, paused) {
        (C::SyncSource, true) => C::PausedSyncS,
        (C::SyncTarget, true) => C::PausedSyncT,
        (C::PausedSyncS, false) => C::SyncSource,
        (C::PausedSyncT, false) => C::SyncTarget,
        (c, _) => c,
    };
    (ns, warn)
}

/// How a change is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Requested by a user or the peer: the state rules apply (`CS_VERBOSE` etc.).
    Soft,
    /// Imposed by the environment (`CS_HARD`): only the transition rules apply.
    Hard,
}

/// The outcome of [`check_change`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The sanitized new state is the old one (`SS_NOTHING_TO_DO`).
    NothingToDo,
    /// The change is valid: the sanitized new state and the warning to log.
    Valid(State, Option<SanitizeWarning>),
}

/// `_drbd_set_state`'s checks for a change from `os` to the requested `ns`.
pub fn check_change(
    os: &State,
    ns: State,
    kind: ChangeKind,
    cx: &RuleContext,
    negotiating_fallback: Option<(DiskState, DiskState)>,
) -> Result<Checked, StateError> {
    let (ns, warn) = sanitize_state(os, ns, cx.fencing, false, negotiating_fallback);
    if ns == *os {
        return Ok(Checked::NothingToDo);
    }
    is_valid_transition(os, &ns)?;
    if kind == ChangeKind::Soft {
        match is_valid_state(&ns, cx) {
            Ok(()) => is_valid_soft_transition(os, &ns, cx)?,
            Err(e) => {
                if is_valid_state(os, cx) == Err(e) {
                    is_valid_soft_transition(os, &ns, cx)?;
                } else {
                    return Err(e);
                }
            }
        }
    }
    Ok(Checked::Valid(ns, warn))
}

#[cfg(test)]
mod tests;
