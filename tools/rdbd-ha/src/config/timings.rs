//! Heartbeat timings (`keepalive`, `warntime`, `deadtime`, `initdead`) and heartbeat's
//! duration syntax (`2` = seconds, `500ms`, `2s`).

use serde::{Deserialize, Serialize};

use crate::error::{HaError, Result};

/// The longest timing accepted, in milliseconds (one day).
pub const MAX_TIMING_MS: u64 = 86_400_000;

/// When heartbeats are sent and when a silent peer is late or dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timings {
    /// Interval between two heartbeats.
    #[serde(default = "d_keepalive")]
    pub keepalive_ms: u64,
    /// Silence after which a "late heartbeat" warning is logged.
    #[serde(default = "d_warntime")]
    pub warntime_ms: u64,
    /// Silence after which the peer is declared dead.
    #[serde(default = "d_deadtime")]
    pub deadtime_ms: u64,
    /// Deadtime right after start (networks and peers may come up slowly).
    #[serde(default = "d_initdead")]
    pub initdead_ms: u64,
}

fn d_keepalive() -> u64 {
    2_000
}
fn d_warntime() -> u64 {
    10_000
}
fn d_deadtime() -> u64 {
    30_000
}
fn d_initdead() -> u64 {
    60_000
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            keepalive_ms: d_keepalive(),
            warntime_ms: d_warntime(),
            deadtime_ms: d_deadtime(),
            initdead_ms: d_initdead(),
        }
    }
}

impl Timings {
    /// keepalive < warntime <= deadtime <= initdead, all non-zero and bounded.
    pub fn validate(&self) -> Result<()> {
        let t = self;
        let bad = |m: String| Err(HaError::Invalid(m));
        for (name, v) in [
            ("keepalive", t.keepalive_ms),
            ("warntime", t.warntime_ms),
            ("deadtime", t.deadtime_ms),
            ("initdead", t.initdead_ms),
        ] {
            if v == 0 || v > MAX_TIMING_MS {
                return bad(format!(
                    "{name} {v} ms is out of range 1..={MAX_TIMING_MS} ms"
                ));
            }
        }
        if t.keepalive_ms >= t.warntime_ms {
            return bad(format!(
                "keepalive ({} ms) must be shorter than warntime ({} ms)",
                t.keepalive_ms, t.warntime_ms
            ));
        }
        if t.warntime_ms > t.deadtime_ms {
            return bad(format!(
                "warntime ({} ms) must not exceed deadtime ({} ms)",
                t.warntime_ms, t.deadtime_ms
            ));
        }
        if t.initdead_ms < t.deadtime_ms {
            return bad(format!(
                "initdead ({} ms) must be at least deadtime ({} ms)",
                t.initdead_ms, t.deadtime_ms
            ));
        }
        Ok(())
    }
}

/// Parses heartbeat's duration syntax: `N` (seconds), `Ns`, `Nms`; fractions allowed
/// (`1.5`). Returns milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (t, 1000.0)
    };
    let v: f64 = number.trim().parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let ms = (v * scale).round();
    if ms > MAX_TIMING_MS as f64 {
        return None;
    }
    Some(ms as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("2"), Some(2000));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("1.5"), Some(1500));
        assert_eq!(parse_duration_ms("3s"), Some(3000));
        assert_eq!(parse_duration_ms("-1"), None);
        assert_eq!(parse_duration_ms("x"), None);
        assert_eq!(parse_duration_ms("1e30"), None);
    }

    #[test]
    fn ordering_rules() {
        assert!(Timings::default().validate().is_ok());
        let mut t = Timings::default();
        t.keepalive_ms = t.warntime_ms;
        assert!(t.validate().is_err());
        let mut t = Timings::default();
        t.initdead_ms = t.deadtime_ms - 1;
        assert!(t.validate().unwrap_err().to_string().contains("initdead"));
    }
}
