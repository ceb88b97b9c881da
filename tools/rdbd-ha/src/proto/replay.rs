//! The replay filter: per sender, accept only a newer incarnation (generation) or a
//! higher sequence number within the current one. An old packet captured and sent again
//! is refused. The newest packet seen again is a [`Verdict::Duplicate`]: the same
//! heartbeat goes out over every medium (ucast, bcast, mcast), so its copies arrive once
//! per link; a copy tells that its link works and nothing else.

use std::collections::HashMap;

/// The filter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The next packet of the known incarnation.
    Fresh,
    /// The sender restarted (a larger generation).
    NewIncarnation,
    /// Another copy of the newest packet (sent over several links): it shows only that
    /// the link it came over works.
    Duplicate,
    /// An old packet: ignore it.
    Replay {
        /// The newest (generation, seq) seen from that sender.
        newest: (u64, u64),
    },
}

/// Newest (generation, sequence) seen per sender.
#[derive(Debug, Default, Clone)]
pub struct ReplayFilter {
    newest: HashMap<String, (u64, u64)>,
}

impl ReplayFilter {
    /// An empty filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks and (when accepted) records a packet.
    pub fn check(&mut self, node: &str, generation: u64, seq: u64) -> Verdict {
        match self.newest.get(node).copied() {
            None => {
                self.newest.insert(node.to_string(), (generation, seq));
                Verdict::NewIncarnation
            }
            Some((g, _)) if generation > g => {
                self.newest.insert(node.to_string(), (generation, seq));
                Verdict::NewIncarnation
            }
            Some((g, s)) if generation == g && seq > s => {
                self.newest.insert(node.to_string(), (generation, seq));
                Verdict::Fresh
            }
            Some((g, s)) if generation == g && seq == s => Verdict::Duplicate,
            Some(newest) => Verdict::Replay { newest },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_refused() {
        let mut f = ReplayFilter::new();
        assert_eq!(f.check("b", 5, 1), Verdict::NewIncarnation);
        assert_eq!(f.check("b", 5, 2), Verdict::Fresh);
        assert_eq!(f.check("b", 5, 2), Verdict::Duplicate);
        assert_eq!(f.check("b", 5, 1), Verdict::Replay { newest: (5, 2) });
        assert_eq!(f.check("b", 4, 100), Verdict::Replay { newest: (5, 2) });
        assert_eq!(f.check("b", 6, 0), Verdict::NewIncarnation);
        assert_eq!(f.check("b", 5, 3), Verdict::Replay { newest: (6, 0) });
        assert_eq!(f.check("b", 6, 0), Verdict::Duplicate);
        assert_eq!(f.check("b", 6, 1), Verdict::Fresh);
        assert_eq!(f.check("b", 6, 0), Verdict::Replay { newest: (6, 1) });
        // Senders are independent.
        assert_eq!(f.check("a", 1, 0), Verdict::NewIncarnation);
    }
}
