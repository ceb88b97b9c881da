//! The ghost model and the invariants.
//!
//! The ghost knows what the client was promised:
//! - `floor[n][b]`: the newest write to block `b` that must be readable on node `n` if it is
//!   promoted (without `--force`) or at the end. A write completed to the client raises the
//!   Primary's floor; under protocol C, when the Primary was Connected to an UpToDate peer at
//!   the time, also the peer's.
//! - `flushed[n][b]`: the part of the floor a completed client flush made durable (on the
//!   peer only when the flush's barrier was acknowledged by a peer that was UpToDate).
//! - a crash lowers the floor to `flushed` (unflushed writes may be lost, as with any disk);
//!   a node that becomes SyncTarget takes the source's floor (the resync makes it a copy) and
//!   has nothing durable until the resync ends (then the meta-data write flushes it all);
//!   a forced promotion takes what the node has.
//! - `wrote_alone[n]`: `n` completed a write while not connected, since the last time a node
//!   saw both disks UpToDate while connected (then the data was the same on both).
//!
//! The DRBD 8.4 gap: a SyncSource that loses the connection after its SyncTarget finished
//! but before it learned so keeps its bitmap identifier, so it starts no new generation
//! when it loses the peer nor when it is promoted again. If the former SyncTarget (now
//! UpToDate) is promoted while they are apart and both write, the next handshake makes the
//! former source SyncTarget (rule 50/70) instead of detecting split brain; only rr-conflict
//! stops it while it is still Primary. `missed_end` marks such a source; these handshakes are
//! counted (`Stats::known_gap`) instead of failing.
//!
//! Invariants (checked after every event, at every promotion and handshake, and at the end):
//! 1. never both Primary while both are Connected (no allow-two-primaries);
//! 2. a promotion without `--force` needs UpToDate data or a connection to an UpToDate peer
//!    (so a disconnected SyncTarget is never promoted unless forced);
//! 3. after a promotion without `--force` (failover), every write in the floor is readable;
//! 4. when both sides wrote alone since their common generation, the handshake never
//!    resolves it silently (default after-sb policies: disconnect) unless a side was told
//!    `--discard-my-data`; a side that wrote alone never becomes SyncTarget of a side that did
//!    not (unless discarding or forced);
//! 5. when the first side decides on a resync (the other still negotiating, nothing in flight),
//!    every block that differs is set in one of the two bitmaps;
//! 6. `secondary` is refused while a client holds the device open (checked in `ops`);
//! 7. at the end (healed, resynced, quiet) both disks are equal, every floor is readable, and
//!    both have the same current generation.

use std::collections::BTreeMap;

use rdbd_replicator::state::State;
use rdbd_types::{ConnState, DiskState, Protocol, Role};

use super::World;

/// A client flush in progress.
#[derive(Debug, Clone)]
pub struct FlushRec {
    node: usize,
    own: Vec<u64>,
    peer: Option<Vec<u64>>,
}

/// Counters over a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Writes completed to the client.
    pub writes_acked: u64,
    /// Promotions without --force whose floor was checked.
    pub promotions_checked: u64,
    /// Handshakes that refused a split brain.
    pub split_brains: u64,
    /// Resyncs started (SyncTarget side).
    pub resyncs: u64,
    /// Handshakes that lost writes made alone through the DRBD 8.4 gap described in the
    /// module documentation (not counted as failures).
    pub known_gap: u64,
    /// Coverage checks done at a handshake.
    pub coverage_checks: u64,
    /// Crashes.
    pub crashes: u64,
}

/// What the client was promised.
#[derive(Debug, Clone)]
pub struct Ghost {
    /// Must be readable per node.
    pub floor: [Vec<u64>; 2],
    /// Durable per node.
    pub flushed: [Vec<u64>; 2],
    /// Wrote while not connected since the last common UpToDate state.
    pub wrote_alone: [bool; 2],
    /// When it last wrote alone.
    pub alone_at: [u64; 2],
    /// Was promoted with --force since then.
    pub forced: [bool; 2],
    /// Connected with --discard-my-data (or the operator otherwise gave the data up).
    pub discard: [bool; 2],
    /// Was SyncSource when its SyncTarget finished, and lost the connection before it
    /// learned (the DRBD 8.4 gap).
    pub missed_end: [bool; 2],
    /// The last promotion request of each node was forced.
    pub last_force: [bool; 2],
    /// Blocks with a write in flight, and on which node.
    pub in_flight: BTreeMap<usize, usize>,
    flushes: BTreeMap<u64, FlushRec>,
    next_flush: u64,
    /// Counters.
    pub stats: Stats,
}

fn raise(to: &mut [u64], from: &[u64]) {
    for (t, f) in to.iter_mut().zip(from) {
        *t = (*t).max(*f);
    }
}

impl Ghost {
    /// Nothing promised yet.
    pub fn new(blocks: usize) -> Ghost {
        Ghost {
            floor: [vec![0; blocks], vec![0; blocks]],
            flushed: [vec![0; blocks], vec![0; blocks]],
            wrote_alone: [false; 2],
            alone_at: [0; 2],
            forced: [false; 2],
            discard: [false; 2],
            missed_end: [false; 2],
            last_force: [false; 2],
            in_flight: BTreeMap::new(),
            flushes: BTreeMap::new(),
            next_flush: 0,
            stats: Stats::default(),
        }
    }

    /// Node `n` crashed.
    pub fn on_crash(&mut self, n: usize) {
        self.floor[n] = self.flushed[n].clone();
        self.in_flight.retain(|_, &mut p| p != n);
        self.stats.crashes += 1;
    }
}

impl World {
    /// A write of `w` to `block` completed to the client on Primary `p`; `via_peer`: the
    /// driver says the peer acknowledged it as the protocol requires.
    pub fn complete_write(&mut self, p: usize, block: usize, w: u64, via_peer: bool) {
        if self.debug {
            self.trace(format!(
                "n{p} completes write #{w} to block {block} (via peer: {via_peer})"
            ));
        }
        let g = &mut self.ghost;
        g.in_flight.remove(&block);
        g.stats.writes_acked += 1;
        g.floor[p][block] = g.floor[p][block].max(w);
        let s = self.nodes[p].sm.state();
        if via_peer
            && self.protocol == Protocol::C
            && s.conn == ConnState::Connected
            && s.pdsk == DiskState::UpToDate
        {
            // (An ack that arrives after the peer crashed promises nothing: the crash took the
            // write from its cache, and its floor was already lowered.)
            let q = World::peer_of(p);
            if self.nodes[q].alive {
                g.floor[q][block] = g.floor[q][block].max(w);
            }
        }
    }

    /// A client write executed on `p`'s disk.
    pub fn ghost_local_write(&mut self, p: usize) {
        if self.nodes[p].sm.state().conn < ConnState::Connected {
            self.ghost.wrote_alone[p] = true;
            self.ghost.alone_at[p] = self.now;
        }
    }

    /// A client flush starts on `p`; `remote`: it is replicated.
    pub fn ghost_new_flush(&mut self, p: usize, remote: bool) -> u64 {
        let q = World::peer_of(p);
        let s = self.nodes[p].sm.state();
        let peer_ok = remote && s.conn == ConnState::Connected && s.pdsk == DiskState::UpToDate;
        let g = &mut self.ghost;
        g.next_flush += 1;
        let rec = FlushRec {
            node: p,
            own: g.floor[p].clone(),
            peer: peer_ok.then(|| g.floor[q].clone()),
        };
        g.flushes.insert(g.next_flush, rec);
        g.next_flush
    }

    /// A client flush completed; `via_peer`: its barrier was acknowledged.
    pub fn complete_flush(&mut self, id: u64, via_peer: bool) {
        let g = &mut self.ghost;
        let Some(rec) = g.flushes.remove(&id) else {
            return;
        };
        if self.debug {
            let line = format!(
                "flush {id} of n{} completes (via peer: {via_peer}): {:?}",
                rec.node, rec.own
            );
            self.trace(line);
        }
        let g = &mut self.ghost;
        raise(&mut g.flushed[rec.node], &rec.own);
        if let (true, Some(peer)) = (via_peer, rec.peer) {
            raise(&mut g.flushed[World::peer_of(rec.node)], &peer);
        }
    }

    /// Hooks on every state change of node `n`.
    pub fn on_state_changed(&mut self, n: usize, old: State, new: State) {
        let m = World::peer_of(n);
        if old.role != Role::Primary && new.role == Role::Primary {
            self.check_promotion(n, old, new);
        }
        if old.conn == ConnState::WFReportParams && new.conn >= ConnState::Connected {
            self.on_handshake(n, Some(new.conn));
        }
        if new.conn == ConnState::WFBitMapT && old.conn != ConnState::WFBitMapT {
            // It will hold the source's data; until the resync ends nothing on it is durable
            // as a whole (it is Inconsistent).
            self.ghost.floor[n] = self.ghost.floor[m].clone();
            self.ghost.flushed[n] = vec![0; self.ghost.flushed[n].len()];
            self.ghost.stats.resyncs += 1;
            // Its data becomes a copy of the source's: what it wrote alone is given up
            // (the handshake above checked that this was allowed).
            self.ghost.wrote_alone[n] = false;
        }
        if old.conn == ConnState::SyncTarget && new.conn == ConnState::Connected {
            // The meta-data write at the end pre-flushes the resynced data.
            self.ghost.flushed[n] = self.ghost.floor[n].clone();
            // The source still holds its bitmap identifier (also when it crashed: it restarts
            // with it) until it learns that the resync finished.
            self.ghost.missed_end[m] = self.nodes[m].sm.gens().bitmap != 0;
        }
        if old.conn == ConnState::SyncSource && new.conn == ConnState::Connected {
            self.ghost.missed_end[n] = false;
        }
        let in_sync = |s: &State| {
            s.conn == ConnState::Connected
                && s.disk == DiskState::UpToDate
                && s.pdsk == DiskState::UpToDate
        };
        if in_sync(&new) && !in_sync(&old) {
            // The data is the same on both now: a new common generation. Writes made alone
            // before this connection was established were resolved by its handshake.
            let opened = self.nodes[n]
                .conn
                .and_then(|c| self.net.links.get(&c))
                .map_or(0, |l| l.opened_at);
            for x in [n, m] {
                if self.ghost.alone_at[x] < opened {
                    self.ghost.wrote_alone[x] = false;
                    self.ghost.forced[x] = false;
                    self.ghost.discard[x] = false;
                }
            }
            self.ghost.missed_end[n] = false;
        }
    }

    fn check_promotion(&mut self, n: usize, old: State, new: State) {
        if self.ghost.last_force[n] {
            self.ghost.forced[n] = true;
            let contents = self.nodes[n].disk.contents();
            for (f, c) in self.ghost.flushed[n].iter_mut().zip(&contents) {
                *f = (*f).min(*c);
            }
            self.ghost.floor[n] = contents;
            return;
        }
        let legal = old.disk == DiskState::UpToDate
            || (old.conn >= ConnState::Connected && old.pdsk == DiskState::UpToDate);
        if !legal {
            self.fail(format!(
                "n{n} became Primary without --force and without UpToDate data: {} {}/{}",
                old.conn, old.disk, old.pdsk
            ));
            return;
        }
        if new.disk == DiskState::UpToDate {
            self.ghost.stats.promotions_checked += 1;
            self.check_floor(n, "after promotion");
        }
    }

    fn check_floor(&mut self, n: usize, when: &str) {
        for b in 0..self.ghost.floor[n].len() {
            let (have, want) = (self.nodes[n].disk.read(b), self.ghost.floor[n][b]);
            if have < want {
                self.fail(format!(
                    "acknowledged write lost: n{n} {when} reads write #{have} in block {b}, \
                     but write #{want} was completed to the client"
                ));
                return;
            }
        }
    }

    /// A handshake ended on `n`: `Some(state)` it goes on, `None` it refused.
    pub fn on_handshake(&mut self, n: usize, decided: Option<ConnState>) {
        let m = World::peer_of(n);
        let g = &self.ghost;
        let Some(conn) = decided else {
            self.ghost.stats.split_brains += 1;
            return;
        };
        let discard = g.discard[n] || g.discard[m];
        let gap = g.missed_end[n] || g.missed_end[m];
        let silent_loss = (g.wrote_alone[n] && g.wrote_alone[m] && !discard)
            || (conn == ConnState::WFBitMapT
                && g.wrote_alone[n]
                && !g.wrote_alone[m]
                && !g.discard[n]
                && !g.forced[n]
                && !g.forced[m]);
        if silent_loss && gap {
            self.ghost.stats.known_gap += 1;
            self.trace(format!(
                "n{n}: writes made alone are lost through the known DRBD 8.4 gap"
            ));
            return;
        }
        if g.wrote_alone[n] && g.wrote_alone[m] && !discard {
            self.fail(format!(
                "split brain not detected: both nodes wrote alone, n{n} went on to {conn}"
            ));
            return;
        }
        if conn == ConnState::WFBitMapT
            && g.wrote_alone[n]
            && !g.wrote_alone[m]
            && !g.discard[n]
            && !g.forced[n]
            && !g.forced[m]
        {
            self.fail(format!(
                "n{n} wrote alone but becomes SyncTarget of n{m}, which did not"
            ));
            return;
        }
        if conn == ConnState::Connected {
            self.check_coverage_at_handshake(n);
        }
    }

    /// Invariant 5, when `n` decides first.
    pub fn check_coverage_at_handshake(&mut self, n: usize) {
        let m = World::peer_of(n);
        if !self.nodes[m].alive || self.nodes[m].sm.state().conn != ConnState::WFReportParams {
            return;
        }
        self.ghost.stats.coverage_checks += 1;
        for b in 0..self.nodes[n].bitmap.len() {
            let (x, y) = (self.nodes[n].disk.read(b), self.nodes[m].disk.read(b));
            if x != y && !self.nodes[n].bitmap[b] && !self.nodes[m].bitmap[b] {
                self.fail(format!(
                    "block {b} differs (n{n} #{x}, n{m} #{y}) but neither bitmap has it"
                ));
                return;
            }
        }
    }

    /// Invariants checked after every event.
    pub fn check_always(&mut self) {
        let both = |f: &dyn Fn(&State) -> bool| {
            (0..2).all(|i| self.nodes[i].alive && f(&self.nodes[i].sm.state()))
        };
        if both(&|s| s.role == Role::Primary && s.conn >= ConnState::Connected) {
            self.fail("two Primaries while connected".into());
            return;
        }
        if both(&|s| {
            s.conn == ConnState::Connected
                && s.disk == DiskState::UpToDate
                && s.pdsk == DiskState::UpToDate
        }) {
            self.ghost.wrote_alone = [false; 2];
            self.ghost.forced = [false; 2];
        }
    }

    /// Invariant 7.
    pub fn check_final(&mut self) {
        let (a, b) = (self.nodes[0].disk.contents(), self.nodes[1].disk.contents());
        if a != b {
            self.fail(format!(
                "after heal and resync the disks differ:\n  n0 {a:?}\n  n1 {b:?}"
            ));
            return;
        }
        for n in 0..2 {
            self.check_floor(n, "at the end");
        }
        let (g0, g1) = (self.nodes[0].sm.gens(), self.nodes[1].sm.gens());
        if g0.current & !1 != g1.current & !1 {
            self.fail(format!(
                "after resync the generations differ: {g0:x?} / {g1:x?}"
            ));
        }
    }
}
