//! The one error type of the configuration layer and the source positions it
//! names.
//!
//! Every error that comes from a configuration text carries a [`Location`]
//! (`file:line:column`, both 1-based, the column counted in characters) so
//! that a user can jump straight to the offending spot.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A position in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file the text came from (as given, includes resolved against it).
    pub file: Arc<Path>,
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
}

impl Location {
    /// A location in `file`.
    pub fn new(file: Arc<Path>, line: u32, column: u32) -> Self {
        Location { file, line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Everything that can be wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file could not be read.
    #[error("{}: cannot read: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },

    /// The text is not what the grammar allows at this point.
    #[error("{at}: expected {expected}, found {found}")]
    Syntax {
        /// Where.
        at: Location,
        /// What the grammar wanted, e.g. "';' after option value".
        expected: String,
        /// What was there, e.g. "'}'" or "end of file".
        found: String,
    },

    /// A `"` string without its closing `"` on the same line.
    #[error("{at}: unterminated string (a string must end with '\"' on the same line)")]
    UnterminatedString {
        /// Where the string starts.
        at: Location,
    },

    /// A `{` without its `}` before the end of the file.
    #[error("{at}: unterminated block: '{{' of {what} is never closed")]
    UnterminatedBlock {
        /// Where the block was opened.
        at: Location,
        /// Which block, e.g. "resource r0".
        what: String,
    },

    /// A word or string longer than drbdadm allows.
    #[error("{at}: token too long ({len} characters, at most {max})")]
    TokenTooLong {
        /// Where the token starts.
        at: Location,
        /// Its length in characters.
        len: usize,
        /// The bound.
        max: usize,
    },

    /// An option name that DRBD 8.4 does not know in this section.
    #[error("{at}: unknown option '{name}' in {section} section{hint}")]
    UnknownOption {
        /// Where.
        at: Location,
        /// The option as written.
        name: String,
        /// The section, e.g. "net".
        section: String,
        /// Extra help, e.g. " (it belongs in the disk section)", or empty.
        hint: String,
    },

    /// A keyword that is not allowed where it appears.
    #[error("{at}: unknown keyword '{word}' in {context}, expected {expected}")]
    UnknownKeyword {
        /// Where.
        at: Location,
        /// The word as written.
        word: String,
        /// Where it appeared, e.g. "resource r0".
        context: String,
        /// The keywords allowed there.
        expected: String,
    },

    /// An option value that is not valid for the option.
    #[error("{at}: invalid value '{value}' for {name}: {reason}")]
    InvalidValue {
        /// Where.
        at: Location,
        /// The option.
        name: String,
        /// The value as written.
        value: String,
        /// Why it is invalid.
        reason: String,
    },

    /// Something that may appear only once appears twice.
    #[error("{at}: duplicate {what} (first given at {first})")]
    Duplicate {
        /// The second occurrence.
        at: Location,
        /// What, e.g. "net section" or "on alice section".
        what: String,
        /// The first occurrence.
        first: Location,
    },

    /// A host section lacks a required statement.
    #[error("{at}: in resource {resource}, on {host}: '{keyword}' keyword missing")]
    MissingKeyword {
        /// The host section.
        at: Location,
        /// The resource.
        resource: String,
        /// The host.
        host: String,
        /// The missing keyword.
        keyword: String,
    },

    /// A resource without any host section.
    #[error("{at}: resource {resource} has no 'on' section")]
    NoHosts {
        /// Where the resource is defined.
        at: Location,
        /// The resource.
        resource: String,
    },

    /// A resource has no host section for the node asked for.
    #[error("{at}: resource {resource} has no 'on' section for host {host}")]
    UnknownHost {
        /// Where the resource is defined.
        at: Location,
        /// The resource.
        resource: String,
        /// The host asked for.
        host: String,
    },

    /// No resource of that name is defined.
    #[error("no resource named '{name}' in the configuration")]
    UnknownResource {
        /// The name asked for.
        name: String,
    },

    /// An option refers to a resource that is not defined.
    #[error("{at}: resource '{target}' mentioned in '{option}' option is not known")]
    UnknownReference {
        /// Where.
        at: Location,
        /// The option, e.g. "resync-after".
        option: String,
        /// The missing resource.
        target: String,
    },

    /// An include statement names a file that cannot be used.
    #[error("{at}: cannot include '{pattern}': {reason}")]
    Include {
        /// The include statement.
        at: Location,
        /// The file or glob pattern.
        pattern: String,
        /// Why.
        reason: String,
    },

    /// Valid DRBD 8.4 syntax that rdbd cannot represent at all.
    #[error("{at}: {what} is not supported by rdbd")]
    Unsupported {
        /// Where.
        at: Location,
        /// What, e.g. "stacked-on-top-of".
        what: String,
    },

    /// The TOML text itself is malformed.
    #[error("{at}: invalid TOML: {message}")]
    Toml {
        /// Where (line 1, column 1 when the parser gave no position).
        at: Location,
        /// The TOML parser's message.
        message: String,
    },
}

impl ConfigError {
    /// The position the error points at, when it has one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Io { .. } | ConfigError::UnknownResource { .. } => None,
            ConfigError::Syntax { at, .. }
            | ConfigError::UnterminatedString { at }
            | ConfigError::UnterminatedBlock { at, .. }
            | ConfigError::TokenTooLong { at, .. }
            | ConfigError::UnknownOption { at, .. }
            | ConfigError::UnknownKeyword { at, .. }
            | ConfigError::InvalidValue { at, .. }
            | ConfigError::Duplicate { at, .. }
            | ConfigError::MissingKeyword { at, .. }
            | ConfigError::NoHosts { at, .. }
            | ConfigError::UnknownHost { at, .. }
            | ConfigError::UnknownReference { at, .. }
            | ConfigError::Include { at, .. }
            | ConfigError::Unsupported { at, .. }
            | ConfigError::Toml { at, .. } => Some(at),
        }
    }
}
