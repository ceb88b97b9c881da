//! `resize`: the device grows with its backing device (D84 drbd_nl.c `drbd_adm_resize`,
//! `drbd_determine_dev_size`; drbd_receiver.c `receive_sizes`).
//!
//! - The new size is what the backing device offers once the meta-data moved to its new
//!   end (or `--size`, which may not exceed that; `--size 0` means none, as DRBD's
//!   `u_size` 0).
//! - Shrinking needs an explicit `--size` (DRBD: "Implicit shrink not allowed. Use
//!   --size=Ns for explicit shrink.") and, in rdbd, `--force` as well: DRBD 8.4 shrinks on
//!   `--size` alone, rdbd asks for the confirmation because it cannot tell whether a file
//!   system would be cut. The size must be a whole number of 4 KiB blocks (rdbd's
//!   bitmap granularity), at least one. Refused while a resync runs (DRBD
//!   `ERR_RESIZE_RESYNC`: "Resize not allowed during resync.") and while NBD clients
//!   hold the device (they negotiated the old size and could address past the new end).
//!   Connected: the peer is asked first with `P_SIZES` carrying the new size as `u_size`
//!   (DRBD `receive_sizes`: "Peer sets u_size to N sectors"); once it answered with the
//!   new size, this node shrinks too. Not connected: refused (the peer would keep its
//!   size and DRBD refuses the next connection: "The peer's disk size is too small!");
//!   a standalone resource shrinks alone. The meta-data stays where it is: only
//!   `la_size_sect` and the bitmap change (crate::meta::ResourceMeta::shrink), and the
//!   size survives `down`/`up`.
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
    /// `--force`: confirms a shrink (a `--size` below the current size).
    pub force: bool,
}

/// The smallest size a shrink may leave, and its granularity: one bitmap block.
pub const SHRINK_BLOCK_BYTES: u64 = 4096;

/// DRBD's refusal while a resync runs (drbdsetup's text for `ERR_RESIZE_RESYNC`).
pub const RESIZE_RESYNC: &str = "Resize not allowed during resync.";

/// Why this node cannot shrink now (`None`: it can): a resync, NBD clients.
pub fn shrink_blocker(resource: &Resource) -> Option<String> {
    let st = resource.state();
    if resyncing(st.cstate) {
        return Some(format!("{RESIZE_RESYNC} ({})", st.cstate));
    }
    if st.open_clients > 0 {
        return Some(format!(
            "the device is in use by {} NBD client(s), which negotiated the old size; \
             disconnect them first",
            st.open_clients
        ));
    }
    None
}

fn resyncing(cstate: ConnState) -> bool {
    cstate.is_syncing()
        || matches!(
            cstate,
            ConnState::WFBitMapS | ConnState::WFBitMapT | ConnState::WFSyncUUID
        )
}

/// Shrinks this node's device to `target_sectors`: writes are held off while the
/// superblock and the bitmap change. Returns the sizes before and after.
pub async fn shrink_local(resource: &Arc<Resource>, target_sectors: u64) -> Result<Grown, String> {
    let _gate = resource.io_gate.write().await;
    if let Some(why) = shrink_blocker(resource) {
        return Err(why);
    }
    let r = Arc::clone(resource);
    let shrunk = tokio::task::spawn_blocking(move || r.meta.shrink(target_sectors))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("shrinking the meta-data failed: {e}"))?;
    resource.set_shrunk_size_bytes(shrunk.new_sectors * 512);
    tracing::info!(
        resource = %resource.name,
        old_sectors = shrunk.old_sectors,
        new_sectors = shrunk.new_sectors,
        "size = {} KB (was {} KB); shrunk, the meta-data stays at the end of {}",
        shrunk.new_sectors / 2,
        shrunk.old_sectors / 2,
        resource.disk.path().display()
    );
    Ok(shrunk)
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
    if resyncing(st.cstate) {
        return Err(format!(
            "{RESIZE_RESYNC} (a resync runs: {}); resize after it",
            st.cstate
        ));
    }
    let current = resource.size_bytes_now() / 512;
    let offered = capacity(resource).await?;
    let explicit = opts.size_bytes.filter(|&b| b != 0);
    if let Some(b) = explicit.filter(|&b| b < current * 512) {
        return shrink(resource, current, b, opts.force).await;
    }
    let target = match explicit {
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
        // The backing device offers less than the device's size.
        return Err(format!(
            "Implicit shrink not allowed: the backing device offers {} bytes, less than the \
             {} in use. Use --size={}s --force for an explicit shrink",
            target * 512,
            current * 512,
            target
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

/// A `--size` below the current size (`current_sectors`).
async fn shrink(
    resource: &Arc<Resource>,
    current_sectors: u64,
    size_bytes: u64,
    force: bool,
) -> Result<String, String> {
    let name = &resource.name;
    let current_bytes = current_sectors * 512;
    if size_bytes < SHRINK_BLOCK_BYTES || size_bytes % SHRINK_BLOCK_BYTES != 0 {
        return Err(format!(
            "--size {size_bytes} bytes: a shrink needs a whole number of 4 KiB blocks, at least one \
             (the device has {current_bytes} bytes)"
        ));
    }
    if !force {
        return Err(format!(
            "refusing to shrink {name} from {current_bytes} to {size_bytes} bytes without --force: \
             the data past {size_bytes} bytes is cut off on both nodes (shrink the file system \
             on it first); confirm with 'rdbdadm resize --size={}s --force {name}'",
            size_bytes / 512
        ));
    }
    if let Some(why) = shrink_blocker(resource) {
        return Err(format!("cannot shrink now: {why}"));
    }
    let target = size_bytes / 512;
    let st = resource.state();
    match resource.peer_link() {
        Some(link) if st.cstate == ConnState::Connected => {
            let agreed = link.resize(target, false).await?;
            if agreed != target {
                return Err(format!(
                    "the peer did not shrink to {size_bytes} bytes (it has {} bytes); see its log",
                    agreed * 512
                ));
            }
        }
        Some(_) => {
            return Err(format!(
                "not connected ({}): the peer would keep {current_bytes} bytes and refuse the next \
                 connection (\"The peer's disk size is too small!\"); connect first",
                st.cstate
            ))
        }
        None => {
            shrink_local(resource, target).await?;
        }
    }
    Ok(String::new())
}
