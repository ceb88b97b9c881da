//! `<run-dir>/drbd`: the node's status in DRBD 8.4's `/proc/drbd` format.
//!
//! Rewritten atomically (a temporary file renamed over the old one) on every state
//! change and at least once a second (for the counters), so a reader never sees a
//! half-written file.
//!
//! Promptness: every accepted state change (role, connection, disk; crate::state_change)
//! calls [`state_changed`], the daemon's own signals (`changed`) too; the writer arms its
//! wait for both *before* it renders, so a change that happens while it writes is not lost
//! (it writes again at once). A control request writes the file itself before it answers,
//! so after `rdbdadm primary` returns the file already shows the new role.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rdbd_control::status::{proc_drbd, ResourceStatus};
use tokio::sync::Notify;

use crate::export::NodeExports;

/// Writes `text` to `path` atomically.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The statuses of every resource that is up, by minor.
pub fn snapshot(exports: &NodeExports) -> Vec<ResourceStatus> {
    let mut all: Vec<ResourceStatus> = exports.all().iter().map(|r| r.status()).collect();
    all.sort_by_key(|s| s.minor);
    all
}

/// Writes the file now, logging (not failing) when it cannot.
pub fn write_now(path: &Path, exports: &NodeExports) {
    let text = proc_drbd::render(&snapshot(exports));
    if let Err(e) = write_atomically(path, &text) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the status file");
    }
}

/// How often the file is rewritten without a state change (the counters move).
pub const PERIOD: Duration = Duration::from_secs(1);

/// Signalled by every accepted state change of any resource in this process.
static STATE_CHANGED: Notify = Notify::const_new();

/// A resource's state changed: the status file is rewritten now (not at the next period).
pub fn state_changed() {
    STATE_CHANGED.notify_waiters();
}

/// Rewrites the file whenever a state changes or `changed` is notified, and every
/// [`PERIOD`].
pub async fn run(path: std::path::PathBuf, exports: Arc<NodeExports>, changed: Arc<Notify>) {
    run_every(path, exports, changed, PERIOD).await
}

async fn run_every(
    path: std::path::PathBuf,
    exports: Arc<NodeExports>,
    changed: Arc<Notify>,
    period: Duration,
) {
    loop {
        // Armed before rendering: a signal during the write is kept, not lost.
        let by_state = STATE_CHANGED.notified();
        let by_daemon = changed.notified();
        tokio::pin!(by_state, by_daemon);
        by_state.as_mut().enable();
        by_daemon.as_mut().enable();
        write_now(&path, &exports);
        tokio::select! {
            _ = by_state => {}
            _ = by_daemon => {}
            _ = tokio::time::sleep(period) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits up to 2 s for `path` to exist.
    async fn reappears(path: &Path) -> bool {
        for _ in 0..200 {
            if path.exists() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn signals_rewrite_the_file_long_before_the_period() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drbd");
        let exports = Arc::new(NodeExports::default());
        let changed = Arc::new(Notify::new());
        // A period of an hour: every rewrite below is caused by a signal.
        let hour = Duration::from_secs(3600);
        let task = tokio::spawn(run_every(path.clone(), exports, Arc::clone(&changed), hour));
        assert!(reappears(&path).await, "the first write happens at once");
        std::fs::remove_file(&path).unwrap();
        state_changed();
        assert!(reappears(&path).await, "a state change rewrites the file");
        std::fs::remove_file(&path).unwrap();
        changed.notify_waiters();
        assert!(
            reappears(&path).await,
            "the daemon's signal rewrites the file"
        );
        task.abort();
    }
}
