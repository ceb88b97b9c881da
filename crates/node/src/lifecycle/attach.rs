//! `attach`: the disk of a Diskless resource is used again (D84 drbd_nl.c
//! `drbd_adm_attach`): the devices are claimed, the activity log applied, the superblock
//! and the bitmap read (exactly as `up`). While connected to a peer with a disk the new
//! disk is Negotiating and the sync handshake decides (a disk that missed writes becomes
//! SyncTarget of the blocks the peer's bitmap names); otherwise it takes the state its
//! meta-data flags give.
//!
//! The backing disk and meta-disk must be the ones the resource runs with (changing them
//! needs `down` and `up`).

use std::sync::Arc;

use rdbd_replicator::state::{Event, Request};
use rdbd_types::DiskState;

use crate::meta::{meta_disk_kind, AttachSettings};
use crate::resource::Resource;

/// Attaches the disk of `resource` as `config` (the resource's section) describes it.
pub async fn attach(
    resource: &Arc<Resource>,
    config: &rdbd_config::Resource,
    node: &str,
) -> Result<String, String> {
    let st = resource.state();
    if st.disk != DiskState::Diskless {
        return Err(format!(
            "the disk is attached already (disk is {})",
            st.disk
        ));
    }
    if st.role == rdbd_types::Role::Primary {
        return Err("refusing to attach the disk of a Primary: the writes it served through the peer make it \
             a SyncTarget, and rdbd serves a Primary's reads from its own disk ('rdbdadm secondary' first, \
             then attach, then primary)"
            .into());
    }
    let host = config.host(node).map_err(|e| e.to_string())?;
    let disk_path = host
        .disk
        .clone()
        .ok_or("no 'disk' configured for this node")?;
    if disk_path != resource.disk.path() {
        return Err(format!(
            "the configured disk {} is not the one the resource runs with ({}); that needs 'down' and 'up'",
            disk_path.display(),
            resource.disk.path().display()
        ));
    }
    let kind = meta_disk_kind(&host.meta_disk)?;
    let settings = config.settings();
    let attach_settings = AttachSettings {
        al_extents: settings.al_extents,
        md_flushes: settings.md_flushes,
        fencing_dont_care: settings.fencing == "dont-care",
    };
    let r = Arc::clone(resource);
    let path = disk_path.clone();
    let info = tokio::task::spawn_blocking(move || r.meta.reattach(&path, &kind, attach_settings))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{e} (on {})", disk_path.display()))?;
    if info.apply_al_bits > 0 {
        tracing::info!(resource = %resource.name, bits = info.apply_al_bits, "marked additional blocks out of sync based on the activity log");
    }
    // The state machine takes the identifiers and flags read now (Negotiating while
    // connected to a peer with a disk, otherwise the state the flags give).
    let stepped = resource
        .step_admin(Event::Attach {
            gens: info.gens,
            md_flags: info.md_flags,
        })
        .await
        .map_err(|e| e.to_string())?;
    if let Some(Err(e)) = stepped.outcome(Request::Attach) {
        // Leave the meta-data as the detach left it.
        let _ = resource.meta.release().await;
        return Err(format!("State change failed: ({}) {e}", e.code()));
    }
    let now = resource.state().disk;
    tracing::info!(resource = %resource.name, disk = %disk_path.display(), "disk( Diskless -> {now} ): attached");
    if let Some(link) = resource.peer_link() {
        // P_UUIDS + P_STATE: a connected peer starts the sync handshake.
        link.state_changed();
    }
    Ok(String::new())
}
