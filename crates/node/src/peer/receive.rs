//! The secondary's data path (D84 drbd_receiver.c `receive_Data`, `receive_Barrier`,
//! `e_end_block`): writes from the peer go to the local disk, acknowledged as the
//! sender's `dp_flags` ask (`P_RECV_ACK` on arrival, `P_WRITE_ACK` once written,
//! `P_NEG_ACK` when the write failed); a `P_BARRIER` is answered with `P_BARRIER_ACK`
//! once every write of its epoch is done and the disk is flushed, in epoch order.
//!
//! Write ordering `f` and `d`: no write of an epoch reaches the disk before every
//! earlier epoch is done and flushed, kept by gates between epochs rather than by stopping
//! the receive loop at each barrier as DRBD's receiver does ([`epochs`]); the loop stops
//! at a barrier only while more than `max-buffers` x 4 KiB of received writes are
//! unfinished.
//!
//! Overlapping writes are applied in arrival order (a later write waits for the earlier
//! ones it overlaps); others run concurrently, started in batches ([`starter`]). Each
//! `P_DATA` / `P_TRIM` is registered in online verify's block locks from its arrival
//! until its disk write completed, without waiting (`crate::peer::verify::locks`). Resync
//! replies (`P_RS_DATA_REPLY`) share the ordering, then clear their bits and are answered
//! with `P_RS_WRITE_ACK`.

mod epochs;
mod starter;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rdbd_replicator::transfer_log::PeerEpoch;
use rdbd_wire::{BarrierAck, BlockAck, DataHeader, DpFlags, Packet};
use tokio::sync::{mpsc, watch};

use super::io::{Outbox, Outgoing};
use super::session::{Ctx, Event};
use epochs::Epochs;
use starter::Starter;

/// What a received write does to the disk.
#[derive(Debug)]
pub(super) enum WriteKind {
    /// Data.
    Data(Bytes),
    /// A discard / zeroing of this many bytes.
    Zeroes(u32),
}

impl WriteKind {
    fn len(&self) -> u64 {
        match self {
            WriteKind::Data(b) => b.len() as u64,
            WriteKind::Zeroes(n) => u64::from(*n),
        }
    }
}

#[derive(Default)]
struct Inflight {
    next_id: u64,
    ranges: Vec<(u64, u64, u64, watch::Receiver<bool>)>,
}

/// The receiving side of one connection.
pub(super) struct Receiver {
    epoch: PeerEpoch,
    /// The open epoch, the barriers, the gates between epochs ([`epochs`]).
    epochs: Epochs,
    inflight: Arc<Mutex<Inflight>>,
    starter: Starter,
    /// Disk writes received and not finished.
    writing: Arc<std::sync::atomic::AtomicU64>,
    /// Their bytes.
    writing_bytes: Arc<std::sync::atomic::AtomicU64>,
    /// Above this many unfinished bytes a barrier stops the receive loop until its epoch
    /// is done (`max-buffers` x 4 KiB).
    read_ahead_limit_bytes: u64,
}

/// Counts a received disk write and its bytes until it finished (queued, started or
/// spawned).
struct Writing {
    count: Arc<std::sync::atomic::AtomicU64>,
    bytes: Arc<std::sync::atomic::AtomicU64>,
    len: u64,
}

impl Writing {
    fn new(receiver: &Receiver, len: u64) -> Writing {
        receiver.writing.fetch_add(1, Ordering::SeqCst);
        receiver.writing_bytes.fetch_add(len, Ordering::SeqCst);
        Writing {
            count: Arc::clone(&receiver.writing),
            bytes: Arc::clone(&receiver.writing_bytes),
            len,
        }
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.bytes.fetch_sub(self.len, Ordering::SeqCst);
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The byte range of a request from the peer, checked against the device.
pub(crate) fn checked_range(ctx: &Ctx, sector: u64, len: u64) -> Result<u64, String> {
    let offset = sector
        .checked_mul(512)
        .ok_or_else(|| format!("sector {sector} overflows"))?;
    let end = offset
        .checked_add(len)
        .ok_or_else(|| format!("sector {sector} + {len} bytes overflows"))?;
    if end > ctx.resource.size_bytes_now() || len > rdbd_wire::MAX_PAYLOAD_BYTES as u64 {
        return Err(format!(
            "request beyond the device: sector {sector} + {len} bytes, the device has {} bytes",
            ctx.resource.size_bytes_now()
        ));
    }
    Ok(offset)
}

impl Receiver {
    /// A receiver acknowledging on `meta`.
    pub(super) fn new(ctx: &Ctx, meta: Outbox) -> Self {
        let resource = Arc::clone(&ctx.resource);
        let epochs = Epochs::spawn(
            ctx.resource.write_ordering != 'n',
            ctx.cfg.settings.disk_flushes,
            move || {
                let resource = Arc::clone(&resource);
                async move {
                    if let Err(e) = resource.disk.flush().await {
                        tracing::error!(resource = %resource.name, error = %e, "flushing the disk for a barrier failed");
                    }
                }
            },
            move |barrier, set_size| {
                let _ = meta.send(Outgoing::h100(Packet::BarrierAck(BarrierAck {
                    barrier,
                    set_size,
                })));
            },
        );
        Receiver {
            epoch: PeerEpoch::default(),
            epochs,
            inflight: Arc::default(),
            starter: Starter::spawn(),
            writing: Arc::default(),
            writing_bytes: Arc::default(),
            read_ahead_limit_bytes: u64::from(ctx.cfg.settings.max_buffers.max(1)) * 4096,
        }
    }

    /// Waits (up to 30 s) until every received write reached the disk.
    pub(super) async fn drain(&self) {
        let start = std::time::Instant::now();
        while self.writing.load(Ordering::SeqCst) > 0
            && start.elapsed() < std::time::Duration::from_secs(30)
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Registers `[offset, offset+len)`; returns its id, its completion sender and the
    /// completions of earlier overlapping writes to wait for.
    fn order(
        &self,
        offset: u64,
        len: u64,
    ) -> (u64, watch::Sender<bool>, Vec<watch::Receiver<bool>>) {
        let mut inf = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let end = offset + len.max(1);
        let waits = inf
            .ranges
            .iter()
            .filter(|(_, s, e, _)| *s < end && offset < *e)
            .map(|(_, _, _, r)| r.clone())
            .collect();
        let (tx, rx) = watch::channel(false);
        let id = inf.next_id;
        inf.next_id += 1;
        inf.ranges.push((id, offset, end, rx));
        (id, tx, waits)
    }

    /// A `P_DATA` / `P_TRIM` from the primary.
    pub(super) fn on_data(
        &mut self,
        ctx: &Ctx,
        meta: &Outbox,
        header: DataHeader,
        kind: WriteKind,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        self.epoch.on_write();
        let len = kind.len();
        let ack = move |cmd: fn(BlockAck) -> Packet| {
            cmd(BlockAck {
                sector: header.sector,
                block_id: header.block_id,
                size_bytes: len as u32,
                seq_num: header.seq_num,
            })
        };
        let offset = match checked_range(ctx, header.sector, len) {
            Ok(_) if ctx.resource.state().disk == rdbd_types::DiskState::Diskless => {
                // Detached (crate::lifecycle): the write cannot land; the peer tracks it.
                tracing::warn!(resource = %ctx.resource.name, sector = header.sector, "a write from the peer while Diskless; answering P_NEG_ACK");
                let _ = meta.send(Outgoing::h100(ack(Packet::NegAck)));
                return;
            }
            Ok(o) => {
                // The peer (a diskless Primary) has no copy: track the change for its attach.
                if ctx.resource.state().peer_disk < rdbd_types::DiskState::Inconsistent {
                    ctx.resource.meta.set_out_of_sync(o, len);
                }
                o
            }
            Err(e) => {
                tracing::error!(resource = %ctx.resource.name, "the peer sent a write {e}; answering P_NEG_ACK");
                let _ = meta.send(Outgoing::h100(ack(Packet::NegAck)));
                return;
            }
        };
        if header.dp_flags.contains(DpFlags::SEND_RECEIVE_ACK) {
            let _ = meta.send(Outgoing::h100(ack(Packet::RecvAck)));
        }
        let write_ack = header.dp_flags.contains(DpFlags::SEND_WRITE_ACK);
        let fua = header.dp_flags.contains(DpFlags::FUA);
        let pre_flush = header.dp_flags.contains(DpFlags::FLUSH);
        let (id, done, waits) = self.order(offset, len);
        // Online verify's reads of these blocks wait until the disk write completed
        // (registered in receive order, before a later P_OV_* is handled).
        let verify = ctx.link.verify_received_write(offset, len);
        let (resource, meta, inflight, events) = (
            Arc::clone(&ctx.resource),
            meta.clone(),
            Arc::clone(&self.inflight),
            events.clone(),
        );
        let unacked = Arc::clone(&ctx.link);
        if write_ack {
            unacked.counters.unacked.fetch_add(1, Ordering::Relaxed);
        }
        let writing = Writing::new(self, len);
        let mut in_epoch = self.epochs.join();
        let mut waits = waits;
        // An earlier epoch not done and flushed yet (write ordering f/d).
        waits.extend(in_epoch.gate.take());
        self.starter.start(async move {
            let _writing = writing;
            let _in_epoch = in_epoch;
            for mut w in waits {
                let _ = w.wait_for(|d| *d).await;
            }
            let result = async {
                if pre_flush {
                    resource
                        .disk
                        .flush()
                        .await
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                }
                resource
                    .meta
                    .begin_write(offset, len)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let r = match kind {
                    // Straight from the receive buffer when it is aligned (crate::peer::io).
                    WriteKind::Data(b) => resource.disk.write_bytes(offset, b, fua).await,
                    WriteKind::Zeroes(n) => {
                        resource
                            .disk
                            .write_zeroes(offset, u64::from(n), true)
                            .await
                    }
                };
                resource.meta.end_write(offset, len);
                r.map_err(|e| std::io::Error::other(e.to_string()))
            }
            .await;
            drop(verify);
            let _ = done.send(true);
            inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .ranges
                .retain(|(i, ..)| *i != id);
            match result {
                Ok(()) => {
                    resource
                        .io
                        .disk_written_bytes
                        .fetch_add(len, Ordering::Relaxed);
                    if write_ack {
                        let _ = meta.send(Outgoing::h100(ack(Packet::WriteAck)));
                    }
                }
                Err(e) => {
                    tracing::error!(resource = %resource.name, offset, len, error = %e, "writing the peer's data failed; answering P_NEG_ACK");
                    resource.meta.set_out_of_sync(offset, len);
                    let _ = meta.send(Outgoing::h100(ack(Packet::NegAck)));
                    let _ = events.send(Event::Changed);
                }
            }
            if write_ack {
                unacked.counters.unacked.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }

    /// A `P_BARRIER`: the epoch's writes, a flush, then the ack (in order).
    ///
    /// With write ordering `f` or `d` (DRBD's WO_BDEV_FLUSH / WO_DRAIN_IO) the
    /// receiver drains, as receive_Barrier does with conn_wait_active_ee_empty: no
    /// write of the next epoch reaches the disk before every write of this epoch has
    /// completed (and, with `f`, the disk is flushed). With `n` the ack waits for the
    /// epoch in the background and the next epoch's writes proceed at once.
    pub(super) async fn on_barrier(&mut self, nr: u32) {
        let set_size = self.epoch.on_barrier();
        let next_gate = self.epochs.close(nr, set_size);
        if let Some(mut gate) = next_gate {
            if self.writing_bytes.load(Ordering::SeqCst) > self.read_ahead_limit_bytes {
                // Too much received and not written: read on once this epoch is done, as
                // DRBD's receiver does at every barrier.
                let _ = gate.wait_for(|open| *open).await;
            }
        }
    }

    /// A `P_RS_DATA_REPLY` (we are SyncTarget).
    pub(super) fn on_rs_reply(
        &mut self,
        ctx: &Ctx,
        meta: &Outbox,
        header: DataHeader,
        payload: Bytes,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        let len = payload.len() as u64;
        let ack = BlockAck {
            sector: header.sector,
            block_id: header.block_id,
            size_bytes: len as u32,
            seq_num: 0,
        };
        let offset = match checked_range(ctx, header.sector, len) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(resource = %ctx.resource.name, "the peer sent a resync reply {e}");
                let _ = meta.send(Outgoing::h100(Packet::NegAck(ack)));
                let _ = events.send(Event::RsDone {
                    bytes: len,
                    ok: false,
                });
                return;
            }
        };
        let (id, done, waits) = self.order(offset, len);
        let (resource, meta, inflight, events) = (
            Arc::clone(&ctx.resource),
            meta.clone(),
            Arc::clone(&self.inflight),
            events.clone(),
        );
        let writing = Writing::new(self, len);
        let rs_link = Arc::clone(&ctx.link);
        self.starter.start(async move {
            let _writing = writing;
            for mut w in waits {
                let _ = w.wait_for(|d| *d).await;
            }
            let result = resource.disk.write_bytes(offset, payload, false).await;
            let _ = done.send(true);
            inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .ranges
                .retain(|(i, ..)| *i != id);
            let ok = match result {
                Ok(()) => {
                    resource
                        .io
                        .disk_written_bytes
                        .fetch_add(len, Ordering::Relaxed);
                    rs_link
                        .counters
                        .rs_disk_bytes
                        .fetch_add(len, Ordering::Relaxed);
                    resource.meta.set_in_sync(offset / 512, len / 512);
                    let _ = meta.send(Outgoing::h100(Packet::RsWriteAck(ack)));
                    true
                }
                Err(e) => {
                    tracing::error!(resource = %resource.name, offset, len, error = %e, "writing resync data failed");
                    let _ = meta.send(Outgoing::h100(Packet::NegAck(ack)));
                    false
                }
            };
            let _ = events.send(Event::RsDone { bytes: len, ok });
        });
    }
}
