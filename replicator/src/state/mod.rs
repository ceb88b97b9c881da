//! The node-level state machine of DRBD 8.4 (connection, role and disk states) without I/O.
//!
//! - [`rules`]: DRBD's validity rules as pure functions over [`State`] (drbd_state.c
//!   `is_valid_state`, `is_valid_soft_transition`, `is_valid_transition`, `sanitize_state`)
//!   and [`rules::check_change`], which combines them as `_drbd_set_state` does.
//! - [`machine`]: [`NodeState`]: `step(event) -> Vec<Action>`. Events are what happened
//!   (an admin command, a socket came up or broke, a packet from the peer, the resync
//!   finished); actions are what the driver must do (write the meta-data, send a packet,
//!   close the connection, set the transfer log's requests out of sync, run a handler).
//!   It keeps the generation identifiers and runs [`crate::sync_handshake`] itself.
//!
//! Invariants every state reached through [`NodeState::step`] satisfies (asserted in the
//! tests and by the simulation in `tests/simulation.rs`):
//! - without `allow-two-primaries`, a change that makes both sides Primary while they are
//!   connected is refused (`SS_TWO_PRIMARIES`), and concurrent promotions are resolved by the
//!   side that holds RESOLVE_CONFLICTS;
//! - a node becomes Primary only with UpToDate data, or connected to an UpToDate peer, or
//!   forced (`primary --force`, which also marks the data UpToDate and starts a generation);
//! - `secondary` is refused while a client holds the device open;
//! - when the peer's data becomes unreachable, a Primary with UpToDate data and no bitmap
//!   identifier starts a new generation, so that both sides writing since their last common
//!   generation is always seen as split brain at the next handshake.

pub mod machine;
pub mod rules;

pub use machine::{Action, Config, Event, NetFailure, NodeState, PeerParams, Request};
pub use rdbd_wire::DrbdState as State;

/// A refused state change: DRBD's `SS_*` codes with their texts (drbd_strings.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// `SS_TWO_PRIMARIES`.
    #[error("Multiple primaries not allowed by config")]
    TwoPrimaries,
    /// `SS_NO_UP_TO_DATE_DISK`.
    #[error("Need access to UpToDate data")]
    NoUpToDateDisk,
    /// `SS_NO_LOCAL_DISK`.
    #[error("Can not resync without local disk")]
    NoLocalDisk,
    /// `SS_NO_REMOTE_DISK`.
    #[error("Can not resync without remote disk")]
    NoRemoteDisk,
    /// `SS_CONNECTED_OUTDATES`.
    #[error("Refusing to be Outdated while Connected")]
    ConnectedOutdates,
    /// `SS_PRIMARY_NOP`.
    #[error("Refusing to be Primary while peer is not outdated")]
    PrimaryNop,
    /// `SS_RESYNC_RUNNING`.
    #[error("Can not start OV/resync since it is already active")]
    ResyncRunning,
    /// `SS_ALREADY_STANDALONE`.
    #[error("Can not disconnect a StandAlone device")]
    AlreadyStandAlone,
    /// `SS_CW_FAILED_BY_PEER`.
    #[error("State change was refused by peer node")]
    FailedByPeer,
    /// `SS_IS_DISKLESS`.
    #[error("Device is diskless, the requested operation requires a disk")]
    IsDiskless,
    /// `SS_DEVICE_IN_USE`.
    #[error("Device is held open by someone")]
    DeviceInUse,
    /// `SS_NO_NET_CONFIG`.
    #[error("Have no net/connection configuration")]
    NoNetConfig,
    /// `SS_NEED_CONNECTION`.
    #[error("Need a connection to start verify or resync")]
    NeedConnection,
    /// `SS_LOWER_THAN_OUTDATED`.
    #[error("Disk state is lower than outdated")]
    LowerThanOutdated,
    /// `SS_IN_TRANSIENT_STATE`.
    #[error("In transient state, retry after next state change")]
    InTransientState,
    /// `SS_CONCURRENT_ST_CHG`.
    #[error("Concurrent state changes detected and aborted")]
    ConcurrentChange,
    /// `SS_OUTDATE_WO_CONN`.
    #[error("Need a connection for a graceful disconnect/outdate peer")]
    OutdateWithoutConnection,
}

impl StateError {
    /// DRBD's numeric code (`enum drbd_state_rv`), as P_STATE_CHG_REPLY carries it.
    pub fn code(self) -> i32 {
        use StateError::*;
        match self {
            TwoPrimaries => -1,
            NoUpToDateDisk => -2,
            NoLocalDisk => -4,
            NoRemoteDisk => -5,
            ConnectedOutdates => -6,
            PrimaryNop => -7,
            ResyncRunning => -8,
            AlreadyStandAlone => -9,
            FailedByPeer => -10,
            IsDiskless => -11,
            DeviceInUse => -12,
            NoNetConfig => -13,
            NeedConnection => -15,
            LowerThanOutdated => -16,
            InTransientState => -18,
            ConcurrentChange => -19,
            OutdateWithoutConnection => -21,
        }
    }

    /// The error for a code received from the peer (unknown codes: refused by peer).
    pub fn from_code(code: i32) -> StateError {
        ALL_ERRORS
            .iter()
            .copied()
            .find(|e| e.code() == code)
            .unwrap_or(StateError::FailedByPeer)
    }
}

const ALL_ERRORS: [StateError; 17] = {
    use StateError::*;
    [
        TwoPrimaries,
        NoUpToDateDisk,
        NoLocalDisk,
        NoRemoteDisk,
        ConnectedOutdates,
        PrimaryNop,
        ResyncRunning,
        AlreadyStandAlone,
        FailedByPeer,
        IsDiskless,
        DeviceInUse,
        NoNetConfig,
        NeedConnection,
        LowerThanOutdated,
        InTransientState,
        ConcurrentChange,
        OutdateWithoutConnection,
    ]
};

/// `fencing` (disk options): what a Primary that loses its peer may assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Fencing {
    /// `dont-care`.
    #[default]
    DontCare,
    /// `resource-only`.
    ResourceOnly,
    /// `resource-and-stonith`.
    ResourceAndStonith,
}

/// A state where nothing is configured: StandAlone, Secondary, Diskless.
pub fn unconfigured() -> State {
    use rdbd_types::{ConnState, DiskState, Role};
    State {
        role: Role::Secondary,
        peer: Role::Unknown,
        conn: ConnState::StandAlone,
        disk: DiskState::Diskless,
        pdsk: DiskState::DUnknown,
        susp: false,
        aftr_isp: false,
        peer_isp: false,
        user_isp: false,
        susp_nod: false,
        susp_fen: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_drbd() {
        for e in ALL_ERRORS {
            assert_eq!(StateError::from_code(e.code()), e);
        }
        assert_eq!(StateError::TwoPrimaries.code(), -1);
        assert_eq!(StateError::DeviceInUse.code(), -12);
        assert_eq!(StateError::from_code(-99), StateError::FailedByPeer);
        assert_eq!(
            StateError::DeviceInUse.to_string(),
            "Device is held open by someone"
        );
    }
}
