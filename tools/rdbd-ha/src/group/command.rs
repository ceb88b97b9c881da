//! Running an external command with a timeout: the command gets its own process group,
//! which is killed (SIGKILL) when the timeout passes.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The most output kept from one command, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// Exited with this code (signals map to 128 + signal).
    Exit {
        /// The code.
        code: i32,
        /// Standard output (bounded).
        stdout: String,
        /// Standard error (bounded).
        stderr: String,
    },
    /// Killed after the timeout.
    TimedOut,
    /// Could not be started.
    SpawnFailed(String),
}

impl Finished {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, Finished::Exit { code: 0, .. })
    }

    /// A one-line description for logs.
    pub fn describe(&self) -> String {
        match self {
            Finished::Exit {
                code,
                stdout,
                stderr,
            } => {
                let text = format!("{} {}", stderr.trim(), stdout.trim());
                let text = text.trim();
                let short: String = text.chars().take(300).collect();
                format!(
                    "exit {code}{}{short}",
                    if short.is_empty() { "" } else { ": " }
                )
            }
            Finished::TimedOut => "timed out (killed)".into(),
            Finished::SpawnFailed(e) => format!("could not start: {e}"),
        }
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if buf.len() < MAX_OUTPUT_BYTES {
                        let room = MAX_OUTPUT_BYTES - buf.len();
                        buf.extend_from_slice(&chunk[..n.min(room)]);
                    }
                }
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `argv` (program first) with extra environment, within `timeout`.
pub fn run(argv: &[String], env: &[(String, String)], timeout: Duration) -> Finished {
    let Some((program, args)) = argv.split_first() else {
        return Finished::SpawnFailed("empty command".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Finished::SpawnFailed(format!("{program}: {e}")),
    };
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() >= timeout => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let Some(status) = status else {
        let pgid = child.id() as i32;
        // SAFETY: kill(2) on the process group we created for this child.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
        // Readers end when every holder of the pipes is gone.
        return Finished::TimedOut;
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    // A daemonizing grandchild may keep the pipes open: do not wait for it forever.
    let collect = |h: Option<std::thread::JoinHandle<String>>| {
        let Some(h) = h else { return String::new() };
        let wait_from = Instant::now();
        while !h.is_finished() && wait_from.elapsed() < Duration::from_millis(500) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            h.join().unwrap_or_default()
        } else {
            String::from("(output still open: a background process holds it)")
        }
    };
    Finished::Exit {
        code,
        stdout: collect(out),
        stderr: collect(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn exit_codes_and_output() {
        let f = run(
            &sh("echo out; echo err >&2; exit 3"),
            &[],
            Duration::from_secs(5),
        );
        assert_eq!(
            f,
            Finished::Exit {
                code: 3,
                stdout: "out\n".into(),
                stderr: "err\n".into()
            }
        );
        assert!(run(&sh("exit 0"), &[], Duration::from_secs(5)).success());
        let f = run(
            &sh("echo $X"),
            &[("X".into(), "y".into())],
            Duration::from_secs(5),
        );
        assert!(matches!(f, Finished::Exit { stdout, .. } if stdout == "y\n"));
        assert!(matches!(
            run(&["/nonexistent/x".into()], &[], Duration::from_secs(1)),
            Finished::SpawnFailed(_)
        ));
    }

    #[test]
    fn timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let start = Instant::now();
        let f = run(
            &sh(&format!("(sleep 1; touch {}) & sleep 30", marker.display())),
            &[],
            Duration::from_millis(300),
        );
        assert_eq!(f, Finished::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(1200));
        assert!(
            !marker.exists(),
            "the background child was killed with the group"
        );
    }
}
