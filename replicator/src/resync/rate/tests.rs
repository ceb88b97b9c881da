//! Rate control tests against a simulated link (latency in steps, bandwidth in sectors per
//! step), and c-min-rate throttling.

use super::*;
use std::collections::VecDeque;

/// A link that returns requested sectors after `latency_steps`, at most
/// `bandwidth_sectors` per step, first come first served.
struct Link {
    latency_steps: u64,
    bandwidth_sectors: u64,
    queue: VecDeque<(u64, u64)>,
}

impl Link {
    fn new(latency_steps: u64, bandwidth_sectors: u64) -> Link {
        Link {
            latency_steps,
            bandwidth_sectors,
            queue: VecDeque::new(),
        }
    }

    fn deliver(&mut self, now: u64) -> u64 {
        let mut budget = self.bandwidth_sectors;
        let mut delivered = 0;
        while let Some((ready, sectors)) = self.queue.front_mut() {
            if *ready > now || budget == 0 {
                break;
            }
            let n = (*sectors).min(budget);
            *sectors -= n;
            budget -= n;
            delivered += n;
            if *sectors == 0 {
                self.queue.pop_front();
            }
        }
        delivered
    }

    fn send(&mut self, now: u64, sectors: u64) {
        if sectors > 0 {
            self.queue.push_back((now + self.latency_steps, sectors));
        }
    }
}

struct Run {
    /// KiB/s delivered over the second half of the run.
    rate_kib: f64,
    /// Sectors in flight when the controller decides (answers of the step subtracted, new
    /// requests not yet added), second half: what c-fill-target / c-delay-target aim at.
    in_flight_avg: f64,
    /// Sectors in flight after a step's requests, whole run.
    in_flight_max: i64,
}

fn simulate(cfg: RateConfig, mut link: Link, steps: u64) -> Run {
    let mut ctl = RateController::new(cfg);
    ctl.reset();
    let (mut delivered_late, mut in_flight_sum, mut in_flight_max) = (0u64, 0i64, 0i64);
    for t in 0..steps {
        let sect_in = link.deliver(t);
        let blocks = ctl.step(sect_in);
        let before_send = ctl.in_flight_sectors();
        ctl.requests_sent(blocks);
        link.send(t, blocks * SECTORS_PER_BLOCK);
        in_flight_max = in_flight_max.max(ctl.in_flight_sectors());
        if t >= steps / 2 {
            delivered_late += sect_in;
            in_flight_sum += before_send;
        }
    }
    let late_steps = steps - steps / 2;
    Run {
        rate_kib: delivered_late as f64 / 2.0 / (late_steps as f64 * STEP_MS as f64 / 1000.0),
        in_flight_avg: in_flight_sum as f64 / late_steps as f64,
        in_flight_max,
    }
}

fn within(value: f64, target: f64, tolerance: f64) -> bool {
    (value - target).abs() <= target * tolerance
}

const FAST: u64 = 1 << 30;

#[test]
fn static_rate_is_met_within_ten_percent() {
    for (rate_kib, tolerance) in [(10_240u32, 0.10), (40_960, 0.10), (250, 0.05)] {
        let cfg = RateConfig {
            resync_rate_kib: rate_kib,
            c_plan_ahead_ds: 0,
            ..RateConfig::default()
        };
        let run = simulate(cfg, Link::new(1, FAST), 200);
        assert!(
            within(run.rate_kib, f64::from(rate_kib), tolerance),
            "resync-rate {rate_kib}: achieved {} KiB/s",
            run.rate_kib
        );
        let mut ctl = RateController::new(cfg);
        ctl.step(0);
        assert_eq!(ctl.c_sync_rate_kib(), u64::from(rate_kib));
    }
    // Exactly rate / 40 blocks per step.
    let mut ctl = RateController::new(RateConfig {
        resync_rate_kib: 10_240,
        c_plan_ahead_ds: 0,
        ..RateConfig::default()
    });
    assert_eq!(ctl.step(0), 256);
}

#[test]
fn max_buffers_bound_what_is_in_flight() {
    // 40 MiB/s wants 1024 blocks per step; a 5-step round trip would need 5120 in flight,
    // max-buffers 2048 allows 1024 blocks (8192 sectors).
    let cfg = RateConfig {
        resync_rate_kib: 40_960,
        c_plan_ahead_ds: 0,
        ..RateConfig::default()
    };
    let run = simulate(cfg, Link::new(5, FAST), 200);
    assert!(
        run.in_flight_max <= 1024 * 8,
        "in flight {}",
        run.in_flight_max
    );
    assert!(
        run.rate_kib < 40_960.0 * 0.5,
        "not limited: {}",
        run.rate_kib
    );
    let small = RateConfig {
        max_buffers: 64,
        ..cfg
    };
    let run = simulate(small, Link::new(1, FAST), 100);
    assert!(
        run.in_flight_max <= 32 * 8,
        "in flight {}",
        run.in_flight_max
    );
}

#[test]
fn first_dynamic_step_plans_resync_rate() {
    // Default config: want = 250 KiB/s -> 50 sectors per step * 20 steps = 1000 sectors;
    // 1/20 of that now: 50 sectors = 6 blocks.
    let mut ctl = RateController::new(RateConfig::default());
    assert_eq!(ctl.step(0), 6);
    assert_eq!(ctl.c_sync_rate_kib(), 240);
}

#[test]
fn dynamic_controller_converges_to_the_fill_target() {
    for (fill, latency) in [(1000u32, 2u64), (4000, 5), (16_000, 3)] {
        let cfg = RateConfig {
            c_fill_target_sectors: fill,
            max_buffers: 16_384,
            ..RateConfig::default()
        };
        let run = simulate(cfg, Link::new(latency, FAST), 300);
        assert!(
            within(run.in_flight_avg, f64::from(fill), 0.10),
            "fill {fill}, latency {latency}: in flight {}",
            run.in_flight_avg
        );
        // Throughput follows: a request sent at step t is answered at t + latency, so the
        // fill target covers latency - 1 steps of requests.
        let expected_kib = f64::from(fill) / 2.0 / ((latency - 1) as f64 * 0.1);
        assert!(
            within(run.rate_kib, expected_kib, 0.15),
            "fill {fill}: rate {} vs {expected_kib}",
            run.rate_kib
        );
    }
}

#[test]
fn dynamic_controller_converges_to_the_delay_target() {
    // No fill target: keep c-delay-target (1 s) worth of the incoming rate in flight. A link
    // of 400 sectors per step (2000 KiB/s) fills up to ~4000 sectors and runs at full speed.
    let cfg = RateConfig {
        c_fill_target_sectors: 0,
        c_delay_target_ds: 10,
        ..RateConfig::default()
    };
    let run = simulate(cfg, Link::new(1, 400), 600);
    assert!(
        within(run.in_flight_avg, 4000.0, 0.10),
        "in flight {}",
        run.in_flight_avg
    );
    assert!(within(run.rate_kib, 2000.0, 0.05), "rate {}", run.rate_kib);
}

#[test]
fn c_max_rate_caps_the_dynamic_controller() {
    for max_kib in [10_240u32, 40_960] {
        let cfg = RateConfig {
            c_fill_target_sectors: 1 << 20,
            c_max_rate_kib: max_kib,
            ..RateConfig::default()
        };
        let run = simulate(cfg, Link::new(1, FAST), 300);
        assert!(
            run.rate_kib <= f64::from(max_kib) * 1.001,
            "{max_kib}: {}",
            run.rate_kib
        );
        assert!(
            within(run.rate_kib, f64::from(max_kib), 0.10),
            "{max_kib}: {}",
            run.rate_kib
        );
    }
}

#[test]
fn reset_and_plan_changes() {
    let mut ctl = RateController::new(RateConfig::default());
    let n = ctl.step(0);
    ctl.requests_sent(n);
    assert_eq!(ctl.in_flight_sectors(), 48);
    ctl.reset();
    assert_eq!(ctl.in_flight_sectors(), 0);
    assert_eq!(ctl.step(0), n, "after reset the controller starts over");
    // Switching to static drops the plan; switching back starts an empty one.
    ctl.set_config(RateConfig {
        c_plan_ahead_ds: 0,
        resync_rate_kib: 4000,
        ..RateConfig::default()
    });
    assert_eq!(ctl.step(0), 100);
    ctl.set_config(RateConfig::default());
    ctl.reset();
    assert_eq!(ctl.step(0), 6);
}

#[test]
fn marks_and_recent_rate() {
    let mut marks = ResyncMarks::start(0, 10_000);
    marks.advance(2_999, 9_500, false);
    assert_eq!(marks.mark(0), (0, 10_000), "no mark before 3 s");
    marks.advance(3_000, 9_000, false);
    assert_eq!(marks.mark(0), (3_000, 9_000));
    marks.advance(6_000, 9_000, false);
    assert_eq!(marks.mark(0), (3_000, 9_000), "no progress, no mark");
    marks.advance(6_000, 8_500, true);
    assert_eq!(marks.mark(0), (3_000, 9_000), "paused, no mark");
    marks.advance(6_000, 8_000, false);
    assert_eq!(marks.mark(1), (3_000, 9_000));
    // Since the mark before the last one: 1100 blocks in 3 s (whole seconds) -> 366 * 4 KiB/s.
    assert_eq!(marks.recent_rate_kib(6_500, 7_900), 1464);
    // Under a second counts as one.
    let fresh = ResyncMarks::start(1_000, 100);
    assert_eq!(fresh.recent_rate_kib(1_200, 50), 200);
}

#[test]
fn c_min_rate_throttles_only_with_application_io_and_above_the_rate() {
    let mut marks = ResyncMarks::start(0, 10_000);
    marks.advance(3_000, 9_000, false);
    marks.advance(6_000, 8_000, false);
    let (now, left) = (6_500, 7_900); // 1464 KiB/s
    let mut t = MinRateThrottle::new(1_000, 0);
    assert!(
        t.should_throttle(&marks, now, left, true, 0),
        "app I/O in flight, above c-min-rate"
    );
    assert!(
        !MinRateThrottle::new(2_000, 0).should_throttle(&marks, now, left, true, 0),
        "below c-min-rate"
    );
    assert!(
        !MinRateThrottle::new(0, 0).should_throttle(&marks, now, left, true, 0),
        "c-min-rate 0 disables"
    );
    let mut t = MinRateThrottle::new(1_000, 1_000);
    assert!(
        !t.should_throttle(&marks, now, left, false, 1_000),
        "no application I/O"
    );
    assert!(
        !t.should_throttle(&marks, now, left, false, 1_064),
        "64 sectors are not busy"
    );
    assert!(
        t.should_throttle(&marks, now, left, false, 1_065),
        "65 sectors are"
    );
    assert!(
        !t.should_throttle(&marks, now, left, false, 1_100),
        "counted from the last busy check"
    );
}
