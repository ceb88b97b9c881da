//! A deterministic simulation of two rdbd nodes built from `rdbd-replicator`'s sans-I/O core.
//!
//! Everything runs on one thread from one seeded RNG ([`rand::rngs::StdRng`]) and a virtual
//! clock: an event queue ordered by (time in ms, sequence number). A node is the
//! [`rdbd_replicator::state::NodeState`] machine plus the driver pieces a daemon has: a
//! [`rdbd_replicator::transfer_log::TransferLog`], the peer's epoch counter, a bitmap, an
//! activity log, resync planning ([`rdbd_replicator::resync::plan`]) and a [`disk::SimDisk`].
//! The generation identifiers and the sync handshake run inside the state machine.
//!
//! - [`disk`]: the disk with its volatile cache and the meta-data.
//! - [`net`]: connections with delays, connection-level loss, partitions.
//! - [`node`]: a node's driver: performing actions, handling messages.
//! - [`ops`]: the client (writes and flushes), random faults and the operator.
//! - [`check`]: the ghost model (what must be readable where) and the invariants.
//!
//! [`run_seed`] runs one seed and returns the failure (with the trace tail) if an invariant
//! broke.

pub mod check;
pub mod disk;
pub mod net;
pub mod node;
pub mod ops;

use std::collections::{BTreeMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdbd_replicator::state::{NetFailure, State, StateError};
use rdbd_replicator::uuid_compare::Generations;
use rdbd_types::{Protocol, Role};

use check::Ghost;
use node::SimNode;

/// Blocks per device.
pub const BLOCKS: usize = 16;
/// Blocks per activity-log extent.
pub const AL_EXTENT_BLOCKS: usize = 4;
/// Active extents before the least recently used one is evicted.
pub const AL_EXTENTS: usize = 2;
/// How many trace lines a failure shows (`RDBD_SIM_TRACE=N` changes it).
pub const TRACE_TAIL: usize = 60;

/// A bug the driver can be told to have, to prove the checker notices it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Protocol C completes a write when it is sent, not on the peer's P_WRITE_ACK.
    AckProtocolCEarly,
    /// The secondary answers P_BARRIER without flushing its disk.
    NoFlushOnBarrier,
    /// Requests in the transfer log are not set out of sync when the connection is lost.
    ForgetTransferLogOnLoss,
}

/// One run's parameters.
#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    /// The seed.
    pub seed: u64,
    /// The protocol; `None`: chosen by the seed.
    pub protocol: Option<Protocol>,
    /// A bug to inject.
    pub bug: Option<Bug>,
    /// Virtual time with faults and client I/O, then the system must heal.
    pub run_ms: u64,
    /// Random faults (and lost messages, cache write-back); off for scripted scenarios.
    pub faults: bool,
    /// The random client; off for scripted scenarios.
    pub client: bool,
}

impl SimConfig {
    /// The defaults for `seed`.
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            protocol: None,
            bug: None,
            run_ms: 1500,
            faults: true,
            client: true,
        }
    }
}

/// A message between the nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// P_UUIDS.
    Uuids {
        /// Identifiers.
        gens: Generations,
        /// UUID flags.
        flags: u64,
        /// Bits set in the sender's bitmap.
        weight: u64,
    },
    /// P_STATE.
    State(State),
    /// P_STATE_CHG_REQ for the sender's role.
    StateReq(Role),
    /// P_STATE_CHG_REPLY.
    StateReply(Result<(), StateError>),
    /// P_DATA.
    Data {
        /// Block.
        block: usize,
        /// Write id.
        value: u64,
        /// The transfer log's id.
        block_id: u64,
    },
    /// P_RECV_ACK.
    RecvAck(u64),
    /// P_WRITE_ACK.
    WriteAck(u64),
    /// P_BARRIER.
    Barrier(u32),
    /// P_BARRIER_ACK.
    BarrierAck(u32, u32),
    /// P_OUT_OF_SYNC.
    OutOfSync(usize),
    /// The bitmap (P_BITMAP, whole).
    Bitmap(Vec<bool>),
    /// P_SYNC_UUID.
    SyncUuid(u64),
    /// P_RS_DATA_REQUEST for one block.
    RsRequest(usize),
    /// P_RS_DATA_REPLY.
    RsData(usize, u64),
    /// P_RS_WRITE_ACK.
    RsAck(usize),
}

/// A scheduled event.
#[derive(Debug, Clone)]
pub enum Ev {
    /// A message arrives.
    Deliver {
        /// Receiver.
        to: usize,
        /// Connection.
        conn: u64,
        /// The message.
        msg: Msg,
    },
    /// An endpoint notices its connection broke.
    NetFailure {
        /// The node.
        node: usize,
        /// The connection.
        conn: u64,
        /// How.
        kind: NetFailure,
    },
    /// The driver finished closing the sockets.
    ConnectionClosed {
        /// The node.
        node: usize,
        /// Its incarnation.
        inc: u64,
    },
    /// Try to connect.
    ConnectAttempt {
        /// The node.
        node: usize,
        /// Its incarnation.
        inc: u64,
    },
    /// Restart a crashed node.
    Restart {
        /// The node.
        node: usize,
    },
    /// The resync pump of a SyncTarget.
    ResyncTick {
        /// The node.
        node: usize,
        /// Its incarnation.
        inc: u64,
    },
    /// `connect` after an admin disconnect.
    Reconnect {
        /// The node.
        node: usize,
        /// Its incarnation.
        inc: u64,
    },
    /// The client's next operation.
    ClientTick,
    /// The next random fault.
    Fault,
    /// A drive writes back a cached block.
    Writeback,
    /// The operator looks at StandAlone nodes.
    Operator,
}

/// The simulated world.
pub struct World {
    /// Parameters.
    pub cfg: SimConfig,
    /// The replication protocol.
    pub protocol: Protocol,
    /// Virtual time, ms.
    pub now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    /// The one source of randomness.
    pub rng: StdRng,
    /// The network.
    pub net: net::SimNet,
    /// The two nodes.
    pub nodes: [SimNode; 2],
    /// What must hold.
    pub ghost: Ghost,
    trace: VecDeque<String>,
    trace_tail: usize,
    /// Keep a trace (off for speed; a failing seed is replayed with it on).
    pub tracing: bool,
    /// Also trace every completed write and flush (`RDBD_SIM_DEBUG`).
    pub debug: bool,
    /// The first invariant violation.
    pub failure: Option<String>,
    /// The last write id handed out.
    pub next_write_id: u64,
    /// Faults and client I/O stopped; the system must converge.
    pub healing: bool,
    /// Events processed.
    pub events: u64,
}

/// A failed run.
#[derive(Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// What broke, then the trace tail.
    pub report: String,
}

impl World {
    /// A world for `cfg`: two nodes with just-created meta-data, connected, node 0 Primary.
    pub fn new(cfg: SimConfig) -> World {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let protocol = cfg.protocol.unwrap_or_else(|| match rng.gen_range(0..3) {
            0 => Protocol::A,
            1 => Protocol::B,
            _ => Protocol::C,
        });
        let nodes = [SimNode::new(0, rng.gen()), SimNode::new(1, rng.gen())];
        World {
            cfg,
            protocol,
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            rng,
            net: net::SimNet::default(),
            nodes,
            ghost: Ghost::new(BLOCKS),
            trace: VecDeque::new(),
            trace_tail: std::env::var("RDBD_SIM_TRACE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(TRACE_TAIL),
            tracing: false,
            debug: false,
            failure: None,
            next_write_id: 0,
            healing: false,
            events: 0,
        }
    }

    /// Schedules `ev` after `delay_ms`.
    pub fn schedule(&mut self, delay_ms: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((self.now + delay_ms, self.seq), ev);
    }

    /// Adds a trace line.
    pub fn trace(&mut self, line: String) {
        if !self.tracing {
            return;
        }
        if self.trace.len() >= self.trace_tail {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>6} {line}", self.now));
    }

    /// Records the first invariant violation.
    pub fn fail(&mut self, what: String) {
        if self.failure.is_none() {
            let line = format!("VIOLATION: {what}");
            self.trace(line);
            self.failure = Some(what);
        }
    }

    /// Whether messages are on their way.
    pub fn messages_in_flight(&self) -> bool {
        self.queue.values().any(|e| matches!(e, Ev::Deliver { .. }))
    }

    fn report(&self) -> String {
        let mut s = format!(
            "{}\nprotocol {}, t={} ms, {} events; last {} trace lines:\n",
            self.failure.as_deref().unwrap_or("no failure"),
            self.protocol,
            self.now,
            self.events,
            self.trace.len()
        );
        for l in &self.trace {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// Processes one event; `false` when the queue is empty.
    pub fn step_event(&mut self) -> bool {
        let Some(((t, _), ev)) = self.queue.pop_first() else {
            return false;
        };
        self.now = t;
        self.events += 1;
        self.handle(ev);
        if self.failure.is_none() {
            self.check_always();
        }
        true
    }

    /// Runs events until `done` holds (true) or the clock passes `until_ms` (false).
    pub fn run_until(&mut self, until_ms: u64, done: impl Fn(&World) -> bool) -> bool {
        while !done(self) {
            if self.failure.is_some()
                || self
                    .queue
                    .first_key_value()
                    .is_none_or(|((t, _), _)| *t > until_ms)
            {
                return false;
            }
            self.step_event();
        }
        true
    }

    fn run(&mut self) {
        self.start();
        let deadline_ms = self.cfg.run_ms + 8000;
        while self.failure.is_none() {
            let Some(((t, _), ev)) = self.queue.pop_first() else {
                break;
            };
            self.now = t;
            if !self.healing && t >= self.cfg.run_ms {
                self.begin_healing();
            }
            if t > deadline_ms {
                self.fail(format!(
                    "did not converge within {} ms after the faults stopped: {}",
                    deadline_ms - self.cfg.run_ms,
                    self.describe()
                ));
                break;
            }
            self.events += 1;
            self.handle(ev);
            if self.failure.is_none() {
                self.check_always();
            }
            if self.healing && self.converged() {
                self.check_final();
                break;
            }
        }
    }

    /// One line about both nodes.
    pub fn describe(&self) -> String {
        let d = |n: &SimNode| {
            if !n.alive {
                return format!("n{} down", n.id);
            }
            let s = n.sm.state();
            format!(
                "n{} {}/{} {}/{} {}",
                n.id, s.role, s.peer, s.disk, s.pdsk, s.conn
            )
        };
        format!("{}; {}", d(&self.nodes[0]), d(&self.nodes[1]))
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { to, conn, msg } => {
                if self.net.arrives(conn, self.now)
                    && self.nodes[to].alive
                    && self.nodes[to].conn == Some(conn)
                {
                    self.deliver(to, msg);
                }
            }
            Ev::NetFailure { node, conn, kind } => {
                if self.nodes[node].alive && self.nodes[node].conn == Some(conn) {
                    self.trace(format!("n{node} notices the connection broke: {kind:?}"));
                    self.step(node, rdbd_replicator::state::Event::NetFailure(kind));
                }
            }
            Ev::ConnectionClosed { node, inc } => {
                if self.nodes[node].alive && self.nodes[node].inc == inc {
                    self.step(node, rdbd_replicator::state::Event::ConnectionClosed);
                }
            }
            Ev::ConnectAttempt { node, inc } => self.connect_attempt(node, inc),
            Ev::Restart { node } => self.restart(node),
            Ev::ResyncTick { node, inc } => self.resync_tick(node, inc),
            Ev::Reconnect { node, inc } => {
                if self.nodes[node].alive && self.nodes[node].inc == inc {
                    self.admin_connect(node, false);
                }
            }
            Ev::ClientTick => self.client_tick(),
            Ev::Fault => self.fault(),
            Ev::Writeback => {
                let n = self.rng.gen_range(0..2);
                let mut rng = StdRng::seed_from_u64(self.rng.gen());
                self.nodes[n].disk.writeback_one(&mut rng);
                if !self.healing {
                    let d = self.rng.gen_range(5..30);
                    self.schedule(d, Ev::Writeback);
                }
            }
            Ev::Operator => self.operator(),
        }
    }
}

/// Runs one seed; a failure is replayed with the trace on for the report.
pub fn run_seed(cfg: SimConfig) -> Result<World, Failure> {
    match run_once(cfg, false) {
        Ok(w) => Ok(w),
        Err(first) => match run_once(cfg, true) {
            Err(f) => Err(f),
            Ok(_) => Err(Failure {
                seed: cfg.seed,
                report: format!(
                    "{}\n(the replay with tracing did not fail: nondeterminism)",
                    first.report
                ),
            }),
        },
    }
}

fn run_once(cfg: SimConfig, tracing: bool) -> Result<World, Failure> {
    let mut w = World::new(cfg);
    w.tracing = tracing;
    w.debug = tracing && std::env::var("RDBD_SIM_DEBUG").is_ok();
    w.run();
    if w.failure.is_none() && !(w.healing && w.converged()) {
        let what = format!("the run ended without converging: {}", w.describe());
        w.fail(what);
    }
    if w.failure.is_some() {
        return Err(Failure {
            seed: cfg.seed,
            report: w.report(),
        });
    }
    Ok(w)
}
