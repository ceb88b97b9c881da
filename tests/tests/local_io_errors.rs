//! A real local I/O error: the backing disk is a file served by nbdfuse from nbdkit's
//! `error` filter, which fails reads with EIO while a trigger file exists. The NBD
//! client gets EIO, the daemon logs the offset, and the export works again after.

use std::process::Command;

use rdbd_tests::faulty::FaultyDisk;
use rdbd_tests::fixture::{scratch_dir, standalone_config};
use rdbd_tests::node::Node;
use rdbd_tests::tools::{run, stderr, stdout};

#[test]
fn a_local_read_error_reaches_the_client_as_eio_and_is_logged() {
    let dir = scratch_dir();
    let faulty = FaultyDisk::start(dir.path());
    let trigger = faulty.trigger.clone();
    let faulty_disk = faulty.disk.clone();

    let config = standalone_config(dir.path(), &faulty_disk, "");
    let node = Node::new(dir.path(), "alice", &config);
    node.adm_ok(&["create-md", "--force", "r0"]);
    node.adm_ok(&["up", "r0"]);
    node.adm_ok(&["primary", "--force", "r0"]);
    let script = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\ntry:\n    h.pread(4096, int(sys.argv[2]))\n    print('ok')\nexcept nbd.Error as e:\n    print('error', e.errno)\n";
    let read_at = |offset: u64| {
        let out = run(Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(node.nbd_uri("r0"))
            .arg(offset.to_string()));
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    std::fs::write(&trigger, b"").unwrap();
    assert_eq!(read_at(40 << 20), "error EIO");
    std::fs::remove_file(&trigger).unwrap();
    assert_eq!(
        read_at(41 << 20),
        "ok",
        "the export must work again once the disk does"
    );
    let log = std::fs::read_to_string(node.run_dir.join("rdbd.log")).unwrap();
    assert!(
        log.lines().any(
            |l| l.contains("local I/O error") && l.contains(&format!("offset={}", 40u64 << 20))
        ),
        "the daemon must log the failed offset:\n{log}"
    );
    node.adm_ok(&["secondary", "r0"]);
    node.adm_ok(&["down", "r0"]);
}
