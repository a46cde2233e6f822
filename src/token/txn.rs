//! Transaction tokens (draft-ietf-oauth-transaction-tokens-10): their claims,
//! and their verification with Tollgate's keys when one is presented to be
//! replaced (§4.1 format, §7.2 replacement).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{jws, KeySet, VerifyError, MAX_TOKEN_LEN, TXN_TOKEN_TYPE};

/// The claims of a transaction token (§4.1.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TxnClaims {
    /// Tollgate's issuer identifier (OPTIONAL in the draft; set, so that a
    /// workload knows whose JWKS verifies it).
    pub iss: String,
    /// Issued at.
    pub iat: i64,
    /// Expiry: `TOLLGATE_TXN_TOKEN_TTL` after the original's issue.
    pub exp: i64,
    /// The trust domain.
    pub aud: String,
    /// The transaction's id, kept by every replacement (RFC 8417 §2.2).
    pub txn: String,
    /// The subject of the subject token.
    pub sub: String,
    /// Space-separated scopes, within the subject token's.
    pub scope: String,
    /// The requesting workload: the client that asked, or every client
    /// that asked along the chain of replacements (§4.1.2 `req_wl`).
    pub req_wl: Value,
    /// Request context: the caller's address (`req_ip`) and what the
    /// requester sent as `request_context`.
    pub rctx: Map<String, Value>,
    /// Transaction context: what the requester sent as `request_details`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub tctx: Map<String, Value>,
}

impl TxnClaims {
    /// The requesting workloads, in order.
    pub fn workloads(&self) -> Vec<String> {
        match &self.req_wl {
            Value::String(s) => vec![s.clone()],
            Value::Array(list) => list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Verifies a transaction token Tollgate issued: `typ` `txntoken+jwt`, a
/// trusted `kid` with its pinned algorithm, the signature, `iss`, `aud` =
/// `trust_domain`, not expired, and times possible for its key.
pub fn verify(
    token: &str,
    keys: &KeySet,
    issuer: &str,
    trust_domain: &str,
    now: i64,
) -> Result<TxnClaims, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed);
    }
    let parsed = jws::Jws::parse(token).map_err(|_| VerifyError::Malformed)?;
    if !parsed
        .text("typ")
        .is_some_and(|t| t.eq_ignore_ascii_case(TXN_TOKEN_TYPE))
    {
        return Err(VerifyError::WrongType);
    }
    let kid = parsed.text("kid").ok_or(VerifyError::UnknownKey)?;
    let key = keys.verifier(kid, now).ok_or(VerifyError::UnknownKey)?;
    if parsed.text("alg") != Some(key.alg.as_str()) {
        return Err(VerifyError::Invalid("algorithm".into()));
    }
    if !parsed.verified_by(&key.decoding) {
        return Err(VerifyError::Invalid("signature".into()));
    }
    let claims: TxnClaims = parsed
        .claims()
        .ok_or_else(|| VerifyError::Invalid("claims".into()))?;
    if claims.iss != issuer {
        return Err(VerifyError::ForeignIssuer);
    }
    if claims.aud != trust_domain {
        return Err(VerifyError::Invalid("audience".into()));
    }
    if claims.exp <= now {
        return Err(VerifyError::Expired);
    }
    if !keys.admits(kid, claims.iat, claims.exp, now) {
        return Err(VerifyError::Untrusted);
    }
    Ok(claims)
}
