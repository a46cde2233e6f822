//! Issuing tokens: client authentication (RFC 6749 §2.3.1) with its
//! failure throttles, the client-credentials grant (§4.4) and the API-key
//! exchange, per-client quotas, and signing.

use crate::store::Store;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::error::ServiceError;
use super::{log_refusal, truncate, App, IssuedToken};
use crate::limits::{Decision, FAIL_WINDOW};
use crate::oauth::grant::{self, Grant, Policy, TokenRequest};
use crate::oauth::ClientCredentials;
use crate::secret::{self, SecretString};
use crate::store::{ApiKeyRecord, Client};
use crate::token::{self, Claims};

impl App {
    /// The grant policy from the configuration.
    pub fn policy(&self) -> Policy {
        Policy {
            issuer: self.config.issuer.clone(),
            default_ttl: self.config.default_token_ttl,
            max_ttl: self.config.max_token_ttl,
        }
    }
    /// Refuses a caller that failed authentication too often (429): per IP,
    /// per client id and IP, and, once a client id has failed too often from
    /// anywhere, from every IP that has failed for it. An IP that has not
    /// failed for a client is never locked out by others' failures.
    pub(super) fn check_failures(
        &self,
        client_id: Option<&str>,
        ip: IpAddr,
        now: i64,
    ) -> Result<(), ServiceError> {
        let cfg = &self.config;
        let l = &self.limits;
        let refuse = |limit: u64, reset: u64| {
            log::info!("refused: too many failed authentications from {ip}");
            self.metrics
                .refusals
                .with_label_values(&["auth_failures"])
                .inc();
            Err(ServiceError::too_many_requests(
                "too many failed authentication attempts",
                Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset,
                    refusals: 1,
                },
            ))
        };
        if let Some(reset) = l
            .fail_ip
            .exhausted(&ip, cfg.auth_fail_ip_limit, FAIL_WINDOW, now)
        {
            return refuse(cfg.auth_fail_ip_limit, reset);
        }
        if let Some(id) = client_id {
            let pair = (id.to_string(), ip);
            if let Some(reset) =
                l.fail_pair
                    .exhausted(&pair, cfg.auth_fail_pair_limit, FAIL_WINDOW, now)
            {
                return refuse(cfg.auth_fail_pair_limit, reset);
            }
            if let Some(reset) = l.fail_client.exhausted(
                &id.to_string(),
                cfg.auth_fail_client_limit,
                FAIL_WINDOW,
                now,
            ) {
                if l.fail_pair.count(&pair, FAIL_WINDOW, now) > 0 {
                    return refuse(cfg.auth_fail_client_limit, reset);
                }
            }
        }
        Ok(())
    }
    pub(super) fn record_failure(&self, kind: &str, client_id: Option<&str>, ip: IpAddr, now: i64) {
        self.metrics.auth_failures.with_label_values(&[kind]).inc();
        let l = &self.limits;
        l.fail_ip.hit(&ip, u64::MAX, FAIL_WINDOW, 0, now);
        if let Some(id) = client_id {
            l.fail_pair
                .hit(&(id.to_string(), ip), u64::MAX, FAIL_WINDOW, 0, now);
            l.fail_client
                .hit(&id.to_string(), u64::MAX, FAIL_WINDOW, 0, now);
        }
    }
    /// Authenticates a client by whatever it presented: a secret, its own
    /// signed assertion, or a federated workload's token (whose client comes
    /// with the rule's scopes and the external token's expiry).
    pub(super) async fn authenticate(
        &self,
        creds: Option<&ClientCredentials>,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<Authenticated, ServiceError> {
        match creds {
            Some(c) if c.method == crate::oauth::AuthMethod::PrivateKeyJwt => {
                let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                self.authenticate_with_assertion(c, ip, now).await
            }
            _ => Ok(Authenticated {
                client: self.authenticate_client(creds, ip, now).await?,
                not_after: None,
            }),
        }
    }
    /// Authenticates a client by its secret (RFC 6749 §2.3.1). Unknown, wrong
    /// and disabled all answer the same `invalid_client`.
    pub async fn authenticate_client(
        &self,
        creds: Option<&ClientCredentials>,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<Client, ServiceError> {
        let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let Some(creds) = creds else {
            return Err(ServiceError::invalid_client());
        };
        if creds.method == crate::oauth::AuthMethod::PrivateKeyJwt {
            return Ok(self
                .authenticate_with_assertion(creds, ip, now)
                .await?
                .client);
        }
        if creds.method == crate::oauth::AuthMethod::TlsClientAuth {
            return self.authenticate_with_certificate(creds, ip, now).await;
        }
        if creds.client_id.len() > 256 || creds.secret.expose().len() > 512 {
            self.check_failures(None, ip, now)?;
            self.record_failure("client_secret", None, ip, now);
            return Err(ServiceError::invalid_client());
        }
        self.check_failures(Some(&creds.client_id), ip, now)?;
        let client = self.store.get_client(&creds.client_id).await?;
        let secrets = match &client {
            Some(_) => self.store.live_secrets(&creds.client_id, now).await?,
            None => Vec::new(),
        };
        let matched = grant::secret_matches(&creds.secret, &secrets);
        match client {
            // A private_key_jwt client has no secret; one left from before a
            // switch of method does not authenticate it either.
            Some(c) if matched && !c.disabled && c.token_endpoint_auth_method.uses_secret() => {
                crate::logging::set_client(&c.id);
                Ok(c)
            }
            _ => {
                log::info!(
                    "client authentication failed for client_id {:?} from {ip}",
                    truncate(&creds.client_id)
                );
                self.record_failure("client_secret", Some(&creds.client_id), ip, now);
                Err(ServiceError::invalid_client())
            }
        }
    }
    /// Counts a token against the client's quota; past it, the client is
    /// banned for the quota's ban time (429).
    async fn spend_quota(&self, client: &Client, now: i64) -> Result<(), ServiceError> {
        let quota = client.token_quota.unwrap_or(self.config.token_quota);
        if quota == 0 {
            return Ok(());
        }
        let window = client
            .quota_window
            .unwrap_or(self.config.token_quota_window);
        let ban = client.quota_ban.unwrap_or(self.config.token_quota_ban);
        // A fleet on PostgreSQL counts in the database, so that the quota
        // holds across instances; otherwise this process's memory counts.
        let d = match self
            .store
            .hit_quota(&client.id, quota, window, ban, now)
            .await
        {
            Ok(Some(d)) => d,
            Ok(None) => self.limits.quota.hit(&client.id, quota, window, ban, now),
            // The database is unreachable within the outage grace: this
            // instance counts on its own until it is back.
            Err(e) if self.store.outage_grace_left().is_some() => {
                log::debug!("quota counted locally during the outage grace: {e}");
                self.limits.quota.hit(&client.id, quota, window, ban, now)
            }
            Err(e) => return Err(e.into()),
        };
        if !d.allowed {
            self.metrics.refusals.with_label_values(&["quota"]).inc();
            log_refusal(&d, &format!("client {} is over its token quota", client.id));
            return Err(ServiceError::too_many_requests("token quota exceeded", d));
        }
        Ok(())
    }
    /// Client-credentials grant (RFC 6749 §4.4): authenticate, decide, count, sign.
    pub async fn issue_for_client(
        &self,
        creds: Option<&ClientCredentials>,
        ip: Option<IpAddr>,
        req: &TokenRequest,
        now: i64,
    ) -> Result<IssuedToken, ServiceError> {
        let auth = self.authenticate(creds, ip, now).await?;
        if let Some(not_after) = auth.not_after {
            return self
                .issue_federated(&auth.client, req, not_after, now)
                .await;
        }
        let grant = grant::decide(&auth.client, req, &self.policy())?;
        self.issue_grant(&auth.client, &grant, req, now, None).await
    }
    /// Builds, counts against the quota and signs the token of a grant.
    /// A token bound to the request's DPoP key when it sent a proof (whose
    /// `jti` is recorded here, RFC 9449 §11.1).
    pub(super) async fn issue_grant(
        &self,
        client: &Client,
        grant: &Grant,
        req: &TokenRequest,
        now: i64,
        api_key_id: Option<String>,
    ) -> Result<IssuedToken, ServiceError> {
        let mut cnf = self
            .bind_dpop(client, req.dpop.as_ref(), now)
            .await?
            .unwrap_or_default();
        cnf.x5t_s256 = self.bind_certificate(client, req.certificate.as_deref())?;
        let cnf = (cnf != token::Confirmation::default()).then_some(cnf);
        crate::logging::set_client(&client.id);
        let unsigned = self.prepare(client, grant, now, api_key_id, cnf).await?;
        self.spend_quota(client, now).await?;
        self.sign(unsigned)
    }
    /// Finds the active API key for a presented key, or `None`.
    pub async fn find_active_api_key(
        &self,
        key: &SecretString,
        now: i64,
    ) -> Result<Option<(ApiKeyRecord, Client)>, ServiceError> {
        if key.expose().len() > 512 || !key.expose().starts_with(&self.config.api_key_prefix) {
            return Ok(None);
        }
        let digest = key.digest();
        let Some(record) = self.store.find_api_key(&digest).await? else {
            return Ok(None);
        };
        if !secret::constant_time_eq(&record.digest, &digest)
            || record.state(now) != crate::store::ApiKeyState::Active
        {
            return Ok(None);
        }
        match self.store.get_client(&record.client_id).await? {
            Some(client) if !client.disabled => Ok(Some((record, client))),
            _ => Ok(None),
        }
    }
    /// Exchanges an API key for an access token that acts as its client.
    pub async fn issue_for_api_key(
        &self,
        key: &SecretString,
        ip: Option<IpAddr>,
        req: &TokenRequest,
        now: i64,
    ) -> Result<IssuedToken, ServiceError> {
        let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        self.check_failures(None, ip, now)?;
        let Some((record, client)) = self.find_active_api_key(key, now).await? else {
            log::info!("API key authentication failed from {ip}");
            self.record_failure("api_key", None, ip, now);
            return Err(ServiceError::new(
                crate::service::error::ErrorCode::InvalidClient,
                "invalid, expired or revoked API key",
            )
            .with_challenge(crate::service::error::Challenge::Bearer));
        };
        let grant = grant::decide(&client, req, &self.policy())?;
        let issued = self
            .issue_grant(&client, &grant, req, now, Some(record.id.clone()))
            .await?;
        self.touch_api_key(&record, now);
        Ok(issued)
    }
    /// Notes a use of an API key. Uses are written in the background by
    /// [`App::flush_key_uses`], at most once a minute per key, so that the
    /// request path never waits for a disk write.
    pub fn touch_api_key(&self, record: &ApiKeyRecord, now: i64) {
        if record.last_used_at.is_some_and(|t| t >= now - 60) {
            return;
        }
        let mut pending = crate::sync::lock(&self.key_uses);
        if pending.len() < 100_000 {
            pending.insert(record.id.clone(), now);
        }
    }
    /// Builds and serializes the claims of a grant and picks the key that
    /// will sign them; refuses a token longer than [`token::MAX_TOKEN_LEN`]
    /// (too many scopes or audiences), which introspection and revocation
    /// could not take back.
    async fn prepare(
        &self,
        client: &Client,
        grant: &Grant,
        now: i64,
        api_key_id: Option<String>,
        cnf: Option<token::Confirmation>,
    ) -> Result<Unsigned, ServiceError> {
        let mut claims: Claims = grant::claims(
            &client.id,
            grant,
            &self.config.issuer,
            now,
            secret::random_b64(16),
            api_key_id,
        );
        claims.cnf = cnf;
        let key = self
            .current_keys()
            .await?
            .signer(now)
            .cloned()
            .ok_or_else(|| ServiceError::internal("no active signing key"))?;
        let payload = serde_json::to_vec(&claims).map_err(ServiceError::internal)?;
        let len = token::signed_len(payload.len(), &key);
        if len > token::MAX_TOKEN_LEN {
            return Err(ServiceError::invalid_request(format!(
                "the token would be {len} bytes, over the limit of {} that introspection \
                 and revocation accept; request fewer scopes or audiences",
                token::MAX_TOKEN_LEN
            )));
        }
        Ok(Unsigned {
            payload,
            key,
            expires_in: grant.ttl,
            token_type: if claims.cnf.as_ref().is_some_and(|c| c.jkt.is_some()) {
                "DPoP"
            } else {
                "Bearer"
            },
            scope: claims.scope,
        })
    }
    fn sign(&self, unsigned: Unsigned) -> Result<IssuedToken, ServiceError> {
        let jwt = crate::telemetry::child_sync("token.sign", || {
            token::sign_payload(&unsigned.payload, &unsigned.key)
        })
        .map_err(ServiceError::internal)?;
        Ok(IssuedToken {
            access_token: SecretString::new(jwt),
            expires_in: unsigned.expires_in,
            token_type: unsigned.token_type,
            scope: unsigned.scope,
        })
    }
}

/// An authenticated client; a federated one with the time its token must
/// end by (the external token's `exp`).
pub(super) struct Authenticated {
    /// The client (a federated one with the rule's scopes).
    pub client: Client,
    /// For a federated client: the external token's expiry.
    pub not_after: Option<i64>,
}

/// Claims ready to sign, with the key that will sign them.
struct Unsigned {
    payload: Vec<u8>,
    key: Arc<token::SigningKey>,
    expires_in: i64,
    token_type: &'static str,
    scope: String,
}
