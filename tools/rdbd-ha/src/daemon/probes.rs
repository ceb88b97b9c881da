//! Background probes: ping-node reachability and rdbd disk/connection state per group.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::Sender;
use std::time::Duration;

use crate::config::{CommandsConfig, Config, ResourceKind};
use crate::group::command::run;
use crate::group::shell::disk_view;
use crate::policy;

/// Whether one ping node answers: `tcp:HOST:PORT` connects, anything else is `ping`ed.
pub fn probe(node: &str, timeout: Duration) -> bool {
    if let Some(hp) = node.strip_prefix("tcp:") {
        let addrs: Vec<SocketAddr> = hp
            .to_socket_addrs()
            .map(|a| a.collect())
            .unwrap_or_default();
        return addrs
            .iter()
            .any(|a| TcpStream::connect_timeout(a, timeout).is_ok());
    }
    let secs = timeout.as_secs().max(1).to_string();
    run(
        &[
            "ping".into(),
            "-c".into(),
            "1".into(),
            "-W".into(),
            secs,
            node.into(),
        ],
        &[],
        timeout + Duration::from_secs(1),
    )
    .success()
}

/// Probes every `interval`; sends whether any ping node answered.
pub fn spawn_ping(nodes: Vec<String>, timeout: Duration, interval: Duration, tx: Sender<bool>) {
    if nodes.is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("ping".into())
        .spawn(move || loop {
            let ok = nodes.iter().any(|n| probe(n, timeout));
            if tx.send(ok).is_err() {
                return;
            }
            std::thread::sleep(interval);
        });
}

/// rdbd's state for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskReport {
    /// The group index.
    pub group: usize,
    /// Ok, or why a promotion would be refused.
    pub promotable: Result<(), String>,
    /// rdbd's replication link to the peer is up for some resource of the group.
    pub replication_connected: bool,
}

/// Checks every group's rdbd resources every `interval`.
pub fn spawn_disks(config: &Config, interval: Duration, tx: Sender<DiskReport>) {
    let commands: CommandsConfig = config.commands.clone();
    let groups: Vec<Vec<String>> = config
        .groups
        .iter()
        .map(|g| {
            g.resources
                .iter()
                .filter_map(|r| match &r.kind {
                    ResourceKind::Rdbd { resource } => Some(resource.clone()),
                    _ => None,
                })
                .collect()
        })
        .collect();
    if groups.iter().all(|g| g.is_empty()) {
        for i in 0..groups.len() {
            let _ = tx.send(DiskReport {
                group: i,
                promotable: Ok(()),
                replication_connected: false,
            });
        }
        return;
    }
    let timeout = Duration::from_millis(commands.status_timeout_ms);
    let _ = std::thread::Builder::new()
        .name("disks".into())
        .spawn(move || loop {
            for (i, resources) in groups.iter().enumerate() {
                let mut promotable = Ok(());
                let mut connected = false;
                for r in resources {
                    match disk_view(&commands, r, timeout) {
                        Ok(v) => {
                            connected |= policy::replication_peer_alive(v.cstate);
                            if promotable.is_ok() {
                                promotable = policy::may_promote(v.disk.0, v.disk.1)
                                    .map_err(|e| format!("rdbd {r}: {e}"));
                            }
                        }
                        Err(e) => {
                            if promotable.is_ok() {
                                promotable = Err(e);
                            }
                        }
                    }
                }
                if tx
                    .send(DiskReport {
                        group: i,
                        promotable,
                        replication_connected: connected,
                    })
                    .is_err()
                {
                    return;
                }
            }
            std::thread::sleep(interval);
        });
}
