//! Which way data flows when two nodes meet: a reduced `drbd_sync_handshake`.
//!
//! The full rule set (every `drbd_uuid_compare` rule, after-sb policies, rr-conflict) is
//! `uuid_compare` / `sync_handshake` (written separately); until the driver calls those,
//! this module applies the simplest correct subset (D84 drbd_receiver.c):
//! - equal current UUIDs (both JUST_CREATED included): no sync;
//! - one side JUST_CREATED (or 0): full sync from the other;
//! - own bitmap UUID == peer current: bitmap sync as source (and the mirror);
//! - peer current in own history: full sync as source (and the mirror);
//! - equal non-zero bitmap UUIDs, or anything else: split brain, disconnect;
//! then the disk states override: an Inconsistent side becomes the target.

use rdbd_types::DiskState;
use rdbd_wire::Uuids;

use crate::generation::{Generations, UUID_JUST_CREATED};

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncDecision {
    /// Nothing to sync: go to Connected.
    NoSync,
    /// This node is SyncSource; `full` sets every bit first.
    Source {
        /// Full sync.
        full: bool,
    },
    /// This node is SyncTarget.
    Target {
        /// Full sync.
        full: bool,
    },
    /// The data diverged (or is unrelated): drop the connection with this reason.
    Refuse(String),
}

/// `drbd_uuid_compare`'s value for the rules listed in the module doc
/// (2/1 source full/bitmap, -1/-2 target, 0 none, -100 split brain, -1000 unrelated).
pub fn compare(own: &Generations, peer: &Uuids) -> i32 {
    let m = |x: u64| x & !1;
    let (self_cur, peer_cur) = (m(own.current), m(peer.current));
    if self_cur == UUID_JUST_CREATED && peer_cur == UUID_JUST_CREATED {
        return 0;
    }
    if (self_cur == UUID_JUST_CREATED || self_cur == 0) && peer_cur != UUID_JUST_CREATED {
        return -2;
    }
    if (peer_cur == UUID_JUST_CREATED || peer_cur == 0) && self_cur != UUID_JUST_CREATED {
        return 2;
    }
    if self_cur == peer_cur {
        return 0;
    }
    if peer.bitmap != 0 && self_cur == m(peer.bitmap) {
        return -1;
    }
    if peer.history.iter().any(|h| *h != 0 && m(*h) == self_cur) {
        return -2;
    }
    if own.bitmap != 0 && m(own.bitmap) == peer_cur {
        return 1;
    }
    if own.history.iter().any(|h| *h != 0 && m(*h) == peer_cur) {
        return 2;
    }
    if own.bitmap != 0 && m(own.bitmap) == m(peer.bitmap) {
        return -100;
    }
    let own_hist = [own.history[0], own.history[1]];
    if own_hist
        .iter()
        .any(|h| *h != 0 && peer.history.iter().any(|p| m(*p) == m(*h)))
    {
        return -100;
    }
    -1000
}

/// The decision from the UUIDs and the disk states (`real_peer_disk` as DRBD computes it).
pub fn decide(
    own: &Generations,
    own_disk: DiskState,
    peer: &Uuids,
    peer_disk: DiskState,
) -> SyncDecision {
    let mut hg = compare(own, peer);
    if hg == -1000 {
        return SyncDecision::Refuse(format!(
            "Unrelated data, aborting! (own current {:016X}, peer current {:016X})",
            own.current, peer.current
        ));
    }
    if (own_disk == DiskState::Inconsistent && peer_disk > DiskState::Inconsistent)
        || (peer_disk == DiskState::Inconsistent && own_disk > DiskState::Inconsistent)
    {
        let full = hg == -100 || hg.abs() == 2;
        hg = if own_disk > DiskState::Inconsistent {
            1
        } else {
            -1
        };
        if full {
            hg *= 2;
        }
    }
    match hg {
        0 => SyncDecision::NoSync,
        1 | 2 => SyncDecision::Source { full: hg == 2 },
        -1 | -2 => SyncDecision::Target { full: hg == -2 },
        _ => SyncDecision::Refuse(format!(
            "Split-Brain detected, dropping connection! (own current {:016X} bitmap {:016X}, peer current {:016X} bitmap {:016X}; resolve by hand: 'disconnect', 'secondary', 'connect --discard-my-data' on the victim)",
            own.current, own.bitmap, peer.current, peer.bitmap
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(current: u64, bitmap: u64, h0: u64) -> Uuids {
        Uuids {
            current,
            bitmap,
            history: [h0, 0],
            dirty_bits: 0,
            flags: 0,
        }
    }
    fn g(current: u64, bitmap: u64, h0: u64) -> Generations {
        Generations {
            current,
            bitmap,
            history: [h0, 0],
        }
    }

    #[test]
    fn rules() {
        use DiskState::*;
        assert_eq!(
            decide(&g(4, 0, 0), Inconsistent, &u(4, 0, 0), Inconsistent),
            SyncDecision::NoSync
        );
        // Forced primary against a fresh peer: full sync from the primary.
        assert_eq!(
            decide(&g(0xA1, 4, 0), UpToDate, &u(4, 0, 0), Inconsistent),
            SyncDecision::Source { full: true }
        );
        assert_eq!(
            decide(&g(4, 0, 0), Inconsistent, &u(0xA1, 4, 0), UpToDate),
            SyncDecision::Target { full: true }
        );
        // Primary lost its peer, made a new generation; the peer comes back.
        assert_eq!(
            decide(&g(0xB1, 0xA0, 0), UpToDate, &u(0xA0, 0, 0), UpToDate),
            SyncDecision::Source { full: false }
        );
        assert_eq!(
            decide(&g(0xA0, 0, 0), UpToDate, &u(0xB1, 0xA0, 0), UpToDate),
            SyncDecision::Target { full: false }
        );
        // Both changed: split brain.
        assert!(matches!(
            decide(&g(0xB0, 0xA0, 0), UpToDate, &u(0xC0, 0xA0, 0), UpToDate),
            SyncDecision::Refuse(_)
        ));
        assert!(
            matches!(decide(&g(0xB0, 0, 0), UpToDate, &u(0xC0, 0, 0), UpToDate), SyncDecision::Refuse(m) if m.contains("Unrelated"))
        );
        // An interrupted sync: equal UUIDs but the target is Inconsistent.
        assert_eq!(
            decide(&g(0xA0, 0, 0), Inconsistent, &u(0xA0, 0, 0), UpToDate),
            SyncDecision::Target { full: false }
        );
    }
}
