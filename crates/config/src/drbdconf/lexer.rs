//! Splits drbd.conf text into tokens, each with its line and column.
//!
//! Rules (drbdadm's scanner, slightly more liberal about word characters):
//! - `#` starts a comment to the end of the line (outside strings);
//! - `{ } ; [ ]` are tokens of their own;
//! - `"..."` is a string on one line; a backslash makes the next character
//!   literal (`\"` is a quote, `\\` a backslash), at most 255 characters;
//! - any other run of non-blank characters is a word (keywords, names, paths,
//!   `IP:PORT`), at most 255 characters.

use std::path::Path;
use std::sync::Arc;

use crate::error::{ConfigError, Location};

/// The longest word or string accepted (drbdadm: 255 for strings).
pub const MAX_TOKEN_CHARS: usize = 255;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// An unquoted word.
    Word(String),
    /// A quoted string, unescaped.
    Str(String),
    /// `{`.
    LBrace,
    /// `}`.
    RBrace,
    /// `;`.
    Semi,
    /// `[`.
    LBracket,
    /// `]`.
    RBracket,
    /// End of the text.
    Eof,
}

impl Tok {
    /// How the token is named in error messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::LBrace => "'{'".to_string(),
            Tok::RBrace => "'}'".to_string(),
            Tok::Semi => "';'".to_string(),
            Tok::LBracket => "'['".to_string(),
            Tok::RBracket => "']'".to_string(),
            Tok::Eof => "end of file".to_string(),
        }
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Where it starts.
    pub at: Location,
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '{' | '}' | ';' | '[' | ']' | '"' | '#')
}

/// Refuses a word or string of `count` characters (starting `at`) longer than
/// [`MAX_TOKEN_CHARS`].
fn within_token_limit(count: usize, at: &Location) -> Result<(), ConfigError> {
    if count > MAX_TOKEN_CHARS {
        return Err(ConfigError::TokenTooLong {
            at: at.clone(),
            len: count,
            max: MAX_TOKEN_CHARS,
        });
    }
    Ok(())
}

/// Splits `text` (from `file`) into tokens, ending with [`Tok::Eof`].
pub fn tokenize(text: &str, file: &Arc<Path>) -> Result<Vec<Token>, ConfigError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let (mut line, mut column) = (1u32, 1u32);
    let loc = |line: u32, column: u32| Location::new(file.clone(), line, column);

    while let Some(&c) = chars.peek() {
        let at = loc(line, column);
        if c == '\n' {
            chars.next();
            line = line.saturating_add(1);
            column = 1;
            continue;
        }
        if c.is_whitespace() {
            chars.next();
            column = column.saturating_add(1);
            continue;
        }
        if c == '#' {
            while let Some(&c) = chars.peek() {
                if c == '\n' {
                    break;
                }
                chars.next();
                column = column.saturating_add(1);
            }
            continue;
        }
        let single = match c {
            '{' => Some(Tok::LBrace),
            '}' => Some(Tok::RBrace),
            ';' => Some(Tok::Semi),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            _ => None,
        };
        if let Some(tok) = single {
            chars.next();
            column = column.saturating_add(1);
            tokens.push(Token { tok, at });
            continue;
        }
        if c == '"' {
            chars.next();
            column = column.saturating_add(1);
            let mut s = String::new();
            let mut count = 0usize;
            loop {
                match chars.next() {
                    None | Some('\n') => return Err(ConfigError::UnterminatedString { at }),
                    Some('"') => {
                        column = column.saturating_add(1);
                        break;
                    }
                    Some('\\') => {
                        column = column.saturating_add(1);
                        match chars.next() {
                            None | Some('\n') => {
                                return Err(ConfigError::UnterminatedString { at })
                            }
                            Some(escaped) => {
                                column = column.saturating_add(1);
                                s.push(escaped);
                            }
                        }
                    }
                    Some(other) => {
                        column = column.saturating_add(1);
                        s.push(other);
                    }
                }
                count += 1;
                within_token_limit(count, &at)?;
            }
            tokens.push(Token {
                tok: Tok::Str(s),
                at,
            });
            continue;
        }
        let mut word = String::new();
        let mut count = 0usize;
        while let Some(&c) = chars.peek() {
            if !is_word_char(c) {
                break;
            }
            chars.next();
            column = column.saturating_add(1);
            word.push(c);
            count += 1;
        }
        within_token_limit(count, &at)?;
        tokens.push(Token {
            tok: Tok::Word(word),
            at,
        });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        at: loc(line, column),
    });
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<(Tok, u32, u32)> {
        let file: Arc<Path> = Path::new("t.conf").into();
        tokenize(text, &file)
            .unwrap()
            .into_iter()
            .map(|t| (t.tok, t.at.line, t.at.column))
            .collect()
    }

    #[test]
    fn words_strings_punctuation_and_positions() {
        let t = toks("net {\n  shared-secret \"a \\\"b\\\\\"; # c\n}");
        assert_eq!(
            t,
            vec![
                (Tok::Word("net".into()), 1, 1),
                (Tok::LBrace, 1, 5),
                (Tok::Word("shared-secret".into()), 2, 3),
                (Tok::Str("a \"b\\".into()), 2, 17),
                (Tok::Semi, 2, 26),
                (Tok::RBrace, 3, 1),
                (Tok::Eof, 3, 2),
            ]
        );
    }

    #[test]
    fn addresses_stay_one_word_and_brackets_split() {
        let t = toks("address 10.0.0.1:7789; meta-disk /dev/sdb2[0];");
        assert_eq!(t[1].0, Tok::Word("10.0.0.1:7789".into()));
        assert_eq!(t[4].0, Tok::Word("/dev/sdb2".into()));
        assert_eq!(t[5].0, Tok::LBracket);
    }

    #[test]
    fn unterminated_and_long_strings_fail_with_position() {
        let file: Arc<Path> = Path::new("t.conf").into();
        let e = tokenize("x {\n  y \"abc\n", &file).unwrap_err();
        assert_eq!(e.location().map(|l| (l.line, l.column)), Some((2, 5)));
        let long = format!("\"{}\"", "a".repeat(300));
        assert!(matches!(
            tokenize(&long, &file),
            Err(ConfigError::TokenTooLong { .. })
        ));
        // Words have the same limit: 255 characters are one word, 256 too many.
        assert!(tokenize(&"w".repeat(MAX_TOKEN_CHARS), &file).is_ok());
        assert!(matches!(
            tokenize(&"w".repeat(MAX_TOKEN_CHARS + 1), &file),
            Err(ConfigError::TokenTooLong { len: 256, .. })
        ));
    }
}
