//! The bitmap exchange (WFBitMapS / WFBitMapT) as DRBD 8.4 does it, without I/O.
//!
//! The bitmap is a `&[u64]` of little-endian-numbered words: bit `i` (the `i`-th 4 KiB block) is
//! bit `i % 64` of word `i / 64`; `bm_bits` is the number of valid bits (bits past it are
//! ignored when sending and never set when receiving).
//!
//! Sender ([`BitmapSender`], an iterator of [`BitmapPacket`]s; drbd_main.c
//! `send_bitmap_rle_or_plain` / `fill_bitmap_rle_bits`): for each packet it first tries to code
//! the bits from the current offset as RLE+VLI into one socket buffer (4096 bytes minus the
//! header minus the encoding byte). If that covers at least as many bits as it has code bits
//! it sends P_COMPRESSED_BITMAP and continues at the bit where the code ended. Otherwise (or
//! when RLE is off: `use-rle no` or protocol < 90) it goes back to the start of the 64-bit word
//! holding the offset and sends a P_BITMAP of up to (4096 - header) / 8 words. The transfer ends
//! after a compressed packet that reaches `bm_bits`, or else with an empty P_BITMAP.
//!
//! Receiver ([`BitmapReceiver`]; drbd_receiver.c `receive_bitmap`): ORs each packet into the
//! bitmap at the running offset and reports [`Progress::Complete`] after the last one. A plain
//! packet must have exactly `min(words per packet, words left)` words, as the kernel demands.
//!
//! [`XferStats::log_line`] is the `INFO_bm_xfer_stats` line ("send bitmap stats
//! [Bytes(packets)]: plain ..., RLE ..., total ...; compression: ...%"), `None` when the
//! transfer was not smaller than plain.

use rdbd_wire::{CompressedBitmap, Packet, PlainBitmap, WireError, DRBD_SOCKET_BUFFER_SIZE};

/// Header size for protocol >= 100 (`p_header100`); rdbd and DRBD 8.4 agree on 101.
pub const HEADER_BYTES_H100: usize = 16;
/// Header size below protocol 100 (`p_header80` / `p_header95`).
pub const HEADER_BYTES_H80: usize = 8;

/// How the transfer is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XferParams {
    /// The packet header size ([`HEADER_BYTES_H100`] for protocol >= 100).
    pub header_bytes: usize,
    /// RLE allowed: net option `use-rle` (default yes) and agreed protocol >= 90.
    pub use_rle: bool,
}

impl Default for XferParams {
    fn default() -> Self {
        XferParams {
            header_bytes: HEADER_BYTES_H100,
            use_rle: true,
        }
    }
}

impl XferParams {
    /// The parameters for an agreed protocol version and the `use-rle` option.
    pub fn for_protocol(agreed_pro_version: u32, use_rle: bool) -> XferParams {
        XferParams {
            header_bytes: if agreed_pro_version >= 100 {
                HEADER_BYTES_H100
            } else {
                HEADER_BYTES_H80
            },
            use_rle: use_rle && agreed_pro_version >= 90,
        }
    }

    /// Words in a full P_BITMAP.
    pub fn plain_words_per_packet(&self) -> usize {
        DRBD_SOCKET_BUFFER_SIZE.saturating_sub(self.header_bytes) / 8
    }

    /// Code bytes in a P_COMPRESSED_BITMAP (after the encoding byte).
    pub fn code_bytes_per_packet(&self) -> usize {
        DRBD_SOCKET_BUFFER_SIZE.saturating_sub(self.header_bytes + 1)
    }
}

/// One packet of the transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitmapPacket {
    /// P_BITMAP.
    Plain(PlainBitmap),
    /// P_COMPRESSED_BITMAP.
    Compressed(CompressedBitmap),
}

impl BitmapPacket {
    /// As a wire packet.
    pub fn into_packet(self) -> Packet {
        match self {
            BitmapPacket::Plain(p) => Packet::Bitmap(p),
            BitmapPacket::Compressed(c) => Packet::CompressedBitmap(c),
        }
    }

    /// The payload size in bytes (without the header).
    pub fn payload_bytes(&self) -> usize {
        match self {
            BitmapPacket::Plain(p) => p.words.len() * 8,
            BitmapPacket::Compressed(c) => 1 + c.code.len(),
        }
    }
}

/// Byte and packet counts of a transfer, as DRBD keeps them (`bm_xfer_ctx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XferStats {
    /// P_BITMAP packets.
    pub plain_packets: u64,
    /// P_BITMAP bytes, headers included.
    pub plain_bytes: u64,
    /// P_COMPRESSED_BITMAP packets.
    pub rle_packets: u64,
    /// P_COMPRESSED_BITMAP bytes, headers included.
    pub rle_bytes: u64,
}

impl XferStats {
    fn count(&mut self, p: &BitmapPacket, header_bytes: usize) {
        let bytes = (header_bytes + p.payload_bytes()) as u64;
        match p {
            BitmapPacket::Plain(_) => {
                self.plain_packets += 1;
                self.plain_bytes += bytes;
            }
            BitmapPacket::Compressed(_) => {
                self.rle_packets += 1;
                self.rle_bytes += bytes;
            }
        }
    }

    /// `INFO_bm_xfer_stats` for `direction` ("send" / "receive"); `None` when DRBD prints
    /// nothing (the transfer was not smaller than a plain one).
    pub fn log_line(&self, direction: &str, bm_words: u64, params: &XferParams) -> Option<String> {
        let header = params.header_bytes as u64;
        let data_size = (DRBD_SOCKET_BUFFER_SIZE as u64)
            .saturating_sub(header)
            .max(1);
        let plain = header * (bm_words.div_ceil(data_size) + 1) + bm_words * 8;
        let total = self.plain_bytes + self.rle_bytes;
        if total == 0 || total >= plain {
            return None;
        }
        let r = 1000 - (1000 * total / plain).min(1000);
        Some(format!(
            "{direction} bitmap stats [Bytes(packets)]: plain {}({}), RLE {}({}), total {total}; compression: {}.{}%",
            self.plain_bytes,
            self.plain_packets,
            self.rle_bytes,
            self.rle_packets,
            r / 10,
            r % 10
        ))
    }
}

/// Errors of the bitmap exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitmapXferError {
    /// The bitmap slice is shorter than `bm_bits` needs.
    #[error("bitmap of {words} words is too short for {bm_bits} bits")]
    BitmapTooShort {
        /// Words given.
        words: usize,
        /// Bits claimed.
        bm_bits: u64,
    },
    /// A P_BITMAP did not have the size the kernel expects at this offset.
    #[error("P_BITMAP at word {word_offset} has {got} words, expected {want}")]
    PlainSizeMismatch {
        /// The word offset.
        word_offset: u64,
        /// Words expected.
        want: u64,
        /// Words received.
        got: u64,
    },
    /// A P_COMPRESSED_BITMAP larger than a socket buffer.
    #[error("P_COMPRESSED_BITMAP of {bytes} bytes is larger than {max}")]
    CompressedTooLarge {
        /// Payload bytes.
        bytes: usize,
        /// Limit.
        max: usize,
    },
    /// A P_COMPRESSED_BITMAP with no code.
    #[error("P_COMPRESSED_BITMAP has no code")]
    CompressedEmpty,
    /// A packet after the transfer was complete.
    #[error("bitmap packet after the transfer was complete")]
    AlreadyComplete,
    /// The RLE code was malformed or reached past the bitmap.
    #[error("bad P_COMPRESSED_BITMAP: {0}")]
    Wire(#[from] WireError),
}

fn words_for(bm_bits: u64) -> u64 {
    bm_bits.div_ceil(64)
}

/// The word `index` with the bits at and past `bm_bits` cleared.
fn masked_word(words: &[u64], index: u64, bm_bits: u64) -> u64 {
    let w = words.get(index as usize).copied().unwrap_or(0);
    let first = index * 64;
    if bm_bits >= first + 64 {
        w
    } else if bm_bits <= first {
        0
    } else {
        w & ((1u64 << (bm_bits - first)) - 1)
    }
}

/// Produces the packets of a bitmap transfer ([`Iterator`] of [`BitmapPacket`]).
#[derive(Debug, Clone)]
pub struct BitmapSender<'a> {
    words: &'a [u64],
    bm_bits: u64,
    bm_words: u64,
    bit_offset: u64,
    word_offset: u64,
    params: XferParams,
    done: bool,
    stats: XferStats,
}

impl<'a> BitmapSender<'a> {
    /// A sender for the first `bm_bits` bits of `words`.
    pub fn new(
        words: &'a [u64],
        bm_bits: u64,
        params: XferParams,
    ) -> Result<Self, BitmapXferError> {
        let bm_words = words_for(bm_bits);
        if (words.len() as u64) < bm_words {
            return Err(BitmapXferError::BitmapTooShort {
                words: words.len(),
                bm_bits,
            });
        }
        Ok(BitmapSender {
            words,
            bm_bits,
            bm_words,
            bit_offset: 0,
            word_offset: 0,
            params,
            done: false,
            stats: XferStats::default(),
        })
    }

    /// Counts of what was produced so far.
    pub fn stats(&self) -> XferStats {
        self.stats
    }

    /// `fill_bitmap_rle_bits`: a compressed packet from the current offset, or `None` to send
    /// plain words instead.
    fn try_rle(&mut self) -> Option<CompressedBitmap> {
        if !self.params.use_rle || self.bit_offset >= self.bm_bits {
            return None;
        }
        match CompressedBitmap::from_bitmap(
            self.words,
            self.bm_bits,
            self.bit_offset,
            self.params.code_bytes_per_packet(),
        ) {
            Ok(Some((packet, next_bit))) => {
                self.bit_offset = next_bit;
                self.word_offset = next_bit / 64;
                Some(packet)
            }
            // Not compressible (or, as the kernel on a coding error, fall back to plain):
            // rewind to the word holding the offset.
            Ok(None) | Err(_) => {
                self.word_offset = self.bit_offset / 64;
                self.bit_offset = self.word_offset * 64;
                None
            }
        }
    }
}

impl Iterator for BitmapSender<'_> {
    type Item = BitmapPacket;

    fn next(&mut self) -> Option<BitmapPacket> {
        if self.done {
            return None;
        }
        let packet = if let Some(c) = self.try_rle() {
            if self.bit_offset >= self.bm_bits {
                self.done = true;
            }
            BitmapPacket::Compressed(c)
        } else {
            let left = self.bm_words.saturating_sub(self.word_offset);
            let n = left.min(self.params.plain_words_per_packet() as u64);
            let words = (self.word_offset..self.word_offset + n)
                .map(|i| masked_word(self.words, i, self.bm_bits))
                .collect();
            self.word_offset += n;
            self.bit_offset = (self.word_offset * 64).min(self.bm_bits);
            if n == 0 {
                self.done = true;
            }
            BitmapPacket::Plain(PlainBitmap { words })
        };
        self.stats.count(&packet, self.params.header_bytes);
        Some(packet)
    }
}

/// What a received packet meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More packets follow.
    More,
    /// The transfer is complete.
    Complete,
}

/// Merges received bitmap packets into a bitmap (OR).
#[derive(Debug, Clone)]
pub struct BitmapReceiver {
    words: Vec<u64>,
    bm_bits: u64,
    bm_words: u64,
    bit_offset: u64,
    word_offset: u64,
    params: XferParams,
    complete: bool,
    stats: XferStats,
}

impl BitmapReceiver {
    /// A receiver merging into `words` (our own bitmap, or zeros), `bm_bits` valid bits.
    pub fn new(
        mut words: Vec<u64>,
        bm_bits: u64,
        params: XferParams,
    ) -> Result<Self, BitmapXferError> {
        let bm_words = words_for(bm_bits);
        if (words.len() as u64) < bm_words {
            return Err(BitmapXferError::BitmapTooShort {
                words: words.len(),
                bm_bits,
            });
        }
        words.truncate(bm_words as usize);
        Ok(BitmapReceiver {
            words,
            bm_bits,
            bm_words,
            bit_offset: 0,
            word_offset: 0,
            params,
            complete: false,
            stats: XferStats::default(),
        })
    }

    /// Merges one packet.
    pub fn receive(&mut self, packet: &BitmapPacket) -> Result<Progress, BitmapXferError> {
        if self.complete {
            return Err(BitmapXferError::AlreadyComplete);
        }
        let progress = match packet {
            BitmapPacket::Plain(p) => self.receive_plain(p)?,
            BitmapPacket::Compressed(c) => self.receive_compressed(c)?,
        };
        self.stats.count(packet, self.params.header_bytes);
        self.complete = progress == Progress::Complete;
        Ok(progress)
    }

    fn receive_plain(&mut self, p: &PlainBitmap) -> Result<Progress, BitmapXferError> {
        let left = self.bm_words.saturating_sub(self.word_offset);
        let want = left.min(self.params.plain_words_per_packet() as u64);
        let got = p.words.len() as u64;
        if want != got {
            return Err(BitmapXferError::PlainSizeMismatch {
                word_offset: self.word_offset,
                want,
                got,
            });
        }
        if want == 0 {
            return Ok(Progress::Complete);
        }
        for (i, w) in p.words.iter().enumerate() {
            let index = self.word_offset + i as u64;
            let bits = masked_word(
                std::slice::from_ref(w),
                0,
                self.bm_bits.saturating_sub(index * 64),
            );
            self.words[index as usize] |= bits;
        }
        self.word_offset += want;
        self.bit_offset = (self.word_offset * 64).min(self.bm_bits);
        Ok(Progress::More)
    }

    fn receive_compressed(&mut self, c: &CompressedBitmap) -> Result<Progress, BitmapXferError> {
        let max = self.params.code_bytes_per_packet();
        if c.code.len() > max {
            return Err(BitmapXferError::CompressedTooLarge {
                bytes: c.code.len() + 1,
                max: max + 1,
            });
        }
        if c.code.is_empty() {
            return Err(BitmapXferError::CompressedEmpty);
        }
        let end = c.apply(&mut self.words, self.bm_bits, self.bit_offset)?;
        if end > self.bm_bits {
            // A clear run past the end: the kernel would wait for more; nothing can follow.
            return Err(WireError::BitmapOverflow {
                packet: "P_COMPRESSED_BITMAP",
                end_bit: end,
                total_bits: self.bm_bits,
            }
            .into());
        }
        self.bit_offset = end;
        self.word_offset = end / 64;
        Ok(if end == self.bm_bits {
            Progress::Complete
        } else {
            Progress::More
        })
    }

    /// The transfer is complete.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The merged bitmap so far.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// The merged bitmap.
    pub fn into_words(self) -> Vec<u64> {
        self.words
    }

    /// Counts of what was received.
    pub fn stats(&self) -> XferStats {
        self.stats
    }
}

/// The whole transfer of the first `bm_bits` bits of `words` as packets.
pub fn bitmap_packets(
    words: &[u64],
    bm_bits: u64,
    params: XferParams,
) -> Result<Vec<BitmapPacket>, BitmapXferError> {
    Ok(BitmapSender::new(words, bm_bits, params)?.collect())
}

#[cfg(test)]
mod tests;
