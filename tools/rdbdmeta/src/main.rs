//! rdbdmeta: a drbdmeta-compatible tool for DRBD v08 meta-data on files and block devices.
//!
//! `rdbdmeta [--force] MINOR|- v08 DEVICE internal|flex-external|INDEX COMMAND [ARGS]`.
//! The minor is accepted for compatibility only: no lock is taken and no kernel is asked.
//! Plain files work without `--force`. Exit codes follow drbdmeta (1 failure, 5 outdate of
//! inconsistent data, 10 bad arguments/input, 20 usage or open failure).

mod args;
mod cmd;
mod fail;
mod text;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let result = args::parse(argv).and_then(|a| cmd::run(&a));
    if let Err(f) = result {
        eprintln!("rdbdmeta: {f}");
        std::process::exit(f.code);
    }
}
