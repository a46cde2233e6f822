//! `private_key_jwt` client authentication (RFC 7523 §2.2, §3): the client's
//! keys (inline, or fetched from its `jwks_uri` and cached; the same cache
//! serves federation issuers' keys), the assertion checks of
//! `oauth::assertion`, and the replay check against the store.

use crate::store::OneTime;
use crate::store::OneTimeStore;
use std::net::IpAddr;
use std::sync::Arc;

use jsonwebtoken::jwk::JwkSet;

use super::authenticator::Authenticated;
use super::authenticator::{AuthError, Authenticator, Refused};
use crate::domain::KeySource as DomainKeySource;
use crate::oauth::assertion::{self, AssertionError, Expected, UnverifiedAssertion, Verified};
use crate::store::Client;

use super::keysets::{Fetched, KeySource, RemoteKeys, JWKS_TTL, REFETCH_INTERVAL};

fn refused(why: impl std::fmt::Display) -> AuthError {
    AuthError::named(why)
}

impl Authenticator {
    /// The `aud` values an assertion may carry: the issuer identifier and
    /// the token endpoint URL.
    fn assertion_audiences(&self) -> Vec<String> {
        let issuer = self.config.issuer.trim_end_matches('/');
        vec![self.config.issuer.clone(), format!("{issuer}/oauth/token")]
    }

    /// A client's key set (see [`Authenticator::key_set`]). A fetch failure
    /// is an authentication failure, never a server error.
    pub(super) async fn client_keys(
        &self,
        client_id: &str,
        source: &DomainKeySource,
        refresh: bool,
        now: i64,
    ) -> Result<Arc<JwkSet>, String> {
        let source = match source {
            DomainKeySource::Jwks(jwks) => KeySource::Inline(jwks),
            DomainKeySource::Uri(uri) => KeySource::Uri(uri),
        };
        self.key_set(&self.remote_keys, client_id, source, refresh, now)
            .await
            .map_err(|e| match source {
                KeySource::Inline(_) => format!("the client's registered keys: {e}"),
                _ => "the client's jwks_uri could not be fetched".to_string(),
            })
    }

    /// A key set, by its owner (a client id, an issuer) in `cache`: inline
    /// (parsed once per registered set), or fetched from a URI or through
    /// discovery and cached for [`JWKS_TTL`]; `refresh` refetches unless the
    /// last try was less than [`REFETCH_INTERVAL`] ago. While a URI fails,
    /// the set fetched before keeps answering. Errors are safe to show.
    pub(super) async fn key_set(
        &self,
        cache: &RemoteKeys,
        owner: &str,
        source: KeySource<'_>,
        refresh: bool,
        now: i64,
    ) -> Result<Arc<JwkSet>, String> {
        let uri = match source {
            KeySource::Inline(jwks) => {
                if let Some(keys) = cache.inline(owner, jwks) {
                    return Ok(keys);
                }
                let keys = assertion::check_public_jwks(jwks)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())?;
                cache.put(
                    owner,
                    Fetched {
                        uri: String::new(),
                        keys: Some(keys.clone()),
                        fetched_at: now,
                        tried_at: now,
                        refetched_at: 0,
                        inline: Some(jwks.clone()),
                    },
                );
                return Ok(keys);
            }
            KeySource::Uri(uri) => uri.to_string(),
            KeySource::Discover(issuer) => format!("discover:{issuer}"),
        };
        // What the cache answers without a fetch, if anything.
        let settled = |cached: &Option<Fetched>| -> Option<Result<Arc<JwkSet>, String>> {
            let f = cached.as_ref()?;
            let fresh = now - f.fetched_at < JWKS_TTL;
            // A failed fetch is retried at most once a minute, and so is a
            // refetch for an unknown kid.
            let may_retry = now - f.tried_at >= REFETCH_INTERVAL;
            let may_refetch = now - f.refetched_at >= REFETCH_INTERVAL;
            match &f.keys {
                Some(keys) if fresh && !refresh => Some(Ok(keys.clone())),
                Some(keys) if refresh && !may_refetch => Some(Ok(keys.clone())),
                Some(keys) if !refresh && !may_retry => Some(Ok(keys.clone())),
                None if !may_retry => Some(Err("the key set could not be fetched".into())),
                _ => None,
            }
        };
        let cached = cache.get(owner).filter(|f| f.uri == uri);
        if let Some(answer) = settled(&cached) {
            return answer;
        }
        // Single flight: one fetch per owner at a time. Whoever waited
        // looks again, and uses what the fetch before it left.
        let flight = cache.flight(owner);
        let answer = {
            let _fetching = flight.lock().await;
            let cached = cache.get(owner).filter(|f| f.uri == uri);
            match settled(&cached) {
                Some(answer) => answer,
                None => {
                    self.fetch_key_set(cache, owner, source, uri, cached, refresh, now)
                        .await
                }
            }
        };
        drop(flight);
        cache.land(owner);
        answer
    }

    /// Fetches an owner's key set (the caller holds its flight) and caches
    /// the outcome; the times are stamped before the fetch, so that the
    /// once-a-minute limits hold whatever happens to it.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_key_set(
        &self,
        cache: &RemoteKeys,
        owner: &str,
        source: KeySource<'_>,
        uri: String,
        cached: Option<Fetched>,
        refresh: bool,
        now: i64,
    ) -> Result<Arc<JwkSet>, String> {
        let mut refetched_at = cached.as_ref().map_or(0, |f| f.refetched_at);
        if refresh && cached.is_some() {
            refetched_at = now;
        }
        // With keys in hand, requests that do not wait for this fetch use
        // them; without, they wait on the flight (a stamp here would answer
        // them "could not be fetched" while the fetch may yet succeed).
        if let Some(keys) = cached.as_ref().and_then(|f| f.keys.clone()) {
            cache.put(
                owner,
                Fetched {
                    uri: uri.clone(),
                    keys: Some(keys),
                    fetched_at: cached.as_ref().map_or(0, |f| f.fetched_at),
                    tried_at: now,
                    refetched_at,
                    inline: None,
                },
            );
        }
        let fetched = match source {
            KeySource::Discover(issuer) => self.discover_jwks_uri(issuer).await,
            _ => Ok(uri.clone()),
        };
        let fetched = match fetched {
            Ok(jwks_uri) => self
                .fetcher
                .json(&jwks_uri)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        }
        .and_then(|v| assertion::check_public_jwks(&v).map_err(|e| e.to_string()));
        match fetched {
            Ok(set) => {
                let keys = Arc::new(set);
                cache.put(
                    owner,
                    Fetched {
                        uri,
                        keys: Some(keys.clone()),
                        fetched_at: now,
                        tried_at: now,
                        refetched_at,
                        inline: None,
                    },
                );
                Ok(keys)
            }
            Err(e) => {
                // A registered client id or a trusted issuer: not secret.
                log::warn!("keys of {owner} not usable: {e}");
                let previous = cached.as_ref().and_then(|f| f.keys.clone());
                cache.put(
                    owner,
                    Fetched {
                        uri,
                        keys: previous.clone(),
                        fetched_at: cached.map_or(0, |f| f.fetched_at),
                        tried_at: now,
                        refetched_at,
                        inline: None,
                    },
                );
                previous.ok_or_else(|| format!("the key set could not be fetched: {e}"))
            }
        }
    }

    /// The `jwks_uri` an issuer publishes in its metadata: OpenID Connect
    /// Discovery 1.0 §4 (`<issuer>/.well-known/openid-configuration`), then
    /// RFC 8414 §3.1 (`/.well-known/oauth-authorization-server` inserted
    /// before the issuer's path). The document's `issuer` must be the issuer
    /// (OIDC Discovery §4.3, RFC 8414 §3.3).
    async fn discover_jwks_uri(&self, issuer: &str) -> Result<String, String> {
        let base = issuer.trim_end_matches('/');
        let mut urls = vec![format!("{base}/.well-known/openid-configuration")];
        if let Ok(u) = reqwest::Url::parse(issuer) {
            let path = u.path().trim_end_matches('/');
            let origin = u.origin().ascii_serialization();
            urls.push(format!(
                "{origin}/.well-known/oauth-authorization-server{path}"
            ));
        }
        let mut last = String::from("no metadata");
        for url in urls {
            match self.fetcher.json(&url).await {
                Ok(doc) => {
                    if doc.get("issuer").and_then(|v| v.as_str()) != Some(issuer) {
                        last = format!("the metadata at {url} names another issuer");
                        continue;
                    }
                    return match doc.get("jwks_uri").and_then(|v| v.as_str()) {
                        Some(j) => Ok(j.to_string()),
                        None => Err(format!("the metadata at {url} has no jwks_uri")),
                    };
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("discovery at the issuer failed: {last}"))
    }

    /// The checks of a `private_key_jwt` assertion that need no key (RFC
    /// 7523 §3 but the signature): read once, header and claims checked;
    /// they answer alike whether the client exists or not, and may name
    /// themselves. An assertion whose `iss` is a trusted federation issuer
    /// is a workload's token (the Entra/Keycloak form): it is checked here
    /// against the federation rules of the named client, and comes back
    /// authenticated (`Ok(Ok(..))`).
    #[allow(clippy::type_complexity)]
    pub(super) async fn precheck_assertion<'j>(
        &self,
        client_id: &str,
        jwt: &'j str,
        ip: IpAddr,
        now: i64,
    ) -> Result<Result<Authenticated, (UnverifiedAssertion<'j>, Verified)>, AuthError> {
        if self.is_trusted_issuer(jwt).await? {
            let outcome = self.federate(jwt, Some(client_id), now).await?;
            self.note_exchange(&outcome, "authenticated", ip);
            return match outcome {
                Ok(f) => Ok(Ok(Authenticated {
                    not_after: Some(f.token.exp),
                    client: Arc::new(f.client),
                })),
                Err(r) => Err(refused(r.description)),
            };
        }
        let audiences = self.assertion_audiences();
        let expected = Expected {
            client_id,
            audiences: &audiences,
            now,
            max_lifetime: self.config.assertion_max_lifetime,
        };
        let unverified = UnverifiedAssertion::parse(jwt).map_err(refused)?;
        let verified = unverified.check(&expected).map_err(refused)?;
        Ok(Err((unverified, verified)))
    }

    /// The rest of `private_key_jwt` for a client registered for it: the
    /// signature by one of its keys (a key rotated at the client refetches
    /// its `jwks_uri` once, rate-limited), then RFC 7523 §3 item 7, one use
    /// per `jti` across restarts and instances.
    pub(super) async fn verify_assertion(
        &self,
        client: &Client,
        source: &DomainKeySource,
        unverified: &UnverifiedAssertion<'_>,
        verified: &Verified,
        now: i64,
    ) -> Result<(), Refused> {
        let quietly = |e: &dyn std::fmt::Display| Refused::Quietly(e.to_string());
        let keys = self
            .client_keys(&client.id, source, false, now)
            .await
            .map_err(|e| quietly(&e))?;
        match unverified.verify_signature(&keys) {
            Err(AssertionError::UnknownKey) if matches!(source, DomainKeySource::Uri(_)) => {
                let keys = self
                    .client_keys(&client.id, source, true, now)
                    .await
                    .map_err(|e| quietly(&e))?;
                unverified.verify_signature(&keys)
            }
            other => other,
        }
        .map_err(|e| quietly(&e))?;
        let first_use = self
            .store
            .use_once(
                OneTime::Assertion {
                    client_id: &client.id,
                },
                &verified.jti,
                assertion::remember_until(verified.exp),
                now,
            )
            .await
            .map_err(|e| Refused::Error(e.into()))?;
        if !first_use {
            return Err(Refused::Named(refused(
                "the client assertion's jti was used before",
            )));
        }
        Ok(())
    }
}
