//! API keys on the request path: finding the active key a caller presented
//! (for the exchange and for introspection), and noting its uses, written
//! in the background at most once a minute per key.

use crate::store::ApiKeyStore;
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::secret::{self, SecretString};
use crate::store::{ApiKeyRecord, CachedStore, Client};

/// API-key lookups and the uses not yet written.
#[derive(Clone)]
pub struct ApiKeys {
    /// Validated configuration (the keys' prefix).
    pub(super) config: Arc<Config>,
    /// The store, behind its cache.
    pub(super) store: Arc<CachedStore>,
    /// API-key uses not yet written: key id to time of use.
    pub(super) key_uses: Arc<std::sync::Mutex<HashMap<String, i64>>>,
}

impl ApiKeys {
    /// Finds the active API key for a presented key, or `None`.
    pub async fn find_active_api_key(
        &self,
        key: &SecretString,
        now: i64,
    ) -> Result<Option<(ApiKeyRecord, Client)>, crate::store::StoreError> {
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
    /// Notes a use of an API key. Uses are written in the background by
    /// [`ApiKeys::flush_key_uses`], at most once a minute per key, so that the
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

    /// Writes the pending API-key uses in one transaction.
    pub async fn flush_key_uses(&self) -> Result<usize, crate::store::StoreError> {
        let uses: Vec<(String, i64)> = {
            let mut pending = crate::sync::lock(&self.key_uses);
            pending.drain().collect()
        };
        if !uses.is_empty() {
            self.store.touch_api_keys(&uses).await?;
        }
        Ok(uses.len())
    }
}
