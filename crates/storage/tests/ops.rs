//! Behavioural tests of every operation on regular files, for both engines:
//! FUA, flush, discard, write-zeroes, allocation map, concurrency and
//! backpressure, cancellation, errors, read-only, blocking API, buffered
//! fallbacks.

mod common;

use std::sync::Arc;

use rdbd_storage::{DiskOptions, IoOp, LocalDisk, StorageError};
use rdbd_types::AlignedBuf;

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geometry_of_a_regular_file() {
    let dir = common::temp_dir();
    let path = common::sparse_file(dir.path(), "geo", 3 * MIB);
    for engine in common::ENGINES {
        let disk = common::open(&path, engine);
        assert_eq!(disk.size_bytes(), 3 * MIB);
        assert_eq!(disk.logical_block_size(), 512);
        assert!(!disk.is_block_device());
        assert!(disk.is_direct());
        let align = disk.io_alignment_bytes();
        assert!(
            align.is_power_of_two() && (512..=4096).contains(&align),
            "alignment {align}"
        );
        assert_eq!(disk.path(), path.as_path());
    }
    let auto = LocalDisk::open(&path, &DiskOptions::default()).unwrap();
    assert_eq!(
        auto.engine_name(),
        "io_uring",
        "io_uring works on this kernel, Auto must pick it"
    );
    assert_eq!(
        auto.engine_detail(),
        "io_uring (inline with the tokio runtime)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fua_write_flush_and_read_back() {
    let dir = common::temp_dir();
    let path = common::sparse_file(dir.path(), "fua", MIB);
    for engine in common::ENGINES {
        let disk = common::open(&path, engine);
        let data = common::pattern(7, 8192);
        let back = disk
            .write(4096, AlignedBuf::from_slice(&data), true)
            .await
            .unwrap();
        assert_eq!(&back[..], &data[..]);
        disk.write_slice(100, b"unaligned fua", true).await.unwrap();
        disk.flush().await.unwrap();
        // A zero-length FUA write is a flush.
        disk.write(0, AlignedBuf::zeroed(0), true).await.unwrap();
        assert_eq!(&disk.read(4096, 8192).await.unwrap()[..], &data[..]);
        assert_eq!(&disk.read(100, 13).await.unwrap()[..], b"unaligned fua");
        // read_into fills exactly the buffer's length.
        let buf = disk
            .read_into(4096 + 512, AlignedBuf::zeroed(1024))
            .await
            .unwrap();
        assert_eq!(&buf[..], &data[512..1536]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_reads_back_zero_and_makes_the_file_sparse() {
    for engine in common::ENGINES {
        let dir = common::temp_dir();
        let path = common::sparse_file(dir.path(), "discard", 4 * MIB);
        let disk = common::open(&path, engine);
        disk.write_slice(0, &common::pattern(1, 4 * MIB as usize), false)
            .await
            .unwrap();
        disk.flush().await.unwrap();
        let before = common::allocated_bytes(&path);
        assert!(
            before >= 4 * MIB,
            "fully written file allocates {before} bytes"
        );
        disk.discard(MIB, 2 * MIB).await.unwrap();
        assert!(disk
            .read(MIB, 2 * MIB as usize)
            .await
            .unwrap()
            .iter()
            .all(|&b| b == 0));
        let after = common::allocated_bytes(&path);
        assert!(
            after <= before - 2 * MIB,
            "discard freed too little: {before} -> {after}"
        );
        assert_eq!(
            disk.allocation(0, 4 * MIB).await.unwrap(),
            vec![(MIB, false), (2 * MIB, true), (MIB, false)]
        );
        // Unaligned discard: the partial blocks are zeroed, neighbours kept.
        disk.discard(100, 1000).await.unwrap();
        let got = disk.read(0, 2048).await.unwrap();
        let expected = common::pattern(1, 2048);
        assert_eq!(&got[..100], &expected[..100]);
        assert!(got[100..1100].iter().all(|&b| b == 0));
        assert_eq!(&got[1100..], &expected[1100..]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_zeroes_with_and_without_holes() {
    for engine in common::ENGINES {
        let dir = common::temp_dir();
        let path = common::sparse_file(dir.path(), "zeroes", 4 * MIB);
        let disk = common::open(&path, engine);
        disk.write_slice(0, &common::pattern(2, 4 * MIB as usize), false)
            .await
            .unwrap();
        disk.flush().await.unwrap();
        let full = common::allocated_bytes(&path);

        disk.write_zeroes(0, MIB, false).await.unwrap();
        assert!(disk
            .read(0, MIB as usize)
            .await
            .unwrap()
            .iter()
            .all(|&b| b == 0));
        assert_eq!(
            common::allocated_bytes(&path),
            full,
            "write_zeroes without holes must keep the space"
        );

        disk.write_zeroes(2 * MIB, MIB, true).await.unwrap();
        assert!(disk
            .read(2 * MIB, MIB as usize)
            .await
            .unwrap()
            .iter()
            .all(|&b| b == 0));
        assert!(
            common::allocated_bytes(&path) <= full - MIB,
            "punching write_zeroes must free space"
        );
        let map = disk.allocation(2 * MIB, MIB).await.unwrap();
        assert_eq!(map, vec![(MIB, true)]);

        // Unaligned: exact bytes zeroed.
        disk.write_zeroes(3 * MIB + 10, 5000, false).await.unwrap();
        let got = disk.read(3 * MIB, 8192).await.unwrap();
        let expected =
            &common::pattern(2, 4 * MIB as usize)[3 * MIB as usize..3 * MIB as usize + 8192];
        assert_eq!(&got[..10], &expected[..10]);
        assert!(got[10..5010].iter().all(|&b| b == 0));
        assert_eq!(&got[5010..], &expected[5010..]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_map_follows_written_blocks() {
    for engine in common::ENGINES {
        let dir = common::temp_dir();
        let path = common::sparse_file(dir.path(), "alloc", MIB);
        let disk = common::open(&path, engine);
        assert_eq!(disk.allocation(0, MIB).await.unwrap(), vec![(MIB, true)]);
        disk.write_slice(64 * 1024, &[1u8; 4096], false)
            .await
            .unwrap();
        disk.write_slice(MIB - 4096, &[2u8; 4096], false)
            .await
            .unwrap();
        let map = disk.allocation(0, MIB).await.unwrap();
        assert_eq!(
            map,
            vec![
                (64 * 1024, true),
                (4096, false),
                (MIB - 64 * 1024 - 8192, true),
                (4096, false)
            ]
        );
        // A sub-range starting inside the data block.
        assert_eq!(
            disk.allocation(64 * 1024 + 100, 5000).await.unwrap(),
            vec![(3996, false), (1004, true)]
        );
        assert_eq!(disk.allocation(0, 0).await.unwrap(), vec![]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unaligned_writes_to_shared_blocks_lose_nothing() {
    for engine in common::ENGINES {
        let dir = common::temp_dir();
        let path = common::sparse_file(dir.path(), "rmw", MIB);
        let disk = common::open(&path, engine);
        // 200 writers of 100 bytes each: most 512/4096-byte blocks are shared
        // by several writers, so an unserialized read-modify-write would
        // lose updates. Aligned writers run at the same time further on.
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let disk = disk.clone();
            tasks.push(tokio::spawn(async move {
                disk.write_slice(i * 100, &common::pattern(i, 100), false)
                    .await
                    .unwrap();
                disk.write(
                    64 * 1024 + i * 4096,
                    AlignedBuf::from_slice(&common::pattern(1000 + i, 4096)),
                    false,
                )
                .await
                .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let all = disk.read(0, MIB as usize).await.unwrap();
        for i in 0..200usize {
            assert_eq!(
                &all[i * 100..i * 100 + 100],
                &common::pattern(i as u64, 100)[..],
                "writer {i} lost"
            );
            let at = 64 * 1024 + i * 4096;
            assert_eq!(
                &all[at..at + 4096],
                &common::pattern(1000 + i as u64, 4096)[..],
                "aligned writer {i}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_requests_than_the_queue_depth_all_complete() {
    let dir = common::temp_dir();
    let path = common::sparse_file(dir.path(), "depth", 8 * MIB);
    for engine in common::ENGINES {
        let disk = common::open(&path, engine);
        let n = 3 * rdbd_storage::MAX_IN_FLIGHT as u64;
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let disk = disk.clone();
                tokio::spawn(async move {
                    let data = common::pattern(i, 4096);
                    disk.write(i * 4096, AlignedBuf::from_slice(&data), false)
                        .await
                        .unwrap();
                    assert_eq!(&disk.read(i * 4096, 4096).await.unwrap()[..], &data[..]);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_requests_do_not_break_the_disk() {
    let dir = common::temp_dir();
    let path = common::sparse_file(dir.path(), "cancel", 8 * MIB);
    for engine in common::ENGINES {
        let disk = common::open(&path, engine);
        for i in 0..50u64 {
            let fut = disk.write(i * 65536, AlignedBuf::zeroed(65536), false);
            // Poll once (submits), then drop the future mid-flight.
            let _ = tokio::time::timeout(std::time::Duration::from_micros(1), fut).await;
        }
        disk.write_slice(0, b"still works", false).await.unwrap();
        assert_eq!(&disk.read(0, 11).await.unwrap()[..], b"still works");
        drop(disk); // must wait for the abandoned requests, not hang or crash
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_requests_name_the_offset() {
    let dir = common::temp_dir();
    let path = common::sparse_file(dir.path(), "range", MIB);
    for engine in common::ENGINES {
        let disk = common::open(&path, engine);
        let err = disk.read(MIB - 512, 1024).await.unwrap_err();
        assert!(
            matches!(err, StorageError::OutOfRange { op: IoOp::Read, offset, len: 1024, size_bytes }
            if offset == MIB - 512 && size_bytes == MIB),
            "{err:?}"
        );
        assert!(err.to_string().contains(&(MIB - 512).to_string()), "{err}");
        assert_eq!(err.errno(), libc::EINVAL);
        assert!(
            disk.read(u64::MAX - 10, 512).await.is_err(),
            "overflowing offset must be rejected"
        );
        assert!(matches!(
            disk.write_slice(MIB, b"x", false).await,
            Err(StorageError::OutOfRange { .. })
        ));
        assert!(matches!(
            disk.discard(0, MIB + 1).await,
            Err(StorageError::OutOfRange { .. })
        ));
        assert!(matches!(
            disk.write_zeroes(MIB, 1, true).await,
            Err(StorageError::OutOfRange { .. })
        ));
        assert!(matches!(
            disk.allocation(1, MIB).await,
            Err(StorageError::OutOfRange { .. })
        ));
        // The end of the device itself is fine.
        assert_eq!(disk.read(MIB - 512, 512).await.unwrap().len(), 512);
        assert_eq!(disk.read(MIB, 0).await.unwrap().len(), 0);
    }
}

#[test]
fn opening_a_missing_path_names_it() {
    let dir = common::temp_dir();
    let path = dir.path().join("no-such-disk");
    let err = LocalDisk::open(&path, &DiskOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(err.io_error().unwrap().kind(), std::io::ErrorKind::NotFound);

    let err = LocalDisk::open(dir.path(), &DiskOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_disks_refuse_modification() {
    let dir = common::temp_dir();
    let path = common::sparse_file(dir.path(), "ro", MIB);
    std::fs::write(&path, common::pattern(3, MIB as usize)).unwrap();
    for engine in common::ENGINES {
        let disk = common::open_with(
            &path,
            engine,
            DiskOptions {
                read_only: true,
                ..DiskOptions::default()
            },
        );
        assert!(disk.is_read_only());
        assert_eq!(
            &disk.read(0, 4096).await.unwrap()[..],
            &common::pattern(3, 4096)[..]
        );
        let err = disk.write_slice(0, b"x", false).await.unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::ReadOnly {
                    op: IoOp::Write,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(matches!(
            disk.discard(0, 4096).await,
            Err(StorageError::ReadOnly { .. })
        ));
        assert!(matches!(
            disk.write_zeroes(0, 4096, false).await,
            Err(StorageError::ReadOnly { .. })
        ));
    }
}

#[test]
fn blocking_api_without_a_runtime() {
    let dir = common::temp_dir();
    let path = common::sparse_file(dir.path(), "blocking", MIB);
    for engine in [common::Mode::UringThread, common::Mode::Sync] {
        let disk = common::open(&path, engine);
        disk.write_blocking(4096, &common::pattern(4, 8192), true)
            .unwrap();
        disk.write_blocking(10, b"meta", false).unwrap();
        disk.flush_blocking().unwrap();
        assert_eq!(
            &disk.read_blocking(4096, 8192).unwrap()[..],
            &common::pattern(4, 8192)[..]
        );
        assert_eq!(&disk.read_blocking(10, 4).unwrap()[..], b"meta");
        let buf = disk
            .read_into_blocking(4096, AlignedBuf::zeroed(512))
            .unwrap();
        assert_eq!(&buf[..], &common::pattern(4, 512)[..]);
        disk.write_zeroes_blocking(4096, 4096, false).unwrap();
        assert!(disk
            .read_blocking(4096, 4096)
            .unwrap()
            .iter()
            .all(|&b| b == 0));
        disk.discard_blocking(0, 4096).unwrap();
        assert!(disk.read_blocking(0, 4096).unwrap().iter().all(|&b| b == 0));
        assert!(matches!(
            disk.read_blocking(MIB, 1),
            Err(StorageError::OutOfRange { .. })
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unaligned_file_length_falls_back_to_buffered() {
    let dir = common::temp_dir();
    let path = dir.path().join("odd");
    for engine in common::ENGINES {
        std::fs::write(&path, common::pattern(5, 1000)).unwrap();
        let disk = common::open(&path, engine);
        assert!(
            !disk.is_direct(),
            "a 1000-byte file cannot be read with O_DIRECT to its end"
        );
        assert_eq!(disk.size_bytes(), 1000);
        assert_eq!(disk.io_alignment_bytes(), 1);
        assert_eq!(
            &disk.read(990, 10).await.unwrap()[..],
            &common::pattern(5, 1000)[990..]
        );
        disk.write_slice(995, b"tail!", true).await.unwrap();
        assert_eq!(&disk.read(995, 5).await.unwrap()[..], b"tail!");
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            1000,
            "the file must not grow"
        );
    }
}

/// tmpfs refused `O_DIRECT` before Linux 6.6 (the open fails with EINVAL and
/// the disk falls back to buffered I/O; the fallback itself is unit-tested
/// with an injected EINVAL). Either way, a disk on tmpfs must work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmpfs_backing_file_works_direct_or_buffered() {
    let shm = std::path::Path::new("/dev/shm");
    assert!(shm.is_dir(), "/dev/shm (tmpfs) is needed for this test");
    let dir = tempfile::tempdir_in(shm).unwrap();
    let path = common::sparse_file(dir.path(), "tmpfs", MIB);
    for engine in common::ENGINES {
        let disk = common::open(&path, engine);
        println!(
            "tmpfs: direct={} engine={}",
            disk.is_direct(),
            disk.engine_name()
        );
        disk.write_slice(1234, &common::pattern(6, 10_000), true)
            .await
            .unwrap();
        assert_eq!(
            &disk.read(1234, 10_000).await.unwrap()[..],
            &common::pattern(6, 10_000)[..]
        );
        disk.discard(0, MIB).await.unwrap();
        assert!(disk
            .read(0, MIB as usize)
            .await
            .unwrap()
            .iter()
            .all(|&b| b == 0));
    }
}

#[test]
fn disk_is_send_sync_and_cheap_to_share() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<LocalDisk>();
    let dir = common::temp_dir();
    let path = common::sparse_file(dir.path(), "share", MIB);
    let disk = Arc::new(common::open(&path, common::Mode::UringThread));
    let threads: Vec<_> = (0..4u64)
        .map(|i| {
            let disk = disk.clone();
            std::thread::spawn(move || {
                disk.write_blocking(i * 4096, &common::pattern(i, 4096), false)
                    .unwrap();
                disk.read_blocking(i * 4096, 4096).unwrap()
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(&t.join().unwrap()[..], &common::pattern(i as u64, 4096)[..]);
    }
}

/// The blocking API called on the only thread of a current-thread runtime
/// that owns an inline ring must not wait for that runtime's reactor.
#[test]
fn blocking_api_on_the_runtime_thread_does_not_deadlock() {
    let dir = common::temp_dir();
    let path = common::sparse_file(dir.path(), "rt-blocking", MIB);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let disk = common::open(&path, common::Mode::UringInline);
        disk.write_blocking(0, b"from the runtime thread", true)
            .unwrap();
        assert_eq!(
            &disk.read_blocking(0, 23).unwrap()[..],
            b"from the runtime thread"
        );
        // And the async path still works afterwards.
        assert_eq!(&disk.read(0, 4).await.unwrap()[..], b"from");
    });
}
