//! Sync parameters with a real kernel DRBD 8.4.11 peer in qemu (tests/kernel-peer), kernel
//! Primary, rdbd Secondary; both start with `c-plan-ahead 0; resync-rate 100M`:
//!
//! - the guest's `drbdsetup disk-options 0 --resync-rate=4M` while connected reaches rdbd
//!   (drbd_adm_disk_opts sends P_SYNC_PARAM89), which adopts it (`resync-rate 102400 ->
//!   4096`); the next resync, kernel SyncSource, rdbd SyncTarget, is paced by rdbd at that
//!   rate (`want: 4,096`) although rdbd's own file says 100M;
//! - the guest's `drbdsetup net-options ... --verify-alg=sha224` (the kernel has sha224,
//!   rdbd does not) sends P_PROTOCOL_UPDATE (unchanged protocol: rdbd takes it) and then
//!   P_SYNC_PARAM89, which rdbd refuses as DRBD refuses an algorithm it cannot allocate:
//!   `Can not allocate "sha224" as verify-alg (reason: -2)`, and the connection goes
//!   StandAlone.
//!
//! Run: `cargo build --bins && cargo nextest run -p rdbd-tests --test kernel_peer_sync_params`.

use rdbd_tests::kernel_peer::pair::{Direction, KernelPair};
use rdbd_tests::tools::number_after;

const RDBD_NET: &str = "ping-int 2; ping-timeout 100;";

#[test]
fn the_kernels_disk_and_net_options_reach_rdbd() {
    let mut p = KernelPair::boot(Direction::KernelPrimary, "C", RDBD_NET);
    p.first_connect();

    p.g("kp_run drbdsetup disk-options 0 --resync-rate=4M");
    let start = std::time::Instant::now();
    while !p.rdbd.log().contains("resync-rate 102400 -> 4096") {
        if start.elapsed() > std::time::Duration::from_secs(30) {
            p.vm.fail(&format!(
                "rdbd did not adopt the kernel's resync-rate 4M; its log:\n{}",
                p.rdbd.log()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // 16 MiB changed on the kernel while disconnected: rdbd resyncs them at 4M.
    p.g("g_disconnect");
    p.rdbd.wait_status(&p.vm, "cs:WFConnection", 30);
    p.g("g_write 0 256");
    p.g("g_connect C ''");
    let status = p.rdbd.wait(&p.vm, "a SyncTarget line with want:", 60, |s| {
        s.contains("cs:SyncTarget") && s.contains("want:")
    });
    let want = status
        .lines()
        .find(|l| l.contains("want:"))
        .and_then(|l| number_after(l, "want:"));
    if want != Some(4096) {
        p.vm.fail(&format!(
            "rdbd as SyncTarget should pace at the kernel's 4M:\n{status}"
        ));
    }
    let state = p.connected_state();
    p.rdbd.wait_status(&p.vm, &state, 60);
    p.g("g_wait_synced 60");
    p.assert_areas_equal("after the resync at 4M");

    p.g("kp_run drbdsetup net-options ipv4:10.0.2.15:7789 \"ipv4:$PEER\" --verify-alg=sha224");
    p.rdbd.wait_status(&p.vm, "cs:StandAlone", 30);
    let log = p.rdbd.log();
    if !log.contains("Can not allocate \"sha224\" as verify-alg (reason: -2)") {
        p.vm.fail(&format!(
            "rdbd's log does not name the refused algorithm:\n{log}"
        ));
    }
    p.save_logs("sync-params");
}
