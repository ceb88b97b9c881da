//! rdbd replicating with a real kernel DRBD 8.4.11 peer in qemu (tests/kernel-peer):
//!
//! - rdbd Primary, kernel Secondary: both connect, `primary --force` on rdbd starts the
//!   initial full sync to the kernel, data written through rdbd's NBD export arrives on the
//!   kernel's disk byte for byte (sha256 of the data area in the guest); cut off with
//!   `disconnect`, written, `connect`ed again: a bitmap-based resync brings the kernel up to date;
//! - kernel Primary, rdbd Secondary: `drbdsetup primary --force` in the guest syncs to rdbd,
//!   `dd` on the guest's /dev/drbd0 arrives in rdbd's backing file; the guest disconnects,
//!   writes, reconnects: a bitmap-based resync brings rdbd up to date.
//!
//! Run alone: `cargo nextest run -p rdbd-tests --test kernel_peer_repl`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rdbd_tests::kernel_peer::node::{Auth, RdbdNode, SECRET};
use rdbd_tests::kernel_peer::vm::{KernelPeerVm, VmConfig};
use rdbd_tests::kernel_peer::DATA_BLOCKS;
use rdbd_tests::tools::{require, run_ok, sha256_prefix};

/// Writes a file at an offset through NBD (python3-libnbd): URI FILE OFFSET.
/// An NBD flush (python3-libnbd): URI. On a replicating primary it returns once the
/// peer acknowledged the barrier, i.e. has everything on its disk.
const FLUSH: &str =
    "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nh.flush()\nh.shutdown()\n";
const PWRITE: &str = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nh.pwrite(open(sys.argv[2], 'rb').read(), int(sys.argv[3]))\nh.flush()\nh.shutdown()\n";

/// An rdbd node "alice" whose peer "guest" is the VM's forwarded port (sha1 when `auth`).
fn rdbd_node(protocol: &str, auth: bool) -> RdbdNode {
    let auth = if auth { Auth::Sha1 } else { Auth::None };
    RdbdNode::new(protocol, auth, "connect-int 2;")
}

fn guest_connect_line(protocol: &str, auth: bool) -> String {
    let auth = if auth {
        format!(" --cram-hmac-alg=sha1 --shared-secret={SECRET}")
    } else {
        String::new()
    };
    format!(
        "KP_ATTACH_OPTS='--c-plan-ahead=0 --resync-rate=100M' kp_drbd_up r0 0 /dev/vda 10.0.2.15:7789 \"$PEER\" --protocol={protocol}{auth} || exit 1"
    )
}

fn guest_result(vm: &KernelPeerVm, key: &str) -> String {
    vm.result_in(&vm.console(), key)
}

fn file_sha256(path: &Path, bytes: u64) -> String {
    sha256_prefix(path, bytes)
}

fn rdbd_primary_kernel_secondary(protocol: &str, auth: bool, cut_off: bool) {
    require("nbdcopy");
    let s = rdbd_node(protocol, auth);
    let script = format!(
        "{}\nkp_wait_cs 0 Connected 120 || exit 1\nkp_proc_drbd\nKP_QUIET=1 kp_wait_stop 600 1\nkp_proc_drbd\nkp_sha256 /dev/vda {DATA_BLOCKS} data\n",
        guest_connect_line(protocol, auth)
    );
    let mut vm = KernelPeerVm::boot(VmConfig {
        script,
        disk_mib: 64,
        fwd_port: s.fwd_port,
        env: vec![("PEER".into(), s.guest_peer_addr())],
        timeout: Duration::from_secs(600),
    });
    vm.wait_console("KP-BOOTED", Duration::from_secs(120));
    s.node.adm_ok(&["up", "r0"]);
    s.wait_status(
        &vm,
        "cs:Connected ro:Secondary/Secondary ds:Inconsistent/Inconsistent",
        120,
    );
    s.node.adm_ok(&["primary", "--force", "r0"]);
    s.wait_status(
        &vm,
        "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate",
        300,
    );
    // Writes through NBD on rdbd.
    let data = s.dir.path().join("data.bin");
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("head -c 8M /dev/urandom > {}", data.display())),
    );
    let uri = s.node.nbd_uri("r0");
    run_ok(Command::new("nbdcopy").arg(&data).arg(&uri));
    // The kernel acknowledged everything: the primary has no out-of-sync blocks.
    let status = s.wait_status(&vm, "oos:0", 30);
    assert!(status.contains(&format!(" {protocol} r")), "{status}");
    if cut_off {
        // The peer is cut off: writes go to the bitmap; back: a bitmap-based resync.
        s.node.adm_ok(&["disconnect", "r0"]);
        s.wait_status(&vm, "cs:StandAlone ro:Primary/Unknown", 30);
        let more = s.dir.path().join("more.bin");
        run_ok(
            Command::new("sh")
                .arg("-c")
                .arg(format!("head -c 4M /dev/urandom > {}", more.display())),
        );
        run_ok(
            Command::new("/usr/bin/python3")
                .args(["-c", PWRITE])
                .arg(&uri)
                .arg(&more)
                .arg("33554432"),
        );
        let status = s.node.status_file();
        assert!(
            !status.contains("oos:0 "),
            "writes while disconnected are out of sync:\n{status}"
        );
        s.node.adm_ok(&["connect", "r0"]);
        s.wait_status(
            &vm,
            "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate",
            120,
        );
        s.wait_status(&vm, "oos:0", 30);
        let log = s.log();
        // Bitmap-based: the 4 MiB (plus blocks of writes not yet barrier-acked when the
        // connection went), not a full sync.
        let kb: u64 = log
            .rsplit("Began resync as SyncSource (will sync ")
            .next()
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no resync after reconnecting:\n{log}"));
        assert!(
            (4096..16384).contains(&kb),
            "a bitmap-based resync of about 4 MiB, not {kb} KB:\n{log}"
        );
    }
    // Flush (barrier) so even protocol A has everything on the guest's disk, then stop it.
    run_ok(
        Command::new("/usr/bin/python3")
            .args(["-c", FLUSH])
            .arg(&uri),
    );
    s.node.adm_ok(&["secondary", "r0"]);
    std::thread::sleep(Duration::from_millis(500));
    vm.send_ctl("stop");
    vm.wait_console("KP-RESULT data ", Duration::from_secs(120));
    let guest = guest_result(&vm, "data");
    s.node.adm_ok(&["down", "r0"]);
    s.save_logs(&vm, &format!("repl-rdbd-primary-{protocol}"));
    let ours = file_sha256(&s.disk, DATA_BLOCKS * 4096);
    assert_eq!(guest, ours, "the kernel's data area differs from rdbd's");
    assert_eq!(
        file_sha256(&data, 8 << 20),
        file_sha256(&s.disk, 8 << 20),
        "rdbd's disk has the data"
    );
    let console = vm.console();
    for line in [
        "Handshake successful: Agreed network protocol version 101",
        "conn( WFReportParams -> Connected )",
    ] {
        assert!(console.contains(line), "console lacks {line:?}:\n{console}");
    }
    if auth {
        assert!(
            console.contains("Peer authenticated using 20 bytes HMAC"),
            "{console}"
        );
    }
}

fn kernel_primary_rdbd_secondary(protocol: &str, cut_off: bool) {
    let s = rdbd_node(protocol, false);
    let script = format!(
        "{}\nkp_wait_cs 0 Connected 120 || exit 1\n\
         kp_run drbdsetup primary 0 --force || exit 1\n\
         i=0; while ! grep -q 'ds:UpToDate/UpToDate' /proc/drbd; do sleep 1; i=$((i+1)); [ $i -lt 300 ] || exit 1; done\n\
         kp_proc_drbd\n\
         kp_run dd if=/dev/urandom of=/dev/drbd0 bs=4096 count=2048 seek=100 oflag=direct || exit 1\n\
         sync\n\
         {cut}\
         echo KP-DD-DONE\n\
         KP_QUIET=1 kp_wait_stop 600 1\n\
         kp_proc_drbd\n\
         kp_sha256 /dev/drbd0 {DATA_BLOCKS} data\n",
        guest_connect_line(protocol, false),
        cut = if cut_off {
            // Cut off: writes while disconnected, then back (bitmap-based resync to rdbd).
            format!(
                "kp_run drbdsetup disconnect ipv4:10.0.2.15:7789 \"ipv4:$PEER\" || exit 1\n\
                 kp_run dd if=/dev/urandom of=/dev/drbd0 bs=4096 count=1024 seek=9000 oflag=direct || exit 1\n\
                 kp_run drbdsetup connect r0 ipv4:10.0.2.15:7789 \"ipv4:$PEER\" --protocol={protocol} || exit 1\n\
                 kp_wait_cs 0 Connected 120 || exit 1\n\
                 i=0; while ! grep -q 'ds:UpToDate/UpToDate' /proc/drbd; do sleep 1; i=$((i+1)); [ $i -lt 300 ] || exit 1; done\n\
                 kp_proc_drbd\n"
            )
        } else {
            String::new()
        },
    );
    let mut vm = KernelPeerVm::boot(VmConfig {
        script,
        disk_mib: 64,
        fwd_port: s.fwd_port,
        env: vec![("PEER".into(), s.guest_peer_addr())],
        timeout: Duration::from_secs(600),
    });
    vm.wait_console("KP-BOOTED", Duration::from_secs(120));
    s.node.adm_ok(&["up", "r0"]);
    vm.wait_console("KP-DD-DONE", Duration::from_secs(400));
    if cut_off {
        // rdbd's log is written asynchronously: give the line a moment.
        let start = std::time::Instant::now();
        // The initial full sync, then the one after the cut-off.
        while s
            .log()
            .matches("Began resync as SyncTarget (will sync ")
            .count()
            < 2
        {
            if start.elapsed() > Duration::from_secs(15) {
                vm.fail(&format!(
                    "no resync after the cut-off; rdbd log:\n{}",
                    s.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = s.log();
        let resyncs: Vec<&str> = log.lines().filter(|l| l.contains("Began resync")).collect();
        // The 4 MiB written while cut off, plus at most the one block of the last write
        // before the cut: the kernel sets out of sync every write whose epoch the peer had
        // not barrier-acknowledged when the connection went (its last epoch is closed by
        // an idle timer, so whether it was depends on timing).
        let after_cut = resyncs.last().copied().unwrap_or_default();
        assert!(
            after_cut.contains("Began resync as SyncTarget (will sync 4096 KB [1024 bits set])")
                || after_cut
                    .contains("Began resync as SyncTarget (will sync 4100 KB [1025 bits set])"),
            "a bitmap-based resync of the 4 MiB written while cut off, not {resyncs:#?}\nrdbd log:\n{log}"
        );
    }
    s.wait_status(
        &vm,
        "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        60,
    );
    std::thread::sleep(Duration::from_secs(1));
    vm.send_ctl("stop");
    vm.wait_console("KP-RESULT data ", Duration::from_secs(120));
    let guest = guest_result(&vm, "data");
    s.node.adm_ok(&["down", "r0"]);
    s.save_logs(&vm, &format!("repl-kernel-primary-{protocol}"));
    assert_eq!(
        guest,
        file_sha256(&s.disk, DATA_BLOCKS * 4096),
        "rdbd's data area differs from the kernel's /dev/drbd0"
    );
}

#[test]
fn rdbd_primary_kernel_secondary_protocol_c_with_a_cut_off() {
    rdbd_primary_kernel_secondary("C", false, true);
}

#[test]
fn rdbd_primary_kernel_secondary_protocol_a_with_cram_hmac() {
    rdbd_primary_kernel_secondary("A", true, false);
}

#[test]
fn kernel_primary_rdbd_secondary_protocol_c_with_a_cut_off() {
    kernel_primary_rdbd_secondary("C", true);
}

#[test]
fn kernel_primary_rdbd_secondary_protocol_b() {
    kernel_primary_rdbd_secondary("B", false);
}
