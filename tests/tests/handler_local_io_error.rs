//! `disk { on-io-error call-local-io-error; }`: a real local read error (the backing
//! disk is nbdkit's `error` filter behind nbdfuse, failing reads while a trigger file
//! exists) runs the `local-io-error` handler with DRBD's environment.

use std::process::Command;
use std::time::{Duration, Instant};

use rdbd_tests::faulty::FaultyDisk;
use rdbd_tests::fixture::scratch_dir;
use rdbd_tests::node::Node;
use rdbd_tests::pair::wait_log;
use rdbd_tests::tools::{require, run, run_ok};

#[test]
fn a_local_read_error_runs_the_local_io_error_handler() {
    require("qemu-io");
    let dir = scratch_dir();
    let faulty = FaultyDisk::start(dir.path());
    let trigger = faulty.trigger.clone();
    let faulty_disk = faulty.disk.clone();

    let ran = dir.path().join("ran");
    let script = dir.path().join("lio.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$DRBD_RESOURCE $DRBD_MINOR $DRBD_LL_DISK\" >> {}\n",
            ran.display()
        ),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&script));
    let config = dir.path().join("rdbd.conf");
    let disk = faulty_disk;
    std::fs::write(
        &config,
        format!(
            "resource r0 {{\n  disk {{ on-io-error call-local-io-error; }}\n  handlers {{ local-io-error \"{}\"; }}\n  on alice {{\n    device /dev/drbd0;\n    disk {};\n    address 127.0.0.1:7789;\n    meta-disk internal;\n  }}\n}}\n",
            script.display(),
            disk.display()
        ),
    )
    .unwrap();
    let node = Node::new(dir.path(), "alice", &config);
    node.adm_ok(&["create-md", "--force", "r0"]);
    node.adm_ok(&["up", "r0"]);
    node.adm_ok(&["primary", "--force", "r0"]);
    std::fs::write(&trigger, b"").unwrap();
    let out = run(Command::new("qemu-io")
        .arg("--image-opts")
        .arg(format!(
            "driver=nbd,path={},export=r0",
            node.run_dir.join("nbd.sock").display()
        ))
        .args(["-c", "read 40M 4k"]));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("error"), "the read must fail: {text}");
    std::fs::remove_file(&trigger).unwrap();
    wait_log(
        &node,
        "helper command: rdbdadm local-io-error minor-0 exit code 0 (0x0)",
        10,
    );
    let start = Instant::now();
    while !ran.exists() {
        assert!(start.elapsed() < Duration::from_secs(5), "handler ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap().lines().next(),
        Some(format!("r0 0 {}", disk.display()).as_str())
    );
    node.adm_ok_once_released(&["secondary", "r0"]);
    node.adm_ok(&["down", "r0"]);
}
