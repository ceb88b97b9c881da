//! Shrinking a connected pair of rdbd and a real kernel DRBD 8.4.11 peer in qemu
//! (tests/kernel-peer), protocol C, once from each side (one VM boot per direction):
//!
//! - rdbd Primary: `rdbdadm resize --size=32M --force r0` sends P_SIZES with the new
//!   `u_size`; the kernel takes it ("Peer sets u_size"), shrinks /dev/drbd0 and answers
//!   with its new size, on which rdbd shrinks too;
//! - kernel Primary: `drbdsetup resize 0 --size=32M` in the guest; rdbd (Secondary) takes
//!   the peer's `u_size` and shrinks.
//!
//! Either way both devices end at 32 MiB, still Connected and UpToDate without a resync,
//! rdbd's meta-data records the new size (the real `drbdmeta` reads `la-size-sect` after
//! `down`), and data written on the Primary afterwards is mirrored: the first 32 MiB of
//! both backing disks are equal.
//!
//! Run: `cargo build --bins && cargo nextest run -p rdbd-tests --test kernel_peer_resize`.

use std::process::Command;
use std::time::{Duration, Instant};

use rdbd_tests::kernel_peer::pair::{Direction, KernelPair};
use rdbd_tests::tools::{
    drbdmeta_dump_md, la_size_sect, require, run_ok, sha256_prefix, stdout, DEBIAN_PYTHON,
};

const RDBD_NET: &str = "ping-int 2; ping-timeout 100;";

/// The size both sides shrink to.
const NEW_SIZE_BYTES: u64 = 32 << 20;

/// 1 MiB of random data at 4 MiB and at 30 MiB through NBD, then a flush.
const NBD_WRITES: &str = "import nbd, os, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nfor at in (4 << 20, 30 << 20):\n    h.pwrite(os.urandom(1 << 20), at)\nh.flush()\nh.shutdown()\n";

/// The guest's /dev/drbd0 size in bytes (from sysfs: a Secondary's device cannot be opened).
fn guest_size_bytes(p: &mut KernelPair) -> u64 {
    let out = p.g("kp_result size \"$(cat /sys/block/drbd0/size)\"");
    let sectors = p.vm.result_in(&out, "size");
    let sectors: u64 = sectors.parse().unwrap_or_else(|_| {
        p.vm.fail(&format!("/sys/block/drbd0/size reads {sectors:?}"))
    });
    sectors * 512
}

fn shrink_from(direction: Direction) {
    require("drbdmeta");
    let mut p = KernelPair::boot(direction, "C", RDBD_NET);
    p.first_connect();
    let before = guest_size_bytes(&mut p);
    if before <= NEW_SIZE_BYTES {
        p.vm.fail(&format!("the kernel's device is only {before} bytes"));
    }

    let resyncs_before = p.rdbd.log().matches("Began resync").count();
    match direction {
        Direction::RdbdPrimary => {
            p.rdbd
                .node
                .adm_ok(&["resize", "--size=32M", "--force", "r0"]);
        }
        Direction::KernelPrimary => {
            p.g("kp_run drbdsetup resize 0 --size=32M");
        }
    }

    // Both sides shrink (rdbd logs DRBD's "size = ..." line with the old size).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let kernel = guest_size_bytes(&mut p);
        let log = p.rdbd.log();
        if kernel == NEW_SIZE_BYTES && log.contains("size = 32768 KB (was ") {
            break;
        }
        if Instant::now() > deadline {
            p.vm.fail(&format!(
                "the pair did not shrink to 32 MiB (kernel: {kernel} bytes); rdbd's log:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let dmesg = p.g("dmesg | grep -i 'size' | tail -20");
    if direction == Direction::RdbdPrimary && !dmesg.contains("Peer sets u_size") {
        p.vm.fail(&format!("the kernel did not take rdbd's u_size:\n{dmesg}"));
    }
    // No resync: still Connected and in sync on both sides.
    let state = p.connected_state();
    p.rdbd.wait_status(&p.vm, &state, 30);
    p.g("g_wait_synced 30");
    let resyncs_after = p.rdbd.log().matches("Began resync").count();
    if resyncs_after != resyncs_before {
        p.vm.fail(&format!("the shrink started a resync:\n{}", p.rdbd.log()));
    }

    // Writes after the shrink are mirrored.
    match direction {
        Direction::RdbdPrimary => {
            let uri = p.rdbd.node.nbd_uri("r0");
            let size = stdout(&run_ok(Command::new("nbdinfo").arg("--size").arg(&uri)));
            if size.trim() != NEW_SIZE_BYTES.to_string() {
                p.vm.fail(&format!("rdbd's export is {size} bytes after the shrink"));
            }
            run_ok(
                Command::new(DEBIAN_PYTHON)
                    .args(["-c", NBD_WRITES])
                    .arg(&uri),
            );
        }
        Direction::KernelPrimary => {
            p.g("g_write 64 16 && g_write 480 16");
        }
    }
    p.g("g_wait_synced 30");
    let out = p.g("g_region 0 512");
    let theirs = p.vm.result_in(&out, "region-0");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ours = sha256_prefix(&p.rdbd.disk, NEW_SIZE_BYTES);
        if ours == theirs {
            break;
        }
        if Instant::now() > deadline {
            p.vm.fail(&format!(
                "the first 32 MiB differ after writes on the shrunk pair (kernel {theirs}, rdbd {ours})"
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
    }

    // rdbd's meta-data has the new size, as the real drbdmeta reads it.
    if direction == Direction::RdbdPrimary {
        p.rdbd.node.adm_ok(&["secondary", "r0"]);
    }
    p.rdbd.node.adm_ok(&["down", "r0"]);
    let la_size_sect = la_size_sect(&drbdmeta_dump_md(&p.rdbd.disk));
    if la_size_sect != NEW_SIZE_BYTES / 512 {
        p.vm.fail(&format!(
            "drbdmeta reads la-size-sect {la_size_sect}, not {}",
            NEW_SIZE_BYTES / 512
        ));
    }
    p.save_logs(&format!("resize-{}", direction.name()));
}

#[test]
fn rdbd_primary_shrinks_the_pair_with_a_kernel_secondary() {
    shrink_from(Direction::RdbdPrimary);
}

#[test]
fn kernel_primary_shrinks_the_pair_with_an_rdbd_secondary() {
    shrink_from(Direction::KernelPrimary);
}
