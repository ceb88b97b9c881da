//! Builds a [`Config`] from a heartbeat configuration directory (`ha.cf`,
//! `haresources`, `authkeys`), reporting every directive it did not map.

use std::path::Path;

use super::hacf::{HaCf, Medium};
use super::{
    authkeys, hacf, haresources, read, AuthConfig, CommandsConfig, Config, LinkConfig, NodeConfig,
    Timings,
};
use crate::error::{HaError, Result};

/// A configuration read from heartbeat's files, with notes for the operator.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The equivalent configuration.
    pub config: Config,
    /// What was ignored, mapped or is unsafe.
    pub notes: Vec<String>,
}

/// Reads `DIR/ha.cf`, `DIR/haresources` and `DIR/authkeys`.
pub fn load_dir(dir: &Path) -> Result<Loaded> {
    let hacf_text = read(&dir.join("ha.cf"))?;
    let hares_text = read(&dir.join("haresources"))?;
    let auth_path = dir.join("authkeys");
    let auth_text = read(&auth_path)?;
    let mut loaded = from_texts(&hacf_text, &hares_text, &auth_text)?;
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(&auth_path) {
            if meta.permissions().mode() & 0o077 != 0 {
                loaded.notes.push(format!(
                    "{}: WARNING: readable by group/others (mode {:o}); chmod 600 it",
                    auth_path.display(),
                    meta.permissions().mode() & 0o777
                ));
            }
        }
    }
    loaded
        .config
        .commands
        .script_dirs
        .insert(0, dir.join("resource.d"));
    Ok(loaded)
}

/// Builds the configuration from the three files' texts.
pub fn from_texts(hacf_text: &str, haresources_text: &str, authkeys_text: &str) -> Result<Loaded> {
    let cf = hacf::parse(hacf_text)?;
    let (groups, mut group_notes) = haresources::parse(haresources_text)?;
    let (key, mut key_notes) = authkeys::parse(authkeys_text)?;
    let mut notes = cf.notes.clone();
    notes.append(&mut group_notes);
    notes.append(&mut key_notes);
    let timings = timings(&cf, &mut notes);
    if cf.nodes.len() != 2 {
        return Err(HaError::Invalid(format!(
            "ha.cf names {} nodes ({}); rdbd-ha needs exactly 2",
            cf.nodes.len(),
            cf.nodes.join(", ")
        )));
    }
    let udp_port = cf.udp_port.unwrap_or(694);
    let mut links = Vec::new();
    for m in &cf.media {
        links.push(match m {
            Medium::Ucast { interface, address } => LinkConfig::Ucast {
                interface: Some(interface.clone()),
                address: address.clone(),
            },
            Medium::Bcast { interface } => LinkConfig::Bcast {
                interface: interface.clone(),
            },
            Medium::Mcast {
                interface,
                group,
                port,
                ttl,
                multicast_loop,
            } => LinkConfig::Mcast {
                interface: interface.clone(),
                group: *group,
                port: Some(*port),
                ttl: *ttl,
                multicast_loop: *multicast_loop,
            },
        });
    }
    if links.is_empty() {
        return Err(HaError::Invalid(
            "ha.cf has no ucast, bcast or mcast line: no heartbeat medium".into(),
        ));
    }
    if !cf.ping.is_empty() && cf.respawn.iter().all(|(_, c)| !c.contains("ipfail")) {
        notes.push("ha.cf: ping nodes are used as ipfail would use them (a node that reaches none never takes over)".into());
    }
    notes.push("no stonith command in heartbeat's files: this node will refuse to take a group from a peer it cannot prove dead; add 'stonith' in a TOML configuration (rdbd-ha convert)".into());
    let config = Config {
        timings,
        udp_port,
        auto_failback: cf.auto_failback.unwrap_or(false),
        ping_nodes: cf.ping.clone(),
        ping_timeout_ms: super::default_ping_timeout_ms(),
        stonith: Vec::new(),
        stonith_timeout_ms: super::default_stonith_timeout_ms(),
        auth: AuthConfig {
            method: key.method,
            key_index: key.index,
            secret: (!key.secret.is_empty()).then_some(key.secret),
            secret_file: None,
        },
        nodes: cf
            .nodes
            .iter()
            .map(|n| NodeConfig {
                name: n.clone(),
                heartbeat: Vec::new(),
                bind: None,
            })
            .collect(),
        links,
        groups,
        commands: CommandsConfig::default(),
        run_dir: super::default_run_dir(),
    };
    Ok(Loaded { config, notes })
}

fn timings(cf: &HaCf, notes: &mut Vec<String>) -> Timings {
    let d = Timings::default();
    let keepalive_ms = cf.keepalive_ms.unwrap_or(d.keepalive_ms);
    let deadtime_ms = cf.deadtime_ms.unwrap_or(d.deadtime_ms);
    let warntime_ms = cf.warntime_ms.unwrap_or(deadtime_ms.min(d.warntime_ms));
    let mut initdead_ms = cf.initdead_ms.unwrap_or(deadtime_ms.saturating_mul(2));
    if initdead_ms < deadtime_ms {
        notes.push(format!(
            "ha.cf: initdead {initdead_ms} ms is shorter than deadtime {deadtime_ms} ms; raised to deadtime"
        ));
        initdead_ms = deadtime_ms;
    } else if initdead_ms < deadtime_ms.saturating_mul(2) {
        notes.push(format!(
            "ha.cf: initdead {initdead_ms} ms is less than twice deadtime ({deadtime_ms} ms); heartbeat recommends at least twice"
        ));
    }
    Timings {
        keepalive_ms,
        warntime_ms,
        deadtime_ms,
        initdead_ms,
    }
}
