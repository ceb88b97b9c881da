//! The block size constraints advertised with `NBD_INFO_BLOCK_SIZE`, made
//! valid whatever the export reported (spec "Size constraints"):
//! minimum a power of two <= 64 KiB, preferred a power of two >= max(minimum,
//! 512), maximum payload >= preferred and capped by the server limit.

use crate::export::ExportInfo;

use super::ServerLimits;

/// Advertised and enforced block sizes of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSizes {
    /// Alignment of every offset and length.
    pub min_bytes: u32,
    /// Efficient I/O size.
    pub preferred_bytes: u32,
    /// Largest READ/WRITE payload.
    pub max_bytes: u32,
}

impl BlockSizes {
    /// The valid constraints closest to what `info` asks for under `limits`.
    pub fn effective(info: &ExportInfo, limits: &ServerLimits) -> BlockSizes {
        let min_bytes = if info.block_size_min.is_power_of_two() && info.block_size_min <= 64 * 1024
        {
            info.block_size_min
        } else {
            1
        };
        let preferred_bytes = info
            .block_size_preferred
            .max(min_bytes)
            .max(512)
            .checked_next_power_of_two()
            .unwrap_or(1 << 31);
        let max_bytes = info
            .block_size_max
            .min(limits.max_request_bytes)
            .max(preferred_bytes);
        BlockSizes {
            min_bytes,
            preferred_bytes,
            max_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(min: u32, preferred: u32, max: u32) -> ExportInfo {
        ExportInfo {
            size_bytes: 1 << 30,
            read_only: false,
            description: String::new(),
            block_size_min: min,
            block_size_preferred: preferred,
            block_size_max: max,
            can_flush: true,
            can_fua: true,
            can_trim: true,
            can_write_zeroes: true,
            can_fast_zero: true,
            can_multi_conn: true,
            can_cache: true,
        }
    }

    #[test]
    fn sane_values_pass_and_bad_ones_are_fixed() {
        let limits = ServerLimits::default();
        let ok = BlockSizes::effective(&info(512, 4096, 1 << 20), &limits);
        assert_eq!(
            ok,
            BlockSizes {
                min_bytes: 512,
                preferred_bytes: 4096,
                max_bytes: 1 << 20
            }
        );
        let fixed = BlockSizes::effective(&info(3, 1000, u32::MAX), &limits);
        assert_eq!(
            fixed,
            BlockSizes {
                min_bytes: 1,
                preferred_bytes: 1024,
                max_bytes: limits.max_request_bytes
            }
        );
        let tiny_max = BlockSizes::effective(&info(4096, 512, 100), &limits);
        assert_eq!(
            tiny_max,
            BlockSizes {
                min_bytes: 4096,
                preferred_bytes: 4096,
                max_bytes: 4096
            }
        );
        assert_eq!(
            BlockSizes::effective(&info(1 << 17, 0, 0), &limits).min_bytes,
            1
        );
    }
}
