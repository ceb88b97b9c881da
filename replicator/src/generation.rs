//! Generation identifiers (DRBD's "UUIDs") and meta-data flags as functions of state.
//!
//! DRBD 8.4 keeps four 64-bit generation identifiers per device: the current one,
//! the bitmap one (the current one of the last time both sides were in sync, while
//! changes are being tracked in the bitmap), and two history slots. Bit 0 of the
//! current identifier says "this node is Primary" and is ignored in comparisons.
//! These rules decide who has the newer data when two nodes meet (resync issue);
//! this module holds the parts that every role change needs.
//!
//! Rules implemented here (drbd_main.c `drbd_uuid_new_current`, `__drbd_uuid_set`;
//! drbd_nl.c `drbd_set_role`; drbd_state.c, the meta-data flag update):
//! - promoting while not connected with no bitmap identifier, or promoting with
//!   `--force`, starts a new generation: current moves to bitmap, a random value
//!   becomes current;
//! - the current identifier carries bit 0 exactly while Primary;
//! - the persistent flags are recomputed from the state on every change.

use rdbd_types::{ConnState, DiskState, Role};

/// The current identifier of freshly created meta-data.
pub const UUID_JUST_CREATED: u64 = 4;

/// The four generation identifiers of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Generations {
    /// The current generation.
    pub current: u64,
    /// The generation the bitmap tracks changes against (0: none).
    pub bitmap: u64,
    /// Older generations, newest first.
    pub history: [u64; 2],
}

impl Generations {
    /// Sets the current identifier with bit 0 following the role, as `__drbd_uuid_set` does.
    pub fn set_current(&mut self, value: u64, role: Role) {
        self.current = if role == Role::Primary {
            value | 1
        } else {
            value & !1
        };
    }

    /// Starts a new generation: the current identifier becomes the bitmap one and
    /// `random` the current one. Returns the bitmap identifier it overwrote, which
    /// DRBD only warns about ("bm UUID was already set").
    pub fn new_current(&mut self, random: u64, role: Role) -> Option<u64> {
        let overwritten = (self.bitmap != 0).then_some(self.bitmap);
        self.bitmap = self.current;
        self.set_current(random, role);
        overwritten
    }
}

/// What a promotion does to the identifiers (drbd_set_role).
pub fn on_promote(
    gens: &mut Generations,
    connected: bool,
    peer_disk: DiskState,
    forced: bool,
    random: u64,
) {
    let peer_unusable = !connected || peer_disk <= DiskState::Failed;
    if (peer_unusable && gens.bitmap == 0) || forced {
        gens.new_current(random, Role::Primary);
    }
    gens.current |= 1;
}

/// What a demotion does: the primary bit goes.
pub fn on_demote(gens: &mut Generations) {
    gens.current &= !1;
}

/// A device's state as far as the meta-data flags care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagState {
    /// This node's role.
    pub role: Role,
    /// The peer's role.
    pub peer_role: Role,
    /// The connection state.
    pub cstate: ConnState,
    /// This node's disk state.
    pub disk: DiskState,
    /// The peer's disk state.
    pub peer_disk: DiskState,
    /// The node crashed while Primary and has not resynced since.
    pub crashed_primary: bool,
}

/// Meta-data flag bits (v08 superblock `flags`), defined once in `rdbd-metadata`.
pub mod md_flag {
    use rdbd_metadata::MdFlags;

    /// The data is consistent.
    pub const CONSISTENT: u32 = MdFlags::CONSISTENT;
    /// The node is (or was, at a crash) Primary.
    pub const PRIMARY_IND: u32 = MdFlags::PRIMARY_IND;
    /// The node was connected.
    pub const CONNECTED_IND: u32 = MdFlags::CONNECTED_IND;
    /// A full sync is needed.
    pub const FULL_SYNC: u32 = MdFlags::FULL_SYNC;
    /// The data was up to date.
    pub const WAS_UP_TO_DATE: u32 = MdFlags::WAS_UP_TO_DATE;
    /// The peer is known to be outdated.
    pub const PEER_OUT_DATED: u32 = MdFlags::PEER_OUT_DATED;
    /// The node crashed while Primary.
    pub const CRASHED_PRIMARY: u32 = MdFlags::CRASHED_PRIMARY;
    /// The activity log was cleanly closed.
    pub const AL_CLEAN: u32 = MdFlags::AL_CLEAN;
    /// Activity-log updates are disabled.
    pub const AL_DISABLED: u32 = MdFlags::AL_DISABLED;
}

/// The flags DRBD writes for `state`, keeping the bits that do not follow from it
/// (FULL_SYNC, AL_DISABLED). AL_CLEAN is cleared: it is only set at a clean detach.
pub fn md_flags_for_state(old_flags: u32, s: &FlagState) -> u32 {
    use md_flag::*;
    let mut f = old_flags
        & !(CONSISTENT
            | PRIMARY_IND
            | CONNECTED_IND
            | WAS_UP_TO_DATE
            | PEER_OUT_DATED
            | CRASHED_PRIMARY
            | AL_CLEAN);
    if s.crashed_primary {
        f |= CRASHED_PRIMARY;
    }
    if s.role == Role::Primary
        || (s.peer_disk < DiskState::Inconsistent && s.peer_role == Role::Primary)
    {
        f |= PRIMARY_IND;
    }
    if s.cstate > ConnState::WFReportParams {
        f |= CONNECTED_IND;
    }
    if s.disk > DiskState::Inconsistent {
        f |= CONSISTENT;
    }
    if s.disk > DiskState::Outdated {
        f |= WAS_UP_TO_DATE;
    }
    if s.peer_disk <= DiskState::Outdated && s.peer_disk >= DiskState::Inconsistent {
        f |= PEER_OUT_DATED;
    }
    f
}

/// The disk state a device attaches with, from its flags (drbd_adm_attach): not
/// consistent -> Inconsistent; consistent but never up to date -> Outdated;
/// otherwise Consistent, promoted to UpToDate when the peer is known outdated or
/// fencing is `dont-care`.
pub fn disk_state_at_attach(flags: u32, fencing_dont_care: bool) -> (DiskState, DiskState) {
    use md_flag::*;
    let peer = if flags & PEER_OUT_DATED != 0 {
        DiskState::Outdated
    } else {
        DiskState::DUnknown
    };
    let disk = if flags & CONSISTENT == 0 {
        DiskState::Inconsistent
    } else if flags & WAS_UP_TO_DATE == 0 {
        DiskState::Outdated
    } else if peer == DiskState::Outdated || fencing_dont_care {
        DiskState::UpToDate
    } else {
        DiskState::Consistent
    };
    (disk, peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_promotion_starts_a_generation_and_later_ones_do_not() {
        let mut g = Generations {
            current: UUID_JUST_CREATED,
            ..Default::default()
        };
        on_promote(&mut g, false, DiskState::DUnknown, true, 0xABCD_0000);
        assert_eq!(g.bitmap, UUID_JUST_CREATED);
        assert_eq!(g.current, 0xABCD_0001);
        on_demote(&mut g);
        assert_eq!(g.current, 0xABCD_0000);
        // Not forced, bitmap already set: same generation.
        on_promote(&mut g, false, DiskState::DUnknown, false, 0x1234_0000);
        assert_eq!(g.current, 0xABCD_0001);
        assert_eq!(g.bitmap, UUID_JUST_CREATED);
        // Connected to a good peer, not forced: same generation even with bitmap 0.
        let mut g = Generations {
            current: 0x10,
            ..Default::default()
        };
        on_promote(&mut g, true, DiskState::UpToDate, false, 0x20);
        assert_eq!(
            g,
            Generations {
                current: 0x11,
                ..Default::default()
            }
        );
    }

    #[test]
    fn flags_follow_the_state() {
        let s = FlagState {
            role: Role::Primary,
            peer_role: Role::Unknown,
            cstate: ConnState::StandAlone,
            disk: DiskState::UpToDate,
            peer_disk: DiskState::DUnknown,
            crashed_primary: false,
        };
        let f = md_flags_for_state(md_flag::AL_CLEAN | md_flag::FULL_SYNC, &s);
        assert_eq!(
            f,
            md_flag::PRIMARY_IND
                | md_flag::CONSISTENT
                | md_flag::WAS_UP_TO_DATE
                | md_flag::FULL_SYNC
        );
        let s = FlagState {
            role: Role::Secondary,
            disk: DiskState::Inconsistent,
            cstate: ConnState::Connected,
            ..s
        };
        assert_eq!(md_flags_for_state(0, &s), md_flag::CONNECTED_IND);
    }

    #[test]
    fn attach_states() {
        use md_flag::*;
        assert_eq!(disk_state_at_attach(0, true).0, DiskState::Inconsistent);
        assert_eq!(
            disk_state_at_attach(CONSISTENT, true).0,
            DiskState::Outdated
        );
        assert_eq!(
            disk_state_at_attach(CONSISTENT | WAS_UP_TO_DATE, true).0,
            DiskState::UpToDate
        );
        assert_eq!(
            disk_state_at_attach(CONSISTENT | WAS_UP_TO_DATE, false).0,
            DiskState::Consistent
        );
        assert_eq!(
            disk_state_at_attach(CONSISTENT | WAS_UP_TO_DATE | PEER_OUT_DATED, false),
            (DiskState::UpToDate, DiskState::Outdated)
        );
    }
}
