//! The DRBD 8.4 option vocabulary: which option belongs to which section, what
//! values it takes, the 8.3 aliases, and which options rdbd implements.
//!
//! Both parsers (drbd.conf and TOML) send every option through [`accept`], so
//! the same names, ranges and messages apply whatever the file format.

mod implemented;
mod table;
pub mod units;

pub use implemented::{is_implemented, IMPLEMENTED_HOST_STATEMENTS, IMPLEMENTED_OPTIONS};
pub use table::{OptionKind, OptionSpec, SectionKind, AFTER_SB_0PRI, AFTER_SB_1PRI, AFTER_SB_2PRI};

use crate::error::{ConfigError, Location};
use table::{ALIASES, DEPRECATED, NO_FLAGS, OPTIONS, SYNCER};
use units::parse_scaled;

/// The specification of `name` in `section`, by canonical name.
pub fn spec(section: SectionKind, name: &str) -> Option<&'static OptionSpec> {
    OPTIONS
        .iter()
        .find(|s| s.section == section && s.name == name)
}

/// All options of `section`.
pub fn specs_of(section: SectionKind) -> impl Iterator<Item = &'static OptionSpec> {
    OPTIONS.iter().filter(move |s| s.section == section)
}

/// How an option name written in a section is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// A (possibly renamed) option of `spec.section`.
    Option(&'static OptionSpec),
    /// `no-FLAG;`: the flag, set to "no", no value follows.
    NoFlag(&'static OptionSpec),
    /// An option DRBD 8.4 ignores; its value is read and dropped.
    Deprecated,
}

/// Resolves a name written inside `section { }` (not `syncer`).
pub fn resolve(
    section: SectionKind,
    written: &str,
    at: &Location,
) -> Result<Resolved, ConfigError> {
    let canonical = ALIASES
        .iter()
        .find(|(s, old, _)| *s == section && *old == written)
        .map_or(written, |(_, _, new)| new);
    if let Some(found) = spec(section, canonical) {
        return Ok(Resolved::Option(found));
    }
    if let Some((_, _, flag_name)) = NO_FLAGS
        .iter()
        .find(|(s, n, _)| *s == section && *n == written)
    {
        if let Some(found) = spec(section, flag_name) {
            return Ok(Resolved::NoFlag(found));
        }
    }
    if section != SectionKind::Global && DEPRECATED.contains(&written) {
        return Ok(Resolved::Deprecated);
    }
    Err(unknown_option(section.name(), written, at))
}

/// Resolves a name written inside an 8.3 `syncer { }` section to the 8.4
/// option drbdadm-84 moves it to.
pub fn resolve_syncer(written: &str, at: &Location) -> Result<&'static OptionSpec, ConfigError> {
    SYNCER
        .iter()
        .find(|(name, _, _)| *name == written)
        .and_then(|(_, section, name)| spec(*section, name))
        .ok_or_else(|| unknown_option("syncer", written, at))
}

fn unknown_option(section: &str, written: &str, at: &Location) -> ConfigError {
    let elsewhere: Vec<&str> = OPTIONS
        .iter()
        .filter(|s| s.name == written && s.section.name() != section)
        .map(|s| s.section.name())
        .collect();
    let hint = match elsewhere.first() {
        Some(other) => format!(" (it belongs in the {other} section)"),
        None if section == "syncer" => {
            " (8.3 syncer sections take rate, after, al-extents, verify-alg, csums-alg, use-rle, cpu-mask, on-no-data-accessible and c-*)".to_string()
        }
        None => String::new(),
    };
    ConfigError::UnknownOption {
        at: at.clone(),
        name: written.to_string(),
        section: section.to_string(),
        hint,
    }
}

/// Checks `value` for `spec` and returns it in normal form: flags become
/// "yes"/"no", the protocol letter upper case, everything else as written
/// (numbers keep their unit suffix, as `drbdadm dump` prints them).
pub fn check_value(spec: &OptionSpec, value: &str, at: &Location) -> Result<String, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidValue {
        at: at.clone(),
        name: spec.name.to_string(),
        value: value.to_string(),
        reason,
    };
    match spec.kind {
        OptionKind::Flag { .. } => match value {
            "yes" | "no" => Ok(value.to_string()),
            _ => Err(invalid("expected yes or no".to_string())),
        },
        OptionKind::Bare => match value {
            "yes" => Ok(value.to_string()),
            _ => Err(invalid("this option takes no value".to_string())),
        },
        OptionKind::Number { unit, min, max, .. } => {
            let n = parse_scaled(value, unit).map_err(|e| invalid(e.describe()))?;
            if n < min || n > max {
                let u = unit.suffix();
                return Err(invalid(format!("{n}{u} is out of range [{min}..{max}]{u}")));
            }
            Ok(value.to_string())
        }
        OptionKind::Choice { values, .. } => {
            if spec.name == "protocol" {
                let upper = value.to_ascii_uppercase();
                if values.contains(&upper.as_str()) {
                    return Ok(upper);
                }
            } else if values.contains(&value) {
                return Ok(value.to_string());
            } else if spec.name == "after-sb-0pri"
                && value
                    .strip_prefix("discard-node-")
                    .is_some_and(|host| !host.is_empty())
            {
                // drbdadm turns `discard-node-NAME` into discard-local on NAME and
                // discard-remote on its peer.
                return Ok(value.to_string());
            }
            Err(invalid(format!("expected one of {}", values.join(", "))))
        }
        OptionKind::Text => Ok(value.to_string()),
        OptionKind::Hosts => {
            if value.split_whitespace().next().is_none() {
                return Err(invalid("expected one or more host names".to_string()));
            }
            Ok(value.split_whitespace().collect::<Vec<_>>().join(" "))
        }
        OptionKind::Address => {
            crate::model::address::parse_socket_addr(value).map_err(invalid)?;
            Ok(value.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn at() -> Location {
        Location::new(Path::new("t.conf").into(), 1, 1)
    }

    #[test]
    fn aliases_and_syncer_map_like_drbdadm_84() {
        let r = resolve(SectionKind::Disk, "rate", &at()).unwrap();
        assert!(matches!(r, Resolved::Option(s) if s.name == "resync-rate"));
        let r = resolve(SectionKind::Handlers, "outdate-peer", &at()).unwrap();
        assert!(matches!(r, Resolved::Option(s) if s.name == "fence-peer"));
        let s = resolve_syncer("verify-alg", &at()).unwrap();
        assert_eq!((s.section, s.name), (SectionKind::Net, "verify-alg"));
        let s = resolve_syncer("after", &at()).unwrap();
        assert_eq!((s.section, s.name), (SectionKind::Disk, "resync-after"));
        assert!(
            resolve_syncer("resync-rate", &at()).is_err(),
            "drbdadm-84 rejects 8.4 names in syncer"
        );
    }

    #[test]
    fn unknown_option_names_the_right_section() {
        let e = resolve(SectionKind::Disk, "protocol", &at()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("unknown option 'protocol' in disk section"),
            "{msg}"
        );
        assert!(msg.contains("belongs in the net section"), "{msg}");
    }

    #[test]
    fn values_are_checked_and_normalised() {
        let p = spec(SectionKind::Net, "protocol").unwrap();
        assert_eq!(check_value(p, "c", &at()).unwrap(), "C");
        assert!(check_value(p, "D", &at()).is_err());
        let r = spec(SectionKind::Disk, "resync-rate").unwrap();
        assert_eq!(check_value(r, "40M", &at()).unwrap(), "40M");
        let e = check_value(r, "9999999999", &at()).unwrap_err().to_string();
        assert!(e.contains("out of range [1..4194304]k"), "{e}");
        let e = check_value(r, "12x", &at()).unwrap_err().to_string();
        assert!(e.contains("unknown unit 'x'"), "{e}");
    }

    #[test]
    fn every_implemented_option_exists() {
        for (section, name) in IMPLEMENTED_OPTIONS {
            assert!(
                spec(*section, name).is_some(),
                "{name} is not a {section:?} option"
            );
        }
    }
}
