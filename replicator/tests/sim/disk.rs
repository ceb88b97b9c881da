//! `SimDisk`: blocks in memory behind a volatile write cache, and the meta-data area.
//!
//! A write lands in the cache unless it is FUA; `flush` makes the cache stable; a crash
//! (SIGKILL plus power loss of the drive's cache) discards whatever was not flushed. The
//! drive may also write cached blocks back on its own at any time ([`SimDisk::writeback_one`]).
//! Meta-data writes are modelled as DRBD issues them on internal meta-data: a pre-flush of
//! the data blocks, then a FUA write of the meta-data, so they are stable at once.

use std::collections::BTreeMap;

use rand::Rng;
use rdbd_replicator::generation::Generations;

/// One node's data blocks; a block holds the id of the last write to it (0: never written).
#[derive(Debug, Clone)]
pub struct SimDisk {
    stable: Vec<u64>,
    cache: BTreeMap<usize, u64>,
}

impl SimDisk {
    /// A zeroed disk of `blocks` blocks.
    pub fn new(blocks: usize) -> SimDisk {
        SimDisk {
            stable: vec![0; blocks],
            cache: BTreeMap::new(),
        }
    }

    /// Writes `value` to `block`; FUA writes go to stable storage at once.
    pub fn write(&mut self, block: usize, value: u64, fua: bool) {
        if fua {
            self.cache.remove(&block);
            self.stable[block] = value;
        } else {
            self.cache.insert(block, value);
        }
    }

    /// What a read returns (the cache hides stable storage).
    pub fn read(&self, block: usize) -> u64 {
        self.cache
            .get(&block)
            .copied()
            .unwrap_or(self.stable[block])
    }

    /// Every block as a read sees it.
    pub fn contents(&self) -> Vec<u64> {
        (0..self.stable.len()).map(|b| self.read(b)).collect()
    }

    /// Makes the cache stable.
    pub fn flush(&mut self) {
        for (b, v) in std::mem::take(&mut self.cache) {
            self.stable[b] = v;
        }
    }

    /// Power loss: the cache is gone.
    pub fn crash(&mut self) {
        self.cache.clear();
    }

    /// The drive writes one cached block back on its own.
    pub fn writeback_one(&mut self, rng: &mut impl Rng) {
        if self.cache.is_empty() {
            return;
        }
        let i = rng.gen_range(0..self.cache.len());
        let b = *self.cache.keys().nth(i).expect("index in range");
        let v = self.cache.remove(&b).expect("key exists");
        self.stable[b] = v;
    }
}

/// The persistent meta-data of a node: identifiers, flags, the bitmap, the activity log.
#[derive(Debug, Clone, Default)]
pub struct SimMeta {
    /// Generation identifiers.
    pub gens: Generations,
    /// Meta-data flags.
    pub md_flags: u32,
    /// Out-of-sync blocks.
    pub bitmap: Vec<bool>,
    /// Active extents (blocks / `AL_EXTENT_BLOCKS`), least recently used first.
    pub al: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_crash_loses_exactly_the_unflushed_writes() {
        let mut d = SimDisk::new(4);
        d.write(0, 1, false);
        d.write(1, 2, true);
        d.flush();
        d.write(2, 3, false);
        assert_eq!(d.contents(), vec![1, 2, 3, 0]);
        d.crash();
        assert_eq!(d.contents(), vec![1, 2, 0, 0]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        d.write(3, 4, false);
        d.writeback_one(&mut rng);
        d.crash();
        assert_eq!(d.read(3), 4, "written back before the crash");
    }
}
