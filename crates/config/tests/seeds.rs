//! The drbd.conf blocks of the seed tutorials (tests/fixtures/seed-*.conf)
//! parse into the resources, hosts and options they spell out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rdbd_config::{load, MetaDisk, Protocol};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn seed_000_production_drbd_conf() {
    let c = load(&fixture("seed-000-drbd.conf")).unwrap();
    assert_eq!(c.global.get("usage-count"), Some("no"));
    assert_eq!(
        c.global.len(),
        1,
        "commented-out global options stay comments"
    );
    // `protocol C;` at common level goes to common net, like drbdadm.
    assert_eq!(c.common.net.get("protocol"), Some("C"));
    assert_eq!(c.common.net.get("sndbuf-size"), Some("512k"));
    assert_eq!(
        c.common.net.get("shared-secret"),
        Some("hdhwXes23sYEhart8t")
    );
    assert_eq!(c.common.disk.get("disk-flushes"), Some("no"));
    assert_eq!(c.common.disk.get("md-flushes"), Some("no"));
    // syncer { rate 630M; al-extents 517; } lands in disk.
    assert_eq!(c.common.disk.get("resync-rate"), Some("630M"));
    assert_eq!(c.common.disk.get("al-extents"), Some("517"));
    assert!(!c.common.net.contains("timeout"));

    let r = c.resource("data").unwrap();
    assert_eq!(r.protocol, Protocol::C);
    assert_eq!(r.hosts.len(), 2);
    let m1 = r.host("master1").unwrap();
    assert_eq!(m1.minor, Some(1));
    assert_eq!(m1.device.as_deref(), Some("/dev/drbd1"));
    assert_eq!(m1.disk.as_deref(), Some(Path::new("/dev/sdb1")));
    assert_eq!(m1.address, addr("10.0.10.7:7788"));
    assert_eq!(m1.meta_disk, MetaDisk::Indexed("/dev/sdb2".into(), 0));
    assert_eq!(r.peer_of("master1").unwrap().name, "master2");
    assert!(!r.is_standalone());

    let s = r.settings();
    assert_eq!(s.resync_rate_kib, 630 * 1024);
    assert_eq!(s.al_extents, 517);
    assert_eq!(s.sndbuf_size_bytes, 512 * 1024);
    assert_eq!(s.max_buffers, 8000);
    assert_eq!(s.max_epoch_size, 8000);
    assert_eq!(s.unplug_watermark, 1024);
    assert!(!s.disk_flushes && !s.md_flushes && s.disk_drain);
    assert_eq!(s.on_io_error, "detach");
    assert_eq!(s.cram_hmac_alg.as_deref(), Some("sha1"));
    assert_eq!(s.after_sb_1pri, "disconnect");
    assert_eq!(s.rr_conflict, "disconnect");
    // defaults for what the file leaves out
    assert_eq!(
        (s.timeout_ds, s.ping_int_s, s.connect_int_s, s.ko_count),
        (60, 10, 10, 7)
    );
}

#[test]
fn seed_001_include_globs_and_resource_level_device() {
    let c = load(&fixture("seed-001-drbd.conf")).unwrap();
    assert_eq!(
        c.files().len(),
        2,
        "drbd.d/*.res matches nothing, *.cfg one file"
    );
    assert!(c.files()[1].ends_with("drbd.d/drbd_basic.cfg"));
    assert_eq!(c.global.get("usage-count"), Some("yes"));
    assert_eq!(c.common.disk.get("resync-rate"), Some("100M"));
    let r = c.resource("r0").unwrap();
    assert_eq!(
        r.disk.get("resync-rate"),
        Some("100M"),
        "inherited from common"
    );
    assert_eq!(r.handlers.len(), 7);
    assert_eq!(
        r.handlers.get("pri-on-incon-degr"),
        Some("echo o > /proc/sysrq-trigger ; halt -f ")
    );
    assert_eq!(
        r.handlers.get("fence-peer"),
        Some("/usr/lib4/heartbeat/drbd-peer-outdater -t 5")
    );
    assert_eq!(r.net.get("shared-secret"), Some("MySQL-HA"));
    assert_eq!(r.disk.get("fencing"), Some("resource-only"));
    assert_eq!(r.settings().wfc_timeout, 120);
    assert_eq!(r.settings().degr_wfc_timeout, 120);
    // `device /dev/drbd0;` at resource level is inherited by both hosts.
    for name in ["ct74", "ct75"] {
        let h = r.host(name).unwrap();
        assert_eq!(h.minor, Some(0));
        assert_eq!(h.meta_disk, MetaDisk::Internal);
    }
    assert_eq!(r.host("ct75").unwrap().address, addr("192.168.137.75:7788"));
}

#[test]
fn seed_003_drbd83_config() {
    let c = load(&fixture("seed-003-drbd.conf")).unwrap();
    let r = c.resource("r0").unwrap();
    assert_eq!(r.disk.get("resync-rate"), Some("50M"));
    assert_eq!(r.net.get("shared-secret"), Some("secret string"));
    assert_eq!(
        r.host("mfs-master").unwrap().address,
        addr("192.168.8.200:7898")
    );
    assert_eq!(
        r.host("mfs-bak").unwrap().disk.as_deref(),
        Some(Path::new("/dev/sdb"))
    );
    assert_eq!(r.settings().resync_rate_kib, 50 * 1024);
}

#[test]
fn seed_004_global_common_and_resource_file() {
    let c = load(&fixture("seed-004-global_common.conf")).unwrap();
    assert!(c.resources.is_empty());
    assert_eq!(c.common.handlers.len(), 3);
    assert!(c
        .common
        .handlers
        .get("local-io-error")
        .unwrap()
        .ends_with("halt -f"));
    assert_eq!(c.common.net.get("protocol"), Some("C"));
    assert_eq!(c.common.net.get("shared-secret"), Some("drbd.tanxw.com"));
    assert_eq!(c.common.disk.get("resync-rate"), Some("1000M"));
    assert!(c.common.startup.is_empty() && c.common.options.is_empty());

    // mystore.res is full of non-breaking spaces from the web page.
    let c = load(&fixture("seed-004-mystore.conf")).unwrap();
    let r = c.resource("mystore").unwrap();
    let h = r.host("node2.tanxw.com").unwrap();
    assert_eq!(h.address, addr("172.16.27.2:7789"));
    assert_eq!(h.device.as_deref(), Some("/dev/drbd0"));
    assert_eq!(h.disk.as_deref(), Some(Path::new("/dev/sda5")));
    assert_eq!(r.protocol, Protocol::C, "default");
}
