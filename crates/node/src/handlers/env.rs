//! The environment a handler runs with: DRBD's kernel helper environment
//! (`drbd_khelper` / `setup_khelper_env`: `HOME`, `TERM`, `PATH`, `DRBD_PEER_AF`,
//! `DRBD_PEER_ADDRESS`), what drbdadm adds before it runs the command (`adm_khelper`:
//! `DRBD_RESOURCE`, `DRBD_MINOR`, `DRBD_VOLUME`, `DRBD_LL_DISK`, `DRBD_PEER`,
//! `DRBD_PEERS`, `DRBD_CONF`), and rdbd's own variables (`RDBD_CONFIG`, `RDBD_NODE`,
//! `RDBD_RUN_DIR`) so that `rdbdadm` in a handler talks to this node's daemon.

use std::net::SocketAddr;

use super::HandlerConfig;

/// The `PATH` DRBD's kernel gives its helpers.
pub const HELPER_PATH: &str = "/sbin:/usr/sbin:/bin:/usr/bin";

/// DRBD's name of an address family (`DRBD_PEER_AF`).
pub fn address_family(addr: &SocketAddr) -> &'static str {
    match addr {
        SocketAddr::V4(_) => "ipv4",
        SocketAddr::V6(_) => "ipv6",
    }
}

/// The whole environment of a handler of `cfg`'s resource, in a fixed order.
pub fn helper_env(cfg: &HandlerConfig) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("HOME".into(), "/".into()),
        ("TERM".into(), "linux".into()),
        ("PATH".into(), HELPER_PATH.into()),
    ];
    if let Some(peer) = &cfg.peer {
        env.push(("DRBD_PEER_AF".into(), address_family(&peer.address).into()));
        env.push(("DRBD_PEER_ADDRESS".into(), peer.address.ip().to_string()));
        env.push(("DRBD_PEER".into(), peer.name.clone()));
        env.push(("DRBD_PEERS".into(), peer.name.clone()));
    }
    env.push(("DRBD_RESOURCE".into(), cfg.resource.clone()));
    env.push(("DRBD_MINOR".into(), cfg.minor.to_string()));
    env.push(("DRBD_VOLUME".into(), cfg.volume.to_string()));
    env.push(("DRBD_LL_DISK".into(), cfg.backing_disk.clone()));
    env.push(("DRBD_CONF".into(), cfg.config_path.display().to_string()));
    env.push(("RDBD_CONFIG".into(), cfg.config_path.display().to_string()));
    env.push(("RDBD_NODE".into(), cfg.node_name.clone()));
    env.push(("RDBD_RUN_DIR".into(), cfg.run_dir.display().to_string()));
    env
}
