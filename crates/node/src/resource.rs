//! One resource's live state on this node and its I/O path.
//!
//! A [`Resource`] exists from `up` to `down`. Its role, disk and connection states
//! and its generation identifiers are owned by the state machine of
//! `rdbd_replicator::state`, behind one mutex ([`crate::core_driver::Core`]), so that role
//! changes and NBD opens are decided atomically: a Secondary never gains a client, and a
//! resource with a client never becomes Secondary. [`ResourceState`] is a snapshot of it.
//!
//! Invariants:
//! - `open_clients > 0` implies `role == Primary`.
//! - Every byte range handed to the disk lies inside `size_bytes` (the NBD server
//!   checks the range before calling, [`Resource::check_range`] asserts it again).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rdbd_control::status::{Counters, ResourceStatus};
use rdbd_storage::{LocalDisk, StorageError};
use rdbd_types::{AlignedBuf, ConnState, DiskState, Protocol, Role};

use crate::core_driver::{Core, Stepped};
use crate::meta::{MetaIoError, ResourceMeta};
use rdbd_replicator::generation::Generations;
use rdbd_replicator::state::{Event, Request};

/// How long `secondary` waits for NBD clients that are disconnecting before it refuses
/// with "held open".
const LEAVING_CLIENT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A request failed on the local disk or its meta-data.
#[derive(Debug, thiserror::Error)]
pub enum ResourceIoError {
    /// The data I/O failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Writing the activity log or the bitmap failed.
    #[error("meta-data: {0}")]
    Meta(#[from] MetaIoError),
}

/// Why a role change or an open was refused. The texts follow DRBD's
/// "State change failed: (code) reason" so that scripts matching them keep working.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Promotion without UpToDate data and without `--force`.
    #[error("State change failed: (-2) Need access to UpToDate data (disk is {0}; use 'primary --force' to make it UpToDate)")]
    NeedUpToDate(DiskState),
    /// Promotion without a connection while fencing could not outdate the peer.
    #[error("State change failed: (-7) Refusing to be Primary while peer is not outdated")]
    PrimaryNop,
    /// The peer refused the change (two-phase state change, or it is Primary).
    #[error("State change failed: ({0}) {1}")]
    PeerRefused(i32, String),
    /// Demotion or `down` while NBD clients have the export open.
    #[error(
        "State change failed: (-12) Device is held open by someone ({0} NBD client(s) connected)"
    )]
    HeldOpen(u32),
    /// An NBD client tried to open a Secondary.
    #[error(
        "resource {0} is Secondary: it may only be opened on the Primary (rdbdadm primary {0})"
    )]
    NotPrimary(String),
    /// The resource has no disk attached.
    #[error("resource {0} has no disk attached")]
    Diskless(String),
    /// `outdate` of data that is not consistent.
    #[error(
        "State change failed: (-16) Disk state is lower than outdated: {0} data cannot be outdated"
    )]
    CannotOutdate(DiskState),
    /// A command that needs a Secondary was given to a Primary.
    #[error("State change failed: (-1) Refusing to {0} a Primary (rdbdadm secondary first)")]
    IsPrimary(&'static str),
    /// A command that needs the peer to be away was given while connected.
    #[error("{0} while connected is a resync with the peer; disconnect first")]
    Connected(&'static str),
    /// The new state could not be recorded in the meta-data.
    #[error("cannot record the state change in the meta-data: {0}")]
    MetaData(String),
    /// Refused by DRBD's state rules (crate::state_change), with DRBD's code, text and
    /// what it means here.
    #[error("State change failed: ({}) {}{}", .0.code(), .0, .1)]
    Rule(rdbd_replicator::state::StateError, String),
}

/// Role, disk and connection state as the state machine has them (a snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceState {
    /// This node's role.
    pub role: Role,
    /// This node's disk state.
    pub disk: DiskState,
    /// The connection state.
    pub cstate: ConnState,
    /// The peer's role.
    pub peer_role: Role,
    /// The peer's disk state.
    pub peer_disk: DiskState,
    /// NBD clients that have the export open.
    pub open_clients: u32,
}

/// Byte and request counters, updated lock-free on the I/O path.
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Bytes written to the local disk.
    pub disk_written_bytes: AtomicU64,
    /// Bytes read from the local disk.
    pub disk_read_bytes: AtomicU64,
    /// Bytes sent to the peer.
    pub net_sent_bytes: AtomicU64,
    /// Bytes received from the peer.
    pub net_received_bytes: AtomicU64,
    /// Local requests in progress.
    pub local_pending: AtomicU64,
    /// Application requests accepted and not yet completed.
    pub app_pending: AtomicU64,
    /// Activity-log transactions written.
    pub al_writes: AtomicU64,
    /// Bitmap pages written.
    pub bm_writes: AtomicU64,
    /// Read requests served.
    pub read_requests: AtomicU64,
    /// Requests that changed data (write, trim, write-zeroes).
    pub write_requests: AtomicU64,
    /// Time from accepting a write to completing it.
    pub write_latency: crate::metrics::LatencyHistogram,
}

/// A resource that is up on this node.
#[derive(Debug)]
pub struct Resource {
    /// The resource name (also the NBD export name).
    pub name: String,
    /// The DRBD minor number.
    pub minor: u32,
    /// The backing device.
    pub disk: Arc<LocalDisk>,
    /// The usable size at `up`, in bytes ([`Resource::size_bytes_now`] after a resize).
    pub size_bytes: u64,
    /// The usable size now (grows with `resize`, crate::lifecycle::resize).
    size_now_bytes: AtomicU64,
    /// Every data-changing request holds it shared; `resize` holds it exclusively while
    /// the meta-data moves.
    pub io_gate: tokio::sync::RwLock<()>,
    /// The replication protocol, `None` for a standalone resource.
    pub protocol: Option<Protocol>,
    /// The peer's host name, `None` for a standalone resource.
    pub peer_name: Option<String>,
    /// The export's NBD URI on the unix socket.
    pub nbd_uri: String,
    /// The write-ordering method (`wo:` of /proc/drbd): `f`, `d` or `n`.
    pub write_ordering: char,
    /// Counters of `/proc/drbd`.
    pub io: IoCounters,
    /// The meta-data: activity log, bitmap, identifiers.
    pub meta: ResourceMeta,
    state: Mutex<Core>,
    /// Serializes role changes (each writes the superblock).
    role_change: tokio::sync::Mutex<()>,
    /// The connection to the peer (replicated resources, once `up` started it).
    peer: std::sync::OnceLock<Arc<crate::peer::PeerLink>>,
    /// Handlers, fencing freeze, `--discard-my-data` ([`crate::handlers`]).
    pub hooks: crate::handlers::Hooks,
}

/// Everything needed to bring a resource up.
#[derive(Debug)]
pub struct ResourceSetup {
    /// The resource name.
    pub name: String,
    /// The DRBD minor number.
    pub minor: u32,
    /// The opened backing device.
    pub disk: Arc<LocalDisk>,
    /// The usable size in bytes.
    pub size_bytes: u64,
    /// The generation identifiers read from the meta-data.
    pub gens: Generations,
    /// The superblock flags read from the meta-data.
    pub md_flags: u32,
    /// `fencing` (the disk state at attach depends on it).
    pub fencing: rdbd_replicator::state::Fencing,
    /// The attached meta-data.
    pub meta: ResourceMeta,
    /// The replication protocol, `None` for a standalone resource.
    pub protocol: Option<Protocol>,
    /// The peer's host name.
    pub peer_name: Option<String>,
    /// The export's NBD URI.
    pub nbd_uri: String,
    /// The write-ordering method (`wo:` of /proc/drbd): `f`, `d` or `n`.
    pub write_ordering: char,
}

impl Resource {
    /// A resource in its state right after `up`: Secondary, StandAlone.
    pub fn new(setup: ResourceSetup) -> Self {
        Resource {
            name: setup.name,
            minor: setup.minor,
            disk: setup.disk,
            size_bytes: setup.size_bytes,
            size_now_bytes: AtomicU64::new(setup.size_bytes),
            io_gate: tokio::sync::RwLock::new(()),
            protocol: setup.protocol,
            peer_name: setup.peer_name,
            nbd_uri: setup.nbd_uri,
            write_ordering: setup.write_ordering,
            io: IoCounters::default(),
            meta: setup.meta,
            state: Mutex::new(Core::new(
                rdbd_replicator::state::Config {
                    fencing: setup.fencing,
                    ..Default::default()
                },
                setup.gens,
                setup.md_flags,
            )),
            role_change: tokio::sync::Mutex::new(()),
            peer: std::sync::OnceLock::new(),
            hooks: crate::handlers::Hooks::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        // A poisoned lock means a panic elsewhere; the state itself is still consistent
        // because the state machine changes it only after deciding.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state machine under the state lock.
    pub(crate) fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut self.lock())
    }

    /// The generation identifiers (owned by the state machine).
    pub fn generations(&self) -> Generations {
        self.lock().node().gens()
    }

    /// DRBD's CRASHED_PRIMARY: this node was Primary when it went away and has not been
    /// UpToDate with an UpToDate peer since.
    pub fn crashed_primary(&self) -> bool {
        self.lock().node().crashed_primary()
    }

    /// Changes the identifiers with `f` and writes them with the flags; returns once they
    /// (and every state change before) are durable.
    pub async fn update_generations(
        &self,
        f: impl FnOnce(&mut Generations),
    ) -> Result<Generations, MetaIoError> {
        let (stepped, gens) = self.with_core(|c| {
            let mut s = c.update_generations(f);
            if s.meta.is_none() {
                s.meta = Some(c.current_identifiers());
            }
            (s, c.node().gens())
        });
        self.execute(&stepped).await?;
        Ok(gens)
    }

    /// The connection to the peer, if the resource replicates.
    pub fn peer_link(&self) -> Option<&Arc<crate::peer::PeerLink>> {
        self.peer.get()
    }

    /// Attaches the connection (once, at `up`).
    pub fn set_peer_link(&self, link: Arc<crate::peer::PeerLink>) {
        let _ = self.peer.set(link);
    }

    /// A hard state change the driver observed (the connection's view: cstate, peer role,
    /// disks): `f` edits a snapshot under the lock, the state machine records it as
    /// `Event::Observed` (DRBD's transition rules decide; a refused change is logged and not
    /// applied) and its meta-data write is spawned. `open_clients` is not changed here.
    pub fn update_state<R>(&self, f: impl FnOnce(&mut ResourceState) -> R) -> R {
        let (r, stepped) = self.with_core(|c| {
            let old = c.snapshot();
            let mut st = old.clone();
            let r = f(&mut st);
            debug_assert_eq!(st.open_clients, old.open_clients, "open_clients changed");
            if st == old {
                return (r, Stepped::default());
            }
            let ns = rdbd_wire::DrbdState {
                role: st.role,
                peer: st.peer_role,
                conn: st.cstate,
                disk: st.disk,
                pdsk: st.peer_disk,
                ..c.node().state()
            };
            (r, c.step(Event::Observed(ns)))
        });
        self.execute_in_background(&stepped);
        r
    }

    /// A refusal of DRBD's rules as this crate reports it (the texts scripts match).
    fn refused(&self, e: rdbd_replicator::state::StateError, hint: &str) -> StateError {
        use rdbd_replicator::state::StateError as Rule;
        let st = self.state();
        match e {
            Rule::DeviceInUse => StateError::HeldOpen(st.open_clients),
            Rule::NoUpToDateDisk if hint.is_empty() => StateError::NeedUpToDate(st.disk),
            e => StateError::Rule(e, hint.to_string()),
        }
    }

    /// A snapshot of the current state.
    pub fn state(&self) -> ResourceState {
        self.lock().snapshot()
    }

    /// `primary [--force]` (`Event::Promote`): the superblock records the new generation
    /// and PRIMARY_IND before any client can open the device; a connected peer must agree
    /// first (P_STATE_CHG_REQ, the core's `SendStateRequest`).
    pub async fn promote(&self, force: bool) -> Result<(), StateError> {
        let _serial = self.role_change.lock().await;
        crate::handlers::fence_peer::before_promote(self, force).await?;
        {
            let st = self.state();
            if st.role == Role::Primary {
                return Ok(());
            }
            match st.disk {
                DiskState::UpToDate => {}
                DiskState::Diskless | DiskState::Failed | DiskState::Attaching => {
                    return Err(StateError::Diskless(self.name.clone()))
                }
                other if !force => return Err(StateError::NeedUpToDate(other)),
                _ => {}
            }
        }
        let stepped = self.step_admin(Event::Promote { force }).await?;
        let Some(role) = stepped.state_request() else {
            return self.admin_outcome(&stepped, Request::Promote, "");
        };
        // Two-phase: the peer answers (it refuses while it is Primary).
        let answer = match self.peer_link() {
            Some(link) => link.request_role(role).await,
            None => Ok(()),
        };
        let reply = answer
            .as_ref()
            .map(|_| ())
            .map_err(|(code, _)| rdbd_replicator::state::StateError::from_code(*code));
        let stepped = self.step_admin(Event::StateReply(reply)).await?;
        match (stepped.outcome(Request::Promote), answer) {
            (Some(Ok(())), _) => self.admin_outcome(&stepped, Request::Promote, ""),
            (_, Err((code, text))) if self.state().role != Role::Primary => {
                Err(StateError::PeerRefused(code, text))
            }
            (Some(Err(e)), _) => Err(self.refused(e, "")),
            // Decided while the connection went away (the core's SS_CW_NO_NEED), or by
            // this reply.
            (None, _) if self.state().role == Role::Primary => {
                if let Some(link) = self.peer_link() {
                    link.state_changed();
                }
                Ok(())
            }
            (None, _) => Err(StateError::PeerRefused(
                rdbd_replicator::peer_state::SS_CW_FAILED_BY_PEER,
                "the promotion was not decided".into(),
            )),
        }
    }

    /// Steps an admin event with its meta-data durable first; retries while the
    /// connection is in a transient state (DRBD waits for the next state change).
    pub(crate) async fn step_admin(&self, event: Event) -> Result<Stepped, StateError> {
        let transient = Err(rdbd_replicator::state::StateError::InTransientState);
        for _ in 0..100 {
            let stepped = self
                .step_durable(event)
                .await
                .map_err(|e| StateError::MetaData(e.to_string()))?;
            let request = match event {
                Event::Promote { .. } => Request::Promote,
                Event::Demote => Request::Demote,
                Event::Outdate => Request::Outdate,
                Event::Invalidate => Request::Invalidate,
                Event::Attach { .. } => Request::Attach,
                _ => return Ok(stepped),
            };
            if stepped.outcome(request) != Some(transient) {
                return Ok(stepped);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.step_durable(event)
            .await
            .map_err(|e| StateError::MetaData(e.to_string()))
    }

    /// The result of an admin request the core decided; a change is told to the peer.
    fn admin_outcome(
        &self,
        stepped: &Stepped,
        request: Request,
        hint: &str,
    ) -> Result<(), StateError> {
        match stepped.outcome(request) {
            Some(Err(e)) => Err(self.refused(e, hint)),
            _ => {
                let changed = stepped
                    .actions
                    .iter()
                    .any(|a| matches!(a, rdbd_replicator::state::Action::StateChanged { .. }));
                if let Some(link) = self.peer_link().filter(|_| changed) {
                    link.state_changed();
                }
                Ok(())
            }
        }
    }

    /// `secondary`: refused while clients have the export open. A connected Primary
    /// first waits (bounded by `timeout`) until the peer acknowledged every epoch
    /// (`PeerLink::drain_transfer_log`).
    pub async fn demote(&self) -> Result<(), StateError> {
        self.demote_draining(true).await
    }

    /// The state, after waiting (at most [`LEAVING_CLIENT_GRACE`]) for open clients to
    /// close. In DRBD the last `close()` of the device has returned before `secondary`
    /// runs; an NBD client that has just exited is only noticed when its socket's end
    /// reaches the server and its requests have drained, a moment later.
    async fn state_once_leaving_clients_closed(&self) -> ResourceState {
        let deadline = tokio::time::Instant::now() + LEAVING_CLIENT_GRACE;
        loop {
            let st = self.state();
            if st.open_clients == 0 || tokio::time::Instant::now() >= deadline {
                return st;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn demote_draining(&self, drain: bool) -> Result<(), StateError> {
        let _serial = self.role_change.lock().await;
        {
            let st = self.state_once_leaving_clients_closed().await;
            if st.open_clients > 0 {
                return Err(StateError::HeldOpen(st.open_clients));
            }
            if st.role == Role::Secondary {
                return Ok(());
            }
        }
        if let Some(link) = self.peer_link().filter(|_| drain) {
            if link.is_replicating() && !link.drain_transfer_log().await {
                tracing::warn!(resource = %self.name, "demoting with epochs the peer has not acknowledged");
            }
        }
        // From here on no client can open the device (a client that opened it while we
        // waited makes the rules refuse: SS_DEVICE_IN_USE).
        let stepped = self.step_admin(Event::Demote).await?;
        self.admin_outcome(&stepped, Request::Demote, "")
    }

    /// `outdate`, `invalidate`, `new-current-uuid` on a resource that is up.
    pub async fn admin(&self, command: rdbd_control::AdminCommand) -> Result<(), StateError> {
        use rdbd_control::AdminCommand;
        let _serial = self.role_change.lock().await;
        let st = self.state();
        match command {
            AdminCommand::Outdate => {
                // DRBD: NS(disk, D_OUTDATED). A Primary without a connection refuses
                // (SS_NO_UP_TO_DATE_DISK), lower disks refuse (SS_LOWER_THAN_OUTDATED),
                // a connected node has nothing to do (sanitize_state: Outdated vanishes
                // while Connected).
                if st.disk < DiskState::Outdated {
                    return Err(StateError::CannotOutdate(st.disk));
                }
                let hint = " (a Primary's data cannot be outdated; rdbdadm secondary first)";
                let hint = if st.role == Role::Primary { hint } else { "" };
                let stepped = self.step_admin(Event::Outdate).await?;
                self.admin_outcome(&stepped, Request::Outdate, hint)?;
            }
            AdminCommand::Invalidate => {
                if st.cstate.is_connected() {
                    return Err(StateError::Connected("invalidate"));
                }
                // DRBD: NS(disk, D_INCONSISTENT); a StandAlone Primary refuses
                // (SS_NO_UP_TO_DATE_DISK).
                let hint = " (a Primary's data cannot be invalidated; rdbdadm secondary first)";
                let hint = if st.role == Role::Primary { hint } else { "" };
                let stepped = self.step_admin(Event::Invalidate).await?;
                self.admin_outcome(&stepped, Request::Invalidate, hint)?;
            }
            AdminCommand::NewCurrentUuid { clear_bitmap } => {
                if self.meta.is_detached() {
                    return Err(StateError::MetaData(MetaIoError::Detached.to_string()));
                }
                let stepped = self
                    .step_admin(Event::NewCurrentUuid { clear_bitmap })
                    .await?;
                if let Some(Err(e)) = stepped.outcome(Request::NewCurrentUuid) {
                    return Err(self.refused(e, ""));
                }
            }
            // control.rs hands these to crate::peer::sync_admin; nothing to do here.
            AdminCommand::Verify { .. } | AdminCommand::PauseSync | AdminCommand::ResumeSync => {}
            AdminCommand::ResumeIo => crate::handlers::resume_io(self),
        }
        Ok(())
    }

    /// Registers an NBD client; only a Primary may be opened.
    pub fn open_client(self: &Arc<Self>) -> Result<OpenGuard, StateError> {
        let mut core = self.lock();
        let st = core.snapshot();
        if st.role != Role::Primary {
            return Err(StateError::NotPrimary(self.name.clone()));
        }
        // A diskless Primary serves through an UpToDate peer only (crate::lifecycle).
        if st.disk == DiskState::Diskless
            && !crate::lifecycle::diskless_io::serves_through_peer(&st)
        {
            return Err(StateError::Diskless(self.name.clone()));
        }
        core.step(Event::OpenCount(st.open_clients + 1));
        Ok(OpenGuard {
            resource: Arc::clone(self),
        })
    }

    /// Refuses an open without registering one (NBD_OPT_INFO).
    pub fn check_openable(&self) -> Result<(), StateError> {
        let st = self.state();
        if st.role != Role::Primary {
            return Err(StateError::NotPrimary(self.name.clone()));
        }
        if st.disk == DiskState::Diskless
            && !crate::lifecycle::diskless_io::serves_through_peer(&st)
        {
            return Err(StateError::Diskless(self.name.clone()));
        }
        Ok(())
    }

    /// The usable size now, in bytes.
    pub fn size_bytes_now(&self) -> u64 {
        self.size_now_bytes.load(Ordering::SeqCst)
    }

    /// Records a new usable size (`resize`; only ever grows).
    pub fn set_size_bytes(&self, size_bytes: u64) {
        self.size_now_bytes.fetch_max(size_bytes, Ordering::SeqCst);
    }

    /// Records a smaller usable size (`resize --size N --force`, crate::lifecycle::resize;
    /// the caller holds `io_gate` exclusively and no NBD client is connected).
    pub fn set_shrunk_size_bytes(&self, size_bytes: u64) {
        self.size_now_bytes.fetch_min(size_bytes, Ordering::SeqCst);
    }

    /// Panics unless `[offset, offset+len)` lies inside the device: the NBD layer
    /// validated it already, so a violation here is a bug, not bad input.
    pub fn check_range(&self, offset: u64, len: u64) {
        let end = offset.checked_add(len).expect("range overflows u64");
        assert!(
            end <= self.size_bytes_now(),
            "I/O beyond the device end reached the resource: {offset}+{len} > {}",
            self.size_bytes_now()
        );
    }

    /// Reads from the local disk.
    pub async fn read(&self, offset: u64, len: u32) -> Result<AlignedBuf, StorageError> {
        self.check_range(offset, u64::from(len));
        if self.state().disk == DiskState::Diskless {
            return self.read_through_peer(offset, len).await;
        }
        let _pending = Pending::new(&self.io.local_pending);
        let buf = self.disk.read(offset, len as usize).await?;
        self.io
            .disk_read_bytes
            .fetch_add(u64::from(len), Ordering::Relaxed);
        self.io.read_requests.fetch_add(1, Ordering::Relaxed);
        Ok(buf)
    }

    /// Writes to the local disk; `fua` makes it durable before returning.
    pub async fn write(
        &self,
        offset: u64,
        data: AlignedBuf,
        fua: bool,
    ) -> Result<(), ResourceIoError> {
        let len = data.len() as u64;
        if !self.peer_link().is_some_and(|l| l.is_replicating()) {
            return self
                .modify(
                    offset,
                    len,
                    || self.disk.write(offset, data, fua),
                    None,
                    fua,
                )
                .await;
        }
        // The local write and the P_DATA send read the same memory: no copy.
        let shared = rdbd_types::SharedBuf::from(data);
        let remote = crate::peer::WritePayload::Data(bytes::Bytes::from_owner(shared.clone()));
        self.modify(
            offset,
            len,
            || self.disk.write_shared(offset, shared, fua),
            Some(remote),
            fua,
        )
        .await
    }

    /// The path of every request that changes data: the activity log first, the
    /// out-of-sync mark (no up-to-date peer receives the change), then the data.
    ///
    /// `data_io` is only called once the activity-log transaction covering the range is
    /// durable, so no engine can start the data write early.
    async fn modify<T, F>(
        &self,
        offset: u64,
        len: u64,
        data_io: impl FnOnce() -> F,
        remote: Option<crate::peer::WritePayload>,
        fua: bool,
    ) -> Result<(), ResourceIoError>
    where
        F: std::future::Future<Output = Result<T, StorageError>>,
    {
        self.check_range(offset, len);
        let started = std::time::Instant::now();
        let _app = Pending::new(&self.io.app_pending);
        let _gate = self.io_gate.read().await;
        if self.state().disk == DiskState::Diskless {
            return self.write_through_peer(offset, len, remote, fua).await;
        }
        // susp-fen: no write starts while the peer is being fenced.
        self.hooks.fence.wait_resumed().await;
        // Online verify: no write of a block while it is compared; the write counts as in
        // flight until the end of this function (the peer's ack included). Without a
        // verify run that costs two atomic operations (crate::peer::verify::locks).
        let _verify = match self.peer_link() {
            Some(link) => Some(link.verify_write(offset, len).await),
            None => None,
        };
        let meta_writes = self.meta.begin_write(offset, len).await?;
        self.io
            .al_writes
            .fetch_add(meta_writes.al_transactions, Ordering::Relaxed);
        self.io
            .bm_writes
            .fetch_add(meta_writes.bitmap_pages, Ordering::Relaxed);
        // Replication: the P_DATA is queued before the local write starts, both run
        // concurrently; without a replicating peer the blocks go out of sync.
        let resync_guard = match self.peer_link() {
            Some(link) => Some(link.resync_lock.read().await),
            None => None,
        };
        let to_peer = match (self.peer_link(), remote) {
            // A peer without a usable disk (detached, attaching) gets no data.
            (Some(link), Some(remote)) if self.state().peer_disk >= DiskState::Inconsistent => {
                link.submit_write_split(offset, remote, fua)
            }
            _ => None,
        };
        if to_peer.is_none() {
            self.meta.set_out_of_sync(offset, len);
        }
        let result = {
            let _pending = Pending::new(&self.io.local_pending);
            data_io().await
        };
        drop(resync_guard);
        if let Some(receivers) = to_peer {
            let mut acked = true;
            for rx in receivers {
                acked &= rx.await == Ok(crate::peer::PeerOutcome::Acked);
            }
            if !acked {
                self.meta.set_out_of_sync(offset, len);
                // susp-fen: a write the peer may lack completes only once it is fenced.
                self.hooks.fence.wait_resumed().await;
            }
        }
        self.meta.end_write(offset, len);
        result?;
        self.io.disk_written_bytes.fetch_add(len, Ordering::Relaxed);
        self.io.write_requests.fetch_add(1, Ordering::Relaxed);
        self.io.write_latency.observe(started.elapsed());
        Ok(())
    }

    /// Makes every completed write durable.
    pub async fn flush(&self) -> Result<(), StorageError> {
        let _pending = Pending::new(&self.io.local_pending);
        // The peer flushes too: its barrier ack comes after its disk flush.
        let peer_flush = async {
            if let Some(link) = self.peer_link() {
                link.flush().await;
            }
        };
        let (local, ()) = tokio::join!(self.disk.flush(), peer_flush);
        local
    }

    /// What a discard or zeroing sends to the peer.
    fn zeroes_payload(&self, len: u64) -> Option<crate::peer::WritePayload> {
        u32::try_from(len)
            .ok()
            .map(crate::peer::WritePayload::Zeroes)
    }

    /// Discards a range (reads back as zeroes afterwards).
    pub async fn trim(&self, offset: u64, len: u64, fua: bool) -> Result<(), ResourceIoError> {
        let disk = &self.disk;
        self.modify(
            offset,
            len,
            move || async move {
                disk.discard(offset, len).await?;
                if fua {
                    disk.flush().await?;
                }
                Ok(())
            },
            self.zeroes_payload(len),
            fua,
        )
        .await
    }

    /// Writes zeroes, punching holes where allowed.
    pub async fn write_zeroes(
        &self,
        offset: u64,
        len: u64,
        may_punch_hole: bool,
        fua: bool,
    ) -> Result<(), ResourceIoError> {
        let disk = &self.disk;
        self.modify(
            offset,
            len,
            move || async move {
                disk.write_zeroes(offset, len, may_punch_hole).await?;
                if fua {
                    disk.flush().await?;
                }
                Ok(())
            },
            self.zeroes_payload(len),
            fua,
        )
        .await
    }

    /// The status snapshot for tools and the status file.
    pub fn status(&self) -> ResourceStatus {
        let st = self.state();
        let kib = |a: &AtomicU64| a.load(Ordering::Relaxed) / 1024;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ResourceStatus {
            name: self.name.clone(),
            minor: self.minor,
            role: st.role,
            peer_role: st.peer_role,
            cstate: st.cstate,
            disk: st.disk,
            peer_disk: st.peer_disk,
            protocol: self.peer_link().map(|l| l.protocol()).or(self.protocol),
            peer_name: self.peer_name.clone(),
            suspended: self.hooks.fence.is_frozen(),
            aftr_isp: self
                .peer_link()
                .is_some_and(|l| l.aftr_isp.load(Ordering::SeqCst)),
            peer_isp: self
                .peer_link()
                .is_some_and(|l| l.peer_isp.load(Ordering::SeqCst) && st.cstate.is_connected()),
            user_isp: self
                .peer_link()
                .is_some_and(|l| l.user_isp.load(Ordering::SeqCst)),
            write_ordering: self.write_ordering,
            counters: Counters {
                ns_kib: kib(&self.io.net_sent_bytes),
                nr_kib: kib(&self.io.net_received_bytes),
                dw_kib: kib(&self.io.disk_written_bytes),
                dr_kib: kib(&self.io.disk_read_bytes),
                al_writes: n(&self.io.al_writes),
                bm_writes: n(&self.io.bm_writes),
                local_pending: n(&self.io.local_pending),
                peer_pending: self.peer_link().map_or(0, |l| l.peer_pending()),
                unacked: self
                    .peer_link()
                    .map_or(0, |l| l.counters.unacked.load(Ordering::Relaxed)),
                app_pending: n(&self.io.app_pending),
                epochs: self.peer_link().map_or(1, |l| l.epochs()),
                out_of_sync_kib: self.meta.out_of_sync_kib(),
            },
            sync: self.peer_link().and_then(|l| l.sync_progress()),
            size_bytes: self.size_bytes_now(),
            open_clients: st.open_clients,
            nbd_uri: self.nbd_uri.clone(),
            backing_disk: self.disk.path().display().to_string(),
        }
    }
}

/// The write-ordering method DRBD 8.4 picks from the disk options (drbd_bump_write_ordering):
/// flushes if allowed, else drain, else none. Barriers (`b`) no longer exist in the kernels
/// DRBD 8.4.11 runs on, so `disk-barrier` never selects them.
pub fn write_ordering(disk_flushes: bool, disk_drain: bool) -> char {
    if disk_flushes {
        'f'
    } else if disk_drain {
        'd'
    } else {
        'n'
    }
}

/// Held by an open NBD export; dropping it unregisters the client.
#[derive(Debug)]
pub struct OpenGuard {
    resource: Arc<Resource>,
}

impl OpenGuard {
    /// The opened resource.
    pub fn resource(&self) -> &Arc<Resource> {
        &self.resource
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let mut core = self.resource.lock();
        let open = core.snapshot().open_clients.saturating_sub(1);
        core.step(Event::OpenCount(open));
    }
}

/// Counts a request as pending for as long as it lives.
struct Pending<'a>(&'a AtomicU64);

impl<'a> Pending<'a> {
    fn new(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Pending(counter)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::write_ordering;

    #[test]
    fn write_ordering_follows_the_disk_options() {
        assert_eq!(write_ordering(true, true), 'f');
        assert_eq!(write_ordering(false, true), 'd');
        assert_eq!(write_ordering(false, false), 'n');
    }
}
