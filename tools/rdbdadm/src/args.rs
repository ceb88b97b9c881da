//! drbdadm's command-line syntax:
//! `rdbdadm [-c FILE] [--node N] [--run-dir D] [-d] [-- PASS-THROUGH-OPTIONS] COMMAND [OPTIONS] RESOURCE...`.
//!
//! Options after `--` and before the command are handed to the command as drbdadm
//! hands them to drbdsetup (`rdbdadm -- --overwrite-data-of-peer primary data`).

use std::path::PathBuf;

use rdbd_node::options::{host_name, NodeOptions, DEFAULT_CONFIG, DEFAULT_RUN_DIR};

/// Command options that take a value as the next argument.
const OPTIONS_WITH_VALUE: &[&str] = &[
    "--al-stripes",
    "--al-stripe-size-kB",
    "--peer-max-bio-size",
    "--timeout",
    "--start",
    "--stop",
    "--size",
];

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Config, node and run directory.
    pub node: NodeOptions,
    /// `-d/--dry-run`: print what would be done.
    pub dry_run: bool,
    /// The command (`up`, `primary`, ...).
    pub command: String,
    /// Options given after `--` or after the command (`--force`, `--verbose`, ...).
    pub options: Vec<String>,
    /// Resource names (or `all`).
    pub resources: Vec<String>,
}

impl Invocation {
    /// True when `--name` was given (either before or after the command).
    pub fn has(&self, name: &str) -> bool {
        self.options.iter().any(|o| o == name)
    }
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Invocation, String> {
    let env = |k: &str| std::env::var(k).ok();
    let mut config = env("RDBD_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let mut node = env("RDBD_NODE");
    let mut run_dir = env("RDBD_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR));
    let mut dry_run = false;
    let mut options = Vec::new();
    let mut iter = args.iter().peekable();
    let mut pass_through = false;
    let command = loop {
        let Some(arg) = iter.next() else {
            return Err("no command given (try 'rdbdadm help')".into());
        };
        let value = |iter: &mut std::iter::Peekable<std::slice::Iter<'_, String>>, name: &str| {
            iter.next()
                .cloned()
                .ok_or_else(|| format!("option {name} needs a value"))
        };
        match arg.as_str() {
            "--" => pass_through = true,
            a if pass_through && a.starts_with('-') => options.push(a.to_string()),
            "-c" | "--config" => config = PathBuf::from(value(&mut iter, arg)?),
            "--node" => node = Some(value(&mut iter, arg)?),
            "--run-dir" => run_dir = PathBuf::from(value(&mut iter, arg)?),
            "-d" | "--dry-run" => dry_run = true,
            "-h" | "--help" => break "help".to_string(),
            a if a.starts_with("--config=") => config = PathBuf::from(&a["--config=".len()..]),
            a if a.starts_with("--node=") => node = Some(a["--node=".len()..].to_string()),
            a if a.starts_with("--run-dir=") => run_dir = PathBuf::from(&a["--run-dir=".len()..]),
            a if a.starts_with('-') => {
                return Err(format!("unknown option '{a}' before the command"))
            }
            a => break a.to_string(),
        }
    };
    let mut resources = Vec::new();
    while let Some(arg) = iter.next() {
        if arg.starts_with('-') {
            options.push(arg.clone());
            if OPTIONS_WITH_VALUE.contains(&arg.as_str()) {
                options.push(
                    iter.next()
                        .cloned()
                        .ok_or_else(|| format!("option {arg} needs a value"))?,
                );
            }
        } else {
            resources.push(arg.clone());
        }
    }
    Ok(Invocation {
        node: NodeOptions {
            config_path: config,
            node_name: node.unwrap_or_else(host_name),
            run_dir,
        },
        dry_run,
        command,
        options,
        resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Invocation {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn drbdadm_forms() {
        let i = p("-c /x.conf --node alice -- --overwrite-data-of-peer primary data");
        assert_eq!(i.command, "primary");
        assert_eq!(i.resources, vec!["data"]);
        assert!(i.has("--overwrite-data-of-peer"));
        assert_eq!(i.node.node_name, "alice");
        assert_eq!(i.node.config_path, PathBuf::from("/x.conf"));

        let i = p("primary --force r0");
        assert!(i.has("--force"));
        assert_eq!(i.resources, vec!["r0"]);

        let i = p("create-md --force --al-stripes 2 --al-stripe-size-kB 64 r0");
        assert_eq!(i.resources, vec!["r0"]);
        assert_eq!(
            i.options,
            vec!["--force", "--al-stripes", "2", "--al-stripe-size-kB", "64"]
        );

        let i = p("-- --discard-my-data connect data");
        assert_eq!(i.command, "connect");
        assert!(i.has("--discard-my-data"));

        assert!(parse(&["--bogus".to_string(), "up".to_string()]).is_err());
        assert!(parse(&[]).is_err());
    }
}
