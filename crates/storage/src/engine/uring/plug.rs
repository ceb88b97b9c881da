//! Submission batching for the inline ring ("plugging", as the kernel's
//! block layer calls it).
//!
//! A caller that is about to start several requests in a row (the NBD
//! request loop, after one socket read brought many requests) runs their
//! first steps inside [`defer_submissions`]: SQEs pushed by the inline
//! engine on this thread are then left in the SQ, and the ring is only
//! remembered. [`submit_deferred`] hands every remembered ring's SQ to the
//! kernel with one `io_uring_enter` each, so N requests cost one syscall
//! and the block layer sees them as one batch (one device notification).
//!
//! Rule for callers: call [`submit_deferred`] on the same thread before the
//! task can be suspended (before any `.await` that may return `Pending`).
//! Deferred SQEs are never lost even if a caller forgets -- any later submit
//! on the ring carries them -- but they would wait for that submit.

use std::cell::RefCell;
use std::sync::Arc;

use super::inline::Shared;

#[derive(Default)]
struct Plug {
    /// Inside `defer_submissions` on this thread.
    active: bool,
    /// Rings with SQEs pushed but not yet submitted.
    pending: Vec<Arc<Shared>>,
}

thread_local! {
    static PLUG: RefCell<Plug> = RefCell::new(Plug::default());
}

/// Runs `f` with the inline io_uring engine's submissions on this thread
/// deferred until [`submit_deferred`].
pub fn defer_submissions<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PLUG.with(|p| p.borrow_mut().active = self.0);
        }
    }
    let _restore = Restore(PLUG.with(|p| std::mem::replace(&mut p.borrow_mut().active, true)));
    f()
}

/// Submits every SQE deferred on this thread (one `io_uring_enter` per ring).
pub fn submit_deferred() {
    let pending = PLUG.with(|p| std::mem::take(&mut p.borrow_mut().pending));
    for shared in &pending {
        shared.submit();
    }
    // Keep the vector's allocation for the next batch.
    PLUG.with(|p| {
        let mut p = p.borrow_mut();
        if p.pending.is_empty() {
            let mut pending = pending;
            pending.clear();
            p.pending = pending;
        }
    });
}

/// Called by the engine after pushing an SQE: true when the submission is
/// deferred (the ring is remembered), false when the caller must submit now.
pub(super) fn defer(shared: &Arc<Shared>) -> bool {
    PLUG.with(|p| {
        let mut p = p.borrow_mut();
        if !p.active {
            return false;
        }
        if !p.pending.iter().any(|s| Arc::ptr_eq(s, shared)) {
            p.pending.push(shared.clone());
        }
        true
    })
}
