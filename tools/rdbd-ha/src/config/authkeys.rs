//! A reader for heartbeat's `authkeys`: `auth N` selects key N; key lines are
//! `N sha1 SECRET`, `N md5 SECRET`, `N crc` (and rdbd-ha's `N sha256 SECRET`).
//! `crc` authenticates nothing: anyone on the link can forge heartbeats.

use crate::error::{HaError, Result};
use crate::proto::AuthMethod;

/// The longest authkeys accepted, in bytes.
pub const MAX_AUTHKEYS_BYTES: usize = 64 * 1024;

/// The selected key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthKey {
    /// The key index (`auth N`).
    pub index: u8,
    /// The method.
    pub method: AuthMethod,
    /// The secret (empty for crc).
    pub secret: String,
}

/// Parses authkeys text; returns the key `auth` selects, plus warnings.
pub fn parse(text: &str) -> Result<(AuthKey, Vec<String>)> {
    if text.len() > MAX_AUTHKEYS_BYTES {
        return Err(HaError::Invalid(format!(
            "authkeys has {} bytes, at most {MAX_AUTHKEYS_BYTES}",
            text.len()
        )));
    }
    let mut active: Option<(u8, usize)> = None;
    let mut keys: Vec<AuthKey> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: String| HaError::Syntax {
            file: "authkeys".into(),
            line: line_no,
            message,
        };
        let mut words = line.splitn(3, char::is_whitespace);
        let first = words.next().unwrap_or("");
        let index = |w: &str| -> Result<u8> {
            w.parse::<u8>()
                .ok()
                .filter(|n| (1..=15).contains(n))
                .ok_or_else(|| err(format!("key index '{w}' is not 1..15")))
        };
        if first == "auth" {
            let n = words.next().unwrap_or("").trim();
            active = Some((index(n)?, line_no));
            continue;
        }
        let n = index(first)?;
        let method_word = words.next().unwrap_or("").trim();
        let method: AuthMethod = method_word.parse().map_err(|_| {
            err(format!(
                "unknown method '{method_word}' (sha1, sha256, md5, crc)"
            ))
        })?;
        let secret = words.next().unwrap_or("").trim().to_string();
        if method == AuthMethod::Crc {
            if !secret.is_empty() {
                return Err(err("crc takes no secret".into()));
            }
        } else if secret.is_empty() {
            return Err(err(format!("{method} needs a secret")));
        }
        if keys.iter().any(|k| k.index == n) {
            return Err(err(format!("key {n} defined twice")));
        }
        keys.push(AuthKey {
            index: n,
            method,
            secret,
        });
    }
    let (n, line) = active.ok_or_else(|| HaError::Syntax {
        file: "authkeys".into(),
        line: 0,
        message: "no 'auth N' line".into(),
    })?;
    let key = keys
        .into_iter()
        .find(|k| k.index == n)
        .ok_or_else(|| HaError::Syntax {
            file: "authkeys".into(),
            line,
            message: format!("auth {n}: no key {n} defined"),
        })?;
    let mut notes = Vec::new();
    match key.method {
        AuthMethod::Crc => notes.push(
            "authkeys: WARNING: 'crc' authenticates NOTHING: anyone who can send UDP to this port can forge heartbeats and make a node give up or keep its group; use sha256 or sha1".into(),
        ),
        AuthMethod::Md5 => notes.push("authkeys: md5 is weak; prefer sha256 (rdbd-ha) or sha1".into()),
        _ => {}
    }
    Ok((key, notes))
}
