//! Table-driven tests: one row per rule of `drbd_uuid_compare`, plus properties.

use super::*;
use proptest::prelude::*;

const A: u64 = 0xAAAA_0000_0000_1000;
const B: u64 = 0xBBBB_0000_0000_2000;
const C: u64 = 0xCCCC_0000_0000_3000;
const D: u64 = 0xDDDD_0000_0000_4000;
const E: u64 = 0xEEEE_0000_0000_5000;
const X: u64 = 0x1111_0000_0000_6000;
const Y: u64 = 0x2222_0000_0000_7000;
const Z: u64 = 0x3333_0000_0000_8000;

fn g(current: u64, bitmap: u64, h0: u64, h1: u64) -> Generations {
    Generations {
        current,
        bitmap,
        history: [h0, h1],
    }
}

struct Case {
    name: &'static str,
    own: Generations,
    peer: Generations,
    tweak: fn(&mut CompareInput),
    hg: i32,
    rule: u32,
    fixup: Option<Fixup>,
    /// Our identifiers and our record of the peer's after the fix-up.
    after: Option<(Generations, Generations)>,
}

fn none(_: &mut CompareInput) {}

fn cases() -> Vec<Case> {
    let c = |name, own, peer, tweak, hg, rule| Case {
        name,
        own,
        peer,
        tweak,
        hg,
        rule,
        fixup: None,
        after: None,
    };
    vec![
        // Rule 10: a fresh pair: nothing to sync, both stay Inconsistent.
        c(
            "10 both just created",
            g(4, 0, 0, 0),
            g(4, 0, 0, 0),
            none,
            0,
            10,
        ),
        // Rule 10 with the primary bit on one side: still equal.
        c(
            "10 primary bit masked",
            g(5, 0, 0, 0),
            g(4, 0, 0, 0),
            none,
            0,
            10,
        ),
        // Rule 20: we are fresh, the peer has data: full sync to us.
        c(
            "20 own just created",
            g(4, 0, 0, 0),
            g(A, 0, 0, 0),
            none,
            -2,
            20,
        ),
        // Rule 20: a zero current counts as fresh.
        c(
            "20 own current zero",
            g(0, 0, 0, 0),
            g(A, 0, 0, 0),
            none,
            -2,
            20,
        ),
        // Rule 30: the peer is fresh: full sync from us.
        c(
            "30 peer just created",
            g(A, 0, 0, 0),
            g(4, 0, 0, 0),
            none,
            2,
            30,
        ),
        c(
            "30 peer current zero",
            g(A, B, 0, 0),
            g(0, 0, 0, 0),
            none,
            2,
            30,
        ),
        // Rule 30 before rule 20 cannot fire both: own 0, peer 4 is rule 30 (own != 4).
        c(
            "30 own zero peer just created",
            g(0, 0, 0, 0),
            g(4, 0, 0, 0),
            none,
            2,
            30,
        ),
        // Rule 36: currents equal, we still have a bitmap UUID, the peer has none, but the
        // history does not show the finished resync: bitmap-based sync from us.
        c(
            "36 peer failed to write sync uuid",
            g(A, B, X, 0),
            g(A, 0, Y, Z),
            none,
            1,
            36,
        ),
        // Rule 37: the mirror image.
        c(
            "37 we failed to write sync uuid",
            g(A, 0, Y, Z),
            g(A, B, X, 0),
            none,
            -1,
            37,
        ),
        // Protocol 90: the "missed resync finished" rules are not available.
        c(
            "34 needs protocol 91",
            g(A, B, C, 0),
            g(A, 0, B, C),
            |i| i.agreed_pro_version = 90,
            hg::requires_protocol(91),
            30,
        ),
        // Rule 40: plain reconnect after a network hiccup.
        c(
            "40 equal, no crash",
            g(A, 0, B, C),
            g(A, 0, B, C),
            none,
            0,
            40,
        ),
        // Rule 40: we crashed as Primary, both Secondary now: we are the source.
        c(
            "40 own crashed primary",
            g(A, 0, B, 0),
            g(A, 0, B, 0),
            |i| i.own_crashed_primary = true,
            1,
            40,
        ),
        // Rule 40: the peer crashed as Primary (its UUID flag 2).
        c(
            "40 peer crashed primary",
            g(A, 0, 0, 0),
            g(A, 0, 0, 0),
            |i| i.peer_flags = 2,
            -1,
            40,
        ),
        // Rule 40: both crashed as Primary: RESOLVE_CONFLICTS makes us the target.
        c(
            "40 both crashed, resolve_conflicts",
            g(A, 0, 0, 0),
            g(A, 0, 0, 0),
            |i| {
                i.own_crashed_primary = true;
                i.peer_flags = 2;
                i.resolve_conflicts = true;
            },
            -1,
            40,
        ),
        c(
            "40 both crashed, no resolve_conflicts",
            g(A, 0, 0, 0),
            g(A, 0, 0, 0),
            |i| {
                i.own_crashed_primary = true;
                i.peer_flags = 2;
            },
            1,
            40,
        ),
        // The other UUID flags (discard-my-data, inconsistent) do not count as crashed.
        c(
            "40 flags 1 and 4 ignored",
            g(A, 0, 0, 0),
            g(A, 0, 0, 0),
            |i| i.peer_flags = 1 | 4,
            0,
            40,
        ),
        // Rule 41: a crashed-primary flag with a current Primary: the Primary is the source.
        c(
            "41 we are primary",
            g(A | 1, 0, 0, 0),
            g(A, 0, 0, 0),
            |i| {
                i.peer_flags = 2;
                i.own_role = Role::Primary;
            },
            1,
            41,
        ),
        c(
            "41 peer is primary",
            g(A, 0, 0, 0),
            g(A | 1, 0, 0, 0),
            |i| {
                i.own_crashed_primary = true;
                i.peer_role = Role::Primary;
            },
            -1,
            41,
        ),
        // Rule 41: both Primary with unrotated UUIDs: "can not happen", disconnect.
        c(
            "41 both primary",
            g(A | 1, 0, 0, 0),
            g(A | 1, 0, 0, 0),
            |i| {
                i.own_crashed_primary = true;
                i.own_role = Role::Primary;
                i.peer_role = Role::Primary;
            },
            -100,
            41,
        ),
        // Rule 41 without the WSAME feature: the peer is too old.
        c(
            "41 needs WSAME",
            g(A | 1, 0, 0, 0),
            g(A, 0, 0, 0),
            |i| {
                i.own_crashed_primary = true;
                i.own_role = Role::Primary;
                i.agreed_features = 0;
            },
            -(0x10000 | 101 | (4 << 8)),
            41,
        ),
        // Rule 50: the peer's bitmap is our current: the peer wrote since, bitmap sync to us.
        c(
            "50 own current is peer bitmap",
            g(A, 0, X, 0),
            g(B | 1, A, X, 0),
            none,
            -1,
            50,
        ),
        // Rule 51 not applicable (peer bitmap is not history[0] + offset): rule 60 decides.
        c(
            "51 no offset -> 60",
            g(A, 0, 0, 0),
            g(B, C, A, 0),
            none,
            -2,
            60,
        ),
        // Rule 60: our current is deep in the peer's history: full sync to us.
        c(
            "60 own current in peer history[1]",
            g(A, 0, 0, 0),
            g(B, C, D, A),
            none,
            -2,
            60,
        ),
        // Rule 70: our bitmap is the peer's current: we wrote since, bitmap sync from us.
        c(
            "70 own bitmap is peer current",
            g(B, A, X, 0),
            g(A, 0, X, 0),
            none,
            1,
            70,
        ),
        // Rule 71 not applicable: rule 80.
        c(
            "71 no offset -> 80",
            g(B, C, A, 0),
            g(A, 0, 0, 0),
            none,
            2,
            80,
        ),
        // Rule 80: the peer's current is in our history: full sync from us.
        c(
            "80 peer current in own history[1]",
            g(B, C, D, A),
            g(A, 0, 0, 0),
            none,
            2,
            80,
        ),
        // Rule 90: both wrote since the common generation B: split brain, auto-recoverable.
        c(
            "90 split brain, common bitmap",
            g(C, B, X, 0),
            g(D, B, X, 0),
            none,
            100,
            90,
        ),
        c(
            "90 primary bit of bitmap masked",
            g(C, B | 1, X, 0),
            g(D, B, X, 0),
            none,
            100,
            90,
        ),
        // Bitmaps both 0 are no common ancestor.
        c(
            "90 needs non-zero bitmaps",
            g(C, 0, X, Y),
            g(D, 0, Z, E),
            none,
            -1000,
            100,
        ),
        // Rule 100: only a history slot in common: split brain, disconnect.
        c(
            "100 history match",
            g(C, D, B, X),
            g(E, A, Y, B),
            none,
            -100,
            100,
        ),
        // Rule 100 also matches two zero history slots (DRBD compares them unfiltered).
        c(
            "100 zero histories",
            g(C, D, 0, 0),
            g(E, A, 0, 0),
            none,
            -100,
            100,
        ),
        // Nothing in common: unrelated data.
        c(
            "-1000 unrelated",
            g(C, D, X, Y),
            g(E, A, Z, B),
            none,
            -1000,
            100,
        ),
    ]
}

fn fixup_cases() -> Vec<Case> {
    let off = UUID_NEW_BM_OFFSET;
    vec![
        // Rule 34: we were SyncSource ({A, B, C}), the target finished and rotated B into its
        // history, we missed it: we rotate too and do a bitmap-based sync from us.
        Case {
            name: "34 was SyncSource, missed resync finished",
            own: g(A, B, C, 0),
            peer: g(A, 0, B, C),
            tweak: none,
            hg: 1,
            rule: 34,
            fixup: Some(Fixup::OwnBitmapToHistory),
            after: Some((g(A, 0, B, C), g(A, 0, B, C))),
        },
        // Rule 35: the mirror image: we correct our record of the peer.
        Case {
            name: "35 was SyncTarget, peer missed resync finished",
            own: g(A, 0, B, C),
            peer: g(A, B, C, 0),
            tweak: none,
            hg: -1,
            rule: 35,
            fixup: Some(Fixup::PeerBitmapToHistory),
            after: Some((g(A, 0, B, C), g(A, 0, B, C))),
        },
        // Rule 51: the peer started a resync as source from bitmap A (A + offset, A to
        // history), its P_SYNC_UUID never reached us: we undo that in our record.
        Case {
            name: "51 lost P_SYNC_UUID from the peer",
            own: g(A, 0, X, 0),
            peer: g(B, A.wrapping_add(off), A, X),
            tweak: none,
            hg: -1,
            rule: 51,
            fixup: Some(Fixup::PeerUndoSyncUuid),
            after: Some((g(A, 0, X, 0), g(B, A, X, X))),
        },
        // Rule 51 before protocol 96: the history check instead of the offset.
        Case {
            name: "51 protocol 95 history check",
            own: g(A, 0, X, 0),
            peer: g(B, C, A, X),
            tweak: |i| i.agreed_pro_version = 95,
            hg: -1,
            rule: 51,
            fixup: Some(Fixup::PeerUndoSyncUuid),
            after: Some((g(A, 0, X, 0), g(B, A, X, X))),
        },
        // Rule 71: we started a resync as source, our P_SYNC_UUID never arrived: we undo it.
        Case {
            name: "71 our P_SYNC_UUID got lost",
            own: g(B, A.wrapping_add(off), A, X),
            peer: g(A, 0, X, 0),
            tweak: none,
            hg: 1,
            rule: 71,
            fixup: Some(Fixup::OwnUndoSyncUuid),
            after: Some((g(B, A, X, X), g(A, 0, X, 0))),
        },
    ]
}

#[test]
fn every_rule() {
    for case in cases().into_iter().chain(fixup_cases()) {
        let mut input = CompareInput::new(case.own, case.peer);
        (case.tweak)(&mut input);
        let r = compare(&input);
        assert_eq!((r.hg, r.rule), (case.hg, case.rule), "{}", case.name);
        assert_eq!(
            r.fixups.first().copied(),
            case.fixup,
            "{}: fix-up",
            case.name
        );
        assert!(r.fixups.len() <= 1, "{}", case.name);
        let (mut own, mut peer) = (case.own, case.peer);
        r.apply_fixups(&mut own, &mut peer);
        let want = case.after.unwrap_or((case.own, case.peer));
        assert_eq!(
            (own, peer),
            want,
            "{}: identifiers after the fix-up",
            case.name
        );
        assert_eq!(
            r.log_line(),
            format!("uuid_compare()={} by rule {}", case.hg, case.rule)
        );
    }
}

#[test]
fn fixups_lead_to_a_plain_comparison_next_time() {
    // After rule 34's correction, comparing again finds equal currents and no bitmaps.
    let mut own = g(A, B, C, 0);
    let mut peer = g(A, 0, B, C);
    let r = compare(&CompareInput::new(own, peer));
    r.apply_fixups(&mut own, &mut peer);
    let again = compare(&CompareInput::new(own, peer));
    assert_eq!((again.hg, again.rule), (0, 40));
    // After rule 51's correction, our record of the peer matches rule 50.
    let mut own = g(A, 0, X, 0);
    let mut peer = g(B, A.wrapping_add(UUID_NEW_BM_OFFSET), A, X);
    compare(&CompareInput::new(own, peer)).apply_fixups(&mut own, &mut peer);
    let again = compare(&CompareInput::new(own, peer));
    assert_eq!((again.hg, again.rule), (-1, 50));
    assert!(Fixup::OwnUndoSyncUuid.changes_own() && !Fixup::PeerUndoSyncUuid.changes_own());
}

#[test]
fn notes_name_the_fixups() {
    let r = compare(&CompareInput::new(g(A, B, C, 0), g(A, 0, B, C)));
    assert_eq!(
        r.notes,
        ["was SyncSource, missed the resync finished event, corrected myself:"]
    );
    let r = compare(&CompareInput::new(
        g(A, 0, X, 0),
        g(B, A.wrapping_add(UUID_NEW_BM_OFFSET), A, X),
    ));
    assert_eq!(r.notes, ["Lost last syncUUID packet, corrected:"]);
}

fn uuid() -> impl Strategy<Value = u64> {
    // A small pool so that rules other than "unrelated" fire often.
    prop_oneof![
        Just(0u64),
        Just(4),
        Just(A),
        Just(B),
        Just(C),
        Just(D),
        any::<u64>()
    ]
}

fn gens() -> impl Strategy<Value = Generations> {
    (uuid(), uuid(), uuid(), uuid()).prop_map(|(c, b, h0, h1)| g(c, b, h0, h1))
}

proptest! {
    /// Bit 0 (the primary bit) never changes the outcome, except on a zero bitmap UUID, which
    /// DRBD tests for zero unmasked.
    #[test]
    fn primary_bit_is_masked(own in gens(), peer in gens(), bits in 0u8..16, rc: bool, crashed: bool) {
        let mut flipped_own = own;
        let mut flipped_peer = peer;
        if bits & 1 != 0 { flipped_own.current ^= 1; }
        if bits & 2 != 0 && own.bitmap & !1 != 0 { flipped_own.bitmap ^= 1; }
        if bits & 4 != 0 { flipped_peer.current ^= 1; flipped_peer.history[1] ^= 1; }
        if bits & 8 != 0 && peer.bitmap & !1 != 0 { flipped_peer.bitmap ^= 1; flipped_own.history[0] ^= 1; }
        let mut a = CompareInput::new(own, peer);
        a.resolve_conflicts = rc;
        a.own_crashed_primary = crashed;
        let mut b = a;
        b.own = flipped_own;
        b.peer = flipped_peer;
        let (ra, rb) = (compare(&a), compare(&b));
        prop_assert_eq!((ra.hg, ra.rule), (rb.hg, rb.rule));
    }

    /// Every outcome is one of DRBD's values, and fix-ups come only with their rules.
    #[test]
    fn outcomes_are_drbds(own in gens(), peer in gens(), flags in 0u64..16, roles in 0u8..4) {
        let mut i = CompareInput::new(own, peer);
        i.peer_flags = flags;
        i.own_role = if roles & 1 != 0 { Role::Primary } else { Role::Secondary };
        i.peer_role = if roles & 2 != 0 { Role::Primary } else { Role::Secondary };
        let r = compare(&i);
        prop_assert!([2, 1, 0, -1, -2, 100, -100, -1000].contains(&r.hg), "hg {}", r.hg);
        prop_assert!([10, 20, 30, 34, 35, 36, 37, 40, 41, 50, 51, 60, 70, 71, 80, 90, 100].contains(&r.rule));
        let want_fixup = match r.rule {
            34 => Some(Fixup::OwnBitmapToHistory),
            35 => Some(Fixup::PeerBitmapToHistory),
            51 => Some(Fixup::PeerUndoSyncUuid),
            71 => Some(Fixup::OwnUndoSyncUuid),
            _ => None,
        };
        prop_assert_eq!(r.fixups.first().copied(), want_fixup);
    }

    /// Swapping the sides mirrors the rules 20/30, 34/35, 36/37 and 40 (with the conflict
    /// bit swapped too): the hg value changes sign, split brain and unrelated stay.
    #[test]
    fn swapping_sides_mirrors(a in gens(), mut b in gens(), own_crashed: bool, peer_crashed: bool, rc: bool) {
        // Mostly equal currents, so that the rules under test fire.
        if b.current != 0 {
            b.current = a.current;
        }
        let mut i = CompareInput::new(a, b);
        i.own_crashed_primary = own_crashed;
        i.peer_flags = if peer_crashed { uuid_flag::CRASHED_PRIMARY } else { 0 };
        i.resolve_conflicts = rc;
        let r = compare(&i);
        prop_assume!(matches!(r.rule, 10 | 34 | 35 | 36 | 37 | 40));
        let mut j = CompareInput::new(b, a);
        j.own_crashed_primary = peer_crashed;
        j.peer_flags = if own_crashed { uuid_flag::CRASHED_PRIMARY } else { 0 };
        j.resolve_conflicts = !rc;
        let s = compare(&j);
        prop_assert_eq!(s.hg, -r.hg);
    }
}
