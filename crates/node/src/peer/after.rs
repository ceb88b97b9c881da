//! `resync-after` between the resources of this node (D84 drbd_worker.c
//! `_drbd_may_sync_now`, `_drbd_pause_after`, `_drbd_resume_next`): a resource whose
//! `resync-after` chain reaches a resource that is resyncing or verifying (SyncSource ..=
//! PausedSyncT) or has a pause flag set, may not sync now; its resync pauses with
//! `aftr_isp` (the `a` flag) until the dependency is done.
//!
//! The resources of the daemon are found by name in a registry filled by
//! [`super::start`]; each session re-evaluates its own flag every 100 ms
//! ([`may_sync_now`]). A dependency that is not up, diskless or unknown does not hold
//! anything back; a cycle ends the walk (DRBD refuses cycles at configuration time).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rdbd_types::{ConnState, DiskState};

use crate::resource::Resource;

fn registry() -> &'static Mutex<HashMap<String, Weak<Resource>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<Resource>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Makes `resource` findable by name for the `resync-after` walk of other resources.
pub(super) fn register(resource: &Arc<Resource>) {
    let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, w| w.strong_count() > 0);
    map.insert(resource.name.clone(), Arc::downgrade(resource));
}

fn lookup(name: &str) -> Option<Arc<Resource>> {
    // `resync-after r0/0` (8.4 resource/volume) names the resource's only volume.
    let name = name.split('/').next().unwrap_or(name);
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(name)
        .and_then(Weak::upgrade)
}

/// Whether a resync or verify state holds the resources that depend on this one.
fn holds_back(cs: ConnState) -> bool {
    matches!(
        cs,
        ConnState::SyncSource
            | ConnState::SyncTarget
            | ConnState::VerifyS
            | ConnState::VerifyT
            | ConnState::PausedSyncS
            | ConnState::PausedSyncT
    )
}

/// `_drbd_may_sync_now` for a resource whose `resync-after` is `first`.
pub(super) fn may_sync_now(own_name: &str, first: Option<&str>) -> bool {
    let mut seen = vec![own_name.to_string()];
    let mut next = first.map(str::to_string);
    while let Some(name) = next.take() {
        if seen.contains(&name) {
            return true;
        }
        let Some(other) = lookup(&name) else {
            return true;
        };
        seen.push(name);
        let st = other.state();
        if st.disk == DiskState::Diskless {
            return true;
        }
        let Some(link) = other.peer_link() else {
            return true;
        };
        if holds_back(st.cstate)
            || link.aftr_isp.load(Ordering::SeqCst)
            || link.peer_isp.load(Ordering::SeqCst)
            || link.user_isp.load(Ordering::SeqCst)
        {
            return false;
        }
        next = link.resync_after();
    }
    true
}
