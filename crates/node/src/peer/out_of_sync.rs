//! `P_OUT_OF_SYNC`: application writes while the bitmaps are exchanged (D84 drbd_req.c
//! `drbd_should_send_out_of_sync`, drbd_main.c `drbd_send_out_of_sync`, drbd_receiver.c
//! `receive_out_of_sync`).
//!
//! - Sending (the SyncSource-to-be, WFBitMapS, agreed protocol >= 96): once our bitmap is
//!   queued, application writes are not held off any more; each one completes locally,
//!   its blocks are set in our bitmap (by the write path, as for any write that no peer
//!   receives) and a `P_OUT_OF_SYNC` per piece of at most `DRBD_MAX_BIO_SIZE` goes on the
//!   data socket instead of `P_DATA`. The session ends this mode right before it sends
//!   `P_SYNC_UUID`, under the link's lock, so every `P_OUT_OF_SYNC` reaches the target
//!   before the resync starts there ([`PeerLink::end_out_of_sync_only`]); later writes
//!   are `P_DATA` again.
//! - Receiving (any state; DRBD expects WFSyncUUID / WFBitMapT / Behind and logs an
//!   `ASSERT FAILED` line otherwise, but sets the bits anyway): the range is checked
//!   ([`accepted_range`]: no overflow, not empty, clipped to the device) and set in our
//!   bitmap. A SyncTarget that already started goes round its bitmap again for bits set
//!   behind its cursor (`crate::peer::resync::TargetPump::pump`).

use rdbd_types::ConnState;
use rdbd_wire::{BlockDesc, Packet};

use super::io::{Outbox, Outgoing};
use super::session::Ctx;
use super::{PeerLink, WritePayload};

/// The agreed protocol version from which DRBD sends `P_OUT_OF_SYNC` while WFBitMapS
/// (before it, application I/O is frozen while the bitmaps cross).
pub(crate) const OUT_OF_SYNC_MIN_PROTOCOL: u32 = 96;

/// Why a received `P_OUT_OF_SYNC` sets nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OutOfSyncError {
    /// Zero bytes.
    #[error("P_OUT_OF_SYNC of 0 bytes at sector {sector}")]
    Empty {
        /// The sector of the packet.
        sector: u64,
    },
    /// The range starts past the end of the device or overflows.
    #[error("P_OUT_OF_SYNC at sector {sector} (+{size_bytes} bytes) is beyond the device end (sector {capacity_sectors})")]
    BeyondEnd {
        /// The sector of the packet.
        sector: u64,
        /// Its size.
        size_bytes: u32,
        /// Sectors of the device.
        capacity_sectors: u64,
    },
}

/// The byte range (offset, length) a `P_OUT_OF_SYNC` sets out of sync on a device of
/// `capacity_sectors`: the part that lies on the device (DRBD clips at the bitmap's end).
pub(crate) fn accepted_range(
    desc: &BlockDesc,
    capacity_sectors: u64,
) -> Result<(u64, u64), OutOfSyncError> {
    if desc.size_bytes == 0 {
        return Err(OutOfSyncError::Empty {
            sector: desc.sector,
        });
    }
    let beyond = || OutOfSyncError::BeyondEnd {
        sector: desc.sector,
        size_bytes: desc.size_bytes,
        capacity_sectors,
    };
    let offset = desc.sector.checked_mul(512).ok_or_else(beyond)?;
    let end = offset
        .checked_add(u64::from(desc.size_bytes))
        .ok_or_else(beyond)?;
    let device_end = capacity_sectors.checked_mul(512).ok_or_else(beyond)?;
    if offset >= device_end {
        return Err(beyond());
    }
    Ok((offset, end.min(device_end) - offset))
}

/// Whether DRBD expects a `P_OUT_OF_SYNC` in `cs` (it still applies it otherwise).
pub(crate) fn expected_in(cs: ConnState) -> bool {
    matches!(
        cs,
        ConnState::WFSyncUUID | ConnState::WFBitMapT | ConnState::Behind
    )
}

/// The `P_OUT_OF_SYNC` packets describing a write of `len` bytes at `offset`: pieces of at
/// most `DRBD_MAX_BIO_SIZE` (what a DRBD peer accepts in one request).
pub(crate) fn pieces(offset: u64, len: u64) -> impl Iterator<Item = BlockDesc> {
    let max = rdbd_wire::DRBD_MAX_BIO_SIZE as u64;
    (0..len.div_ceil(max)).map(move |i| {
        let start = offset + i * max;
        BlockDesc {
            sector: start / 512,
            size_bytes: (len - i * max).min(max) as u32,
        }
    })
}

/// A received `P_OUT_OF_SYNC`: the blocks go out of sync here.
pub(super) fn on_out_of_sync(ctx: &Ctx, cs: ConnState, desc: BlockDesc) {
    let name = &ctx.resource.name;
    if !expected_in(cs) {
        tracing::error!(resource = %name, "ASSERT FAILED cstate = {cs}, expected: WFSyncUUID|WFBitMapT|Behind");
    }
    match accepted_range(&desc, ctx.resource.size_bytes_now() / 512) {
        Ok((offset, len)) => ctx.resource.meta.set_out_of_sync(offset, len),
        Err(e) => tracing::error!(resource = %name, "{e}; ignored"),
    }
}

impl PeerLink {
    /// WFBitMapS: from now on application writes send `P_OUT_OF_SYNC` on `data` instead
    /// of `P_DATA` (call after our bitmap is queued on `data`).
    pub(super) fn begin_out_of_sync_only(&self, data: Outbox) {
        self.inner().out_of_sync_only = Some(data);
    }

    /// The bitmaps crossed: writes are `P_DATA` again. Call right before queueing
    /// `P_SYNC_UUID`: every `P_OUT_OF_SYNC` of this mode is queued by then.
    pub(super) fn end_out_of_sync_only(&self) {
        self.inner().out_of_sync_only = None;
    }

    /// In WFBitMapS: queues the `P_OUT_OF_SYNC`s of a write and returns true (the write
    /// path then sets the blocks out of sync here and completes the write locally).
    pub(super) fn send_out_of_sync_instead(&self, offset: u64, payload: &WritePayload) -> bool {
        let inner = self.inner();
        let Some(data) = &inner.out_of_sync_only else {
            return false;
        };
        let len = match payload {
            WritePayload::Data(b) => b.len() as u64,
            WritePayload::Zeroes(n) => u64::from(*n),
        };
        for desc in pieces(offset, len) {
            let _ = data.send(Outgoing::h100(Packet::OutOfSync(desc)));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdbd_wire::{Decoder, Frame, HeaderKind};

    /// The bytes a peer sends, through our decoder.
    fn decode(bytes: &[u8]) -> BlockDesc {
        let mut d = Decoder::new();
        d.feed(bytes);
        match d.next_frame().expect("decodes").expect("one frame").packet {
            Packet::OutOfSync(desc) => desc,
            other => panic!("decoded {other:?}"),
        }
    }

    #[test]
    fn a_kernel_peers_out_of_sync_packet_sets_its_range() {
        // h100 header: magic 0x8620ec20, volume 0, command 0x28, length 16, pad; then
        // p_block_desc: sector 2048, blksize 64 KiB, pad (big-endian).
        let mut wire = vec![
            0x86, 0x20, 0xec, 0x20, 0, 0, 0x00, 0x28, 0, 0, 0, 0x10, 0, 0, 0, 0,
        ];
        wire.extend_from_slice(&2048u64.to_be_bytes());
        wire.extend_from_slice(&(64u32 << 10).to_be_bytes());
        wire.extend_from_slice(&[0; 4]);
        let desc = decode(&wire);
        assert_eq!(
            desc,
            BlockDesc {
                sector: 2048,
                size_bytes: 64 << 10
            }
        );
        assert_eq!(accepted_range(&desc, 130_992), Ok((2048 * 512, 64 << 10)));
        // Our own encoding (h100) decodes to the same.
        let ours = Frame::new(HeaderKind::H100, Packet::OutOfSync(desc))
            .to_bytes()
            .unwrap();
        assert_eq!(decode(&ours), desc);
    }

    #[test]
    fn ranges_are_clipped_and_nonsense_refused() {
        let d = |sector, size_bytes| BlockDesc { sector, size_bytes };
        // The last 4 KiB block of a device whose size is not a multiple of 4 KiB.
        assert_eq!(accepted_range(&d(998, 4096), 1000), Ok((998 * 512, 1024)));
        assert!(matches!(
            accepted_range(&d(1000, 512), 1000),
            Err(OutOfSyncError::BeyondEnd { .. })
        ));
        assert!(matches!(
            accepted_range(&d(u64::MAX / 256, 512), 1000),
            Err(OutOfSyncError::BeyondEnd { .. })
        ));
        assert_eq!(
            accepted_range(&d(5, 0), 1000),
            Err(OutOfSyncError::Empty { sector: 5 })
        );
    }

    #[test]
    fn only_the_states_drbd_expects_are_quiet() {
        assert!(expected_in(ConnState::WFSyncUUID));
        assert!(expected_in(ConnState::WFBitMapT));
        assert!(!expected_in(ConnState::SyncTarget));
        assert!(!expected_in(ConnState::Connected));
    }

    #[test]
    fn writes_are_described_in_pieces_a_drbd_peer_accepts() {
        let max = rdbd_wire::DRBD_MAX_BIO_SIZE as u64;
        let p: Vec<_> = pieces(4096, 2 * max + 8192).collect();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].sector, 8);
        assert_eq!(u64::from(p[0].size_bytes), max);
        assert_eq!(p[1].sector, 8 + max / 512);
        assert_eq!(p[2].size_bytes, 8192);
        let total: u64 = p.iter().map(|d| u64::from(d.size_bytes)).sum();
        assert_eq!(total, 2 * max + 8192);
        assert_eq!(pieces(0, 4096).count(), 1);
        assert_eq!(pieces(0, 0).count(), 0);
    }
}
