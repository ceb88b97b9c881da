//! TOML and drbd.conf give the same model; rdbd's extensions and the
//! implemented/unimplemented report.

mod common;

use std::net::SocketAddr;

use common::{assert_same_model, fixture, fixtures_matching};
use rdbd_config::{
    dump, load, options::IMPLEMENTED_OPTIONS, parse_drbd_conf, parse_toml, MetaDisk,
};

#[test]
fn every_toml_fixture_equals_its_drbd_conf_twin() {
    let tomls = fixtures_matching(&["own-", "rdbd-"], "toml");
    assert!(tomls.len() >= 4, "{tomls:?}");
    for toml_path in tomls {
        let conf_path = toml_path.with_extension("conf");
        let from_toml = load(&toml_path).unwrap_or_else(|e| panic!("{e}"));
        let from_conf = load(&conf_path).unwrap_or_else(|e| panic!("{e}"));
        assert_same_model(&format!("{}", toml_path.display()), &from_conf, &from_toml);
    }
}

#[test]
fn rdbd_extensions_and_standalone_resources() {
    let c = load(&fixture("rdbd-extensions.conf")).unwrap();
    assert_eq!(c.nbd_address(), Some("127.0.0.1:10809".parse().unwrap()));
    assert_eq!(c.metrics_address(), Some("127.0.0.1:9942".parse().unwrap()));
    let solo = c.resource("solo").unwrap();
    assert!(solo.is_standalone());
    assert!(solo.peer_of("alice").is_none());
    let alice = solo.host("alice").unwrap();
    assert_eq!(alice.address, None);
    assert_eq!(
        alice.nbd_address,
        Some("127.0.0.1:10810".parse::<SocketAddr>().unwrap())
    );
    let pair = c.resource("pair").unwrap();
    assert_eq!(pair.peer_of("bob").unwrap().name, "alice");
    let s = pair.settings();
    assert_eq!(
        (s.al_extents, s.resync_rate_kib, s.c_plan_ahead),
        (6433, 102_400, 0)
    );
    assert_eq!(s.shared_secret.as_deref(), Some("s3cr3t"));
    // Loopback addresses may repeat across hosts only with different ports,
    // but both hosts use 127.0.0.1: allowed since they differ in port.
    assert_eq!(
        pair.host("bob").unwrap().disk.as_deref(),
        Some(std::path::Path::new("/dev/loop7"))
    );
    // dump keeps the extensions.
    let again = parse_drbd_conf(&dump(&c, None), &fixture("x.conf")).unwrap();
    assert_same_model("rdbd-extensions dump", &c, &again);
}

#[test]
fn unimplemented_options_are_reported_once_with_location() {
    let c = load(&fixture("own-common-inherit.conf")).unwrap();
    let report = c.unimplemented_options();
    // disk-barrier is written once in common and inherited by two resources.
    let barrier: Vec<&String> = report
        .iter()
        .filter(|m| m.contains("'disk-barrier'"))
        .collect();
    assert_eq!(barrier.len(), 1, "{report:#?}");
    assert!(
        barrier[0].ends_with(
            "own-common-inherit.conf:11:45: disk option 'disk-barrier' is not implemented by rdbd yet"
        ),
        "{}",
        barrier[0]
    );
    // ping-timeout is implemented (replication): not reported.
    assert!(
        !report.iter().any(|m| m.contains("'ping-timeout'")),
        "{report:#?}"
    );
    for implemented in [
        "'protocol'",
        "'shared-secret'",
        "'cram-hmac-alg'",
        "'al-extents'",
        "'resync-rate'",
        "'after-sb-0pri'",
        "'usage-count'",
        "'split-brain'",
    ] {
        assert!(
            !report.iter().any(|m| m.contains(implemented)),
            "{implemented} reported: {report:#?}"
        );
    }
    for accepted in [
        "'disk-barrier'",
        "'wfc-timeout'",
        "'become-primary-on'",
        "'on-no-data-accessible'",
    ] {
        assert!(
            report.iter().any(|m| m.contains(accepted)),
            "{accepted} missing: {report:#?}"
        );
    }
    assert!(IMPLEMENTED_OPTIONS.len() >= 11);
}

#[test]
fn toml_errors_name_file_line_column() {
    let origin = std::path::Path::new("r.toml");
    let e = parse_toml("[resource.r0.net]\nfoo = 1\n", origin)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("r.toml:2:1: unknown option 'foo' in net section"),
        "{e}"
    );
    let e = parse_toml("[resource.r0.on.a]\nminor = 1\ndisk = \"/d\"\nmeta-disk = \"internal\"\naddress = \"10.0.0.1\"\n", origin)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("r.toml:5:1: invalid value '10.0.0.1' for address"),
        "{e}"
    );
    let e = parse_toml("[global\n", origin).unwrap_err().to_string();
    assert!(e.starts_with("r.toml:1:"), "{e}");
    assert!(e.contains("invalid TOML"), "{e}");
    let e = parse_toml("[resource.r0.disk]\nresync-rate = \"10Q\"\n", origin)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("r.toml:2:1: invalid value '10Q' for resync-rate"),
        "{e}"
    );
}

#[test]
fn toml_meta_disk_forms() {
    let c = load(&fixture("own-meta-disk.toml")).unwrap();
    let r = c.resource("indexed").unwrap();
    assert_eq!(
        r.host("bob").unwrap().meta_disk,
        MetaDisk::Indexed("/dev/sdm2".into(), 3)
    );
    let f = c.resource("flex").unwrap();
    assert_eq!(
        f.host("bob").unwrap().meta_disk,
        MetaDisk::FlexibleExternal("/dev/sdm1".into())
    );
    let floaty = c.resource("floaty").unwrap();
    assert!(floaty.hosts.iter().all(|h| h.floating));
    assert_eq!(
        floaty.host("10.0.2.2:7822").unwrap().disk.as_deref(),
        Some(std::path::Path::new("/dev/sdc3"))
    );
}

#[test]
fn ipv6_rdbd_addresses_parse_and_dump() {
    let text = "global { nbd-address [::1]:10809; }\nresource r { on a { device minor 1; disk /d; meta-disk internal; nbd-address [::1]:10810; } }\n";
    let c = parse_drbd_conf(text, std::path::Path::new("v6.conf")).unwrap();
    assert_eq!(c.nbd_address(), Some("[::1]:10809".parse().unwrap()));
    let again = parse_drbd_conf(&dump(&c, None), std::path::Path::new("v6.conf")).unwrap();
    assert_eq!(c, again);
    assert_eq!(
        again.resources[0].hosts[0].nbd_address,
        Some("[::1]:10810".parse().unwrap())
    );
}

/// The side-by-side example of README.md describes one model in both formats.
#[test]
fn readme_examples_are_the_same_config() {
    let readme_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let conf = readme.split("```\n").nth(1).unwrap();
    let toml = readme
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let from_conf = parse_drbd_conf(conf, &readme_path).unwrap();
    let from_toml = parse_toml(toml, &readme_path).unwrap();
    assert_same_model("README", &from_conf, &from_toml);
    assert_eq!(from_conf.resources.len(), 2);
}
