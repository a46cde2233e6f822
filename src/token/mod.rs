//! JWT access tokens (RFC 9068): claims, signing and verification with keys
//! pinned to their algorithm.

pub mod jws;
pub mod keys;
pub mod pkcs11;
pub mod txn;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use keys::{KeyRing, KeySet, SigningKey};

/// The signing algorithms Tollgate supports (RFC 7518 §3.1, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256; the default.
    Es256,
    /// Ed25519.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    Rs256,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256 (RFC 7518 §3.5),
    /// 2048-bit keys.
    Ps256,
}

impl Alg {
    /// Parses `ES256`, `EdDSA`, `RS256` or `PS256` (case-insensitive).
    pub fn parse(s: &str) -> Option<Alg> {
        match s.trim().to_ascii_uppercase().as_str() {
            "ES256" => Some(Alg::Es256),
            "EDDSA" => Some(Alg::EdDsa),
            "RS256" => Some(Alg::Rs256),
            "PS256" => Some(Alg::Ps256),
            _ => None,
        }
    }

    /// The JWS `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
        }
    }
}

/// The `typ` header of JWT access tokens (RFC 9068 §2.1).
pub const TOKEN_TYPE: &str = "at+jwt";

/// The `typ` header of transaction tokens
/// (draft-ietf-oauth-transaction-tokens-10 §4.1).
pub const TXN_TOKEN_TYPE: &str = "txntoken+jwt";

/// The `typ` header of a signed introspection answer (RFC 9701 §5).
pub const INTROSPECTION_TYPE: &str = "token-introspection+jwt";

/// The `typ` header of a Security Event Token (RFC 8417 §2.3).
pub const SECEVENT_TYPE: &str = "secevent+jwt";

/// Which kind of JWT Tollgate signs: the header's `typ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typ {
    /// An access token, `at+jwt`.
    Access,
    /// A transaction token, `txntoken+jwt`.
    Txn,
    /// A signed introspection answer, `token-introspection+jwt`.
    Introspection,
    /// A Security Event Token, `secevent+jwt` (Shared Signals).
    SecEvent,
}

/// Access-token claims (RFC 9068 §2.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer: the server's issuer URL.
    pub iss: String,
    /// Subject: the client id (no resource owner in client credentials).
    pub sub: String,
    /// Audience: one or more resource indicators.
    pub aud: Audience,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Unique token id, 128 random bits or more.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
    /// Set when the token was exchanged for an API key: the key's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// The key the token is bound to (RFC 7800 §3.1): a DPoP key's
    /// thumbprint (RFC 9449 §6.1) or a client certificate's (RFC 8705 §3.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// RFC 8693 §4.1: the actor, for a token issued by token exchange: the
    /// exchanging client, with the actors before it nested in its own `act`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
    /// RFC 8693 §4.4: who may act for the subject of this token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_act: Option<serde_json::Value>,
    /// The Tollgate tokens a token was exchanged from, nearest first: it is
    /// active only while each of them would be (revocation follows the
    /// chain; see docs/design.md).
    #[serde(
        rename = "tollgate_origin",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub origin: Vec<Origin>,
    /// The client's extra claims (tenant ids, roles), and, in a token read
    /// back, every member not named above.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One Tollgate token a token was exchanged from: what introspection reads
/// to tell whether it is still active (its `jti` not revoked, its client
/// neither gone, disabled nor revoked-all since `iat`, its key trusted, its
/// API key live).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Origin {
    /// Its `jti`.
    pub jti: String,
    /// Its client.
    pub client_id: String,
    /// Its `iat`.
    pub iat: i64,
    /// The key that signed it.
    pub kid: String,
    /// Its API key, when it was issued for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
}

/// The `cnf` claim of a sender-constrained token.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    /// RFC 9449 §6.1: the RFC 7638 SHA-256 thumbprint of the DPoP key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// RFC 8705 §3.1: the SHA-256 thumbprint of the client certificate.
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

/// `aud` as a single string or an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// From a list: a single value stays a string.
    pub fn from_list(mut list: Vec<String>) -> Audience {
        if list.len() == 1 {
            Audience::One(list.remove(0))
        } else {
            Audience::Many(list)
        }
    }

    /// The audiences as a list.
    pub fn to_list(&self) -> Vec<String> {
        match self {
            Audience::One(a) => vec![a.clone()],
            Audience::Many(v) => v.clone(),
        }
    }
}

/// Why a token failed verification. Never shown to callers beyond "inactive".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a JWT, or a header that cannot be read.
    #[error("malformed token")]
    Malformed,
    /// `typ` is not `at+jwt`.
    #[error("wrong token type")]
    WrongType,
    /// No published key has this `kid`.
    #[error("unknown key id")]
    UnknownKey,
    /// Bad signature, wrong algorithm or bad claims.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `iss` is not this server.
    #[error("foreign issuer")]
    ForeignIssuer,
    /// Past `exp`.
    #[error("expired")]
    Expired,
    /// Its key is no longer trusted, or its times are impossible for it: a
    /// lifetime over the maximum, an `iat` in the future or after the key
    /// retired (see [`KeySet::admits`]).
    #[error("untrusted key or impossible times")]
    Untrusted,
}

/// A signing failure: the key cannot sign here (a PKCS#11 token that is
/// unavailable, a key only published here), or the signature failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the token: {0}")]
pub struct SignError(pub String);

/// The longest token Tollgate accepts anywhere: at introspection and
/// revocation (the `token` parameter), as a bearer token, and in
/// verification. Issuance refuses a request whose token would be longer, so
/// every token Tollgate issues can be introspected and revoked.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The length of the compact JWS that [`sign_payload`] makes of a payload of
/// `payload_len` bytes with `key`.
pub fn signed_len(payload_len: usize, key: &SigningKey) -> usize {
    let b64 = |n: usize| (n * 4).div_ceil(3);
    key.header_b64
        .len()
        .max(key.txn_header_b64.len())
        .max(key.introspection_header_b64.len())
        + 1
        + b64(payload_len)
        + 1
        + b64(key.signature_len())
}

/// Signs `claims` with `key` as a JWS compact serialization (RFC 7515 §7.1)
/// with the header `typ: at+jwt`, `alg` and `kid` (RFC 9068 §2.1). The key is
/// held parsed in memory and the header is encoded once per key.
pub fn sign(claims: &Claims, key: &SigningKey) -> Result<String, SignError> {
    let payload = serde_json::to_vec(claims).map_err(|e| SignError(e.to_string()))?;
    sign_payload(&payload, key)
}

/// Signs an already serialized claims set (see [`sign`]).
pub fn sign_payload(payload: &[u8], key: &SigningKey) -> Result<String, SignError> {
    sign_typed(payload, key, Typ::Access)
}

/// Signs an already serialized claims set as a JWT of type `typ`.
pub fn sign_typed(payload: &[u8], key: &SigningKey, typ: Typ) -> Result<String, SignError> {
    let mut jwt = String::with_capacity(signed_len(payload.len(), key));
    jwt.push_str(key.header(typ));
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut jwt);
    let signature = key.sign_bytes(jwt.as_bytes())?;
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut jwt);
    Ok(jwt)
}

/// Verifies a token against the published keys: the `kid` must be a trusted
/// key, the header `alg` must be that key's algorithm (so `alg: none` and
/// HS/RS confusion fail, RFC 8725 §3.1), the signature must hold, `iss` must
/// be `issuer`, `now` must be before `exp` (RFC 9068 §4), and the times must
/// be possible for that key ([`KeySet::admits`]).
pub fn verify(token: &str, keys: &KeySet, issuer: &str, now: i64) -> Result<Claims, VerifyError> {
    verify_kid(token, keys, issuer, now).map(|(claims, _)| claims)
}

/// [`verify`], also returning the `kid` that signed the token.
fn verify_kid(
    token: &str,
    keys: &KeySet,
    issuer: &str,
    now: i64,
) -> Result<(Claims, String), VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed);
    }
    // One header read; `crit` refused (RFC 7515 §4.1.11): Tollgate sets
    // none, so a token carrying one was not made by it as issued.
    let jws = jws::Jws::parse(token).map_err(|_| VerifyError::Malformed)?;
    if !jws.text("typ").is_some_and(|t| {
        t.eq_ignore_ascii_case(TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt")
    }) {
        return Err(VerifyError::WrongType);
    }
    let kid = jws.text("kid").ok_or(VerifyError::UnknownKey)?.to_string();
    let key = keys.verifier(&kid, now).ok_or(VerifyError::UnknownKey)?;
    // The key's algorithm is pinned: a header naming another is refused.
    if jws.text("alg") != Some(key.alg.as_str()) {
        return Err(VerifyError::Invalid("algorithm".into()));
    }
    if !jws.verified_by(&key.decoding) {
        return Err(VerifyError::Invalid("signature".into()));
    }
    let claims: Claims = jws
        .claims()
        .ok_or_else(|| VerifyError::Invalid("claims".into()))?;
    if claims.iss != issuer {
        return Err(VerifyError::ForeignIssuer);
    }
    if claims.exp <= now {
        return Err(VerifyError::Expired);
    }
    if !keys.admits(&kid, claims.iat, claims.exp, now) {
        return Err(VerifyError::Untrusted);
    }
    Ok((claims, kid))
}

/// Tokens whose signature and issuer were already checked, by SHA-256 of the
/// token, so that introspecting the same token again costs no signature
/// verification. Expiry and the trust of the signing key (retired long
/// enough, or compromised, since) are checked on every hit; revocation and
/// client state are checked by the caller every time. Bounded by entries
/// ([`VERIFIED_CAPACITY`]) and by bytes (its budget, a quarter of
/// `TOLLGATE_CACHE_MIB`): when either would be passed, expired tokens go,
/// and if that is not enough, all of them.
#[derive(Debug)]
pub struct VerifiedCache {
    map: std::sync::Mutex<VerifiedMap>,
    budget: usize,
}

#[derive(Debug, Default)]
struct VerifiedMap {
    /// Claims, the signing key's id, and the entry's weight in bytes;
    /// shared, so that a hit costs two reference counts, not a copy of
    /// every claim.
    entries: std::collections::HashMap<[u8; 32], (Arc<Claims>, Arc<str>, usize)>,
    bytes: usize,
}

/// Tokens remembered by [`VerifiedCache`] before it is cleared.
pub const VERIFIED_CAPACITY: usize = 100_000;

/// The verified-token cache's byte budget by default: a quarter of
/// `TOLLGATE_CACHE_MIB`'s default.
pub const DEFAULT_VERIFIED_BYTES: usize = 8 << 20;

impl Default for VerifiedCache {
    fn default() -> Self {
        VerifiedCache::with_budget(DEFAULT_VERIFIED_BYTES)
    }
}

impl Claims {
    /// What the claims hold on the heap, in bytes (their strings).
    pub fn heap_bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        self.iss.capacity()
            + self.sub.capacity()
            + match &self.aud {
                Audience::One(a) => a.capacity(),
                Audience::Many(v) => {
                    std::mem::size_of_val(v.as_slice())
                        + v.iter().map(String::capacity).sum::<usize>()
                }
            }
            + self.jti.capacity()
            + self.client_id.capacity()
            + self.scope.capacity()
            + opt(&self.api_key_id)
            + self
                .cnf
                .as_ref()
                .map_or(0, |c| opt(&c.jkt) + opt(&c.x5t_s256))
            // A parsed JSON value takes about three times its text.
            + if self.extra.is_empty() {
                0
            } else {
                3 * serde_json::to_string(&self.extra).map_or(0, |t| t.len())
            }
            + [&self.act, &self.may_act]
                .iter()
                .map(|v| v.as_ref().map_or(0, |v| 3 * v.to_string().len()))
                .sum::<usize>()
            + self
                .origin
                .iter()
                .map(|o| {
                    std::mem::size_of::<Origin>()
                        + o.jti.capacity()
                        + o.client_id.capacity()
                        + o.kid.capacity()
                        + opt(&o.api_key_id)
                })
                .sum::<usize>()
    }
}

impl VerifiedCache {
    /// A cache holding at most `bytes` by its entries' estimated size.
    pub fn with_budget(bytes: usize) -> VerifiedCache {
        VerifiedCache {
            map: std::sync::Mutex::new(VerifiedMap::default()),
            budget: bytes,
        }
    }

    /// The bytes its entries hold now, by the estimate.
    pub fn bytes(&self) -> usize {
        crate::sync::lock(&self.map).bytes
    }

    /// Like [`verify`], served from memory for a token seen before.
    pub fn verify(
        &self,
        token: &str,
        keys: &KeySet,
        issuer: &str,
        now: i64,
    ) -> Option<Arc<Claims>> {
        self.verify_kid(token, keys, issuer, now).map(|(c, _)| c)
    }

    /// [`VerifiedCache::verify`], also returning the `kid` that signed it.
    pub fn verify_kid(
        &self,
        token: &str,
        keys: &KeySet,
        issuer: &str,
        now: i64,
    ) -> Option<(Arc<Claims>, Arc<str>)> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let digest = crate::secret::digest(token.as_bytes());
        let lock = || crate::sync::lock(&self.map);
        let hit = lock()
            .entries
            .get(&digest)
            .map(|(c, kid, _)| (c.clone(), kid.clone()));
        if let Some((c, kid)) = hit {
            return (c.exp > now && keys.admits(&kid, c.iat, c.exp, now)).then_some((c, kid));
        }
        let (claims, kid) = verify_kid(token, keys, issuer, now).ok()?;
        // The key, the entry inline, the two shared allocations (with
        // their counts) and the heap the claims own, and the slot.
        let weight = 32
            + std::mem::size_of::<(Arc<Claims>, Arc<str>, usize)>()
            + std::mem::size_of::<Claims>()
            + 16
            + claims.heap_bytes()
            + kid.len()
            + 16
            + 16;
        let (claims, kid): (Arc<Claims>, Arc<str>) = (Arc::new(claims), Arc::from(kid));
        let mut map = lock();
        let full = |m: &VerifiedMap| {
            m.entries.len() >= VERIFIED_CAPACITY || m.bytes + weight > self.budget
        };
        if full(&map) {
            map.entries.retain(|_, (c, _, _)| c.exp > now);
            map.bytes = map.entries.values().map(|(_, _, w)| w).sum();
            if full(&map) {
                map.entries.clear();
                map.entries.shrink_to(VERIFIED_CAPACITY / 16);
                map.bytes = 0;
            }
        }
        if let Some((_, _, old)) = map
            .entries
            .insert(digest, (claims.clone(), kid.clone(), weight))
        {
            map.bytes -= old;
        }
        map.bytes += weight;
        Some((claims, kid))
    }
}
