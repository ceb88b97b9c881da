//! Resync rate control as DRBD 8.4 does it (drbd_worker.c `drbd_rs_number_requests`,
//! `drbd_rs_controller`; drbd_receiver.c `drbd_rs_c_min_rate_throttle`; drbd_actlog.c
//! `drbd_advance_rs_marks`), without I/O or clocks: the caller passes the time.
//!
//! Units (drbd.conf / drbd_limits.h): rates in KiB/s, `c-plan-ahead` and `c-delay-target` in
//! 0.1 s, `c-fill-target` in 512-byte sectors, `max-buffers` in 4 KiB pages. The resync works in
//! 4 KiB bitmap blocks (8 sectors).
//!
//! [`RateController`] (the SyncTarget, and the VerifyS side of online verify): every
//! [`STEP_MS`] (100 ms) call [`RateController::step`] with the sectors of resync replies that
//! arrived since the last step (P_RS_DATA_REPLY, P_RS_IS_IN_SYNC, P_NEG_RS_DREPLY, P_OV_REPLY
//! sizes); it returns how many 4 KiB blocks to request now. After sending, report how many
//! blocks were requested with [`RateController::requests_sent`] (requests merged from adjacent
//! bits count each 4 KiB block). Call [`RateController::reset`] when a resync starts.
//! - `c-plan-ahead 0`: static, `resync-rate / 40` blocks per step (250 KiB/s -> 6 blocks =
//!   240 KiB/s; 10M -> 256; 40M -> 1024).
//! - `c-plan-ahead > 0`: the dynamic controller. It wants `c-fill-target` sectors in flight
//!   (or, when that is 0, `sectors_in * c-delay-target`, i.e. c-delay-target worth of the
//!   current rate; at the very start `resync-rate` worth of every step of the plan) and spreads
//!   the correction over `c-plan-ahead` steps through a FIFO; a step requests what came in plus
//!   this step's share of the correction, clamped to `[0, c-max-rate / 5]` sectors. NOTE: the
//!   dynamic controller ignores `resync-rate` after the first step; to get a fixed rate use
//!   `c-plan-ahead 0` or set `c-max-rate`.
//! - Either way, never more than `max-buffers / 2` blocks in flight.
//! - [`RateController::c_sync_rate_kib`] is DRBD's `c_sync_rate` (the `want:` of /proc/drbd).
//!
//! [`ResyncMarks`] and [`MinRateThrottle`]: c-min-rate. DRBD keeps 8 progress marks, one every
//! 3 s ([`ResyncMarks::advance`] as blocks get in sync). [`MinRateThrottle::should_throttle`]
//! says "slow down" when application I/O is active (application requests in flight, or more
//! than 64 sectors of non-resync I/O on the backing device since the last check) and the resync
//! rate over the last two marks is above `c-min-rate` (0 disables). DRBD applies it on the
//! SyncTarget before requesting (request nothing this step, unless application I/O is waiting
//! for the very extent) and on the SyncSource before serving a P_RS_DATA_REQUEST when the peer
//! is not Primary (sleep 100 ms first).

/// The controller's step (`SLEEP_TIME`, HZ/10).
pub const STEP_MS: u64 = 100;
/// Sectors in a bitmap block.
pub const SECTORS_PER_BLOCK: u64 = 8;
/// Progress marks kept (`DRBD_SYNC_MARKS`).
pub const SYNC_MARKS: usize = 8;
/// Time between progress marks (`DRBD_SYNC_MARK_STEP`, 3 s).
pub const SYNC_MARK_STEP_MS: u64 = 3000;

/// The disk/net options of rate control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    /// `resync-rate` (KiB/s).
    pub resync_rate_kib: u32,
    /// `c-plan-ahead` (0.1 s; 0 = static rate).
    pub c_plan_ahead_ds: u32,
    /// `c-delay-target` (0.1 s).
    pub c_delay_target_ds: u32,
    /// `c-fill-target` (sectors; 0 = use c-delay-target).
    pub c_fill_target_sectors: u32,
    /// `c-max-rate` (KiB/s).
    pub c_max_rate_kib: u32,
    /// `c-min-rate` (KiB/s; 0 = no throttling).
    pub c_min_rate_kib: u32,
    /// net `max-buffers` (4 KiB pages).
    pub max_buffers: u32,
}

impl Default for RateConfig {
    /// DRBD 8.4's defaults (linux/drbd_limits.h).
    fn default() -> Self {
        RateConfig {
            resync_rate_kib: 250,
            c_plan_ahead_ds: 20,
            c_delay_target_ds: 10,
            c_fill_target_sectors: 100,
            c_max_rate_kib: 102_400,
            c_min_rate_kib: 250,
            max_buffers: 2048,
        }
    }
}

/// How many resync requests to send every step.
#[derive(Debug, Clone)]
pub struct RateController {
    cfg: RateConfig,
    plan: Vec<i64>,
    head: usize,
    plan_total: i64,
    in_flight_sectors: i64,
    c_sync_rate_kib: u64,
}

impl RateController {
    /// A controller with an empty plan.
    pub fn new(cfg: RateConfig) -> RateController {
        RateController {
            cfg,
            plan: vec![0; cfg.c_plan_ahead_ds as usize],
            head: 0,
            plan_total: 0,
            in_flight_sectors: 0,
            c_sync_rate_kib: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> RateConfig {
        self.cfg
    }

    /// New options; a changed `c-plan-ahead` starts an empty plan, as DRBD allocates a new one.
    pub fn set_config(&mut self, cfg: RateConfig) {
        if cfg.c_plan_ahead_ds != self.cfg.c_plan_ahead_ds {
            self.plan = vec![0; cfg.c_plan_ahead_ds as usize];
            self.head = 0;
            self.plan_total = 0;
        }
        self.cfg = cfg;
    }

    /// At resync start (`drbd_rs_controller_reset`): nothing in flight, empty plan.
    pub fn reset(&mut self) {
        self.plan.iter_mut().for_each(|v| *v = 0);
        self.head = 0;
        self.plan_total = 0;
        self.in_flight_sectors = 0;
    }

    /// Sectors requested and not yet answered (`rs_in_flight`).
    pub fn in_flight_sectors(&self) -> i64 {
        self.in_flight_sectors
    }

    /// The rate the controller asks for now, KiB/s (`c_sync_rate`).
    pub fn c_sync_rate_kib(&self) -> u64 {
        self.c_sync_rate_kib
    }

    /// One step (`drbd_rs_number_requests`): `sectors_in` arrived since the last step; returns
    /// the number of 4 KiB blocks to request now.
    pub fn step(&mut self, sectors_in: u64) -> u64 {
        let sect_in = i64::try_from(sectors_in).unwrap_or(i64::MAX);
        self.in_flight_sectors = self.in_flight_sectors.saturating_sub(sect_in);
        let mut number = if self.plan.is_empty() {
            self.c_sync_rate_kib = u64::from(self.cfg.resync_rate_kib);
            i64::from(self.cfg.resync_rate_kib) / 40
        } else {
            let n = self.controller(sect_in) / SECTORS_PER_BLOCK as i64;
            self.c_sync_rate_kib = u64::try_from(n * 40).unwrap_or(0);
            n
        };
        let mxb = i64::from(self.cfg.max_buffers / 2);
        let room = mxb - self.in_flight_sectors / SECTORS_PER_BLOCK as i64;
        if room < number {
            number = room;
        }
        u64::try_from(number).unwrap_or(0)
    }

    /// `blocks` 4 KiB blocks were requested this step.
    pub fn requests_sent(&mut self, blocks: u64) {
        let sectors = i64::try_from(blocks.saturating_mul(SECTORS_PER_BLOCK)).unwrap_or(i64::MAX);
        self.in_flight_sectors = self.in_flight_sectors.saturating_add(sectors);
    }

    /// `drbd_rs_controller`: sectors to request this step.
    fn controller(&mut self, sect_in: i64) -> i64 {
        let steps = self.plan.len() as i64;
        let cfg = &self.cfg;
        let want = if self.in_flight_sectors + sect_in == 0 {
            i64::from(cfg.resync_rate_kib) * 2 / 10 * steps
        } else if cfg.c_fill_target_sectors != 0 {
            i64::from(cfg.c_fill_target_sectors)
        } else {
            sect_in * i64::from(cfg.c_delay_target_ds)
        };
        let correction = want - self.in_flight_sectors - self.plan_total;
        let cps = correction / steps;
        self.plan.iter_mut().for_each(|v| *v += cps);
        self.plan_total += cps * steps;
        let curr_corr = std::mem::take(&mut self.plan[self.head]);
        self.head = (self.head + 1) % self.plan.len();
        self.plan_total -= curr_corr;
        let max_sect = i64::from(cfg.c_max_rate_kib) * 2 / 10;
        (sect_in + curr_corr).clamp(0, max_sect)
    }
}

/// Resync progress marks (`rs_mark_left` / `rs_mark_time`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResyncMarks {
    left_blocks: [u64; SYNC_MARKS],
    time_ms: [u64; SYNC_MARKS],
    last: usize,
}

impl ResyncMarks {
    /// At resync start: every mark at (`now_ms`, `total_blocks`).
    pub fn start(now_ms: u64, total_blocks: u64) -> ResyncMarks {
        ResyncMarks {
            left_blocks: [total_blocks; SYNC_MARKS],
            time_ms: [now_ms; SYNC_MARKS],
            last: 0,
        }
    }

    /// `drbd_advance_rs_marks`: call as blocks get in sync; a new mark is taken when 3 s have
    /// passed since the last one, progress was made, and the resync is not paused.
    pub fn advance(&mut self, now_ms: u64, left_blocks: u64, paused: bool) {
        if now_ms < self.time_ms[self.last].saturating_add(SYNC_MARK_STEP_MS) {
            return;
        }
        if self.left_blocks[self.last] != left_blocks && !paused {
            let next = (self.last + 1) % SYNC_MARKS;
            self.time_ms[next] = now_ms;
            self.left_blocks[next] = left_blocks;
            self.last = next;
        }
    }

    /// The resync rate since the mark before the last one (about the last 3-6 s), KiB/s, as
    /// `drbd_rs_c_min_rate_throttle` computes it (whole seconds, at least 1).
    pub fn recent_rate_kib(&self, now_ms: u64, left_blocks: u64) -> u64 {
        let i = (self.last + SYNC_MARKS - 1) % SYNC_MARKS;
        let dt_s = (now_ms.saturating_sub(self.time_ms[i]) / 1000).max(1);
        let db = self.left_blocks[i].saturating_sub(left_blocks);
        db / dt_s * 4
    }

    /// The mark `age` marks before the newest (0 = newest): (time ms, blocks left). For the
    /// status' speed figure.
    pub fn mark(&self, age: usize) -> (u64, u64) {
        let i = (self.last + SYNC_MARKS - (age % SYNC_MARKS)) % SYNC_MARKS;
        (self.time_ms[i], self.left_blocks[i])
    }
}

/// c-min-rate throttling (`drbd_rs_c_min_rate_throttle`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinRateThrottle {
    c_min_rate_kib: u32,
    last_events_sectors: u64,
}

impl MinRateThrottle {
    /// A throttle for `c-min-rate`; `app_events_sectors` is the current count of application
    /// (non-resync) sectors on the backing device (`rs_last_events` at resync start).
    pub fn new(c_min_rate_kib: u32, app_events_sectors: u64) -> MinRateThrottle {
        MinRateThrottle {
            c_min_rate_kib,
            last_events_sectors: app_events_sectors,
        }
    }

    /// Whether the resync should slow down now: application requests are in flight
    /// (`app_io_in_flight`) or more than 64 sectors of application I/O hit the backing device
    /// since the last time this saw activity (`app_events_sectors` is a running total), and the
    /// recent resync rate is above c-min-rate. `left_blocks`: blocks still to resync (verify:
    /// still to verify).
    pub fn should_throttle(
        &mut self,
        marks: &ResyncMarks,
        now_ms: u64,
        left_blocks: u64,
        app_io_in_flight: bool,
        app_events_sectors: u64,
    ) -> bool {
        if self.c_min_rate_kib == 0 {
            return false;
        }
        let busy =
            app_io_in_flight || app_events_sectors.saturating_sub(self.last_events_sectors) > 64;
        if !busy {
            return false;
        }
        self.last_events_sectors = app_events_sectors;
        marks.recent_rate_kib(now_ms, left_blocks) > u64::from(self.c_min_rate_kib)
    }
}

#[cfg(test)]
mod tests;
