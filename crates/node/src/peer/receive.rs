//! The secondary's data path (D84 drbd_receiver.c `receive_Data`, `receive_Barrier`,
//! `e_end_block`): writes from the peer go to the local disk, acknowledged as the
//! sender's `dp_flags` ask (`P_RECV_ACK` on arrival, `P_WRITE_ACK` once written,
//! `P_NEG_ACK` when the write failed); a `P_BARRIER` is answered with `P_BARRIER_ACK`
//! once every write of its epoch is done and the disk is flushed, in epoch order.
//!
//! Overlapping writes are applied in arrival order (a later write waits for the earlier
//! ones it overlaps); others run concurrently, started in batches ([`starter`]). Each
//! `P_DATA` / `P_TRIM` is registered in online verify's block locks from its arrival
//! until its disk write completed, without waiting (`crate::peer::verify::locks`). Resync
//! replies (`P_RS_DATA_REPLY`) share the ordering, then clear their bits and are answered
//! with `P_RS_WRITE_ACK`.

mod starter;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rdbd_replicator::transfer_log::PeerEpoch;
use rdbd_wire::{BarrierAck, BlockAck, DataHeader, DpFlags, Packet};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::io::{Outbox, Outgoing};
use super::session::{Ctx, Event};
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

/// The writes of one epoch: each holds a clone of `alive` until it is done.
struct EpochWrites {
    alive: mpsc::Sender<()>,
    done: mpsc::Receiver<()>,
}

impl EpochWrites {
    fn new() -> EpochWrites {
        let (alive, done) = mpsc::channel(1);
        EpochWrites { alive, done }
    }

    /// Completes once every write of the epoch has finished (nothing is ever sent: the
    /// channel closes when the last clone of `alive` is dropped).
    async fn all_done(self) {
        let EpochWrites { alive, mut done } = self;
        drop(alive);
        let _ = done.recv().await;
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
    /// The writes of the open epoch.
    epoch_writes: EpochWrites,
    barriers: mpsc::UnboundedSender<(u32, u32, EpochWrites)>,
    inflight: Arc<Mutex<Inflight>>,
    barrier_task: JoinHandle<()>,
    starter: Starter,
    /// Disk writes received and not finished.
    writing: Arc<std::sync::atomic::AtomicU64>,
    /// Write ordering `f` or `d`: drain each epoch before reading on.
    drain_epochs: bool,
    /// Flush the disk at each barrier (`disk-flushes`).
    flushes: bool,
    /// Where barrier acks go.
    meta: Outbox,
}

/// Counts a received disk write until it finished (queued, started or spawned).
struct Writing(Arc<std::sync::atomic::AtomicU64>);

impl Writing {
    fn new(counter: &Arc<std::sync::atomic::AtomicU64>) -> Writing {
        counter.fetch_add(1, Ordering::SeqCst);
        Writing(Arc::clone(counter))
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.barrier_task.abort();
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
        let (tx, mut rx) = mpsc::unbounded_channel::<(u32, u32, EpochWrites)>();
        let resource = Arc::clone(&ctx.resource);
        let flushes = ctx.cfg.settings.disk_flushes;
        let drain_epochs = ctx.resource.write_ordering != 'n';
        let ack_meta = meta.clone();
        let barrier_task = tokio::spawn(async move {
            while let Some((nr, set_size, writes)) = rx.recv().await {
                writes.all_done().await;
                if flushes {
                    if let Err(e) = resource.disk.flush().await {
                        tracing::error!(resource = %resource.name, error = %e, "flushing the disk for a barrier failed");
                    }
                }
                let _ = meta.send(Outgoing::h100(Packet::BarrierAck(BarrierAck {
                    barrier: nr,
                    set_size,
                })));
            }
        });
        Receiver {
            epoch: PeerEpoch::default(),
            epoch_writes: EpochWrites::new(),
            barriers: tx,
            inflight: Arc::default(),
            barrier_task,
            starter: Starter::spawn(),
            writing: Arc::default(),
            drain_epochs,
            flushes,
            meta: ack_meta,
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
        let writing = Writing::new(&self.writing);
        let in_epoch = self.epoch_writes.alive.clone();
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
    pub(super) async fn on_barrier(&mut self, ctx: &Ctx, nr: u32) {
        let set_size = self.epoch.on_barrier();
        let writes = std::mem::replace(&mut self.epoch_writes, EpochWrites::new());
        if !self.drain_epochs {
            let _ = self.barriers.send((nr, set_size, writes));
            return;
        }
        writes.all_done().await;
        if self.flushes {
            if let Err(e) = ctx.resource.disk.flush().await {
                tracing::error!(resource = %ctx.resource.name, error = %e, "flushing the disk for a barrier failed");
            }
        }
        let _ = self
            .meta
            .send(Outgoing::h100(Packet::BarrierAck(BarrierAck {
                barrier: nr,
                set_size,
            })));
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
        let writing = Writing::new(&self.writing);
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
