//! The TOML parser and drbd.conf describe one model: generated TOML configs that parse dump as
//! drbd.conf that parses back to the same model. Also the regression found by the `config_toml`
//! fuzz target (an explicit address family that contradicts the address).

use std::path::Path;

use proptest::prelude::*;
use rdbd_config::{dump, parse_drbd_conf, parse_toml, AddressFamily};

fn toml_origin() -> &'static Path {
    Path::new("/nonexistent/dir/r.toml")
}

fn conf_origin() -> &'static Path {
    Path::new("/nonexistent/dir/drbd.conf")
}

/// The TOML config must dump as drbd.conf text that parses to the same model.
fn assert_dump_round_trips(text: &str) -> Result<(), TestCaseError> {
    if let Ok(config) = parse_toml(text, toml_origin()) {
        let dumped = dump(&config, None);
        let again = parse_drbd_conf(&dumped, conf_origin()).map_err(|e| {
            TestCaseError::fail(format!("{e}\n--- toml:\n{text}\n--- dump:\n{dumped}"))
        })?;
        prop_assert_eq!(config, again);
    }
    Ok(())
}

#[test]
fn explicit_family_must_match_the_address() {
    for (address, reason) in [
        (
            "ipv6 10.0.2.2:7822",
            "the ipv6 keyword needs an IPv6 address",
        ),
        (
            "ipv4 [fd00::1]:7822",
            "IPv6 addresses need the ipv6 keyword",
        ),
        ("sdp [fd00::1]:7822", "IPv6 addresses need the ipv6 keyword"),
    ] {
        let floating = format!(
            "[resource.r.floating.\"{address}\"]\nminor = 1\ndisk = \"/dev/x\"\nmeta-disk = \"internal\"\n\
             [resource.r.floating.\"10.0.2.1:7822\"]\nminor = 1\ndisk = \"/dev/x\"\nmeta-disk = \"internal\"\n"
        );
        let on_host = format!(
            "[resource.r.on.a]\nminor = 1\ndisk = \"/dev/x\"\nmeta-disk = \"internal\"\naddress = \"{address}\"\n\
             [resource.r.on.b]\nminor = 1\ndisk = \"/dev/x\"\nmeta-disk = \"internal\"\naddress = \"10.0.2.1:7822\"\n"
        );
        for text in [floating, on_host] {
            let e = parse_toml(&text, toml_origin())
                .expect_err(&format!("'{address}' was accepted"))
                .to_string();
            assert!(e.contains(reason) && e.contains(address), "{e}");
            // drbd.conf refuses the same statement.
            let conf = format!(
                "resource r {{ on a {{ device minor 1; disk /dev/x; meta-disk internal; address {}; }} }}",
                address.replace('"', "")
            );
            assert!(parse_drbd_conf(&conf, conf_origin()).is_err(), "{conf}");
        }
    }
    // Without a keyword the family follows the address, and explicit matching ones are kept.
    let text = "[resource.r.on.a]\nminor = 1\ndisk = \"/dev/x\"\nmeta-disk = \"internal\"\naddress = \"[fd00::1]:7789\"\n\
                [resource.r.on.b]\nminor = 1\ndisk = \"/dev/x\"\nmeta-disk = \"internal\"\naddress = \"ipv6 [fd00::2]:7789\"\n";
    let config = parse_toml(text, toml_origin()).unwrap();
    let hosts = &config.resource("r").unwrap().hosts;
    assert!(
        hosts
            .iter()
            .all(|h| h.address_family == AddressFamily::Ipv6),
        "{hosts:?}"
    );
    assert_dump_round_trips(text).unwrap();
}

fn address() -> impl Strategy<Value = String> {
    let family = prop::sample::select(&["", "ipv4 ", "ipv6 ", "ssocks ", "sdp ", "bogus "][..]);
    let ip = prop::sample::select(&["10.0.0.1", "[fd00::1]", "fd00::1", "[10.0.0.2]", "alice"][..]);
    let port = prop::sample::select(&["7789", "0", "65535", "70000", ""][..]);
    let soup = (family, ip, port).prop_map(|(f, ip, port)| format!("{f}{ip}:{port}"));
    // Mostly well-formed addresses with any family keyword, so the dump round trip runs often.
    let family = prop::sample::select(&["", "ipv4 ", "ipv6 ", "sdp "][..]);
    let ip = prop::sample::select(&["10.0.0.1", "[fd00::1]"][..]);
    let plausible = (family, ip, 1u16..).prop_map(|(f, ip, port)| format!("{f}{ip}:{port}"));
    prop_oneof![3 => plausible, 1 => soup]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "\"C\"",
                "\"A\"",
                "\"40M\"",
                "\"yes\"",
                "true",
                "false",
                "0",
                "7",
                "3389",
                "-1",
                "[\"a\"]",
                "\"x y\"",
                "\"internal\"",
                "\"/dev/x [2]\""
            ][..]
        )
        .prop_map(str::to_string),
        address().prop_map(|a| format!("\"{a}\"")),
    ]
}

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(
        &[
            "protocol",
            "device",
            "minor",
            "disk",
            "meta-disk",
            "flexible-meta-disk",
            "address",
            "resync-rate",
            "al-extents",
            "shared-secret",
            "allow-two-primaries",
            "wfc-timeout",
            "become-primary-on",
            "usage-count",
            "ping-timeout",
            "on-no-data-accessible",
        ][..],
    )
}

fn table() -> impl Strategy<Value = String> {
    prop::sample::select(
        &[
            "global",
            "common.net",
            "common.disk",
            "resource.r",
            "resource.r.net",
            "resource.r.disk",
            "resource.r.startup",
            "resource.r.on.a",
            "resource.r.on.b",
            "resource.r.on.a.volume.0",
            "resource.r.floating.\"10.0.0.1:7789\"",
            "resource.s.on.a",
            "resource.s.on.b",
        ][..],
    )
    .prop_map(str::to_string)
}

/// A TOML text of known tables with known keys and plausible (often wrong) values.
fn toml_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (table(), prop::collection::vec((key(), value()), 0..6)),
        0..8,
    )
    .prop_map(|tables| {
        let mut text = String::new();
        for (name, entries) in tables {
            text.push_str(&format!("[{name}]\n"));
            let mut seen = Vec::new();
            for (k, v) in entries {
                if !seen.contains(&k) {
                    seen.push(k);
                    text.push_str(&format!("{k} = {v}\n"));
                }
            }
        }
        text
    })
}

/// Two hosts with a generated address each: often valid, so the round trip is exercised.
fn two_hosts() -> impl Strategy<Value = String> {
    (address(), address(), 0u32..3, any::<bool>()).prop_map(|(a, b, minor, floating)| {
        let host = |name: &str, addr: &str| {
            if floating {
                format!("[resource.r.floating.\"{addr}\"]\nminor = {minor}\ndisk = \"/dev/x\"\nmeta-disk = \"internal\"\n")
            } else {
                format!("[resource.r.on.{name}]\nminor = {minor}\ndisk = \"/dev/x\"\nmeta-disk = \"internal\"\naddress = \"{addr}\"\n")
            }
        };
        format!("{}{}", host("a", &a), host("b", &b))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn toml_soup_never_panics_and_dumps_to_the_same_model(text in toml_soup()) {
        assert_dump_round_trips(&text)?;
    }

    #[test]
    fn generated_host_addresses_dump_to_the_same_model(text in two_hosts()) {
        assert_dump_round_trips(&text)?;
    }
}
