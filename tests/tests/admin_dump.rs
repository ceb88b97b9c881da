//! `rdbdadm -c FILE dump [RES]`, run as a process, against Debian drbd-utils'
//! `/lib/drbd/drbdadm-84 -c FILE dump` on the same file: every drbd.conf fixture of
//! the config crate (the seeds and the `own-*` files) and configurations written here
//! (8.3 `syncer` dialect, include globs, `common` inheritance, flexible-external and
//! indexed meta-disk, a TOML file whose drbd.conf twin goes to drbdadm).
//!
//! Both outputs are parsed into sets of (section path, option, value) and compared
//! option by option. Normalisation, as drbdadm itself treats the values:
//! - comments are dropped (drbdadm prints `# resource r0 on vm: ignored ...`);
//! - quotes around a value are dropped (`sha1` and `"sha1"` are the same word);
//! - sizes with a unit suffix become numbers in the option's default unit
//!   (`resync-rate 10M` = `resync-rate 10240`, KiB; `sndbuf-size 512k` = 524288 bytes);
//! - drbdadm adds `cmd-timeout-medium 600; cmd-timeout-long 0;` to `global` (its
//!   defaults); they are dropped when the file does not set them.
//!
//! Intentional difference: `rdbdadm dump RES` prints the resource with the options it
//! inherits from `common` folded in (what the daemon will use), where `drbdadm dump RES`
//! prints only what the resource itself says. So `rdbdadm dump RES` is compared with
//! drbdadm's full dump, `common` merged under the resource (the resource's own value
//! wins), and drbdadm's `dump RES` (run in a UTS namespace whose host name is one of the
//! resource's hosts, as drbdadm requires) must be a subset of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use rdbd_tests::bins::bin;
use rdbd_tests::fixture::scratch_dir;
use rdbd_tests::tools::{require, run, stderr, stdout};

const DRBDADM_84: &str = "/lib/drbd/drbdadm-84";

/// (section path, option, value).
type Entry = (Vec<String>, String, String);

/// The options whose bare numbers are in KiB (rates) or bytes (buffers); a suffixed
/// value is converted into that unit.
fn default_unit_bytes(option: &str) -> Option<u64> {
    match option {
        "resync-rate" | "rate" | "c-max-rate" | "c-min-rate" => Some(1024),
        "sndbuf-size" | "rcvbuf-size" | "max-bio-size" => Some(1),
        "size" => Some(512),
        _ => None,
    }
}

fn normalise_value(option: &str, value: &str) -> String {
    let value = value.trim_matches('"');
    let Some(unit) = default_unit_bytes(option) else {
        return value.to_string();
    };
    let (digits, suffix) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let Ok(n) = digits.parse::<u64>() else {
        return value.to_string();
    };
    let factor: u64 = match suffix {
        "" => return n.to_string(),
        "s" => 512,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        _ => return value.to_string(),
    };
    (n * factor / unit).to_string()
}

/// Parses a `dump` output: `NAME ARGS {` opens a section, `}` closes it, everything
/// else is `OPTION VALUE...;`.
fn parse_dump(text: &str) -> BTreeSet<Entry> {
    let mut path: Vec<String> = Vec::new();
    let mut out = BTreeSet::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(head) = line.strip_suffix('{') {
            path.push(head.split_whitespace().collect::<Vec<_>>().join(" "));
            continue;
        }
        if line == "}" {
            assert!(path.pop().is_some(), "unbalanced '}}' in:\n{text}");
            continue;
        }
        let body = line
            .strip_suffix(';')
            .unwrap_or_else(|| panic!("option line without ';': {raw:?} in:\n{text}"));
        let mut words = body.split_whitespace();
        let option = words.next().unwrap().to_string();
        let value = words.collect::<Vec<_>>().join(" ");
        let value = normalise_value(&option, &value);
        out.insert((path.clone(), option, value));
    }
    assert!(path.is_empty(), "unclosed section {path:?} in:\n{text}");
    out
}

/// rdbdadm's dump; `node`: `--node NODE` (`dump RES` needs a node the resource has an
/// `on` section for, as drbdadm's does).
fn rdbdadm_dump(file: &Path, resource: Option<&str>, node: Option<&str>) -> String {
    let mut cmd = Command::new(bin("rdbdadm"));
    if let Some(n) = node {
        cmd.args(["--node", n]);
    }
    let out = run(cmd.arg("-c").arg(file).arg("dump").args(resource));
    assert!(
        out.status.success(),
        "rdbdadm -c {} dump {resource:?}: {}\n{}",
        file.display(),
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// drbdadm-84's dump; `host`: run in a UTS namespace with that host name (for `dump RES`).
fn drbdadm_dump(file: &Path, resource: Option<&str>, host: Option<&str>) -> String {
    assert!(
        Path::new(DRBDADM_84).exists(),
        "{DRBDADM_84} is missing: install drbd-utils (scripts/install-deps.sh)"
    );
    let mut cmd = match host {
        Some(h) => {
            require("unshare");
            let mut c = Command::new("unshare");
            c.args([
                "--uts",
                "sh",
                "-c",
                "hostname \"$0\" && exec \"$@\"",
                h,
                DRBDADM_84,
            ]);
            c
        }
        None => Command::new(DRBDADM_84),
    };
    let out = run(cmd.arg("-c").arg(file).arg("dump").args(resource));
    assert!(
        out.status.success(),
        "drbdadm-84 -c {} dump {resource:?}: {}\n{}",
        file.display(),
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// drbdadm adds its command timeouts to `global`; drop them unless rdbd printed them.
fn drop_added_defaults(theirs: &mut BTreeSet<Entry>, ours: &BTreeSet<Entry>) {
    theirs.retain(|(path, option, _)| {
        !(path == &["global".to_string()]
            && option.starts_with("cmd-timeout-")
            && !ours.iter().any(|(p, o, _)| p == path && o == option))
    });
}

fn describe(set: &BTreeSet<Entry>) -> String {
    set.iter()
        .map(|(p, o, v)| format!("  {} / {o} = {v}", p.join(" / ")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_same(what: &str, ours: &BTreeSet<Entry>, theirs: &BTreeSet<Entry>) {
    let only_ours: BTreeSet<_> = ours.difference(theirs).cloned().collect();
    let only_theirs: BTreeSet<_> = theirs.difference(ours).cloned().collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{what}: options differ\nonly rdbdadm:\n{}\nonly drbdadm-84:\n{}",
        describe(&only_ours),
        describe(&only_theirs)
    );
}

/// The resources of a full dump, with the host names of their `on` sections.
fn resources(set: &BTreeSet<Entry>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, _, _) in set {
        if let Some(name) = path.first().and_then(|p| p.strip_prefix("resource ")) {
            let hosts = out.entry(name.to_string()).or_default();
            if let Some(host) = path.get(1).and_then(|p| p.strip_prefix("on ")) {
                hosts.insert(host.to_string());
            }
        }
    }
    out
}

/// A node name rdbdadm runs `resource` as: its first `on` host, else the `ADDR:PORT`
/// of its first `floating` section (rdbd names a floating host by its address).
fn rdbd_node_of(set: &BTreeSet<Entry>, resource: &str) -> String {
    let head = format!("resource {resource}");
    let sections: Vec<&String> = set
        .iter()
        .filter(|(p, _, _)| p.first() == Some(&head))
        .filter_map(|(p, _, _)| p.get(1))
        .collect();
    sections
        .iter()
        .find_map(|s| s.strip_prefix("on "))
        .or_else(|| {
            sections
                .iter()
                .find(|s| s.starts_with("floating "))
                .and_then(|s| s.split_whitespace().last())
        })
        .unwrap_or_else(|| panic!("resource {resource} has no host section"))
        .to_string()
}

/// The effective options of one resource from a full dump: its own sections plus the
/// `common` options it does not override.
fn effective(full: &BTreeSet<Entry>, resource: &str) -> BTreeSet<Entry> {
    let head = format!("resource {resource}");
    let own: BTreeSet<Entry> = full
        .iter()
        .filter(|(p, _, _)| p.first() == Some(&head))
        .cloned()
        .collect();
    let mut out = own.clone();
    for (path, option, value) in full {
        if path.first().map(String::as_str) != Some("common") {
            continue;
        }
        let mut moved = path.clone();
        moved[0] = head.clone();
        if !own.iter().any(|(p, o, _)| p == &moved && o == option) {
            out.insert((moved, option.clone(), value.clone()));
        }
    }
    out
}

/// Compares the full dump and every resource's dump of `conf` (and of `ours`, read by
/// rdbdadm, when it is a TOML twin).
fn compare(ours_file: &Path, drbdadm_file: &Path) {
    let what = format!("{} vs {}", ours_file.display(), drbdadm_file.display());
    let ours = parse_dump(&rdbdadm_dump(ours_file, None, None));
    let mut theirs = parse_dump(&drbdadm_dump(drbdadm_file, None, None));
    drop_added_defaults(&mut theirs, &ours);
    assert!(!ours.is_empty(), "{what}: rdbdadm dumped nothing");
    assert_same(&format!("{what}: dump"), &ours, &theirs);

    let names = resources(&theirs);
    assert_eq!(
        names.keys().collect::<Vec<_>>(),
        resources(&ours).keys().collect::<Vec<_>>(),
        "{what}: resources"
    );
    for (name, hosts) in names {
        let node = rdbd_node_of(&ours, &name);
        let ours_one = parse_dump(&rdbdadm_dump(ours_file, Some(&name), Some(&node)));
        assert_same(
            &format!("{what}: dump {name} (common folded in)"),
            &ours_one,
            &effective(&theirs, &name),
        );
        if let Some(host) = hosts.iter().next() {
            let theirs_one = parse_dump(&drbdadm_dump(drbdadm_file, Some(&name), Some(host)));
            let missing: BTreeSet<_> = theirs_one.difference(&ours_one).cloned().collect();
            assert!(
                !theirs_one.is_empty() && missing.is_empty(),
                "{what}: drbdadm-84 dump {name} (as {host}) has options rdbdadm's lacks:\n{}",
                describe(&missing)
            );
        }
    }
}

/// A copy of `path` without non-breaking spaces (text from web pages: rdbd's lexer
/// reads them as blanks, drbdadm's scanner rejects them), or `path` itself.
fn for_drbdadm(path: &Path, scratch: &Path) -> PathBuf {
    let text = std::fs::read_to_string(path).unwrap();
    if !text.contains('\u{a0}') {
        return path.to_path_buf();
    }
    let copy = scratch.join(path.file_name().unwrap());
    std::fs::write(&copy, text.replace('\u{a0}', " ")).unwrap();
    copy
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/config/tests/fixtures")
}

#[test]
fn every_fixture_dumps_as_drbdadm_84_does() {
    let scratch = scratch_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            // rdbd-extensions.conf uses rdbd-only keywords (nbd-address) that drbdadm
            // rejects by design; the seeds and own-* files are plain drbd.conf.
            (name.starts_with("seed-") || name.starts_with("own-")) && name.ends_with(".conf")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 9, "fixtures missing: {files:?}");
    for f in &files {
        // A file that only holds `common` (seed-004-global_common) still compares.
        compare(f, &for_drbdadm(f, scratch.path()));
    }
    // The TOML fixtures against their drbd.conf twins.
    for f in &files {
        let toml = f.with_extension("toml");
        if toml.exists() {
            compare(&toml, &for_drbdadm(f, scratch.path()));
        }
    }
}

const HOSTS: &str = "on alice { device /dev/drbd{M}; disk /dev/vg/{R}; address 10.9.0.1:77{M}; meta-disk internal; }\n\
                     on bob { device /dev/drbd{M}; disk /dev/vg/{R}; address 10.9.0.2:77{M}; meta-disk internal; }";

fn hosts(resource: &str, minor: u32) -> String {
    HOSTS
        .replace("{R}", resource)
        .replace("{M}", &format!("{minor:02}"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn syncer_dialect_of_8_3_maps_like_drbdadm_84() {
    let dir = scratch_dir();
    let f = write(
        dir.path(),
        "r83.conf",
        &format!(
            "global {{ usage-count no; }}\n\
             common {{ protocol C; syncer {{ rate 33M; al-extents 1237; verify-alg crc32c; csums-alg sha1; cpu-mask 3; }} }}\n\
             resource r0 {{ protocol A; syncer {{ rate 10240; c-plan-ahead 0; }} {} }}\n\
             resource r1 {{ syncer {{ rate 1G; use-rle yes; }} net {{ sndbuf-size 512k; }} {} }}\n",
            hosts("r0", 0),
            hosts("r1", 1)
        ),
    );
    compare(&f, &f);
    // The mapping itself (not only agreement): rate is a disk option in 8.4.
    let one = parse_dump(&rdbdadm_dump(&f, Some("r1"), Some("alice")));
    let disk = vec!["resource r1".to_string(), "disk".to_string()];
    assert!(
        one.contains(&(disk, "resync-rate".into(), (1u64 << 20).to_string())),
        "{}",
        describe(&one)
    );
}

#[test]
fn include_globs_and_common_inheritance() {
    let dir = scratch_dir();
    let d = dir.path();
    write(
        d,
        "conf.d/global_common.conf",
        "global { usage-count no; }\n\
         common {\n\
           net { protocol C; cram-hmac-alg sha1; shared-secret \"common secret\"; after-sb-0pri discard-least-changes; max-buffers 8000; }\n\
           disk { on-io-error detach; resync-rate 100M; al-extents 3389; }\n\
           startup { wfc-timeout 60; degr-wfc-timeout 120; }\n\
           handlers { split-brain \"/usr/lib/drbd/notify-split-brain.sh root\"; }\n\
         }\n",
    );
    write(
        d,
        "conf.d/a.res",
        &format!(
            "resource ra {{ net {{ protocol A; }} disk {{ resync-rate 20M; }} {} }}\n",
            hosts("ra", 10)
        ),
    );
    write(
        d,
        "conf.d/b.res",
        &format!(
            "resource rb {{ startup {{ wfc-timeout 0; }} handlers {{ fence-peer /bin/true; }} {} }}\n",
            hosts("rb", 11)
        ),
    );
    write(d, "conf.d/ignored.txt", "this is not included\n");
    let f = write(
        d,
        "drbd.conf",
        &format!(
            "include \"{0}/conf.d/global_common.conf\";\ninclude \"{0}/conf.d/*.res\";\n",
            d.display()
        ),
    );
    compare(&f, &f);
    let rb = parse_dump(&rdbdadm_dump(&f, Some("rb"), Some("bob")));
    let startup = vec!["resource rb".to_string(), "startup".to_string()];
    assert!(rb.contains(&(startup.clone(), "wfc-timeout".into(), "0".into())));
    assert!(
        rb.contains(&(startup, "degr-wfc-timeout".into(), "120".into())),
        "inherited from common: {}",
        describe(&rb)
    );
}

#[test]
fn flexible_external_and_indexed_meta_disk() {
    let dir = scratch_dir();
    let f = write(
        dir.path(),
        "meta.conf",
        "global { usage-count no; }\n\
         resource flex {\n\
           on alice { device /dev/drbd30; disk /dev/sdb1; address 10.0.3.1:7830; flexible-meta-disk /dev/sdm1; }\n\
           on bob { device minor 30; disk /dev/sdb1; address 10.0.3.2:7830; meta-disk /dev/sdm1; }\n\
         }\n\
         resource idx {\n\
           on alice { device /dev/drbd31; disk /dev/sdb2; address 10.0.3.1:7831; meta-disk /dev/sdm2 [1]; }\n\
           on bob { device /dev/drbd31; disk /dev/sdb2; address 10.0.3.2:7831; meta-disk /dev/sdm2[7]; }\n\
         }\n",
    );
    compare(&f, &f);
}

#[test]
fn toml_config_dumps_as_its_drbd_conf_twin() {
    let dir = scratch_dir();
    let d = dir.path();
    let conf = write(
        d,
        "twin.conf",
        "global { usage-count no; }\n\
         common { net { protocol C; max-buffers 8000; } disk { resync-rate 40M; c-plan-ahead 0; } }\n\
         resource data {\n\
           net { cram-hmac-alg sha1; shared-secret \"s3cret\"; after-sb-1pri discard-secondary; }\n\
           startup { wfc-timeout 30; }\n\
           on alice { device /dev/drbd0; disk /dev/sdb1; address 10.0.0.1:7788; meta-disk internal; }\n\
           on bob { device /dev/drbd0; disk /dev/sdb1; address 10.0.0.2:7788; meta-disk /dev/sdc1 [2]; }\n\
         }\n",
    );
    let toml = write(
        d,
        "twin.toml",
        r#"[global]
usage-count = "no"

[common.net]
protocol = "C"
max-buffers = 8000

[common.disk]
resync-rate = "40M"
c-plan-ahead = 0

[resource.data.net]
cram-hmac-alg = "sha1"
shared-secret = "s3cret"
after-sb-1pri = "discard-secondary"

[resource.data.startup]
wfc-timeout = 30

[resource.data.on.alice]
device = "/dev/drbd0"
disk = "/dev/sdb1"
address = "10.0.0.1:7788"
meta-disk = "internal"

[resource.data.on.bob]
device = "/dev/drbd0"
disk = "/dev/sdb1"
address = "10.0.0.2:7788"
meta-disk = "/dev/sdc1 [2]"
"#,
    );
    compare(&toml, &conf);
}

#[test]
fn normalisation_is_not_a_blind_spot() {
    // The comparison must see a real difference: a changed value, a missing option.
    let a = parse_dump("common {\n    disk {\n        resync-rate 10M;\n    }\n}\n");
    let b = parse_dump("common {\n    disk {\n        resync-rate 10240;\n    }\n}\n");
    let c = parse_dump("common {\n    disk {\n        resync-rate 10241;\n    }\n}\n");
    assert_eq!(a, b, "10M = 10240 KiB");
    assert_ne!(a, c);
    let e = parse_dump("common {\n    disk {\n    }\n}\n");
    assert!(e.is_empty());
    assert_eq!(normalise_value("sndbuf-size", "512k"), "524288");
    assert_eq!(normalise_value("shared-secret", "\"x y\""), "x y");
}

#[test]
fn unknown_resource_fails_like_drbdadm() {
    let f = fixtures_dir().join("own-common-inherit.conf");
    let out = run(Command::new(bin("rdbdadm"))
        .arg("-c")
        .arg(&f)
        .args(["dump", "nosuch"]));
    // drbdadm-84 -c FILE dump nosuch: "'nosuch' not defined in your config (for this
    // host)." and exit code 1 (E_USAGE).
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nosuch"), "{}", stderr(&out));
}

/// Runs `tool -c FILE dump ARGS...` in a UTS namespace whose host name is `host` (both
/// tools then pick their node from `uname -n`); returns (exit code, stdout, stderr).
fn dump_as_host(tool: &Path, file: &Path, host: &str, args: &[&str]) -> (i32, String, String) {
    require("unshare");
    let out = run(Command::new("unshare")
        .args(["--uts", "sh", "-c", "hostname \"$0\" && exec \"$@\"", host])
        .arg(tool)
        .arg("-c")
        .arg(file)
        .arg("dump")
        .args(args)
        .env_remove("RDBD_NODE")
        .env_remove("__DRBD_NODE__"));
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

/// The resource names a dump prints, in order.
fn dumped_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("resource "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// The `# resource NAME on HOST: [not ]ignored, ...` comments of a dump.
fn ignored_notes(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("# resource "))
        .map(String::from)
        .collect()
}

#[test]
fn dump_of_a_resource_without_an_on_section_for_this_host_fails_like_drbdadm() {
    assert!(Path::new(DRBDADM_84).exists(), "{DRBDADM_84} is missing");
    let dir = scratch_dir();
    let f = write(
        dir.path(),
        "hosts.conf",
        &format!(
            "global {{ usage-count no; }}\n\
             resource r0 {{ {} }}\n\
             resource r2 {{\n\
               on carol {{ device /dev/drbd2; disk /dev/vg/r2; address 127.0.0.1:7702; meta-disk internal; }}\n\
               on dave {{ device /dev/drbd2; disk /dev/vg/r2; address 10.9.0.4:7702; meta-disk internal; }}\n\
             }}\n",
            hosts("r0", 0)
        ),
    );
    // (drbdadm checks that this host's own address is local: carol's is 127.0.0.1.)
    let rdbdadm = bin("rdbdadm");
    let drbdadm = Path::new(DRBDADM_84);
    // r0 has `on alice` and `on bob` only; this host is carol.
    for args in [&["r0"][..], &["r0", "r2"], &["r2", "r0"]] {
        let (our_code, our_out, our_err) = dump_as_host(&rdbdadm, &f, "carol", args);
        let (their_code, their_out, their_err) = dump_as_host(drbdadm, &f, "carol", args);
        assert_eq!(their_code, 1, "drbdadm-84 dump {args:?}: {their_err}");
        assert_eq!(our_code, their_code, "dump {args:?}: {our_err}");
        assert!(
            their_err.contains("'r0' not defined in your config (for this host)"),
            "{their_err}"
        );
        assert!(
            our_err.contains("'r0' not defined in your config (for this host)")
                && our_err.contains("no 'on carol' section"),
            "rdbdadm names what was wrong: {our_err}"
        );
        // Resources named before the bad one are printed, as drbdadm does.
        assert_eq!(
            dumped_names(&our_out),
            dumped_names(&their_out),
            "dump {args:?}"
        );
    }
    // The resource that has `on carol` dumps on both.
    let (our_code, our_out, _) = dump_as_host(&rdbdadm, &f, "carol", &["r2"]);
    let (their_code, their_out, _) = dump_as_host(drbdadm, &f, "carol", &["r2"]);
    assert_eq!((our_code, their_code), (0, 0));
    assert_eq!(dumped_names(&our_out), vec!["r2"]);
    assert_eq!(ignored_notes(&our_out), ignored_notes(&their_out));
    // `dump` and `dump all` print every resource, those of other hosts marked ignored.
    for args in [&[][..], &["all"]] {
        let (our_code, our_out, our_err) = dump_as_host(&rdbdadm, &f, "carol", args);
        let (their_code, their_out, _) = dump_as_host(drbdadm, &f, "carol", args);
        assert_eq!((our_code, their_code), (0, 0), "dump {args:?}: {our_err}");
        assert_eq!(dumped_names(&our_out), dumped_names(&their_out));
        assert_eq!(ignored_notes(&our_out), ignored_notes(&their_out));
        assert!(
            ignored_notes(&our_out)
                .contains(&"# resource r0 on carol: ignored, not stacked".into()),
            "{our_out}"
        );
        let mut ours = parse_dump(&our_out);
        let mut theirs = parse_dump(&their_out);
        drop_added_defaults(&mut theirs, &ours);
        ours.retain(|e| !theirs.contains(e));
        assert!(ours.is_empty(), "only rdbdadm:\n{}", describe(&ours));
    }
    // Choosing the node: rdbdadm --node bob, drbdadm's __DRBD_NODE__=bob.
    let ours = run(Command::new(&rdbdadm)
        .args(["--node", "bob", "-c"])
        .arg(&f)
        .args(["dump", "r0"]));
    let theirs = run(Command::new(drbdadm)
        .env("__DRBD_NODE__", "bob")
        .arg("-c")
        .arg(&f)
        .args(["dump", "r0"]));
    assert!(ours.status.success(), "{}", stderr(&ours));
    assert!(theirs.status.success(), "{}", stderr(&theirs));
    assert_eq!(
        ignored_notes(&stdout(&ours)),
        ignored_notes(&stdout(&theirs))
    );
    let theirs_one = parse_dump(&stdout(&theirs));
    let ours_one = parse_dump(&stdout(&ours));
    assert!(
        !theirs_one.is_empty() && theirs_one.is_subset(&ours_one),
        "only drbdadm-84:\n{}",
        describe(&theirs_one.difference(&ours_one).cloned().collect())
    );
}
