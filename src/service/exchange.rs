//! Token exchange (RFC 8693) and transaction tokens
//! (draft-ietf-oauth-transaction-tokens-10): the client authenticated by its
//! registered method, its exchange policy, the subject token verified
//! (Tollgate's own exactly as introspection would answer, with its whole
//! origin; a trusted issuer's as the JWT bearer grant verifies one; a
//! transaction token with Tollgate's keys), then `oauth::exchange` decides
//! and `Tokens` signs.

use std::net::{IpAddr, Ipv4Addr};

use super::admin::{check_audiences, invalid, Admin};
use super::families::{AdminError, IntrospectionError, IssueError};
use super::issue::{Delegation, IssuedToken, Tokens, Unsigned};
use crate::domain::{Client, ExchangePolicy};
use crate::oauth::exchange::{
    self, ExchangeParams, Refused, Requested, Subject, SubjectType, TxnPolicy, TxnSubject,
};
use crate::oauth::grant::TokenRequest;
use crate::oauth::{ClientCredentials, OAuthCode};
use crate::secret;
use crate::token::{self, Origin};

impl Admin {
    /// Checks a token-exchange policy: at least one subject audience, none
    /// of them this server (its own tokens carry `tollgate:*` rights), and
    /// every subject issuer a trusted federation issuer; lists without
    /// repeats, at most [`ExchangePolicy::MAX_ENTRIES`] each.
    pub(super) async fn check_exchange(
        &self,
        policy: Option<ExchangePolicy>,
    ) -> Result<Option<ExchangePolicy>, AdminError> {
        let Some(mut p) = policy else {
            return Ok(None);
        };
        p.subject_audiences = check_audiences(&p.subject_audiences).map_err(|_| {
            invalid("token_exchange.subject_audiences: each 1 to 512 characters without spaces")
        })?;
        if p.subject_audiences.is_empty() {
            return Err(invalid(
                "token_exchange.subject_audiences must name at least one audience",
            ));
        }
        if p.subject_audiences.contains(&self.config.issuer) {
            return Err(invalid(
                "token_exchange.subject_audiences must not include this server's issuer \
                 identifier: its own tokens are never exchanged",
            ));
        }
        p.subject_issuers.dedup();
        if p.subject_audiences.len() > ExchangePolicy::MAX_ENTRIES
            || p.subject_issuers.len() > ExchangePolicy::MAX_ENTRIES
        {
            return Err(invalid(format!(
                "token_exchange: at most {} subject audiences and {} subject issuers",
                ExchangePolicy::MAX_ENTRIES,
                ExchangePolicy::MAX_ENTRIES
            )));
        }
        if !p.subject_issuers.is_empty() {
            let fed = self.store.federation_cached().await?;
            if let Some(unknown) = p
                .subject_issuers
                .iter()
                .find(|i| !fed.issuers.iter().any(|f| &f.issuer == *i))
            {
                let shown: String = unknown
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect();
                return Err(invalid(format!(
                    "token_exchange.subject_issuers: {shown:?} is not a trusted federation \
                     issuer (add it under /admin/federation/issuers first)"
                )));
            }
        }
        Ok(Some(p))
    }
}

impl From<IntrospectionError> for IssueError {
    fn from(e: IntrospectionError) -> Self {
        match e {
            IntrospectionError::Store(e) => IssueError::Store(e),
            other => IssueError::Internal(format!("subject token check: {other:?}")),
        }
    }
}

/// What a subject token turned out to be, once verified.
enum Verified {
    /// An access token or a JWT.
    Token(Subject),
    /// A transaction token to replace.
    Txn(token::txn::TxnClaims),
}

impl Tokens {
    /// RFC 8693 §2.1: authenticates the client, checks its policy and the
    /// subject token, and issues a delegated access token (with `act`) or
    /// a transaction token. Refusals after authentication are counted by
    /// reason in `tollgate_token_exchange_refusals_total`.
    pub(super) async fn issue_for_exchange(
        &self,
        creds: Option<&ClientCredentials>,
        params: &ExchangeParams,
        ip: Option<IpAddr>,
        req: &TokenRequest,
        now: i64,
    ) -> Result<IssuedToken, IssueError> {
        let auth = self.auth.authenticate(creds, ip, now).await?;
        let client = &auth.client;
        crate::logging::set_client(&client.id);
        let outcome = self
            .exchange_for(client, auth.not_after, params, ip, req, now)
            .await?;
        match outcome {
            Ok(issued) => Ok(issued),
            Err(refused) => {
                log::info!(
                    "token exchange by client {} refused ({}): {}",
                    client.id,
                    refused.reason,
                    refused.error.description
                );
                self.metrics
                    .exchange_refusals
                    .with_label_values(&[refused.reason])
                    .inc();
                Err(IssueError::Request(refused.error))
            }
        }
    }

    /// The exchange for an authenticated client: `Ok(Err(_))` is a refusal
    /// to count, `Err(_)` any other failure (quota, store, DPoP binding).
    async fn exchange_for(
        &self,
        client: &Client,
        not_after: Option<i64>,
        params: &ExchangeParams,
        ip: Option<IpAddr>,
        req: &TokenRequest,
        now: i64,
    ) -> Result<Result<IssuedToken, Refused>, IssueError> {
        let Some(policy) = &client.token_exchange else {
            return Ok(Err(Refused::new(
                OAuthCode::UnauthorizedClient,
                "the client has no token_exchange policy",
                "no_policy",
            )));
        };
        let trust_domain = match params.requested {
            Requested::AccessToken => None,
            Requested::TxnToken => {
                let Some(domain) = self.config.txn_trust_domain.as_deref() else {
                    return Ok(Err(Refused::new(
                        OAuthCode::InvalidRequest,
                        "transaction tokens are not enabled on this server",
                        "txn_disabled",
                    )));
                };
                if !policy.txn_tokens {
                    return Ok(Err(Refused::new(
                        OAuthCode::UnauthorizedClient,
                        "the client's token_exchange policy does not allow transaction tokens",
                        "txn_disabled",
                    )));
                }
                Some(domain)
            }
        };
        let subject = match self
            .verify_subject(policy, params, trust_domain, now)
            .await?
        {
            Ok(s) => s,
            Err(r) => return Ok(Err(r)),
        };
        match (trust_domain, subject) {
            (None, Verified::Token(subject)) => {
                self.delegate(client, policy, not_after, &subject, req, now)
                    .await
            }
            (Some(domain), subject) => {
                let subject = match subject {
                    Verified::Token(s) => TxnSubject::Token(s),
                    Verified::Txn(t) => TxnSubject::Replace(t),
                };
                self.transaction_token(client, policy, &subject, params, domain, ip, req, now)
                    .await
            }
            (None, Verified::Txn(_)) => Ok(Err(Refused::new(
                OAuthCode::InvalidRequest,
                "a transaction token is exchanged only for its replacement",
                "request",
            ))),
        }
    }

    /// A delegated access token: `sub` the subject's, `act` the client with
    /// the subject's chain nested, bound like any of the client's tokens.
    async fn delegate(
        &self,
        client: &Client,
        policy: &ExchangePolicy,
        not_after: Option<i64>,
        subject: &Subject,
        req: &TokenRequest,
        now: i64,
    ) -> Result<Result<IssuedToken, Refused>, IssueError> {
        let issuer = &self.config.issuer;
        let act = match exchange::check_subject(
            client,
            policy,
            subject,
            issuer,
            self.config.exchange_max_depth,
        ) {
            Ok(a) => a,
            Err(r) => return Ok(Err(r)),
        };
        let mut grant = match exchange::decide(client, subject, req, &self.policy(), now) {
            Ok(g) => g,
            Err(r) => return Ok(Err(r)),
        };
        if let Some(end) = not_after {
            grant.ttl = grant.ttl.min(end - now).max(1);
        }
        let delegation = Delegation {
            sub: subject.sub.clone(),
            act: Some(act),
            origin: subject.origin.clone(),
        };
        self.issue_grant(client, &grant, req, now, None, Some(delegation))
            .await
            .map(Ok)
    }

    /// A transaction token (draft §7): decided purely, counted against the
    /// client's quota, signed with `typ: txntoken+jwt`. It is not bound to
    /// a DPoP key or certificate (`token_type` `N_A`).
    #[allow(clippy::too_many_arguments)]
    async fn transaction_token(
        &self,
        client: &Client,
        policy: &ExchangePolicy,
        subject: &TxnSubject,
        params: &ExchangeParams,
        trust_domain: &str,
        ip: Option<IpAddr>,
        req: &TokenRequest,
        now: i64,
    ) -> Result<Result<IssuedToken, Refused>, IssueError> {
        let txn = TxnPolicy {
            issuer: &self.config.issuer,
            trust_domain,
            ttl: self.config.txn_token_ttl,
        };
        let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).to_string();
        let claims = match exchange::decide_txn(
            client,
            policy,
            subject,
            req,
            params,
            &txn,
            &ip,
            secret::token_id(),
            now,
        ) {
            Ok(c) => c,
            Err(r) => return Ok(Err(r)),
        };
        let key = self.signing.signer(now).await.ok_or_else(|| {
            IssueError::Signing("no signing key this instance holds is active".into())
        })?;
        let payload =
            serde_json::to_vec(&claims).map_err(|e| IssueError::Internal(e.to_string()))?;
        let len = token::signed_len(payload.len(), &key);
        if len > token::MAX_TOKEN_LEN {
            return Ok(Err(Refused::new(
                OAuthCode::InvalidRequest,
                format!(
                    "the transaction token would be {len} bytes, over the limit of {}; send \
                     less request_context or request_details",
                    token::MAX_TOKEN_LEN
                ),
                "request",
            )));
        }
        self.spend_quota(client, now).await?;
        self.sign(Unsigned {
            payload,
            key,
            expires_in: claims.exp - now,
            token_type: "N_A",
            scope: claims.scope,
            issued_token_type: Some(exchange::TXN_TOKEN_TYPE),
            typ: token::Typ::Txn,
        })
        .map(Ok)
    }

    /// Verifies the subject token: a transaction token with Tollgate's
    /// keys; a token whose `iss` is Tollgate's exactly as introspection
    /// would (signature, expiry, revocation, its client, its key, its API
    /// key, and every token it was exchanged from); a token of one of the
    /// policy's `subject_issuers` with that issuer's keys and times.
    async fn verify_subject(
        &self,
        policy: &ExchangePolicy,
        params: &ExchangeParams,
        trust_domain: Option<&str>,
        now: i64,
    ) -> Result<Result<Verified, Refused>, IssueError> {
        let inactive = |d: String| {
            Ok(Err(Refused::new(
                OAuthCode::InvalidRequest,
                d,
                "subject_inactive",
            )))
        };
        let text = params.subject_token.expose();
        if params.subject_type == SubjectType::TxnToken {
            let Some(domain) = trust_domain else {
                return inactive(
                    "a transaction token is exchanged only for its replacement".into(),
                );
            };
            let keys = self.signing.current_keys().await;
            return match token::txn::verify(text, &keys, &self.config.issuer, domain, now) {
                Ok(t) => Ok(Ok(Verified::Txn(t))),
                Err(e) => inactive(format!("the subject transaction token is not valid: {e}")),
            };
        }
        // One of Tollgate's keys signed it (its header names one): its
        // issuer can only be Tollgate's, which introspection checks; the
        // payload is not decoded here once more just to read `iss` (the
        // verified-token cache then answers without decoding it at all).
        let keys = self.signing.current_keys().await;
        let ours = token::jws::Jws::parse(text)
            .ok()
            .is_some_and(|h| h.text("kid").is_some_and(|kid| keys.key(kid).is_some()));
        let iss = if ours {
            self.config.issuer.clone()
        } else {
            match crate::oauth::federation::unverified_issuer(text) {
                Some(iss) => iss,
                None => return inactive("the subject token is not a JWT with an iss claim".into()),
            }
        };
        if iss == self.config.issuer {
            let Some((claims, _client, kid)) = self.introspector.active_with_key(text, now).await?
            else {
                return inactive("the subject token is not active".into());
            };
            let mut origin = vec![Origin {
                jti: claims.jti.clone(),
                client_id: claims.client_id.clone(),
                iat: claims.iat,
                kid: kid.to_string(),
                api_key_id: claims.api_key_id.clone(),
            }];
            origin.extend(claims.origin.iter().cloned());
            return Ok(Ok(Verified::Token(Subject {
                iss,
                sub: claims.sub.clone(),
                aud: claims.aud.to_list(),
                scope: claims
                    .scope
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                exp: claims.exp,
                act: claims.act.clone(),
                may_act: claims.may_act.clone(),
                origin,
            })));
        }
        if !policy.subject_issuers.contains(&iss) {
            return Ok(Err(Refused::new(
                OAuthCode::InvalidRequest,
                "the subject token's issuer is not one this client may exchange tokens of",
                "subject_issuer",
            )));
        }
        match self.auth.verify_external(text, now).await? {
            Ok((t, _)) => Ok(Ok(Verified::Token(Subject {
                scope: exchange::external_scopes(&t.claims),
                act: t.claims.get("act").cloned(),
                may_act: t.claims.get("may_act").cloned(),
                iss: t.iss,
                sub: t.sub,
                aud: t.aud,
                exp: t.exp,
                origin: Vec::new(),
            }))),
            Err(r) => inactive(format!("the subject token: {}", r.description)),
        }
    }
}
