//! `secondary` on a connected Primary waits until the peer acknowledged every epoch
//! (barrier acks) before the role changes.
//!
//! DRBD 8.4 waits only for the application's writes to complete (protocol A: handed to
//! the socket), not for the barrier acks. If the connection then drops, the writes the
//! peer never got are out of sync behind a current UUID that did not change (a
//! Secondary starts no new generation), and the next handshake finds equal UUIDs and
//! syncs nothing: the data areas differ for good. rdbd's `secondary` drains the
//! transfer log first, so the peer has everything when the demotion returns.
//!
//! The scenario: protocol A, a burst of writes through NBD, `secondary` right after the
//! client is done, then the peer is SIGKILLed at once; after its restart the pair must
//! be Connected, in sync, with equal data areas that hold what the client wrote.

use std::process::Command;
use std::time::Duration;

use rdbd_tests::pair::{node_log, wait_line, Pair, DATA_BYTES};
use rdbd_tests::tools::{require, run_ok, sha256_prefix};

#[test]
fn secondary_then_peer_killed_leaves_equal_data_after_restart() {
    require("nbdcopy");
    for round in 0..2 {
        let p = Pair::synced("protocol A;");
        let data = p.dir.path().join("data.bin");
        run_ok(Command::new("sh").arg("-c").arg(format!(
            "head -c {DATA_BYTES} /dev/urandom > {}",
            data.display()
        )));
        // Protocol A: each write completes once it is on the socket; the peer is far
        // behind when the copy ends.
        run_ok(Command::new("nbdcopy").arg(&data).arg(p.a.nbd_uri("r0")));
        p.a.adm_ok(&["secondary", "r0"]);
        p.b.crash();
        let status = wait_line(&p.a, "ro:Secondary/Unknown", 20);
        assert!(!status.contains("cs:Connected"), "{status}");

        p.b.adm_ok(&["up", "r0"]);
        for n in [&p.a, &p.b] {
            n.wait_status(
                "Connected UpToDate/UpToDate, nothing out of sync",
                Duration::from_secs(60),
                |t| {
                    t.contains("cs:Connected")
                        && t.contains("ds:UpToDate/UpToDate")
                        && t.contains("oos:0")
                },
            );
        }
        let want = sha256_prefix(&data, DATA_BYTES);
        let (sum_a, sum_b) = (
            sha256_prefix(&p.disk_a, DATA_BYTES),
            sha256_prefix(&p.disk_b, DATA_BYTES),
        );
        assert_eq!(
            sum_a, want,
            "round {round}: alice holds what the client wrote"
        );
        assert_eq!(
            sum_b,
            want,
            "round {round}: bob's data area differs from alice's after the restart\nalice:\n{}\nbob:\n{}",
            node_log(&p.a),
            node_log(&p.b)
        );
    }
}
