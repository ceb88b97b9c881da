//! `rdbdadm help` and `rdbdadm COMMAND --help`: every command with its arguments and
//! options, in the order and with the options drbdadm 8.4's usage lists
//! (`drbdadm-84 help`, `drbdadm-84 COMMAND --help`), plus rdbd's own commands
//! (`status`, `nbd-uri`, `wait-sync`, `events2`, `shutdown`, `new-current-uuid`).
//!
//! An unknown command is a usage error: one line on stderr and drbdadm's exit code
//! for it ([`USAGE_EXIT`]).

use std::fmt::Write;

/// drbdadm's exit code for a wrong command line (its `E_USAGE`): an unknown command
/// (`drbdadm-84 bogus r0`), an unknown option, no command at all all exit 1.
pub const USAGE_EXIT: i32 = 1;

/// One command's help entry.
#[derive(Debug, Clone, Copy)]
pub struct CommandHelp {
    /// The command word.
    pub name: &'static str,
    /// What follows the options (`{all|RESOURCE...}` for most).
    pub args: &'static str,
    /// One line saying what it does.
    pub summary: &'static str,
    /// `(option, meaning)` pairs; option spelled as typed (`--force`, `--timeout S`).
    pub options: &'static [(&'static str, &'static str)],
}

const RES: &str = "{all|RESOURCE...}";

const fn cmd(
    name: &'static str,
    summary: &'static str,
    options: &'static [(&'static str, &'static str)],
) -> CommandHelp {
    CommandHelp {
        name,
        args: RES,
        summary,
        options,
    }
}

/// Every command, in drbdadm 8.4's order, rdbd's additions last.
pub const COMMANDS: &[CommandHelp] = &[
    cmd(
        "attach",
        "attach the backing disk (and its meta-data) to a resource that is up",
        &[],
    ),
    cmd(
        "detach",
        "detach the backing disk (Diskless; I/O goes to the peer)",
        &[("--force", "detach even while I/O to the disk is pending")],
    ),
    cmd(
        "connect",
        "connect to the peer (StandAlone -> WFConnection)",
        &[(
            "--discard-my-data",
            "this node's data loses the split-brain resolution (also as '-- --discard-my-data')",
        )],
    ),
    cmd(
        "disconnect",
        "drop the connection to the peer (StandAlone)",
        &[("--force", "accepted for drbdadm compatibility")],
    ),
    cmd(
        "up",
        "attach the disk and start the resource (starts the rdbd daemon if needed)",
        &[],
    ),
    cmd("down", "stop the resource (its NBD export goes away)", &[]),
    cmd(
        "primary",
        "promote to Primary",
        &[
            ("--force", "promote even without UpToDate data"),
            (
                "--overwrite-data-of-peer",
                "as --force (8.3 spelling, '-- --overwrite-data-of-peer primary RES')",
            ),
        ],
    ),
    cmd(
        "secondary",
        "demote to Secondary (fails while an NBD client has the device open)",
        &[],
    ),
    cmd(
        "invalidate",
        "mark the local data out of sync; it is resynced from the peer",
        &[],
    ),
    cmd(
        "invalidate-remote",
        "mark the peer's data out of sync; it is resynced from this node",
        &[],
    ),
    cmd(
        "outdate",
        "mark the local data Outdated (down: in the meta-data)",
        &[],
    ),
    cmd(
        "resize",
        "grow (or shrink) the device to the backing disks' size",
        &[
            (
                "--size SIZE",
                "the new size (default: the largest both disks allow)",
            ),
            (
                "--assume-peer-has-space",
                "resize even if the peer is not connected",
            ),
            ("--assume-clean", "the new area needs no resync"),
            (
                "--force",
                "confirm a shrink (--size below the current size; rdbd's addition)",
            ),
        ],
    ),
    cmd(
        "verify",
        "online verify against the peer (the verify-alg of the net section)",
        &[
            ("--start SECTOR", "first sector to verify"),
            ("--stop SECTOR", "sector after the last one to verify"),
        ],
    ),
    cmd("pause-sync", "pause the resynchronization", &[]),
    cmd(
        "resume-io",
        "end an I/O freeze of fencing (a failed fence-peer handler)",
        &[],
    ),
    cmd("resume-sync", "resume a paused resynchronization", &[]),
    cmd(
        "adjust",
        "make the running resource match the configuration file",
        &[],
    ),
    cmd(
        "wait-connect",
        "wait until connected to the peer",
        &[(
            "--timeout S",
            "give up after S seconds (default: startup wfc-timeout; 0: forever)",
        )],
    ),
    cmd("role", "print the roles: local/peer", &[]),
    cmd("cstate", "print the connection state", &[]),
    cmd("dstate", "print the disk states: local/peer", &[]),
    cmd(
        "dump",
        "print the normalized configuration (of RESOURCE, or all)",
        &[],
    ),
    cmd(
        "create-md",
        "write new meta-data (rdbdmeta)",
        &[
            ("--force", "overwrite existing meta-data without asking"),
            ("--al-stripes N", "activity log stripes"),
            ("--al-stripe-size-kB K", "activity log stripe size in KiB"),
        ],
    ),
    cmd("show-gi", "explain the data generation identifiers", &[]),
    cmd("get-gi", "print the data generation identifiers", &[]),
    cmd(
        "dump-md",
        "print the meta-data in drbdmeta's text format (resource down)",
        &[],
    ),
    cmd("wipe-md", "destroy the meta-data (resource down)", &[]),
    cmd(
        "apply-al",
        "apply the activity log to the bitmap (resource down)",
        &[],
    ),
    cmd(
        "new-current-uuid",
        "start a new data generation",
        &[(
            "--clear-bitmap",
            "skip the initial sync (both sides hold the same, e.g. empty, data)",
        )],
    ),
    cmd(
        "status",
        "DRBD 9 style status (RESOURCE, or all)",
        &[
            ("--verbose", "add volume, minor and NBD URI"),
            ("--statistics", "add sizes and I/O counters"),
        ],
    ),
    cmd("nbd-uri", "print the NBD URI of the resource's export", &[]),
    cmd(
        "wait-sync",
        "wait until connected and in sync",
        &[(
            "--timeout S",
            "give up after S seconds (default: startup wfc-timeout; 0: forever)",
        )],
    ),
    cmd(
        "events2",
        "drbdsetup events2 lines: the state, then every change",
        &[("--now", "print the state and exit")],
    ),
    CommandHelp {
        name: "shutdown",
        args: "",
        summary: "stop this node's rdbd daemon (every resource must be down or downable)",
        options: &[],
    },
    CommandHelp {
        name: "help",
        args: "[COMMAND]",
        summary: "this text, or one command's",
        options: &[],
    },
];

const GLOBAL_OPTIONS: &str = "\
GENERAL OPTIONS:
  --config FILE, -c FILE   configuration (drbd.conf syntax or TOML; env RDBD_CONFIG,
                           default /etc/rdbd/rdbd.conf)
  --node NAME              this node's 'on' section (env RDBD_NODE, default: the host name)
  --run-dir DIR            the daemon's run directory (env RDBD_RUN_DIR, default /run/rdbd)
  --dry-run, -d            print what would be done
  --help, -h               this text
  -- OPTIONS               options handed to the command, as drbdadm hands them to
                           drbdsetup ('rdbdadm -- --overwrite-data-of-peer primary r0')
";

/// The entry for `name`, if it is a command.
pub fn find(name: &str) -> Option<&'static CommandHelp> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// `rdbdadm help`: usage, general options, and every command with its options.
pub fn overview() -> String {
    let mut out = String::from(
        "\nUSAGE: rdbdadm [GENERAL OPTION...] COMMAND [OPTION...] {all|RESOURCE...}\n\n",
    );
    out.push_str(GLOBAL_OPTIONS);
    out.push_str("\nCOMMANDS:\n");
    for c in COMMANDS {
        let _ = writeln!(out, "  {:<19} {}", c.name, c.summary);
        for (option, meaning) in c.options {
            let _ = writeln!(out, "      {option:<25} {meaning}");
        }
    }
    out.push_str("\n'rdbdadm COMMAND --help' shows one command.\n");
    out
}

/// `rdbdadm COMMAND --help`: the command's usage, its options, the general options.
pub fn command_usage(c: &CommandHelp) -> String {
    let mut out = format!("\nUSAGE: rdbdadm {}", c.name);
    if !c.options.is_empty() {
        out.push_str(" [OPTION...]");
    }
    if !c.args.is_empty() {
        let _ = write!(out, " {}", c.args);
    }
    let _ = write!(out, "\n\n  {}\n\n", c.summary);
    if !c.options.is_empty() {
        let _ = writeln!(out, "OPTIONS FOR {}:", c.name);
        for (option, meaning) in c.options {
            let _ = writeln!(out, "  {option:<25} {meaning}");
        }
        out.push('\n');
    }
    out.push_str(GLOBAL_OPTIONS);
    out
}

/// The one-line error for an unknown command (drbdadm: `Unknown command 'x'`).
pub fn unknown_command(name: &str) -> String {
    format!("rdbdadm: Unknown command '{name}' (try 'rdbdadm help')")
}

/// The text `rdbdadm help [COMMAND]` or `rdbdadm COMMAND --help` prints, or the error
/// for an unknown command.
pub fn text_for(command: Option<&str>) -> Result<String, String> {
    match command {
        None | Some("help") => Ok(overview()),
        Some(name) => find(name)
            .map(command_usage)
            .ok_or_else(|| unknown_command(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commands `drbdadm-84 help` lists (drbd-utils 9.22), minus the ones rdbd has
    /// no equivalent for (disk-options, net-options, resource-options,
    /// adjust-with-progress, wait-con-int, dump-xml, hidden-commands).
    const DRBDADM_84: &[&str] = &[
        "attach",
        "status",
        "detach",
        "connect",
        "disconnect",
        "up",
        "down",
        "primary",
        "secondary",
        "invalidate",
        "invalidate-remote",
        "outdate",
        "resize",
        "verify",
        "pause-sync",
        "resume-io",
        "resume-sync",
        "adjust",
        "wait-connect",
        "role",
        "cstate",
        "dstate",
        "dump",
        "create-md",
        "show-gi",
        "get-gi",
        "dump-md",
        "wipe-md",
        "apply-al",
    ];

    #[test]
    fn every_drbdadm_command_has_help() {
        let text = overview();
        for name in DRBDADM_84 {
            let c = find(name).unwrap_or_else(|| panic!("no help for {name}"));
            assert!(
                text.contains(&format!("  {name} ")),
                "{name} in the overview"
            );
            let usage = command_usage(c);
            assert!(
                usage.starts_with(&format!("\nUSAGE: rdbdadm {name} ")),
                "{usage}"
            );
        }
    }

    #[test]
    fn options_as_drbdadm_lists_them() {
        let options = |n: &str| -> Vec<&str> {
            find(n)
                .unwrap()
                .options
                .iter()
                .map(|(o, _)| o.split(' ').next().unwrap())
                .collect()
        };
        // `drbdadm-84 primary --help`: OPTIONS FOR primary: --force.
        assert!(options("primary").contains(&"--force"));
        assert_eq!(options("detach"), vec!["--force"]);
        assert!(options("connect").contains(&"--discard-my-data"));
        assert_eq!(options("new-current-uuid"), vec!["--clear-bitmap"]);
        let usage = command_usage(find("primary").unwrap());
        assert!(usage.contains("OPTIONS FOR primary:\n  --force"), "{usage}");
        assert!(usage.contains("--config FILE, -c FILE"), "{usage}");
    }

    #[test]
    fn names_are_unique_and_unknown_is_one_line() {
        for (i, c) in COMMANDS.iter().enumerate() {
            assert!(
                COMMANDS[i + 1..].iter().all(|d| d.name != c.name),
                "{} twice",
                c.name
            );
        }
        let e = text_for(Some("bogus")).unwrap_err();
        assert_eq!(e.lines().count(), 1);
        assert!(e.contains("Unknown command 'bogus'"), "{e}");
        assert_eq!(text_for(None).unwrap(), text_for(Some("help")).unwrap());
    }
}
