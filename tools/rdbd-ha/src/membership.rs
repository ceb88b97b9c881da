//! Peer liveness for a two-node cluster, as a pure state machine: the caller feeds it
//! (now, accepted heartbeat), (now, tick) and ping-node results; it answers with
//! [`Event`]s, each carrying its reason.
//!
//! Rules (heartbeat's):
//! - a peer silent for `warntime` gets one "late heartbeat" warning per silence;
//! - silent for `deadtime` (or never heard within `initdead` of our start) it is dead;
//! - a peer that announced it is leaving ([`Phase::Leaving`]) is gone without fencing;
//! - a link (a source address) silent for `deadtime` is reported dead on its own.
//!
//! Times are milliseconds of a monotonic clock chosen by the caller.

use std::collections::BTreeMap;

use crate::config::Timings;
use crate::proto::{Heartbeat, Phase};

/// What we believe about the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Not heard yet, initdead not over.
    Waiting,
    /// Heartbeats arrive.
    Alive,
    /// Silent past deadtime (or initdead): it may still be running.
    Dead,
    /// Announced a clean shutdown after releasing its groups.
    Left,
    /// Fenced by our stonith command: known not running.
    Fenced,
}

impl Liveness {
    /// Whether the peer is known not to run anything (no fencing needed).
    pub fn is_known_down(self) -> bool {
        matches!(self, Liveness::Left | Liveness::Fenced)
    }
}

/// Something the caller should log (and act on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer's first heartbeat, or its first after being dead/gone.
    PeerUp {
        /// Why.
        reason: String,
    },
    /// The peer restarted (larger generation).
    PeerRestarted {
        /// Old and new generation.
        reason: String,
    },
    /// warntime passed without a heartbeat.
    PeerLate {
        /// Silence so far.
        silent_ms: u64,
    },
    /// deadtime (or initdead) passed.
    PeerDead {
        /// Why.
        reason: String,
    },
    /// The peer said it is leaving.
    PeerLeft,
    /// A link started carrying heartbeats.
    LinkUp {
        /// The link (source address).
        link: String,
    },
    /// A link went silent for deadtime.
    LinkDead {
        /// The link.
        link: String,
    },
    /// Ping-node reachability changed.
    PingChanged {
        /// Reachable now.
        reachable: bool,
    },
}

/// The peer liveness state machine.
#[derive(Debug, Clone)]
pub struct Membership {
    timings: Timings,
    started_ms: u64,
    liveness: Liveness,
    last_heard_ms: Option<u64>,
    warned: bool,
    last: Option<Heartbeat>,
    links: BTreeMap<String, (u64, bool)>,
    ping_ok: bool,
    has_ping_nodes: bool,
}

impl Membership {
    /// Starts at `now_ms`; `has_ping_nodes` false means reachability is not checked.
    pub fn new(timings: Timings, now_ms: u64, has_ping_nodes: bool) -> Self {
        Membership {
            timings,
            started_ms: now_ms,
            liveness: Liveness::Waiting,
            last_heard_ms: None,
            warned: false,
            last: None,
            links: BTreeMap::new(),
            // Until the first probe answers, a node with ping nodes does not take over.
            ping_ok: !has_ping_nodes,
            has_ping_nodes,
        }
    }

    /// The peer's liveness.
    pub fn liveness(&self) -> Liveness {
        self.liveness
    }

    /// The peer's last accepted heartbeat.
    pub fn last(&self) -> Option<&Heartbeat> {
        self.last.as_ref()
    }

    /// Whether this node reaches a ping node (true when none are configured).
    pub fn ping_ok(&self) -> bool {
        self.ping_ok
    }

    /// Whether initdead is over (decisions without the peer are allowed).
    pub fn initdead_over(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.started_ms) >= self.timings.initdead_ms
    }

    /// Milliseconds since the last heartbeat.
    pub fn silent_ms(&self, now_ms: u64) -> Option<u64> {
        self.last_heard_ms.map(|t| now_ms.saturating_sub(t))
    }

    /// Links and whether each is up.
    pub fn links(&self) -> impl Iterator<Item = (&str, bool)> {
        self.links.iter().map(|(k, (_, up))| (k.as_str(), *up))
    }

    /// An accepted (authenticated, not replayed) heartbeat from the peer over `link`.
    pub fn on_heartbeat(&mut self, now_ms: u64, hb: &Heartbeat, link: &str) -> Vec<Event> {
        let mut events = self.on_link_heard(now_ms, link);
        if let Some(prev) = &self.last {
            if hb.generation > prev.generation {
                events.push(Event::PeerRestarted {
                    reason: format!("generation {} -> {}", prev.generation, hb.generation),
                });
            }
        }
        self.last_heard_ms = Some(now_ms);
        self.warned = false;
        let was = self.liveness;
        if hb.phase == Phase::Leaving {
            if was != Liveness::Left {
                events.push(Event::PeerLeft);
            }
            self.liveness = Liveness::Left;
        } else if was != Liveness::Alive {
            let reason = match was {
                Liveness::Waiting => "first heartbeat".to_string(),
                Liveness::Dead => "heartbeats again after it was declared dead".to_string(),
                Liveness::Left => "back after a clean shutdown".to_string(),
                Liveness::Fenced => "heartbeats again after it was fenced".to_string(),
                Liveness::Alive => unreachable!("checked above"),
            };
            events.push(Event::PeerUp { reason });
            self.liveness = Liveness::Alive;
        }
        self.last = Some(hb.clone());
        events
    }

    /// Another copy of the newest heartbeat arrived over `link` (the same packet goes out
    /// over every medium): the link works. The peer's liveness is not refreshed, so a
    /// replayed copy of the newest packet cannot keep a silent peer alive.
    pub fn on_link_heard(&mut self, now_ms: u64, link: &str) -> Vec<Event> {
        let mut events = Vec::new();
        match self.links.get_mut(link) {
            Some((t, up)) => {
                *t = now_ms;
                if !*up {
                    *up = true;
                    events.push(Event::LinkUp { link: link.into() });
                }
            }
            None => {
                self.links.insert(link.to_string(), (now_ms, true));
                events.push(Event::LinkUp { link: link.into() });
            }
        }
        events
    }

    /// Advances time.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Event> {
        let mut events = Vec::new();
        for (link, (t, up)) in self.links.iter_mut() {
            if *up && now_ms.saturating_sub(*t) >= self.timings.deadtime_ms {
                *up = false;
                events.push(Event::LinkDead { link: link.clone() });
            }
        }
        match (self.liveness, self.last_heard_ms) {
            (Liveness::Waiting, None) if self.initdead_over(now_ms) => {
                self.liveness = Liveness::Dead;
                events.push(Event::PeerDead {
                    reason: format!(
                        "no heartbeat within initdead ({} ms) of start",
                        self.timings.initdead_ms
                    ),
                });
            }
            (Liveness::Alive, Some(t)) => {
                let silent_ms = now_ms.saturating_sub(t);
                if silent_ms >= self.timings.deadtime_ms {
                    self.liveness = Liveness::Dead;
                    events.push(Event::PeerDead {
                        reason: format!(
                            "no heartbeat for {silent_ms} ms (deadtime {} ms)",
                            self.timings.deadtime_ms
                        ),
                    });
                } else if silent_ms >= self.timings.warntime_ms && !self.warned {
                    self.warned = true;
                    events.push(Event::PeerLate { silent_ms });
                }
            }
            _ => {}
        }
        events
    }

    /// Our stonith command reported the peer fenced.
    pub fn on_fenced(&mut self) {
        if self.liveness == Liveness::Dead {
            self.liveness = Liveness::Fenced;
        }
    }

    /// A round of ping-node probes finished: `reachable` is whether any answered.
    pub fn on_ping(&mut self, reachable: bool) -> Vec<Event> {
        if !self.has_ping_nodes || reachable == self.ping_ok {
            return Vec::new();
        }
        self.ping_ok = reachable;
        vec![Event::PingChanged { reachable }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Flags;

    fn t() -> Timings {
        Timings {
            keepalive_ms: 1000,
            warntime_ms: 2000,
            deadtime_ms: 5000,
            initdead_ms: 10_000,
        }
    }

    fn hb(seq: u64, phase: Phase) -> Heartbeat {
        Heartbeat {
            node: "ct75".into(),
            generation: 1,
            seq,
            phase,
            flags: Flags::default(),
            holds_mask: 0,
            eligible_mask: 0,
            request_mask: 0,
        }
    }

    #[test]
    fn initdead_then_dead() {
        let mut m = Membership::new(t(), 1000, false);
        assert!(m.tick(1000 + 9_999).is_empty());
        assert_eq!(m.liveness(), Liveness::Waiting);
        let ev = m.tick(1000 + 10_000);
        assert!(matches!(&ev[..], [Event::PeerDead { reason }] if reason.contains("initdead")));
        assert_eq!(m.liveness(), Liveness::Dead);
        assert!(!m.liveness().is_known_down());
    }

    #[test]
    fn warn_once_then_dead_at_deadtime() {
        let mut m = Membership::new(t(), 0, false);
        let ev = m.on_heartbeat(100, &hb(1, Phase::Running), "10.0.0.8:694");
        assert!(ev.contains(&Event::PeerUp {
            reason: "first heartbeat".into()
        }));
        assert_eq!(m.liveness(), Liveness::Alive);
        assert!(m.tick(2099).is_empty());
        assert_eq!(m.tick(2100), vec![Event::PeerLate { silent_ms: 2000 }]);
        assert!(m.tick(3000).is_empty(), "one warning per silence");
        assert!(m.tick(5099).is_empty());
        let ev = m.tick(5100);
        assert!(ev.contains(&Event::LinkDead {
            link: "10.0.0.8:694".into()
        }));
        assert!(ev.iter().any(|e| matches!(e, Event::PeerDead { .. })));
        assert_eq!(m.liveness(), Liveness::Dead);
        // Back.
        let ev = m.on_heartbeat(6000, &hb(2, Phase::Running), "10.0.0.8:694");
        assert!(ev.contains(&Event::LinkUp {
            link: "10.0.0.8:694".into()
        }));
        assert_eq!(m.liveness(), Liveness::Alive);
    }

    #[test]
    fn copies_over_a_second_link_keep_that_link_up_but_not_the_peer() {
        let mut m = Membership::new(t(), 0, false);
        m.on_heartbeat(0, &hb(1, Phase::Running), "udp:a");
        assert_eq!(
            m.on_link_heard(10, "mcast(eth1,239.0.0.7:694):b"),
            vec![Event::LinkUp {
                link: "mcast(eth1,239.0.0.7:694):b".into()
            }]
        );
        assert!(m
            .on_link_heard(20, "mcast(eth1,239.0.0.7:694):b")
            .is_empty());
        // Copies alone (a replay of the newest packet) do not keep the peer alive.
        for now in (1000..=4000).step_by(1000) {
            m.on_link_heard(now, "mcast(eth1,239.0.0.7:694):b");
            m.tick(now);
        }
        let ev = m.tick(5000);
        assert!(ev.contains(&Event::LinkDead {
            link: "udp:a".into()
        }));
        assert!(!ev.contains(&Event::LinkDead {
            link: "mcast(eth1,239.0.0.7:694):b".into()
        }));
        assert!(ev.iter().any(|e| matches!(e, Event::PeerDead { .. })));
        assert_eq!(m.liveness(), Liveness::Dead);
    }

    #[test]
    fn heartbeats_keep_it_alive_and_reset_the_warning() {
        let mut m = Membership::new(t(), 0, false);
        for i in 0..20u64 {
            m.on_heartbeat(i * 1900, &hb(i, Phase::Running), "l");
            assert!(m.tick(i * 1900 + 1899).is_empty());
        }
        assert_eq!(m.liveness(), Liveness::Alive);
    }

    #[test]
    fn leaving_and_fencing() {
        let mut m = Membership::new(t(), 0, false);
        m.on_heartbeat(0, &hb(1, Phase::Running), "l");
        assert_eq!(
            m.on_heartbeat(10, &hb(2, Phase::Leaving), "l"),
            vec![Event::PeerLeft]
        );
        assert!(m.liveness().is_known_down());
        assert!(m
            .tick(100_000)
            .iter()
            .all(|e| !matches!(e, Event::PeerDead { .. })));

        let mut m = Membership::new(t(), 0, false);
        m.on_heartbeat(0, &hb(1, Phase::Running), "l");
        m.on_fenced();
        assert_eq!(
            m.liveness(),
            Liveness::Alive,
            "only a dead peer can be fenced"
        );
        m.tick(5000);
        m.on_fenced();
        assert_eq!(m.liveness(), Liveness::Fenced);
    }

    #[test]
    fn ping_reachability() {
        let mut m = Membership::new(t(), 0, true);
        assert!(!m.ping_ok(), "no takeover before the first probe");
        assert_eq!(
            m.on_ping(true),
            vec![Event::PingChanged { reachable: true }]
        );
        assert!(m.on_ping(true).is_empty());
        assert_eq!(
            m.on_ping(false),
            vec![Event::PingChanged { reachable: false }]
        );
        let mut m = Membership::new(t(), 0, false);
        assert!(m.ping_ok());
        assert!(m.on_ping(false).is_empty());
    }
}
