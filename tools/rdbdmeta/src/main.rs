//! rdbdmeta: a drbdmeta-compatible tool for DRBD v08 meta-data on files and block devices.
//!
//! `rdbdmeta [--force] MINOR|- v08 DEVICE internal|flex-external|INDEX COMMAND [ARGS]`.
//! The minor is accepted for compatibility only; commands that write take an exclusive claim
//! on the device (see `rdbd_metadata::claim`) and fail with exit 20 while rdbd has it attached.
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
