//! A blocking control-socket client for the command-line tools.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::message::{Request, Response, MAX_LINE_BYTES};

/// Why a control request could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon listens on the socket.
    #[error("no rdbd daemon is running (cannot connect to {path}: {source})")]
    NotRunning {
        /// The control socket path.
        path: PathBuf,
        /// Why the connection failed.
        source: std::io::Error,
    },
    /// The exchange failed midway.
    #[error("control socket {path}: {source}")]
    Io {
        /// The control socket path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The daemon's answer was not a response.
    #[error("control socket {path}: malformed response: {detail}")]
    Malformed {
        /// The control socket path.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

/// A connection to the daemon's control socket.
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
}

impl Client {
    /// The control socket of a run directory.
    pub fn socket_path(run_dir: &Path) -> PathBuf {
        run_dir.join("control.sock")
    }

    /// Connects to the daemon of `run_dir`; `timeout` bounds each exchange.
    pub fn connect(run_dir: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let path = Self::socket_path(run_dir);
        let stream = UnixStream::connect(&path).map_err(|source| ClientError::NotRunning {
            path: path.clone(),
            source,
        })?;
        let io = |source| ClientError::Io {
            path: path.clone(),
            source,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        Ok(Client {
            path,
            reader: BufReader::new(stream),
        })
    }

    /// Sends a request and hands every response line to `each` until the daemon
    /// closes the stream or `each` returns false.
    pub fn stream(
        &mut self,
        request: &Request,
        mut each: impl FnMut(Response) -> bool,
    ) -> Result<(), ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        self.reader.get_mut().set_read_timeout(None).map_err(io)?;
        let mut line = serde_json::to_vec(request).map_err(|e| io(e.into()))?;
        line.push(b'\n');
        self.reader.get_mut().write_all(&line).map_err(io)?;
        loop {
            let mut answer = Vec::new();
            let read = (&mut self.reader)
                .take(MAX_LINE_BYTES as u64)
                .read_until(b'\n', &mut answer)
                .map_err(io)?;
            if read == 0 {
                return Ok(());
            }
            let response = serde_json::from_slice(&answer).map_err(|e| ClientError::Malformed {
                path: self.path.clone(),
                detail: e.to_string(),
            })?;
            if !each(response) {
                return Ok(());
            }
        }
    }

    /// Sends one request and waits for its response.
    pub fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(request).map_err(|e| io(e.into()))?;
        line.push(b'\n');
        self.reader.get_mut().write_all(&line).map_err(io)?;
        let mut answer = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut answer)
            .map_err(io)?;
        if read == 0 {
            return Err(ClientError::Malformed {
                path: self.path.clone(),
                detail: "connection closed without an answer".into(),
            });
        }
        serde_json::from_slice(&answer).map_err(|e| ClientError::Malformed {
            path: self.path.clone(),
            detail: e.to_string(),
        })
    }
}
