//! Building the allocation map returned by [`crate::LocalDisk::allocation`]:
//! a list of `(len, is_hole)` runs where neighbours always differ in kind
//! and no run is empty (no I/O here).

/// Accumulates runs, merging adjacent runs of the same kind.
#[derive(Debug, Default)]
pub(crate) struct ExtentList {
    runs: Vec<(u64, bool)>,
}

impl ExtentList {
    /// Appends `len` bytes of data (`is_hole == false`) or hole.
    pub fn push(&mut self, len: u64, is_hole: bool) {
        if len == 0 {
            return;
        }
        match self.runs.last_mut() {
            Some((last_len, last_hole)) if *last_hole == is_hole => *last_len += len,
            _ => self.runs.push((len, is_hole)),
        }
    }

    /// The runs, in order.
    pub fn into_runs(self) -> Vec<(u64, bool)> {
        self.runs
    }
}

/// Computes the map of `[offset, end)` from a `SEEK_DATA`/`SEEK_HOLE`
/// oracle: `seek(pos, true)` returns the first data byte at or after `pos`
/// (`None` when there is none), `seek(pos, false)` the first hole byte.
pub(crate) fn map_range<E>(
    offset: u64,
    end: u64,
    mut seek: impl FnMut(u64, bool) -> Result<Option<u64>, E>,
) -> Result<Vec<(u64, bool)>, E> {
    let mut list = ExtentList::default();
    let mut pos = offset;
    while pos < end {
        let data = seek(pos, true)?.unwrap_or(end).clamp(pos, end);
        list.push(data - pos, true);
        if data >= end {
            break;
        }
        // Every file has an implicit hole at its end, so SEEK_HOLE succeeds;
        // treat a missing answer as "data to the end" anyway. A hole answer
        // not beyond `data` would loop forever: count one byte as data then.
        let hole = seek(data, false)?.unwrap_or(end).clamp(data + 1, end);
        list.push(hole - data, false);
        pos = hole;
    }
    Ok(list.into_runs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A file described by a per-4k-block "has data" map.
    fn oracle(blocks: &[bool]) -> impl FnMut(u64, bool) -> Result<Option<u64>, ()> + '_ {
        move |pos, want_data| {
            let size = blocks.len() as u64 * 4096;
            if pos >= size {
                return Ok(if want_data { None } else { Some(size.max(pos)) });
            }
            let first = (pos / 4096) as usize;
            if let Some(i) = blocks[first..]
                .iter()
                .position(|&has_data| has_data == want_data)
            {
                return Ok(Some(((first + i) as u64 * 4096).max(pos)));
            }
            Ok(if want_data { None } else { Some(size) })
        }
    }

    #[test]
    fn merges_and_skips_empty_runs() {
        let mut l = ExtentList::default();
        l.push(10, true);
        l.push(0, false);
        l.push(5, true);
        l.push(7, false);
        assert_eq!(l.into_runs(), vec![(15, true), (7, false)]);
    }

    proptest! {
        #[test]
        fn map_matches_block_model(blocks in proptest::collection::vec(any::<bool>(), 1..40), a in 0u64..200_000, b in 0u64..200_000) {
            let size = blocks.len() as u64 * 4096;
            let (x, y) = (a % size, b % size);
            let (start, end) = (x.min(y), x.max(y));
            let runs = map_range(start, end, oracle(&blocks)).unwrap();
            prop_assert_eq!(runs.iter().map(|r| r.0).sum::<u64>(), end - start);
            let mut pos = start;
            for (i, &(len, hole)) in runs.iter().enumerate() {
                prop_assert!(len > 0);
                if i > 0 { prop_assert_ne!(runs[i - 1].1, hole); }
                for block in pos / 4096..=(pos + len - 1) / 4096 {
                    prop_assert_eq!(blocks[block as usize], !hole, "block {} in run {:?}", block, runs[i]);
                }
                pos += len;
            }
        }
    }
}
