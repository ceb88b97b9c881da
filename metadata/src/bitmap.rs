//! The dirty bitmap: one bit per 4 KiB of data, stored as little-endian 64-bit words
//! (bit 0 of word 0 = the first 4 KiB), written back in 4 KiB pages.
//!
//! Invariants: bits at or past [`Bitmap::bits`] are always zero in memory; `count` equals the
//! number of set bits; a page is marked dirty whenever one of its words changes.

use crate::consts::*;
use crate::error::{MetaError, Result};

/// 64-bit words per 4 KiB page.
pub const WORDS_PER_PAGE: usize = BLOCK_4K_BYTES / 8;
/// Bits per 4 KiB page.
pub const BITS_PER_PAGE: u64 = (BLOCK_4K_BYTES * 8) as u64;
/// Largest bitmap held in memory (32 GiB of bitmap = 1 PiB of data).
pub const BITMAP_MAX_BYTES: u64 = BM_MAX_BYTES_FLEX;

/// An in-memory dirty bitmap with page write-back tracking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    bits: u64,
    words: Vec<u64>,
    count: u64,
    dirty_pages: Vec<u64>,
}

fn words_for(bits: u64) -> Result<usize> {
    let pages = bits.div_ceil(BITS_PER_PAGE);
    let bytes = pages * BLOCK_4K_BYTES as u64;
    if bytes > BITMAP_MAX_BYTES {
        return Err(MetaError::BitmapTooLarge {
            bytes,
            limit_bytes: BITMAP_MAX_BYTES,
        });
    }
    Ok(pages as usize * WORDS_PER_PAGE)
}

impl Bitmap {
    /// An all-clear bitmap of `bits` bits (storage rounded up to whole pages).
    pub fn new(bits: u64) -> Result<Bitmap> {
        let n = words_for(bits)?;
        let pages = n / WORDS_PER_PAGE;
        Ok(Bitmap {
            bits,
            words: vec![0; n],
            count: 0,
            dirty_pages: vec![0; pages.div_ceil(64)],
        })
    }

    /// Decodes `bytes` (little-endian words as on disk; may be longer than needed) into a
    /// bitmap of `bits` bits. Bits past `bits` in the input are ignored.
    pub fn from_le_bytes(bits: u64, bytes: &[u8]) -> Result<Bitmap> {
        let mut bm = Bitmap::new(bits)?;
        let needed = usize::try_from(bits.div_ceil(64) * 8).unwrap_or(usize::MAX);
        if bytes.len() < needed {
            return Err(MetaError::Truncated {
                what: "bitmap",
                needed,
                got: bytes.len(),
            });
        }
        for (w, chunk) in bm.words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut a = [0u8; 8];
            a.copy_from_slice(chunk);
            *w = u64::from_le_bytes(a);
        }
        bm.mask_tail();
        bm.count = bm.words.iter().map(|w| u64::from(w.count_ones())).sum();
        Ok(bm)
    }

    fn mask_tail(&mut self) {
        let full = (self.bits / 64) as usize;
        let rem = self.bits % 64;
        if rem != 0 {
            self.words[full] &= (1u64 << rem) - 1;
        }
        let start = full + usize::from(rem != 0);
        self.words[start..].fill(0);
    }

    /// Number of tracked bits.
    pub fn bits(&self) -> u64 {
        self.bits
    }

    /// Number of 4 KiB pages.
    pub fn pages(&self) -> u32 {
        (self.words.len() / WORDS_PER_PAGE) as u32
    }

    /// The words (little-endian meaning: bit `i` is `words[i/64] >> (i%64) & 1`).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Set bits.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether `bit` is set (false past the end).
    pub fn test(&self, bit: u64) -> bool {
        bit < self.bits && self.words[(bit / 64) as usize] >> (bit % 64) & 1 == 1
    }

    fn mark_word_dirty(&mut self, word: usize) {
        let page = word / WORDS_PER_PAGE;
        self.dirty_pages[page / 64] |= 1 << (page % 64);
    }

    /// Sets or clears bits `[first, end)`; returns how many bits changed.
    fn update_range(&mut self, first: u64, end: u64, set: bool) -> Result<u64> {
        if end > self.bits || first > end {
            return Err(MetaError::BitmapRange {
                bit: end.max(first),
                bits: self.bits,
            });
        }
        let mut changed = 0u64;
        let mut bit = first;
        while bit < end {
            let w = (bit / 64) as usize;
            let lo = bit % 64;
            let hi = (end - (w as u64) * 64).min(64);
            let mask = if hi - lo == 64 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            let old = self.words[w];
            let new = if set { old | mask } else { old & !mask };
            if new != old {
                let diff = u64::from((old ^ new).count_ones());
                changed += diff;
                self.words[w] = new;
                self.mark_word_dirty(w);
            }
            bit = (w as u64 + 1) * 64;
        }
        if set {
            self.count += changed;
        } else {
            self.count -= changed;
        }
        Ok(changed)
    }

    /// Sets bits `[first, end)`; returns how many were newly set.
    pub fn set_range(&mut self, first: u64, end: u64) -> Result<u64> {
        self.update_range(first, end, true)
    }

    /// Clears bits `[first, end)`; returns how many were cleared.
    pub fn clear_range(&mut self, first: u64, end: u64) -> Result<u64> {
        self.update_range(first, end, false)
    }

    /// Sets one bit; returns whether it was newly set.
    pub fn set(&mut self, bit: u64) -> Result<bool> {
        Ok(self.set_range(bit, bit + 1)? == 1)
    }

    /// Clears one bit; returns whether it was set.
    pub fn clear(&mut self, bit: u64) -> Result<bool> {
        Ok(self.clear_range(bit, bit + 1)? == 1)
    }

    /// Marks every 4 KiB block touched by a write out of sync (rounds outward, like
    /// `drbd_set_out_of_sync`). Returns newly set bits.
    pub fn set_out_of_sync_sectors(&mut self, first_sector: u64, sectors: u64) -> Result<u64> {
        if sectors == 0 {
            return Ok(0);
        }
        let end_sector = first_sector
            .checked_add(sectors)
            .ok_or(MetaError::BadRange {
                first_sector,
                sectors,
            })?;
        let first = first_sector / BM_SECT_PER_BIT;
        let end = end_sector.div_ceil(BM_SECT_PER_BIT).min(self.bits);
        self.set_range(first.min(end), end)
    }

    /// Marks only fully covered 4 KiB blocks in sync (rounds inward, like `drbd_set_in_sync`).
    /// Returns cleared bits.
    pub fn set_in_sync_sectors(&mut self, first_sector: u64, sectors: u64) -> Result<u64> {
        let end_sector = first_sector
            .checked_add(sectors)
            .ok_or(MetaError::BadRange {
                first_sector,
                sectors,
            })?;
        let first = first_sector.div_ceil(BM_SECT_PER_BIT);
        let end = (end_sector / BM_SECT_PER_BIT).min(self.bits);
        if first >= end {
            return Ok(0);
        }
        self.clear_range(first, end)
    }

    /// Sets all bits of AL extent `extent` that lie inside the bitmap (apply-al); returns
    /// newly set bits, or `None` if the extent starts past the end.
    pub fn set_al_extent(&mut self, extent: u32) -> Option<u64> {
        let first = u64::from(extent) * BM_BITS_PER_AL_EXTENT;
        if first >= self.bits {
            return None;
        }
        let end = (first + BM_BITS_PER_AL_EXTENT).min(self.bits);
        self.set_range(first, end).ok()
    }

    fn scan(&self, from: u64, want_set: bool) -> Option<u64> {
        if from >= self.bits {
            return None;
        }
        let mut w = (from / 64) as usize;
        let flip = if want_set { 0 } else { u64::MAX };
        let mut word = (self.words[w] ^ flip) & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                let bit = w as u64 * 64 + u64::from(word.trailing_zeros());
                return (bit < self.bits).then_some(bit);
            }
            w += 1;
            if w as u64 * 64 >= self.bits {
                return None;
            }
            word = self.words[w] ^ flip;
        }
    }

    /// First set bit at or after `from`.
    pub fn next_set(&self, from: u64) -> Option<u64> {
        self.scan(from, true)
    }

    /// First clear bit at or after `from` (`None` if all set to the end).
    pub fn next_clear(&self, from: u64) -> Option<u64> {
        self.scan(from, false)
    }

    /// Runs of set bits as `(first_bit, length)`, ascending.
    pub fn runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut pos = 0u64;
        std::iter::from_fn(move || {
            let start = self.next_set(pos)?;
            let end = self.next_clear(start).unwrap_or(self.bits);
            pos = end;
            Some((start, end - start))
        })
    }

    /// Pages changed since the last [`Bitmap::take_dirty_pages`], ascending.
    pub fn dirty_pages(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for (i, &w) in self.dirty_pages.iter().enumerate() {
            let mut w = w;
            while w != 0 {
                out.push((i * 64) as u32 + w.trailing_zeros());
                w &= w - 1;
            }
        }
        out
    }

    /// If `page` is dirty, marks it clean and returns its image (to write it back).
    pub fn take_dirty_page(&mut self, page: u32) -> Option<[u8; BLOCK_4K_BYTES]> {
        let (word, bit) = ((page / 64) as usize, page % 64);
        let mask = 1u64 << bit;
        if self.dirty_pages.get(word).is_none_or(|w| w & mask == 0) {
            return None;
        }
        self.dirty_pages[word] &= !mask;
        self.page_bytes(page)
    }

    /// Returns the dirty pages and marks them clean (call after writing them).
    pub fn take_dirty_pages(&mut self) -> Vec<u32> {
        let pages = self.dirty_pages();
        self.dirty_pages.fill(0);
        pages
    }

    /// Marks every page dirty (e.g. to write the whole bitmap).
    pub fn mark_all_dirty(&mut self) {
        for p in 0..self.pages() as usize {
            self.dirty_pages[p / 64] |= 1 << (p % 64);
        }
    }

    /// Page holding the bits of AL extent `extent` (32 extents per page).
    pub fn page_of_al_extent(extent: u32) -> u32 {
        ((u64::from(extent) * BM_BITS_PER_AL_EXTENT) / BITS_PER_PAGE) as u32
    }

    /// The on-disk bytes of page `page`; `None` past the end.
    pub fn page_bytes(&self, page: u32) -> Option<[u8; BLOCK_4K_BYTES]> {
        let start = (page as usize).checked_mul(WORDS_PER_PAGE)?;
        let words = self.words.get(start..start + WORDS_PER_PAGE)?;
        let mut out = [0u8; BLOCK_4K_BYTES];
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        Some(out)
    }

    /// All pages as on-disk bytes.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_disk_order_is_little_endian_words() {
        let mut bm = Bitmap::new(100).unwrap();
        bm.set_range(0, 8).unwrap();
        let b = bm.to_le_bytes();
        assert_eq!(
            &b[..8],
            &[0xff, 0, 0, 0, 0, 0, 0, 0],
            "bitmap byte order changed"
        );
        assert_eq!(b.len(), 4096);
        let back = Bitmap::from_le_bytes(100, &b).unwrap();
        assert_eq!(back.count(), 8);
    }

    #[test]
    fn ranges_counts_and_runs() {
        let mut bm = Bitmap::new(70_000).unwrap();
        assert_eq!(bm.set_range(10, 200).unwrap(), 190);
        assert_eq!(bm.set_range(100, 300).unwrap(), 100);
        assert_eq!(bm.clear_range(150, 160).unwrap(), 10);
        bm.set(69_999).unwrap();
        assert_eq!(bm.count(), 290 - 10 + 1);
        let runs: Vec<_> = bm.runs().collect();
        assert_eq!(runs, vec![(10, 140), (160, 140), (69_999, 1)]);
        assert_eq!(bm.dirty_pages(), vec![0, 2]);
        assert_eq!(bm.take_dirty_pages(), vec![0, 2]);
        assert!(bm.dirty_pages().is_empty());
        assert!(bm.set_range(0, 70_001).is_err());
        assert!(!bm.test(70_000));
    }

    #[test]
    fn sector_rounding() {
        let mut bm = Bitmap::new(100).unwrap();
        assert_eq!(bm.set_out_of_sync_sectors(7, 2).unwrap(), 2);
        assert_eq!(
            bm.set_in_sync_sectors(4, 12).unwrap(),
            1,
            "only block 1 is fully covered"
        );
        assert!(bm.test(0) && !bm.test(1));
        assert!(bm.set_out_of_sync_sectors(u64::MAX, 2).is_err());
    }

    #[test]
    fn al_extent_is_1024_bits_clamped() {
        let mut bm = Bitmap::new(1500).unwrap();
        assert_eq!(bm.set_al_extent(1), Some(1500 - 1024));
        assert_eq!(bm.set_al_extent(2), None);
        assert_eq!(Bitmap::page_of_al_extent(31), 0);
        assert_eq!(Bitmap::page_of_al_extent(32), 1);
    }

    #[test]
    fn decoding_is_bounded() {
        assert!(Bitmap::from_le_bytes(1000, &[0u8; 64]).is_err());
        assert!(Bitmap::new(u64::MAX).is_err());
        let bm = Bitmap::from_le_bytes(3, &[0xff; 8]).unwrap();
        assert_eq!(bm.count(), 3, "bits past the end are ignored");
    }
}
