//! The heartbeat media: one UDP socket per medium ([`Link`]) and the receive threads.
//!
//! - `udp` (ucast): unicast to the peer's heartbeat addresses and the `ucast` links;
//! - `bcast(IFACE)`: the interface's IPv4 broadcast address on `udp_port`, the socket
//!   bound to the device with `SO_BINDTODEVICE`;
//! - `mcast(IFACE,GROUP:PORT)`: the group joined on the interface.
//!
//! Every heartbeat goes out over every medium; every received datagram, whatever the
//! medium, goes through the same authentication and replay filter in the daemon, which
//! also drops the node's own looped-back packets (broadcasts always loop back, multicast
//! with `loop`). A copy of the same packet over a second medium is a duplicate, not a
//! replay (see [`crate::proto::Verdict::Duplicate`]).

pub mod iface;
mod sockets;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use tracing::{info, warn};

use crate::config::{parse_addr, Config, LinkConfig};
use crate::error::{HaError, Result};
use crate::proto::MAX_PACKET_BYTES;

/// A received datagram.
#[derive(Debug)]
pub struct Datagram {
    /// The bytes (at most `MAX_PACKET_BYTES + 1`: longer ones read as too long).
    pub bytes: Vec<u8>,
    /// The sender.
    pub from: SocketAddr,
    /// The medium it came over ([`Link::name`]).
    pub link: String,
}

/// One destination of a link, and whether sending to it currently fails (so a failure
/// is logged once, not every keepalive).
struct Target {
    address: SocketAddr,
    failing: AtomicBool,
}

/// One heartbeat medium: its socket and where it sends.
pub struct Link {
    /// `udp`, `bcast(IFACE)` or `mcast(IFACE,GROUP:PORT)`.
    pub name: String,
    /// The socket (bound; device-bound for bcast and mcast).
    pub socket: UdpSocket,
    targets: Vec<Target>,
}

impl Link {
    fn new(name: String, socket: UdpSocket, targets: Vec<SocketAddr>) -> Link {
        let targets = targets
            .into_iter()
            .map(|address| Target {
                address,
                failing: AtomicBool::new(false),
            })
            .collect();
        Link {
            name,
            socket,
            targets,
        }
    }

    /// Where this link sends.
    pub fn targets(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.targets.iter().map(|t| t.address)
    }
}

/// All heartbeat media of this node.
pub struct Net {
    /// The media, unicast first.
    pub links: Vec<Link>,
}

/// The unicast targets: the peer's heartbeat addresses and the `ucast` links, except
/// this node's own addresses (a shared ha.cf-style list may name them).
fn ucast_targets(config: &Config, local: usize) -> Result<Vec<SocketAddr>> {
    let me = &config.nodes[local];
    let peer = &config.nodes[1 - local];
    let own: Vec<SocketAddr> = me
        .heartbeat
        .iter()
        .filter_map(|a| parse_addr(a, config.udp_port).ok())
        .collect();
    let mut targets = Vec::new();
    for a in &peer.heartbeat {
        targets.push(parse_addr(a, config.udp_port)?);
    }
    for l in &config.links {
        if let LinkConfig::Ucast { address, .. } = l {
            let a = parse_addr(address, config.udp_port)?;
            if !own.contains(&a) && !targets.contains(&a) {
                targets.push(a);
            }
        }
    }
    Ok(targets)
}

impl Net {
    /// Opens every medium of node `local` (index into `config.nodes`).
    pub fn open(config: &Config, local: usize) -> Result<Net> {
        let me = &config.nodes[local];
        let shared_media = config
            .links
            .iter()
            .any(|l| !matches!(l, LinkConfig::Ucast { .. }));
        let mut links = Vec::new();
        let ucast = ucast_targets(config, local)?;
        if !ucast.is_empty() || me.bind.is_some() || !me.heartbeat.is_empty() {
            let bind = match (&me.bind, me.heartbeat.first()) {
                (Some(b), _) => parse_addr(b, config.udp_port)?,
                (None, Some(a)) => parse_addr(a, config.udp_port)?,
                (None, None) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), config.udp_port),
            };
            let socket = sockets::ucast(bind, shared_media)?;
            links.push(Link::new("udp".into(), socket, ucast));
        }
        for l in &config.links {
            let (name, socket, target) = match l {
                LinkConfig::Ucast { .. } => continue,
                LinkConfig::Bcast { interface } => {
                    let socket = sockets::bcast(interface, config.udp_port)?;
                    let brd = iface::broadcast_target(interface);
                    let target = SocketAddr::new(IpAddr::V4(brd), config.udp_port);
                    (format!("bcast({interface})"), socket, target)
                }
                LinkConfig::Mcast {
                    interface,
                    group,
                    port,
                    ttl,
                    multicast_loop,
                } => {
                    let port = port.unwrap_or(config.udp_port);
                    let socket = sockets::mcast(interface, *group, port, *ttl, *multicast_loop)?;
                    let target = SocketAddr::new(IpAddr::V4(*group), port);
                    (format!("mcast({interface},{group}:{port})"), socket, target)
                }
            };
            if links.iter().any(|k: &Link| k.name == name) {
                warn!(link = %name, "heartbeat medium configured twice; using it once");
                continue;
            }
            info!(link = %name, target = %target, "heartbeat medium open");
            links.push(Link::new(name, socket, vec![target]));
        }
        if links.iter().all(|l| l.targets.is_empty()) {
            return Err(HaError::Invalid(format!(
                "node '{}' has nowhere to send heartbeats: give the peer heartbeat addresses or a link",
                me.name
            )));
        }
        Ok(Net { links })
    }

    /// `LINK -> TARGET` for every destination, for the startup log.
    pub fn describe(&self) -> Vec<String> {
        self.links
            .iter()
            .flat_map(|l| l.targets().map(move |t| format!("{} -> {t}", l.name)))
            .collect()
    }

    /// Sends one packet over every medium to every target. A failure (an interface
    /// down, no route) is logged when it starts and when it ends, never fatal.
    pub fn send(&self, packet: &[u8]) {
        for l in &self.links {
            for t in &l.targets {
                match l.socket.send_to(packet, t.address) {
                    Ok(_) => {
                        if t.failing.swap(false, Ordering::Relaxed) {
                            info!(link = %l.name, target = %t.address, "heartbeat send works again");
                        }
                    }
                    Err(e) => {
                        if !t.failing.swap(true, Ordering::Relaxed) {
                            warn!(link = %l.name, target = %t.address, error = %e,
                                  "heartbeat send failed (logged again only after it worked)");
                        }
                    }
                }
            }
        }
    }

    /// Starts one receive thread per medium, all feeding `tx`.
    pub fn spawn_receivers(&self, tx: Sender<Datagram>) -> Result<()> {
        for l in &self.links {
            let sock = l.socket.try_clone().map_err(|source| HaError::Io {
                what: format!("clone heartbeat socket of {}", l.name),
                error: source,
            })?;
            let link = l.name.clone();
            let tx = tx.clone();
            std::thread::Builder::new()
                .name("hb-recv".into())
                .spawn(move || receive(sock, link, tx))
                .map_err(|source| HaError::Io {
                    what: "spawn receive thread".into(),
                    error: source,
                })?;
        }
        Ok(())
    }
}

fn receive(sock: UdpSocket, link: String, tx: Sender<Datagram>) {
    let mut buf = [0u8; MAX_PACKET_BYTES + 1];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let d = Datagram {
                    bytes: buf[..n].to_vec(),
                    from,
                    link: link.clone(),
                };
                if tx.send(d).is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!(%link, error = %e, "heartbeat receive failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
