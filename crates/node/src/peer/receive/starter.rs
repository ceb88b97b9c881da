//! Starting the secondary's disk writes in batches.
//!
//! The session hands each received write to [`Starter::start`] as a future. One task takes
//! every write queued so far and polls each once right there, with the inline ring's
//! submissions deferred ([`rdbd_storage::defer_submissions`]): the `P_DATA` that one socket
//! read brought reach the kernel in one `io_uring_enter`, as the NBD server does for its
//! requests. A write that did not finish in that poll continues as a task of its own (its
//! wakers name the starter until that task's first poll re-registers them, as every future
//! updates a changed waker).
//!
//! Writes start in the order they were queued; each one's ordering against earlier writes
//! (overlaps, epochs) is decided before it is queued (see [`super::Receiver`]).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use tokio::sync::mpsc;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The most writes one batch starts before the queue is looked at again.
const BATCH_MAX: usize = 256;

/// The queue of writes to start. The task ends once the starter is dropped and every
/// queued write was started.
pub(super) struct Starter {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Starter {
    /// A starter with its task.
    pub(super) fn spawn() -> Starter {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx));
        Starter { jobs }
    }

    /// Queues `write` to be started with the others queued now.
    pub(super) fn start(&self, write: impl Future<Output = ()> + Send + 'static) {
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(Box::pin(write)) {
            // The starter task only ends after this sender is gone; never reached.
            tokio::spawn(job);
        }
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, BATCH_MAX).await > 0 {
        poll_fn(|cx| {
            rdbd_storage::defer_submissions(|| {
                for mut job in batch.drain(..) {
                    if job.as_mut().poll(cx).is_pending() {
                        tokio::spawn(job);
                    }
                }
            });
            // Before this task can be suspended, on the thread that deferred.
            rdbd_storage::submit_deferred();
            Poll::Ready(())
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn writes_start_in_queue_order_and_pending_ones_finish() {
        let starter = Starter::spawn();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let l = Arc::clone(&log);
        let d = done_tx.clone();
        starter.start(async move {
            l.lock().unwrap().push("first starts");
            let _ = rx.await;
            l.lock().unwrap().push("first done");
            let _ = d.send(());
        });
        for name in ["second", "third"] {
            let l = Arc::clone(&log);
            let d = done_tx.clone();
            starter.start(async move {
                l.lock().unwrap().push(name);
                let _ = d.send(());
            });
        }
        for _ in 0..2 {
            done_rx.recv().await.unwrap();
        }
        tx.send(()).unwrap();
        done_rx.recv().await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            ["first starts", "second", "third", "first done"],
            "started in order; the pending write finished in its own task"
        );
    }
}
