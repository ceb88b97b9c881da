//! The recycling pool behind [`crate::AlignedBuf`]: freed buffers of the common
//! sizes are kept and handed out again instead of going back to the allocator.
//!
//! Why: a fresh aligned allocation of a large buffer is an `mmap`, a page fault
//! per 4 KiB on first touch and a `munmap` when freed, and a zeroed one costs a
//! pass over the memory on top. A READ or WRITE buffer that the I/O overwrites
//! completely needs none of that ([`crate::AlignedBuf::for_overwrite`]).
//!
//! Size classes are the powers of two from [`MIN_CLASS_BYTES`] to
//! [`MAX_CLASS_BYTES`]; a pooled buffer's capacity is its class. Each class
//! keeps at most `min(256, 8 MiB / class)` buffers and the whole pool at most
//! [`TOTAL_KEEP_BYTES`], so an idle daemon holds a bounded amount of memory.
//!
//! Invariant: every pointer in a free list came from `alloc_zeroed` with the
//! layout (class, `ALIGNMENT`) and is owned by the list alone, so its bytes are
//! always initialised (zero, or data rdbd wrote into them earlier).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The smallest size class, in bytes (one page, the buffer alignment).
pub const MIN_CLASS_BYTES: usize = 4096;
/// The largest size class, in bytes; larger buffers are not pooled.
pub const MAX_CLASS_BYTES: usize = 4 << 20;
/// Most bytes kept per class.
const CLASS_KEEP_BYTES: usize = 8 << 20;
/// Most buffers kept per class.
const CLASS_KEEP_COUNT: usize = 256;
/// Most bytes kept by the whole pool.
pub const TOTAL_KEEP_BYTES: usize = 32 << 20;

const CLASSES: usize = (MAX_CLASS_BYTES / MIN_CLASS_BYTES).trailing_zeros() as usize + 1;

/// Free buffers of one class.
struct FreeList(Vec<NonNull<u8>>);

// SAFETY: the list owns the allocations its pointers name (module invariant);
// moving that ownership between threads is what Vec<Box<[u8]>> does too.
unsafe impl Send for FreeList {}

static FREE: [Mutex<FreeList>; CLASSES] = [const { Mutex::new(FreeList(Vec::new())) }; CLASSES];
static KEPT_BYTES: AtomicUsize = AtomicUsize::new(0);

fn lock(list: &Mutex<FreeList>) -> MutexGuard<'_, FreeList> {
    list.lock().unwrap_or_else(|p| p.into_inner())
}

/// The capacity a pooled buffer of `len` bytes gets; `None` above the largest class.
pub(crate) fn class_capacity(len: usize) -> Option<usize> {
    (len <= MAX_CLASS_BYTES).then(|| len.max(MIN_CLASS_BYTES).next_power_of_two())
}

fn class_index(capacity: usize) -> Option<usize> {
    let pooled =
        capacity.is_power_of_two() && (MIN_CLASS_BYTES..=MAX_CLASS_BYTES).contains(&capacity);
    pooled.then(|| (capacity / MIN_CLASS_BYTES).trailing_zeros() as usize)
}

/// A kept buffer of exactly `capacity` bytes, if the pool has one.
pub(crate) fn take(capacity: usize) -> Option<NonNull<u8>> {
    let ptr = lock(&FREE[class_index(capacity)?]).0.pop()?;
    KEPT_BYTES.fetch_sub(capacity, Ordering::Relaxed);
    Some(ptr)
}

/// Offers a freed buffer to the pool; false when it is not kept (not a class
/// size, or the class or the pool is full) and the caller must free it.
pub(crate) fn give(ptr: NonNull<u8>, capacity: usize) -> bool {
    let Some(index) = class_index(capacity) else {
        return false;
    };
    if KEPT_BYTES.load(Ordering::Relaxed) + capacity > TOTAL_KEEP_BYTES {
        return false;
    }
    let mut list = lock(&FREE[index]);
    if list.0.len() >= (CLASS_KEEP_BYTES / capacity).min(CLASS_KEEP_COUNT) {
        return false;
    }
    list.0.push(ptr);
    KEPT_BYTES.fetch_add(capacity, Ordering::Relaxed);
    true
}

/// Bytes the pool keeps now (for tests and metrics).
pub fn kept_bytes() -> usize {
    KEPT_BYTES.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_powers_of_two_between_the_limits() {
        assert_eq!(class_capacity(0), Some(4096));
        assert_eq!(class_capacity(4096), Some(4096));
        assert_eq!(class_capacity(4097), Some(8192));
        assert_eq!(class_capacity(1 << 20), Some(1 << 20));
        assert_eq!(class_capacity(MAX_CLASS_BYTES), Some(MAX_CLASS_BYTES));
        assert_eq!(class_capacity(MAX_CLASS_BYTES + 1), None);
        assert_eq!(class_index(4096), Some(0));
        assert_eq!(class_index(MAX_CLASS_BYTES), Some(CLASSES - 1));
        assert_eq!(class_index(3 * 4096), None);
        assert_eq!(class_index(2 * MAX_CLASS_BYTES), None);
    }
}
