//! The session's part of `resize` (D84 drbd_receiver.c `receive_sizes`, drbd_nl.c
//! `drbd_adm_resize`, drbd_main.c `resync_after_online_grow`):
//!
//! - the node running `resize` sends `P_SIZES` with the wanted size as `c_size` and
//!   `DDSF_NO_RESYNC` for `--assume-clean`;
//! - the peer grows as far as its device offers and answers with its new size; the
//!   initiator then grows to the smaller of both;
//! - unless `--assume-clean`, the new area (out of sync on both) is resynced right
//!   away: the Primary (both Secondary: the node holding RESOLVE_CONFLICTS) is the
//!   source. The target enters WFSyncUUID before the source can send `P_SYNC_UUID`:
//!   a peer that is target enters it before its answer, an initiator that is target
//!   enters it while handling the answer, which precedes the source's `P_SYNC_UUID`
//!   on the data socket.
//!
//! A shrink (`resize --size N --force`, N below the current size) sends `P_SIZES` with
//! N as the user size `u_size` and the unchanged current size as `c_size`; the peer
//! takes the user size (DRBD: "Peer sets u_size to N sectors"), shrinks, and answers
//! with its new size (a DRBD peer answers too: its `c_size` then differs from ours);
//! the initiator shrinks once the answer says N. A peer that cannot shrink now (a
//! resync, NBD clients) answers with its unchanged size, and the initiator stays too.

use rdbd_types::{ConnState, DiskState, Role};
use rdbd_wire::{Packet, Sizes, DDSF_NO_RESYNC};
use tokio::sync::oneshot;

use super::{Session, SyncPhase};
use crate::lifecycle::resize::{capacity, grow_local, shrink_blocker, shrink_local};
use crate::peer::lifecycle::ResizeRequest;

/// A `resize` waiting for the peer's `P_SIZES`.
pub(crate) struct PendingResize {
    req: ResizeRequest,
    tx: oneshot::Sender<Result<u64, String>>,
}

impl Session<'_> {
    /// `resize`: asks the peer to grow to `req.target_sectors`.
    pub(super) async fn start_resize(
        &mut self,
        req: ResizeRequest,
        tx: oneshot::Sender<Result<u64, String>>,
    ) {
        let ctx = self.ctx;
        let st = ctx.resource.state();
        if st.cstate != ConnState::Connected {
            let _ = tx.send(Err(format!(
                "the connection is {}, not Connected",
                st.cstate
            )));
            return;
        }
        if self.pending_resize.is_some() {
            let _ = tx.send(Err("another resize is waiting for the peer".into()));
            return;
        }
        let offered = match capacity(&ctx.resource).await {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let mut sizes = ctx.our_sizes();
        sizes.backing_sectors = offered;
        let current = ctx.resource.size_bytes_now() / 512;
        if req.target_sectors < current {
            sizes.user_sectors = req.target_sectors;
            sizes.current_sectors = current;
        } else {
            sizes.current_sectors = req.target_sectors;
        }
        sizes.dds_flags = if req.assume_clean { DDSF_NO_RESYNC } else { 0 };
        self.send_data(Packet::Sizes(sizes));
        self.pending_resize = Some(PendingResize { req, tx });
    }

    /// A `P_SIZES` after the handshake: the answer to our `resize`, or the peer's.
    pub(super) async fn on_sizes(&mut self, s: Sizes) {
        self.peer.sizes = s;
        let ctx = self.ctx;
        let st = ctx.resource.state();
        let current = ctx.resource.size_bytes_now() / 512;
        if let Some(p) = self.pending_resize.take() {
            if p.req.target_sectors < current {
                let answer = if s.current_sectors == p.req.target_sectors {
                    shrink_local(&ctx.resource, p.req.target_sectors)
                        .await
                        .map(|_| p.req.target_sectors)
                } else {
                    Ok(s.current_sectors)
                };
                let _ = p.tx.send(answer);
                return;
            }
            let agreed = p.req.target_sectors.min(s.current_sectors);
            if agreed <= current {
                let _ = p.tx.send(Ok(agreed));
                return;
            }
            let resync = !p.req.assume_clean;
            let answer = match grow_local(&ctx.resource, agreed, resync).await {
                Ok(_) => {
                    if resync {
                        if self.online_grow_source() {
                            self.begin_source_resync(
                                false,
                                "Began resync as SyncSource",
                                " after the online grow.",
                            )
                            .await;
                        } else {
                            self.enter_wait_sync_uuid().await;
                        }
                    }
                    Ok(agreed)
                }
                Err(e) => Err(e),
            };
            let _ = p.tx.send(answer);
            return;
        }
        // (A Diskless node cannot shrink; it answers with its size all the same.)
        if s.user_sectors != 0 && s.user_sectors < current && st.cstate == ConnState::Connected {
            self.on_peer_shrink(s).await;
            return;
        }
        if st.cstate != ConnState::Connected
            || st.disk == DiskState::Diskless
            || s.current_sectors <= current
        {
            return;
        }
        // The peer ran `resize` and wants s.current_sectors.
        let offered = capacity(&ctx.resource).await.unwrap_or(current);
        let agreed = s.current_sectors.min(offered);
        let resync = s.dds_flags & DDSF_NO_RESYNC == 0;
        let mut grew = false;
        if agreed > current {
            match grow_local(&ctx.resource, agreed, resync).await {
                Ok(_) => grew = true,
                Err(e) => {
                    tracing::error!(resource = %ctx.name(), "the peer's resize: {e}; staying at {} sectors", current)
                }
            }
        }
        let mut reply = ctx.our_sizes();
        reply.backing_sectors = offered;
        reply.current_sectors = ctx.resource.size_bytes_now() / 512;
        reply.dds_flags = s.dds_flags;
        if grew && resync && !self.online_grow_source() {
            self.enter_wait_sync_uuid().await;
            self.send_data(Packet::Sizes(reply));
        } else {
            self.send_data(Packet::Sizes(reply));
            if grew && resync {
                self.begin_source_resync(
                    false,
                    "Began resync as SyncSource",
                    " after the online grow.",
                )
                .await;
            }
        }
    }

    /// The peer shrinks to its user size `s.user_sectors`: this node follows (unless it
    /// cannot now) and answers with its size.
    async fn on_peer_shrink(&mut self, s: Sizes) {
        let ctx = self.ctx;
        let current = ctx.resource.size_bytes_now() / 512;
        tracing::info!(
            resource = %ctx.name(),
            "Peer sets u_size to {} sectors (old: {current})",
            s.user_sectors
        );
        let refusal = match shrink_blocker(&ctx.resource) {
            Some(why) => Some(why),
            None => shrink_local(&ctx.resource, s.user_sectors).await.err(),
        };
        if let Some(why) = refusal {
            tracing::error!(resource = %ctx.name(), "the peer's shrink to {} sectors: {why}; staying at {current} sectors", s.user_sectors);
        }
        let mut reply = ctx.our_sizes();
        reply.current_sectors = ctx.resource.size_bytes_now() / 512;
        reply.dds_flags = s.dds_flags;
        self.send_data(Packet::Sizes(reply));
    }

    /// Whether this node is the source of the resync after an online grow.
    fn online_grow_source(&self) -> bool {
        let st = self.ctx.resource.state();
        match (st.role, st.peer_role) {
            (Role::Primary, _) => true,
            (_, Role::Primary) => false,
            _ => self.resolve_conflicts,
        }
    }

    /// The target of the new area's resync waits for the source's `P_SYNC_UUID`.
    async fn enter_wait_sync_uuid(&mut self) {
        let ctx = self.ctx;
        ctx.update(|st| st.disk = DiskState::Inconsistent);
        ctx.write_bitmap().await;
        ctx.persist(|_| {}).await;
        ctx.set_cstate(ConnState::WFSyncUUID);
        self.sync = SyncPhase::WaitSyncUuid;
        self.send_state();
    }
}
