//! Serves one in-memory export over a Unix socket, for manual testing and
//! benchmarks: `cargo run -p rdbd-nbd --features testing --release --example
//! mem_server -- /tmp/nbd.sock 1073741824 [export-name]`.

use std::sync::Arc;

use rdbd_nbd::testing::{mem_export_info, MemDevice, MemExports};
use rdbd_nbd::{serve_unix, ServerLimits};

fn main() -> std::io::Result<()> {
    // RDBD_NBD_THREADS=0 runs a current-thread runtime (for comparisons).
    let threads: usize = std::env::var("RDBD_NBD_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let runtime = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(serve())
}

async fn serve() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let socket = args
        .next()
        .unwrap_or_else(|| "/tmp/rdbd-nbd.sock".to_string());
    let size_bytes: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1 << 30);
    let name = args.next().unwrap_or_default();
    let exports = MemExports::new();
    exports.add(
        &name,
        mem_export_info(size_bytes),
        Arc::new(MemDevice::new(size_bytes)),
    );
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)?;
    eprintln!("serving {size_bytes} bytes as {name:?} on {socket}");
    serve_unix(listener, Arc::new(exports), ServerLimits::default()).await
}
