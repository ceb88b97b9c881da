//! One resource of a group: what heartbeat's `IPaddr`, `drbddisk`, `Filesystem` and
//! service scripts were, in rdbd's terms.

use serde::{Deserialize, Serialize};

/// A resource and its optional per-step timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSpec {
    /// What the resource is.
    #[serde(flatten)]
    pub kind: ResourceKind,
    /// Start timeout (default: `commands.start_timeout_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout_ms: Option<u64>,
    /// Stop timeout (default: `commands.stop_timeout_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout_ms: Option<u64>,
}

/// The kinds of resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ResourceKind {
    /// A virtual IP: `ip addr add ADDRESS dev INTERFACE` (`IPaddr::10.0.0.17/24/eth0`).
    Ip {
        /// `IP/PREFIX` (`/32` when no prefix).
        address: String,
        /// The interface; default: the one `ip route get IP` names.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interface: Option<String>,
    },
    /// An rdbd resource made Primary on start and Secondary on stop (`drbddisk::RES`).
    Rdbd {
        /// The resource name.
        resource: String,
    },
    /// A file system on an rdbd export (attached as a block device) or on a device path,
    /// checked and mounted (`Filesystem::/dev/drbd0::/data::ext4`).
    Filesystem {
        /// The rdbd resource whose export holds the file system, or ...
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
        /// ... a block device path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        /// The mount point.
        mountpoint: String,
        /// The file system type (`ext4`); empty: let mount guess.
        #[serde(default)]
        fstype: String,
        /// Mount options (`-o`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        options: Option<String>,
        /// Run `fsck -a` before mounting.
        #[serde(default = "yes")]
        fsck: bool,
    },
    /// A service script with LSB `start`/`stop`/`status` (`killnfsd`, `rsdata`,
    /// `/etc/init.d/nfs`): `SCRIPT [ARGS...] ACTION`.
    Script {
        /// A path, or a name searched in `commands.script_dirs`.
        name: String,
        /// Arguments before the action (`Name::a::b`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        /// Call `status` to monitor it (only for scripts that implement LSB status).
        #[serde(default = "yes")]
        monitor: bool,
    },
}

fn yes() -> bool {
    true
}

/// Where a file system lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// The export of an rdbd resource.
    Export(String),
    /// A block device path.
    Path(String),
}

impl ResourceSpec {
    /// A resource with default timeouts.
    pub fn new(kind: ResourceKind) -> Self {
        ResourceSpec {
            kind,
            start_timeout_ms: None,
            stop_timeout_ms: None,
        }
    }

    /// A short label for logs (`ip 10.0.0.17/24`, `rdbd data`, ...).
    pub fn label(&self) -> String {
        match &self.kind {
            ResourceKind::Ip { address, .. } => format!("ip {address}"),
            ResourceKind::Rdbd { resource } => format!("rdbd {resource}"),
            ResourceKind::Filesystem { mountpoint, .. } => format!("filesystem {mountpoint}"),
            ResourceKind::Script { name, .. } => format!("script {name}"),
        }
    }

    /// For a file system: where it lives (None when neither or both are given).
    pub fn device(&self) -> Option<Device> {
        match &self.kind {
            ResourceKind::Filesystem {
                resource: Some(r),
                device: None,
                ..
            } => Some(Device::Export(r.clone())),
            ResourceKind::Filesystem {
                resource: None,
                device: Some(d),
                ..
            } => Some(Device::Path(d.clone())),
            _ => None,
        }
    }
}
