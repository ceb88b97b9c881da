//! The transmission phase: the request loop and the per-request tasks.
//!
//! The loop takes an in-flight slot (a semaphore permit; none free = stop
//! reading = backpressure), reads and validates one request, reads a WRITE's
//! payload into an [`AlignedBuf`], and starts the request: its future (device
//! operation, then the reply through the shared [`ReplyWriter`]) is polled
//! once right here, inside [`BlockDevice::defer_submissions`], and only
//! spawned as a task if it did not finish. Replies leave in completion order.
//!
//! Submission batching: the loop calls [`BlockDevice::submit_deferred`]
//! whenever it is about to be suspended (every await of the loop goes
//! through [`submit_before_suspending`]), so the requests that one socket
//! read brought in reach the kernel with one system call, and nothing
//! deferred waits on a suspended loop.
//!
//! FLUSH ordering: a reply is written only after its device operation has
//! completed, so every write the client has seen answered was completed at
//! the device before any FLUSH the client sends afterwards is even read; the
//! device's `flush()` covers all completed writes (see [`BlockDevice`]).
//!
//! The connection ends on DISC or EOF (after all outstanding replies are
//! sent), on a malformed request (bad magic: warning, close), on a WRITE too
//! large to drain (EINVAL reply, then close) or when a reply cannot be sent.
//! The device handle is dropped only after every request task has finished.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use rdbd_types::AlignedBuf;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::error::NbdError;
use crate::export::{BlockDevice, DeviceError, Extent, WriteZeroesFlags};
use crate::proto::consts::{cmd_flag, errno};
use crate::proto::reply::normalize_extents;
use crate::proto::{
    put_block_status_chunk, put_error_chunk, put_offset_data_header, put_simple_reply,
    validate_request, Command, Rejection, Request, TransmissionParams,
};

use super::frame_reader::FrameReader;
use super::handshake::Negotiated;
use super::reply_writer::ReplyWriter;
use super::ServerLimits;

/// Payloads up to this size are drained when a WRITE is refused, whatever the
/// advertised maximum (the spec asks not to treat <= 32 MiB as an attack).
const MIN_DRAIN_BYTES: u32 = 32 * 1024 * 1024;

struct Connection<D, W> {
    device: D,
    writer: ReplyWriter<W>,
    params: TransmissionParams,
    /// Size of the in-flight semaphore.
    slots_total: usize,
}

/// What a request produced.
enum Outcome {
    Done,
    Data(AlignedBuf),
    Extents(Vec<Extent>),
}

/// Why a request failed.
enum Failure {
    Rejected(Rejection),
    Device(DeviceError),
}

pub(crate) async fn run<R, W, D>(
    reader: R,
    writer: W,
    negotiated: Negotiated<D>,
    limits: &ServerLimits,
) -> Result<(), NbdError>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
    D: BlockDevice,
{
    let params = negotiated.params;
    let slots_total = limits
        .max_requests_in_flight
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let conn = Arc::new(Connection {
        device: negotiated.device,
        writer: ReplyWriter::new(writer),
        params,
        slots_total,
    });
    let slots = Arc::new(Semaphore::new(slots_total));
    let drain_max_bytes = params.payload_max_bytes.max(MIN_DRAIN_BYTES);
    let mut frames = FrameReader::new(reader);

    let device = &conn.device;
    let result = loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let acquire = async {
                    tokio::select! {
                        permit = slots.clone().acquire_owned() => permit.ok(),
                        _ = conn.writer.failed() => None,
                    }
                };
                match submit_before_suspending(device, acquire).await {
                    Some(permit) => permit,
                    None if slots.is_closed() => break Ok(()),
                    None => break Err(reply_failure(&conn.writer)),
                }
            }
        };
        let header = submit_before_suspending(device, async {
            tokio::select! {
                biased;
                _ = conn.writer.failed() => None,
                header = frames.read_header() => Some(header),
            }
        })
        .await;
        let Some(header) = header else {
            break Err(reply_failure(&conn.writer));
        };
        let header = match header {
            Ok(Some(header)) => header,
            Ok(None) => {
                tracing::debug!("client closed the connection without NBD_CMD_DISC");
                break Ok(());
            }
            Err(e) => break Err(e.into()),
        };
        let req = match Request::decode(&header) {
            Ok(req) => req,
            Err(e) => {
                tracing::warn!(error = %e, "malformed request; closing the connection");
                break Err(e.into());
            }
        };
        if req.command == Command::Disconnect {
            tracing::debug!("NBD_CMD_DISC");
            break Ok(());
        }
        let verdict = validate_request(&req, &params);
        let mut payload = None;
        if req.command == Command::Write {
            if verdict.is_err() || req.length > params.payload_max_bytes {
                if req.length > drain_max_bytes {
                    tracing::warn!(
                        len = req.length,
                        max = drain_max_bytes,
                        "WRITE too large to drain; closing"
                    );
                    let rejection = Rejection {
                        errno: errno::EINVAL,
                        reason: "WRITE payload too large",
                    };
                    device.submit_deferred();
                    reply(&conn, &req, Err(Failure::Rejected(rejection)), permit).await;
                    break Err(NbdError::WriteTooLarge {
                        length_bytes: req.length,
                        max_bytes: drain_max_bytes,
                    });
                }
                let skipped =
                    submit_before_suspending(device, frames.skip(u64::from(req.length))).await;
                if let Err(e) = skipped {
                    break Err(e.into());
                }
            } else {
                // Filled completely by read_payload (read_exact) or dropped on error.
                let mut data = AlignedBuf::for_overwrite(req.length as usize);
                let read = submit_before_suspending(device, frames.read_payload(&mut data)).await;
                if let Err(e) = read {
                    break Err(e.into());
                }
                payload = Some(data);
            }
        }
        let span = tracing::debug_span!(
            "nbd_request",
            cookie = req.cookie,
            cmd = req.command.name(),
            offset = req.offset,
            len = req.length
        );
        let mut request =
            Box::pin(execute(conn.clone(), req, verdict, payload, permit).instrument(span));
        let first_poll =
            poll_fn(|cx| Poll::Ready(device.defer_submissions(|| request.as_mut().poll(cx)))).await;
        if first_poll.is_pending() {
            // Its wakers now name this task; the spawned task's first poll
            // re-registers them (every future updates a changed waker).
            tokio::spawn(request);
        }
    };
    device.submit_deferred();

    // Let every outstanding request finish and send its reply.
    let _all_slots = slots.acquire_many(slots_total as u32).await;
    conn.writer.finish().await;
    result
}

/// Awaits `fut`, first submitting the device's deferred I/O whenever `fut`
/// is about to suspend the loop (so it is done on the deferring thread).
async fn submit_before_suspending<D: BlockDevice, F: Future>(device: &D, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        let poll = fut.as_mut().poll(cx);
        if poll.is_pending() {
            device.submit_deferred();
        }
        poll
    })
    .await
}

fn reply_failure<W: AsyncWrite + Send + Unpin>(writer: &ReplyWriter<W>) -> NbdError {
    NbdError::ReplyWriteFailed(
        writer
            .error()
            .unwrap_or_else(|| "unknown error".to_string()),
    )
}

async fn execute<D: BlockDevice, W: AsyncWrite + Send + Unpin>(
    conn: Arc<Connection<D, W>>,
    req: Request,
    verdict: Result<(), Rejection>,
    payload: Option<AlignedBuf>,
    permit: OwnedSemaphorePermit,
) {
    let outcome = match verdict {
        Err(rejection) => Err(Failure::Rejected(rejection)),
        Ok(()) => perform(&conn, &req, payload).await.map_err(Failure::Device),
    };
    reply(&conn, &req, outcome, permit).await;
}

async fn perform<D: BlockDevice, W>(
    conn: &Connection<D, W>,
    req: &Request,
    payload: Option<AlignedBuf>,
) -> Result<Outcome, DeviceError> {
    let device = &conn.device;
    let fua = req.flags & cmd_flag::FUA != 0;
    let (offset, len) = (req.offset, req.length);
    match req.command {
        Command::Read => device.read(offset, len).await.map(Outcome::Data),
        Command::Write => {
            let data =
                payload.ok_or_else(|| DeviceError::Invalid("WRITE without payload".into()))?;
            device
                .write(offset, data, fua)
                .await
                .map(|()| Outcome::Done)
        }
        Command::Flush => device.flush().await.map(|()| Outcome::Done),
        Command::Trim => device.trim(offset, len, fua).await.map(|()| Outcome::Done),
        Command::Cache => device.cache(offset, len).await.map(|()| Outcome::Done),
        Command::WriteZeroes => {
            let flags = WriteZeroesFlags {
                fua,
                no_hole: req.flags & cmd_flag::NO_HOLE != 0,
                fast_zero: req.flags & cmd_flag::FAST_ZERO != 0,
            };
            device
                .write_zeroes(offset, len, flags)
                .await
                .map(|()| Outcome::Done)
        }
        Command::BlockStatus => device.block_status(offset, len).await.map(Outcome::Extents),
        Command::Disconnect | Command::Unknown(_) => {
            Err(DeviceError::Invalid("command not executable".into()))
        }
    }
}

async fn reply<D, W: AsyncWrite + Send + Unpin>(
    conn: &Connection<D, W>,
    req: &Request,
    outcome: Result<Outcome, Failure>,
    permit: OwnedSemaphorePermit,
) {
    // Other requests hold slots: their replies may be about to join ours.
    let linger = permit.semaphore().available_permits() + 1 < conn.slots_total;
    let permit = Some(permit);
    let structured = conn.params.structured;
    let cookie = req.cookie;
    let failure = match outcome {
        Ok(Outcome::Done) => {
            conn.writer
                .send(|b| put_simple_reply(b, cookie, 0), None, permit, linger)
                .await;
            return;
        }
        Ok(Outcome::Data(data)) if data.len() == req.length as usize => {
            if structured {
                let encode = |b: &mut Vec<u8>| {
                    // The length is at most the payload maximum, far below u32::MAX - 8.
                    let _ = put_offset_data_header(b, cookie, req.offset, req.length);
                };
                conn.writer.send(encode, Some(data), permit, linger).await;
            } else {
                conn.writer
                    .send(
                        |b| put_simple_reply(b, cookie, 0),
                        Some(data),
                        permit,
                        linger,
                    )
                    .await;
            }
            return;
        }
        Ok(Outcome::Data(data)) => {
            tracing::warn!(
                got = data.len(),
                "device returned a read buffer of the wrong length"
            );
            Failure::Device(DeviceError::Io(std::io::Error::other(
                "device returned a short read",
            )))
        }
        Ok(Outcome::Extents(mut extents)) => match (conn.params.meta_context_id, structured) {
            (Some(context_id), true) => {
                let req_one = req.flags & cmd_flag::REQ_ONE != 0;
                match normalize_extents(&mut extents, req.length, req_one) {
                    Ok(()) => {
                        conn.writer
                            .send(
                                |b| put_block_status_chunk(b, cookie, context_id, &extents),
                                None,
                                permit,
                                linger,
                            )
                            .await;
                        return;
                    }
                    Err(reason) => {
                        tracing::warn!(reason, "device returned invalid extents");
                        Failure::Device(DeviceError::Io(std::io::Error::other(reason)))
                    }
                }
            }
            _ => Failure::Rejected(Rejection {
                errno: errno::EINVAL,
                reason: "no metadata context",
            }),
        },
        Err(failure) => failure,
    };
    let (error, message) = match &failure {
        Failure::Rejected(rejection) => {
            tracing::debug!(
                errno = rejection.errno,
                reason = rejection.reason,
                "request refused"
            );
            (rejection.errno, rejection.reason.to_string())
        }
        Failure::Device(e) => {
            match e {
                DeviceError::Io(_) => tracing::warn!(error = %e, "device operation failed"),
                _ => tracing::debug!(error = %e, "device operation failed"),
            }
            (e.nbd_errno(), e.to_string())
        }
    };
    if structured {
        conn.writer
            .send(
                |b| put_error_chunk(b, cookie, error, &message),
                None,
                permit,
                linger,
            )
            .await;
    } else {
        conn.writer
            .send(|b| put_simple_reply(b, cookie, error), None, permit, linger)
            .await;
    }
}
