//! A failure with drbdmeta's exit code and one line of explanation, and the confirmation prompt.

use std::io::{BufRead, Write};

/// Ends the program with `code` after printing `msg` to stderr.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub msg: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Failure {}

/// A failure with exit code `code`.
pub fn fail(code: i32, msg: String) -> Failure {
    Failure { code, msg }
}

/// drbdmeta's `confirmed()`: shows `text`; `--force` confirms, else a line "yes" on stdin.
pub fn confirmed(text: &str, force: bool) -> bool {
    eprintln!("\n{text}");
    if force {
        eprintln!("*** confirmation forced via --force option ***");
        return true;
    }
    eprint!("[need to type 'yes' to confirm] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let ok = std::io::stdin().lock().read_line(&mut line).is_ok()
        && line.trim_end_matches(['\n', '\r']) == "yes";
    eprintln!();
    ok
}
