//! The TOML form of the configuration: the drbd.conf structure with
//! kebab-case keys.
//!
//! ```toml
//! [global]
//! nbd-address = "127.0.0.1:10809"
//! [common.net]
//! protocol = "C"
//! [resource.r0]
//! device = "/dev/drbd0"          # resource-level defaults for the hosts
//! [resource.r0.net]
//! cram-hmac-alg = "sha1"
//! [resource.r0.on.alice]
//! disk = "/dev/sdb1"
//! address = "10.0.0.1:7789"
//! meta-disk = "internal"
//! ```
//!
//! Values: strings as written in drbd.conf, integers, booleans for flags
//! (`allow-two-primaries = true`), an array of names for `become-primary-on`.
//! `disk` is a device path when it is a string and the `disk { }` options
//! when it is a table. Every option goes through the same checks as in
//! drbd.conf, so errors and the resulting model are the same.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml_edit::{ImDocument, Item, TableLike, Value as TomlValue};

use crate::assemble::{
    assemble, resolve_device, store, RawConfig, RawHost, RawResource, RawVolume,
};
use crate::error::{ConfigError, Location};
use crate::model::address::parse_socket_addr;
use crate::model::{AddressFamily, Config, MetaDisk, ResourceDefaults, Section};
use crate::options::{resolve, resolve_syncer, OptionKind, OptionSpec, Resolved, SectionKind};

/// Maps byte offsets of the text to locations.
struct Positions<'t> {
    text: &'t str,
    file: Arc<Path>,
}

impl Positions<'_> {
    fn at(&self, span: Option<Range<usize>>) -> Location {
        let offset = span.map_or(0, |s| s.start).min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Location::new(
            self.file.clone(),
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(column).unwrap_or(u32::MAX),
        )
    }

    /// The location of `key` in `table` (its key if known, else its value).
    fn key_at(&self, table: &dyn TableLike, key: &str) -> Location {
        let span = table
            .get_key_value(key)
            .and_then(|(k, item)| k.span().or_else(|| item.span()));
        self.at(span)
    }
}

struct TomlParser<'t> {
    pos: Positions<'t>,
    raw: RawConfig,
}

fn scalar_text(item: &Item) -> Option<String> {
    match item.as_value()? {
        TomlValue::String(s) => Some(s.value().clone()),
        TomlValue::Integer(i) => u64::try_from(*i.value()).ok().map(|n| n.to_string()),
        TomlValue::Boolean(b) => Some(if *b.value() { "yes" } else { "no" }.to_string()),
        TomlValue::Array(a) => {
            let names: Option<Vec<String>> =
                a.iter().map(|v| v.as_str().map(str::to_string)).collect();
            names.map(|n| n.join(" "))
        }
        _ => None,
    }
}

impl<'t> TomlParser<'t> {
    fn table<'i>(
        &self,
        item: &'i Item,
        what: &str,
        at: &Location,
    ) -> Result<&'i dyn TableLike, ConfigError> {
        item.as_table_like().ok_or_else(|| ConfigError::Syntax {
            at: at.clone(),
            expected: format!("a table for {what}"),
            found: item.type_name().to_string(),
        })
    }

    fn text(&self, item: &Item, name: &str, at: &Location) -> Result<String, ConfigError> {
        scalar_text(item).ok_or_else(|| ConfigError::InvalidValue {
            at: at.clone(),
            name: name.to_string(),
            value: format!("<{}>", item.type_name()),
            reason: "expected a string, a non-negative integer or a boolean".to_string(),
        })
    }

    fn put(
        &self,
        target: &mut Section,
        spec: &OptionSpec,
        item: &Item,
        at: &Location,
    ) -> Result<(), ConfigError> {
        let value = self.text(item, spec.name, at)?;
        if spec.kind == OptionKind::Bare && value == "no" {
            return Ok(());
        }
        store(target, spec, &value, at, at)
    }

    fn options(
        &self,
        table: &dyn TableLike,
        kind: SectionKind,
        target: &mut Section,
    ) -> Result<(), ConfigError> {
        for (name, item) in table.iter() {
            let at = self.pos.key_at(table, name);
            match resolve(kind, name, &at)? {
                Resolved::Option(spec) => self.put(target, spec, item, &at)?,
                Resolved::NoFlag(spec) => {
                    // `no-disk-flushes = true` means disk-flushes no.
                    let set = self.text(item, name, &at)?;
                    let value = if set == "no" { "yes" } else { "no" };
                    store(target, spec, value, &at, &at)?
                }
                Resolved::Deprecated => {}
            }
        }
        Ok(())
    }

    fn parse(&mut self, doc: &ImDocument<&str>) -> Result<(), ConfigError> {
        let root = doc.as_table();
        for (key, item) in root.iter() {
            let at = self.pos.key_at(root, key);
            match key {
                "global" => {
                    let table = self.table(item, "global", &at)?;
                    let mut global = Section::new();
                    self.options(table, SectionKind::Global, &mut global)?;
                    self.raw.global = global;
                }
                "common" => {
                    let table = self.table(item, "common", &at)?;
                    let mut raw = RawResource {
                        name: "common".to_string(),
                        at: at.clone(),
                        sections: ResourceDefaults::default(),
                        volume: RawVolume::default(),
                        hosts: Vec::new(),
                    };
                    self.resource_body(table, &mut raw, true)?;
                    self.raw.common = raw.sections;
                }
                "resource" => {
                    let resources = self.table(item, "resource", &at)?;
                    for (name, item) in resources.iter() {
                        let at = self.pos.key_at(resources, name);
                        let table = self.table(item, &format!("resource {name}"), &at)?;
                        let mut raw = RawResource {
                            name: name.to_string(),
                            at,
                            sections: ResourceDefaults::default(),
                            volume: RawVolume::default(),
                            hosts: Vec::new(),
                        };
                        self.resource_body(table, &mut raw, false)?;
                        self.raw.resources.push(raw);
                    }
                }
                _ => {
                    return Err(ConfigError::UnknownKeyword {
                        at,
                        word: key.to_string(),
                        context: "the top level".to_string(),
                        expected: "global, common or resource".to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    fn resource_body(
        &self,
        table: &dyn TableLike,
        raw: &mut RawResource,
        common: bool,
    ) -> Result<(), ConfigError> {
        let context = if common {
            "common section".to_string()
        } else {
            format!("resource {}", raw.name)
        };
        // device and minor are read together.
        let mut device: (Option<String>, Option<u32>, Option<Location>) = (None, None, None);
        for (key, item) in table.iter() {
            let at = self.pos.key_at(table, key);
            let section = match key {
                "net" => Some(SectionKind::Net),
                "startup" => Some(SectionKind::Startup),
                "handlers" => Some(SectionKind::Handlers),
                "options" => Some(SectionKind::Options),
                "disk" if item.is_table_like() => Some(SectionKind::Disk),
                _ => None,
            };
            if let Some(kind) = section {
                let options = self.table(item, &format!("{key} section"), &at)?;
                self.options(options, kind, raw.sections.section_mut(kind))?;
                continue;
            }
            match (key, common) {
                ("protocol", _) => {
                    let spec = crate::options::spec(SectionKind::Net, "protocol");
                    if let Some(spec) = spec {
                        self.put(&mut raw.sections.net, spec, item, &at)?;
                    }
                }
                ("syncer", _) => {
                    let syncer = self.table(item, "syncer section", &at)?;
                    for (name, item) in syncer.iter() {
                        let at = self.pos.key_at(syncer, name);
                        let spec = resolve_syncer(name, &at)?;
                        self.put(raw.sections.section_mut(spec.section), spec, item, &at)?;
                    }
                }
                ("on", false) | ("floating", false) => {
                    let hosts = self.table(item, key, &at)?;
                    for (name, host_item) in hosts.iter() {
                        let host_at = self.pos.key_at(hosts, name);
                        let host_table =
                            self.table(host_item, &format!("{key} {name}"), &host_at)?;
                        let mut host =
                            RawHost::new(name.to_string(), host_at.clone(), key == "floating");
                        if host.floating {
                            let (family, addr) = self.address(name, &host_at)?;
                            host.name = addr.to_string();
                            host.address = Some((family, addr, host_at.clone()));
                        }
                        self.host_body(host_table, &mut host)?;
                        raw.hosts.push(host);
                    }
                }
                ("device", false) => {
                    device.0 = Some(self.text(item, key, &at)?);
                    device.2 = Some(at);
                }
                ("minor", false) => {
                    device.1 = Some(self.minor(item, &at)?);
                    device.2.get_or_insert(at);
                }
                ("disk" | "meta-disk" | "flexible-meta-disk", false) => {
                    self.volume_key(key, item, &at, &mut raw.volume)?;
                }
                _ => {
                    let expected = if common {
                        "protocol, net, disk, syncer, startup, handlers or options"
                    } else {
                        "protocol, on, floating, device, minor, disk, meta-disk, net, syncer, startup, handlers or options"
                    };
                    return Err(ConfigError::UnknownKeyword {
                        at,
                        word: key.to_string(),
                        context,
                        expected: expected.to_string(),
                    });
                }
            }
        }
        if let (name, minor, Some(at)) = device {
            let (minor, name) = resolve_device(name.as_deref(), minor, &at)?;
            raw.volume.device = Some((minor, name, at));
        }
        Ok(())
    }

    fn minor(&self, item: &Item, at: &Location) -> Result<u32, ConfigError> {
        let text = self.text(item, "minor", at)?;
        text.parse().map_err(|_| ConfigError::InvalidValue {
            at: at.clone(),
            name: "minor".to_string(),
            value: text,
            reason: "expected a whole number".to_string(),
        })
    }

    fn volume_key(
        &self,
        key: &str,
        item: &Item,
        at: &Location,
        volume: &mut RawVolume,
    ) -> Result<(), ConfigError> {
        let text = self.text(item, key, at)?;
        if key == "disk" {
            volume.disk = Some((PathBuf::from(text), at.clone()));
            return Ok(());
        }
        let meta = if text == "internal" {
            MetaDisk::Internal
        } else if let (Some((dev, rest)), "meta-disk") = (text.split_once('['), key) {
            let index = rest
                .strip_suffix(']')
                .and_then(|i| i.trim().parse::<u32>().ok());
            match index {
                Some(index) => MetaDisk::Indexed(PathBuf::from(dev.trim()), index),
                None => {
                    return Err(ConfigError::InvalidValue {
                        at: at.clone(),
                        name: key.to_string(),
                        value: text.clone(),
                        reason: "expected \"internal\", \"DEVICE\" or \"DEVICE [INDEX]\""
                            .to_string(),
                    })
                }
            }
        } else {
            MetaDisk::FlexibleExternal(PathBuf::from(text))
        };
        volume.meta_disk = Some((meta, at.clone()));
        Ok(())
    }

    /// `"[FAMILY ]ADDR:PORT"`.
    fn address(
        &self,
        text: &str,
        at: &Location,
    ) -> Result<(AddressFamily, std::net::SocketAddr), ConfigError> {
        let (family, addr_text, explicit) = match text.split_once(char::is_whitespace) {
            Some((word, rest)) => match AddressFamily::from_keyword(word) {
                Some(family) => (family, rest.trim(), true),
                None => (AddressFamily::Ipv4, text, false),
            },
            None => (AddressFamily::Ipv4, text, false),
        };
        let invalid = |reason: String| ConfigError::InvalidValue {
            at: at.clone(),
            name: "address".to_string(),
            value: text.to_string(),
            reason,
        };
        let addr = parse_socket_addr(addr_text).map_err(invalid)?;
        // As in drbd.conf: an explicit family must match the address (found by fuzzing:
        // "ipv6 10.0.0.1:7789" made a model that dumps as drbd.conf that does not parse).
        if explicit && (family == AddressFamily::Ipv6) != addr.is_ipv6() {
            return Err(invalid(if addr.is_ipv6() {
                "IPv6 addresses need the ipv6 keyword: ipv6 [ADDR]:PORT".to_string()
            } else {
                "the ipv6 keyword needs an IPv6 address: ipv6 [ADDR]:PORT".to_string()
            }));
        }
        let family = if addr.is_ipv6() {
            AddressFamily::Ipv6
        } else {
            family
        };
        Ok((family, addr))
    }

    fn host_body(&self, table: &dyn TableLike, host: &mut RawHost) -> Result<(), ConfigError> {
        let mut device: (Option<String>, Option<u32>, Option<Location>) = (None, None, None);
        for (key, item) in table.iter() {
            let at = self.pos.key_at(table, key);
            match key {
                "device" => {
                    device.0 = Some(self.text(item, key, &at)?);
                    device.2 = Some(at);
                }
                "minor" => {
                    device.1 = Some(self.minor(item, &at)?);
                    device.2.get_or_insert(at);
                }
                "disk" if item.is_table_like() => {
                    let options = self.table(item, "disk section", &at)?;
                    self.options(options, SectionKind::Disk, &mut host.disk_options)?;
                }
                "options" => {
                    let options = self.table(item, "options section", &at)?;
                    self.options(options, SectionKind::Options, &mut host.options)?;
                }
                "disk" | "meta-disk" | "flexible-meta-disk" => {
                    self.volume_key(key, item, &at, &mut host.volume)?;
                }
                "address" if !host.floating => {
                    let text = self.text(item, key, &at)?;
                    let (family, addr) = self.address(&text, &at)?;
                    host.address = Some((family, addr, at));
                }
                "nbd-address" => {
                    let text = self.text(item, key, &at)?;
                    let addr = parse_socket_addr(&text).map_err(|reason| ConfigError::InvalidValue {
                        at: at.clone(),
                        name: key.to_string(),
                        value: text.clone(),
                        reason,
                    })?;
                    host.nbd_address = Some((addr, at));
                }
                _ => {
                    return Err(ConfigError::UnknownKeyword {
                        at,
                        word: key.to_string(),
                        context: format!("on {}", host.name),
                        expected: "device, minor, disk, meta-disk, flexible-meta-disk, address, nbd-address or options"
                            .to_string(),
                    })
                }
            }
        }
        if let (name, minor, Some(at)) = device {
            let (minor, name) = resolve_device(name.as_deref(), minor, &at)?;
            host.volume.device = Some((minor, name, at));
        }
        Ok(())
    }
}

/// Parses the TOML form of the configuration; `origin` names the file in
/// error messages.
pub fn parse_toml(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    let pos = Positions {
        text,
        file: origin.into(),
    };
    let doc = ImDocument::parse(text).map_err(|e| ConfigError::Toml {
        at: pos.at(e.span()),
        message: e.message().trim().to_string(),
    })?;
    let mut parser = TomlParser {
        pos,
        raw: RawConfig::default(),
    };
    parser.raw.files.push(origin.to_path_buf());
    parser.parse(&doc)?;
    assemble(parser.raw)
}
