//! Online verify bookkeeping (D84 drbd_worker.c `make_ov_request`, `w_e_end_ov_req`,
//! `w_e_end_ov_reply`, `drbd_ov_out_of_sync_found`, `drbd_resync_finished`;
//! drbd_receiver.c `got_OVResult`).
//!
//! - VerifyS ([`VerifySource`]) walks the device from the start sector in 4 KiB blocks
//!   (`rdbd_replicator::resync::plan::plan_verify_requests`) and sends one `P_OV_REQUEST`
//!   per block, paced like a resync (`RateController`, c-min-rate). For each `P_OV_REPLY`
//!   it digests its own block with `verify-alg`, compares, sets differing blocks out of
//!   sync, answers `P_OV_RESULT` (`ID_IN_SYNC` / `ID_OUT_OF_SYNC`) and counts `ov_left`
//!   down; at 0 (or the stop sector) verify is done.
//! - VerifyT ([`VerifyTarget`]) answers each `P_OV_REQUEST` with the digest of its block
//!   (`P_OV_REPLY`; zeros when the read failed) and takes `P_OV_RESULT`s: out-of-sync
//!   blocks are set in its bitmap too. `ov_left` starts at the first request's block.
//! - The disk reads and digests run in one worker task per verify ([`spawn_worker`]), in
//!   request order, so the session keeps answering pings and the out-of-sync ranges
//!   come out in order.
//! - Application writes of a block wait while verify compares it ([`locks`]): VerifyS
//!   locks each block before its `P_OV_REQUEST` goes out (the request leaves once the
//!   writes of the block in flight ended) until the compare, VerifyT before its read
//!   until the `P_OV_RESULT`. Both reads also wait for the writes of the block a
//!   Secondary received and has not written yet (protocol A and B). Without that a
//!   block written during its verify is a false "out of sync".
//! - c-min-rate on the VerifyT (D84 `receive_DataRequest`: a `P_OV_REQUEST` waits 100 ms
//!   before it is served while `drbd_rs_should_slow_down` says so, unless the peer is
//!   Primary): the worker holds the request back when application I/O is active here
//!   and verify runs faster than c-min-rate (the [`super::source_throttle`] decision over
//!   the VerifyT's own progress). Only a Primary has application I/O, so this slows a
//!   verify started on the Secondary; the VerifyS throttles itself ([`VerifySource::on_step`]).
//! - Both log contiguous out-of-sync ranges (`Out of sync: start=S, size=N (sectors)`),
//!   and at the end `Online verify done (total T sec; paused P sec; R K/sec)` and, when
//!   the bitmap is not empty, `Online verify found N 4k block out of sync!`. A run that
//!   stops before the device end (stop sector, lost connection) logs `Online Verify
//!   reached sector S`, and the next `verify` without `--start` begins there
//!   ([`position`]). The resync of what was found happens
//!   at the next connect (as in DRBD: `disconnect` + `connect`).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use rdbd_wire::{BlockAck, BlockRequest, DigestRequest, Packet, ID_IN_SYNC, ID_OUT_OF_SYNC};
use tokio::sync::mpsc;

use rdbd_replicator::resync::digest::DigestAlg;
use rdbd_replicator::resync::plan::{plan_verify_requests, OutOfSyncRanges, SECTORS_PER_BLOCK};
use rdbd_replicator::resync::progress::{done_line, verify_found_line};
use rdbd_replicator::resync::rate::{MinRateThrottle, RateController, ResyncMarks};

use super::io::{Outbox, Outgoing};
use super::resync::{rate_config, Progress};
use super::session::{Ctx, Event};
use super::source_throttle::{GateInput, GateState, THROTTLE_SLEEP};
use super::PeerLink;
use crate::resource::Resource;

pub(crate) mod locks;
mod position;

use locks::blocks_of_request;

/// Work for the verify worker.
#[derive(Debug)]
pub(crate) enum VerifyJob {
    /// VerifyT: digest our block and answer `P_OV_REPLY`.
    Answer(BlockRequest),
    /// VerifyS: digest our block, compare with the peer's, answer `P_OV_RESULT` and
    /// report [`Event::Verified`].
    Compare(DigestRequest),
}

/// The worker of one verify run; it stops when this is dropped, and the run's block
/// locks go with it.
#[derive(Debug)]
pub(crate) struct Worker {
    jobs: mpsc::UnboundedSender<VerifyJob>,
    task: tokio::task::JoinHandle<()>,
    link: Arc<PeerLink>,
    /// The run's id in [`locks::VerifyLocks`].
    run: u64,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.task.abort();
        self.link.verify_locks.end_run(self.run);
    }
}

impl Worker {
    /// Queues a job.
    pub(crate) fn push(&self, job: VerifyJob) {
        let _ = self.jobs.send(job);
    }
}

/// Starts the worker: reads and digests blocks with `alg`, in order.
pub(crate) fn spawn_worker(
    ctx: &Ctx,
    alg: DigestAlg,
    data: Outbox,
    meta: Outbox,
    events: mpsc::UnboundedSender<Event>,
) -> Worker {
    let (jobs, mut rx) = mpsc::unbounded_channel::<VerifyJob>();
    let (resource, link) = (Arc::clone(&ctx.resource), Arc::clone(&ctx.link));
    let run = link.verify_locks.start_run();
    let mut throttle = TargetThrottle::new(super::source_throttle::c_min_rate_kib(ctx));
    let task_link = Arc::clone(&link);
    let task = tokio::spawn(async move {
        let link = task_link;
        while let Some(job) = rx.recv().await {
            let r = match &job {
                VerifyJob::Answer(r) => *r,
                VerifyJob::Compare(d) => d.request,
            };
            if let VerifyJob::Answer(r) = &job {
                throttle.pass(&resource, &link, r.sector).await;
            }
            // VerifyT: locked from here until the P_OV_RESULT (VerifyTarget::on_result).
            // VerifyS: locked since the request; the compare waits for the writes this
            // node received before the P_OV_REPLY (a Secondary, protocol A or B).
            let blocks = blocks_of_request(r.sector, r.size_bytes);
            if !link.verify_locks.lock_ready(run, blocks).await {
                return;
            }
            let digest = match resource
                .disk
                .read(r.sector * 512, r.size_bytes as usize)
                .await
            {
                Ok(buf) => {
                    let n = u64::from(r.size_bytes);
                    resource.io.disk_read_bytes.fetch_add(n, Ordering::Relaxed);
                    link.counters.rs_disk_bytes.fetch_add(n, Ordering::Relaxed);
                    Some(alg.digest(&buf))
                }
                Err(e) => {
                    tracing::error!(resource = %resource.name, sector = r.sector, error = %e, "reading a block for online verify failed");
                    None
                }
            };
            match job {
                VerifyJob::Answer(request) => {
                    // A failed read answers a digest of zeros (w_e_end_ov_req).
                    let digest = digest.unwrap_or_else(|| vec![0; alg.len_bytes()]);
                    let _ = data.send(Outgoing::h100(Packet::OvReply(DigestRequest {
                        request: BlockRequest {
                            block_id: rdbd_wire::ID_SYNCER,
                            ..request
                        },
                        digest,
                    })));
                }
                VerifyJob::Compare(d) => {
                    let equal = digest.is_some_and(|ours| ours == d.digest);
                    let _ = meta.send(Outgoing::h100(Packet::OvResult(BlockAck {
                        sector: r.sector,
                        block_id: if equal { ID_IN_SYNC } else { ID_OUT_OF_SYNC },
                        size_bytes: r.size_bytes,
                        seq_num: 0,
                    })));
                    let _ = events.send(Event::Verified {
                        sector: r.sector,
                        size_bytes: r.size_bytes,
                        equal,
                    });
                }
            }
        }
    });
    Worker {
        jobs,
        task,
        link,
        run,
    }
}

/// c-min-rate on the VerifyT: the VerifyT's progress (`ov_left` counted down by the
/// requests answered) and this node's application I/O.
#[derive(Debug)]
struct TargetThrottle {
    c_min_rate_kib: u32,
    /// Set at the first request: the gate, when it started, blocks to verify.
    state: Option<(GateState, Instant, u64)>,
    answered: u64,
    throttled: u64,
}

impl TargetThrottle {
    fn new(c_min_rate_kib: u32) -> Self {
        TargetThrottle {
            c_min_rate_kib,
            state: None,
            answered: 0,
            throttled: 0,
        }
    }

    /// Waits [`THROTTLE_SLEEP`] before the request at `sector` is served when DRBD's
    /// `drbd_rs_should_slow_down` would (not when the peer, the VerifyS, is Primary).
    async fn pass(&mut self, resource: &Resource, link: &PeerLink, sector: u64) {
        let app_events_sectors = app_events_of(resource, link);
        let (gate, started, total) = self.state.get_or_insert_with(|| {
            let bits = (resource.size_bytes / 512).div_ceil(SECTORS_PER_BLOCK);
            let total = bits.saturating_sub(sector / SECTORS_PER_BLOCK);
            (
                GateState::start(total, self.c_min_rate_kib, app_events_sectors),
                Instant::now(),
                total,
            )
        });
        let input = GateInput {
            now_ms: ms_since(*started),
            left_blocks: total.saturating_sub(self.answered),
            paused: false,
            peer_primary: resource.state().peer_role == rdbd_types::Role::Primary,
            app_io_in_flight: resource.io.app_pending.load(Ordering::Relaxed) > 0,
            app_events_sectors,
        };
        self.answered += 1;
        if gate.should_wait(input) {
            self.throttled += 1;
            if self.throttled == 1 {
                tracing::debug!(resource = %resource.name, "c-min-rate: application I/O here holds back the peer's verify requests");
            }
            tokio::time::sleep(THROTTLE_SLEEP).await;
        }
    }
}

/// Application sectors on the local backing device: all disk I/O minus resync / verify I/O.
fn app_events_of(resource: &Resource, link: &PeerLink) -> u64 {
    let io = &resource.io;
    let all =
        io.disk_written_bytes.load(Ordering::Relaxed) + io.disk_read_bytes.load(Ordering::Relaxed);
    all.saturating_sub(link.counters.rs_disk_bytes.load(Ordering::Relaxed)) / 512
}

/// Milliseconds since `base`.
fn ms_since(base: Instant) -> u64 {
    base.elapsed().as_millis() as u64
}

/// Sum of the local disk's application I/O, in sectors (for c-min-rate): all disk I/O
/// minus resync / verify I/O.
pub(super) fn app_events_sectors(ctx: &Ctx) -> u64 {
    use std::sync::atomic::Ordering::Relaxed;
    let io = &ctx.resource.io;
    let all = io.disk_written_bytes.load(Relaxed) + io.disk_read_bytes.load(Relaxed);
    all.saturating_sub(ctx.link.counters.rs_disk_bytes.load(Relaxed)) / 512
}

/// Whether application requests are in flight on this node.
pub(super) fn app_io_in_flight(ctx: &Ctx) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    ctx.resource.io.app_pending.load(Relaxed) > 0
}

/// The verify algorithm of the settings in force (it may have been adopted from the
/// peer). `None` when not set or not supported.
pub(super) fn verify_alg(ctx: &Ctx) -> Option<DigestAlg> {
    ctx.link
        .settings_now(&ctx.cfg.settings)
        .verify_alg
        .as_deref()
        .and_then(|a| DigestAlg::parse(a).ok())
}

/// Lines logged when verify ends on either side.
fn finish_lines(ctx: &Ctx, progress: &Progress, total_blocks: u64, left_blocks: u64) {
    let name = &ctx.resource.name;
    let done = total_blocks.saturating_sub(left_blocks);
    let line = done_line(true, progress.active_ms(), progress.paused_ms(), done);
    tracing::info!(resource = %name, "{line}");
    if let Some(line) = verify_found_line(ctx.resource.meta.bitmap_weight()) {
        tracing::error!(resource = %name, "{line}");
        crate::handlers::spawn(&ctx.resource, crate::handlers::Handler::OutOfSync);
    }
}

/// VerifyS: the requester.
#[derive(Debug)]
pub(crate) struct VerifySource {
    position_sector: u64,
    stop_sector: Option<u64>,
    capacity_sectors: u64,
    rate: RateController,
    marks: ResyncMarks,
    throttle: MinRateThrottle,
    allowance_blocks: u64,
    sectors_in: u64,
    in_flight: u64,
    all_sent: bool,
    /// Blocks still to verify (`ov_left`).
    left_blocks: u64,
    total_blocks: u64,
    ranges: OutOfSyncRanges,
    progress: Progress,
    started: Instant,
    /// `verify-alg`.
    pub(crate) alg: DigestAlg,
    /// Reads and compares (set when verify starts).
    pub(crate) worker: Option<Worker>,
    /// Where the run got to (set when verify starts).
    position: Option<position::Position>,
    /// Planned and locked, not sent until no application write of the block is in
    /// flight (in order).
    waiting: VecDeque<rdbd_replicator::resync::plan::BlockRequest>,
}

impl VerifySource {
    /// New rate options (`adjust`, or adopted from the peer): the controller goes on with them.
    pub(crate) fn set_rate_config(&mut self, cfg: rdbd_replicator::resync::rate::RateConfig) {
        self.rate.set_config(cfg);
    }

    /// Verify from `start_sector` (rounded down to a block; the last block when past the end).
    pub(crate) fn new(
        ctx: &Ctx,
        alg: DigestAlg,
        start_sector: u64,
        stop_sector: Option<u64>,
    ) -> Self {
        let capacity_sectors = ctx.resource.size_bytes / 512;
        let bits = capacity_sectors.div_ceil(SECTORS_PER_BLOCK).max(1);
        let start_bit = (start_sector / SECTORS_PER_BLOCK).min(bits - 1);
        let total_blocks = bits - start_bit;
        let mut rate = RateController::new(rate_config(&ctx.link.settings_now(&ctx.cfg.settings)));
        rate.reset();
        let started = Instant::now();
        VerifySource {
            position_sector: start_bit * SECTORS_PER_BLOCK,
            stop_sector,
            capacity_sectors,
            rate,
            marks: ResyncMarks::start(0, total_blocks),
            throttle: MinRateThrottle::new(
                ctx.cfg.settings.c_min_rate_kib,
                app_events_sectors(ctx),
            ),
            allowance_blocks: 0,
            sectors_in: 0,
            in_flight: 0,
            all_sent: false,
            left_blocks: total_blocks,
            total_blocks,
            ranges: OutOfSyncRanges::default(),
            progress: Progress::new(total_blocks),
            started,
            alg,
            worker: None,
            position: None,
            waiting: VecDeque::new(),
        }
    }

    /// The peer accepted: verify starts with this worker.
    pub(crate) fn begin(&mut self, ctx: &Ctx, worker: Worker) {
        self.worker = Some(worker);
        self.position = Some(position::Position::new(
            &ctx.resource,
            &ctx.link,
            self.position_sector / SECTORS_PER_BLOCK,
            self.capacity_sectors,
        ));
    }

    /// The first sector verified.
    pub(crate) fn start_sector(&self) -> u64 {
        self.position_sector
    }

    /// A 100 ms step: the controller's allowance, unless c-min-rate throttles.
    pub(crate) fn on_step(&mut self, ctx: &Ctx) {
        let now = ms_since(self.started);
        self.marks.advance(now, self.left_blocks, false);
        self.allowance_blocks = self.rate.step(std::mem::take(&mut self.sectors_in));
        if self.throttle.should_throttle(
            &self.marks,
            now,
            self.left_blocks,
            app_io_in_flight(ctx),
            app_events_sectors(ctx),
        ) {
            self.allowance_blocks = 0;
        }
    }

    /// The requests to send now (4 KiB blocks); the caller sends a `P_OV_REQUEST` each.
    /// New ones are locked against application writes first, and each goes out once no
    /// write of its block is in flight any more.
    pub(crate) fn next_requests(
        &mut self,
        ctx: &Ctx,
    ) -> Vec<rdbd_replicator::resync::plan::BlockRequest> {
        let run = self.worker.as_ref().map_or(0, |w| w.run);
        for r in self.plan_requests() {
            // The run ends only with its worker, which this source owns.
            let _ = ctx
                .link
                .verify_locks
                .try_lock(run, blocks_of_request(r.sector, r.size_bytes));
            self.waiting.push_back(r);
        }
        let mut ready = Vec::new();
        while let Some(r) = self.waiting.front() {
            if !ctx
                .link
                .verify_locks
                .ready(blocks_of_request(r.sector, r.size_bytes))
            {
                break;
            }
            ready.extend(self.waiting.pop_front());
        }
        ready
    }

    /// The controller's requests of this step, in order.
    fn plan_requests(&mut self) -> Vec<rdbd_replicator::resync::plan::BlockRequest> {
        if self.all_sent || self.allowance_blocks == 0 {
            return Vec::new();
        }
        let (requests, end) = plan_verify_requests(
            &mut self.position_sector,
            self.capacity_sectors,
            self.allowance_blocks,
            self.stop_sector,
        );
        let stopped = self
            .stop_sector
            .is_some_and(|stop| self.position_sector >= stop);
        if end || stopped || self.position_sector >= self.capacity_sectors {
            self.all_sent = true;
            if stopped {
                // Verify ends with the last request before the stop sector.
                let not_requested = self
                    .capacity_sectors
                    .saturating_sub(self.position_sector)
                    .div_ceil(SECTORS_PER_BLOCK);
                self.left_blocks = self.left_blocks.saturating_sub(not_requested);
                self.total_blocks = self.total_blocks.saturating_sub(not_requested);
            }
        }
        let blocks = requests.len() as u64;
        self.rate.requests_sent(blocks);
        self.allowance_blocks = self.allowance_blocks.saturating_sub(blocks);
        self.in_flight += blocks;
        requests
    }

    /// Requests sent and not answered.
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// A `P_OV_REPLY` was compared (`equal` or not). Returns true when verify is done.
    pub(crate) fn on_compared(
        &mut self,
        ctx: &Ctx,
        sector: u64,
        size_bytes: u32,
        equal: bool,
    ) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(w) = &self.worker {
            ctx.link
                .verify_locks
                .unlock(w.run, blocks_of_request(sector, size_bytes));
        }
        self.sectors_in += u64::from(size_bytes) / 512;
        self.left_blocks = self.left_blocks.saturating_sub(1);
        if let Some(p) = &mut self.position {
            p.verified();
        }
        if equal {
            self.flush_range(ctx);
        } else {
            self.ranges.found(sector, size_bytes);
            ctx.resource
                .meta
                .set_out_of_sync(sector * 512, u64::from(size_bytes));
        }
        self.left_blocks == 0 || (self.all_sent && self.in_flight == 0)
    }

    fn flush_range(&mut self, ctx: &Ctx) {
        if let Some(line) = self.ranges.flush() {
            tracing::error!(resource = %ctx.resource.name, "{line}");
        }
    }

    /// The status' progress (`verified:`).
    pub(crate) fn sample(&mut self) -> rdbd_control::status::SyncProgress {
        let mut p = self
            .progress
            .sample(self.left_blocks, self.rate.c_sync_rate_kib());
        p.total_blocks = self.total_blocks;
        p
    }

    /// Verify ended: the last range and the summary.
    pub(crate) fn finish(&mut self, ctx: &Ctx) {
        self.flush_range(ctx);
        finish_lines(ctx, &self.progress, self.total_blocks, self.left_blocks);
        if let Some(p) = &mut self.position {
            p.ended();
        }
    }
}

/// VerifyT: the answering side.
#[derive(Debug)]
pub(crate) struct VerifyTarget {
    /// `ov_left`, known from the first request on.
    left_blocks: Option<u64>,
    total_blocks: u64,
    ranges: OutOfSyncRanges,
    progress: Progress,
    started: Instant,
    /// Reads and digests (with `verify-alg`).
    pub(crate) worker: Worker,
    /// Where the run got to.
    position: position::Position,
}

impl VerifyTarget {
    pub(crate) fn new(ctx: &Ctx, worker: Worker) -> Self {
        VerifyTarget {
            position: position::Position::new(
                &ctx.resource,
                &ctx.link,
                0,
                ctx.resource.size_bytes / 512,
            ),
            left_blocks: None,
            total_blocks: 0,
            ranges: OutOfSyncRanges::default(),
            progress: Progress::new(0),
            started: Instant::now(),
            worker,
        }
    }

    /// A `P_OV_REQUEST` for `sector`: the first one fixes `ov_left`.
    pub(crate) fn on_request(&mut self, ctx: &Ctx, sector: u64) {
        if self.left_blocks.is_none() {
            let bits = (ctx.resource.size_bytes / 512).div_ceil(SECTORS_PER_BLOCK);
            let left = bits.saturating_sub(sector / SECTORS_PER_BLOCK);
            self.left_blocks = Some(left);
            self.total_blocks = left;
            self.progress = Progress::new(left);
            self.started = Instant::now();
            self.position.set_first_bit(sector / SECTORS_PER_BLOCK);
            tracing::info!(resource = %ctx.resource.name, "Online Verify start sector: {sector}");
        }
    }

    /// A `P_OV_RESULT`. Returns true when verify is done.
    pub(crate) fn on_result(
        &mut self,
        ctx: &Ctx,
        sector: u64,
        size_bytes: u32,
        equal: bool,
    ) -> bool {
        ctx.link
            .verify_locks
            .unlock(self.worker.run, blocks_of_request(sector, size_bytes));
        if equal {
            if let Some(line) = self.ranges.flush() {
                tracing::error!(resource = %ctx.resource.name, "{line}");
            }
        } else {
            self.ranges.found(sector, size_bytes);
            ctx.resource
                .meta
                .set_out_of_sync(sector * 512, u64::from(size_bytes));
        }
        match &mut self.left_blocks {
            Some(left) => {
                self.position.verified();
                *left = left.saturating_sub(1);
                *left == 0
            }
            None => false,
        }
    }

    /// The status' progress (`verified:`).
    pub(crate) fn sample(&mut self) -> rdbd_control::status::SyncProgress {
        let left = self.left_blocks.unwrap_or(0);
        let mut p = self.progress.sample(left, 0);
        p.total_blocks = self.total_blocks;
        p
    }

    /// Verify ended (all results in, or the peer reported Connected).
    pub(crate) fn finish(&mut self, ctx: &Ctx) {
        if let Some(line) = self.ranges.flush() {
            tracing::error!(resource = %ctx.resource.name, "{line}");
        }
        let left = self.left_blocks.unwrap_or(0);
        finish_lines(ctx, &self.progress, self.total_blocks, left);
        self.position.ended();
    }
}
