//! Tokenizer for dump-md text, following drbdmeta's flex scanner (`drbdmeta_scanner.fl`).
//!
//! Whitespace and `#` comments are skipped; `{ } ; [ ]` are operators; a quoted string has 1–20
//! characters; a word of `[-_a-zA-Z0-9]` is a 16-hex-digit `0x` number (U64), an 8-hex-digit
//! one (U32), a decimal of up to 19 digits (NUM), a keyword, or an error.

use crate::error::{MetaError, Result};

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// `"..."`.
    Str(String),
    /// `0x` + 16 hex digits.
    U64(u64),
    /// `0x` + 8 hex digits.
    U32(u32),
    /// Decimal number (negative numbers are errors here).
    Num(u64),
    /// A keyword such as `la-size-sect`.
    Word(String),
    /// `{`, `}`, `;`, `[` or `]`.
    Op(char),
    /// End of input.
    Eof,
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Str(s) => write!(f, "\"{s}\""),
            Token::U64(v) => write!(f, "0x{v:016X}"),
            Token::U32(v) => write!(f, "0x{v:08X}"),
            Token::Num(v) => write!(f, "{v}"),
            Token::Word(w) => f.write_str(w),
            Token::Op(c) => write!(f, "'{c}'"),
            Token::Eof => f.write_str("end of file"),
        }
    }
}

const KEYWORDS: &[&str] = &[
    "gc",
    "bm",
    "uuid",
    "version",
    "la-size-sect",
    "bm-byte-per-bit",
    "device-uuid",
    "times",
    "flags",
    "al-stripes",
    "al-stripe-size-4k",
    "la-peer-max-bio-size",
    "node-id",
    "current-uuid",
    "bitmap",
    "bitmap-uuid",
    "bitmap-dagtag",
    "history-uuids",
    "peer",
    "hash",
    "max-peers",
    "bitmap-index",
];

/// A streaming tokenizer over the whole text.
pub struct Lexer<'a> {
    text: &'a [u8],
    pos: usize,
    line: u32,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Lexer {
            text: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    /// Current 1-based line.
    pub fn line(&self) -> u32 {
        self.line
    }

    fn err(&self, msg: String) -> MetaError {
        MetaError::Parse {
            line: self.line,
            msg,
        }
    }

    /// The next token.
    pub fn next_token(&mut self) -> Result<Token> {
        loop {
            let Some(&b) = self.text.get(self.pos) else {
                return Ok(Token::Eof);
            };
            match b {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'#' => {
                    while self.text.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
        let b = self.text[self.pos];
        match b {
            b'{' | b'}' | b';' | b'[' | b']' => {
                self.pos += 1;
                Ok(Token::Op(char::from(b)))
            }
            b'"' => self.string(),
            _ if is_word_byte(b) => self.word(),
            _ => Err(self.err(format!("invalid character {:?}", char::from(b)))),
        }
    }

    fn string(&mut self) -> Result<Token> {
        let start = self.pos + 1;
        let mut end = start;
        while let Some(&c) = self.text.get(end) {
            if c == b'"' || c == b'\n' || c == b'\r' {
                break;
            }
            end += 1;
        }
        if self.text.get(end) != Some(&b'"') || end == start || end - start > 20 {
            return Err(self.err("invalid string".into()));
        }
        self.pos = end + 1;
        Ok(Token::Str(
            String::from_utf8_lossy(&self.text[start..end]).into_owned(),
        ))
    }

    fn word(&mut self) -> Result<Token> {
        let start = self.pos;
        while self.text.get(self.pos).copied().is_some_and(is_word_byte) {
            self.pos += 1;
        }
        let w = std::str::from_utf8(&self.text[start..self.pos]).unwrap_or("");
        if w.len() > 100 {
            return Err(self.err("unknown token (too long)".into()));
        }
        if let Some(hex) = w.strip_prefix("0x") {
            let all_hex = hex.bytes().all(|c| c.is_ascii_hexdigit());
            if all_hex && hex.len() == 16 {
                return u64::from_str_radix(hex, 16)
                    .map(Token::U64)
                    .map_err(|_| self.err(format!("bad number {w}")));
            }
            if all_hex && hex.len() == 8 {
                return u32::from_str_radix(hex, 16)
                    .map(Token::U32)
                    .map_err(|_| self.err(format!("bad number {w}")));
            }
            if all_hex && hex.len() <= 17 {
                return Err(self.err(format!(
                    "invalid hex number (only 8 or 16 hex digits accepted): {w}"
                )));
            }
        }
        let digits = w.strip_prefix('-').unwrap_or(w);
        if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
            if digits.len() > 19 {
                return Err(self.err(format!("number too big: {w}")));
            }
            if w.starts_with('-') {
                return Err(self.err(format!("negative number not allowed: {w}")));
            }
            return digits
                .parse()
                .map(Token::Num)
                .map_err(|_| self.err(format!("bad number {w}")));
        }
        if KEYWORDS.contains(&w) {
            return Ok(Token::Word(w.to_string()));
        }
        Err(self.err(format!("unknown token: {w}")))
    }
}
