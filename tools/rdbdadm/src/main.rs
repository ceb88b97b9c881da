//! `rdbdadm`: drbdadm for rdbd. Reads the same drbd.conf (or TOML), takes the same
//! commands and arguments, and talks to the node's `rdbd` daemon over its control
//! socket (starting the daemon on `up`, as drbdadm loads the module).

mod args;
mod commands;

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let invocation = match args::parse(&argv) {
        Ok(i) => i,
        Err(message) => {
            eprintln!("rdbdadm: {message}");
            return ExitCode::from(rdbd_control::exit_code::USAGE as u8);
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
