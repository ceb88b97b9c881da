//! Bitmap transfer: P_BITMAP (plain little-endian words) and P_COMPRESSED_BITMAP
//! (`p_compressed_bm`: an encoding byte, then RLE run lengths coded with [`crate::vli`]).
//!
//! The bitmap has one bit per 4 KiB block; bit `i` is bit `i % 64` of little-endian word `i / 64`.
//! A bitmap transfer is a sequence of packets; each continues at the bit where the previous one
//! ended. A compressed packet codes alternating runs of clear and set bits; the encoding byte says
//! whether the first run is of set bits (bit 7), how many pad bits end the code (bits 4-6), and
//! the encoding (low nibble, RLE_VLI_Bits = 2).

use super::reader::Reader;
use crate::vli::{vli_decode, vli_encode, BitReader, BitWriter};
use crate::WireError;

/// The only encoding DRBD defines (`RLE_VLI_Bits`).
pub const RLE_VLI_BITS: u8 = 2;

/// P_BITMAP: a slice of the bitmap as 64-bit words.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PlainBitmap {
    /// The words, in bitmap order.
    pub words: Vec<u64>,
}

impl PlainBitmap {
    pub(crate) fn read(r: &mut Reader<'_>, length: usize) -> Result<PlainBitmap, WireError> {
        if length % 8 != 0 {
            return Err(WireError::BadLength {
                packet: "P_BITMAP",
                length,
                expected: "a multiple of 8",
            });
        }
        let mut words = Vec::with_capacity(length / 8);
        for _ in 0..length / 8 {
            words.push(u64::from_le_bytes(r.array()?));
        }
        Ok(PlainBitmap { words })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
}

/// P_COMPRESSED_BITMAP with the RLE_VLI_Bits encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CompressedBitmap {
    /// The first run is a run of set bits (encoding bit 7).
    pub first_run_set: bool,
    /// Trailing zero bits in the last code byte (0..=7, encoding bits 4-6).
    pub pad_bits: u8,
    /// The code string.
    pub code: Vec<u8>,
}

impl CompressedBitmap {
    /// The `encoding` byte.
    pub fn encoding(&self) -> u8 {
        RLE_VLI_BITS | ((self.pad_bits & 7) << 4) | (u8::from(self.first_run_set) << 7)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<CompressedBitmap, WireError> {
        let encoding = r.u8()?;
        if encoding & 0x0f != RLE_VLI_BITS {
            return Err(WireError::InvalidField {
                packet: "P_COMPRESSED_BITMAP",
                field: "encoding",
                value: u64::from(encoding & 0x0f),
            });
        }
        Ok(CompressedBitmap {
            first_run_set: encoding & 0x80 != 0,
            pad_bits: (encoding >> 4) & 7,
            code: r.rest().to_vec(),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.push(self.encoding());
        out.extend_from_slice(&self.code);
    }

    /// The run lengths the code holds, first run first (polarity alternates from
    /// `first_run_set`). Fails when the code ends inside a code word, as the kernel does.
    pub fn runs(&self) -> Result<Vec<u64>, WireError> {
        let mut reader = BitReader::new(&self.code, self.pad_bits)?;
        let mut runs = Vec::new();
        while reader.remaining() > 0 {
            let (lookahead, have) = reader.peek64();
            let (run, bits) = vli_decode(lookahead);
            if bits > have {
                return Err(WireError::BadBitmapCode {
                    reason: "code word cut off by the end",
                    bit_offset: reader.pos(),
                });
            }
            reader.skip(bits);
            runs.push(run);
        }
        Ok(runs)
    }

    /// Codes as many of `runs` as fit in `max_code_bytes` bytes; returns the packet and how many
    /// runs it holds. Zero or too long run lengths are errors.
    pub fn encode_runs(
        first_run_set: bool,
        runs: &[u64],
        max_code_bytes: usize,
    ) -> Result<(CompressedBitmap, usize), WireError> {
        let mut writer = BitWriter::new(max_code_bytes);
        let mut used = 0;
        for &run in runs {
            let (code, bits) = vli_encode(run).ok_or(WireError::BadRunLength { run })?;
            if !writer.put(code, bits) {
                break;
            }
            used += 1;
        }
        let (code, pad_bits) = writer.finish();
        Ok((
            CompressedBitmap {
                first_run_set,
                pad_bits,
                code,
            },
            used,
        ))
    }

    /// Codes the bitmap from `start_bit` the way the kernel's sender does: runs until the end of
    /// the bitmap or until `max_code_bytes` is full. Returns the packet and the bit where the next
    /// packet continues, or `None` when there is nothing left or RLE does not pay off (fewer bits
    /// covered than code bits): send P_BITMAP words from `start_bit / 64` instead.
    pub fn from_bitmap(
        words: &[u64],
        total_bits: u64,
        start_bit: u64,
        max_code_bytes: usize,
    ) -> Result<Option<(CompressedBitmap, u64)>, WireError> {
        let total_bits = total_bits.min(words.len() as u64 * 64);
        if start_bit >= total_bits {
            return Ok(None);
        }
        let first_run_set = bit(words, start_bit);
        let mut writer = BitWriter::new(max_code_bytes);
        let mut at = start_bit;
        let mut want_set = first_run_set;
        while at < total_bits {
            let end = find_next(words, total_bits, at, !want_set);
            let run = end - at;
            let (code, bits) = vli_encode(run).ok_or(WireError::BadRunLength { run })?;
            if !writer.put(code, bits) {
                break;
            }
            at = end;
            want_set = !want_set;
        }
        let (code, pad_bits) = writer.finish();
        if at - start_bit < code.len() as u64 * 8 {
            return Ok(None);
        }
        Ok(Some((
            CompressedBitmap {
                first_run_set,
                pad_bits,
                code,
            },
            at,
        )))
    }

    /// Sets the bits of the set runs in `words`, starting at `start_bit` (the kernel ORs received
    /// bits into its bitmap). Returns the bit where the next packet continues. Fails, like the
    /// kernel, when a set run reaches past `total_bits`.
    pub fn apply(
        &self,
        words: &mut [u64],
        total_bits: u64,
        start_bit: u64,
    ) -> Result<u64, WireError> {
        let total_bits = total_bits.min(words.len() as u64 * 64);
        let mut at = start_bit;
        let mut set = self.first_run_set;
        for run in self.runs()? {
            let end = at.checked_add(run).ok_or(WireError::BitmapOverflow {
                packet: "P_COMPRESSED_BITMAP",
                end_bit: u64::MAX,
                total_bits,
            })?;
            if set {
                if end > total_bits {
                    return Err(WireError::BitmapOverflow {
                        packet: "P_COMPRESSED_BITMAP",
                        end_bit: end,
                        total_bits,
                    });
                }
                set_range(words, at, end);
            }
            at = end;
            set = !set;
        }
        Ok(at)
    }
}

fn bit(words: &[u64], i: u64) -> bool {
    (words[(i / 64) as usize] >> (i % 64)) & 1 == 1
}

/// The first bit at or after `from` whose value is `want_set`, or `total_bits`.
fn find_next(words: &[u64], total_bits: u64, from: u64, want_set: bool) -> u64 {
    let mut i = from;
    while i < total_bits {
        let word = words[(i / 64) as usize];
        let word = if want_set { word } else { !word } >> (i % 64);
        if word != 0 {
            return (i + u64::from(word.trailing_zeros())).min(total_bits);
        }
        i = (i / 64 + 1) * 64;
    }
    total_bits
}

fn set_range(words: &mut [u64], start: u64, end: u64) {
    for i in start..end {
        words[(i / 64) as usize] |= 1 << (i % 64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_compressed_bitmap() {
        // 16374 bits (the kernel peer's 64 MiB disk), all set: one set run of 16374.
        let words = vec![u64::MAX; 256];
        let (p, next) = CompressedBitmap::from_bitmap(&words, 16374, 0, 4096 - 16 - 1)
            .unwrap()
            .unwrap();
        assert_eq!(next, 16374);
        assert!(p.first_run_set);
        // 16374 = 0x3ff6 is in the 29-bit level (0x2131..=0x202130, prefix 0x7f): data =
        // 0x3ff6 - 0x2131 = 0x1ec5, code = 0x1ec5 << 8 | 0x7f = 0x1ec57f, LSB-first: 7f c5 1e 00,
        // 32 - 29 = 3 pad bits.
        assert_eq!(p.code, [0x7f, 0xc5, 0x1e, 0x00], "RLE/VLI format changed");
        assert_eq!(p.pad_bits, 3);
        assert_eq!(p.encoding(), 0x80 | 0x30 | 2);
        assert_eq!(p.runs().unwrap(), [16374]);
    }

    #[test]
    fn runs_alternate_and_apply() {
        let mut words = vec![0u64; 4];
        words[0] = 0b1111_0000;
        words[2] = u64::MAX;
        let (p, next) = CompressedBitmap::from_bitmap(&words, 256, 0, 100)
            .unwrap()
            .unwrap();
        assert_eq!(next, 256);
        assert!(!p.first_run_set);
        assert_eq!(p.runs().unwrap(), [4, 4, 120, 64, 64]);
        let mut back = vec![0u64; 4];
        assert_eq!(p.apply(&mut back, 256, 0).unwrap(), 256);
        assert_eq!(back, words);
    }

    #[test]
    fn incompressible_falls_back_to_plain() {
        let words = vec![0x5555_5555_5555_5555u64; 8];
        assert_eq!(
            CompressedBitmap::from_bitmap(&words, 512, 0, 4000).unwrap(),
            None
        );
    }

    #[test]
    fn overflow_and_truncation_are_errors() {
        let (p, _) = CompressedBitmap::encode_runs(true, &[100], 10).unwrap();
        let mut words = vec![0u64; 1];
        assert!(matches!(
            p.apply(&mut words, 64, 0),
            Err(WireError::BitmapOverflow { end_bit: 100, .. })
        ));
        // A 29-bit code word cut to 2 bytes.
        let cut = CompressedBitmap {
            first_run_set: true,
            pad_bits: 0,
            code: vec![0x7f, 0xc5],
        };
        assert!(matches!(cut.runs(), Err(WireError::BadBitmapCode { .. })));
        assert!(matches!(
            CompressedBitmap::encode_runs(true, &[0], 10),
            Err(WireError::BadRunLength { run: 0 })
        ));
    }

    #[test]
    fn buffer_limit_stops_encoding() {
        let runs: Vec<u64> = (1..=100).collect();
        let (p, used) = CompressedBitmap::encode_runs(false, &runs, 8).unwrap();
        assert!(used < 100 && used > 0);
        assert_eq!(p.runs().unwrap(), &runs[..used]);
        assert!(p.code.len() <= 8);
    }
}
