//! `rdbdadm help`, `rdbdadm help COMMAND`, `rdbdadm COMMAND --help` and usage errors,
//! run as processes, against what Debian drbd-utils' `/lib/drbd/drbdadm-84` lists:
//! every drbdadm 8.4 command rdbd has appears with its options (`drbdadm-84 COMMAND
//! --help`'s "OPTIONS FOR"), and an unknown command or option exits with drbdadm's
//! usage code (1) and one line on stderr.

use std::process::{Command, Output};

use rdbd_tests::bins::bin;
use rdbd_tests::tools::{run, stderr, stdout};

const DRBDADM_84: &str = "/lib/drbd/drbdadm-84";

/// drbdadm commands rdbd has no equivalent of (kernel-module tuning and XML output).
const NOT_IN_RDBD: &[&str] = &[
    "disk-options",
    "net-options",
    "resource-options",
    "adjust-with-progress",
    "wait-con-int",
    "dump-xml",
    "hidden-commands",
];

fn rdbdadm(args: &[&str]) -> Output {
    run(Command::new(bin("rdbdadm")).args(args))
}

fn drbdadm(args: &[&str]) -> String {
    assert!(
        std::path::Path::new(DRBDADM_84).exists(),
        "{DRBDADM_84} is missing: install drbd-utils (scripts/install-deps.sh)"
    );
    stdout(&run(Command::new(DRBDADM_84).args(args)))
}

/// The words of drbdadm-84's COMMANDS section.
fn drbdadm_commands() -> Vec<String> {
    let text = drbdadm(&["help"]);
    let section = text
        .split("COMMANDS:")
        .nth(1)
        .expect("COMMANDS: in drbdadm-84 help");
    let section = section.split("\n\n").next().unwrap();
    section.split_whitespace().map(String::from).collect()
}

/// The option names of drbdadm-84's "OPTIONS FOR COMMAND" (`--force[=...]` -> `--force`).
fn drbdadm_options(command: &str) -> Vec<String> {
    let text = drbdadm(&[command, "--help"]);
    let Some(section) = text.split(&format!("OPTIONS FOR {command}:")).nth(1) else {
        return Vec::new();
    };
    section
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  --"))
        .map(|l| l.trim().split(['[', '=']).next().unwrap().to_string())
        .collect()
}

#[test]
fn help_lists_every_drbdadm_84_command_rdbd_has() {
    let out = rdbdadm(&["help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let commands = drbdadm_commands();
    assert!(commands.len() > 25, "{commands:?}");
    for c in commands
        .iter()
        .filter(|c| !NOT_IN_RDBD.contains(&c.as_str()))
    {
        assert!(
            text.lines().any(|l| l.split_whitespace().next() == Some(c)),
            "'{c}' missing from rdbdadm help:\n{text}"
        );
    }
    assert!(text.contains("USAGE: rdbdadm"), "{text}");
    // `--help` before the command and `help` give the same text.
    assert_eq!(stdout(&rdbdadm(&["--help"])), text);
}

#[test]
fn command_help_shows_drbdadm_84_options() {
    for command in [
        "primary",
        "detach",
        "disconnect",
        "new-current-uuid",
        "connect",
    ] {
        let out = rdbdadm(&[command, "--help"]);
        assert!(out.status.success(), "{command}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.starts_with(&format!("\nUSAGE: rdbdadm {command} ")),
            "{text}"
        );
        assert_eq!(
            stdout(&rdbdadm(&["help", command])),
            text,
            "help {command} = {command} --help"
        );
        let ours = text
            .split(&format!("OPTIONS FOR {command}:"))
            .nth(1)
            .unwrap_or_else(|| panic!("no OPTIONS FOR {command}:\n{text}"));
        // drbdadm's options that rdbd implements for this command.
        let theirs = drbdadm_options(command);
        let implemented: &[&str] = match command {
            "connect" => &["--discard-my-data"],
            _ => &[],
        };
        for option in &theirs {
            if command == "connect" && !implemented.contains(&option.as_str()) {
                continue; // net options belong in the config file for rdbd.
            }
            assert!(
                ours.contains(&format!("  {option} ")),
                "{command}: drbdadm-84's {option} missing:\n{text}"
            );
        }
    }
    // The commands other helpers add this session have help already.
    for command in [
        "attach",
        "resize",
        "adjust",
        "invalidate-remote",
        "verify",
        "pause-sync",
        "resume-sync",
    ] {
        let out = rdbdadm(&[command, "--help"]);
        assert!(out.status.success(), "{command}: {}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("USAGE: rdbdadm {command} ")),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn usage_errors_exit_like_drbdadm() {
    let their_code = run(Command::new(DRBDADM_84).args(["bogus", "r0"]))
        .status
        .code();
    for args in [
        &["bogus", "r0"][..],
        &["bogus", "--help"],
        &["help", "bogus"],
    ] {
        let out = rdbdadm(args);
        assert_eq!(out.status.code(), their_code, "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.contains("Unknown command 'bogus'"), "{err}");
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    // No command: the usage on stdout, drbdadm's exit code.
    let theirs = run(&mut Command::new(DRBDADM_84));
    let ours = rdbdadm(&[]);
    assert_eq!(ours.status.code(), theirs.status.code());
    assert!(
        stdout(&ours).contains("USAGE: rdbdadm"),
        "{}",
        stdout(&ours)
    );
    // An unknown option before the command.
    let theirs = run(Command::new(DRBDADM_84).args(["--bogus", "up", "r0"]));
    let ours = rdbdadm(&["--bogus", "up", "r0"]);
    assert_eq!(ours.status.code(), theirs.status.code());
    assert_eq!(stderr(&ours).lines().count(), 1, "{}", stderr(&ours));
}
