//! Handlers of the requests `rdbdadm` sends on `<run-dir>/control.sock`.
//!
//! Each request is answered with one line; a failure names the resource and the
//! reason, with drbdadm's exit code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rdbd_config::{Config, Host};
use rdbd_control::exit_code;
use rdbd_control::{Request, Response};
use rdbd_storage::{DiskOptions, LocalDisk};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::export::NodeExports;
use crate::meta::{meta_disk_kind, ResourceMeta};
use crate::options::NodeOptions;
use crate::resource::{Resource, ResourceSetup};

/// The daemon state the handlers work on.
pub struct Controller {
    /// Which node this is and where its files live.
    pub opts: NodeOptions,
    /// The resources that are up.
    pub exports: Arc<NodeExports>,
    /// Notified on every state change (the status file listens).
    pub changed: Arc<Notify>,
    /// Notified when the daemon should exit.
    pub shutdown: Arc<Notify>,
    /// Set once the daemon is stopping: the status file is no longer written.
    pub stopping: std::sync::atomic::AtomicBool,
    /// Per-resource TCP NBD listeners (`nbd-address` in an `on` section).
    tcp_listeners: Mutex<HashMap<String, JoinHandle<()>>>,
    /// The configuration each resource runs with (for `adjust`).
    pub running: crate::lifecycle::RunningConfigs,
}

impl Controller {
    /// A controller with no resource up.
    pub fn new(
        opts: NodeOptions,
        exports: Arc<NodeExports>,
        changed: Arc<Notify>,
        shutdown: Arc<Notify>,
    ) -> Self {
        Controller {
            opts,
            exports,
            changed,
            shutdown,
            stopping: std::sync::atomic::AtomicBool::new(false),
            tcp_listeners: Mutex::new(HashMap::new()),
            running: crate::lifecycle::RunningConfigs::default(),
        }
    }

    /// Handles one request.
    pub async fn handle(&self, request: Request) -> Response {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "control",
            op = request.op_name(),
            resource = request.resource()
        );
        let response = async {
            match request {
                Request::Ping => Response::ok(),
                Request::Up { resource } => self.up(&resource).await,
                Request::Down { resource } => self.down(&resource).await,
                Request::Primary { resource, force } => match self.exports.get(&resource) {
                    Some(r) => state_result(&r, r.promote(force).await),
                    None => not_up(&resource),
                },
                Request::Secondary { resource } => match self.exports.get(&resource) {
                    Some(r) => state_result(&r, r.demote().await),
                    None => not_up(&resource),
                },
                Request::Status { resource } => self.status(resource.as_deref()),
                Request::Admin {
                    resource,
                    command:
                        command @ (rdbd_control::AdminCommand::Verify { .. }
                        | rdbd_control::AdminCommand::PauseSync
                        | rdbd_control::AdminCommand::ResumeSync),
                } => match self.exports.get(&resource) {
                    Some(r) => crate::peer::sync_admin(&r, command).await,
                    None => not_up(&resource),
                },
                Request::Admin { resource, command } => match self.exports.get(&resource) {
                    Some(r) => state_result(&r, r.admin(command).await),
                    None => not_up(&resource),
                },
                Request::Connect {
                    resource,
                    discard_my_data,
                } => {
                    if let Some(r) = self.exports.get(&resource) {
                        // drbd_adm_connect: a resource that is not StandAlone has its
                        // net configuration already (drbdsetup exits 10).
                        let cstate = r.state().cstate;
                        if cstate != rdbd_types::ConnState::StandAlone && r.peer_link().is_some() {
                            return Response::error(
                                exit_code::CONFIG,
                                format!(
                                    "{resource}: Failure: (125) Device has a net-config (use disconnect first); it is {cstate}"
                                ),
                            );
                        }
                    }
                    self.connect(&resource, true, discard_my_data).await
                }
                Request::Disconnect { resource } => self.connect(&resource, false, false).await,
                Request::Attach { resource } => self.attach(&resource).await,
                Request::Detach { resource } => match self.exports.get(&resource) {
                    Some(r) => {
                        lifecycle_result(&resource, crate::lifecycle::detach::detach(&r).await)
                    }
                    None => not_up(&resource),
                },
                Request::InvalidateRemote { resource } => match self.exports.get(&resource) {
                    Some(r) => {
                        lifecycle_result(&resource, crate::lifecycle::invalidate_remote(&r).await)
                    }
                    None => not_up(&resource),
                },
                Request::Adjust { resource, dry_run } => self.adjust(&resource, dry_run).await,
                Request::Resize {
                    resource,
                    size_bytes,
                    assume_clean,
                    assume_peer_has_space,
                    force,
                } => match self.exports.get(&resource) {
                    Some(r) => {
                        let opts = crate::lifecycle::resize::ResizeOptions {
                            size_bytes,
                            assume_clean,
                            assume_peer_has_space,
                            force,
                        };
                        // The kernel refuses a resize with an ERR_* code, for which
                        // drbdsetup (and so drbdadm) exits 10, not a state change's 11.
                        match crate::lifecycle::resize::resize(&r, opts).await {
                            Ok(message) => Response::Ok { message },
                            Err(e) => {
                                Response::error(exit_code::CONFIG, format!("{resource}: {e}"))
                            }
                        }
                    }
                    None => not_up(&resource),
                },
                Request::Shutdown => self.shutdown_all().await,
                // Streamed by the connection loop (crate::events), never handled here.
                Request::Events { .. } => Response::error(
                    exit_code::USAGE,
                    "events2 is a stream; use it on its own connection",
                ),
            }
        }
        .instrument(span)
        .await;
        if let Response::Error { message, .. } = &response {
            tracing::warn!("{message}");
        }
        // The status file reflects the change before the tool returns.
        if !self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            crate::status_file::write_now(&self.opts.status_file(), &self.exports);
        }
        self.changed.notify_waiters();
        response
    }

    fn status(&self, name: Option<&str>) -> Response {
        match name {
            None => Response::Status {
                resources: crate::status_file::snapshot(&self.exports),
            },
            Some(n) => match self.exports.get(n) {
                Some(r) => Response::Status {
                    resources: vec![r.status()],
                },
                None => not_up(n),
            },
        }
    }

    pub(crate) async fn up(&self, name: &str) -> Response {
        if self.exports.get(name).is_some() {
            return Response::error(
                exit_code::CONFIG,
                format!("{name}: already up (Device is attached to by someone)"),
            );
        }
        let config = match rdbd_config::load(&self.opts.config_path) {
            Ok(c) => c,
            Err(e) => return Response::error(exit_code::CONFIG, e.to_string()),
        };
        for option in config.unimplemented_options() {
            tracing::warn!(option = %option, "option accepted but not implemented yet; it has no effect");
        }
        let setup = match self.setup(&config, name).await {
            Ok(s) => s,
            Err(message) => {
                return Response::error(exit_code::CONFIG, format!("{name}: {message}"))
            }
        };
        let nbd_address = setup.1;
        let resource = Arc::new(Resource::new(setup.0));
        if let Ok(res_cfg) = config.resource(name) {
            resource
                .hooks
                .configure(crate::handlers::HandlerConfig::new(
                    res_cfg,
                    &self.opts,
                    resource.minor,
                    resource.disk.path().display().to_string(),
                ));
        }
        tracing::info!(
            resource = name,
            minor = resource.minor,
            disk = %resource.disk.path().display(),
            engine = resource.disk.engine_name(),
            size_bytes = resource.size_bytes,
            "resource up"
        );
        if let Err(message) = crate::peer::start_for(
            &config,
            &self.opts.node_name,
            &resource,
            Arc::clone(&self.changed),
        ) {
            let _ = detach(&resource).await;
            return Response::error(exit_code::CONFIG, format!("{name}: {message}"));
        }
        self.exports.insert(resource);
        if let Ok(res_cfg) = config.resource(name) {
            self.running.set(name, res_cfg.clone());
        }
        if let Some(addr) = nbd_address {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    let exports = Arc::clone(&self.exports);
                    let task = tokio::spawn(async move {
                        if let Err(e) =
                            rdbd_nbd::serve_tcp(listener, exports, crate::daemon::nbd_limits())
                                .await
                        {
                            tracing::error!(error = %e, "NBD TCP listener failed");
                        }
                    });
                    self.listeners().insert(name.to_string(), task);
                }
                Err(e) => {
                    self.exports.remove(name);
                    return Response::error(
                        exit_code::CONFIG,
                        format!("{name}: cannot listen on nbd-address {addr}: {e}"),
                    );
                }
            }
        }
        Response::ok()
    }

    fn listeners(&self) -> std::sync::MutexGuard<'_, HashMap<String, JoinHandle<()>>> {
        self.tcp_listeners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves the configuration of `name` for this node and opens its disk.
    async fn setup(
        &self,
        config: &Config,
        name: &str,
    ) -> Result<(ResourceSetup, Option<std::net::SocketAddr>), String> {
        let index = config.resources.iter().position(|r| r.name == name);
        let res_cfg = config.resource(name).map_err(|e| e.to_string())?;
        let host = res_cfg
            .host(&self.opts.node_name)
            .map_err(|e| e.to_string())?;
        let minor = minor_of(host, index.unwrap_or(0))?;
        let disk_path = host
            .disk
            .as_ref()
            .ok_or("no 'disk' configured for this node")?;
        let disk =
            LocalDisk::open(disk_path, &DiskOptions::default()).map_err(|e| e.to_string())?;
        let kind = meta_disk_kind(&host.meta_disk)?;
        let settings = res_cfg.settings();
        let fencing_dont_care = settings.fencing == "dont-care";
        let (data_path, al_extents, md_flushes, al_updates) = (
            disk_path.clone(),
            settings.al_extents,
            settings.md_flushes,
            settings.al_updates,
        );
        let (meta, info) = tokio::task::spawn_blocking(move || {
            ResourceMeta::attach(
                &data_path,
                &kind,
                al_extents,
                md_flushes,
                fencing_dont_care,
                al_updates,
            )
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| {
            format!(
                "{e} (on {}; create it with 'rdbdadm create-md {name}')",
                disk_path.display()
            )
        })?;
        if info.apply_al_bits > 0 {
            tracing::info!(
                resource = name,
                bits = info.apply_al_bits,
                "marked additional blocks out of sync based on the activity log"
            );
        }
        if info.size_bytes > disk.size_bytes() {
            return Err(format!(
                "meta-data says {} bytes of data but {} has only {}",
                info.size_bytes,
                disk_path.display(),
                disk.size_bytes()
            ));
        }
        let peer = res_cfg.peer_of(&self.opts.node_name);
        Ok((
            ResourceSetup {
                name: name.to_string(),
                minor,
                disk: Arc::new(disk),
                size_bytes: info.size_bytes,
                gens: info.gens,
                md_flags: info.md_flags,
                fencing: crate::state_change::fencing_of(crate::handlers::FencePolicy::parse(
                    &settings.fencing,
                )),
                meta,
                protocol: peer.map(|_| res_cfg.protocol),
                peer_name: peer.map(|p| p.name.clone()),
                nbd_uri: self.opts.nbd_uri(name),
                write_ordering: crate::resource::write_ordering(
                    settings.disk_flushes,
                    settings.disk_drain,
                ),
            },
            host.nbd_address,
        ))
    }

    async fn down(&self, name: &str) -> Response {
        let Some(resource) = self.exports.get(name) else {
            // Down already: drbdsetup's `down` of an unknown resource succeeds too.
            return Response::ok();
        };
        if let Err(e) = resource.demote().await {
            return Response::error(exit_code::STATE_CHANGE_FAILED, format!("{name}: {e}"));
        }
        if let Some(link) = resource.peer_link() {
            link.shutdown().await;
        }
        self.exports.remove(name);
        self.running.remove(name);
        if let Some(task) = self.listeners().remove(name) {
            task.abort();
        }
        if let Err(e) = detach(&resource).await {
            return Response::error(exit_code::FAILED, format!("{name}: {e}"));
        }
        tracing::info!(resource = name, "resource down");
        Response::ok()
    }

    /// `connect` / `disconnect`.
    async fn connect(&self, name: &str, connect: bool, discard_my_data: bool) -> Response {
        let Some(resource) = self.exports.get(name) else {
            return not_up(name);
        };
        let Some(link) = resource.peer_link() else {
            return Response::error(
                exit_code::CONFIG,
                format!("{name}: the resource has no peer configured (standalone)"),
            );
        };
        if connect {
            link.connect(discard_my_data);
        } else {
            link.disconnect().await;
        }
        Response::ok()
    }

    async fn shutdown_all(&self) -> Response {
        for resource in self.exports.all() {
            if let Response::Error { message, exit_code } = self.down(&resource.name).await {
                return Response::Error { message, exit_code };
            }
        }
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shutdown.notify_one();
        Response::ok()
    }
}

fn state_result(resource: &Resource, result: Result<(), crate::resource::StateError>) -> Response {
    match result {
        Ok(()) => {
            let st = resource.state();
            tracing::info!(resource = %resource.name, role = %st.role, disk = %st.disk, "state changed");
            Response::ok()
        }
        Err(e) => {
            // drbdsetup's exit code for the refusal (17 for "(-2) Need access to UpToDate data").
            let message = format!("{}: {e}", resource.name);
            Response::error(exit_code::for_state_change(&message), message)
        }
    }
}

/// The answer to a lifecycle command (crate::lifecycle).
fn lifecycle_result(name: &str, result: Result<String, String>) -> Response {
    match result {
        Ok(message) => Response::Ok { message },
        Err(e) => Response::error(exit_code::STATE_CHANGE_FAILED, format!("{name}: {e}")),
    }
}

fn not_up(name: &str) -> Response {
    Response::error(
        exit_code::CONFIG,
        format!("{name}: No such resource (it is not up on this node)"),
    )
}

/// The minor of a resource: `minor N`, or N from `device /dev/drbdN`, or its
/// position in the configuration.
fn minor_of(host: &Host, index: usize) -> Result<u32, String> {
    if let Some(minor) = host.minor {
        return Ok(minor);
    }
    if let Some(device) = &host.device {
        let digits = device.trim_start_matches("/dev/drbd");
        return digits
            .parse()
            .map_err(|_| format!("cannot take a minor number from device '{device}'"));
    }
    u32::try_from(index).map_err(|_| "too many resources".to_string())
}

/// Flushes the data and writes the bitmap and the clean superblock.
pub async fn detach(resource: &Resource) -> Result<(), String> {
    resource
        .flush()
        .await
        .map_err(|e| format!("flushing the disk failed: {e}"))?;
    resource
        .meta
        .detach()
        .await
        .map_err(|e| format!("writing the meta-data at detach failed: {e}"))
}
