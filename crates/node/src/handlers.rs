//! DRBD's handlers (`handlers { split-brain "..."; fence-peer "..."; ... }`): the
//! commands the daemon runs when something happens that an administrator or a cluster
//! manager must know about or act on.
//!
//! DRBD's kernel calls `/sbin/drbdadm <handler> minor-N` (or `<handler> <resource>` for
//! the connection-wide `fence-peer` / `unfence-peer`), and drbdadm runs the configured
//! command through `/bin/sh -c` with `DRBD_*` variables in the environment. rdbd has no
//! kernel/user split, so the daemon does both steps itself ([`run`]):
//!
//! - the command string runs as `/bin/sh -c "<command>"` (no extra arguments, as
//!   drbdadm), in its own process group, stdin from /dev/null, its output logged;
//! - the environment is DRBD's ([`env::helper_env`]): `HOME=/`, `TERM=linux`,
//!   `PATH=/sbin:/usr/sbin:/bin:/usr/bin`, `DRBD_RESOURCE`, `DRBD_MINOR`,
//!   `DRBD_VOLUME`, `DRBD_LL_DISK`, `DRBD_PEER`, `DRBD_PEERS`, `DRBD_PEER_AF`,
//!   `DRBD_PEER_ADDRESS`, `DRBD_CONF`, and rdbd's `RDBD_CONFIG` / `RDBD_NODE` /
//!   `RDBD_RUN_DIR` so that a handler calling `rdbdadm` reaches this node's daemon;
//! - before and after, DRBD's log lines: `helper command: rdbdadm split-brain minor-0`
//!   and `helper command: rdbdadm split-brain minor-0 exit code 0 (0x0)`, and the
//!   events2 lines `call helper ...` / `response helper ...` ([`helper_events`]);
//! - a command that runs longer than the timeout (default [`DEFAULT_TIMEOUT`]) is killed
//!   with its process group and counts as failed (exit code 255 towards callers such as
//!   fence-peer; DRBD itself waits forever).
//!
//! A handler that is not configured is not run; callers see exit code 0, as drbdadm
//! answers for a handler missing from the configuration.
//!
//! Where they run (DRBD's places): `initial-split-brain`, `split-brain`,
//! `pri-lost-after-sb`, `pri-lost` from the session's sync handshake (the verdict of
//! `rdbd_replicator::sync_handshake`); `before-resync-target` / `before-resync-source`
//! / `after-resync-target` / `unfence-peer` around a resync ([`resync`]); `fence-peer`
//! when a Primary loses its peer and before a disconnected node is promoted
//! ([`fence_peer`]); `pri-on-incon-degr` ([`after_connection_lost`]); `local-io-error`
//! ([`on_local_io_error`]); `out-of-sync` is for online verify (`run(resource,
//! Handler::OutOfSync)`).
//!
//! [`fencing`] holds `fencing resource-only | resource-and-stonith`: the I/O freeze
//! (`susp-fen`) and the fence-peer exit codes.

pub mod env;
pub mod fence_peer;
pub mod fencing;
pub mod resync;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;

use rdbd_types::{DiskState, Role};

use crate::resource::{Resource, ResourceState};

pub use fencing::{FenceGate, FencePolicy, FenceVerdict};

/// How long a handler may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The most handler output that is logged, per stream.
pub const MAX_LOGGED_OUTPUT_BYTES: usize = 4096;

/// The usermode helper name in the log lines (DRBD: `/sbin/drbdadm`).
pub const HELPER_NAME: &str = "rdbdadm";

/// The handlers of DRBD 8.4's `handlers { }` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Handler {
    /// A Primary has no UpToDate data left (neither local nor the peer's).
    PriOnInconDegr,
    /// `after-sb-*pri call-pri-lost-after-sb` decided this Primary loses, and it could not demote.
    PriLostAfterSb,
    /// `rr-conflict call-pri-lost`: this Primary would become SyncTarget.
    PriLost,
    /// Split brain detected, before any automatic recovery.
    InitialSplitBrain,
    /// Split brain detected and not resolved: the connection is dropped.
    SplitBrain,
    /// A Primary with `fencing` lost its UpToDate peer: outdate (or shoot) it.
    FencePeer,
    /// The peer is reachable again after fencing.
    UnfencePeer,
    /// `on-io-error call-local-io-error`: the backing disk failed.
    LocalIoError,
    /// This node is about to become SyncTarget (its data turns Inconsistent).
    BeforeResyncTarget,
    /// This node finished a resync as SyncTarget.
    AfterResyncTarget,
    /// This node is about to become SyncSource.
    BeforeResyncSource,
    /// Online verify found blocks out of sync.
    OutOfSync,
}

impl Handler {
    /// The handler's drbd.conf name.
    pub fn name(self) -> &'static str {
        match self {
            Handler::PriOnInconDegr => "pri-on-incon-degr",
            Handler::PriLostAfterSb => "pri-lost-after-sb",
            Handler::PriLost => "pri-lost",
            Handler::InitialSplitBrain => "initial-split-brain",
            Handler::SplitBrain => "split-brain",
            Handler::FencePeer => "fence-peer",
            Handler::UnfencePeer => "unfence-peer",
            Handler::LocalIoError => "local-io-error",
            Handler::BeforeResyncTarget => "before-resync-target",
            Handler::AfterResyncTarget => "after-resync-target",
            Handler::BeforeResyncSource => "before-resync-source",
            Handler::OutOfSync => "out-of-sync",
        }
    }

    /// Connection-wide handlers are called with the resource name (DRBD's
    /// `conn_khelper`), the others with `minor-N` (`drbd_khelper`).
    pub fn per_connection(self) -> bool {
        matches!(self, Handler::FencePeer | Handler::UnfencePeer)
    }

    /// The handler the sync handshake asked for.
    pub fn from_handshake(h: rdbd_replicator::sync_handshake::Handler) -> Handler {
        use rdbd_replicator::sync_handshake::Handler as H;
        match h {
            H::InitialSplitBrain => Handler::InitialSplitBrain,
            H::SplitBrain => Handler::SplitBrain,
            H::PriLostAfterSb => Handler::PriLostAfterSb,
            H::PriLost => Handler::PriLost,
        }
    }
}

/// The peer as the handlers' environment describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's host name (`DRBD_PEER`, `DRBD_PEERS`).
    pub name: String,
    /// The peer's replication address (`DRBD_PEER_ADDRESS`, `DRBD_PEER_AF`).
    pub address: SocketAddr,
}

/// Everything the handlers of one resource need, fixed at `up`.
#[derive(Debug, Clone)]
pub struct HandlerConfig {
    /// The commands of the `handlers { }` section, by handler name.
    pub commands: BTreeMap<String, String>,
    /// The resource name.
    pub resource: String,
    /// The DRBD minor.
    pub minor: u32,
    /// The volume number (rdbd resources have one volume, 0).
    pub volume: u32,
    /// The backing disk (`DRBD_LL_DISK`).
    pub backing_disk: String,
    /// The peer, for replicated resources.
    pub peer: Option<PeerInfo>,
    /// The configuration file (`DRBD_CONF`, `RDBD_CONFIG`).
    pub config_path: PathBuf,
    /// This node's name (`RDBD_NODE`).
    pub node_name: String,
    /// This node's run directory (`RDBD_RUN_DIR`).
    pub run_dir: PathBuf,
    /// `disk { fencing }`.
    pub fencing: FencePolicy,
    /// `disk { on-io-error }`.
    pub on_io_error: String,
    /// How long a handler may run.
    pub timeout: Duration,
}

impl HandlerConfig {
    /// The handler configuration of `res` on `node`. `minor` and `backing_disk` are
    /// the resource's as brought up.
    pub fn new(
        res: &rdbd_config::Resource,
        opts: &crate::NodeOptions,
        minor: u32,
        backing_disk: String,
    ) -> HandlerConfig {
        let settings = res.settings();
        let peer = res.peer_of(&opts.node_name).and_then(|h| {
            h.address.map(|address| PeerInfo {
                name: h.name.clone(),
                address,
            })
        });
        HandlerConfig {
            commands: res
                .handlers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_str().to_string()))
                .collect(),
            resource: res.name.clone(),
            minor,
            volume: 0,
            backing_disk,
            peer,
            config_path: opts.config_path.clone(),
            node_name: opts.node_name.clone(),
            run_dir: opts.run_dir.clone(),
            fencing: FencePolicy::parse(&settings.fencing),
            on_io_error: settings.on_io_error.clone(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The configured command of `handler` (`outdate-peer` is DRBD's old name of
    /// `fence-peer` and is accepted for it).
    pub fn command(&self, handler: Handler) -> Option<&str> {
        let found = self.commands.get(handler.name());
        let found = match (found, handler) {
            (None, Handler::FencePeer) => self.commands.get("outdate-peer"),
            (f, _) => f,
        };
        found.map(String::as_str).filter(|c| !c.trim().is_empty())
    }
}

/// Per-resource handler state: the configuration and the fencing freeze.
#[derive(Debug, Default)]
pub struct Hooks {
    config: OnceLock<HandlerConfig>,
    /// The `susp-fen` I/O freeze.
    pub fence: FenceGate,
    local_io_error_running: AtomicBool,
}

impl Hooks {
    /// Sets the configuration (once, at `up`).
    pub fn configure(&self, config: HandlerConfig) {
        if config.fencing.fences() && config.command(Handler::FencePeer).is_none() {
            tracing::warn!(resource = %config.resource, "fencing is configured without a fence-peer handler: a Primary that loses its peer cannot fence it (with resource-and-stonith its I/O stays frozen until resume-io)");
        }
        let _ = self.config.set(config);
    }

    /// The configuration, once set.
    pub fn config(&self) -> Option<&HandlerConfig> {
        self.config.get()
    }

    /// `disk { fencing }` (dont-care before `configure`).
    pub fn fencing(&self) -> FencePolicy {
        self.config().map_or(FencePolicy::DontCare, |c| c.fencing)
    }
}

/// How a handler run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperOutcome {
    /// No command is configured for the handler.
    NotConfigured,
    /// The command exited with this code.
    Exited(i32),
    /// The command was killed by this signal.
    Signalled(i32),
    /// The command ran longer than the timeout and was killed.
    TimedOut,
    /// `/bin/sh` could not be started.
    SpawnFailed(String),
}

impl HelperOutcome {
    /// The exit code callers act on, as DRBD sees it: 0 when nothing ran (drbdadm
    /// answers 0 for a handler that is not configured), 255 for a run that did not end
    /// with an exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            HelperOutcome::NotConfigured => 0,
            HelperOutcome::Exited(c) => *c,
            HelperOutcome::Signalled(_)
            | HelperOutcome::TimedOut
            | HelperOutcome::SpawnFailed(_) => 255,
        }
    }

    /// The wait status DRBD prints after the exit code (`(0x400)` for exit code 4).
    pub fn wait_status(&self) -> i32 {
        match self {
            HelperOutcome::Signalled(sig) => *sig,
            other => (other.exit_code() & 0xff) << 8,
        }
    }
}

/// The events2 stream's helper lines (`call helper ...`, `response helper ...`).
fn events_channel() -> &'static broadcast::Sender<String> {
    static CHANNEL: OnceLock<broadcast::Sender<String>> = OnceLock::new();
    CHANNEL.get_or_init(|| broadcast::channel(256).0)
}

/// Subscribes to the events2 helper lines of every resource of this daemon.
pub fn helper_events() -> broadcast::Receiver<String> {
    events_channel().subscribe()
}

/// The `name:... volume:... minor:...` part of the events2 helper lines.
fn event_object(cfg: &HandlerConfig, handler: Handler) -> String {
    match (&cfg.peer, handler.per_connection()) {
        (Some(peer), true) => format!(
            "name:{} peer-node-id:1 conn-name:{} helper:{}",
            cfg.resource,
            peer.name,
            handler.name()
        ),
        _ => format!(
            "name:{} volume:{} minor:{} helper:{}",
            cfg.resource,
            cfg.volume,
            cfg.minor,
            handler.name()
        ),
    }
}

/// Runs `handler` for `resource` and waits for it (up to the configured timeout).
pub async fn run(resource: &Resource, handler: Handler) -> HelperOutcome {
    let Some(cfg) = resource.hooks.config() else {
        tracing::debug!(resource = %resource.name, handler = handler.name(), "handler not run: the resource has no handler configuration");
        return HelperOutcome::NotConfigured;
    };
    run_with(cfg, handler).await
}

/// [`run`] with an explicit configuration.
pub async fn run_with(cfg: &HandlerConfig, handler: Handler) -> HelperOutcome {
    let target = if handler.per_connection() {
        cfg.resource.clone()
    } else {
        format!("minor-{}", cfg.minor)
    };
    let Some(command) = cfg.command(handler) else {
        tracing::debug!(resource = %cfg.resource, handler = handler.name(), "no {} handler configured", handler.name());
        return HelperOutcome::NotConfigured;
    };
    tracing::info!(resource = %cfg.resource, command, "helper command: {HELPER_NAME} {} {target}", handler.name());
    let _ = events_channel().send(format!("call helper {}", event_object(cfg, handler)));
    let outcome = spawn_and_wait(cfg, handler, command).await;
    let line = format!(
        "helper command: {HELPER_NAME} {} {target} exit code {} (0x{:x})",
        handler.name(),
        outcome.exit_code(),
        outcome.wait_status()
    );
    match &outcome {
        HelperOutcome::Exited(0) => tracing::info!(resource = %cfg.resource, "{line}"),
        HelperOutcome::Exited(_) => tracing::warn!(resource = %cfg.resource, "{line}"),
        other => tracing::warn!(resource = %cfg.resource, outcome = ?other, "{line}"),
    }
    let _ = events_channel().send(format!(
        "response helper {} status:{}",
        event_object(cfg, handler),
        outcome.exit_code()
    ));
    outcome
}

async fn spawn_and_wait(cfg: &HandlerConfig, handler: Handler, command: &str) -> HelperOutcome {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .envs(env::helper_env(cfg))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(resource = %cfg.resource, handler = handler.name(), error = %e, "cannot start /bin/sh for the handler");
            return HelperOutcome::SpawnFailed(e.to_string());
        }
    };
    let pid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_task = tokio::spawn(read_limited(stdout));
    let err_task = tokio::spawn(read_limited(stderr));
    let outcome = match tokio::time::timeout(cfg.timeout, child.wait()).await {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => HelperOutcome::Exited(code),
                (None, Some(sig)) => HelperOutcome::Signalled(sig),
                (None, None) => HelperOutcome::Exited(255),
            }
        }
        Ok(Err(e)) => HelperOutcome::SpawnFailed(e.to_string()),
        Err(_) => {
            tracing::error!(resource = %cfg.resource, handler = handler.name(), timeout_s = cfg.timeout.as_secs(), "the handler ran too long; killing it");
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) with a negative pid signals the process group the
                // child leads (process_group(0) above); no memory is involved.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.wait().await;
            HelperOutcome::TimedOut
        }
    };
    for (stream, task) in [("stdout", out_task), ("stderr", err_task)] {
        if let Ok(text) = task.await {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!(resource = %cfg.resource, handler = handler.name(), stream, "{line}");
            }
        }
    }
    outcome
}

/// Reads a pipe to its end, keeping the first [`MAX_LOGGED_OUTPUT_BYTES`].
async fn read_limited<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_LOGGED_OUTPUT_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// Starts `handler` without waiting for it (notifications: split brain, resync end).
pub fn spawn(resource: &std::sync::Arc<Resource>, handler: Handler) {
    let resource = std::sync::Arc::clone(resource);
    tokio::spawn(async move {
        run(&resource, handler).await;
    });
}

/// `on-io-error call-local-io-error`: runs the local-io-error handler (in the
/// background) when the resource is configured so. Called for every local I/O error;
/// runs at most one handler at a time per resource.
pub fn on_local_io_error(resource: &std::sync::Arc<Resource>) {
    let Some(cfg) = resource.hooks.config() else {
        return;
    };
    if cfg.on_io_error != "call-local-io-error" {
        return;
    }
    if resource
        .hooks
        .local_io_error_running
        .swap(true, Ordering::SeqCst)
    {
        return;
    }
    let resource = std::sync::Arc::clone(resource);
    tokio::spawn(async move {
        run(&resource, Handler::LocalIoError).await;
        resource
            .hooks
            .local_io_error_running
            .store(false, Ordering::SeqCst);
    });
}

/// `rdbdadm resume-io`: ends a `susp-fen` freeze (DRBD `drbd_adm_resume_io`), whatever
/// fence-peer said; writes that waited complete (the blocks the peer lacks stay marked
/// out of sync).
pub fn resume_io(resource: &Resource) {
    if resource.hooks.fence.is_frozen() {
        tracing::warn!(resource = %resource.name, "resume-io: I/O resumes although the peer was not fenced");
    }
    resource.hooks.fence.resume();
}

/// Whether a state change leaves a Primary without any UpToDate data, local or the
/// peer's, when it had some before (DRBD's trigger of `pri-on-incon-degr`).
pub fn lost_all_up_to_date_data(old: &ResourceState, new: &ResourceState) -> bool {
    let degraded = |s: &ResourceState| {
        s.role == Role::Primary && s.disk < DiskState::UpToDate && s.peer_disk < DiskState::UpToDate
    };
    degraded(new) && !degraded(old)
}

/// After a connection ended (and the session's cleanup): `pri-on-incon-degr` when this
/// Primary has no UpToDate data left.
pub fn after_connection_lost(resource: &std::sync::Arc<Resource>, before: &ResourceState) {
    if lost_all_up_to_date_data(before, &resource.state()) {
        spawn(resource, Handler::PriOnInconDegr);
    }
}

#[cfg(test)]
mod tests;
