//! `rdbdadm`: drbdadm for rdbd. Reads the same drbd.conf (or TOML), takes the same
//! commands and arguments, and talks to the node's `rdbd` daemon over its control
//! socket (starting the daemon on `up`, as drbdadm loads the module).

mod args;
mod commands;
mod help;
mod lifecycle;

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() {
        // As drbdadm: the usage on stdout, and its usage exit code.
        print!("{}", help::overview());
        return ExitCode::from(help::USAGE_EXIT as u8);
    }
    let invocation = match args::parse(&argv) {
        Ok(i) => i,
        Err(message) => {
            eprintln!("rdbdadm: {message}");
            return ExitCode::from(help::USAGE_EXIT as u8);
        }
    };
    match commands::run(&invocation) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("{}", failure.message);
            }
            ExitCode::from(u8::try_from(failure.exit_code).unwrap_or(1))
        }
    }
}
