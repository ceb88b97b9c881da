//! drbdadm-84 as the oracle: for every drbd.conf fixture, `drbdadm-84 -c FILE
//! dump` (the normalised config drbd-utils prints) read back with our parser
//! must give the same model, option by option, as our parser on the file.
//! Our own `dump` output must also be accepted by drbdadm-84 and survive its
//! round trip unchanged.
//!
//! Normalisation of the oracle side: drbdadm-84 prints `cmd-timeout-medium`
//! and `cmd-timeout-long` in `global` although nobody wrote them, so those two
//! are dropped when the fixture does not set them; non-breaking spaces (from
//! web pages, which our lexer treats as blanks) are replaced by spaces before
//! drbdadm reads the text, since its scanner rejects them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_same_model, fixtures_matching};
use rdbd_config::{dump, load, parse_drbd_conf, Config};

const DRBDADM_84: &str = "/lib/drbd/drbdadm-84";

fn drbdadm_dump(path: &Path) -> String {
    assert!(
        Path::new(DRBDADM_84).exists(),
        "{DRBDADM_84} is missing: install drbd-utils (scripts/install-deps.sh)"
    );
    let out = Command::new(DRBDADM_84)
        .arg("-c")
        .arg(path)
        .arg("dump")
        .output()
        .expect("run drbdadm-84");
    assert!(
        out.status.success(),
        "drbdadm-84 -c {} dump failed ({}):\n{}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("drbdadm output is UTF-8")
}

/// The file drbdadm should read: the fixture itself, or a copy without
/// non-breaking spaces (kept next to nothing: such fixtures have no includes).
fn oracle_input(path: &Path, scratch: &Path) -> PathBuf {
    let text = std::fs::read_to_string(path).unwrap();
    if !text.contains('\u{a0}') {
        return path.to_path_buf();
    }
    assert!(
        !text.contains("include"),
        "NBSP fixtures must not include files"
    );
    let copy = scratch.join(path.file_name().unwrap());
    std::fs::write(&copy, text.replace('\u{a0}', " ")).unwrap();
    copy
}

fn normalise_oracle(ours: &Config, oracle: &mut Config) {
    for key in [
        "cmd-timeout-medium",
        "cmd-timeout-long",
        "cmd-timeout-short",
    ] {
        if !ours.global.contains(key) {
            oracle.global.remove(key);
        }
    }
}

fn oracle_fixtures() -> Vec<PathBuf> {
    let files = fixtures_matching(&["seed-", "own-"], "conf");
    assert!(files.len() >= 9, "fixtures missing: {files:?}");
    files
}

#[test]
fn drbdadm_84_dump_gives_our_model_for_every_fixture() {
    let scratch = tempfile::tempdir().unwrap();
    for path in oracle_fixtures() {
        let ours = load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let text = drbdadm_dump(&oracle_input(&path, scratch.path()));
        let mut oracle = parse_drbd_conf(&text, &path).unwrap_or_else(|e| {
            panic!("reading drbdadm's dump of {}: {e}\n{text}", path.display())
        });
        normalise_oracle(&ours, &mut oracle);
        assert_same_model(
            &format!("{} vs drbdadm-84 dump", path.display()),
            &ours,
            &oracle,
        );
    }
}

#[test]
fn our_dump_round_trips_through_us_and_drbdadm_84() {
    let scratch = tempfile::tempdir().unwrap();
    for path in oracle_fixtures() {
        let ours = load(&path).unwrap();
        let text = dump(&ours, None);
        let again = parse_drbd_conf(&text, &path)
            .unwrap_or_else(|e| panic!("reading our dump of {}: {e}\n{text}", path.display()));
        assert_same_model(
            &format!("{}: dump then parse", path.display()),
            &ours,
            &again,
        );

        let dumped = scratch.path().join("dumped.conf");
        std::fs::write(&dumped, &text).unwrap();
        let oracle_text = drbdadm_dump(&dumped);
        let mut oracle = parse_drbd_conf(&oracle_text, &dumped).unwrap();
        normalise_oracle(&ours, &mut oracle);
        assert_same_model(
            &format!("{}: our dump through drbdadm-84", path.display()),
            &ours,
            &oracle,
        );
    }
}

#[test]
fn dump_of_one_resource_includes_inherited_options() {
    let c = load(&common::fixture("own-common-inherit.conf")).unwrap();
    let text = dump(&c, Some("db"));
    assert!(text.starts_with("resource db {"), "{text}");
    assert!(!text.contains("resource web"), "{text}");
    assert!(
        text.contains("shared-secret    \"common secret\";"),
        "{text}"
    );
    assert!(dump(&c, Some("nope")).is_empty());
}
