//! `rdbdadm events2`: the current state as `exists` lines, then a line for every
//! change, on the requesting control connection.
//!
//! Changes are found by comparing status snapshots, taken whenever the daemon
//! signals a state change and at least every [`POLL`], so nothing that changes the
//! status is missed, whichever part of the daemon changed it.

use std::collections::BTreeMap;
use std::time::Duration;

use rdbd_control::status::{events2, ResourceStatus};
use rdbd_control::Response;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::control::Controller;

/// The longest a change waits before it is noticed without a signal.
pub const POLL: Duration = Duration::from_millis(250);

fn snapshot(controller: &Controller) -> BTreeMap<String, ResourceStatus> {
    crate::status_file::snapshot(&controller.exports)
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect()
}

async fn send<W: AsyncWrite + Unpin>(write: &mut W, lines: Vec<String>) -> std::io::Result<()> {
    let mut out = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut out, &Response::Event { line })
            .map_err(std::io::Error::other)?;
        out.push(b'\n');
    }
    write.write_all(&out).await
}

/// Streams events until the client closes its side (or, with `now`, after the dump).
pub async fn stream<R, W>(
    read: &mut R,
    write: &mut W,
    controller: &Controller,
    now: bool,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut last = snapshot(controller);
    let mut lines: Vec<String> = last.values().flat_map(events2::exists).collect();
    lines.push("exists -".to_string());
    send(write, lines).await?;
    if now {
        return Ok(());
    }
    let mut probe = [0u8; 64];
    // `call helper` / `response helper` lines of the handlers (crate::handlers).
    let mut helpers = crate::handlers::helper_events();
    loop {
        tokio::select! {
            _ = tokio::time::timeout(POLL, controller.changed.notified()) => {}
            line = helpers.recv() => {
                if let Ok(line) = line {
                    send(write, vec![line]).await?;
                }
                continue;
            }
            n = read.read(&mut probe) => {
                if n? == 0 {
                    return Ok(());
                }
            }
        }
        let current = snapshot(controller);
        let mut lines = Vec::new();
        for name in last
            .keys()
            .chain(current.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            lines.extend(events2::diff(last.get(name), current.get(name)));
        }
        if !lines.is_empty() {
            send(write, lines).await?;
        }
        last = current;
    }
}
