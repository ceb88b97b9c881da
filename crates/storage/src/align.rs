//! Pure alignment arithmetic for `O_DIRECT` requests (no I/O).
//!
//! A request `[offset, offset + len)` is *aligned* when both ends are
//! multiples of the direct-I/O alignment; otherwise it is widened to the
//! enclosing aligned span and served through a bounce buffer.

/// The aligned span enclosing an unaligned request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Widened {
    /// First byte of the widened span (aligned down).
    pub start: u64,
    /// Length of the widened span (a multiple of the alignment).
    pub len: u64,
    /// Where the request begins inside the span.
    pub skip: u64,
    /// Whether the first block is only partly covered by the request.
    pub partial_head: bool,
    /// Whether the last block is only partly covered by the request.
    pub partial_tail: bool,
}

/// True when no bounce buffer is needed. `align` is a power of two; 1 means
/// buffered I/O where anything goes.
pub(crate) fn is_aligned(offset: u64, len: u64, align: u32) -> bool {
    let mask = u64::from(align) - 1;
    offset & mask == 0 && len & mask == 0
}

/// The aligned span around `[offset, offset + len)`; `None` on overflow.
/// `align` must be a power of two and `len` non-zero.
pub(crate) fn widen(offset: u64, len: u64, align: u32) -> Option<Widened> {
    assert!(
        align.is_power_of_two() && len > 0,
        "widen: bad alignment {align} or empty request"
    );
    let align = u64::from(align);
    let end = offset.checked_add(len)?;
    let start = offset & !(align - 1);
    let end_up = end.checked_add(align - 1)? & !(align - 1);
    Some(Widened {
        start,
        len: end_up - start,
        skip: offset - start,
        partial_head: offset != start,
        partial_tail: end != end_up,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert!(is_aligned(4096, 512, 512));
        assert!(!is_aligned(4096, 100, 512));
        assert!(is_aligned(3, 5, 1));
        let w = widen(1000, 100, 512).unwrap();
        assert_eq!(
            w,
            Widened {
                start: 512,
                len: 1024,
                skip: 488,
                partial_head: true,
                partial_tail: true
            }
        );
        let w = widen(512, 100, 512).unwrap();
        assert_eq!(
            (w.start, w.len, w.partial_head, w.partial_tail),
            (512, 512, false, true)
        );
        assert!(widen(u64::MAX - 10, 5, 512).is_none());
    }

    proptest! {
        #[test]
        fn widened_span_encloses_request_minimally(offset in 0u64..1 << 40, len in 1u64..1 << 24, shift in 9u32..13) {
            let align = 1u32 << shift;
            let w = widen(offset, len, align).unwrap();
            let a = u64::from(align);
            prop_assert_eq!(w.start % a, 0);
            prop_assert_eq!(w.len % a, 0);
            prop_assert!(w.start <= offset && offset + len <= w.start + w.len);
            prop_assert!(offset - w.start < a && w.start + w.len - (offset + len) < a);
            prop_assert_eq!(w.skip, offset - w.start);
            prop_assert_eq!(w.partial_head || w.partial_tail, !is_aligned(offset, len, align));
        }
    }
}
