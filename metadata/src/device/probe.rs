//! What is already on a device before `create-md` overwrites it: existing DRBD meta-data and
//! file-system signatures (drbdmeta `check_for_existing_data` / `check_*_md_flavours`).

use crate::consts::*;
use crate::device::raw::RawDevice;
use crate::error::Result;
use crate::superblock::Superblock;

/// Bytes at the start of the device that are inspected (drbdmeta `SO_MUCH`, 68 KiB).
pub const PROBE_BYTES: u64 = 68 * 1024;

/// A recognised signature at the start of the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsSignature {
    /// ext2/3/4 (0xEF53 at byte 1080).
    Ext,
    /// XFS ("XFSB" at byte 0).
    Xfs,
    /// Linux swap.
    Swap,
}

impl FsSignature {
    /// Human name as drbdmeta prints it.
    pub fn name(self) -> &'static str {
        match self {
            FsSignature::Ext => "ext2/ext3/ext4 filesystem",
            FsSignature::Xfs => "xfs filesystem",
            FsSignature::Swap => "swap space signature",
        }
    }
}

/// Existing meta-data found at the superblock position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExistingMd {
    /// Nothing recognisable.
    None,
    /// A v08 superblock (clean or unclean).
    V08(Superblock),
    /// Another DRBD meta-data version ("v07"/"v09").
    Other(&'static str),
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// Meta-data at the superblock offset.
    pub existing_md: ExistingMd,
    /// File-system signature at the start of the device.
    pub fs: Option<FsSignature>,
    /// Any non-zero byte in the first 68 KiB.
    pub head_nonzero: bool,
}

impl ProbeResult {
    /// Whether overwriting needs confirmation.
    pub fn needs_confirmation(&self) -> bool {
        self.existing_md != ExistingMd::None || self.fs.is_some() || self.head_nonzero
    }
}

/// Detects a file-system signature in the first bytes of a device.
pub fn detect_fs(head: &[u8]) -> Option<FsSignature> {
    if head.len() >= 1082 && u16::from_le_bytes([head[1080], head[1081]]) == 0xEF53 {
        return Some(FsSignature::Ext);
    }
    if head.starts_with(b"XFSB") {
        return Some(FsSignature::Xfs);
    }
    for page in [4096usize, 8192] {
        if head.len() >= page {
            let sig = &head[page - 10..page];
            if sig == b"SWAPSPACE2" || sig == b"SWAP-SPACE" {
                return Some(FsSignature::Swap);
            }
        }
    }
    None
}

/// Classifies the 4 KiB at the superblock position.
pub fn detect_md(block: &[u8]) -> ExistingMd {
    if block.len() < 0x40 {
        return ExistingMd::None;
    }
    let magic = u32::from_be_bytes([block[0x3C], block[0x3D], block[0x3E], block[0x3F]]);
    match magic {
        MD_MAGIC_08 | MD_MAGIC_84_UNCLEAN => match Superblock::decode(block, 0) {
            Ok(sb) => ExistingMd::V08(sb),
            Err(_) => ExistingMd::None,
        },
        MD_MAGIC_09 => ExistingMd::Other("v09"),
        MD_MAGIC_07 => ExistingMd::Other("v07"),
        _ => ExistingMd::None,
    }
}

/// Probes `dev` whose superblock would sit at `md_offset_bytes`.
pub fn probe(dev: &RawDevice, md_offset_bytes: u64) -> Result<ProbeResult> {
    let head_len = PROBE_BYTES.min(dev.size_bytes()) as usize;
    let head = dev.read_vec(head_len, 0)?;
    let existing_md = if md_offset_bytes + BLOCK_4K_BYTES as u64 <= dev.size_bytes() {
        detect_md(&dev.read_vec(BLOCK_4K_BYTES, md_offset_bytes)?)
    } else {
        ExistingMd::None
    };
    Ok(ProbeResult {
        existing_md,
        fs: detect_fs(&head),
        head_nonzero: head.iter().any(|&b| b != 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let mut head = vec![0u8; 8192];
        assert_eq!(detect_fs(&head), None);
        head[1080] = 0x53;
        head[1081] = 0xEF;
        assert_eq!(detect_fs(&head), Some(FsSignature::Ext));
        let mut head = vec![0u8; 8192];
        head[..4].copy_from_slice(b"XFSB");
        assert_eq!(detect_fs(&head), Some(FsSignature::Xfs));
        let mut head = vec![0u8; 8192];
        head[4086..4096].copy_from_slice(b"SWAPSPACE2");
        assert_eq!(detect_fs(&head), Some(FsSignature::Swap));
        assert_eq!(detect_fs(&[1, 2]), None);
    }

    #[test]
    fn md_detection() {
        let mut b = vec![0u8; 4096];
        assert_eq!(detect_md(&b), ExistingMd::None);
        b[0x3C..0x40].copy_from_slice(&MD_MAGIC_09.to_be_bytes());
        assert_eq!(detect_md(&b), ExistingMd::Other("v09"));
    }
}
