//! The heartbeat socket: where to bind, where to send (the peer's unicast addresses,
//! `ucast` links, interface broadcast addresses, multicast groups), and the receive
//! thread.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::mpsc::Sender;
use std::time::Duration;

use tracing::warn;

use crate::config::{parse_addr, Config, LinkConfig};
use crate::error::{HaError, Result};
use crate::group::command::{run, Finished};
use crate::proto::MAX_PACKET_BYTES;

/// A received datagram.
#[derive(Debug)]
pub struct Datagram {
    /// The bytes (at most `MAX_PACKET_BYTES + 1`: longer ones read as too long).
    pub bytes: Vec<u8>,
    /// The sender.
    pub from: SocketAddr,
}

/// The bound socket and the send targets.
pub struct Net {
    /// The socket.
    pub socket: UdpSocket,
    /// Where every heartbeat goes.
    pub targets: Vec<SocketAddr>,
}

/// The word after `key` (`brd`, `inet`) in `ip -o -4 addr show dev INTERFACE`.
fn ip_addr_field(interface: &str, key: &str) -> Option<String> {
    let argv = ["ip", "-o", "-4", "addr", "show", "dev", interface].map(String::from);
    match run(&argv, &[], Duration::from_secs(5)) {
        Finished::Exit {
            code: 0, stdout, ..
        } => {
            let w: Vec<&str> = stdout.split_whitespace().collect();
            w.windows(2).find(|p| p[0] == key).map(|p| p[1].to_string())
        }
        _ => None,
    }
}

fn broadcast_of(interface: &str) -> Ipv4Addr {
    ip_addr_field(interface, "brd")
        .and_then(|v| v.parse().ok())
        .unwrap_or(Ipv4Addr::BROADCAST)
}

fn interface_v4(interface: &str) -> Ipv4Addr {
    ip_addr_field(interface, "inet")
        .and_then(|v| v.split('/').next()?.parse().ok())
        .unwrap_or(Ipv4Addr::UNSPECIFIED)
}

impl Net {
    /// Binds and resolves the targets for node `local` (index into `config.nodes`).
    pub fn open(config: &Config, local: usize) -> Result<Net> {
        let me = &config.nodes[local];
        let peer = &config.nodes[1 - local];
        let bind = match (&me.bind, me.heartbeat.first()) {
            (Some(b), _) => parse_addr(b, config.udp_port)?,
            (None, Some(a)) => parse_addr(a, config.udp_port)?,
            (None, None) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), config.udp_port),
        };
        let socket = UdpSocket::bind(bind).map_err(|source| HaError::Io {
            what: format!("bind heartbeat socket {bind}"),
            error: source,
        })?;
        let own: Vec<SocketAddr> = me
            .heartbeat
            .iter()
            .filter_map(|a| parse_addr(a, config.udp_port).ok())
            .collect();
        let mut targets: Vec<SocketAddr> = Vec::new();
        for a in &peer.heartbeat {
            targets.push(parse_addr(a, config.udp_port)?);
        }
        for l in &config.links {
            match l {
                LinkConfig::Ucast { address, .. } => {
                    let a = parse_addr(address, config.udp_port)?;
                    // A shared ha.cf-style list may name our own address: skip it.
                    if !own.contains(&a) {
                        targets.push(a);
                    }
                }
                LinkConfig::Bcast { interface } => {
                    socket.set_broadcast(true).map_err(|source| HaError::Io {
                        what: "SO_BROADCAST".into(),
                        error: source,
                    })?;
                    targets.push(SocketAddr::new(
                        IpAddr::V4(broadcast_of(interface)),
                        config.udp_port,
                    ));
                }
                LinkConfig::Mcast {
                    interface,
                    group,
                    port,
                    ttl,
                } => {
                    let iface = interface_v4(interface);
                    if let Err(e) = socket.join_multicast_v4(group, &iface) {
                        warn!(%group, %interface, error = %e, "cannot join multicast group");
                    }
                    let _ = socket.set_multicast_ttl_v4(*ttl);
                    targets.push(SocketAddr::new(
                        IpAddr::V4(*group),
                        port.unwrap_or(config.udp_port),
                    ));
                }
            }
        }
        targets.dedup();
        if targets.is_empty() {
            return Err(HaError::Invalid(format!(
                "node '{}' has nowhere to send heartbeats: give the peer heartbeat addresses or a link",
                me.name
            )));
        }
        Ok(Net { socket, targets })
    }

    /// Sends one packet to every target; failures are logged, not fatal.
    pub fn send(&self, packet: &[u8]) {
        for t in &self.targets {
            if let Err(e) = self.socket.send_to(packet, t) {
                warn!(target = %t, error = %e, "heartbeat send failed");
            }
        }
    }

    /// Starts the receive thread.
    pub fn spawn_receiver(&self, tx: Sender<Datagram>) -> Result<()> {
        let sock = self.socket.try_clone().map_err(|source| HaError::Io {
            what: "clone heartbeat socket".into(),
            error: source,
        })?;
        std::thread::Builder::new()
            .name("hb-recv".into())
            .spawn(move || {
                let mut buf = [0u8; MAX_PACKET_BYTES + 1];
                loop {
                    match sock.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            if tx
                                .send(Datagram {
                                    bytes: buf[..n].to_vec(),
                                    from,
                                })
                                .is_err()
                            {
                                return;
                            }
                        }
                        Err(e) => {
                            warn!(error = %e, "heartbeat receive failed");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })
            .map_err(|source| HaError::Io {
                what: "spawn receive thread".into(),
                error: source,
            })?;
        Ok(())
    }
}
