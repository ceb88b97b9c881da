//! Helpers shared by the integration tests: temporary backing files on a
//! real (non-tmpfs) file system and disks opened with each engine.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rdbd_storage::{DiskOptions, Engine, LocalDisk};

/// Both engines; every behavioural test runs against each.
pub const ENGINES: [Engine; 2] = [Engine::IoUring, Engine::Sync];

/// A temporary directory under the target dir (ext4 here, never tmpfs, so
/// `O_DIRECT` really is direct).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("rdbd-storage-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("create temp dir")
}

/// Creates a sparse file of `size_bytes` in `dir`.
pub fn sparse_file(dir: &Path, name: &str, size_bytes: u64) -> PathBuf {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).expect("create backing file");
    f.set_len(size_bytes).expect("size backing file");
    path
}

/// Opens `path` read-write, direct, with `engine`.
pub fn open(path: &Path, engine: Engine) -> LocalDisk {
    let opts = DiskOptions { engine, ..DiskOptions::default() };
    let disk = LocalDisk::open(path, &opts).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let expected = match engine {
        Engine::IoUring => "io_uring",
        Engine::Sync => "sync",
        Engine::Auto => disk.engine_name(),
    };
    assert_eq!(disk.engine_name(), expected);
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
