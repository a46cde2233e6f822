//! DPoP (RFC 9449) in the use cases: the proof of a request to one of
//! Tollgate's endpoints (checked against the issuer-based URL, the clock and,
//! when enabled, the fleet's nonces), the `jti` replay check in the store,
//! and the binding of a token to the proof's key (`cnf.jkt`).

use super::families::ProofError;
use crate::store::OneTimeStore;
use std::sync::Arc;

use crate::config::Config;
use crate::domain::Client;
use crate::oauth::dpop::{self, DpopError, Expected, Proof};
use crate::store::{CachedStore, OneTime};
use crate::token::Confirmation;

/// DPoP proofs of requests to Tollgate's endpoints: their checks, their
/// `jti`s in the store, the fleet's nonces, and the binding of a token.
#[derive(Clone)]
pub struct Proofs {
    /// Validated configuration (the issuer makes the proof's `htu`).
    pub(super) config: Arc<Config>,
    /// The store, where each proof's `jti` is recorded once.
    pub(super) store: Arc<CachedStore>,
    /// The fleet's secret for DPoP nonces, when nonces are required.
    pub(super) dpop_secret: Option<Arc<Vec<u8>>>,
}

impl Proofs {
    /// The nonces accepted now, when nonces are required.
    fn dpop_nonces(&self, now: i64) -> Option<[String; 2]> {
        let secret = self.dpop_secret.as_ref()?;
        Some(dpop::current_nonces(
            secret,
            now,
            self.config.dpop_nonce_lifetime,
        ))
    }

    /// The nonce to send in a `DPoP-Nonce` header now, when enabled.
    pub fn dpop_nonce(&self, now: i64) -> Option<String> {
        self.dpop_nonces(now).map(|[current, _]| current)
    }

    /// Checks the `DPoP` header of a request to `path` (RFC 9449 §4.3):
    /// `None` without one; `invalid_dpop_proof` for more than one or a bad
    /// one, naming the check; `use_dpop_nonce` with a fresh nonce when the
    /// nonce is missing or stale. With `access_token`, its `ath` must match
    /// (§7). The `jti` is recorded by [`Proofs::record_dpop`].
    pub fn check_dpop(
        &self,
        headers: &[&[u8]],
        method: &str,
        path: &str,
        access_token: Option<&str>,
        now: i64,
    ) -> Result<Option<Proof>, ProofError> {
        let proof = match headers {
            [] => return Ok(None),
            [one] => std::str::from_utf8(one)
                .map_err(|_| invalid_proof("the DPoP header is not text"))?,
            _ => return Err(invalid_proof("send one DPoP header, not several")),
        };
        let url = format!("{}{path}", self.config.issuer.trim_end_matches('/'));
        let nonces = self.dpop_nonces(now);
        let expected = Expected {
            method,
            url: &url,
            now,
            window: self.config.dpop_iat_window,
            nonces: nonces.as_ref().map(|n| &n[..]),
            access_token,
        };
        dpop::verify(proof.trim(), &expected)
            .map(Some)
            .map_err(|e| match e {
                DpopError::Nonce => ProofError::UseNonce {
                    why: e.to_string(),
                    nonce: self.dpop_nonce(now),
                },
                other => invalid_proof(other.to_string()),
            })
    }

    /// The proof of a token request, checked and its `jti` recorded at once,
    /// before the request's client is authenticated or anything else costly
    /// is done: a replayed proof costs no client authentication (issue 24).
    pub async fn token_request_proof(
        &self,
        headers: &[&[u8]],
        method: &str,
        path: &str,
        now: i64,
    ) -> Result<Option<Proof>, ProofError> {
        let proof = self.check_dpop(headers, method, path, None, now)?;
        if let Some(p) = &proof {
            self.record_dpop(p, now).await?;
        }
        Ok(proof)
    }

    /// Records a proof's `jti` until its `iat` window has passed (the last
    /// instant it could be accepted): a proof is used once (RFC 9449
    /// §11.1), by any instance of a fleet.
    pub(super) async fn record_dpop(&self, proof: &Proof, now: i64) -> Result<(), ProofError> {
        let until = proof.iat + self.config.dpop_iat_window;
        if !self
            .store
            .use_once(
                OneTime::DpopProof { jkt: &proof.jkt },
                &proof.jti,
                until,
                now,
            )
            .await?
        {
            return Err(invalid_proof("the DPoP proof's jti was used before"));
        }
        Ok(())
    }

    /// The binding of a token requested with `proof` (whose `jti` was
    /// recorded when the request came in, [`Proofs::token_request_proof`]):
    /// `cnf.jkt` set. A client registered with `dpop_bound_access_tokens`
    /// gets no token without a proof (RFC 9449 §5.2).
    pub(super) fn bind_dpop(
        &self,
        client: &Client,
        proof: Option<&Proof>,
    ) -> Result<Option<Confirmation>, ProofError> {
        let Some(proof) = proof else {
            if client.dpop_bound_access_tokens {
                return Err(invalid_proof(
                    "this client's tokens are DPoP-bound: send a DPoP proof",
                ));
            }
            return Ok(None);
        };
        Ok(Some(Confirmation {
            jkt: Some(proof.jkt.clone()),
            x5t_s256: None,
        }))
    }
}

fn invalid_proof(why: impl Into<std::borrow::Cow<'static, str>>) -> ProofError {
    ProofError::Invalid(why.into())
}
