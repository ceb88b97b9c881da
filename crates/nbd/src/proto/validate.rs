//! Validation of a decoded request against what was negotiated for the
//! connection, as a pure function returning the NBD error to send.
//!
//! Rules (spec "Error values" and the per-command sections):
//! - unknown command, undocumented or unadvertised flag, unadvertised command -> `EINVAL`;
//! - write, trim or write-zeroes on a read-only export -> `EPERM`;
//! - zero length, READ/WRITE longer than the maximum payload -> `EINVAL`;
//! - a range past the end (or overflowing u64): `ENOSPC` for WRITE and
//!   WRITE_ZEROES, `EINVAL` for READ, TRIM, CACHE, BLOCK_STATUS;
//! - offset or length not a multiple of the minimum block size -> `EINVAL`
//!   (a length that ends exactly at the end of the export is allowed).
//!
//! FLUSH ignores offset and length, DISC is never rejected.

use super::consts::{cmd_flag, errno, tflag};
use super::request::{Command, Request};

/// What a connection negotiated, as far as request validation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransmissionParams {
    /// Export size in bytes.
    pub size_bytes: u64,
    /// Transmission flags sent to the client (`tflag::*`).
    pub flags: u16,
    /// Minimum block size (alignment of offsets and lengths), a power of two.
    pub block_size_min: u32,
    /// Largest READ/WRITE payload accepted.
    pub payload_max_bytes: u32,
    /// Structured replies were negotiated.
    pub structured: bool,
    /// Context id of `base:allocation` if it was selected for this export.
    pub meta_context_id: Option<u32>,
}

/// Why a request is refused: the NBD error value and a message for the log
/// and for structured error chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// NBD error value (`errno::*`).
    pub errno: u32,
    /// What was wrong.
    pub reason: &'static str,
}

fn reject(errno: u32, reason: &'static str) -> Result<(), Rejection> {
    Err(Rejection { errno, reason })
}

/// Checks `req` against `params`; `Ok` means the device may execute it.
pub fn validate_request(req: &Request, params: &TransmissionParams) -> Result<(), Rejection> {
    let advertised = |flag: u16| params.flags & flag != 0;
    let command = req.command;
    if let Command::Unknown(_) = command {
        return reject(errno::EINVAL, "unknown command");
    }
    if command == Command::Disconnect {
        return Ok(());
    }

    let mut allowed_flags = match command {
        Command::Read if advertised(tflag::SEND_DF) => cmd_flag::DF,
        Command::WriteZeroes if advertised(tflag::SEND_FAST_ZERO) => {
            cmd_flag::NO_HOLE | cmd_flag::FAST_ZERO
        }
        Command::WriteZeroes => cmd_flag::NO_HOLE,
        Command::BlockStatus => cmd_flag::REQ_ONE,
        _ => 0,
    };
    if advertised(tflag::SEND_FUA) {
        allowed_flags |= cmd_flag::FUA;
    }
    if req.flags & !allowed_flags != 0 {
        return reject(
            errno::EINVAL,
            "command flag not allowed for this command or not advertised",
        );
    }

    let supported = match command {
        Command::Flush => advertised(tflag::SEND_FLUSH),
        Command::Trim => advertised(tflag::SEND_TRIM),
        Command::WriteZeroes => advertised(tflag::SEND_WRITE_ZEROES),
        Command::Cache => advertised(tflag::SEND_CACHE),
        Command::BlockStatus => params.structured && params.meta_context_id.is_some(),
        _ => true,
    };
    if !supported {
        return reject(
            errno::EINVAL,
            if command == Command::BlockStatus {
                "BLOCK_STATUS without structured replies and a selected base:allocation context"
            } else {
                "command not advertised for this export"
            },
        );
    }
    if command == Command::Flush {
        return Ok(());
    }

    let writes = matches!(
        command,
        Command::Write | Command::Trim | Command::WriteZeroes
    );
    if writes && advertised(tflag::READ_ONLY) {
        return reject(errno::EPERM, "write to a read-only export");
    }
    if req.length == 0 {
        return reject(errno::EINVAL, "zero length");
    }
    if matches!(command, Command::Read | Command::Write) && req.length > params.payload_max_bytes {
        return reject(errno::EINVAL, "length exceeds the maximum payload size");
    }
    let end = req.offset.checked_add(u64::from(req.length));
    let end = match end {
        Some(end) if end <= params.size_bytes => end,
        _ => {
            return match command {
                Command::Write | Command::WriteZeroes => {
                    reject(errno::ENOSPC, "range beyond the end of the export")
                }
                _ => reject(errno::EINVAL, "range beyond the end of the export"),
            }
        }
    };
    let min = u64::from(params.block_size_min.max(1));
    if req.offset % min != 0 || (u64::from(req.length) % min != 0 && end != params.size_bytes) {
        return reject(
            errno::EINVAL,
            "offset or length not a multiple of the minimum block size",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u16 = tflag::HAS_FLAGS
        | tflag::SEND_FLUSH
        | tflag::SEND_FUA
        | tflag::SEND_TRIM
        | tflag::SEND_WRITE_ZEROES
        | tflag::SEND_FAST_ZERO
        | tflag::SEND_CACHE;

    fn params() -> TransmissionParams {
        TransmissionParams {
            size_bytes: 1 << 20,
            flags: ALL,
            block_size_min: 512,
            payload_max_bytes: 64 * 1024,
            structured: true,
            meta_context_id: Some(1),
        }
    }

    fn req(command: Command, flags: u16, offset: u64, length: u32) -> Request {
        Request {
            flags,
            command,
            cookie: 1,
            offset,
            length,
        }
    }

    fn errno_of(r: Request, p: &TransmissionParams) -> u32 {
        validate_request(&r, p)
            .map(|_| 0)
            .unwrap_or_else(|e| e.errno)
    }

    #[test]
    fn accepts_valid_requests() {
        let p = params();
        for command in [
            Command::Read,
            Command::Write,
            Command::Trim,
            Command::Cache,
            Command::BlockStatus,
        ] {
            assert_eq!(errno_of(req(command, 0, 4096, 4096), &p), 0, "{command}");
        }
        assert_eq!(errno_of(req(Command::Write, cmd_flag::FUA, 0, 512), &p), 0);
        assert_eq!(
            errno_of(
                req(
                    Command::WriteZeroes,
                    cmd_flag::NO_HOLE | cmd_flag::FAST_ZERO,
                    0,
                    1 << 20
                ),
                &p
            ),
            0
        );
        assert_eq!(
            errno_of(req(Command::BlockStatus, cmd_flag::REQ_ONE, 0, 1 << 20), &p),
            0
        );
        assert_eq!(errno_of(req(Command::Flush, 0, 0, 0), &p), 0);
        assert_eq!(errno_of(req(Command::Disconnect, 0, 0, 0), &p), 0);
        // Trim/zeroes may exceed the payload maximum.
        assert_eq!(errno_of(req(Command::Trim, 0, 0, 1 << 20), &p), 0);
    }

    #[test]
    fn rejects_with_the_spec_errors() {
        let p = params();
        assert_eq!(
            errno_of(req(Command::Unknown(42), 0, 0, 512), &p),
            errno::EINVAL
        );
        assert_eq!(
            errno_of(req(Command::Read, cmd_flag::DF, 0, 512), &p),
            errno::EINVAL
        );
        assert_eq!(
            errno_of(req(Command::Read, cmd_flag::NO_HOLE, 0, 512), &p),
            errno::EINVAL
        );
        assert_eq!(errno_of(req(Command::Read, 0, 0, 0), &p), errno::EINVAL);
        assert_eq!(
            errno_of(req(Command::Read, 0, 0, 64 * 1024 + 512), &p),
            errno::EINVAL
        );
        assert_eq!(
            errno_of(req(Command::Read, 0, (1 << 20) - 512, 1024), &p),
            errno::EINVAL
        );
        assert_eq!(
            errno_of(req(Command::Trim, 0, (1 << 20) - 512, 1024), &p),
            errno::EINVAL
        );
        assert_eq!(
            errno_of(req(Command::Write, 0, (1 << 20) - 512, 1024), &p),
            errno::ENOSPC
        );
        assert_eq!(
            errno_of(req(Command::WriteZeroes, 0, u64::MAX - 100, 1024), &p),
            errno::ENOSPC
        );
        assert_eq!(
            errno_of(req(Command::Read, 0, u64::MAX, 512), &p),
            errno::EINVAL
        );
        assert_eq!(errno_of(req(Command::Read, 0, 100, 512), &p), errno::EINVAL);
        assert_eq!(errno_of(req(Command::Write, 0, 0, 100), &p), errno::EINVAL);

        let mut ro = params();
        ro.flags |= tflag::READ_ONLY;
        for command in [Command::Write, Command::Trim, Command::WriteZeroes] {
            assert_eq!(
                errno_of(req(command, 0, 0, 512), &ro),
                errno::EPERM,
                "{command}"
            );
        }
        assert_eq!(errno_of(req(Command::Read, 0, 0, 512), &ro), 0);

        let mut bare = params();
        bare.flags = tflag::HAS_FLAGS;
        bare.structured = false;
        bare.meta_context_id = None;
        assert_eq!(
            errno_of(req(Command::Write, cmd_flag::FUA, 0, 512), &bare),
            errno::EINVAL
        );
        for command in [
            Command::Flush,
            Command::Trim,
            Command::WriteZeroes,
            Command::Cache,
            Command::BlockStatus,
        ] {
            assert_eq!(
                errno_of(req(command, 0, 0, 512), &bare),
                errno::EINVAL,
                "{command}"
            );
        }
        let mut no_fast = params();
        no_fast.flags &= !tflag::SEND_FAST_ZERO;
        assert_eq!(
            errno_of(
                req(Command::WriteZeroes, cmd_flag::FAST_ZERO, 0, 512),
                &no_fast
            ),
            errno::EINVAL
        );
    }

    #[test]
    fn unaligned_tail_of_an_unaligned_export_is_allowed() {
        let mut p = params();
        p.size_bytes = (1 << 20) + 100;
        assert_eq!(errno_of(req(Command::Read, 0, 1 << 20, 100), &p), 0);
        assert_eq!(
            errno_of(req(Command::Read, 0, 1 << 20, 50), &p),
            errno::EINVAL
        );
    }
}
