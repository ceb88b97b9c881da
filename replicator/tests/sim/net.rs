//! `SimNet`: the TCP connection between the two nodes, as far as DRBD can tell.
//!
//! - Each connection has an id and two directions; messages in a direction arrive in the order
//!   sent (TCP), each after its own random delay (a later message never overtakes an earlier
//!   one: its arrival is at least the previous one's).
//! - Loss is at the connection level: a dropped message breaks the connection (TCP would
//!   retransmit or reset; it never skips data). After a break nothing sent later arrives,
//!   and messages due after the break are lost: what arrives is a prefix of what was sent.
//!   Each endpoint notices the break on its own, after its own delay.
//! - Reordering exists only across connections: a message of an old connection is never
//!   delivered once the endpoint moved on (its connection id no longer matches).
//! - A partition breaks the connection and makes connection attempts fail until it heals.

use std::collections::BTreeMap;

/// One connection.
#[derive(Debug, Clone, Default)]
pub struct Link {
    /// When it was established.
    pub opened_at: u64,
    /// When it broke.
    pub broken_at: Option<u64>,
    /// The arrival time of the last message, per direction (index: sender).
    pub last_arrival: [u64; 2],
}

/// The network between node 0 and node 1.
#[derive(Debug, Default)]
pub struct SimNet {
    /// Connections by id.
    pub links: BTreeMap<u64, Link>,
    /// The newest connection id.
    pub next_id: u64,
    /// Partitioned until this time.
    pub partitioned_until: u64,
}

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Arrives at this time.
    At(u64),
    /// The connection is (now) broken; nothing arrives.
    Lost,
    /// This message broke the connection.
    Broke,
}

impl SimNet {
    /// Whether the nodes can reach each other at `now`.
    pub fn reachable(&self, now: u64) -> bool {
        now >= self.partitioned_until
    }

    /// A new connection.
    pub fn open(&mut self, now: u64) -> u64 {
        self.next_id += 1;
        let link = Link {
            opened_at: now,
            ..Link::default()
        };
        self.links.insert(self.next_id, link);
        self.next_id
    }

    /// Breaks a connection; returns whether it was intact.
    pub fn break_link(&mut self, id: u64, now: u64) -> bool {
        match self.links.get_mut(&id) {
            Some(l) if l.broken_at.is_none() => {
                l.broken_at = Some(now);
                true
            }
            _ => false,
        }
    }

    /// Sends from `from` on connection `id` with this `delay`; `drop` breaks the connection.
    pub fn send(&mut self, id: u64, from: usize, now: u64, delay: u64, drop: bool) -> Sent {
        let reachable = self.reachable(now);
        let Some(l) = self.links.get_mut(&id) else {
            return Sent::Lost;
        };
        if l.broken_at.is_some() {
            return Sent::Lost;
        }
        if drop || !reachable {
            l.broken_at = Some(now);
            return Sent::Broke;
        }
        let at = (now + delay).max(l.last_arrival[from]);
        l.last_arrival[from] = at;
        Sent::At(at)
    }

    /// Whether a message due at `now` on `id` still arrives.
    pub fn arrives(&self, id: u64, now: u64) -> bool {
        self.links
            .get(&id)
            .is_some_and(|l| l.broken_at.is_none_or(|t| now <= t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_prefix_and_breaks() {
        let mut n = SimNet::default();
        let c = n.open(0);
        assert_eq!(n.send(c, 0, 10, 50, false), Sent::At(60));
        assert_eq!(n.send(c, 0, 11, 1, false), Sent::At(60), "no overtaking");
        assert_eq!(
            n.send(c, 1, 11, 1, false),
            Sent::At(12),
            "directions independent"
        );
        assert!(n.break_link(c, 30));
        assert!(!n.arrives(c, 60), "due after the break: lost");
        assert!(n.arrives(c, 12));
        assert_eq!(n.send(c, 0, 31, 1, false), Sent::Lost);
        let d = n.open(0);
        n.partitioned_until = 100;
        assert_eq!(n.send(d, 0, 50, 1, false), Sent::Broke);
    }
}
