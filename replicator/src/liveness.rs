//! Liveness of the connection: `ping-int`, `ping-timeout`, `timeout` and `ko-count`
//! (D84 drbd_receiver.c `drbd_ack_receiver`, drbd_req.c `request_timer_fn`).
//!
//! - When nothing arrived on the meta socket for `ping-int`, send `P_PING`; if no
//!   `P_PING_ACK` arrives within `ping-timeout`, the peer is gone ("PingAck did not
//!   arrive in time").
//! - A request the peer has not acknowledged after `timeout` × `ko-count` means the peer
//!   is stuck: the connection is dropped (`ko-count` 0 disables this).
//!
//! Times are milliseconds on any monotonic clock the driver chooses.

/// What the driver should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Nothing.
    Idle,
    /// Send a `P_PING` on the meta socket.
    SendPing,
    /// The ping was not answered in time.
    PingTimeout,
    /// A request stayed unacknowledged for `timeout` × `ko-count`.
    KoCountExceeded,
}

/// The liveness timers of one connection.
#[derive(Debug, Clone)]
pub struct Liveness {
    ping_int_ms: u64,
    ping_timeout_ms: u64,
    ko_ms: Option<u64>,
    last_received_ms: u64,
    ping_sent_ms: Option<u64>,
}

impl Liveness {
    /// Timers from the settings (`ping-int` s, `ping-timeout` and `timeout` 0.1 s).
    pub fn new(
        ping_int_s: u32,
        ping_timeout_ds: u32,
        timeout_ds: u32,
        ko_count: u32,
        now_ms: u64,
    ) -> Self {
        Liveness {
            ping_int_ms: u64::from(ping_int_s.max(1)) * 1000,
            ping_timeout_ms: u64::from(ping_timeout_ds.max(1)) * 100,
            ko_ms: (ko_count > 0).then(|| u64::from(timeout_ds.max(1)) * 100 * u64::from(ko_count)),
            last_received_ms: now_ms,
            ping_sent_ms: None,
        }
    }

    /// Something arrived on the meta socket.
    pub fn on_meta_received(&mut self, now_ms: u64) {
        self.last_received_ms = now_ms;
    }

    /// A `P_PING_ACK` arrived.
    pub fn on_ping_ack(&mut self, now_ms: u64) {
        self.last_received_ms = now_ms;
        self.ping_sent_ms = None;
    }

    /// The peer asked for an immediate ping (e.g. before waiting on an ack).
    pub fn ping_now(&mut self, now_ms: u64) -> bool {
        if self.ping_sent_ms.is_none() {
            self.ping_sent_ms = Some(now_ms);
            return true;
        }
        false
    }

    /// Called periodically; `oldest_unacked_ms` is when the oldest request still waiting
    /// for its ack was sent.
    pub fn tick(&mut self, now_ms: u64, oldest_unacked_ms: Option<u64>) -> Tick {
        if let Some(sent) = self.ping_sent_ms {
            if now_ms.saturating_sub(sent) > self.ping_timeout_ms {
                return Tick::PingTimeout;
            }
        }
        if let (Some(ko), Some(oldest)) = (self.ko_ms, oldest_unacked_ms) {
            if now_ms.saturating_sub(oldest) > ko {
                return Tick::KoCountExceeded;
            }
        }
        if self.ping_sent_ms.is_none()
            && now_ms.saturating_sub(self.last_received_ms) >= self.ping_int_ms
        {
            self.ping_sent_ms = Some(now_ms);
            return Tick::SendPing;
        }
        Tick::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_after_idle_and_timeout_without_ack() {
        let mut l = Liveness::new(10, 5, 60, 7, 0);
        assert_eq!(l.tick(9_999, None), Tick::Idle);
        assert_eq!(l.tick(10_000, None), Tick::SendPing);
        assert_eq!(l.tick(10_400, None), Tick::Idle);
        l.on_ping_ack(10_450);
        assert_eq!(l.tick(10_600, None), Tick::Idle);
        assert_eq!(l.tick(20_450, None), Tick::SendPing);
        assert_eq!(l.tick(20_951, None), Tick::PingTimeout);
    }

    #[test]
    fn ko_count() {
        let mut l = Liveness::new(10, 5, 60, 7, 0);
        l.on_meta_received(41_000);
        assert_eq!(l.tick(42_000, Some(0)), Tick::Idle);
        assert_eq!(l.tick(42_001, Some(0)), Tick::KoCountExceeded);
        let mut off = Liveness::new(10, 5, 60, 0, 0);
        off.on_meta_received(99_000);
        assert_eq!(off.tick(99_500, Some(0)), Tick::Idle);
    }
}
