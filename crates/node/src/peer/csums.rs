//! Checksum-based resync (`csums-alg`; D84 drbd_worker.c `w_e_send_csum`,
//! `w_e_end_csum_rs_req`, drbd_receiver.c `got_IsInSync`, the summary line of
//! `drbd_resync_finished`).
//!
//! - The SyncTarget reads its own copy of each run it would request and sends
//!   `P_CSUM_RS_REQUEST` with the digest instead of `P_RS_DATA_REQUEST`
//!   ([`request_with_digest`]).
//! - The SyncSource ([`serve_csum`]) reads its block under the resync lock and compares:
//!   equal -> its bits are cleared and `P_RS_IS_IN_SYNC` (meta socket) says so, no data
//!   moves; different -> a normal `P_RS_DATA_REPLY`.
//! - Both count the equal blocks (`rs_same_csum`) and log
//!   `N % had equal checksums, eliminated: XK; transferred YK total ZK` at the end.

use std::sync::atomic::Ordering;

use rdbd_replicator::resync::digest::{use_checksum_based_resync, DigestAlg};
use rdbd_replicator::resync::progress::csums_line;
use rdbd_wire::{BlockRequest, DigestRequest, Packet};

use super::io::{Outbox, Outgoing};
use super::read_request;
use super::session::Ctx;

/// The configured `csums-alg`, if rdbd supports it.
/// Reads the settings in force: `csums-alg` may have been adopted from the peer.
pub(super) fn csums_alg(ctx: &Ctx) -> Option<DigestAlg> {
    ctx.link
        .settings_now(&ctx.cfg.settings)
        .csums_alg
        .as_deref()
        .and_then(|a| DigestAlg::parse(a).ok())
}

/// Whether this SyncTarget uses checksum-based resync (`use_checksum_based_resync`).
pub(super) fn target_alg(ctx: &Ctx, agreed_pro_version: u32) -> Option<DigestAlg> {
    let crashed = ctx.resource.crashed_primary();
    let alg = csums_alg(ctx);
    use_checksum_based_resync(
        agreed_pro_version,
        alg,
        ctx.cfg.settings.csums_after_crash_only,
        crashed,
    )
    .then_some(alg)
    .flatten()
}

/// The SyncTarget asks for `req` with the digest of its own copy (falls back to a plain
/// `P_RS_DATA_REQUEST` when the local read fails).
pub(super) fn request_with_digest(ctx: &Ctx, data: &Outbox, alg: DigestAlg, req: BlockRequest) {
    let (resource, link, data) = (ctx.resource.clone(), ctx.link.clone(), data.clone());
    tokio::spawn(async move {
        let offset = req.sector * 512;
        let packet = match read_request::read_local(&resource, offset, &req).await {
            Ok(buf) => {
                link.counters
                    .rs_disk_bytes
                    .fetch_add(u64::from(req.size_bytes), Ordering::Relaxed);
                Packet::CsumRsRequest(DigestRequest {
                    request: req,
                    digest: alg.digest(&buf),
                })
            }
            Err(e) => {
                tracing::warn!(resource = %resource.name, offset, error = %e, "reading the local block for its checksum failed; asking for the data");
                Packet::RsDataRequest(req)
            }
        };
        let _ = data.send(Outgoing::h100(packet));
    });
}

/// Serves one `P_CSUM_RS_REQUEST` (we are SyncSource).
pub(super) fn serve_csum(ctx: &Ctx, data: &Outbox, meta: &Outbox, d: DigestRequest) {
    let req = d.request;
    let alg = csums_alg(ctx);
    let (resource, link, data, meta_out) = (
        ctx.resource.clone(),
        ctx.link.clone(),
        data.clone(),
        meta.clone(),
    );
    super::resync::serve_read(ctx, meta, req, "a checksum resync", move |buf| {
        let size = u64::from(req.size_bytes);
        if alg.is_some_and(|a| a.digest(&buf) == d.digest) {
            resource.meta.set_in_sync(req.sector, size / 512);
            link.counters
                .rs_same_csum_blocks
                .fetch_add(size.div_ceil(4096), Ordering::Relaxed);
            // P_RS_IS_IN_SYNC echoes the request, as the negative answer does.
            let ack = read_request::negative_reply(&req);
            let _ = meta_out.send(Outgoing::h100(Packet::RsIsInSync(ack)));
        } else {
            let reply = read_request::data_reply(&req, &buf);
            let _ = data.send(Outgoing::h100(Packet::RsDataReply(reply)));
        }
    });
}

/// The end of a resync: the checksum summary when checksums were used; resets the count.
pub(super) fn log_summary(ctx: &Ctx, used: bool, total_blocks: u64) {
    let same = ctx
        .link
        .counters
        .rs_same_csum_blocks
        .swap(0, Ordering::Relaxed);
    if used && total_blocks > 0 {
        tracing::info!(resource = %ctx.resource.name, "{}", csums_line(same, total_blocks));
    }
}
