//! `verify`, `pause-sync` and `resume-sync` on a resource that is up: the control
//! side (D84 drbd_nl.c `drbd_adm_start_ov`, `drbd_adm_pause_sync`,
//! `drbd_adm_resume_sync`).
//!
//! The control request becomes a [`super::Command::Sync`] for the connection manager;
//! the session answers once the state change is done (verify: after the peer accepted
//! VerifyT) or refused. Refusals carry DRBD's texts and drbdsetup's exit codes:
//! `SS_NEED_CONNECTION` / `SS_NO_VERIFY_ALG` / `SS_RESYNC_RUNNING` (state change failed,
//! 11) and `ERR_PAUSE_IS_SET` / `ERR_PAUSE_IS_CLEAR` / `ERR_PIC_PEER_DEP` (10).

use std::sync::atomic::Ordering;
use std::time::Duration;

use rdbd_control::{exit_code, AdminCommand, Response};
use tokio::sync::oneshot;

use super::Command;
use crate::resource::Resource;

/// What the session is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncCommand {
    /// Start online verify as VerifyS.
    Verify {
        /// First sector (rounded down to a bitmap block).
        start_sector: u64,
        /// Stop once this sector is reached.
        stop_sector: Option<u64>,
    },
    /// `user_isp` changed (set or cleared already): apply it and tell the peer.
    PauseChanged,
}

/// The session's answer: `Err((exit code, message))`.
pub type SyncReply = oneshot::Sender<Result<(), (i32, String)>>;

/// `SS_RESYNC_RUNNING`.
pub const SS_RESYNC_RUNNING: i32 = -8;
/// `SS_NO_VERIFY_ALG`.
pub const SS_NO_VERIFY_ALG: i32 = -14;
/// `SS_NEED_CONNECTION`.
pub const SS_NEED_CONNECTION: i32 = -15;

/// DRBD's text for the state change results of this module.
pub fn state_error(code: i32) -> (i32, String) {
    let text = match code {
        SS_RESYNC_RUNNING => "Can not start OV/resync since it is already active",
        SS_NO_VERIFY_ALG => {
            "Need a verify algorithm to start online verify (You need to set verify-alg in the net section)"
        }
        SS_NEED_CONNECTION => "Need a connection to start verify or resync",
        other => rdbd_replicator::peer_state::retcode_text(other),
    };
    (
        exit_code::STATE_CHANGE_FAILED,
        format!("State change failed: ({code}) {text}"),
    )
}

/// The connection state a resync moves to when its pause flags (`paused`: any of
/// user_isp / peer_isp / aftr_isp) say so (drbd_state.c `sanitize_state`); `None` when
/// the state stays.
pub fn pause_transition(cs: rdbd_types::ConnState, paused: bool) -> Option<rdbd_types::ConnState> {
    use rdbd_types::ConnState as C;
    match (cs, paused) {
        (C::SyncSource, true) => Some(C::PausedSyncS),
        (C::SyncTarget, true) => Some(C::PausedSyncT),
        (C::PausedSyncS, false) => Some(C::SyncSource),
        (C::PausedSyncT, false) => Some(C::SyncTarget),
        _ => None,
    }
}

/// The answer to a sync command while no session runs.
pub(super) fn not_connected() -> (i32, String) {
    state_error(SS_NEED_CONNECTION)
}

fn config_error(code: u32, text: &str) -> Response {
    Response::error(exit_code::CONFIG, format!("({code}) {text}"))
}

/// Carries out `verify` / `pause-sync` / `resume-sync` for `resource`.
pub async fn sync_admin(resource: &Resource, command: AdminCommand) -> Response {
    let name = &resource.name;
    let Some(link) = resource.peer_link() else {
        let (code, text) = not_connected();
        return Response::error(code, format!("{name}: {text}"));
    };
    let sync = match command {
        AdminCommand::Verify {
            start_sector,
            stop_sector,
        } => SyncCommand::Verify {
            // Without --start: resume where the last run stopped (DRBD drbd_adm_start_ov).
            start_sector: start_sector
                .unwrap_or_else(|| link.ov_start_sector.load(Ordering::Relaxed)),
            stop_sector,
        },
        AdminCommand::PauseSync => {
            if link.user_isp.swap(true, Ordering::SeqCst) {
                return config_error(134, "Sync-pause flag is already set");
            }
            SyncCommand::PauseChanged
        }
        AdminCommand::ResumeSync => {
            if !link.user_isp.swap(false, Ordering::SeqCst) {
                let st = resource.state();
                let paused = matches!(
                    st.cstate,
                    rdbd_types::ConnState::PausedSyncS | rdbd_types::ConnState::PausedSyncT
                );
                if paused && link.aftr_isp.load(Ordering::SeqCst) {
                    return config_error(
                        156,
                        "Sync-pause flag is set by the resync-after dependency (it resumes by itself)",
                    );
                }
                if paused && link.peer_isp.load(Ordering::SeqCst) {
                    return config_error(
                        157,
                        "Sync-pause flag is set by the peer (resume-sync there)",
                    );
                }
                return config_error(135, "Sync-pause flag is already cleared");
            }
            SyncCommand::PauseChanged
        }
        other => {
            return Response::error(
                exit_code::USAGE,
                format!("{name}: {} is not a sync command", other.name()),
            )
        }
    };
    let (tx, rx) = oneshot::channel();
    if link.commands.send(Command::Sync(sync, tx)).is_err() {
        // Pause flags stay set for the next connection.
        return match sync {
            SyncCommand::PauseChanged => Response::ok(),
            SyncCommand::Verify { .. } => {
                let (code, text) = not_connected();
                Response::error(code, format!("{name}: {text}"))
            }
        };
    }
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(Ok(()))) => Response::ok(),
        Ok(Ok(Err((code, text)))) => Response::error(code, format!("{name}: {text}")),
        // The manager dropped the request (connection lost meanwhile).
        Ok(Err(_)) => match sync {
            SyncCommand::PauseChanged => Response::ok(),
            SyncCommand::Verify { .. } => {
                let (code, text) = not_connected();
                Response::error(code, format!("{name}: {text}"))
            }
        },
        Err(_) => Response::error(
            exit_code::STATE_CHANGE_FAILED,
            format!("{name}: State change failed: (-10) the peer did not answer within 10 s"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdbd_types::ConnState as C;

    #[test]
    fn pause_flags_move_only_resync_states() {
        assert_eq!(pause_transition(C::SyncSource, true), Some(C::PausedSyncS));
        assert_eq!(pause_transition(C::SyncTarget, true), Some(C::PausedSyncT));
        assert_eq!(pause_transition(C::PausedSyncS, false), Some(C::SyncSource));
        assert_eq!(pause_transition(C::PausedSyncT, false), Some(C::SyncTarget));
        for cs in [
            C::Connected,
            C::VerifyS,
            C::VerifyT,
            C::WFBitMapS,
            C::StandAlone,
        ] {
            assert_eq!(pause_transition(cs, true), None, "{cs}");
            assert_eq!(pause_transition(cs, false), None, "{cs}");
        }
        assert_eq!(pause_transition(C::PausedSyncS, true), None);
        assert_eq!(pause_transition(C::SyncTarget, false), None);
    }

    #[test]
    fn refusals_carry_drbds_codes_and_texts() {
        let (code, text) = state_error(SS_NO_VERIFY_ALG);
        assert_eq!(code, exit_code::STATE_CHANGE_FAILED);
        assert!(text.starts_with("State change failed: (-14) "), "{text}");
        assert!(text.contains("verify-alg"), "{text}");
        let (_, text) = state_error(SS_NEED_CONNECTION);
        assert!(
            text.contains("(-15) Need a connection to start verify or resync"),
            "{text}"
        );
        let (_, text) = state_error(SS_RESYNC_RUNNING);
        assert!(text.contains("(-8) Can not start OV/resync since it is already active"));
        assert_eq!(not_connected(), state_error(SS_NEED_CONNECTION));
    }
}
