//! cram-hmac peer authentication (`drbd_do_auth`), as the kernel does it:
//!
//! 1. each side sends P_AUTH_CHALLENGE with [`CHALLENGE_BYTES`] random bytes (h100 header, after
//!    P_CONNECTION_FEATURES);
//! 2. each side answers with P_AUTH_RESPONSE = HMAC-`alg`(key = shared secret, message = the
//!    peer's *whole* challenge payload, which the kernel accepts at 64..=128 bytes);
//! 3. each side checks the response against HMAC(secret, its own challenge) and logs
//!    "Peer authenticated using N bytes HMAC". A peer that echoes our own challenge is refused.
//!
//! The key is the secret's bytes without a NUL (the kernel uses `strlen`, at most 63 bytes).

use hmac::{Hmac, Mac};

/// Bytes of random challenge each side sends.
pub const CHALLENGE_BYTES: usize = 64;
/// Longest shared secret (`SHARED_SECRET_MAX` 64 with its NUL).
pub const SHARED_SECRET_MAX_BYTES: usize = 63;

/// The HMAC digest (`cram-hmac-alg`, the kernel's `hmac(<alg>)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CramHmacAlg {
    /// `sha1`: 20-byte responses.
    Sha1,
    /// `sha256`: 32-byte responses.
    Sha256,
}

impl CramHmacAlg {
    /// The algorithm for a drbd.conf `cram-hmac-alg` name.
    pub fn from_name(name: &str) -> Option<CramHmacAlg> {
        match name.to_ascii_lowercase().as_str() {
            "sha1" => Some(CramHmacAlg::Sha1),
            "sha256" => Some(CramHmacAlg::Sha256),
            _ => None,
        }
    }

    /// Response length in bytes.
    pub fn digest_bytes(self) -> usize {
        match self {
            CramHmacAlg::Sha1 => 20,
            CramHmacAlg::Sha256 => 32,
        }
    }
}

fn mac_over(alg: CramHmacAlg, secret: &[u8], message: &[u8]) -> Vec<u8> {
    match alg {
        CramHmacAlg::Sha1 => {
            // An HMAC key may have any length, so new_from_slice cannot fail.
            let mut mac =
                Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC accepts any key length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        CramHmacAlg::Sha256 => {
            let mut mac =
                Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// Our P_AUTH_RESPONSE payload to the peer's P_AUTH_CHALLENGE payload.
pub fn auth_response(alg: CramHmacAlg, secret: &[u8], peer_challenge: &[u8]) -> Vec<u8> {
    mac_over(alg, secret, peer_challenge)
}

/// Whether the peer's P_AUTH_RESPONSE proves it knows `secret` (constant-time comparison).
pub fn verify_response(
    alg: CramHmacAlg,
    secret: &[u8],
    our_challenge: &[u8],
    response: &[u8],
) -> bool {
    let expected = mac_over(alg, secret, our_challenge);
    expected.len() == response.len()
        && expected
            .iter()
            .zip(response)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2202_and_rfc4231_vectors() {
        // RFC 2202 test case 2 (HMAC-SHA1) and RFC 4231 test case 2 (HMAC-SHA256): key "Jefe".
        let msg = b"what do ya want for nothing?";
        let sha1: Vec<u8> = (0..20)
            .map(|i| {
                u8::from_str_radix(
                    &"effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"[2 * i..2 * i + 2],
                    16,
                )
                .unwrap()
            })
            .collect();
        assert_eq!(auth_response(CramHmacAlg::Sha1, b"Jefe", msg), sha1);
        let hex256 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let sha256: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex256[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(auth_response(CramHmacAlg::Sha256, b"Jefe", msg), sha256);
    }

    #[test]
    fn verify_checks_secret_and_length() {
        let challenge = [7u8; CHALLENGE_BYTES];
        let resp = auth_response(CramHmacAlg::Sha256, b"s3cret", &challenge);
        assert!(verify_response(
            CramHmacAlg::Sha256,
            b"s3cret",
            &challenge,
            &resp
        ));
        assert!(!verify_response(
            CramHmacAlg::Sha256,
            b"other",
            &challenge,
            &resp
        ));
        assert!(!verify_response(
            CramHmacAlg::Sha256,
            b"s3cret",
            &challenge,
            &resp[..31]
        ));
        assert_eq!(CramHmacAlg::from_name("SHA1"), Some(CramHmacAlg::Sha1));
        assert_eq!(CramHmacAlg::from_name("md5"), None);
    }
}
