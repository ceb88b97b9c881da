//! The variable-length integer code and LSB-first bit stream of P_COMPRESSED_BITMAP
//! (drbd_vli.h). Facts, not code, taken from DRBD:
//!
//! Each run length (>= 1) is coded with the first of ten levels that can hold it. A level has a
//! total width `t`, a prefix of `b` bits with value `v`, and `t - b` data bits holding
//! `value - adj`, where `adj` is 1 plus the capacity of all lower levels. The code word is
//! `((value - adj) << b) | v`, written least significant bit first into the stream (bit 0 of byte 0
//! first). Levels (t, b, v): (2,1,0x00) (3,2,0x01) (5,3,0x03) (7,4,0x07) (10,5,0x0f) (14,6,0x1f)
//! (21,8,0x3f) (29,8,0x7f) (42,8,0xbf) (64,8,0xff).

use crate::WireError;

const LEVELS: [(u32, u32, u64); 10] = [
    (2, 1, 0x00),
    (3, 2, 0x01),
    (5, 3, 0x03),
    (7, 4, 0x07),
    (10, 5, 0x0f),
    (14, 6, 0x1f),
    (21, 8, 0x3f),
    (29, 8, 0x7f),
    (42, 8, 0xbf),
    (64, 8, 0xff),
];

/// Largest value the code can hold.
pub const VLI_MAX: u64 = {
    let mut max = 0u64;
    let mut i = 0;
    while i < LEVELS.len() {
        max += 1u64 << (LEVELS[i].0 - LEVELS[i].1);
        i += 1;
    }
    max
};

fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Codes `value` (1..=VLI_MAX): returns (code word, width in bits).
pub fn vli_encode(value: u64) -> Option<(u64, u32)> {
    if value == 0 {
        return None;
    }
    let mut adj = 1u64;
    for &(t, b, v) in &LEVELS {
        let capacity = 1u64 << (t - b);
        // value - adj < capacity, i.e. value fits this level.
        if value - adj < capacity {
            return Some((((value - adj) << b) | v, t));
        }
        adj += capacity;
    }
    None
}

/// Decodes the code word at the low end of `lookahead`: returns (value, width in bits).
/// Every bit pattern matches a level, so this cannot fail; the caller checks that the stream
/// really had `width` bits.
pub fn vli_decode(lookahead: u64) -> (u64, u32) {
    let mut adj = 1u64;
    for &(t, b, v) in &LEVELS {
        if lookahead & low_mask(b) == v {
            return (((lookahead & low_mask(t)) >> b) + adj, t);
        }
        adj += 1u64 << (t - b);
    }
    unreachable!("the VLI level table covers every prefix")
}

/// Writes bits LSB-first into at most `max_bytes` bytes.
pub(crate) struct BitWriter {
    buf: Vec<u8>,
    bit_len: u64,
    max_bytes: usize,
}

impl BitWriter {
    pub(crate) fn new(max_bytes: usize) -> BitWriter {
        BitWriter {
            buf: Vec::new(),
            bit_len: 0,
            max_bytes,
        }
    }

    /// Appends the low `bits` bits of `value`; false (and nothing written) when they do not fit.
    pub(crate) fn put(&mut self, value: u64, bits: u32) -> bool {
        let new_len = self.bit_len + u64::from(bits);
        if new_len.div_ceil(8) > self.max_bytes as u64 {
            return false;
        }
        self.buf.resize(new_len.div_ceil(8) as usize, 0);
        for i in 0..u64::from(bits) {
            if (value >> i) & 1 == 1 {
                let at = self.bit_len + i;
                self.buf[(at / 8) as usize] |= 1 << (at % 8);
            }
        }
        self.bit_len = new_len;
        true
    }

    /// (bytes, pad bits in the last byte).
    pub(crate) fn finish(self) -> (Vec<u8>, u8) {
        let pad = ((8 - self.bit_len % 8) % 8) as u8;
        (self.buf, pad)
    }
}

/// Reads a code string LSB-first, without its trailing pad bits.
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    pos: u64,
    total_bits: u64,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(buf: &'a [u8], pad_bits: u8) -> Result<BitReader<'a>, WireError> {
        let total_bits = (buf.len() as u64 * 8)
            .checked_sub(u64::from(pad_bits))
            .ok_or(WireError::BadBitmapCode {
                reason: "more pad bits than code bits",
                bit_offset: 0,
            })?;
        Ok(BitReader {
            buf,
            pos: 0,
            total_bits,
        })
    }

    pub(crate) fn remaining(&self) -> u64 {
        self.total_bits - self.pos
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Up to 64 of the next bits without consuming them (missing bits read as 0): (bits, count).
    pub(crate) fn peek64(&self) -> (u64, u32) {
        let have = self.remaining().min(64) as u32;
        let mut value = 0u64;
        for i in 0..u64::from(have) {
            let at = self.pos + i;
            if (self.buf[(at / 8) as usize] >> (at % 8)) & 1 == 1 {
                value |= 1 << i;
            }
        }
        (value, have)
    }

    pub(crate) fn skip(&mut self, bits: u32) {
        self.pos += u64::from(bits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_boundaries_match_the_drbd_table() {
        // "max val" column of drbd_vli.h: 0x2, 0x4, 0x8, 0x10, 0x30, 0x130, 0x2130, 0x202130, 0x400202130.
        let maxima = [
            0x2u64,
            0x4,
            0x8,
            0x10,
            0x30,
            0x130,
            0x2130,
            0x20_2130,
            0x4_0020_2130,
        ];
        for (level, &max) in maxima.iter().enumerate() {
            assert_eq!(
                vli_encode(max).unwrap().1,
                LEVELS[level].0,
                "value {max:#x}"
            );
            assert_eq!(
                vli_encode(max + 1).unwrap().1,
                LEVELS[level + 1].0,
                "value {:#x}",
                max + 1
            );
        }
        assert_eq!(vli_encode(0), None);
        assert_eq!(vli_encode(VLI_MAX).unwrap().1, 64);
        assert_eq!(vli_encode(VLI_MAX + 1), None);
    }

    #[test]
    fn golden_codes() {
        assert_eq!(vli_encode(1), Some((0b00, 2)));
        assert_eq!(vli_encode(2), Some((0b10, 2)));
        assert_eq!(vli_encode(3), Some((0b001, 3)));
        assert_eq!(vli_encode(5), Some((0b00011, 5)));
        assert_eq!(vli_encode(0x31), Some((0x1f, 14)));
        assert_eq!(vli_encode(0x131), Some((0x3f, 21)));
    }

    #[test]
    fn decode_inverts_encode() {
        for v in (1..5000u64).chain([VLI_MAX, VLI_MAX - 1, 0x4_0020_2131, 1 << 40]) {
            let (code, bits) = vli_encode(v).unwrap();
            assert_eq!(vli_decode(code), (v, bits), "value {v}");
        }
    }
}
