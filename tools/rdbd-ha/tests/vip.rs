//! The virtual IP resource for real: `IPaddr::IP/PREFIX/IFACE` from a haresources line,
//! run by the real step runner and group manager inside a network namespace the test
//! creates, on a veth interface whose other end is in a second namespace.
//!
//! - start adds the address and announces it with gratuitous ARP: the other namespace
//!   (arp_accept on) learns the VIP's MAC without ever asking for it;
//! - stop cancels the announcements still under way and removes the address;
//! - a group whose next resource fails to start rolls back: the address is removed.

mod harness;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::netns::NetPair;
use harness::write_exec;
use rdbd_ha::config::{haresources, CommandsConfig};
use rdbd_ha::group::shell::ShellRunner;
use rdbd_ha::group::{GroupManager, GroupState, Timeouts};

const VIP: &str = "10.213.0.10";

const SVC: &str = "#!/bin/sh\nd=\"$1\"\ncase \"$2\" in\n start) [ -f \"$d/fail-start\" ] && exit 1; touch \"$d/active\" ;;\n stop) rm -f \"$d/active\" ;;\n status) [ -f \"$d/active\" ] || exit 3 ;;\nesac\n";

fn ip_out(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {}: {:?}", args.join(" "), out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn vip_on(pair: &NetPair) -> bool {
    ip_out(&[
        "-n",
        &pair.ns[0],
        "-o",
        "addr",
        "show",
        "dev",
        &pair.veth[0],
    ])
    .contains(&format!("{VIP}/8"))
}

fn mac_of(pair: &NetPair, i: usize) -> String {
    let link = ip_out(&[
        "-n",
        &pair.ns[i],
        "-o",
        "link",
        "show",
        "dev",
        &pair.veth[i],
    ]);
    let w: Vec<&str> = link.split_whitespace().collect();
    w.windows(2)
        .find(|p| p[0] == "link/ether")
        .map(|p| p[1].to_string())
        .expect("a MAC address")
}

/// The neighbour entry namespace b has for the VIP.
fn neighbour_of_vip(pair: &NetPair) -> String {
    ip_out(&[
        "-n",
        &pair.ns[1],
        "neigh",
        "show",
        VIP,
        "dev",
        &pair.veth[1],
    ])
}

/// The arping processes announcing on `iface` (from /proc).
fn arpings_on(iface: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            args.first().is_some_and(|a| a.ends_with(b"arping")) && args.contains(&iface.as_bytes())
        })
        .count()
}

fn manager(pair: &NetPair, dir: &Path) -> GroupManager<ShellRunner> {
    write_exec(&dir.join("svc"), SVC);
    let line = format!(
        "alice IPaddr::{VIP}/8/{} svc::{}\n",
        pair.veth[0],
        dir.display()
    );
    let (groups, _) = haresources::parse(&line).unwrap();
    let commands = CommandsConfig {
        script_dirs: vec![dir.to_path_buf()],
        ..CommandsConfig::default()
    };
    let t = Duration::from_secs(10);
    let timeouts = Timeouts {
        start: t,
        stop: t,
        status: t,
    };
    let runner = ShellRunner::new(commands, dir);
    GroupManager::new("vip", groups[0].resources.clone(), timeouts, 3, runner)
}

#[test]
fn vip_is_added_announced_removed_and_rolled_back_on_a_real_interface() {
    harness::require("arping");
    let pair = NetPair::new();
    // Namespace b accepts gratuitous ARP for addresses it has no entry for.
    let sysctl = format!("net.ipv4.conf.{}.arp_accept=1", pair.veth[1]);
    let out = pair
        .command(1, "sysctl")
        .args(["-w", &sysctl])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mac_a = mac_of(&pair, 0);
    assert!(!vip_on(&pair));
    assert!(!neighbour_of_vip(&pair).contains(&mac_a));

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    // Every command the runner spawns (ip, arping, the script) inherits the namespace
    // of the thread that spawns it: run the group on a thread inside namespace a.
    let m = manager(&pair, &d);
    let (mut m, r) = pair.inside(0, move || {
        let mut m = m;
        let r = m.start();
        (m, r)
    });
    assert_eq!(r, Ok(()));
    assert_eq!(m.state(), GroupState::Running);
    assert!(vip_on(&pair), "the VIP is on {}", pair.veth[0]);
    assert!(d.join("active").exists());

    // The gratuitous ARP reaches namespace b, which never asked for the VIP.
    let start = Instant::now();
    while !neighbour_of_vip(&pair).contains(&mac_a) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no gratuitous ARP for {VIP} seen in the peer namespace: '{}'",
            neighbour_of_vip(&pair)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The announcements take GARP_COUNT seconds: one is still under way.
    assert_eq!(
        arpings_on(&pair.veth[0]),
        1,
        "arping runs in the background"
    );
    // Stop cancels it (a late announcement would undo the new holder's) and removes
    // the address.
    m = pair.inside(0, move || {
        let mut m = m;
        assert_eq!(m.stop(), Ok(()));
        m
    });
    assert_eq!(m.state(), GroupState::Stopped);
    assert!(!vip_on(&pair), "the VIP is gone after stop");
    assert_eq!(arpings_on(&pair.veth[0]), 0, "arping cancelled by the stop");
    assert!(!d.join("active").exists());

    // The service fails to start: the group rolls back and removes the address.
    std::fs::write(d.join("fail-start"), "").unwrap();
    let (m, r) = pair.inside(0, move || {
        let mut m = m;
        let r = m.start();
        (m, r)
    });
    let failure = r.expect_err("the start fails");
    assert!(failure.rolled_back, "{failure:?}");
    assert!(failure.reason.contains("svc"), "{failure:?}");
    assert_eq!(m.state(), GroupState::Failed);
    assert!(!vip_on(&pair), "the VIP is removed by the rollback");
    assert_eq!(
        arpings_on(&pair.veth[0]),
        0,
        "arping cancelled by the rollback"
    );
}
