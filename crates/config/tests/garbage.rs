//! Random input never panics either parser; generated valid configs survive
//! dump → parse unchanged.

use std::path::Path;

use proptest::prelude::*;
use rdbd_config::{dump, parse_drbd_conf, parse_toml};

const WORDS: &[&str] = &[
    "global",
    "common",
    "resource",
    "r0",
    "on",
    "alice",
    "bob",
    "floating",
    "net",
    "disk",
    "syncer",
    "startup",
    "handlers",
    "options",
    "device",
    "minor",
    "0",
    "/dev/drbd0",
    "meta-disk",
    "flexible-meta-disk",
    "internal",
    "address",
    "ipv6",
    "10.0.0.1:7789",
    "protocol",
    "C",
    "rate",
    "40M",
    "al-extents",
    "yes",
    "no",
    "include",
    "skip",
    "volume",
    "{",
    "}",
    ";",
    "[",
    "]",
    "\"",
    "#",
    "\n",
    " ",
    "\"x y\"",
    "proxy",
    "become-primary-on",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS), 0..80).prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = parse_drbd_conf(&text, Path::new("/nonexistent/dir/fuzz.conf"));
        let _ = parse_toml(&text, Path::new("fuzz.toml"));
    }

    #[test]
    fn keyword_soup_never_panics_and_valid_soup_round_trips(text in token_soup()) {
        let origin = Path::new("/nonexistent/dir/fuzz.conf");
        if let Ok(config) = parse_drbd_conf(&text, origin) {
            let again = parse_drbd_conf(&dump(&config, None), origin).unwrap();
            prop_assert_eq!(config, again);
        }
    }

    #[test]
    fn generated_configs_round_trip_through_dump(
        protocol in prop::sample::select(&["A", "B", "C"][..]),
        rate_kib in 1u32..4_000_000,
        al in 67u32..6433,
        minor in 0u32..1000,
        port in 1u16..u16::MAX,
        secret in "[a-zA-Z0-9 _.\"\\\\-]{1,40}",
        flushes in any::<bool>(),
    ) {
        let text = format!(
            "resource r {{ protocol {protocol}; disk {{ resync-rate {rate_kib}; al-extents {al}; disk-flushes {}; }}\n\
             net {{ shared-secret \"{}\"; }}\n\
             on a {{ device minor {minor}; disk /dev/x; meta-disk internal; address 10.0.0.1:{port}; }}\n\
             on b {{ device minor {minor}; disk /dev/x; meta-disk /dev/m [{al}]; address 10.0.0.2:{port}; }} }}",
            if flushes { "yes" } else { "no" },
            secret.replace('\\', "\\\\").replace('"', "\\\""),
        );
        let c = parse_drbd_conf(&text, Path::new("g.conf")).unwrap();
        let r = c.resource("r").unwrap();
        prop_assert_eq!(r.net.get("shared-secret"), Some(secret.as_str()));
        prop_assert_eq!(r.settings().resync_rate_kib, rate_kib);
        let again = parse_drbd_conf(&dump(&c, None), Path::new("g.conf")).unwrap();
        prop_assert_eq!(c, again);
    }
}
