//! A simulated pair: random but realistic timelines, both sides run the handshake and the
//! bookkeeping, and the outcomes must agree.

use super::*;
use proptest::prelude::*;

const A: u64 = 0xAAAA_0000_0000_1000;

fn g(current: u64, bitmap: u64, h0: u64, h1: u64) -> Generations {
    Generations {
        current,
        bitmap,
        history: [h0, h1],
    }
}

// ----- a simulated pair: realistic timelines, both sides run the handshake -----

#[derive(Debug, Clone, Copy)]
enum Op {
    Disconnect,
    Promote(usize),
    Demote(usize),
    Write(usize),
    /// Connect and, if the handshake says so, resync to the end.
    Connect,
    /// Connect, the source generates the sync UUID, the connection breaks before the target
    /// receives P_SYNC_UUID.
    ConnectLoseSyncUuid,
    /// Connect, resync starts, the connection breaks halfway (the target is Inconsistent).
    ConnectInterrupted,
    /// Connect, resync runs to the end on the target, the source misses the end.
    ConnectSourceMissesEnd,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Disconnect),
        (0usize..2).prop_map(Op::Promote),
        (0usize..2).prop_map(Op::Demote),
        (0usize..2).prop_map(Op::Write),
        Just(Op::Connect),
        Just(Op::ConnectLoseSyncUuid),
        Just(Op::ConnectInterrupted),
        Just(Op::ConnectSourceMissesEnd),
    ]
}

#[derive(Debug, Clone, Copy)]
struct Node {
    gens: Generations,
    /// This node's record of the peer's identifiers (from the last P_UUIDS).
    record: Generations,
    role: Role,
    disk: DiskState,
    changed_blocks: u64,
    /// Started a generation since the last completed resync.
    new_generation: bool,
}

struct Sim {
    nodes: [Node; 2],
    connected: bool,
    next_uuid: u64,
    policies: Policies,
}

impl Sim {
    fn new(policies: Policies) -> Sim {
        let n = Node {
            gens: g(A, 0, 0, 0),
            record: g(A, 0, 0, 0),
            role: Role::Secondary,
            disk: DiskState::UpToDate,
            changed_blocks: 0,
            new_generation: false,
        };
        Sim {
            nodes: [n, n],
            connected: true,
            next_uuid: 1,
            policies,
        }
    }

    fn random(&mut self) -> u64 {
        self.next_uuid += 1;
        self.next_uuid << 20
    }

    fn run(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Disconnect if self.connected => {
                self.connected = false;
                for i in 0..2 {
                    let random = self.random();
                    let n = &mut self.nodes[i];
                    let change = PeerLoss {
                        old_peer_disk: DiskState::UpToDate,
                        new_peer_disk: DiskState::DUnknown,
                        role: n.role,
                        peer_role: Role::Unknown,
                        disk: n.disk,
                        suspended: false,
                    };
                    if new_current_on_peer_loss(&mut n.gens, &change, random)
                        == PeerLossAction::NewCurrent
                    {
                        n.new_generation = true;
                    }
                }
            }
            Op::Promote(i) => {
                let other = self.nodes[1 - i].role;
                let connected = self.connected;
                let random = self.random();
                let n = &mut self.nodes[i];
                // No dual-primary; an Inconsistent node cannot be promoted.
                if n.disk == DiskState::UpToDate
                    && !(connected && other == Role::Primary)
                    && n.role != Role::Primary
                {
                    let before = n.gens.current & !1;
                    crate::generation::on_promote(
                        &mut n.gens,
                        connected,
                        DiskState::UpToDate,
                        false,
                        random,
                    );
                    n.new_generation |= n.gens.current & !1 != before;
                    n.role = Role::Primary;
                }
            }
            Op::Demote(i) => {
                crate::generation::on_demote(&mut self.nodes[i].gens);
                self.nodes[i].role = Role::Secondary;
            }
            Op::Write(i) if !self.connected && self.nodes[i].role == Role::Primary => {
                self.nodes[i].changed_blocks += 1;
            }
            Op::Connect
            | Op::ConnectLoseSyncUuid
            | Op::ConnectInterrupted
            | Op::ConnectSourceMissesEnd
                if !self.connected =>
            {
                self.connect(op)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn input(&self, i: usize) -> HandshakeInput {
        let (me, peer) = (&self.nodes[i], &self.nodes[1 - i]);
        let mut c = CompareInput::new(me.gens, peer.gens);
        c.own_role = me.role;
        c.peer_role = peer.role;
        c.resolve_conflicts = i == 1;
        let mut h = HandshakeInput::new(c);
        h.own_disk = me.disk;
        h.own_disk_now = me.disk;
        h.peer_disk = peer.disk;
        h.own_changed_blocks = me.changed_blocks;
        h.peer_changed_blocks = peer.changed_blocks;
        h.policies = self.policies;
        if i == 1 {
            h.policies.after_sb_0pri = match self.policies.after_sb_0pri {
                AfterSb::DiscardLocal => AfterSb::DiscardRemote,
                AfterSb::DiscardRemote => AfterSb::DiscardLocal,
                p => p,
            };
        }
        h
    }

    fn connect(&mut self, op: Op) -> Result<(), TestCaseError> {
        let inputs = [self.input(0), self.input(1)];
        let hs = [handshake(&inputs[0]), handshake(&inputs[1])];
        let exactly_one_new = self.nodes[0].new_generation != self.nodes[1].new_generation;
        let (d0, d1) = (hs[0].decision, hs[1].decision);
        prop_assert!(
            !matches!(
                (d0, d1),
                (SyncDecision::Source { .. }, SyncDecision::Source { .. })
                    | (SyncDecision::Target { .. }, SyncDecision::Target { .. })
                    | (
                        SyncDecision::NoSync,
                        SyncDecision::Source { .. } | SyncDecision::Target { .. }
                    )
                    | (
                        SyncDecision::Source { .. } | SyncDecision::Target { .. },
                        SyncDecision::NoSync
                    )
            ),
            "sides disagree: {:?} / {:?}, nodes {:?}",
            d0,
            d1,
            self.nodes
        );
        prop_assert!(
            !matches!(d0, SyncDecision::Refuse(Refusal::Unrelated)),
            "unrelated: {:?}",
            self.nodes
        );
        if exactly_one_new && self.nodes.iter().all(|n| n.disk == DiskState::UpToDate) {
            // Only one side moved on: it is the source, bitmap-based, unless a Primary
            // would have to become target.
            let writer = usize::from(self.nodes[1].new_generation);
            let want = [
                SyncDecision::Source { full: false },
                SyncDecision::Target { full: false },
            ];
            let got = [hs[writer].decision, hs[1 - writer].decision];
            let refused_target =
                hs[1 - writer].decision == SyncDecision::Refuse(Refusal::PrimaryWouldBeTarget);
            prop_assert!(
                got == want || refused_target,
                "one-sided change: {:?}, nodes {:?}",
                got,
                self.nodes
            );
        }
        if self.nodes[0].new_generation && self.nodes[1].new_generation {
            prop_assert!(
                hs[0].handlers.contains(&Handler::InitialSplitBrain)
                    || hs[0].comparison.hg.abs() == 100,
                "both moved on but no split brain: {:?}",
                hs[0]
            );
        }
        // Each side's record of the other is what the other sent in P_UUIDS (before fix-ups).
        let sent = [self.nodes[0].gens, self.nodes[1].gens];
        for i in 0..2 {
            let peer_gens = sent[1 - i];
            let n = &mut self.nodes[i];
            let mut record = peer_gens;
            hs[i].comparison.apply_fixups(&mut n.gens, &mut record);
            n.record = record;
            if hs[i].demote {
                crate::generation::on_demote(&mut n.gens);
                n.role = Role::Secondary;
            }
        }
        let source = match (d0, d1) {
            (SyncDecision::Source { .. }, SyncDecision::Target { .. }) => 0,
            (SyncDecision::Target { .. }, SyncDecision::Source { .. }) => 1,
            (SyncDecision::NoSync, SyncDecision::NoSync) => {
                self.connected = true;
                return Ok(());
            }
            _ => return Ok(()),
        };
        let target = 1 - source;
        let random = self.random();
        let sync_uuid = source_sync_uuid(&mut self.nodes[source].gens, random);
        if matches!(op, Op::ConnectLoseSyncUuid) {
            return Ok(());
        }
        let role = self.nodes[target].role;
        target_sync_uuid_received(&mut self.nodes[target].gens, sync_uuid, role);
        self.nodes[target].disk = DiskState::Inconsistent;
        // The target's own changes are being discarded from here on.
        self.nodes[target].new_generation = false;
        if matches!(op, Op::ConnectInterrupted) {
            return Ok(());
        }
        let t = &mut self.nodes[target];
        resync_finished_target(&mut t.gens, &mut t.record, role);
        t.disk = DiskState::UpToDate;
        if matches!(op, Op::ConnectSourceMissesEnd) {
            // The data is in sync; only the source's identifiers lag behind.
            for n in &mut self.nodes {
                n.changed_blocks = 0;
                n.new_generation = false;
            }
            return Ok(());
        }
        let s = &mut self.nodes[source];
        resync_finished_source(&mut s.gens, &mut s.record);
        let (a, b) = (self.nodes[0].gens, self.nodes[1].gens);
        let m = |x: Generations| {
            g(
                x.current & !1,
                x.bitmap & !1,
                x.history[0] & !1,
                x.history[1] & !1,
            )
        };
        prop_assert_eq!(m(a), m(b), "identifiers differ after a full resync");
        prop_assert_eq!(compare(&CompareInput::new(a, b)).hg, 0);
        for n in &mut self.nodes {
            n.changed_blocks = 0;
            n.new_generation = false;
        }
        self.connected = true;
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Two nodes run random timelines (disconnects, promotions, writes, resyncs that complete
    /// or break at the three points DRBD repairs). Whenever they connect: the two handshakes
    /// agree on the direction, the data is never "unrelated", a one-sided change makes that
    /// side the bitmap-based source, two-sided changes are a split brain, and after a complete
    /// resync both hold the same identifiers.
    #[test]
    fn simulated_pair(ops in proptest::collection::vec(op(), 1..40), p0 in 0usize..7, p1 in 0usize..5, p2 in 0usize..3) {
        let zero = [AfterSb::Disconnect, AfterSb::DiscardYoungerPrimary, AfterSb::DiscardOlderPrimary,
            AfterSb::DiscardZeroChanges, AfterSb::DiscardLeastChanges, AfterSb::DiscardLocal, AfterSb::DiscardRemote];
        let one = [AfterSb::Disconnect, AfterSb::Consensus, AfterSb::DiscardSecondary, AfterSb::Violently,
            AfterSb::CallHelper];
        let two = [AfterSb::Disconnect, AfterSb::Violently, AfterSb::CallHelper];
        let policies = Policies {
            after_sb_0pri: zero[p0],
            after_sb_1pri: one[p1],
            after_sb_2pri: two[p2],
            ..Policies::default()
        };
        let mut sim = Sim::new(policies);
        for op in ops {
            sim.run(op)?;
        }
    }
}
