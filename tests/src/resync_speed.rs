//! Measuring a running resync from the SyncTarget's status file: progress samples taken
//! by polling, the average speed fitted over the middle of the sync, and the daemon's
//! own `speed:` readings. Used by the rate tests of `resync_rate.rs` and `resync_crash.rs`.

use std::time::Duration;

use crate::tools::number_after;

/// One progress line of the SyncTarget: when (since it became SyncTarget), `speed:` and
/// `want:` (KiB/s; `want` only on a SyncTarget) and the KiB still out of sync (`oos:`).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Time since the node became SyncTarget.
    pub at: Duration,
    /// The `speed:` figure, KiB/s.
    pub speed_kib: u64,
    /// The `want:` figure, KiB/s.
    pub want_kib: Option<u64>,
    /// `oos:`, KiB.
    pub left_kib: Option<u64>,
}

/// The progress figures of a status file `text` read at `at`, when it shows a running resync.
pub fn sample(text: &str, at: Duration) -> Option<Sample> {
    let line = text.lines().find(|l| l.contains("finish:"))?;
    Some(Sample {
        at,
        speed_kib: number_after(line, "speed:")?,
        want_kib: number_after(line, "want:"),
        left_kib: number_after(text, "oos:"),
    })
}

/// The average resync speed (KiB/s) while between 10 % and 90 % of `total_kib` is done:
/// a least-squares line through `oos:` against the test's clock, taken at each sample
/// where `oos:` changed (the status file is rewritten about once a second; 50 ms polling
/// dates each rewrite to within 50 ms). Leaves out the start (connection, bitmap
/// exchange) and the end (the last requests, the final state change), which the time
/// from the first progress line to done would blur by up to a second each.
pub fn fitted_speed_kib(samples: &[Sample], total_kib: u64) -> Option<f64> {
    let mut points: Vec<(f64, f64)> = Vec::new();
    let mut last_left = None;
    for s in samples {
        let Some(left) = s.left_kib else { continue };
        if last_left == Some(left) {
            continue;
        }
        last_left = Some(left);
        let done = total_kib.saturating_sub(left);
        if done >= total_kib / 10 && done <= total_kib * 9 / 10 {
            points.push((s.at.as_secs_f64(), left as f64));
        }
    }
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_left = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points
        .iter()
        .map(|p| (p.0 - mean_t) * (p.1 - mean_left))
        .sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    (variance > 0.0).then(|| -covariance / variance)
}

/// The `speed:` readings after the first 2 s (the figure needs a second of history),
/// one per rewrite of the status file (the 50 ms polling sees each several times).
pub fn speed_readings_kib(samples: &[Sample]) -> Vec<u64> {
    let mut readings = Vec::new();
    let mut last = None;
    for s in samples.iter().filter(|s| s.at >= Duration::from_secs(2)) {
        let key = (s.left_kib, s.speed_kib);
        if last != Some(key) && s.speed_kib > 0 {
            readings.push(s.speed_kib);
        }
        last = Some(key);
    }
    readings
}

/// The median of `v` (0 when empty).
pub fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// The figures of a sync run at a limited rate, once its upper bound held.
#[derive(Debug)]
pub struct HeldRate {
    /// The average over 10 to 90 % done (KiB/s).
    pub average_kib: f64,
    /// The `speed:` readings ([`speed_readings_kib`]).
    pub readings_kib: Vec<u64>,
    /// Their median.
    pub typical_kib: u64,
    /// Every figure and the samples, for failure messages.
    pub figures: String,
}

/// Checks a sync limited to `rate_kib` (`label`: the option as written, e.g. `10M`) that
/// moved `total_kib` in `took`: the average over 10..90 % done is at most 10 % above the
/// limit (a loaded machine only slows it down, so it passing is no luck), with at least
/// three `speed:` readings. The lower bound is the caller's: the median reading, which one
/// stall of the machine moves by one reading, not by the stall's share of the whole time.
pub fn assert_rate_held_from_above(
    samples: &[Sample],
    total_kib: u64,
    took: Duration,
    rate_kib: u64,
    label: &str,
) -> HeldRate {
    let average = fitted_speed_kib(samples, total_kib);
    let readings_kib = speed_readings_kib(samples);
    let typical_kib = median(readings_kib.clone());
    eprintln!(
        "resync-rate {label}: {total_kib} KiB in {took:?}; average (10-90 %) {average:?} KiB/s; speed: readings {readings_kib:?}, median {typical_kib} KiB/s"
    );
    let figures = format!(
        "average {average:?} KiB/s between 10 % and 90 % done, {total_kib} KiB in {took:?}, speed: readings {readings_kib:?} (median {typical_kib}); samples {samples:?}"
    );
    let average_kib = average.unwrap_or_else(|| panic!("too few progress lines: {figures}"));
    assert!(
        readings_kib.len() >= 3,
        "too few progress lines with a speed: {figures}"
    );
    assert!(
        average_kib.round() as u64 <= rate_kib * 11 / 10,
        "the resync ran above resync-rate {label} (+10 %): {figures}"
    );
    HeldRate {
        average_kib,
        readings_kib,
        typical_kib,
        figures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, left_kib: u64) -> Sample {
        Sample {
            at: Duration::from_millis(ms),
            speed_kib: 1,
            want_kib: None,
            left_kib: Some(left_kib),
        }
    }

    #[test]
    fn the_fit_recovers_a_steady_rate_and_ignores_the_ends() {
        // 1000 KiB at 100 KiB/s, with a stall at the start and the end.
        let mut samples = vec![at(0, 1000), at(3000, 1000)];
        samples.extend((0..=10).map(|i| at(3000 + i * 1000, 1000 - i * 100)));
        samples.push(at(20_000, 0));
        let speed = fitted_speed_kib(&samples, 1000).expect("enough points");
        assert!((speed - 100.0).abs() < 0.5, "{speed}");
        assert_eq!(median(vec![5, 1, 3]), 3);
        assert_eq!(median(Vec::new()), 0);
    }
}
