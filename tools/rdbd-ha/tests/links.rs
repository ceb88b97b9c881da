//! Heartbeats over broadcast and multicast only: two real `rdbd-ha` processes, each in
//! its own network namespace (`ip netns exec`), joined by a veth pair and nothing else.
//! Each node sees the other alive, declares it dead `deadtime` after the link is cut,
//! and alive again once it is healed. Over multicast, a forged and a replayed packet
//! injected on the wire are ignored and logged, and the nodes' own looped-back packets
//! (loop on) are recognised and ignored. A third test starts both nodes from heartbeat's
//! own files: an `mcast IFACE GROUP PORT TTL 0` line in ha.cf is a working medium.

mod harness;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use harness::netns::{HaNetPair, NetPair};
use harness::{Cluster, Options, DEADTIME_MS};
use rdbd_ha::proto::{decode, encode, AuthMethod, Flags, Heartbeat, Key, Phase};

const PORT: u16 = 6940;
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 77, 0, 1);

fn key(secret: &str) -> Key {
    Key {
        method: AuthMethod::Sha256,
        index: 1,
        secret: secret.as_bytes().to_vec(),
    }
}

fn cluster(pair: &NetPair, links: &str) -> Cluster {
    // No stonith: a node that loses the link never takes the group (no second primary).
    Cluster::new(Options {
        stonith: false,
        media: Some((PORT, links.to_string())),
        netns: Some(pair.nodes()),
        ..Options::default()
    })
}

fn liveness(c: &Cluster, i: usize) -> String {
    c.try_status(i)
        .and_then(|s| s["peer"]["liveness"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn wait_liveness(c: &Cluster, want: &str, timeout: Duration) -> Duration {
    c.wait(
        &format!("both nodes to see the peer {want}"),
        timeout,
        |c| liveness(c, 0) == want && liveness(c, 1) == want,
    )
}

/// Up, cut (dead after deadtime), healed (alive again); checks the link names.
fn up_cut_heal(pair: &NetPair, c: &mut Cluster, medium: &str) {
    c.start(0);
    c.start(1);
    wait_liveness(c, "alive", Duration::from_secs(15));
    for i in 0..2 {
        let st = c.status(i);
        let links = st["peer"]["links"].to_string();
        assert!(links.contains(medium), "node {i} heard over {medium}: {st}");
        assert_eq!(st["rejected_packets"], 0, "{st}");
    }
    pair.cut();
    let cut_at = Instant::now();
    wait_liveness(c, "dead", Duration::from_millis(DEADTIME_MS + 5000));
    let took = cut_at.elapsed();
    println!("{medium}: link cut to peer dead: {took:?} (deadtime {DEADTIME_MS} ms)");
    assert!(
        took >= Duration::from_millis(DEADTIME_MS - 300),
        "declared dead after {took:?}, before deadtime"
    );
    for i in 0..2 {
        assert!(c.log(i).contains("peer is dead"), "node {i}:\n{}", c.log(i));
    }
    pair.heal();
    wait_liveness(c, "alive", Duration::from_secs(10));
    for i in 0..2 {
        let log = c.log(i);
        assert!(
            log.contains("heartbeats again after it was declared dead"),
            "node {i}:\n{log}"
        );
        assert!(
            !log.contains("replayed"),
            "no copy is taken for a replay:\n{log}"
        );
        // Sends into the cut link fail every keepalive: logged once, and the recovery.
        let failed = log.matches("heartbeat send failed").count();
        assert!(failed <= 1, "send failures logged {failed} times:\n{log}");
        if failed == 1 {
            assert!(log.contains("heartbeat send works again"), "{log}");
        }
    }
}

#[test]
fn membership_over_broadcast_only() {
    let pair = NetPair::new();
    let mut c = cluster(
        &pair,
        "[[links]]\nkind = \"bcast\"\ninterface = \"{IFACE}\"\n",
    );
    up_cut_heal(&pair, &mut c, "bcast(");
    // Broadcasts loop back to the sender's own socket: recognised and ignored.
    let st = c.status(0);
    assert!(st["own_packets_ignored"].as_u64().unwrap() > 0, "{st}");
}

#[test]
fn membership_over_multicast_only_and_forged_or_replayed_packets_are_ignored() {
    let pair = NetPair::new();
    let links = format!(
        "[[links]]\nkind = \"mcast\"\ninterface = \"{{IFACE}}\"\ngroup = \"{GROUP}\"\nport = {PORT}\nttl = 1\nloop = true\n"
    );
    let mut c = cluster(&pair, &links);
    // Capture bob's multicast heartbeats on alice's side of the wire.
    let tap = pair.udp_socket(0, PORT);
    let veth_a = pair.veth[0].clone();
    let idx = pair.inside(0, move || {
        rdbd_ha::daemon::net::iface::index(&veth_a).unwrap()
    });
    socket2::SockRef::from(&tap)
        .join_multicast_v4_n(&GROUP, &socket2::InterfaceIndexOrAddress::Index(idx))
        .unwrap();
    tap.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    up_cut_heal(&pair, &mut c, "mcast(");
    // loop = true: each node hears itself, and ignores it.
    for i in 0..2 {
        let st = c.status(i);
        assert!(st["own_packets_ignored"].as_u64().unwrap() > 0, "{st}");
    }

    let good = key("the-secret");
    let captured = loop {
        let mut buf = [0u8; 512];
        let (n, _) = tap.recv_from(&mut buf).expect("a heartbeat on the wire");
        if let Ok(hb) = decode(&buf[..n], &good) {
            if hb.node == "bob" {
                break (buf[..n].to_vec(), hb);
            }
        }
    };
    // Let bob send newer ones, so the captured packet is old by the time it is replayed.
    std::thread::sleep(Duration::from_millis(1000));
    let inject = pair.udp_socket(1, 0);
    socket2::SockRef::from(&inject)
        .set_multicast_loop_v4(false)
        .unwrap();
    let to = SocketAddr::V4(SocketAddrV4::new(GROUP, PORT));
    let before = c.status(0)["rejected_packets"].as_u64().unwrap();
    inject.send_to(&captured.0, to).unwrap();
    let forged = Heartbeat {
        seq: captured.1.seq + 1_000_000,
        phase: Phase::Leaving,
        flags: Flags(0),
        holds_mask: 0,
        ..captured.1.clone()
    };
    inject
        .send_to(&encode(&forged, &key("guessed")), to)
        .unwrap();
    c.wait(
        "alice to log the replayed and the forged packet",
        Duration::from_secs(5),
        |c| {
            let l = c.log(0);
            l.contains("ignored replayed heartbeat") && l.contains("MAC mismatch")
        },
    );
    let st = c.status(0);
    assert!(
        st["rejected_packets"].as_u64().unwrap() >= before + 2,
        "{st}"
    );
    // Neither packet changed alice's view: bob is alive, not "left".
    assert_eq!(st["peer"]["liveness"], "alive", "{st}");
    assert!(!c.log(0).contains("peer left cleanly"));
    let log = c.log(0);
    let line = log
        .lines()
        .find(|l| l.contains("ignored replayed heartbeat"))
        .unwrap();
    assert!(line.contains("mcast("), "the log names the medium: {line}");
}

/// A daemon started from heartbeat's files; killed on drop.
struct HaCfNode {
    child: std::process::Child,
    run_dir: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl HaCfNode {
    fn status(&self) -> Option<serde_json::Value> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rdbd-ha"))
            .arg("--run-dir")
            .arg(&self.run_dir)
            .args(["status", "--json"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())?
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HaCfNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn hacf_mcast_line_is_a_working_medium() {
    let pair = NetPair::new();
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<HaCfNode> = (0..2)
        .map(|i| {
            let name = harness::NAMES[i];
            let d = dir.path().join(name);
            std::fs::create_dir_all(d.join("resource.d")).unwrap();
            // `mcast IFACE GROUP PORT TTL LOOP` with loop 0: no own packets come back.
            std::fs::write(
                d.join("ha.cf"),
                format!(
                    "keepalive 200ms\nwarntime 1\ndeadtime 2500ms\ninitdead 5\nudpport 6943\nmcast {} 239.77.0.2 6942 1 0\nnode alice bob\nauto_failback off\n",
                    pair.veth[i]
                ),
            )
            .unwrap();
            harness::write_exec(
                &d.join("resource.d/svc"),
                "#!/bin/sh\ncase \"$1\" in start|stop) exit 0 ;; *) exit 3 ;; esac\n",
            );
            std::fs::write(d.join("haresources"), "alice svc\n").unwrap();
            std::fs::write(d.join("authkeys"), "auth 2\n2 sha1 hacf-secret\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                d.join("authkeys"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            let log = d.join("rdbd-ha.log");
            let run_dir = d.join("run");
            let child = std::process::Command::new("ip")
                .args(["netns", "exec", &pair.ns[i], env!("CARGO_BIN_EXE_rdbd-ha")])
                .arg("--config")
                .arg(&d)
                .args(["--node", name, "--run-dir"])
                .arg(&run_dir)
                .arg("run")
                .env("RUST_LOG", "info")
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            HaCfNode {
                child,
                run_dir,
                log,
            }
        })
        .collect();
    let alive = |n: &HaCfNode| n.status().is_some_and(|s| s["peer"]["liveness"] == "alive");
    let start = Instant::now();
    while !nodes.iter().all(alive) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the nodes did not hear each other over ha.cf's mcast\nalice:\n{}\nbob:\n{}",
            nodes[0].log(),
            nodes[1].log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for n in &nodes {
        let st = n.status().unwrap();
        let links = st["peer"]["links"].to_string();
        assert!(links.contains("mcast("), "{st}");
        assert!(links.contains("239.77.0.2:6942"), "{st}");
        assert_eq!(st["own_packets_ignored"], 0, "loop 0: {st}");
        assert_eq!(st["rejected_packets"], 0, "{st}");
        assert!(n.log().contains("heartbeat medium open"), "{}", n.log());
    }
}
