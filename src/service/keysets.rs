//! Key sets by owner (a client id, a federation issuer): inline ones parsed
//! once per registered set, fetched ones cached with their fetch times, and
//! one fetch in flight per owner. The fetching itself is the
//! [`super::authenticator::Authenticator`]'s. Also the Client ID Metadata
//! Documents fetched for URL clients, by URL, until they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::JwkSet;

/// A fetched key set is used this long before it is fetched again.
pub(super) const JWKS_TTL: i64 = 300;

/// An unknown `kid` refetches a client's `jwks_uri` at most this often.
pub(super) const REFETCH_INTERVAL: i64 = 60;

/// Clients whose fetched keys are remembered.
const CACHE_CAPACITY: usize = 10_000;

/// One client's fetched key set.
#[derive(Clone)]
pub(super) struct Fetched {
    pub(super) uri: String,
    pub(super) keys: Option<Arc<JwkSet>>,
    pub(super) fetched_at: i64,
    pub(super) tried_at: i64,
    /// When an unknown `kid` last made it fetch again.
    pub(super) refetched_at: i64,
    /// For an inline set: the registered JSON it was parsed from.
    pub(super) inline: Option<serde_json::Value>,
}

/// Key sets, inline and fetched, by owner (client id or issuer).
#[derive(Default)]
pub(super) struct RemoteKeys {
    by_client: Mutex<HashMap<String, Fetched>>,
    /// One fetch in progress per owner: others wait for it and use its
    /// result (issue 23, N3).
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl RemoteKeys {
    /// The owner's fetch lock, made on first use.
    pub(super) fn flight(&self, owner: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = crate::sync::lock(&self.flights);
        if map.len() >= CACHE_CAPACITY && !map.contains_key(owner) {
            map.retain(|_, f| Arc::strong_count(f) > 1);
        }
        map.entry(owner.to_string()).or_default().clone()
    }

    /// Forgets the owner's fetch lock when nobody holds or waits for it.
    pub(super) fn land(&self, owner: &str) {
        let mut map = crate::sync::lock(&self.flights);
        if map.get(owner).is_some_and(|f| Arc::strong_count(f) == 1) {
            map.remove(owner);
        }
    }

    pub(super) fn get(&self, client_id: &str) -> Option<Fetched> {
        let map = crate::sync::lock(&self.by_client);
        map.get(client_id).cloned()
    }

    /// The parsed set of a client's inline `jwks`, if parsed from the same
    /// JSON (compared under the lock, nothing cloned but the `Arc`).
    pub(super) fn inline(&self, client_id: &str, jwks: &serde_json::Value) -> Option<Arc<JwkSet>> {
        let map = crate::sync::lock(&self.by_client);
        map.get(client_id)
            .filter(|f| f.inline.as_ref() == Some(jwks))
            .and_then(|f| f.keys.clone())
    }

    pub(super) fn put(&self, client_id: &str, f: Fetched) {
        let mut map = crate::sync::lock(&self.by_client);
        if map.len() >= CACHE_CAPACITY && !map.contains_key(client_id) {
            map.clear();
        }
        map.insert(client_id.to_string(), f);
    }
}

/// Where a key set comes from.
#[derive(Clone, Copy)]
pub(super) enum KeySource<'a> {
    /// Registered inline.
    Inline(&'a serde_json::Value),
    /// Published at a URI.
    Uri(&'a str),
    /// Published at the `jwks_uri` of the issuer's metadata.
    Discover(&'a str),
}

/// Most documents kept at once; past it, the expired go, or all.
const MAX_DOCUMENTS: usize = 10_000;

/// Client ID Metadata Documents fetched, by URL, with the time they expire
/// (`service::cimd` fills it).
#[derive(Debug, Default)]
pub(super) struct Documents {
    map: Mutex<HashMap<String, (crate::oauth::cimd::Document, i64)>>,
}

impl Documents {
    pub(super) fn get(&self, url: &str, now: i64) -> Option<crate::oauth::cimd::Document> {
        let map = crate::sync::lock(&self.map);
        map.get(url)
            .filter(|(_, until)| *until > now)
            .map(|(d, _)| d.clone())
    }

    pub(super) fn put(&self, url: &str, doc: crate::oauth::cimd::Document, until: i64, now: i64) {
        let mut map = crate::sync::lock(&self.map);
        if map.len() >= MAX_DOCUMENTS {
            map.retain(|_, (_, u)| *u > now);
            if map.len() >= MAX_DOCUMENTS {
                map.clear();
            }
        }
        map.insert(url.to_string(), (doc, until));
    }

    pub(super) fn forget(&self, url: &str) {
        crate::sync::lock(&self.map).remove(url);
    }
}
