//! The NBD side of the node: the exports (one per resource that is up) and the
//! per-request path from an NBD command to the resource.
//!
//! Opening an export registers an NBD client on the resource ([`OpenGuard`]);
//! the NBD server drops the handle when the client goes away. Local I/O errors are
//! logged here with the resource and offset and reach the client as EIO.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::resource::ResourceIoError;
use rdbd_nbd::{
    BlockDevice, DeviceError, ExportInfo, Exports, Extent, OpenError, WriteZeroesFlags,
};
use rdbd_types::AlignedBuf;

use crate::resource::{OpenGuard, Resource};

/// The largest request the export accepts, in bytes (the NBD default maximum).
pub const MAX_REQUEST_BYTES: u32 = 32 << 20;

/// The resources that are up, by name, shared between the control loop and the
/// NBD server.
#[derive(Debug, Default)]
pub struct NodeExports {
    resources: RwLock<BTreeMap<String, Arc<Resource>>>,
}

impl NodeExports {
    /// Adds a resource that came up.
    pub fn insert(&self, resource: Arc<Resource>) {
        self.write().insert(resource.name.clone(), resource);
    }

    /// Removes a resource that went down.
    pub fn remove(&self, name: &str) -> Option<Arc<Resource>> {
        self.write().remove(name)
    }

    /// The resource of that name, if up.
    pub fn get(&self, name: &str) -> Option<Arc<Resource>> {
        self.read().get(name).cloned()
    }

    /// Every resource that is up, by name.
    pub fn all(&self) -> Vec<Arc<Resource>> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Resource>>> {
        self.resources.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Resource>>> {
        self.resources.write().unwrap_or_else(|p| p.into_inner())
    }

    fn lookup(&self, name: &str) -> Result<Arc<Resource>, OpenError> {
        self.get(name)
            .ok_or_else(|| OpenError::Unknown(format!("no resource '{name}' is up on this node")))
    }
}

fn export_info(resource: &Resource) -> ExportInfo {
    let block = resource.disk.logical_block_size().max(512);
    ExportInfo {
        size_bytes: resource.size_bytes_now(),
        read_only: false,
        description: format!("rdbd resource {} (minor {})", resource.name, resource.minor),
        block_size_min: block,
        block_size_preferred: 4096.max(block),
        block_size_max: MAX_REQUEST_BYTES,
        can_flush: true,
        can_fua: true,
        can_trim: true,
        can_write_zeroes: true,
        can_fast_zero: false,
        can_multi_conn: true,
        can_cache: true,
    }
}

impl Exports for NodeExports {
    type Device = ExportHandle;

    fn list(&self) -> Vec<(String, String)> {
        self.all()
            .iter()
            .map(|r| (r.name.clone(), export_info(r).description))
            .collect()
    }

    fn info(&self, name: &str) -> Result<ExportInfo, OpenError> {
        let resource = self.lookup(name)?;
        resource
            .check_openable()
            .map_err(|e| OpenError::Policy(e.to_string()))?;
        Ok(export_info(&resource))
    }

    fn open(&self, name: &str) -> Result<(ExportInfo, ExportHandle), OpenError> {
        let resource = self.lookup(name)?;
        let guard = resource
            .open_client()
            .map_err(|e| OpenError::Policy(e.to_string()))?;
        tracing::info!(resource = name, "NBD client opened the export");
        Ok((export_info(&resource), ExportHandle { guard }))
    }
}

/// An open export: the NBD server's device for one client connection.
#[derive(Debug)]
pub struct ExportHandle {
    guard: OpenGuard,
}

impl ExportHandle {
    fn resource(&self) -> &Resource {
        self.guard.resource()
    }

    fn local_error(&self, op: &str, offset: u64, err: impl Into<ResourceIoError>) -> DeviceError {
        let err: ResourceIoError = err.into();
        tracing::error!(resource = %self.resource().name, op, offset, error = %err, "local I/O error");
        crate::handlers::on_local_io_error(self.guard.resource());
        DeviceError::Io(std::io::Error::other(err.to_string()))
    }
}

impl Drop for ExportHandle {
    fn drop(&mut self) {
        tracing::info!(resource = %self.resource().name, "NBD client closed the export");
    }
}

impl BlockDevice for ExportHandle {
    async fn read(&self, offset: u64, len: u32) -> Result<AlignedBuf, DeviceError> {
        self.resource()
            .read(offset, len)
            .await
            .map_err(|e| self.local_error("read", offset, e))
    }

    async fn write(&self, offset: u64, data: AlignedBuf, fua: bool) -> Result<(), DeviceError> {
        self.resource()
            .write(offset, data, fua)
            .await
            .map_err(|e| self.local_error("write", offset, e))
    }

    async fn flush(&self) -> Result<(), DeviceError> {
        self.resource()
            .flush()
            .await
            .map_err(|e| self.local_error("flush", 0, e))
    }

    async fn trim(&self, offset: u64, len: u32, fua: bool) -> Result<(), DeviceError> {
        self.resource()
            .trim(offset, u64::from(len), fua)
            .await
            .map_err(|e| self.local_error("trim", offset, e))
    }

    async fn write_zeroes(
        &self,
        offset: u64,
        len: u32,
        flags: WriteZeroesFlags,
    ) -> Result<(), DeviceError> {
        if flags.fast_zero {
            // Zeroing may need real writes here; the client asked us to fail fast instead.
            return Err(DeviceError::NotSupported);
        }
        self.resource()
            .write_zeroes(offset, u64::from(len), !flags.no_hole, flags.fua)
            .await
            .map_err(|e| self.local_error("write-zeroes", offset, e))
    }

    async fn cache(&self, offset: u64, len: u32) -> Result<(), DeviceError> {
        // A prefetch: read and drop. It warms the page cache only in buffered mode,
        // but it is always correct.
        self.resource()
            .read(offset, len)
            .await
            .map(drop)
            .map_err(|e| self.local_error("cache", offset, e))
    }

    async fn block_status(&self, offset: u64, len: u32) -> Result<Vec<Extent>, DeviceError> {
        let map = self
            .resource()
            .disk
            .allocation(offset, u64::from(len))
            .await
            .map_err(|e| self.local_error("block-status", offset, e))?;
        let mut extents = Vec::with_capacity(map.len());
        for (length, is_hole) in map {
            let length = u32::try_from(length).unwrap_or(u32::MAX);
            extents.push(Extent {
                length,
                flags: if is_hole { 3 } else { 0 },
            });
        }
        if extents.is_empty() {
            extents.push(Extent {
                length: len,
                flags: 0,
            });
        }
        Ok(extents)
    }

    fn defer_submissions<T>(&self, f: impl FnOnce() -> T) -> T {
        rdbd_storage::defer_submissions(f)
    }

    fn submit_deferred(&self) {
        rdbd_storage::submit_deferred()
    }
}
