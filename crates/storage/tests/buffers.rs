//! The buffers of the I/O path, for every engine: writes straight from a
//! [`SharedBuf`] (the memory the replication send reads too), and reads into
//! recycled, non-zeroed buffers that fail rather than return stale bytes when
//! the file ends early.

mod common;

use rdbd_types::{AlignedBuf, SharedBuf};

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_buffers_are_written_aligned_and_unaligned_and_stay_intact() {
    let dir = common::temp_dir();
    let path = common::sparse_file(dir.path(), "shared", MIB);
    for (i, engine) in common::ENGINES.into_iter().enumerate() {
        let data = common::pattern(11 + i as u64, 64 * 1024);
        let shared = SharedBuf::from(AlignedBuf::from_slice(&data));
        let other_user = shared.clone();
        let disk = common::open(&path, engine);
        disk.write_shared(8192, shared.clone(), false)
            .await
            .unwrap();
        // Unaligned: the read-modify-write path copies from the shared bytes.
        disk.write_shared(300_001, shared, true).await.unwrap();
        assert_eq!(
            &other_user[..],
            &data[..],
            "{engine:?}: shared memory changed"
        );
        assert_eq!(
            &disk.read(8192, data.len()).await.unwrap()[..],
            &data[..],
            "{engine:?}"
        );
        assert_eq!(
            &disk.read(300_001, data.len()).await.unwrap()[..],
            &data[..],
            "{engine:?}"
        );
        assert!(
            other_user.try_unwrap().is_ok(),
            "{engine:?}: the disk kept a reference to the shared buffer"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_bytes_are_written_from_aligned_memory_or_from_a_copy() {
    let dir = common::temp_dir();
    let path = common::sparse_file(dir.path(), "bytes", MIB);
    for (i, engine) in common::ENGINES.into_iter().enumerate() {
        let data = common::pattern(21 + i as u64, 64 * 1024);
        let disk = common::open(&path, engine);
        // Aligned memory (as the peer receiver reads a large payload): no copy.
        let aligned = bytes::Bytes::from_owner(AlignedBuf::from_slice(&data));
        assert_eq!(aligned.as_ptr() as usize % rdbd_types::buf::ALIGNMENT, 0);
        disk.write_bytes(8192, aligned, false).await.unwrap();
        // Memory at an odd address (a payload inside a decoder's buffer), and an
        // unaligned offset: both go through a copy.
        let mut odd = vec![0u8; data.len() + 1];
        odd[1..].copy_from_slice(&data);
        let odd = bytes::Bytes::from(odd).slice(1..);
        disk.write_bytes(131_072, odd.clone(), true).await.unwrap();
        disk.write_bytes(300_001, odd, false).await.unwrap();
        for offset in [8192u64, 131_072, 300_001] {
            assert_eq!(
                &disk.read(offset, data.len()).await.unwrap()[..],
                &data[..],
                "{engine:?} at {offset}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cut_short_fails_instead_of_returning_stale_bytes() {
    let dir = common::temp_dir();
    for engine in common::ENGINES {
        let path = common::sparse_file(dir.path(), &format!("short-{engine:?}"), MIB);
        let disk = common::open(&path, engine);
        disk.write(0, AlignedBuf::from_slice(&[0x11; 64 * 1024]), true)
            .await
            .unwrap();
        // Leave dirty buffers of the read's size class in the pool.
        let dirty: Vec<AlignedBuf> = (0..4)
            .map(|_| AlignedBuf::from_slice(&[0xee; 64 * 1024]))
            .collect();
        drop(dirty);
        // The file shrinks under the open disk: a read across the new end gets
        // fewer bytes than asked.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(32 * 1024)
            .unwrap();
        let result = disk.read(0, 64 * 1024).await;
        assert!(
            result.is_err(),
            "{engine:?}: a short read returned a buffer (stale bytes would reach the client)"
        );
        let result = disk.read(32 * 1024, 4096).await;
        assert!(result.is_err(), "{engine:?}: a read past the end succeeded");
        // What is still there reads back correctly.
        assert_eq!(
            &disk.read(0, 4096).await.unwrap()[..],
            &[0x11; 4096][..],
            "{engine:?}"
        );
    }
}
