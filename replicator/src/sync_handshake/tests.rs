//! Table-driven tests of `drbd_sync_handshake` (one row per policy and override) and
//! scenario tests of the generation bookkeeping.

use super::*;

const A: u64 = 0xAAAA_0000_0000_1000;
const B: u64 = 0xBBBB_0000_0000_2000;
const C: u64 = 0xCCCC_0000_0000_3000;
const D: u64 = 0xDDDD_0000_0000_4000;
const X: u64 = 0x1111_0000_0000_6000;
const Y: u64 = 0x2222_0000_0000_7000;

fn g(current: u64, bitmap: u64, h0: u64, h1: u64) -> Generations {
    Generations {
        current,
        bitmap,
        history: [h0, h1],
    }
}

/// Split brain with a common ancestor (rule 90, hg 100): both wrote since generation B.
fn split_brain() -> HandshakeInput {
    let mut i = HandshakeInput::new(CompareInput::new(g(C, B, X, 0), g(D, B, X, 0)));
    i.own_changed_blocks = 5;
    i.peer_changed_blocks = 9;
    i
}

/// Split brain without a common bitmap ancestor (rule 100, hg -100).
fn split_brain_history_only() -> HandshakeInput {
    HandshakeInput::new(CompareInput::new(g(C, D, B, X), g(A, Y, X, B)))
}

fn primary(i: &mut HandshakeInput) {
    i.compare.own_role = Role::Primary;
    i.compare.own.current |= 1;
}

fn peer_primary(i: &mut HandshakeInput) {
    i.compare.peer_role = Role::Primary;
    i.compare.peer.current |= 1;
}

use Handler::{InitialSplitBrain as Isb, PriLost, PriLostAfterSb, SplitBrain as Sb};

const SOURCE: SyncDecision = SyncDecision::Source { full: false };
const SOURCE_FULL: SyncDecision = SyncDecision::Source { full: true };
const TARGET: SyncDecision = SyncDecision::Target { full: false };
const TARGET_FULL: SyncDecision = SyncDecision::Target { full: true };
const SPLIT: SyncDecision = SyncDecision::Refuse(Refusal::SplitBrain);

struct Case {
    name: &'static str,
    input: HandshakeInput,
    decision: SyncDecision,
    demote: bool,
    handlers: &'static [Handler],
    /// A line the log must hold.
    log: &'static str,
}

fn case(
    name: &'static str,
    input: HandshakeInput,
    decision: SyncDecision,
    handlers: &'static [Handler],
    log: &'static str,
) -> Case {
    Case {
        name,
        input,
        decision,
        demote: false,
        handlers,
        log,
    }
}

fn with(mut i: HandshakeInput, f: impl FnOnce(&mut HandshakeInput)) -> HandshakeInput {
    f(&mut i);
    i
}

fn p0(policy: AfterSb) -> impl FnOnce(&mut HandshakeInput) {
    move |i: &mut HandshakeInput| i.policies.after_sb_0pri = policy
}

fn policy_cases() -> Vec<Case> {
    use AfterSb::*;
    let solved0 = "Split-Brain detected, 0 primaries, automatically solved. Sync from peer node";
    let solved0_this =
        "Split-Brain detected, 0 primaries, automatically solved. Sync from this node";
    let unresolved = "Split-Brain detected but unresolved, dropping connection!";
    vec![
        // --- after-sb-0pri ---
        // disconnect (default): both stay as they are, split-brain handler runs.
        case("0pri disconnect", split_brain(), SPLIT, &[Isb, Sb], unresolved),
        // discard-younger-primary: the peer's bitmap UUID carries the primary bit (it was
        // Primary when its generation started): we are the older one and win.
        case(
            "0pri discard-younger-primary, peer younger",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardYoungerPrimary;
                i.compare.own.bitmap |= 1;
            }),
            SOURCE,
            &[Isb],
            solved0_this,
        ),
        case(
            "0pri discard-younger-primary, we are younger",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardYoungerPrimary;
                i.compare.peer.bitmap |= 1;
            }),
            TARGET,
            &[Isb],
            solved0,
        ),
        // No primary bit on either side: falls through to discard-least-changes (5 < 9: we lose).
        case(
            "0pri discard-younger-primary, undecided -> least changes",
            with(split_brain(), p0(DiscardYoungerPrimary)),
            TARGET,
            &[Isb],
            "Discard younger/older primary did not find a decision\nUsing discard-least-changes instead",
        ),
        case(
            "0pri discard-older-primary, we are older",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardOlderPrimary;
                i.compare.own.bitmap |= 1;
            }),
            TARGET,
            &[Isb],
            solved0,
        ),
        // Undecided older-primary, one side without changes: zero-changes decides first.
        case(
            "0pri discard-older-primary, undecided, we have no changes",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardOlderPrimary;
                i.own_changed_blocks = 0;
            }),
            TARGET,
            &[Isb],
            solved0,
        ),
        // discard-zero-changes: the side without changes loses.
        case(
            "0pri discard-zero-changes, we have none",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardZeroChanges;
                i.own_changed_blocks = 0;
            }),
            TARGET,
            &[Isb],
            solved0,
        ),
        case(
            "0pri discard-zero-changes, peer has none",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardZeroChanges;
                i.peer_changed_blocks = 0;
            }),
            SOURCE,
            &[Isb],
            solved0_this,
        ),
        // Both without changes: RESOLVE_CONFLICTS loses.
        case(
            "0pri discard-zero-changes, none on both, resolve_conflicts",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardZeroChanges;
                i.own_changed_blocks = 0;
                i.peer_changed_blocks = 0;
                i.compare.resolve_conflicts = true;
            }),
            TARGET,
            &[Isb],
            solved0,
        ),
        case(
            "0pri discard-zero-changes, none on both",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardZeroChanges;
                i.own_changed_blocks = 0;
                i.peer_changed_blocks = 0;
            }),
            SOURCE,
            &[Isb],
            solved0_this,
        ),
        // Both changed: no decision.
        case(
            "0pri discard-zero-changes, both changed",
            with(split_brain(), p0(DiscardZeroChanges)),
            SPLIT,
            &[Isb, Sb],
            unresolved,
        ),
        // discard-least-changes: fewer changed blocks lose.
        case("0pri discard-least-changes, we changed less", with(split_brain(), p0(DiscardLeastChanges)), TARGET, &[Isb], solved0),
        case(
            "0pri discard-least-changes, we changed more",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardLeastChanges;
                i.own_changed_blocks = 50;
            }),
            SOURCE,
            &[Isb],
            solved0_this,
        ),
        case(
            "0pri discard-least-changes, tie, resolve_conflicts",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardLeastChanges;
                i.own_changed_blocks = 9;
                i.compare.resolve_conflicts = true;
            }),
            TARGET,
            &[Isb],
            solved0,
        ),
        case(
            "0pri discard-least-changes, tie",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardLeastChanges;
                i.own_changed_blocks = 9;
            }),
            SOURCE,
            &[Isb],
            solved0_this,
        ),
        // discard-local / discard-remote (discard-node-NAME).
        case("0pri discard-local", with(split_brain(), p0(DiscardLocal)), TARGET, &[Isb], solved0),
        case("0pri discard-remote", with(split_brain(), p0(DiscardRemote)), SOURCE, &[Isb], solved0_this),
        // A 1pri-only value in after-sb-0pri: configuration error, no recovery.
        case("0pri configuration error", with(split_brain(), p0(Consensus)), SPLIT, &[Isb, Sb], "Configuration error."),
        // --- after-sb-1pri (0pri = discard-least-changes, which says we lose: 5 < 9) ---
        case(
            "1pri disconnect",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardLeastChanges;
                peer_primary(i);
            }),
            SPLIT,
            &[Isb, Sb],
            unresolved,
        ),
        // consensus: 0pri says discard us, and we are the Secondary: agreed.
        case(
            "1pri consensus, secondary loses",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardLeastChanges;
                i.policies.after_sb_1pri = AfterSb::Consensus;
                peer_primary(i);
            }),
            TARGET,
            &[Isb],
            "Split-Brain detected, 1 primaries, automatically solved. Sync from peer node",
        ),
        // consensus: 0pri would discard the Primary (us): no agreement.
        case(
            "1pri consensus, primary would lose",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardLeastChanges;
                i.policies.after_sb_1pri = AfterSb::Consensus;
                primary(i);
            }),
            SPLIT,
            &[Isb, Sb],
            unresolved,
        ),
        // violently-as0p: 0pri decides even against the Primary; with rr-conflict violently
        // the Primary becomes SyncTarget.
        case(
            "1pri violently-as0p, primary loses, rr-conflict violently",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardLeastChanges;
                i.policies.after_sb_1pri = AfterSb::Violently;
                i.policies.rr_conflict = RrConflict::Violently;
                primary(i);
            }),
            TARGET,
            &[Isb],
            "Becoming SyncTarget, violating the stable-dataassumption",
        ),
        // ... and with rr-conflict disconnect it refuses.
        case(
            "1pri violently-as0p, primary loses, rr-conflict disconnect",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardLeastChanges;
                i.policies.after_sb_1pri = AfterSb::Violently;
                primary(i);
            }),
            SyncDecision::Refuse(Refusal::PrimaryWouldBeTarget),
            &[Isb],
            "I shall become SyncTarget, but I am primary!",
        ),
        // discard-secondary: the Secondary loses whatever 0pri says.
        case(
            "1pri discard-secondary, we are primary",
            with(split_brain(), |i| {
                i.policies.after_sb_1pri = AfterSb::DiscardSecondary;
                primary(i);
            }),
            SOURCE,
            &[Isb],
            "Split-Brain detected, 1 primaries, automatically solved. Sync from this node",
        ),
        case(
            "1pri discard-secondary, we are secondary",
            with(split_brain(), |i| {
                i.policies.after_sb_1pri = AfterSb::DiscardSecondary;
                i.own_changed_blocks = 100;
                peer_primary(i);
            }),
            TARGET,
            &[Isb],
            "Sync from peer node",
        ),
        // call-pri-lost-after-sb: 0pri says the Primary (us) loses and it can demote.
        Case {
            demote: true,
            ..case(
                "1pri call-pri-lost-after-sb, primary demotes",
                with(split_brain(), |i| {
                    i.policies.after_sb_0pri = DiscardLeastChanges;
                    i.policies.after_sb_1pri = AfterSb::CallHelper;
                    primary(i);
                }),
                TARGET,
                &[Isb],
                "Successfully gave up primary role.",
            )
        },
        // ... it cannot demote (in use): pri-lost-after-sb handler, then split brain.
        case(
            "1pri call-pri-lost-after-sb, cannot demote",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardLeastChanges;
                i.policies.after_sb_1pri = AfterSb::CallHelper;
                i.can_demote = false;
                primary(i);
            }),
            SPLIT,
            &[Isb, PriLostAfterSb, Sb],
            unresolved,
        ),
        // ... 0pri says the Secondary (us) loses: no demotion needed.
        case(
            "1pri call-pri-lost-after-sb, secondary loses",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardLeastChanges;
                i.policies.after_sb_1pri = AfterSb::CallHelper;
                peer_primary(i);
            }),
            TARGET,
            &[Isb],
            "Sync from peer node",
        ),
        case(
            "1pri configuration error",
            with(split_brain(), |i| {
                i.policies.after_sb_1pri = AfterSb::DiscardLocal;
                primary(i);
            }),
            SPLIT,
            &[Isb, Sb],
            "Configuration error.",
        ),
        // --- after-sb-2pri ---
        case(
            "2pri disconnect",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardRemote;
                primary(i);
                peer_primary(i);
            }),
            SPLIT,
            &[Isb, Sb],
            unresolved,
        ),
        case(
            "2pri violently-as0p, we win",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardRemote;
                i.policies.after_sb_2pri = AfterSb::Violently;
                primary(i);
                peer_primary(i);
            }),
            SOURCE,
            &[Isb],
            "Split-Brain detected, 2 primaries, automatically solved. Sync from this node",
        ),
        Case {
            demote: true,
            ..case(
                "2pri call-pri-lost-after-sb, we lose and demote",
                with(split_brain(), |i| {
                    i.policies.after_sb_0pri = DiscardLocal;
                    i.policies.after_sb_2pri = AfterSb::CallHelper;
                    primary(i);
                    peer_primary(i);
                }),
                TARGET,
                &[Isb],
                "Successfully gave up primary role.",
            )
        },
        case(
            "2pri call-pri-lost-after-sb, we win",
            with(split_brain(), |i| {
                i.policies.after_sb_0pri = DiscardRemote;
                i.policies.after_sb_2pri = AfterSb::CallHelper;
                primary(i);
                peer_primary(i);
            }),
            SOURCE,
            &[Isb],
            "Sync from this node",
        ),
        case(
            "2pri configuration error",
            with(split_brain(), |i| {
                i.policies.after_sb_2pri = AfterSb::Consensus;
                primary(i);
                peer_primary(i);
            }),
            SPLIT,
            &[Isb, Sb],
            "Configuration error.",
        ),
    ]
}

fn other_cases() -> Vec<Case> {
    vec![
        // always-asbp: no common bitmap ancestor, the policy still decides, as a full sync.
        case(
            "always-asbp",
            with(split_brain_history_only(), |i| {
                i.policies.always_asbp = true;
                i.policies.after_sb_0pri = AfterSb::DiscardRemote;
            }),
            SOURCE_FULL,
            &[Isb],
            "Doing a full sync, since UUIDs where ambiguous.",
        ),
        case(
            "no always-asbp: hg -100 is not auto-recovered",
            with(split_brain_history_only(), p0(AfterSb::DiscardRemote)),
            SPLIT,
            &[Isb, Sb],
            "Split-Brain detected but unresolved, dropping connection!",
        ),
        // Manual recovery: the victim discards its changes, bitmap-based.
        case(
            "--discard-my-data here",
            with(split_brain(), |i| i.discard_my_data = true),
            TARGET,
            &[Isb],
            "Split-Brain detected, manually solved. Sync from peer node",
        ),
        case(
            "--discard-my-data on the peer",
            with(split_brain(), |i| i.compare.peer_flags = uuid_flag::DISCARD_MY_DATA),
            SOURCE,
            &[Isb],
            "Split-Brain detected, manually solved. Sync from this node",
        ),
        case(
            "--discard-my-data on both",
            with(split_brain(), |i| {
                i.discard_my_data = true;
                i.compare.peer_flags = uuid_flag::DISCARD_MY_DATA;
            }),
            SPLIT,
            &[Isb, Sb],
            "Split-Brain detected but unresolved, dropping connection!",
        ),
        case(
            "--discard-my-data without common ancestor",
            with(split_brain_history_only(), |i| i.discard_my_data = true),
            TARGET,
            &[Isb],
            "manually solved",
        ),
        // Unrelated data / old protocol.
        case(
            "unrelated",
            HandshakeInput::new(CompareInput::new(g(C, D, X, Y), g(A, B, 0x77, 0x99))),
            SyncDecision::Refuse(Refusal::Unrelated),
            &[],
            "Unrelated data, aborting!",
        ),
        case(
            "needs protocol 91",
            with(HandshakeInput::new(CompareInput::new(g(A, B, C, 0), g(A, 0, B, C))), |i| {
                i.compare.agreed_pro_version = 90;
            }),
            SyncDecision::Refuse(Refusal::RequiresProtocol { proto: 91 }),
            &[],
            "To resolve this both sides have to support at least protocol 91",
        ),
        case(
            "needs WSAME",
            with(HandshakeInput::new(CompareInput::new(g(A | 1, 0, 0, 0), g(A, 0, 0, 0))), |i| {
                i.compare.own_role = Role::Primary;
                i.compare.own_crashed_primary = true;
                i.compare.agreed_features = 0;
            }),
            SyncDecision::Refuse(Refusal::RequiresFeatures { proto: 101, features: 4 }),
            &[],
            "To resolve this both sides have to support at least protocol 101 and feature flags 0x4",
        ),
        // Disk-state overrides.
        case(
            "we are Inconsistent, peer UpToDate, equal UUIDs",
            with(HandshakeInput::new(CompareInput::new(g(A, 0, 0, 0), g(A, 0, 0, 0))), |i| {
                i.own_disk = DiskState::Inconsistent;
            }),
            TARGET,
            &[],
            "Becoming sync target due to disk states.",
        ),
        case(
            "peer Inconsistent, we UpToDate, equal UUIDs",
            with(HandshakeInput::new(CompareInput::new(g(A, 0, 0, 0), g(A, 0, 0, 0))), |i| {
                i.peer_disk = DiskState::Inconsistent;
            }),
            SOURCE,
            &[],
            "Becoming sync source due to disk states.",
        ),
        // An Inconsistent side of a split brain is the target, with a full sync.
        case(
            "we are Inconsistent in a split brain without ancestor",
            with(split_brain_history_only(), |i| i.own_disk = DiskState::Inconsistent),
            TARGET_FULL,
            &[],
            "Becoming sync target due to disk states.",
        ),
        // A fresh pair: both Inconsistent, nothing decided, stay Connected Inconsistent.
        case(
            "both just created and Inconsistent",
            with(HandshakeInput::new(CompareInput::new(g(4, 0, 0, 0), g(4, 0, 0, 0))), |i| {
                i.own_disk = DiskState::Inconsistent;
                i.peer_disk = DiskState::Inconsistent;
            }),
            SyncDecision::NoSync,
            &[],
            "uuid_compare()=0 by rule 10",
        ),
        // Both Inconsistent and the UUIDs say we are the source: refuse.
        case(
            "both Inconsistent, we would be source",
            with(HandshakeInput::new(CompareInput::new(g(A, 0, 0, 0), g(4, 0, 0, 0))), |i| {
                i.own_disk = DiskState::Inconsistent;
                i.peer_disk = DiskState::Inconsistent;
            }),
            SyncDecision::Refuse(Refusal::InconsistentSource),
            &[],
            "I shall become SyncSource, but I am inconsistent!",
        ),
        // Fresh node joins a node with data: full sync.
        case(
            "peer just created",
            HandshakeInput::new(CompareInput::new(g(A, 0, 0, 0), g(4, 0, 0, 0))),
            SOURCE_FULL,
            &[],
            "Writing the whole bitmap, full sync required after drbd_sync_handshake.",
        ),
        case(
            "we just created",
            with(HandshakeInput::new(CompareInput::new(g(4, 0, 0, 0), g(A, 0, 0, 0))), |i| {
                i.own_disk = DiskState::Inconsistent;
            }),
            TARGET_FULL,
            &[],
            "uuid_compare()=-2 by rule 20",
        ),
        // rr-conflict: a Primary that would become SyncTarget (rule 50).
        case(
            "rr-conflict disconnect",
            with(HandshakeInput::new(CompareInput::new(g(A, 0, 0, 0), g(B, A, 0, 0))), primary),
            SyncDecision::Refuse(Refusal::PrimaryWouldBeTarget),
            &[],
            "I shall become SyncTarget, but I am primary!",
        ),
        case(
            "rr-conflict call-pri-lost",
            with(HandshakeInput::new(CompareInput::new(g(A, 0, 0, 0), g(B, A, 0, 0))), |i| {
                primary(i);
                i.policies.rr_conflict = RrConflict::CallPriLost;
            }),
            SyncDecision::Refuse(Refusal::PrimaryWouldBeTarget),
            &[PriLost],
            "I shall become SyncTarget, but I am primary!",
        ),
        case(
            "rr-conflict violently",
            with(HandshakeInput::new(CompareInput::new(g(A, 0, 0, 0), g(B, A, 0, 0))), |i| {
                primary(i);
                i.policies.rr_conflict = RrConflict::Violently;
            }),
            TARGET,
            &[],
            "Becoming SyncTarget, violating the stable-dataassumption",
        ),
        // rr-conflict reads the current disk state: while attaching (Negotiating) it does not apply.
        case(
            "rr-conflict not while attaching",
            with(HandshakeInput::new(CompareInput::new(g(A, 0, 0, 0), g(B, A, 0, 0))), |i| {
                primary(i);
                i.own_disk_now = DiskState::Negotiating;
            }),
            TARGET,
            &[],
            "uuid_compare()=-1 by rule 50",
        ),
        // Dry run: decide, log, refuse.
        case(
            "dry run",
            with(HandshakeInput::new(CompareInput::new(g(B, A, 0, 0), g(A, 0, 0, 0))), |i| i.policies.dry_run = true),
            SyncDecision::Refuse(Refusal::DryRun { hg: 1 }),
            &[],
            "dry-run connect: Would become SyncSource, doing a bit-map based resync.",
        ),
        case(
            "no resync but bits",
            with(HandshakeInput::new(CompareInput::new(g(A, 0, 0, 0), g(A, 0, 0, 0))), |i| i.own_changed_blocks = 3),
            SyncDecision::NoSync,
            &[],
            "No resync, but 3 bits in bitmap!",
        ),
    ]
}

#[test]
fn every_policy_and_override() {
    for c in policy_cases().into_iter().chain(other_cases()) {
        let h = handshake(&c.input);
        let texts: Vec<&str> = h.log.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(h.decision, c.decision, "{}: log {:?}", c.name, texts);
        assert_eq!(h.demote, c.demote, "{}: demote", c.name);
        assert_eq!(h.handlers, c.handlers, "{}: handlers", c.name);
        assert!(
            texts.iter().any(|t| t.contains(c.log)),
            "{}: no '{}' in {:?}",
            c.name,
            c.log,
            texts
        );
        assert!(
            texts.iter().any(|t| t.starts_with("uuid_compare()=")),
            "{}",
            c.name
        );
    }
}

#[test]
fn the_loser_of_a_policy_is_the_winner_seen_from_the_other_side() {
    // Both nodes run the handshake with mirrored inputs; they must agree on the direction.
    use AfterSb::*;
    for policy in [
        DiscardYoungerPrimary,
        DiscardOlderPrimary,
        DiscardZeroChanges,
        DiscardLeastChanges,
        DiscardLocal,
        DiscardRemote,
    ] {
        for (own_ch, peer_ch, own_pri_bit) in [
            (0, 0, false),
            (0, 4, false),
            (4, 0, true),
            (3, 3, false),
            (2, 8, true),
        ] {
            let mut mine = split_brain();
            mine.own_changed_blocks = own_ch;
            mine.peer_changed_blocks = peer_ch;
            if own_pri_bit {
                mine.compare.own.bitmap |= 1;
            }
            mine.policies.after_sb_0pri = policy;
            mine.compare.resolve_conflicts = true;
            let mut theirs = mine;
            theirs.compare.own = mine.compare.peer;
            theirs.compare.peer = mine.compare.own;
            theirs.own_changed_blocks = peer_ch;
            theirs.peer_changed_blocks = own_ch;
            theirs.compare.resolve_conflicts = false;
            // discard-local on one node is discard-remote of the other node's name.
            theirs.policies.after_sb_0pri = match policy {
                DiscardLocal => DiscardRemote,
                DiscardRemote => DiscardLocal,
                p => p,
            };
            let (a, b) = (handshake(&mine).decision, handshake(&theirs).decision);
            let agree = matches!(
                (a, b),
                (SyncDecision::Source { .. }, SyncDecision::Target { .. })
                    | (SyncDecision::Target { .. }, SyncDecision::Source { .. })
                    | (
                        SyncDecision::Refuse(Refusal::SplitBrain),
                        SyncDecision::Refuse(Refusal::SplitBrain)
                    )
            );
            assert!(
                agree,
                "{policy} {own_ch}/{peer_ch}/{own_pri_bit}: {a:?} vs {b:?}"
            );
        }
    }
}

#[test]
fn next_states() {
    assert_eq!(
        SOURCE_FULL.next_conn_state(),
        Some(rdbd_types::ConnState::WFBitMapS)
    );
    assert_eq!(
        TARGET.next_conn_state(),
        Some(rdbd_types::ConnState::WFBitMapT)
    );
    assert_eq!(
        SyncDecision::NoSync.next_conn_state(),
        Some(rdbd_types::ConnState::Connected)
    );
    assert_eq!(SPLIT.next_conn_state(), None);
}

#[test]
fn policy_names() {
    for (p, name) in AfterSb::ALL {
        assert_eq!(parse_after_sb(name, "alice"), Ok(p));
        assert_eq!(p.to_string(), name);
    }
    assert_eq!(
        parse_after_sb("discard-node-alice", "alice"),
        Ok(AfterSb::DiscardLocal)
    );
    assert_eq!(
        parse_after_sb("discard-node-bob", "alice"),
        Ok(AfterSb::DiscardRemote)
    );
    assert!(parse_after_sb("discard-everything", "alice").is_err());
    assert_eq!(
        RrConflict::parse("call-pri-lost"),
        Ok(RrConflict::CallPriLost)
    );
    assert_eq!(RrConflict::parse("violently"), Ok(RrConflict::Violently));
    assert_eq!(RrConflict::parse("disconnect"), Ok(RrConflict::Disconnect));
    assert!(RrConflict::parse("call-pri-lost-after-sb").is_err());
    assert_eq!(Handler::PriLostAfterSb.name(), "pri-lost-after-sb");
    assert_eq!(Handler::InitialSplitBrain.name(), "initial-split-brain");
}

// ----- bookkeeping -----

/// Two nodes with their identifiers and each one's record of the other's.
#[derive(Debug, Clone, Copy)]
struct Pair {
    p: Generations,
    s: Generations,
}

#[test]
fn sync_start_and_end_leave_both_sides_equal() {
    // In sync: both at A. The Primary loses the peer and starts generation N.
    let mut pair = Pair {
        p: g(A | 1, 0, 0, 0),
        s: g(A, 0, 0, 0),
    };
    let loss = PeerLoss {
        old_peer_disk: DiskState::UpToDate,
        new_peer_disk: DiskState::DUnknown,
        role: Role::Primary,
        peer_role: Role::Unknown,
        disk: DiskState::UpToDate,
        suspended: false,
    };
    assert_eq!(
        new_current_on_peer_loss(&mut pair.p, &loss, 0x4E00),
        PeerLossAction::NewCurrent
    );
    assert_eq!(pair.p, g(0x4E01, A | 1, 0, 0));
    // A second loss while the bitmap UUID is set: no new generation.
    assert_eq!(
        new_current_on_peer_loss(&mut pair.p, &loss, 0x5E00),
        PeerLossAction::None
    );

    // Reconnect: P is source by rule 70, S target by rule 50.
    let mut on_p = CompareInput::new(pair.p, pair.s);
    on_p.own_role = Role::Primary;
    let mut on_s = CompareInput::new(pair.s, pair.p);
    on_s.peer_role = Role::Primary;
    assert_eq!((compare(&on_p).hg, compare(&on_p).rule), (1, 70));
    assert_eq!((compare(&on_s).hg, compare(&on_s).rule), (-1, 50));
    let (mut p_record_of_s, mut s_record_of_p) = (pair.s, pair.p);

    // Resync start: source generates the sync UUID, the target adopts it.
    let sync_uuid = source_sync_uuid(&mut pair.p, 0xDEAD);
    assert_eq!(sync_uuid, (A | 1).wrapping_add(UUID_NEW_BM_OFFSET));
    assert_eq!(pair.p, g(0x4E01, sync_uuid, A | 1, 0));
    target_sync_uuid_received(&mut pair.s, sync_uuid, Role::Secondary);
    assert_eq!(pair.s, g(sync_uuid & !1, 0, 0, 0));

    // Resync end on both sides.
    resync_finished_source(&mut pair.p, &mut p_record_of_s);
    resync_finished_target(&mut pair.s, &mut s_record_of_p, Role::Secondary);
    assert_eq!(pair.p, g(0x4E01, 0, sync_uuid, A | 1));
    assert_eq!(pair.s, g(0x4E00, 0, sync_uuid & !1, A | 1));
    assert_eq!(p_record_of_s, pair.p);
    assert_eq!(s_record_of_p, pair.s);
    // And the next handshake says "in sync" (rule 40).
    let again = compare(&CompareInput::new(pair.s, pair.p));
    assert_eq!((again.hg, again.rule), (0, 40));
}

#[test]
fn lost_sync_uuid_is_repaired_by_rules_51_and_71() {
    let mut p = g(0x4E01, A, 0, 0);
    let s = g(A, 0, 0, 0);
    let sync_uuid = source_sync_uuid(&mut p, 0);
    assert_eq!(sync_uuid, A + UUID_NEW_BM_OFFSET);
    // P_SYNC_UUID lost, connection breaks, reconnect.
    let on_s = compare(&CompareInput::new(s, p));
    assert_eq!((on_s.hg, on_s.rule), (-1, 51));
    let on_p = compare(&CompareInput::new(p, s));
    assert_eq!((on_p.hg, on_p.rule), (1, 71));
    let (mut p2, mut s_rec) = (p, s);
    on_p.apply_fixups(&mut p2, &mut s_rec);
    assert_eq!(p2, g(0x4E01, A, 0, 0), "undone on the source");
}

#[test]
fn missed_resync_finished_is_repaired_by_rules_34_and_35() {
    // The target finished and rotated; the source crashed before it did.
    let mut p = g(0x4E01, A, 0, 0);
    let mut s = g(A, 0, 0, 0);
    let sync_uuid = source_sync_uuid(&mut p, 0);
    target_sync_uuid_received(&mut s, sync_uuid, Role::Secondary);
    let mut s_rec = g(0x4E01, A, 0, 0);
    resync_finished_target(&mut s, &mut s_rec, Role::Secondary);
    let on_p = compare(&CompareInput::new(p, s));
    assert_eq!((on_p.hg, on_p.rule), (1, 34));
    let on_s = compare(&CompareInput::new(s, p));
    assert_eq!((on_s.hg, on_s.rule), (-1, 35));
    let mut s_rec2 = s;
    on_p.apply_fixups(&mut p, &mut s_rec2);
    assert_eq!(
        p,
        g(0x4E01, 0, A + UUID_NEW_BM_OFFSET, A),
        "source after the fix-up"
    );
    assert_eq!(
        s,
        g(0x4E00, 0, A + UUID_NEW_BM_OFFSET, A),
        "target, the same but the primary bit"
    );
}

#[test]
fn first_sync_of_a_fresh_pair_uses_a_random_bitmap_uuid() {
    // primary --force on a fresh node: new generation over JUST_CREATED.
    let mut p = g(UUID_JUST_CREATED, 0, 0, 0);
    p.new_current(0x1230, Role::Primary);
    assert_eq!(p, g(0x1231, UUID_JUST_CREATED, 0, 0));
    let sync_uuid = source_sync_uuid(&mut p, 0xABC0);
    assert_eq!(sync_uuid, 0xABC0, "bitmap was JUST_CREATED: random");
    assert_eq!(p, g(0x1231, 0xABC0, UUID_JUST_CREATED, 0));
    let mut p = g(0x1231, 0, 0, 0);
    assert_eq!(
        source_sync_uuid(&mut p, 0x7770),
        0x7770,
        "bitmap 0: random, no rotation"
    );
    assert_eq!(p, g(0x1231, 0x7770, 0, 0));
}

#[test]
fn peer_loss_rules() {
    use DiskState::*;
    assert!(lost_contact_to_peer_data(UpToDate, DUnknown));
    assert!(lost_contact_to_peer_data(Inconsistent, Outdated));
    assert!(lost_contact_to_peer_data(DUnknown, Diskless));
    assert!(!lost_contact_to_peer_data(DUnknown, UpToDate));
    assert!(!lost_contact_to_peer_data(Outdated, DUnknown));
    let base = PeerLoss {
        old_peer_disk: UpToDate,
        new_peer_disk: DUnknown,
        role: Role::Secondary,
        peer_role: Role::Unknown,
        disk: UpToDate,
        suspended: false,
    };
    let mut gens = g(A, 0, 0, 0);
    assert_eq!(
        new_current_on_peer_loss(&mut gens, &base, 7),
        PeerLossAction::None,
        "no primary"
    );
    let frozen = PeerLoss {
        role: Role::Primary,
        suspended: true,
        ..base
    };
    assert_eq!(
        new_current_on_peer_loss(&mut gens, &frozen, 7),
        PeerLossAction::Deferred
    );
    assert_eq!(gens, g(A, 0, 0, 0));
    let consistent = PeerLoss {
        role: Role::Primary,
        disk: Consistent,
        ..base
    };
    assert_eq!(
        new_current_on_peer_loss(&mut gens, &consistent, 7),
        PeerLossAction::None
    );
    // The peer was Primary (and the link broke): the Secondary starts a generation too.
    let peer_pri = PeerLoss {
        peer_role: Role::Primary,
        ..base
    };
    assert_eq!(
        new_current_on_peer_loss(&mut gens, &peer_pri, 0x70),
        PeerLossAction::NewCurrent
    );
    assert_eq!(gens, g(0x70, A, 0, 0));
}

#[test]
fn skip_initial_sync_and_new_current_uuid() {
    let mut fresh = g(UUID_JUST_CREATED, 0, 0, 0);
    assert!(!skip_initial_sync(
        &mut fresh,
        true,
        101,
        0x5550,
        0,
        Role::Secondary
    ));
    assert!(!skip_initial_sync(
        &mut fresh,
        false,
        101,
        0x5550,
        8,
        Role::Secondary
    ));
    assert!(skip_initial_sync(
        &mut fresh,
        true,
        101,
        0x5551,
        8,
        Role::Secondary
    ));
    assert_eq!(fresh, g(0x5550, 0, 0, 0));
    let mut gens = g(A, B, C, 0);
    new_current_uuid_cmd(&mut gens, 0x9990, Role::Secondary);
    assert_eq!(gens, g(0x9990, A, B, C));
}
