#![no_main]
//! Fuzzes the TOML configuration parser on arbitrary UTF-8: it must return a config or a
//! ConfigError, never panic; a config that parses must dump as drbd.conf text that parses back
//! to the same model (both formats describe one model).
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = rdbd_config::parse_toml(text, Path::new("/nonexistent/rdbd-fuzz/r.toml"))
    else {
        return;
    };
    let dumped = rdbd_config::dump(&config, None);
    let again =
        rdbd_config::parse_drbd_conf(&dumped, Path::new("/nonexistent/rdbd-fuzz/drbd.conf"))
            .unwrap_or_else(|e| panic!("dump of a TOML config does not parse: {e}\n{dumped}"));
    assert_eq!(config, again, "TOML model changed through dump → drbd.conf");
    for resource in &config.resources {
        let _ = rdbd_config::dump(&config, Some(&resource.name));
    }
});
