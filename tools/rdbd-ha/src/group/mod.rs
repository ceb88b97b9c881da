//! Resource groups: started in order, stopped in reverse, monitored; each step through
//! a [`StepRunner`] with a timeout. [`manager::GroupManager`] holds the rules and does
//! no I/O itself; [`shell::ShellRunner`] runs the real commands.

pub mod attach;
pub mod command;
pub mod garp;
pub mod manager;
pub mod shell;

use std::time::Duration;

use crate::config::ResourceSpec;

pub use manager::{GroupManager, GroupState, MonitorOutcome, StartFailure, Timeouts};

/// What to do with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start it (idempotent: starting a running resource succeeds).
    Start,
    /// Stop it (idempotent: stopping a stopped resource succeeds).
    Stop,
    /// Check whether it runs (LSB status).
    Status,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Status => "status",
        })
    }
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// Done (status: running).
    Ok,
    /// Status only: the resource is not running (LSB status 1..=3), with a detail.
    NotRunning(String),
    /// Failed, with why.
    Failed(String),
    /// Did not finish within its timeout (the runner killed it).
    TimedOut,
}

impl StepOutcome {
    /// Whether the step succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, StepOutcome::Ok)
    }
}

impl std::fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepOutcome::Ok => f.write_str("ok"),
            StepOutcome::NotRunning(d) => write!(f, "not running ({d})"),
            StepOutcome::Failed(d) => write!(f, "failed ({d})"),
            StepOutcome::TimedOut => f.write_str("timed out"),
        }
    }
}

/// Runs one action on one resource within `timeout`.
pub trait StepRunner: Send {
    /// Runs `action` on `resource`.
    fn run(&mut self, resource: &ResourceSpec, action: Action, timeout: Duration) -> StepOutcome;
}
