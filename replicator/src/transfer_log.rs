//! The primary's transfer log: every replicated write from `P_DATA` until the peer's
//! `P_BARRIER_ACK` releases its epoch (D84 drbd_req.c, `tl_release`, `tl_clear`).
//!
//! Rules kept here:
//! - each write gets a `block_id` (echoed by the peer's acks) and a sequence number;
//! - writes are grouped in epochs; an epoch is closed by `P_BARRIER{nr}` before the first
//!   write of the next one, when it reached `max-epoch-size`, on a flush, or when the
//!   sender goes idle ([`TransferLog::close_epoch`]); empty epochs send no barrier;
//! - once a write of the open epoch has completed towards the application, the next
//!   write starts a new epoch (D84 drbd_req.c: a completion in the current epoch starts a
//!   new one), so a write issued after an earlier one completed can never be written
//!   before it on the peer, under any protocol;
//! - the peer answers a barrier with `P_BARRIER_ACK{nr, set_size}`, in order, where
//!   `set_size` must equal the number of writes of that epoch;
//! - a request completes towards the application per protocol: A when handed to the
//!   socket (the driver's business), B on `P_RECV_ACK`, C on `P_WRITE_ACK` (or
//!   `P_RS_WRITE_ACK`); `P_NEG_ACK` completes it as failed on the peer;
//! - when the connection is lost, every request still in the log (not released by a
//!   barrier ack) is reported so that its blocks are set out of sync, and waiters that
//!   were not completed yet are handed back to be completed.
//!
//! `T` is whatever the driver needs to complete a request (a channel sender).

use std::collections::{HashMap, VecDeque};

use rdbd_types::Protocol;

/// A transfer-log inconsistency the peer caused: the connection must be dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlError {
    /// A barrier ack for an epoch that is not the oldest one.
    #[error("BarrierAck #{got} received, expected #{expected}")]
    WrongBarrier {
        /// The number in the packet.
        got: u32,
        /// The oldest open epoch.
        expected: u32,
    },
    /// A barrier ack with a set size that does not match.
    #[error("BarrierAck #{barrier} received with n_writes={got}, expected n_writes={expected}")]
    WrongSetSize {
        /// The epoch.
        barrier: u32,
        /// The count in the packet.
        got: u32,
        /// The writes sent in that epoch.
        expected: u32,
    },
    /// A barrier ack while no epoch is closed.
    #[error("BarrierAck #{0} received but no epoch is waiting for one")]
    NoEpoch(u32),
}

/// Which acknowledgement arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// `P_RECV_ACK`.
    Recv,
    /// `P_WRITE_ACK`.
    Write,
    /// `P_RS_WRITE_ACK` for an application write (written, and in sync on the peer).
    RsWrite,
    /// `P_NEG_ACK`: the peer could not write.
    Neg,
}

/// A write in the log.
#[derive(Debug)]
struct Request<T> {
    sector: u64,
    size_bytes: u32,
    submitted_ms: u64,
    /// The epoch the write was sent in.
    epoch: u32,
    /// Still waiting for the protocol's ack.
    waiter: Option<T>,
    /// The peer reported a failure.
    failed: bool,
}

/// A write that has left the log or was completed: its blocks and its waiter.
#[derive(Debug, PartialEq, Eq)]
pub struct Done<T> {
    /// First sector.
    pub sector: u64,
    /// Length in bytes.
    pub size_bytes: u32,
    /// The waiter, if the request was not completed before.
    pub waiter: Option<T>,
    /// The peer did not write it (negative ack).
    pub failed: bool,
}

/// The numbers a new write is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    /// `block_id` of the `P_DATA`.
    pub block_id: u64,
    /// `seq_num` of the `P_DATA`.
    pub seq_num: u32,
    /// A `P_BARRIER` to send before this write (the previous epoch was full).
    pub barrier_before: Option<u32>,
}

/// The transfer log of one connection.
#[derive(Debug)]
pub struct TransferLog<T> {
    protocol: Protocol,
    max_epoch_size: u32,
    next_block_id: u64,
    next_seq: u32,
    open_epoch: u32,
    open_epoch_ids: Vec<u64>,
    closed: VecDeque<(u32, Vec<u64>)>,
    requests: HashMap<u64, Request<T>>,
    /// A write of the open epoch completed: the next write opens a new epoch.
    close_before_next: bool,
}

impl<T> TransferLog<T> {
    /// An empty log. Epoch numbers start at `first_epoch` (any value: the peer echoes it).
    pub fn new(protocol: Protocol, max_epoch_size: u32, first_epoch: u32) -> Self {
        TransferLog {
            protocol,
            max_epoch_size: max_epoch_size.max(1),
            next_block_id: 1,
            next_seq: 1,
            open_epoch: first_epoch,
            open_epoch_ids: Vec::new(),
            closed: VecDeque::new(),
            requests: HashMap::new(),
            close_before_next: false,
        }
    }

    /// The replication protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Enters a write; the caller sends the barrier (if any), then `P_DATA` with these numbers.
    pub fn submit(&mut self, sector: u64, size_bytes: u32, now_ms: u64, waiter: T) -> Submitted {
        let full = self.open_epoch_ids.len() as u32 >= self.max_epoch_size;
        let barrier_before = if full || self.close_before_next {
            self.close_epoch()
        } else {
            None
        };
        let block_id = self.next_block_id;
        self.next_block_id = self.next_block_id.wrapping_add(1).max(1);
        let seq_num = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.open_epoch_ids.push(block_id);
        self.requests.insert(
            block_id,
            Request {
                sector,
                size_bytes,
                submitted_ms: now_ms,
                epoch: self.open_epoch,
                waiter: Some(waiter),
                failed: false,
            },
        );
        Submitted {
            block_id,
            seq_num,
            barrier_before,
        }
    }

    /// Closes the open epoch if it has writes; returns the barrier number to send.
    pub fn close_epoch(&mut self) -> Option<u32> {
        self.close_before_next = false;
        if self.open_epoch_ids.is_empty() {
            return None;
        }
        let nr = self.open_epoch;
        self.closed
            .push_back((nr, std::mem::take(&mut self.open_epoch_ids)));
        self.open_epoch = self.open_epoch.wrapping_add(1);
        Some(nr)
    }

    /// The newest closed epoch still waiting for its barrier ack.
    pub fn last_closed_epoch(&self) -> Option<u32> {
        self.closed.back().map(|(nr, _)| *nr)
    }

    /// Whether an ack of `kind` completes a request under this protocol.
    fn completes(&self, kind: AckKind) -> bool {
        matches!(
            (self.protocol, kind),
            (_, AckKind::Neg)
                | (Protocol::B, AckKind::Recv)
                | (Protocol::C, AckKind::Write | AckKind::RsWrite)
        )
    }

    /// An ack for `block_id`: returns the waiter to complete, if this ack completes it.
    /// Acks for unknown ids (already released, or not ours) are ignored.
    pub fn on_ack(&mut self, kind: AckKind, block_id: u64) -> Option<Done<T>> {
        let completes = self.completes(kind);
        let req = self.requests.get_mut(&block_id)?;
        if kind == AckKind::Neg {
            req.failed = true;
        }
        if !completes {
            return None;
        }
        let waiter = req.waiter.take()?;
        let epoch = req.epoch;
        let done = Done {
            sector: req.sector,
            size_bytes: req.size_bytes,
            waiter: Some(waiter),
            failed: req.failed,
        };
        self.completed_in(epoch);
        Some(done)
    }

    /// A request of `epoch` completed towards the application: if that is the open
    /// epoch, the next write must go into a new one.
    fn completed_in(&mut self, epoch: u32) {
        if epoch == self.open_epoch {
            self.close_before_next = true;
        }
    }

    /// Takes the waiter of a request (protocol A: completed when handed to the socket).
    pub fn take_waiter(&mut self, block_id: u64) -> Option<T> {
        let req = self.requests.get_mut(&block_id)?;
        let waiter = req.waiter.take()?;
        let epoch = req.epoch;
        self.completed_in(epoch);
        Some(waiter)
    }

    /// `P_BARRIER_ACK`: releases the oldest epoch. Returns its requests that failed on the
    /// peer (their blocks stay out of sync) and waiters not completed yet.
    pub fn on_barrier_ack(&mut self, barrier: u32, set_size: u32) -> Result<Vec<Done<T>>, TlError> {
        let Some((nr, ids)) = self.closed.front() else {
            return Err(TlError::NoEpoch(barrier));
        };
        if *nr != barrier {
            return Err(TlError::WrongBarrier {
                got: barrier,
                expected: *nr,
            });
        }
        if ids.len() as u32 != set_size {
            return Err(TlError::WrongSetSize {
                barrier,
                got: set_size,
                expected: ids.len() as u32,
            });
        }
        let (_, ids) = self.closed.pop_front().expect("front exists");
        let mut out = Vec::new();
        for id in ids {
            if let Some(r) = self.requests.remove(&id) {
                if r.failed || r.waiter.is_some() {
                    out.push(Done {
                        sector: r.sector,
                        size_bytes: r.size_bytes,
                        waiter: r.waiter,
                        failed: r.failed,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The connection is gone: every request still in the log, to be set out of sync.
    pub fn clear(&mut self) -> Vec<Done<T>> {
        self.open_epoch_ids.clear();
        self.closed.clear();
        let mut out: Vec<Done<T>> = self
            .requests
            .drain()
            .map(|(_, r)| Done {
                sector: r.sector,
                size_bytes: r.size_bytes,
                waiter: r.waiter,
                failed: true,
            })
            .collect();
        out.sort_by_key(|d| d.sector);
        out
    }

    /// Requests waiting for the protocol's ack (`pe`).
    pub fn pending_acks(&self) -> usize {
        self.requests
            .values()
            .filter(|r| r.waiter.is_some())
            .count()
    }

    /// Requests in the log (not released by a barrier ack).
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Epochs not yet acknowledged, the open one included (`ep`).
    pub fn epochs(&self) -> usize {
        self.closed.len() + 1
    }

    /// When the oldest request still waiting for its ack was submitted.
    pub fn oldest_waiting_ms(&self) -> Option<u64> {
        self.requests
            .values()
            .filter(|r| r.waiter.is_some())
            .map(|r| r.submitted_ms)
            .min()
    }
}

/// The secondary's side of epochs: counts the writes since the last barrier.
#[derive(Debug, Default)]
pub struct PeerEpoch {
    writes: u32,
}

impl PeerEpoch {
    /// A `P_DATA` (or `P_TRIM`) arrived.
    pub fn on_write(&mut self) {
        self.writes = self.writes.saturating_add(1);
    }

    /// A `P_BARRIER`: returns the `set_size` to acknowledge and starts a new epoch.
    pub fn on_barrier(&mut self) -> u32 {
        std::mem::take(&mut self.writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_c_completes_on_write_ack_and_barrier_releases() {
        let mut tl = TransferLog::new(Protocol::C, 2, 100);
        let a = tl.submit(0, 4096, 0, "a");
        let b = tl.submit(8, 4096, 0, "b");
        assert_eq!(a.barrier_before, None);
        assert!(
            tl.on_ack(AckKind::Recv, a.block_id).is_none(),
            "C ignores receive acks"
        );
        assert_eq!(
            tl.on_ack(AckKind::Write, a.block_id).unwrap().waiter,
            Some("a")
        );
        assert!(
            tl.on_ack(AckKind::Write, a.block_id).is_none(),
            "completed only once"
        );
        let c = tl.submit(16, 4096, 0, "c");
        assert_eq!(c.barrier_before, Some(100), "epoch full: barrier first");
        assert_eq!(tl.epochs(), 2);
        assert_eq!(
            tl.on_barrier_ack(100, 1),
            Err(TlError::WrongSetSize {
                barrier: 100,
                got: 1,
                expected: 2
            })
        );
        assert_eq!(
            tl.on_barrier_ack(101, 2),
            Err(TlError::WrongBarrier {
                got: 101,
                expected: 100
            })
        );
        let left = tl.on_barrier_ack(100, 2).unwrap();
        assert_eq!(left.len(), 1, "b was never acked: its waiter comes back");
        assert_eq!(left[0].waiter, Some("b"));
        let _ = b;
        let lost = tl.clear();
        assert_eq!(lost.len(), 1);
        assert_eq!((lost[0].sector, lost[0].waiter), (16, Some("c")));
        assert!(tl.is_empty());
    }

    #[test]
    fn protocol_b_and_a() {
        let mut tl = TransferLog::new(Protocol::B, 10, 0);
        let a = tl.submit(0, 512, 5, 1);
        assert_eq!(tl.oldest_waiting_ms(), Some(5));
        assert_eq!(
            tl.on_ack(AckKind::Recv, a.block_id).unwrap().waiter,
            Some(1)
        );
        assert_eq!(tl.pending_acks(), 0);
        assert_eq!(tl.len(), 1, "still in the log until the barrier ack");
        let mut tl = TransferLog::new(Protocol::A, 10, 0);
        let a = tl.submit(0, 512, 0, 1);
        assert!(tl.on_ack(AckKind::Write, a.block_id).is_none());
        assert_eq!(tl.take_waiter(a.block_id), Some(1));
        assert_eq!(tl.close_epoch(), Some(0));
        assert_eq!(tl.close_epoch(), None, "empty epochs send no barrier");
        assert!(tl.on_barrier_ack(0, 1).unwrap().is_empty());
    }

    /// A write issued after an earlier write of the open epoch completed goes into a
    /// new epoch (behind a barrier), for every protocol; writes in flight together
    /// share one.
    #[test]
    fn a_completion_in_the_open_epoch_starts_a_new_one() {
        for (protocol, kind) in [
            (Protocol::A, None),
            (Protocol::B, Some(AckKind::Recv)),
            (Protocol::C, Some(AckKind::Write)),
        ] {
            let mut tl = TransferLog::new(protocol, 100, 7);
            let first = tl.submit(0, 4096, 0, 1);
            let concurrent = tl.submit(8, 4096, 0, 2);
            assert_eq!(
                concurrent.barrier_before, None,
                "{protocol:?}: in flight together"
            );
            match kind {
                Some(kind) => assert!(tl.on_ack(kind, first.block_id).is_some()),
                None => assert_eq!(tl.take_waiter(first.block_id), Some(1)),
            }
            let dependent = tl.submit(16, 4096, 0, 3);
            assert_eq!(
                dependent.barrier_before,
                Some(7),
                "{protocol:?}: a write after a completion must follow a barrier"
            );
            let next = tl.submit(24, 4096, 0, 4);
            assert_eq!(
                next.barrier_before, None,
                "{protocol:?}: one barrier is enough"
            );
            assert_eq!(tl.on_barrier_ack(7, 2).map(|d| d.len()), Ok(1));
        }
    }

    /// A completion of a write from an epoch already closed does not close the open one.
    #[test]
    fn a_completion_in_a_closed_epoch_does_not_split_the_open_one() {
        let mut tl = TransferLog::new(Protocol::C, 100, 0);
        let old = tl.submit(0, 4096, 0, 1);
        assert_eq!(tl.close_epoch(), Some(0));
        let open = tl.submit(8, 4096, 0, 2);
        assert!(tl.on_ack(AckKind::Write, old.block_id).is_some());
        let later = tl.submit(16, 4096, 0, 3);
        assert_eq!(later.barrier_before, None);
        assert!(tl.on_ack(AckKind::Write, open.block_id).is_some());
        assert_eq!(tl.submit(24, 4096, 0, 4).barrier_before, Some(1));
    }

    #[test]
    fn neg_ack_fails_the_request() {
        let mut tl = TransferLog::new(Protocol::C, 10, 0);
        let a = tl.submit(0, 512, 0, ());
        let d = tl.on_ack(AckKind::Neg, a.block_id).unwrap();
        assert!(d.failed);
        tl.close_epoch();
        let rest = tl.on_barrier_ack(0, 1).unwrap();
        assert!(
            rest[0].failed,
            "the failed block is reported again at release"
        );
        let mut e = PeerEpoch::default();
        e.on_write();
        e.on_write();
        assert_eq!(e.on_barrier(), 2);
        assert_eq!(e.on_barrier(), 0);
    }
}
