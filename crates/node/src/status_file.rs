//! `<run-dir>/drbd`: the node's status in DRBD 8.4's `/proc/drbd` format.
//!
//! Rewritten atomically (a temporary file renamed over the old one) on every state
//! change and at least once a second, so a reader never sees a half-written file.

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

/// Rewrites the file whenever `changed` is notified, and every second.
pub async fn run(path: std::path::PathBuf, exports: Arc<NodeExports>, changed: Arc<Notify>) {
    loop {
        write_now(&path, &exports);
        let _ = tokio::time::timeout(Duration::from_secs(1), changed.notified()).await;
    }
}
