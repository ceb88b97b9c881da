//! One thread per resource group: runs starts, stops and monitor rounds so the main
//! loop keeps sending heartbeats while a step takes its time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::group::{GroupManager, GroupState, MonitorOutcome, StepRunner};

/// A command for a group worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Start the group.
    Start,
    /// Stop the group.
    Stop,
    /// Forget a give-up (operator takeover).
    ClearFailed,
}

/// What a worker reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The group index.
    pub group: usize,
    /// The state after the operation.
    pub state: GroupState,
    /// Whether something of the group may run here.
    pub holds: bool,
    /// Monitor failures since the start.
    pub failures: u32,
    /// What happened, for the log and status.
    pub event: String,
    /// Whether this ends a Start/Stop command (the main loop's busy flag).
    pub completes_command: bool,
}

/// Runs the worker loop for group `index` until the command channel closes.
pub fn spawn<R: StepRunner + 'static>(
    index: usize,
    mut manager: GroupManager<R>,
    monitor_interval: Option<Duration>,
    maintenance: Arc<AtomicBool>,
    commands: Receiver<Command>,
    reports: Sender<Report>,
) {
    let name = format!("group-{index}");
    let _ = std::thread::Builder::new().name(name).spawn(move || {
        let mut next_monitor =
            Instant::now() + monitor_interval.unwrap_or(Duration::from_secs(3600));
        loop {
            let wait = next_monitor.saturating_duration_since(Instant::now());
            let cmd = match commands.recv_timeout(wait) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let report = |m: &GroupManager<R>, event: String, completes_command: bool| Report {
                group: index,
                state: m.state(),
                holds: m.holds(),
                failures: m.failures(),
                event,
                completes_command,
            };
            let r = match cmd {
                Some(Command::Start) => {
                    let event = match manager.start() {
                        Ok(()) => "started".to_string(),
                        Err(f) => format!(
                            "start failed: {}{}",
                            f.reason,
                            if f.rolled_back {
                                "; stopped what had started"
                            } else {
                                "; STOP FAILED too"
                            }
                        ),
                    };
                    if let Some(i) = monitor_interval {
                        next_monitor = Instant::now() + i;
                    }
                    report(&manager, event, true)
                }
                Some(Command::Stop) => {
                    let event = match manager.stop() {
                        Ok(()) => "stopped".to_string(),
                        Err(e) => format!("stop failed: {e}"),
                    };
                    report(&manager, event, true)
                }
                Some(Command::ClearFailed) => {
                    manager.clear_failed();
                    report(&manager, "failure cleared".into(), false)
                }
                None => {
                    let Some(i) = monitor_interval else {
                        next_monitor = Instant::now() + Duration::from_secs(3600);
                        continue;
                    };
                    next_monitor = Instant::now() + i;
                    if maintenance.load(Ordering::Relaxed) {
                        continue;
                    }
                    match manager.monitor() {
                        MonitorOutcome::Healthy | MonitorOutcome::NotRunning => continue,
                        MonitorOutcome::Restarted { reason, failures } => report(
                            &manager,
                            format!("monitor: {reason}; restarted (failure {failures})"),
                            false,
                        ),
                        MonitorOutcome::GaveUp { reason } => report(
                            &manager,
                            format!("monitor: gave the group up: {reason}"),
                            false,
                        ),
                    }
                }
            };
            if reports.send(r).is_err() {
                return;
            }
        }
    });
}
