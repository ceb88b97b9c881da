//! Parser of v08 dump-md documents (what `restore-md` and `verify-dump` read).
//!
//! Grammar (drbdmeta `verify_dumpfile_or_restore`, v08 branch):
//! `version "v08"; uuid { U64; U64; U64; U64; flags U32; } la-size-sect NUM;
//! bm-byte-per-bit NUM; device-uuid U64; la-peer-max-bio-size NUM; al-stripes NUM;
//! al-stripe-size-4k NUM; bm { (U64; | NUM times U64;)* }` then end of file.
//! The bitmap is bounded: words past the limit chosen by the caller are counted, not stored.

use super::lex::{Lexer, Token};
use super::DumpDoc;
use crate::error::{MetaError, Result};
use crate::superblock::Uuids;

struct Parser<'a> {
    lex: Lexer<'a>,
}

impl Parser<'_> {
    fn err<T>(&self, msg: String) -> Result<T> {
        Err(MetaError::Parse {
            line: self.lex.line(),
            msg,
        })
    }

    fn next(&mut self) -> Result<Token> {
        self.lex.next_token()
    }

    fn expect_op(&mut self, op: char) -> Result<()> {
        match self.next()? {
            Token::Op(c) if c == op => Ok(()),
            t => self.err(format!("expected '{op}', not {t}")),
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<()> {
        match self.next()? {
            Token::Word(w) if w == word => Ok(()),
            t => self.err(format!("expected {word}, not {t}")),
        }
    }

    fn u64_field(&mut self) -> Result<u64> {
        let v = match self.next()? {
            Token::U64(v) => v,
            t => return self.err(format!("expected 16-digit hex number, not {t}")),
        };
        self.expect_op(';')?;
        Ok(v)
    }

    fn num_field(&mut self, word: &str) -> Result<u64> {
        self.expect_word(word)?;
        let v = match self.next()? {
            Token::Num(v) => v,
            t => return self.err(format!("expected number after {word}, not {t}")),
        };
        self.expect_op(';')?;
        Ok(v)
    }

    fn u32_num_field(&mut self, word: &str) -> Result<u32> {
        let v = self.num_field(word)?;
        match u32::try_from(v) {
            Ok(v) => Ok(v),
            Err(_) => self.err(format!("{word} {v} does not fit 32 bits")),
        }
    }
}

/// Parses a v08 dump. `bitmap_limit_words` receives the parsed header (bitmap still empty)
/// and returns how many 64-bit bitmap words to keep at most.
pub fn parse_dump(text: &str, bitmap_limit_words: impl FnOnce(&DumpDoc) -> u64) -> Result<DumpDoc> {
    let mut p = Parser {
        lex: Lexer::new(text),
    };
    p.expect_word("version")?;
    match p.next()? {
        Token::Str(s) if s == "v08" => {}
        Token::Str(s) => return p.err(format!("dump is '{s}', expected 'v08'")),
        t => return p.err(format!("expected version string, not {t}")),
    }
    p.expect_op(';')?;
    p.expect_word("uuid")?;
    p.expect_op('{')?;
    let current = p.u64_field()?;
    let bitmap = p.u64_field()?;
    let history = [p.u64_field()?, p.u64_field()?];
    p.expect_word("flags")?;
    let flags = match p.next()? {
        Token::U32(v) => v,
        t => return p.err(format!("expected 8-digit hex flags, not {t}")),
    };
    p.expect_op(';')?;
    p.expect_op('}')?;
    let la_size_sect = p.num_field("la-size-sect")?;
    let bm_bytes_per_bit = p.u32_num_field("bm-byte-per-bit")?;
    if bm_bytes_per_bit != 4096 {
        return p.err(format!(
            "bm-byte-per-bit {bm_bytes_per_bit} unsupported (v08 needs 4096)"
        ));
    }
    p.expect_word("device-uuid")?;
    let device_uuid = p.u64_field()?;
    let la_peer_max_bio_size = p.u32_num_field("la-peer-max-bio-size")?;
    let al_stripes = p.u32_num_field("al-stripes")?;
    let al_stripe_size_4k = p.u32_num_field("al-stripe-size-4k")?;
    let mut doc = DumpDoc {
        uuids: Uuids {
            current,
            bitmap,
            history,
        },
        flags,
        la_size_sect,
        bm_bytes_per_bit,
        device_uuid,
        la_peer_max_bio_size,
        al_stripes,
        al_stripe_size_4k,
        bitmap_words: Vec::new(),
        bitmap_words_total: 0,
    };
    let limit = bitmap_limit_words(&doc);
    p.expect_word("bm")?;
    p.expect_op('{')?;
    loop {
        let (times, value) = match p.next()? {
            Token::U64(v) => (1, v),
            Token::Num(times) => {
                p.expect_word("times")?;
                match p.next()? {
                    Token::U64(v) => (times, v),
                    t => {
                        return p.err(format!("expected 16-digit hex number after times, not {t}"))
                    }
                }
            }
            Token::Op('}') => break,
            t => {
                return p.err(format!(
                    "expected repeat count, 16-digit hex number, or '}}', not {t}"
                ))
            }
        };
        p.expect_op(';')?;
        let stored = doc.bitmap_words.len() as u64;
        let keep = times.min(limit.saturating_sub(stored));
        doc.bitmap_words
            .extend(std::iter::repeat_n(value, keep as usize));
        doc.bitmap_words_total = doc.bitmap_words_total.saturating_add(times);
    }
    match p.next()? {
        Token::Eof => Ok(doc),
        t => p.err(format!("expected end of file, not {t}")),
    }
}
