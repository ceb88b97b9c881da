//! The daemon: one loop that receives heartbeats, advances the membership state machine,
//! asks the policy what to do with each group and hands starts/stops to the group
//! workers; plus the control socket, the probes and the stonith runner.
//!
//! Every decision is logged once, with its reason, when it changes.

pub mod control;
pub mod net;
pub mod probes;
pub mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::error::{HaError, Result};
use crate::group::command::run as run_command;
use crate::group::shell::ShellRunner;
use crate::group::{GroupManager, GroupState, Timeouts};
use crate::membership::{Event, Liveness, Membership};
use crate::policy::{self, Decision, LocalGroup, LocalNode, PeerGroup};
use crate::proto::{self, Flags, Heartbeat, Key, Phase, ReplayFilter, Verdict};
use control::{Pending, Request, Response};

/// How often the loop runs.
const TICK: Duration = Duration::from_millis(20);

struct Slot {
    name: String,
    preferred_here: bool,
    state: GroupState,
    holds: bool,
    busy: bool,
    requested: bool,
    disks: std::result::Result<(), String>,
    replication_connected: bool,
    failures: u32,
    last_decision: String,
    last_event: String,
    eligible_since_ms: Option<u64>,
    tx: Sender<worker::Command>,
}

/// The running daemon's state (owned by the main loop).
struct Daemon {
    config: Config,
    node: String,
    peer: String,
    key: Key,
    generation: u64,
    seq: u64,
    started: Instant,
    membership: Membership,
    replay: ReplayFilter,
    slots: Vec<Slot>,
    standby: bool,
    maintenance: Arc<AtomicBool>,
    fencing: bool,
    last_fence_ms: Option<u64>,
    last_sent_masks: Option<(u32, u32, u32, u8)>,
    rejected: u64,
    own_ignored: u64,
}

fn next_generation(run_dir: &std::path::Path) -> u64 {
    let path = run_dir.join("generation");
    let stored: u64 = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let g = stored.saturating_add(1).max(clock);
    if let Err(e) = std::fs::write(&path, g.to_string()) {
        warn!(path = %path.display(), error = %e, "cannot store the generation");
    }
    g
}

fn bit(mask: u32, i: usize) -> bool {
    mask & (1u32 << i) != 0
}

impl Daemon {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn local_node(&self) -> LocalNode {
        LocalNode {
            maintenance: self.maintenance.load(Ordering::Relaxed),
            // Standby prefers the peer while it is alive; it does not stop a failover.
            standby: self.standby && self.membership.liveness() == Liveness::Alive,
            ping_ok: self.membership.ping_ok(),
            can_fence: !self.config.stonith.is_empty(),
            auto_failback: self.config.auto_failback,
        }
    }

    fn eligibility(&self, s: &Slot) -> std::result::Result<(), String> {
        let failed = s.state == GroupState::Failed;
        policy::eligible(&self.local_node(), failed, s.disks.is_ok()).map_err(|e| match &s.disks {
            Err(d) if e.contains("rdbd disk") => d.clone(),
            _ => e,
        })
    }

    fn masks(&self) -> (u32, u32, u32) {
        let mut m = (0, 0, 0);
        for (i, s) in self.slots.iter().enumerate() {
            if s.holds {
                m.0 |= 1 << i;
            }
            if self.eligibility(s).is_ok() {
                m.1 |= 1 << i;
            }
            if s.requested {
                m.2 |= 1 << i;
            }
        }
        m
    }

    fn flags(&self) -> Flags {
        let mut f = 0;
        if self.membership.ping_ok() {
            f |= Flags::PING_OK;
        }
        if self.standby {
            f |= Flags::STANDBY;
        }
        if self.maintenance.load(Ordering::Relaxed) {
            f |= Flags::MAINTENANCE;
        }
        Flags(f)
    }

    fn heartbeat(&mut self, phase: Phase) -> Vec<u8> {
        self.seq += 1;
        let (holds_mask, eligible_mask, request_mask) = self.masks();
        let hb = Heartbeat {
            node: self.node.clone(),
            generation: self.generation,
            seq: self.seq,
            phase,
            flags: self.flags(),
            holds_mask,
            eligible_mask,
            request_mask,
        };
        self.last_sent_masks = Some((holds_mask, eligible_mask, request_mask, hb.flags.0));
        proto::encode(&hb, &self.key)
    }

    fn phase(&self) -> Phase {
        let now = self.now_ms();
        if self.membership.initdead_over(now) || self.membership.last().is_some() {
            Phase::Running
        } else {
            Phase::Starting
        }
    }

    fn on_datagram(&mut self, d: net::Datagram) {
        let link = format!("{}:{}", d.link, d.from);
        let hb = match proto::decode(&d.bytes, &self.key) {
            Ok(hb) => hb,
            Err(e) => {
                self.rejected += 1;
                warn!(from = %d.from, link = %d.link, error = %e, rejected_total = self.rejected, "ignored heartbeat packet");
                return;
            }
        };
        if hb.node == self.node {
            // Our own packet looped back (a broadcast, or multicast with loop on).
            self.own_ignored += 1;
            return;
        }
        if hb.node != self.peer {
            warn!(from = %d.from, node = %hb.node, "ignored heartbeat from a node not in the configuration");
            return;
        }
        match self.replay.check(&hb.node, hb.generation, hb.seq) {
            Verdict::Replay { newest } => {
                self.rejected += 1;
                warn!(from = %d.from, link = %d.link, node = %hb.node, generation = hb.generation, seq = hb.seq,
                      newest_generation = newest.0, newest_seq = newest.1,
                      "ignored replayed heartbeat (old generation or sequence number)");
                return;
            }
            Verdict::Duplicate => {
                // The same packet over another medium: that link works, nothing more.
                let events = self.membership.on_link_heard(self.now_ms(), &link);
                self.log_events(events);
                return;
            }
            Verdict::NewIncarnation | Verdict::Fresh => {}
        }
        let now = self.now_ms();
        let events = self.membership.on_heartbeat(now, &hb, &link);
        self.log_events(events);
    }

    fn log_events(&self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::PeerUp { reason } => info!(peer = %self.peer, %reason, "peer is alive"),
                Event::PeerRestarted { reason } => {
                    info!(peer = %self.peer, %reason, "peer restarted")
                }
                Event::PeerLate { silent_ms } => {
                    warn!(peer = %self.peer, silent_ms, "late heartbeat")
                }
                Event::PeerDead { reason } => warn!(peer = %self.peer, %reason, "peer is dead"),
                Event::PeerLeft => {
                    info!(peer = %self.peer, "peer left cleanly (released its groups)")
                }
                Event::LinkUp { link } => info!(%link, "link up"),
                Event::LinkDead { link } => warn!(%link, "link dead"),
                Event::PingChanged { reachable } => {
                    if reachable {
                        info!("a ping node is reachable")
                    } else {
                        warn!("no ping node reachable: this node will not take groups over")
                    }
                }
            }
        }
    }

    fn on_report(&mut self, r: worker::Report) {
        let Some(s) = self.slots.get_mut(r.group) else {
            return;
        };
        let was_holding = s.holds;
        s.state = r.state;
        s.holds = r.holds;
        s.failures = r.failures;
        if r.completes_command {
            s.busy = false;
            if r.state != GroupState::StopFailed
                && s.requested
                && (r.state == GroupState::Running || !r.holds)
            {
                s.requested = false;
            }
        }
        if r.state == GroupState::Running {
            s.requested = false;
        }
        match r.state {
            GroupState::StopFailed | GroupState::Failed => {
                error!(group = %s.name, event = %r.event, holds = r.holds, "group")
            }
            _ => info!(group = %s.name, event = %r.event, holds = r.holds, "group"),
        }
        s.last_event = r.event;
        if was_holding != s.holds {
            self.last_sent_masks = None; // announce at once
        }
    }

    fn peer_group(&self, i: usize, s: &Slot) -> PeerGroup {
        let last = self.membership.last();
        PeerGroup {
            liveness: self.membership.liveness(),
            holds: last.is_some_and(|h| bit(h.holds_mask, i)),
            eligible: last.is_some_and(|h| bit(h.eligible_mask, i)),
            requested: last.is_some_and(|h| bit(h.request_mask, i)),
            ping_ok: last.is_some_and(|h| h.flags.has(Flags::PING_OK)),
            replication_connected: s.replication_connected,
        }
    }

    fn decide_all(&mut self, fence_tx: &Sender<std::result::Result<(), String>>) {
        let now = self.now_ms();
        let node = self.local_node();
        let keepalive = self.config.timings.keepalive_ms;
        for i in 0..self.slots.len() {
            let eligible = self.eligibility(&self.slots[i]);
            let s = &self.slots[i];
            let me = LocalGroup {
                holds: s.holds,
                busy: s.busy,
                eligible: eligible.is_ok(),
                requested: s.requested,
                preferred_here: s.preferred_here,
            };
            let peer = self.peer_group(i, s);
            let mut decision = policy::decide(&node, &me, &peer);
            if s.state == GroupState::StopFailed {
                // Retrying by itself would loop; the resources' state is unknown.
                decision = Decision::Stay(
                    "a stop failed: resources may still run here; clean up by hand, then restart rdbd-ha".into(),
                );
            }
            if let (Decision::Stay(r), Err(why)) = (&decision, &eligible) {
                if r == "not eligible here" {
                    decision = Decision::Stay(format!("not eligible here: {why}"));
                }
            }
            // The peer must have heard that we became eligible before we act on its
            // (possibly stale) view, or both could start the group.
            if let Decision::Acquire(r) = &decision {
                let since = s.eligible_since_ms.unwrap_or(now);
                if peer.liveness == Liveness::Alive && now.saturating_sub(since) < 2 * keepalive {
                    decision = Decision::Stay(format!(
                        "{r}; waiting {} ms for the peer to hear we are eligible",
                        2 * keepalive
                    ));
                }
            }
            let text = match &decision {
                Decision::Acquire(r) => format!("acquire: {r}"),
                Decision::Release(r) => format!("release: {r}"),
                Decision::Fence(r) => format!("fence: {r}"),
                Decision::Stay(r) => format!("stay: {r}"),
            };
            let s = &mut self.slots[i];
            if text != s.last_decision {
                info!(group = %s.name, decision = %text, "decision");
                s.last_decision = text;
            }
            match decision {
                Decision::Acquire(_) => {
                    s.busy = true;
                    s.holds = true;
                    self.last_sent_masks = None;
                    let _ = s.tx.send(worker::Command::Start);
                }
                Decision::Release(_) => {
                    s.busy = true;
                    let _ = s.tx.send(worker::Command::Stop);
                }
                Decision::Fence(_) => {
                    let due = self
                        .last_fence_ms
                        .is_none_or(|t| now.saturating_sub(t) >= self.config.timings.deadtime_ms);
                    if !self.fencing && due {
                        self.fencing = true;
                        self.last_fence_ms = Some(now);
                        self.spawn_fence(fence_tx.clone());
                    }
                }
                Decision::Stay(_) => {}
            }
        }
    }

    fn spawn_fence(&self, tx: Sender<std::result::Result<(), String>>) {
        let argv: Vec<String> = self
            .config
            .stonith
            .iter()
            .map(|a| a.replace("{peer}", &self.peer))
            .collect();
        let env = vec![("RDBD_HA_PEER".to_string(), self.peer.clone())];
        let timeout = Duration::from_millis(self.config.stonith_timeout_ms);
        warn!(peer = %self.peer, command = %argv.join(" "), "fencing the peer (stonith)");
        let _ = std::thread::Builder::new()
            .name("stonith".into())
            .spawn(move || {
                let f = run_command(&argv, &env, timeout);
                let _ = tx.send(if f.success() {
                    Ok(())
                } else {
                    Err(f.describe())
                });
            });
    }

    fn status_json(&self) -> serde_json::Value {
        let now = self.now_ms();
        let last = self.membership.last();
        json!({
            "node": self.node,
            "generation": self.generation,
            "phase": format!("{:?}", self.phase()).to_lowercase(),
            "standby": self.standby,
            "maintenance": self.maintenance.load(Ordering::Relaxed),
            "ping_ok": self.membership.ping_ok(),
            "can_fence": !self.config.stonith.is_empty(),
            "auto_failback": self.config.auto_failback,
            "rejected_packets": self.rejected,
            "own_packets_ignored": self.own_ignored,
            "peer": {
                "name": self.peer,
                "liveness": format!("{:?}", self.membership.liveness()).to_lowercase(),
                "silent_ms": self.membership.silent_ms(now),
                "generation": last.map(|h| h.generation),
                "standby": last.map(|h| h.flags.has(Flags::STANDBY)),
                "maintenance": last.map(|h| h.flags.has(Flags::MAINTENANCE)),
                "links": self.membership.links().map(|(l, up)| json!({"link": l, "up": up})).collect::<Vec<_>>(),
            },
            "groups": self.slots.iter().enumerate().map(|(i, s)| {
                let p = self.peer_group(i, s);
                json!({
                    "name": s.name,
                    "state": s.state,
                    "holds": s.holds,
                    "busy": s.busy,
                    "preferred_here": s.preferred_here,
                    "eligible": self.eligibility(s).err().map_or("yes".to_string(), |e| format!("no: {e}")),
                    "requested": s.requested,
                    "failures": s.failures,
                    "peer_holds": p.holds,
                    "replication_connected": s.replication_connected,
                    "decision": s.last_decision,
                    "last_event": s.last_event,
                })
            }).collect::<Vec<_>>(),
        })
    }

    fn on_request(&mut self, req: Request) -> Response {
        let ok = |message: String| Response {
            ok: true,
            message,
            status: None,
        };
        match req {
            Request::Status => Response {
                ok: true,
                message: String::new(),
                status: Some(self.status_json()),
            },
            Request::Standby => {
                info!("operator: standby (hand the groups to the peer)");
                self.standby = true;
                for s in &mut self.slots {
                    s.requested = false;
                }
                ok("standby: groups go to the peer while it is alive and eligible".into())
            }
            Request::Takeover { group } => {
                if let Some(g) = &group {
                    if !self.slots.iter().any(|s| &s.name == g) {
                        return Response {
                            ok: false,
                            message: format!("no group named '{g}'"),
                            status: None,
                        };
                    }
                }
                info!(group = ?group, "operator: takeover");
                self.standby = false;
                for s in &mut self.slots {
                    if group.as_ref().is_none_or(|g| g == &s.name) {
                        let _ = s.tx.send(worker::Command::ClearFailed);
                        if s.state == GroupState::Failed {
                            s.state = GroupState::Stopped;
                        }
                        if !s.holds {
                            s.requested = true;
                        }
                    }
                }
                self.last_sent_masks = None;
                ok("takeover requested".into())
            }
            Request::Maintenance { on } => {
                info!(on, "operator: maintenance mode");
                self.maintenance.store(on, Ordering::Relaxed);
                ok(format!(
                    "maintenance {}",
                    if on {
                        "on: no decisions, no monitoring"
                    } else {
                        "off"
                    }
                ))
            }
        }
    }
}

/// Runs the daemon for node `node` until `stop` is set, then releases every group and
/// announces a clean leave.
pub fn run(config: Config, node: &str, stop: &AtomicBool) -> Result<()> {
    let local = config.local_node(node)?;
    let peer = config.nodes[1 - local].name.clone();
    std::fs::create_dir_all(&config.run_dir).map_err(|source| HaError::Io {
        what: format!("create run directory {}", config.run_dir.display()),
        error: source,
    })?;
    let key = Key {
        method: config.auth.method,
        index: config.auth.key_index,
        secret: config.secret()?,
    };
    if key.method == proto::AuthMethod::Crc {
        warn!("auth crc: heartbeats are NOT authenticated; anyone on the link can forge them");
    }
    if config.stonith.is_empty() {
        warn!(
            "no stonith command: this node will not take a group from a peer it cannot prove dead"
        );
    }
    let net = net::Net::open(&config, local)?;
    info!(node, peer = %peer, media = ?net.describe(), "rdbd-ha starting");
    let (dg_tx, dg_rx) = mpsc::channel();
    net.spawn_receivers(dg_tx)?;
    let (ctl_tx, ctl_rx) = mpsc::channel::<Pending>();
    control::spawn_server(&config.run_dir, ctl_tx)?;
    let (ping_tx, ping_rx) = mpsc::channel();
    probes::spawn_ping(
        config.ping_nodes.clone(),
        Duration::from_millis(config.ping_timeout_ms),
        Duration::from_millis(config.timings.keepalive_ms),
        ping_tx,
    );
    let (disk_tx, disk_rx) = mpsc::channel();
    probes::spawn_disks(
        &config,
        Duration::from_millis(config.timings.keepalive_ms.max(1000)),
        disk_tx,
    );
    let (rep_tx, rep_rx) = mpsc::channel();
    let maintenance = Arc::new(AtomicBool::new(false));
    let timeouts = Timeouts {
        start: Duration::from_millis(config.commands.start_timeout_ms),
        stop: Duration::from_millis(config.commands.stop_timeout_ms),
        status: Duration::from_millis(config.commands.status_timeout_ms),
    };
    let mut slots = Vec::new();
    for (i, g) in config.groups.iter().enumerate() {
        let (tx, rx) = mpsc::channel();
        let runner = ShellRunner::new(config.commands.clone(), &config.run_dir);
        let manager = GroupManager::new(
            &g.name,
            g.resources.clone(),
            timeouts,
            g.monitor_failures_max,
            runner,
        );
        let monitor =
            (g.monitor_interval_ms > 0).then(|| Duration::from_millis(g.monitor_interval_ms));
        worker::spawn(i, manager, monitor, maintenance.clone(), rx, rep_tx.clone());
        // Start from a known state: stops are idempotent.
        let _ = tx.send(worker::Command::Stop);
        info!(group = %g.name, "startup: stopping the group to start from a known state");
        slots.push(Slot {
            name: g.name.clone(),
            preferred_here: g.preferred_node == node,
            state: GroupState::Stopped,
            holds: true,
            busy: true,
            requested: false,
            disks: Err("rdbd state not read yet".into()),
            replication_connected: false,
            failures: 0,
            last_decision: String::new(),
            last_event: String::new(),
            eligible_since_ms: None,
            tx,
        });
    }
    // Wait for the startup stops before the first heartbeat: a peer must not see this
    // node as holding a group it is only cleaning up.
    let mut pending = slots.len();
    let mut startup_reports = Vec::new();
    while pending > 0 {
        match rep_rx.recv() {
            Ok(r) => {
                if r.completes_command {
                    pending -= 1;
                }
                startup_reports.push(r);
            }
            Err(_) => break,
        }
    }
    let timings = config.timings;
    let has_ping = !config.ping_nodes.is_empty();
    let mut d = Daemon {
        generation: next_generation(&config.run_dir),
        config,
        node: node.to_string(),
        peer,
        key,
        seq: 0,
        started: Instant::now(),
        membership: Membership::new(timings, 0, has_ping),
        replay: ReplayFilter::new(),
        slots,
        standby: false,
        maintenance,
        fencing: false,
        last_fence_ms: None,
        last_sent_masks: None,
        rejected: 0,
        own_ignored: 0,
    };
    for r in startup_reports {
        d.on_report(r);
    }
    let (fence_tx, fence_rx) = mpsc::channel();
    let mut next_send_ms = 0u64;
    loop {
        let loop_start = Instant::now();
        drain(&dg_rx, |dg| d.on_datagram(dg));
        let now = d.now_ms();
        let ev = d.membership.tick(now);
        d.log_events(ev);
        drain(&ping_rx, |ok| {
            let ev = d.membership.on_ping(ok);
            d.log_events(ev);
        });
        drain(&disk_rx, |r: probes::DiskReport| {
            if let Some(s) = d.slots.get_mut(r.group) {
                if s.disks != r.promotable {
                    match &r.promotable {
                        Ok(()) => info!(group = %s.name, "rdbd disks may be promoted"),
                        Err(e) => {
                            warn!(group = %s.name, reason = %e, "rdbd disks may not be promoted")
                        }
                    }
                }
                s.disks = r.promotable;
                s.replication_connected = r.replication_connected;
            }
        });
        drain(&rep_rx, |r| d.on_report(r));
        drain(&fence_rx, |r: std::result::Result<(), String>| {
            d.fencing = false;
            match r {
                Ok(()) => {
                    warn!(peer = %d.peer, "stonith succeeded: the peer is down");
                    d.membership.on_fenced();
                }
                Err(e) => {
                    error!(peer = %d.peer, error = %e, "stonith FAILED: refusing to take over; retrying after deadtime")
                }
            }
        });
        drain(&ctl_rx, |(req, reply): Pending| {
            let resp = d.on_request(req);
            let _ = reply.send(resp);
        });
        // Track when each group became eligible (see decide_all).
        let now = d.now_ms();
        for i in 0..d.slots.len() {
            let ok = d.eligibility(&d.slots[i]).is_ok();
            let s = &mut d.slots[i];
            match (ok, s.eligible_since_ms) {
                (true, None) => s.eligible_since_ms = Some(now),
                (false, Some(_)) => s.eligible_since_ms = None,
                _ => {}
            }
        }
        if stop.load(Ordering::Relaxed) {
            return shutdown(&mut d, &net, &rep_rx);
        }
        if d.phase() == Phase::Running || d.membership.last().is_some() {
            d.decide_all(&fence_tx);
        }
        let (h, e, r) = d.masks();
        let changed = d.last_sent_masks != Some((h, e, r, d.flags().0));
        if now >= next_send_ms || changed {
            let phase = d.phase();
            let p = d.heartbeat(phase);
            net.send(&p);
            next_send_ms = now + d.config.timings.keepalive_ms;
        }
        if let Some(rest) = TICK.checked_sub(loop_start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

fn drain<T>(rx: &Receiver<T>, mut f: impl FnMut(T)) {
    while let Ok(v) = rx.try_recv() {
        f(v);
    }
}

fn shutdown(d: &mut Daemon, net: &net::Net, rep_rx: &Receiver<worker::Report>) -> Result<()> {
    info!("shutting down: releasing every group");
    for s in &mut d.slots {
        if !s.busy {
            s.busy = true;
            let _ = s.tx.send(worker::Command::Stop);
        }
    }
    let keepalive = Duration::from_millis(d.config.timings.keepalive_ms);
    let mut last_send = Instant::now() - keepalive;
    while d.slots.iter().any(|s| s.busy) {
        while let Ok(r) = rep_rx.recv_timeout(TICK) {
            let stopping = r.completes_command;
            d.on_report(r);
            if stopping {
                break;
            }
        }
        if last_send.elapsed() >= keepalive {
            let p = d.heartbeat(Phase::Running);
            net.send(&p);
            last_send = Instant::now();
        }
        // Further Start commands queued before the stop are finished by now; stop again.
        for s in &mut d.slots {
            if !s.busy && s.holds && s.state != GroupState::StopFailed {
                s.busy = true;
                let _ = s.tx.send(worker::Command::Stop);
            }
        }
    }
    if d.slots.iter().any(|s| s.holds) {
        error!("a group could not be stopped: leaving without announcing a clean leave (the peer must fence)");
        return Err(HaError::Invalid(
            "a group could not be stopped at shutdown".into(),
        ));
    }
    for _ in 0..3 {
        let p = d.heartbeat(Phase::Leaving);
        net.send(&p);
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(control::socket_path(&d.config.run_dir));
    info!("released every group; left cleanly");
    Ok(())
}
