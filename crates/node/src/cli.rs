//! The command-line options shared by `rdbd`, `rdbdadm`, `rdbdmeta` and `rdbd-ha`,
//! and starting the daemon in the background.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::options::{host_name, NodeOptions, DEFAULT_CONFIG, DEFAULT_RUN_DIR};

/// `-c/--config`, `--node`, `--run-dir`.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// The configuration file (drbd.conf syntax, or TOML when it ends in .toml).
    #[arg(short = 'c', long = "config", env = "RDBD_CONFIG", default_value = DEFAULT_CONFIG, global = true)]
    pub config: PathBuf,
    /// Which `on NAME { }` section is this node [default: the host name].
    #[arg(long = "node", env = "RDBD_NODE", global = true)]
    pub node: Option<String>,
    /// Where the daemon keeps its sockets, pid and status files.
    #[arg(long = "run-dir", env = "RDBD_RUN_DIR", default_value = DEFAULT_RUN_DIR, global = true)]
    pub run_dir: PathBuf,
}

impl GlobalArgs {
    /// The node options these arguments name.
    pub fn node_options(&self) -> NodeOptions {
        NodeOptions {
            config_path: self.config.clone(),
            node_name: self.node.clone().unwrap_or_else(host_name),
            run_dir: self.run_dir.clone(),
        }
    }
}

/// Why the daemon could not be started in the background.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The daemon binary could not be run.
    #[error("cannot start the rdbd daemon ({binary}): {source}")]
    Exec {
        /// The binary tried.
        binary: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// It started but never answered on its control socket.
    #[error("the rdbd daemon did not come up within {0:?}; see {1}")]
    NoAnswer(Duration, PathBuf),
}

/// The `rdbd` binary: `$RDBD_DAEMON`, else next to the running executable, else `rdbd` on PATH.
pub fn daemon_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("RDBD_DAEMON") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        let sibling = exe.with_file_name("rdbd");
        if sibling.is_file() {
            return sibling;
        }
    }
    PathBuf::from("rdbd")
}

/// Starts `rdbd --foreground` detached (own session, output to `<run-dir>/rdbd.log`)
/// and waits until it answers on its control socket.
pub fn spawn_daemon(opts: &NodeOptions, binary: &std::path::Path) -> Result<(), SpawnError> {
    let exec = |source| SpawnError::Exec {
        binary: binary.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(&opts.run_dir).map_err(exec)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(opts.log_file())
        .map_err(exec)?;
    let log2 = log.try_clone().map_err(exec)?;
    let mut cmd = Command::new(binary);
    cmd.arg("--foreground")
        .arg("--config")
        .arg(&opts.config_path)
        .arg("--node")
        .arg(&opts.node_name)
        .arg("--run-dir")
        .arg(&opts.run_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(exec)?;
    let timeout = Duration::from_secs(10);
    let start = Instant::now();
    while start.elapsed() < timeout {
        if rdbd_control::Client::connect(&opts.run_dir, Duration::from_secs(1)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(exec(std::io::Error::other(format!(
                "it exited with {status}; see {}",
                opts.log_file().display()
            ))));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(SpawnError::NoAnswer(timeout, opts.log_file()))
}
