//! Running external tools with their output captured.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `cmd`, panicking with its stdout and stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd` and returns its output whatever the exit status.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// True when `program` is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Panics with an install hint unless `program` is on PATH.
pub fn require(program: &str) {
    assert!(
        have(program),
        "{program} is not installed: run scripts/install-deps.sh"
    );
}

/// SHA-256 of the first `len` bytes of a file, as hex.
pub fn sha256_prefix(path: &Path, len: u64) -> String {
    let out = run_ok(Command::new("sh").arg("-c").arg(format!(
        "head -c {len} '{}' | sha256sum | cut -c1-64",
        path.display()
    )));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Text of a command's stdout.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Text of a command's stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local_addr")
        .port()
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local_addr")
        .port()
}

/// The number right after `key` at its first occurrence in `text`, thousands
/// separators allowed (`8,192` -> 8192).
pub fn number_after(text: &str, key: &str) -> Option<u64> {
    parse_number(&text[text.find(key)? + key.len()..])
}

/// As [`number_after`], at the last occurrence of `key`.
pub fn last_number_after(text: &str, key: &str) -> Option<u64> {
    parse_number(&text[text.rfind(key)? + key.len()..])
}

fn parse_number(rest: &str) -> Option<u64> {
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    digits.parse().ok()
}

/// Debian's python3, which has python3-libnbd (a pyenv python may come first on PATH).
pub const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// A python3-libnbd client that connects to `uri` and holds the export open until its
/// stdin closes or it is killed.
pub fn hold_open(uri: &str) -> std::process::Child {
    use std::io::BufRead;
    use std::process::Stdio;
    let script = "import nbd, sys\nh = nbd.NBD()\nh.connect_uri(sys.argv[1])\nprint('ready', flush=True)\nsys.stdin.read()\n";
    let mut child = Command::new(DEBIAN_PYTHON)
        .arg("-c")
        .arg(script)
        .arg(uri)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("client output");
    assert_eq!(
        line.trim(),
        "ready",
        "python3-libnbd client did not connect"
    );
    child
}

/// `drbdmeta --force - v08 FILE internal dump-md` (the real drbdmeta reading rdbd's
/// meta-data), which must succeed; its output.
pub fn drbdmeta_dump_md(file: &Path) -> String {
    let out = run(Command::new("drbdmeta")
        .args(["--force", "-", "v08"])
        .arg(file)
        .args(["internal", "dump-md"]));
    // drbdmeta's lock file for the pseudo minor "-".
    let _ = std::fs::remove_file("/var/lib/drbd/drbd-minor--1.lkbd");
    assert!(
        out.status.success(),
        "drbdmeta must read the meta-data of {}: {}",
        file.display(),
        stderr(&out)
    );
    stdout(&out)
}

/// `la-size-sect` of a drbdmeta dump.
pub fn la_size_sect(dump: &str) -> u64 {
    dump.lines()
        .find_map(|l| l.trim().strip_prefix("la-size-sect "))
        .and_then(|v| v.trim_end_matches(';').trim().parse().ok())
        .unwrap_or_else(|| panic!("no la-size-sect in:\n{dump}"))
}
