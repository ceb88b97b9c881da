//! The drbd.conf format: lexer, parser and `include` resolution.

mod lexer;
mod parser;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::assemble::{assemble, RawConfig};
use crate::error::{ConfigError, Location};
use crate::model::Config;

pub use lexer::MAX_TOKEN_CHARS;

/// Largest configuration file read (drbd.conf files are a few KiB).
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Deepest include nesting.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Most files one configuration may consist of.
pub const MAX_FILES: usize = 4096;

/// State shared by the parsers of the main file and its includes.
pub(crate) struct Loader {
    raw: RawConfig,
    global_at: Option<Location>,
    common_at: Option<Location>,
    seen: HashSet<PathBuf>,
    depth: usize,
}

impl Loader {
    fn new() -> Self {
        Loader {
            raw: RawConfig::default(),
            global_at: None,
            common_at: None,
            seen: HashSet::new(),
            depth: 0,
        }
    }

    /// Marks `path` as read; false when it was read before.
    fn first_visit(&mut self, path: &Path) -> bool {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.seen.insert(key)
    }

    fn parse_text(&mut self, text: &str, file: Arc<Path>) -> Result<(), ConfigError> {
        self.raw.files.push(file.to_path_buf());
        let tokens = lexer::tokenize(text, &file)?;
        parser::Parser::new(tokens, file, self).parse_file()
    }

    /// `include "PATTERN";` in `from`: every match of the glob, relative to
    /// the directory of `from`, in sorted order; files already read are
    /// skipped (as drbdadm does). A pattern without wildcards must exist.
    fn include(&mut self, from: &Path, pattern: &str, at: &Location) -> Result<(), ConfigError> {
        let fail = |reason: String| ConfigError::Include {
            at: at.clone(),
            pattern: pattern.to_string(),
            reason,
        };
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(fail(format!(
                "includes nested deeper than {MAX_INCLUDE_DEPTH}"
            )));
        }
        let base = from.parent().unwrap_or_else(|| Path::new(""));
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let full_text = full
            .to_str()
            .ok_or_else(|| fail("path is not valid UTF-8".to_string()))?;
        let paths = glob::glob(full_text).map_err(|e| fail(format!("bad glob pattern: {e}")))?;
        let mut matched: Vec<PathBuf> = Vec::new();
        for entry in paths {
            matched.push(entry.map_err(|e| fail(e.to_string()))?);
        }
        matched.sort();
        let has_wildcard = pattern.contains(['*', '?', '[']);
        if matched.is_empty() && !has_wildcard {
            return Err(fail("no such file".to_string()));
        }
        for path in matched {
            if !self.first_visit(&path) {
                continue;
            }
            if self.raw.files.len() >= MAX_FILES {
                return Err(fail(format!("more than {MAX_FILES} files")));
            }
            let text = read_text(&path).map_err(|e| match e {
                ConfigError::Io { message, .. } => fail(format!("{}: {message}", path.display())),
                other => other,
            })?;
            self.depth += 1;
            let result = self.parse_text(&text, path.as_path().into());
            self.depth -= 1;
            result?;
        }
        Ok(())
    }
}

/// Reads a configuration file, bounded by [`MAX_FILE_BYTES`].
pub(crate) fn read_text(path: &Path) -> Result<String, ConfigError> {
    let io = |e: std::io::Error| ConfigError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(ConfigError::Io {
            path: path.to_path_buf(),
            message: format!("file larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    String::from_utf8(bytes).map_err(|e| ConfigError::Io {
        path: path.to_path_buf(),
        message: format!("not UTF-8 text ({e})"),
    })
}

/// Parses drbd.conf `text` read from `origin`; `include` statements are
/// resolved relative to the directory of `origin`.
pub fn parse_drbd_conf(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    let mut loader = Loader::new();
    loader.first_visit(origin);
    loader.parse_text(text, origin.into())?;
    assemble(loader.raw)
}
