//! Interoperability with real NBD clients (libnbd's nbdinfo/nbdcopy, qemu-io,
//! fio's nbd engine) against a MemDevice served on a Unix socket. The tools
//! must be installed (`scripts/install-deps.sh`); a missing tool fails the test.

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;

use rdbd_nbd::testing::{mem_export_info, MemDevice, MemExports};
use rdbd_nbd::{serve_unix, ServerLimits};
use tokio::process::Command;

const MIB: u64 = 1024 * 1024;

struct Served {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    device: Arc<MemDevice>,
}

impl Served {
    fn uri(&self, export: &str) -> String {
        format!("nbd+unix:///{export}?socket={}", self.socket.display())
    }
}

/// Serves "disk" (`size` bytes, block_size_max 1 MiB) and "ro" (read-only, 1 MiB).
async fn serve(size: u64) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nbd.sock");
    let exports = MemExports::new();
    let device = Arc::new(MemDevice::new(size));
    let mut info = mem_export_info(size);
    info.block_size_max = MIB as u32;
    info.can_cache = false;
    exports.add("disk", info, device.clone());
    let mut ro = mem_export_info(MIB);
    ro.read_only = true;
    exports.add("ro", ro, Arc::new(MemDevice::new(MIB)));
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(serve_unix(
        listener,
        Arc::new(exports),
        ServerLimits::default(),
    ));
    Served {
        _dir: dir,
        socket,
        device,
    }
}

async fn run_unchecked(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (install it with scripts/install-deps.sh): {e}")
        })
}

async fn run(program: &str, args: &[&str]) -> Output {
    let output = run_unchecked(program, args).await;
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbdinfo_reports_size_flags_block_sizes_and_contexts() {
    let s = serve(64 * MIB).await;
    let out = run("nbdinfo", &["--json", &s.uri("disk")]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["protocol"], "newstyle-fixed");
    assert_eq!(json["structured"], true);
    let export = &json["exports"][0];
    assert_eq!(export["export-name"], "disk");
    assert_eq!(export["export-size"], 64 * MIB);
    assert_eq!(export["description"], "in-memory test export");
    assert_eq!(export["is_read_only"], false);
    for flag in [
        "can_flush",
        "can_fua",
        "can_trim",
        "can_zero",
        "can_fast_zero",
        "can_multi_conn",
    ] {
        assert_eq!(export[flag], true, "{flag}");
    }
    assert_eq!(export["can_cache"], false);
    assert_eq!(export["block_size_minimum"], 512);
    assert_eq!(export["block_size_preferred"], 4096);
    assert_eq!(export["block_size_maximum"], MIB);
    assert_eq!(export["contexts"], serde_json::json!(["base:allocation"]));

    let out = run("nbdinfo", &["--json", &s.uri("ro")]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["exports"][0]["is_read_only"], true);

    let list = run("nbdinfo", &["--list", &s.uri("")]).await;
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("export=\"disk\"") && list.contains("export=\"ro\""),
        "{list}"
    );
    assert!(list.contains("base:allocation"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_io_writes_and_reads_patterns_and_nbdinfo_maps_them() {
    let s = serve(16 * MIB).await;
    let uri = s.uri("disk");
    let out = run(
        "qemu-io",
        &[
            "-f",
            "raw",
            &uri,
            "-c",
            "write -P 0xab 0 64k",
            "-c",
            "read -P 0xab 0 64k",
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("wrote 65536/65536") && text.contains("read 65536/65536"),
        "{text}"
    );
    assert!(s.device.contents()[..65536].iter().all(|&b| b == 0xab));
    // qemu-io really verifies: a wrong pattern is reported.
    let out = run_unchecked("qemu-io", &["-f", "raw", &uri, "-c", "read -P 0xcd 0 4k"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Pattern verification failed"));

    let map = run("nbdinfo", &["--map", "--json", &uri]).await;
    let map: serde_json::Value = serde_json::from_slice(&map.stdout).unwrap();
    let map = map.as_array().unwrap();
    assert_eq!(map[0]["offset"], 0);
    assert_eq!(map[0]["length"], 65536);
    assert_eq!(map[0]["type"], 0, "written data is allocated");
    assert_eq!(map[1]["offset"], 65536);
    assert_eq!(map[1]["type"], 3, "the rest is a hole reading as zeroes");
    let total: u64 = map.iter().map(|e| e["length"].as_u64().unwrap()).sum();
    assert_eq!(total, 16 * MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbdcopy_round_trips_random_data() {
    let size = 24 * MIB;
    let s = serve(size).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    let mut data = vec![0u8; size as usize];
    rand::Rng::fill(&mut rand::thread_rng(), &mut data[..]);
    data[4 * MIB as usize..6 * MIB as usize].fill(0); // a zero run nbdcopy may send as zeroes
    std::fs::write(&input, &data).unwrap();
    run("nbdcopy", &[input.to_str().unwrap(), &s.uri("disk")]).await;
    assert_eq!(
        crc32c::crc32c(&s.device.contents()),
        crc32c::crc32c(&data),
        "data in the export differs"
    );
    run("nbdcopy", &[&s.uri("disk"), output.to_str().unwrap()]).await;
    let copied = std::fs::read(&output).unwrap();
    assert_eq!(copied.len(), data.len());
    assert_eq!(
        crc32c::crc32c(&copied),
        crc32c::crc32c(&data),
        "data copied back differs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fio_randwrite_verifies_at_queue_depth_1_and_32() {
    let s = serve(32 * MIB).await;
    let uri = s.uri("disk");
    for iodepth in ["1", "32"] {
        let out = run(
            "fio",
            &[
                "--name=verify",
                "--ioengine=nbd",
                &format!("--uri={uri}"),
                "--rw=randwrite",
                "--bs=4k",
                "--size=8m",
                &format!("--iodepth={iodepth}"),
                "--verify=crc32c",
                "--do_verify=1",
                "--verify_state_save=0",
                "--runtime=10",
            ],
        )
        .await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("err= 0"), "fio at iodepth {iodepth}: {text}");
        assert!(
            !text.contains("verify: bad"),
            "fio at iodepth {iodepth}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_tcp_works_with_nbdinfo_and_qemu_io() {
    let exports = MemExports::new();
    let device = Arc::new(MemDevice::new(4 * MIB));
    exports.add("disk", mem_export_info(4 * MIB), device.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(rdbd_nbd::serve_tcp(
        listener,
        Arc::new(exports),
        ServerLimits::default(),
    ));
    let uri = format!("nbd://127.0.0.1:{port}/disk");
    let out = run("nbdinfo", &["--size", &uri]).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        (4 * MIB).to_string()
    );
    run(
        "qemu-io",
        &[
            "-f",
            "raw",
            &uri,
            "-c",
            "write -P 0x5a 1M 8k",
            "-c",
            "read -P 0x5a 1M 8k",
        ],
    )
    .await;
    assert!(device.contents()[MIB as usize..MIB as usize + 8192]
        .iter()
        .all(|&b| b == 0x5a));
}
