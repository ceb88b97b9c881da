//! Network interface facts the heartbeat media need: whether an interface exists, its
//! index (for `IP_ADD_MEMBERSHIP`/`IP_MULTICAST_IF`) and its IPv4 broadcast address,
//! read from the kernel with `if_nametoindex(3)` and `getifaddrs(3)` (no `ip` process).

use std::ffi::CString;
use std::net::Ipv4Addr;

/// The interface's index, or None when there is no such interface.
pub fn index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// One IPv4 address of an interface: (address, prefix length, broadcast address when
/// the interface has one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Address {
    /// The address.
    pub address: Ipv4Addr,
    /// The prefix length.
    pub prefix_len: u8,
    /// The broadcast address the kernel reports (IFF_BROADCAST interfaces).
    pub broadcast: Option<Ipv4Addr>,
}

fn sockaddr_v4(sa: *const libc::sockaddr) -> Option<Ipv4Addr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: getifaddrs returns valid sockaddr pointers (or null, checked above); we
    // read the family first and only reinterpret AF_INET ones as sockaddr_in.
    unsafe {
        if i32::from((*sa).sa_family) != libc::AF_INET {
            return None;
        }
        let sin = &*(sa as *const libc::sockaddr_in);
        Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
    }
}

/// The IPv4 addresses of interface `name` (empty when it has none or does not exist).
pub fn v4_addresses(name: &str) -> Vec<V4Address> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated interface name owned by the list.
        let ifname = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if ifname.to_bytes() != name.as_bytes() {
            continue;
        }
        let (Some(address), Some(mask)) = (sockaddr_v4(ifa.ifa_addr), sockaddr_v4(ifa.ifa_netmask))
        else {
            continue;
        };
        let broadcast = if ifa.ifa_flags & libc::IFF_BROADCAST as u32 != 0 {
            // The broadcast address shares a union with the p2p destination; without a
            // configured `brd`, glibc leaves the address itself there.
            sockaddr_v4(ifa.ifa_ifu).filter(|b| !b.is_unspecified() && *b != address)
        } else {
            None
        };
        out.push(V4Address {
            address,
            prefix_len: u32::from(mask).count_ones() as u8,
            broadcast,
        });
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// The directed broadcast address of `address/prefix_len` (None for /31 and /32).
pub fn directed_broadcast(address: Ipv4Addr, prefix_len: u8) -> Option<Ipv4Addr> {
    if prefix_len >= 31 {
        return None;
    }
    let host_mask = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
    Some(Ipv4Addr::from(u32::from(address) | host_mask))
}

/// Where a `bcast` link sends: the broadcast address of the interface's first IPv4
/// address (as the kernel reports it, or computed from the prefix), else the limited
/// broadcast 255.255.255.255 (which the device-bound socket sends out that interface).
pub fn broadcast_target(name: &str) -> Ipv4Addr {
    v4_addresses(name)
        .iter()
        .find_map(|a| {
            a.broadcast
                .or_else(|| directed_broadcast(a.address, a.prefix_len))
        })
        .unwrap_or(Ipv4Addr::BROADCAST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_addresses() {
        let a = Ipv4Addr::new(10, 213, 0, 1);
        assert_eq!(
            directed_broadcast(a, 8),
            Some(Ipv4Addr::new(10, 255, 255, 255))
        );
        assert_eq!(
            directed_broadcast(Ipv4Addr::new(192, 168, 1, 7), 24),
            Some(Ipv4Addr::new(192, 168, 1, 255))
        );
        assert_eq!(directed_broadcast(a, 0), Some(Ipv4Addr::BROADCAST));
        assert_eq!(directed_broadcast(a, 31), None);
        assert_eq!(directed_broadcast(a, 32), None);
    }

    #[test]
    fn loopback_is_known_and_nonsense_is_not() {
        assert!(index("lo").is_some());
        assert!(index("no-such-if0").is_none());
        assert!(v4_addresses("lo")
            .iter()
            .any(|a| a.address == Ipv4Addr::LOCALHOST && a.prefix_len == 8));
        assert!(v4_addresses("no-such-if0").is_empty());
    }
}
