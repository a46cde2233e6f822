//! Server-generated secrets: generation, SHA-256 digests, constant-time checks,
//! and a string type whose `Debug` never shows the secret.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// Bytes of randomness in every secret, API key and `jti` body (256 bits).
pub const SECRET_BYTES: usize = 32;

/// Prefix of client secrets, so that secret scanners can recognise them.
pub const CLIENT_SECRET_PREFIX: &str = "tgs_";

/// Prefix of client ids.
pub const CLIENT_ID_PREFIX: &str = "tgc_";

/// Prefix of API key ids (not secret).
pub const API_KEY_ID_PREFIX: &str = "key_";

/// Prefix of console login links' tokens.
pub const LOGIN_LINK_PREFIX: &str = "tgl_";

/// Prefix of console session cookies.
pub const CONSOLE_SESSION_PREFIX: &str = "tgcon_";

/// Prefix of console session ids (not secret).
pub const CONSOLE_SESSION_ID_PREFIX: &str = "cs_";

/// A secret value (client secret, API key, access token) that redacts itself
/// in `Debug` and `Display`, so it cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        SecretString(value)
    }

    /// The secret itself; call only to show it once or to digest it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 digest of the secret, the only form ever stored.
    pub fn digest(&self) -> [u8; 32] {
        digest(self.0.as_bytes())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// `n` bytes from the operating system's CSPRNG, base64url without padding.
pub fn random_b64(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // SystemRandom only fails if the OS has no entropy source at all; that is
    // not a state the server can serve from, so it is reported loudly.
    if SystemRandom::new().fill(&mut buf).is_err() {
        log::error!("operating system random number generator failed");
        std::process::abort();
    }
    URL_SAFE_NO_PAD.encode(&buf)
}

/// A new token identifier (`jti`, RFC 7519 §4.1.7): 128 bits from the
/// thread's CSPRNG (rand's `ThreadRng`: ChaCha12 seeded from, and
/// periodically reseeded by, the operating system), base64url.
///
/// A `jti` must be unique and unguessable, not secret in the way a client
/// secret is; drawing it without a system call per token saves one
/// `getrandom` on every issuance. Secrets and keys still come from the
/// operating system directly ([`random_b64`]).
pub fn token_id() -> String {
    use rand::RngCore;
    let mut buf = [0u8; 16];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A new secret: `prefix` followed by 256 random bits in base64url.
pub fn generate(prefix: &str) -> SecretString {
    SecretString(format!("{prefix}{}", random_b64(SECRET_BYTES)))
}

/// A new public identifier: `prefix` followed by 128 random bits.
pub fn generate_id(prefix: &str) -> String {
    format!("{prefix}{}", random_b64(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_carry_prefix_and_256_bits() {
        let s = generate("tg_live_");
        assert!(s.expose().starts_with("tg_live_"));
        let body = &s.expose()["tg_live_".len()..];
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
        assert_ne!(generate("x").expose(), generate("x").expose());
    }

    #[test]
    fn prefixes_never_collide() {
        let all = [
            CLIENT_SECRET_PREFIX,
            CLIENT_ID_PREFIX,
            API_KEY_ID_PREFIX,
            LOGIN_LINK_PREFIX,
            CONSOLE_SESSION_PREFIX,
            CONSOLE_SESSION_ID_PREFIX,
        ];
        for a in all {
            for b in all {
                if a != b {
                    assert!(!a.starts_with(b), "{a} starts with {b}");
                }
            }
        }
    }

    #[test]
    fn debug_and_display_redact() {
        let s = SecretString::new("tgs_supersecret".into());
        assert!(!format!("{s:?}").contains("supersecret"));
        assert!(!format!("{s}").contains("supersecret"));
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
