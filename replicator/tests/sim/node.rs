//! A node's driver: what a daemon does around the state machine, against the simulated disk
//! and network. It performs the machine's actions (meta-data writes, sends, closing the
//! connection, setting the transfer log's requests out of sync, the bitmap exchange, the
//! resync) and turns the peer's messages into events or data-path work.

use rand::Rng;
use rdbd_replicator::resync::plan::{plan_resync_requests, BLOCK_BYTES, SECTORS_PER_BLOCK};
use rdbd_replicator::state::{Action, Config, Event, NetFailure, NodeState, PeerParams};
use rdbd_replicator::sync_handshake::Refusal;
use rdbd_replicator::transfer_log::{AckKind, PeerEpoch, TransferLog};
use rdbd_replicator::uuid_compare::{Generations, UUID_JUST_CREATED};
use rdbd_types::{ConnState, DiskState, Protocol, Role};

use super::disk::{SimDisk, SimMeta};
use super::net::Sent;
use super::{Bug, Ev, Msg, World, AL_EXTENTS, AL_EXTENT_BLOCKS, BLOCKS};

/// The SyncTarget's resync pump.
#[derive(Debug, Clone, Default)]
pub struct TargetResync {
    /// `bm_resync_fo`.
    pub cursor: u64,
    /// Requested blocks without a reply yet.
    pub requested: Vec<usize>,
}

/// One node: the state machine and its driver state.
pub struct SimNode {
    /// 0 or 1.
    pub id: usize,
    /// Not crashed.
    pub alive: bool,
    /// Bumped at every crash, so that timers of an old life are ignored.
    pub inc: u64,
    /// The state machine.
    pub sm: NodeState,
    /// Data.
    pub disk: SimDisk,
    /// Persistent meta-data (the bitmap in it is kept equal to `bitmap`).
    pub meta: SimMeta,
    /// Out-of-sync blocks.
    pub bitmap: Vec<bool>,
    /// The transfer log of the current connection.
    pub tl: Option<TransferLog<u64>>,
    /// The receiving side's epoch.
    pub epoch: PeerEpoch,
    /// The connection this node uses.
    pub conn: Option<u64>,
    /// The peer's P_UUIDS of this connection.
    pub peer_uuids: Option<(Generations, u64, u64)>,
    /// The peer's bitmap, received before ours was sent.
    pub peer_bitmap: Option<Vec<bool>>,
    /// Ours was sent on this connection.
    pub bitmap_sent: bool,
    /// SyncTarget pump.
    pub resync: Option<TargetResync>,
    /// Flushes waiting for a barrier ack: (epoch, flush id).
    pub flush_waiters: Vec<(u32, u64)>,
    /// The client holds the device open.
    pub open: bool,
    /// The last handshake refusal.
    pub last_refusal: Option<Refusal>,
    /// The node was disconnected by the operator and will be reconnected by a timer.
    pub reconnect_pending: bool,
}

impl SimNode {
    /// A node whose meta-data was just created, not yet started.
    pub fn new(id: usize, uuid_seed: u64) -> SimNode {
        SimNode {
            id,
            alive: false,
            inc: 0,
            sm: NodeState::new(Config::default(), uuid_seed),
            disk: SimDisk::new(BLOCKS),
            meta: SimMeta {
                gens: Generations {
                    current: UUID_JUST_CREATED,
                    ..Generations::default()
                },
                md_flags: 0,
                bitmap: vec![false; BLOCKS],
                al: Vec::new(),
            },
            bitmap: vec![false; BLOCKS],
            tl: None,
            epoch: PeerEpoch::default(),
            conn: None,
            peer_uuids: None,
            peer_bitmap: None,
            bitmap_sent: false,
            resync: None,
            flush_waiters: Vec::new(),
            open: false,
            last_refusal: None,
            reconnect_pending: false,
        }
    }

    /// Bits set.
    pub fn weight(&self) -> u64 {
        self.bitmap.iter().filter(|&&b| b).count() as u64
    }

    /// A meta-data write: pre-flush the data, then the meta-data is stable.
    pub fn write_meta(&mut self) {
        self.disk.flush();
        self.meta.bitmap = self.bitmap.clone();
    }

    /// Sets or clears a bit, persistently.
    pub fn set_bit(&mut self, block: usize, out_of_sync: bool) {
        if self.bitmap[block] != out_of_sync {
            self.bitmap[block] = out_of_sync;
            self.write_meta();
        }
    }

    /// Makes `block`'s extent active before a write to it; evicts only when nothing is in
    /// the transfer log (every earlier write is on both disks or set out of sync).
    pub fn activate_extent(&mut self, block: usize) {
        let ext = block / AL_EXTENT_BLOCKS;
        if let Some(i) = self.meta.al.iter().position(|&e| e == ext) {
            let e = self.meta.al.remove(i);
            self.meta.al.push(e);
            return;
        }
        let quiet = self.tl.as_ref().is_none_or(|t| t.is_empty());
        if self.meta.al.len() >= AL_EXTENTS && quiet {
            self.meta.al.remove(0);
        }
        self.meta.al.push(ext);
        self.write_meta();
    }
}

fn words(bits: &[bool]) -> Vec<u64> {
    let mut w = vec![0u64; bits.len().div_ceil(64)];
    for (i, &b) in bits.iter().enumerate() {
        if b {
            w[i / 64] |= 1 << (i % 64);
        }
    }
    w
}

impl World {
    /// The other node.
    pub fn peer_of(n: usize) -> usize {
        1 - n
    }

    /// Feeds an event to node `n`'s state machine and performs the actions.
    pub fn step(&mut self, n: usize, event: Event) -> Vec<Action> {
        let before = self.nodes[n].sm.state();
        let actions = self.nodes[n].sm.step(event);
        let after = self.nodes[n].sm.state();
        if before != after && self.tracing {
            self.trace(format!(
                "n{n} {event:?}: {}/{} {}/{} {} -> {}/{} {}/{} {}",
                before.role,
                before.peer,
                before.disk,
                before.pdsk,
                before.conn,
                after.role,
                after.peer,
                after.disk,
                after.pdsk,
                after.conn
            ));
        }
        for a in &actions {
            self.perform(n, a.clone());
        }
        actions
    }

    fn perform(&mut self, n: usize, action: Action) {
        match action {
            Action::WriteMeta { gens, md_flags } => {
                let node = &mut self.nodes[n];
                node.meta.gens = gens;
                node.meta.md_flags = md_flags;
                node.write_meta();
            }
            Action::StateChanged { old, new, .. } => self.on_state_changed(n, old, new),
            Action::StartConnecting => {
                let (d, inc) = (self.rng.gen_range(1..40), self.nodes[n].inc);
                self.schedule(d, Ev::ConnectAttempt { node: n, inc });
            }
            Action::CloseConnection => {
                if let Some(c) = self.nodes[n].conn.take() {
                    self.break_connection(c);
                }
                self.nodes[n].resync = None;
                let (d, inc) = (self.rng.gen_range(1..10), self.nodes[n].inc);
                self.schedule(d, Ev::ConnectionClosed { node: n, inc });
            }
            Action::SetOutOfSyncFromLog => self.transfer_log_lost(n),
            Action::SendUuids { gens, uuid_flags } => {
                let weight = self.nodes[n].weight();
                self.send(
                    n,
                    Msg::Uuids {
                        gens,
                        flags: uuid_flags,
                        weight,
                    },
                );
            }
            Action::SendState(s) => self.send(n, Msg::State(s)),
            Action::SendStateRequest { role } => self.send(n, Msg::StateReq(role)),
            Action::SendStateReply(r) => self.send(n, Msg::StateReply(r)),
            Action::SetAllOutOfSync => {
                let node = &mut self.nodes[n];
                node.bitmap.iter_mut().for_each(|b| *b = true);
                node.write_meta();
            }
            Action::ClearBitmap => {
                let node = &mut self.nodes[n];
                node.bitmap.iter_mut().for_each(|b| *b = false);
                node.write_meta();
            }
            Action::ExchangeBitmap => {
                self.check_coverage_at_handshake(n);
                let bm = self.nodes[n].bitmap.clone();
                self.send(n, Msg::Bitmap(bm));
                self.nodes[n].bitmap_sent = true;
                if let Some(peer) = self.nodes[n].peer_bitmap.take() {
                    self.merge_bitmap(n, peer);
                }
            }
            Action::SendSyncUuid(u) => self.send(n, Msg::SyncUuid(u)),
            Action::StartResync { source } => {
                if !source {
                    self.nodes[n].resync = Some(TargetResync::default());
                    let inc = self.nodes[n].inc;
                    self.schedule(1, Ev::ResyncTick { node: n, inc });
                }
            }
            Action::HandshakeRefused(r) => {
                self.trace(format!("n{n} handshake refused: {r:?}"));
                self.nodes[n].last_refusal = Some(r);
                self.on_handshake(n, None);
            }
            Action::RunHandler(h) => self.trace(format!("n{n} handler {}", h.name())),
            Action::Log(l) => {
                if l.contains("Split-Brain") || l.contains("new current") {
                    self.trace(format!("n{n} {l}"));
                }
            }
            Action::LogLine(l) => {
                if l.text.contains("Split-Brain") {
                    self.trace(format!("n{n} {}", l.text));
                }
            }
            Action::ConnectionRefused(e) => {
                self.trace(format!("n{n} connection refused: {e}"));
            }
            Action::Refused { .. } | Action::Completed(_) => {}
        }
    }

    /// Sends on `n`'s connection; a drop breaks it.
    pub fn send(&mut self, n: usize, msg: Msg) {
        let Some(c) = self.nodes[n].conn else {
            return;
        };
        let delay = self.rng.gen_range(1..15);
        let drop = self.cfg.faults && !self.healing && self.rng.gen_ratio(1, 400);
        match self.net.send(c, n, self.now, delay, drop) {
            Sent::At(t) => {
                let d = t - self.now;
                self.schedule(
                    d,
                    Ev::Deliver {
                        to: World::peer_of(n),
                        conn: c,
                        msg,
                    },
                );
            }
            Sent::Lost => {}
            Sent::Broke => {
                self.trace(format!("connection {c} breaks (lost message from n{n})"));
                self.notify_break(c);
            }
        }
    }

    /// Breaks connection `c`; both endpoints notice later.
    pub fn break_connection(&mut self, c: u64) {
        if self.net.break_link(c, self.now) {
            self.notify_break(c);
        }
    }

    fn notify_break(&mut self, c: u64) {
        for node in 0..2 {
            if self.nodes[node].conn == Some(c) {
                let kind = match self.rng.gen_range(0..3) {
                    0 => NetFailure::Timeout,
                    1 => NetFailure::BrokenPipe,
                    _ => NetFailure::NetworkFailure,
                };
                let d = self.rng.gen_range(1..60);
                self.schedule(
                    d,
                    Ev::NetFailure {
                        node,
                        conn: c,
                        kind,
                    },
                );
            }
        }
    }

    /// Both nodes in WFConnection and reachable: the sockets come up.
    pub fn connect_attempt(&mut self, n: usize, inc: u64) {
        let m = World::peer_of(n);
        let me = &self.nodes[n];
        if !me.alive || me.inc != inc || me.sm.state().conn != ConnState::WFConnection {
            return;
        }
        if me.conn.is_some() {
            return;
        }
        let other = &self.nodes[m];
        let ready = other.alive
            && other.conn.is_none()
            && other.sm.state().conn == ConnState::WFConnection
            && self.net.reachable(self.now);
        if !ready {
            let d = self.rng.gen_range(10..60);
            self.schedule(d, Ev::ConnectAttempt { node: n, inc });
            return;
        }
        let c = self.net.open(self.now);
        let resolve = self.rng.gen_bool(0.5);
        self.trace(format!("connection {c} up"));
        for node in [n, m] {
            let x = &mut self.nodes[node];
            x.conn = Some(c);
            x.tl = Some(TransferLog::new(self.protocol, 4, 1));
            x.epoch = PeerEpoch::default();
            x.peer_uuids = None;
            x.peer_bitmap = None;
            x.bitmap_sent = false;
            x.resync = None;
        }
        for (node, rc) in [(n, resolve), (m, !resolve)] {
            self.step(
                node,
                Event::SocketUp {
                    resolve_conflicts: rc,
                },
            );
        }
    }

    /// SIGKILL: volatile state and the disk cache are gone.
    pub fn crash(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.disk.crash();
        let line = format!("n{n} CRASH, stable data {:?}", node.disk.contents());
        self.trace(line);
        let node = &mut self.nodes[n];
        node.alive = false;
        node.inc += 1;
        node.disk.crash();
        node.tl = None;
        node.resync = None;
        node.flush_waiters.clear();
        node.open = false;
        let conn = node.conn.take();
        self.ghost.on_crash(n);
        if let Some(c) = conn {
            self.break_connection(c);
        }
        let d = self.rng.gen_range(30..400);
        self.schedule(d, Ev::Restart { node: n });
    }

    /// Starts a node: attach the meta-data (the activity log's extents go into the bitmap),
    /// then connect.
    pub fn restart(&mut self, n: usize) {
        if self.nodes[n].alive {
            return;
        }
        let seed = self.rng.gen();
        let node = &mut self.nodes[n];
        node.alive = true;
        node.sm = NodeState::new(Config::default(), seed);
        node.bitmap = node.meta.bitmap.clone();
        for ext in node.meta.al.clone() {
            for b in ext * AL_EXTENT_BLOCKS..(ext + 1) * AL_EXTENT_BLOCKS {
                node.bitmap[b] = true;
            }
        }
        node.write_meta();
        node.last_refusal = None;
        node.reconnect_pending = false;
        let (gens, md_flags) = (node.meta.gens, node.meta.md_flags);
        let line = format!(
            "n{n} starts, data {:?}, bitmap {:?}",
            self.nodes[n].disk.contents(),
            self.nodes[n].weight()
        );
        self.trace(line);
        self.step(n, Event::Attach { gens, md_flags });
        self.step(
            n,
            Event::Connect {
                discard_my_data: false,
            },
        );
    }

    fn transfer_log_lost(&mut self, n: usize) {
        let Some(mut tl) = self.nodes[n].tl.take() else {
            return;
        };
        let mut lost = tl.clear();
        lost.sort_by_key(|d| (d.sector, d.waiter));
        for d in lost {
            let block = (d.sector / SECTORS_PER_BLOCK) as usize;
            if self.cfg.bug != Some(Bug::ForgetTransferLogOnLoss) {
                self.nodes[n].set_bit(block, true);
            }
            if let Some(w) = d.waiter {
                self.complete_write(n, block, w, false);
            }
        }
        for (_, f) in std::mem::take(&mut self.nodes[n].flush_waiters) {
            self.complete_flush(f, false);
        }
    }

    fn merge_bitmap(&mut self, n: usize, peer: Vec<bool>) {
        let node = &mut self.nodes[n];
        for (b, p) in node.bitmap.iter_mut().zip(peer) {
            *b |= p;
        }
        node.write_meta();
        self.step(n, Event::BitmapExchanged);
    }

    /// A message arrived on `n`'s connection.
    pub fn deliver(&mut self, n: usize, msg: Msg) {
        let state = self.nodes[n].sm.state();
        match msg {
            Msg::Uuids {
                gens,
                flags,
                weight,
            } => {
                self.nodes[n].peer_uuids = Some((gens, flags, weight));
            }
            Msg::State(s) => {
                if state.conn == ConnState::WFReportParams {
                    if let Some((gens, flags, weight)) = self.nodes[n].peer_uuids {
                        let own = self.nodes[n].weight();
                        self.step(
                            n,
                            Event::PeerParams(PeerParams {
                                gens,
                                uuid_flags: flags,
                                role: s.role,
                                disk: s.disk,
                                peer_changed_blocks: weight,
                                own_changed_blocks: own,
                                agreed_pro_version: rdbd_replicator::uuid_compare::PRO_VERSION_MAX,
                                agreed_features: rdbd_replicator::uuid_compare::DRBD_FF_WSAME,
                            }),
                        );
                    }
                } else {
                    self.step(
                        n,
                        Event::PeerState {
                            role: s.role,
                            disk: s.disk,
                            conn: s.conn,
                        },
                    );
                }
            }
            Msg::StateReq(role) => {
                self.step(n, Event::PeerStateRequest { role });
            }
            Msg::StateReply(r) => {
                self.step(n, Event::StateReply(r));
            }
            Msg::Data {
                block,
                value,
                block_id,
            } => {
                let node = &mut self.nodes[n];
                node.disk.write(block, value, false);
                node.epoch.on_write();
                match self.protocol {
                    Protocol::A => {}
                    Protocol::B => self.send(n, Msg::RecvAck(block_id)),
                    Protocol::C => self.send(n, Msg::WriteAck(block_id)),
                }
            }
            Msg::RecvAck(id) | Msg::WriteAck(id) => {
                let kind = if matches!(msg, Msg::RecvAck(_)) {
                    AckKind::Recv
                } else {
                    AckKind::Write
                };
                let done = self.nodes[n].tl.as_mut().and_then(|t| t.on_ack(kind, id));
                if let Some(d) = done {
                    let block = (d.sector / SECTORS_PER_BLOCK) as usize;
                    if let Some(w) = d.waiter {
                        self.complete_write(n, block, w, true);
                    }
                }
            }
            Msg::Barrier(nr) => {
                if self.cfg.bug != Some(Bug::NoFlushOnBarrier) {
                    self.nodes[n].disk.flush();
                }
                let size = self.nodes[n].epoch.on_barrier();
                self.send(n, Msg::BarrierAck(nr, size));
            }
            Msg::BarrierAck(nr, size) => self.barrier_ack(n, nr, size),
            Msg::OutOfSync(b) => self.nodes[n].set_bit(b, true),
            Msg::Bitmap(bm) => {
                if self.nodes[n].bitmap_sent {
                    self.merge_bitmap(n, bm);
                } else {
                    self.nodes[n].peer_bitmap = Some(bm);
                }
            }
            Msg::SyncUuid(u) => {
                self.step(n, Event::SyncUuid(u));
            }
            Msg::RsRequest(b) => {
                let v = self.nodes[n].disk.read(b);
                self.send(n, Msg::RsData(b, v));
            }
            Msg::RsData(b, v) => {
                let node = &mut self.nodes[n];
                node.disk.write(b, v, false);
                node.set_bit(b, false);
                if let Some(r) = node.resync.as_mut() {
                    r.requested.retain(|&x| x != b);
                }
                self.send(n, Msg::RsAck(b));
            }
            Msg::RsAck(b) => {
                // The source finishes on its own when every block was acknowledged.
                self.nodes[n].set_bit(b, false);
                let conn = self.nodes[n].sm.state().conn;
                if conn == ConnState::SyncSource && self.nodes[n].weight() == 0 {
                    self.step(n, Event::ResyncDone);
                }
            }
        }
    }

    fn barrier_ack(&mut self, n: usize, nr: u32, size: u32) {
        let Some(tl) = self.nodes[n].tl.as_mut() else {
            return;
        };
        match tl.on_barrier_ack(nr, size) {
            Ok(left) => {
                for d in left {
                    let block = (d.sector / SECTORS_PER_BLOCK) as usize;
                    if d.failed {
                        self.nodes[n].set_bit(block, true);
                    }
                    if let Some(w) = d.waiter {
                        self.complete_write(n, block, w, false);
                    }
                }
                let (done, waiting): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut self.nodes[n].flush_waiters)
                        .into_iter()
                        .partition(|&(e, _)| e <= nr);
                self.nodes[n].flush_waiters = waiting;
                for (_, f) in done {
                    self.complete_flush(f, true);
                }
            }
            Err(e) => {
                self.fail(format!("n{n} transfer log: {e}"));
            }
        }
    }

    /// The SyncTarget requests the next blocks, or finishes.
    pub fn resync_tick(&mut self, n: usize, inc: u64) {
        let node = &mut self.nodes[n];
        if !node.alive || node.inc != inc || node.sm.state().conn != ConnState::SyncTarget {
            return;
        }
        let Some(mut r) = node.resync.take() else {
            return;
        };
        let w = words(&node.bitmap);
        let bits = BLOCKS as u64;
        let plan = plan_resync_requests(
            &w,
            bits,
            bits * SECTORS_PER_BLOCK,
            &mut r.cursor,
            4,
            BLOCK_BYTES,
            |_| false,
        );
        let mut to_send = Vec::new();
        for req in &plan.requests {
            let first = (req.sector / SECTORS_PER_BLOCK) as usize;
            let count = (req.size_bytes / BLOCK_BYTES) as usize;
            for b in first..first + count {
                if !r.requested.contains(&b) {
                    r.requested.push(b);
                    to_send.push(b);
                }
            }
        }
        let mut finished = false;
        if plan.end_of_bitmap && r.requested.is_empty() {
            if node.weight() == 0 {
                finished = true;
            } else {
                r.cursor = 0;
            }
        }
        node.resync = Some(r);
        for b in to_send {
            self.send(n, Msg::RsRequest(b));
        }
        if finished {
            self.nodes[n].resync = None;
            self.step(n, Event::ResyncDone);
            return;
        }
        self.schedule(3, Ev::ResyncTick { node: n, inc });
    }

    /// Roles, disks and connection of node `n` as a short string.
    pub fn role_of(&self, n: usize) -> Option<Role> {
        self.nodes[n].alive.then(|| self.nodes[n].sm.state().role)
    }

    /// Whether `n` replicates writes now, and how.
    pub fn replication_of(&self, n: usize) -> Replication {
        let s = self.nodes[n].sm.state();
        if self.nodes[n].tl.is_none() || s.conn < ConnState::Connected {
            Replication::Local
        } else if s.conn == ConnState::WFBitMapS {
            Replication::OutOfSync
        } else if s.pdsk >= DiskState::Inconsistent {
            Replication::Remote
        } else {
            Replication::Local
        }
    }
}

/// Where a write goes besides the local disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    /// Nowhere: set out of sync.
    Local,
    /// Only a P_OUT_OF_SYNC (the bitmap was already sent).
    OutOfSync,
    /// P_DATA.
    Remote,
}
