//! Client authentication as one component: every way a client proves who it
//! is (a secret, a signed assertion, a certificate, a workload's external
//! token), the failed-authentication throttles, and the key sets those checks
//! read. It owns that state; `App` composes it and the use cases
//! that issue, introspect and revoke ask it who the caller is.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::error::ServiceError;
use super::keysets::RemoteKeys;
use super::support::truncate;
use crate::config::Config;
use crate::domain::ClientAuth;
use crate::limits::{Decision, Limits, FAIL_WINDOW};
use crate::metrics::Metrics;
use crate::oauth::grant;
use crate::oauth::ClientCredentials;
use crate::secret::SecretString;
use crate::store::{CachedStore, Client};

/// Why a client was not authenticated: the client-authentication family's
/// errors, with no HTTP in them; [`ServiceError`] (and through it `http/`)
/// gives each its status, body and headers.
#[derive(Debug)]
pub enum AuthError {
    /// RFC 6749 §5.2 `invalid_client`: "client authentication failed" for
    /// every failure that depends on the client, or a key-free check of an
    /// assertion naming itself.
    InvalidClient(std::borrow::Cow<'static, str>),
    /// Too many failed authentications from this caller (429, with the
    /// throttle's reset as `Retry-After`).
    Throttled(Decision),
    /// The store could not answer (503, or a fault).
    Store(crate::store::StoreError),
}

impl AuthError {
    /// The one answer to every failure that depends on the client.
    pub fn failed() -> AuthError {
        AuthError::InvalidClient("client authentication failed".into())
    }

    /// `invalid_client` naming a check that does not depend on the client.
    pub fn named(why: impl std::fmt::Display) -> AuthError {
        AuthError::InvalidClient(why.to_string().into())
    }
}

impl std::fmt::Display for AuthError {
    /// The reason, for the log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::InvalidClient(why) => f.write_str(why),
            AuthError::Throttled(_) => f.write_str("too many failed authentication attempts"),
            AuthError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl From<crate::store::StoreError> for AuthError {
    fn from(e: crate::store::StoreError) -> Self {
        AuthError::Store(e)
    }
}

impl From<AuthError> for ServiceError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidClient(why) => {
                ServiceError::new(super::error::ErrorCode::InvalidClient, why)
            }
            AuthError::Throttled(d) => {
                ServiceError::too_many_requests("too many failed authentication attempts", d)
            }
            AuthError::Store(e) => e.into(),
        }
    }
}

/// An authenticated client; a federated one with the time its token must
/// end by (the external token's `exp`).
pub(super) struct Authenticated {
    /// The client (a federated one with the rule's scopes), shared with
    /// the store's cache.
    pub client: Arc<Client>,
    /// For a federated client: the external token's expiry.
    pub not_after: Option<i64>,
}

/// Authenticates clients; cheap to clone (every field is shared).
#[derive(Clone)]
pub struct Authenticator {
    /// Validated configuration (the issuer is an assertion's audience).
    pub(super) config: Arc<Config>,
    /// The store, behind its cache.
    pub(super) store: Arc<CachedStore>,
    /// The failure throttles (shared with the rest of the process's limits).
    pub(super) limits: Arc<Limits>,
    /// Prometheus metrics of this process.
    pub(super) metrics: Arc<Metrics>,
    /// Fetches clients' and issuers' key sets.
    pub(super) fetcher: crate::fetch::Fetcher,
    /// Key sets of clients, inline or fetched from their `jwks_uri`s.
    pub(super) remote_keys: Arc<RemoteKeys>,
    /// Key sets of trusted federation issuers.
    pub(super) issuer_keys: Arc<RemoteKeys>,
    /// The CAs `tls_client_auth` certificates must chain to.
    pub(super) client_ca: Option<Arc<Vec<rustls::pki_types::TrustAnchor<'static>>>>,
    /// Client ID Metadata Documents fetched, by URL, until they expire.
    pub(super) cimd_docs: Arc<super::keysets::Documents>,
}

impl Authenticator {
    /// The same authenticator under another configuration (the server
    /// derives the issuer from the address it bound).
    pub(super) fn with_config(&self, config: Arc<Config>) -> Authenticator {
        Authenticator {
            config,
            ..self.clone()
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
    ) -> Result<(), AuthError> {
        let cfg = &self.config;
        let l = &self.limits;
        let refuse = |limit: u64, reset: u64| {
            log::info!("refused: too many failed authentications from {ip}");
            self.metrics
                .refusals
                .with_label_values(&["auth_failures"])
                .inc();
            Err(AuthError::Throttled(Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset,
                refusals: 1,
            }))
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
    /// Authenticates a client by whatever it presented, in three steps:
    /// the checks that do not depend on the client (lengths, throttles, an
    /// assertion's header and claims; a federated workload's token leaves
    /// here with its rule's client), one read of the client, and then one
    /// match over (what was presented, how the client must authenticate).
    /// Every failure of the last two steps is the same `invalid_client`,
    /// its reason in the log only (issue 24).
    pub(super) async fn authenticate(
        &self,
        creds: Option<&ClientCredentials>,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<Authenticated, AuthError> {
        let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let Some(creds) = creds else {
            return Err(AuthError::failed());
        };
        let client_id = creds.client_id();
        let kind = match creds {
            ClientCredentials::Secret { .. } => "client_secret",
            ClientCredentials::Assertion { .. } => "private_key_jwt",
            ClientCredentials::Certificate { .. } => "tls_client_auth",
        };
        let presented = match self.precheck(creds, ip, now).await {
            Ok(Precheck::Federated(a)) => return Ok(*a),
            Ok(Precheck::Presented(p)) => p,
            Err(e) => {
                if matches!(e, AuthError::InvalidClient(_)) {
                    log::info!(
                        "client authentication refused for client_id {:?} from {ip}: {e}",
                        truncate(client_id)
                    );
                    let id = (client_id.len() <= MAX_CLIENT_ID_LEN).then_some(client_id);
                    self.record_failure(kind, id, ip, now);
                }
                return Err(e);
            }
        };
        let client = self
            .find_client(client_id, now)
            .await?
            .filter(|c| !c.disabled);
        let outcome = match (&presented, client.as_deref().map(|c| (c, &c.auth))) {
            (Presented::Secret(secret), Some((c, ClientAuth::Secret(_)))) => {
                self.verify_secret(c, secret, now).await
            }
            (Presented::Assertion(checked), Some((c, ClientAuth::PrivateKeyJwt(keys)))) => {
                let (a, verified) = &**checked;
                self.verify_assertion(c, keys, a, verified, now).await
            }
            (Presented::Certificate(cert), Some((_, ClientAuth::TlsClientAuth(name)))) => {
                self.verify_tls_client_auth(cert, name, now)
            }
            (Presented::Certificate(cert), Some((c, ClientAuth::SelfSignedTls(keys)))) => {
                self.verify_self_signed(c, keys, cert, now).await
            }
            (Presented::Secret(secret), None) => {
                // The same comparison work as for a known client.
                grant::secret_matches(secret, &[]);
                Err(Refused::Quietly("no such enabled client".into()))
            }
            (_, None) => Err(Refused::Quietly("no such enabled client".into())),
            (_, Some((_, auth))) => Err(Refused::Quietly(format!(
                "the client is not registered for {} (it uses {})",
                creds.method(),
                auth.method().as_str()
            ))),
        };
        match outcome {
            Ok(()) => {
                let client = client.ok_or_else(AuthError::failed)?;
                crate::logging::set_client(&client.id);
                Ok(Authenticated {
                    client,
                    not_after: None,
                })
            }
            Err(refused) => {
                let (reason, answer) = match refused {
                    Refused::Quietly(reason) => (reason, AuthError::failed()),
                    Refused::Named(e) => (e.to_string(), e),
                    Refused::Error(e) => return Err(e),
                };
                log::info!(
                    "client authentication refused for client_id {:?} from {ip}: {reason}",
                    truncate(client_id)
                );
                self.record_failure(kind, Some(client_id), ip, now);
                Err(answer)
            }
        }
    }

    /// The checks that need no client: lengths, the failure throttles, and
    /// an assertion read once (header and claims checked, the form every
    /// later step reuses). A workload's token from a trusted issuer is
    /// checked against the federation rules here and leaves authenticated.
    async fn precheck<'c>(
        &self,
        creds: &'c ClientCredentials,
        ip: IpAddr,
        now: i64,
    ) -> Result<Precheck<'c>, AuthError> {
        let client_id = creds.client_id();
        let too_long = client_id.len() > MAX_CLIENT_ID_LEN
            || match creds {
                ClientCredentials::Secret { secret, .. } => secret.expose().len() > 512,
                ClientCredentials::Assertion { jwt, .. } => {
                    jwt.expose().len() > crate::oauth::assertion::MAX_ASSERTION_LEN
                }
                ClientCredentials::Certificate { .. } => false,
            };
        if too_long {
            self.check_failures(None, ip, now)?;
            return Err(AuthError::failed());
        }
        self.check_failures(Some(client_id), ip, now)?;
        Ok(Precheck::Presented(match creds {
            ClientCredentials::Secret { secret, .. } => Presented::Secret(secret),
            ClientCredentials::Certificate { certificate, .. } => {
                Presented::Certificate(certificate)
            }
            ClientCredentials::Assertion { jwt, .. } => {
                match self
                    .precheck_assertion(client_id, jwt.expose(), ip, now)
                    .await?
                {
                    Ok(a) => return Ok(Precheck::Federated(Box::new(a))),
                    Err(checked) => Presented::Assertion(Box::new(checked)),
                }
            }
        }))
    }

    /// [`Authenticator::authenticate`], for a caller that needs only the
    /// client (introspection, revocation, a JWT bearer grant's client).
    pub async fn authenticate_client(
        &self,
        creds: Option<&ClientCredentials>,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<Arc<Client>, AuthError> {
        Ok(self.authenticate(creds, ip, now).await?.client)
    }

    /// RFC 6749 §2.3.1: one of the client's live secrets. A secret left from
    /// before a switch of method never authenticates (the method decides).
    async fn verify_secret(
        &self,
        client: &Client,
        secret: &SecretString,
        now: i64,
    ) -> Result<(), Refused> {
        let secrets = self
            .store
            .live_secrets(&client.id, now)
            .await
            .map_err(|e| Refused::Error(e.into()))?;
        if grant::secret_matches(secret, &secrets) {
            Ok(())
        } else {
            Err(Refused::Quietly("the secret does not match".into()))
        }
    }
}

/// The longest client id considered.
const MAX_CLIENT_ID_LEN: usize = 256;

/// What passed the checks that need no client.
pub(super) enum Precheck<'c> {
    /// A workload's token from a trusted issuer: authenticated by its rule.
    Federated(Box<Authenticated>),
    /// Credentials to check against the client's registered method.
    Presented(Presented<'c>),
}

/// What a client presented, read once: a secret, an assertion whose header
/// and claims passed (its signature not yet checked), or a certificate.
pub(super) enum Presented<'c> {
    /// A client secret.
    Secret(&'c SecretString),
    /// A `private_key_jwt` assertion and its replay key.
    Assertion(
        Box<(
            crate::oauth::assertion::UnverifiedAssertion<'c>,
            crate::oauth::assertion::Verified,
        )>,
    ),
    /// A TLS client certificate.
    Certificate(&'c crate::oauth::mtls::Certificate),
}

/// Why a registered method refused what was presented.
pub(super) enum Refused {
    /// A failure that depends on the client: logged with its reason,
    /// answered with the one `invalid_client`.
    Quietly(String),
    /// A failure that may name itself (the caller proved the key).
    Named(AuthError),
    /// Not a refusal: the store or another use case failed.
    Error(AuthError),
}
