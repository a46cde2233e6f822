//! Workload identity federation: trusted issuers and rules (administered
//! like clients, audited), and the exchange of an external JWT for a
//! Tollgate token, in both wire forms: the JWT bearer grant (RFC 7523 §2.1,
//! failures `invalid_grant`) and a client assertion whose `iss` is a trusted
//! issuer (RFC 7523 §2.2, failures `invalid_client`). One policy serves
//! both: the issuer's keys, the clock, then the first matching rule
//! (default deny), which names the client and may narrow its scopes; the
//! token never outlives the external one.

use crate::store::FederationStore;
use crate::store::OneTimeStore;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;
use serde_json::json;

use super::admin::Admin;
use super::admin::{invalid, normalize_scopes};
use super::authenticator::Authenticator;

use super::families::{AdminError, IssueError};
use super::issue::IssuedToken;
use super::issue::Tokens;
use super::keysets::KeySource;
use crate::domain::{AuditEntry, Client, Federation, FederationIssuer, FederationRule};
use crate::oauth::federation::{self, ExternalError, ExternalToken};
use crate::oauth::grant::{self, TokenRequest};
use crate::secret::{self, SecretString};
use crate::store::OneTime;
use std::sync::Arc;

/// Prefix of trusted-issuer ids.
pub const ISSUER_ID_PREFIX: &str = "fi_";
/// Prefix of rule ids.
pub const RULE_ID_PREFIX: &str = "fr_";
/// Most trusted issuers.
pub const MAX_ISSUERS: usize = 100;
/// Most rules.
pub const MAX_RULES: usize = 1000;

/// A trusted issuer to add (`POST /admin/federation/issuers`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIssuer {
    /// The issuer identifier, exactly as its tokens' `iss`.
    pub issuer: String,
    /// Where its keys are published.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Its keys, inline.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// Accept its identity assertion grants (ID-JAG).
    #[serde(default)]
    pub id_jag: bool,
}

/// A rule to add (`POST /admin/federation/rules`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// The trusted issuer.
    pub issuer: String,
    /// The `aud` the external token must carry.
    pub audience: String,
    /// The `sub` pattern.
    #[serde(default)]
    pub subject: Option<String>,
    /// Claim patterns.
    #[serde(default)]
    pub claims: Option<BTreeMap<String, String>>,
    /// The client the identity acts as.
    pub client_id: String,
    /// Scopes, a subset of the client's.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// One exchange per external `jti`.
    #[serde(default)]
    pub single_use: Option<bool>,
}

/// An exchange that passed: the client (scopes narrowed by the rule), the
/// rule, and the external token.
#[derive(Debug, Clone)]
pub struct Federated {
    /// The client, with the rule's scopes.
    pub client: Client,
    /// The rule that matched.
    pub rule: FederationRule,
    /// The external token.
    pub token: ExternalToken,
}

/// A refused exchange: what the caller is told, the rule (when one
/// matched), and the metric's result label.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Safe to show.
    pub description: String,
    /// The rule that matched, if any.
    pub rule: Option<String>,
    /// `tollgate_federation_exchanges_total`'s `result`.
    pub reason: &'static str,
}

fn refusal(description: impl Into<String>, reason: &'static str) -> Refusal {
    Refusal {
        description: description.into(),
        rule: None,
        reason,
    }
}

fn external_reason(e: &ExternalError) -> &'static str {
    match e {
        ExternalError::UntrustedIssuer => "untrusted_issuer",
        ExternalError::Expired | ExternalError::NotYetValid | ExternalError::TooLong => "time",
        ExternalError::Malformed | ExternalError::Subject | ExternalError::Audience => "malformed",
        _ => "signature",
    }
}

impl Admin {
    /// Every trusted issuer and rule.
    pub async fn federation(&self) -> Result<crate::domain::Federation, AdminError> {
        Ok(self.store.federation().await?)
    }

    /// Adds a trusted issuer: an `https` issuer identifier, and `jwks`
    /// (public keys), `jwks_uri` or neither (discovery), never both.
    pub async fn add_federation_issuer(
        &self,
        actor: &str,
        input: NewIssuer,
        now: i64,
    ) -> Result<FederationIssuer, AdminError> {
        crate::fetch::check_url(&input.issuer, self.config.fetch_allow_local)
            .map_err(|e| invalid(format!("issuer: {e}")))?;
        self.check_key_source(input.jwks.as_ref(), input.jwks_uri.as_deref())?;
        if self.store.federation().await?.issuers.len() >= MAX_ISSUERS {
            return Err(AdminError::conflict(format!(
                "at most {MAX_ISSUERS} trusted issuers"
            )));
        }
        let record = FederationIssuer {
            id: secret::generate_id(ISSUER_ID_PREFIX),
            issuer: input.issuer,
            jwks_uri: input.jwks_uri,
            jwks: input.jwks,
            created_at: now,
            id_jag: input.id_jag,
        };
        let audit = AuditEntry::new(
            now,
            actor,
            "federation.issuer.add",
            Some(&record.id),
            json!({"issuer": record.issuer, "jwks_uri": record.jwks_uri, "jwks": record.jwks.is_some(), "id_jag": record.id_jag}),
        );
        if !self.store.add_federation_issuer(&record, &audit).await? {
            return Err(AdminError::conflict("that issuer is trusted already"));
        }
        Ok(record)
    }

    /// Removes a trusted issuer; refused while rules use it.
    pub async fn remove_federation_issuer(
        &self,
        actor: &str,
        id: &str,
        now: i64,
    ) -> Result<(), AdminError> {
        let fed = self.store.federation().await?;
        let Some(issuer) = fed.issuers.iter().find(|i| i.id == id) else {
            return Err(AdminError::not_found("no such trusted issuer"));
        };
        let used = fed
            .rules
            .iter()
            .filter(|r| r.issuer == issuer.issuer)
            .count();
        if used > 0 {
            return Err(AdminError::conflict(format!(
                "{used} rule(s) use this issuer; remove them first"
            )));
        }
        let audit = AuditEntry::new(
            now,
            actor,
            "federation.issuer.remove",
            Some(id),
            json!({"issuer": issuer.issuer}),
        );
        if !self.store.remove_federation_issuer(id, &audit).await? {
            return Err(AdminError::not_found("no such trusted issuer"));
        }
        Ok(())
    }

    /// Adds a rule: its issuer trusted, its client existing, its scopes a
    /// subset of the client's, its patterns bounded.
    pub async fn add_federation_rule(
        &self,
        actor: &str,
        input: NewRule,
        now: i64,
    ) -> Result<FederationRule, AdminError> {
        if input.audience.is_empty()
            || input.audience.len() > 512
            || input.audience.chars().any(char::is_control)
        {
            return Err(invalid("audience must be 1 to 512 printable characters"));
        }
        if let Some(s) = &input.subject {
            federation::check_pattern("subject", s).map_err(invalid)?;
        }
        let claims = input.claims.unwrap_or_default();
        federation::check_claims(&claims).map_err(invalid)?;
        let fed = self.store.federation().await?;
        if !fed.issuers.iter().any(|i| i.issuer == input.issuer) {
            return Err(invalid("issuer is not a trusted issuer; add it first"));
        }
        if fed.rules.len() >= MAX_RULES {
            return Err(AdminError::conflict(format!(
                "at most {MAX_RULES} federation rules"
            )));
        }
        let client = match self.store.get_client(&input.client_id).await? {
            Some(c) => c,
            None => return Err(invalid("client_id names no client")),
        };
        let scopes = match &input.scopes {
            None => None,
            Some(s) => {
                let s = normalize_scopes(s)?;
                if let Some(extra) = s.iter().find(|x| !client.scopes.contains(x)) {
                    return Err(AdminError::invalid_scope(format!(
                        "scope {extra:?} is not one of the client's; a rule only narrows"
                    )));
                }
                Some(s)
            }
        };
        let rule = FederationRule {
            id: secret::generate_id(RULE_ID_PREFIX),
            issuer: input.issuer,
            audience: input.audience,
            subject: input.subject,
            claims,
            client_id: input.client_id,
            scopes,
            single_use: input.single_use.unwrap_or(false),
            created_at: now,
        };
        let audit = AuditEntry::new(
            now,
            actor,
            "federation.rule.add",
            Some(&rule.id),
            json!(rule),
        );
        if !self.store.add_federation_rule(&rule, &audit).await? {
            return Err(invalid("the issuer or the client was removed meanwhile"));
        }
        Ok(rule)
    }

    /// Removes a rule.
    pub async fn remove_federation_rule(
        &self,
        actor: &str,
        id: &str,
        now: i64,
    ) -> Result<(), AdminError> {
        let audit = AuditEntry::new(now, actor, "federation.rule.remove", Some(id), json!({}));
        if !self.store.remove_federation_rule(id, &audit).await? {
            return Err(AdminError::not_found("no such federation rule"));
        }
        Ok(())
    }

    /// What `POST /admin/federation/test` reports: the issuer, the checks,
    /// the rule that matches or why each does not. Nothing is issued and no
    /// `jti` is recorded.
    pub async fn test_federation(
        &self,
        jwt: &str,
        now: i64,
    ) -> Result<serde_json::Value, AdminError> {
        let (token, fed) = match self.auth.verify_external(jwt, now).await? {
            Ok(t) => t,
            Err(r) => {
                return Ok(json!({
                    "matched": false,
                    "issuer": federation::unverified_issuer(jwt),
                    "error": r.description,
                    "rules": [],
                }))
            }
        };
        let mut rules = Vec::new();
        let mut matched: Option<&FederationRule> = None;
        for rule in fed.rules.iter().filter(|r| r.issuer == token.iss) {
            let why = federation::mismatch(rule, &token);
            if why.is_none() && matched.is_none() {
                matched = Some(rule);
            }
            rules.push(json!({"id": rule.id, "client_id": rule.client_id, "matches": why.is_none(), "reason": why}));
        }
        Ok(json!({
            "matched": matched.is_some(),
            "rule": matched.map(|r| r.id.clone()),
            "client_id": matched.map(|r| r.client_id.clone()),
            "issuer": token.iss,
            "subject": token.sub,
            "audience": token.aud,
            "expires_at": token.exp,
            "rules": rules,
        }))
    }
}

/// Issuing for an external token: the JWT bearer grant.
impl Tokens {
    /// The JWT bearer grant (RFC 7523 §2.1): exchanges `assertion` under the
    /// first matching rule. `client` is the authenticated client or the
    /// `client_id` sent without credentials; either restricts the rules to
    /// that client's. Every failure is `invalid_grant` and counts against
    /// the caller's failure throttle.
    pub(super) async fn issue_for_jwt_bearer(
        &self,
        assertion: &SecretString,
        client: Option<&str>,
        ip: Option<IpAddr>,
        req: &TokenRequest,
        now: i64,
    ) -> Result<IssuedToken, IssueError> {
        let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        self.auth.check_failures(None, ip, now)?;
        let outcome = self.auth.federate(assertion.expose(), client, now).await?;
        let f = match &outcome {
            Ok(f) => f,
            Err(r) => {
                self.auth.note_exchange(&outcome, "", ip);
                self.auth.record_failure("jwt_bearer", None, ip, now);
                return Err(IssueError::InvalidGrant(r.description.clone().into()));
            }
        };
        let issued = self.issue_federated(&f.client, req, f.token.exp, now).await;
        let result = match &issued {
            Ok(_) => "issued",
            Err(e) => e.code(),
        };
        self.auth.note_exchange(&outcome, result, ip);
        issued
    }

    /// Decides, counts and signs a token for a federated client: its
    /// lifetime ends no later than the external token (`not_after`).
    pub(super) async fn issue_federated(
        &self,
        client: &Client,
        req: &TokenRequest,
        not_after: i64,
        now: i64,
    ) -> Result<IssuedToken, IssueError> {
        let mut grant = grant::decide(client, req, &self.policy())?;
        grant.ttl = grant.ttl.min(not_after - now);
        if grant.ttl <= 0 {
            return Err(IssueError::InvalidGrant(
                "the assertion expires now; no token can outlive it".into(),
            ));
        }
        self.issue_grant(client, &grant, req, now, None, None).await
    }
}

/// Verifying external tokens: the authentication side of federation.
impl Authenticator {
    /// Whether `jwt`'s unverified `iss` is a trusted issuer (then a client
    /// assertion is a federated one, not `private_key_jwt`).
    pub(super) async fn is_trusted_issuer(
        &self,
        jwt: &str,
    ) -> Result<bool, crate::store::StoreError> {
        let Some(iss) = federation::unverified_issuer(jwt) else {
            return Ok(false);
        };
        let fed = self.store.federation_cached().await?;
        Ok(fed.issuers.iter().any(|i| i.issuer == iss))
    }

    /// Checks an external token and finds its rule, its client and the
    /// client's narrowed scopes; `client_id` restricts the rules to that
    /// client's. Replay (`single_use`) is recorded here; nothing is issued.
    pub async fn federate(
        &self,
        jwt: &str,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<Result<Federated, Refusal>, crate::store::StoreError> {
        let (token, fed) = match self.verify_external(jwt, now).await? {
            Ok(t) => t,
            Err(r) => return Ok(Err(r)),
        };
        let rule = match federation::find_rule(&fed.rules, &token, client_id) {
            Ok(rule) => rule.clone(),
            Err(why) => {
                log::info!(
                    "federation: no rule matches iss={:?} sub={:?}: {}",
                    token.iss,
                    token.sub,
                    why.iter()
                        .map(|(id, w)| format!("{id}: {w}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                return Ok(Err(refusal(
                    "no federation rule matches the assertion",
                    "no_rule",
                )));
            }
        };
        let with_rule = |description: &str, reason| Refusal {
            description: description.to_string(),
            rule: Some(rule.id.clone()),
            reason,
        };
        let client = match self.store.get_client(&rule.client_id).await? {
            Some(c) if !c.disabled => c,
            _ => {
                return Ok(Err(with_rule(
                    "the rule's client is disabled or gone",
                    "client_disabled",
                )))
            }
        };
        if rule.single_use {
            let Some(jti) = &token.jti else {
                return Ok(Err(with_rule(
                    "the rule allows each assertion once, and the assertion has no jti",
                    "replay",
                )));
            };
            // RFC 7523 §3 item 7, per issuer: across restarts and instances.
            if !self
                .store
                .use_once(
                    OneTime::FederationToken { issuer: &token.iss },
                    jti,
                    crate::oauth::assertion::remember_until(token.exp),
                    now,
                )
                .await?
            {
                return Ok(Err(with_rule(
                    "the assertion was exchanged before, and the rule allows it once",
                    "replay",
                )));
            }
        }
        let mut client = client;
        if let Some(scopes) = &rule.scopes {
            client.scopes.retain(|s| scopes.contains(s));
        }
        Ok(Ok(Federated {
            client,
            rule,
            token,
        }))
    }

    /// The issuer's keys (refetched once on an unknown `kid`), then the
    /// signature and times of the external token; with the issuers and
    /// rules it was checked against.
    pub(super) async fn verify_external(
        &self,
        jwt: &str,
        now: i64,
    ) -> Result<Result<(ExternalToken, Arc<Federation>), Refusal>, crate::store::StoreError> {
        let refuse = |e: ExternalError| Ok(Err(refusal(e.to_string(), external_reason(&e))));
        if jwt.len() > crate::oauth::assertion::MAX_ASSERTION_LEN {
            return refuse(ExternalError::Malformed);
        }
        let Some(iss) = federation::unverified_issuer(jwt) else {
            return refuse(ExternalError::Malformed);
        };
        let fed = self.store.federation_cached().await?;
        let Some(issuer) = fed.issuers.iter().find(|i| i.issuer == iss) else {
            return refuse(ExternalError::UntrustedIssuer);
        };
        let source = match (&issuer.jwks, &issuer.jwks_uri) {
            (Some(jwks), _) => KeySource::Inline(jwks),
            (None, Some(uri)) => KeySource::Uri(uri),
            (None, None) => KeySource::Discover(&issuer.issuer),
        };
        let keys = |refresh| self.key_set(&self.issuer_keys, &issuer.issuer, source, refresh, now);
        let set = match keys(false).await {
            Ok(s) => s,
            Err(e) => {
                // The reason (addresses, DNS answers, HTTP status) is the
                // operator's, in the log; the caller, who may be anyone,
                // gets a fixed description (issue 23, N8).
                log::warn!(
                    "federation: the keys of issuer {:?} could not be fetched: {e}",
                    issuer.issuer
                );
                return Ok(Err(refusal(
                    "the issuer's keys could not be fetched",
                    "keys_unavailable",
                )));
            }
        };
        let verified = match federation::verify(jwt, &issuer.issuer, &set, now) {
            // A key rotated at the issuer: refetch its set once (rate-limited).
            Err(ExternalError::UnknownKey) if !matches!(source, KeySource::Inline(_)) => {
                match keys(true).await {
                    Ok(set) => federation::verify(jwt, &issuer.issuer, &set, now),
                    Err(_) => Err(ExternalError::UnknownKey),
                }
            }
            other => other,
        };
        match verified {
            Ok(t) => Ok(Ok((t, fed.clone()))),
            Err(e) => refuse(e),
        }
    }

    /// Counts and logs an exchange's outcome: `result` is `issued` (a JWT
    /// bearer grant that got its token), `authenticated` (a client
    /// assertion), the error code when the grant failed after the rule
    /// matched, or the reason of a refusal.
    pub(super) fn note_exchange(
        &self,
        outcome: &Result<Federated, Refusal>,
        result: &str,
        ip: IpAddr,
    ) {
        match outcome {
            Ok(f) => {
                log::info!(
                    "federation: iss={:?} sub={:?} matched rule {} as client {} ({result})",
                    f.token.iss,
                    f.token.sub,
                    f.rule.id,
                    f.client.id
                );
                self.metrics
                    .federation
                    .with_label_values(&[&f.rule.id, result])
                    .inc();
            }
            Err(r) => {
                log::info!("federation: assertion from {ip} refused: {}", r.description);
                self.metrics
                    .federation
                    .with_label_values(&[r.rule.as_deref().unwrap_or("none"), r.reason])
                    .inc();
            }
        }
    }
}
