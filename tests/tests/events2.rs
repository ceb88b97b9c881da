//! `rdbdadm events2`: the initial dump and the change lines, from a real daemon.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use rdbd_tests::fixture::Standalone;

#[test]
fn events2_dumps_state_and_follows_changes() {
    let s = Standalone::configured(32);
    let n = &s.node;
    n.adm_ok(&["create-md", "--force", "r0"]);
    n.adm_ok(&["up", "r0"]);
    let now = n.adm_ok(&["events2", "--now", "all"]);
    assert_eq!(
        now,
        "exists resource name:r0 role:Secondary suspended:no\n\
         exists device name:r0 volume:0 minor:0 disk:Inconsistent client:no\n\
         exists -\n"
    );

    let mut child = n
        .adm()
        .args(["events2", "all"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(5))
            .expect("an events2 line within 5 s")
    };
    assert_eq!(
        next(),
        "exists resource name:r0 role:Secondary suspended:no"
    );
    assert_eq!(
        next(),
        "exists device name:r0 volume:0 minor:0 disk:Inconsistent client:no"
    );
    assert_eq!(next(), "exists -");
    n.adm_ok(&["primary", "--force", "r0"]);
    let mut got = vec![next(), next()];
    got.sort();
    assert_eq!(
        got,
        vec![
            "change device name:r0 volume:0 minor:0 disk:UpToDate",
            "change resource name:r0 role:Primary"
        ]
    );
    n.adm_ok(&["secondary", "r0"]);
    assert_eq!(next(), "change resource name:r0 role:Secondary");
    n.adm_ok(&["down", "r0"]);
    assert_eq!(next(), "destroy device name:r0 volume:0 minor:0");
    assert_eq!(next(), "destroy resource name:r0");
    child.kill().unwrap();
    child.wait().unwrap();
}
