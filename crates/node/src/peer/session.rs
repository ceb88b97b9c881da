//! The connection manager and one connection's session.
//!
//! [`manage`] loops: WFConnection (listen + connect), WFReportParams (the handshake of
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

use rdbd_replicator::bitmap_exchange::{bitmap_packets, BitmapReceiver};
use rdbd_replicator::generation::{FlagState, Generations};
use rdbd_replicator::handshake::{protocol_params, Handshake, HandshakeConfig, PeerReport};
use rdbd_replicator::liveness::{Liveness, Tick};
use rdbd_replicator::peer_state::{
    self, check_request, convert_request, on_peer_state, PeerStateAction,
};
use rdbd_replicator::sync_decision::{decide, SyncDecision};
use rdbd_replicator::transfer_log::AckKind;
use rdbd_types::{ConnState, DiskState, Role};
use rdbd_wire::auth::CramHmacAlg;
use rdbd_wire::{
    DrbdState, HeaderKind, Packet, Sizes, StateChange, StateChangeReply, StateField, SyncParams,
    Uuids, ID_SYNCER, UUID_FLAG_CRASHED_PRIMARY, UUID_FLAG_INCONSISTENT,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Notify, OwnedRwLockWriteGuard};

use super::connect::{establish, Sockets};
use super::io::{spawn_reader, spawn_writer, Incoming, Outbox, Outgoing, Sock, Written};
use super::receive::{Receiver, WriteKind};
use super::resync::{new_sync_uuid, serve, source_finished, target_finished, Progress, TargetPump};
use super::{Command, PeerConfig, PeerLink};
use crate::resource::{Resource, ResourceState};

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
    /// Something the status shows changed.
    Changed,
}

/// How a session ended.
enum End {
    /// The connection broke; go to `cs` and reconnect.
    Lost(ConnState, String),
    /// The handshake refused the peer: log, wait `connect-int`, retry.
    Refused(String),
    /// `disconnect`.
    Disconnect(oneshot::Sender<()>),
    /// `down`.
    Shutdown(oneshot::Sender<()>),
}

impl Ctx {
    fn name(&self) -> &str {
        &self.resource.name
    }

    fn update(&self, f: impl FnOnce(&mut ResourceState)) {
        self.resource.update_state(f);
        self.changed.notify_waiters();
    }

    fn set_cstate(&self, cs: ConnState) {
        let old = self.resource.state().cstate;
        if old != cs {
            tracing::info!(resource = %self.name(), "conn( {old} -> {cs} )");
            self.update(|st| st.cstate = cs);
        }
    }

    fn flag_state(&self) -> FlagState {
        let st = self.resource.state();
        FlagState {
            role: st.role,
            peer_role: st.peer_role,
            cstate: st.cstate,
            disk: st.disk,
            peer_disk: st.peer_disk,
            crashed_primary: false,
        }
    }

    async fn persist(&self, f: impl FnOnce(&mut Generations) + Send + 'static) -> Generations {
        match self
            .resource
            .meta
            .update_generations(f, self.flag_state())
            .await
        {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(resource = %self.name(), error = %e, "writing the identifiers failed");
                self.resource.meta.generations()
            }
        }
    }

    async fn write_bitmap(&self) {
        match self.resource.meta.write_dirty_bitmap().await {
            Ok(n) => {
                self.resource.io.bm_writes.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(resource = %self.name(), error = %e, "writing the bitmap failed")
            }
        }
    }

    fn our_state(&self) -> DrbdState {
        let st = self.resource.state();
        DrbdState {
            role: st.role,
            peer: st.peer_role,
            conn: st.cstate,
            disk: st.disk,
            pdsk: st.peer_disk,
            susp: false,
            aftr_isp: false,
            peer_isp: false,
            user_isp: false,
            susp_nod: false,
            susp_fen: false,
        }
    }

    fn our_uuids(&self) -> Uuids {
        let g = self.resource.meta.generations();
        let st = self.resource.state();
        let mut flags = 0;
        if st.disk == DiskState::Inconsistent {
            flags |= UUID_FLAG_INCONSISTENT;
        }
        if self.resource.meta.superblock().flags.0
            & rdbd_replicator::generation::md_flag::CRASHED_PRIMARY
            != 0
        {
            flags |= UUID_FLAG_CRASHED_PRIMARY;
        }
        Uuids {
            current: g.current,
            bitmap: g.bitmap,
            history: g.history,
            dirty_bits: self.resource.meta.bitmap_weight(),
            flags,
        }
    }

    fn our_sizes(&self) -> Sizes {
        let sectors = self.resource.size_bytes / 512;
        let current = if self.resource.state().role == Role::Primary {
            sectors
        } else {
            0
        };
        Sizes {
            backing_sectors: sectors,
            user_sectors: self.cfg.settings.size_sect.unwrap_or(0),
            current_sectors: current,
            max_bio_size_bytes: rdbd_wire::DRBD_MAX_BIO_SIZE as u32,
            queue_order_type: 0,
            dds_flags: 0,
            queue_limits: None,
        }
    }

    fn handshake_config(&self) -> Result<HandshakeConfig, String> {
        let s = &self.cfg.settings;
        if s.allow_two_primaries {
            return Err(
                rdbd_replicator::handshake::HandshakeError::TwoPrimariesUnsupported.to_string(),
            );
        }
        let auth = match (&s.cram_hmac_alg, &s.shared_secret) {
            (Some(alg), secret) => {
                let alg = CramHmacAlg::from_name(alg).ok_or_else(|| {
                    format!("cram-hmac-alg '{alg}' is not supported (rdbd knows sha1 and sha256)")
                })?;
                Some((alg, secret.clone().unwrap_or_default().into_bytes()))
            }
            (None, _) => None,
        };
        let mut challenge = [0u8; rdbd_wire::auth::CHALLENGE_BYTES];
        for b in challenge.iter_mut() {
            *b = rand::random();
        }
        let mut state = self.our_state();
        state.conn = ConnState::WFReportParams;
        Ok(HandshakeConfig {
            auth,
            protocol: protocol_params(
                s.protocol,
                [&s.after_sb_0pri, &s.after_sb_1pri, &s.after_sb_2pri],
                s.allow_two_primaries,
                s.data_integrity_alg.as_deref(),
                false,
            ),
            sync: SyncParams {
                resync_rate_kib: s.resync_rate_kib,
                verify_alg: s.verify_alg.clone().unwrap_or_default(),
                csums_alg: s.csums_alg.clone().unwrap_or_default(),
                c_plan_ahead_ds: s.c_plan_ahead,
                c_delay_target_ds: s.c_delay_target,
                c_fill_target_sectors: s.c_fill_target_sect,
                c_max_rate_kib: s.c_max_rate_kib,
            },
            sizes: self.our_sizes(),
            uuids: self.our_uuids(),
            state,
            challenge,
        })
    }

    /// After a connection: requests not acknowledged go out of sync, a Primary starts a
    /// new generation, the peer is unknown again.
    async fn cleanup(&self) {
        let lost = self.link.stop_replicating();
        for (sector, size) in &lost {
            self.resource
                .meta
                .set_out_of_sync(sector * 512, u64::from(*size));
        }
        if !lost.is_empty() {
            tracing::info!(resource = %self.name(), requests = lost.len(), "requests not acknowledged by the peer were marked out of sync");
        }
        self.link.set_sync_progress(None);
        self.link.counters.rs_pending.store(0, Ordering::Relaxed);
        self.update(|st| {
            st.peer_role = Role::Unknown;
            st.peer_disk = DiskState::DUnknown;
        });
        let st = self.resource.state();
        if st.role == Role::Primary && self.resource.meta.generations().bitmap == 0 {
            let random = rand::random::<u64>();
            let g = self
                .persist(move |g| {
                    g.new_current(random, Role::Primary);
                })
                .await;
            tracing::info!(resource = %self.name(), current = format!("{:016X}", g.current), bitmap = format!("{:016X}", g.bitmap), "new current UUID (Primary lost its peer)");
        } else {
            self.persist(|_| {}).await;
        }
        self.write_bitmap().await;
    }
}

async fn bind(ctx: &Ctx) -> TcpListener {
    loop {
        let sock = if ctx.cfg.local.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        };
        let result = sock.and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(ctx.cfg.local)?;
            s.listen(16)
        });
        match result {
            Ok(l) => return l,
            Err(e) => {
                tracing::error!(resource = %ctx.name(), address = %ctx.cfg.local, error = %e, "cannot listen on the replication address; retrying");
                tokio::time::sleep(Duration::from_secs(u64::from(
                    ctx.cfg.settings.connect_int_s.max(1),
                )))
                .await;
            }
        }
    }
}

/// Answers a command while not connected. Returns `Some` when the manager must stop
/// trying (`Some(true)`: shut down).
fn idle_command(cmd: Option<Command>, want: &mut bool) -> Option<bool> {
    match cmd {
        None => Some(true),
        Some(Command::Connect) => {
            *want = true;
            None
        }
        Some(Command::Disconnect(tx)) => {
            *want = false;
            let _ = tx.send(());
            Some(false)
        }
        Some(Command::Shutdown(tx)) => {
            let _ = tx.send(());
            Some(true)
        }
        Some(Command::RequestRole(_, tx)) => {
            let _ = tx.send(Ok(()));
            None
        }
        Some(Command::StateChanged) => None,
    }
}

/// The connection manager of one resource.
pub(crate) async fn manage(ctx: Ctx, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut want = true;
    let mut listener: Option<TcpListener> = None;
    loop {
        if !want {
            drop(listener.take());
            ctx.set_cstate(ConnState::StandAlone);
            if idle_command(commands.recv().await, &mut want) == Some(true) {
                return;
            }
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => listener.insert(bind(&ctx).await),
        };
        ctx.set_cstate(ConnState::WFConnection);
        let socks = tokio::select! {
            s = establish(l, ctx.cfg.local, ctx.cfg.peer) => s,
            cmd = commands.recv() => {
                if idle_command(cmd, &mut want) == Some(true) {
                    return;
                }
                continue;
            }
        };
        ctx.set_cstate(ConnState::WFReportParams);
        let end = Session::run(&ctx, socks, &mut commands).await;
        ctx.cleanup().await;
        match end {
            End::Lost(cs, reason) => {
                tracing::warn!(resource = %ctx.name(), peer = %ctx.cfg.peer_name, "connection lost: {reason}");
                ctx.set_cstate(cs);
                ctx.set_cstate(ConnState::Unconnected);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            End::Refused(reason) => {
                tracing::error!(resource = %ctx.name(), peer = %ctx.cfg.peer_name, "connection refused: {reason}; retrying in {} s", ctx.cfg.settings.connect_int_s);
                ctx.set_cstate(ConnState::Disconnecting);
                ctx.set_cstate(ConnState::Unconnected);
                let wait = tokio::time::sleep(Duration::from_secs(u64::from(
                    ctx.cfg.settings.connect_int_s.max(1),
                )));
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        _ = &mut wait => break,
                        cmd = commands.recv() => match idle_command(cmd, &mut want) {
                            Some(true) => return,
                            Some(false) => break,
                            None => {}
                        },
                    }
                }
            }
            End::Disconnect(tx) => {
                tracing::info!(resource = %ctx.name(), "disconnected by request");
                want = false;
                ctx.set_cstate(ConnState::Disconnecting);
                let _ = tx.send(());
            }
            End::Shutdown(tx) => {
                ctx.set_cstate(ConnState::StandAlone);
                let _ = tx.send(());
                return;
            }
        }
    }
}

/// The resync phase of a session.
enum SyncPhase {
    None,
    /// WFBitMapS: application writes are held off while the bitmaps cross.
    BitmapS(BitmapReceiver, OwnedRwLockWriteGuard<()>),
    BitmapT(BitmapReceiver),
    WaitSyncUuid,
    Source(Progress),
    Target(TargetPump),
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
    pending_role: Option<oneshot::Sender<Result<(), (i32, String)>>>,
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
            spawn_writer(data_w, data_rx, written_tx.clone()),
            spawn_writer(meta_w, meta_rx, written_tx),
            spawn_reader(Sock::Data, data_r, rdbd_wire::Decoder::new(), in_tx.clone()),
            spawn_reader(Sock::Meta, meta_r, rdbd_wire::Decoder::new(), in_tx),
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
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let report = loop {
            tokio::select! {
                item = incoming.recv() => match item {
                    Some(Incoming::Frame(Sock::Data, f)) => match hs.on_packet(f.packet) {
                        Ok((out, done)) => {
                            for (kind, p) in out {
                                let _ = data_tx.send(Outgoing::new(kind, p));
                            }
                            if let Some(r) = done {
                                break r;
                            }
                        }
                        Err(e) => return End::Refused(e.to_string()),
                    },
                    Some(Incoming::Frame(Sock::Meta, f)) => {
                        if f.packet == Packet::Ping {
                            let _ = meta_tx.send(Outgoing::h100(Packet::PingAck));
                        }
                    }
                    Some(Incoming::Closed(_, reason)) => return End::Lost(ConnState::BrokenPipe, format!("during the handshake: {reason}")),
                    None => return End::Lost(ConnState::BrokenPipe, "readers ended".into()),
                },
                w = written.recv() => if let Some(Written::Failed(e)) = w {
                    return End::Lost(ConnState::BrokenPipe, format!("sending during the handshake: {e}"));
                },
                _ = tokio::time::sleep_until(deadline) => return End::Lost(ConnState::Timeout, "the handshake did not finish within 30 s".into()),
                cmd = commands.recv() => match cmd {
                    None => return End::Lost(ConnState::TearDown, "manager gone".into()),
                    Some(Command::Disconnect(tx)) => return End::Disconnect(tx),
                    Some(Command::Shutdown(tx)) => return End::Shutdown(tx),
                    Some(Command::RequestRole(_, tx)) => { let _ = tx.send(Ok(())); }
                    Some(Command::Connect | Command::StateChanged) => {}
                },
            }
        };
        tracing::info!(resource = %ctx.name(), "Handshake successful: Agreed network protocol version {}", report.agreed_version);
        if authenticated {
            tracing::info!(resource = %ctx.name(), "Peer authenticated using cram-hmac");
        }
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
            pending_role: None,
            started,
            last_bitmap_write: started,
        };
        let features = report.agreed_features;
        if let Err(end) = session.on_peer_state(report.state).await {
            return end;
        }
        ctx.link
            .start_replicating(session.data.clone(), s.protocol, s.max_epoch_size, features);
        session.main_loop(commands).await
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
                    Some(Written::Sent { ids, bytes }) => {
                        self.ctx.link.sent(&ids);
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
            Some(Command::Disconnect(tx)) => Err(End::Disconnect(tx)),
            Some(Command::Shutdown(tx)) => Err(End::Shutdown(tx)),
            Some(Command::Connect) => Ok(()),
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
        }
        Ok(())
    }

    async fn on_tick(&mut self) -> Result<(), End> {
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
        let want = TargetPump::want_kib(self.ctx);
        let weight = self.ctx.resource.meta.bitmap_weight();
        match &mut self.sync {
            SyncPhase::Target(pump) => {
                pump.on_step(self.ctx);
                let p = pump.progress.sample(weight, want);
                self.ctx.link.set_sync_progress(Some(p));
                if pump.pump(self.ctx, &self.data) {
                    self.finish_target().await;
                }
            }
            SyncPhase::Source(progress) => {
                let p = progress.sample(weight, 0);
                self.ctx.link.set_sync_progress(Some(p));
            }
            _ => {}
        }
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

    async fn on_frame(&mut self, sock: Sock, packet: Packet) -> Result<(), End> {
        let ctx = self.ctx;
        if sock == Sock::Meta {
            self.liveness.on_meta_received(now_ms(self.started));
        }
        let cs = ctx.resource.state().cstate;
        match packet {
            Packet::Ping => self.send_meta(Packet::PingAck),
            Packet::PingAck => self.liveness.on_ping_ack(now_ms(self.started)),
            Packet::RecvAck(a) => self.on_ack(AckKind::Recv, a.block_id),
            Packet::WriteAck(a) => self.on_ack(AckKind::Write, a.block_id),
            Packet::NegAck(a) => {
                if a.block_id == ID_SYNCER {
                    tracing::warn!(resource = %ctx.name(), sector = a.sector, "the peer failed to write resync data");
                } else {
                    tracing::warn!(resource = %ctx.name(), sector = a.sector, size = a.size_bytes, "the peer failed to write; blocks marked out of sync");
                    self.on_ack(AckKind::Neg, a.block_id);
                }
            }
            Packet::RsWriteAck(a) => {
                if a.block_id == ID_SYNCER {
                    ctx.resource
                        .meta
                        .set_in_sync(a.sector, u64::from(a.size_bytes) / 512);
                } else {
                    self.on_ack(AckKind::RsWrite, a.block_id);
                }
            }
            Packet::NegRsDReply(a) | Packet::NegDReply(a) => {
                tracing::warn!(resource = %ctx.name(), sector = a.sector, "the peer could not read resync data; the blocks stay out of sync");
                if let SyncPhase::Target(pump) = &mut self.sync {
                    pump.on_reply(ctx, u64::from(a.size_bytes), false);
                }
            }
            Packet::BarrierAck(b) => {
                let failed = ctx
                    .link
                    .barrier_ack(b.barrier, b.set_size)
                    .map_err(|e| self.protocol_error(e))?;
                for (sector, size) in failed {
                    ctx.resource
                        .meta
                        .set_out_of_sync(sector * 512, u64::from(size));
                }
            }
            Packet::StateChgReply(r) => {
                if let Some(tx) = self.pending_role.take() {
                    let _ = tx.send(if r.is_success() {
                        Ok(())
                    } else {
                        Err((r.retcode, peer_state::retcode_text(r.retcode).into()))
                    });
                }
            }
            Packet::ConnStChgReply(_) => {}
            Packet::Data(d) => {
                if ctx.resource.state().role == Role::Primary {
                    return Err(self.protocol_error("the peer sent application data while this node is Primary (dual-primary is not supported)".into()));
                }
                ctx.resource
                    .io
                    .net_received_bytes
                    .fetch_add(d.payload.len() as u64, Ordering::Relaxed);
                self.receiver.on_data(
                    ctx,
                    &self.meta,
                    d.header,
                    WriteKind::Data(d.payload),
                    &self.events_tx,
                );
            }
            Packet::Trim(t) => {
                if ctx.resource.state().role == Role::Primary {
                    return Err(self.protocol_error(
                        "the peer sent a discard while this node is Primary".into(),
                    ));
                }
                self.receiver.on_data(
                    ctx,
                    &self.meta,
                    t.header,
                    WriteKind::Zeroes(t.size_bytes),
                    &self.events_tx,
                );
            }
            Packet::Barrier(b) => self.receiver.on_barrier(b.barrier),
            Packet::RsDataRequest(r) => {
                if !matches!(cs, ConnState::SyncSource | ConnState::PausedSyncS) {
                    return Err(self.protocol_error(format!("P_RS_DATA_REQUEST while {cs}")));
                }
                serve(ctx, &self.data, &self.meta, r);
            }
            Packet::RsDataReply(d) => {
                if !matches!(self.sync, SyncPhase::Target(_)) {
                    return Err(self.protocol_error(format!("P_RS_DATA_REPLY while {cs}")));
                }
                ctx.resource
                    .io
                    .net_received_bytes
                    .fetch_add(d.payload.len() as u64, Ordering::Relaxed);
                self.receiver
                    .on_rs_reply(ctx, &self.meta, d.header, d.payload, &self.events_tx);
            }
            Packet::OutOfSync(d) => {
                ctx.resource
                    .meta
                    .set_out_of_sync(d.sector.saturating_mul(512), u64::from(d.size_bytes));
            }
            p @ (Packet::Bitmap(_) | Packet::CompressedBitmap(_)) => self.on_bitmap(&p).await?,
            Packet::SyncUuid { uuid } => self.on_sync_uuid(uuid).await?,
            Packet::State(s) => self.on_peer_state(s).await?,
            Packet::Uuids(u) => {
                if cs >= ConnState::Connected && (u.current & !1) != (self.peer.uuids.current & !1)
                {
                    self.consider_resync = true;
                }
                self.peer.uuids = u;
            }
            Packet::Sizes(s) => self.peer.sizes = s,
            Packet::SyncParam89(s) => self.peer.sync = s,
            Packet::StateChgReq(req) => {
                let ours = convert_request(req);
                let rc = check_request(&ours, ctx.resource.state().role, false);
                if rc < 1 {
                    tracing::warn!(resource = %ctx.name(), "refused the peer's state change: {}", peer_state::retcode_text(rc));
                } else if ours.mask.get(StateField::Peer) != 0 {
                    if let Some(role) = rdbd_wire::state::role_from(ours.val.get(StateField::Peer))
                    {
                        ctx.update(|st| st.peer_role = role);
                    }
                }
                self.send_meta(Packet::StateChgReply(StateChangeReply { retcode: rc }));
            }
            Packet::ConnStChgReq(req) => {
                self.send_meta(Packet::ConnStChgReply(StateChangeReply { retcode: 1 }));
                if req.mask.get(StateField::Conn) != 0
                    && req.val.get(StateField::Conn) == ConnState::Disconnecting as u32
                {
                    return Err(End::Lost(
                        ConnState::TearDown,
                        "the peer disconnected".into(),
                    ));
                }
            }
            Packet::DelayProbe(_) | Packet::UnplugRemote => {}
            other => {
                return Err(self.protocol_error(format!(
                    "unexpected packet {:?} on the {sock} socket while {cs}",
                    other.command()
                )));
            }
        }
        Ok(())
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
        if st.role == Role::Primary && s.role == Role::Primary {
            return Err(End::Refused("the peer is Primary too; dual-primary (allow-two-primaries) is not supported by rdbd".into()));
        }
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
        ctx.update(|st| {
            st.peer_role = s.role;
            if action != PeerStateAction::ResyncFinished {
                st.peer_disk = peer_disk;
            }
        });
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

    async fn sync_handshake(&mut self, peer_disk: DiskState) -> Result<(), End> {
        let ctx = self.ctx;
        let st = ctx.resource.state();
        let own = ctx.resource.meta.generations();
        let decision = decide(&own, st.disk, &self.peer.uuids, peer_disk);
        tracing::info!(
            resource = %ctx.name(),
            own_current = format!("{:016X}", own.current),
            own_bitmap = format!("{:016X}", own.bitmap),
            peer_current = format!("{:016X}", self.peer.uuids.current),
            peer_bitmap = format!("{:016X}", self.peer.uuids.bitmap),
            "sync handshake: {decision:?}"
        );
        match decision {
            SyncDecision::NoSync => {
                let was = st.cstate;
                ctx.update(|st| {
                    st.cstate = ConnState::Connected;
                    if matches!(st.disk, DiskState::Consistent | DiskState::Outdated)
                        && peer_disk == DiskState::UpToDate
                    {
                        st.disk = DiskState::UpToDate;
                    }
                    if matches!(peer_disk, DiskState::Consistent | DiskState::Outdated)
                        && st.disk == DiskState::UpToDate
                    {
                        st.peer_disk = DiskState::UpToDate;
                    }
                });
                tracing::info!(resource = %ctx.name(), "conn( {was} -> Connected )");
                ctx.persist(|_| {}).await;
                self.send_state();
                Ok(())
            }
            SyncDecision::Source { full } => {
                // Hold application writes off until the bitmaps crossed.
                let guard = Arc::clone(&ctx.link.resync_lock).write_owned().await;
                if full {
                    ctx.resource.meta.set_all_out_of_sync();
                    ctx.write_bitmap().await;
                }
                ctx.set_cstate(ConnState::WFBitMapS);
                ctx.update(|st| st.peer_disk = DiskState::Inconsistent);
                self.send_state();
                self.send_bitmap()?;
                self.sync =
                    SyncPhase::BitmapS(BitmapReceiver::new(ctx.resource.meta.bitmap_bits()), guard);
                Ok(())
            }
            SyncDecision::Target { full } => {
                if st.role == Role::Primary {
                    return Err(End::Refused(
                        "I shall become SyncTarget, but I am primary! (rr-conflict disconnect)"
                            .into(),
                    ));
                }
                if full {
                    ctx.resource.meta.set_all_out_of_sync();
                    ctx.write_bitmap().await;
                }
                ctx.set_cstate(ConnState::WFBitMapT);
                ctx.update(|st| st.disk = DiskState::Inconsistent);
                ctx.persist(|_| {}).await;
                self.send_state();
                self.sync =
                    SyncPhase::BitmapT(BitmapReceiver::new(ctx.resource.meta.bitmap_bits()));
                Ok(())
            }
            SyncDecision::Refuse(reason) => Err(End::Refused(reason)),
        }
    }

    fn send_bitmap(&self) -> Result<(), End> {
        let meta = &self.ctx.resource.meta;
        let packets = bitmap_packets(
            &meta.bitmap_words(),
            meta.bitmap_bits(),
            self.ctx.cfg.settings.use_rle,
        )
        .map_err(|e| {
            End::Lost(
                ConnState::ProtocolError,
                format!("encoding the bitmap: {e}"),
            )
        })?;
        for p in packets {
            let _ = self.data.send(Outgoing::new(HeaderKind::H100, p));
        }
        Ok(())
    }

    async fn on_bitmap(&mut self, p: &Packet) -> Result<(), End> {
        let ctx = self.ctx;
        let (done, words) = match &mut self.sync {
            SyncPhase::BitmapS(rx, _) | SyncPhase::BitmapT(rx) => {
                let done = rx
                    .on_packet(p)
                    .map_err(|e| End::Lost(ConnState::ProtocolError, e.to_string()))?;
                (done, None::<Vec<u64>>)
            }
            _ => {
                return Err(self.protocol_error(format!(
                    "a bitmap packet while {}",
                    ctx.resource.state().cstate
                )))
            }
        };
        let _ = words;
        if !done {
            return Ok(());
        }
        let phase = std::mem::replace(&mut self.sync, SyncPhase::None);
        match phase {
            SyncPhase::BitmapS(rx, guard) => {
                ctx.resource.meta.merge_bitmap(&rx.into_words());
                let old_bitmap = ctx.resource.meta.generations().bitmap;
                let sync_uuid = new_sync_uuid(old_bitmap);
                ctx.persist(move |g| g.bitmap = sync_uuid).await;
                ctx.write_bitmap().await;
                self.send_data(Packet::SyncUuid { uuid: sync_uuid });
                ctx.set_cstate(ConnState::SyncSource);
                self.send_state();
                let weight = ctx.resource.meta.bitmap_weight();
                tracing::info!(resource = %ctx.name(), "Began resync as SyncSource (will sync {} KB [{weight} bits set]).", weight * 4);
                self.sync = SyncPhase::Source(Progress::new(weight));
                drop(guard);
            }
            SyncPhase::BitmapT(rx) => {
                ctx.resource.meta.merge_bitmap(&rx.into_words());
                ctx.write_bitmap().await;
                self.send_bitmap()?;
                ctx.set_cstate(ConnState::WFSyncUUID);
                self.sync = SyncPhase::WaitSyncUuid;
            }
            other => self.sync = other,
        }
        Ok(())
    }

    async fn on_sync_uuid(&mut self, uuid: u64) -> Result<(), End> {
        let ctx = self.ctx;
        if !matches!(self.sync, SyncPhase::WaitSyncUuid) {
            return Err(
                self.protocol_error(format!("P_SYNC_UUID while {}", ctx.resource.state().cstate))
            );
        }
        ctx.update(|st| st.disk = DiskState::Inconsistent);
        ctx.persist(move |g| {
            g.current = uuid & !1;
            g.bitmap = 0;
        })
        .await;
        ctx.set_cstate(ConnState::SyncTarget);
        self.send_state();
        let weight = ctx.resource.meta.bitmap_weight();
        tracing::info!(resource = %ctx.name(), "Began resync as SyncTarget (will sync {} KB [{weight} bits set]).", weight * 4);
        let mut pump = TargetPump::new(weight);
        pump.on_step(ctx);
        let complete = pump.pump(ctx, &self.data);
        self.sync = SyncPhase::Target(pump);
        if complete {
            self.finish_target().await;
        }
        Ok(())
    }

    async fn finish_target(&mut self) {
        let ctx = self.ctx;
        self.sync = SyncPhase::None;
        ctx.link.set_sync_progress(None);
        let peer_current = self.peer.uuids.current;
        ctx.update(|st| {
            st.disk = DiskState::UpToDate;
            st.peer_disk = DiskState::UpToDate;
            st.cstate = ConnState::Connected;
        });
        let g = ctx.persist(move |g| target_finished(g, peer_current)).await;
        ctx.write_bitmap().await;
        tracing::info!(resource = %ctx.name(), current = format!("{:016X}", g.current), "Resync done; conn( SyncTarget -> Connected ) disk( Inconsistent -> UpToDate )");
        self.send_state();
    }

    async fn finish_source(&mut self) {
        let ctx = self.ctx;
        self.sync = SyncPhase::None;
        ctx.link.set_sync_progress(None);
        ctx.update(|st| {
            st.peer_disk = DiskState::UpToDate;
            st.cstate = ConnState::Connected;
        });
        let g = ctx.persist(source_finished).await;
        ctx.write_bitmap().await;
        let left = ctx.resource.meta.bitmap_weight();
        tracing::info!(resource = %ctx.name(), current = format!("{:016X}", g.current), bits_left = left, "Resync done; conn( SyncSource -> Connected ) pdsk( Inconsistent -> UpToDate )");
        self.send_state();
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
