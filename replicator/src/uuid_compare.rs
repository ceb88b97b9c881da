//! DRBD 8.4's generation comparison (`drbd_uuid_compare`, drbd_receiver.c) as a pure function.
//!
//! When two nodes meet, each compares its own [`Generations`] with the peer's (from P_UUIDS)
//! and derives who has the newer data. The result is DRBD's `hg` number:
//!
//! | hg | meaning |
//! |---|---|
//! | 2 / 1 | become SyncSource, full / bitmap-based sync |
//! | 0 | no sync |
//! | -1 / -2 | become SyncTarget, bitmap-based / full sync |
//! | 100 | split brain, the after-sb policies may recover it |
//! | -100 | split brain, disconnect (unless `always-asbp` or `--discard-my-data` decide) |
//! | -1000 | unrelated data |
//! | -1091 | both sides need protocol 91 ([`hg::requires_protocol`]) |
//! | `-(0x10000 \| 101 \| FF_WSAME << 8)` | both sides need the WSAME feature ([`hg::requires_features`]) |
//!
//! API:
//! - [`compare`]`(&`[`CompareInput`]`) -> `[`Comparison`]: the hg value, the rule number (DRBD
//!   logs `uuid_compare()=%d by rule %d`, see [`Comparison::log_line`]), the UUID fix-ups DRBD
//!   applies while comparing ([`Fixup`]), and the info lines DRBD prints about them.
//! - [`Comparison::apply_fixups`]`(&mut own, &mut peer)`: applies the fix-ups. DRBD writes the
//!   fix-ups of its own identifiers to the meta-data (rules 34 and 71) and corrects only its
//!   in-memory copy of the peer's (rules 35 and 51); the peer does the mirror image itself.
//! - [`CompareInput::from_peer_uuids`] / [`generations_of`]: from the peer's `rdbd_wire::Uuids`.
//! - [`uuid_flag`]: the bits of P_UUIDS' flags word (`UI_FLAGS`).
//!
//! Rules (the primary bit, bit 0, is masked in every comparison):
//! - 10: both currents are JUST_CREATED (4) -> 0.
//! - 20: own current is 4 or 0, the peer's is not 4 -> -2.
//! - 30: own current is not 4, the peer's is 4 or 0 -> 2.
//! - currents equal:
//!   - 34/36: the peer's bitmap is 0 and ours is not -> 1 (34: our bitmap is the peer's
//!     `history[0]` and our `history[0]` its `history[1]`: "was SyncSource, missed the resync finished
//!     event", we move our bitmap to history; 36: no fix-up).
//!   - 35/37: mirror image -> -1 (35 corrects our record of the peer).
//!   - 40: no side has the crashed-primary flag -> 0; otherwise, both Secondary: the crashed
//!     primary becomes source (1 / -1), both crashed: the node with RESOLVE_CONFLICTS (set
//!     on the node that accepted the peer's meta socket, P_INITIAL_META) becomes target.
//!   - 41: crashed-primary flag set and a side is Primary now: the Primary becomes source; both
//!     Primary -> -100; without the WSAME feature -> "requires features".
//! - 50: own current == peer bitmap -> -1.
//! - 51: own current == peer `history[0]` and the peer's bitmap is its `history[0]` +
//!   UUID_NEW_BM_OFFSET (protocol >= 96; before: own `history[0]` == peer `history[1]`): the peer
//!   started a resync as source but P_SYNC_UUID was lost: undo it in our record -> -1.
//! - 60: own current in the peer's history -> -2.
//! - 70: own bitmap == peer current -> 1.
//! - 71: mirror of 51 on our own identifiers -> 1.
//! - 80: peer current in our history -> 2.
//! - 90: bitmaps equal and not 0 -> 100 (split brain with a common ancestor).
//! - 100: any history slot equal -> -100.
//! - otherwise -1000 (the rule number stays 100, as in DRBD).

use rdbd_types::Role;

pub use crate::generation::{Generations, UUID_JUST_CREATED};

/// What a source adds to its bitmap identifier when it starts a resync (`UUID_NEW_BM_OFFSET`).
pub const UUID_NEW_BM_OFFSET: u64 = 0x0001_0000_0000_0000;

/// The highest protocol version DRBD 8.4 speaks (`PRO_VERSION_MAX`).
pub const PRO_VERSION_MAX: u32 = 101;

/// `DRBD_FF_WSAME`: the feature flag rule 41 needs.
pub const DRBD_FF_WSAME: u32 = 4;

/// Bits of the flags word in P_UUIDS (`p_uuid[UI_FLAGS]`, drbd_main.c `_drbd_send_uuids`).
pub mod uuid_flag {
    /// The sender was told `--discard-my-data`.
    pub const DISCARD_MY_DATA: u64 = 1;
    /// The sender crashed while Primary (its CRASHED_PRIMARY flag).
    pub const CRASHED_PRIMARY: u64 = 2;
    /// The sender's disk will be Inconsistent.
    pub const INCONSISTENT: u64 = 4;
    /// `new-current-uuid --clear-bitmap` on a just-created pair: skip the initial sync.
    pub const SKIP_INITIAL_SYNC: u64 = 8;
}

/// The hg values and helpers around them.
pub mod hg {
    /// Become SyncSource, full sync.
    pub const SOURCE_FULL: i32 = 2;
    /// Become SyncSource, bitmap-based sync.
    pub const SOURCE: i32 = 1;
    /// No sync.
    pub const NO_SYNC: i32 = 0;
    /// Become SyncTarget, bitmap-based sync.
    pub const TARGET: i32 = -1;
    /// Become SyncTarget, full sync.
    pub const TARGET_FULL: i32 = -2;
    /// Split brain, auto-recovery may decide.
    pub const SPLIT_BRAIN_AUTO: i32 = 100;
    /// Split brain, disconnect.
    pub const SPLIT_BRAIN_DISCONNECT: i32 = -100;
    /// Unrelated data.
    pub const UNRELATED: i32 = -1000;

    /// The hg value saying both sides need at least protocol `proto` (`-1000 - proto`).
    pub const fn requires_protocol(proto: u32) -> i32 {
        -1000 - proto as i32
    }

    /// The hg value saying both sides need protocol `proto` and feature flags `features`.
    pub const fn requires_features(proto: u32, features: u32) -> i32 {
        -((0x10000 | proto | (features << 8)) as i32)
    }
}

/// Everything `drbd_uuid_compare` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompareInput {
    /// Our identifiers (`ldev->md.uuid`).
    pub own: Generations,
    /// The peer's identifiers from its last P_UUIDS (`p_uuid`).
    pub peer: Generations,
    /// The peer's P_UUIDS flags word ([`uuid_flag`]); rules read bit 2 (crashed primary).
    pub peer_flags: u64,
    /// Our CRASHED_PRIMARY flag (we crashed while Primary and have not resynced since).
    pub own_crashed_primary: bool,
    /// Our role now.
    pub own_role: Role,
    /// The peer's role (from its P_STATE).
    pub peer_role: Role,
    /// The RESOLVE_CONFLICTS bit (conn_connect): set on the node that accepted the socket on
    /// which the peer sent P_INITIAL_META, cleared on the node that connected it. Exactly one
    /// side has it; its tiebreaks make it the loser (target).
    pub resolve_conflicts: bool,
    /// The agreed protocol version (rdbd and DRBD 8.4 agree on 101).
    pub agreed_pro_version: u32,
    /// The agreed feature flags (`agreed_features`; rule 41 needs [`DRBD_FF_WSAME`]).
    pub agreed_features: u32,
}

impl CompareInput {
    /// An input from the peer's P_UUIDS (identifiers and flags), otherwise as [`CompareInput::new`].
    pub fn from_peer_uuids(own: Generations, peer: &rdbd_wire::Uuids) -> CompareInput {
        let mut input = CompareInput::new(own, generations_of(peer));
        input.peer_flags = peer.flags;
        input
    }

    /// An input with both sides Secondary, no flags, protocol 101 with WSAME.
    pub fn new(own: Generations, peer: Generations) -> CompareInput {
        CompareInput {
            own,
            peer,
            peer_flags: 0,
            own_crashed_primary: false,
            own_role: Role::Secondary,
            peer_role: Role::Secondary,
            resolve_conflicts: false,
            agreed_pro_version: PRO_VERSION_MAX,
            agreed_features: DRBD_FF_WSAME,
        }
    }
}

/// The identifiers of a P_UUIDS packet.
pub fn generations_of(p: &rdbd_wire::Uuids) -> Generations {
    Generations {
        current: p.current,
        bitmap: p.bitmap,
        history: p.history,
    }
}

/// A correction DRBD makes to the identifiers while comparing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixup {
    /// Rule 34 (we were SyncSource and missed the resync-finished event): shift our history,
    /// our `history[0]` = our bitmap, our bitmap = 0. Written to our meta-data.
    OwnBitmapToHistory,
    /// Rule 35 (we were SyncTarget, the peer missed the event): the same on our record of the
    /// peer's identifiers.
    PeerBitmapToHistory,
    /// Rule 51 (the peer's P_SYNC_UUID never arrived): in our record of the peer,
    /// bitmap = `history[0]`, `history[0]` = `history[1]`.
    PeerUndoSyncUuid,
    /// Rule 71 (our P_SYNC_UUID never arrived): the same on our own identifiers, written to
    /// our meta-data.
    OwnUndoSyncUuid,
}

impl Fixup {
    /// Applies the correction.
    pub fn apply(self, own: &mut Generations, peer: &mut Generations) {
        match self {
            Fixup::OwnBitmapToHistory => bitmap_to_history(own),
            Fixup::PeerBitmapToHistory => bitmap_to_history(peer),
            Fixup::OwnUndoSyncUuid => undo_sync_uuid(own),
            Fixup::PeerUndoSyncUuid => undo_sync_uuid(peer),
        }
    }

    /// Whether the correction changes our own identifiers (to be written to the meta-data).
    pub fn changes_own(self) -> bool {
        matches!(self, Fixup::OwnBitmapToHistory | Fixup::OwnUndoSyncUuid)
    }
}

fn bitmap_to_history(g: &mut Generations) {
    g.history[1] = g.history[0];
    g.history[0] = g.bitmap;
    g.bitmap = 0;
}

fn undo_sync_uuid(g: &mut Generations) {
    g.bitmap = g.history[0];
    g.history[0] = g.history[1];
}

/// The result of [`compare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// DRBD's hg value ([`hg`]).
    pub hg: i32,
    /// The rule that decided.
    pub rule: u32,
    /// Corrections to apply (at most one).
    pub fixups: Vec<Fixup>,
    /// The info/warn lines DRBD prints while comparing (without the UUID dumps).
    pub notes: Vec<&'static str>,
}

impl Comparison {
    /// The line DRBD logs: `uuid_compare()=HG by rule RULE`.
    pub fn log_line(&self) -> String {
        format!("uuid_compare()={} by rule {}", self.hg, self.rule)
    }

    /// Applies [`Comparison::fixups`] to our identifiers and our record of the peer's.
    pub fn apply_fixups(&self, own: &mut Generations, peer: &mut Generations) {
        for f in &self.fixups {
            f.apply(own, peer);
        }
    }
}

const fn m(u: u64) -> u64 {
    u & !1
}

fn done(hg: i32, rule: u32) -> Comparison {
    Comparison {
        hg,
        rule,
        fixups: Vec::new(),
        notes: Vec::new(),
    }
}

fn with(hg: i32, rule: u32, fixup: Option<Fixup>, note: &'static str) -> Comparison {
    Comparison {
        hg,
        rule,
        fixups: fixup.into_iter().collect(),
        notes: vec![note],
    }
}

/// `drbd_uuid_compare`: decides who has the newer data. Pure: the fix-ups are returned, not
/// applied.
pub fn compare(input: &CompareInput) -> Comparison {
    let own = &input.own;
    let peer = &input.peer;
    let self_cur = m(own.current);
    let peer_cur = m(peer.current);
    let needs_91 = input.agreed_pro_version < 91;

    if self_cur == UUID_JUST_CREATED && peer_cur == UUID_JUST_CREATED {
        return done(hg::NO_SYNC, 10);
    }
    if (self_cur == UUID_JUST_CREATED || self_cur == 0) && peer_cur != UUID_JUST_CREATED {
        return done(hg::TARGET_FULL, 20);
    }
    if self_cur != UUID_JUST_CREATED && (peer_cur == UUID_JUST_CREATED || peer_cur == 0) {
        return done(hg::SOURCE_FULL, 30);
    }

    if self_cur == peer_cur {
        // DRBD compares these two bitmap identifiers unmasked.
        if peer.bitmap == 0 && own.bitmap != 0 {
            if needs_91 {
                return done(hg::requires_protocol(91), 30);
            }
            if m(own.bitmap) == m(peer.history[0]) && m(own.history[0]) == m(peer.history[1]) {
                return with(
                    hg::SOURCE,
                    34,
                    Some(Fixup::OwnBitmapToHistory),
                    "was SyncSource, missed the resync finished event, corrected myself:",
                );
            }
            return with(
                hg::SOURCE,
                36,
                None,
                "was SyncSource (peer failed to write sync_uuid)",
            );
        }
        if own.bitmap == 0 && peer.bitmap != 0 {
            if needs_91 {
                return done(hg::requires_protocol(91), 30);
            }
            if m(own.history[0]) == m(peer.bitmap) && m(own.history[1]) == m(peer.history[0]) {
                return with(
                    hg::TARGET,
                    35,
                    Some(Fixup::PeerBitmapToHistory),
                    "was SyncTarget, peer missed the resync finished event, corrected peer:",
                );
            }
            return with(
                hg::TARGET,
                37,
                None,
                "was SyncTarget (failed to write sync_uuid)",
            );
        }

        // Roles at crash time: bit 0 we, bit 1 the peer.
        let rct =
            u64::from(input.own_crashed_primary) + (input.peer_flags & uuid_flag::CRASHED_PRIMARY);
        if rct == 0 {
            return done(hg::NO_SYNC, 40);
        }
        let own_primary = input.own_role == Role::Primary;
        let peer_primary = input.peer_role == Role::Primary;
        if own_primary || peer_primary {
            if input.agreed_features & DRBD_FF_WSAME == 0 {
                return with(
                    hg::requires_features(PRO_VERSION_MAX, DRBD_FF_WSAME),
                    41,
                    None,
                    "Equivalent unrotated UUIDs, but current primary present.",
                );
            }
            if own_primary && peer_primary {
                return with(
                    hg::SPLIT_BRAIN_DISCONNECT,
                    41,
                    None,
                    "Equivalent unrotated UUIDs, but both are primary. Can not resolve this.",
                );
            }
            return done(if own_primary { hg::SOURCE } else { hg::TARGET }, 41);
        }
        let hg = match rct {
            1 => hg::SOURCE,
            2 => hg::TARGET,
            _ if input.resolve_conflicts => hg::TARGET,
            _ => hg::SOURCE,
        };
        return done(hg, 40);
    }

    if self_cur == m(peer.bitmap) {
        return done(hg::TARGET, 50);
    }

    if self_cur == m(peer.history[0]) {
        let lost = if input.agreed_pro_version < 96 {
            m(own.history[0]) == m(peer.history[1])
        } else {
            m(peer.history[0]).wrapping_add(UUID_NEW_BM_OFFSET) == m(peer.bitmap)
        };
        if lost {
            if needs_91 {
                return done(hg::requires_protocol(91), 51);
            }
            return with(
                hg::TARGET,
                51,
                Some(Fixup::PeerUndoSyncUuid),
                "Lost last syncUUID packet, corrected:",
            );
        }
    }

    if peer.history.iter().any(|&h| m(h) == self_cur) {
        return done(hg::TARGET_FULL, 60);
    }

    if m(own.bitmap) == peer_cur {
        return done(hg::SOURCE, 70);
    }

    if m(own.history[0]) == peer_cur {
        let lost = if input.agreed_pro_version < 96 {
            m(own.history[1]) == m(peer.history[0])
        } else {
            m(own.history[0]).wrapping_add(UUID_NEW_BM_OFFSET) == m(own.bitmap)
        };
        if lost {
            if needs_91 {
                return done(hg::requires_protocol(91), 71);
            }
            return with(
                hg::SOURCE,
                71,
                Some(Fixup::OwnUndoSyncUuid),
                "Last syncUUID did not get through, corrected:",
            );
        }
    }

    if own.history.iter().any(|&h| m(h) == peer_cur) {
        return done(hg::SOURCE_FULL, 80);
    }

    if m(own.bitmap) == m(peer.bitmap) && m(own.bitmap) != 0 {
        return done(hg::SPLIT_BRAIN_AUTO, 90);
    }

    for s in own.history {
        if peer.history.iter().any(|&p| m(p) == m(s)) {
            return done(hg::SPLIT_BRAIN_DISCONNECT, 100);
        }
    }

    done(hg::UNRELATED, 100)
}

#[cfg(test)]
mod tests;
