//! Online verify and checksum-based resync against a real kernel DRBD 8.4.11 peer in qemu
//! (tests/kernel-peer), both with `verify-alg sha1; csums-alg sha1;`:
//!
//! - the initial full sync, rdbd SyncSource and kernel SyncTarget, runs on checksums: the
//!   kernel sends P_CSUM_RS_REQUEST, rdbd answers P_RS_IS_IN_SYNC for the equal (zeroed)
//!   blocks, and the kernel logs its "had equal checksums" summary;
//! - `rdbdadm verify` (rdbd VerifyS, kernel VerifyT) on equal data finds nothing on either
//!   side; after a block of rdbd's backing file was changed behind its back, both sides log
//!   `Out of sync: start=80, size=8 (sectors)` and `Online verify found 1 4k block out of sync!`;
//! - `drbdsetup verify` in the guest (kernel VerifyS, rdbd VerifyT) finds the same block;
//! - `disconnect` + `connect` resyncs it, and a last verify finds nothing.
//!
//! Run alone: `cargo nextest run -p rdbd-tests --test kernel_peer_verify`.

use std::os::unix::fs::FileExt;
use std::time::Duration;

use rdbd_tests::kernel_peer::node::{Auth, RdbdNode};
use rdbd_tests::kernel_peer::vm::{KernelPeerVm, VmConfig};
use rdbd_tests::tools::require;

const LONG: Duration = Duration::from_secs(120);

const GUEST_LIB: &str = r#"
g_up() { KP_ATTACH_OPTS='--c-plan-ahead=0 --resync-rate=100M' kp_drbd_up r0 0 /dev/vda 10.0.2.15:7789 "$PEER" --protocol=C --ping-int=2 --connect-int=1 --verify-alg=sha1 --csums-alg=sha1; }
g_wait_synced() { i=0; while ! grep -q "cs:Connected .* ds:UpToDate/UpToDate" /proc/drbd; do sleep 1; i=$((i+1)); [ $i -lt "$1" ] || { cat /proc/drbd; return 1; }; done; }
"#;

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// Waits until `pred` holds for the guest's console.
fn wait_console_count(vm: &KernelPeerVm, needle: &str, n: usize, secs: u64) {
    let start = std::time::Instant::now();
    while count(&vm.console(), needle) < n {
        if start.elapsed() > Duration::from_secs(secs) {
            vm.fail(&format!("the kernel did not log {needle:?} {n} times"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until rdbd's log holds `needle` `n` times.
fn wait_log_count(vm: &KernelPeerVm, rdbd: &RdbdNode, needle: &str, n: usize, secs: u64) -> String {
    let start = std::time::Instant::now();
    loop {
        let log = rdbd.log();
        if count(&log, needle) >= n {
            return log;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            vm.fail(&format!(
                "rdbd did not log {needle:?} {n} times; its log:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn verify_and_checksum_resync_with_a_kernel_peer() {
    require("qemu-system-x86_64");
    let rdbd = RdbdNode::new(
        "C",
        Auth::None,
        "ping-int 2; verify-alg sha1; csums-alg sha1;",
    );
    let mut vm = KernelPeerVm::boot(VmConfig {
        script: format!("{GUEST_LIB}\nkp_serve 300\n"),
        disk_mib: 64,
        fwd_port: rdbd.fwd_port,
        env: vec![("PEER".into(), rdbd.guest_peer_addr())],
        timeout: Duration::from_secs(900),
    });
    vm.wait_console("KP-SERVE-READY", LONG);
    rdbd.node.adm_ok(&["up", "r0"]);
    vm.guest("g_up", LONG);
    rdbd.wait_status(
        &vm,
        "cs:Connected ro:Secondary/Secondary ds:Inconsistent/Inconsistent",
        120,
    );
    rdbd.node.adm_ok(&["primary", "--force", "r0"]);
    let connected = "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate";
    rdbd.wait_status(&vm, connected, 300);
    vm.guest("g_wait_synced 120", LONG);
    // The kernel (SyncTarget) asked by checksum; every zeroed block was equal.
    wait_console_count(&vm, "had equal checksums", 1, 30);
    assert!(
        vm.console().contains("100 % had equal checksums"),
        "{}",
        vm.drbd_dmesg(40)
    );

    // rdbd VerifyS, kernel VerifyT, equal data.
    rdbd.node.adm_ok(&["verify", "r0"]);
    let log = wait_log_count(&vm, &rdbd, "Online verify done", 1, 300);
    assert!(!log.contains("Out of sync:"), "{log}");
    wait_console_count(&vm, "Online verify done", 1, 60);
    rdbd.wait_status(&vm, connected, 30);

    // Block 10 of rdbd's data changes behind its back.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&rdbd.disk)
        .unwrap();
    f.write_at(&[0x5A; 4096], 10 * 4096).unwrap();
    f.sync_all().unwrap();
    drop(f);
    rdbd.node.adm_ok(&["verify", "r0"]);
    let log = wait_log_count(&vm, &rdbd, "Online verify done", 2, 300);
    assert!(
        log.contains("Out of sync: start=80, size=8 (sectors)"),
        "{log}"
    );
    assert!(
        log.contains("Online verify found 1 4k block out of sync!"),
        "{log}"
    );
    wait_console_count(&vm, "Online verify done", 2, 60);
    let console = vm.console();
    assert!(
        console.contains("Out of sync: start=80, size=8 (sectors)"),
        "{}",
        vm.drbd_dmesg(60)
    );
    rdbd.wait_status(&vm, "oos:4", 30);

    // The kernel starts verify: rdbd is VerifyT.
    vm.guest("kp_run drbdsetup verify 0", LONG);
    wait_log_count(&vm, &rdbd, "Online Verify start sector: 0", 1, 60);
    wait_console_count(&vm, "Online verify done", 3, 300);
    let log = wait_log_count(&vm, &rdbd, "Online verify done", 3, 60);
    assert_eq!(
        count(&log, "Out of sync: start=80, size=8 (sectors)"),
        2,
        "{log}"
    );
    rdbd.wait_status(&vm, connected, 30);

    // Verify marks; reconnecting resyncs.
    rdbd.node.adm_ok(&["disconnect", "r0"]);
    rdbd.node.adm_ok(&["connect", "r0"]);
    rdbd.wait_status(&vm, connected, 120);
    rdbd.wait_status(&vm, "oos:0", 60);
    rdbd.node.adm_ok(&["verify", "r0"]);
    let log = wait_log_count(&vm, &rdbd, "Online verify done", 4, 300);
    let last = &log[log.rfind("Starting Online Verify").unwrap()..];
    assert!(!last.contains("Out of sync:"), "{last}");

    // pause-sync in the kernel while disconnected: the next resync starts paused on both
    // sides (rdbd sees the kernel's user_isp as peer_isp), resume-sync there completes it.
    rdbd.node.adm_ok(&["disconnect", "r0"]);
    vm.guest("kp_run drbdsetup pause-sync 0", LONG);
    let uri = rdbd.node.nbd_uri("r0");
    let script = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nh.pwrite(b'\\x77' * (4 << 20), 8 << 20)\nh.flush()\nh.shutdown()\n";
    rdbd_tests::tools::run_ok(
        std::process::Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(&uri),
    );
    rdbd.node.adm_ok(&["connect", "r0"]);
    let paused = rdbd.wait_status(
        &vm,
        "cs:PausedSyncS ro:Primary/Secondary ds:UpToDate/Inconsistent C r-p---",
        60,
    );
    let oos = |t: &str| -> String {
        t.split_whitespace()
            .find(|w| w.starts_with("oos:"))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(oos(&paused), "oos:4096", "{paused}");
    std::thread::sleep(Duration::from_secs(2));
    let still = rdbd.node.status_file();
    assert!(still.contains("cs:PausedSyncS"), "{still}");
    assert_eq!(
        oos(&still),
        "oos:4096",
        "the resync moved while paused:\n{still}"
    );
    let kernel = vm.guest("cat /proc/drbd", LONG);
    assert!(kernel.contains("cs:PausedSyncT"), "{kernel}");
    vm.guest("kp_run drbdsetup resume-sync 0", LONG);
    rdbd.wait_status(&vm, connected, 120);
    rdbd.wait_status(&vm, "oos:0", 30);
    rdbd.save_logs(&vm, "verify");
}
