#![no_main]
//! Fuzzes both configuration parsers: any bytes must give a config or a
//! ConfigError, never a panic; a config that parses must survive dump → parse.
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory that does not exist, so `include` statements find nothing.
    let origin = Path::new("/nonexistent/rdbd-fuzz/drbd.conf");
    if let Ok(config) = rdbd_config::parse_drbd_conf(text, origin) {
        let dumped = rdbd_config::dump(&config, None);
        let again = rdbd_config::parse_drbd_conf(&dumped, origin)
            .expect("dump output of a valid config must parse");
        assert_eq!(config, again, "dump changed the model");
    }
    let _ = rdbd_config::parse_toml(text, Path::new("fuzz.toml"));
});
