//! Which blocks to request next, as DRBD 8.4 walks the bitmap (drbd_worker.c
//! `make_resync_request`, `make_ov_request`, `drbd_ov_out_of_sync_found`), without I/O.
//!
//! API:
//! - [`plan_resync_requests`]: the SyncTarget's walk. From the cursor (`bm_resync_fo`) it finds
//!   the next set bit and merges following set bits into one request while the request stays
//!   within `max_bio_bytes`, stays aligned (a request grows past 2^k blocks only when its start
//!   is aligned to 2^(k+1) blocks), does not cross a 16 MiB resync extent, and the budget
//!   (`blocks`, from [`super::rate::RateController::step`]) lasts. The last request is cut at
//!   the device's end. `extent_busy(sector)` lets the caller stop at an extent it cannot lock
//!   now (application I/O, or c-min-rate throttling): the cursor then stays on that block.
//!   The caller sends P_RS_DATA_REQUEST (or P_CSUM_RS_REQUEST) per request and reports
//!   [`ResyncPlan::blocks`] to `requests_sent`.
//! - [`plan_verify_requests`]: VerifyS's walk: one 4 KiB P_OV_REQUEST per block from the
//!   position, up to the budget, the stop sector (not before the first request) or the end.
//! - [`OutOfSyncRanges`]: VerifyS coalesces contiguous out-of-sync blocks and logs
//!   `Out of sync: start=S, size=N (sectors)` when an in-sync block (or the end) follows.

/// Bytes per bitmap block.
pub const BLOCK_BYTES: u32 = 4096;
/// Sectors per bitmap block.
pub const SECTORS_PER_BLOCK: u64 = 8;
/// Bitmap blocks per 16 MiB resync extent (`BM_BITS_PER_EXT`).
pub const BLOCKS_PER_EXTENT: u64 = 4096;
/// DRBD's largest request (`DRBD_MAX_BIO_SIZE`, 1 MiB).
pub const MAX_BIO_BYTES: u32 = 1 << 20;

/// One request to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRequest {
    /// First sector (512 bytes).
    pub sector: u64,
    /// Length in bytes (a multiple of 4096 except at the device's odd end).
    pub size_bytes: u32,
}

/// The outcome of [`plan_resync_requests`].
///
/// `blocks` counts like DRBD's `i`: each request's blocks, where a request's last block may be
/// partial at the device's end; merging may exceed the budget by one block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResyncPlan {
    /// The requests, in bitmap order.
    pub requests: Vec<BlockRequest>,
    /// 4 KiB blocks the requests cover (what DRBD adds to `rs_in_flight`, in blocks).
    pub blocks: u64,
    /// The cursor reached the end of the bitmap: nothing more to request in this resync.
    pub end_of_bitmap: bool,
    /// Stopped at an extent the caller reported busy; retry next step.
    pub stopped_busy: bool,
}

fn test_bit(words: &[u64], bm_bits: u64, bit: u64) -> bool {
    bit < bm_bits
        && words
            .get((bit / 64) as usize)
            .is_some_and(|w| (w >> (bit % 64)) & 1 == 1)
}

fn find_next_set(words: &[u64], bm_bits: u64, from: u64) -> Option<u64> {
    let mut bit = from;
    while bit < bm_bits {
        let word = *words.get((bit / 64) as usize)? >> (bit % 64);
        if word != 0 {
            let found = bit + u64::from(word.trailing_zeros());
            return (found < bm_bits).then_some(found);
        }
        bit = (bit / 64 + 1) * 64;
    }
    None
}

/// `make_resync_request`'s walk: up to `blocks` blocks from `*cursor`, which it advances.
pub fn plan_resync_requests(
    words: &[u64],
    bm_bits: u64,
    capacity_sectors: u64,
    cursor: &mut u64,
    blocks: u64,
    max_bio_bytes: u32,
    mut extent_busy: impl FnMut(u64) -> bool,
) -> ResyncPlan {
    let mut plan = ResyncPlan::default();
    let max_bio_bytes = u64::from(max_bio_bytes.clamp(BLOCK_BYTES, MAX_BIO_BYTES));
    let mut i = 0;
    while i < blocks {
        let Some(mut bit) = find_next_set(words, bm_bits, *cursor) else {
            *cursor = bm_bits;
            plan.end_of_bitmap = true;
            return plan;
        };
        let sector = bit * SECTORS_PER_BLOCK;
        if extent_busy(sector) {
            *cursor = bit;
            plan.stopped_busy = true;
            return plan;
        }
        *cursor = bit + 1;
        let mut size = u64::from(BLOCK_BYTES);
        let mut align = 1u32;
        while i < blocks {
            if size + u64::from(BLOCK_BYTES) > max_bio_bytes {
                break;
            }
            if sector & ((1u64 << (align + 3)) - 1) != 0 {
                break;
            }
            if (bit + 1) % BLOCKS_PER_EXTENT == 0 {
                break;
            }
            if !test_bit(words, bm_bits, bit + 1) {
                break;
            }
            bit += 1;
            size += u64::from(BLOCK_BYTES);
            if (u64::from(BLOCK_BYTES) << align) <= size {
                align += 1;
            }
            i += 1;
        }
        if size > u64::from(BLOCK_BYTES) {
            *cursor = bit + 1;
        }
        let end = sector + size / 512;
        if end > capacity_sectors {
            size = capacity_sectors.saturating_sub(sector) * 512;
        }
        if size > 0 {
            plan.requests.push(BlockRequest {
                sector,
                size_bytes: size as u32,
            });
        }
        i += 1;
        plan.blocks = i;
    }
    plan
}

/// `make_ov_request`'s walk: up to `blocks` 4 KiB requests from `*position_sector`, which it
/// advances. `stop_sector`: `verify --stop`; DRBD honours it from protocol 97 on and never
/// before the first request. Returns the requests and whether the end of the device was reached.
pub fn plan_verify_requests(
    position_sector: &mut u64,
    capacity_sectors: u64,
    blocks: u64,
    stop_sector: Option<u64>,
) -> (Vec<BlockRequest>, bool) {
    let mut requests = Vec::new();
    let mut sector = *position_sector;
    for i in 0..blocks {
        if sector >= capacity_sectors {
            *position_sector = sector;
            return (requests, true);
        }
        if i > 0 && stop_sector.is_some_and(|stop| sector >= stop) {
            break;
        }
        let size = if sector + SECTORS_PER_BLOCK > capacity_sectors {
            (capacity_sectors - sector) * 512
        } else {
            u64::from(BLOCK_BYTES)
        };
        requests.push(BlockRequest {
            sector,
            size_bytes: size as u32,
        });
        sector += SECTORS_PER_BLOCK;
    }
    *position_sector = sector;
    (requests, false)
}

/// Coalesces out-of-sync blocks found by online verify into the ranges DRBD logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutOfSyncRanges {
    start_sector: u64,
    size_sectors: u64,
}

impl OutOfSyncRanges {
    /// A block whose digests differed (`drbd_ov_out_of_sync_found`); the caller also sets its
    /// bits in the bitmap.
    pub fn found(&mut self, sector: u64, size_bytes: u32) {
        if self.start_sector + self.size_sectors == sector {
            self.size_sectors += u64::from(size_bytes) / 512;
        } else {
            self.start_sector = sector;
            self.size_sectors = u64::from(size_bytes) / 512;
        }
    }

    /// A block was in sync, or verify ended (`ov_out_of_sync_print`): the error line to log for
    /// the range that closes, if any.
    pub fn flush(&mut self) -> Option<String> {
        if self.size_sectors == 0 {
            return None;
        }
        let line = format!(
            "Out of sync: start={}, size={} (sectors)",
            self.start_sector, self.size_sectors
        );
        self.size_sectors = 0;
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitmap(bits: &[u64], bm_bits: u64) -> Vec<u64> {
        let mut w = vec![0u64; bm_bits.div_ceil(64) as usize];
        for &b in bits {
            w[(b / 64) as usize] |= 1 << (b % 64);
        }
        w
    }

    fn req(sector: u64, blocks: u32) -> BlockRequest {
        BlockRequest {
            sector,
            size_bytes: blocks * BLOCK_BYTES,
        }
    }

    fn plan(words: &[u64], bm_bits: u64, cursor: &mut u64, blocks: u64) -> ResyncPlan {
        plan_resync_requests(
            words,
            bm_bits,
            bm_bits * 8,
            cursor,
            blocks,
            MAX_BIO_BYTES,
            |_| false,
        )
    }

    #[test]
    fn merges_aligned_runs_only() {
        // Bits 0..8 set: one 32 KiB request (aligned at 0).
        let w = bitmap(&(0..8).collect::<Vec<_>>(), 1024);
        let mut cursor = 0;
        let p = plan(&w, 1024, &mut cursor, 100);
        assert_eq!(p.requests, [req(0, 8)]);
        assert_eq!((p.blocks, cursor, p.end_of_bitmap), (8, 1024, true));
        // Bits 1..8: an odd start is never merged; 2 (16 sectors, 8 KiB aligned) grows to 2
        // blocks, then needs 32-sector alignment; 4..8 grows to 4.
        let w = bitmap(&(1..8).collect::<Vec<_>>(), 1024);
        let mut cursor = 0;
        let p = plan(&w, 1024, &mut cursor, 100);
        assert_eq!(p.requests, [req(8, 1), req(16, 2), req(32, 4)]);
        assert_eq!(p.blocks, 7);
    }

    #[test]
    fn budget_extent_and_bio_size_limit_requests() {
        let all: Vec<u64> = (0..8192).collect();
        let w = bitmap(&all, 8192);
        // The budget counts blocks; like DRBD, the last merge may take one block more.
        let mut cursor = 0;
        let p = plan(&w, 8192, &mut cursor, 5);
        assert_eq!(p.requests, [req(0, 6)]);
        assert_eq!((cursor, p.blocks), (6, 6));
        // 1 MiB = 256 blocks per request at most.
        let mut cursor = 0;
        let p = plan(&w, 8192, &mut cursor, 600);
        assert_eq!(p.requests, [req(0, 256), req(2048, 256), req(4096, 89)]);
        assert_eq!(p.blocks, 601);
        // A request does not cross the 16 MiB extent (4096 blocks).
        let mut cursor = 4000;
        let p = plan(&w, 8192, &mut cursor, 300);
        assert!(p.requests.iter().all(|r| {
            let first = r.sector / 8;
            let last = first + u64::from(r.size_bytes / BLOCK_BYTES) - 1;
            first / BLOCKS_PER_EXTENT == last / BLOCKS_PER_EXTENT
        }));
        assert!((300..=301).contains(&p.blocks), "{}", p.blocks);
        assert_eq!(p.requests[0], req(32_000, 32), "4000 is 32-block aligned");
        // A smaller max bio size.
        let mut cursor = 0;
        let p = plan_resync_requests(&w, 8192, 8192 * 8, &mut cursor, 10, 16384, |_| false);
        assert_eq!(p.requests, [req(0, 4), req(32, 4), req(64, 3)]);
    }

    #[test]
    fn odd_device_end_and_busy_extents() {
        // 10 blocks, the device ends 3 sectors into the last one.
        let w = bitmap(&[9], 10);
        let mut cursor = 0;
        let p = plan_resync_requests(&w, 10, 75, &mut cursor, 10, MAX_BIO_BYTES, |_| false);
        assert_eq!(
            p.requests,
            [BlockRequest {
                sector: 72,
                size_bytes: 1536
            }]
        );
        // Busy: the cursor stays on the block.
        let w = bitmap(&[3, 5000], 8192);
        let mut cursor = 0;
        let p = plan_resync_requests(&w, 8192, 8192 * 8, &mut cursor, 10, MAX_BIO_BYTES, |s| {
            s >= 4096 * 8
        });
        assert_eq!(p.requests, [req(24, 1)]);
        assert!(p.stopped_busy && !p.end_of_bitmap);
        assert_eq!(cursor, 5000);
    }

    #[test]
    fn verify_walk() {
        let mut pos = 0;
        let (r, end) = plan_verify_requests(&mut pos, 20, 2, None);
        assert_eq!((r, end, pos), (vec![req(0, 1), req(8, 1)], false, 16));
        let (r, end) = plan_verify_requests(&mut pos, 20, 5, None);
        assert_eq!(
            r,
            [BlockRequest {
                sector: 16,
                size_bytes: 2048
            }]
        );
        assert!(end);
        // Stop sector: at least one request, then stop.
        let mut pos = 64;
        let (r, _) = plan_verify_requests(&mut pos, 1000, 5, Some(64));
        assert_eq!(r, [req(64, 1)]);
        let mut pos = 0;
        let (r, _) = plan_verify_requests(&mut pos, 1000, 5, Some(24));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn out_of_sync_ranges_coalesce() {
        let mut o = OutOfSyncRanges::default();
        assert_eq!(o.flush(), None);
        o.found(800, 4096);
        o.found(808, 4096);
        assert_eq!(
            o.flush().as_deref(),
            Some("Out of sync: start=800, size=16 (sectors)")
        );
        assert_eq!(o.flush(), None);
        o.found(0, 4096);
        assert_eq!(
            o.flush().as_deref(),
            Some("Out of sync: start=0, size=8 (sectors)")
        );
    }
}
