//! Daemon start-up, the control-socket loop and shutdown.
//!
//! [`run`] binds `<run-dir>/control.sock` and `<run-dir>/nbd.sock` (and TCP where
//! `nbd-address` is set in `global`), writes the pid file, keeps the status file
//! current, and returns when asked to shut down or on SIGTERM/SIGINT, after taking
//! every resource down.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rdbd_control::{Request, Response, MAX_LINE_BYTES};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;

use crate::control::Controller;
use crate::export::{NodeExports, MAX_REQUEST_BYTES};
use crate::options::NodeOptions;

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another daemon answers on this run directory's control socket.
    #[error("an rdbd daemon is already running with run directory {0}")]
    AlreadyRunning(PathBuf),
    /// The configuration does not load.
    #[error(transparent)]
    Config(#[from] rdbd_config::ConfigError),
    /// A file or socket of the run directory could not be set up.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> DaemonError + 'a {
    move |source| DaemonError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The NBD server limits every listener uses.
pub fn nbd_limits() -> rdbd_nbd::ServerLimits {
    rdbd_nbd::ServerLimits {
        max_request_bytes: MAX_REQUEST_BYTES,
        max_requests_in_flight: 128,
        handshake_timeout: Duration::from_secs(10),
    }
}

/// Runs the daemon until shutdown.
pub async fn run(opts: NodeOptions) -> Result<(), DaemonError> {
    std::fs::create_dir_all(&opts.run_dir)
        .map_err(io_err("cannot create run directory", &opts.run_dir))?;
    let control_path = opts.control_socket();
    if UnixStream::connect(&control_path).await.is_ok() {
        return Err(DaemonError::AlreadyRunning(opts.run_dir.clone()));
    }
    let config = rdbd_config::load(&opts.config_path)?;
    for option in config.unimplemented_options() {
        tracing::warn!(option = %option, "option accepted but not implemented yet; it has no effect");
    }

    let control_listener = bind_unix(&control_path)?;
    let nbd_path = opts.nbd_socket();
    let nbd_listener = bind_unix(&nbd_path)?;
    std::fs::write(opts.pid_file(), format!("{}\n", std::process::id()))
        .map_err(io_err("cannot write pid file", &opts.pid_file()))?;

    let exports = Arc::new(NodeExports::default());
    let changed = Arc::new(Notify::new());
    let shutdown = Arc::new(Notify::new());
    let controller = Arc::new(Controller::new(
        opts.clone(),
        Arc::clone(&exports),
        Arc::clone(&changed),
        Arc::clone(&shutdown),
    ));

    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(crate::status_file::run(
        opts.status_file(),
        Arc::clone(&exports),
        Arc::clone(&changed),
    )));
    let nbd_exports = Arc::clone(&exports);
    tasks.push(tokio::spawn(async move {
        if let Err(e) = rdbd_nbd::serve_unix(nbd_listener, nbd_exports, nbd_limits()).await {
            tracing::error!(error = %e, "NBD unix listener failed");
        }
    }));
    if let Some(addr) = config.nbd_address() {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Io {
                what: "cannot listen on nbd-address",
                path: PathBuf::from(addr.to_string()),
                source,
            })?;
        let tcp_exports = Arc::clone(&exports);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = rdbd_nbd::serve_tcp(listener, tcp_exports, nbd_limits()).await {
                tracing::error!(error = %e, "NBD TCP listener failed");
            }
        }));
    }
    if let Some(addr) = config.metrics_address() {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Io {
                what: "cannot listen on metrics-address",
                path: PathBuf::from(addr.to_string()),
                source,
            })?;
        tasks.push(tokio::spawn(crate::metrics::serve(
            listener,
            Arc::clone(&exports),
        )));
    }
    let control_controller = Arc::clone(&controller);
    tasks.push(tokio::spawn(async move {
        control_loop(control_listener, control_controller).await
    }));
    tracing::info!(node = %opts.node_name, run_dir = %opts.run_dir.display(), config = %opts.config_path.display(), "rdbd started");

    wait_for_shutdown(&shutdown).await;
    controller
        .stopping
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // Take everything down that can be; clients still attached lose their connection.
    for resource in exports.all() {
        exports.remove(&resource.name);
        if let Err(e) = crate::control::detach(&resource).await {
            tracing::error!(resource = %resource.name, error = %e, "detach at shutdown failed");
        }
    }
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    for path in [control_path, nbd_path, opts.pid_file(), opts.status_file()] {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("rdbd stopped");
    Ok(())
}

fn bind_unix(path: &Path) -> Result<UnixListener, DaemonError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("cannot remove stale socket", path)(e)),
    }
    UnixListener::bind(path).map_err(io_err("cannot bind socket", path))
}

async fn wait_for_shutdown(shutdown: &Notify) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        shutdown.notified().await;
        return;
    };
    tokio::select! {
        _ = shutdown.notified() => tracing::info!("shutdown requested"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

async fn control_loop(listener: UnixListener, controller: Arc<Controller>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let controller = Arc::clone(&controller);
                tokio::spawn(async move {
                    if let Err(e) = serve_control(stream, controller).await {
                        tracing::debug!(error = %e, "control connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_control(stream: UnixStream, controller: Arc<Controller>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut lines)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && n >= MAX_LINE_BYTES {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                "control request longer than the limit",
            ));
        }
        let response = match serde_json::from_slice::<Request>(&line) {
            Ok(Request::Events { now }) => {
                return crate::events::stream(&mut lines, &mut write, &controller, now).await
            }
            Ok(request) => controller.handle(request).await,
            Err(e) => Response::error(
                rdbd_control::exit_code::USAGE,
                format!("malformed control request: {e}"),
            ),
        };
        let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
        out.push(b'\n');
        write.write_all(&out).await?;
    }
}
