//! `detach`: the local disk goes Diskless while the resource stays up (D84 drbd_nl.c
//! `drbd_adm_detach`): no new I/O reaches the disk, the peer is told (P_STATE disk
//! Diskless, and stops sending data), writes in flight finish, the disk is flushed, the
//! bitmap and the clean superblock are written and the device claims are released.
//!
//! A Primary with NBD clients keeps serving them through its peer
//! ([`super::diskless_io`]); that needs a connected peer with UpToDate data, otherwise
//! the detach is refused. Refused as well while a resync runs.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdbd_replicator::state::{Event, Request, StateError as RuleError};
use rdbd_types::{ConnState, DiskState};

use crate::resource::Resource;

/// How long `detach` waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection states in which a resync or its preparation runs.
fn resyncing(cs: ConnState) -> bool {
    matches!(
        cs,
        ConnState::StartingSyncS
            | ConnState::StartingSyncT
            | ConnState::WFBitMapS
            | ConnState::WFBitMapT
            | ConnState::WFSyncUUID
            | ConnState::SyncSource
            | ConnState::SyncTarget
            | ConnState::PausedSyncS
            | ConnState::PausedSyncT
    )
}

/// Detaches the disk. `Ok` carries an informational message (empty when none).
pub async fn detach(resource: &Arc<Resource>) -> Result<String, String> {
    // No local write is in flight while the disk state changes; later ones see Diskless.
    let gate = resource.io_gate.write().await;
    let before = resource.with_core(|core| {
        let st = core.snapshot();
        if st.disk == DiskState::Diskless {
            return Ok(None);
        }
        let peer_serves = st.cstate.is_connected() && st.peer_disk == DiskState::UpToDate;
        if st.open_clients > 0 && !peer_serves {
            return Err(format!(
                "State change failed: (-2) Need access to UpToDate data: {} NBD client(s) are open and the peer \
                 cannot serve them (conn {}, peer disk {}); close the clients or connect first",
                st.open_clients, st.cstate, st.peer_disk
            ));
        }
        if resyncing(st.cstate) {
            return Err(format!(
                "State change failed: a resync runs ({}); wait for it to finish ('rdbdadm wait-sync') or disconnect first",
                st.cstate
            ));
        }
        // DRBD's rules (drbd_adm_detach: NS(disk, D_FAILED) -> D_DISKLESS): e.g. a
        // Primary without a connected UpToDate peer keeps its disk (SS_NO_UP_TO_DATE_DISK).
        // From here on no client opens the device and the peer gets no new writes.
        let stepped = core.step(Event::Detach);
        if let Some(Err(e)) = stepped.outcome(Request::Detach) {
            let hint = if e == RuleError::NoUpToDateDisk {
                " (a Primary without a connected UpToDate peer keeps its disk)"
            } else {
                ""
            };
            return Err(format!("State change failed: ({}) {e}{hint}", e.code()));
        }
        Ok(Some((st.disk, stepped)))
    })?;
    let before = before.map(|(was, stepped)| {
        resource.execute_in_background(&stepped);
        was
    });
    drop(gate);
    let Some(was) = before else {
        return Ok(format!(
            "{}: the disk is detached already (Diskless)",
            resource.name
        ));
    };
    if let Some(link) = resource.peer_link() {
        link.state_changed();
    }
    drain(resource).await;
    if let Err(e) = resource.disk.flush().await {
        tracing::error!(resource = %resource.name, error = %e, "flushing the disk at detach failed");
    }
    if let Err(e) = resource.meta.release().await {
        // The disk is unusable now anyway; say so but stay Diskless.
        return Err(format!("writing the meta-data at detach failed: {e}"));
    }
    tracing::info!(resource = %resource.name, disk = %resource.disk.path().display(), "disk( {was} -> Diskless ): detached");
    Ok(String::new())
}

/// Waits (bounded) until no local request and no peer write is in flight.
async fn drain(resource: &Resource) {
    let start = Instant::now();
    // Writes the peer queued before it saw our state still arrive and are refused.
    tokio::time::sleep(Duration::from_millis(200)).await;
    loop {
        // Application writes after the switch go to the peer only; local reads and the
        // peer's writes (refused from now on) are what may still touch the disk.
        let local = resource.io.local_pending.load(Ordering::Relaxed);
        let unacked = resource
            .peer_link()
            .map_or(0, |l| l.counters.unacked.load(Ordering::Relaxed));
        if local == 0 && unacked == 0 {
            return;
        }
        if start.elapsed() > DRAIN_TIMEOUT {
            tracing::warn!(resource = %resource.name, local, unacked, "requests still in flight after {} s; detaching anyway", DRAIN_TIMEOUT.as_secs());
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
