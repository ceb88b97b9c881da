//! Exit codes of the tools, following drbdadm/drbdsetup where they define one.

/// Success.
pub const OK: i32 = 0;
/// A generic failure.
pub const FAILED: i32 = 1;
/// The command line was wrong.
pub const USAGE: i32 = 3;
/// The configuration is wrong, or does not name the resource or this node
/// (drbdadm exits 10 when it cannot use the configuration); also drbdsetup's exit code
/// for every request the kernel refuses with an `ERR_*` code ("Failure: (NNN) ..."),
/// such as a refused resize.
pub const CONFIG: i32 = 10;
/// A state change was refused (drbdsetup's "State change failed" exit code).
pub const STATE_CHANGE_FAILED: i32 = 11;
/// The daemon is not running (drbdsetup's exit code when the module is not loaded).
pub const NO_DAEMON: i32 = 20;
/// drbdsetup's exit code for "State change failed: (-2) Need access to UpToDate data"
/// (`SS_NO_UP_TO_DATE_DISK`).
pub const NO_UP_TO_DATE_DISK: i32 = 17;
/// drbdsetup's exit code for "(-16) Disk state is lower than outdated".
pub const LOWER_THAN_OUTDATED: i32 = 5;
/// drbdsetup's exit code for "(-4) Need access to a local disk" (`SS_NO_LOCAL_DISK`).
pub const NO_LOCAL_DISK: i32 = 16;

/// The exit code drbdsetup gives for a refused state change, from the
/// "State change failed: (CODE) ..." text: 17, 5 and 16 for the codes above,
/// [`STATE_CHANGE_FAILED`] for every other one.
pub fn for_state_change(message: &str) -> i32 {
    let code = message
        .split("State change failed: (")
        .nth(1)
        .and_then(|rest| rest.split(')').next());
    match code {
        Some("-2") => NO_UP_TO_DATE_DISK,
        Some("-16") => LOWER_THAN_OUTDATED,
        Some("-4") => NO_LOCAL_DISK,
        _ => STATE_CHANGE_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_change_codes_as_drbdsetup_exits() {
        let m = |c: &str| format!("r0: State change failed: ({c}) text (with (parens))");
        assert_eq!(for_state_change(&m("-2")), 17);
        assert_eq!(for_state_change(&m("-16")), 5);
        assert_eq!(for_state_change(&m("-4")), 16);
        assert_eq!(for_state_change(&m("-12")), 11);
        assert_eq!(for_state_change("no code at all"), 11);
    }
}
