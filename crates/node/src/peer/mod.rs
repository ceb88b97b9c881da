//! Replication with the resource's peer: the tokio driver around `rdbd-replicator`'s
//! sans-I/O rules.
//!
//! - [`PeerLink`]: what the write path and the role changes see. A write is entered in
//!   the transfer log and its `P_DATA` queued on the data socket under one lock, so the
//!   order on the wire is the order of submission; the caller awaits the protocol's ack.
//! - [`start`]: the connection manager task of a resource: listen and connect
//!   ([`connect`]), run a session ([`session`]) until it ends, clean up (every request
//!   not acknowledged is set out of sync, a Primary starts a new generation), and try
//!   again. `connect` / `disconnect` / `down` drive it through [`PeerLink`].
//! - [`receive`]: the secondary's side of the data path; [`resync`]: bitmap exchange and
//!   resync data movement; [`csums`]: checksum-based resync; [`verify`]: online verify;
//!   [`sync_admin`]: `verify` / `pause-sync` / `resume-sync`.

mod after;
mod connect;
mod csums;
#[cfg(test)]
mod drain_tests;
mod io;
mod lifecycle;
mod out_of_sync;
mod read_request;
mod receive;
mod remote_read;
mod resync;
mod session;
mod sockbuf;
mod source_throttle;
mod sync_admin;
mod sync_params;
mod verify;

pub use sync_admin::sync_admin;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use rdbd_config::Settings;
use rdbd_control::status::SyncProgress;
use rdbd_replicator::transfer_log::{AckKind, Done, TransferLog};
use rdbd_types::{ConnState, Protocol, Role};
use rdbd_wire::{Barrier, DataHeader, DataPacket, DpFlags, Packet, TrimPacket, FF_TRIM};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::resource::Resource;
use io::{Outbox, Outgoing};

/// How a replicated request ended on the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerOutcome {
    /// Acknowledged as the protocol requires.
    Acked,
    /// Not (known to be) on the peer: the blocks are out of sync.
    NotReplicated,
}

/// What a write carries to the peer.
#[derive(Debug, Clone)]
pub enum WritePayload {
    /// Data (`P_DATA`).
    Data(Bytes),
    /// Discard / write zeroes of this many bytes (`P_TRIM`, or zero-filled `P_DATA`).
    Zeroes(u32),
}

/// Requests to the connection manager.
#[derive(Debug)]
enum Command {
    /// Start connecting (from StandAlone); `connect --discard-my-data`.
    Connect {
        /// Give up our data in a split brain (the core keeps it until a handshake got
        /// through).
        discard_my_data: bool,
    },
    /// Drop the connection and stay StandAlone.
    Disconnect(oneshot::Sender<()>),
    /// Stop for good (resource down).
    Shutdown(oneshot::Sender<()>),
    /// Ask the peer to accept our new role (two-phase state change).
    RequestRole(Role, oneshot::Sender<Result<(), (i32, String)>>),
    /// Our role, disk or identifiers changed: tell the peer.
    StateChanged,
    /// `verify`, `pause-sync`, `resume-sync` (see [`sync_admin`]).
    Sync(sync_admin::SyncCommand, sync_admin::SyncReply),
    /// `invalidate-remote`: a full sync with us as source (see [`lifecycle`]).
    InvalidateRemote(oneshot::Sender<Result<(), String>>),
    /// New connection settings (`adjust`), taken while StandAlone.
    Reconfigure(Box<PeerConfig>, oneshot::Sender<Result<(), String>>),
    /// `resize`: grow to this many sectors together with the peer (see [`lifecycle`]).
    Resize(
        lifecycle::ResizeRequest,
        oneshot::Sender<Result<u64, String>>,
    ),
    /// Changed disk options (`adjust`): applied to a running resync now.
    DiskOptions(Box<PeerConfig>),
    /// Changed csums-alg / verify-alg while connected (`adjust`; see [`sync_params`]).
    SyncAlgs(Box<PeerConfig>, oneshot::Sender<Result<(), String>>),
}

type Waiter = oneshot::Sender<PeerOutcome>;

struct LinkInner {
    tl: TransferLog<Waiter>,
    /// The data socket's queue while writes are replicated.
    data: Option<Outbox>,
    /// The agreed features allow `P_TRIM`.
    trim: bool,
    /// Flushes waiting for a barrier ack.
    flush_waiters: Vec<(u32, oneshot::Sender<()>)>,
    /// WFBitMapS: writes send `P_OUT_OF_SYNC` here instead of `P_DATA` ([`out_of_sync`]).
    out_of_sync_only: Option<Outbox>,
}

/// Counters of the connection for the status (`pe`, `ua`).
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Requests received and not yet acknowledged (`ua`).
    pub unacked: AtomicU64,
    /// Resync requests sent and not yet answered (part of `pe`).
    pub rs_pending: AtomicU64,
    /// Checksum-based resync: 4 KiB blocks found equal in this resync (`rs_same_csum`).
    pub rs_same_csum_blocks: AtomicU64,
    /// Bytes of resync / verify I/O on the local disk (`rs_sect_ev`; the rest is
    /// application I/O for c-min-rate).
    pub rs_disk_bytes: AtomicU64,
}

/// The write path's and the role changes' handle on the connection.
pub struct PeerLink {
    inner: Mutex<LinkInner>,
    /// Application writes hold it shared across "queue P_DATA + local write"; resync
    /// reads hold it exclusively, so a resync reply never carries older data than a write
    /// queued before it. Entering WFBitMapS holds it while our bitmap is queued (with a
    /// peer older than protocol 96, until the peer's bitmap arrived).
    pub resync_lock: Arc<tokio::sync::RwLock<()>>,
    /// Status counters.
    pub counters: LinkCounters,
    /// Progress of a running resync.
    sync: Mutex<Option<SyncProgress>>,
    /// `pause-sync` given (`user_isp`); kept across connections.
    pub user_isp: std::sync::atomic::AtomicBool,
    /// The peer paused the resync (`peer_isp`, its aftr_isp | user_isp).
    pub peer_isp: std::sync::atomic::AtomicBool,
    /// A `resync-after` dependency is resyncing (`aftr_isp`, see [`after`]).
    pub aftr_isp: std::sync::atomic::AtomicBool,
    /// This resource's `resync-after` (kept current by its session).
    resync_after: Mutex<Option<String>>,
    commands: mpsc::UnboundedSender<Command>,
    epoch_base: Instant,
    /// Reads of a diskless Primary waiting for the peer.
    remote_reads: remote_read::RemoteReads,
    /// Settings from `adjust` the manager takes at its next iteration ([`lifecycle`]).
    next_cfg: Mutex<Option<PeerConfig>>,
    /// How long `secondary` waits for the transfer log to drain (`timeout`).
    demote_wait_ms: AtomicU64,
    /// c-min-rate on the SyncSource ([`source_throttle`]).
    source_gate: source_throttle::SourceGate,
    /// Online verify's block locks against application writes ([`verify::locks`]).
    pub(crate) verify_locks: verify::locks::VerifyLocks,
    /// Where the next `verify` without `--start` begins (`ov_start_sector`, see [`verify`]).
    pub(crate) ov_start_sector: AtomicU64,
}

impl std::fmt::Debug for PeerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLink").finish_non_exhaustive()
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Our replication address (listened on).
    pub local: SocketAddr,
    /// The peer's replication address.
    pub peer: SocketAddr,
    /// The peer's host name.
    pub peer_name: String,
    /// This node's host name.
    pub local_name: String,
    /// The resource's settings.
    pub settings: Settings,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PeerLink {
    fn inner(&self) -> MutexGuard<'_, LinkInner> {
        lock(&self.inner)
    }

    fn now_ms(&self) -> u64 {
        self.epoch_base.elapsed().as_millis() as u64
    }

    /// As [`PeerLink::submit_write`], with data split into `P_DATA` packets of at most
    /// `DRBD_MAX_BIO_SIZE` (the most a DRBD 8.4 peer accepts, as the kernel splits its bios).
    /// `None` when nothing was queued; when the link went away after the first piece, a
    /// receiver that reports `NotReplicated` stands for the rest.
    pub fn submit_write_split(
        &self,
        offset: u64,
        payload: WritePayload,
        fua: bool,
    ) -> Option<Vec<oneshot::Receiver<PeerOutcome>>> {
        if self.send_out_of_sync_instead(offset, &payload) {
            return None;
        }
        let data = match payload {
            WritePayload::Data(data) if data.len() > rdbd_wire::DRBD_MAX_BIO_SIZE => data,
            other => return self.submit_write(offset, other, fua).map(|rx| vec![rx]),
        };
        let mut receivers = Vec::new();
        for start in (0..data.len()).step_by(rdbd_wire::DRBD_MAX_BIO_SIZE) {
            let end = data.len().min(start + rdbd_wire::DRBD_MAX_BIO_SIZE);
            let piece = WritePayload::Data(data.slice(start..end));
            match self.submit_write(offset + start as u64, piece, fua) {
                Some(rx) => receivers.push(rx),
                None if receivers.is_empty() => return None,
                None => {
                    let (tx, rx) = oneshot::channel();
                    let _ = tx.send(PeerOutcome::NotReplicated);
                    receivers.push(rx);
                    break;
                }
            }
        }
        Some(receivers)
    }

    /// Queues a write for the peer. `None` when writes are not replicated now (the
    /// caller sets the blocks out of sync); otherwise the receiver completes per protocol.
    pub fn submit_write(
        &self,
        offset: u64,
        payload: WritePayload,
        fua: bool,
    ) -> Option<oneshot::Receiver<PeerOutcome>> {
        let mut inner = self.inner();
        let data = inner.data.clone()?;
        let sector = offset / 512;
        let mut flags = match inner.tl.protocol() {
            Protocol::A => DpFlags(0),
            Protocol::B => DpFlags::SEND_RECEIVE_ACK,
            Protocol::C => DpFlags::SEND_WRITE_ACK,
        };
        if fua {
            flags = DpFlags(flags.0 | DpFlags::FUA.0);
        }
        let size_bytes = match &payload {
            WritePayload::Data(b) => b.len() as u32,
            WritePayload::Zeroes(n)
                if !inner.trim && *n as usize > rdbd_wire::DRBD_MAX_BIO_SIZE =>
            {
                return None
            }
            WritePayload::Zeroes(n) => *n,
        };
        let (tx, rx) = oneshot::channel();
        let now = self.now_ms();
        let sub = inner.tl.submit(sector, size_bytes, now, tx);
        if let Some(nr) = sub.barrier_before {
            let _ = data.send(Outgoing::h100(Packet::Barrier(Barrier { barrier: nr })));
        }
        let header = DataHeader {
            sector,
            block_id: sub.block_id,
            seq_num: sub.seq_num,
            dp_flags: flags,
        };
        let packet = match payload {
            WritePayload::Data(payload) => Packet::Data(DataPacket { header, payload }),
            WritePayload::Zeroes(n) if inner.trim => Packet::Trim(TrimPacket {
                header: DataHeader {
                    dp_flags: DpFlags(flags.0 | DpFlags::DISCARD.0),
                    ..header
                },
                size_bytes: n,
            }),
            WritePayload::Zeroes(n) => Packet::Data(DataPacket {
                header,
                payload: Bytes::from(vec![0u8; n as usize]),
            }),
        };
        let mut out = Outgoing::h100(packet);
        if inner.tl.protocol() == Protocol::A {
            out.on_sent = Some(sub.block_id);
        }
        if data.send(out).is_err() {
            // The writer is gone; the session's cleanup takes this request out of the log.
            tracing::debug!("data socket queue closed while submitting");
        }
        Some(rx)
    }

    /// An NBD flush: closes the epoch and waits until the peer acknowledged its barrier
    /// (the peer flushed its disk first). Returns at once when not replicating.
    pub async fn flush(&self) {
        let rx = {
            let mut inner = self.inner();
            let Some(data) = inner.data.clone() else {
                return;
            };
            let nr = match inner.tl.close_epoch() {
                Some(nr) => {
                    let _ = data.send(Outgoing::h100(Packet::Barrier(Barrier { barrier: nr })));
                    nr
                }
                None => match inner.tl.last_closed_epoch() {
                    Some(nr) => nr,
                    None => return,
                },
            };
            let (tx, rx) = oneshot::channel();
            inner.flush_waiters.push((nr, tx));
            rx
        };
        let _ = rx.await;
    }

    /// `secondary` on a connected Primary: sends the barrier of the open epoch and waits,
    /// at most `timeout`, until every epoch is barrier-acked (the transfer log is empty).
    /// DRBD 8.4 waits only for the application's writes here (its FIXME); a connection lost
    /// right after the demotion would leave writes the peer never got behind an unchanged
    /// current UUID. If the connection drops meanwhile the wait ends, and the session's
    /// cleanup sets the unacked writes out of sync as on any peer loss. Returns whether
    /// the log is empty now.
    pub async fn drain_transfer_log(&self) -> bool {
        let limit = std::time::Duration::from_millis(self.demote_wait_ms.load(Ordering::Relaxed));
        if tokio::time::timeout(limit, self.flush()).await.is_err() {
            tracing::warn!(
                waited_ms = limit.as_millis() as u64,
                epochs = self.epochs(),
                "demotion: the peer did not acknowledge every barrier in time"
            );
        }
        let inner = self.inner();
        inner.data.is_none() || inner.tl.is_empty()
    }

    /// Protocol A: these requests are on the socket.
    fn sent(&self, ids: &[u64]) {
        let mut inner = self.inner();
        for id in ids {
            if let Some(w) = inner.tl.take_waiter(*id) {
                let _ = w.send(PeerOutcome::Acked);
            }
        }
    }

    /// An ack from the meta socket. Returns the blocks the peer failed to write.
    fn ack(&self, kind: AckKind, block_id: u64) -> Option<(u64, u32)> {
        let done = self.inner().tl.on_ack(kind, block_id)?;
        finish(done)
    }

    /// A barrier ack; an error means the peer broke the protocol.
    fn barrier_ack(&self, barrier: u32, set_size: u32) -> Result<Vec<(u64, u32)>, String> {
        let mut inner = self.inner();
        let done = inner
            .tl
            .on_barrier_ack(barrier, set_size)
            .map_err(|e| e.to_string())?;
        let waiters = std::mem::take(&mut inner.flush_waiters);
        for (nr, tx) in waiters {
            if nr == barrier {
                let _ = tx.send(());
            } else {
                inner.flush_waiters.push((nr, tx));
            }
        }
        Ok(done.into_iter().filter_map(finish).collect())
    }

    /// Closes the open epoch when it has writes (the sender is idle).
    fn close_idle_epoch(&self) {
        let mut inner = self.inner();
        if let Some(data) = inner.data.clone() {
            if let Some(nr) = inner.tl.close_epoch() {
                let _ = data.send(Outgoing::h100(Packet::Barrier(Barrier { barrier: nr })));
            }
        }
    }

    /// Starts replicating writes on `data` (a new transfer log).
    fn start_replicating(
        &self,
        data: Outbox,
        protocol: Protocol,
        max_epoch_size: u32,
        features: u32,
    ) {
        let mut inner = self.inner();
        inner.tl = TransferLog::new(protocol, max_epoch_size, rand::random());
        inner.data = Some(data);
        inner.trim = features & FF_TRIM != 0;
    }

    /// Stops replicating: returns every request still in the log (out of sync now);
    /// their waiters complete as not replicated.
    fn stop_replicating(&self) -> Vec<(u64, u32)> {
        let mut inner = self.inner();
        inner.data = None;
        inner.out_of_sync_only = None;
        inner.flush_waiters.clear();
        self.source_gate.stop();
        let lost = inner.tl.clear();
        lost.into_iter()
            .map(|d| {
                if let Some(w) = d.waiter {
                    let _ = w.send(PeerOutcome::NotReplicated);
                }
                (d.sector, d.size_bytes)
            })
            .collect()
    }

    /// Whether a resync is paused (`user_isp`, `peer_isp` or `aftr_isp`).
    pub fn sync_paused(&self) -> bool {
        self.user_isp.load(Ordering::SeqCst)
            || self.peer_isp.load(Ordering::SeqCst)
            || self.aftr_isp.load(Ordering::SeqCst)
    }

    /// This resource's `resync-after`.
    fn resync_after(&self) -> Option<String> {
        lock(&self.resync_after).clone()
    }

    fn set_resync_after(&self, after: Option<String>) {
        *lock(&self.resync_after) = after;
    }

    /// Whether writes are replicated now (while WFBitMapS: described by `P_OUT_OF_SYNC`).
    pub fn is_replicating(&self) -> bool {
        let inner = self.inner();
        inner.data.is_some() || inner.out_of_sync_only.is_some()
    }

    /// `pe`: requests waiting for the peer.
    pub fn peer_pending(&self) -> u64 {
        self.inner().tl.pending_acks() as u64 + self.counters.rs_pending.load(Ordering::Relaxed)
    }

    /// `ep`: epochs not yet acknowledged.
    pub fn epochs(&self) -> u64 {
        self.inner().tl.epochs() as u64
    }

    /// Oldest request waiting for its ack (for ko-count).
    fn oldest_waiting_ms(&self) -> Option<u64> {
        self.inner().tl.oldest_waiting_ms()
    }

    /// The resync progress, when one runs.
    pub fn sync_progress(&self) -> Option<SyncProgress> {
        lock(&self.sync).clone()
    }

    fn set_sync_progress(&self, p: Option<SyncProgress>) {
        *lock(&self.sync) = p;
    }

    /// `rdbdadm connect [--discard-my-data]`.
    pub fn connect(&self, discard_my_data: bool) {
        let _ = self.commands.send(Command::Connect { discard_my_data });
    }

    /// `rdbdadm disconnect`: returns once the connection is down (StandAlone).
    pub async fn disconnect(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Disconnect(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// `down`: the peer gets everything written so far (a barrier, up to 10 s), then the
    /// manager stops; returns once it is gone.
    pub async fn shutdown(&self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.flush()).await;
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Asks a connected peer to accept `role` for us. `Ok` when not connected.
    pub async fn request_role(&self, role: Role) -> Result<(), (i32, String)> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::RequestRole(role, tx)).is_err() {
            return Ok(());
        }
        match tokio::time::timeout(std::time::Duration::from_secs(10), rx).await {
            Ok(answer) => answer.unwrap_or(Ok(())),
            Err(_) => Err((
                rdbd_replicator::peer_state::SS_CW_FAILED_BY_PEER,
                "the peer did not answer the state change request within 10 s".into(),
            )),
        }
    }

    /// Our state changed: the peer is told (P_UUIDS, P_STATE).
    pub fn state_changed(&self) {
        let _ = self.commands.send(Command::StateChanged);
    }
}

/// A completed request: its waiter is told, failed blocks are returned.
fn finish(done: Done<Waiter>) -> Option<(u64, u32)> {
    if let Some(w) = done.waiter {
        let _ = w.send(if done.failed {
            PeerOutcome::NotReplicated
        } else {
            PeerOutcome::Acked
        });
    }
    done.failed.then_some((done.sector, done.size_bytes))
}

/// Creates the link of a resource and starts its connection manager (cs WFConnection).
pub fn start(resource: Arc<Resource>, cfg: PeerConfig, changed: Arc<Notify>) -> Arc<PeerLink> {
    let (tx, rx) = mpsc::unbounded_channel();
    let link = Arc::new(PeerLink {
        inner: Mutex::new(LinkInner {
            tl: TransferLog::new(cfg.settings.protocol, cfg.settings.max_epoch_size, 0),
            data: None,
            trim: false,
            flush_waiters: Vec::new(),
            out_of_sync_only: None,
        }),
        resync_lock: Arc::new(tokio::sync::RwLock::new(())),
        counters: LinkCounters::default(),
        sync: Mutex::new(None),
        user_isp: Default::default(),
        peer_isp: Default::default(),
        aftr_isp: Default::default(),
        resync_after: Mutex::new(cfg.settings.resync_after.clone()),
        commands: tx,
        epoch_base: Instant::now(),
        remote_reads: remote_read::RemoteReads::default(),
        next_cfg: Mutex::new(None),
        demote_wait_ms: AtomicU64::new(u64::from(cfg.settings.timeout_ds).max(1) * 100),
        source_gate: source_throttle::SourceGate::default(),
        verify_locks: verify::locks::VerifyLocks::default(),
        ov_start_sector: AtomicU64::new(0),
    });
    after::register(&resource);
    let ctx = session::Ctx {
        resource,
        link: Arc::clone(&link),
        cfg,
        changed,
    };
    // Every line the session logs names the resource and the peer.
    let span = tracing::info_span!(
        "peer",
        resource = %ctx.resource.name,
        peer = %ctx.cfg.peer_name
    );
    tokio::spawn(tracing::Instrument::instrument(
        session::manage(ctx, rx),
        span,
    ));
    link
}

/// The states of a connection that replicate application writes to the peer.
pub fn replicates_in(cs: ConnState) -> bool {
    matches!(
        cs,
        ConnState::Connected
            | ConnState::WFBitMapT
            | ConnState::WFSyncUUID
            | ConnState::SyncSource
            | ConnState::SyncTarget
            | ConnState::PausedSyncS
            | ConnState::PausedSyncT
            | ConnState::VerifyS
            | ConnState::VerifyT
    )
}

/// Starts replication for a resource that was just brought up, when its configuration
/// names a peer. Standalone resources (one host) are left alone.
pub fn start_for(
    config: &rdbd_config::Config,
    node: &str,
    resource: &Arc<Resource>,
    changed: Arc<Notify>,
) -> Result<(), String> {
    let res_cfg = config.resource(&resource.name).map_err(|e| e.to_string())?;
    let Some(peer) = res_cfg.peer_of(node) else {
        return Ok(());
    };
    let me = res_cfg.host(node).map_err(|e| e.to_string())?;
    let local = me
        .address
        .ok_or_else(|| format!("no 'address' configured for this node ({node})"))?;
    let peer_addr = peer
        .address
        .ok_or_else(|| format!("no 'address' configured for the peer {}", peer.name))?;
    let settings = res_cfg.settings();
    if settings.allow_two_primaries {
        return Err(
            "allow-two-primaries is not implemented by rdbd; remove it from the net section".into(),
        );
    }
    let cfg = PeerConfig {
        local,
        peer: peer_addr,
        peer_name: peer.name.clone(),
        local_name: node.to_string(),
        settings,
    };
    tracing::info!(resource = %resource.name, %local, peer = %peer_addr, protocol = %cfg.settings.protocol, "replication with {} starts", peer.name);
    let link = start(Arc::clone(resource), cfg, changed);
    resource.set_peer_link(link);
    Ok(())
}
