//! Tests on a real block device: a loop device over a temp file, with 512-
//! and 4096-byte logical blocks (the latter exercises the read-modify-write
//! path for 512-byte requests). Skipped, with the reason printed, when
//! `losetup` cannot attach a device (no root, no loop driver).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use rdbd_storage::StorageError;
use rdbd_types::AlignedBuf;

const SIZE_BYTES: u64 = 16 << 20;

/// An attached loop device, detached on drop.
struct LoopDevice {
    device: PathBuf,
}

impl LoopDevice {
    fn attach(file: &Path, sector_size: u32) -> Result<LoopDevice, String> {
        let out = Command::new("losetup")
            .args(["--sector-size", &sector_size.to_string(), "-f", "--show"])
            .arg(file)
            .output()
            .map_err(|e| format!("cannot run losetup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "losetup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(LoopDevice {
            device: PathBuf::from(device),
        })
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_device_round_trips_and_space_operations() {
    let dir = common::temp_dir();
    for sector_size in [512u32, 4096] {
        let file = common::sparse_file(dir.path(), &format!("loop{sector_size}"), SIZE_BYTES);
        let dev = match LoopDevice::attach(&file, sector_size) {
            Ok(d) => d,
            Err(reason) => {
                println!("SKIPPED loop device test: {reason}");
                return;
            }
        };
        for engine in common::ENGINES {
            exercise(&dev.device, engine, sector_size).await;
        }
    }
}

async fn exercise(device: &Path, engine: common::Mode, sector_size: u32) {
    let ctx = format!(
        "{} ({sector_size}-byte sectors, {engine:?})",
        device.display()
    );
    let disk = common::open(device, engine);
    assert!(disk.is_block_device(), "{ctx}");
    assert_eq!(disk.size_bytes(), SIZE_BYTES, "{ctx}");
    assert_eq!(disk.logical_block_size(), sector_size, "{ctx}");
    assert!(disk.is_direct(), "{ctx}");
    assert_eq!(disk.io_alignment_bytes(), sector_size, "{ctx}");

    // Aligned round trip, with FUA.
    let data = common::pattern(u64::from(sector_size), 64 * 1024);
    disk.write(1 << 20, AlignedBuf::from_slice(&data), true)
        .await
        .unwrap();
    assert_eq!(
        &disk.read(1 << 20, data.len()).await.unwrap()[..],
        &data[..],
        "{ctx}"
    );

    // 512-byte and byte-granular requests (read-modify-write on 4k sectors).
    disk.write_slice((1 << 20) + 512, &[0xAB; 512], false)
        .await
        .unwrap();
    disk.write_slice((1 << 20) + 7000, b"odd bytes", false)
        .await
        .unwrap();
    disk.flush().await.unwrap();
    let mut expected = data.clone();
    expected[512..1024].fill(0xAB);
    expected[7000..7009].copy_from_slice(b"odd bytes");
    assert_eq!(
        &disk.read(1 << 20, data.len()).await.unwrap()[..],
        &expected[..],
        "{ctx}"
    );
    assert_eq!(
        &disk.read((1 << 20) + 7001, 3).await.unwrap()[..],
        b"dd ",
        "{ctx}"
    );

    // Write-zeroes (BLKZEROOUT, and the punching variant), unaligned edges included.
    disk.write_zeroes(1 << 20, 16 * 1024, false).await.unwrap();
    disk.write_zeroes((1 << 20) + 20_000, 10_000, true)
        .await
        .unwrap();
    let got = disk.read(1 << 20, data.len()).await.unwrap();
    assert!(
        got[..16 * 1024].iter().all(|&b| b == 0),
        "{ctx}: write_zeroes"
    );
    assert_eq!(
        &got[16 * 1024..20_000],
        &expected[16 * 1024..20_000],
        "{ctx}"
    );
    assert!(
        got[20_000..30_000].iter().all(|&b| b == 0),
        "{ctx}: punching write_zeroes"
    );
    assert_eq!(&got[30_000..], &expected[30_000..], "{ctx}");

    // Discard is accepted (contents afterwards unspecified on block devices).
    disk.discard(2 << 20, 1 << 20).await.unwrap();
    disk.discard(100, 50).await.unwrap(); // smaller than a block: nothing to do

    // Block devices are all data.
    assert_eq!(
        disk.allocation(0, SIZE_BYTES).await.unwrap(),
        vec![(SIZE_BYTES, false)],
        "{ctx}"
    );

    // The end of the device.
    disk.write_slice(SIZE_BYTES - 10, b"end-of-dev", true)
        .await
        .unwrap();
    assert_eq!(
        &disk.read(SIZE_BYTES - 10, 10).await.unwrap()[..],
        b"end-of-dev",
        "{ctx}"
    );
    let err = disk.read(SIZE_BYTES - 512, 1024).await.unwrap_err();
    assert!(
        matches!(err, StorageError::OutOfRange { .. }),
        "{ctx}: {err:?}"
    );

    // Blocking API on a block device.
    disk.write_blocking(3 << 20, b"blocking", true).unwrap();
    assert_eq!(
        &disk.read_blocking(3 << 20, 8).unwrap()[..],
        b"blocking",
        "{ctx}"
    );
}
