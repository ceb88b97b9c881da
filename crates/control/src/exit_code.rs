//! Exit codes of the tools, following drbdadm/drbdsetup where they define one.

/// Success.
pub const OK: i32 = 0;
/// A generic failure.
pub const FAILED: i32 = 1;
/// The command line was wrong.
pub const USAGE: i32 = 3;
/// The configuration is wrong, or does not name the resource or this node
/// (drbdadm exits 10 when it cannot use the configuration).
pub const CONFIG: i32 = 10;
/// A state change was refused (drbdsetup's "State change failed" exit code).
pub const STATE_CHANGE_FAILED: i32 = 11;
/// The daemon is not running (drbdsetup's exit code when the module is not loaded).
pub const NO_DAEMON: i32 = 20;
