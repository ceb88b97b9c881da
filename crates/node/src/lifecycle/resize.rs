//! `resize`: the device grows with its backing device (D84 drbd_nl.c `drbd_adm_resize`,
//! `drbd_determine_dev_size`; drbd_receiver.c `receive_sizes`).
//!
//! - The new size is what the backing device offers once the meta-data moved to its new
//!   end (or `--size`, which may not exceed that). Shrinking is refused: rdbd cannot
//!   tell whether a file system would be cut.
//! - Connected: the peer is asked first (`P_SIZES` with the wanted size); it grows as
//!   far as its own device allows and answers with its new size; both end at the
//!   minimum. The new area is out of sync on both and resynced from the Primary (or the
//!   node holding RESOLVE_CONFLICTS), unless `--assume-clean`.
//! - Not connected: refused unless `--assume-peer-has-space` (then this node grows
//!   alone); a standalone resource grows alone.

use std::sync::Arc;

use rdbd_types::{ConnState, DiskState};

use crate::meta::{capacity_sectors, Grown};
use crate::resource::Resource;

/// The options of `rdbdadm resize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResizeOptions {
    /// `--size`: the wanted size in bytes (default: all the device offers).
    pub size_bytes: Option<u64>,
    /// `--assume-clean`: the new area is not resynced.
    pub assume_clean: bool,
    /// `--assume-peer-has-space`: grow even without a connected peer.
    pub assume_peer_has_space: bool,
}

/// The data size (sectors) this node's backing device offers now.
pub async fn capacity(resource: &Arc<Resource>) -> Result<u64, String> {
    resource
        .disk
        .refresh_size()
        .map_err(|e| format!("cannot read the backing device's size: {e}"))?;
    let r = Arc::clone(resource);
    tokio::task::spawn_blocking(move || {
        let layout = r.meta.layout();
        capacity_sectors(r.disk.path(), &r.meta.kind(), &layout)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot compute the new meta-data layout: {e}"))
}

/// Grows this node's device to `target_sectors` (at most what it offers): writes are
/// held off while the meta-data moves. Returns the sizes before and after.
pub async fn grow_local(
    resource: &Arc<Resource>,
    target_sectors: u64,
    new_area_out_of_sync: bool,
) -> Result<Grown, String> {
    resource
        .disk
        .refresh_size()
        .map_err(|e| format!("cannot read the backing device's size: {e}"))?;
    let _gate = resource.io_gate.write().await;
    let r = Arc::clone(resource);
    let grown = tokio::task::spawn_blocking(move || {
        let kind = r.meta.kind();
        r.meta
            .grow(r.disk.path(), &kind, target_sectors, new_area_out_of_sync)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("moving the meta-data failed: {e}"))?;
    resource.set_size_bytes(grown.new_sectors * 512);
    tracing::info!(
        resource = %resource.name,
        old_sectors = grown.old_sectors,
        new_sectors = grown.new_sectors,
        new_area_out_of_sync,
        "size = {} KB (was {} KB); meta-data moved to the end of {}",
        grown.new_sectors / 2,
        grown.old_sectors / 2,
        resource.disk.path().display()
    );
    Ok(grown)
}

/// `resize` on a resource that is up.
pub async fn resize(resource: &Arc<Resource>, opts: ResizeOptions) -> Result<String, String> {
    let st = resource.state();
    if st.disk == DiskState::Diskless {
        return Err("the disk is detached (Diskless); attach it first".into());
    }
    if st.cstate.is_syncing()
        || matches!(
            st.cstate,
            ConnState::WFBitMapS | ConnState::WFBitMapT | ConnState::WFSyncUUID
        )
    {
        return Err(format!("a resync runs ({}); resize after it", st.cstate));
    }
    let current = resource.size_bytes_now() / 512;
    let offered = capacity(resource).await?;
    let target = match opts.size_bytes {
        Some(b) => {
            if b % 512 != 0 {
                return Err(format!("--size {b} bytes is not a multiple of 512"));
            }
            let s = b / 512;
            if s > offered {
                return Err(format!(
                    "--size {b} bytes is larger than the backing device offers ({} bytes)",
                    offered * 512
                ));
            }
            s
        }
        None => offered,
    };
    if target < current {
        return Err(format!(
            "refusing to shrink from {} to {} bytes: rdbd does not shrink a device (a file system on it would be cut); \
             shrink the file system, then 'down', recreate the meta-data and 'up'",
            current * 512,
            target * 512
        ));
    }
    if target == current {
        return Ok(format!(
            "{}: the size is {} bytes already; nothing to do",
            resource.name,
            current * 512
        ));
    }
    match resource.peer_link() {
        Some(link) if st.cstate == ConnState::Connected => {
            let agreed = link.resize(target, opts.assume_clean).await?;
            if agreed <= current {
                return Err(format!(
                    "the peer has no space to grow beyond {} bytes (it offers {} bytes)",
                    current * 512,
                    agreed * 512
                ));
            }
            Ok(String::new())
        }
        Some(_) if !opts.assume_peer_has_space => Err(format!(
            "not connected ({}): the peer's size is unknown; connect first or use --assume-peer-has-space",
            st.cstate
        )),
        _ => {
            grow_local(resource, target, false).await?;
            Ok(String::new())
        }
    }
}
