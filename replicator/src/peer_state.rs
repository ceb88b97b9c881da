//! Rules for the peer's `P_STATE` and its state change requests (D84 drbd_receiver.c
//! `receive_state`, `receive_req_state`; drbd_state.c `convert_state`, `is_valid_state`).
//!
//! - A request arrives in the sender's terms; [`convert_request`] swaps role/peer and
//!   disk/pdsk (and the S/T sides of the sync states) into ours.
//! - [`check_request`] is the cluster-wide part of the validity check rdbd implements:
//!   two primaries are refused (`SS_TWO_PRIMARIES`) unless allowed.
//! - [`on_peer_state`] decides what a received `P_STATE` means for the connection state:
//!   a sync handshake when the connection is new, when the peer was forced UpToDate, or
//!   when the peer started a sync; the end of a resync when the peer reports Connected.

use rdbd_types::{ConnState, DiskState, Role};
use rdbd_wire::{DrbdState, StateBits, StateChange, StateField, UUID_FLAG_INCONSISTENT};

/// `SS_SUCCESS`.
pub const SS_SUCCESS: i32 = 1;
/// `SS_TWO_PRIMARIES`: "Multiple primaries not allowed by config".
pub const SS_TWO_PRIMARIES: i32 = -1;
/// `SS_NO_UP_TO_DATE_DISK`.
pub const SS_NO_UP_TO_DATE_DISK: i32 = -2;
/// `SS_CW_FAILED_BY_PEER`.
pub const SS_CW_FAILED_BY_PEER: i32 = -10;

/// DRBD's text for a state change result code.
pub fn retcode_text(code: i32) -> &'static str {
    match code {
        1..=4 => "Success",
        SS_TWO_PRIMARIES => "Multiple primaries not allowed by config",
        SS_NO_UP_TO_DATE_DISK => "Need access to UpToDate data",
        SS_CW_FAILED_BY_PEER => "State change was refused by peer node",
        _ => "State change failed on the peer",
    }
}

fn mirror_conn(c: u32) -> u32 {
    use ConnState as C;
    let pairs = [
        (C::StartingSyncS, C::StartingSyncT),
        (C::WFBitMapS, C::WFBitMapT),
        (C::SyncSource, C::SyncTarget),
        (C::PausedSyncS, C::PausedSyncT),
        (C::VerifyS, C::VerifyT),
        (C::Ahead, C::Behind),
    ];
    for (s, t) in pairs {
        if c == s as u32 {
            return t as u32;
        }
        if c == t as u32 {
            return s as u32;
        }
    }
    c
}

fn swap_bits(bits: StateBits) -> StateBits {
    let b = bits
        .with(StateField::Role, bits.get(StateField::Peer))
        .with(StateField::Peer, bits.get(StateField::Role))
        .with(StateField::Disk, bits.get(StateField::Pdsk))
        .with(StateField::Pdsk, bits.get(StateField::Disk));
    b.with(StateField::Conn, mirror_conn(bits.get(StateField::Conn)))
}

/// A peer's request in our terms.
pub fn convert_request(req: StateChange) -> StateChange {
    StateChange {
        mask: swap_bits(req.mask),
        val: swap_bits(req.val),
    }
}

/// Whether we accept the (converted) request given our role.
pub fn check_request(req: &StateChange, own_role: Role, allow_two_primaries: bool) -> i32 {
    let wants_peer = req.mask.get(StateField::Peer) != 0;
    if wants_peer
        && req.val.get(StateField::Peer) == Role::Primary as u32
        && own_role == Role::Primary
        && !allow_two_primaries
    {
        return SS_TWO_PRIMARIES;
    }
    SS_SUCCESS
}

/// The peer's disk as DRBD takes it: Negotiating means Inconsistent or Consistent per
/// the UUID flags.
pub fn real_peer_disk(state: &DrbdState, peer_uuid_flags: u64) -> DiskState {
    if state.disk == DiskState::Negotiating {
        if peer_uuid_flags & UUID_FLAG_INCONSISTENT != 0 {
            DiskState::Inconsistent
        } else {
            DiskState::Consistent
        }
    } else {
        state.disk
    }
}

/// What a received `P_STATE` asks of us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStateAction {
    /// Record the peer's role and disk only.
    Record,
    /// Run the sync handshake now (new connection, forced peer, peer started a sync).
    SyncHandshake,
    /// The peer finished the resync (we are SyncSource).
    ResyncFinished,
}

/// `receive_state`'s decision for our connection state `conn`.
pub fn on_peer_state(
    conn: ConnState,
    own_disk: DiskState,
    peer: &DrbdState,
    consider_resync: bool,
) -> PeerStateAction {
    let peer_disk = peer.disk;
    if matches!(conn, ConnState::SyncSource | ConnState::PausedSyncS)
        && own_disk == DiskState::UpToDate
        && peer_disk == DiskState::UpToDate
        && peer.conn == ConnState::Connected
    {
        return PeerStateAction::ResyncFinished;
    }
    let new_connection = conn < ConnState::Connected;
    let peer_started_sync = conn == ConnState::Connected
        && (ConnState::StartingSyncS..=ConnState::WFBitMapT).contains(&peer.conn);
    let attach = conn == ConnState::Connected
        && (peer_disk == DiskState::Negotiating || own_disk == DiskState::Negotiating);
    if peer_disk >= DiskState::Negotiating
        && (new_connection || peer_started_sync || attach || consider_resync)
    {
        return PeerStateAction::SyncHandshake;
    }
    PeerStateAction::Record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(role: Role, conn: ConnState, disk: DiskState) -> DrbdState {
        DrbdState {
            role,
            peer: Role::Unknown,
            conn,
            disk,
            pdsk: DiskState::DUnknown,
            susp: false,
            aftr_isp: false,
            peer_isp: false,
            user_isp: false,
            susp_nod: false,
            susp_fen: false,
        }
    }

    #[test]
    fn promotion_request_is_converted_and_checked() {
        let req = StateChange::new().role(Role::Primary);
        let ours = convert_request(req);
        assert_eq!(ours.val.get(StateField::Peer), Role::Primary as u32);
        assert_eq!(ours.mask.get(StateField::Role), 0);
        assert_eq!(check_request(&ours, Role::Primary, false), SS_TWO_PRIMARIES);
        assert_eq!(check_request(&ours, Role::Secondary, false), SS_SUCCESS);
        assert_eq!(check_request(&ours, Role::Primary, true), SS_SUCCESS);
        let sync = convert_request(StateChange::new().conn(ConnState::StartingSyncS));
        assert_eq!(
            sync.val.get(StateField::Conn),
            ConnState::StartingSyncT as u32
        );
    }

    #[test]
    fn peer_state_actions() {
        use ConnState::*;
        use DiskState::*;
        assert_eq!(
            on_peer_state(
                WFReportParams,
                UpToDate,
                &st(Role::Secondary, WFReportParams, Inconsistent),
                false
            ),
            PeerStateAction::SyncHandshake
        );
        assert_eq!(
            on_peer_state(
                Connected,
                Inconsistent,
                &st(Role::Primary, Connected, UpToDate),
                false
            ),
            PeerStateAction::Record
        );
        assert_eq!(
            on_peer_state(
                Connected,
                Inconsistent,
                &st(Role::Primary, Connected, UpToDate),
                true
            ),
            PeerStateAction::SyncHandshake
        );
        assert_eq!(
            on_peer_state(
                Connected,
                UpToDate,
                &st(Role::Secondary, WFBitMapT, Inconsistent),
                false
            ),
            PeerStateAction::SyncHandshake
        );
        assert_eq!(
            on_peer_state(
                SyncSource,
                UpToDate,
                &st(Role::Secondary, Connected, UpToDate),
                false
            ),
            PeerStateAction::ResyncFinished
        );
        assert_eq!(
            real_peer_disk(
                &st(Role::Secondary, Connected, Negotiating),
                UUID_FLAG_INCONSISTENT
            ),
            Inconsistent
        );
    }
}
