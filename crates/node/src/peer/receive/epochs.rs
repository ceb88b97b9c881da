//! The Secondary's epochs (D84 drbd_receiver.c `receive_Barrier`,
//! `drbd_may_finish_epoch`): which received writes a `P_BARRIER` closes, when its
//! `P_BARRIER_ACK` goes out, and, with write ordering `f` or `d`, when the next epoch's
//! writes may start.
//!
//! - [`Epochs::join`]: a received write joins the open epoch. It holds the returned
//!   [`Member`] until its disk write finished, and first waits for [`Member::gate`].
//! - [`Epochs::close`] (a `P_BARRIER`): the barrier task (one per connection, in barrier
//!   order) waits until every write of the epoch finished, flushes (`disk-flushes`), then
//!   acknowledges the barrier.
//! - Write ordering `f` and `d` (`ordered`): DRBD's receiver waits for the epoch and
//!   flushes before it reads on, so no write of epoch n+1 reaches the disk before epoch n
//!   is done and flushed. Here the next epoch gets a *gate* that the barrier task opens
//!   after the acknowledgement instead; the writes of the next epoch are received and wait
//!   for it, and the receive loop reads on. Write ordering `n`: no gate.
//!
//! The barrier task outlives the connection until every barrier it was given is handled,
//! so a gated write never waits for a gate that cannot open.

use std::future::Future;

use tokio::sync::{mpsc, watch};

/// The writes of one epoch: each holds a clone of `alive` until it is done.
struct EpochWrites {
    alive: mpsc::Sender<()>,
    done: mpsc::Receiver<()>,
}

impl EpochWrites {
    fn new() -> EpochWrites {
        let (alive, done) = mpsc::channel(1);
        EpochWrites { alive, done }
    }

    /// Completes once every write of the epoch has finished (nothing is ever sent: the
    /// channel closes when the last clone of `alive` is dropped).
    async fn all_done(self) {
        let EpochWrites { alive, mut done } = self;
        drop(alive);
        let _ = done.recv().await;
    }
}

/// A barrier for the barrier task: its number, the epoch's size, its writes, and the
/// gate to open once they are done and flushed (write ordering `f` and `d`).
struct BarrierJob {
    barrier_nr: u32,
    set_size: u32,
    writes: EpochWrites,
    gate: Option<watch::Sender<bool>>,
}

/// A received write's membership in its epoch (held until its disk write finished).
pub(super) struct Member {
    _alive: mpsc::Sender<()>,
    /// Open when the earlier epochs are done and flushed; `None`: nothing to wait for.
    pub(super) gate: Option<watch::Receiver<bool>>,
}

/// The epochs of one connection.
pub(super) struct Epochs {
    writes: EpochWrites,
    /// Opens when every earlier epoch is done (and flushed).
    gate: watch::Receiver<bool>,
    barriers: mpsc::UnboundedSender<BarrierJob>,
    ordered: bool,
}

impl Epochs {
    /// Epochs whose barriers are handled by a task that, per barrier in order, waits for
    /// the epoch's writes, calls `flush` (when `flushes`) and then `ack(barrier_nr,
    /// set_size)`. `ordered`: write ordering `f` / `d` (gates between epochs).
    pub(super) fn spawn<F, Fut>(
        ordered: bool,
        flushes: bool,
        mut flush: F,
        mut ack: impl FnMut(u32, u32) + Send + 'static,
    ) -> Epochs
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let (barriers, mut jobs) = mpsc::unbounded_channel::<BarrierJob>();
        tokio::spawn(async move {
            while let Some(job) = jobs.recv().await {
                job.writes.all_done().await;
                if flushes {
                    flush().await;
                }
                ack(job.barrier_nr, job.set_size);
                if let Some(gate) = job.gate {
                    let _ = gate.send(true);
                }
            }
        });
        Epochs {
            writes: EpochWrites::new(),
            gate: watch::channel(true).1,
            barriers,
            ordered,
        }
    }

    /// A received write joins the open epoch.
    pub(super) fn join(&self) -> Member {
        Member {
            _alive: self.writes.alive.clone(),
            gate: (!*self.gate.borrow()).then(|| self.gate.clone()),
        }
    }

    /// A `P_BARRIER` closes the open epoch. Returns the next epoch's gate (write ordering
    /// `f` / `d`), which a receive loop that must not read on waits for.
    pub(super) fn close(
        &mut self,
        barrier_nr: u32,
        set_size: u32,
    ) -> Option<watch::Receiver<bool>> {
        let writes = std::mem::replace(&mut self.writes, EpochWrites::new());
        let gate = self.ordered.then(|| {
            let (open, gate) = watch::channel(false);
            self.gate = gate;
            open
        });
        let _ = self.barriers.send(BarrierJob {
            barrier_nr,
            set_size,
            writes,
            gate,
        });
        self.ordered.then(|| self.gate.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Seen {
        Start(u32),
        End(u32),
        Flush,
        Ack(u32),
    }

    /// Three epochs of three writes each, all received at once (the writes take 5 ms).
    /// Returns what happened, in order.
    async fn run(ordered: bool) -> Vec<Seen> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s1, s2) = (Arc::clone(&seen), Arc::clone(&seen));
        let mut epochs = Epochs::spawn(
            ordered,
            true,
            move || {
                let s = Arc::clone(&s1);
                async move {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    s.lock().unwrap().push(Seen::Flush);
                }
            },
            move |nr, _| s2.lock().unwrap().push(Seen::Ack(nr)),
        );
        let mut tasks = Vec::new();
        for epoch in 0..3u32 {
            for w in 0..3u32 {
                let member = epochs.join();
                let s = Arc::clone(&seen);
                let id = epoch * 10 + w;
                tasks.push(tokio::spawn(async move {
                    if let Some(mut gate) = member.gate.clone() {
                        let _ = gate.wait_for(|open| *open).await;
                    }
                    s.lock().unwrap().push(Seen::Start(id));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    s.lock().unwrap().push(Seen::End(id));
                    drop(member);
                }));
            }
            assert_eq!(epochs.close(epoch, 3).is_some(), ordered);
        }
        for t in tasks {
            t.await.unwrap();
        }
        // The last ack comes after the last write.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let v = seen.lock().unwrap().clone();
        v
    }

    fn position(seen: &[Seen], what: &Seen) -> usize {
        seen.iter()
            .position(|s| s == what)
            .unwrap_or_else(|| panic!("{what:?} missing: {seen:?}"))
    }

    #[tokio::test]
    async fn ordered_epochs_start_only_after_the_earlier_epoch_is_done_and_flushed() {
        let seen = run(true).await;
        for epoch in 0..3u32 {
            let ack = position(&seen, &Seen::Ack(epoch));
            for w in 0..3 {
                // Every write of the epoch ended before its barrier's flush and ack ...
                assert!(
                    position(&seen, &Seen::End(epoch * 10 + w)) < ack,
                    "{seen:?}"
                );
                // ... and no write of the next epoch started before that ack.
                if epoch < 2 {
                    assert!(
                        position(&seen, &Seen::Start((epoch + 1) * 10 + w)) > ack,
                        "{seen:?}"
                    );
                }
            }
            // The flush of the epoch is right before its ack.
            assert_eq!(seen[ack - 1], Seen::Flush, "{seen:?}");
        }
        let acks: Vec<_> = seen.iter().filter(|s| matches!(s, Seen::Ack(_))).collect();
        assert_eq!(acks, [&Seen::Ack(0), &Seen::Ack(1), &Seen::Ack(2)]);
    }

    #[tokio::test]
    async fn without_ordering_all_epochs_start_at_once_and_acks_stay_in_order() {
        let seen = run(false).await;
        // All nine writes started before the first one ended.
        let first_end = seen.iter().position(|s| matches!(s, Seen::End(_))).unwrap();
        assert_eq!(
            seen[..first_end]
                .iter()
                .filter(|s| matches!(s, Seen::Start(_)))
                .count(),
            9,
            "{seen:?}"
        );
        let acks: Vec<_> = seen.iter().filter(|s| matches!(s, Seen::Ack(_))).collect();
        assert_eq!(acks, [&Seen::Ack(0), &Seen::Ack(1), &Seen::Ack(2)]);
    }
}
