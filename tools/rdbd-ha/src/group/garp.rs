//! Gratuitous ARP after a virtual IP is added, as heartbeat's `IPaddr` does with
//! `send_arp`: neighbours (clients, routers, switches) learn the address's new MAC at
//! once instead of when their ARP entries expire.
//!
//! Sent with iputils' `arping -U` (unsolicited ARP requests) from a background thread,
//! so a failover does not wait for arping's one-second interval. Best effort: a
//! missing arping or a failure is logged, never a failed start (the address is up).
//! Not sent for IPv6 addresses, on loopback or on NOARP interfaces (dummy, tun).
//!
//! Removing the address first cancels its announcements still under way ([`cancel`]):
//! a late announcement from the node that gave the address up would undo the new
//! holder's and send the clients to the old MAC.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::command::{run, Finished};

/// The arping processes under way, by [`key`].
static RUNNING: Mutex<Option<HashMap<String, Child>>> = Mutex::new(None);

fn running() -> MutexGuard<'static, Option<HashMap<String, Child>>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(ip: &str, interface: &str) -> String {
    format!("{ip}%{interface}")
}

fn ip_of(address: &str) -> &str {
    address.split('/').next().unwrap_or(address)
}

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
    let ip = ip_of(address).to_string();
    if ip.contains(':') || !interface_does_arp(interface) {
        return;
    }
    cancel(address, interface);
    let argv = arping_argv(interface, &ip);
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            warn!(%ip, %interface, error = %e,
                  "gratuitous ARP not sent: cannot run arping (install iputils-arping); neighbours learn the address when their ARP entries expire");
            return;
        }
    };
    let k = key(&ip, interface);
    running()
        .get_or_insert_with(HashMap::new)
        .insert(k.clone(), child);
    let interface = interface.to_string();
    let spawned = std::thread::Builder::new()
        .name("garp".into())
        .spawn(move || watch(&k, &ip, &interface));
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start the gratuitous ARP thread");
    }
}

/// Waits for the arping of `k` (killed after its time is up); logs how it ended. Gives
/// up quietly when [`cancel`] took it.
fn watch(k: &str, ip: &str, interface: &str) {
    let deadline = Instant::now() + Duration::from_secs(u64::from(GARP_COUNT) + 3);
    loop {
        {
            let mut guard = running();
            let Some(child) = guard.as_mut().and_then(|m| m.get_mut(k)) else {
                return;
            };
            let done = match child.try_wait() {
                Ok(Some(status)) => Some(status.success()),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Some(false)
                }
                Ok(None) => None,
                Err(_) => Some(false),
            };
            if let Some(ok) = done {
                guard.as_mut().and_then(|m| m.remove(k));
                if ok {
                    info!(%ip, %interface, count = GARP_COUNT, "gratuitous ARP sent");
                } else {
                    warn!(%ip, %interface, "gratuitous ARP failed; neighbours learn the address when their ARP entries expire");
                }
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the announcements of `address` on `interface` still under way (before the
/// address is removed). Returns whether one was running.
pub fn cancel(address: &str, interface: &str) -> bool {
    let k = key(ip_of(address), interface);
    let child = running().as_mut().and_then(|m| m.remove(&k));
    match child {
        Some(mut c) => {
            let _ = c.kill();
            let _ = c.wait();
            info!(ip = %ip_of(address), %interface, "gratuitous ARP cancelled: the address is being removed");
            true
        }
        None => false,
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
