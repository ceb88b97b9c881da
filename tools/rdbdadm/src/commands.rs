//! The commands of `rdbdadm` and what each does.

use std::time::Duration;

use rdbd_config::Config;
use rdbd_control::exit_code;
use rdbd_control::status::drbdadm::{self, StatusOptions};
use rdbd_control::{AdminCommand, Client, ClientError, Request, ResourceStatus, Response};

use crate::args::Invocation;
use crate::help;

/// A failed command: one line and an exit code.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong, in one line.
    pub message: String,
    /// drbdadm's exit code for it.
    pub exit_code: i32,
}

impl Failure {
    fn new(exit_code: i32, message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            exit_code,
        }
    }
}

type Outcome = Result<(), Failure>;

/// Runs one invocation.
pub fn run(inv: &Invocation) -> Outcome {
    if inv.command == "help" || inv.has("--help") || inv.has("-h") {
        let topic = if inv.command == "help" {
            inv.resources.first().map(String::as_str)
        } else {
            Some(inv.command.as_str())
        };
        return match help::text_for(topic) {
            Ok(text) => {
                print!("{text}");
                Ok(())
            }
            Err(line) => Err(Failure::new(help::USAGE_EXIT, line)),
        };
    }
    match inv.command.as_str() {
        "up" => for_each(inv, up),
        "connect" => for_each(inv, |inv, r| {
            simple(
                inv,
                Request::Connect {
                    resource: r.into(),
                    discard_my_data: inv.has("--discard-my-data"),
                },
            )
        }),
        "disconnect" => for_each(inv, |inv, r| {
            simple(inv, Request::Disconnect { resource: r.into() })
        }),
        "attach" => for_each(inv, |inv, r| {
            simple(inv, Request::Attach { resource: r.into() })
        }),
        "detach" => for_each(inv, |inv, r| {
            simple(inv, Request::Detach { resource: r.into() })
        }),
        "invalidate-remote" => for_each(inv, |inv, r| {
            simple(inv, Request::InvalidateRemote { resource: r.into() })
        }),
        "adjust" => for_each(inv, crate::lifecycle::adjust),
        "resize" => for_each(inv, crate::lifecycle::resize),
        "down" => for_each(inv, |inv, r| {
            // No daemon: nothing is up, so the resource is down already (drbdsetup's
            // `down` of an unknown resource succeeds too).
            if !inv.dry_run && Client::connect(&inv.node.run_dir, Duration::from_secs(5)).is_err() {
                return Ok(());
            }
            simple(inv, Request::Down { resource: r.into() })
        }),
        "primary" => {
            let force = inv.has("--force") || inv.has("--overwrite-data-of-peer");
            for_each(inv, |inv, r| {
                simple(
                    inv,
                    Request::Primary {
                        resource: r.into(),
                        force,
                    },
                )
            })
        }
        "secondary" => for_each(inv, |inv, r| {
            simple(inv, Request::Secondary { resource: r.into() })
        }),
        "role" => for_each(inv, |inv, r| {
            print_field(inv, r, |s| format!("{}/{}", s.role, s.peer_role))
        }),
        "cstate" => for_each(inv, |inv, r| print_field(inv, r, |s| s.cstate.to_string())),
        "dstate" => for_each(inv, |inv, r| {
            if !is_up(inv, r) {
                // Down: the meta-data says (as drbdadm asks drbdmeta).
                return meta_command(inv, r);
            }
            print_field(inv, r, |s| format!("{}/{}", s.disk, s.peer_disk))
        }),
        "status" => status(inv),
        "nbd-uri" => for_each(inv, |inv, r| {
            println!("{}", inv.node.nbd_uri(r));
            Ok(())
        }),
        "dump" => dump(inv),
        "outdate" | "invalidate" => for_each(inv, |inv, r| {
            if !inv.dry_run && !is_up(inv, r) {
                // Down: the meta-data is changed directly, as drbdadm runs drbdmeta.
                return meta_command(inv, r);
            }
            let command = if inv.command == "outdate" {
                AdminCommand::Outdate
            } else {
                AdminCommand::Invalidate
            };
            simple(
                inv,
                Request::Admin {
                    resource: r.into(),
                    command,
                },
            )
        }),
        "resume-io" => for_each(inv, |inv, r| {
            simple(
                inv,
                Request::Admin {
                    resource: r.into(),
                    command: AdminCommand::ResumeIo,
                },
            )
        }),
        "new-current-uuid" => for_each(inv, |inv, r| {
            let command = AdminCommand::NewCurrentUuid {
                clear_bitmap: inv.has("--clear-bitmap"),
            };
            simple(
                inv,
                Request::Admin {
                    resource: r.into(),
                    command,
                },
            )
        }),
        "verify" | "pause-sync" | "resume-sync" => {
            let command = match inv.command.as_str() {
                "verify" => AdminCommand::Verify {
                    start_sector: sector_option(inv, "--start")?,
                    stop_sector: sector_option(inv, "--stop")?,
                },
                "pause-sync" => AdminCommand::PauseSync,
                _ => AdminCommand::ResumeSync,
            };
            for_each(inv, |inv, r| {
                simple(
                    inv,
                    Request::Admin {
                        resource: r.into(),
                        command,
                    },
                )
            })
        }
        "wait-connect" => for_each(inv, |inv, r| {
            wait_for(inv, r, "connected", |s| s.cstate.is_connected())
        }),
        "wait-sync" => for_each(inv, |inv, r| {
            wait_for(inv, r, "in sync", |s| {
                s.cstate.is_connected()
                    && !s.cstate.is_syncing()
                    && !matches!(s.cstate.name(), n if n.starts_with("WF") || n.starts_with("Starting"))
            })
        }),
        "create-md" | "dump-md" | "wipe-md" | "apply-al" | "show-gi" | "get-gi" => {
            for_each(inv, meta_command)
        }
        "shutdown" => shutdown(inv),
        "events2" => events2(inv),
        other => Err(Failure::new(help::USAGE_EXIT, help::unknown_command(other))),
    }
}

/// `--start N` / `--start=N` (a sector number) of `verify`.
fn sector_option(inv: &Invocation, name: &str) -> Result<Option<u64>, Failure> {
    let prefixed = format!("{name}=");
    let text = inv
        .options
        .iter()
        .position(|o| o == name)
        .and_then(|i| inv.options.get(i + 1).cloned())
        .or_else(|| {
            inv.options
                .iter()
                .find_map(|o| o.strip_prefix(&prefixed).map(str::to_string))
        });
    text.map(|t| {
        t.parse::<u64>().map_err(|_| {
            Failure::new(
                exit_code::USAGE,
                format!(
                    "rdbdadm {}: {name} needs a sector number, not '{t}'",
                    inv.command
                ),
            )
        })
    })
    .transpose()
}

fn load_config(inv: &Invocation) -> Result<Config, Failure> {
    rdbd_config::load(&inv.node.config_path)
        .map_err(|e| Failure::new(exit_code::CONFIG, e.to_string()))
}

/// The resources a command names, checked against the configuration: each must
/// exist and have an `on` section for this node. `all` is every such resource.
fn resolve(inv: &Invocation) -> Result<Vec<String>, Failure> {
    let config = load_config(inv)?;
    // drbdadm exits with its usage code (E_USAGE, 1) for every naming mistake: no
    // resource, an unknown one, one without an `on` section for this host.
    if inv.resources.is_empty() {
        return Err(Failure::new(
            help::USAGE_EXIT,
            format!(
                "rdbdadm {}: no resource given (name one, or 'all')",
                inv.command
            ),
        ));
    }
    let node = &inv.node.node_name;
    let path = inv.node.config_path.display();
    if inv.resources.iter().any(|r| r == "all") {
        let all: Vec<String> = config
            .resources
            .iter()
            .filter(|r| r.host(node).is_ok())
            .map(|r| r.name.clone())
            .collect();
        if all.is_empty() {
            return Err(Failure::new(
                help::USAGE_EXIT,
                format!("no resources defined for this host ('{node}') in {path}; set --node"),
            ));
        }
        return Ok(all);
    }
    for name in &inv.resources {
        let resource = config
            .resource(name)
            .map_err(|_| not_defined(name, &path.to_string()))?;
        resource.host(node).map_err(|_| {
            Failure::new(help::USAGE_EXIT, format!("resource {name} has no 'on {node}' section in {path} (this node is '{node}'; set --node)"))
        })?;
    }
    Ok(inv.resources.clone())
}

/// drbdadm's `'X' not defined in your config (for this host).`, with the file.
fn not_defined(name: &str, path: &str) -> Failure {
    Failure::new(
        help::USAGE_EXIT,
        format!("'{name}' not defined in your config (for this host): {path}"),
    )
}

fn for_each(inv: &Invocation, mut action: impl FnMut(&Invocation, &str) -> Outcome) -> Outcome {
    let mut first_failure = None;
    for resource in resolve(inv)? {
        if let Err(f) = action(inv, &resource) {
            eprintln!("{}", f.message);
            first_failure.get_or_insert(Failure::new(f.exit_code, String::new()));
        }
    }
    match first_failure {
        // Already printed; exit with its code.
        Some(f) => Err(Failure {
            message: String::new(),
            ..f
        }),
        None => Ok(()),
    }
}

fn connect(inv: &Invocation) -> Result<Client, Failure> {
    Client::connect(&inv.node.run_dir, Duration::from_secs(60)).map_err(|e| match e {
        ClientError::NotRunning { .. } => Failure::new(
            exit_code::NO_DAEMON,
            format!("{e} (start it with 'rdbdadm up')"),
        ),
        other => Failure::new(exit_code::FAILED, other.to_string()),
    })
}

fn request(inv: &Invocation, req: &Request) -> Result<Response, Failure> {
    if inv.dry_run {
        println!(
            "rdbd control ({}): {}",
            inv.node.control_socket().display(),
            serde_json::to_string(req).unwrap_or_default()
        );
        return Ok(Response::ok());
    }
    let mut client = connect(inv)?;
    client
        .request(req)
        .map_err(|e| Failure::new(exit_code::FAILED, e.to_string()))
}

pub(crate) fn simple(inv: &Invocation, req: Request) -> Outcome {
    match request(inv, &req)? {
        Response::Ok { message } => {
            if !message.is_empty() {
                println!("{message}");
            }
            Ok(())
        }
        Response::Error { message, exit_code } => Err(Failure::new(exit_code, message)),
        Response::Status { .. } | Response::Event { .. } => Err(Failure::new(
            exit_code::FAILED,
            "unexpected answer from the daemon",
        )),
    }
}

pub(crate) fn up(inv: &Invocation, resource: &str) -> Outcome {
    if !inv.dry_run && Client::connect(&inv.node.run_dir, Duration::from_secs(5)).is_err() {
        let binary = rdbd_node::cli::daemon_binary();
        rdbd_node::cli::spawn_daemon(&inv.node, &binary)
            .map_err(|e| Failure::new(exit_code::NO_DAEMON, e.to_string()))?;
    }
    simple(
        inv,
        Request::Up {
            resource: resource.into(),
        },
    )
}

fn fetch_status(inv: &Invocation, resource: Option<&str>) -> Result<Vec<ResourceStatus>, Failure> {
    match request(
        inv,
        &Request::Status {
            resource: resource.map(String::from),
        },
    )? {
        Response::Status { resources } => Ok(resources),
        Response::Error { message, exit_code } => Err(Failure::new(exit_code, message)),
        Response::Ok { .. } | Response::Event { .. } => Ok(Vec::new()),
    }
}

fn print_field(
    inv: &Invocation,
    resource: &str,
    field: impl Fn(&ResourceStatus) -> String,
) -> Outcome {
    for s in fetch_status(inv, Some(resource))? {
        println!("{}", field(&s));
    }
    Ok(())
}

fn status(inv: &Invocation) -> Outcome {
    let opts = StatusOptions {
        verbose: inv.has("--verbose") || inv.has("-v"),
        statistics: inv.has("--statistics") || inv.has("-s"),
    };
    let names: Vec<Option<String>> =
        if inv.resources.is_empty() || inv.resources.iter().any(|r| r == "all") {
            vec![None]
        } else {
            resolve(inv)?.into_iter().map(Some).collect()
        };
    let mut blocks = Vec::new();
    for name in names {
        let statuses = match fetch_status(inv, name.as_deref()) {
            Err(f) if f.exit_code == exit_code::NO_DAEMON && name.is_none() => {
                println!("# No currently configured rdbd resources found.");
                return Ok(());
            }
            other => other?,
        };
        blocks.extend(statuses.iter().map(|s| drbdadm::render(s, opts)));
    }
    print!("{}", blocks.join("\n"));
    Ok(())
}

/// `dump [all|RES...]`, as drbdadm-84: every resource for `all` (or none named), those
/// of other hosts marked `ignored` in a comment; named resources in order, stopping at
/// the first that is unknown or has no `on` section for this node (exit code 1).
fn dump(inv: &Invocation) -> Outcome {
    let config = load_config(inv)?;
    let node = &inv.node.node_name;
    if inv.resources.is_empty() || inv.resources.iter().any(|r| r == "all") {
        print!("{}", rdbd_config::dump_on_host(&config, None, node));
        return Ok(());
    }
    let path = inv.node.config_path.display().to_string();
    for name in &inv.resources {
        let resource = config
            .resource(name)
            .map_err(|_| not_defined(name, &path))?;
        if resource.host(node).is_err() {
            return Err(not_for_this_host(name, node, &path));
        }
        print!("{}", rdbd_config::dump_on_host(&config, Some(name), node));
    }
    Ok(())
}

/// drbdadm's message for a resource without an `on` section for this host, with the
/// reason: `'r0' not defined in your config (for this host): resource r0 in FILE has no
/// 'on carol' section (this node is 'carol'; set --node)`.
fn not_for_this_host(name: &str, node: &str, path: &str) -> Failure {
    Failure::new(
        help::USAGE_EXIT,
        format!(
            "'{name}' not defined in your config (for this host): resource {name} in {path} \
             has no 'on {node}' section (this node is '{node}'; set --node)"
        ),
    )
}

fn shutdown(inv: &Invocation) -> Outcome {
    simple(inv, Request::Shutdown)
}

/// True when the daemon runs and has the resource up.
fn is_up(inv: &Invocation, resource: &str) -> bool {
    matches!(
        Client::connect(&inv.node.run_dir, Duration::from_secs(5)).and_then(|mut c| c.request(
            &Request::Status {
                resource: Some(resource.into())
            }
        )),
        Ok(Response::Status { .. })
    )
}

/// The `rdbdmeta` binary: `$RDBD_META`, else next to rdbdadm, else on PATH.
fn meta_binary() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("RDBD_META") {
        return p.into();
    }
    if let Ok(exe) = std::env::current_exe() {
        let sibling = exe.with_file_name("rdbdmeta");
        if sibling.is_file() {
            return sibling;
        }
    }
    "rdbdmeta".into()
}

/// Runs rdbdmeta for a resource, as drbdadm runs drbdmeta:
/// `rdbdmeta [--force] MINOR v08 DEVICE internal|flex-external|INDEX COMMAND [OPTIONS]`.
fn meta_command(inv: &Invocation, resource: &str) -> Outcome {
    let config = load_config(inv)?;
    let res = config
        .resource(resource)
        .map_err(|e| Failure::new(exit_code::CONFIG, e.to_string()))?;
    let host = res
        .host(&inv.node.node_name)
        .map_err(|e| Failure::new(exit_code::CONFIG, e.to_string()))?;
    let disk = host.disk.as_ref().ok_or_else(|| {
        Failure::new(
            exit_code::CONFIG,
            format!("{resource}: no 'disk' for this node"),
        )
    })?;
    let (device, index) = match &host.meta_disk {
        rdbd_config::MetaDisk::Internal => (disk.clone(), "internal".to_string()),
        rdbd_config::MetaDisk::FlexibleExternal(p) => (p.clone(), "flex-external".to_string()),
        rdbd_config::MetaDisk::Indexed(p, i) => (p.clone(), i.to_string()),
    };
    let command = if inv.command == "dstate" {
        "dstate"
    } else {
        inv.command.as_str()
    };
    let modifies = matches!(command, "create-md" | "wipe-md" | "apply-al");
    if modifies && !inv.dry_run && is_up(inv, resource) {
        return Err(Failure::new(
            exit_code::NO_DAEMON,
            format!("{resource}: the resource is up (its meta-data is in use); run 'rdbdadm down {resource}' first"),
        ));
    }
    let minor = host
        .minor
        .map(|m| m.to_string())
        .unwrap_or_else(|| "-".into());
    let mut args: Vec<String> = Vec::new();
    if inv.has("--force") {
        args.push("--force".into());
    }
    args.extend([
        minor,
        "v08".into(),
        device.display().to_string(),
        index,
        command.to_string(),
    ]);
    // create-md's own options (--al-stripes N, --al-stripe-size-kB K) pass through.
    args.extend(
        inv.options
            .iter()
            .filter(|o| o.as_str() != "--force")
            .cloned(),
    );
    let binary = meta_binary();
    if inv.dry_run {
        println!("{} {}", binary.display(), args.join(" "));
        return Ok(());
    }
    let status = std::process::Command::new(&binary)
        .args(&args)
        .status()
        .map_err(|e| {
            Failure::new(
                exit_code::FAILED,
                format!("cannot run {}: {e}", binary.display()),
            )
        })?;
    match status.code() {
        Some(0) => Ok(()),
        code => Err(Failure::new(code.unwrap_or(1), String::new())),
    }
}

fn events2(inv: &Invocation) -> Outcome {
    let now = inv.has("--now");
    let only: Option<Vec<String>> =
        if inv.resources.is_empty() || inv.resources.iter().any(|r| r == "all") {
            None
        } else {
            Some(resolve(inv)?)
        };
    if inv.dry_run {
        return request(inv, &Request::Events { now }).map(|_| ());
    }
    let mut client = connect(inv)?;
    let mut failure = None;
    client
        .stream(&Request::Events { now }, |response| match response {
            Response::Event { line } => {
                let wanted = match &only {
                    None => true,
                    Some(names) => {
                        line == "exists -"
                            || names.iter().any(|n| line.contains(&format!(" name:{n} ")))
                    }
                };
                if wanted {
                    println!("{line}");
                }
                true
            }
            Response::Error { message, exit_code } => {
                failure = Some(Failure::new(exit_code, message));
                false
            }
            _ => true,
        })
        .map_err(|e| Failure::new(exit_code::FAILED, e.to_string()))?;
    failure.map_or(Ok(()), Err)
}

/// Polls the resource's status until `done` holds, for `--timeout S` seconds or the
/// resource's `startup { wfc-timeout }` (0: forever).
fn wait_for(
    inv: &Invocation,
    resource: &str,
    what: &str,
    done: impl Fn(&ResourceStatus) -> bool,
) -> Outcome {
    let config = load_config(inv)?;
    let configured = config
        .resource(resource)
        .map(|r| r.settings().wfc_timeout)
        .unwrap_or(0);
    let timeout_s = match inv.options.iter().position(|o| o == "--timeout") {
        Some(i) => inv
            .options
            .get(i + 1)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| Failure::new(exit_code::USAGE, "--timeout needs a number of seconds"))?,
        None => u64::from(configured),
    };
    let start = std::time::Instant::now();
    loop {
        let statuses = fetch_status(inv, Some(resource))?;
        if statuses.iter().all(&done) {
            return Ok(());
        }
        if timeout_s > 0 && start.elapsed() >= Duration::from_secs(timeout_s) {
            let now = statuses
                .first()
                .map(|s| s.cstate.to_string())
                .unwrap_or_default();
            return Err(Failure::new(
                exit_code::FAILED,
                format!("{resource}: not {what} after {timeout_s} s (cs:{now})"),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
