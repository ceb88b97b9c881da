//! The client, the random faults and the operator.
//!
//! - Client: writes one block at a time per block (a new write to a block waits until the
//!   previous one completed, as a file system does), with increasing write ids as data, and
//!   sometimes a flush; always to the Primary, which it holds open.
//! - Faults: partitions, connection drops, crashes (with a restart later), failover (demote
//!   the Primary, promote the other; back if refused), promotions of the other node during a
//!   partition (split brain), forced promotions, `secondary` while the device is open (must be
//!   refused), admin disconnect/connect, `outdate`, promotions of nodes without UpToDate data.
//! - Operator: reconnects StandAlone nodes; after a split brain the Secondary (or node 1) is
//!   reconnected with `--discard-my-data`.
//! - After `run_ms` the faults and the client stop, the partition heals, crashed nodes restart,
//!   and the pair must converge: Connected, both UpToDate, nothing in flight.

use rand::Rng;
use rdbd_replicator::state::{Action, Event, Request, StateError};
use rdbd_replicator::sync_handshake::Refusal;
use rdbd_types::{ConnState, DiskState, Protocol, Role};

use super::node::Replication;
use super::{Bug, Ev, Msg, World, BLOCKS};

impl World {
    /// Starts both nodes, connects them, makes node 0 Primary (forced: the initial sync).
    pub fn start(&mut self) {
        self.restart(0);
        self.restart(1);
        self.promote(0, true);
        if self.cfg.client {
            self.schedule(5, Ev::ClientTick);
        }
        if self.cfg.faults {
            self.schedule(50, Ev::Fault);
            self.schedule(10, Ev::Writeback);
        }
        self.schedule(25, Ev::Operator);
    }

    /// `primary [--force]` on `n`; returns whether it was not refused (it may be pending).
    pub fn promote(&mut self, n: usize, force: bool) -> bool {
        if !self.nodes[n].alive {
            return false;
        }
        self.ghost.last_force[n] = force;
        let out = self.step(n, Event::Promote { force });
        !out.iter().any(|a| matches!(a, Action::Refused { .. }))
    }

    /// `secondary` on `n` after the client closed the device. The client closes only after
    /// its writes completed, and the driver demotes only once the transfer log is empty (every
    /// write barrier-acked or set out of sync while still Primary): DRBD 8.4 waits for the
    /// acks but not for the barrier acks ("FIXME also wait for all pending P_BARRIER_ACK?"),
    /// and a connection lost after the demotion would leave out-of-sync blocks behind a
    /// generation that did not change (no resync at the next handshake).
    pub fn demote(&mut self, n: usize) -> bool {
        let busy = self.ghost.in_flight.values().any(|&p| p == n)
            || self.nodes[n].tl.as_ref().is_some_and(|t| !t.is_empty());
        if busy {
            self.idle_barrier(n);
            return false;
        }
        if self.nodes[n].open {
            self.nodes[n].open = false;
            self.step(n, Event::OpenCount(0));
        }
        let out = self.step(n, Event::Demote);
        out.contains(&Action::Completed(Request::Demote))
    }

    /// `connect [--discard-my-data]`.
    pub fn admin_connect(&mut self, n: usize, discard: bool) {
        self.nodes[n].reconnect_pending = false;
        self.nodes[n].last_refusal = None;
        self.ghost.discard[n] = discard;
        if discard {
            self.trace(format!("n{n} connect --discard-my-data"));
        }
        self.step(
            n,
            Event::Connect {
                discard_my_data: discard,
            },
        );
    }

    fn primaries(&self) -> Vec<usize> {
        (0..2)
            .filter(|&n| self.role_of(n) == Some(Role::Primary))
            .collect()
    }

    /// A node the operator would promote: alive, not a connected SyncTarget (application
    /// writes on a SyncTarget racing its resync are not modelled).
    fn promotable(&self, n: usize) -> bool {
        let s = self.nodes[n].sm.state();
        self.nodes[n].alive && !(s.conn >= ConnState::Connected && s.disk < DiskState::UpToDate)
    }

    /// The client's next operation.
    pub fn client_tick(&mut self) {
        if self.healing {
            return;
        }
        let d = self.rng.gen_range(1..8);
        self.schedule(d, Ev::ClientTick);
        let ps = self.primaries();
        if ps.is_empty() {
            return;
        }
        let p = ps[self.rng.gen_range(0..ps.len())];
        if !self.nodes[p].open {
            self.nodes[p].open = true;
            self.step(p, Event::OpenCount(1));
        }
        match self.rng.gen_range(0..20) {
            0 => self.client_flush(p),
            1..=3 => self.idle_barrier(p),
            _ => self.client_write(p),
        }
    }

    /// The sender closes an idle epoch (DRBD sends a barrier when it has nothing else to do).
    pub fn idle_barrier(&mut self, p: usize) {
        if self.replication_of(p) != Replication::Remote {
            return;
        }
        if let Some(nr) = self.nodes[p].tl.as_mut().and_then(|t| t.close_epoch()) {
            self.send(p, Msg::Barrier(nr));
        }
    }

    fn client_write(&mut self, p: usize) {
        let free: Vec<usize> = (0..BLOCKS)
            .filter(|b| !self.ghost.in_flight.contains_key(b))
            .collect();
        if free.is_empty() {
            return;
        }
        let block = free[self.rng.gen_range(0..free.len())];
        self.write_block(p, block);
    }

    /// The client writes the next write id to `block` on Primary `p`; returns the id.
    pub fn write_block(&mut self, p: usize, block: usize) -> u64 {
        self.next_write_id += 1;
        let w = self.next_write_id;
        self.ghost.in_flight.insert(block, p);
        self.nodes[p].activate_extent(block);
        self.nodes[p].disk.write(block, w, false);
        self.ghost_local_write(p);
        match self.replication_of(p) {
            Replication::Local => {
                self.nodes[p].set_bit(block, true);
                self.complete_write(p, block, w, false);
            }
            Replication::OutOfSync => {
                self.nodes[p].set_bit(block, true);
                self.send(p, Msg::OutOfSync(block));
                self.complete_write(p, block, w, false);
            }
            Replication::Remote => {
                let now = self.now;
                let tl = self.nodes[p].tl.as_mut().expect("replicating: a log");
                let s = tl.submit(block as u64 * 8, 4096, now, w);
                if let Some(nr) = s.barrier_before {
                    self.send(p, Msg::Barrier(nr));
                }
                self.send(
                    p,
                    Msg::Data {
                        block,
                        value: w,
                        block_id: s.block_id,
                    },
                );
                let early = self.protocol == Protocol::A
                    || (self.protocol == Protocol::C
                        && self.cfg.bug == Some(Bug::AckProtocolCEarly));
                if early {
                    let waiter = self.nodes[p]
                        .tl
                        .as_mut()
                        .and_then(|t| t.take_waiter(s.block_id));
                    if let Some(w) = waiter {
                        // The buggy driver claims the peer has it.
                        let claims_peer = self.protocol == Protocol::C;
                        self.complete_write(p, block, w, claims_peer);
                    }
                }
            }
        }
        w
    }

    fn client_flush(&mut self, p: usize) {
        self.nodes[p].disk.flush();
        let remote = self.replication_of(p) == Replication::Remote;
        let id = self.ghost_new_flush(p, remote);
        if !remote {
            self.complete_flush(id, false);
            return;
        }
        let tl = self.nodes[p].tl.as_mut().expect("replicating: a log");
        let wait_for = match tl.close_epoch() {
            Some(nr) => {
                self.send(p, Msg::Barrier(nr));
                Some(nr)
            }
            None => tl.last_closed_epoch(),
        };
        match wait_for {
            Some(e) => self.nodes[p].flush_waiters.push((e, id)),
            None => self.complete_flush(id, true),
        }
    }

    /// The next random fault.
    pub fn fault(&mut self) {
        if self.healing {
            return;
        }
        let d = self.rng.gen_range(10..120);
        self.schedule(d, Ev::Fault);
        let n = self.rng.gen_range(0..2);
        let m = World::peer_of(n);
        match self.rng.gen_range(0..100) {
            0..=11 => {
                let dur = self.rng.gen_range(20..300);
                self.trace(format!("partition for {dur} ms"));
                self.partition(dur);
            }
            12..=23 => {
                self.trace("connection drop".into());
                self.break_all();
            }
            24..=31 => {
                if self.nodes[n].alive {
                    self.crash(n);
                }
            }
            32..=51 => self.failover(),
            52..=57 => {
                if self.role_of(n) == Some(Role::Secondary) && self.promotable(n) {
                    self.trace(format!("n{n} promoted by a second cluster manager"));
                    self.promote(n, false);
                }
            }
            58..=60 => {
                let s = self.nodes[n].sm.state();
                if self.nodes[n].alive && s.role == Role::Secondary && s.conn < ConnState::Connected
                {
                    self.trace(format!("n{n} primary --force"));
                    self.promote(n, true);
                }
            }
            61..=65 => {
                if self.role_of(n) == Some(Role::Primary) && self.nodes[n].open {
                    let out = self.step(n, Event::Demote);
                    let refused = out.contains(&Action::Refused {
                        request: Request::Demote,
                        error: StateError::DeviceInUse,
                    });
                    if !refused {
                        self.fail(format!(
                            "n{n} demoted while a client holds it open: {out:?}"
                        ));
                    }
                }
            }
            66..=71 => {
                let s = self.nodes[n].sm.state();
                if self.nodes[n].alive && s.conn != ConnState::StandAlone {
                    self.trace(format!("n{n} disconnect"));
                    self.step(n, Event::Disconnect);
                    self.nodes[n].reconnect_pending = true;
                    let (d, inc) = (self.rng.gen_range(20..200), self.nodes[n].inc);
                    self.schedule(d, Ev::Reconnect { node: n, inc });
                }
            }
            72..=75 => {
                if self.role_of(n) == Some(Role::Secondary) {
                    self.step(n, Event::Outdate);
                }
            }
            76..=79 => {
                let s = self.nodes[n].sm.state();
                if self.nodes[n].alive
                    && s.role == Role::Secondary
                    && s.disk < DiskState::UpToDate
                    && s.conn < ConnState::Connected
                {
                    self.trace(format!("n{n} primary (without UpToDate data)"));
                    self.promote(n, false);
                }
            }
            _ => {
                let _ = m;
            }
        }
    }

    /// Cuts the network for `dur_ms` (connections break, attempts fail).
    pub fn partition(&mut self, dur_ms: u64) {
        self.net.partitioned_until = self.net.partitioned_until.max(self.now + dur_ms);
        self.break_all();
    }

    fn break_all(&mut self) {
        let conns: Vec<u64> = (0..2).filter_map(|i| self.nodes[i].conn).collect();
        for c in conns {
            self.break_connection(c);
        }
    }

    /// A cluster manager's failover: a planned switchover while both are connected and in
    /// sync, or a promotion of the survivor when the Primary is down (it knows: fencing).
    fn failover(&mut self) {
        let ps = self.primaries();
        let in_sync = |w: &World, n: usize| {
            let s = w.nodes[n].sm.state();
            w.nodes[n].alive
                && s.conn == ConnState::Connected
                && s.disk == DiskState::UpToDate
                && s.pdsk == DiskState::UpToDate
        };
        match ps[..] {
            [] => {
                let n = self.rng.gen_range(0..2);
                let m = World::peer_of(n);
                let candidate = if !self.nodes[m].alive || in_sync(self, n) {
                    Some(n)
                } else if !self.nodes[n].alive {
                    Some(m)
                } else {
                    None
                };
                if let Some(x) = candidate.filter(|&x| self.promotable(x)) {
                    if self.promote(x, false) {
                        self.trace(format!("failover: n{x} promoted"));
                    }
                }
            }
            [p] => {
                let q = World::peer_of(p);
                if !(in_sync(self, p) && in_sync(self, q)) || self.nodes[q].sm.promotion_pending() {
                    return;
                }
                if !self.demote(p) {
                    return;
                }
                self.trace(format!("switchover n{p} -> n{q}"));
                if !self.promote(q, false) {
                    self.promote(p, false);
                }
            }
            _ => {}
        }
    }

    /// Reconnects StandAlone nodes; resolves split brains.
    pub fn operator(&mut self) {
        self.schedule(25, Ev::Operator);
        for n in 0..2 {
            let node = &self.nodes[n];
            if !node.alive
                || node.reconnect_pending
                || node.sm.state().conn != ConnState::StandAlone
            {
                continue;
            }
            let me = node.sm.state().role;
            // Who gives up its data: the one with the worse disk, then the Secondary, then n1.
            let rank = |w: &World, x: usize| {
                let s = w.nodes[x].sm.state();
                let disk = match s.disk {
                    DiskState::UpToDate => 3,
                    DiskState::Consistent => 2,
                    DiskState::Outdated => 1,
                    _ => 0,
                };
                (disk, u8::from(s.role == Role::Primary), u8::from(x == 0))
            };
            let victim = rank(self, n) < rank(self, World::peer_of(n));
            match node.last_refusal {
                Some(Refusal::SplitBrain) => {
                    if victim && me == Role::Primary && !self.demote(n) {
                        continue;
                    }
                    self.admin_connect(n, victim);
                }
                Some(Refusal::Unrelated) if victim => {
                    if me == Role::Primary && !self.demote(n) {
                        continue;
                    }
                    self.recreate_md(n);
                }
                Some(Refusal::PrimaryWouldBeTarget) => {
                    // DRBD refused ("I shall become SyncTarget, but I am primary!"); the
                    // operator gives this node's newer writes up.
                    if self.demote(n) {
                        self.admin_connect(n, false);
                        self.ghost.discard[n] = true;
                    }
                }
                _ => self.admin_connect(n, false),
            }
        }
        if self.healing {
            for p in 0..2 {
                if self.nodes[p].alive {
                    self.idle_barrier(p);
                }
            }
        }
    }

    /// `down`, `create-md` (a just-created identifier, everything out of sync), `up`: what an
    /// operator does about "Unrelated data".
    fn recreate_md(&mut self, n: usize) {
        self.trace(format!("n{n} create-md"));
        let node = &mut self.nodes[n];
        node.disk.flush();
        node.alive = false;
        node.inc += 1;
        node.tl = None;
        node.resync = None;
        node.flush_waiters.clear();
        node.open = false;
        node.meta.gens = rdbd_replicator::uuid_compare::Generations {
            current: rdbd_replicator::uuid_compare::UUID_JUST_CREATED,
            ..Default::default()
        };
        node.meta.md_flags = 0;
        node.meta.al.clear();
        node.bitmap.iter_mut().for_each(|b| *b = true);
        node.write_meta();
        let conn = node.conn.take();
        self.ghost.discard[n] = true;
        if let Some(c) = conn {
            self.break_connection(c);
        }
        self.schedule(1, Ev::Restart { node: n });
    }

    /// Faults and client stop; everything heals.
    pub fn begin_healing(&mut self) {
        self.healing = true;
        self.trace("faults stop, healing".into());
        self.net.partitioned_until = self.now;
        for n in 0..2 {
            if !self.nodes[n].alive {
                self.schedule(1, Ev::Restart { node: n });
            }
        }
    }

    /// Both Connected and UpToDate, nothing in flight.
    pub fn converged(&self) -> bool {
        let quiet = |n: usize| {
            let x = &self.nodes[n];
            let s = x.sm.state();
            x.alive
                && s.conn == ConnState::Connected
                && s.disk == DiskState::UpToDate
                && s.pdsk == DiskState::UpToDate
                && x.tl.as_ref().is_none_or(|t| t.is_empty())
                && !x.sm.promotion_pending()
        };
        quiet(0) && quiet(1) && !self.messages_in_flight()
    }
}
