//! In-memory exports for tests (cargo feature `testing`).
//!
//! [`MemDevice`] is a RAM disk with 4 KiB allocation tracking (for
//! `base:allocation`), injectable I/O errors and delays per byte range, and
//! counters of flushes and FUA writes. [`MemExports`] is a catalogue of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdbd_types::AlignedBuf;

use crate::export::{
    BlockDevice, DeviceError, ExportInfo, Exports, Extent, OpenError, WriteZeroesFlags,
};
use crate::proto::consts::{STATE_HOLE, STATE_ZERO};

/// Allocation-tracking granularity of a [`MemDevice`].
pub const MEM_BLOCK_BYTES: u64 = 4096;

/// An `ExportInfo` with every feature on, block sizes 512 / 4096 / 32 MiB.
pub fn mem_export_info(size_bytes: u64) -> ExportInfo {
    ExportInfo {
        size_bytes,
        read_only: false,
        description: "in-memory test export".to_string(),
        block_size_min: 512,
        block_size_preferred: 4096,
        block_size_max: 32 * 1024 * 1024,
        can_flush: true,
        can_fua: true,
        can_trim: true,
        can_write_zeroes: true,
        can_fast_zero: true,
        can_multi_conn: true,
        can_cache: true,
    }
}

struct Inner {
    data: Vec<u8>,
    /// One flag per `MEM_BLOCK_BYTES` block; false = hole reading as zeroes.
    allocated: Vec<bool>,
}

/// A RAM disk implementing [`BlockDevice`].
pub struct MemDevice {
    inner: Mutex<Inner>,
    faults: Mutex<Vec<(u64, u64)>>,
    delays: Mutex<Vec<(u64, u64, Duration)>>,
    flushes: AtomicU64,
    fua_writes: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

/// Counts an operation as in flight while alive.
struct InFlight<'a>(&'a MemDevice);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn overlaps(a_off: u64, a_len: u64, b_off: u64, b_len: u64) -> bool {
    a_off < b_off.saturating_add(b_len) && b_off < a_off.saturating_add(a_len)
}

impl MemDevice {
    /// A zeroed, fully unallocated device of `size_bytes`.
    pub fn new(size_bytes: u64) -> MemDevice {
        let size = usize::try_from(size_bytes).expect("MemDevice size fits in memory");
        MemDevice {
            inner: Mutex::new(Inner {
                data: vec![0u8; size],
                allocated: vec![false; size.div_ceil(MEM_BLOCK_BYTES as usize)],
            }),
            faults: Mutex::new(Vec::new()),
            delays: Mutex::new(Vec::new()),
            flushes: AtomicU64::new(0),
            fua_writes: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
        }
    }

    /// Every later operation touching `[offset, offset+len)` fails with EIO.
    pub fn fail_range(&self, offset: u64, len: u64) {
        lock(&self.faults).push((offset, len));
    }

    /// Every later operation touching `[offset, offset+len)` first sleeps `delay`.
    pub fn delay_range(&self, offset: u64, len: u64, delay: Duration) {
        lock(&self.delays).push((offset, len, delay));
    }

    /// A copy of the whole contents.
    pub fn contents(&self) -> Vec<u8> {
        lock(&self.inner).data.clone()
    }

    /// Number of completed `flush()` calls.
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Number of writes/trims/zeroes with FUA.
    pub fn fua_count(&self) -> u64 {
        self.fua_writes.load(Ordering::Relaxed)
    }

    /// Most operations ever running at the same time.
    pub fn peak_in_flight(&self) -> u64 {
        self.peak_in_flight.load(Ordering::Acquire)
    }

    async fn enter(&self, offset: u64, len: u64) -> Result<std::ops::Range<usize>, DeviceError> {
        let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::AcqRel);
        let _in_flight = InFlight(self);
        let delay = lock(&self.delays)
            .iter()
            .filter(|d| overlaps(offset, len, d.0, d.1))
            .map(|d| d.2)
            .max();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if lock(&self.faults)
            .iter()
            .any(|f| overlaps(offset, len, f.0, f.1))
        {
            return Err(DeviceError::Io(std::io::Error::from_raw_os_error(
                libc::EIO,
            )));
        }
        let size = lock(&self.inner).data.len() as u64;
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(offset as usize..end as usize),
            _ => Err(DeviceError::Invalid(format!(
                "range {offset}+{len} beyond the {size}-byte device"
            ))),
        }
    }

    fn count_fua(&self, fua: bool) {
        if fua {
            self.fua_writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Zeroes a range; whole blocks inside it become holes unless `keep_allocated`.
    fn zero(&self, range: std::ops::Range<usize>, keep_allocated: bool) {
        let mut inner = lock(&self.inner);
        inner.data[range.clone()].fill(0);
        let block = MEM_BLOCK_BYTES as usize;
        let first_full = range.start.div_ceil(block);
        let end_full = range.end / block;
        for b in range.start / block..range.end.div_ceil(block) {
            if b >= first_full && b < end_full {
                inner.allocated[b] = keep_allocated;
            } else {
                inner.allocated[b] = true;
            }
        }
    }
}

impl BlockDevice for MemDevice {
    async fn read(&self, offset: u64, len: u32) -> Result<AlignedBuf, DeviceError> {
        let range = self.enter(offset, u64::from(len)).await?;
        Ok(AlignedBuf::from_slice(&lock(&self.inner).data[range]))
    }

    async fn write(&self, offset: u64, data: AlignedBuf, fua: bool) -> Result<(), DeviceError> {
        let range = self.enter(offset, data.len() as u64).await?;
        let mut inner = lock(&self.inner);
        let block = MEM_BLOCK_BYTES as usize;
        for b in range.start / block..range.end.div_ceil(block) {
            inner.allocated[b] = true;
        }
        inner.data[range].copy_from_slice(&data);
        drop(inner);
        self.count_fua(fua);
        Ok(())
    }

    async fn flush(&self) -> Result<(), DeviceError> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn trim(&self, offset: u64, len: u32, fua: bool) -> Result<(), DeviceError> {
        let range = self.enter(offset, u64::from(len)).await?;
        self.zero(range, false);
        self.count_fua(fua);
        Ok(())
    }

    async fn write_zeroes(
        &self,
        offset: u64,
        len: u32,
        flags: WriteZeroesFlags,
    ) -> Result<(), DeviceError> {
        let range = self.enter(offset, u64::from(len)).await?;
        self.zero(range, flags.no_hole);
        self.count_fua(flags.fua);
        Ok(())
    }

    async fn cache(&self, offset: u64, len: u32) -> Result<(), DeviceError> {
        self.enter(offset, u64::from(len)).await.map(|_| ())
    }

    async fn block_status(&self, offset: u64, len: u32) -> Result<Vec<Extent>, DeviceError> {
        let range = self.enter(offset, u64::from(len)).await?;
        let inner = lock(&self.inner);
        let block = MEM_BLOCK_BYTES as usize;
        let mut extents: Vec<Extent> = Vec::new();
        let mut pos = range.start;
        while pos < range.end {
            let b = pos / block;
            let next = ((b + 1) * block).min(range.end);
            let flags = if inner.allocated[b] {
                0
            } else {
                STATE_HOLE | STATE_ZERO
            };
            let length = (next - pos) as u32;
            match extents.last_mut() {
                Some(last) if last.flags == flags => last.length += length,
                _ => extents.push(Extent { length, flags }),
            }
            pos = next;
        }
        Ok(extents)
    }
}

struct Entry {
    name: String,
    info: ExportInfo,
    device: Arc<MemDevice>,
    refusal: Option<String>,
}

/// A catalogue of [`MemDevice`] exports; connections share each device.
#[derive(Default)]
pub struct MemExports {
    entries: Mutex<Vec<Entry>>,
}

impl MemExports {
    /// An empty catalogue.
    pub fn new() -> MemExports {
        MemExports::default()
    }

    /// Adds (or replaces) export `name`.
    pub fn add(&self, name: &str, info: ExportInfo, device: Arc<MemDevice>) {
        let mut entries = lock(&self.entries);
        entries.retain(|e| e.name != name);
        entries.push(Entry {
            name: name.to_string(),
            info,
            device,
            refusal: None,
        });
    }

    /// Makes `open(name)` fail with [`OpenError::Policy`] (INFO still works).
    pub fn refuse(&self, name: &str, message: &str) {
        for e in lock(&self.entries).iter_mut().filter(|e| e.name == name) {
            e.refusal = Some(message.to_string());
        }
    }
}

impl Exports for MemExports {
    type Device = Arc<MemDevice>;

    fn list(&self) -> Vec<(String, String)> {
        lock(&self.entries)
            .iter()
            .map(|e| (e.name.clone(), e.info.description.clone()))
            .collect()
    }

    fn info(&self, name: &str) -> Result<ExportInfo, OpenError> {
        lock(&self.entries)
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.info.clone())
            .ok_or_else(|| OpenError::Unknown(format!("no export named {name:?}")))
    }

    fn open(&self, name: &str) -> Result<(ExportInfo, Arc<MemDevice>), OpenError> {
        let entries = lock(&self.entries);
        let entry = entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| OpenError::Unknown(format!("no export named {name:?}")))?;
        if let Some(message) = &entry.refusal {
            return Err(OpenError::Policy(message.clone()));
        }
        Ok((entry.info.clone(), entry.device.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn allocation_follows_writes_and_zeroes() {
        let dev = MemDevice::new(4 * MEM_BLOCK_BYTES);
        let hole = STATE_HOLE | STATE_ZERO;
        assert_eq!(
            dev.block_status(0, 16384).await.unwrap(),
            [Extent {
                length: 16384,
                flags: hole
            }]
        );
        dev.write(4096, AlignedBuf::from_slice(&[7u8; 4096]), false)
            .await
            .unwrap();
        assert_eq!(
            dev.block_status(0, 16384).await.unwrap(),
            [
                Extent {
                    length: 4096,
                    flags: hole
                },
                Extent {
                    length: 4096,
                    flags: 0
                },
                Extent {
                    length: 8192,
                    flags: hole
                }
            ]
        );
        dev.write_zeroes(4096, 4096, WriteZeroesFlags::default())
            .await
            .unwrap();
        assert_eq!(
            dev.block_status(0, 16384).await.unwrap(),
            [Extent {
                length: 16384,
                flags: hole
            }]
        );
        assert!(dev.read(0, 16384).await.unwrap().iter().all(|&b| b == 0));
        dev.fail_range(0, 1);
        assert!(matches!(dev.read(0, 512).await, Err(DeviceError::Io(_))));
        assert!(dev.read(512, 512).await.is_ok());
    }
}
