//! Reference-model test: random sequences of aligned and unaligned reads,
//! writes, write-zeroes and discards against an in-memory byte vector, for
//! both engines, in direct mode.

mod common;

use common::Mode;
use proptest::prelude::*;

const SIZE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone)]
enum Op {
    Write {
        offset: u64,
        len: usize,
        seed: u64,
        fua: bool,
    },
    Read {
        offset: u64,
        len: usize,
    },
    WriteZeroes {
        offset: u64,
        len: u64,
        punch: bool,
    },
    Discard {
        offset: u64,
        len: u64,
    },
    Flush,
}

/// An (offset, len) inside the disk: half block-aligned, half arbitrary.
fn range() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        (0u64..SIZE_BYTES / 512, 1u64..33).prop_map(|(b, n)| (b * 512, n * 512)),
        (0u64..SIZE_BYTES, 1u64..20_000),
    ]
    .prop_map(|(offset, len)| {
        (
            offset.min(SIZE_BYTES - 1),
            len.min(SIZE_BYTES - offset.min(SIZE_BYTES - 1)),
        )
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (range(), any::<u64>(), any::<bool>())
            .prop_map(|((offset, len), seed, fua)| Op::Write { offset, len: len as usize, seed, fua }),
        4 => range().prop_map(|(offset, len)| Op::Read { offset, len: len as usize }),
        1 => (range(), any::<bool>()).prop_map(|((offset, len), punch)| Op::WriteZeroes { offset, len, punch }),
        1 => range().prop_map(|(offset, len)| Op::Discard { offset, len }),
        1 => Just(Op::Flush),
    ]
}

/// Runs `ops` on a fresh disk run as `mode`.
fn run_case(mode: Mode, ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = common::temp_dir();
    let path = common::sparse_file(dir.path(), "model", SIZE_BYTES);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let disk = {
        let _guard = rt.enter();
        common::open(&path, mode)
    };
    prop_assert!(disk.is_direct(), "ext4 must accept O_DIRECT");
    let mut model = vec![0u8; SIZE_BYTES as usize];
    rt.block_on(async {
        for op in ops {
            match *op {
                Op::Write {
                    offset,
                    len,
                    seed,
                    fua,
                } => {
                    let data = common::pattern(seed, len);
                    if seed % 2 == 0 {
                        disk.write_slice(offset, &data, fua)
                            .await
                            .expect("write_slice");
                    } else {
                        let buf = rdbd_types::AlignedBuf::from_slice(&data);
                        let back = disk.write(offset, buf, fua).await.expect("write");
                        prop_assert_eq!(
                            &back[..],
                            &data[..],
                            "write must return the buffer unchanged"
                        );
                    }
                    model[offset as usize..offset as usize + len].copy_from_slice(&data);
                }
                Op::Read { offset, len } => {
                    let got = disk.read(offset, len).await.expect("read");
                    prop_assert_eq!(
                        &got[..],
                        &model[offset as usize..offset as usize + len],
                        "read {:?}",
                        op
                    );
                }
                Op::WriteZeroes { offset, len, punch } => {
                    disk.write_zeroes(offset, len, punch)
                        .await
                        .expect("write_zeroes");
                    model[offset as usize..(offset + len) as usize].fill(0);
                }
                Op::Discard { offset, len } => {
                    // Files: discard punches a hole, so the range reads zero.
                    disk.discard(offset, len).await.expect("discard");
                    model[offset as usize..(offset + len) as usize].fill(0);
                }
                Op::Flush => disk.flush().await.expect("flush"),
            }
        }
        let all = disk.read(0, SIZE_BYTES as usize).await.expect("final read");
        prop_assert!(all[..] == model[..], "final contents differ from the model");
        Ok(())
    })?;
    drop(disk);
    let on_disk = std::fs::read(&path).expect("read file back");
    prop_assert!(
        on_disk == model,
        "file contents (read buffered) differ from the model"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn io_uring_ring_thread_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run_case(Mode::UringThread, &ops)?;
    }

    #[test]
    fn io_uring_inline_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run_case(Mode::UringInline, &ops)?;
    }

    #[test]
    fn sync_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run_case(Mode::Sync, &ops)?;
    }
}
