//! [`NodeState`]: one node's DRBD 8.4 state machine, `step(event) -> Vec<Action>`.
//!
//! Lifecycles (each arrow a state change checked by [`super::rules`]):
//! - connection: `Connect`: StandAlone -> Unconnected -> WFConnection ([`Action::StartConnecting`];
//!   `--discard-my-data` is kept here until a handshake got through); `SocketUp`: ->
//!   WFReportParams (send P_UUIDS and P_STATE); `PeerParams`: the sync handshake
//!   ([`crate::sync_handshake::handshake`], also while Connected when a disk attaches) ->
//!   Connected / WFBitMapS / WFBitMapT (without two disks: Connected at once), its handlers
//!   ([`Action::RunHandler`]) and log lines ([`Action::LogLine`]), or a refusal ->
//!   Disconnecting ([`Action::HandshakeRefused`], or [`Action::ConnectionRefused`] when the
//!   rules refuse the chosen state, e.g. two Primaries); call-pri-lost-after-sb never
//!   demotes (DRBD 8.4 refuses the change while the state is being sent), so the losing
//!   Primary runs pri-lost-after-sb; `PeerState`: the peer's later P_STATE (a connected
//!   peer's Outdated is taken as UpToDate, as `sanitize_state` does);
//!   `PeerOutdatedForDisconnect`: -> Disconnecting with the peer Outdated (the fencing
//!   `disconnect`); `BitmapExchanged`: WFBitMapS -> SyncSource (new bitmap identifier, send
//!   P_SYNC_UUID), WFBitMapT -> WFSyncUUID; `SyncUuid`: -> SyncTarget; `ResyncDone` (target)
//!   or the target's P_STATE (source): -> Connected, both UpToDate; `NetFailure`: -> Timeout /
//!   BrokenPipe / NetworkFailure / ProtocolError ([`Action::CloseConnection`],
//!   [`Action::SetOutOfSyncFromLog`]); `ConnectionClosed`: -> Unconnected -> WFConnection, or
//!   Disconnecting -> StandAlone; `Disconnect`: -> Disconnecting.
//! - role: `Promote` checks the rules locally (with `--force`: an Inconsistent..Consistent disk
//!   is taken as UpToDate, a non-outdated peer is taken as Outdated), then, when connected,
//!   asks the peer ([`Action::SendStateRequest`], answered by `StateReply`); a promotion that
//!   is still waiting when the connection breaks is decided locally, as DRBD's `_req_st_cond`
//!   does. `PeerStateRequest` is the peer's side: refused with `SS_CONCURRENT_ST_CHG` by the
//!   node holding RESOLVE_CONFLICTS while its own request is pending. `Demote` is refused
//!   while a client has the device open ([`Event::OpenCount`]).
//! - disk: `Attach` -> Attaching -> the state the meta-data flags give
//!   ([`crate::generation::disk_state_at_attach`]; while connected to a peer with a disk:
//!   Negotiating, which the handshake resolves); `Detach` -> Failed -> Diskless (refused
//!   when it would leave a Primary without data); `DiskFailed` (I/O error) the same, hard;
//!   `Outdate` -> Outdated; `Invalidate` -> Inconsistent with every block out of sync.
//! - resync and verify: `StartVerify` (Connected -> VerifyS / VerifyT, DRBD's soft rules),
//!   `VerifyDone` (-> Connected), `SyncPauseFlags` (the isp flags; `sanitize_state` pauses
//!   and resumes SyncSource / SyncTarget).
//! - `NewCurrentUuid` starts a generation; `Observed` records a state the driver reached
//!   along a path the core does not model yet (transition rules only).
//!
//! After every change: a Primary (with UpToDate data and no bitmap identifier) that loses
//! the peer's data starts a new generation ([`crate::sync_handshake::new_current_on_peer_loss`]);
//! the meta-data flags are recomputed ([`crate::generation::md_flags_for_state`]) and, when
//! they or the identifiers changed, [`Action::WriteMeta`] comes first in the returned list.
//!
//! The handlers live in `connection` (connect, handshake, resync end), `role` (promote,
//! demote, the peer's requests) and `disk` (attach, detach, I/O errors).
//!
//! Not modelled (the driver reports them as `Observed`): Ahead/Behind, invalidate-remote,
//! the online grow, a disk attached while connected (Negotiating resolved by the driver
//! from the meta-data flags), the peer's disk outdated on its fencing `disconnect`
//! request (the driver records it while connected), I/O suspension, the
//! fence-peer handler (fencing refuses instead), the before-resync-target/-source handlers
//! (the driver runs them before `BitmapExchanged` / `SyncUuid`), skip-initial-sync (UUID
//! flag 8; the daemon does not implement it either). A refused handshake on an established
//! connection drops it (DRBD fails the attaching disk instead).

use rdbd_types::{ConnState, DiskState, Role};

use super::rules::{check_change, ChangeKind, Checked, RuleContext, SanitizeWarning};
use super::{Fencing, State, StateError};
use crate::generation::{md_flags_for_state, on_demote, FlagState, Generations, UUID_JUST_CREATED};
use crate::sync_handshake::{
    new_current_on_peer_loss, target_sync_uuid_received, Handler, LogLine, PeerLoss,
    PeerLossAction, Policies, Refusal,
};
use crate::uuid_compare::uuid_flag;
#[cfg(doc)]
use crate::uuid_compare::{DRBD_FF_WSAME, PRO_VERSION_MAX};

/// The options the state machine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    /// `allow-two-primaries`.
    pub two_primaries: bool,
    /// `fencing`.
    pub fencing: Fencing,
    /// The after-sb policies, rr-conflict, always-asbp.
    pub policies: Policies,
}

/// How a connection broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetFailure {
    /// The peer did not answer in time (ping-timeout, ko-count).
    Timeout,
    /// A send failed.
    BrokenPipe,
    /// A receive failed or the socket closed.
    NetworkFailure,
    /// The peer sent something invalid.
    ProtocolError,
}

impl NetFailure {
    /// The connection state it leads to.
    pub fn conn_state(self) -> ConnState {
        match self {
            NetFailure::Timeout => ConnState::Timeout,
            NetFailure::BrokenPipe => ConnState::BrokenPipe,
            NetFailure::NetworkFailure => ConnState::NetworkFailure,
            NetFailure::ProtocolError => ConnState::ProtocolError,
        }
    }
}

/// What the peer reported while the connection is being established (P_UUIDS + P_STATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerParams {
    /// The peer's identifiers.
    pub gens: Generations,
    /// The peer's UUID flags ([`uuid_flag`]).
    pub uuid_flags: u64,
    /// The peer's role.
    pub role: Role,
    /// The peer's disk state as it sent it (Negotiating is resolved with the UUID flags).
    pub disk: DiskState,
    /// Bits set in the peer's bitmap.
    pub peer_changed_blocks: u64,
    /// Bits set in our bitmap (the driver knows).
    pub own_changed_blocks: u64,
    /// The protocol version both sides agreed on ([`PRO_VERSION_MAX`] against a peer of
    /// our own version).
    pub agreed_pro_version: u32,
    /// The feature flags both sides agreed on ([`DRBD_FF_WSAME`] against our own version).
    pub agreed_features: u32,
}

/// Something that happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `attach`: the meta-data was read.
    Attach {
        /// The identifiers on disk.
        gens: Generations,
        /// The flags on disk.
        md_flags: u32,
    },
    /// `detach`.
    Detach,
    /// A local I/O error (on-io-error detach).
    DiskFailed,
    /// `connect` (`--discard-my-data`).
    Connect {
        /// Give up our data in a split brain.
        discard_my_data: bool,
    },
    /// `disconnect`.
    Disconnect,
    /// Both sockets are up.
    SocketUp {
        /// We hold RESOLVE_CONFLICTS (we accepted the peer's meta socket).
        resolve_conflicts: bool,
    },
    /// The connection broke.
    NetFailure(NetFailure),
    /// The driver closed the sockets after a failure or a disconnect.
    ConnectionClosed,
    /// The peer's P_UUIDS and P_STATE that call for the sync handshake: in WFReportParams
    /// (a new connection), or while Connected when `receive_state` considers a resync (a
    /// side attached its disk, the peer's identifiers changed, the peer started a sync);
    /// the driver knows which P_STATE that is ([`crate::peer_state::on_peer_state`]).
    PeerParams(PeerParams),
    /// The peer's identifiers (a P_UUIDS the driver handled itself): our record of them,
    /// which the end of a resync as SyncTarget takes over.
    PeerUuids(Generations),
    /// The peer confirmed our `disconnect` with fencing (P_CONN_ST_CHG_REPLY to the
    /// cluster-wide `conn Disconnecting, pdsk Outdated`, drbd_nl.c `conn_try_disconnect`):
    /// -> Disconnecting with the peer Outdated in one change, so its Outdated is kept
    /// (a connected peer's Outdated is taken as UpToDate, see [`Event::PeerState`]).
    PeerOutdatedForDisconnect,
    /// A later P_STATE from the peer, in our terms. Sanitized as DRBD does: while
    /// connected, a peer's Consistent or Outdated disk is taken as UpToDate.
    PeerState {
        /// The peer's role.
        role: Role,
        /// The peer's disk.
        disk: DiskState,
        /// The peer's connection state.
        conn: ConnState,
    },
    /// `primary [--force]`.
    Promote {
        /// `--force`.
        force: bool,
    },
    /// `secondary`.
    Demote,
    /// `outdate`.
    Outdate,
    /// `invalidate` (not connected): the disk becomes Inconsistent, every block out of sync.
    Invalidate,
    /// `new-current-uuid [--clear-bitmap]`: a new data generation; with `clear_bitmap` the
    /// bitmap identifier and every out-of-sync bit are dropped.
    NewCurrentUuid {
        /// `--clear-bitmap`.
        clear_bitmap: bool,
    },
    /// The driver moved the state along a path the core does not model yet (online verify,
    /// paused syncs, the online grow, a disk attached while connected): recorded as it is,
    /// refused only by the transition rules (DRBD refuses those even for hard changes).
    Observed(State),
    /// The number of clients holding the device open.
    OpenCount(u32),
    /// Online verify starts: VerifyS (`verify`, once the peer agreed) or VerifyT (the
    /// peer's request); a soft change (Connected, both disks UpToDate).
    StartVerify {
        /// We request the blocks (VerifyS).
        source: bool,
    },
    /// Online verify ended (stop sector reached, `verify --stop`, the peer's P_STATE):
    /// VerifyS / VerifyT -> Connected.
    VerifyDone,
    /// A resync's pause flags: `aftr_isp` (resync-after), `peer_isp` (the peer's
    /// pause), `user_isp` (`pause-sync` / `resume-sync`). With any set, SyncSource /
    /// SyncTarget pause (PausedSyncS / PausedSyncT), with none they go on
    /// (`sanitize_state`).
    SyncPauseFlags {
        /// resync-after holds this resync.
        aftr_isp: bool,
        /// The peer paused it.
        peer_isp: bool,
        /// `pause-sync` here.
        user_isp: bool,
    },
    /// The peer asks to change its role (P_STATE_CHG_REQ, in our terms: our `peer`).
    PeerStateRequest {
        /// The peer's new role.
        role: Role,
    },
    /// The peer's answer to our request (P_STATE_CHG_REPLY).
    StateReply(Result<(), StateError>),
    /// The bitmaps were exchanged (WFBitMapS / WFBitMapT).
    BitmapExchanged,
    /// P_SYNC_UUID arrived (SyncTarget).
    SyncUuid(u64),
    /// Every out-of-sync block was resynced (the target wrote them all, or the source got
    /// every P_RS_WRITE_ACK).
    ResyncDone,
}

/// A request that can be refused or completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `primary`.
    Promote,
    /// `secondary`.
    Demote,
    /// `outdate`.
    Outdate,
    /// `invalidate`.
    Invalidate,
    /// `new-current-uuid`.
    NewCurrentUuid,
    /// `connect`.
    Connect,
    /// `disconnect`.
    Disconnect,
    /// `attach`.
    Attach,
    /// `detach`.
    Detach,
    /// `verify` (or the peer's request for it).
    Verify,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write the identifiers and flags to the meta-data before anything else.
    WriteMeta {
        /// The identifiers.
        gens: Generations,
        /// The flags.
        md_flags: u32,
    },
    /// The state changed (log it; DRBD prints `role( A -> B ) ...`).
    StateChanged {
        /// Before.
        old: State,
        /// After.
        new: State,
        /// `sanitize_state`'s warning.
        warning: Option<SanitizeWarning>,
    },
    /// Listen and connect.
    StartConnecting,
    /// Close the sockets; report [`Event::ConnectionClosed`] when done.
    CloseConnection,
    /// The connection is lost: every request in the transfer log is set out of sync
    /// (`TransferLog::clear`).
    SetOutOfSyncFromLog,
    /// Send P_UUIDS.
    SendUuids {
        /// Our identifiers.
        gens: Generations,
        /// [`uuid_flag`] bits.
        uuid_flags: u64,
    },
    /// Send P_STATE.
    SendState(State),
    /// Send P_STATE_CHG_REQ for our role.
    SendStateRequest {
        /// Our new role.
        role: Role,
    },
    /// Send P_STATE_CHG_REPLY.
    SendStateReply(Result<(), StateError>),
    /// Full sync: set every bit of the bitmap first.
    SetAllOutOfSync,
    /// Clear every bit of the bitmap (`new-current-uuid --clear-bitmap`), before the
    /// identifiers are written.
    ClearBitmap,
    /// Exchange the bitmaps (send ours, merge the peer's), then report
    /// [`Event::BitmapExchanged`].
    ExchangeBitmap,
    /// Send P_SYNC_UUID.
    SendSyncUuid(u64),
    /// Start moving resync data.
    StartResync {
        /// We are the SyncSource.
        source: bool,
    },
    /// The handshake refused the connection (split brain, unrelated data, ...).
    HandshakeRefused(Refusal),
    /// The state the handshake chose was refused by the rules (e.g. both Primary without
    /// allow-two-primaries); the connection is dropped (DRBD `receive_state`: C_DISCONNECTING).
    ConnectionRefused(StateError),
    /// Run a handler.
    RunHandler(Handler),
    /// A line to log.
    Log(String),
    /// A line DRBD logs at a given level (the handshake's lines).
    LogLine(LogLine),
    /// A request was refused.
    Refused {
        /// The request.
        request: Request,
        /// Why.
        error: StateError,
    },
    /// A request took effect.
    Completed(Request),
}

/// One node's state machine.
#[derive(Debug, Clone)]
pub struct NodeState {
    cfg: Config,
    state: State,
    gens: Generations,
    peer_gens: Generations,
    md_flags: u32,
    written: Option<(Generations, u32)>,
    crashed_primary: bool,
    open_count: u32,
    resolve_conflicts: bool,
    discard_my_data: bool,
    pending: Option<PendingPromote>,
    negotiating_fallback: Option<(DiskState, DiskState)>,
    rng: u64,
}

impl NodeState {
    /// An unconfigured node (StandAlone, Secondary, Diskless). `uuid_seed` seeds the generator
    /// of new generation identifiers (the daemon passes OS randomness; a simulation its seed).
    pub fn new(cfg: Config, uuid_seed: u64) -> NodeState {
        NodeState {
            cfg,
            state: super::unconfigured(),
            gens: Generations::default(),
            peer_gens: Generations::default(),
            md_flags: 0,
            written: None,
            crashed_primary: false,
            open_count: 0,
            resolve_conflicts: false,
            discard_my_data: false,
            pending: None,
            negotiating_fallback: None,
            rng: uuid_seed,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Our generation identifiers.
    pub fn gens(&self) -> Generations {
        self.gens
    }

    /// Our record of the peer's identifiers.
    pub fn peer_gens(&self) -> Generations {
        self.peer_gens
    }

    /// The meta-data flags as last computed.
    pub fn md_flags(&self) -> u32 {
        self.md_flags
    }

    /// Whether our promotion waits for the peer's answer.
    pub fn promotion_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The options.
    pub fn config(&self) -> Config {
        self.cfg
    }

    /// Changes the options (`adjust`, or the driver learning them after construction).
    pub fn set_config(&mut self, cfg: Config) {
        self.cfg = cfg;
    }

    /// DRBD's CRASHED_PRIMARY: this node was Primary when it went away and has not been
    /// UpToDate with an UpToDate peer since.
    pub fn crashed_primary(&self) -> bool {
        self.crashed_primary
    }

    /// `--discard-my-data` of the last `connect`, until a handshake got through
    /// (DRBD's DISCARD_MY_DATA; sent as UUID flag 1 and in P_PROTOCOL).
    pub fn discard_my_data(&self) -> bool {
        self.discard_my_data
    }

    /// The clients holding the device open, as last reported ([`Event::OpenCount`]).
    pub fn open_count(&self) -> u32 {
        self.open_count
    }

    /// Changes the generation identifiers with `f` (bookkeeping the driver still does
    /// itself: the sync handshake's fix-ups, P_SYNC_UUID, the end of a resync); returns the
    /// [`Action::WriteMeta`] that records it, if anything changed.
    pub fn update_generations(&mut self, f: impl FnOnce(&mut Generations)) -> Vec<Action> {
        f(&mut self.gens);
        let mut out = Vec::new();
        self.finish(&mut out);
        out
    }

    /// The UUID flags we send (crashed primary, discard-my-data, inconsistent).
    pub fn uuid_flags(&self) -> u64 {
        let mut f = 0;
        if self.discard_my_data {
            f |= uuid_flag::DISCARD_MY_DATA;
        }
        if self.crashed_primary {
            f |= uuid_flag::CRASHED_PRIMARY;
        }
        let disk = match (self.state.disk, self.negotiating_fallback) {
            (DiskState::Negotiating, Some((d, _))) => d,
            (d, _) => d,
        };
        if disk == DiskState::Inconsistent {
            f |= uuid_flag::INCONSISTENT;
        }
        f
    }

    fn random_uuid(&mut self) -> u64 {
        loop {
            // splitmix64
            self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let v = z & !1;
            if v != 0 && v != UUID_JUST_CREATED {
                return v;
            }
        }
    }

    fn rule_context(&self) -> RuleContext {
        RuleContext {
            two_primaries: self.cfg.two_primaries,
            has_net_config: self.state.conn != ConnState::StandAlone,
            fencing: self.cfg.fencing,
            open_count: self.open_count,
            state_sent: self.state.conn == ConnState::WFReportParams,
        }
    }

    fn check(&self, kind: ChangeKind, f: impl FnOnce(&mut State)) -> Result<Checked, StateError> {
        let mut ns = self.state;
        f(&mut ns);
        check_change(
            &self.state,
            ns,
            kind,
            &self.rule_context(),
            self.negotiating_fallback,
        )
    }

    /// Applies a change if the rules allow it; `Ok(false)`: nothing to do.
    fn change(
        &mut self,
        kind: ChangeKind,
        f: impl FnOnce(&mut State),
        out: &mut Vec<Action>,
    ) -> Result<bool, StateError> {
        match self.check(kind, f)? {
            Checked::NothingToDo => Ok(false),
            Checked::Valid(ns, warning) => {
                let os = self.state;
                self.state = ns;
                self.after_change(os, ns, warning, out);
                Ok(true)
            }
        }
    }

    /// A hard change (imposed by the environment); only the transition rules can refuse it.
    fn force(&mut self, f: impl FnOnce(&mut State), out: &mut Vec<Action>) {
        if let Err(e) = self.change(ChangeKind::Hard, f, out) {
            out.push(Action::Log(format!("state change not possible: {e}")));
        }
    }

    fn after_change(
        &mut self,
        os: State,
        ns: State,
        warning: Option<SanitizeWarning>,
        out: &mut Vec<Action>,
    ) {
        use ConnState as C;
        out.push(Action::StateChanged {
            old: os,
            new: ns,
            warning,
        });
        let failing =
            |c: ConnState| (C::Timeout..=C::TearDown).contains(&c) || c == C::Disconnecting;
        if failing(ns.conn) && !failing(os.conn) {
            out.push(Action::CloseConnection);
        }
        if os.conn >= C::Connected && ns.conn < C::Connected {
            out.push(Action::SetOutOfSyncFromLog);
        }
        if ns.conn < C::WFReportParams {
            self.negotiating_fallback = match ns.disk {
                DiskState::Negotiating => self.negotiating_fallback,
                _ => None,
            };
        }
        // Both UpToDate ends the crashed-primary state (after_state_ch), once the handshake is
        // through: DRBD applies the peer's disk together with the state the handshake chose,
        // so a peer disk recorded during WFReportParams must not clear it before the handshake
        // used it to pick the sync source.
        let both_up_to_date = |s: &State| {
            s.disk == DiskState::UpToDate && s.pdsk == DiskState::UpToDate && s.conn >= C::Connected
        };
        if !both_up_to_date(&os) && both_up_to_date(&ns) {
            self.crashed_primary = false;
        }
        if ns.disk >= DiskState::Inconsistent {
            let random = self.random_uuid();
            let loss = PeerLoss {
                old_peer_disk: os.pdsk,
                new_peer_disk: ns.pdsk,
                role: ns.role,
                peer_role: ns.peer,
                disk: ns.disk,
                suspended: ns.susp || ns.susp_nod || ns.susp_fen,
            };
            if new_current_on_peer_loss(&mut self.gens, &loss, random) == PeerLossAction::NewCurrent
            {
                out.push(Action::Log(
                    "new current UUID: the peer's data is lost".into(),
                ));
                if ns.conn >= C::WFReportParams {
                    out.push(self.send_uuids());
                }
            }
        }
        let state_visible = os.role != ns.role || os.disk != ns.disk || os.conn != ns.conn;
        if ns.conn >= C::Connected && state_visible {
            out.push(Action::SendState(ns));
        }
        if os.conn >= C::Connected && ns.conn < C::Connected {
            if let Some(p) = self.pending.take() {
                // No longer a cluster-wide change: decide locally (SS_CW_NO_NEED).
                self.apply_promotion(p, out);
            }
        }
    }

    fn send_uuids(&self) -> Action {
        Action::SendUuids {
            gens: self.gens,
            uuid_flags: self.uuid_flags(),
        }
    }

    /// Feeds one event; returns what to do, in order.
    pub fn step(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Attach { gens, md_flags } => self.attach(gens, md_flags, &mut out),
            Event::Detach => self.detach(false, &mut out),
            Event::DiskFailed => self.detach(true, &mut out),
            Event::Connect { discard_my_data } => self.connect(discard_my_data, &mut out),
            Event::Disconnect => self.disconnect(&mut out),
            Event::SocketUp { resolve_conflicts } => {
                if self.state.conn == ConnState::WFConnection {
                    self.resolve_conflicts = resolve_conflicts;
                    self.force(|s| s.conn = ConnState::WFReportParams, &mut out);
                    out.push(self.send_uuids());
                    out.push(Action::SendState(self.state));
                }
            }
            Event::NetFailure(kind) => {
                if self.state.conn >= ConnState::WFReportParams {
                    self.force(|s| s.conn = kind.conn_state(), &mut out);
                }
            }
            Event::ConnectionClosed => self.connection_closed(&mut out),
            Event::PeerParams(p) => self.peer_params(p, &mut out),
            Event::PeerUuids(g) => self.peer_gens = g,
            Event::PeerState { role, disk, conn } => self.peer_state(role, disk, conn, &mut out),
            Event::PeerOutdatedForDisconnect => self.peer_outdated_for_disconnect(&mut out),
            Event::Promote { force } => self.promote(force, &mut out),
            Event::Demote => {
                match self.change(ChangeKind::Soft, |s| s.role = Role::Secondary, &mut out) {
                    Ok(_) => {
                        on_demote(&mut self.gens);
                        out.push(Action::Completed(Request::Demote));
                    }
                    Err(error) => out.push(Action::Refused {
                        request: Request::Demote,
                        error,
                    }),
                }
            }
            Event::Outdate => {
                match self.change(ChangeKind::Soft, |s| s.disk = DiskState::Outdated, &mut out) {
                    Ok(_) => out.push(Action::Completed(Request::Outdate)),
                    Err(error) => out.push(Action::Refused {
                        request: Request::Outdate,
                        error,
                    }),
                }
            }
            Event::Invalidate => {
                match self.change(
                    ChangeKind::Soft,
                    |s| s.disk = DiskState::Inconsistent,
                    &mut out,
                ) {
                    Ok(_) => {
                        out.push(Action::SetAllOutOfSync);
                        out.push(Action::Completed(Request::Invalidate));
                    }
                    Err(error) => out.push(Action::Refused {
                        request: Request::Invalidate,
                        error,
                    }),
                }
            }
            Event::NewCurrentUuid { clear_bitmap } => self.new_current_uuid(clear_bitmap, &mut out),
            Event::Observed(ns) => self.observed(ns, &mut out),
            Event::OpenCount(n) => self.open_count = n,
            Event::StartVerify { source } => self.start_verify(source, &mut out),
            Event::VerifyDone => self.verify_done(&mut out),
            Event::SyncPauseFlags {
                aftr_isp,
                peer_isp,
                user_isp,
            } => self.force(
                |s| {
                    s.aftr_isp = aftr_isp;
                    s.peer_isp = peer_isp;
                    s.user_isp = user_isp;
                },
                &mut out,
            ),
            Event::PeerStateRequest { role } => self.peer_state_request(role, &mut out),
            Event::StateReply(result) => {
                if let Some(p) = self.pending.take() {
                    match result {
                        Ok(()) => self.apply_promotion(p, &mut out),
                        Err(error) => out.push(Action::Refused {
                            request: Request::Promote,
                            error,
                        }),
                    }
                }
            }
            Event::BitmapExchanged => self.bitmap_exchanged(&mut out),
            Event::SyncUuid(uuid) => {
                if self.state.conn == ConnState::WFSyncUUID {
                    target_sync_uuid_received(&mut self.gens, uuid, self.state.role);
                    self.force(|s| s.conn = ConnState::SyncTarget, &mut out);
                    out.push(Action::StartResync { source: false });
                }
            }
            Event::ResyncDone => self.resync_done(&mut out),
        }
        self.finish(&mut out);
        out
    }

    fn new_current_uuid(&mut self, clear_bitmap: bool, out: &mut Vec<Action>) {
        if self.state.disk < DiskState::Inconsistent {
            out.push(Action::Refused {
                request: Request::NewCurrentUuid,
                error: StateError::IsDiskless,
            });
            return;
        }
        let random = self.random_uuid();
        self.gens.new_current(random, self.state.role);
        if clear_bitmap {
            self.gens.bitmap = 0;
            out.push(Action::ClearBitmap);
        }
        out.push(Action::Completed(Request::NewCurrentUuid));
    }

    fn observed(&mut self, ns: State, out: &mut Vec<Action>) {
        if ns == self.state {
            return;
        }
        if let Err(e) = super::rules::is_valid_transition(&self.state, &ns) {
            out.push(Action::Log(format!(
                "State change failed: ({}) {e}",
                e.code()
            )));
            return;
        }
        let os = self.state;
        self.state = ns;
        self.after_change(os, ns, None, out);
    }

    /// Recomputes the flags; puts a WriteMeta first when they or the identifiers changed.
    fn finish(&mut self, out: &mut Vec<Action>) {
        if self.state.disk < DiskState::Negotiating && self.state.disk != DiskState::Attaching {
            return;
        }
        let s = FlagState {
            role: self.state.role,
            peer_role: self.state.peer,
            cstate: self.state.conn,
            disk: self.state.disk,
            peer_disk: self.state.pdsk,
            crashed_primary: self.crashed_primary,
        };
        self.md_flags = md_flags_for_state(self.md_flags, &s);
        if self.written != Some((self.gens, self.md_flags)) {
            self.written = Some((self.gens, self.md_flags));
            out.insert(
                0,
                Action::WriteMeta {
                    gens: self.gens,
                    md_flags: self.md_flags,
                },
            );
        }
    }
}

mod connection;
mod disk;
mod role;

use role::PendingPromote;

#[cfg(test)]
mod tests;
