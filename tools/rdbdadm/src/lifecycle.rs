//! `rdbdadm adjust`: the daemon compares the configuration a resource runs with against
//! the file and runs what is needed; a resource on a node whose daemon is not running is
//! simply brought `up`. With `-d` the commands are printed, nothing changes.

use std::time::Duration;

use rdbd_control::{exit_code, Client, Request, Response};

use crate::args::Invocation;
use crate::commands::{up, Failure};

/// `adjust RESOURCE`.
pub fn adjust(inv: &Invocation, resource: &str) -> Result<(), Failure> {
    let Ok(mut client) = Client::connect(&inv.node.run_dir, Duration::from_secs(5)) else {
        if inv.dry_run {
            println!("rdbdadm up {resource}");
            return Ok(());
        }
        return up(inv, resource);
    };
    let req = Request::Adjust {
        resource: resource.into(),
        dry_run: inv.dry_run,
    };
    let failed = |message: String, code: i32| Failure {
        message,
        exit_code: code,
    };
    match client
        .request(&req)
        .map_err(|e| failed(e.to_string(), exit_code::FAILED))?
    {
        Response::Ok { message } => {
            if !message.is_empty() {
                println!("{message}");
            }
            Ok(())
        }
        Response::Error { message, exit_code } => Err(failed(message, exit_code)),
        Response::Status { .. } | Response::Event { .. } => Err(failed(
            "unexpected answer from the daemon".into(),
            exit_code::FAILED,
        )),
    }
}

/// `resize [--size SIZE] [--assume-clean] [--assume-peer-has-space] [--force] RESOURCE`
/// (`--force` confirms a shrink).
pub fn resize(inv: &Invocation, resource: &str) -> Result<(), Failure> {
    let req = Request::Resize {
        resource: resource.into(),
        size_bytes: size_option(inv)?,
        assume_clean: inv.has("--assume-clean"),
        assume_peer_has_space: inv.has("--assume-peer-has-space"),
        force: inv.has("--force"),
    };
    crate::commands::simple(inv, req)
}

/// `--size N` (after the command) or `--size=N` (also before it, after `--`), in bytes.
fn size_option(inv: &Invocation) -> Result<Option<u64>, Failure> {
    let size_text = inv
        .options
        .iter()
        .position(|o| o == "--size")
        .map(|i| inv.options.get(i + 1).map(String::as_str).unwrap_or(""))
        .or_else(|| inv.options.iter().find_map(|o| o.strip_prefix("--size=")));
    size_text
        .map(|text| {
            parse_size_bytes(text).map_err(|message| Failure {
                message: format!("rdbdadm resize: {message}"),
                exit_code: exit_code::USAGE,
            })
        })
        .transpose()
}

/// A drbdsetup size: a number of sectors, or with a unit suffix (`s`, `k`/`K`, `M`,
/// `G`, `T`; binary multiples), returned in bytes.
pub fn parse_size_bytes(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("--size '{text}' is not a number with an optional unit"))?;
    let unit_bytes: u64 = match unit {
        "" | "s" => 512,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        "t" | "T" => 1 << 40,
        other => return Err(format!("--size unit '{other}' is not one of s, K, M, G, T")),
    };
    n.checked_mul(unit_bytes)
        .ok_or_else(|| format!("--size '{text}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::{parse_size_bytes, size_option};

    #[test]
    fn size_in_both_drbdadm_forms() {
        let parse = |s: &str| {
            crate::args::parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>()).unwrap()
        };
        let i = parse("-- --force --size=32M resize r0");
        assert_eq!(i.command, "resize");
        assert!(i.has("--force"));
        assert_eq!(size_option(&i).unwrap(), Some(32 << 20));
        let i = parse("resize --size 65536s --force r0");
        assert_eq!(i.resources, vec!["r0"]);
        assert_eq!(size_option(&i).unwrap(), Some(32 << 20));
        assert_eq!(size_option(&parse("resize r0")).unwrap(), None);
        assert!(size_option(&parse("resize --size=12X r0")).is_err());
    }

    #[test]
    fn sizes_take_drbd_units() {
        assert_eq!(parse_size_bytes("128"), Ok(128 * 512));
        assert_eq!(parse_size_bytes("96M"), Ok(96 << 20));
        assert_eq!(parse_size_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_size_bytes("4k"), Ok(4096));
        assert!(parse_size_bytes("12X").is_err());
        assert!(parse_size_bytes("").is_err());
        assert!(parse_size_bytes("99999999999T").is_err());
    }
}
