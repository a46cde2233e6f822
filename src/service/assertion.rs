//! `private_key_jwt` client authentication (RFC 7523 §2.2, §3): the client's
//! keys (inline, or fetched from its `jwks_uri` and cached), the assertion
//! checks of `oauth::assertion`, and the replay check against the store.

use crate::store::Store;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::JwkSet;

use super::error::{ErrorCode, ServiceError};
use super::{truncate, App};
use crate::oauth::assertion::{self, AssertionError, Expected};
use crate::oauth::ClientCredentials;
use crate::store::Client;

/// A fetched key set is used this long before it is fetched again.
pub const JWKS_TTL: i64 = 300;

/// An unknown `kid` refetches a client's `jwks_uri` at most this often.
pub const REFETCH_INTERVAL: i64 = 60;

/// Clients whose fetched keys are remembered.
const CACHE_CAPACITY: usize = 10_000;

/// One client's fetched key set.
#[derive(Clone)]
struct Fetched {
    uri: String,
    keys: Option<Arc<JwkSet>>,
    fetched_at: i64,
    tried_at: i64,
    /// When an unknown `kid` last made it fetch again.
    refetched_at: i64,
    /// For an inline set: the registered JSON it was parsed from.
    inline: Option<serde_json::Value>,
}

/// Key sets fetched from clients' `jwks_uri`s, by client id.
#[derive(Default)]
pub struct RemoteKeys {
    by_client: Mutex<HashMap<String, Fetched>>,
}

impl RemoteKeys {
    fn get(&self, client_id: &str) -> Option<Fetched> {
        let map = crate::sync::lock(&self.by_client);
        map.get(client_id).cloned()
    }

    /// The parsed set of a client's inline `jwks`, if parsed from the same
    /// JSON (compared under the lock, nothing cloned but the `Arc`).
    fn inline(&self, client_id: &str, jwks: &serde_json::Value) -> Option<Arc<JwkSet>> {
        let map = crate::sync::lock(&self.by_client);
        map.get(client_id)
            .filter(|f| f.inline.as_ref() == Some(jwks))
            .and_then(|f| f.keys.clone())
    }

    fn put(&self, client_id: &str, f: Fetched) {
        let mut map = crate::sync::lock(&self.by_client);
        if map.len() >= CACHE_CAPACITY && !map.contains_key(client_id) {
            map.clear();
        }
        map.insert(client_id.to_string(), f);
    }
}

fn refused(why: impl std::fmt::Display) -> ServiceError {
    ServiceError::new(ErrorCode::InvalidClient, why.to_string())
}

impl App {
    /// The `aud` values an assertion may carry: the issuer identifier and
    /// the token endpoint URL.
    fn assertion_audiences(&self) -> Vec<String> {
        let issuer = self.config.issuer.trim_end_matches('/');
        vec![self.config.issuer.clone(), format!("{issuer}/oauth/token")]
    }

    /// The client's key set: inline, or from its `jwks_uri` (cached for
    /// [`JWKS_TTL`]; `refresh` refetches unless the last try was less than
    /// [`REFETCH_INTERVAL`] ago). A fetch failure is an authentication
    /// failure, never a server error.
    async fn client_keys(
        &self,
        client: &Client,
        refresh: bool,
        now: i64,
    ) -> Result<Arc<JwkSet>, ServiceError> {
        if let Some(jwks) = &client.jwks {
            // Parsed once per registered set, not per request.
            if let Some(keys) = self.remote_keys.inline(&client.id, jwks) {
                return Ok(keys);
            }
            let keys = assertion::check_public_jwks(jwks)
                .map(Arc::new)
                .map_err(|e| refused(format!("the client's registered keys: {e}")))?;
            self.remote_keys.put(
                &client.id,
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
        let Some(uri) = &client.jwks_uri else {
            return Err(refused("the client has no registered keys"));
        };
        let cached = self.remote_keys.get(&client.id).filter(|f| &f.uri == uri);
        let mut refetched_at = cached.as_ref().map_or(0, |f| f.refetched_at);
        if let Some(f) = &cached {
            let fresh = now - f.fetched_at < JWKS_TTL;
            // A failed fetch is retried at most once a minute, and so is a
            // refetch for an unknown kid.
            let may_retry = now - f.tried_at >= REFETCH_INTERVAL;
            let may_refetch = now - f.refetched_at >= REFETCH_INTERVAL;
            match &f.keys {
                Some(keys) if fresh && !refresh => return Ok(keys.clone()),
                Some(keys) if refresh && !may_refetch => return Ok(keys.clone()),
                Some(keys) if !refresh && !may_retry => return Ok(keys.clone()),
                None if !may_retry => {
                    return Err(refused("the client's jwks_uri could not be fetched"))
                }
                _ => {}
            }
            if refresh {
                refetched_at = now;
            }
        }
        let fetched = self
            .fetcher
            .json(uri)
            .await
            .map_err(|e| e.to_string())
            .and_then(|v| assertion::check_public_jwks(&v).map_err(|e| e.to_string()));
        match fetched {
            Ok(set) => {
                let keys = Arc::new(set);
                self.remote_keys.put(
                    &client.id,
                    Fetched {
                        uri: uri.clone(),
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
                log::warn!(
                    "jwks_uri of client {} not usable: {e}",
                    truncate(&client.id)
                );
                let previous = cached.as_ref().and_then(|f| f.keys.clone());
                self.remote_keys.put(
                    &client.id,
                    Fetched {
                        uri: uri.clone(),
                        keys: previous.clone(),
                        fetched_at: cached.map_or(0, |f| f.fetched_at),
                        tried_at: now,
                        refetched_at,
                        inline: None,
                    },
                );
                // The set fetched before keeps answering while the URI fails.
                previous.ok_or_else(|| refused("the client's jwks_uri could not be fetched"))
            }
        }
    }

    /// Authenticates a client by a JWT assertion signed with one of its keys
    /// (`private_key_jwt`). Every failure is `401 invalid_client` naming the
    /// check, and counts against the failure throttles.
    pub(super) async fn authenticate_with_assertion(
        &self,
        creds: &ClientCredentials,
        ip: IpAddr,
        now: i64,
    ) -> Result<Client, ServiceError> {
        let fail = |e: ServiceError| {
            log::info!(
                "client assertion refused for client_id {:?} from {ip}: {}",
                truncate(&creds.client_id),
                e.description
            );
            self.record_failure("private_key_jwt", Some(&creds.client_id), ip, now);
            e
        };
        if creds.client_id.len() > 256 || creds.secret.expose().len() > assertion::MAX_ASSERTION_LEN
        {
            self.check_failures(None, ip, now)?;
            return Err(fail(refused("the client assertion is too long")));
        }
        self.check_failures(Some(&creds.client_id), ip, now)?;
        let client = match self.store.get_client(&creds.client_id).await? {
            Some(c) if !c.disabled => c,
            _ => return Err(fail(ServiceError::invalid_client())),
        };
        if client.token_endpoint_auth_method != crate::domain::ClientAuthMethod::PrivateKeyJwt {
            return Err(fail(refused(
                "the client is not registered for private_key_jwt",
            )));
        }
        let audiences = self.assertion_audiences();
        let expected = Expected {
            client_id: &client.id,
            audiences: &audiences,
            now,
            max_lifetime: self.config.assertion_max_lifetime,
        };
        let jwt = creds.secret.expose();
        let keys = self.client_keys(&client, false, now).await.map_err(fail)?;
        let verified = match assertion::verify(jwt, &keys, &expected) {
            // A key rotated at the client: refetch its set once (rate-limited).
            Err(AssertionError::UnknownKey) if client.jwks_uri.is_some() => {
                let keys = self.client_keys(&client, true, now).await.map_err(fail)?;
                assertion::verify(jwt, &keys, &expected)
            }
            other => other,
        }
        .map_err(|e| fail(refused(e)))?;
        // RFC 7523 §3 item 7: one use per jti, across restarts and instances.
        if !self
            .store
            .use_assertion(&client.id, &verified.jti, verified.exp, now)
            .await?
        {
            return Err(fail(refused("the client assertion's jti was used before")));
        }
        Ok(client)
    }
}
