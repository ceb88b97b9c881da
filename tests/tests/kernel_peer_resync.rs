//! Resync with a real kernel DRBD 8.4.11 peer in qemu (tests/kernel-peer), protocol C, in both
//! directions (rdbd Primary + kernel Secondary, kernel Primary + rdbd Secondary):
//!
//! - a full initial sync of a new pair (`primary --force` on a fresh pair): the SyncTarget
//!   receives exactly the whole data area (`nr:` = 65496 KiB) and both name that size;
//! - disconnect, write a known set of blocks on the Primary (some twice, some adjacent, a
//!   sub-block write, one straddling two blocks, the last block), reconnect: the Primary's `oos:`
//!   is exactly the distinct 4 KiB blocks written, the resync announces exactly that and the
//!   SyncTarget's `nr:` grows by exactly that; the data areas are equal;
//! - a resync interrupted at about half (rdbd Primary: `disconnect`; kernel Primary: rdbd `down`
//!   while SyncTarget) resumes with what was left, not from the start: the second resync names
//!   exactly what the SyncSource had left at the cut (at most about half), on both sides, and
//!   the target receives exactly that;
//! - SIGKILL of the rdbd Primary during QD1 writes: every write acknowledged to the NBD client is
//!   on the kernel's disk, the meta-data says Primary, and after `up` the crashed primary resyncs
//!   the hot extents of its activity log (whole 4 MiB extents, not the device);
//! - power cut of the kernel Primary (qemu killed while the guest's `dd` writes), reboot on the
//!   same disk image: every write `dd` returned from is on rdbd's disk; after `drbdmeta
//!   apply-al` (the kernel refuses to attach unclean meta-data; drbdadm runs it) the kernel, a
//!   crashed primary, resyncs its activity log's hot extents to rdbd.
//!
//! One VM boot per direction runs the scenarios in the order: initial sync, crash (while only
//! the crash writer's extents are in the Primary's activity log), dirty blocks, interruption.
//!
//! Run: `cargo build --bins && cargo nextest run -p rdbd-tests --test kernel_peer_resync`.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use rdbd_tests::acked_writer::{assert_acked_present, AckedWriter};
use rdbd_tests::kernel_peer::node::{oos_kib, Auth, DEFAULT_DISK_OPTIONS};
use rdbd_tests::kernel_peer::pair::{counter, resyncs_kib, Direction, KernelPair};
use rdbd_tests::kernel_peer::DATA_BLOCKS;
use rdbd_tests::tools::{run_ok, sha256_prefix, DEBIAN_PYTHON};

/// rdbd's `net` options besides `connect-int 1`: pings every 2 s, and a PingAck may take 10 s
/// (a guest starved by a loaded host answers late; the default 0.5 s drops a healthy link).
const RDBD_NET: &str = "ping-int 2; ping-timeout 100;";

/// The whole data area in KiB.
const FULL_KIB: u64 = DATA_BLOCKS * 4;

/// One activity-log extent in KiB.
const EXTENT_KIB: u64 = 4096;

/// The writes of the dirty-blocks scenario, (offset, length) in bytes, 512-byte aligned.
const DIRTY_WRITES: &[(u64, u64)] = &[
    (5 * 4096, 4 * 4096),             // blocks 5..=8
    (6 * 4096, 4096),                 // 6 again
    (100 * 4096, 4096),               // 100 ...
    (100 * 4096, 4096),               // ... twice
    (1023 * 4096, 2 * 4096),          // 1023, 1024: across an extent boundary
    (2000 * 4096 + 1536, 512),        // one sector inside 2000
    (3000 * 4096 + 2048, 4096),       // straddles 3000 and 3001
    (8191 * 4096, 3 * 4096),          // 8191..=8193
    (12000 * 4096, 32 * 4096),        // 12000..=12031 in one write
    (12010 * 4096, 4096),             // inside that again
    ((DATA_BLOCKS - 1) * 4096, 4096), // the last block
];

/// The distinct 4 KiB blocks a set of writes touches.
fn distinct_blocks(writes: &[(u64, u64)]) -> BTreeSet<u64> {
    writes
        .iter()
        .flat_map(|&(at, len)| at / 4096..=(at + len - 1) / 4096)
        .collect()
}

/// Random data at (offset, length) pairs through rdbd's NBD export, then a flush.
const NBD_WRITES: &str = "import nbd, os, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nfor w in sys.argv[2].split(','):\n    at, n = map(int, w.split(':'))\n    h.pwrite(os.urandom(n), at)\nh.flush()\nh.shutdown()\n";

/// The out-of-sync region of the interrupted-resync scenario: 16 MiB from 16 MiB.
const INTERRUPT_AT: u64 = 16 << 20;
const INTERRUPT_KIB: u64 = 16 << 10;

/// Resync data a cut may leave unacknowledged (KiB): the requests of a 100 ms step or two at 4M.
const IN_FLIGHT_KIB: u64 = 1024;

/// The resync rate while a resync is to be interrupted (KiB/s): 16 MiB take about 4 s.
const SLOW_RATE: &str = "4M";

/// Writes on the Primary: through NBD on rdbd, with `dd` on the guest's /dev/drbd0.
fn write_on_primary(p: &mut KernelPair, writes: &[(u64, u64)]) {
    match p.direction {
        Direction::RdbdPrimary => {
            let list: Vec<String> = writes.iter().map(|(a, n)| format!("{a}:{n}")).collect();
            run_ok(
                Command::new(DEBIAN_PYTHON)
                    .args(["-c", NBD_WRITES])
                    .arg(p.rdbd.node.nbd_uri("r0"))
                    .arg(list.join(",")),
            );
        }
        Direction::KernelPrimary => {
            let cmd: Vec<String> = writes
                .iter()
                .map(|(a, n)| {
                    format!(
                        "dd if=/dev/urandom of=/dev/drbd0 bs=512 seek={} count={} oflag=direct 2>/dev/null",
                        a / 512,
                        n / 512
                    )
                })
                .collect();
            p.vm.guest(&cmd.join(" && "), Duration::from_secs(120));
        }
    }
}

/// The Primary's `oos:` (KiB) once it is `expected_kib` or after 10 s (rdbd's status file is
/// refreshed in the background, the kernel's /proc/drbd at once).
fn primary_oos(p: &mut KernelPair, expected_kib: u64) -> u64 {
    match p.direction {
        Direction::RdbdPrimary => {
            let start = Instant::now();
            loop {
                let oos = oos_kib(&p.rdbd.node.status_file());
                if oos == expected_kib || start.elapsed() > Duration::from_secs(10) {
                    return oos;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Direction::KernelPrimary => oos_kib(&p.proc_drbd()),
    }
}

/// The SyncTarget's (the Secondary's) `nr:` (KiB); 0 while rdbd's resource is down (its
/// counters start again at `up`).
fn target_nr(p: &mut KernelPair) -> u64 {
    let text = match p.direction {
        Direction::RdbdPrimary => p.proc_drbd(),
        Direction::KernelPrimary => p.rdbd.node.status_file(),
    };
    if p.direction == Direction::KernelPrimary && !text.contains(" 0: cs:") {
        return 0;
    }
    counter(&text, "nr").unwrap_or_else(|| p.vm.fail(&format!("no nr: in\n{text}")))
}

/// rdbd's role in the resync: the Primary is the SyncSource.
fn rdbd_sync_role(d: Direction) -> &'static str {
    match d {
        Direction::RdbdPrimary => "SyncSource",
        Direction::KernelPrimary => "SyncTarget",
    }
}

/// How many resyncs each side logged so far: rdbd in its log, the kernel on the console of
/// the current boot.
fn resync_counts(p: &KernelPair) -> (usize, usize) {
    (
        resyncs_kib(&p.rdbd.log()).len(),
        resyncs_kib(&p.vm.console()).len(),
    )
}

/// Waits until each side logged `k` resyncs more than `before`; returns the sizes (KB) of those
/// new resyncs, rdbd's and the kernel's.
fn wait_new_resyncs(p: &KernelPair, before: (usize, usize), k: usize) -> (Vec<u64>, Vec<u64>) {
    let start = Instant::now();
    loop {
        let ours = resyncs_kib(&p.rdbd.log());
        let theirs = resyncs_kib(&p.vm.console());
        if ours.len() >= before.0 + k && theirs.len() >= before.1 + k {
            return (ours[before.0..].to_vec(), theirs[before.1..].to_vec());
        }
        if start.elapsed() > Duration::from_secs(30) {
            p.vm.fail(&format!(
                "not {k} new resyncs on both sides (rdbd {ours:?}, kernel {theirs:?}, before \
                 {before:?}); rdbd log:\n{}",
                p.rdbd.log()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Cuts the two apart (rdbd's `disconnect` when it is Primary, the kernel's otherwise).
fn cut(p: &mut KernelPair) {
    match p.direction {
        Direction::RdbdPrimary => {
            p.rdbd.node.adm_ok(&["disconnect", "r0"]);
            p.rdbd
                .wait_status(&p.vm, "cs:StandAlone ro:Primary/Unknown", 30);
        }
        Direction::KernelPrimary => {
            p.g("g_disconnect");
            p.rdbd
                .wait_status(&p.vm, "cs:WFConnection ro:Secondary/Unknown", 30);
        }
    }
}

/// Connects them again (whoever was cut) and waits until both are in sync.
fn reconnect_and_wait(p: &mut KernelPair) {
    match p.direction {
        Direction::RdbdPrimary => {
            p.rdbd.node.adm_ok(&["connect", "r0"]);
        }
        Direction::KernelPrimary => {
            let proto = p.protocol;
            p.g(&format!("g_connect {proto} ''"));
        }
    }
    wait_in_sync(p);
}

fn wait_in_sync(p: &mut KernelPair) {
    let state = p.connected_state();
    p.rdbd.wait_status(&p.vm, &state, 120);
    p.rdbd.wait_status(&p.vm, "oos:0", 60);
    p.g("g_wait_synced 60");
}

/// The initial full sync: the target received the whole data area, both sides named it.
fn full_initial_sync(p: &mut KernelPair) {
    let what = format!("{}: the initial full sync", p.direction.name());
    // Nothing is up yet: the target's counters start at zero.
    p.first_connect();
    let (ours, theirs) = wait_new_resyncs(p, (0, 0), 1);
    let nr = target_nr(p);
    eprintln!("{what}: rdbd {ours:?} KB, kernel {theirs:?} KB, target nr:{nr}");
    if ours != [FULL_KIB] || theirs != [FULL_KIB] || nr != FULL_KIB {
        p.vm.fail(&format!(
            "{what}: expected both sides to sync {FULL_KIB} KB and the target to receive that \
             (rdbd {ours:?}, kernel {theirs:?}, target nr:{nr})"
        ));
    }
    p.assert_areas_equal(&what);
}

/// Disconnect, write DIRTY_WRITES on the Primary, reconnect: exactly the dirty blocks move.
fn dirty_blocks_only(p: &mut KernelPair) {
    let what = format!("{}: dirty blocks", p.direction.name());
    let dirty_kib = distinct_blocks(DIRTY_WRITES).len() as u64 * 4;
    let resyncs_before = resync_counts(p);
    cut(p);
    write_on_primary(p, DIRTY_WRITES);
    let oos = primary_oos(p, dirty_kib);
    let nr_before = target_nr(p);
    let dw_text = match p.direction {
        Direction::RdbdPrimary => p.proc_drbd(),
        Direction::KernelPrimary => p.rdbd.node.status_file(),
    };
    let dw_before = counter(&dw_text, "dw").unwrap_or(0);
    reconnect_and_wait(p);
    let (ours, theirs) = wait_new_resyncs(p, resyncs_before, 1);
    let nr = target_nr(p) - nr_before;
    let dw_text = match p.direction {
        Direction::RdbdPrimary => p.proc_drbd(),
        Direction::KernelPrimary => p.rdbd.node.status_file(),
    };
    let dw = counter(&dw_text, "dw").unwrap_or(0) - dw_before;
    let (ours, theirs) = (ours[0], theirs[0]);
    eprintln!(
        "{what}: {} writes, {dirty_kib} KiB dirty; Primary oos:{oos}; resync rdbd {ours} KB, \
         kernel {theirs} KB; target nr +{nr} KiB, dw +{dw} KiB",
        DIRTY_WRITES.len()
    );
    if oos != dirty_kib || ours != dirty_kib || theirs != dirty_kib || nr != dirty_kib {
        p.vm.fail(&format!(
            "{what}: {dirty_kib} KiB were written in distinct blocks; the Primary counted \
             oos:{oos}, rdbd resynced {ours} KB and the kernel {theirs} KB, the target received \
             {nr} KiB\nrdbd log:\n{}",
            p.rdbd.log()
        ));
    }
    p.assert_areas_equal(&what);
}

/// Sets a static resync rate (`100M` is the default) on both sides: rdbd's configuration (taken
/// by the next `adjust`) and the guest's `drbdsetup disk-options`. Both are needed: DRBD 8.4
/// adopts the peer's P_SYNC_PARAM (receive_SyncParam) at every connect, and so does rdbd, so
/// each SyncTarget paces at the rate its peer sent.
fn set_rate(p: &mut KernelPair, rate: &str) {
    let disk = if rate == "100M" {
        DEFAULT_DISK_OPTIONS.to_string()
    } else {
        format!("c-plan-ahead 0; resync-rate {rate};")
    };
    p.rdbd
        .write_config_with_disk(p.protocol, Auth::None, RDBD_NET, &disk);
    p.g(&format!(
        "kp_run drbdsetup disk-options 0 --c-plan-ahead=0 --resync-rate={rate}"
    ));
}

/// A 16 MiB resync cut at about half (rdbd Primary: rdbd disconnects; kernel Primary: rdbd, the
/// SyncTarget, goes `down`), then resumed: the second resync covers what was left.
fn interrupted_resync(p: &mut KernelPair) {
    let what = format!("{}: interrupted resync", p.direction.name());
    let resyncs_before = resync_counts(p);
    cut(p);
    set_rate(p, SLOW_RATE);
    let writes: Vec<(u64, u64)> = (0..16)
        .map(|i| (INTERRUPT_AT + i * (1 << 20), 1 << 20))
        .collect();
    write_on_primary(p, &writes);
    let oos = primary_oos(p, INTERRUPT_KIB);
    assert_eq!(
        oos, INTERRUPT_KIB,
        "{what}: the Primary's oos before the resync"
    );
    let nr_start = target_nr(p);
    // `adjust` takes the new rate (rdbd Primary: and connects).
    p.rdbd.node.adm_ok(&["adjust", "r0"]);
    if p.direction == Direction::KernelPrimary {
        let proto = p.protocol;
        p.g(&format!("g_connect {proto} ''"));
    }
    // rdbd's oos: the SyncSource's bits clear as the target acknowledges, the SyncTarget's as
    // blocks arrive.
    let sync_state = format!("cs:{}", rdbd_sync_role(p.direction));
    let status = p.rdbd.wait(&p.vm, "the resync at half", 60, |s| {
        s.contains(&sync_state) && oos_kib(s) <= INTERRUPT_KIB / 2
    });
    let oos_at_cut = oos_kib(&status);
    match p.direction {
        Direction::RdbdPrimary => {
            p.rdbd.node.adm_ok(&["disconnect", "r0"]);
        }
        Direction::KernelPrimary => {
            p.rdbd.node.adm_ok(&["down", "r0"]);
        }
    }
    let nr_part1 = match p.direction {
        Direction::RdbdPrimary => target_nr(p) - nr_start,
        // rdbd's counters went with `down`: its last status line.
        Direction::KernelPrimary => counter(&status, "nr").unwrap_or(0) - nr_start,
    };
    let kernel_oos = oos_kib(&p.proc_drbd());
    // What the SyncSource has left: its bits clear only on the target's acknowledgement, so it
    // covers the target's too; the resumed resync is exactly that.
    let source_oos = match p.direction {
        Direction::RdbdPrimary => oos_kib(&p.rdbd.wait_status(&p.vm, "cs:StandAlone", 30)),
        Direction::KernelPrimary => kernel_oos,
    };
    set_rate(p, "100M");
    let nr_before = target_nr(p);
    // rdbd Primary: connects; kernel Primary: brings rdbd up.
    p.rdbd.node.adm_ok(&["adjust", "r0"]);
    wait_in_sync(p);
    let (ours, theirs) = wait_new_resyncs(p, resyncs_before, 2);
    let nr = target_nr(p) - nr_before;
    let (first, resumed) = (ours[0], ours[1]);
    eprintln!(
        "{what}: {INTERRUPT_KIB} KiB out of sync; cut at rdbd oos:{oos_at_cut} (kernel \
         oos:{kernel_oos}, source oos:{source_oos}) after the target received {nr_part1} KiB; resyncs rdbd {ours:?} KB, \
         kernel {theirs:?} KB; target nr +{nr} KiB in the resumed one"
    );
    // The cut came once rdbd showed at most half left (its status may lag: never more); the
    // SyncSource may count a few requests more, whose acknowledgements the cut lost.
    if first != INTERRUPT_KIB
        || theirs[0] != INTERRUPT_KIB
        || resumed != source_oos
        || resumed == 0
        || resumed > INTERRUPT_KIB / 2 + IN_FLIGHT_KIB
        || theirs[1] != resumed
        || nr != resumed
    {
        p.vm.fail(&format!(
            "{what}: the first resync should name {INTERRUPT_KIB} KB, the resumed one exactly \
             what the SyncSource had left ({source_oos} KiB; rdbd showed {oos_at_cut} at the \
             cut, at most half + {IN_FLIGHT_KIB}), on both sides, and the target should receive exactly that \
             (rdbd {ours:?} KB, kernel {theirs:?} KB, nr +{nr})\nrdbd log:\n{}",
            p.rdbd.log()
        ));
    }
    p.assert_areas_equal(&what);
}

/// The activity-log resync after a crashed primary (the new resyncs in `new`, both sides): a
/// multiple of whole extents, at least the extents written, far less than the device, and the
/// target received exactly it. A connection that breaks right after a guest reboot (qemu's
/// user network resets a socket of the crossed connection attempts) retries the resync; a
/// retry names no more than the first, and the target then received at most their sum.
fn assert_al_resync(p: &KernelPair, what: &str, new: (Vec<u64>, Vec<u64>), hot: u64, nr: u64) {
    let (ours, theirs) = new;
    eprintln!(
        "{what}: {hot} extents written; AL resync rdbd {ours:?} KB, kernel {theirs:?} KB, target \
         nr +{nr} KiB (device {FULL_KIB} KiB)"
    );
    let kib = ours[0];
    let received_ok = if ours.len() == 1 {
        nr == kib
    } else {
        nr >= kib && nr <= ours.iter().sum::<u64>()
    };
    if theirs != ours
        || ours.iter().any(|&k| k > kib)
        || !received_ok
        || kib % EXTENT_KIB != 0
        || kib < hot * EXTENT_KIB
        || kib > FULL_KIB / 2
    {
        p.vm.fail(&format!(
            "{what}: a resync of whole 4 MiB extents, at least the {hot} written, not the \
             device, on both sides, and the target receiving exactly that (rdbd {ours:?} KB, \
             kernel {theirs:?} KB, target nr +{nr})\nrdbd log:\n{}",
            p.rdbd.log()
        ));
    }
}

/// The block the acknowledged-write writer writes as its `i`th (`rdbd-block-%08d-` repeated).
fn stamped_block(i: u64) -> Vec<u8> {
    let mut block = format!("rdbd-block-{i:08}-").repeat(200).into_bytes();
    block.resize(4096, b'x');
    block
}

/// SIGKILL of the rdbd Primary during QD1 writes through NBD; `up` again: the crashed primary
/// resyncs the hot extents of its activity log to the kernel. Ends with rdbd Primary again.
fn sigkill_of_the_rdbd_primary(p: &mut KernelPair) {
    let what = "rdbd Primary killed";
    // One block in extent 9 first: the activity log keeps it hot after the write completed.
    write_on_primary(p, &[(9 * (4 << 20) + 4096, 4096)]);
    let mut writer = AckedWriter::start(p.rdbd.dir.path(), &p.rdbd.node.nbd_uri("r0"), 4000);
    writer.wait_acked(300);
    p.rdbd.node.crash();
    let acked = writer.acked();
    let n = acked.len() as u64;
    assert!(
        acked.iter().copied().eq(0..n),
        "QD1 writes are acked in order"
    );
    // Protocol C: every acknowledged write is on the kernel's disk.
    p.g("g_wait_cs_not Connected 60");
    let expected = p.rdbd.dir.path().join("acked.bin");
    std::fs::write(
        &expected,
        (0..n).flat_map(stamped_block).collect::<Vec<u8>>(),
    )
    .unwrap();
    let out = p.g(&format!(
        "kp_result acked \"$(dd if=/dev/vda bs=4096 count={n} iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)\""
    ));
    if p.vm.result_in(&out, "acked") != sha256_prefix(&expected, n * 4096) {
        p.vm.fail(&format!(
            "{what}: the kernel Secondary lacks some of the {n} writes acknowledged to the client"
        ));
    }
    // get-gi's flags: consistent, was up-to-date, primary, ...: the meta-data says Primary.
    let gi = p.rdbd.node.adm_ok(&["get-gi", "r0"]);
    let flags: Vec<&str> = gi.trim().split(':').skip(4).collect();
    assert_eq!(flags.get(2), Some(&"1"), "{what}: get-gi {gi}");
    let before = resync_counts(p);
    let nr_before = target_nr(p);
    p.rdbd.node.adm_ok(&["up", "r0"]);
    wait_both_secondary_in_sync(p);
    let log = p.rdbd.log();
    assert!(
        log[log.rfind("rdbd started").unwrap_or(0)..].contains("Began resync as SyncSource"),
        "{what}: the crashed primary is the SyncSource:\n{log}"
    );
    let new = wait_new_resyncs(p, before, 1);
    let nr = target_nr(p) - nr_before;
    eprintln!("{what}: {n} writes acknowledged before the SIGKILL");
    assert_al_resync(p, what, new, 1 + (n * 4).div_ceil(EXTENT_KIB), nr);
    p.assert_areas_equal(what);
    let data = std::fs::read(&p.rdbd.disk).unwrap();
    assert_acked_present(&data, &acked);
    let gi = p.rdbd.node.adm_ok(&["get-gi", "r0"]);
    assert!(
        gi.trim().ends_with(":0"),
        "{what}: the crashed-primary flag is cleared after the resync: {gi}"
    );
    p.rdbd.node.adm_ok(&["primary", "r0"]);
    let state = p.connected_state();
    p.rdbd.wait_status(&p.vm, &state, 30);
}

/// Stride between the blocks the guest writer writes (7 blocks: about 146 writes per extent).
const GUEST_STRIDE: u64 = 7;

/// The guest's acknowledged-write writer: block `i * stride` gets the stamp of `i`, one
/// `dd oflag=direct` at a time; `KP-ACK i` once `dd` returned.
const GUEST_WRITER: &str = "g_stamped() { i=0; while [ $i -lt $1 ]; do printf 'rdbd-block-%08d-' $i > /tmp/s; dd if=/tmp/s of=/dev/drbd0 bs=4096 seek=$((i * $2)) count=1 conv=sync oflag=direct 2>/dev/null || return 1; echo \"KP-ACK $i\"; i=$((i+1)); done; }";

/// What the guest writer's `dd conv=sync` writes for `i`: the stamp once, zero-padded.
fn guest_stamped_block(i: u64) -> Vec<u8> {
    let mut block = format!("rdbd-block-{i:08}-").into_bytes();
    block.resize(4096, 0);
    block
}

/// Power cut of the kernel Primary (qemu killed) while the guest's `dd` writes; reboot on the
/// same disk image: the kernel, a crashed primary, resyncs its activity log's hot extents to
/// rdbd. Ends with the kernel Primary again.
fn power_cut_of_the_kernel_primary(p: &mut KernelPair) {
    let what = "kernel Primary killed";
    p.g(GUEST_WRITER);
    p.g(&format!(
        "g_stamped 2000 {GUEST_STRIDE} > /dev/console 2>&1 &"
    ));
    let start = Instant::now();
    while p.vm.console().matches("KP-ACK ").count() < 200 {
        if start.elapsed() > Duration::from_secs(90) {
            p.vm.fail(&format!("{what}: the guest writer made no progress"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    p.vm.kill_hard();
    let acked: Vec<u64> =
        p.vm.console()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("KP-ACK "))
            .filter_map(|n| n.trim().parse().ok())
            .collect();
    let n = acked.len() as u64;
    assert!(acked.iter().copied().eq(0..n), "sequential acks: {acked:?}");
    // Protocol C: every write dd returned from is on rdbd's disk.
    let data = std::fs::read(&p.rdbd.disk).unwrap();
    for i in &acked {
        let at = (i * GUEST_STRIDE * 4096) as usize;
        assert!(
            data[at..at + 4096] == guest_stamped_block(*i),
            "{what}: rdbd lacks the guest's acknowledged write {i}"
        );
    }
    p.rdbd
        .wait_status(&p.vm, "cs:WFConnection ro:Secondary/Unknown", 60);
    p.vm.reboot();
    p.vm.wait_console("KP-SERVE-READY", Duration::from_secs(120));
    // As drbdadm attach does after a crash: the kernel refuses unclean meta-data ("Found
    // unclean meta data. Did you \"drbdadm apply-al\"?"); drbdmeta marks the AL's extents.
    let apply = p.g("echo yes | kp_run drbdmeta --force 0 v08 /dev/vda internal apply-al");
    eprintln!("{what}: drbdmeta apply-al:\n{apply}");
    let before = (resyncs_kib(&p.rdbd.log()).len(), 0);
    let nr_before = target_nr(p);
    p.g("KP_SKIP_CREATE_MD=1 g_up C ''");
    wait_both_secondary_in_sync(p);
    let new = wait_new_resyncs(p, before, 1);
    let nr = target_nr(p) - nr_before;
    let hot = (n - 1) * GUEST_STRIDE * 4 / EXTENT_KIB + 1;
    eprintln!("{what}: {n} writes acknowledged before the power cut");
    assert_al_resync(p, what, new, hot, nr);
    p.assert_areas_equal(what);
    p.g("kp_run drbdsetup primary 0");
    let state = p.connected_state();
    p.rdbd.wait_status(&p.vm, &state, 30);
}

/// One boot per direction: the initial full sync, the crash of the Primary (first, while only
/// its writes are in the activity log), dirty blocks only, the interrupted resync.
fn resync_scenarios(direction: Direction) {
    let mut p = KernelPair::boot(direction, "C", RDBD_NET);
    full_initial_sync(&mut p);
    match direction {
        Direction::RdbdPrimary => sigkill_of_the_rdbd_primary(&mut p),
        Direction::KernelPrimary => power_cut_of_the_kernel_primary(&mut p),
    }
    dirty_blocks_only(&mut p);
    interrupted_resync(&mut p);
    p.save_logs(&format!("resync-{}", direction.name()));
    if direction == Direction::RdbdPrimary {
        p.rdbd.node.adm_ok(&["secondary", "r0"]);
    }
    p.rdbd.node.adm_ok(&["down", "r0"]);
    eprintln!(
        "{}: done {:?} after the boot",
        direction.name(),
        p.started.elapsed()
    );
}

/// rdbd Primary, kernel Secondary: full initial sync, SIGKILL of rdbd, dirty blocks only,
/// interrupted resync.
#[test]
fn rdbd_primary_kernel_secondary_resyncs() {
    resync_scenarios(Direction::RdbdPrimary);
}

/// Kernel Primary, rdbd Secondary: full initial sync, power cut of the guest, dirty blocks
/// only, interrupted resync.
#[test]
fn kernel_primary_rdbd_secondary_resyncs() {
    resync_scenarios(Direction::KernelPrimary);
}

/// Waits until the pair is Connected, both Secondary and UpToDate, and neither side has
/// anything left out of sync (a crash's resync has finished).
fn wait_both_secondary_in_sync(p: &mut KernelPair) {
    p.rdbd.wait_status(
        &p.vm,
        "cs:Connected ro:Secondary/Secondary ds:UpToDate/UpToDate",
        120,
    );
    p.rdbd.wait_status(&p.vm, "oos:0", 60);
    p.g("g_wait_synced 60");
}
