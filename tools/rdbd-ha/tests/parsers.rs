//! The heartbeat readers against the seeds' ha.cf, haresources and authkeys, and the
//! TOML form.

use std::path::{Path, PathBuf};

use rdbd_ha::config::hacf::{self, Medium};
use rdbd_ha::config::{authkeys, haresources, heartbeat, Config, LinkConfig, ResourceKind};
use rdbd_ha::proto::AuthMethod;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn text(p: &str) -> String {
    std::fs::read_to_string(fixture(p)).unwrap()
}

#[test]
fn seed_001_hacf() {
    let cf = hacf::parse(&text("ct74/ha.cf")).unwrap();
    assert_eq!(cf.keepalive_ms, Some(1000));
    assert_eq!(cf.deadtime_ms, Some(5000));
    assert_eq!(cf.warntime_ms, Some(2000));
    assert_eq!(cf.initdead_ms, Some(10_000));
    assert_eq!(cf.udp_port, Some(694));
    assert_eq!(
        cf.media,
        vec![Medium::Ucast {
            interface: "eth0".into(),
            address: "192.168.137.75".into()
        }]
    );
    assert_eq!(cf.nodes, vec!["ct74", "ct75"]);
    assert_eq!(cf.auto_failback, Some(false));
    assert_eq!(cf.ping, vec!["192.168.137.1"]);
    assert_eq!(cf.respawn.len(), 1);
    let notes = cf.notes.join("\n");
    for d in ["debugfile", "logfile", "logfacility", "ipfail"] {
        assert!(notes.contains(d), "{d} reported in {notes}");
    }
}

#[test]
fn seed_003_hacf_bcast_and_failback() {
    let cf = hacf::parse(&text("mfs/ha.cf")).unwrap();
    assert_eq!(
        cf.media,
        vec![Medium::Bcast {
            interface: "eth1".into()
        }]
    );
    assert_eq!(cf.auto_failback, Some(true));
    assert_eq!(
        (
            cf.keepalive_ms,
            cf.warntime_ms,
            cf.deadtime_ms,
            cf.initdead_ms
        ),
        (Some(2000), Some(10_000), Some(30_000), Some(120_000))
    );
    assert!(cf.notes.iter().any(|n| n.contains("hopfudge")));
}

#[test]
fn hacf_errors_name_the_line() {
    let e = hacf::parse("keepalive 2\nfrobnicate yes\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("frobnicate"), "{e}");
    let e = hacf::parse("deadtime soon\n").unwrap_err().to_string();
    assert!(e.contains("line 1") && e.contains("soon"), "{e}");
    assert!(hacf::parse("mcast eth0 10.0.0.1 694 1 0\n")
        .unwrap_err()
        .to_string()
        .contains("multicast"));
    let cf =
        hacf::parse("mcast eth0 225.0.0.1 694 1 0\nudpport 695\nauto_failback legacy\n").unwrap();
    assert!(matches!(
        cf.media[0],
        Medium::Mcast {
            port: 694,
            ttl: 1,
            ..
        }
    ));
    assert_eq!(cf.auto_failback, Some(false));
    assert!(hacf::parse("udpport 0\n").is_err());
    assert!(hacf::parse("auto_failback maybe\n").is_err());
}

#[test]
fn seed_001_haresources() {
    let (groups, notes) = haresources::parse(&text("ct74/haresources")).unwrap();
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    assert_eq!(g.name, "r0");
    assert_eq!(g.preferred_node, "ct74");
    let kinds: Vec<&ResourceKind> = g.resources.iter().map(|r| &r.kind).collect();
    assert_eq!(
        kinds,
        vec![
            &ResourceKind::Ip {
                address: "192.168.137.82/24".into(),
                interface: Some("eth0".into())
            },
            &ResourceKind::Rdbd {
                resource: "r0".into()
            },
            &ResourceKind::Filesystem {
                resource: Some("r0".into()),
                device: None,
                mountpoint: "/nfs".into(),
                fstype: "ext4".into(),
                options: None,
                fsck: true
            },
            &ResourceKind::Script {
                name: "killnfsd".into(),
                args: vec![],
                monitor: false
            },
        ]
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("/dev/drbd0") && n.contains("'r0'")),
        "{notes:?}"
    );
    assert!(notes
        .iter()
        .any(|n| n.contains("killnfsd") && n.contains("not monitored")));
}

#[test]
fn seed_000_and_003_haresources() {
    let (groups, _) = haresources::parse(&text("oldboy/haresources")).unwrap();
    assert_eq!(groups.len(), 1, "commented lines skipped");
    assert_eq!(groups[0].preferred_node, "data-1-1");
    assert!(
        matches!(&groups[0].resources[3].kind, ResourceKind::Script { name, .. } if name == "rsmd1")
    );
    assert!(matches!(&groups[0].resources[2].kind,
        ResourceKind::Filesystem { resource: Some(r), mountpoint, fstype, .. } if r == "data" && mountpoint == "/md1" && fstype == "ext4"));

    let (groups, notes) = haresources::parse(&text("mfs/haresources")).unwrap();
    let g = &groups[0];
    assert_eq!(g.name, "group0", "no drbddisk: a generated name");
    assert!(
        matches!(&g.resources[0].kind, ResourceKind::Script { name, .. } if name == "Initdrbd")
    );
    assert!(
        matches!(&g.resources[1].kind, ResourceKind::Script { name, .. } if name == "mfsmaster")
    );
    assert_eq!(
        g.resources[2].kind,
        ResourceKind::Ip {
            address: "192.168.8.210/32".into(),
            interface: None
        }
    );
    assert!(notes.iter().any(|n| n.contains("no netmask")));
}

#[test]
fn haresources_edge_cases() {
    let (g, _) = haresources::parse("n1 IPaddr::10.0.0.5/255.255.255.0/eth0/10.0.0.255 \\\n   drbddisk::d Filesystem::/dev/drbd/by-res/d::/m::xfs::noatime s::a::b\n").unwrap();
    assert_eq!(g[0].resources.len(), 4, "continuation line joined");
    assert_eq!(
        g[0].resources[0].kind,
        ResourceKind::Ip {
            address: "10.0.0.5/24".into(),
            interface: Some("eth0".into())
        }
    );
    assert!(
        matches!(&g[0].resources[2].kind, ResourceKind::Filesystem { resource: Some(r), options: Some(o), .. } if r == "d" && o == "noatime")
    );
    assert!(
        matches!(&g[0].resources[3].kind, ResourceKind::Script { args, .. } if args == &vec!["a".to_string(), "b".to_string()])
    );
    // Plain device stays a device.
    let (g, _) = haresources::parse("n1 Filesystem::/dev/sdb1::/m::ext4\n").unwrap();
    assert!(
        matches!(&g[0].resources[0].kind, ResourceKind::Filesystem { device: Some(d), resource: None, .. } if d == "/dev/sdb1")
    );
    // /dev/drbd0 without a drbddisk before it: which resource?
    let e = haresources::parse("n1 Filesystem::/dev/drbd0::/m\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1") && e.contains("drbddisk"), "{e}");
    assert!(haresources::parse("n1 drbddisk\n").is_err());
    assert!(haresources::parse("n1\n").is_err());
    assert!(haresources::parse("n1 IPaddr::10.0.0.300/24\n").is_err());
}

#[test]
fn authkeys_variants() {
    let (k, notes) = authkeys::parse(&text("ct74/authkeys")).unwrap();
    assert_eq!(
        (k.index, k.method, k.secret.as_str()),
        (1, AuthMethod::Sha1, "HA_DB")
    );
    assert!(notes.is_empty());
    let (k, notes) = authkeys::parse(&text("mfs/authkeys")).unwrap();
    assert_eq!(k.method, AuthMethod::Crc);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("WARNING") && n.contains("NOTHING")),
        "crc warns loudly: {notes:?}"
    );
    let (k, notes) = authkeys::parse("auth 2\n1 crc\n2 md5 secret with spaces\n").unwrap();
    assert_eq!(
        (k.index, k.method, k.secret.as_str()),
        (2, AuthMethod::Md5, "secret with spaces")
    );
    assert!(notes.iter().any(|n| n.contains("weak")));
    assert!(authkeys::parse("1 sha1 x\n")
        .unwrap_err()
        .to_string()
        .contains("no 'auth N'"));
    assert!(authkeys::parse("auth 2\n1 sha1 x\n")
        .unwrap_err()
        .to_string()
        .contains("no key 2"));
    assert!(
        authkeys::parse("auth 1\n1 sha1\n").is_err(),
        "sha1 needs a secret"
    );
    assert!(authkeys::parse("auth 1\n1 rot13 x\n").is_err());
    assert!(authkeys::parse("auth 1\n1 crc\n1 sha1 y\n").is_err());
}

#[test]
fn heartbeat_dir_to_config_and_back_to_toml() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["ha.cf", "haresources", "authkeys"] {
        std::fs::copy(fixture(&format!("ct74/{f}")), dir.path().join(f)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("authkeys"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (config, notes) = Config::load(dir.path()).unwrap();
    assert!(notes.iter().any(|n| n.contains("chmod 600")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("no stonith")));
    assert_eq!(
        config
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        vec!["ct74", "ct75"]
    );
    assert_eq!(config.timings.keepalive_ms, 1000);
    assert_eq!(config.timings.deadtime_ms, 5000);
    assert!(!config.auto_failback);
    assert_eq!(
        config.links,
        vec![LinkConfig::Ucast {
            interface: Some("eth0".into()),
            address: "192.168.137.75".into()
        }]
    );
    assert_eq!(config.auth.method, AuthMethod::Sha1);
    assert_eq!(config.secret().unwrap(), b"HA_DB");
    assert!(config.stonith.is_empty());
    assert_eq!(
        config.commands.script_dirs[0],
        dir.path().join("resource.d")
    );
    // ha.cf named directly works too.
    let (again, _) = Config::load(&dir.path().join("ha.cf")).unwrap();
    assert_eq!(again, config);
    // The TOML rendering reads back to the same configuration.
    let toml_text = config.to_toml();
    let back = Config::from_toml(&toml_text, Path::new("converted.toml")).unwrap();
    assert_eq!(back, config, "{toml_text}");

    std::fs::write(
        dir.path().join("ha.cf"),
        "node a\nnode b\nnode c\nucast eth0 10.0.0.1\n",
    )
    .unwrap();
    assert!(Config::load(dir.path())
        .unwrap_err()
        .to_string()
        .contains("exactly 2"));
    let e = heartbeat::from_texts("node a\nnode b\n", "a x\n", "auth 1\n1 crc\n").unwrap_err();
    assert!(e.to_string().contains("no heartbeat medium"), "{e}");
}

const TOML: &str = r#"
auto_failback = true
ping_nodes = ["tcp:127.0.0.1:9"]
stonith = ["/usr/local/sbin/fence-peer", "{peer}"]
run_dir = "/run/rdbd-ha"

[timings]
keepalive_ms = 500
warntime_ms = 1500
deadtime_ms = 3000
initdead_ms = 6000

[auth]
method = "sha256"
secret = "s3cret"

[[nodes]]
name = "alice"
heartbeat = ["127.0.0.1:7101"]

[[nodes]]
name = "bob"
heartbeat = ["127.0.0.1:7102"]

[[links]]
kind = "mcast"
interface = "eth1"
group = "239.1.2.3"

[[groups]]
name = "data"
preferred_node = "alice"
monitor_interval_ms = 2000
monitor_failures_max = 2

[[groups.resources]]
type = "ip"
address = "10.0.0.17/24"
interface = "eth0"

[[groups.resources]]
type = "rdbd"
resource = "data"

[[groups.resources]]
type = "filesystem"
resource = "data"
mountpoint = "/md1"
fstype = "ext4"
start_timeout_ms = 120000

[[groups.resources]]
type = "script"
name = "/etc/init.d/nfs-kernel-server"
"#;

#[test]
fn toml_configuration() {
    let c = Config::from_toml(TOML, Path::new("t.toml")).unwrap();
    assert_eq!(c.local_node("bob").unwrap(), 1);
    assert!(c
        .local_node("carol")
        .unwrap_err()
        .to_string()
        .contains("alice, bob"));
    assert_eq!(c.groups[0].resources.len(), 4);
    assert_eq!(c.groups[0].resources[2].start_timeout_ms, Some(120_000));
    assert!(matches!(
        &c.groups[0].resources[3].kind,
        ResourceKind::Script { monitor: true, .. }
    ));
    assert!(matches!(
        c.links[0],
        LinkConfig::Mcast {
            ttl: 1,
            port: None,
            ..
        }
    ));
    let back = Config::from_toml(&c.to_toml(), Path::new("x")).unwrap();
    assert_eq!(back, c);

    let bad = |from: &str, to: &str, expect: &str| {
        let e = Config::from_toml(&TOML.replace(from, to), Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(expect), "{from} -> {to}: {e}");
    };
    bad(
        "preferred_node = \"alice\"",
        "preferred_node = \"carol\"",
        "carol",
    );
    bad("keepalive_ms = 500", "keepalive_ms = 5000", "keepalive");
    bad("secret = \"s3cret\"", "", "needs a secret");
    bad("name = \"bob\"", "name = \"alice\"", "both nodes");
    bad(
        "resource = \"data\"\nmountpoint",
        "mountpoint",
        "exactly one of resource or device",
    );
    bad("type = \"rdbd\"", "type = \"rbd\"", "t.toml");
    bad("127.0.0.1:7102", "not-an-address", "not an IP");
}

mod random_input {
    use proptest::prelude::*;
    use rdbd_ha::config::{authkeys, hacf, haresources};

    proptest! {
        #[test]
        fn parsers_never_panic(text in "[ -~\t\n#:/\\\\]{0,400}") {
            let _ = hacf::parse(&text);
            let _ = haresources::parse(&text);
            let _ = authkeys::parse(&text);
        }

        #[test]
        fn haresources_lines_of_known_words(words in proptest::collection::vec(
            prop_oneof![
                Just("IPaddr::10.0.0.1/24/eth0".to_string()),
                Just("drbddisk::r0".to_string()),
                Just("Filesystem::/dev/drbd0::/m::ext4".to_string()),
                Just("10.1.2.3".to_string()),
                "[a-z]{1,8}(::[a-z0-9]{1,4}){0,2}",
            ], 1..8)) {
            let line = format!("n1 {}\n", words.join(" "));
            if let Ok((groups, _)) = haresources::parse(&line) {
                prop_assert_eq!(groups.len(), 1);
                prop_assert_eq!(groups[0].resources.len(), words.len());
            }
        }
    }
}

#[test]
fn mcast_loop_flag_and_link_validation() {
    let cf = hacf::parse("mcast eth1 239.0.0.7 6940 2 1\nbcast eth0 eth2\n").unwrap();
    assert_eq!(
        cf.media,
        vec![
            Medium::Mcast {
                interface: "eth1".into(),
                group: "239.0.0.7".parse().unwrap(),
                port: 6940,
                ttl: 2,
                multicast_loop: true,
            },
            Medium::Bcast {
                interface: "eth0".into()
            },
            Medium::Bcast {
                interface: "eth2".into()
            },
        ]
    );
    let e = hacf::parse("mcast eth1 239.0.0.7 6940 2 yes\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("loop 'yes'"), "{e}");

    // The ha.cf media reach the TOML form unchanged, loop included.
    let loaded = heartbeat::from_texts(
        "node alice bob\nmcast eth1 239.0.0.7 6940 2 0\nbcast eth0\n",
        "",
        "auth 1\n1 sha1 s\n",
    )
    .unwrap();
    assert_eq!(
        loaded.config.links,
        vec![
            LinkConfig::Mcast {
                interface: "eth1".into(),
                group: "239.0.0.7".parse().unwrap(),
                port: Some(6940),
                ttl: 2,
                multicast_loop: false,
            },
            LinkConfig::Bcast {
                interface: "eth0".into()
            },
        ]
    );
    let back = Config::from_toml(&loaded.config.to_toml(), Path::new("x")).unwrap();
    assert_eq!(back.links, loaded.config.links);

    let base = "[auth]\nmethod = \"sha1\"\nsecret = \"s\"\n[[nodes]]\nname = \"a\"\n[[nodes]]\nname = \"b\"\n";
    let with = |links: &str| Config::from_toml(&format!("{base}{links}"), Path::new("t.toml"));
    let c = with(
        "[[links]]\nkind = \"mcast\"\ninterface = \"eth1\"\ngroup = \"239.0.0.7\"\nloop = true\n",
    )
    .unwrap();
    assert!(matches!(
        c.links[0],
        LinkConfig::Mcast {
            multicast_loop: true,
            ttl: 1,
            ..
        }
    ));
    for (bad, why) in [
        (
            "kind = \"bcast\"\ninterface = \"a-very-long-interface-name\"",
            "not an interface name",
        ),
        (
            "kind = \"bcast\"\ninterface = \"eth0/x\"",
            "not an interface name",
        ),
        (
            "kind = \"mcast\"\ninterface = \"eth1\"\ngroup = \"10.0.0.1\"",
            "not an IPv4 multicast group",
        ),
        (
            "kind = \"mcast\"\ninterface = \"eth1\"\ngroup = \"239.0.0.7\"\nttl = 0",
            "ttl 0",
        ),
    ] {
        let e = with(&format!("[[links]]\n{bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
}
