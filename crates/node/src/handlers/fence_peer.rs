//! The fence-peer run after a Primary lost its peer (DRBD `conn_disconnect` →
//! `conn_try_outdate_peer_async`): [`on_connection_lost`] decides and freezes I/O before
//! the lost requests are failed, [`fence`] runs the handler and applies its verdict
//! ([`try_outdate_peer`]); [`before_promote`] is the same for `primary` of a node that
//! is not connected.

use std::sync::Arc;

use rdbd_types::{ConnState, DiskState, Role};
use tokio::sync::Notify;

use super::fencing::{must_fence, FencePolicy, FenceVerdict};
use super::{run, Handler};
use crate::resource::{Resource, ResourceState, StateError};

/// Called when a connection ended, before its unacknowledged requests are failed.
/// Returns whether the peer must be fenced; with `resource-and-stonith` I/O is frozen
/// from now on (DRBD's `susp-fen`).
pub fn on_connection_lost(resource: &Resource, before: &ResourceState) -> bool {
    let policy = resource.hooks.fencing();
    if !must_fence(
        policy,
        before.role == rdbd_types::Role::Primary,
        before.peer_disk,
    ) {
        return false;
    }
    if policy == FencePolicy::ResourceAndStonith {
        resource.hooks.fence.freeze();
    }
    true
}

/// Runs fence-peer and applies its exit code: the peer's disk becomes Outdated
/// (recorded as the meta-data flag PEER_OUT_DATED) and frozen I/O resumes, or, for a
/// failing handler, I/O stays frozen.
pub async fn fence(resource: Arc<Resource>, changed: Arc<Notify>) {
    let outdated = try_outdate_peer(&resource).await;
    if outdated {
        resource.hooks.fence.resume();
    } else if resource.hooks.fence.is_frozen() {
        tracing::warn!(resource = %resource.name, "the peer is not outdated: I/O stays frozen (rdbdadm resume-io, or reconnect)");
    }
    changed.notify_waiters();
}

/// `primary` of a node that is not connected, with fencing (DRBD `drbd_set_role`:
/// `SS_PRIMARY_NOP` while the peer's disk may be UpToDate): fence-peer runs first; the
/// promotion goes on once the peer is Outdated, or with `force` ("Forced into split
/// brain situation!", the peer is taken as Outdated), and is refused otherwise.
pub async fn before_promote(resource: &Resource, force: bool) -> Result<(), StateError> {
    let st = resource.state();
    let may_promote = st.disk == DiskState::UpToDate || force;
    if !resource.hooks.fencing().fences()
        || st.role == Role::Primary
        || st.cstate >= ConnState::Connected
        || st.peer_disk < DiskState::DUnknown
        || !may_promote
    {
        return Ok(());
    }
    if try_outdate_peer(resource).await {
        return Ok(());
    }
    if !force {
        return Err(StateError::PrimaryNop);
    }
    tracing::warn!(resource = %resource.name, "Forced into split brain situation!");
    resource.update_state(|st| st.peer_disk = DiskState::Outdated);
    Ok(())
}

/// DRBD's `conn_try_outdate_peer`: runs fence-peer, applies the verdict, and returns
/// whether the peer's disk is Outdated (or worse) now.
pub async fn try_outdate_peer(resource: &Resource) -> bool {
    let outcome = run(resource, Handler::FencePeer).await;
    let now = resource.state();
    let verdict = FenceVerdict::from_exit_code(outcome.exit_code(), now.disk);
    if !verdict.success {
        tracing::error!(resource = %resource.name, "fence-peer helper broken, returned {}", verdict.exit_code);
        return false;
    }
    tracing::info!(resource = %resource.name, "fence-peer helper returned {} ({})", verdict.exit_code, verdict.text);
    if now.cstate >= ConnState::WFReportParams {
        // The peer came back while the handler ran: the handshake decides now.
        tracing::info!(resource = %resource.name, "Ignoring fence-peer exit code");
        return now.peer_disk <= DiskState::Outdated;
    }
    if verdict.own_disk.is_some() {
        tracing::warn!(resource = %resource.name, "Peer is primary, outdating myself.");
    }
    let after = resource.update_state(|st| {
        if let Some(p) = verdict.peer_disk {
            if p != st.peer_disk {
                tracing::info!(resource = %resource.name, "pdsk( {} -> {p} )", st.peer_disk);
            }
            st.peer_disk = p;
        }
        if let Some(d) = verdict.own_disk {
            tracing::info!(resource = %resource.name, "disk( {} -> {d} )", st.disk);
            st.disk = d;
        }
        st.clone()
    });
    if let Err(e) = resource.flush_identifiers().await {
        tracing::error!(resource = %resource.name, error = %e, "cannot record the fenced peer in the meta-data");
    }
    after.peer_disk <= DiskState::Outdated
}
