//! The session's part of [`crate::peer::sync_params`]: adopting the peer's
//! `P_SYNC_PARAM89` (at connect and whenever it comes again) and sending ours when
//! `adjust` changes them while connected.

use rdbd_types::DiskState;
use rdbd_wire::{Packet, ProtocolParams, SyncParams};

use super::{End, Session, SyncPhase};
use crate::peer::resync::rate_config;
use crate::peer::sync_params::{adopt, sync_params_of, with_new_algs};

impl Session<'_> {
    /// `receive_SyncParam` after the handshake: the settings in force take the peer's
    /// values; a running SyncTarget's controller goes on with them. An algorithm this
    /// node does not know drops the connection (DRBD: C_DISCONNECTING).
    pub(super) fn adopt_peer_sync_params(&mut self, peer: &SyncParams) -> Result<(), End> {
        let ctx = self.ctx;
        let ours = ctx.link.settings_now(&ctx.cfg.settings);
        let has_disk = ctx.resource.state().disk != DiskState::Diskless;
        let adoption = match adopt(&ours, peer, self.peer.agreed_version, has_disk) {
            Ok(a) => a,
            Err(line) => {
                tracing::error!(resource = %ctx.name(), "{line}");
                return Err(End::Dropped(format!(
                    "the peer's sync parameters name an algorithm rdbd does not support ({line})"
                )));
            }
        };
        for line in &adoption.alg_lines {
            tracing::info!(resource = %ctx.name(), "{line}");
        }
        if !adoption.rate_changes.is_empty() {
            tracing::info!(resource = %ctx.name(), changes = %adoption.rate_changes.join(", "), "adopted the peer's sync parameters");
        }
        if adoption.settings == ours {
            return Ok(());
        }
        self.retune_running_sync(&adoption.settings);
        ctx.link.adopt_settings(&ctx.cfg, adoption.settings);
        Ok(())
    }

    /// `drbd_adm_net_opts` while connected: csums-alg / verify-alg from `adjust` take
    /// effect and go to the peer.
    pub(super) fn change_sync_algs(&mut self, cfg: &crate::peer::PeerConfig) -> Result<(), String> {
        let ctx = self.ctx;
        let now = ctx.link.settings_now(&ctx.cfg.settings);
        let resync_running = matches!(self.sync, SyncPhase::Source(_) | SyncPhase::Target(_));
        let verify_running = matches!(self.sync, SyncPhase::VerifyS(_) | SyncPhase::VerifyT(_));
        let s = with_new_algs(&now, &cfg.settings, resync_running, verify_running)?;
        tracing::info!(resource = %ctx.name(), verify_alg = s.verify_alg.as_deref().unwrap_or(""), csums_alg = s.csums_alg.as_deref().unwrap_or(""), "net options changed by adjust; sent to the peer");
        self.send_sync_params(&s);
        ctx.link.adopt_settings(&ctx.cfg, s);
        Ok(())
    }

    /// A running resync's (SyncTarget) or online verify's (VerifyS) rate controller goes
    /// on with the rate options of `settings` (DRBD's controller reads them every step).
    pub(super) fn retune_running_sync(&mut self, settings: &rdbd_config::Settings) {
        match &mut self.sync {
            SyncPhase::Target(pump) => pump.set_rate_config(rate_config(settings)),
            SyncPhase::VerifyS(source) => source.set_rate_config(rate_config(settings)),
            _ => {}
        }
    }

    /// `P_PROTOCOL_UPDATE` (DRBD sends it before its P_SYNC_PARAM89 on every `net-options`
    /// while connected; drbd_receiver.c `receive_protocol`). Taken when it keeps what the
    /// handshake agreed (the usual case: other net options changed); a changed protocol,
    /// after-sb policy or allow-two-primaries, or a data-integrity-alg, which rdbd cannot
    /// take while connected, drops the connection with that reason.
    pub(super) fn on_protocol_update(&mut self, p: ProtocolParams) -> Result<(), End> {
        let ctx = self.ctx;
        if !p.integrity_alg.is_empty() {
            let line = format!("peer data-integrity-alg {} not supported", p.integrity_alg);
            tracing::error!(resource = %ctx.name(), "{line}");
            return Err(End::Dropped(line));
        }
        let was = &self.peer.protocol;
        let mut changed = Vec::new();
        if p.protocol != was.protocol {
            changed.push(format!("protocol {} -> {}", was.protocol, p.protocol));
        }
        for (name, old, new) in [
            ("after-sb-0pri", was.after_sb_0p, p.after_sb_0p),
            ("after-sb-1pri", was.after_sb_1p, p.after_sb_1p),
            ("after-sb-2pri", was.after_sb_2p, p.after_sb_2p),
        ] {
            if old != new {
                changed.push(format!("{name} {old} -> {new}"));
            }
        }
        if p.two_primaries != was.two_primaries {
            changed.push(format!(
                "allow-two-primaries {} -> {}",
                was.two_primaries, p.two_primaries
            ));
        }
        if !changed.is_empty() {
            let reason = format!(
                "the peer changed {} while connected (P_PROTOCOL_UPDATE); rdbd takes these only at connect",
                changed.join(", ")
            );
            tracing::error!(resource = %ctx.name(), "{reason}");
            return Err(End::Dropped(reason));
        }
        self.peer.protocol = p;
        Ok(())
    }

    /// `drbd_send_sync_param`: our settings in force, to the peer (which adopts them).
    pub(super) fn send_sync_params(&self, settings: &rdbd_config::Settings) {
        self.send_data(Packet::SyncParam89(sync_params_of(settings)));
    }
}
