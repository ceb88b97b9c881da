//! The configuration model shared by the drbd.conf and TOML parsers.
//!
//! Invariants established by [`crate::assemble`] for every [`Config`] a parser
//! returns:
//! - resource names are unique, host names are unique within a resource;
//! - every resource has at least one host section;
//! - every `on` host has `minor`, `disk` and a meta-disk (inherited from the
//!   resource level when not written in the host section); hosts of resources
//!   with more than one host have an `address`;
//! - resource sections already contain the `common` options they inherit
//!   (the resource's own value wins) and `protocol` equals `net.protocol`.

pub mod address;
pub mod section;
pub mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;

use rdbd_types::Protocol;

use crate::error::{ConfigError, Location};
use crate::options::{is_implemented, SectionKind};
pub use address::AddressFamily;
pub use section::{Section, Value};
pub use settings::Settings;

/// What is carried beside a configuration for messages (where something was written,
/// which files were read), never part of its equality: configurations compare by what
/// they configure.
#[derive(Debug, Clone, Default)]
pub(crate) struct NotCompared<T>(pub(crate) T);

impl<T> PartialEq for NotCompared<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for NotCompared<T> {}

/// A whole configuration: `global`, `common` and the resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `global { }`, including rdbd's `nbd-address` and `metrics-address`.
    pub global: Section,
    /// `common { }`: defaults every resource inherits.
    pub common: ResourceDefaults,
    /// The resources, in the order defined.
    pub resources: Vec<Resource>,
    /// Accepted statements rdbd does not implement that are not options
    /// (`proxy`, `alternate-link-address`, ...), as messages with locations.
    pub(crate) unimplemented_statements: NotCompared<Vec<String>>,
    /// Files read, the main file first.
    pub(crate) files: NotCompared<Vec<PathBuf>>,
}

impl Config {
    /// The resource called `name`.
    pub fn resource(&self, name: &str) -> Result<&Resource, ConfigError> {
        self.resources
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| ConfigError::UnknownResource {
                name: name.to_string(),
            })
    }

    /// The files the configuration was read from, the main file first.
    pub fn files(&self) -> &[PathBuf] {
        &self.files.0
    }

    /// rdbd's NBD listening address from `global { nbd-address IP:PORT; }`.
    pub fn nbd_address(&self) -> Option<SocketAddr> {
        self.global.get_socket_addr("nbd-address").ok().flatten()
    }

    /// rdbd's metrics listening address from `global { metrics-address IP:PORT; }`.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.global
            .get_socket_addr("metrics-address")
            .ok()
            .flatten()
    }

    /// One message per option or statement that is accepted but not
    /// implemented by rdbd yet, naming it and where it was written, e.g.
    /// `/etc/drbd.conf:12:5: net option 'max-buffers' is not implemented by rdbd yet`.
    /// An option inherited from `common` by several resources is named once.
    pub fn unimplemented_options(&self) -> Vec<String> {
        let mut seen: Vec<(SectionKind, String, Location)> = Vec::new();
        let mut out = Vec::new();
        let mut visit = |kind: SectionKind, section: &Section, label: &str| {
            for (name, value) in section.iter() {
                if is_implemented(kind, name) {
                    continue;
                }
                let key = (kind, name.to_string(), value.location().clone());
                if seen.contains(&key) {
                    continue;
                }
                seen.push(key);
                out.push(format!(
                    "{}: {label} option '{name}' is not implemented by rdbd yet",
                    value.location()
                ));
            }
        };
        visit(SectionKind::Global, &self.global, "global");
        for kind in SectionKind::RESOURCE_SECTIONS {
            visit(kind, self.common.section(kind), kind.name());
        }
        for resource in &self.resources {
            for kind in SectionKind::RESOURCE_SECTIONS {
                visit(kind, resource.section(kind), kind.name());
            }
            for host in &resource.hosts {
                visit(SectionKind::Disk, &host.disk_options, "per-host disk");
                visit(SectionKind::Options, &host.options, "per-host options");
            }
        }
        out.extend(self.unimplemented_statements.0.iter().cloned());
        out
    }
}

/// The option sections of `common { }` (and of a resource).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceDefaults {
    /// `net { }` (a `protocol` statement is stored here, as drbdadm does).
    pub net: Section,
    /// `disk { }`.
    pub disk: Section,
    /// `startup { }`.
    pub startup: Section,
    /// `handlers { }`.
    pub handlers: Section,
    /// `options { }`.
    pub options: Section,
}

impl ResourceDefaults {
    /// The section of `kind` (Global is not a resource section: net is returned).
    pub fn section(&self, kind: SectionKind) -> &Section {
        match kind {
            SectionKind::Disk => &self.disk,
            SectionKind::Startup => &self.startup,
            SectionKind::Handlers => &self.handlers,
            SectionKind::Options => &self.options,
            SectionKind::Net | SectionKind::Global => &self.net,
        }
    }

    /// The mutable section of `kind` (Global maps to net, see [`Self::section`]).
    pub fn section_mut(&mut self, kind: SectionKind) -> &mut Section {
        match kind {
            SectionKind::Disk => &mut self.disk,
            SectionKind::Startup => &mut self.startup,
            SectionKind::Handlers => &mut self.handlers,
            SectionKind::Options => &mut self.options,
            SectionKind::Net | SectionKind::Global => &mut self.net,
        }
    }
}

/// One `resource NAME { }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The resource name.
    pub name: String,
    /// The replication protocol (`net.protocol`, default C).
    pub protocol: Protocol,
    /// `net { }` with the common options inherited.
    pub net: Section,
    /// `disk { }` (and the disk options of an 8.3 `syncer { }`).
    pub disk: Section,
    /// `startup { }`.
    pub startup: Section,
    /// `handlers { }`.
    pub handlers: Section,
    /// `options { }`.
    pub options: Section,
    /// The host sections, in the order written.
    pub hosts: Vec<Host>,
    /// Where `resource NAME {` was written.
    pub(crate) defined_at: NotCompared<Location>,
}

impl Resource {
    /// The host section for `node` (a host name as in `on NODE { }`).
    pub fn host(&self, node: &str) -> Result<&Host, ConfigError> {
        self.hosts
            .iter()
            .find(|h| h.name == node)
            .ok_or_else(|| ConfigError::UnknownHost {
                at: self.defined_at.0.clone(),
                resource: self.name.clone(),
                host: node.to_string(),
            })
    }

    /// The other host of a two-host resource, when `node` is one of them.
    pub fn peer_of(&self, node: &str) -> Option<&Host> {
        match self.hosts.as_slice() {
            [a, b] if a.name == node => Some(b),
            [a, b] if b.name == node => Some(a),
            _ => None,
        }
    }

    /// Whether the resource has exactly one host section (runs without a peer).
    pub fn is_standalone(&self) -> bool {
        self.hosts.len() == 1
    }

    /// Where the resource is defined.
    pub fn location(&self) -> &Location {
        &self.defined_at.0
    }

    /// The section of `kind` (Global maps to net).
    pub fn section(&self, kind: SectionKind) -> &Section {
        match kind {
            SectionKind::Disk => &self.disk,
            SectionKind::Startup => &self.startup,
            SectionKind::Handlers => &self.handlers,
            SectionKind::Options => &self.options,
            SectionKind::Net | SectionKind::Global => &self.net,
        }
    }

    /// Every option resolved to a typed value, DRBD 8.4 defaults filled in.
    pub fn settings(&self) -> Settings {
        Settings::resolve(self)
    }
}

/// Where the meta-data of a device lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaDisk {
    /// `meta-disk internal;`: at the end of the backing disk.
    Internal,
    /// `meta-disk DEV;` or `flexible-meta-disk DEV;`: a whole external device
    /// whose size follows the data size.
    FlexibleExternal(PathBuf),
    /// `meta-disk DEV [N];`: slot N (128 MiB each) of an external device.
    Indexed(PathBuf, u32),
}

/// One `on HOST { }` (or `floating ADDR { }`) section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The host name (`uname -n`), or `ADDR:PORT` for a floating section.
    pub name: String,
    /// The minor number (`/dev/drbdN`): always set once assembled.
    pub minor: Option<u32>,
    /// The device name when one was written (`/dev/drbd0`, `/dev/drbd_web`).
    pub device: Option<String>,
    /// The backing disk: always set once assembled.
    pub disk: Option<PathBuf>,
    /// The replication address.
    pub address: Option<SocketAddr>,
    /// Where the meta-data lives.
    pub meta_disk: MetaDisk,
    /// rdbd extension: where this host's NBD server listens for this resource.
    pub nbd_address: Option<SocketAddr>,
    /// The family keyword of `address`.
    pub address_family: AddressFamily,
    /// Whether this is a `floating` section (matched by address, not by name).
    pub floating: bool,
    /// Per-host `disk { }` options (kept; not implemented).
    pub disk_options: Section,
    /// Per-host `options { }` (kept; not implemented).
    pub options: Section,
    /// Where the section starts.
    pub(crate) defined_at: NotCompared<Location>,
}

impl Host {
    /// Where the host section starts.
    pub fn location(&self) -> &Location {
        &self.defined_at.0
    }

    /// The device path: the name written, else `/dev/drbdMINOR`.
    pub fn device_path(&self) -> Option<String> {
        self.device
            .clone()
            .or_else(|| self.minor.map(|m| format!("/dev/drbd{m}")))
    }
}
