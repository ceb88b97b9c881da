//! The crate's error type: every message names exactly what was wrong and where.

use std::path::PathBuf;

/// Errors of rdbd-ha's configuration readers, codecs and step runners.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    /// A configuration file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A line of a heartbeat-style file (ha.cf, haresources, authkeys) is wrong.
    #[error("{file} line {line}: {message}")]
    Syntax {
        /// The file name (or a description of it).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The TOML configuration could not be parsed.
    #[error("{path}: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The configuration is syntactically fine but inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A heartbeat packet was rejected.
    #[error("heartbeat packet rejected: {0}")]
    Packet(crate::proto::PacketError),
    /// A command could not be started.
    #[error("cannot run {command}: {error}")]
    Spawn {
        /// The program.
        command: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Another I/O error.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, HaError>;
