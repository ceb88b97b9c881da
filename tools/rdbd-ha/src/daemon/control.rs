//! The control socket (`RUN_DIR/rdbd-ha.sock`): one JSON request line, one JSON
//! response line. Used by `rdbd-ha status|standby|takeover|maintenance`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::error::{HaError, Result};

/// The longest request line accepted, in bytes.
pub const MAX_REQUEST_BYTES: u64 = 4096;

/// A control request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// The node's and the peer's state.
    Status,
    /// Hand every group to the peer (and prefer it until `takeover`).
    Standby,
    /// Take every group (or one) here; clears standby and give-ups.
    Takeover {
        /// One group only.
        #[serde(default)]
        group: Option<String>,
    },
    /// Stop or resume taking decisions and monitoring.
    Maintenance {
        /// On or off.
        on: bool,
    },
}

/// A control response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was accepted.
    pub ok: bool,
    /// What happened.
    pub message: String,
    /// The status (for `status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// A request waiting for the main loop's answer.
pub type Pending = (Request, Sender<Response>);

/// The socket path in a run directory.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join("rdbd-ha.sock")
}

/// Listens on the control socket; requests go to `tx`.
pub fn spawn_server(run_dir: &Path, tx: Sender<Pending>) -> Result<()> {
    let path = socket_path(run_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(|source| HaError::Io {
        what: format!("bind control socket {}", path.display()),
        error: source,
    })?;
    let _ = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let tx = tx.clone();
                let _ = std::thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || serve(conn, tx));
            }
        });
    Ok(())
}

fn serve(conn: UnixStream, tx: Sender<Pending>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let Ok(read) = conn.try_clone() else { return };
    if BufReader::new(read.take(MAX_REQUEST_BYTES))
        .read_line(&mut line)
        .is_err()
    {
        return;
    }
    let response = match serde_json::from_str::<Request>(line.trim()) {
        Ok(req) => {
            let (rtx, rrx) = mpsc::channel();
            if tx.send((req, rtx)).is_err() {
                return;
            }
            rrx.recv_timeout(Duration::from_secs(10))
                .unwrap_or(Response {
                    ok: false,
                    message: "the daemon did not answer".into(),
                    status: None,
                })
        }
        Err(e) => {
            warn!(error = %e, "bad control request");
            Response {
                ok: false,
                message: format!("bad request: {e}"),
                status: None,
            }
        }
    };
    let mut conn = conn;
    let text = serde_json::to_string(&response).unwrap_or_else(|_| "{}".into());
    let _ = writeln!(conn, "{text}");
}

/// Sends one request to a running daemon.
pub fn call(run_dir: &Path, req: &Request) -> Result<Response> {
    let path = socket_path(run_dir);
    let io = |what: String| {
        move |source| HaError::Io {
            what,
            error: source,
        }
    };
    let mut conn = UnixStream::connect(&path).map_err(io(format!(
        "connect to {} (is rdbd-ha running?)",
        path.display()
    )))?;
    conn.set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(io("set timeout".into()))?;
    let text = serde_json::to_string(req).unwrap_or_default();
    writeln!(conn, "{text}").map_err(io("send request".into()))?;
    let mut line = String::new();
    BufReader::new(conn.take(1 << 20))
        .read_line(&mut line)
        .map_err(io("read response".into()))?;
    serde_json::from_str(line.trim())
        .map_err(|e| HaError::Invalid(format!("bad response from the daemon: {e}")))
}
