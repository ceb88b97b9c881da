//! The connection manager and one connection's session.
//!
//! [`manage`] (`connection_loop`) loops: WFConnection (listen + connect), WFReportParams (the handshake of
//! `rdbd_replicator::handshake`), then the session until the connection ends; then the
//! cleanup every lost connection needs, and again. A refused handshake (wrong secret,
//! incompatible settings, a peer too small, split brain) is logged with its reason and
//! retried after `connect-int`.
//!
//! The session is one task with a `select!` over: frames from the two reader tasks,
//! write reports from the writer tasks, events of spawned disk tasks, a 100 ms tick
//! (pings, idle epochs, the resync pump, bitmap write-back) and commands.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdbd_replicator::handshake::{Handshake, PeerReport};
use rdbd_replicator::liveness::{Liveness, Tick};
use rdbd_replicator::peer_state::{
    self, check_request, convert_request, on_peer_state, PeerStateAction,
};
use rdbd_replicator::resync::bitmap_xfer::BitmapReceiver;
use rdbd_replicator::transfer_log::AckKind;
use rdbd_types::{ConnState, DiskState, Role};
use rdbd_wire::{DrbdState, Packet, StateChange, StateChangeReply, StateField, ID_SYNCER};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Notify, OwnedRwLockWriteGuard};

use super::connect::{establish, Sockets};
use super::io::{
    spawn_reader, spawn_writer, AckHandler, Incoming, Outbox, Outgoing, Sock, Written,
};
use super::receive::{Receiver, WriteKind};
use super::resync::{serve, Progress, TargetPump};
use super::{Command, PeerConfig, PeerLink};
use crate::resource::Resource;

mod connection_loop;
mod core_events;
mod ctx;
mod dispatch;
mod fence_disconnect;
mod grow;
mod lifecycle;
mod peer_params;
mod sync;
mod verify;

pub(crate) use connection_loop::manage;

/// What a session works with.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) resource: Arc<Resource>,
    pub(crate) link: Arc<PeerLink>,
    pub(crate) cfg: PeerConfig,
    pub(crate) changed: Arc<Notify>,
}

/// Events of tasks the session spawned.
#[derive(Debug)]
pub(crate) enum Event {
    /// A resync reply was written (or failed).
    RsDone {
        /// Its size.
        bytes: u64,
        /// Written.
        ok: bool,
    },
    /// VerifyS compared a block (in request order; see `crate::peer::verify`).
    Verified {
        /// First sector.
        sector: u64,
        /// Size.
        size_bytes: u32,
        /// The digests were equal.
        equal: bool,
    },
    /// Something the status shows changed.
    Changed,
}

/// How a session ended.
enum End {
    /// The connection broke; go to `cs` and reconnect.
    Lost(ConnState, String),
    /// The handshake refused the peer: log, wait `connect-int`, retry.
    Refused(String),
    /// The sync handshake (or a before-resync handler) dropped the connection: log,
    /// go StandAlone until `connect` (DRBD: C_DISCONNECTING, then StandAlone).
    Dropped(String),
    /// `disconnect` of a fencing Primary whose peer did not confirm it is Outdated
    /// (see `fence_disconnect`): StandAlone, and the peer is fenced.
    DisconnectUnconfirmed(oneshot::Sender<()>),
    /// `disconnect`.
    Disconnect(oneshot::Sender<()>),
    /// `down`.
    Shutdown(oneshot::Sender<()>),
}

/// Applies write and resync acks in the meta socket's reader task, like DRBD's ack
/// receiver thread: completions do not wait behind the data socket's traffic.
fn ack_handler(ctx: &Ctx) -> AckHandler {
    let (resource, link) = (Arc::clone(&ctx.resource), Arc::clone(&ctx.link));
    Box::new(move |p: &Packet| {
        let (kind, a) = match p {
            Packet::RecvAck(a) => (AckKind::Recv, a),
            Packet::WriteAck(a) => (AckKind::Write, a),
            Packet::RsWriteAck(a) if a.block_id == ID_SYNCER => {
                resource
                    .meta
                    .set_in_sync(a.sector, u64::from(a.size_bytes) / 512);
                return true;
            }
            Packet::RsWriteAck(a) => (AckKind::RsWrite, a),
            Packet::NegAck(a) if a.block_id != ID_SYNCER => {
                tracing::warn!(resource = %resource.name, sector = a.sector, size = a.size_bytes, "the peer failed to write; blocks marked out of sync");
                (AckKind::Neg, a)
            }
            _ => return false,
        };
        if let Some((sector, size)) = link.ack(kind, a.block_id) {
            resource.meta.set_out_of_sync(sector * 512, u64::from(size));
        }
        true
    })
}

/// The resync phase of a session.
enum SyncPhase {
    None,
    /// WFBitMapS: application writes send `P_OUT_OF_SYNC` (`crate::peer::out_of_sync`);
    /// with a peer before protocol 96 they are held off (the guard) while the bitmaps cross.
    BitmapS(BitmapReceiver, Option<OwnedRwLockWriteGuard<()>>),
    BitmapT(BitmapReceiver),
    WaitSyncUuid,
    Source(Progress),
    Target(TargetPump),
    /// Online verify, requesting side (see `verify`).
    VerifyS(crate::peer::verify::VerifySource),
    /// Online verify, answering side.
    VerifyT(crate::peer::verify::VerifyTarget),
}

struct Session<'a> {
    ctx: &'a Ctx,
    data: Outbox,
    meta: Outbox,
    incoming: mpsc::Receiver<Incoming>,
    written: mpsc::UnboundedReceiver<Written>,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    peer: PeerReport,
    liveness: Liveness,
    receiver: Receiver,
    sync: SyncPhase,
    consider_resync: bool,
    resolve_conflicts: bool,
    pending_role: Option<oneshot::Sender<Result<(), (i32, String)>>>,
    /// `invalidate-remote` waiting for the peer's P_STATE_CHG_REPLY.
    pending_invalidate: Option<oneshot::Sender<Result<(), String>>>,
    /// `resize` waiting for the peer's P_SIZES.
    pending_resize: Option<lifecycle::PendingResize>,
    /// `verify` waiting for the peer's P_STATE_CHG_REPLY (see `verify`).
    pending_verify: Option<verify::PendingVerify>,
    /// `disconnect` of a fencing Primary waiting for the peer to outdate itself.
    pending_disconnect: Option<fence_disconnect::PendingDisconnect>,
    started: Instant,
    last_bitmap_write: Instant,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn now_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

impl<'a> Session<'a> {
    async fn run(
        ctx: &'a Ctx,
        socks: Sockets,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> End {
        let Sockets {
            data,
            meta,
            resolve_conflicts,
        } = socks;
        tracing::info!(resource = %ctx.name(), peer = %ctx.cfg.peer_name, resolve_conflicts, "connection established, handshaking");
        let (data_r, data_w) = data.into_split();
        let (meta_r, meta_w) = meta.into_split();
        let (written_tx, mut written) = mpsc::unbounded_channel();
        let (data_tx, data_rx) = mpsc::unbounded_channel();
        let (meta_tx, meta_rx) = mpsc::unbounded_channel();
        let (in_tx, mut incoming) = mpsc::channel(256);
        let tasks = vec![
            spawn_writer(
                data_w,
                data_rx,
                written_tx.clone(),
                Some(Arc::clone(&ctx.link)),
            ),
            spawn_writer(meta_w, meta_rx, written_tx, None),
            spawn_reader(
                Sock::Data,
                data_r,
                rdbd_wire::Decoder::new(),
                in_tx.clone(),
                None,
            ),
            spawn_reader(
                Sock::Meta,
                meta_r,
                rdbd_wire::Decoder::new(),
                in_tx,
                Some(ack_handler(ctx)),
            ),
        ];
        let guard = TaskGuard(tasks);
        // The handshake.
        let cfg = match ctx.handshake_config() {
            Ok(c) => c,
            Err(e) => return End::Refused(e),
        };
        let authenticated = cfg.auth.is_some();
        let (mut hs, out) = Handshake::start(cfg);
        for (kind, p) in out {
            let _ = data_tx.send(Outgoing::new(kind, p));
        }
        // The peer's first packet must come soon (a socket pair that only looks
        // established, e.g. left in the peer's listen queue, is given up quickly); the
        // whole handshake has 30 s.
        let mut deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut first = true;
        let mut send_failed = false;
        let report = loop {
            tokio::select! {
                item = incoming.recv() => match item {
                    Some(Incoming::Frame(Sock::Data, f)) => {
                        if std::mem::take(&mut first) {
                            deadline += Duration::from_secs(25);
                        }
                        match hs.on_packet(f.packet) {
                            Ok((out, done)) => {
                                for (kind, p) in out {
                                    let _ = data_tx.send(Outgoing::new(kind, p));
                                }
                                if let Some(r) = done {
                                    break r;
                                }
                            }
                            Err(e) => return End::Refused(e.to_string()),
                        }
                    }
                    Some(Incoming::Frame(Sock::Meta, f)) => {
                        if f.packet == Packet::Ping {
                            let _ = meta_tx.send(Outgoing::h100(Packet::PingAck));
                        }
                    }
                    // The peer's parameters may still be queued behind a closed meta
                    // socket: only the data socket's end ends the handshake.
                    Some(Incoming::Closed(Sock::Meta, reason)) => {
                        tracing::debug!(resource = %ctx.name(), "meta socket closed during the handshake: {reason}");
                    }
                    Some(Incoming::Closed(Sock::Data, reason)) => return End::Lost(ConnState::BrokenPipe, format!("during the handshake: {reason}")),
                    None => return End::Lost(ConnState::BrokenPipe, "readers ended".into()),
                },
                // A peer that decided (split brain) and closed makes our sends fail while
                // its parameters are still to be read: the data socket's end decides.
                w = written.recv(), if !send_failed => if let Some(Written::Failed(e)) = w {
                    tracing::debug!(resource = %ctx.name(), "sending during the handshake failed: {e}");
                    send_failed = true;
                },
                _ = tokio::time::sleep_until(deadline) => return End::Lost(ConnState::Timeout, "the peer did not answer the handshake in time (5 s for its first packet, 30 s in all)".into()),
                cmd = commands.recv() => match cmd {
                    None => return End::Lost(ConnState::TearDown, "manager gone".into()),
                    Some(Command::Disconnect(tx)) => return End::Disconnect(tx),
                    Some(Command::Shutdown(tx)) => return End::Shutdown(tx),
                    Some(Command::RequestRole(_, tx)) => { let _ = tx.send(Ok(())); }
                    Some(Command::Connect { .. } | Command::StateChanged) => {}
                    Some(Command::Sync(c, tx)) => verify::answer_idle(c, tx),
                    Some(other) => lifecycle::answer_not_now(other, "the connection is handshaking"),
                },
            }
        };
        if let Err(e) = verify::check_algs(ctx, &report) {
            return End::Refused(e);
        }
        tracing::info!(resource = %ctx.name(), "Handshake successful: Agreed network protocol version {}", report.agreed_version);
        if authenticated {
            tracing::info!(resource = %ctx.name(), "Peer authenticated using cram-hmac");
        }
        ctx.peer_uuids(&report.uuids);
        let (events_tx, events) = mpsc::unbounded_channel();
        let started = Instant::now();
        let s = &ctx.cfg.settings;
        let mut session = Session {
            ctx,
            receiver: Receiver::new(ctx, meta_tx.clone()),
            data: data_tx,
            meta: meta_tx,
            incoming,
            written,
            events_tx,
            events,
            tasks: std::mem::take(&mut { guard }.0),
            peer: report.clone(),
            liveness: Liveness::new(s.ping_int_s, s.ping_timeout_ds, s.timeout_ds, s.ko_count, 0),
            sync: SyncPhase::None,
            consider_resync: false,
            resolve_conflicts,
            pending_role: None,
            pending_invalidate: None,
            pending_resize: None,
            pending_verify: None,
            pending_disconnect: None,
            started,
            last_bitmap_write: started,
        };
        let features = report.agreed_features;
        if let Err(end) = session.adopt_peer_sync_params(&report.sync) {
            session.flush_data().await;
            return end;
        }
        if let Err(end) = session.on_peer_state(report.state).await {
            session.flush_data().await;
            return end;
        }
        ctx.link
            .start_replicating(session.data.clone(), s.protocol, s.max_epoch_size, features);
        let end = session.main_loop(commands).await;
        let end = session.finish_disconnect(end);
        // Writes received before the end still reach the disk before anyone detaches it.
        session.receiver.drain().await;
        end
    }

    /// Lets the data socket's writer send what is queued (our handshake parameters)
    /// before the session ends, bounded by one second: a peer that has not read our
    /// P_UUIDS/P_STATE yet still runs its own sync decision (DRBD sends them synchronously
    /// before it receives the peer's). Only before replication started: the data outbox
    /// has no other sender then.
    async fn flush_data(&mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.data, closed));
        if self.tasks.is_empty() {
            return;
        }
        // tasks[0] is the data socket's writer (see `run`).
        let mut writer = self.tasks.remove(0);
        if tokio::time::timeout(Duration::from_secs(1), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
            tracing::warn!(resource = %self.ctx.name(), "the data socket did not take our last packets within 1 s");
        }
    }

    fn send_data(&self, p: Packet) {
        let _ = self.data.send(Outgoing::h100(p));
    }

    fn send_meta(&self, p: Packet) {
        let _ = self.meta.send(Outgoing::h100(p));
    }

    fn send_state(&self) {
        self.send_data(Packet::State(self.ctx.our_state()));
    }

    async fn main_loop(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) -> End {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let result = tokio::select! {
                item = self.incoming.recv() => match item {
                    Some(Incoming::Frame(sock, f)) => self.on_frame(sock, f.packet).await,
                    Some(Incoming::Closed(sock, reason)) => Err(End::Lost(
                        if reason.contains("invalid packet") { ConnState::ProtocolError } else if sock == Sock::Meta { ConnState::NetworkFailure } else { ConnState::BrokenPipe },
                        reason,
                    )),
                    None => Err(End::Lost(ConnState::BrokenPipe, "readers ended".into())),
                },
                w = self.written.recv() => match w {
                    Some(Written::Sent { bytes }) => {
                        self.ctx.resource.io.net_sent_bytes.fetch_add(bytes, Ordering::Relaxed);
                        Ok(())
                    }
                    Some(Written::Failed(e)) => Err(End::Lost(ConnState::BrokenPipe, format!("sending failed: {e}"))),
                    None => Err(End::Lost(ConnState::BrokenPipe, "writers ended".into())),
                },
                ev = self.events.recv() => match ev {
                    Some(ev) => self.on_event(ev).await,
                    None => Ok(()),
                },
                _ = tick.tick() => self.on_tick().await,
                cmd = commands.recv() => self.on_command(cmd).await,
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    async fn on_command(&mut self, cmd: Option<Command>) -> Result<(), End> {
        match cmd {
            None => Err(End::Lost(ConnState::TearDown, "manager gone".into())),
            Some(Command::Disconnect(tx)) => self.disconnect_requested(tx),
            Some(Command::Shutdown(tx)) => Err(End::Shutdown(tx)),
            Some(Command::Connect { .. }) => Ok(()),
            Some(Command::InvalidateRemote(tx)) => {
                self.start_invalidate_remote(tx);
                Ok(())
            }
            Some(Command::Resize(req, tx)) => {
                self.start_resize(req, tx).await;
                Ok(())
            }
            Some(Command::DiskOptions(cfg)) => {
                self.apply_disk_options(&cfg);
                Ok(())
            }
            Some(Command::SyncAlgs(cfg, tx)) => {
                let _ = tx.send(self.change_sync_algs(&cfg));
                Ok(())
            }
            Some(other @ Command::Reconfigure(..)) => {
                lifecycle::answer_not_now(other, "the resource is connected; disconnect first");
                Ok(())
            }
            Some(Command::Sync(c, tx)) => {
                self.on_sync_command(c, tx);
                Ok(())
            }
            Some(Command::StateChanged) => {
                self.send_data(Packet::Uuids(self.ctx.our_uuids()));
                self.send_state();
                Ok(())
            }
            Some(Command::RequestRole(role, tx)) => {
                if self.ctx.resource.state().peer_role == Role::Primary && role == Role::Primary {
                    let _ = tx.send(Err((
                        peer_state::SS_TWO_PRIMARIES,
                        peer_state::retcode_text(peer_state::SS_TWO_PRIMARIES).into(),
                    )));
                    return Ok(());
                }
                self.send_data(Packet::StateChgReq(StateChange::new().role(role)));
                if let Some(old) = self.pending_role.replace(tx) {
                    let _ = old.send(Err((
                        peer_state::SS_CW_FAILED_BY_PEER,
                        "superseded by a newer request".into(),
                    )));
                }
                Ok(())
            }
        }
    }

    async fn on_event(&mut self, ev: Event) -> Result<(), End> {
        match ev {
            Event::RsDone { bytes, ok } => {
                if let SyncPhase::Target(pump) = &mut self.sync {
                    pump.on_reply(self.ctx, bytes, ok);
                    if pump.pump(self.ctx, &self.data) {
                        self.finish_target().await;
                    }
                }
            }
            Event::Changed => self.ctx.changed.notify_waiters(),
            Event::Verified {
                sector,
                size_bytes,
                equal,
            } => self.on_verified(sector, size_bytes, equal).await,
        }
        Ok(())
    }

    async fn on_tick(&mut self) -> Result<(), End> {
        self.check_disconnect_timeout()?;
        let now = now_ms(self.started);
        let oldest = self.ctx.link.oldest_waiting_ms().map(|t| {
            // The link's clock started earlier; convert to ours.
            let link_now = self.ctx.link.now_ms();
            now.saturating_sub(link_now.saturating_sub(t))
        });
        match self.liveness.tick(now, oldest) {
            Tick::Idle => {}
            Tick::SendPing => self.send_meta(Packet::Ping),
            Tick::PingTimeout => {
                return Err(End::Lost(
                    ConnState::NetworkFailure,
                    "PingAck did not arrive in time.".into(),
                ))
            }
            Tick::KoCountExceeded => {
                return Err(End::Lost(
                    ConnState::Timeout,
                    "the peer did not acknowledge a request within timeout x ko-count".into(),
                ))
            }
        }
        self.ctx.link.close_idle_epoch();
        let weight = self.ctx.resource.meta.bitmap_weight();
        match &mut self.sync {
            SyncPhase::Target(pump) => {
                pump.on_step(self.ctx);
                let want = pump.want_kib();
                let p = pump.progress.sample(weight, want);
                self.ctx.link.set_sync_progress(Some(p));
                if pump.pump(self.ctx, &self.data) {
                    self.finish_target().await;
                }
            }
            SyncPhase::Source(progress) => {
                progress.observe_pause(self.ctx.link.sync_paused());
                let p = progress.sample(weight, 0);
                self.ctx.link.set_sync_progress(Some(p));
            }
            SyncPhase::VerifyS(_) | SyncPhase::VerifyT(_) => self.verify_tick().await,
            _ => {}
        }
        self.resync_after_tick();
        if matches!(self.sync, SyncPhase::Target(_) | SyncPhase::Source(_))
            && self.last_bitmap_write.elapsed() >= Duration::from_secs(1)
        {
            self.last_bitmap_write = Instant::now();
            self.ctx.write_bitmap().await;
        }
        Ok(())
    }

    fn protocol_error(&self, what: String) -> End {
        End::Lost(ConnState::ProtocolError, what)
    }

    fn on_ack(&self, kind: AckKind, block_id: u64) {
        if let Some((sector, size)) = self.ctx.link.ack(kind, block_id) {
            self.ctx
                .resource
                .meta
                .set_out_of_sync(sector * 512, u64::from(size));
        }
    }

    /// `receive_state`.
    async fn on_peer_state(&mut self, s: DrbdState) -> Result<(), End> {
        let ctx = self.ctx;
        let st = ctx.resource.state();
        let mut peer_disk = peer_state::real_peer_disk(&s, self.peer.uuids.flags);
        if st.role == Role::Primary && s.role == Role::Primary && st.cstate >= ConnState::Connected
        {
            return Err(End::Refused("the peer is Primary too; dual-primary (allow-two-primaries) is not supported by rdbd".into()));
        }
        self.peer.state = s;
        self.verify_peer_state(&s);
        let action = on_peer_state(
            st.cstate,
            st.disk,
            &DrbdState {
                disk: peer_disk,
                ..s
            },
            self.consider_resync,
        );
        self.consider_resync = false;
        // A peer still preparing its sync is not UpToDate for us yet.
        if matches!(st.cstate, ConnState::WFBitMapS | ConnState::SyncSource)
            && peer_disk == DiskState::UpToDate
            && s.conn != ConnState::Connected
        {
            peer_disk = DiskState::Inconsistent;
        }
        let action = self.lifecycle_peer_state(&st, peer_disk, action).await;
        match action {
            // The core records it (sanitized as DRBD does while connected).
            PeerStateAction::Record if st.cstate >= ConnState::Connected => {
                ctx.peer_state(s.role, peer_disk, s.conn)
            }
            // The end of the resync records the peer's disk (`finish_source`).
            PeerStateAction::ResyncFinished => ctx.update(|st| st.peer_role = s.role),
            // The core's handshake records them with the state it chooses (recorded
            // before, a Primary peer would make DRBD's rules take our state as invalid
            // already and let two Primaries connect).
            PeerStateAction::SyncHandshake => {}
            PeerStateAction::Record => ctx.update(|st| {
                st.peer_role = s.role;
                st.peer_disk = peer_disk;
            }),
        }
        match action {
            PeerStateAction::Record => Ok(()),
            PeerStateAction::ResyncFinished => {
                if matches!(self.sync, SyncPhase::Source(_)) {
                    self.finish_source().await;
                }
                Ok(())
            }
            PeerStateAction::SyncHandshake => self.sync_handshake(peer_disk).await,
        }
    }
}

/// Aborts the socket tasks if the session ends before it took them.
struct TaskGuard(Vec<tokio::task::JoinHandle<()>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
