//! `rdbd-ha`: the failover supervisor's command line. `run` is the daemon; `status`,
//! `standby`, `takeover` and `maintenance` talk to it over its control socket; `check`
//! and `convert` read a configuration (TOML, or heartbeat's ha.cf directory).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use rdbd_ha::config::Config;
use rdbd_ha::daemon::{self, control};

/// Default configuration; falls back to heartbeat's /etc/ha.d when it is absent.
const DEFAULT_CONFIG: &str = "/etc/rdbd-ha/rdbd-ha.toml";

#[derive(Parser, Debug)]
#[command(
    name = "rdbd-ha",
    version,
    about = "Heartbeat-style failover supervisor for rdbd"
)]
struct Cli {
    /// TOML configuration, or heartbeat's ha.cf (or its directory, with haresources and authkeys).
    #[arg(short, long, env = "RDBD_HA_CONFIG")]
    config: Option<PathBuf>,
    /// This node's name (default: the host name).
    #[arg(long, env = "RDBD_HA_NODE")]
    node: Option<String>,
    /// Run directory (control socket); overrides the configuration's.
    #[arg(long, env = "RDBD_HA_RUN_DIR")]
    run_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the daemon.
    Run,
    /// Show this node's and the peer's state.
    Status {
        /// Print the JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Hand every group to the peer (and prefer it until `takeover`).
    Standby,
    /// Take every group (or GROUP) here.
    Takeover {
        /// One group.
        group: Option<String>,
    },
    /// Stop (on) or resume (off) decisions and monitoring.
    Maintenance {
        /// on or off.
        mode: String,
    },
    /// Check the configuration and print the notes about it.
    Check,
    /// Print the configuration as TOML (e.g. converted from ha.cf).
    Convert,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn config_path(cli: &Cli) -> PathBuf {
    if let Some(c) = &cli.config {
        return c.clone();
    }
    let d = Path::new(DEFAULT_CONFIG);
    if !d.exists() && Path::new("/etc/ha.d/ha.cf").exists() {
        return PathBuf::from("/etc/ha.d");
    }
    d.to_path_buf()
}

fn load(cli: &Cli) -> anyhow::Result<(Config, Vec<String>)> {
    let path = config_path(cli);
    let (mut config, notes) =
        Config::load(&path).with_context(|| format!("configuration {}", path.display()))?;
    if let Some(r) = &cli.run_dir {
        config.run_dir = r.clone();
    }
    Ok((config, notes))
}

fn run_dir(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(r) = &cli.run_dir {
        return Ok(r.clone());
    }
    Ok(load(cli)?.0.run_dir)
}

fn call(cli: &Cli, req: control::Request) -> anyhow::Result<control::Response> {
    let dir = run_dir(cli)?;
    let resp = control::call(&dir, &req)?;
    if !resp.ok {
        bail!("{}", resp.message);
    }
    Ok(resp)
}

fn print_status(v: &serde_json::Value) {
    let s = |p: &str| {
        v.pointer(p)
            .map(|x| x.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    println!(
        "node {} ({}){}{} ping_ok={} can_fence={} auto_failback={}",
        s("/node"),
        s("/phase"),
        if v["standby"] == true { " STANDBY" } else { "" },
        if v["maintenance"] == true {
            " MAINTENANCE"
        } else {
            ""
        },
        s("/ping_ok"),
        s("/can_fence"),
        s("/auto_failback"),
    );
    println!(
        "peer {}: {} (silent {} ms)",
        s("/peer/name"),
        s("/peer/liveness"),
        s("/peer/silent_ms")
    );
    if let Some(groups) = v["groups"].as_array() {
        for g in groups {
            let f = |k: &str| g[k].to_string().trim_matches('"').to_string();
            println!(
                "group {}: {}{}{} eligible={} failures={} peer_holds={}\n  decision: {}\n  last: {}",
                f("name"),
                f("state"),
                if g["holds"] == true { " (held here)" } else { "" },
                if g["busy"] == true { " (busy)" } else { "" },
                f("eligible"),
                f("failures"),
                f("peer_holds"),
                f("decision"),
                f("last_event"),
            );
        }
    }
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("rdbd-ha: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match &cli.command {
        Cmd::Run => {
            let (config, notes) = load(&cli)?;
            for n in &notes {
                tracing::warn!(note = %n, "configuration");
            }
            let node = cli.node.clone().unwrap_or_else(host_name);
            // SAFETY: installing async-signal-safe handlers that only store an atomic.
            unsafe {
                libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
                libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
            }
            daemon::run(config, &node, &STOP)?;
        }
        Cmd::Status { json } => {
            let resp = call(&cli, control::Request::Status)?;
            let v = resp.status.unwrap_or_default();
            if *json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_status(&v);
            }
        }
        Cmd::Standby => println!("{}", call(&cli, control::Request::Standby)?.message),
        Cmd::Takeover { group } => println!(
            "{}",
            call(
                &cli,
                control::Request::Takeover {
                    group: group.clone()
                }
            )?
            .message
        ),
        Cmd::Maintenance { mode } => {
            let on = match mode.as_str() {
                "on" => true,
                "off" => false,
                other => bail!("maintenance takes on or off, not '{other}'"),
            };
            println!(
                "{}",
                call(&cli, control::Request::Maintenance { on })?.message
            );
        }
        Cmd::Check => {
            let (config, notes) = load(&cli)?;
            for n in &notes {
                println!("note: {n}");
            }
            println!(
                "ok: {} nodes, {} groups, keepalive {} ms, deadtime {} ms, initdead {} ms",
                config.nodes.len(),
                config.groups.len(),
                config.timings.keepalive_ms,
                config.timings.deadtime_ms,
                config.timings.initdead_ms
            );
        }
        Cmd::Convert => {
            let (config, notes) = load(&cli)?;
            for n in &notes {
                println!("# note: {n}");
            }
            print!("{}", config.to_toml());
        }
    }
    Ok(())
}
