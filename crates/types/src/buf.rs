//! An owned heap buffer aligned for `O_DIRECT`, and its shared read-only form.
//!
//! Direct I/O needs the buffer address, the file offset and the length to be
//! multiples of the device's logical block size. [`AlignedBuf`] always aligns
//! its address to [`ALIGNMENT`] (4096, enough for every device we meet), so a
//! buffer can move from the socket to the disk and back without a copy.
//!
//! Buffers up to [`crate::pool::MAX_CLASS_BYTES`] are recycled through
//! [`crate::pool`] when dropped. [`AlignedBuf::zeroed`] always hands out zeroes;
//! [`AlignedBuf::for_overwrite`] skips the zeroing for a buffer that the caller
//! fills completely (a disk read that fails unless it transfers every byte, a
//! socket `read_exact`) before anyone reads it. Its bytes are never
//! uninitialised memory: they are zeroes or data of an earlier buffer.
//! [`SharedBuf`] lets a local disk write and the replication send use the same
//! memory.

use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::Arc;

use crate::pool;

/// The address alignment of every [`AlignedBuf`], in bytes.
pub const ALIGNMENT: usize = 4096;

/// A heap buffer whose address is a multiple of [`ALIGNMENT`].
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only allow reads of the owned bytes.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes (the whole capacity is zero); its
    /// capacity is at least `len` rounded up to [`ALIGNMENT`] so that a direct
    /// read may fill a whole last block.
    pub fn zeroed(len: usize) -> Self {
        match AlignedBuf::recycled(len) {
            Some(mut buf) => {
                buf.as_mut_capacity_slice().fill(0);
                buf
            }
            None => AlignedBuf::fresh(len),
        }
    }

    /// A buffer of `len` bytes whose contents are unspecified: zeroes, or the
    /// bytes of an earlier (recycled) buffer, never uninitialised memory. For
    /// buffers the caller overwrites completely before exposing them; a read
    /// that may stop short must not use it (or must fail when it does).
    pub fn for_overwrite(len: usize) -> Self {
        AlignedBuf::recycled(len).unwrap_or_else(|| AlignedBuf::fresh(len))
    }

    /// A buffer from the pool, when its class has one.
    fn recycled(len: usize) -> Option<Self> {
        let capacity = pool::class_capacity(len)?;
        let ptr = pool::take(capacity)?;
        Some(AlignedBuf { ptr, len, capacity })
    }

    /// A newly allocated zeroed buffer: a pool class size when `len` has one.
    fn fresh(len: usize) -> Self {
        let capacity =
            pool::class_capacity(len).unwrap_or_else(|| len.div_ceil(ALIGNMENT).max(1) * ALIGNMENT);
        let layout = Layout::from_size_align(capacity, ALIGNMENT).expect("buffer size overflows");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        AlignedBuf { ptr, len, capacity }
    }

    /// A buffer holding a copy of `bytes`.
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut buf = AlignedBuf::for_overwrite(bytes.len());
        buf.as_mut_slice().copy_from_slice(bytes);
        buf
    }

    /// The number of valid bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The allocated size, a multiple of [`ALIGNMENT`] and at least `len`.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the number of valid bytes; growing beyond the capacity panics.
    /// Bytes uncovered by growing keep their old contents (zero in a buffer
    /// from [`AlignedBuf::zeroed`] that was never written there).
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity, "AlignedBuf::set_len beyond capacity");
        self.len = len;
    }

    /// The valid bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for `capacity` initialised bytes and len <= capacity.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The valid bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice, and &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The whole allocation, for I/O that rounds up to the block size.
    pub fn as_mut_capacity_slice(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for `capacity` initialised bytes; exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.capacity) }
    }

    /// Raw pointer for I/O submission; valid while `self` lives and is not moved out of.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Raw pointer for I/O submission (reads from the buffer).
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if pool::give(self.ptr, self.capacity) {
            return;
        }
        let layout = Layout::from_size_align(self.capacity, ALIGNMENT)
            .expect("layout was valid at allocation");
        // SAFETY: allocated in `fresh` with exactly this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

/// An [`AlignedBuf`] frozen and shared read-only, so that several users (the
/// local disk write and the replication send of one request) read the same
/// memory. It goes back to the pool when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SharedBuf(Arc<AlignedBuf>);

impl SharedBuf {
    /// The valid bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// Raw pointer for I/O submission (reads from the buffer); valid while a clone lives.
    pub fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    /// The owned buffer back, when this is the last clone.
    pub fn try_unwrap(self) -> Result<AlignedBuf, SharedBuf> {
        Arc::try_unwrap(self.0).map_err(SharedBuf)
    }
}

impl From<AlignedBuf> for SharedBuf {
    fn from(buf: AlignedBuf) -> Self {
        SharedBuf(Arc::new(buf))
    }
}

impl std::ops::Deref for SharedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for SharedBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_is_aligned_and_contents_are_kept() {
        for len in [0usize, 1, 511, 4096, 4097, 1 << 20] {
            let mut b = AlignedBuf::zeroed(len);
            assert_eq!(b.as_ptr() as usize % ALIGNMENT, 0);
            assert_eq!(b.len(), len);
            assert!(b.capacity() >= len && b.capacity() % ALIGNMENT == 0);
            assert!(b.iter().all(|&x| x == 0));
            b.iter_mut().enumerate().for_each(|(i, x)| *x = i as u8);
            assert!(b.iter().enumerate().all(|(i, &x)| x == i as u8));
        }
        let c = AlignedBuf::from_slice(b"hello");
        assert_eq!(&*c, b"hello");
    }

    #[test]
    fn recycled_buffers_are_zeroed_on_request_and_keep_their_alignment() {
        // A dirty buffer goes back to the pool; the next zeroed() of its class
        // (possibly that very buffer) must be all zeroes, capacity included.
        for len in [4096usize, 65536, 1 << 20] {
            let mut dirty = AlignedBuf::for_overwrite(len);
            dirty.as_mut_capacity_slice().fill(0xa5);
            drop(dirty);
            let mut z = AlignedBuf::zeroed(len);
            assert_eq!(z.as_ptr() as usize % ALIGNMENT, 0);
            assert!(z.as_mut_capacity_slice().iter().all(|&x| x == 0));
            let o = AlignedBuf::for_overwrite(len);
            assert_eq!((o.len(), o.as_ptr() as usize % ALIGNMENT), (len, 0));
        }
    }

    #[test]
    fn the_pool_keeps_a_bounded_amount_of_memory() {
        let many: Vec<AlignedBuf> = (0..64).map(|_| AlignedBuf::zeroed(4 << 20)).collect();
        drop(many);
        assert!(crate::pool::kept_bytes() <= crate::pool::TOTAL_KEEP_BYTES);
        let huge = AlignedBuf::zeroed((8 << 20) + 1);
        assert_eq!(
            huge.capacity(),
            (8 << 20) + 4096,
            "large buffers are not rounded to a class"
        );
    }

    #[test]
    fn shared_buffers_read_the_same_memory_and_unwrap_when_last() {
        let shared = SharedBuf::from(AlignedBuf::from_slice(&[7u8; 8192]));
        let other = shared.clone();
        assert_eq!(shared.as_ptr(), other.as_ptr());
        assert_eq!(&other[..], &[7u8; 8192][..]);
        let shared = shared.try_unwrap().unwrap_err();
        drop(other);
        assert_eq!(shared.try_unwrap().unwrap().len(), 8192);
    }
}
