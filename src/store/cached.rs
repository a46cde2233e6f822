//! A read-through cache in front of any [`Store`]: client records, secrets,
//! API keys and revocation answers are served from memory until something
//! changes. A hit answers without leaving the caller's thread; a miss awaits
//! the store. Every write through this process forgets what it changed (one
//! client, one key, one revocation) before it returns, and every read first
//! compares the store's change marker (one atomic load): when it moved, the
//! store's change log says what the writes behind it changed, and the cache
//! forgets exactly that, or everything when the log cannot tell (another
//! process wrote). A commit by any Tollgate process is therefore seen by the
//! very next read: there is no cache window. Changes made outside Tollgate
//! are caught by the store's external marker, polled every second. Entries
//! read while a write was committing are never kept (a generation check).

use crate::store::{
    ApiKeyStore, ClientStore, FederationStore, OneTime, OneTimeStore, RevocationStore,
    SigningKeyStore,
};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::changes::Change;
use super::{
    ApiKeyCreate, ApiKeyRecord, AuditEntry, Client, ClientSecretRecord, Federation,
    FederationIssuer, FederationRule, Result, SigningKeyRecord, Store,
};
use crate::limits::Decision;

use super::bounded::Cache;
pub use super::bounded::CAPACITY;
use super::weights::ClientEntry;

/// The cache's budget by default: `TOLLGATE_CACHE_MIB`'s default, 32 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

/// A caching decorator around a store.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    clients: Cache<String, ClientEntry>,
    keys_by_digest: Cache<Vec<u8>, Option<ApiKeyRecord>>,
    keys_by_id: Cache<String, Option<ApiKeyRecord>>,
    revoked: Cache<String, bool>,
    /// The change marker up to which changes were applied.
    marker: AtomicI64,
    external: AtomicI64,
    /// Moves whenever the signing keys may have changed.
    keys_generation: AtomicU64,
    /// Every trusted issuer and rule, with the generation it was read in.
    federation: Mutex<Option<(u64, Arc<Federation>)>>,
    /// Moves whenever the federation rules may have changed.
    federation_generation: AtomicU64,
    /// Whether the last write (or write probe) went through.
    writable: std::sync::atomic::AtomicBool,
    /// Told the reason of every write the database refused.
    on_write_failure: std::sync::OnceLock<WriteFailureHook>,
}

/// Called with the reason (`not_writable`, `unavailable`) of a refused write.
pub type WriteFailureHook = Box<dyn Fn(&'static str) + Send + Sync>;

impl CachedStore {
    /// Wraps `inner` with the default budget ([`DEFAULT_CACHE_BYTES`]).
    pub async fn new(inner: Arc<dyn Store>) -> CachedStore {
        Self::with_budget(inner, DEFAULT_CACHE_BYTES).await
    }

    /// Wraps `inner`, its maps holding at most `bytes` in all (by the
    /// entries' estimated weight: half for clients and their secrets, a
    /// fifth for revocation answers, the rest for API keys by digest and by
    /// id); reads the external marker once.
    pub async fn with_budget(inner: Arc<dyn Store>, bytes: usize) -> CachedStore {
        let marker = inner.change_marker();
        let external = inner.external_change_marker().await.unwrap_or(0);
        CachedStore {
            inner,
            clients: Cache::new(bytes / 2),
            keys_by_digest: Cache::new(bytes * 3 / 20),
            keys_by_id: Cache::new(bytes * 3 / 20),
            revoked: Cache::new(bytes / 5),
            marker: AtomicI64::new(marker),
            external: AtomicI64::new(external),
            keys_generation: AtomicU64::new(0),
            federation: Mutex::new(None),
            federation_generation: AtomicU64::new(0),
            writable: std::sync::atomic::AtomicBool::new(true),
            on_write_failure: std::sync::OnceLock::new(),
        }
    }

    /// The bytes its maps hold now, by the entries' estimated weight.
    pub fn cached_bytes(&self) -> usize {
        self.clients.bytes()
            + self.keys_by_digest.bytes()
            + self.keys_by_id.bytes()
            + self.revoked.bytes()
    }

    /// Forgets everything cached.
    pub fn invalidate(&self) {
        self.clients.clear();
        self.keys_by_digest.clear();
        self.keys_by_id.clear();
        self.revoked.clear();
        self.keys_generation.fetch_add(1, Ordering::SeqCst);
        self.federation_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Forgets what `change` made stale.
    fn apply(&self, change: &Change) {
        match change {
            Change::Client(id) => {
                self.clients.remove(id);
                // A deleted client takes its keys with it.
                let of_client =
                    |k: &Option<ApiKeyRecord>| k.as_ref().is_some_and(|k| k.client_id == *id);
                self.keys_by_digest.forget(|_, k| of_client(k));
                self.keys_by_id.forget(|_, k| of_client(k));
                // A deleted client takes its federation rules with it.
                self.federation_generation.fetch_add(1, Ordering::SeqCst);
            }
            Change::ApiKey { id, digest } => {
                self.keys_by_id.remove(id);
                match digest {
                    Some(d) => self.keys_by_digest.remove(d),
                    None => self
                        .keys_by_digest
                        .forget(|_, k| k.as_ref().is_some_and(|k| k.id == *id)),
                }
            }
            // A revocation is never undone (only pruned after expiry): known
            // revoked from now on, which also holds through an outage grace.
            Change::Revocation(jti) => self.revoked.set(jti.clone(), true),
            Change::SigningKeys => {
                self.keys_generation.fetch_add(1, Ordering::SeqCst);
            }
            Change::Federation => {
                self.federation_generation.fetch_add(1, Ordering::SeqCst);
            }
            Change::Everything => self.invalidate(),
        }
    }

    /// Applies the changes committed since the last look (by any process);
    /// one atomic load when there were none. Returns whether there were.
    pub fn refresh(&self) -> bool {
        let now = self.inner.change_marker();
        let seen = self.marker.load(Ordering::SeqCst);
        if now == seen {
            return false;
        }
        match self.inner.changes(seen, now) {
            Some(changes) => changes.iter().for_each(|c| self.apply(c)),
            None => self.invalidate(),
        }
        // Applying twice is harmless; never move back past a later reader.
        self.marker.fetch_max(now, Ordering::SeqCst);
        true
    }

    /// A value that moves whenever the signing keys may have changed (after
    /// [`CachedStore::refresh`]): the key ring reloads when it does.
    pub fn keys_generation(&self) -> u64 {
        self.refresh();
        self.keys_generation.load(Ordering::SeqCst)
    }

    /// Every trusted issuer and rule, from memory until a write (by any
    /// instance) changes them.
    pub async fn federation_cached(&self) -> Result<Arc<Federation>> {
        self.refresh();
        let generation = self.federation_generation.load(Ordering::SeqCst);
        if let Some((g, f)) = crate::sync::lock(&self.federation).as_ref() {
            if *g == generation {
                return Ok(f.clone());
            }
        }
        let f =
            Arc::new(crate::telemetry::child("store.federation", self.inner.federation()).await?);
        let mut slot = crate::sync::lock(&self.federation);
        // Read before a change was applied: kept only if none was.
        if self.federation_generation.load(Ordering::SeqCst) == generation {
            *slot = Some((generation, f.clone()));
        }
        Ok(f)
    }

    /// Clears the cache if something the change marker did not report (an
    /// `sqlite3` shell, a restore, a lost notification) changed the
    /// database; the server polls this every second.
    pub async fn poll_external_changes(&self) -> Result<bool> {
        let now = self.inner.external_change_marker().await?;
        if self.external.swap(now, Ordering::SeqCst) != now {
            self.invalidate();
            return Ok(true);
        }
        Ok(false)
    }

    /// Records a write's outcome and, when it went through, forgets what it
    /// changed at once (the change log reports it again later: harmless).
    fn after_write<T>(&self, change: Change, r: Result<T>) -> Result<T> {
        if r.is_ok() {
            self.apply(&change);
        }
        self.noted(r)
    }

    /// Records whether a write went through: a refusal for the database's
    /// state (full, read-only, unreachable) marks the store not writable
    /// until a write or a probe succeeds.
    fn noted<T>(&self, r: Result<T>) -> Result<T> {
        match &r {
            Ok(_) => self.writable.store(true, Ordering::SeqCst),
            Err(e) => {
                if let Some(reason) = e.write_failure_reason() {
                    self.writable.store(false, Ordering::SeqCst);
                    if let Some(hook) = self.on_write_failure.get() {
                        hook(reason);
                    }
                }
            }
        }
        r
    }

    /// Whether the last write went through (readiness reports it).
    pub fn writable(&self) -> bool {
        self.writable.load(Ordering::SeqCst)
    }

    /// Sets the function told of every refused write (once).
    pub fn on_write_failure(&self, hook: WriteFailureHook) {
        let _ = self.on_write_failure.set(hook);
    }

    /// [`Store::get_client`], answered from memory when cached, without boxing a
    /// future (the trait's method, on a `dyn Store`, boxes one per call).
    pub async fn get_client(&self, id: &str) -> Result<Option<Client>> {
        Ok(self.client(id).await?.as_deref().cloned())
    }
    /// The client `id` names, shared with the cache: what the request
    /// paths read (authentication, introspection), without copying the
    /// record's strings on every request.
    pub async fn client(&self, id: &str) -> Result<Option<Arc<Client>>> {
        Ok(self.client_entry(id, crate::domain::now()).await?.0.clone())
    }
    /// [`Store::live_secrets`], answered from memory when cached, without boxing a
    /// future (the trait's method, on a `dyn Store`, boxes one per call).
    pub async fn live_secrets(&self, client_id: &str, now: i64) -> Result<Vec<ClientSecretRecord>> {
        let entry = self.client_entry(client_id, now).await?;
        Ok(entry
            .1
            .iter()
            .filter(|s| s.expires_at.is_none_or(|e| e > now))
            .cloned()
            .collect())
    }
    /// [`Store::find_api_key`], answered from memory when cached, without boxing a
    /// future (the trait's method, on a `dyn Store`, boxes one per call).
    pub async fn find_api_key(&self, digest: &[u8]) -> Result<Option<ApiKeyRecord>> {
        self.refresh();
        let (hit, generation) = self.keys_by_digest.get(digest);
        if let Some(k) = hit {
            return Ok(k);
        }
        let k =
            crate::telemetry::child("store.find_api_key", self.inner.find_api_key(digest)).await?;
        self.keys_by_digest
            .put(generation, digest.to_vec(), k.clone());
        Ok(k)
    }
    /// [`Store::get_api_key`], answered from memory when cached, without boxing a
    /// future (the trait's method, on a `dyn Store`, boxes one per call).
    pub async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        if id.contains('\0') {
            // No backend holds such an id; PostgreSQL cannot even compare it.
            return Ok(None);
        }
        self.refresh();
        let (hit, generation) = self.keys_by_id.get(id);
        if let Some(k) = hit {
            return Ok(k);
        }
        let k = crate::telemetry::child("store.get_api_key", self.inner.get_api_key(id)).await?;
        self.keys_by_id.put(generation, id.to_string(), k.clone());
        Ok(k)
    }
    /// [`Store::is_token_revoked`], answered from memory when cached, without boxing a
    /// future (the trait's method, on a `dyn Store`, boxes one per call).
    pub async fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        self.refresh();
        let (hit, generation) = self.revoked.get(jti);
        if let Some(r) = hit {
            return Ok(r);
        }
        let r = match crate::telemetry::child(
            "store.is_token_revoked",
            self.inner.is_token_revoked(jti),
        )
        .await
        {
            Ok(r) => r,
            // The database is unreachable and the outage grace lasts: a
            // token this instance has not seen revoked is taken as not
            // revoked (every revocation it was told of is in `revoked`).
            // Not cached: the database answers again after the outage.
            Err(e)
                if e.write_failure_reason() == Some("unavailable")
                    && self.inner.outage_grace_left().is_some() =>
            {
                return Ok(false)
            }
            Err(e) => return Err(e),
        };
        self.revoked.put(generation, jti.to_string(), r);
        Ok(r)
    }

    /// The client and its secrets not yet expired at `now`, from memory
    /// when possible.
    async fn client_entry(&self, id: &str, now: i64) -> Result<ClientEntry> {
        if id.contains('\0') {
            // No backend holds such an id (PostgreSQL cannot even compare
            // it): an unknown client on every backend alike.
            return Ok(Arc::new((None, Vec::new())));
        }
        self.refresh();
        let (hit, generation) = self.clients.get(id);
        if let Some(e) = hit {
            return Ok(e);
        }
        let (client, secrets) =
            crate::telemetry::child("store.load_client", self.inner.load_client(id, now)).await?;
        let entry = Arc::new((client.map(Arc::new), secrets));
        self.clients.put(generation, id.to_string(), entry.clone());
        Ok(entry)
    }
}

#[async_trait::async_trait]
impl ClientStore for CachedStore {
    async fn create_client(
        &self,
        c: &Client,
        digest: Option<&[u8]>,
        audit: &AuditEntry,
    ) -> Result<()> {
        let r = self.inner.create_client(c, digest, audit).await;
        self.after_write(Change::Client(c.id.clone()), r)
    }
    async fn import_clients(
        &self,
        clients: &[(Client, Vec<u8>)],
        audit: &AuditEntry,
    ) -> Result<()> {
        let r = self.inner.import_clients(clients, audit).await;
        self.after_write(Change::Everything, r)
    }
    async fn get_client(&self, id: &str) -> Result<Option<Client>> {
        CachedStore::get_client(self, id).await
    }
    async fn list_clients(&self, after: Option<&str>, limit: u32) -> Result<Vec<Client>> {
        self.inner.list_clients(after, limit).await
    }
    async fn update_client(&self, c: &Client, audit: &AuditEntry) -> Result<bool> {
        let r = self.inner.update_client(c, audit).await;
        self.after_write(Change::Client(c.id.clone()), r)
    }
    async fn delete_client(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        let r = self.inner.delete_client(id, audit).await;
        self.after_write(Change::Client(id.to_string()), r)
    }
    async fn live_secrets(&self, client_id: &str, now: i64) -> Result<Vec<ClientSecretRecord>> {
        CachedStore::live_secrets(self, client_id, now).await
    }
    async fn rotate_secret(
        &self,
        client_id: &str,
        digest: &[u8],
        now: i64,
        old_expire_at: i64,
        max_live: usize,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let r = self
            .inner
            .rotate_secret(client_id, digest, now, old_expire_at, max_live, audit)
            .await;
        self.after_write(Change::Client(client_id.to_string()), r)
    }
}

#[async_trait::async_trait]
impl ApiKeyStore for CachedStore {
    async fn create_api_key(
        &self,
        key: &ApiKeyRecord,
        max_active: u32,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<ApiKeyCreate> {
        let r = self.inner.create_api_key(key, max_active, now, audit).await;
        let change = Change::ApiKey {
            id: key.id.clone(),
            digest: Some(key.digest.clone()),
        };
        self.after_write(change, r)
    }
    async fn find_api_key(&self, digest: &[u8]) -> Result<Option<ApiKeyRecord>> {
        CachedStore::find_api_key(self, digest).await
    }
    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        CachedStore::get_api_key(self, id).await
    }
    async fn list_api_keys(&self, client_id: &str) -> Result<Vec<ApiKeyRecord>> {
        self.inner.list_api_keys(client_id).await
    }
    async fn revoke_api_key(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<bool> {
        let r = self.inner.revoke_api_key(id, now, audit).await;
        let change = Change::ApiKey {
            id: id.to_string(),
            digest: None,
        };
        self.after_write(change, r)
    }
    async fn touch_api_keys(&self, uses: &[(String, i64)]) -> Result<()> {
        // The last use of a key is not cached state.
        let r = self.inner.touch_api_keys(uses).await;
        self.noted(r)
    }
}

#[async_trait::async_trait]
impl RevocationStore for CachedStore {
    async fn revoke_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        let r = crate::telemetry::child(
            "store.revoke_token",
            self.inner
                .revoke_token(jti, client_id, expires_at, now, audit),
        )
        .await;
        self.after_write(Change::Revocation(jti.to_string()), r)
    }
    async fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        CachedStore::is_token_revoked(self, jti).await
    }
    async fn prune_revocations(&self, now: i64) -> Result<usize> {
        // Only revocations of expired tokens go: no cached answer matters.
        let r = self.inner.prune_revocations(now).await;
        self.noted(r)
    }
}

#[async_trait::async_trait]
impl OneTimeStore for CachedStore {
    async fn use_once(
        &self,
        what: OneTime<'_>,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        let r = crate::telemetry::child(
            "store.use_once",
            self.inner.use_once(what, jti, expires_at, now),
        )
        .await;
        self.noted(r)
    }
}

#[async_trait::async_trait]
impl SigningKeyStore for CachedStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        self.inner.signing_keys().await
    }
    async fn insert_signing_key(
        &self,
        key: &SigningKeyRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<()> {
        let r = self.inner.insert_signing_key(key, audit).await;
        self.after_write(Change::SigningKeys, r)
    }
    async fn retire_signing_key(&self, kid: &str, at: i64, audit: &AuditEntry) -> Result<bool> {
        let r = self.inner.retire_signing_key(kid, at, audit).await;
        self.after_write(Change::SigningKeys, r)
    }
    async fn compromise_signing_key(&self, kid: &str, at: i64, audit: &AuditEntry) -> Result<bool> {
        let r = self.inner.compromise_signing_key(kid, at, audit).await;
        self.after_write(Change::SigningKeys, r)
    }
}

#[async_trait::async_trait]
impl FederationStore for CachedStore {
    async fn federation(&self) -> Result<Federation> {
        self.inner.federation().await
    }
    async fn add_federation_issuer(
        &self,
        i: &FederationIssuer,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let r = self.inner.add_federation_issuer(i, audit).await;
        self.after_write(Change::Federation, r)
    }
    async fn remove_federation_issuer(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        let r = self.inner.remove_federation_issuer(id, audit).await;
        self.after_write(Change::Federation, r)
    }
    async fn add_federation_rule(&self, r: &FederationRule, audit: &AuditEntry) -> Result<bool> {
        let r = self.inner.add_federation_rule(r, audit).await;
        self.after_write(Change::Federation, r)
    }
    async fn remove_federation_rule(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        let r = self.inner.remove_federation_rule(id, audit).await;
        self.after_write(Change::Federation, r)
    }
    async fn put_cimd_host(&self, h: &crate::domain::CimdHost, audit: &AuditEntry) -> Result<()> {
        let r = self.inner.put_cimd_host(h, audit).await;
        self.after_write(Change::Federation, r)
    }
    async fn remove_cimd_host(&self, host: &str, audit: &AuditEntry) -> Result<bool> {
        let r = self.inner.remove_cimd_host(host, audit).await;
        self.after_write(Change::Federation, r)
    }
    async fn set_cimd_block(
        &self,
        url: &str,
        blocked: bool,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let r = self.inner.set_cimd_block(url, blocked, now, audit).await;
        self.after_write(Change::Federation, r)
    }
}

/// What the cache adds to roles it does not cache: the writes it watches
/// for readiness (a refused write marks the store unwritable until a probe
/// goes through), and the backend itself for everything else (the change
/// feed, health, the audit log's reads, the console's queries, export and
/// import), with nothing passed through.
impl CachedStore {
    /// The store behind the cache.
    pub fn backend(&self) -> &dyn Store {
        &*self.inner
    }

    /// Appends an audit entry on its own ([`AuditStore::append_audit`]),
    /// noting a refused write.
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        let r = self.inner.append_audit(entry).await;
        self.noted(r)
    }

    /// One small write ([`HealthStore::probe_write`]), noting whether it
    /// went through.
    pub async fn probe_write(&self, now: i64) -> Result<()> {
        let r = self.inner.probe_write(now).await;
        self.noted(r)
    }

    /// The fleet-wide quota, when the backend keeps one: counted in the
    /// database every time (nothing to cache), traced, and a refused write
    /// noted for readiness.
    pub fn shared_quota(&self) -> Option<&dyn super::SharedQuota> {
        self.inner
            .shared_quota()
            .map(|_| self as &dyn super::SharedQuota)
    }
}

#[async_trait::async_trait]
impl super::SharedQuota for CachedStore {
    async fn hit(
        &self,
        client_id: &str,
        limit: u64,
        window: i64,
        ban: i64,
        now: i64,
    ) -> Result<Decision> {
        let Some(q) = self.inner.shared_quota() else {
            return Err(super::StoreError::Corrupt(
                "the backend keeps no shared quota".into(),
            ));
        };
        let r =
            crate::telemetry::child("store.hit_quota", q.hit(client_id, limit, window, ban, now))
                .await;
        self.noted(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use serde_json::json;

    fn client(id: &str, disabled: bool) -> Client {
        Client {
            disabled,
            ..Client::fixture(id)
        }
    }

    fn audit() -> AuditEntry {
        AuditEntry::new(0, "t", "x", None, json!({}))
    }

    async fn cached(path: &std::path::Path) -> CachedStore {
        CachedStore::new(Arc::new(SqliteStore::open(path).await.unwrap())).await
    }

    fn holds_client(a: &CachedStore, id: &str) -> bool {
        a.clients.get(id).0.is_some()
    }

    #[tokio::test]
    async fn a_commit_by_another_process_is_seen_by_the_next_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let a = cached(&path).await;
        let other = SqliteStore::open(&path).await.unwrap(); // another process, in effect
        other
            .create_client(&client("c", false), Some(&[0; 32]), &audit())
            .await
            .unwrap();
        assert!(!a.get_client("c").await.unwrap().unwrap().disabled);
        assert!(!a.is_token_revoked("j").await.unwrap());
        other
            .update_client(&client("c", true), &audit())
            .await
            .unwrap();
        other
            .revoke_token("j", "c", i64::MAX, 0, &audit())
            .await
            .unwrap();
        assert!(
            a.get_client("c").await.unwrap().unwrap().disabled,
            "no stale client"
        );
        assert!(
            a.is_token_revoked("j").await.unwrap(),
            "no stale revocation"
        );
    }

    #[tokio::test]
    async fn known_and_unknown_clients_cost_the_same_queries() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let count = |found: bool| {
            calls.store(0, Ordering::SeqCst);
            let calls = &calls;
            async move {
                super::super::load_entry(
                    async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Ok(found.then(|| client("c", false)))
                    },
                    async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Ok(Vec::new())
                    },
                )
                .await
                .unwrap();
                calls.load(Ordering::SeqCst)
            }
        };
        assert_eq!(count(true).await, 2);
        assert_eq!(count(false).await, 2);
    }

    #[tokio::test]
    async fn own_writes_forget_what_they_changed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let a = cached(&dir.path().join("t.db")).await;
        assert!(a.get_client("c").await.unwrap().is_none());
        a.create_client(&client("c", false), Some(&[0; 32]), &audit())
            .await
            .unwrap();
        a.create_client(&client("d", false), Some(&[0; 32]), &audit())
            .await
            .unwrap();
        assert!(a.get_client("c").await.unwrap().is_some());
        assert!(a.get_client("d").await.unwrap().is_some());
        assert!(!a.is_token_revoked("j").await.unwrap());
        let keys = a.keys_generation();

        a.revoke_token("j", "c", i64::MAX, 0, &audit())
            .await
            .unwrap();
        assert!(a.is_token_revoked("j").await.unwrap());
        assert!(
            holds_client(&a, "c") && holds_client(&a, "d"),
            "clients kept"
        );
        assert_eq!(a.keys_generation(), keys, "no key reload for a revocation");

        a.update_client(&client("c", true), &audit()).await.unwrap();
        assert!(!holds_client(&a, "c"), "the changed client is forgotten");
        assert!(holds_client(&a, "d"), "the other client is kept");
        assert!(a.get_client("c").await.unwrap().unwrap().disabled);

        let key = crate::domain::SigningKeyRecord::new("k", "ES256", 0, 0);
        a.insert_signing_key(&key, None).await.unwrap();
        assert_ne!(
            a.keys_generation(),
            keys,
            "a key change moves the generation"
        );
        assert!(holds_client(&a, "d"), "and keeps the clients");
    }

    #[tokio::test]
    async fn a_deleted_client_takes_its_cached_keys_along() {
        let dir = tempfile::tempdir().unwrap();
        let a = cached(&dir.path().join("t.db")).await;
        a.create_client(&client("c", false), Some(&[0; 32]), &audit())
            .await
            .unwrap();
        let key = ApiKeyRecord {
            id: "k1".into(),
            client_id: "c".into(),
            name: None,
            digest: vec![7; 32],
            prefix: "tg_live_".into(),
            last4: "abcd".into(),
            created_at: 0,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        a.create_api_key(&key, 5, 0, &audit()).await.unwrap();
        assert!(a.find_api_key(&[7; 32]).await.unwrap().is_some());
        assert!(a.get_api_key("k1").await.unwrap().is_some());
        a.delete_client("c", &audit()).await.unwrap();
        assert!(a.find_api_key(&[7; 32]).await.unwrap().is_none());
        assert!(a.get_api_key("k1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn another_process_writing_makes_the_cache_forget_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let a = cached(&path).await;
        a.create_client(&client("c", false), Some(&[0; 32]), &audit())
            .await
            .unwrap();
        a.get_client("c").await.unwrap();
        assert!(holds_client(&a, "c"));
        let other = SqliteStore::open(&path).await.unwrap();
        other
            .revoke_token("j", "c", i64::MAX, 0, &audit())
            .await
            .unwrap();
        assert!(a.refresh());
        assert!(!holds_client(&a, "c"), "its log cannot tell what changed");
    }

    #[tokio::test]
    async fn changes_made_outside_tollgate_are_caught_by_the_external_poll() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let a = cached(&path).await;
        a.create_client(&client("c", false), Some(&[0; 32]), &audit())
            .await
            .unwrap();
        assert!(!a.get_client("c").await.unwrap().unwrap().disabled);
        assert!(
            !a.poll_external_changes().await.unwrap(),
            "its own writes are not external"
        );
        // An sqlite3 shell, say: no change counter bump.
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute("UPDATE clients SET disabled = 1 WHERE id = 'c'", [])
            .unwrap();
        assert!(a.poll_external_changes().await.unwrap());
        assert!(a.get_client("c").await.unwrap().unwrap().disabled);
    }
}
