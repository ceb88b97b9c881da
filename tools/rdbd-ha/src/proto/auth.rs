//! Message authentication: HMAC-SHA256, HMAC-SHA1, HMAC-MD5 over the packet, or crc32c
//! (integrity only: no authentication).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};

/// The authentication method (`authkeys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// crc32c: detects corruption, authenticates nothing.
    Crc,
    /// HMAC-SHA1 (heartbeat's `sha1`).
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-MD5 (heartbeat's `md5`).
    Md5,
}

impl AuthMethod {
    /// The code carried in packets.
    pub fn code(self) -> u8 {
        match self {
            AuthMethod::Crc => 0,
            AuthMethod::Sha1 => 1,
            AuthMethod::Sha256 => 2,
            AuthMethod::Md5 => 3,
        }
    }

    /// The method of a code.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => AuthMethod::Crc,
            1 => AuthMethod::Sha1,
            2 => AuthMethod::Sha256,
            3 => AuthMethod::Md5,
            _ => return None,
        })
    }

    /// The MAC's length in bytes.
    pub fn mac_bytes(self) -> usize {
        match self {
            AuthMethod::Crc => 4,
            AuthMethod::Sha1 => 20,
            AuthMethod::Sha256 => 32,
            AuthMethod::Md5 => 16,
        }
    }

    /// The MAC of `data` under `secret`.
    pub fn mac(self, secret: &[u8], data: &[u8]) -> Vec<u8> {
        fn hmac<M: Mac + hmac::digest::KeyInit>(secret: &[u8], data: &[u8]) -> Vec<u8> {
            // HMAC accepts keys of any length.
            let mut m = <M as hmac::digest::KeyInit>::new_from_slice(secret)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        match self {
            AuthMethod::Crc => crc32c::crc32c(data).to_be_bytes().to_vec(),
            AuthMethod::Sha1 => hmac::<Hmac<sha1::Sha1>>(secret, data),
            AuthMethod::Sha256 => hmac::<Hmac<sha2::Sha256>>(secret, data),
            AuthMethod::Md5 => hmac::<Hmac<md5::Md5>>(secret, data),
        }
    }

    /// Constant-time check of `mac` over `data`.
    pub fn verify(self, secret: &[u8], data: &[u8], mac: &[u8]) -> bool {
        let expected = self.mac(secret, data);
        if expected.len() != mac.len() {
            return false;
        }
        expected
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthMethod::Crc => "crc",
            AuthMethod::Sha1 => "sha1",
            AuthMethod::Sha256 => "sha256",
            AuthMethod::Md5 => "md5",
        })
    }
}

impl std::str::FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "crc" => AuthMethod::Crc,
            "sha1" => AuthMethod::Sha1,
            "sha256" => AuthMethod::Sha256,
            "md5" => AuthMethod::Md5,
            _ => return Err(format!("unknown auth method '{s}'")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2202 / RFC 4231 test case 2 ("Jefe", "what do ya want for nothing?").
    #[test]
    fn hmac_known_answers() {
        let hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let data = b"what do ya want for nothing?";
        assert_eq!(
            hex(AuthMethod::Sha1.mac(b"Jefe", data)),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex(AuthMethod::Md5.mac(b"Jefe", data)),
            "750c783e6ab0b503eaa86e310a5db738"
        );
        assert_eq!(
            hex(AuthMethod::Sha256.mac(b"Jefe", data)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_rejects_other_key() {
        let m = AuthMethod::Sha256.mac(b"k1", b"x");
        assert!(AuthMethod::Sha256.verify(b"k1", b"x", &m));
        assert!(!AuthMethod::Sha256.verify(b"k2", b"x", &m));
        assert!(!AuthMethod::Sha256.verify(b"k1", b"y", &m));
        assert!(!AuthMethod::Sha256.verify(b"k1", b"x", &m[..31]));
    }
}
