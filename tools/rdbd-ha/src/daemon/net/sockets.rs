//! Opening one UDP socket per heartbeat medium:
//! - ucast: bound to the node's heartbeat address (or `0.0.0.0:udp_port`);
//! - bcast: `0.0.0.0:udp_port`, `SO_BINDTODEVICE` the interface, `SO_BROADCAST`;
//! - mcast: `0.0.0.0:PORT`, `SO_BINDTODEVICE` the interface, the group joined on it
//!   (`IP_ADD_MEMBERSHIP` by interface index), `IP_MULTICAST_IF`, TTL and loop set, and
//!   `IP_MULTICAST_ALL` off so only this group's datagrams arrive.
//!
//! Sockets that share a port with another medium set `SO_REUSEADDR`; broadcast and
//! multicast datagrams then reach every matching socket, and unicast ones one of them.
//! Every socket feeds the same authenticated decoder, so that is harmless.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};

use super::iface;
use crate::error::{HaError, Result};

fn io(what: String) -> impl FnOnce(std::io::Error) -> HaError {
    move |error| HaError::Io { what, error }
}

fn udp(domain: Domain, what: &str) -> Result<Socket> {
    Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(io(format!("{what}: socket")))
}

/// The unicast socket, bound to `bind`; `reuse` when other media share its port.
pub fn ucast(bind: SocketAddr, reuse: bool) -> Result<UdpSocket> {
    let what = format!("heartbeat socket {bind}");
    let s = udp(Domain::for_address(bind), &what)?;
    if reuse {
        s.set_reuse_address(true)
            .map_err(io(format!("{what}: SO_REUSEADDR")))?;
    }
    s.bind(&bind.into())
        .map_err(io(format!("bind heartbeat socket {bind}")))?;
    Ok(s.into())
}

/// A socket bound to `0.0.0.0:port` and to the device `interface`.
fn device_socket(kind: &str, interface: &str, port: u16) -> Result<Socket> {
    let what = format!("{kind} link on {interface}");
    if iface::index(interface).is_none() {
        return Err(HaError::Invalid(format!(
            "{what}: there is no network interface '{interface}'"
        )));
    }
    let s = udp(Domain::IPV4, &what)?;
    s.set_reuse_address(true)
        .map_err(io(format!("{what}: SO_REUSEADDR")))?;
    s.bind_device(Some(interface.as_bytes()))
        .map_err(io(format!("{what}: SO_BINDTODEVICE {interface}")))?;
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    s.bind(&any.into())
        .map_err(io(format!("{what}: bind {any}")))?;
    Ok(s)
}

/// The socket of a `bcast INTERFACE` link on `port`.
pub fn bcast(interface: &str, port: u16) -> Result<UdpSocket> {
    let s = device_socket("bcast", interface, port)?;
    s.set_broadcast(true)
        .map_err(io(format!("bcast link on {interface}: SO_BROADCAST")))?;
    Ok(s.into())
}

/// `IP_MULTICAST_IF` by interface index (`struct ip_mreqn`), which works on interfaces
/// without an IPv4 address too.
fn set_multicast_if_index(s: &Socket, index: u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mreq = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: i32::try_from(index)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?,
    };
    // SAFETY: setsockopt on our own open socket with a pointer to a live ip_mreqn and
    // its exact size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&mreq as *const libc::ip_mreqn).cast(),
            std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The socket of an `mcast INTERFACE GROUP PORT TTL LOOP` link.
pub fn mcast(
    interface: &str,
    group: Ipv4Addr,
    port: u16,
    ttl: u32,
    multicast_loop: bool,
) -> Result<UdpSocket> {
    let what = format!("mcast link {group}:{port} on {interface}");
    let s = device_socket("mcast", interface, port)?;
    let index = iface::index(interface)
        .ok_or_else(|| HaError::Invalid(format!("{what}: interface '{interface}' vanished")))?;
    s.set_multicast_all_v4(false)
        .map_err(io(format!("{what}: IP_MULTICAST_ALL")))?;
    s.join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(index))
        .map_err(io(format!("{what}: IP_ADD_MEMBERSHIP")))?;
    set_multicast_if_index(&s, index).map_err(io(format!("{what}: IP_MULTICAST_IF")))?;
    s.set_multicast_ttl_v4(ttl)
        .map_err(io(format!("{what}: IP_MULTICAST_TTL {ttl}")))?;
    s.set_multicast_loop_v4(multicast_loop)
        .map_err(io(format!("{what}: IP_MULTICAST_LOOP")))?;
    Ok(s.into())
}
