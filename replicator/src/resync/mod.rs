//! Resync decisions as pure code (no I/O): rate control, the bitmap exchange, and the block
//! digests of checksum-based resync and online verify.
//!
//! - [`rate`]: how many 4 KiB resync requests to send every 100 ms (static `resync-rate`, the
//!   dynamic `drbd_rs_controller`, and c-min-rate throttling).
//! - [`bitmap_xfer`]: the bitmap as a sequence of P_BITMAP / P_COMPRESSED_BITMAP packets, and
//!   the receiver that merges them.
//! - [`plan`]: which blocks to request next (resync and verify walks of the bitmap).
//! - [`progress`]: the /proc/drbd progress lines and the resync/verify log lines.
//! - [`digest`]: `csums-alg` / `verify-alg` digests (crc32c, md5, sha1, sha256).

pub mod bitmap_xfer;
pub mod digest;
pub mod plan;
pub mod progress;
pub mod rate;
