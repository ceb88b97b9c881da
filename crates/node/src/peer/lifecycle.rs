//! The connection's part of the resource-lifecycle commands (`crate::lifecycle`):
//!
//! - `invalidate-remote`: the session asks the peer for `conn = StartingSyncS` (in the
//!   peer's terms StartingSyncT); once accepted, every block is out of sync and we
//!   become SyncSource of a full sync (D84 drbd_nl.c `drbd_adm_invalidate_peer`,
//!   drbd_state.c `abw_start_sync`).
//! - `adjust` with changed net options: the manager takes a new [`PeerConfig`] while
//!   StandAlone; the next `connect` uses it.
//! - the protocol in force, for the status.

use rdbd_types::Protocol;
use tokio::sync::oneshot;

use super::{lock, Command, PeerConfig, PeerLink};

/// A `resize` the session negotiates with the peer.
#[derive(Debug, Clone, Copy)]
pub struct ResizeRequest {
    /// The wanted data size, sectors.
    pub target_sectors: u64,
    /// `--assume-clean`: the new area is not resynced.
    pub assume_clean: bool,
}

/// How long `invalidate-remote` waits for the peer's answer.
const INVALIDATE_REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl PeerLink {
    /// The replication protocol of the transfer log (the one agreed at the last
    /// connection, or the configured one before any).
    pub fn protocol(&self) -> Protocol {
        self.inner().tl.protocol()
    }

    /// `invalidate-remote`: returns once the peer accepted the full sync (or why not).
    pub async fn invalidate_remote(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::InvalidateRemote(tx))
            .map_err(|_| "the connection manager is gone".to_string())?;
        match tokio::time::timeout(INVALIDATE_REMOTE_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("the connection ended before the peer answered".into()),
            Err(_) => Err(format!(
                "the peer did not answer the state change request within {} s",
                INVALIDATE_REMOTE_TIMEOUT.as_secs()
            )),
        }
    }

    /// `resize` while connected: the peer grows first, then this node, to the smaller
    /// of `target_sectors` and what the peer offers. Returns the agreed size (sectors).
    pub async fn resize(&self, target_sectors: u64, assume_clean: bool) -> Result<u64, String> {
        let (tx, rx) = oneshot::channel();
        let req = ResizeRequest {
            target_sectors,
            assume_clean,
        };
        self.commands
            .send(Command::Resize(req, tx))
            .map_err(|_| "the connection manager is gone".to_string())?;
        match tokio::time::timeout(INVALIDATE_REMOTE_TIMEOUT * 3, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("the connection ended before the peer answered".into()),
            Err(_) => Err("the peer did not answer the resize within 30 s".into()),
        }
    }

    /// Changed disk options (`adjust`): a running resync takes the new rate options at
    /// once, later resyncs and connections use them too.
    pub fn update_disk_options(&self, cfg: PeerConfig) {
        *lock(&self.next_cfg) = Some(cfg.clone());
        let _ = self.commands.send(Command::DiskOptions(Box::new(cfg)));
    }

    /// The settings from the last `adjust`, once (the manager takes them).
    pub(crate) fn take_next_cfg(&self) -> Option<PeerConfig> {
        lock(&self.next_cfg).take()
    }

    /// The settings in force: the last `adjust`'s, else `configured`.
    pub(crate) fn settings_now(&self, configured: &rdbd_config::Settings) -> rdbd_config::Settings {
        lock(&self.next_cfg)
            .as_ref()
            .map_or_else(|| configured.clone(), |c| c.settings.clone())
    }

    /// Replaces the connection settings; refused unless StandAlone (disconnect first).
    pub async fn reconfigure(&self, cfg: PeerConfig) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Reconfigure(Box::new(cfg), tx))
            .map_err(|_| "the connection manager is gone".to_string())?;
        rx.await
            .unwrap_or_else(|_| Err("the connection manager is gone".into()))
    }
}
