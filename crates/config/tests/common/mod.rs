//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rdbd_config::{Config, Section};

/// The fixture directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `fixtures/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// Fixture files whose names start with one of `prefixes` and end in `.ext`.
pub fn fixtures_matching(prefixes: &[&str], ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            prefixes.iter().any(|pre| name.starts_with(pre)) && name.ends_with(&format!(".{ext}"))
        })
        .collect();
    out.sort();
    out
}

fn flatten_section(out: &mut Vec<String>, prefix: &str, section: &Section) {
    for (name, value) in section.iter() {
        out.push(format!("{prefix}/{name} = {}", value.as_str()));
    }
}

/// The model as sorted `path = value` lines, so two models can be compared
/// option by option with a readable difference.
pub fn flatten(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    flatten_section(&mut out, "global", &config.global);
    let c = &config.common;
    for (name, s) in [
        ("net", &c.net),
        ("disk", &c.disk),
        ("startup", &c.startup),
        ("handlers", &c.handlers),
        ("options", &c.options),
    ] {
        flatten_section(&mut out, &format!("common/{name}"), s);
    }
    for r in &config.resources {
        let p = format!("resource {}", r.name);
        out.push(format!("{p}/protocol = {}", r.protocol));
        for (name, s) in [
            ("net", &r.net),
            ("disk", &r.disk),
            ("startup", &r.startup),
            ("handlers", &r.handlers),
            ("options", &r.options),
        ] {
            flatten_section(&mut out, &format!("{p}/{name}"), s);
        }
        for h in &r.hosts {
            let hp = format!("{p}/on {}", h.name);
            out.push(format!("{hp}/minor = {:?}", h.minor));
            out.push(format!("{hp}/device = {:?}", h.device_path()));
            out.push(format!("{hp}/disk = {:?}", h.disk));
            out.push(format!(
                "{hp}/address = {} {:?}",
                h.address_family, h.address
            ));
            out.push(format!("{hp}/meta-disk = {:?}", h.meta_disk));
            out.push(format!("{hp}/nbd-address = {:?}", h.nbd_address));
            out.push(format!("{hp}/floating = {}", h.floating));
            flatten_section(&mut out, &format!("{hp}/disk"), &h.disk_options);
            flatten_section(&mut out, &format!("{hp}/options"), &h.options);
        }
    }
    out.sort();
    out
}

/// Asserts two models are equal, listing the options that differ.
pub fn assert_same_model(what: &str, left: &Config, right: &Config) {
    let (l, r) = (flatten(left), flatten(right));
    let only_left: Vec<&String> = l.iter().filter(|x| !r.contains(x)).collect();
    let only_right: Vec<&String> = r.iter().filter(|x| !l.contains(x)).collect();
    assert!(
        only_left.is_empty() && only_right.is_empty(),
        "{what}: models differ\n  only in first:  {only_left:#?}\n  only in second: {only_right:#?}"
    );
    assert_eq!(
        left, right,
        "{what}: flattened views agree but models differ"
    );
}
