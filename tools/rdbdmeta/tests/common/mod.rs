//! Helpers to run the real drbdmeta (drbd-utils 9.22) and rdbdmeta on scratch files.
//!
//! drbdmeta is invoked as `drbdmeta --force - v08 FILE KIND ...` (no lock, plain files need
//! --force). It writes /var/lib/drbd/drbd-minor--1.lkbd, which is removed after every call;
//! calls are serialized because that side file is shared.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

static DRBDMETA_LOCK: Mutex<()> = Mutex::new(());
const LKBD: &str = "/var/lib/drbd/drbd-minor--1.lkbd";

/// Output of one tool run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs drbdmeta; panics (failing the test) if it is not installed.
pub fn drbdmeta(file: &Path, kind: &str, cmd: &[&str]) -> Run {
    let _g = DRBDMETA_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("drbdmeta")
        .arg("--force")
        .args(["-", "v08"])
        .arg(file)
        .arg(kind)
        .args(cmd)
        .stdin(Stdio::null())
        .output()
        .expect("drbdmeta (drbd-utils) must be installed for these tests");
    let _ = std::fs::remove_file(LKBD);
    finish(out)
}

/// Runs rdbdmeta with `extra` options before the positionals and `stdin` as input.
pub fn rdbdmeta_in(extra: &[&str], file: &Path, kind: &str, cmd: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdbdmeta"))
        .args(extra)
        .args(["-", "v08"])
        .arg(file)
        .arg(kind)
        .args(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rdbdmeta");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    finish(child.wait_with_output().expect("rdbdmeta output"))
}

/// Runs `rdbdmeta --force - v08 FILE KIND CMD...`.
pub fn rdbdmeta(file: &Path, kind: &str, cmd: &[&str]) -> Run {
    rdbdmeta_in(&["--force"], file, kind, cmd, "")
}

/// Asserts success and returns stdout.
pub fn ok(r: Run, what: &str) -> String {
    assert_eq!(
        r.code, 0,
        "{what} failed: stdout={} stderr={}",
        r.stdout, r.stderr
    );
    r.stdout
}

/// A sparse scratch file of `bytes`.
pub fn scratch(dir: &Path, name: &str, bytes: u64) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).expect("create scratch");
    f.set_len(bytes).expect("size scratch");
    p
}

/// Bytes `[from, to)` of a file.
pub fn region(file: &Path, from: u64, to: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(file).expect("open");
    let mut v = vec![0u8; (to - from) as usize];
    f.read_exact_at(&mut v, from).expect("read region");
    v
}

/// A dump with the banner, the `flags` line (drbd-utils 9.22 prints 0 for v08) and other
/// comments removed, for semantic comparison.
pub fn normalize_dump(text: &str) -> String {
    text.lines()
        .filter(|l| {
            !l.starts_with("# DRBD meta data dump") && !l.trim_start().starts_with("flags ")
        })
        .filter(|l| !(l.starts_with("# 2") || l.contains("> ") && l.starts_with('#') || *l == "#"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Value of a `# key value` or `key value;` line in a dump.
pub fn dump_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| {
            let l = l.trim_start_matches("# ");
            l.strip_prefix(key)
                .map(|v| v.trim().trim_end_matches(';').to_string())
        })
        .unwrap_or_else(|| panic!("no {key} in dump:\n{text}"))
}
