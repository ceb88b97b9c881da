//! The options every rdbd binary shares and their defaults.

use std::path::{Path, PathBuf};

/// The default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/rdbd/rdbd.conf";
/// The default run directory.
pub const DEFAULT_RUN_DIR: &str = "/run/rdbd";

/// Which configuration, which node of it, and where the node keeps its sockets and
/// status file. Two nodes can run side by side on one machine with different
/// `node_name` and `run_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOptions {
    /// The configuration file (drbd.conf syntax, or TOML by extension).
    pub config_path: PathBuf,
    /// The `on NAME { }` section that is this node.
    pub node_name: String,
    /// Where `control.sock`, `nbd.sock`, `drbd` and the pid file live.
    pub run_dir: PathBuf,
}

impl NodeOptions {
    /// The control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.run_dir.join("control.sock")
    }

    /// The NBD unix socket.
    pub fn nbd_socket(&self) -> PathBuf {
        self.run_dir.join("nbd.sock")
    }

    /// The `/proc/drbd`-format status file.
    pub fn status_file(&self) -> PathBuf {
        self.run_dir.join("drbd")
    }

    /// The daemon's pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.run_dir.join("rdbd.pid")
    }

    /// The log file of a daemon started in the background.
    pub fn log_file(&self) -> PathBuf {
        self.run_dir.join("rdbd.log")
    }

    /// The NBD URI of a resource's export on the unix socket.
    pub fn nbd_uri(&self, resource: &str) -> String {
        nbd_unix_uri(resource, &self.nbd_socket())
    }
}

/// `nbd+unix:///NAME?socket=PATH`.
pub fn nbd_unix_uri(resource: &str, socket: &Path) -> String {
    format!("nbd+unix:///{resource}?socket={}", socket.display())
}

/// This machine's host name, the default node name.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    // drbdadm matches `on` sections against the short name (uname -n up to the first dot).
    name.split('.').next().unwrap_or(&name).to_string()
}
