//! Forged (wrong key) and replayed heartbeats sent at a real daemon are ignored; the
//! same message, authentic and fresh, is obeyed.

mod harness;

use std::net::UdpSocket;
use std::time::Duration;

use harness::{Cluster, Options};
use rdbd_ha::proto::{encode, AuthMethod, Flags, Heartbeat, Key, Phase};

fn hb(seq: u64, phase: Phase, holds: bool) -> Heartbeat {
    Heartbeat {
        node: "bob".into(),
        generation: 5,
        seq,
        phase,
        flags: Flags(Flags::PING_OK),
        holds_mask: holds as u32,
        eligible_mask: 1,
        request_mask: 0,
    }
}

#[test]
fn forged_and_replayed_heartbeats_are_ignored() {
    // bob is preferred and never started: alice alone, no stonith, must not take over
    // unless bob authentically says it left.
    let mut c = Cluster::new(Options {
        stonith: false,
        preferred: "bob",
        ..Options::default()
    });
    c.start(0);
    let alice = format!("127.0.0.1:{}", c.ports[0]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let good = Key {
        method: AuthMethod::Sha256,
        index: 1,
        secret: b"the-secret".to_vec(),
    };
    let forged_key = Key {
        secret: b"guessed".to_vec(),
        ..good.clone()
    };

    // Authentic heartbeats: bob is alive and holds the group.
    for seq in 10..=20 {
        sock.send_to(&encode(&hb(seq, Phase::Running, true), &good), &alice)
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    c.wait("alice to see bob", Duration::from_secs(5), |c| {
        c.log(0).contains("peer is alive")
    });
    // Forged: "bob left" under a wrong key.
    for seq in 21..25 {
        sock.send_to(
            &encode(&hb(seq, Phase::Leaving, false), &forged_key),
            &alice,
        )
        .unwrap();
    }
    // Replayed: an old sequence number with the right key.
    sock.send_to(&encode(&hb(15, Phase::Leaving, false), &good), &alice)
        .unwrap();
    // Garbage.
    sock.send_to(b"RDHA but not really", &alice).unwrap();
    c.wait("alice to log the rejections", Duration::from_secs(5), |c| {
        let l = c.log(0);
        l.contains("MAC mismatch") && l.contains("replayed")
    });
    // bob goes silent: dead to heartbeats, no stonith: alice refuses.
    c.wait("alice to declare bob dead", Duration::from_secs(10), |c| {
        c.log(0).contains("peer is dead")
    });
    c.hold(
        Duration::from_millis(1500),
        |c| !c.active(0),
        "alice does not take over",
    );
    assert!(c.status(0)["rejected_packets"].as_u64().unwrap() >= 6);

    // The authentic, fresh "left" is obeyed.
    sock.send_to(&encode(&hb(21, Phase::Leaving, false), &good), &alice)
        .unwrap();
    c.wait(
        "alice to take the group after bob's authentic leave",
        Duration::from_secs(5),
        |c| c.active(0),
    );
    assert!(c.log(0).contains("peer left cleanly"));
}
