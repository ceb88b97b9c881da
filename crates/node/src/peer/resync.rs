//! Resync data movement (D84 drbd_worker.c `make_resync_request`, `w_e_end_rsdata_req`,
//! `drbd_resync_finished`; drbd_main.c `drbd_gen_and_send_sync_uuid`).
//!
//! - The SyncTarget pulls: it walks its bitmap as DRBD's `make_resync_request` does
//!   (`rdbd_replicator::resync::plan::plan_resync_requests`: runs of out-of-sync blocks,
//!   aligned, within one 16 MiB extent and at most the peer's `max_bio_size` (P_SIZES,
//!   up to 1 MiB) each) and asks for them (`P_RS_DATA_REQUEST`), as many per 100 ms step
//!   as DRBD's rate controller allows (`resync-rate` with `c-plan-ahead 0`, else the
//!   dynamic controller).
//!   Each reply is written, its bits cleared, and `P_RS_WRITE_ACK` sent. The bitmap is
//!   written back every second, so an interrupted resync resumes where it stopped.
//! - The SyncSource answers from its disk, holding the resync lock exclusively for the
//!   read and the queueing of the reply (no application write slips in between), and
//!   clears its bits on `P_RS_WRITE_ACK`. Before that, c-min-rate may hold a request
//!   back 100 ms while application I/O is active here (`super::source_throttle`).
//! - Identifiers at the start and the end of a resync follow
//!   `rdbd_replicator::sync_handshake` (`source_sync_uuid`, `target_sync_uuid_received`,
//!   `resync_finished_source` / `resync_finished_target`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use rdbd_control::status::SyncProgress;
use rdbd_replicator::resync::digest::DigestAlg;
use rdbd_replicator::resync::plan::{
    plan_resync_requests, BLOCK_BYTES, MAX_BIO_BYTES, SECTORS_PER_BLOCK,
};
use rdbd_replicator::resync::rate::{MinRateThrottle, RateConfig, RateController, ResyncMarks};
use rdbd_types::AlignedBuf;
use rdbd_wire::{BlockRequest, Packet, ID_SYNCER};

use super::io::{Outbox, Outgoing};
use super::read_request;
use super::session::Ctx;

/// Progress bookkeeping shared by both sides.
#[derive(Debug)]
pub(crate) struct Progress {
    total_blocks: u64,
    started: Instant,
    last: (Instant, u64),
    speed_kib: u64,
    /// Time spent paused before the current pause (`rs_paused`).
    paused_ms: u64,
    /// The current pause began here.
    paused_since: Option<Instant>,
}

impl Progress {
    pub(super) fn new(total_blocks: u64) -> Self {
        let now = Instant::now();
        Progress {
            total_blocks,
            started: now,
            last: (now, total_blocks),
            speed_kib: 0,
            paused_ms: 0,
            paused_since: None,
        }
    }

    /// The resync is (still) paused or not; called every tick.
    pub(crate) fn observe_pause(&mut self, paused: bool) {
        match (paused, self.paused_since) {
            (true, None) => self.paused_since = Some(Instant::now()),
            (false, Some(since)) => {
                self.paused_ms += since.elapsed().as_millis() as u64;
                self.paused_since = None;
            }
            _ => {}
        }
    }

    /// Time spent paused so far.
    pub(crate) fn paused_ms(&self) -> u64 {
        self.paused_ms
            + self
                .paused_since
                .map_or(0, |s| s.elapsed().as_millis() as u64)
    }

    /// Time since the start, without paused time.
    pub(crate) fn active_ms(&self) -> u64 {
        (self.started.elapsed().as_millis() as u64).saturating_sub(self.paused_ms())
    }

    /// `Resync done (total T sec; paused P sec; R K/sec)` for `done_blocks` moved.
    pub(crate) fn done_line(&self, done_blocks: u64) -> String {
        rdbd_replicator::resync::progress::done_line(
            false,
            self.active_ms(),
            self.paused_ms(),
            done_blocks,
        )
    }

    /// Blocks to move at the start.
    pub(super) fn total_blocks(&self) -> u64 {
        self.total_blocks
    }

    /// A status snapshot given the blocks still out of sync.
    pub(super) fn sample(&mut self, left_blocks: u64, want_kib: u64) -> SyncProgress {
        let now = Instant::now();
        let dt = now.duration_since(self.last.0).as_secs_f64();
        if dt >= 1.0 {
            self.speed_kib = ((self.last.1.saturating_sub(left_blocks)) as f64 * 4.0 / dt) as u64;
            self.last = (now, left_blocks);
        }
        // The average leaves paused time out, as /proc/drbd's does.
        let elapsed = (self.active_ms() as f64 / 1000.0).max(0.001);
        let done = self.total_blocks.saturating_sub(left_blocks);
        let average_kib = (done as f64 * 4.0 / elapsed) as u64;
        let rate = self.speed_kib.max(average_kib).max(1);
        SyncProgress {
            total_blocks: self.total_blocks.max(left_blocks),
            left_blocks,
            speed_kib_per_s: self.speed_kib,
            average_kib_per_s: average_kib,
            want_kib_per_s: want_kib,
            finish_s: left_blocks * 4 / rate,
            stalled: false,
        }
    }
}

/// The SyncTarget's request generator, paced by DRBD's rate controller
/// (`rdbd_replicator::resync::rate`: static `resync-rate` with `c-plan-ahead 0`, else the
/// dynamic controller; never more than `max-buffers / 2` blocks in flight).
#[derive(Debug)]
pub(super) struct TargetPump {
    cursor_bit: u64,
    inflight_requests: u64,
    rate: RateController,
    /// Sectors of replies since the last step.
    sectors_in: u64,
    /// Blocks the controller allows in this step.
    allowance_blocks: u64,
    /// Replies that failed (their bits stay set).
    pub(super) failed_blocks: u64,
    pub(super) progress: Progress,
    /// Checksum-based resync with this `csums-alg` ([`super::csums`]).
    pub(super) csums: Option<DigestAlg>,
    /// The largest request: the peer's `max_bio_size` (at most DRBD's 1 MiB).
    max_request_bytes: u32,
    /// c-min-rate: progress marks and the throttle.
    marks: ResyncMarks,
    throttle: MinRateThrottle,
    started: Instant,
}

/// The rate controller's options from the settings.
pub(super) fn rate_config(s: &rdbd_config::Settings) -> RateConfig {
    RateConfig {
        resync_rate_kib: s.resync_rate_kib,
        c_plan_ahead_ds: s.c_plan_ahead,
        c_delay_target_ds: s.c_delay_target,
        c_fill_target_sectors: s.c_fill_target_sect,
        c_max_rate_kib: s.c_max_rate_kib,
        c_min_rate_kib: s.c_min_rate_kib,
        max_buffers: s.max_buffers,
    }
}

impl TargetPump {
    /// New rate options (`adjust`): the controller continues with them.
    pub(super) fn set_rate_config(&mut self, cfg: RateConfig) {
        self.rate.set_config(cfg);
    }

    pub(super) fn new(ctx: &Ctx, total_blocks: u64) -> Self {
        let mut rate = RateController::new(rate_config(&ctx.link.settings_now(&ctx.cfg.settings)));
        rate.reset();
        TargetPump {
            cursor_bit: 0,
            inflight_requests: 0,
            rate,
            sectors_in: 0,
            allowance_blocks: 0,
            failed_blocks: 0,
            progress: Progress::new(total_blocks),
            csums: None,
            // DRBD_MAX_BIO_SIZE_SAFE until the peer's P_SIZES says more.
            max_request_bytes: 4096,
            marks: ResyncMarks::start(0, total_blocks),
            throttle: MinRateThrottle::new(
                ctx.cfg.settings.c_min_rate_kib,
                super::verify::app_events_sectors(ctx),
            ),
            started: Instant::now(),
        }
    }

    /// Requests at most `peer_max_bio_bytes` (the peer's P_SIZES `max_bio_size`; DRBD's
    /// 1 MiB caps it, 4 KiB is the least).
    pub(super) fn with_max_request_bytes(mut self, peer_max_bio_bytes: u32) -> Self {
        self.max_request_bytes = peer_max_bio_bytes.clamp(BLOCK_BYTES, MAX_BIO_BYTES);
        self
    }

    /// Uses checksum-based resync with `alg` (when `Some`).
    pub(super) fn with_csums(mut self, alg: Option<DigestAlg>) -> Self {
        self.csums = alg;
        self
    }

    /// The rate the controller asks for, KiB/s (`want:` in the status).
    pub(super) fn want_kib(&self) -> u64 {
        self.rate.c_sync_rate_kib()
    }

    /// A 100 ms step of the controller. Nothing is requested while the resync is paused
    /// (`user_isp` / `peer_isp`) or while c-min-rate throttles it for application I/O.
    pub(super) fn on_step(&mut self, ctx: &Ctx) {
        self.allowance_blocks = self.rate.step(std::mem::take(&mut self.sectors_in));
        let paused = ctx.link.sync_paused();
        let now_ms = self.started.elapsed().as_millis() as u64;
        let left = ctx
            .resource
            .meta
            .bitmap_weight()
            .saturating_sub(self.failed_blocks);
        self.marks.advance(now_ms, left, paused);
        self.progress.observe_pause(paused);
        if paused
            || self.throttle.should_throttle(
                &self.marks,
                now_ms,
                left,
                super::verify::app_io_in_flight(ctx),
                super::verify::app_events_sectors(ctx),
            )
        {
            self.allowance_blocks = 0;
        }
    }

    /// A reply was written (or failed).
    pub(super) fn on_reply(&mut self, ctx: &Ctx, bytes: u64, ok: bool) {
        self.inflight_requests = self.inflight_requests.saturating_sub(1);
        self.sectors_in += bytes / 512;
        ctx.link
            .counters
            .rs_pending
            .store(self.inflight_requests, Ordering::Relaxed);
        if !ok {
            self.failed_blocks += bytes.div_ceil(4096);
        }
    }

    /// Sends requests while the controller allows. Returns true when the resync is complete
    /// (no bit left, nothing in flight).
    pub(super) fn pump(&mut self, ctx: &Ctx, data: &Outbox) -> bool {
        let meta = &ctx.resource.meta;
        let size_sectors = ctx.resource.size_bytes_now() / 512;
        // Bits of blocks past the device's end (none after a clean attach) hold nothing.
        let device_bits = size_sectors.div_ceil(SECTORS_PER_BLOCK);
        let complete = loop {
            if self.allowance_blocks == 0 {
                break false;
            }
            let plan = meta.with_bitmap_words(|words, bits| {
                plan_resync_requests(
                    words,
                    bits.min(device_bits),
                    size_sectors,
                    &mut self.cursor_bit,
                    self.allowance_blocks,
                    self.max_request_bytes,
                    |_| false,
                )
            });
            for r in &plan.requests {
                let request = BlockRequest {
                    sector: r.sector,
                    block_id: ID_SYNCER,
                    size_bytes: r.size_bytes,
                };
                match self.csums {
                    Some(alg) => super::csums::request_with_digest(ctx, data, alg, request),
                    None => {
                        let _ = data.send(Outgoing::h100(Packet::RsDataRequest(request)));
                    }
                }
                self.inflight_requests += 1;
            }
            self.rate.requests_sent(plan.blocks);
            self.allowance_blocks = self.allowance_blocks.saturating_sub(plan.blocks);
            if !plan.end_of_bitmap {
                continue;
            }
            if self.inflight_requests > 0 {
                break false;
            }
            let bits = meta.bitmap_bits();
            if bits > device_bits {
                meta.set_in_sync(
                    device_bits * SECTORS_PER_BLOCK,
                    (bits - device_bits) * SECTORS_PER_BLOCK,
                );
            }
            if meta.bitmap_weight() <= self.failed_blocks {
                break true;
            }
            // Bits set behind the cursor (a failed reply, a late P_OUT_OF_SYNC): go round again.
            self.cursor_bit = 0;
            self.failed_blocks = 0;
            break false;
        };
        ctx.link
            .counters
            .rs_pending
            .store(self.inflight_requests, Ordering::Relaxed);
        complete
    }
}

/// Serves one `P_RS_DATA_REQUEST` (we are SyncSource).
pub(super) fn serve(ctx: &Ctx, data: &Outbox, meta: &Outbox, req: BlockRequest) {
    let data = data.clone();
    serve_read(ctx, meta, req, "resync data", move |buf| {
        let reply = read_request::data_reply(&req, &buf);
        let _ = data.send(Outgoing::h100(Packet::RsDataReply(reply)));
    });
}

/// What every SyncSource read (`P_RS_DATA_REQUEST`, `P_CSUM_RS_REQUEST`) shares: checks
/// `req`'s range, then behind c-min-rate and under the resync lock reads it, counts it as
/// resync disk bytes and hands the bytes to `answer`. A range outside the device or a failed
/// read is answered `P_NEG_RS_DREPLY`; `what` names the request in the log.
pub(super) fn serve_read<F>(ctx: &Ctx, meta: &Outbox, req: BlockRequest, what: &str, answer: F)
where
    F: FnOnce(AlignedBuf) + Send + 'static,
{
    let ack = read_request::negative_reply(&req);
    let Some(offset) = read_request::servable_offset(ctx, &req) else {
        tracing::error!(resource = %ctx.resource.name, sector = req.sector, size = req.size_bytes, "the peer asked for {what} outside the device; answering P_NEG_RS_DREPLY");
        let _ = meta.send(Outgoing::h100(Packet::NegRsDReply(ack)));
        return;
    };
    let (resource, link, meta) = (ctx.resource.clone(), ctx.link.clone(), meta.clone());
    let c_min_rate_kib = super::source_throttle::c_min_rate_kib(ctx);
    tokio::spawn(async move {
        // c-min-rate: application I/O here slows the resync down.
        link.source_gate
            .pass(&resource, &link, c_min_rate_kib)
            .await;
        let _exclusive = link.resync_lock.write().await;
        match read_request::read_local(&resource, offset, &req).await {
            Ok(buf) => {
                link.counters
                    .rs_disk_bytes
                    .fetch_add(u64::from(req.size_bytes), Ordering::Relaxed);
                answer(buf);
            }
            Err(e) => {
                tracing::error!(resource = %resource.name, offset, error = %e, "reading resync data failed");
                let _ = meta.send(Outgoing::h100(Packet::NegRsDReply(ack)));
            }
        }
    });
}
