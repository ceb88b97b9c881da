//! drbdmeta's `dump-md` text format for v08: writer and (bounded) parser.

mod lex;
mod parse;
mod write;

pub use lex::{Lexer, Token};
pub use parse::parse_dump;
pub use write::{write_bitmap, write_dump, DumpPreamble};

use crate::superblock::Uuids;

/// The restorable content of a dump (everything that is not a comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpDoc {
    /// UUIDs.
    pub uuids: Uuids,
    /// Flags word.
    pub flags: u32,
    /// `la-size-sect`.
    pub la_size_sect: u64,
    /// `bm-byte-per-bit` (4096).
    pub bm_bytes_per_bit: u32,
    /// `device-uuid`.
    pub device_uuid: u64,
    /// `la-peer-max-bio-size`.
    pub la_peer_max_bio_size: u32,
    /// `al-stripes`.
    pub al_stripes: u32,
    /// `al-stripe-size-4k`.
    pub al_stripe_size_4k: u32,
    /// Bitmap words kept (at most the parse limit).
    pub bitmap_words: Vec<u64>,
    /// Bitmap words the document listed (may exceed `bitmap_words.len()`).
    pub bitmap_words_total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(words: Vec<u64>) -> DumpDoc {
        DumpDoc {
            uuids: Uuids {
                current: 0x1234567890ABCDEF,
                bitmap: 1,
                history: [2, 3],
            },
            flags: 0x91,
            la_size_sect: 262000,
            bm_bytes_per_bit: 4096,
            device_uuid: 0x1111222233334444,
            la_peer_max_bio_size: 1048576,
            al_stripes: 1,
            al_stripe_size_4k: 8,
            bitmap_words_total: words.len() as u64,
            bitmap_words: words,
        }
    }

    fn pre() -> DumpPreamble {
        DumpPreamble {
            banner: "# DRBD meta data dump\n#\n\n".into(),
            unclean: false,
            md_size_sect: 80,
            md_offset_bytes: 134213632,
            al_offset_bytes: 134180864,
            bm_offset_bytes: 134176768,
            al_nr_extents: 257,
        }
    }

    #[test]
    fn round_trip() {
        let mut words = vec![0u64; 512];
        words[3] = 0xDEAD_BEEF;
        words[100..300].fill(u64::MAX);
        let d = doc(words);
        let mut out = Vec::new();
        let bits = write_dump(&mut out, &pre(), &d).unwrap();
        assert_eq!(bits, 24 + 200 * 64);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("    flags 0x00000091;\n"));
        assert_eq!(parse_dump(&text, |_| u64::MAX).unwrap(), d);
    }

    #[test]
    fn unclean_dump_does_not_parse() {
        let mut p = pre();
        p.unclean = true;
        let mut out = Vec::new();
        write_dump(&mut out, &p, &doc(vec![0; 512])).unwrap();
        let e = parse_dump(std::str::from_utf8(&out).unwrap(), |_| 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown token: This_is_an_unclean"), "{e}");
    }

    #[test]
    fn bitmap_is_bounded() {
        let text = "version \"v08\"; uuid { 0x0000000000000004; 0x0000000000000000; 0x0000000000000000; \
                    0x0000000000000000; flags 0x00000000; } la-size-sect 0; bm-byte-per-bit 4096; \
                    device-uuid 0x0000000000000000; la-peer-max-bio-size 0; al-stripes 1; \
                    al-stripe-size-4k 8; bm { 999999999999999999 times 0xFFFFFFFFFFFFFFFF; 0x0000000000000001; }";
        let d = parse_dump(text, |_| 10).unwrap();
        assert_eq!(d.bitmap_words.len(), 10);
        assert_eq!(d.bitmap_words_total, 1_000_000_000_000_000_000);
    }

    #[test]
    fn errors_name_the_line_and_token() {
        let e = parse_dump("version \"v09\";", |_| 0)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "dump parse error in line 1: dump is 'v09', expected 'v08'"
        );
        let e = parse_dump("version \"v08\";\nuuid { 0x04;", |_| 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("invalid hex number"),
            "{e}"
        );
        let e = parse_dump("version \"v08\"; @", |_| 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid character"), "{e}");
    }
}
