//! `disk { fencing dont-care | resource-only | resource-and-stonith; }` (DRBD 8.4
//! drbd_nl.c `conn_try_outdate_peer`, drbd_state.c `sanitize_state`):
//!
//! - A Primary that loses the connection while the peer's disk is not known to be
//!   Outdated or Inconsistent runs `fence-peer`. With `resource-and-stonith` it first
//!   freezes application I/O (`susp-fen`, the `s` of `/proc/drbd`'s flags): new writes
//!   wait, and writes the peer did not acknowledge are not completed, until the handler
//!   reports success or the peer is connected again. A failed handler leaves I/O frozen
//!   (as DRBD) until `resume-io` or a reconnect.
//! - [`FenceVerdict::from_exit_code`] maps the handler's exit code as DRBD does: 3 peer
//!   Inconsistent, 4 peer Outdated, 5 peer down (Outdated when our disk is UpToDate),
//!   6 peer Primary (outdate ourselves), 7 peer stonithed (Outdated); anything else is a
//!   broken handler.
//!
//! Invariant: while [`FenceGate::is_frozen`], no write completes to an NBD client.

use std::sync::atomic::{AtomicBool, Ordering};

use rdbd_types::DiskState;
use tokio::sync::Notify;

/// The `fencing` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FencePolicy {
    /// `dont-care` (the default): no fencing.
    #[default]
    DontCare,
    /// `resource-only`: run fence-peer, I/O continues meanwhile.
    ResourceOnly,
    /// `resource-and-stonith`: freeze I/O, run fence-peer, resume on success.
    ResourceAndStonith,
}

impl FencePolicy {
    /// The drbd.conf value (anything unknown is `dont-care`; the configuration crate
    /// validated it already).
    pub fn parse(value: &str) -> FencePolicy {
        match value {
            "resource-only" => FencePolicy::ResourceOnly,
            "resource-and-stonith" => FencePolicy::ResourceAndStonith,
            _ => FencePolicy::DontCare,
        }
    }

    /// Whether a Primary fences its peer at all.
    pub fn fences(self) -> bool {
        self != FencePolicy::DontCare
    }
}

/// What the fence-peer exit code means for the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceVerdict {
    /// The exit code.
    pub exit_code: i32,
    /// DRBD's explanation (`fence-peer helper returned 4 (peer was fenced)`).
    pub text: &'static str,
    /// The peer's disk state afterwards, when the code sets one.
    pub peer_disk: Option<DiskState>,
    /// Our disk state afterwards, when the code sets one (6: outdate ourselves).
    pub own_disk: Option<DiskState>,
    /// The handler worked (I/O may resume).
    pub success: bool,
}

impl FenceVerdict {
    /// DRBD's reading of a fence-peer exit code; `own_disk` is our disk state now.
    pub fn from_exit_code(exit_code: i32, own_disk: DiskState) -> FenceVerdict {
        let v = |text, peer_disk, own_disk| FenceVerdict {
            exit_code,
            text,
            peer_disk,
            own_disk,
            success: true,
        };
        match exit_code {
            3 => v(
                "peer is inconsistent or worse",
                Some(DiskState::Inconsistent),
                None,
            ),
            4 => v("peer was fenced", Some(DiskState::Outdated), None),
            5 if own_disk == DiskState::UpToDate => v(
                "peer is unreachable, assumed to be dead",
                Some(DiskState::Outdated),
                None,
            ),
            5 => v(
                "peer unreachable, doing nothing since disk != UpToDate",
                None,
                None,
            ),
            6 => v("peer is active", None, Some(DiskState::Outdated)),
            7 => v("peer was stonithed", Some(DiskState::Outdated), None),
            _ => FenceVerdict {
                exit_code,
                text: "fence-peer helper broken",
                peer_disk: None,
                own_disk: None,
                success: false,
            },
        }
    }
}

/// Whether losing the connection in this state makes a node fence its peer: a Primary
/// whose peer's disk was not known to be Outdated or Inconsistent (DRBD's
/// `conn_highest_pdsk >= D_UNKNOWN` in `conn_disconnect`).
pub fn must_fence(policy: FencePolicy, was_primary: bool, old_peer_disk: DiskState) -> bool {
    policy.fences()
        && was_primary
        && !matches!(
            old_peer_disk,
            DiskState::Outdated
                | DiskState::Inconsistent
                | DiskState::Diskless
                | DiskState::Failed
                | DiskState::Attaching
                | DiskState::Negotiating
        )
}

/// The `susp-fen` freeze of a resource's application writes.
#[derive(Debug, Default)]
pub struct FenceGate {
    frozen: AtomicBool,
    resumed: Notify,
}

impl FenceGate {
    /// Freezes I/O (`susp-fen` on).
    pub fn freeze(&self) {
        if !self.frozen.swap(true, Ordering::SeqCst) {
            tracing::warn!("susp( 0 -> 1 ): I/O frozen while the peer is fenced");
        }
    }

    /// Resumes I/O; every waiting write continues.
    pub fn resume(&self) {
        if self.frozen.swap(false, Ordering::SeqCst) {
            tracing::info!("susp( 1 -> 0 ): I/O resumed");
        }
        self.resumed.notify_waiters();
    }

    /// Whether I/O is frozen now.
    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }

    /// Returns once I/O is not frozen.
    pub async fn wait_resumed(&self) {
        loop {
            let notified = self.resumed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_frozen() {
                return;
            }
            notified.await;
        }
    }
}
