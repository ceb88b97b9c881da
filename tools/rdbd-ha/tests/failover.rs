//! Real processes: two `rdbd-ha` daemons on loopback with a marker-file service.
//! Every wait also asserts that the group never runs on both nodes.

mod harness;

use std::time::Duration;

use harness::{Cluster, Options, DEADTIME_MS};

const STARTUP: Duration = Duration::from_secs(15);

fn deadtime_plus_2s() -> Duration {
    Duration::from_millis(DEADTIME_MS + 2000)
}

fn started(c: &Cluster, i: usize) -> bool {
    c.active(i)
}

#[test]
fn kill9_failover_then_no_failback_then_standby_and_takeover() {
    let mut c = Cluster::new(Options::default());
    c.start(0);
    c.start(1);
    c.wait("alice (preferred) to start the group", STARTUP, |c| {
        started(c, 0)
    });
    c.hold(
        Duration::from_millis(800),
        |c| !c.active(1),
        "bob stays passive",
    );
    let st = c.status(1);
    assert_eq!(st["peer"]["liveness"], "alive", "{st}");
    assert_eq!(st["groups"][0]["peer_holds"], true, "{st}");

    c.kill9(0);
    let took = c.wait(
        "bob to take over after alice's SIGKILL",
        Duration::from_secs(20),
        |c| c.active(1),
    );
    println!("kill -9 to takeover: {took:?} (deadtime {DEADTIME_MS} ms)");
    assert!(
        took <= deadtime_plus_2s(),
        "took {took:?}, more than deadtime + 2 s"
    );
    assert!(
        c.fence_log().contains("fence alice"),
        "bob fenced alice first: {}",
        c.fence_log()
    );
    assert!(c.log(1).contains("stonith succeeded"));

    // alice returns; auto_failback off: bob keeps the group.
    c.start(0);
    c.wait("alice to hear bob", STARTUP, |c| {
        c.log(0).contains("peer is alive")
    });
    c.hold(
        Duration::from_secs(2),
        |c| c.active(1) && !c.active(0),
        "bob keeps the group (auto_failback off)",
    );

    // standby on bob hands the group to alice.
    let out = c.ctl(1, &["standby"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.wait(
        "alice to take the group after bob's standby",
        Duration::from_secs(10),
        |c| c.active(0),
    );
    assert!(!c.active(1));
    assert!(c.log(1).contains("standby: handing the group to the peer"));

    // takeover on bob brings it back.
    let out = c.ctl(1, &["takeover"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.wait("bob to take the group back", Duration::from_secs(10), |c| {
        c.active(1)
    });
    assert!(
        c.log(0).contains("the peer's operator requested takeover"),
        "{}",
        c.log(0)
    );

    // maintenance shows in status; a clean shutdown releases and the peer takes over without fencing.
    assert!(c.ctl(0, &["maintenance", "on"]).status.success());
    assert_eq!(c.status(0)["maintenance"], true);
    assert!(c.ctl(0, &["maintenance", "off"]).status.success());
    let fences = c.fence_log().lines().count();
    assert!(c.terminate(1).success());
    assert!(!c.active(1), "a clean shutdown stops the group");
    c.wait(
        "alice to take over after bob left cleanly",
        Duration::from_secs(5),
        |c| c.active(0),
    );
    assert_eq!(
        c.fence_log().lines().count(),
        fences,
        "no fencing after a clean leave"
    );
    assert!(c.log(0).contains("peer left cleanly"));
}

#[test]
fn auto_failback_on_returns_the_group() {
    let mut c = Cluster::new(Options {
        auto_failback: true,
        ..Options::default()
    });
    c.start(0);
    c.start(1);
    c.wait("alice to start the group", STARTUP, |c| c.active(0));
    c.kill9(0);
    c.wait(
        "bob to take over",
        deadtime_plus_2s() + Duration::from_secs(3),
        |c| c.active(1),
    );
    c.start(0);
    c.wait("the group back on alice (auto_failback on)", STARTUP, |c| {
        c.active(0)
    });
    assert!(!c.active(1));
    assert!(
        c.log(1)
            .contains("auto_failback: the preferred node is back"),
        "{}",
        c.log(1)
    );
    let ev = c.events();
    let tail: Vec<&str> = ev.lines().rev().take(2).collect();
    assert_eq!(
        tail,
        vec!["alice start", "bob stop"],
        "bob stopped before alice started:\n{ev}"
    );
}

#[test]
fn silent_peer_without_stonith_is_not_taken_over() {
    let mut c = Cluster::new(Options {
        stonith: false,
        ..Options::default()
    });
    c.start(0);
    c.start(1);
    c.wait("alice to start the group", STARTUP, |c| c.active(0));
    c.signal(0, libc::SIGSTOP);
    c.wait("bob to declare alice dead", Duration::from_secs(10), |c| {
        c.log(1).contains("peer is dead")
    });
    c.hold(
        Duration::from_secs(2),
        |c| !c.active(1),
        "bob refuses to take over",
    );
    assert!(
        c.log(1)
            .contains("no stonith command is configured; refusing"),
        "{}",
        c.log(1)
    );
    assert_eq!(c.status(1)["groups"][0]["holds"], false);
    c.signal(0, libc::SIGCONT);
    c.wait("bob to hear alice again", Duration::from_secs(10), |c| {
        c.log(1)
            .contains("heartbeats again after it was declared dead")
    });
    c.hold(
        Duration::from_secs(1),
        |c| c.active(0) && !c.active(1),
        "alice keeps the group",
    );
}

#[test]
fn failed_stonith_refuses_successful_stonith_takes_over() {
    let mut c = Cluster::new(Options::default());
    std::fs::write(c.path("stonith-fails"), "").unwrap();
    c.start(0);
    c.start(1);
    c.wait("alice to start the group", STARTUP, |c| c.active(0));
    c.signal(0, libc::SIGSTOP);
    c.wait("bob to try fencing", Duration::from_secs(10), |c| {
        c.fence_log().contains("fence alice")
    });
    c.wait(
        "bob to log the failed stonith",
        Duration::from_secs(10),
        |c| c.log(1).contains("stonith FAILED"),
    );
    c.hold(
        Duration::from_secs(2),
        |c| !c.active(1),
        "bob refuses after a failed stonith",
    );
    // The fencing device works again: the next attempt (after deadtime) succeeds.
    std::fs::remove_file(c.path("stonith-fails")).unwrap();
    c.wait(
        "bob to fence alice and take over",
        Duration::from_secs(10),
        |c| c.active(1),
    );
    assert!(
        c.procs[0].as_mut().unwrap().try_wait().unwrap().is_some() || {
            std::thread::sleep(Duration::from_millis(200));
            c.procs[0].as_mut().unwrap().try_wait().unwrap().is_some()
        },
        "the fenced alice is gone"
    );
}

#[test]
fn monitor_restarts_the_service_then_hands_over() {
    let mut c = Cluster::new(Options {
        monitor_interval_ms: 300,
        monitor_failures_max: 2,
        ..Options::default()
    });
    c.start(0);
    c.start(1);
    c.wait("alice to start the group", STARTUP, |c| c.active(0));
    // The service dies: the monitor restarts it on alice.
    std::fs::remove_file(c.path("alice/active")).unwrap();
    c.wait(
        "the monitor to restart the service on alice",
        Duration::from_secs(5),
        |c| c.events().matches("alice start").count() == 2,
    );
    c.wait("the restart in alice's log", Duration::from_secs(5), |c| {
        c.log(0).contains("restarted (failure 1)")
    });
    assert!(c.active(0));
    // It dies again: second failure, alice gives the group up and bob takes it (no fencing).
    std::fs::write(c.path("alice/fail-start"), "").unwrap();
    std::fs::remove_file(c.path("alice/active")).unwrap();
    c.wait("bob to take the group", Duration::from_secs(10), |c| {
        c.active(1)
    });
    assert!(c.log(0).contains("gave the group up"), "{}", c.log(0));
    assert_eq!(c.fence_log(), "", "a give-up is a clean hand-over");
    let st = c.status(0);
    assert_eq!(st["groups"][0]["state"], "failed", "{st}");
    assert!(
        st["groups"][0]["eligible"]
            .as_str()
            .unwrap()
            .starts_with("no"),
        "{st}"
    );
}

#[test]
fn ping_nodes_decide_like_ipfail() {
    let mut c = Cluster::new(Options {
        ping: true,
        ..Options::default()
    });
    // alice (preferred) reaches no ping node; bob does: bob runs the group.
    let bob_ping = c.ping_node(1);
    c.start(0);
    c.start(1);
    c.wait("bob to start the group", STARTUP, |c| c.active(1));
    assert!(!c.active(0));
    assert!(
        c.log(0)
            .contains("not eligible here: no ping node reachable"),
        "{}",
        c.log(0)
    );
    // alice reaches hers now; auto_failback off: bob keeps the group.
    let _alice_ping = c.ping_node(0);
    c.wait(
        "alice to reach her ping node",
        Duration::from_secs(5),
        |c| c.log(0).contains("a ping node is reachable"),
    );
    c.hold(
        Duration::from_secs(1),
        |c| c.active(1),
        "bob keeps the group",
    );
    // bob loses his: he hands the group to alice, who still reaches hers.
    drop(bob_ping);
    c.wait("alice to take the group", Duration::from_secs(10), |c| {
        c.active(0)
    });
    assert!(
        c.log(1)
            .contains("no ping node reachable here; the peer reaches one"),
        "{}",
        c.log(1)
    );
    assert_eq!(c.fence_log(), "", "a hand-over, not a failover");
}

#[test]
fn standby_does_not_prevent_a_failover() {
    let mut c = Cluster::new(Options::default());
    c.start(0);
    c.start(1);
    c.wait("alice to start the group", STARTUP, |c| c.active(0));
    assert!(c.ctl(1, &["standby"]).status.success());
    assert_eq!(c.status(1)["standby"], true);
    c.kill9(0);
    c.wait(
        "bob (standby) to take over from the dead alice",
        deadtime_plus_2s() + Duration::from_secs(3),
        |c| c.active(1),
    );
}
