//! Block digests for checksum-based resync (`csums-alg`) and online verify (`verify-alg`).
//!
//! DRBD names the algorithm with the kernel crypto name and hashes exactly the bytes of the
//! block (`drbd_csum_ee`: the peer request's pages, `size` bytes, nothing else: no sector, no
//! header). The digest travels in P_CSUM_RS_REQUEST (SyncTarget -> SyncSource) and P_OV_REPLY
//! (VerifyT -> VerifyS); the receiver hashes its own copy and compares the bytes.
//!
//! The kernel's `crc32c` digest is the standard CRC-32C (Castagnoli, init !0, final xor !0)
//! stored little-endian (crypto/crc32c_generic.c `chksum_final`).
//!
//! API: [`DigestAlg::parse`]`("sha1")`, [`DigestAlg::name`], [`DigestAlg::len_bytes`],
//! [`DigestAlg::digest`]`(&block) -> Vec<u8>`, [`digests_match`], and
//! [`use_checksum_based_resync`].

use std::fmt;

use md5::Digest as _;

/// A digest algorithm DRBD can be configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlg {
    /// `crc32c` (4 bytes).
    Crc32c,
    /// `md5` (16 bytes).
    Md5,
    /// `sha1` (20 bytes).
    Sha1,
    /// `sha256` (32 bytes).
    Sha256,
}

/// An algorithm name rdbd does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported digest algorithm '{name}' (supported: crc32c, md5, sha1, sha256)")]
pub struct UnsupportedDigest {
    /// The name given.
    pub name: String,
}

impl DigestAlg {
    /// Every algorithm.
    pub const ALL: [DigestAlg; 4] = [
        DigestAlg::Crc32c,
        DigestAlg::Md5,
        DigestAlg::Sha1,
        DigestAlg::Sha256,
    ];

    /// Parses the kernel crypto name (as in drbd.conf and in P_SYNC_PARAM's `csums_alg` /
    /// `verify_alg` fields), case-insensitively.
    pub fn parse(name: &str) -> Result<DigestAlg, UnsupportedDigest> {
        DigestAlg::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnsupportedDigest {
                name: name.to_string(),
            })
    }

    /// The kernel crypto name.
    pub fn name(self) -> &'static str {
        match self {
            DigestAlg::Crc32c => "crc32c",
            DigestAlg::Md5 => "md5",
            DigestAlg::Sha1 => "sha1",
            DigestAlg::Sha256 => "sha256",
        }
    }

    /// The digest length in bytes (`crypto_ahash_digestsize`).
    pub fn len_bytes(self) -> usize {
        match self {
            DigestAlg::Crc32c => 4,
            DigestAlg::Md5 => 16,
            DigestAlg::Sha1 => 20,
            DigestAlg::Sha256 => 32,
        }
    }

    /// The digest of `block` (the block's bytes only).
    pub fn digest(self, block: &[u8]) -> Vec<u8> {
        match self {
            DigestAlg::Crc32c => crc32c::crc32c(block).to_le_bytes().to_vec(),
            DigestAlg::Md5 => md5::Md5::digest(block).to_vec(),
            DigestAlg::Sha1 => sha1::Sha1::digest(block).to_vec(),
            DigestAlg::Sha256 => sha2::Sha256::digest(block).to_vec(),
        }
    }
}

impl fmt::Display for DigestAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the peer's digest equals ours for `block` (`!memcmp`; a digest of the wrong length
/// never matches).
pub fn digests_match(alg: DigestAlg, block: &[u8], peer_digest: &[u8]) -> bool {
    alg.digest(block) == peer_digest
}

/// Whether a SyncTarget uses checksum-based resync (`use_checksum_based_resync`): protocol >= 89,
/// a `csums-alg` configured, and either `csums-after-crash-only` off or this node crashed while
/// Primary. A SyncSource never initiates it (it answers P_CSUM_RS_REQUEST).
pub fn use_checksum_based_resync(
    agreed_pro_version: u32,
    csums_alg: Option<DigestAlg>,
    csums_after_crash_only: bool,
    crashed_primary: bool,
) -> bool {
    agreed_pro_version >= 89 && csums_alg.is_some() && (!csums_after_crash_only || crashed_primary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Golden vectors: the standard check strings, and a 4 KiB block of zeros and of the byte
    /// pattern i % 251 (what a resync block looks like), computed independently with
    /// Python's hashlib and a bitwise CRC-32C.
    #[test]
    fn golden_vectors() {
        let pattern: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let zeros = vec![0u8; 4096];
        let cases: [(DigestAlg, &[u8], &str); 12] = [
            (DigestAlg::Crc32c, b"123456789", "839206e3"),
            (DigestAlg::Md5, b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (
                DigestAlg::Sha1,
                b"abc",
                "a9993e364706816aba3e25717850c26c9cd0d89d",
            ),
            (
                DigestAlg::Sha256,
                b"abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (DigestAlg::Crc32c, &zeros, ZEROS_CRC32C),
            (DigestAlg::Md5, &zeros, ZEROS_MD5),
            (DigestAlg::Sha1, &zeros, ZEROS_SHA1),
            (DigestAlg::Sha256, &zeros, ZEROS_SHA256),
            (DigestAlg::Crc32c, &pattern, PATTERN_CRC32C),
            (DigestAlg::Md5, &pattern, PATTERN_MD5),
            (DigestAlg::Sha1, &pattern, PATTERN_SHA1),
            (DigestAlg::Sha256, &pattern, PATTERN_SHA256),
        ];
        for (alg, data, want) in cases {
            let d = alg.digest(data);
            assert_eq!(d.len(), alg.len_bytes(), "{alg} length");
            assert_eq!(
                hex(&d),
                want,
                "{alg} digest of {} bytes changed",
                data.len()
            );
        }
    }

    const ZEROS_CRC32C: &str = "8941f998";
    const ZEROS_MD5: &str = "620f0b67a91f7f74151bc5be745b7110";
    const ZEROS_SHA1: &str = "1ceaf73df40e531df3bfb26b4fb7cd95fb7bff1d";
    const ZEROS_SHA256: &str = "ad7facb2586fc6e966c004d7d1d16b024f5805ff7cb47c7a85dabd8b48892ca7";
    const PATTERN_CRC32C: &str = "fc779071";
    const PATTERN_MD5: &str = "a0c16616c91907bd14e999986cf822d5";
    const PATTERN_SHA1: &str = "92ca8f2b4163e64a1b53e0fde263ad56cbdb75fc";
    const PATTERN_SHA256: &str = "d67c656e01756650d77717b0839985a056ec28ffe174601d690fc407a2ceffca";

    #[test]
    fn checksum_based_resync_conditions() {
        let alg = Some(DigestAlg::Md5);
        assert!(use_checksum_based_resync(101, alg, false, false));
        assert!(!use_checksum_based_resync(88, alg, false, false));
        assert!(!use_checksum_based_resync(101, None, false, false));
        assert!(!use_checksum_based_resync(101, alg, true, false));
        assert!(use_checksum_based_resync(101, alg, true, true));
    }

    #[test]
    fn names_round_trip_and_unknown_fails() {
        for a in DigestAlg::ALL {
            assert_eq!(DigestAlg::parse(a.name()), Ok(a));
            assert_eq!(DigestAlg::parse(&a.name().to_uppercase()), Ok(a));
        }
        assert!(DigestAlg::parse("crc32").is_err());
        assert!(DigestAlg::parse("").is_err());
    }

    #[test]
    fn one_flipped_bit_changes_every_digest() {
        let mut block = vec![0x5au8; 4096];
        for a in DigestAlg::ALL {
            let d = a.digest(&block);
            block[1234] ^= 0x10;
            assert!(!digests_match(a, &block, &d), "{a}");
            block[1234] ^= 0x10;
            assert!(digests_match(a, &block, &d), "{a}");
            assert!(
                !digests_match(a, &block, &d[..d.len() - 1]),
                "{a} short digest"
            );
        }
    }
}
