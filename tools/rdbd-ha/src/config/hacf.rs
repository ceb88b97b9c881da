//! A reader for heartbeat's `ha.cf`: one directive per line, `#` comments.
//!
//! Directives rdbd-ha acts on: `keepalive`, `warntime`, `deadtime`, `initdead`,
//! `udpport`, `ucast`, `bcast`, `mcast`, `node`, `auto_failback`, `ping`. Accepted and
//! reported as not used: `respawn` (ipfail's job is built in: ping nodes), `logfile`,
//! `debugfile`, `logfacility`, `hopfudge`, `baud`, `serial`, `crm`, `ping_group`,
//! `stonith_host`, `watchdog`, `compression`, `apiauth`, `use_logd`, `deadping`, ...

use std::net::Ipv4Addr;

use super::timings::parse_duration_ms;
use crate::error::{HaError, Result};

/// The longest ha.cf accepted, in bytes.
pub const MAX_HACF_BYTES: usize = 1 << 20;

/// What `ha.cf` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HaCf {
    /// `keepalive`, in milliseconds.
    pub keepalive_ms: Option<u64>,
    /// `warntime`, in milliseconds.
    pub warntime_ms: Option<u64>,
    /// `deadtime`, in milliseconds.
    pub deadtime_ms: Option<u64>,
    /// `initdead`, in milliseconds.
    pub initdead_ms: Option<u64>,
    /// `udpport`.
    pub udp_port: Option<u16>,
    /// Heartbeat media, in file order.
    pub media: Vec<Medium>,
    /// `node` names, in file order.
    pub nodes: Vec<String>,
    /// `auto_failback on|off` (`legacy` reads as off, with a note).
    pub auto_failback: Option<bool>,
    /// `ping` hosts.
    pub ping: Vec<String>,
    /// `respawn USER COMMAND` lines.
    pub respawn: Vec<(String, String)>,
    /// Lines accepted but not acted on, with why.
    pub notes: Vec<String>,
}

/// A heartbeat medium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Medium {
    /// `ucast IFACE ADDR`.
    Ucast {
        /// The interface.
        interface: String,
        /// The peer's address.
        address: String,
    },
    /// `bcast IFACE...`.
    Bcast {
        /// The interface.
        interface: String,
    },
    /// `mcast IFACE GROUP PORT TTL LOOP`.
    Mcast {
        /// The interface.
        interface: String,
        /// The group.
        group: Ipv4Addr,
        /// The port.
        port: u16,
        /// The TTL.
        ttl: u32,
        /// LOOP: whether our own packets are looped back to this host (`1`) or not (`0`).
        multicast_loop: bool,
    },
}

/// Directives accepted and ignored, with the reason reported.
const IGNORED: &[(&str, &str)] = &[
    (
        "logfile",
        "rdbd-ha logs to stderr (tracing); redirect or use journald",
    ),
    (
        "debugfile",
        "rdbd-ha logs to stderr (tracing); RUST_LOG=debug for debug output",
    ),
    ("logfacility", "rdbd-ha logs to stderr (tracing)"),
    ("use_logd", "rdbd-ha logs to stderr (tracing)"),
    ("hopfudge", "rdbd-ha is a two-node cluster"),
    ("baud", "serial links are not supported"),
    ("serial", "serial links are not supported"),
    (
        "crm",
        "rdbd-ha is haresources-style; use the OCF agent under Pacemaker",
    ),
    (
        "pacemaker",
        "rdbd-ha is haresources-style; use the OCF agent under Pacemaker",
    ),
    (
        "ping_group",
        "use several ping lines: reaching any one is enough",
    ),
    (
        "stonith",
        "set the stonith command in the TOML configuration",
    ),
    (
        "stonith_host",
        "set the stonith command in the TOML configuration",
    ),
    ("watchdog", "not supported"),
    ("compression", "heartbeat messages are small"),
    ("compression_threshold", "heartbeat messages are small"),
    (
        "apiauth",
        "rdbd-ha has no client API besides its control socket",
    ),
    (
        "deadping",
        "ping nodes are probed every keepalive; failure is immediate",
    ),
    ("realtime", "not supported"),
    ("coredumps", "not supported"),
    ("conn_logd_time", "not supported"),
    ("autojoin", "the node list is fixed"),
    ("msgfmt", "rdbd-ha has its own message format"),
    ("traditional_compression", "heartbeat messages are small"),
];

/// Parses `ha.cf` text.
pub fn parse(text: &str) -> Result<HaCf> {
    if text.len() > MAX_HACF_BYTES {
        return Err(HaError::Invalid(format!(
            "ha.cf has {} bytes, at most {MAX_HACF_BYTES}",
            text.len()
        )));
    }
    let mut cf = HaCf::default();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: String| HaError::Syntax {
            file: "ha.cf".into(),
            line: line_no,
            message,
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let (directive, args) = (words[0].to_ascii_lowercase(), &words[1..]);
        let one = |what: &str| -> Result<&str> {
            match args {
                [v] => Ok(v),
                _ => Err(err(format!(
                    "{what} takes one value, got '{}'",
                    args.join(" ")
                ))),
            }
        };
        let duration = |what: &str| -> Result<u64> {
            let v = one(what)?;
            parse_duration_ms(v).ok_or_else(|| err(format!("{what}: '{v}' is not a duration")))
        };
        match directive.as_str() {
            "keepalive" => cf.keepalive_ms = Some(duration("keepalive")?),
            "warntime" => cf.warntime_ms = Some(duration("warntime")?),
            "deadtime" => cf.deadtime_ms = Some(duration("deadtime")?),
            "initdead" => cf.initdead_ms = Some(duration("initdead")?),
            "udpport" => {
                let v = one("udpport")?;
                cf.udp_port = Some(
                    v.parse()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| err(format!("udpport '{v}' is not a port")))?,
                );
            }
            "ucast" => match args {
                [iface, addrs @ ..] if !addrs.is_empty() => {
                    for a in addrs {
                        cf.media.push(Medium::Ucast {
                            interface: iface.to_string(),
                            address: a.to_string(),
                        });
                    }
                }
                _ => return Err(err("ucast needs an interface and an address".into())),
            },
            "bcast" => {
                if args.is_empty() {
                    return Err(err("bcast needs at least one interface".into()));
                }
                for iface in args {
                    cf.media.push(Medium::Bcast {
                        interface: iface.to_string(),
                    });
                }
            }
            "mcast" => match args {
                [iface, group, port, ttl, looped] => {
                    let group: Ipv4Addr = group
                        .parse()
                        .ok()
                        .filter(|g: &Ipv4Addr| g.is_multicast())
                        .ok_or_else(|| err(format!("mcast group '{group}' is not multicast")))?;
                    let port = port
                        .parse()
                        .map_err(|_| err(format!("mcast port '{port}' is not a port")))?;
                    let ttl = ttl
                        .parse()
                        .ok()
                        .filter(|t| (1..=255).contains(t))
                        .ok_or_else(|| err(format!("mcast ttl '{ttl}' is not 1..255")))?;
                    let multicast_loop = match *looped {
                        "0" => false,
                        "1" => true,
                        other => return Err(err(format!("mcast loop '{other}' is not 0 or 1"))),
                    };
                    cf.media.push(Medium::Mcast {
                        interface: iface.to_string(),
                        group,
                        port,
                        ttl,
                        multicast_loop,
                    });
                }
                _ => return Err(err("mcast needs: IFACE GROUP PORT TTL LOOP".into())),
            },
            "node" => {
                if args.is_empty() {
                    return Err(err("node needs a name".into()));
                }
                cf.nodes.extend(args.iter().map(|s| s.to_string()));
            }
            "auto_failback" => {
                let v = one("auto_failback")?;
                cf.auto_failback = Some(match v.to_ascii_lowercase().as_str() {
                    "on" | "yes" | "true" => true,
                    "off" | "no" | "false" => false,
                    "legacy" => {
                        cf.notes.push(format!(
                            "ha.cf line {line_no}: auto_failback legacy is read as off"
                        ));
                        false
                    }
                    _ => return Err(err(format!("auto_failback '{v}' is not on|off|legacy"))),
                });
            }
            "nice_failback" => {
                let v = one("nice_failback")?;
                cf.auto_failback = Some(!matches!(v, "on" | "yes" | "true"));
                cf.notes.push(format!(
                    "ha.cf line {line_no}: nice_failback {v} read as auto_failback {}",
                    if cf.auto_failback == Some(true) {
                        "on"
                    } else {
                        "off"
                    }
                ));
            }
            "ping" => {
                if args.is_empty() {
                    return Err(err("ping needs a host".into()));
                }
                cf.ping.extend(args.iter().map(|s| s.to_string()));
            }
            "respawn" => match args {
                [user, cmd @ ..] if !cmd.is_empty() => {
                    let cmd = cmd.join(" ");
                    let why = if cmd.contains("ipfail") {
                        "ipfail's rule (no ping node reachable: never take over) is built in"
                    } else if cmd.contains("dopd") {
                        "dopd (outdate-peer) is rdbd's job"
                    } else {
                        "rdbd-ha does not respawn helpers; run it as its own service"
                    };
                    cf.notes.push(format!(
                        "ha.cf line {line_no}: respawn {user} {cmd}: not run ({why})"
                    ));
                    cf.respawn.push((user.to_string(), cmd));
                }
                _ => return Err(err("respawn needs a user and a command".into())),
            },
            other => {
                if let Some((_, why)) = IGNORED.iter().find(|(d, _)| *d == other) {
                    cf.notes
                        .push(format!("ha.cf line {line_no}: {other} ignored ({why})"));
                } else {
                    return Err(err(format!("unknown directive '{other}'")));
                }
            }
        }
    }
    Ok(cf)
}
