//! The resync handlers (DRBD drbd_worker.c `drbd_start_resync`): `before-resync-target`
//! and `before-resync-source` run before a resync starts and may stop it; a non-zero
//! exit code drops the connection (`before-resync-source` exit code 3 is ignored, as
//! DRBD does for old userland tools). At the end of a resync ([`resync_finished`],
//! `drbd_resync_finished`): `unfence-peer` when fencing is configured and both disks
//! are UpToDate, then `after-resync-target` on the target (in the background).

use std::sync::Arc;

use rdbd_types::DiskState;

use super::{run, Handler};
use crate::resource::Resource;

/// A resync ended successfully; `as_target`: this node was the SyncTarget.
pub fn resync_finished(resource: &Arc<Resource>, as_target: bool) {
    let st = resource.state();
    let unfence = resource.hooks.fencing().fences()
        && st.disk == DiskState::UpToDate
        && st.peer_disk == DiskState::UpToDate;
    if !unfence && !as_target {
        return;
    }
    let resource = Arc::clone(resource);
    tokio::spawn(async move {
        if unfence {
            run(&resource, Handler::UnfencePeer).await;
        }
        if as_target {
            run(&resource, Handler::AfterResyncTarget).await;
        }
    });
}

/// `before-resync-target`; `Err` (the reason) means drop the connection.
pub async fn before_resync_target(resource: &Resource) -> Result<(), String> {
    let code = run(resource, Handler::BeforeResyncTarget).await.exit_code();
    if code > 0 {
        tracing::info!(resource = %resource.name, "before-resync-target handler returned {code}, dropping connection.");
        return Err(format!("before-resync-target handler returned {code}"));
    }
    Ok(())
}

/// `before-resync-source`; `Err` (the reason) means drop the connection.
pub async fn before_resync_source(resource: &Resource) -> Result<(), String> {
    let code = run(resource, Handler::BeforeResyncSource).await.exit_code();
    match code {
        0 => Ok(()),
        3 => {
            tracing::info!(resource = %resource.name, "before-resync-source handler returned 3, ignoring. Old userland tools?");
            Ok(())
        }
        _ => {
            tracing::info!(resource = %resource.name, "before-resync-source handler returned {code}, dropping connection.");
            Err(format!("before-resync-source handler returned {code}"))
        }
    }
}
