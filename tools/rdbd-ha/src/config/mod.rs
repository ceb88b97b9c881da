//! rdbd-ha's configuration: the TOML form ([`Config`]) and readers that build the same
//! [`Config`] from heartbeat's `ha.cf` + `haresources` + `authkeys` ([`heartbeat`]).
//!
//! One file serves both nodes: the local node is chosen by name at load time
//! ([`Config::local_node`]).

pub mod authkeys;
pub mod hacf;
pub mod haresources;
pub mod heartbeat;
mod resource;
pub mod timings;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{HaError, Result};
pub use resource::{Device, ResourceKind, ResourceSpec};
pub use timings::Timings;

/// The most resource groups one cluster may have (a bit each in the heartbeat message).
pub const MAX_GROUPS: usize = 32;
/// The most nodes a configuration may name (rdbd-ha is a two-node supervisor).
pub const MAX_NODES: usize = 2;
/// The longest node name accepted (it travels in every heartbeat).
pub const MAX_NODE_NAME_BYTES: usize = 64;
/// The longest network interface name (the kernel's IFNAMSIZ less the NUL).
pub const MAX_INTERFACE_NAME_BYTES: usize = 15;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Heartbeat timings.
    #[serde(default)]
    pub timings: Timings,
    /// The UDP port heartbeats are sent to when an address has no port (`udpport`).
    #[serde(default = "default_udp_port")]
    pub udp_port: u16,
    /// Take the group back to its preferred node when that node returns (`auto_failback on`).
    #[serde(default)]
    pub auto_failback: bool,
    /// Ping nodes: `HOST` (ICMP through `ping`) or `tcp:HOST:PORT` (a TCP connect).
    /// A node that reaches none of them never takes a group over.
    #[serde(default)]
    pub ping_nodes: Vec<String>,
    /// How long one ping-node probe may take, in milliseconds.
    #[serde(default = "default_ping_timeout_ms")]
    pub ping_timeout_ms: u64,
    /// The fencing command (argv; `{peer}` is replaced by the peer's name). Without it a
    /// node never takes a group from a peer it cannot prove dead.
    #[serde(default)]
    pub stonith: Vec<String>,
    /// How long the fencing command may take, in milliseconds.
    #[serde(default = "default_stonith_timeout_ms")]
    pub stonith_timeout_ms: u64,
    /// Heartbeat authentication.
    pub auth: AuthConfig,
    /// The cluster's nodes (two).
    pub nodes: Vec<NodeConfig>,
    /// Extra heartbeat media besides unicast to the peer's addresses.
    #[serde(default)]
    pub links: Vec<LinkConfig>,
    /// The resource groups.
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    /// How rdbd-ha runs `rdbdadm` and finds scripts.
    #[serde(default)]
    pub commands: CommandsConfig,
    /// Directory for the control socket and state files.
    #[serde(default = "default_run_dir")]
    pub run_dir: PathBuf,
}

fn default_udp_port() -> u16 {
    694
}
fn default_ping_timeout_ms() -> u64 {
    1000
}
fn default_stonith_timeout_ms() -> u64 {
    60_000
}
fn default_run_dir() -> PathBuf {
    PathBuf::from("/run/rdbd-ha")
}

/// Heartbeat authentication (`authkeys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `sha256`, `sha1`, `md5` or `crc` (crc authenticates nothing).
    pub method: crate::proto::AuthMethod,
    /// The key index sent in every packet (`auth N`).
    #[serde(default = "default_key_index")]
    pub key_index: u8,
    /// The shared secret, or ...
    #[serde(default)]
    pub secret: Option<String>,
    /// ... a file whose first line is the secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

fn default_key_index() -> u8 {
    1
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name (`node` in ha.cf; the host name by default).
    pub name: String,
    /// The addresses its heartbeat socket listens on (`IP` or `IP:PORT`); the peer
    /// unicasts to each of them. Empty: reached through `links` only.
    #[serde(default)]
    pub heartbeat: Vec<String>,
    /// Where the node's own socket binds (`IP:PORT`); default `0.0.0.0:udp_port`.
    #[serde(default)]
    pub bind: Option<String>,
}

/// A broadcast or multicast heartbeat medium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum LinkConfig {
    /// `bcast IFACE`: UDP to the interface's IPv4 broadcast address on `udp_port`, the
    /// socket bound to the device (`SO_BINDTODEVICE`).
    Bcast {
        /// The interface.
        interface: String,
    },
    /// `mcast IFACE GROUP PORT TTL LOOP`: the group is joined on the interface and
    /// heartbeats are sent to it through that interface.
    Mcast {
        /// The interface.
        interface: String,
        /// The IPv4 multicast group.
        group: std::net::Ipv4Addr,
        /// The port (default `udp_port`).
        #[serde(default)]
        port: Option<u16>,
        /// The multicast TTL (1..=255).
        #[serde(default = "default_ttl")]
        ttl: u32,
        /// `loop`: our own packets are looped back to this host (they are recognised and
        /// ignored); off by default.
        #[serde(default, rename = "loop")]
        multicast_loop: bool,
    },
    /// `ucast IFACE ADDR`: one more unicast target.
    Ucast {
        /// The interface (informational).
        #[serde(default)]
        interface: Option<String>,
        /// `IP` or `IP:PORT`.
        address: String,
    },
}

fn default_ttl() -> u32 {
    1
}

/// Whether `name` can be a network interface name (what `SO_BINDTODEVICE` takes).
pub fn valid_interface_name(name: &str) -> bool {
    (1..=MAX_INTERFACE_NAME_BYTES).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

impl LinkConfig {
    /// Checks the medium's own fields.
    pub fn validate(&self) -> Result<()> {
        let iface = |kind: &str, name: &str| {
            if valid_interface_name(name) {
                Ok(())
            } else {
                Err(HaError::Invalid(format!(
                    "{kind} link: '{name}' is not an interface name (1 to {MAX_INTERFACE_NAME_BYTES} bytes, no '/', ':' or blanks)"
                )))
            }
        };
        match self {
            LinkConfig::Bcast { interface } => iface("bcast", interface),
            LinkConfig::Mcast {
                interface,
                group,
                port,
                ttl,
                ..
            } => {
                iface("mcast", interface)?;
                if !group.is_multicast() {
                    return Err(HaError::Invalid(format!(
                        "mcast link: {group} is not an IPv4 multicast group (224.0.0.0/4)"
                    )));
                }
                if *port == Some(0) {
                    return Err(HaError::Invalid("mcast link: port 0".into()));
                }
                if !(1..=255).contains(ttl) {
                    return Err(HaError::Invalid(format!(
                        "mcast link: ttl {ttl} is not 1..=255"
                    )));
                }
                Ok(())
            }
            LinkConfig::Ucast { interface, .. } => match interface {
                Some(i) => iface("ucast", i),
                None => Ok(()),
            },
        }
    }
}

/// One resource group (a `haresources` line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// The group's name (for logs and the control commands).
    pub name: String,
    /// The node that runs it when both could (the first word of the haresources line).
    pub preferred_node: String,
    /// Seconds between monitor runs, in milliseconds (0: no monitoring).
    #[serde(default = "default_monitor_interval_ms")]
    pub monitor_interval_ms: u64,
    /// Consecutive monitor failures (each followed by a restart) before the node gives
    /// the group up.
    #[serde(default = "default_monitor_failures_max")]
    pub monitor_failures_max: u32,
    /// The resources, in start order.
    pub resources: Vec<ResourceSpec>,
}

fn default_monitor_interval_ms() -> u64 {
    10_000
}
fn default_monitor_failures_max() -> u32 {
    3
}

/// How rdbd-ha runs external commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsConfig {
    /// The `rdbdadm` program.
    #[serde(default = "default_rdbdadm")]
    pub rdbdadm: String,
    /// Global options for every `rdbdadm` call (`-c FILE`, `--node N`, `--run-dir D`).
    #[serde(default)]
    pub rdbdadm_args: Vec<String>,
    /// Directories searched for script resources, in order.
    #[serde(default = "default_script_dirs")]
    pub script_dirs: Vec<PathBuf>,
    /// Default start timeout of a step, in milliseconds.
    #[serde(default = "default_start_timeout_ms")]
    pub start_timeout_ms: u64,
    /// Default stop timeout of a step, in milliseconds.
    #[serde(default = "default_stop_timeout_ms")]
    pub stop_timeout_ms: u64,
    /// Default status timeout of a step, in milliseconds.
    #[serde(default = "default_status_timeout_ms")]
    pub status_timeout_ms: u64,
}

fn default_rdbdadm() -> String {
    "rdbdadm".into()
}
fn default_script_dirs() -> Vec<PathBuf> {
    vec![
        PathBuf::from("/etc/rdbd-ha/resource.d"),
        PathBuf::from("/etc/ha.d/resource.d"),
        PathBuf::from("/etc/init.d"),
    ]
}
fn default_start_timeout_ms() -> u64 {
    60_000
}
fn default_stop_timeout_ms() -> u64 {
    60_000
}
fn default_status_timeout_ms() -> u64 {
    20_000
}

impl Default for CommandsConfig {
    fn default() -> Self {
        CommandsConfig {
            rdbdadm: default_rdbdadm(),
            rdbdadm_args: Vec::new(),
            script_dirs: default_script_dirs(),
            start_timeout_ms: default_start_timeout_ms(),
            stop_timeout_ms: default_stop_timeout_ms(),
            status_timeout_ms: default_status_timeout_ms(),
        }
    }
}

impl Config {
    /// Parses a TOML configuration.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| HaError::Toml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a configuration: a TOML file, or heartbeat's files when `path` is a
    /// directory (`/etc/ha.d`) or a file named `ha.cf` (with `haresources` and
    /// `authkeys` next to it). Returns the notes about what was ignored or mapped.
    pub fn load(path: &Path) -> Result<(Config, Vec<String>)> {
        let is_hacf = path.is_dir() || path.file_name().is_some_and(|n| n == "ha.cf");
        if is_hacf {
            let dir = if path.is_dir() {
                path.to_path_buf()
            } else {
                path.parent().unwrap_or(Path::new(".")).to_path_buf()
            };
            let loaded = heartbeat::load_dir(&dir)?;
            loaded.config.validate()?;
            return Ok((loaded.config, loaded.notes));
        }
        let text = read(path)?;
        Ok((Config::from_toml(&text, path)?, Vec::new()))
    }

    /// The TOML form of this configuration.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// Checks cross-field rules.
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(HaError::Invalid(m));
        if self.nodes.len() != MAX_NODES {
            return invalid(format!(
                "exactly {MAX_NODES} nodes are needed, {} given",
                self.nodes.len()
            ));
        }
        for n in &self.nodes {
            if n.name.is_empty() || n.name.len() > MAX_NODE_NAME_BYTES {
                return invalid(format!(
                    "node name '{}' must have 1 to {MAX_NODE_NAME_BYTES} bytes",
                    n.name
                ));
            }
            for a in &n.heartbeat {
                parse_addr(a, self.udp_port)?;
            }
            if let Some(b) = &n.bind {
                parse_addr(b, self.udp_port)?;
            }
        }
        if self.nodes[0].name == self.nodes[1].name {
            return invalid(format!("both nodes are named '{}'", self.nodes[0].name));
        }
        if self.groups.len() > MAX_GROUPS {
            return invalid(format!(
                "{} resource groups given, at most {MAX_GROUPS}",
                self.groups.len()
            ));
        }
        for (i, g) in self.groups.iter().enumerate() {
            if !self.nodes.iter().any(|n| n.name == g.preferred_node) {
                return invalid(format!(
                    "group '{}': preferred node '{}' is not one of the nodes",
                    g.name, g.preferred_node
                ));
            }
            if self.groups[..i].iter().any(|o| o.name == g.name) {
                return invalid(format!("two groups are named '{}'", g.name));
            }
            for r in &g.resources {
                if matches!(r.kind, ResourceKind::Filesystem { .. }) && r.device().is_none() {
                    return invalid(format!(
                        "group '{}': {} needs exactly one of resource or device",
                        g.name,
                        r.label()
                    ));
                }
            }
            if g.monitor_failures_max == 0 {
                return invalid(format!(
                    "group '{}': monitor_failures_max must be at least 1",
                    g.name
                ));
            }
        }
        for l in &self.links {
            l.validate()?;
        }
        self.timings.validate()?;
        if self.auth.secret.is_none()
            && self.auth.secret_file.is_none()
            && self.auth.method != crate::proto::AuthMethod::Crc
        {
            return invalid(format!(
                "auth method {} needs a secret or secret_file",
                self.auth.method
            ));
        }
        Ok(())
    }

    /// The local node's index, by name.
    pub fn local_node(&self, name: &str) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| {
                HaError::Invalid(format!(
                    "this node '{name}' is not in the configuration (nodes: {})",
                    self.nodes
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The shared secret (from `secret` or the first line of `secret_file`).
    pub fn secret(&self) -> Result<Vec<u8>> {
        if let Some(s) = &self.auth.secret {
            return Ok(s.as_bytes().to_vec());
        }
        if let Some(p) = &self.auth.secret_file {
            let text = read(p)?;
            return Ok(text.lines().next().unwrap_or("").trim().as_bytes().to_vec());
        }
        Ok(Vec::new())
    }
}

/// Parses `IP` or `IP:PORT` (`default_port` when absent).
pub fn parse_addr(text: &str, default_port: u16) -> Result<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    Err(HaError::Invalid(format!(
        "'{text}' is not an IP address or IP:PORT"
    )))
}

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| HaError::Read {
        path: path.to_path_buf(),
        error: source,
    })
}
