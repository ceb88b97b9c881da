//! From what a parser read to a checked [`Config`]: the part both file
//! formats share.
//!
//! Parsers fill a [`RawConfig`] (options already checked one by one through
//! [`crate::options`]); [`assemble`] applies inheritance (common → resource,
//! resource-level device/disk/meta-disk → hosts) and the cross checks
//! drbdadm makes: required host statements, unique resources, hosts, minors
//! and addresses, and known `resync-after` targets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use rdbd_types::Protocol;

use crate::error::{ConfigError, Location};
use crate::model::{
    AddressFamily, Config, Host, MetaDisk, NotCompared, Resource, ResourceDefaults, Section,
};
use crate::options::{check_value, OptionSpec};

/// Largest minor number DRBD accepts (`DRBD_MINOR_NUMBER_MAX`).
pub const MAX_MINOR: u32 = (1 << 20) - 1;

/// What a parser read.
#[derive(Debug, Default)]
pub struct RawConfig {
    /// `global { }`.
    pub global: Section,
    /// `common { }`.
    pub common: ResourceDefaults,
    /// The resources in order.
    pub resources: Vec<RawResource>,
    /// Accepted but unimplemented statements (messages with locations).
    pub notes: Vec<String>,
    /// Files read.
    pub files: Vec<PathBuf>,
}

/// Device, disk and meta-disk statements (of a resource, a host or a volume).
#[derive(Debug, Default, Clone)]
pub struct RawVolume {
    /// Minor and device name, with the statement's location.
    pub device: Option<(u32, Option<String>, Location)>,
    /// Backing disk.
    pub disk: Option<(PathBuf, Location)>,
    /// Meta-data placement.
    pub meta_disk: Option<(MetaDisk, Location)>,
}

/// A resource as read.
#[derive(Debug)]
pub struct RawResource {
    /// Name.
    pub name: String,
    /// Where `resource NAME {` is.
    pub at: Location,
    /// Its own option sections.
    pub sections: ResourceDefaults,
    /// Resource-level device/disk/meta-disk, inherited by hosts.
    pub volume: RawVolume,
    /// Host sections.
    pub hosts: Vec<RawHost>,
}

/// A host section as read.
#[derive(Debug)]
pub struct RawHost {
    /// Host name (`ADDR:PORT` for floating sections).
    pub name: String,
    /// Where the section starts.
    pub at: Location,
    /// Whether it is a `floating` section.
    pub floating: bool,
    /// Its device/disk/meta-disk.
    pub volume: RawVolume,
    /// Its address.
    pub address: Option<(AddressFamily, SocketAddr, Location)>,
    /// rdbd's per-host NBD address.
    pub nbd_address: Option<(SocketAddr, Location)>,
    /// Per-host `disk { }`.
    pub disk_options: Section,
    /// Per-host `options { }`.
    pub options: Section,
}

impl RawHost {
    /// An empty host section.
    pub fn new(name: String, at: Location, floating: bool) -> Self {
        RawHost {
            name,
            at,
            floating,
            volume: RawVolume::default(),
            address: None,
            nbd_address: None,
            disk_options: Section::new(),
            options: Section::new(),
        }
    }
}

/// Checks `value` (written at `value_at`) for `spec` and stores it,
/// normalised, in `section`, remembering `option_at` (where the option name
/// is) as its location.
pub fn store(
    section: &mut Section,
    spec: &OptionSpec,
    value: &str,
    value_at: &Location,
    option_at: &Location,
) -> Result<(), ConfigError> {
    let normal = check_value(spec, value, value_at)?;
    section.set(
        spec.name,
        crate::model::Value::new(normal, option_at.clone()),
    );
    Ok(())
}

/// Reads a `device` statement: a name (`/dev/drbdN`, `drbdN`,
/// `/dev/drbd_NAME`), an explicit minor, or both. Returns (minor, name).
pub fn resolve_device(
    name: Option<&str>,
    minor: Option<u32>,
    at: &Location,
) -> Result<(u32, Option<String>), ConfigError> {
    let invalid = |value: &str, reason: &str| ConfigError::InvalidValue {
        at: at.clone(),
        name: "device".to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if let Some(m) = minor {
        if m > MAX_MINOR {
            return Err(invalid(&m.to_string(), "minor out of range [0..1048575]"));
        }
    }
    let Some(name) = name else {
        return match minor {
            Some(m) => Ok((m, None)),
            None => Err(invalid("", "expected a device name or 'minor N'")),
        };
    };
    let full = if name.starts_with("drbd") {
        format!("/dev/{name}")
    } else {
        name.to_string()
    };
    let Some(suffix) = full.strip_prefix("/dev/drbd") else {
        return Err(invalid(
            name,
            "device name must start with /dev/drbd (/dev/ is optional, drbd is required)",
        ));
    };
    let digits = !suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_digit());
    match minor {
        None if digits => {
            let m: u32 = suffix
                .parse()
                .map_err(|_| invalid(name, "minor out of range [0..1048575]"))?;
            if m > MAX_MINOR {
                return Err(invalid(name, "minor out of range [0..1048575]"));
            }
            Ok((m, Some(full)))
        }
        None => Err(invalid(
            name,
            "no minor given nor device name contains a minor number",
        )),
        Some(m) if digits => {
            if suffix.parse::<u32>().ok() == Some(m) {
                Ok((m, Some(full)))
            } else {
                Err(invalid(
                    name,
                    &format!(
                        "explicit minor number must match the device name; try \"device /dev/drbd{m} minor {m};\""
                    ),
                ))
            }
        }
        Some(m) if suffix.starts_with('_') => Ok((m, Some(full))),
        Some(_) => Err(invalid(
            name,
            "explicit device names must be /dev/drbd<minor> or /dev/drbd_<name>",
        )),
    }
}

/// Applies inheritance and the cross-resource checks.
pub fn assemble(raw: RawConfig) -> Result<Config, ConfigError> {
    let mut resources: Vec<Resource> = Vec::with_capacity(raw.resources.len());
    let mut resource_at: HashMap<String, Location> = HashMap::new();
    // (host name, minor) and address uniqueness, as drbdadm's check_uniq.
    let mut minors: HashMap<(String, u32), Location> = HashMap::new();
    let mut addresses: HashMap<(String, SocketAddr), Location> = HashMap::new();

    for r in raw.resources {
        if let Some(first) = resource_at.get(&r.name) {
            return Err(ConfigError::Duplicate {
                at: r.at,
                what: format!("resource {}", r.name),
                first: first.clone(),
            });
        }
        resource_at.insert(r.name.clone(), r.at.clone());
        let mut sections = r.sections;
        sections.net.inherit(&raw.common.net);
        sections.disk.inherit(&raw.common.disk);
        sections.startup.inherit(&raw.common.startup);
        sections.handlers.inherit(&raw.common.handlers);
        sections.options.inherit(&raw.common.options);
        let protocol = sections
            .net
            .get("protocol")
            .and_then(|p| p.parse::<Protocol>().ok())
            .unwrap_or(Protocol::C);

        if r.hosts.is_empty() {
            return Err(ConfigError::NoHosts {
                at: r.at,
                resource: r.name,
            });
        }
        let host_count = r.hosts.len();
        let mut hosts: Vec<Host> = Vec::with_capacity(host_count);
        for h in r.hosts {
            if let Some(first) = hosts.iter().find(|o| o.name == h.name) {
                return Err(ConfigError::Duplicate {
                    at: h.at,
                    what: format!("on {} section in resource {}", h.name, r.name),
                    first: first.defined_at.0.clone(),
                });
            }
            let missing = |keyword: &str| ConfigError::MissingKeyword {
                at: h.at.clone(),
                resource: r.name.clone(),
                host: h.name.clone(),
                keyword: keyword.to_string(),
            };
            let (minor, device, _) = h
                .volume
                .device
                .clone()
                .or_else(|| r.volume.device.clone())
                .ok_or_else(|| missing("device"))?;
            let (disk, _) = h
                .volume
                .disk
                .clone()
                .or_else(|| r.volume.disk.clone())
                .ok_or_else(|| missing("disk"))?;
            let (meta_disk, _) = h
                .volume
                .meta_disk
                .clone()
                .or_else(|| r.volume.meta_disk.clone())
                .ok_or_else(|| missing("meta-disk"))?;
            if h.address.is_none() && host_count > 1 {
                return Err(missing("address"));
            }
            if let Some(first) = minors.insert((h.name.clone(), minor), h.at.clone()) {
                return Err(ConfigError::Duplicate {
                    at: h.at,
                    what: format!("minor {minor} on host {}", h.name),
                    first,
                });
            }
            if let Some((_, addr, at)) = &h.address {
                // Loopback addresses only need to be unique per host name.
                let scope = if addr.ip().is_loopback() {
                    h.name.clone()
                } else {
                    String::new()
                };
                if let Some(first) = addresses.insert((scope, *addr), at.clone()) {
                    return Err(ConfigError::Duplicate {
                        at: at.clone(),
                        what: format!("use of address {addr}"),
                        first,
                    });
                }
            }
            hosts.push(Host {
                name: h.name,
                minor: Some(minor),
                device,
                disk: Some(disk),
                address: h.address.as_ref().map(|(_, a, _)| *a),
                meta_disk,
                nbd_address: h.nbd_address.map(|(a, _)| a),
                address_family: h.address.map(|(f, _, _)| f).unwrap_or_default(),
                floating: h.floating,
                disk_options: h.disk_options,
                options: h.options,
                defined_at: NotCompared(h.at),
            });
        }
        resources.push(Resource {
            name: r.name,
            protocol,
            net: sections.net,
            disk: sections.disk,
            startup: sections.startup,
            handlers: sections.handlers,
            options: sections.options,
            hosts,
            defined_at: NotCompared(r.at),
        });
    }

    for r in &resources {
        if let Some(target) = r.disk.value("resync-after") {
            if !resource_at.contains_key(target.as_str()) {
                return Err(ConfigError::UnknownReference {
                    at: target.location().clone(),
                    option: "resync-after".to_string(),
                    target: target.as_str().to_string(),
                });
            }
        }
    }

    Ok(Config {
        global: raw.global,
        common: raw.common,
        resources,
        unimplemented_statements: NotCompared(raw.notes),
        files: NotCompared(raw.files),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn at() -> Location {
        Location::new(Path::new("t.conf").into(), 3, 5)
    }

    #[test]
    fn device_forms_like_drbdadm() {
        assert_eq!(
            resolve_device(Some("/dev/drbd1"), None, &at()).unwrap(),
            (1, Some("/dev/drbd1".into()))
        );
        assert_eq!(
            resolve_device(Some("drbd7"), None, &at()).unwrap(),
            (7, Some("/dev/drbd7".into()))
        );
        assert_eq!(resolve_device(None, Some(3), &at()).unwrap(), (3, None));
        assert_eq!(
            resolve_device(Some("/dev/drbd_web"), Some(4), &at()).unwrap(),
            (4, Some("/dev/drbd_web".into()))
        );
        let e = resolve_device(Some("/dev/drbd0"), Some(1), &at()).unwrap_err();
        assert!(e.to_string().starts_with("t.conf:3:5: "), "{e}");
        assert!(e.to_string().contains("must match"), "{e}");
        assert!(resolve_device(Some("/dev/sdb"), None, &at()).is_err());
        assert!(resolve_device(Some("/dev/drbd_web"), None, &at()).is_err());
        assert!(resolve_device(None, Some(MAX_MINOR + 1), &at()).is_err());
    }
}
