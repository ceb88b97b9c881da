//! Unit tests of the handler runner: the environment, exit codes, the timeout, and
//! DRBD's reading of fence-peer exit codes.

use std::collections::BTreeMap;
use std::time::Duration;

use rdbd_types::DiskState;

use super::fencing::{must_fence, FenceGate, FencePolicy, FenceVerdict};
use super::*;

fn config(dir: &std::path::Path, commands: &[(&str, String)]) -> HandlerConfig {
    HandlerConfig {
        commands: commands
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        resource: "r0".into(),
        minor: 3,
        volume: 0,
        backing_disk: "/dev/vdb".into(),
        peer: Some(PeerInfo {
            name: "bob".into(),
            address: "10.1.2.3:7789".parse().unwrap(),
        }),
        config_path: dir.join("drbd.conf"),
        node_name: "alice".into(),
        run_dir: dir.join("run"),
        fencing: FencePolicy::ResourceOnly,
        on_io_error: "detach".into(),
        timeout: Duration::from_secs(10),
    }
}

fn env_file(path: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn a_handler_runs_through_sh_with_drbds_environment_and_its_exit_code_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.txt");
    let cfg = config(
        dir.path(),
        &[(
            "split-brain",
            format!(
                "env > {} && echo \"args:$#\" >> {}; exit 3",
                out.display(),
                out.display()
            ),
        )],
    );
    let outcome = run_with(&cfg, Handler::SplitBrain).await;
    assert_eq!(outcome, HelperOutcome::Exited(3));
    assert_eq!(outcome.exit_code(), 3);
    assert_eq!(outcome.wait_status(), 0x300);
    let env = env_file(&out);
    for (k, v) in [
        ("HOME", "/"),
        ("TERM", "linux"),
        ("PATH", env::HELPER_PATH),
        ("DRBD_RESOURCE", "r0"),
        ("DRBD_MINOR", "3"),
        ("DRBD_VOLUME", "0"),
        ("DRBD_LL_DISK", "/dev/vdb"),
        ("DRBD_PEER", "bob"),
        ("DRBD_PEERS", "bob"),
        ("DRBD_PEER_AF", "ipv4"),
        ("DRBD_PEER_ADDRESS", "10.1.2.3"),
        ("RDBD_NODE", "alice"),
        ("args:0", ""),
    ] {
        if k.starts_with("args") {
            continue;
        }
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k} in {env:?}");
    }
    assert_eq!(
        env.get("DRBD_CONF").map(String::as_str),
        Some(cfg.config_path.to_str().unwrap())
    );
    assert!(std::fs::read_to_string(&out).unwrap().contains("args:0"));
    // The daemon's own environment does not leak into handlers.
    assert!(!env.contains_key("CARGO_PKG_NAME"), "{env:?}");
}

#[tokio::test]
async fn a_handler_that_is_not_configured_does_not_run_and_counts_as_exit_code_0() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("split-brain", "exit 1".into())]);
    let outcome = run_with(&cfg, Handler::BeforeResyncTarget).await;
    assert_eq!(outcome, HelperOutcome::NotConfigured);
    assert_eq!(outcome.exit_code(), 0);
}

#[tokio::test]
async fn outdate_peer_is_the_old_name_of_fence_peer() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("outdate-peer", "exit 4".into())]);
    assert_eq!(
        run_with(&cfg, Handler::FencePeer).await,
        HelperOutcome::Exited(4)
    );
}

#[tokio::test]
async fn a_handler_running_past_its_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("late");
    let mut cfg = config(
        dir.path(),
        &[(
            "fence-peer",
            format!("(sleep 2; touch {}) & sleep 30", marker.display()),
        )],
    );
    cfg.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let outcome = run_with(&cfg, Handler::FencePeer).await;
    assert_eq!(outcome, HelperOutcome::TimedOut);
    assert_eq!(outcome.exit_code(), 255);
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!marker.exists(), "a child of the killed handler survived");
}

#[tokio::test]
async fn helper_events_announce_the_call_and_the_response() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &[("out-of-sync", "exit 0".into())]);
    cfg.resource = "evtest".into();
    let mut rx = helper_events();
    run_with(&cfg, Handler::OutOfSync).await;
    let mut seen = Vec::new();
    while let Ok(line) = rx.try_recv() {
        if line.contains("name:evtest ") {
            seen.push(line);
        }
    }
    assert_eq!(
        seen,
        vec![
            "call helper name:evtest volume:0 minor:3 helper:out-of-sync".to_string(),
            "response helper name:evtest volume:0 minor:3 helper:out-of-sync status:0".to_string(),
        ]
    );
}

#[test]
fn fence_peer_exit_codes_mean_what_they_mean_in_drbd() {
    let v = |c, d| FenceVerdict::from_exit_code(c, d);
    assert_eq!(
        v(3, DiskState::UpToDate).peer_disk,
        Some(DiskState::Inconsistent)
    );
    assert_eq!(
        v(4, DiskState::UpToDate).peer_disk,
        Some(DiskState::Outdated)
    );
    assert_eq!(
        v(5, DiskState::UpToDate).peer_disk,
        Some(DiskState::Outdated)
    );
    assert_eq!(v(5, DiskState::Consistent).peer_disk, None);
    assert_eq!(
        v(6, DiskState::UpToDate).own_disk,
        Some(DiskState::Outdated)
    );
    assert_eq!(
        v(7, DiskState::UpToDate).peer_disk,
        Some(DiskState::Outdated)
    );
    for broken in [0, 1, 2, 8, 255] {
        assert!(!v(broken, DiskState::UpToDate).success, "exit {broken}");
    }
    assert!(v(4, DiskState::UpToDate).success);
}

#[test]
fn only_a_primary_with_a_possibly_current_peer_fences() {
    use FencePolicy::*;
    assert!(must_fence(ResourceOnly, true, DiskState::UpToDate));
    assert!(must_fence(ResourceAndStonith, true, DiskState::DUnknown));
    assert!(!must_fence(DontCare, true, DiskState::UpToDate));
    assert!(!must_fence(ResourceOnly, false, DiskState::UpToDate));
    assert!(!must_fence(ResourceOnly, true, DiskState::Outdated));
    assert!(!must_fence(ResourceOnly, true, DiskState::Inconsistent));
    assert_eq!(
        FencePolicy::parse("resource-and-stonith"),
        ResourceAndStonith
    );
    assert_eq!(FencePolicy::parse("resource-only"), ResourceOnly);
    assert_eq!(FencePolicy::parse("dont-care"), DontCare);
}

#[tokio::test]
async fn frozen_io_waits_until_resumed() {
    let gate = std::sync::Arc::new(FenceGate::default());
    gate.wait_resumed().await;
    gate.freeze();
    let g = std::sync::Arc::clone(&gate);
    let waiter = tokio::spawn(async move { g.wait_resumed().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "a write passed a frozen gate");
    gate.resume();
    tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("resume did not release the waiter")
        .unwrap();
}

#[test]
fn pri_on_incon_degr_fires_when_a_primary_loses_its_last_up_to_date_data() {
    use crate::resource::ResourceState;
    use rdbd_types::{ConnState, Role};
    let st = |role, disk, peer_disk| ResourceState {
        role,
        disk,
        cstate: ConnState::Connected,
        peer_role: Role::Unknown,
        peer_disk,
        open_clients: 0,
    };
    let syncing = st(Role::Primary, DiskState::Inconsistent, DiskState::UpToDate);
    let lost = st(Role::Primary, DiskState::Inconsistent, DiskState::DUnknown);
    assert!(lost_all_up_to_date_data(&syncing, &lost));
    // Already degraded before: no second call.
    assert!(!lost_all_up_to_date_data(&lost, &lost));
    // A Primary with UpToDate data of its own is fine without its peer.
    let healthy = st(Role::Primary, DiskState::UpToDate, DiskState::UpToDate);
    let alone = st(Role::Primary, DiskState::UpToDate, DiskState::DUnknown);
    assert!(!lost_all_up_to_date_data(&healthy, &alone));
    // A Secondary is never "pri-on-incon-degr".
    let sec = st(
        Role::Secondary,
        DiskState::Inconsistent,
        DiskState::DUnknown,
    );
    assert!(!lost_all_up_to_date_data(&syncing, &sec));
}
