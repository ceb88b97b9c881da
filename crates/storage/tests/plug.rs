//! Submission batching of the inline io_uring engine: requests started inside
//! `defer_submissions` reach the kernel only at `submit_deferred`.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use rdbd_storage::{defer_submissions, submit_deferred, DiskOptions, LocalDisk};
use rdbd_types::AlignedBuf;

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_requests_start_only_at_submit_deferred() {
    let dir = common::temp_dir();
    let path = common::sparse_file(dir.path(), "plug", MIB);
    let disk = LocalDisk::open(&path, &DiskOptions::default()).unwrap();
    assert_eq!(
        disk.engine_detail(),
        "io_uring (inline with the tokio runtime)"
    );
    let data = common::pattern(3, 64 * 1024);
    disk.write(0, AlignedBuf::from_slice(&data), false)
        .await
        .unwrap();

    type Read<'a> =
        Pin<Box<dyn Future<Output = Result<AlignedBuf, rdbd_storage::StorageError>> + 'a>>;
    let mut reads: Vec<Read> = (0..8u64)
        .map(|i| Box::pin(disk.read(i * 8192, 8192)) as Read)
        .collect();
    let mut cx = Context::from_waker(Waker::noop());
    // Everything below runs on this thread without an await, as the rule of
    // `submit_deferred` asks.
    defer_submissions(|| {
        for r in &mut reads {
            assert!(r.as_mut().poll(&mut cx).is_pending());
        }
    });
    // Submitted reads of a cached temp file finish in well under a second.
    std::thread::sleep(Duration::from_millis(300));
    for (i, r) in reads.iter_mut().enumerate() {
        assert!(
            r.as_mut().poll(&mut cx).is_pending(),
            "read {i} completed before submit_deferred"
        );
    }
    submit_deferred();
    for (i, r) in reads.into_iter().enumerate() {
        let buf = tokio::time::timeout(Duration::from_secs(5), r)
            .await
            .unwrap_or_else(|_| panic!("read {i} never completed after submit_deferred"))
            .unwrap();
        let at = i * 8192;
        assert_eq!(
            &buf[..],
            &data[at..at + 8192],
            "read {i} returned wrong data"
        );
    }
    // Outside defer_submissions requests are submitted at once.
    assert_eq!(&disk.read(0, 4096).await.unwrap()[..], &data[..4096]);
}
