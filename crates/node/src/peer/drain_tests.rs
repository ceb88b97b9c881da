//! The transfer-log facts `PeerLink::drain_transfer_log` (the wait of `secondary`) relies
//! on: protocol A completes writes long before their epoch is barrier-acked; waiting for
//! the ack of the newest barrier empties the log; a connection lost before that hands
//! every write of an unacknowledged epoch back to be set out of sync.

use rdbd_replicator::transfer_log::TransferLog;
use rdbd_types::Protocol;

/// Three protocol-A writes in two epochs, all "on the socket" (waiters taken).
fn sent_writes() -> (TransferLog<()>, u32) {
    let mut tl = TransferLog::new(Protocol::A, 2, 7);
    let mut first_barrier = None;
    let mut ids = Vec::new();
    for i in 0..3u64 {
        let s = tl.submit(i * 8, 4096, 0, ());
        first_barrier = first_barrier.or(s.barrier_before);
        ids.push(s.block_id);
    }
    for id in ids {
        assert!(tl.take_waiter(id).is_some(), "completed when sent");
    }
    assert_eq!(first_barrier, Some(7), "the full first epoch was closed");
    assert_eq!(tl.pending_acks(), 0, "protocol A: nothing waits for an ack");
    assert_eq!(
        tl.len(),
        3,
        "but every write stays in the log until its barrier ack"
    );
    (tl, 7)
}

#[test]
fn the_newest_barrier_ack_empties_the_log() {
    let (mut tl, first) = sent_writes();
    // What drain_transfer_log sends: the open epoch's barrier.
    let last = tl.close_epoch().expect("the open epoch has a write");
    assert_eq!(last, first.wrapping_add(1));
    assert_eq!(tl.last_closed_epoch(), Some(last));
    tl.on_barrier_ack(first, 2).unwrap();
    assert!(!tl.is_empty(), "the newest epoch is still unacknowledged");
    tl.on_barrier_ack(last, 1).unwrap();
    assert!(
        tl.is_empty(),
        "acked up to the newest barrier: nothing left to lose"
    );
    assert_eq!(tl.close_epoch(), None, "no barrier for an empty epoch");
}

#[test]
fn a_connection_lost_before_the_barrier_acks_returns_every_unacked_write() {
    let (mut tl, first) = sent_writes();
    tl.close_epoch();
    tl.on_barrier_ack(first, 2).unwrap();
    let lost = tl.clear();
    assert_eq!(
        lost.iter().map(|d| d.sector).collect::<Vec<_>>(),
        [16],
        "only the write of the unacknowledged epoch goes out of sync"
    );
}
