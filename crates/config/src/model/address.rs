//! Network addresses as drbd.conf writes them: `[ipv4|ipv6|ssocks|sdp] ADDR:PORT`
//! with IPv6 in brackets.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The address family keyword of an `address` statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressFamily {
    /// `ipv4` (the default when none is written).
    #[default]
    Ipv4,
    /// `ipv6`.
    Ipv6,
    /// `ssocks` (Dolphin SuperSockets; `sci` is its old name). Not implemented.
    Ssocks,
    /// `sdp` (Sockets Direct Protocol). Not implemented.
    Sdp,
}

impl AddressFamily {
    /// Reads a family keyword.
    pub fn from_keyword(word: &str) -> Option<Self> {
        match word {
            "ipv4" => Some(AddressFamily::Ipv4),
            "ipv6" => Some(AddressFamily::Ipv6),
            "ssocks" | "sci" => Some(AddressFamily::Ssocks),
            "sdp" => Some(AddressFamily::Sdp),
            _ => None,
        }
    }

    /// The keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            AddressFamily::Ipv4 => "ipv4",
            AddressFamily::Ipv6 => "ipv6",
            AddressFamily::Ssocks => "ssocks",
            AddressFamily::Sdp => "sdp",
        }
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// Reads `IP:PORT` or `[IPV6]:PORT`; the port must be 1..=65535. Host names
/// are not accepted (drbdadm does not accept them either).
pub fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    let (ip_text, port_text) = if let Some(rest) = text.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| "expected ']' after an IPv6 address".to_string())?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| "expected ':PORT' after ']'".to_string())?;
        (ip, port)
    } else {
        text.rsplit_once(':')
            .ok_or_else(|| "expected IP:PORT".to_string())?
    };
    let ip: IpAddr = ip_text
        .parse()
        .map_err(|_| format!("'{ip_text}' is not an IP address"))?;
    if ip.is_ipv6() && !text.starts_with('[') {
        return Err("IPv6 addresses must be written in brackets: [ADDR]:PORT".to_string());
    }
    let port: u16 = port_text
        .parse()
        .map_err(|_| format!("'{port_text}' is not a port number (1..65535)"))?;
    if port == 0 {
        return Err("port 0 is out of range [1..65535]".to_string());
    }
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ipv4_and_bracketed_ipv6() {
        assert_eq!(
            parse_socket_addr("10.0.0.1:7789").unwrap(),
            "10.0.0.1:7789".parse().unwrap()
        );
        assert_eq!(
            parse_socket_addr("[fe80::1]:7789").unwrap(),
            "[fe80::1]:7789".parse().unwrap()
        );
        assert!(parse_socket_addr("fe80::1:7789").is_err());
        assert!(parse_socket_addr("10.0.0.1").is_err());
        assert!(parse_socket_addr("10.0.0.1:0").is_err());
        assert!(parse_socket_addr("10.0.0.1:70000").is_err());
        assert!(parse_socket_addr("alice:7789").is_err());
    }
}
