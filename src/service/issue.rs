//! Issuing tokens: client authentication (RFC 6749 §2.3.1) with its
//! failure throttles, the client-credentials grant (§4.4) and the API-key
//! exchange, per-client quotas, and signing.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::api_keys::ApiKeys;
use super::authenticator::Authenticator;
use super::dpop::Proofs;
use super::families::IssueError;
use super::signing::SigningKeys;
use super::support::log_refusal;
use crate::config::Config;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::oauth::grant::{self, Grant, Policy, TokenRequest};
use crate::oauth::request::{TokenEndpointRequest, TokenGrant};
use crate::oauth::ClientCredentials;
use crate::secret::{self, SecretString};
use crate::store::CachedStore;
use crate::store::Client;
use crate::token::{self, Claims};

/// When and from where a request came, read once at the edge.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext {
    /// The caller's address (the peer, or a trusted proxy's client).
    pub ip: IpAddr,
    /// The time the request is handled at, in Unix seconds.
    pub now: i64,
}

impl RequestContext {
    /// A request from `ip`, now.
    pub fn new(ip: IpAddr) -> RequestContext {
        RequestContext {
            ip,
            now: crate::domain::now(),
        }
    }
}

/// A token just issued, with what the response reports.
#[derive(Debug)]
pub struct IssuedToken {
    /// The signed JWT.
    pub access_token: SecretString,
    /// Seconds until expiry.
    pub expires_in: i64,
    /// `Bearer`, or `DPoP` for a token bound to a DPoP key (RFC 9449 §5).
    pub token_type: &'static str,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// RFC 8693 §2.2.1 `issued_token_type`, for a token exchange.
    pub issued_token_type: Option<&'static str>,
}

/// What a token obtained by exchange carries beyond a grant (RFC 8693
/// §4.1): the subject's `sub`, the actor chain, and the Tollgate tokens it
/// was exchanged from.
#[derive(Debug, Clone)]
pub(super) struct Delegation {
    /// The subject token's `sub`.
    pub sub: String,
    /// The new `act` (none for an ID-JAG: the client acts for the user
    /// the identity provider vouched for).
    pub act: Option<serde_json::Value>,
    /// The subject and its own origin, nearest first.
    pub origin: Vec<token::Origin>,
}

/// Issuing tokens: the token endpoints' one entry point, each grant's
/// decision, quotas and signing.
#[derive(Clone)]
pub struct Tokens {
    /// Validated configuration.
    pub(super) config: Arc<Config>,
    /// The store, behind its cache.
    pub(super) store: Arc<CachedStore>,
    /// Quotas of this process (a fleet counts in the database).
    pub(super) limits: Arc<Limits>,
    /// Prometheus metrics of this process.
    pub(super) metrics: Arc<Metrics>,
    /// Client authentication.
    pub(super) auth: Arc<Authenticator>,
    /// The signing keys.
    pub(super) signing: Arc<SigningKeys>,
    /// DPoP proofs.
    pub(super) proofs: Arc<Proofs>,
    /// API keys.
    pub(super) api_keys: Arc<ApiKeys>,
    /// Introspection: whether a subject token is active (token exchange).
    pub(super) introspector: Arc<super::introspect::Introspector>,
}

impl Tokens {
    /// The token endpoints' one entry point: the DPoP proof checked and its
    /// `jti` recorded first (a replayed proof costs no client
    /// authentication), then one arm per grant, counted by grant and
    /// outcome.
    pub async fn token(
        &self,
        req: TokenEndpointRequest<'_>,
        ctx: RequestContext,
    ) -> Result<IssuedToken, IssueError> {
        let TokenEndpointRequest {
            grant,
            mut request,
            proof,
        } = req;
        let now = ctx.now;
        request.dpop = self
            .proofs
            .token_request_proof(&proof.headers, proof.method, proof.path, now)
            .await?;
        let label = grant.label();
        let issued = self.issue(grant, &request, Some(ctx.ip), now).await;
        self.metrics
            .token(label, issued.as_ref().map(|_| ()).map_err(IssueError::code));
        issued
    }

    /// One arm per grant.
    async fn issue(
        &self,
        grant: TokenGrant,
        request: &TokenRequest,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<IssuedToken, IssueError> {
        match grant {
            TokenGrant::ClientCredentials { client } => {
                self.issue_for_client(client.as_ref(), ip, request, now)
                    .await
            }
            TokenGrant::IdJag { client, assertion } => {
                self.issue_for_id_jag(client.as_ref(), &assertion, ip, request, now)
                    .await
            }
            TokenGrant::JwtBearer {
                client,
                named_client,
                assertion,
            } => {
                let client = match client {
                    Some(c) => Some(
                        self.auth
                            .authenticate_client(Some(&c), ip, now)
                            .await?
                            .id
                            .clone(),
                    ),
                    None => named_client,
                };
                self.issue_for_jwt_bearer(&assertion, client.as_deref(), ip, request, now)
                    .await
            }
            TokenGrant::TokenExchange { client, exchange } => {
                self.issue_for_exchange(client.as_ref(), &exchange, ip, request, now)
                    .await
            }
            TokenGrant::ApiKey { key } => self.issue_for_api_key(&key, ip, request, now).await,
        }
    }

    /// The grant policy from the configuration.
    pub fn policy(&self) -> Policy {
        Policy {
            issuer: self.config.issuer.clone(),
            default_ttl: self.config.default_token_ttl,
            max_ttl: self.config.max_token_ttl,
        }
    }
    /// Counts a token against the client's quota; past it, the client is
    /// banned for the quota's ban time (429).
    pub(super) async fn spend_quota(&self, client: &Client, now: i64) -> Result<(), IssueError> {
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
        let shared = match self.store.shared_quota() {
            Some(q) => Some(q.hit(&client.id, quota, window, ban, now).await),
            None => None,
        };
        let d = match shared {
            Some(Ok(d)) => d,
            None => self.limits.quota.hit(&client.id, quota, window, ban, now),
            // The database is unreachable within the outage grace: this
            // instance counts on its own until it is back.
            Some(Err(e)) if self.store.backend().outage_grace_left().is_some() => {
                log::debug!("quota counted locally during the outage grace: {e}");
                self.limits.quota.hit(&client.id, quota, window, ban, now)
            }
            Some(Err(e)) => return Err(e.into()),
        };
        if !d.allowed {
            self.metrics.refusals.with_label_values(&["quota"]).inc();
            log_refusal(&d, &format!("client {} is over its token quota", client.id));
            return Err(IssueError::Quota(d));
        }
        Ok(())
    }
    /// Client-credentials grant (RFC 6749 §4.4): authenticate, decide, count, sign.
    async fn issue_for_client(
        &self,
        creds: Option<&ClientCredentials>,
        ip: Option<IpAddr>,
        req: &TokenRequest,
        now: i64,
    ) -> Result<IssuedToken, IssueError> {
        let auth = self.auth.authenticate(creds, ip, now).await?;
        if let Some(not_after) = auth.not_after {
            return self
                .issue_federated(&auth.client, req, not_after, now)
                .await;
        }
        let grant = grant::decide(&auth.client, req, &self.policy())?;
        self.issue_grant(&auth.client, &grant, req, now, None, None)
            .await
    }
    /// Builds, counts against the quota and signs the token of a grant.
    /// A token bound to the request's DPoP key when it sent a proof (whose
    /// `jti` was recorded when the request came in, RFC 9449 §11.1).
    pub(super) async fn issue_grant(
        &self,
        client: &Client,
        grant: &Grant,
        req: &TokenRequest,
        now: i64,
        api_key_id: Option<String>,
        delegation: Option<Delegation>,
    ) -> Result<IssuedToken, IssueError> {
        let mut cnf = self
            .proofs
            .bind_dpop(client, req.dpop.as_ref())?
            .unwrap_or_default();
        cnf.x5t_s256 = self.bind_certificate(client, req.certificate.as_deref())?;
        let cnf = (cnf != token::Confirmation::default()).then_some(cnf);
        crate::logging::set_client(&client.id);
        let unsigned = self
            .prepare(client, grant, now, api_key_id, cnf, delegation)
            .await?;
        self.spend_quota(client, now).await?;
        self.sign(unsigned)
    }
    /// Exchanges an API key for an access token that acts as its client.
    async fn issue_for_api_key(
        &self,
        key: &SecretString,
        ip: Option<IpAddr>,
        req: &TokenRequest,
        now: i64,
    ) -> Result<IssuedToken, IssueError> {
        let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        self.auth.check_failures(None, ip, now)?;
        let Some((record, client)) = self.api_keys.find_active_api_key(key, now).await? else {
            log::info!("API key authentication failed from {ip}");
            self.auth.record_failure("api_key", None, ip, now);
            return Err(IssueError::InvalidApiKey);
        };
        let grant = grant::decide(&client, req, &self.policy())?;
        let issued = self
            .issue_grant(&client, &grant, req, now, Some(record.id.clone()), None)
            .await?;
        self.api_keys.touch_api_key(&record, now);
        Ok(issued)
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
        delegation: Option<Delegation>,
    ) -> Result<Unsigned, IssueError> {
        let mut claims: Claims = grant::claims(
            &client.id,
            grant,
            &self.config.issuer,
            now,
            secret::token_id(),
            api_key_id,
        );
        claims.cnf = cnf;
        // The client's own claims, whatever the grant: a token obtained by
        // exchange carries its client's, never the subject's.
        if let Some(extra) = &client.claims {
            claims.extra = extra.clone();
        }
        if let Some(d) = delegation {
            claims.sub = d.sub;
            claims.act = d.act;
            claims.origin = d.origin;
        }
        let key = self.signing.signer(now).await.ok_or_else(|| {
            IssueError::Signing("no signing key this instance holds is active".into())
        })?;
        let payload =
            serde_json::to_vec(&claims).map_err(|e| IssueError::Internal(e.to_string()))?;
        let len = token::signed_len(payload.len(), &key);
        if len > token::MAX_TOKEN_LEN {
            return Err(IssueError::invalid_request(format!(
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
            issued_token_type: claims
                .act
                .is_some()
                .then_some(crate::oauth::exchange::ACCESS_TOKEN_TYPE),
            typ: token::Typ::Access,
        })
    }
    pub(super) fn sign(&self, unsigned: Unsigned) -> Result<IssuedToken, IssueError> {
        let jwt = crate::telemetry::child_sync("token.sign", || {
            token::sign_typed(&unsigned.payload, &unsigned.key, unsigned.typ)
        })
        .map_err(|e| IssueError::Signing(e.to_string()))?;
        Ok(IssuedToken {
            access_token: SecretString::new(jwt),
            expires_in: unsigned.expires_in,
            token_type: unsigned.token_type,
            scope: unsigned.scope,
            issued_token_type: unsigned.issued_token_type,
        })
    }
}

/// Claims ready to sign, with the key that will sign them.
pub(super) struct Unsigned {
    pub payload: Vec<u8>,
    pub key: Arc<token::SigningKey>,
    pub expires_in: i64,
    pub token_type: &'static str,
    pub scope: String,
    pub issued_token_type: Option<&'static str>,
    /// The header's `typ`.
    pub typ: token::Typ,
}
