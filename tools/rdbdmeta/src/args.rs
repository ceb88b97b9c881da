//! Command line in drbdmeta's syntax:
//! `rdbdmeta [OPTIONS] MINOR|- v08 DEVICE internal|flex-external|INDEX COMMAND [ARGS]`.
//! Options may appear anywhere (as with getopt_long): `--force`, `-v`/`--verbose`,
//! `--al-stripes N`, `--al-stripe-size-kB K`, `--peer-max-bio-size B`, `--node-id N`.

use std::path::PathBuf;

use rdbd_metadata::LayoutKind;

use crate::fail::{fail, Failure};

/// The commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    CreateMd,
    DumpMd,
    RestoreMd,
    VerifyDump,
    WipeMd,
    ApplyAl,
    ShowGi,
    GetGi,
    SetGi,
    Dstate,
    Outdate,
    Invalidate,
    CheckResize,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "create-md" => Command::CreateMd,
            "dump-md" => Command::DumpMd,
            "restore-md" => Command::RestoreMd,
            "verify-dump" => Command::VerifyDump,
            "wipe-md" => Command::WipeMd,
            "apply-al" => Command::ApplyAl,
            "show-gi" => Command::ShowGi,
            "get-gi" => Command::GetGi,
            "set-gi" => Command::SetGi,
            "dstate" => Command::Dstate,
            "outdate" => Command::Outdate,
            "invalidate" => Command::Invalidate,
            "check-resize" => Command::CheckResize,
            _ => return None,
        })
    }
}

/// Parsed invocation.
#[derive(Debug, Clone)]
pub struct Args {
    pub force: bool,
    pub al_stripes: Option<u32>,
    pub al_stripe_size_kib: Option<u64>,
    pub peer_max_bio_size: Option<u32>,
    pub device: PathBuf,
    pub kind: LayoutKind,
    pub command: Command,
    pub command_args: Vec<String>,
    /// The full command line, for the dump header.
    pub argv: Vec<String>,
}

pub const USAGE: &str = "USAGE: rdbdmeta [--force] MINOR|- v08 DEVICE internal|flex-external|INDEX COMMAND [ARGS]\n\
\nCOMMANDS:\n  create-md [--al-stripes N] [--al-stripe-size-kB K] [--peer-max-bio-size B]\n  dump-md\n  \
restore-md FILE\n  verify-dump FILE\n  wipe-md\n  apply-al\n  show-gi\n  get-gi\n  set-gi GI\n  dstate\n  \
outdate\n  invalidate\n  check-resize";

fn number<T: std::str::FromStr>(opt: &str, v: Option<String>) -> Result<T, Failure> {
    let v = v.ok_or_else(|| fail(10, format!("option {opt} needs a value")))?;
    let digits = v.strip_suffix(['k', 'K']).unwrap_or(&v);
    digits
        .parse()
        .map_err(|_| fail(10, format!("invalid value '{v}' for {opt}")))
}

/// Parses `argv` (including the program name).
pub fn parse(argv: Vec<String>) -> Result<Args, Failure> {
    let mut positional = Vec::new();
    let mut force = false;
    let (mut al_stripes, mut al_stripe_size_kib, mut peer_max_bio_size) = (None, None, None);
    let mut it = argv.iter().skip(1).cloned();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let value = |it: &mut dyn Iterator<Item = String>| inline.clone().or_else(|| it.next());
        match name.as_str() {
            "--force" | "-f" => force = true,
            "--verbose" | "-v" => {}
            "--al-stripes" | "-s" => al_stripes = Some(number("--al-stripes", value(&mut it))?),
            "--al-stripe-size-kB" | "-z" => {
                al_stripe_size_kib = Some(number("--al-stripe-size-kB", value(&mut it))?)
            }
            "--peer-max-bio-size" | "-p" => {
                let v: u32 = number("--peer-max-bio-size", value(&mut it))?;
                if v > 1 << 20 {
                    return Err(fail(10, "peer-max-bio-size out of range (0...1M)".into()));
                }
                peer_max_bio_size = Some(v);
            }
            "--node-id" | "-i" => {
                let v: u32 = number("--node-id", value(&mut it))?;
                if v != 0 {
                    eprintln!("Not v09, implicitly set --node-id = 0");
                }
            }
            "--help" | "-h" => return Err(fail(20, USAGE.into())),
            s if s.starts_with("--") && s.len() > 2 => {
                return Err(fail(20, format!("unknown option {s}\n{USAGE}")))
            }
            _ => positional.push(a),
        }
    }
    if positional.len() < 5 {
        return Err(fail(20, USAGE.into()));
    }
    let minor = &positional[0];
    if minor != "-"
        && minor
            .trim_start_matches("/dev/drbd")
            .parse::<u32>()
            .is_err()
    {
        return Err(fail(
            20,
            format!("Cannot determine minor device number of drbd device '{minor}'"),
        ));
    }
    if positional[1] != "v08" {
        return Err(fail(
            20,
            format!(
                "unsupported meta-data format '{}' (only v08)",
                positional[1]
            ),
        ));
    }
    let device = PathBuf::from(&positional[2]);
    let kind = match positional[3].as_str() {
        "internal" | "flex-internal" => LayoutKind::Internal,
        "flex-external" => LayoutKind::FlexExternal,
        s => LayoutKind::Indexed(
            parse_index(s)
                .ok_or_else(|| fail(20, format!("'{s}' is not a valid index number.")))?,
        ),
    };
    let command = Command::parse(&positional[4])
        .ok_or_else(|| fail(20, format!("Unknown command '{}'.", positional[4])))?;
    if (al_stripes.is_some() || al_stripe_size_kib.is_some())
        && !matches!(command, Command::CreateMd | Command::RestoreMd)
    {
        return Err(fail(
            10,
            "The --al-stripe* options are only allowed with create-md and restore-md".into(),
        ));
    }
    if peer_max_bio_size.is_some() && command != Command::CreateMd {
        return Err(fail(
            10,
            "The --peer-max-bio-size option is only allowed with create-md".into(),
        ));
    }
    Ok(Args {
        force,
        al_stripes,
        al_stripe_size_kib,
        peer_max_bio_size,
        device,
        kind,
        command,
        command_args: positional[5..].to_vec(),
        argv,
    })
}

fn parse_index(s: &str) -> Option<u8> {
    let v = if let Some(hex) = s.strip_prefix("0x") {
        u8::from_str_radix(hex, 16).ok()?
    } else {
        s.parse().ok()?
    };
    Some(v)
}
