//! The session context's helpers: state updates, identifiers and flags written to the
//! meta-data, the packets describing this node (P_STATE, P_UUIDS, P_SIZES, the handshake
//! configuration), and the cleanup after a connection ends.

use std::sync::atomic::Ordering;

use rdbd_replicator::generation::Generations;
use rdbd_replicator::handshake::{protocol_params, HandshakeConfig};
use rdbd_replicator::sync_handshake as sh;
use rdbd_types::{ConnState, DiskState, Role};
use rdbd_wire::auth::CramHmacAlg;
use rdbd_wire::{DrbdState, Sizes, Uuids};

use super::Ctx;
use crate::resource::ResourceState;

impl Ctx {
    pub(super) fn name(&self) -> &str {
        &self.resource.name
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut ResourceState)) {
        let (old, new) = self.resource.update_state(|st| {
            let old = st.cstate;
            f(st);
            (old, st.cstate)
        });
        self.after_conn_change(old, new);
    }

    /// What follows any change of the connection state: susp-fen ends, waiters wake.
    pub(super) fn after_conn_change(&self, old: ConnState, new: ConnState) {
        // susp-fen ends when the peer is connected again (DRBD after_state_ch, case 2).
        if old < ConnState::Connected
            && new >= ConnState::Connected
            && self.resource.hooks.fence.is_frozen()
        {
            self.resource.hooks.fence.resume();
        }
        self.changed.notify_waiters();
    }

    /// A hard connection change, through the states DRBD's transition rules require
    /// (`crate::state_change::conn_path`: e.g. StandAlone -> Unconnected -> WFConnection).
    pub(super) fn set_cstate(&self, cs: ConnState) {
        let mut old = self.resource.state().cstate;
        for step in crate::state_change::conn_path(old, cs) {
            tracing::info!(resource = %self.name(), "conn( {old} -> {step} )");
            self.update(|st| st.cstate = step);
            old = step;
        }
    }

    pub(super) async fn persist(
        &self,
        f: impl FnOnce(&mut Generations) + Send + 'static,
    ) -> Generations {
        match self.resource.update_generations(f).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(resource = %self.name(), error = %e, "writing the identifiers failed");
                self.resource.generations()
            }
        }
    }

    pub(super) async fn write_bitmap(&self) {
        match self.resource.meta.write_dirty_bitmap().await {
            Ok(n) => {
                self.resource.io.bm_writes.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(resource = %self.name(), error = %e, "writing the bitmap failed")
            }
        }
    }

    pub(super) fn our_state(&self) -> DrbdState {
        let st = self.resource.state();
        DrbdState {
            role: st.role,
            peer: st.peer_role,
            conn: st.cstate,
            disk: st.disk,
            pdsk: st.peer_disk,
            susp: false,
            aftr_isp: self.link.aftr_isp.load(Ordering::SeqCst),
            peer_isp: self.link.peer_isp.load(Ordering::SeqCst),
            user_isp: self.link.user_isp.load(Ordering::SeqCst),
            susp_nod: false,
            susp_fen: self.resource.hooks.fence.is_frozen(),
        }
    }

    pub(super) fn our_uuids(&self) -> Uuids {
        let g = self.resource.generations();
        // Crashed primary, --discard-my-data, inconsistent: as the core keeps them.
        let flags = self.resource.uuid_flags();
        Uuids {
            current: g.current,
            bitmap: g.bitmap,
            history: g.history,
            dirty_bits: self.resource.meta.bitmap_weight(),
            flags,
        }
    }

    pub(super) fn our_sizes(&self) -> Sizes {
        let sectors = self.resource.size_bytes_now() / 512;
        let current = if self.resource.state().role == Role::Primary {
            sectors
        } else {
            0
        };
        Sizes {
            backing_sectors: sectors,
            user_sectors: self.cfg.settings.size_sect.unwrap_or(0),
            current_sectors: current,
            max_bio_size_bytes: rdbd_wire::DRBD_MAX_BIO_SIZE as u32,
            queue_order_type: 0,
            dds_flags: 0,
            queue_limits: None,
        }
    }

    pub(super) fn handshake_config(&self) -> Result<HandshakeConfig, String> {
        let s = &self.cfg.settings;
        if s.allow_two_primaries {
            return Err(
                rdbd_replicator::handshake::HandshakeError::TwoPrimariesUnsupported.to_string(),
            );
        }
        // Options whose packets rdbd does not produce or understand yet: refuse clearly
        // rather than agree on something the data path would then break.
        if let Some(alg) = &s.data_integrity_alg {
            return Err(format!("data-integrity-alg {alg} is not implemented by rdbd yet; remove it from the net section"));
        }
        for (what, alg) in [("csums-alg", &s.csums_alg), ("verify-alg", &s.verify_alg)] {
            if let Some(alg) = alg {
                rdbd_replicator::resync::digest::DigestAlg::parse(alg)
                    .map_err(|e| format!("{what}: {e}"))?;
            }
        }
        let auth = match (&s.cram_hmac_alg, &s.shared_secret) {
            (Some(alg), secret) => {
                let alg = CramHmacAlg::from_name(alg).ok_or_else(|| {
                    format!("cram-hmac-alg '{alg}' is not supported (rdbd knows sha1 and sha256)")
                })?;
                Some((alg, secret.clone().unwrap_or_default().into_bytes()))
            }
            (None, _) => None,
        };
        let mut challenge = [0u8; rdbd_wire::auth::CHALLENGE_BYTES];
        for b in challenge.iter_mut() {
            *b = rand::random();
        }
        let mut state = self.our_state();
        state.conn = ConnState::WFReportParams;
        // `discard-node-NAME` goes on the wire as discard-local / discard-remote.
        let after_sb_0pri = sh::parse_after_sb(&s.after_sb_0pri, &self.cfg.local_name)
            .map_or(s.after_sb_0pri.as_str(), |p| p.name());
        Ok(HandshakeConfig {
            auth,
            protocol: protocol_params(
                s.protocol,
                [after_sb_0pri, &s.after_sb_1pri, &s.after_sb_2pri],
                s.allow_two_primaries,
                s.data_integrity_alg.as_deref(),
                self.resource.discard_my_data(),
            ),
            sync: crate::peer::sync_params::sync_params_of(s),
            sizes: self.our_sizes(),
            uuids: self.our_uuids(),
            state,
            challenge,
        })
    }

    /// After a connection: requests not acknowledged go out of sync, a Primary starts a
    /// new generation, the peer is unknown again.
    pub(super) async fn cleanup(&self) {
        // Read before the transfer log is cleared: a `secondary` waiting for it to drain
        // goes on from there, and the peer-loss rules apply to the role it had (Primary).
        let before = self.resource.state();
        let lost = self.link.stop_replicating();
        self.link.fail_remote_reads();
        for (sector, size) in &lost {
            self.resource
                .meta
                .set_out_of_sync(sector * 512, u64::from(*size));
        }
        if !lost.is_empty() {
            tracing::info!(resource = %self.name(), requests = lost.len(), "requests not acknowledged by the peer were marked out of sync");
        }
        self.link.set_sync_progress(None);
        self.link.counters.rs_pending.store(0, Ordering::Relaxed);
        self.update(|st| {
            st.peer_role = Role::Unknown;
            // An Outdated peer stays Outdated (DRBD sanitize_state keeps pdsk Outdated).
            if st.peer_disk != DiskState::Outdated {
                st.peer_disk = DiskState::DUnknown;
            }
        });
        // The state machine started a new generation if a Primary lost the peer's data
        // (`new_current_on_peer_loss` after the change above); make it durable.
        let g = self.persist(|_| {}).await;
        if before.role == Role::Primary && g.bitmap != 0 {
            tracing::info!(resource = %self.name(), current = format!("{:016X}", g.current), bitmap = format!("{:016X}", g.bitmap), "Primary without its peer: changes are tracked in the bitmap");
        }
        self.write_bitmap().await;
    }
}
