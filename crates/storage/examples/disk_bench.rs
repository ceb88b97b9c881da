//! Microbenchmark of the storage engines: N tokio tasks doing random 4k
//! direct reads/writes (and 1M sequential) on a file for a few seconds;
//! prints IOPS, bandwidth and mean latency per engine.
//!
//! ```text
//! cargo run --release -p rdbd-storage --example disk_bench -- \
//!     [--file /var/tmp/rdbd-bench.img] [--size-mib 512] [--seconds 3] \
//!     [--engines io_uring,io_uring-thread,sync] [--only randread]
//! ```
//! Compare with `fio --ioengine=io_uring --direct=1 --filename=<same file> ...`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdbd_storage::{DiskOptions, Engine, LocalDisk};
use rdbd_types::AlignedBuf;

struct Args {
    file: PathBuf,
    size_mib: u64,
    seconds: f64,
    /// (engine, open inside the runtime)
    engines: Vec<(Engine, bool)>,
    only: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        file: PathBuf::from("/var/tmp/rdbd-bench.img"),
        size_mib: 512,
        seconds: 3.0,
        engines: vec![
            (Engine::IoUring, true),
            (Engine::IoUring, false),
            (Engine::Sync, true),
        ],
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--file" => args.file = value.into(),
            "--size-mib" => args.size_mib = value.parse().expect("--size-mib"),
            "--seconds" => args.seconds = value.parse().expect("--seconds"),
            "--engines" => {
                args.engines = value
                    .split(',')
                    .map(|e| match e {
                        "io_uring-thread" => (Engine::IoUring, false),
                        other => (
                            other
                                .parse()
                                .expect("engine: io_uring, io_uring-thread or sync"),
                            true,
                        ),
                    })
                    .collect()
            }
            "--only" => args.only = Some(value),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

#[derive(Clone, Copy)]
struct Workload {
    name: &'static str,
    block_bytes: usize,
    queue_depth: usize,
    write: bool,
    random: bool,
}

const WORKLOADS: [Workload; 6] = [
    Workload {
        name: "randread-4k-qd1",
        block_bytes: 4096,
        queue_depth: 1,
        write: false,
        random: true,
    },
    Workload {
        name: "randread-4k-qd32",
        block_bytes: 4096,
        queue_depth: 32,
        write: false,
        random: true,
    },
    Workload {
        name: "randwrite-4k-qd1",
        block_bytes: 4096,
        queue_depth: 1,
        write: true,
        random: true,
    },
    Workload {
        name: "randwrite-4k-qd32",
        block_bytes: 4096,
        queue_depth: 32,
        write: true,
        random: true,
    },
    Workload {
        name: "seqread-1m-qd8",
        block_bytes: 1 << 20,
        queue_depth: 8,
        write: false,
        random: false,
    },
    Workload {
        name: "seqwrite-1m-qd8",
        block_bytes: 1 << 20,
        queue_depth: 8,
        write: true,
        random: false,
    },
];

fn prepare_file(args: &Args) {
    let size_bytes = args.size_mib << 20;
    if std::fs::metadata(&args.file)
        .map(|m| m.len() == size_bytes)
        .unwrap_or(false)
    {
        return;
    }
    println!(
        "filling {} with {} MiB of data",
        args.file.display(),
        args.size_mib
    );
    std::fs::File::create(&args.file)
        .and_then(|f| f.set_len(size_bytes))
        .expect("create bench file");
    let disk = LocalDisk::open(&args.file, &DiskOptions::default()).expect("open bench file");
    let chunk = vec![0x5Au8; 1 << 20];
    for i in 0..args.size_mib {
        disk.write_blocking(i << 20, &chunk, false).expect("fill");
    }
    disk.flush_blocking().expect("flush");
}

async fn run(disk: &LocalDisk, w: Workload, seconds: f64) -> (u64, Duration) {
    let ops = Arc::new(AtomicU64::new(0));
    let latency_ns = Arc::new(AtomicU64::new(0));
    let blocks = disk.size_bytes() / w.block_bytes as u64;
    let next_seq = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..w.queue_depth)
        .map(|task| {
            let (disk, ops, latency_ns, next_seq) = (
                disk.clone(),
                ops.clone(),
                latency_ns.clone(),
                next_seq.clone(),
            );
            tokio::spawn(async move {
                let mut rng =
                    0x2545_F491_4F6C_DD1Du64 ^ (task as u64 + 1).wrapping_mul(0x9E37_79B9);
                let mut buf = AlignedBuf::zeroed(w.block_bytes);
                buf.fill(task as u8);
                while Instant::now() < deadline {
                    let block = if w.random {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng % blocks
                    } else {
                        next_seq.fetch_add(1, Ordering::Relaxed) % blocks
                    };
                    let offset = block * w.block_bytes as u64;
                    let t = Instant::now();
                    buf = if w.write {
                        disk.write(offset, buf, false).await.expect("write")
                    } else {
                        disk.read_into(offset, buf).await.expect("read")
                    };
                    latency_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("bench task");
    }
    let n = ops.load(Ordering::Relaxed);
    (
        n,
        Duration::from_nanos(latency_ns.load(Ordering::Relaxed) / n.max(1)),
    )
}

fn main() {
    let args = parse_args();
    prepare_file(&args);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{:<10} {:<18} {:>10} {:>10} {:>10}",
        "engine", "workload", "IOPS", "MiB/s", "lat_us"
    );
    for &(engine, in_runtime) in &args.engines {
        let opts = DiskOptions {
            engine,
            ..DiskOptions::default()
        };
        // Opened inside the runtime, io_uring runs inline with it; outside,
        // on a dedicated ring thread.
        let disk = if in_runtime {
            let _guard = rt.enter();
            LocalDisk::open(&args.file, &opts).expect("open")
        } else {
            LocalDisk::open(&args.file, &opts).expect("open")
        };
        let label = match (disk.engine_name(), in_runtime) {
            ("io_uring", true) => "uring-inl",
            ("io_uring", false) => "uring-thr",
            (name, _) => name,
        };
        for w in WORKLOADS {
            if args.only.as_deref().is_some_and(|o| !w.name.contains(o)) {
                continue;
            }
            let (ops, mean_latency) = rt.block_on(run(&disk, w, args.seconds));
            let iops = ops as f64 / args.seconds;
            let mib_s = iops * w.block_bytes as f64 / (1 << 20) as f64;
            println!(
                "{:<10} {:<18} {:>10.0} {:>10.1} {:>10.1}",
                label,
                w.name,
                iops,
                mib_s,
                mean_latency.as_secs_f64() * 1e6
            );
        }
    }
}
