//! Prometheus metrics over HTTP (`metrics-address IP:PORT;` in `global`, off by default).
//!
//! A deliberately small HTTP/1.0 responder: `GET /metrics` answers the text
//! exposition format (version 0.0.4), anything else 404. Requests are bounded to
//! [`MAX_REQUEST_BYTES`] and a few seconds; one task per connection.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::export::NodeExports;
use crate::resource::Resource;

/// The largest request head read, in bytes.
pub const MAX_REQUEST_BYTES: usize = 8192;

/// Upper bounds of the write-latency histogram buckets, in microseconds.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// A lock-free latency histogram (cumulative buckets are computed when rendering).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let idx = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[idx].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        cumulative += self.buckets[LATENCY_BUCKETS_US.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Serves metrics until the task is aborted.
pub async fn serve(listener: TcpListener, exports: Arc<NodeExports>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let exports = Arc::clone(&exports);
                tokio::spawn(async move {
                    if let Err(e) =
                        tokio::time::timeout(Duration::from_secs(5), answer(stream, &exports)).await
                    {
                        tracing::debug!(error = %e, "metrics request timed out");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, exports: &NodeExports) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_REQUEST_BYTES {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(head.split(|&b| b == b'\n').next().unwrap_or_default())
        .into_owned();
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) =
        if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
            ("200 OK", "text/plain; version=0.0.4", render(exports))
        } else {
            (
                "404 Not Found",
                "text/plain",
                "not found: try /metrics\n".to_string(),
            )
        };
    let response = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// A one-hot state gauge: name, help, and the label sets (beside `resource`) of its
/// samples of value 1, one per current state.
type StateFamily = (&'static str, &'static str, fn(&Resource) -> Vec<String>);

/// A family with one sample per resource: name, type (`counter` or `gauge`), help, and
/// the value.
type ValueFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Resource) -> u64,
);

/// The exposition text for every resource that is up.
pub fn render(exports: &NodeExports) -> String {
    let resources = exports.all();
    let mut out = String::new();
    let mut family =
        |name: &str, kind: &str, help: &str, sample: &dyn Fn(&Resource, &mut String)| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for r in &resources {
                sample(r, &mut out);
            }
        };
    let states: [StateFamily; 3] = [
        (
            "rdbd_resource_role",
            "1 for the resource's current role on this node.",
            |r| vec![format!("role=\"{}\"", r.state().role)],
        ),
        (
            "rdbd_connection_state",
            "1 for the resource's current connection state.",
            |r| vec![format!("state=\"{}\"", r.state().cstate)],
        ),
        (
            "rdbd_disk_state",
            "1 for the current disk state of this node (peer=\"false\") and of the peer.",
            |r| {
                let st = r.state();
                vec![
                    format!("peer=\"false\",state=\"{}\"", st.disk),
                    format!("peer=\"true\",state=\"{}\"", st.peer_disk),
                ]
            },
        ),
    ];
    for (name, help, label_sets) in states {
        family(name, "gauge", help, &|r, o| {
            for labels in label_sets(r) {
                let _ = writeln!(o, "{name}{{resource=\"{}\",{labels}}} 1", r.name);
            }
        });
    }
    let values: [ValueFamily; 10] = [
        (
            "rdbd_read_bytes_total",
            "counter",
            "Bytes read from the local disk.",
            |r| r.io.disk_read_bytes.load(Ordering::Relaxed),
        ),
        (
            "rdbd_written_bytes_total",
            "counter",
            "Bytes written to the local disk.",
            |r| r.io.disk_written_bytes.load(Ordering::Relaxed),
        ),
        (
            "rdbd_sent_bytes_total",
            "counter",
            "Bytes sent to the peer.",
            |r| r.io.net_sent_bytes.load(Ordering::Relaxed),
        ),
        (
            "rdbd_received_bytes_total",
            "counter",
            "Bytes received from the peer.",
            |r| r.io.net_received_bytes.load(Ordering::Relaxed),
        ),
        (
            "rdbd_read_requests_total",
            "counter",
            "Read requests served.",
            |r| r.io.read_requests.load(Ordering::Relaxed),
        ),
        (
            "rdbd_write_requests_total",
            "counter",
            "Write, trim and zero requests served.",
            |r| r.io.write_requests.load(Ordering::Relaxed),
        ),
        (
            "rdbd_al_writes_total",
            "counter",
            "Activity-log transactions written.",
            |r| r.io.al_writes.load(Ordering::Relaxed),
        ),
        (
            "rdbd_bm_writes_total",
            "counter",
            "Bitmap pages written.",
            |r| r.io.bm_writes.load(Ordering::Relaxed),
        ),
        (
            "rdbd_out_of_sync_bytes",
            "gauge",
            "Data known to differ from the peer.",
            |r| r.meta.out_of_sync_kib() * 1024,
        ),
        (
            "rdbd_resync_speed_bytes_per_second",
            "gauge",
            "Current resync speed (0 when not syncing).",
            |r| {
                r.status()
                    .sync
                    .map(|s| s.speed_kib_per_s * 1024)
                    .unwrap_or(0)
            },
        ),
    ];
    for (name, kind, help, value) in values {
        family(name, kind, help, &|r, o| {
            let _ = writeln!(o, "{name}{{resource=\"{}\"}} {}", r.name, value(r));
        });
    }
    family(
        "rdbd_write_latency_seconds",
        "histogram",
        "Latency of writes until the client is answered, by protocol.",
        &|r, o| {
            let protocol = r.protocol.map(|p| p.name()).unwrap_or("none");
            r.io.write_latency.render(
                o,
                "rdbd_write_latency_seconds",
                &format!("resource=\"{}\",protocol=\"{protocol}\"", r.name),
            );
        },
    );
    out
}
