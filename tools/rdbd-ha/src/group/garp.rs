//! Gratuitous ARP after a virtual IP is added, as heartbeat's `IPaddr` does with
//! `send_arp`: neighbours (clients, routers, switches) learn the address's new MAC at
//! once instead of when their ARP entries expire.
//!
//! Sent with iputils' `arping -U` (unsolicited ARP requests) from a background thread,
//! so a failover does not wait for arping's one-second interval. Best effort: a
//! missing arping or a failure is logged, never a failed start (the address is up).
//! Not sent for IPv6 addresses, on loopback or on NOARP interfaces (dummy, tun).

use std::time::Duration;

use tracing::{info, warn};

use super::command::{run, Finished};

/// How many announcements are sent (one per second).
pub const GARP_COUNT: u32 = 3;

/// Whether a link does ARP, from `ip -o link show dev IFACE` output: its flags
/// (`<BROADCAST,MULTICAST,UP,LOWER_UP>`) name neither `NOARP` nor `LOOPBACK`. (Read
/// through `ip`, not /sys, which shows the namespace that mounted it.)
pub fn link_does_arp(ip_link_show: &str) -> bool {
    let Some(flags) = ip_link_show
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(flags, _)| flags)
    else {
        return false;
    };
    !flags.split(',').any(|f| f == "NOARP" || f == "LOOPBACK")
}

fn interface_does_arp(interface: &str) -> bool {
    let argv = ["ip", "-o", "link", "show", "dev", interface].map(String::from);
    match run(&argv, &[], Duration::from_secs(5)) {
        Finished::Exit {
            code: 0, stdout, ..
        } => link_does_arp(&stdout),
        _ => false,
    }
}

/// The arping command line announcing `ip` (no prefix) on `interface`.
pub fn arping_argv(interface: &str, ip: &str) -> Vec<String> {
    [
        "arping",
        "-U",
        "-c",
        &GARP_COUNT.to_string(),
        "-I",
        interface,
        ip,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Announces `address` (`IP/PREFIX`) on `interface` in the background, when that
/// makes sense (IPv4 on an ARP interface).
pub fn announce(address: &str, interface: &str) {
    let ip = address.split('/').next().unwrap_or(address).to_string();
    if ip.contains(':') || !interface_does_arp(interface) {
        return;
    }
    let argv = arping_argv(interface, &ip);
    let interface = interface.to_string();
    let spawned = std::thread::Builder::new()
        .name("garp".into())
        .spawn(move || {
            let timeout = Duration::from_secs(u64::from(GARP_COUNT) + 3);
            let f = run(&argv, &[], timeout);
            if f.success() {
                info!(%ip, %interface, count = GARP_COUNT, "gratuitous ARP sent");
            } else {
                warn!(%ip, %interface, result = %f.describe(),
                      "gratuitous ARP failed (install iputils-arping); neighbours learn the address when their ARP entries expire");
            }
        });
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start the gratuitous ARP thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_flags_and_command_line() {
        assert!(link_does_arp(
            "2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq state UP"
        ));
        assert!(!link_does_arp(
            "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN"
        ));
        assert!(!link_does_arp(
            "5: dummy0: <BROADCAST,NOARP,UP,LOWER_UP> mtu 1500 qdisc noqueue"
        ));
        assert!(!link_does_arp(""));
        assert_eq!(
            arping_argv("eth0", "10.0.0.10"),
            vec!["arping", "-U", "-c", "3", "-I", "eth0", "10.0.0.10"]
        );
    }
}
