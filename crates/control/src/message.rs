//! Requests and responses of the control socket.

use serde::{Deserialize, Serialize};

use crate::status::ResourceStatus;

/// The largest request or response line either side accepts, in bytes.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// What a tool asks the daemon to do. Resource names are as in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Is the daemon alive? Answered with [`Response::Ok`].
    Ping,
    /// Re-read the configuration file and bring the resource up (attach its disk,
    /// start networking where configured).
    Up {
        /// The resource name.
        resource: String,
    },
    /// Take the resource down: close its export, detach its disk.
    Down {
        /// The resource name.
        resource: String,
    },
    /// Promote the resource to Primary.
    Primary {
        /// The resource name.
        resource: String,
        /// `--force`: promote even without UpToDate data (marks it UpToDate).
        force: bool,
    },
    /// Demote the resource to Secondary.
    Secondary {
        /// The resource name.
        resource: String,
    },
    /// The status of one resource, or of all that are up.
    Status {
        /// `None` for every resource.
        resource: Option<String>,
    },
    /// Stop the daemon once every resource is down.
    Shutdown,
    /// Start connecting to the peer (from StandAlone).
    Connect {
        /// The resource name.
        resource: String,
        /// `--discard-my-data`: in a split brain, this node's data loses.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        discard_my_data: bool,
    },
    /// Drop the connection to the peer and stay StandAlone.
    Disconnect {
        /// The resource name.
        resource: String,
    },
    /// Attach the backing disk of a resource that is up.
    Attach {
        /// The resource name.
        resource: String,
    },
    /// Detach the backing disk of a resource that is up.
    Detach {
        /// The resource name.
        resource: String,
    },
    /// `invalidate-remote`: a full sync with this node as source (connected only).
    InvalidateRemote {
        /// The resource name.
        resource: String,
    },
    /// `resize`: grow with the backing device (the meta-data moves to its new end).
    Resize {
        /// The resource name.
        resource: String,
        /// `--size` in bytes (default: what the backing devices offer).
        size_bytes: Option<u64>,
        /// `--assume-clean`: the new area is not resynced.
        assume_clean: bool,
        /// `--assume-peer-has-space`: grow even without a connected peer.
        assume_peer_has_space: bool,
        /// `--force`: confirms a `--size` smaller than the current size (a shrink).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        force: bool,
    },
    /// `adjust`: compare the configuration file with what runs and apply the
    /// difference (bring up, attach, connect, reconnect with new net options).
    Adjust {
        /// The resource name.
        resource: String,
        /// `-d`: only say what would be done (one line per command).
        dry_run: bool,
    },
    /// A state or meta-data command on a resource that is up (`outdate`,
    /// `invalidate`, `new-current-uuid`).
    Admin {
        /// The resource name.
        resource: String,
        /// What to do.
        command: AdminCommand,
    },
    /// `events2`: the daemon answers with [`Response::Event`] lines: the current
    /// state (`exists ...`, then `exists -`), then, unless `now`, every change
    /// until the client closes the connection.
    Events {
        /// `--now`: stop after the current state.
        now: bool,
    },
}

impl Request {
    /// The operation's name as on the wire (for log lines).
    pub fn op_name(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::Up { .. } => "up",
            Request::Down { .. } => "down",
            Request::Primary { .. } => "primary",
            Request::Secondary { .. } => "secondary",
            Request::Status { .. } => "status",
            Request::Shutdown => "shutdown",
            Request::Connect { .. } => "connect",
            Request::Disconnect { .. } => "disconnect",
            Request::Attach { .. } => "attach",
            Request::Detach { .. } => "detach",
            Request::InvalidateRemote { .. } => "invalidate-remote",
            Request::Adjust { .. } => "adjust",
            Request::Resize { .. } => "resize",
            Request::Events { .. } => "events2",
            Request::Admin { command, .. } => command.name(),
        }
    }

    /// The resource a request names, if any (for log lines).
    pub fn resource(&self) -> Option<&str> {
        match self {
            Request::Admin { resource, .. } | Request::Adjust { resource, .. } => Some(resource),
            Request::InvalidateRemote { resource } | Request::Resize { resource, .. } => {
                Some(resource)
            }
            Request::Up { resource }
            | Request::Down { resource }
            | Request::Primary { resource, .. }
            | Request::Secondary { resource }
            | Request::Connect { resource, .. }
            | Request::Disconnect { resource }
            | Request::Attach { resource }
            | Request::Detach { resource } => Some(resource),
            Request::Status { resource } => resource.as_deref(),
            Request::Ping | Request::Shutdown | Request::Events { .. } => None,
        }
    }
}

/// Commands carried by [`Request::Admin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminCommand {
    /// Mark the (Secondary, disconnected) data Outdated.
    Outdate,
    /// Mark the whole local disk out of sync and Inconsistent.
    Invalidate,
    /// Start a new data generation; with `clear_bitmap`, forget what is out of sync
    /// (to skip the initial sync of a fresh pair).
    NewCurrentUuid {
        /// `--clear-bitmap`.
        clear_bitmap: bool,
    },
    /// Start online verify against the connected peer (this node becomes VerifyS).
    Verify {
        /// `--start`: the first sector to verify (rounded down to a 4 KiB block).
        start_sector: Option<u64>,
        /// `--stop`: verify stops once this sector is reached.
        stop_sector: Option<u64>,
    },
    /// Set the user's sync-pause flag (`user_isp`): a running resync pauses.
    PauseSync,
    /// Clear the user's sync-pause flag: a paused resync continues where it stopped.
    ResumeSync,
    /// End an I/O freeze (`susp-fen` after a failed fence-peer): writes continue.
    ResumeIo,
}

impl AdminCommand {
    /// The drbdadm command name.
    pub fn name(self) -> &'static str {
        match self {
            AdminCommand::Outdate => "outdate",
            AdminCommand::Invalidate => "invalidate",
            AdminCommand::NewCurrentUuid { .. } => "new-current-uuid",
            AdminCommand::Verify { .. } => "verify",
            AdminCommand::PauseSync => "pause-sync",
            AdminCommand::ResumeSync => "resume-sync",
            AdminCommand::ResumeIo => "resume-io",
        }
    }
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    /// Done; `message` is printed by the tool when not empty.
    Ok {
        /// Informational text.
        message: String,
    },
    /// Failed; `message` is one line saying why, `exit_code` is what the tool exits with
    /// (see [`crate::exit_code`]).
    Error {
        /// One line naming what was wrong.
        message: String,
        /// The tool's exit code.
        exit_code: i32,
    },
    /// One line of an [`Request::Events`] stream.
    Event {
        /// The events2 line.
        line: String,
    },
    /// The answer to [`Request::Status`].
    Status {
        /// One entry per resource, in minor order.
        resources: Vec<ResourceStatus>,
    },
}

impl Response {
    /// A success without a message.
    pub fn ok() -> Self {
        Response::Ok {
            message: String::new(),
        }
    }

    /// A failure with its exit code.
    pub fn error(exit_code: i32, message: impl Into<String>) -> Self {
        Response::Error {
            message: message.into(),
            exit_code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_line_and_round_trip() {
        let reqs = [
            Request::Ping,
            Request::Up {
                resource: "r0".into(),
            },
            Request::Primary {
                resource: "data".into(),
                force: true,
            },
            Request::Status { resource: None },
        ];
        for r in reqs {
            let line = serde_json::to_string(&r).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        }
        let line = serde_json::to_string(&Request::Primary {
            resource: "r0".into(),
            force: false,
        })
        .unwrap();
        assert_eq!(line, r#"{"op":"primary","resource":"r0","force":false}"#);
    }
}
