//! Helpers shared by the integration tests: temporary backing files on a
//! real (non-tmpfs) file system and disks opened with each engine.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rdbd_storage::{DiskOptions, Engine, LocalDisk};

/// How a test disk is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// io_uring inline with the caller's tokio runtime (opened inside it).
    UringInline,
    /// io_uring on a dedicated ring thread (opened outside any runtime).
    UringThread,
    /// The pread/pwrite thread pool.
    Sync,
}

impl Mode {
    pub fn engine(self) -> Engine {
        match self {
            Mode::UringInline | Mode::UringThread => Engine::IoUring,
            Mode::Sync => Engine::Sync,
        }
    }
}

/// Every engine; behavioural tests run against each.
pub const ENGINES: [Mode; 3] = [Mode::UringInline, Mode::UringThread, Mode::Sync];

/// A temporary directory under the target dir (ext4 here, never tmpfs, so
/// `O_DIRECT` really is direct).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rdbd-storage-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create temp dir")
}

/// Creates a sparse file of `size_bytes` in `dir`.
pub fn sparse_file(dir: &Path, name: &str, size_bytes: u64) -> PathBuf {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).expect("create backing file");
    f.set_len(size_bytes).expect("size backing file");
    path
}

/// Opens `path` read-write, direct, run as `mode`. Inline mode needs the
/// caller to be inside a tokio runtime.
pub fn open(path: &Path, mode: Mode) -> LocalDisk {
    open_with(
        path,
        mode,
        DiskOptions {
            engine: mode.engine(),
            ..DiskOptions::default()
        },
    )
}

/// Opens `path` with `opts` (its engine taken from `mode`), run as `mode`.
pub fn open_with(path: &Path, mode: Mode, opts: DiskOptions) -> LocalDisk {
    let opts = DiskOptions {
        engine: mode.engine(),
        ..opts
    };
    let path_buf = path.to_path_buf();
    let disk = if mode == Mode::UringThread {
        // A thread without a runtime: the engine gets its own ring thread.
        std::thread::spawn(move || LocalDisk::open(&path_buf, &opts))
            .join()
            .expect("open thread")
    } else {
        LocalDisk::open(path, &opts)
    }
    .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let expected = match mode {
        Mode::UringInline => "io_uring (inline with the tokio runtime)",
        Mode::UringThread => "io_uring (ring thread)",
        Mode::Sync => "sync (pread/pwrite thread pool)",
    };
    assert_eq!(disk.engine_detail(), expected);
    disk
}

/// Deterministic pseudo-random bytes.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Allocated bytes of a file (`st_blocks * 512`).
pub fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("stat").blocks() * 512
}
