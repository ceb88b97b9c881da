//! A reader for heartbeat's `haresources`: one group per line,
//! `NODE RESOURCE...`, each resource `Name::arg::arg` (a bare IP address is `IPaddr`),
//! `\` continues a line.
//!
//! Mapping to rdbd-ha resources:
//! - `IPaddr::IP[/PREFIX|/NETMASK[/IFACE]]`, `IPaddr2::...`, bare `IP` → [`ResourceKind::Ip`]
//! - `drbddisk::RES` → [`ResourceKind::Rdbd`] (`rdbdadm primary/secondary RES`)
//! - `Filesystem::DEV::MOUNT[::FSTYPE[::OPTIONS]]` → [`ResourceKind::Filesystem`]; a
//!   `/dev/drbdN` or `/dev/drbd/by-res/RES` device becomes the export of the rdbd resource
//!   (attached as a block device), the preceding `drbddisk` one for `/dev/drbdN`.
//! - anything else → [`ResourceKind::Script`] (not monitored: heartbeat scripts such as
//!   `killnfsd` do not implement `status`).

use std::net::Ipv4Addr;

use super::resource::{ResourceKind, ResourceSpec};
use super::GroupConfig;
use crate::error::{HaError, Result};

/// The longest haresources accepted, in bytes.
pub const MAX_HARESOURCES_BYTES: usize = 1 << 20;
/// The most resources one group may have.
pub const MAX_RESOURCES_PER_GROUP: usize = 64;

/// Parses haresources text into groups (monitoring defaults), plus notes on the mapping.
pub fn parse(text: &str) -> Result<(Vec<GroupConfig>, Vec<String>)> {
    if text.len() > MAX_HARESOURCES_BYTES {
        return Err(HaError::Invalid(format!(
            "haresources has {} bytes, at most {MAX_HARESOURCES_BYTES}",
            text.len()
        )));
    }
    let mut groups: Vec<GroupConfig> = Vec::new();
    let mut notes = Vec::new();
    let mut pending = String::new();
    let mut first_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim_end();
        if pending.is_empty() {
            first_line = i + 1;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let logical = std::mem::take(&mut pending);
        if logical.trim().is_empty() {
            continue;
        }
        let group = parse_line(&logical, first_line, groups.len(), &mut notes)?;
        if groups.iter().any(|g| g.name == group.name) {
            return Err(syntax(
                first_line,
                format!("second group named '{}'", group.name),
            ));
        }
        groups.push(group);
    }
    Ok((groups, notes))
}

fn syntax(line: usize, message: String) -> HaError {
    HaError::Syntax {
        file: "haresources".into(),
        line,
        message,
    }
}

fn parse_line(
    line: &str,
    line_no: usize,
    index: usize,
    notes: &mut Vec<String>,
) -> Result<GroupConfig> {
    let mut words = line.split_whitespace();
    let node = words
        .next()
        .ok_or_else(|| syntax(line_no, "empty line".into()))?
        .to_string();
    let mut resources = Vec::new();
    let mut last_rdbd: Option<String> = None;
    for word in words {
        if resources.len() >= MAX_RESOURCES_PER_GROUP {
            return Err(syntax(
                line_no,
                format!("more than {MAX_RESOURCES_PER_GROUP} resources"),
            ));
        }
        let parts: Vec<&str> = word.split("::").collect();
        let (name, args) = (parts[0], &parts[1..]);
        let kind = if args.is_empty() && looks_like_ip(name) {
            ip_resource(name, line_no, notes)?
        } else {
            match name {
                "IPaddr" | "IPaddr2" => match args {
                    [spec] => ip_resource(spec, line_no, notes)?,
                    _ => {
                        return Err(syntax(
                            line_no,
                            format!("{name} needs one IP argument: {word}"),
                        ))
                    }
                },
                "drbddisk" => match args {
                    [res] if !res.is_empty() => {
                        last_rdbd = Some(res.to_string());
                        ResourceKind::Rdbd {
                            resource: res.to_string(),
                        }
                    }
                    _ => {
                        return Err(syntax(
                            line_no,
                            format!("drbddisk needs a resource name (drbddisk::RES): {word}"),
                        ))
                    }
                },
                "Filesystem" => filesystem(word, args, last_rdbd.as_deref(), line_no, notes)?,
                _ => {
                    notes.push(format!(
                        "haresources line {line_no}: script '{name}' is started/stopped but not monitored (it may not implement LSB status)"
                    ));
                    ResourceKind::Script {
                        name: name.to_string(),
                        args: args.iter().map(|s| s.to_string()).collect(),
                        monitor: false,
                    }
                }
            }
        };
        resources.push(ResourceSpec::new(kind));
    }
    if resources.is_empty() {
        return Err(syntax(line_no, format!("node '{node}' has no resources")));
    }
    let name = resources
        .iter()
        .find_map(|r| match &r.kind {
            ResourceKind::Rdbd { resource } => Some(resource.clone()),
            _ => None,
        })
        .unwrap_or_else(|| format!("group{index}"));
    Ok(GroupConfig {
        name,
        preferred_node: node,
        monitor_interval_ms: super::default_monitor_interval_ms(),
        monitor_failures_max: super::default_monitor_failures_max(),
        resources,
    })
}

fn looks_like_ip(word: &str) -> bool {
    word.split('/')
        .next()
        .is_some_and(|a| a.parse::<Ipv4Addr>().is_ok())
}

/// `IP[/PREFIX|/NETMASK[/IFACE[/BROADCAST]]]`.
fn ip_resource(spec: &str, line_no: usize, notes: &mut Vec<String>) -> Result<ResourceKind> {
    let parts: Vec<&str> = spec.split('/').collect();
    let ip: Ipv4Addr = parts[0]
        .parse()
        .map_err(|_| syntax(line_no, format!("'{}' is not an IPv4 address", parts[0])))?;
    let prefix = match parts.get(1) {
        None | Some(&"") => {
            notes.push(format!(
                "haresources line {line_no}: {ip} has no netmask; it is added as {ip}/32 on the interface routing to it"
            ));
            32
        }
        Some(m) => netmask_prefix(m)
            .ok_or_else(|| syntax(line_no, format!("'{m}' is not a prefix length or netmask")))?,
    };
    let interface = parts
        .get(2)
        .filter(|s| !s.is_empty())
        .map(|s| s.to_string());
    if parts.len() > 3 {
        notes.push(format!(
            "haresources line {line_no}: broadcast '{}' ignored (ip derives it)",
            parts[3]
        ));
    }
    Ok(ResourceKind::Ip {
        address: format!("{ip}/{prefix}"),
        interface,
    })
}

/// `24` or `255.255.255.0` → 24.
fn netmask_prefix(m: &str) -> Option<u8> {
    if let Ok(p) = m.parse::<u8>() {
        return (p <= 32).then_some(p);
    }
    let bits = u32::from(m.parse::<Ipv4Addr>().ok()?);
    let prefix = bits.leading_ones();
    (bits.checked_shl(prefix).unwrap_or(0) == 0).then_some(prefix as u8)
}

fn filesystem(
    word: &str,
    args: &[&str],
    last_rdbd: Option<&str>,
    line_no: usize,
    notes: &mut Vec<String>,
) -> Result<ResourceKind> {
    let (dev, mountpoint, fstype, options) = match args {
        [d, m] => (*d, *m, "", None),
        [d, m, t] => (*d, *m, *t, None),
        [d, m, t, o] => (*d, *m, *t, Some(o.to_string())),
        _ => {
            return Err(syntax(
                line_no,
                format!("Filesystem needs DEVICE::MOUNTPOINT[::FSTYPE[::OPTIONS]]: {word}"),
            ))
        }
    };
    let by_res = dev
        .strip_prefix("/dev/drbd/by-res/")
        .map(|r| r.split('/').next().unwrap_or(r));
    let is_minor = dev
        .strip_prefix("/dev/drbd")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let (resource, device) = match (by_res, is_minor, last_rdbd) {
        (Some(r), _, _) => (Some(r.to_string()), None),
        (None, true, Some(r)) => {
            notes.push(format!(
                "haresources line {line_no}: {dev} is the export of rdbd resource '{r}' (the preceding drbddisk), attached as a block device"
            ));
            (Some(r.to_string()), None)
        }
        (None, true, None) => {
            return Err(syntax(
                line_no,
                format!("{dev}: no drbddisk::RES before it says which rdbd resource it is"),
            ))
        }
        (None, false, _) => (None, Some(dev.to_string())),
    };
    Ok(ResourceKind::Filesystem {
        resource,
        device,
        mountpoint: mountpoint.to_string(),
        fstype: fstype.to_string(),
        options,
        fsck: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks() {
        assert_eq!(netmask_prefix("24"), Some(24));
        assert_eq!(netmask_prefix("255.255.255.0"), Some(24));
        assert_eq!(netmask_prefix("255.255.0.255"), None);
        assert_eq!(netmask_prefix("33"), None);
        assert_eq!(netmask_prefix("0.0.0.0"), Some(0));
        assert_eq!(netmask_prefix("255.255.255.255"), Some(32));
    }
}
