//! c-min-rate on the SyncSource (D84 drbd_receiver.c `receive_DataRequest`: before a
//! `P_RS_DATA_REQUEST` / `P_CSUM_RS_REQUEST` is served, `drbd_rs_should_slow_down`, and
//! if it says so the receiver sleeps 100 ms).
//!
//! The decision is `rdbd_replicator`'s [`MinRateThrottle`] over the source's own
//! [`ResyncMarks`] (blocks left = its bitmap weight, which drops as `P_RS_WRITE_ACK`s
//! arrive) and its own application I/O (requests in flight, or more than 64 sectors of
//! non-resync I/O on the backing device since the last busy check). DRBD does not
//! throttle here when the peer is Primary (its application reads would suffer); the
//! target throttles then.
//!
//! DRBD sleeps in its receiver thread, so a throttled request also holds back the ones
//! behind it. rdbd serves each request in its own task; [`SourceGate::pass`] keeps
//! that property: requests pass the gate one at a time, in the order they reached it,
//! and a throttled one sleeps while holding it. The session's frames and pings are not
//! held up (DRBD's meta socket has its own thread too).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdbd_replicator::resync::rate::{MinRateThrottle, ResyncMarks};
use rdbd_types::Role;

use super::PeerLink;
use crate::resource::Resource;

/// How long a throttled request waits (`schedule_timeout(HZ/10)`).
pub(crate) const THROTTLE_SLEEP: Duration = Duration::from_millis(100);

/// What the decision looks at, sampled when a request reaches the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GateInput {
    /// Milliseconds since the gate's resync started.
    pub(crate) now_ms: u64,
    /// Blocks still out of sync.
    pub(crate) left_blocks: u64,
    /// The resync is paused (no new progress mark).
    pub(crate) paused: bool,
    /// The peer (the SyncTarget) is Primary.
    pub(crate) peer_primary: bool,
    /// Application requests are in flight here.
    pub(crate) app_io_in_flight: bool,
    /// Application (non-resync) sectors on the backing device so far.
    pub(crate) app_events_sectors: u64,
}

/// The throttle state of one resync.
#[derive(Debug, Clone)]
pub(crate) struct GateState {
    marks: ResyncMarks,
    throttle: MinRateThrottle,
}

impl GateState {
    /// At resync start with `total_blocks` to move.
    pub(crate) fn start(total_blocks: u64, c_min_rate_kib: u32, app_events_sectors: u64) -> Self {
        GateState {
            marks: ResyncMarks::start(0, total_blocks),
            throttle: MinRateThrottle::new(c_min_rate_kib, app_events_sectors),
        }
    }

    /// Advances the progress marks and says whether this request waits
    /// ([`THROTTLE_SLEEP`]) before it is served.
    pub(crate) fn should_wait(&mut self, i: GateInput) -> bool {
        self.marks.advance(i.now_ms, i.left_blocks, i.paused);
        !i.peer_primary
            && self.throttle.should_throttle(
                &self.marks,
                i.now_ms,
                i.left_blocks,
                i.app_io_in_flight,
                i.app_events_sectors,
            )
    }
}

#[derive(Debug, Default)]
struct Running {
    state: Option<GateState>,
    started: Option<Instant>,
    /// Requests throttled in this resync (for the log at its end).
    throttled: u64,
}

/// The SyncSource's gate; one per link, restarted with every resync.
#[derive(Debug, Default)]
pub(crate) struct SourceGate {
    /// Requests pass one at a time, in order (tokio's mutex is fair).
    order: tokio::sync::Mutex<()>,
    running: std::sync::Mutex<Running>,
}

/// Application sectors on the local backing device: all disk I/O minus resync / verify I/O.
fn app_events_sectors(resource: &Resource, link: &PeerLink) -> u64 {
    let io = &resource.io;
    let all =
        io.disk_written_bytes.load(Ordering::Relaxed) + io.disk_read_bytes.load(Ordering::Relaxed);
    all.saturating_sub(link.counters.rs_disk_bytes.load(Ordering::Relaxed)) / 512
}

impl SourceGate {
    /// A resync starts with `total_blocks` to move (marks at the start).
    pub(crate) fn start(
        &self,
        resource: &Resource,
        link: &PeerLink,
        total_blocks: u64,
        c_min_rate_kib: u32,
    ) {
        let mut r = self.lock();
        let throttled = std::mem::take(&mut r.throttled);
        if throttled > 0 {
            tracing::debug!(resource = %resource.name, throttled, "c-min-rate held back resync requests in the previous resync");
        }
        r.state = Some(GateState::start(
            total_blocks,
            c_min_rate_kib,
            app_events_sectors(resource, link),
        ));
        r.started = Some(Instant::now());
    }

    /// The resync ended (done, or the connection is gone): the next one starts afresh.
    pub(crate) fn stop(&self) {
        let mut r = self.lock();
        r.state = None;
        r.started = None;
    }

    /// Waits until this resync request may be served (see the module documentation).
    pub(crate) async fn pass(&self, resource: &Resource, link: &PeerLink, c_min_rate_kib: u32) {
        let _turn = self.order.lock().await;
        let wait = self.decide(resource, link, c_min_rate_kib);
        if wait {
            // Holding the turn: the requests behind this one wait too.
            tokio::time::sleep(THROTTLE_SLEEP).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn decide(&self, resource: &Resource, link: &PeerLink, c_min_rate_kib: u32) -> bool {
        let mut r = self.lock();
        let left_blocks = resource.meta.bitmap_weight();
        if r.state.is_none() {
            // A resync that did not announce itself (an online grow, invalidate-remote).
            r.state = Some(GateState::start(
                left_blocks,
                c_min_rate_kib,
                app_events_sectors(resource, link),
            ));
            r.started = Some(Instant::now());
        }
        let now_ms = r.started.map_or(0, |s| s.elapsed().as_millis() as u64);
        let input = GateInput {
            now_ms,
            left_blocks,
            paused: link.sync_paused(),
            peer_primary: resource.state().peer_role == Role::Primary,
            app_io_in_flight: resource.io.app_pending.load(Ordering::Relaxed) > 0,
            app_events_sectors: app_events_sectors(resource, link),
        };
        let wait = r.state.as_mut().is_some_and(|s| s.should_wait(input));
        if wait {
            r.throttled += 1;
        }
        wait
    }
}

/// The `c-min-rate` in force for a session (the settings of the last `adjust`).
pub(crate) fn c_min_rate_kib(ctx: &super::session::Ctx) -> u32 {
    ctx.link.settings_now(&ctx.cfg.settings).c_min_rate_kib
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(now_ms: u64, left_blocks: u64, app_events_sectors: u64) -> GateInput {
        GateInput {
            now_ms,
            left_blocks,
            paused: false,
            peer_primary: false,
            app_io_in_flight: false,
            app_events_sectors,
        }
    }

    /// 8 MiB/s of resync (2048 blocks/s) for `secs` seconds, one request every 100 ms;
    /// returns how many requests were held back.
    fn run(gate: &mut GateState, secs: u64, app: impl Fn(u64) -> GateInput) -> u64 {
        (1..=secs * 10)
            .filter(|step| gate.should_wait(app(*step * 100)))
            .count() as u64
    }

    #[test]
    fn application_io_above_c_min_rate_holds_requests_back() {
        let total = 16_384;
        let left = |ms: u64| total - ms * 2048 / 1000;
        // Without application I/O nothing waits.
        let mut idle = GateState::start(total, 250, 0);
        assert_eq!(run(&mut idle, 7, |ms| input(ms, left(ms), 0)), 0);
        // 1000 sectors of application I/O every step: every request waits, the resync
        // (8 MiB/s) being above c-min-rate (250 KiB/s).
        let mut busy = GateState::start(total, 250, 0);
        assert_eq!(run(&mut busy, 7, |ms| input(ms, left(ms), ms * 10)), 70);
        // Application requests in flight count as activity too.
        let mut inflight = GateState::start(total, 250, 0);
        let n = run(&mut inflight, 2, |ms| GateInput {
            app_io_in_flight: true,
            ..input(ms, left(ms), 0)
        });
        assert_eq!(n, 20);
    }

    #[test]
    fn no_throttle_below_c_min_rate_when_disabled_or_for_a_primary_target() {
        let total = 16_384;
        // The resync already slower than c-min-rate (100 KiB/s < 250): no wait.
        let slow = |ms: u64| total - ms * 25 / 1000;
        let mut g = GateState::start(total, 250, 0);
        assert_eq!(run(&mut g, 7, |ms| input(ms, slow(ms), ms * 10)), 0);
        // c-min-rate 0 disables it.
        let fast = |ms: u64| total - ms * 2048 / 1000;
        let mut off = GateState::start(total, 0, 0);
        assert_eq!(run(&mut off, 7, |ms| input(ms, fast(ms), ms * 10)), 0);
        // A Primary SyncTarget: its reads would suffer; the target throttles itself.
        let mut primary = GateState::start(total, 250, 0);
        let n = run(&mut primary, 7, |ms| GateInput {
            peer_primary: true,
            ..input(ms, fast(ms), ms * 10)
        });
        assert_eq!(n, 0);
    }
}
