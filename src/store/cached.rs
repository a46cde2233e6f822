//! A read-through cache in front of any [`Store`]: client records, secrets,
//! API keys and revocation answers are served from memory until something
//! changes. Every write through this process clears the cache before it
//! returns, and every request first reads the store's change marker (a
//! counter in shared memory that every Tollgate process bumps after each
//! commit: one atomic load), so a commit by any Tollgate process (the command
//! line, another instance on the same file) is seen by the very next read:
//! there is no cache window. Changes made outside Tollgate are caught by
//! `PRAGMA data_version`, polled every second. A request may open a [`FreshScope`] to
//! make that check once for all of its reads. Entries read while a write was committing
//! are never kept (a generation check).

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use super::{
    ApiKeyCreate, ApiKeyRecord, AuditEntry, Client, ClientSecretRecord, Dump, Result,
    SigningKeyRecord, Store, StoreError,
};
use crate::limits::Decision;

thread_local! {
    /// Set while a [`FreshScope`] is open on this thread.
    static FRESH: Cell<bool> = const { Cell::new(false) };
    /// Set while a [`CacheOnly`] scope is open on this thread.
    static CACHE_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// While open, reads that miss the cache, and every write, fail with
/// [`StoreError::WouldBlock`] instead of touching the database, so that an
/// async worker can try to answer a request from memory and hand it to the
/// blocking pool only when it must.
pub struct CacheOnly {
    outer: bool,
}

impl Drop for CacheOnly {
    fn drop(&mut self) {
        if !self.outer {
            CACHE_ONLY.with(|f| f.set(false));
        }
    }
}

/// One freshness check for a whole request: while it is open on a thread,
/// cached reads on that thread skip the change-marker check, as if every
/// read happened at the moment the scope opened. Writes still clear the
/// cache at once.
pub struct FreshScope {
    outer: bool,
}

impl Drop for FreshScope {
    fn drop(&mut self) {
        if !self.outer {
            FRESH.with(|f| f.set(false));
        }
    }
}

/// Entries per map before it is cleared (bounds memory whatever callers send).
pub const CAPACITY: usize = 100_000;

struct Map<K, V> {
    generation: u64,
    entries: HashMap<K, V>,
}

/// One bounded map with a generation counter.
struct Cache<K, V> {
    inner: Mutex<Map<K, V>>,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    fn new() -> Self {
        Cache {
            inner: Mutex::new(Map {
                generation: 0,
                entries: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map<K, V>> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The cached value and the generation it belongs to.
    fn get(&self, k: &K) -> (Option<V>, u64) {
        let g = self.lock();
        (g.entries.get(k).cloned(), g.generation)
    }

    /// Keeps `v` unless the cache was cleared since `generation` was read.
    fn put(&self, generation: u64, k: K, v: V) {
        let mut g = self.lock();
        if g.generation != generation {
            return;
        }
        if g.entries.len() >= CAPACITY {
            g.entries.clear();
        }
        g.entries.insert(k, v);
    }

    fn clear(&self) {
        let mut g = self.lock();
        g.generation += 1;
        g.entries.clear();
    }
}

type ClientEntry = Arc<(Option<Client>, Vec<ClientSecretRecord>)>;

/// A caching decorator around a store.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    clients: Cache<String, ClientEntry>,
    keys_by_digest: Cache<Vec<u8>, Option<ApiKeyRecord>>,
    keys_by_id: Cache<String, Option<ApiKeyRecord>>,
    revoked: Cache<String, bool>,
    marker: AtomicI64,
    external: AtomicI64,
    /// Whether the last write (or write probe) went through.
    writable: std::sync::atomic::AtomicBool,
    /// Told the reason of every write the database refused.
    on_write_failure: std::sync::OnceLock<WriteFailureHook>,
}

/// Called with the reason (`not_writable`, `unavailable`) of a refused write.
pub type WriteFailureHook = Box<dyn Fn(&'static str) + Send + Sync>;

impl CachedStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> CachedStore {
        let marker = inner.change_marker().unwrap_or(0);
        let external = inner.external_change_marker().unwrap_or(0);
        CachedStore {
            inner,
            clients: Cache::new(),
            keys_by_digest: Cache::new(),
            keys_by_id: Cache::new(),
            revoked: Cache::new(),
            marker: AtomicI64::new(marker),
            external: AtomicI64::new(external),
            writable: std::sync::atomic::AtomicBool::new(true),
            on_write_failure: std::sync::OnceLock::new(),
        }
    }

    /// Forgets everything cached.
    pub fn invalidate(&self) {
        self.clients.clear();
        self.keys_by_digest.clear();
        self.keys_by_id.clear();
        self.revoked.clear();
    }

    /// Clears the cache if the database changed since the last look;
    /// returns whether it did. When the marker cannot be read, it clears.
    pub fn refresh(&self) -> bool {
        match self.inner.change_marker() {
            Ok(now) if self.marker.swap(now, Ordering::SeqCst) == now => false,
            _ => {
                self.invalidate();
                true
            }
        }
    }

    /// Opens a [`CacheOnly`] scope on this thread.
    pub fn cache_only(&self) -> CacheOnly {
        let outer = CACHE_ONLY.with(Cell::get);
        CACHE_ONLY.with(|f| f.set(true));
        CacheOnly { outer }
    }

    /// The store behind the cache, unless a [`CacheOnly`] scope forbids it.
    fn db(&self) -> Result<&dyn Store> {
        if CACHE_ONLY.with(Cell::get) {
            return Err(StoreError::WouldBlock);
        }
        Ok(self.inner.as_ref())
    }

    /// Clears the cache if something outside Tollgate (an `sqlite3` shell, a
    /// restore) changed the database; the server polls this every second.
    /// Writes by Tollgate processes are seen at once through the change
    /// counter. Blocking.
    pub fn poll_external_changes(&self) -> Result<bool> {
        let now = self.inner.external_change_marker()?;
        if self.external.swap(now, Ordering::SeqCst) != now {
            self.invalidate();
            return Ok(true);
        }
        Ok(false)
    }

    /// Checks for changes once and opens a [`FreshScope`]; nested scopes are free.
    pub fn fresh_scope(&self) -> FreshScope {
        let outer = FRESH.with(Cell::get);
        if !outer {
            self.refresh();
            FRESH.with(|f| f.set(true));
        }
        FreshScope { outer }
    }

    /// Checks for changes unless a scope already did for this request.
    fn check(&self) {
        if !FRESH.with(Cell::get) {
            self.refresh();
        }
    }

    fn after_write<T>(&self, r: Result<T>) -> Result<T> {
        self.invalidate();
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

    /// The client and its secrets not yet expired at `now`, from memory
    /// when possible.
    fn client_entry(&self, id: &str, now: i64) -> Result<ClientEntry> {
        self.check();
        let (hit, generation) = self.clients.get(&id.to_string());
        if let Some(e) = hit {
            return Ok(e);
        }
        let db = self.db()?;
        let entry = Arc::new(load_entry(
            || db.get_client(id),
            || db.live_secrets(id, now),
        )?);
        self.clients.put(generation, id.to_string(), entry.clone());
        Ok(entry)
    }
}

/// Reads a client and its live secrets with the same two queries whether
/// the client exists or not, so that the first lookup of an unknown id costs
/// what the first lookup of a known one does (RFC 6749 §5.2 answers both
/// with `invalid_client`; their cost must not tell them apart either).
fn load_entry(
    client: impl FnOnce() -> Result<Option<Client>>,
    secrets: impl FnOnce() -> Result<Vec<ClientSecretRecord>>,
) -> Result<(Option<Client>, Vec<ClientSecretRecord>)> {
    let client = client()?;
    let mut secrets = secrets()?;
    if client.is_none() {
        secrets.clear();
    }
    Ok((client, secrets))
}

impl Store for CachedStore {
    fn create_client(
        &self,
        client: &Client,
        secret_digest: &[u8],
        audit: &AuditEntry,
    ) -> Result<()> {
        self.after_write(self.db()?.create_client(client, secret_digest, audit))
    }
    fn import_clients(&self, clients: &[(Client, Vec<u8>)], audit: &AuditEntry) -> Result<()> {
        self.after_write(self.db()?.import_clients(clients, audit))
    }
    fn get_client(&self, id: &str) -> Result<Option<Client>> {
        Ok(self.client_entry(id, crate::domain::now())?.0.clone())
    }
    fn list_clients(&self, after: Option<&str>, limit: u32) -> Result<Vec<Client>> {
        self.db()?.list_clients(after, limit)
    }
    fn update_client(&self, client: &Client, audit: &AuditEntry) -> Result<bool> {
        self.after_write(self.db()?.update_client(client, audit))
    }
    fn delete_client(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        self.after_write(self.db()?.delete_client(id, audit))
    }
    fn live_secrets(&self, client_id: &str, now: i64) -> Result<Vec<ClientSecretRecord>> {
        let entry = self.client_entry(client_id, now)?;
        Ok(entry
            .1
            .iter()
            .filter(|s| s.expires_at.is_none_or(|e| e > now))
            .cloned()
            .collect())
    }
    fn rotate_secret(
        &self,
        client_id: &str,
        digest: &[u8],
        now: i64,
        old_expire_at: i64,
        max_live: usize,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.after_write(self.db()?.rotate_secret(
            client_id,
            digest,
            now,
            old_expire_at,
            max_live,
            audit,
        ))
    }
    fn create_api_key(
        &self,
        key: &ApiKeyRecord,
        max_active: u32,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<ApiKeyCreate> {
        self.after_write(self.db()?.create_api_key(key, max_active, now, audit))
    }
    fn find_api_key(&self, digest: &[u8]) -> Result<Option<ApiKeyRecord>> {
        self.check();
        let (hit, generation) = self.keys_by_digest.get(&digest.to_vec());
        if let Some(k) = hit {
            return Ok(k);
        }
        let k = self.db()?.find_api_key(digest)?;
        self.keys_by_digest
            .put(generation, digest.to_vec(), k.clone());
        Ok(k)
    }
    fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        self.check();
        let (hit, generation) = self.keys_by_id.get(&id.to_string());
        if let Some(k) = hit {
            return Ok(k);
        }
        let k = self.db()?.get_api_key(id)?;
        self.keys_by_id.put(generation, id.to_string(), k.clone());
        Ok(k)
    }
    fn list_api_keys(&self, client_id: &str) -> Result<Vec<ApiKeyRecord>> {
        self.db()?.list_api_keys(client_id)
    }
    fn revoke_api_key(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<bool> {
        self.after_write(self.db()?.revoke_api_key(id, now, audit))
    }
    fn touch_api_keys(&self, uses: &[(String, i64)]) -> Result<()> {
        self.after_write(self.db()?.touch_api_keys(uses))
    }
    fn revoke_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        self.after_write(
            self.inner
                .revoke_token(jti, client_id, expires_at, now, audit),
        )
    }
    fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        self.check();
        let (hit, generation) = self.revoked.get(&jti.to_string());
        if let Some(r) = hit {
            return Ok(r);
        }
        let r = self.db()?.is_token_revoked(jti)?;
        self.revoked.put(generation, jti.to_string(), r);
        Ok(r)
    }
    fn prune_revocations(&self, now: i64) -> Result<usize> {
        self.after_write(self.db()?.prune_revocations(now))
    }
    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        self.db()?.signing_keys()
    }
    fn insert_signing_key(&self, key: &SigningKeyRecord, audit: Option<&AuditEntry>) -> Result<()> {
        self.noted(self.db()?.insert_signing_key(key, audit))
    }
    fn retire_signing_key(&self, kid: &str, at: i64, audit: &AuditEntry) -> Result<bool> {
        self.noted(self.db()?.retire_signing_key(kid, at, audit))
    }
    fn compromise_signing_key(&self, kid: &str, at: i64, audit: &AuditEntry) -> Result<bool> {
        self.noted(self.db()?.compromise_signing_key(kid, at, audit))
    }
    fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        self.noted(self.db()?.append_audit(entry))
    }
    fn probe_write(&self, now: i64) -> Result<()> {
        self.noted(self.db()?.probe_write(now))
    }
    fn list_audit(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        self.db()?.list_audit(after, limit)
    }
    fn ping(&self) -> Result<()> {
        self.db()?.ping()
    }
    fn change_marker(&self) -> Result<i64> {
        self.inner.change_marker()
    }
    fn external_change_marker(&self) -> Result<i64> {
        self.db()?.external_change_marker()
    }

    fn hit_quota(
        &self,
        client_id: &str,
        limit: u64,
        window: i64,
        ban: i64,
        now: i64,
    ) -> Result<Option<Decision>> {
        if !self.inner.shared_quotas() {
            return Ok(None);
        }
        self.db()?.hit_quota(client_id, limit, window, ban, now)
    }

    fn shared_quotas(&self) -> bool {
        self.inner.shared_quotas()
    }

    fn export(&self) -> Result<Dump> {
        self.db()?.export()
    }

    fn import(&self, dump: &Dump, audit: &AuditEntry) -> Result<bool> {
        self.after_write(self.db()?.import(dump, audit))
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

    #[test]
    fn a_commit_by_another_connection_is_seen_by_the_next_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let a = CachedStore::new(Arc::new(SqliteStore::open(&path).unwrap()));
        let other = SqliteStore::open(&path).unwrap(); // another process, in effect
        let audit = AuditEntry::new(0, "t", "x", None, json!({}));
        other
            .create_client(&client("c", false), &[0; 32], &audit)
            .unwrap();
        assert!(!a.get_client("c").unwrap().unwrap().disabled);
        assert!(!a.is_token_revoked("j").unwrap());
        other.update_client(&client("c", true), &audit).unwrap();
        other.revoke_token("j", "c", i64::MAX, 0, &audit).unwrap();
        assert!(
            a.get_client("c").unwrap().unwrap().disabled,
            "no stale client"
        );
        assert!(a.is_token_revoked("j").unwrap(), "no stale revocation");
    }

    #[test]
    fn known_and_unknown_clients_cost_the_same_queries() {
        let calls = std::cell::Cell::new(0);
        let count = |found: bool| {
            calls.set(0);
            load_entry(
                || {
                    calls.set(calls.get() + 1);
                    Ok(found.then(|| client("c", false)))
                },
                || {
                    calls.set(calls.get() + 1);
                    Ok(Vec::new())
                },
            )
            .unwrap();
            calls.get()
        };
        assert_eq!(count(true), 2);
        assert_eq!(count(false), 2);
    }

    #[test]
    fn own_writes_clear_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let a = CachedStore::new(Arc::new(
            SqliteStore::open(&dir.path().join("t.db")).unwrap(),
        ));
        let audit = AuditEntry::new(0, "t", "x", None, json!({}));
        assert!(a.get_client("c").unwrap().is_none());
        a.create_client(&client("c", false), &[0; 32], &audit)
            .unwrap();
        assert!(a.get_client("c").unwrap().is_some());
    }

    #[test]
    fn cache_only_mode_answers_hits_and_refuses_misses_and_writes() {
        let dir = tempfile::tempdir().unwrap();
        let a = CachedStore::new(Arc::new(
            SqliteStore::open(&dir.path().join("t.db")).unwrap(),
        ));
        let audit = AuditEntry::new(0, "t", "x", None, json!({}));
        a.create_client(&client("c", false), &[0; 32], &audit)
            .unwrap();
        assert!(a.get_client("c").unwrap().is_some());
        let _only = a.cache_only();
        assert!(a.get_client("c").unwrap().is_some(), "a hit is answered");
        assert!(
            matches!(a.get_client("d"), Err(StoreError::WouldBlock)),
            "a miss would block"
        );
        assert!(matches!(
            a.create_client(&client("e", false), &[0; 32], &audit),
            Err(StoreError::WouldBlock)
        ));
    }

    #[test]
    fn changes_made_outside_tollgate_are_caught_by_the_external_poll() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let a = CachedStore::new(Arc::new(SqliteStore::open(&path).unwrap()));
        let audit = AuditEntry::new(0, "t", "x", None, json!({}));
        a.create_client(&client("c", false), &[0; 32], &audit)
            .unwrap();
        assert!(!a.get_client("c").unwrap().unwrap().disabled);
        // An sqlite3 shell, say: no change counter bump.
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute("UPDATE clients SET disabled = 1 WHERE id = 'c'", [])
            .unwrap();
        assert!(a.poll_external_changes().unwrap());
        assert!(a.get_client("c").unwrap().unwrap().disabled);
    }
}
