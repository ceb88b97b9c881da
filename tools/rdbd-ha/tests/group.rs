//! The group manager with a scripted fake runner: start order, reverse stop, timeouts,
//! rollback of a failed start, monitor restart then give-up.

use std::collections::HashMap;
use std::time::Duration;

use rdbd_ha::config::{ResourceKind, ResourceSpec};
use rdbd_ha::group::{
    Action, GroupManager, GroupState, MonitorOutcome, StepOutcome, StepRunner, Timeouts,
};

/// Records every call; answers from a table (default Ok).
#[derive(Default)]
struct Fake {
    calls: Vec<String>,
    answers: HashMap<String, Vec<StepOutcome>>,
    timeouts: Vec<Duration>,
}

impl Fake {
    /// The next answers for `label action` (consumed in order; the last one repeats).
    fn answer(mut self, key: &str, outcomes: Vec<StepOutcome>) -> Self {
        self.answers.insert(key.to_string(), outcomes);
        self
    }
}

impl StepRunner for Fake {
    fn run(&mut self, r: &ResourceSpec, action: Action, timeout: Duration) -> StepOutcome {
        let key = format!("{} {action}", r.label());
        self.calls.push(key.clone());
        self.timeouts.push(timeout);
        match self.answers.get_mut(&key) {
            Some(v) if v.len() > 1 => v.remove(0),
            Some(v) => v[0].clone(),
            None => StepOutcome::Ok,
        }
    }
}

fn resources() -> Vec<ResourceSpec> {
    let mut fs = ResourceSpec::new(ResourceKind::Filesystem {
        resource: Some("data".into()),
        device: None,
        mountpoint: "/md1".into(),
        fstype: "ext4".into(),
        options: None,
        fsck: true,
    });
    fs.start_timeout_ms = Some(7000);
    vec![
        ResourceSpec::new(ResourceKind::Ip {
            address: "10.0.0.17/24".into(),
            interface: Some("eth0".into()),
        }),
        ResourceSpec::new(ResourceKind::Rdbd {
            resource: "data".into(),
        }),
        fs,
        ResourceSpec::new(ResourceKind::Script {
            name: "nfs".into(),
            args: vec![],
            monitor: true,
        }),
        ResourceSpec::new(ResourceKind::Script {
            name: "killnfsd".into(),
            args: vec![],
            monitor: false,
        }),
    ]
}

const T: Timeouts = Timeouts {
    start: Duration::from_secs(60),
    stop: Duration::from_secs(30),
    status: Duration::from_secs(5),
};

fn calls(m: &GroupManager<Fake>) -> Vec<&str> {
    m.runner().calls.iter().map(|s| s.as_str()).collect()
}

#[test]
fn start_in_order_stop_in_reverse() {
    let mut m = GroupManager::new("data", resources(), T, 3, Fake::default());
    assert!(!m.holds());
    m.start().unwrap();
    assert_eq!(m.state(), GroupState::Running);
    assert!(m.holds());
    m.stop().unwrap();
    assert_eq!(m.state(), GroupState::Stopped);
    assert!(!m.holds());
    assert_eq!(
        calls(&m),
        vec![
            "ip 10.0.0.17/24 start",
            "rdbd data start",
            "filesystem /md1 start",
            "script nfs start",
            "script killnfsd start",
            "script killnfsd stop",
            "script nfs stop",
            "filesystem /md1 stop",
            "rdbd data stop",
            "ip 10.0.0.17/24 stop",
        ]
    );
    let t = &m.runner().timeouts;
    assert_eq!(t[2], Duration::from_secs(7), "per-resource start timeout");
    assert_eq!(t[0], T.start);
    assert_eq!(t[5], T.stop);
}

#[test]
fn failed_start_rolls_back_what_started() {
    let fake = Fake::default().answer(
        "filesystem /md1 start",
        vec![StepOutcome::Failed("fsck exit 4".into())],
    );
    let mut m = GroupManager::new("data", resources(), T, 3, fake);
    let f = m.start().unwrap_err();
    assert!(
        f.reason.contains("filesystem /md1") && f.reason.contains("fsck exit 4"),
        "{}",
        f.reason
    );
    assert!(f.rolled_back);
    assert_eq!(m.state(), GroupState::Failed);
    assert!(!m.holds());
    assert_eq!(
        calls(&m),
        vec![
            "ip 10.0.0.17/24 start",
            "rdbd data start",
            "filesystem /md1 start",
            // The failed step may have half-run: it is stopped too.
            "filesystem /md1 stop",
            "rdbd data stop",
            "ip 10.0.0.17/24 stop",
        ]
    );
}

#[test]
fn timed_out_start_and_failed_rollback() {
    let fake = Fake::default()
        .answer("rdbd data start", vec![StepOutcome::TimedOut])
        .answer(
            "ip 10.0.0.17/24 stop",
            vec![StepOutcome::Failed("busy".into())],
        );
    let mut m = GroupManager::new("data", resources(), T, 3, fake);
    let f = m.start().unwrap_err();
    assert!(f.reason.contains("timed out"), "{}", f.reason);
    assert!(!f.rolled_back);
    assert_eq!(m.state(), GroupState::StopFailed);
    assert!(
        m.holds(),
        "a failed stop leaves the group held: the peer must not start it"
    );
    assert!(m.start().is_err(), "no start over a failed stop");
}

#[test]
fn monitor_restarts_then_gives_up() {
    let fake = Fake::default().answer(
        "script nfs status",
        vec![
            StepOutcome::Ok,
            StepOutcome::NotRunning("exit 3".into()),
            StepOutcome::Ok,
            StepOutcome::NotRunning("exit 3".into()),
        ],
    );
    let mut m = GroupManager::new("data", resources(), T, 2, fake);
    assert_eq!(m.monitor(), MonitorOutcome::NotRunning);
    m.start().unwrap();
    let n = m.runner().calls.len();
    assert_eq!(m.monitor(), MonitorOutcome::Healthy);
    assert_eq!(
        &calls(&m)[n..],
        vec![
            "ip 10.0.0.17/24 status",
            "rdbd data status",
            "filesystem /md1 status",
            "script nfs status"
        ],
        "killnfsd (monitor = false) is not asked for status"
    );
    let n = m.runner().calls.len();
    let o = m.monitor();
    assert!(
        matches!(&o, MonitorOutcome::Restarted { failures: 1, reason } if reason.contains("script nfs")),
        "{o:?}"
    );
    assert_eq!(
        &calls(&m)[n..],
        vec![
            "ip 10.0.0.17/24 status",
            "rdbd data status",
            "filesystem /md1 status",
            "script nfs status",
            // Restart from the failed resource: stop it and those after it, start them again.
            "script killnfsd stop",
            "script nfs stop",
            "script nfs start",
            "script killnfsd start",
        ]
    );
    assert_eq!(m.state(), GroupState::Running);
    assert_eq!(m.monitor(), MonitorOutcome::Healthy);
    let n = m.runner().calls.len();
    let o = m.monitor();
    assert!(
        matches!(&o, MonitorOutcome::GaveUp { reason } if reason.contains("2 failures")),
        "{o:?}"
    );
    assert_eq!(m.state(), GroupState::Failed);
    assert!(!m.holds());
    assert_eq!(
        &calls(&m)[n + 4..],
        vec![
            "script killnfsd stop",
            "script nfs stop",
            "filesystem /md1 stop",
            "rdbd data stop",
            "ip 10.0.0.17/24 stop"
        ],
        "giving up stops the whole group in reverse"
    );
    m.clear_failed();
    assert_eq!(m.state(), GroupState::Stopped);
    m.start().unwrap();
    assert_eq!(m.failures(), 0, "a new start resets the failure count");
}

#[test]
fn failed_restart_gives_up() {
    let fake = Fake::default()
        .answer(
            "rdbd data status",
            vec![StepOutcome::NotRunning("role Secondary/Unknown".into())],
        )
        .answer(
            "rdbd data start",
            vec![StepOutcome::Ok, StepOutcome::Failed("disk Outdated".into())],
        );
    let mut m = GroupManager::new("data", resources(), T, 5, fake);
    m.start().unwrap();
    let o = m.monitor();
    assert!(
        matches!(&o, MonitorOutcome::GaveUp { reason } if reason.contains("restart of rdbd data")),
        "{o:?}"
    );
    assert_eq!(m.state(), GroupState::Failed);
    assert!(!m.holds());
}
