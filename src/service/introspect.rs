//! Token introspection (RFC 7662), revocation (RFC 7009) and bearer-token
//! authorization of callers (RFC 6750): whether a token or an API key is
//! still good, read fresh from the store on every call.

use crate::store::ApiKeyStore;
use crate::store::RevocationStore;
use serde_json::json;

use super::authenticator::AuthError;
use super::families::{IntrospectionError, ProofError};
use crate::oauth::credentials::ClientCredentials;
pub use crate::oauth::introspection::Answer;
use crate::secret::SecretString;
use std::sync::Arc;

use super::api_keys::ApiKeys;
use super::authenticator::Authenticator;
use super::dpop::Proofs;
use super::signing::SigningKeys;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::AuditEntry;
use crate::store::CachedStore;
use crate::token::Claims;

pub use super::support::{ADMIN_SCOPE, INTROSPECT_SCOPE};

/// The caller of a protected endpoint, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Its client id.
    pub client_id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
}

impl Caller {
    /// Whether it holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Introspection, revocation and the authorization of callers by their
/// bearer tokens.
#[derive(Clone)]
pub struct Introspector {
    /// Validated configuration.
    pub(super) config: Arc<Config>,
    /// The store, behind its cache.
    pub(super) store: Arc<CachedStore>,
    /// Prometheus metrics of this process.
    pub(super) metrics: Arc<Metrics>,
    /// Signature checks already done, by token digest.
    pub(super) verified: Arc<crate::token::VerifiedCache>,
    /// The signing keys (their ring verifies Tollgate's tokens).
    pub(super) signing: Arc<SigningKeys>,
    /// Client authentication (introspection and revocation callers).
    pub(super) auth: Arc<Authenticator>,
    /// DPoP proofs (of callers with DPoP-bound tokens).
    pub(super) proofs: Arc<Proofs>,
    /// API keys (which introspection also answers for).
    pub(super) api_keys: Arc<ApiKeys>,
}

impl Introspector {
    /// Verifies an access token and checks everything that can make it
    /// inactive: revocation by `jti`, a deleted or disabled client, the
    /// client's revoke-all time, and a revoked or expired source API key.
    pub async fn active_claims(
        &self,
        token_text: &str,
        now: i64,
    ) -> Result<Option<Arc<Claims>>, IntrospectionError> {
        Ok(self
            .active_token(token_text, now)
            .await?
            .map(|(claims, _)| claims))
    }

    /// Like [`Introspector::active_claims`], with the client's current
    /// record.
    async fn active_token(
        &self,
        token_text: &str,
        now: i64,
    ) -> Result<Option<(Arc<Claims>, Arc<crate::store::Client>)>, IntrospectionError> {
        Ok(self
            .active_with_key(token_text, now)
            .await?
            .map(|(claims, client, _)| (claims, client)))
    }

    /// Like [`Introspector::active_claims`], with the client's current
    /// record and the `kid` that signed the token (token exchange records
    /// it in the new token's origin).
    pub(super) async fn active_with_key(
        &self,
        token_text: &str,
        now: i64,
    ) -> Result<Option<(Arc<Claims>, Arc<crate::store::Client>, Arc<str>)>, IntrospectionError>
    {
        let keys = self.signing.current_keys().await;
        let Some((claims, kid)) =
            self.verified
                .verify_kid(token_text, &keys, &self.config.issuer, now)
        else {
            return Ok(None);
        };
        let Some(client) = self
            .live_client(
                &claims.jti,
                &claims.client_id,
                claims.iat,
                claims.api_key_id.as_deref(),
                now,
            )
            .await?
        else {
            return Ok(None);
        };
        // Revocation follows the chain: a token obtained by exchange is
        // active only while every token it was exchanged from would be.
        for o in &claims.origin {
            if !keys.admits(&o.kid, o.iat, claims.exp, now)
                || self
                    .live_client(&o.jti, &o.client_id, o.iat, o.api_key_id.as_deref(), now)
                    .await?
                    .is_none()
            {
                return Ok(None);
            }
        }
        Ok(Some((claims, client, kid)))
    }

    /// The client of a token that is neither revoked by `jti`, nor issued
    /// before its client's revoke-all time, nor of a disabled or deleted
    /// client, nor of an API key no longer active.
    async fn live_client(
        &self,
        jti: &str,
        client_id: &str,
        iat: i64,
        api_key_id: Option<&str>,
        now: i64,
    ) -> Result<Option<Arc<crate::store::Client>>, IntrospectionError> {
        if self.store.is_token_revoked(jti).await? {
            return Ok(None);
        }
        let client = match self.store.client(client_id).await? {
            Some(c) => c,
            // A URL client (Client ID Metadata Document): live while not
            // blocked and its host is under a policy.
            None => match self.auth.url_client_live(client_id, now).await? {
                Some(c) => c,
                None => return Ok(None),
            },
        };
        if client.disabled || client.tokens_revoked_before.is_some_and(|t| iat <= t) {
            return Ok(None);
        }
        if let Some(key_id) = api_key_id {
            match self.store.get_api_key(key_id).await? {
                Some(k) if k.state(now) == crate::store::ApiKeyState::Active => {}
                _ => return Ok(None),
            }
        }
        Ok(Some(client))
    }

    /// Authorizes a bearer token presented to Tollgate itself, which must
    /// carry `scope` (RFC 6750 §3.1): 401 `invalid_token` when missing,
    /// inactive, or meant for another audience (RFC 9068 §4: Tollgate is the
    /// resource server here, so `aud` must be its issuer identifier alone);
    /// 403 `insufficient_scope` when the scope is absent. The caller's
    /// rights are the token's scopes that its client still holds now: a
    /// scope removed from the client stops working at once, with the same
    /// freshness as disabling it.
    ///
    /// A DPoP-bound token (`cnf.jkt`) is accepted only as `Authorization:
    /// DPoP <token>` with a proof of its key for this request, whose `ath`
    /// is the token's hash (RFC 9449 §7); as a bearer token it is refused,
    /// and an unbound token sent as DPoP is refused too.
    pub async fn authorize_bearer(
        &self,
        presented: &Presented<'_>,
        scope: &str,
        now: i64,
    ) -> Result<Caller, IntrospectionError> {
        let (scheme, token_text) = access_token(presented.authorization).ok_or_else(|| {
            IntrospectionError::invalid_token("a bearer or DPoP access token is required")
        })?;
        let (claims, client) = self.active_token(token_text, now).await?.ok_or_else(|| {
            IntrospectionError::invalid_token("the access token is invalid, expired or revoked")
        })?;
        // RFC 8705 §3: a certificate-bound token needs its certificate.
        if let Some(x5t) = claims.cnf.as_ref().and_then(|c| c.x5t_s256.as_deref()) {
            if presented.certificate.as_deref() != Some(x5t) {
                return Err(IntrospectionError::invalid_token(
                    "the access token is bound to a client certificate this connection did not present",
                ));
            }
        }
        let bound = claims.cnf.as_ref().and_then(|c| c.jkt.as_deref());
        match (scheme, bound) {
            (Scheme::Bearer, None) => {}
            (Scheme::Bearer, Some(_)) => {
                return Err(IntrospectionError::InvalidToken {
                    why: "the access token is DPoP-bound: send it as Authorization: DPoP with a \
                          DPoP proof"
                        .into(),
                    dpop: true,
                })
            }
            (Scheme::Dpop, None) => {
                return Err(IntrospectionError::invalid_token(
                    "the access token is not DPoP-bound: send it as a Bearer token",
                ))
            }
            (Scheme::Dpop, Some(jkt)) => {
                let proof = self
                    .proofs
                    .check_dpop(
                        &presented.dpop,
                        presented.method,
                        presented.path,
                        Some(token_text),
                        now,
                    )
                    .map_err(IntrospectionError::Proof)?
                    .ok_or_else(|| {
                        IntrospectionError::Proof(ProofError::Invalid(
                            "a DPoP-bound token needs a DPoP proof".into(),
                        ))
                    })?;
                if proof.jkt != jkt {
                    return Err(IntrospectionError::Proof(ProofError::Invalid(
                        "the DPoP proof's key is not the key the token is bound to".into(),
                    )));
                }
                self.proofs
                    .record_dpop(&proof, now)
                    .await
                    .map_err(IntrospectionError::Proof)?;
            }
        }
        if claims.aud.to_list() != [self.config.issuer.as_str()] {
            return Err(IntrospectionError::invalid_token(
                "the access token's audience is not this server; request a token with \
                 audience set to its issuer identifier",
            ));
        }
        let caller = Caller {
            client_id: claims.client_id.clone(),
            scopes: claims
                .scope
                .split(' ')
                .filter(|s| !s.is_empty() && client.scopes.iter().any(|c| c == s))
                .map(str::to_string)
                .collect(),
        };
        crate::logging::set_client(&caller.client_id);
        if !caller.has_scope(scope) {
            return Err(IntrospectionError::InsufficientScope(
                format!("the access token lacks the scope {scope}").into(),
            ));
        }
        Ok(caller)
    }

    /// Authenticates the caller of the introspection endpoint: client
    /// credentials or a bearer token, holding `tollgate:introspect`.
    pub async fn authorize_introspection(
        &self,
        creds: Option<&ClientCredentials>,
        presented: &Presented<'_>,
        ip: Option<std::net::IpAddr>,
        now: i64,
    ) -> Result<Caller, IntrospectionError> {
        if creds.is_none() && access_token(presented.authorization).is_some() {
            return self
                .authorize_bearer(presented, INTROSPECT_SCOPE, now)
                .await;
        }
        let client = self.auth.authenticate_client(creds, ip, now).await?;
        if !client.scopes.iter().any(|s| s == INTROSPECT_SCOPE) {
            return Err(IntrospectionError::Client(AuthError::failed()));
        }
        Ok(Caller {
            client_id: client.id.clone(),
            scopes: client.scopes.clone(),
        })
    }

    /// RFC 7662 §2.2: the introspection answer for a token or an API key.
    pub async fn introspect(
        &self,
        token_text: &str,
        now: i64,
    ) -> Result<Answer, IntrospectionError> {
        if token_text.starts_with(&self.config.api_key_prefix) {
            return self.introspect_api_key(token_text, now).await;
        }
        let Some(c) = self.active_claims(token_text, now).await? else {
            return Ok(Answer::Inactive);
        };
        Ok(Answer::Token(c))
    }

    /// RFC 9701 §5: the introspection answer as a JWT signed with the
    /// current signing key, `typ: token-introspection+jwt`, for the caller
    /// (`aud`), with the answer whole in `token_introspection`.
    pub async fn signed_answer(
        &self,
        caller: &str,
        answer: Answer,
        now: i64,
    ) -> Result<String, IntrospectionError> {
        let claims = json!({
            "iss": self.config.issuer,
            "aud": caller,
            "iat": now,
            "token_introspection": answer,
        });
        self.signing
            .sign_json(&claims, crate::token::Typ::Introspection, now)
            .await
            .map_err(|_| {
                IntrospectionError::Store(crate::store::StoreError::Unavailable(
                    "no signing key could sign the introspection answer".into(),
                ))
            })
    }

    async fn introspect_api_key(&self, key: &str, now: i64) -> Result<Answer, IntrospectionError> {
        let key = SecretString::new(key.to_string());
        let Some((record, client)) = self.api_keys.find_active_api_key(&key, now).await? else {
            return Ok(Answer::Inactive);
        };
        self.api_keys.touch_api_key(&record, now);
        let mut body = json!({
            "active": true,
            "token_type": "api_key",
            "client_id": client.id,
            "sub": client.id,
            "scope": client.scopes.join(" "),
            "aud": client.audiences,
            "iss": self.config.issuer,
            "iat": record.created_at,
            "key_id": record.id,
            "name": record.name,
            "owner": client.owner,
        });
        if let Some(exp) = record.expires_at {
            body["exp"] = json!(exp);
        }
        Ok(Answer::ApiKey(body))
    }

    /// RFC 7009 §2.1: revokes one of the caller's own access tokens or API
    /// keys. Unknown tokens and other clients' tokens are ignored silently.
    pub async fn revoke(
        &self,
        caller: &str,
        token_text: &str,
        now: i64,
    ) -> Result<(), IntrospectionError> {
        if token_text.starts_with(&self.config.api_key_prefix) {
            let key = SecretString::new(token_text.to_string());
            if let Some(record) = self.store.find_api_key(&key.digest()).await? {
                if record.client_id == caller && record.revoked_at.is_none() {
                    let audit = AuditEntry::new(
                        now,
                        caller,
                        "api_key.revoke",
                        Some(&record.id),
                        json!({"via": "oauth/revoke", "client_id": caller}),
                    );
                    if self.store.revoke_api_key(&record.id, now, &audit).await? {
                        self.metrics
                            .revocations
                            .with_label_values(&["api_key"])
                            .inc();
                    }
                }
            }
            return Ok(());
        }
        // An expired token needs no revocation; a foreign or forged one is ignored.
        if let Some(claims) = self.verified.verify(
            token_text,
            &*self.signing.current_keys().await,
            &self.config.issuer,
            now,
        ) {
            if claims.client_id == caller {
                let mut detail = json!({"client_id": caller, "exp": claims.exp});
                if !claims.origin.is_empty() {
                    // The tokens it was exchanged from (for Shared Signals).
                    detail["origin"] = json!(claims
                        .origin
                        .iter()
                        .map(|o| o.jti.as_str())
                        .collect::<Vec<_>>());
                }
                let audit = AuditEntry::new(now, caller, "token.revoke", Some(&claims.jti), detail);
                self.store
                    .revoke_token(&claims.jti, caller, claims.exp, now, &audit)
                    .await?;
                self.metrics
                    .revocations
                    .with_label_values(&["access_token"])
                    .inc();
            }
        }
        Ok(())
    }
}

/// The token of an `Authorization: Bearer …` header (RFC 6750 §2.1).
pub fn bearer_token(authorization: Option<&[u8]>) -> Option<&str> {
    match access_token(authorization)? {
        (Scheme::Bearer, t) => Some(t),
        _ => None,
    }
}

/// How an access token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer` (RFC 6750 §2.1).
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1).
    Dpop,
}

/// The access token of an `Authorization: Bearer` or `DPoP` header.
pub fn access_token(authorization: Option<&[u8]>) -> Option<(Scheme, &str)> {
    let text = std::str::from_utf8(authorization?).ok()?.trim();
    let (scheme, rest) = text.split_once(' ')?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return None;
    };
    let t = rest.trim();
    (!t.is_empty() && t.len() <= crate::token::MAX_TOKEN_LEN).then_some((scheme, t))
}

/// What a request to one of Tollgate's protected endpoints presented: its
/// `Authorization` header, its `DPoP` headers, its method and path.
#[derive(Debug, Clone, Default)]
pub struct Presented<'a> {
    /// The raw `Authorization` header.
    pub authorization: Option<&'a [u8]>,
    /// Every `DPoP` header.
    pub dpop: Vec<&'a [u8]>,
    /// The request's method.
    pub method: &'a str,
    /// The request's path.
    pub path: &'a str,
    /// The `x5t#S256` of the connection's client certificate.
    pub certificate: Option<String>,
}
