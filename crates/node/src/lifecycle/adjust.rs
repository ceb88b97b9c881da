//! `adjust`: makes a resource run as the configuration file describes it, running only
//! the commands needed (drbdadm `adjust`: compare the running configuration with the
//! file). [`plan`] is the pure comparison; [`apply`] runs the steps.
//!
//! - not up: `up` (attach + connect);
//! - a changed backing disk, meta-disk or `size`: refused (needs `down`/`up`, `resize`);
//! - Diskless: `attach`;
//! - changed net options or addresses: `disconnect`, the new settings, `connect`; only
//!   csums-alg / verify-alg changed while connected: the connection takes them and sends
//!   them to the peer in `P_SYNC_PARAM89` (DRBD `drbdsetup net-options`; refused while a
//!   resync resp. online verify runs);
//! - StandAlone: `connect`;
//! - changed disk options: handed to the connection (`PeerLink::update_disk_options`): a
//!   running resync's rate controller takes resync-rate and the c-* options at once,
//!   later resyncs and connections use them. Options read only at attach (al-extents,
//!   md-flushes, disk-flushes/disk-drain's write ordering) and the handlers' on-io-error
//!   and fencing take effect at the next `down`/`up` (or detach/attach for the AL).

use std::collections::BTreeSet;
use std::sync::Arc;

use rdbd_config::Section;
use rdbd_types::{ConnState, DiskState};

use crate::peer::PeerConfig;
use crate::resource::{Resource, ResourceState};

/// One command `adjust` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The resource is not up: `up`.
    Up,
    /// The disk is detached: `attach`.
    Attach,
    /// Net options or addresses changed: `disconnect`, new settings, `connect`.
    Reconnect {
        /// The options that differ.
        changed: Vec<String>,
    },
    /// StandAlone (or Unconnected after a disconnect): `connect`.
    Connect,
    /// Only csums-alg / verify-alg changed, while connected: `net-options` without a
    /// reconnect (the peer adopts them, see `crate::peer::sync_params`).
    SyncAlgs {
        /// The options that differ.
        changed: Vec<String>,
    },
    /// Disk options that can change at runtime differ.
    DiskOptions {
        /// The options that differ.
        changed: Vec<String>,
    },
}

impl Step {
    /// The step as `rdbdadm -d adjust` prints it.
    pub fn describe(&self, resource: &str) -> String {
        match self {
            Step::Up => format!("rdbdadm up {resource}"),
            Step::Attach => format!("rdbdadm attach {resource}"),
            Step::Reconnect { changed } => format!(
                "rdbdadm disconnect {resource}; rdbdadm connect {resource}   # net options changed: {}",
                changed.join(", ")
            ),
            Step::Connect => format!("rdbdadm connect {resource}"),
            Step::SyncAlgs { changed } => format!(
                "rdbdadm net-options {resource}   # changed: {}",
                changed.join(", ")
            ),
            Step::DiskOptions { changed } => format!(
                "rdbdadm disk-options {resource}   # changed: {}",
                changed.join(", ")
            ),
        }
    }
}

/// Names of the options whose values differ between two sections.
fn changed_options(old: &Section, new: &Section) -> Vec<String> {
    let names: BTreeSet<&str> = old.iter().chain(new.iter()).map(|(n, _)| n).collect();
    names
        .into_iter()
        .filter(|n| old.get(n) != new.get(n))
        .map(str::to_string)
        .collect()
}

/// Net options a connected node changes without a reconnect (sent in P_SYNC_PARAM89).
const NET_OPTIONS_SENT_AS_SYNC_PARAMS: &[&str] = &["csums-alg", "verify-alg"];

/// Disk options DRBD 8.4 cannot change on an attached disk.
const DISK_OPTIONS_NEEDING_REATTACH: &[&str] = &["size", "max-bio-bvecs"];

/// Compares what runs (`running`, `state`; `None` when not up) with `file`.
pub fn plan(
    running: Option<&rdbd_config::Resource>,
    state: Option<&ResourceState>,
    file: &rdbd_config::Resource,
    node: &str,
) -> Result<Vec<Step>, String> {
    let (Some(running), Some(state)) = (running, state) else {
        return Ok(vec![Step::Up]);
    };
    let old_host = running.host(node).map_err(|e| e.to_string())?;
    let new_host = file.host(node).map_err(|e| e.to_string())?;
    if old_host.disk != new_host.disk {
        return Err(format!(
            "the backing disk changed ({} -> {}): that needs 'rdbdadm down' and 'rdbdadm up'",
            old_host
                .disk
                .as_deref()
                .map_or("none".into(), |p| p.display().to_string()),
            new_host
                .disk
                .as_deref()
                .map_or("none".into(), |p| p.display().to_string()),
        ));
    }
    if old_host.meta_disk != new_host.meta_disk {
        return Err(format!(
            "the meta-disk changed ({:?} -> {:?}): that needs 'rdbdadm down' and 'rdbdadm up'",
            old_host.meta_disk, new_host.meta_disk
        ));
    }
    let disk_changed = changed_options(&running.disk, &file.disk);
    if let Some(fixed) = disk_changed
        .iter()
        .find(|n| DISK_OPTIONS_NEEDING_REATTACH.contains(&n.as_str()))
    {
        return Err(format!(
            "disk option '{fixed}' changed: that needs 'rdbdadm resize' or 'rdbdadm down' and 'rdbdadm up'"
        ));
    }
    let mut steps = Vec::new();
    if state.disk == DiskState::Diskless {
        steps.push(Step::Attach);
    }
    let mut net_changed = changed_options(&running.net, &file.net);
    if running.protocol != file.protocol && !net_changed.iter().any(|n| n == "protocol") {
        net_changed.push("protocol".into());
    }
    if old_host.address != new_host.address {
        net_changed.push("address".into());
    }
    let old_peer = running.peer_of(node).map(|h| h.address);
    let new_peer = file.peer_of(node).map(|h| h.address);
    if old_peer != new_peer {
        net_changed.push("peer address".into());
    }
    let replicated = file.peer_of(node).is_some();
    let only_sync_algs = net_changed
        .iter()
        .all(|n| NET_OPTIONS_SENT_AS_SYNC_PARAMS.contains(&n.as_str()));
    if replicated
        && !net_changed.is_empty()
        && only_sync_algs
        && state.cstate >= ConnState::Connected
    {
        steps.push(Step::SyncAlgs {
            changed: net_changed,
        });
    } else if replicated && !net_changed.is_empty() {
        steps.push(Step::Reconnect {
            changed: net_changed,
        });
    } else if replicated && state.cstate == ConnState::StandAlone {
        steps.push(Step::Connect);
    }
    if !disk_changed.is_empty() {
        steps.push(Step::DiskOptions {
            changed: disk_changed,
        });
    }
    Ok(steps)
}

/// The connection settings `file` gives this node.
pub fn peer_config(file: &rdbd_config::Resource, node: &str) -> Result<PeerConfig, String> {
    let me = file.host(node).map_err(|e| e.to_string())?;
    let peer = file
        .peer_of(node)
        .ok_or("the resource has no peer configured (standalone)")?;
    Ok(PeerConfig {
        local: me
            .address
            .ok_or_else(|| format!("no 'address' configured for this node ({node})"))?,
        peer: peer
            .address
            .ok_or_else(|| format!("no 'address' configured for the peer {}", peer.name))?,
        peer_name: peer.name.clone(),
        local_name: node.to_string(),
        settings: file.settings(),
    })
}

/// Runs the steps after `Up` on a resource that is up. Returns a line per step done.
pub async fn apply(
    resource: &Arc<Resource>,
    steps: &[Step],
    file: &rdbd_config::Resource,
    node: &str,
) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    for step in steps {
        match step {
            Step::Up => return Err("internal: 'up' is run by the controller".into()),
            Step::Attach => {
                super::attach::attach(resource, file, node).await?;
            }
            Step::Reconnect { .. } => {
                let link = resource
                    .peer_link()
                    .ok_or("the resource has no connection")?;
                let cfg = peer_config(file, node)?;
                link.disconnect().await;
                link.reconfigure(cfg).await?;
                link.connect(false);
            }
            Step::Connect => {
                let link = resource
                    .peer_link()
                    .ok_or("the resource has no connection")?;
                link.connect(false);
            }
            Step::SyncAlgs { .. } => {
                let link = resource
                    .peer_link()
                    .ok_or("the resource has no connection")?;
                link.change_sync_algs(peer_config(file, node)?).await?;
            }
            Step::DiskOptions { changed } => {
                if let Some(link) = resource.peer_link() {
                    link.update_disk_options(peer_config(file, node)?);
                }
                tracing::info!(resource = %resource.name, options = %changed.join(", "), "disk options applied");
            }
        }
        done.push(step.describe(&resource.name));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdbd_types::{ConnState, DiskState, Role};

    fn config(net: &str, disk: &str, path: &str) -> rdbd_config::Resource {
        let text = format!(
            "resource r0 {{ net {{ {net} }} disk {{ {disk} }}\n\
             on alice {{ device /dev/drbd0; disk {path}; address 127.0.0.1:7000; meta-disk internal; }}\n\
             on bob {{ device /dev/drbd0; disk /b.img; address 127.0.0.1:7001; meta-disk internal; }} }}\n"
        );
        let c = rdbd_config::parse_drbd_conf(&text, std::path::Path::new("test.conf"))
            .expect("test configuration parses");
        c.resource("r0").expect("r0").clone()
    }

    fn state(disk: DiskState, cstate: ConnState) -> ResourceState {
        ResourceState {
            role: Role::Secondary,
            disk,
            cstate,
            peer_role: Role::Unknown,
            peer_disk: DiskState::DUnknown,
            open_clients: 0,
        }
    }

    #[test]
    fn nothing_changed_and_connected_is_no_step() {
        let c = config("protocol C;", "", "/a.img");
        let st = state(DiskState::UpToDate, ConnState::Connected);
        assert_eq!(plan(Some(&c), Some(&st), &c, "alice"), Ok(vec![]));
    }

    #[test]
    fn a_resource_not_up_is_brought_up() {
        let c = config("", "", "/a.img");
        assert_eq!(plan(None, None, &c, "alice"), Ok(vec![Step::Up]));
    }

    #[test]
    fn a_protocol_change_reconnects() {
        let old = config("protocol C;", "", "/a.img");
        let new = config("protocol A;", "", "/a.img");
        let st = state(DiskState::UpToDate, ConnState::Connected);
        let steps = plan(Some(&old), Some(&st), &new, "alice").unwrap();
        assert!(
            matches!(&steps[..], [Step::Reconnect { changed }] if changed.iter().any(|c| c == "protocol")),
            "{steps:?}"
        );
    }

    #[test]
    fn standalone_connects_and_diskless_attaches() {
        let c = config("", "", "/a.img");
        let st = state(DiskState::Diskless, ConnState::StandAlone);
        assert_eq!(
            plan(Some(&c), Some(&st), &c, "alice"),
            Ok(vec![Step::Attach, Step::Connect])
        );
    }

    #[test]
    fn a_changed_backing_disk_is_refused() {
        let old = config("", "", "/a.img");
        let new = config("", "", "/other.img");
        let st = state(DiskState::UpToDate, ConnState::Connected);
        let err = plan(Some(&old), Some(&st), &new, "alice").unwrap_err();
        assert!(
            err.contains("backing disk changed") && err.contains("down"),
            "{err}"
        );
    }

    #[test]
    fn changed_digest_algorithms_are_sent_while_connected() {
        let old = config("verify-alg md5;", "", "/a.img");
        let new = config("verify-alg sha1; csums-alg crc32c;", "", "/a.img");
        let connected = state(DiskState::UpToDate, ConnState::SyncSource);
        assert_eq!(
            plan(Some(&old), Some(&connected), &new, "alice"),
            Ok(vec![Step::SyncAlgs {
                changed: vec!["csums-alg".into(), "verify-alg".into()]
            }])
        );
        let unconnected = state(DiskState::UpToDate, ConnState::WFConnection);
        let steps = plan(Some(&old), Some(&unconnected), &new, "alice").unwrap();
        assert!(matches!(&steps[..], [Step::Reconnect { .. }]), "{steps:?}");
        let more = config("verify-alg sha1; protocol A;", "", "/a.img");
        let steps = plan(Some(&old), Some(&connected), &more, "alice").unwrap();
        assert!(matches!(&steps[..], [Step::Reconnect { .. }]), "{steps:?}");
    }

    #[test]
    fn disk_options_are_listed() {
        let old = config("", "resync-rate 10M;", "/a.img");
        let new = config("", "resync-rate 20M; c-plan-ahead 0;", "/a.img");
        let st = state(DiskState::UpToDate, ConnState::Connected);
        let steps = plan(Some(&old), Some(&st), &new, "alice").unwrap();
        assert_eq!(
            steps,
            vec![Step::DiskOptions {
                changed: vec!["c-plan-ahead".into(), "resync-rate".into()]
            }]
        );
    }
}
