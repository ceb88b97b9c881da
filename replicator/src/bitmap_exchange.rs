//! The bitmap exchange before a resync (D84 drbd_main.c `send_bitmap_rle_or_plain`,
//! drbd_receiver.c `receive_bitmap`): the SyncSource sends its bitmap in WFBitMapS, the
//! SyncTarget ORs it into its own and sends its bitmap back.
//!
//! Sending uses `P_COMPRESSED_BITMAP` where run-length coding pays off and plain
//! `P_BITMAP` words otherwise, each packet filling at most one 4 KiB socket buffer with
//! the h100 header, exactly as the kernel expects (its receiver demands
//! `min(510, words left)` words per plain packet). Receiving accepts both, bounded by the
//! bitmap's size.

use rdbd_wire::{CompressedBitmap, Packet, PlainBitmap, WireError, DRBD_SOCKET_BUFFER_SIZE};

/// Header bytes of an h100 frame.
const H100_BYTES: usize = 16;
/// Plain bitmap words per packet with the h100 header.
pub const WORDS_PER_PACKET: usize = (DRBD_SOCKET_BUFFER_SIZE - H100_BYTES) / 8;
/// Code bytes per compressed packet (one encoding byte after the header).
const CODE_BYTES_PER_PACKET: usize = DRBD_SOCKET_BUFFER_SIZE - H100_BYTES - 1;

/// The bitmap did not arrive as expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitmapError {
    /// More words than the bitmap has.
    #[error(
        "P_BITMAP overflows the bitmap: {got} words at word {offset}, the bitmap has {total} words"
    )]
    Overflow {
        /// Words in the packet.
        got: usize,
        /// Where they would go.
        offset: usize,
        /// The bitmap's words.
        total: usize,
    },
    /// A compressed packet that does not decode.
    #[error("P_COMPRESSED_BITMAP: {0}")]
    Compressed(#[from] WireError),
}

/// The packets that carry `words` (a bitmap of `total_bits` bits).
pub fn bitmap_packets(
    words: &[u64],
    total_bits: u64,
    use_rle: bool,
) -> Result<Vec<Packet>, WireError> {
    let mut out = Vec::new();
    let mut bit = 0u64;
    let total_bits = total_bits.min(words.len() as u64 * 64);
    while bit < total_bits {
        if use_rle {
            if let Some((packet, next)) =
                CompressedBitmap::from_bitmap(words, total_bits, bit, CODE_BYTES_PER_PACKET)?
            {
                out.push(Packet::CompressedBitmap(packet));
                bit = next;
                continue;
            }
        }
        // Plain words from the word containing `bit`; the kernel's plain packets are word aligned.
        let first_word = (bit / 64) as usize;
        let end = (first_word + WORDS_PER_PACKET).min(words.len());
        out.push(Packet::Bitmap(PlainBitmap {
            words: words[first_word..end].to_vec(),
        }));
        bit = end as u64 * 64;
    }
    if out.is_empty() {
        // A zero-sized bitmap still takes one (empty) packet so the peer moves on.
        out.push(Packet::Bitmap(PlainBitmap { words: Vec::new() }));
    }
    Ok(out)
}

/// Collects a peer's bitmap, ORed into a copy of the bits.
#[derive(Debug)]
pub struct BitmapReceiver {
    words: Vec<u64>,
    total_bits: u64,
    next_bit: u64,
}

impl BitmapReceiver {
    /// Receives a bitmap of `total_bits` bits.
    pub fn new(total_bits: u64) -> Self {
        BitmapReceiver {
            words: vec![0; total_bits.div_ceil(64) as usize],
            total_bits,
            next_bit: 0,
        }
    }

    /// Feeds one packet; returns true once the whole bitmap arrived.
    pub fn on_packet(&mut self, packet: &Packet) -> Result<bool, BitmapError> {
        match packet {
            Packet::Bitmap(p) => {
                let offset = (self.next_bit / 64) as usize;
                let end = offset
                    .checked_add(p.words.len())
                    .filter(|e| *e <= self.words.len())
                    .ok_or(BitmapError::Overflow {
                        got: p.words.len(),
                        offset,
                        total: self.words.len(),
                    })?;
                for (dst, src) in self.words[offset..end].iter_mut().zip(&p.words) {
                    *dst |= *src;
                }
                self.next_bit = end as u64 * 64;
            }
            Packet::CompressedBitmap(c) => {
                self.next_bit = c.apply(&mut self.words, self.total_bits, self.next_bit)?;
            }
            _ => return Ok(false),
        }
        // Bits past the end of the device are not data.
        if let Some(last) = self.words.last_mut() {
            let tail = self.total_bits % 64;
            if tail != 0 {
                *last &= (1u64 << tail) - 1;
            }
        }
        Ok(self.next_bit >= self.total_bits)
    }

    /// The received bits.
    pub fn into_words(self) -> Vec<u64> {
        self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(words: &[u64], bits: u64, rle: bool) -> Vec<u64> {
        let packets = bitmap_packets(words, bits, rle).unwrap();
        let mut rx = BitmapReceiver::new(bits);
        let mut done = false;
        for p in &packets {
            assert!(!done, "bitmap complete before the last packet");
            done = rx.on_packet(p).unwrap();
        }
        assert!(done || bits == 0);
        rx.into_words()
    }

    #[test]
    fn plain_and_compressed_round_trip() {
        let bits = 2000 * 64 + 17;
        let mut words = vec![0u64; 2001];
        for (i, w) in words.iter_mut().enumerate() {
            *w = if i % 7 == 0 {
                u64::MAX
            } else {
                (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            };
        }
        words[2000] &= (1 << 17) - 1;
        assert_eq!(round_trip(&words, bits, false), words);
        assert_eq!(round_trip(&words, bits, true), words);
        let sparse = {
            let mut w = vec![0u64; 2001];
            w[5] = 1 << 3;
            w[1999] = u64::MAX;
            w
        };
        let packets = bitmap_packets(&sparse, bits, true).unwrap();
        assert_eq!(
            packets.len(),
            1,
            "a sparse bitmap compresses into one packet"
        );
        assert_eq!(round_trip(&sparse, bits, true), sparse);
        let plain = bitmap_packets(&words, bits, false).unwrap();
        assert_eq!(plain.len(), 2001usize.div_ceil(WORDS_PER_PACKET));
        assert!(matches!(&plain[0], Packet::Bitmap(p) if p.words.len() == 510));
    }

    #[test]
    fn overflow_is_refused() {
        let mut rx = BitmapReceiver::new(64);
        let err = rx
            .on_packet(&Packet::Bitmap(PlainBitmap { words: vec![1, 2] }))
            .unwrap_err();
        assert_eq!(
            err,
            BitmapError::Overflow {
                got: 2,
                offset: 0,
                total: 1
            }
        );
    }
}
