//! The group state machine: start in order (a failed start stops what was started, in
//! reverse), stop in reverse, monitor (restart the failed resource and those after it;
//! after `failures_max` failures since the group started here, give the group up).
//!
//! Invariant: `started` resources, a prefix of the list, may be running; after a stop
//! that failed the group is [`GroupState::StopFailed`] and still counts as held.

use std::time::Duration;

use tracing::{error, info, warn};

use super::{Action, StepOutcome, StepRunner};
use crate::config::{ResourceKind, ResourceSpec};

/// Where a group stands on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupState {
    /// Nothing runs here.
    Stopped,
    /// Every resource started.
    Running,
    /// Stopped after monitor failures or a failed start: the node gave the group up.
    Failed,
    /// A stop failed: resources may still run here (the operator must clean up).
    StopFailed,
}

/// Default per-action timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Start.
    pub start: Duration,
    /// Stop.
    pub stop: Duration,
    /// Status.
    pub status: Duration,
}

/// Why a start failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure {
    /// The resource that failed and how.
    pub reason: String,
    /// Whether stopping what had started succeeded (false: [`GroupState::StopFailed`]).
    pub rolled_back: bool,
}

/// What a monitor round found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorOutcome {
    /// Every monitored resource runs.
    Healthy,
    /// A resource had failed and was restarted.
    Restarted {
        /// The resource and its status.
        reason: String,
        /// Failures so far.
        failures: u32,
    },
    /// The node gave the group up (stopped it); the peer should take it.
    GaveUp {
        /// Why.
        reason: String,
    },
    /// The group does not run here.
    NotRunning,
}

/// One resource group on this node.
pub struct GroupManager<R: StepRunner> {
    name: String,
    resources: Vec<ResourceSpec>,
    timeouts: Timeouts,
    runner: R,
    started: usize,
    state: GroupState,
    failures: u32,
    failures_max: u32,
}

impl<R: StepRunner> GroupManager<R> {
    /// A stopped group.
    pub fn new(
        name: &str,
        resources: Vec<ResourceSpec>,
        timeouts: Timeouts,
        failures_max: u32,
        runner: R,
    ) -> Self {
        GroupManager {
            name: name.to_string(),
            resources,
            timeouts,
            runner,
            started: 0,
            state: GroupState::Stopped,
            failures: 0,
            failures_max: failures_max.max(1),
        }
    }

    /// The state.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// Whether something of the group may run here.
    pub fn holds(&self) -> bool {
        self.started > 0 || matches!(self.state, GroupState::Running | GroupState::StopFailed)
    }

    /// Monitor failures since the group started here.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The runner (tests inspect fakes through it).
    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// Marks the group as not failed (operator `takeover`).
    pub fn clear_failed(&mut self) {
        if self.state == GroupState::Failed {
            self.state = GroupState::Stopped;
        }
    }

    fn timeout(&self, r: &ResourceSpec, action: Action) -> Duration {
        match action {
            Action::Start => r
                .start_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(self.timeouts.start),
            Action::Stop => r
                .stop_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(self.timeouts.stop),
            Action::Status => self.timeouts.status,
        }
    }

    fn step(&mut self, i: usize, action: Action) -> StepOutcome {
        let r = self.resources[i].clone();
        let timeout = self.timeout(&r, action);
        let outcome = self.runner.run(&r, action, timeout);
        if outcome.is_ok() {
            info!(group = %self.name, resource = %r.label(), %action, "ok");
        } else {
            warn!(group = %self.name, resource = %r.label(), %action, %outcome, "step did not succeed");
        }
        outcome
    }

    /// Starts every resource in order. On a failure, stops what started (reverse).
    pub fn start(&mut self) -> Result<(), StartFailure> {
        if self.state == GroupState::StopFailed {
            return Err(StartFailure {
                reason: "a previous stop failed; clean up by hand first".into(),
                rolled_back: false,
            });
        }
        self.failures = 0;
        info!(group = %self.name, "starting the group");
        let from = self.started;
        for i in from..self.resources.len() {
            // Counted before the step: a start that fails or times out may have half-run.
            self.started = i + 1;
            let outcome = self.step(i, Action::Start);
            if !outcome.is_ok() {
                let reason = format!("{} start {outcome}", self.resources[i].label());
                error!(group = %self.name, %reason, "start failed; stopping what was started");
                let rolled_back = self.stop_from(0).is_ok();
                self.state = if rolled_back {
                    GroupState::Failed
                } else {
                    GroupState::StopFailed
                };
                return Err(StartFailure {
                    reason,
                    rolled_back,
                });
            }
        }
        self.state = GroupState::Running;
        info!(group = %self.name, "group running");
        Ok(())
    }

    /// Stops resources `[first..started)` in reverse; stops at the first failure.
    fn stop_from(&mut self, first: usize) -> Result<(), String> {
        while self.started > first {
            let i = self.started - 1;
            let outcome = self.step(i, Action::Stop);
            if !outcome.is_ok() {
                let reason = format!("{} stop {outcome}", self.resources[i].label());
                error!(group = %self.name, %reason, "stop failed: resources may still run here");
                self.state = GroupState::StopFailed;
                return Err(reason);
            }
            self.started = i;
        }
        Ok(())
    }

    /// Stops every resource in reverse order. Resources are stopped even when this
    /// process did not start them (a restarted daemon does not know): stops are
    /// idempotent.
    pub fn stop(&mut self) -> Result<(), String> {
        info!(group = %self.name, "stopping the group");
        self.started = self.resources.len();
        self.stop_from(0)?;
        if self.state != GroupState::Failed {
            self.state = GroupState::Stopped;
        }
        info!(group = %self.name, "group stopped");
        Ok(())
    }

    fn monitored(r: &ResourceSpec) -> bool {
        !matches!(&r.kind, ResourceKind::Script { monitor: false, .. })
    }

    /// One monitor round: status of each monitored resource, in order.
    pub fn monitor(&mut self) -> MonitorOutcome {
        if self.state != GroupState::Running {
            return MonitorOutcome::NotRunning;
        }
        for i in 0..self.resources.len() {
            if !Self::monitored(&self.resources[i]) {
                continue;
            }
            let outcome = self.step(i, Action::Status);
            if outcome.is_ok() {
                continue;
            }
            self.failures += 1;
            let reason = format!("{} status {outcome}", self.resources[i].label());
            if self.failures >= self.failures_max {
                return self.give_up(format!(
                    "{reason}: {} failures, the limit is {}",
                    self.failures, self.failures_max
                ));
            }
            warn!(group = %self.name, %reason, failures = self.failures, "restarting from the failed resource");
            if let Err(e) = self.stop_from(i) {
                return MonitorOutcome::GaveUp {
                    reason: format!("{reason}; restart: {e}"),
                };
            }
            for j in i..self.resources.len() {
                self.started = j + 1;
                let o = self.step(j, Action::Start);
                if !o.is_ok() {
                    return self.give_up(format!(
                        "{reason}; restart of {} {o}",
                        self.resources[j].label()
                    ));
                }
            }
            return MonitorOutcome::Restarted {
                reason,
                failures: self.failures,
            };
        }
        MonitorOutcome::Healthy
    }

    fn give_up(&mut self, reason: String) -> MonitorOutcome {
        error!(group = %self.name, %reason, "giving the group up");
        match self.stop() {
            Ok(()) => {
                self.state = GroupState::Failed;
                MonitorOutcome::GaveUp { reason }
            }
            Err(e) => MonitorOutcome::GaveUp {
                reason: format!("{reason}; stop failed too: {e}"),
            },
        }
    }
}
