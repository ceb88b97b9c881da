//! An owned, zero-initialised heap buffer aligned for `O_DIRECT`.
//!
//! Direct I/O needs the buffer address, the file offset and the length to be
//! multiples of the device's logical block size. [`AlignedBuf`] always aligns
//! its address to [`ALIGNMENT`] (4096, enough for every device we meet), so a
//! buffer can move from the socket to the disk and back without a copy.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

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
    /// A zeroed buffer of `len` bytes; its capacity is `len` rounded up to
    /// [`ALIGNMENT`] so that a direct read may fill a whole last block.
    pub fn zeroed(len: usize) -> Self {
        let capacity = len.div_ceil(ALIGNMENT).max(1) * ALIGNMENT;
        let layout = Layout::from_size_align(capacity, ALIGNMENT).expect("buffer size overflows");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        AlignedBuf { ptr, len, capacity }
    }

    /// A buffer holding a copy of `bytes`.
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut buf = AlignedBuf::zeroed(bytes.len());
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
    /// Bytes uncovered by growing keep their old contents (zero if never written).
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
        let layout = Layout::from_size_align(self.capacity, ALIGNMENT)
            .expect("layout was valid at allocation");
        // SAFETY: allocated in `zeroed` with exactly this layout.
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

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
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
}
