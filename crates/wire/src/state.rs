//! `union drbd_state`: the 32-bit state word of P_STATE, P_STATE_CHG_REQ and P_CONN_ST_CHG_REQ.
//!
//! The kernel declares it as C bitfields and sends `cpu_to_be32(state.i)`. On little-endian x86
//! the first declared field takes the least significant bits, so the word is (bit 0 = LSB):
//!
//! | bits | field | values |
//! | --- | --- | --- |
//! | 0-1 | role | 0 Unknown, 1 Primary, 2 Secondary |
//! | 2-3 | peer | as role |
//! | 4-8 | conn | `enum drbd_conns` 0..=23 |
//! | 9-12 | disk | `enum drbd_disk_state` 0..=8 |
//! | 13-16 | pdsk | as disk |
//! | 17 | susp | I/O suspended by the user |
//! | 18 | aftr_isp | sync paused by resync-after |
//! | 19 | peer_isp | sync paused by the peer |
//! | 20 | user_isp | sync paused by the user |
//! | 21 | susp_nod | I/O suspended, no data |
//! | 22 | susp_fen | I/O suspended while fencing |
//! | 23-31 | pad | 0 |
//!
//! Checked against the kernel peer: a Secondary, Inconsistent, WFConnection node sends `0x0000c882`.

use rdbd_types::{ConnState, DiskState, Role};

use crate::WireError;

/// One field of the state word: its bit offset and width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateField {
    /// This node's role (2 bits).
    Role,
    /// The peer's role (2 bits).
    Peer,
    /// Connection state (5 bits).
    Conn,
    /// This node's disk state (4 bits).
    Disk,
    /// The peer's disk state (4 bits).
    Pdsk,
    /// I/O suspended by the user.
    Susp,
    /// Sync paused by resync-after.
    AftrIsp,
    /// Sync paused by the peer.
    PeerIsp,
    /// Sync paused by the user.
    UserIsp,
    /// I/O suspended because there is no data.
    SuspNod,
    /// I/O suspended while the fence-peer handler runs.
    SuspFen,
}

impl StateField {
    /// Every field, in bit order.
    pub const ALL: [StateField; 11] = [
        StateField::Role,
        StateField::Peer,
        StateField::Conn,
        StateField::Disk,
        StateField::Pdsk,
        StateField::Susp,
        StateField::AftrIsp,
        StateField::PeerIsp,
        StateField::UserIsp,
        StateField::SuspNod,
        StateField::SuspFen,
    ];

    /// (least significant bit, width in bits).
    pub fn bits(self) -> (u32, u32) {
        match self {
            StateField::Role => (0, 2),
            StateField::Peer => (2, 2),
            StateField::Conn => (4, 5),
            StateField::Disk => (9, 4),
            StateField::Pdsk => (13, 4),
            StateField::Susp => (17, 1),
            StateField::AftrIsp => (18, 1),
            StateField::PeerIsp => (19, 1),
            StateField::UserIsp => (20, 1),
            StateField::SuspNod => (21, 1),
            StateField::SuspFen => (22, 1),
        }
    }

    /// The field's bits set, all others clear (what `NS(field, mask)` puts in a request mask).
    pub fn mask(self) -> u32 {
        let (shift, width) = self.bits();
        ((1u32 << width) - 1) << shift
    }

    /// The field's name in `union drbd_state`.
    pub fn name(self) -> &'static str {
        match self {
            StateField::Role => "role",
            StateField::Peer => "peer",
            StateField::Conn => "conn",
            StateField::Disk => "disk",
            StateField::Pdsk => "pdsk",
            StateField::Susp => "susp",
            StateField::AftrIsp => "aftr_isp",
            StateField::PeerIsp => "peer_isp",
            StateField::UserIsp => "user_isp",
            StateField::SuspNod => "susp_nod",
            StateField::SuspFen => "susp_fen",
        }
    }
}

/// The raw state word, as the host-order `u32` the kernel converts to big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StateBits(pub u32);

impl StateBits {
    /// The value of one field.
    pub fn get(self, field: StateField) -> u32 {
        let (shift, width) = field.bits();
        (self.0 >> shift) & ((1u32 << width) - 1)
    }

    /// A copy with one field replaced (extra high bits of `value` are dropped).
    pub fn with(self, field: StateField, value: u32) -> StateBits {
        let (shift, _) = field.bits();
        let mask = field.mask();
        StateBits((self.0 & !mask) | ((value << shift) & mask))
    }
}

/// The state word with every field typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DrbdState {
    /// This node's role.
    pub role: Role,
    /// The peer's role.
    pub peer: Role,
    /// Connection state.
    pub conn: ConnState,
    /// This node's disk state.
    pub disk: DiskState,
    /// The peer's disk state.
    pub pdsk: DiskState,
    /// I/O suspended by the user.
    pub susp: bool,
    /// Sync paused by resync-after.
    pub aftr_isp: bool,
    /// Sync paused by the peer.
    pub peer_isp: bool,
    /// Sync paused by the user.
    pub user_isp: bool,
    /// I/O suspended, no data.
    pub susp_nod: bool,
    /// I/O suspended while fencing.
    pub susp_fen: bool,
}

impl DrbdState {
    /// The packed word. Pad bits are 0.
    pub fn to_bits(&self) -> StateBits {
        let flag = |b: bool| u32::from(b);
        StateBits(0)
            .with(StateField::Role, self.role as u32)
            .with(StateField::Peer, self.peer as u32)
            .with(StateField::Conn, self.conn as u32)
            .with(StateField::Disk, self.disk as u32)
            .with(StateField::Pdsk, self.pdsk as u32)
            .with(StateField::Susp, flag(self.susp))
            .with(StateField::AftrIsp, flag(self.aftr_isp))
            .with(StateField::PeerIsp, flag(self.peer_isp))
            .with(StateField::UserIsp, flag(self.user_isp))
            .with(StateField::SuspNod, flag(self.susp_nod))
            .with(StateField::SuspFen, flag(self.susp_fen))
    }

    /// Types a state word; `packet` names the packet in the error. Pad bits (23-31) are ignored,
    /// as the kernel ignores them.
    pub fn from_bits(bits: StateBits, packet: &'static str) -> Result<DrbdState, WireError> {
        let invalid = |field: StateField| WireError::InvalidField {
            packet,
            field: field.name(),
            value: u64::from(bits.get(field)),
        };
        let role = |field| role_from(bits.get(field)).ok_or_else(|| invalid(field));
        let disk = |field| disk_from(bits.get(field)).ok_or_else(|| invalid(field));
        let flag = |field| bits.get(field) != 0;
        Ok(DrbdState {
            role: role(StateField::Role)?,
            peer: role(StateField::Peer)?,
            conn: conn_from(bits.get(StateField::Conn)).ok_or_else(|| invalid(StateField::Conn))?,
            disk: disk(StateField::Disk)?,
            pdsk: disk(StateField::Pdsk)?,
            susp: flag(StateField::Susp),
            aftr_isp: flag(StateField::AftrIsp),
            peer_isp: flag(StateField::PeerIsp),
            user_isp: flag(StateField::UserIsp),
            susp_nod: flag(StateField::SuspNod),
            susp_fen: flag(StateField::SuspFen),
        })
    }
}

/// `Role` from its DRBD number (`enum drbd_role`).
pub fn role_from(value: u32) -> Option<Role> {
    Role::ALL.get(value as usize).copied()
}

/// `ConnState` from its DRBD number (`enum drbd_conns`).
pub fn conn_from(value: u32) -> Option<ConnState> {
    ConnState::ALL.get(value as usize).copied()
}

/// `DiskState` from its DRBD number (`enum drbd_disk_state`).
pub fn disk_from(value: u32) -> Option<DiskState> {
    DiskState::ALL.get(value as usize).copied()
}

/// A state change request (`p_req_state`): set the fields in `mask` to their values in `val`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StateChange {
    /// Which bits change.
    pub mask: StateBits,
    /// Their new values.
    pub val: StateBits,
}

impl StateChange {
    /// A request that changes nothing yet.
    pub fn new() -> StateChange {
        StateChange::default()
    }

    /// Adds "set `field` to `value`" (the kernel's `NS(field, value)`).
    pub fn set(self, field: StateField, value: u32) -> StateChange {
        StateChange {
            mask: StateBits(self.mask.0 | field.mask()),
            val: self.val.with(field, value),
        }
    }

    /// Adds "role := role".
    pub fn role(self, role: Role) -> StateChange {
        self.set(StateField::Role, role as u32)
    }

    /// Adds "conn := conn".
    pub fn conn(self, conn: ConnState) -> StateChange {
        self.set(StateField::Conn, conn as u32)
    }

    /// Adds "disk := disk".
    pub fn disk(self, disk: DiskState) -> StateChange {
        self.set(StateField::Disk, disk as u32)
    }

    /// Adds "pdsk := pdsk".
    pub fn pdsk(self, pdsk: DiskState) -> StateChange {
        self.set(StateField::Pdsk, pdsk as u32)
    }

    /// The state word after applying this change to `old`: `(old & !mask) | (val & mask)`.
    pub fn apply(&self, old: StateBits) -> StateBits {
        StateBits((old.0 & !self.mask.0) | (self.val.0 & self.mask.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_peer_state_word() {
        // Captured from kernel DRBD 8.4.11 (P_STATE payload 00 00 c8 82).
        let s = DrbdState::from_bits(StateBits(0x0000_c882), "P_STATE").unwrap();
        assert_eq!(s.role, Role::Secondary);
        assert_eq!(s.peer, Role::Unknown);
        assert_eq!(s.conn, ConnState::WFConnection);
        assert_eq!(s.disk, DiskState::Inconsistent);
        assert_eq!(s.pdsk, DiskState::DUnknown);
        assert!(!s.susp && !s.aftr_isp && !s.peer_isp && !s.user_isp && !s.susp_nod && !s.susp_fen);
        assert_eq!(
            s.to_bits(),
            StateBits(0x0000_c882),
            "state bit layout changed"
        );
    }

    #[test]
    fn flag_bits_are_where_the_kernel_puts_them() {
        let mut s = DrbdState::from_bits(StateBits(0), "P_STATE").unwrap();
        s.susp_fen = true;
        assert_eq!(s.to_bits(), StateBits(1 << 22));
        s.susp_fen = false;
        s.aftr_isp = true;
        assert_eq!(s.to_bits(), StateBits(1 << 18));
        s.aftr_isp = false;
        s.conn = ConnState::Behind; // 23
        assert_eq!(s.to_bits(), StateBits(23 << 4));
    }

    #[test]
    fn invalid_fields_are_named() {
        let err = DrbdState::from_bits(StateBits(3), "P_STATE").unwrap_err();
        assert_eq!(err.to_string(), "P_STATE: invalid role 3");
        let err = DrbdState::from_bits(StateBits(31 << 4), "P_STATE").unwrap_err();
        assert_eq!(err.to_string(), "P_STATE: invalid conn 31");
    }

    #[test]
    fn change_request_masks() {
        // NS(role, R_PRIMARY): mask R_MASK (3) in bits 0-1, val 1.
        let c = StateChange::new().role(Role::Primary);
        assert_eq!((c.mask, c.val), (StateBits(3), StateBits(1)));
        let c = c.disk(DiskState::UpToDate);
        assert_eq!(c.mask, StateBits(3 | (15 << 9)));
        assert_eq!(c.val, StateBits(1 | (8 << 9)));
        assert_eq!(
            c.apply(StateBits(0x0000_c882)),
            StateBits((0x0000_c882 & !c.mask.0) | c.val.0)
        );
    }
}
