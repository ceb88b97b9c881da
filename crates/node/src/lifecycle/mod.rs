//! Resource-lifecycle commands on a resource that is up (D84 drbd_nl.c, drbdadm):
//!
//! - [`detach`]: the local disk goes Diskless. Choice: rdbd does not serve a diskless
//!   Primary's I/O through the peer, so `detach` of a Primary with NBD clients is
//!   refused and a diskless Primary refuses new clients.
//! - [`attach`]: the meta-data is read again (apply-al, bitmap); while connected the disk
//!   is Negotiating and the sync handshake decides the resync.
//! - [`invalidate_remote`]: a full sync with this node as SyncSource.
//! - [`resize`]: grow with the backing device (the meta-data moves to its new end).
//! - [`adjust`]: compares the configuration the resource runs with against the file and
//!   runs only the commands needed.
//!
//! The per-resource running configuration is kept in [`RunningConfigs`].

pub mod adjust;
pub mod attach;
mod controller;
pub mod detach;
pub mod diskless_io;
pub mod resize;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::resource::Resource;

/// The configuration each resource was brought up (or last adjusted) with.
#[derive(Debug, Default)]
pub struct RunningConfigs {
    by_name: Mutex<HashMap<String, rdbd_config::Resource>>,
}

impl RunningConfigs {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, rdbd_config::Resource>> {
        self.by_name.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the configuration `name` runs with now.
    pub fn set(&self, name: &str, config: rdbd_config::Resource) {
        self.map().insert(name.to_string(), config);
    }

    /// The configuration `name` runs with.
    pub fn get(&self, name: &str) -> Option<rdbd_config::Resource> {
        self.map().get(name).cloned()
    }

    /// Forgets `name` (down).
    pub fn remove(&self, name: &str) {
        self.map().remove(name);
    }
}

/// `invalidate-remote`: the peer's disk is marked fully out of sync and becomes the
/// target of a full sync from this node.
pub async fn invalidate_remote(resource: &Arc<Resource>) -> Result<String, String> {
    let link = resource
        .peer_link()
        .ok_or("the resource has no peer configured (standalone)")?;
    link.invalidate_remote().await?;
    Ok(String::new())
}
