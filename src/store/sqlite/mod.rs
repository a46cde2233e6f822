//! The SQLite implementation of [`Store`]: WAL mode, `synchronous=FULL`, a small
//! connection pool, prepared statements cached per connection.

use crate::store::{
    ApiKeyStore, AuditStore, ChangeFeed, ClientStore, DumpStore, FederationStore, HealthStore,
    OneTime, OneTimeStore, RevocationStore, SigningKeyStore,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use super::changes::{Change, ChangeLog};
use super::codec::{
    self, CLIENT_COLUMNS, FEDERATION_ISSUER_COLUMNS, FEDERATION_RULE_COLUMNS, KEY_COLUMNS,
    SIGNING_KEY_COLUMNS,
};
use super::{
    ApiKeyCreate, ApiKeyRecord, AuditEntry, Client, ClientSecretRecord, Dump, Federation,
    FederationIssuer, FederationRule, Result, SigningKeyRecord, Store, StoreError,
};

/// The schema, applied at start-up.
const SCHEMA: &str = include_str!("../../../schema.sql");

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 12;

/// The steps from each older version, in order, as numbered SQL files like
/// PostgreSQL's (`schema-sqlite/NNNN_*.sql` leaves version NNNN): `(from,
/// sql)` brings a database at version `from` to `from + 1`. A new database
/// gets [`SCHEMA`] whole. Never edit a released step: add the next file.
const UPGRADES: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../schema-sqlite/0002_compromise_and_write_probe.sql"),
    ),
    (
        2,
        include_str!("../../../schema-sqlite/0003_private_key_jwt.sql"),
    ),
    (
        3,
        include_str!("../../../schema-sqlite/0004_federation.sql"),
    ),
    (4, include_str!("../../../schema-sqlite/0005_dpop.sql")),
    (5, include_str!("../../../schema-sqlite/0006_mtls.sql")),
    (6, include_str!("../../../schema-sqlite/0007_console.sql")),
    (
        7,
        include_str!("../../../schema-sqlite/0008_token_exchange.sql"),
    ),
    (8, include_str!("../../../schema-sqlite/0009_agents.sql")),
    (
        9,
        include_str!("../../../schema-sqlite/0010_client_claims.sql"),
    ),
    (
        10,
        include_str!("../../../schema-sqlite/0011_pkcs11_keys.sql"),
    ),
    (11, include_str!("../../../schema-sqlite/0012_ssf.sql")),
];

/// A SQLite database file: every call runs on the runtime's blocking pool
/// (SQLite's API blocks), reads on pooled connections, writes on one writer
/// connection.
pub struct SqliteStore {
    db: Arc<Db>,
}

/// The blocking side of [`SqliteStore`].
struct Db {
    /// Bumped after every commit, by every process.
    changes: ChangeCounter,
    /// What this process's writes changed, by counter value.
    log: ChangeLog,
    /// Readers.
    pool: Pool<SqliteConnectionManager>,
    /// The one connection this process writes with (SQLite takes one writer
    /// at a time anyway). Its `PRAGMA data_version` changes only when
    /// another connection, in another process, commits.
    writer: Mutex<Connection>,
    /// Client-assertion `jti`s waiting to be recorded together: a group
    /// commit (see [`super::batch`]), since each is a durable write before a
    /// token is issued and one `fsync` per request would bound
    /// `private_key_jwt` issuance by the disk.
    assertions: super::batch::Queue<AssertionUse, AssertionAnswer>,
}

/// One `jti` to record: (client, jti, expires_at, now).
type AssertionUse = (String, String, i64, i64);

/// Whether a `jti` was new, or why the commit failed.
type AssertionAnswer = std::result::Result<bool, String>;

fn init_connection(c: &mut Connection) -> rusqlite::Result<()> {
    c.busy_timeout(Duration::from_secs(5))?;
    // WAL lets readers run beside the one writer; FULL syncs the WAL on every
    // commit, so an acknowledged write survives a crash or power loss.
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Ends every live secret of a client at `?2` (its update time): a client
/// moved to a method without secrets keeps none (issue 23, N7).
const EXPIRE_SECRETS_SQLITE: &str = "UPDATE client_secrets SET expires_at = ?2 \
     WHERE client_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)";

impl Db {
    /// Opens (creating if needed) the database at `path` and applies the schema.
    fn open(path: &Path) -> Result<Db> {
        make_private(path).map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
        let manager = SqliteConnectionManager::file(path).with_init(init_connection);
        let pool = Pool::builder()
            // A connection to a local file does not go stale: no check (a
            // statement run) at every checkout.
            .test_on_check_out(false)
            .max_size(16)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        let mut writer = Connection::open(path)?;
        init_connection(&mut writer)?;
        let changes = ChangeCounter::open(path)
            .map_err(|e| StoreError::Corrupt(format!("change counter: {e}")))?;
        let store = Db {
            changes,
            log: ChangeLog::default(),
            pool,
            writer: Mutex::new(writer),
            assertions: super::batch::Queue::default(),
        };
        store.migrate()?;
        Ok(store)
    }

    fn conn(&self) -> Result<PooledConnection<SqliteConnectionManager>> {
        Ok(self.pool.get()?)
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn()?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Read again under the write lock: another process may have
            // upgraded the file meanwhile.
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version == 0 {
                tx.execute_batch(SCHEMA)?;
            } else {
                for (from, sql) in UPGRADES {
                    if *from >= version {
                        tx.execute_batch(sql)?;
                    }
                }
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Runs one statement in a write transaction and, when it changed exactly
    /// one row, writes `audit` in the same transaction; returns whether it did.
    fn write_one(
        &self,
        change: Change,
        sql: &str,
        params: impl rusqlite::Params,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.write(Some(change), |tx| {
            let n = tx.prepare_cached(sql)?.execute(params)?;
            if n == 1 {
                insert_audit(tx, audit)?;
            }
            Ok(n == 1)
        })
    }

    /// Runs `f` in an immediate (write-locking) transaction on the writer
    /// and commits it; then, for a write that changed cached state, bumps
    /// the change counter and logs `change` under its new value.
    fn write<T>(
        &self,
        change: Option<Change>,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = crate::sync::lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        if let Some(change) = change {
            self.log.record(|| self.changes.bump(), change);
        }
        Ok(out)
    }
}

/// Runs one blocking call on the runtime's blocking pool with its own
/// handle on the database; the arguments are moved in owned.
macro_rules! blocking {
    ($self:ident, |$db:ident| $body:expr) => {{
        let $db = $self.db.clone();
        tokio::task::spawn_blocking(move || $body)
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }};
}

// After `blocking!`, which it uses.
mod console;
mod files;
mod queries;
mod rows;
mod ssf;

use files::*;
use rows::*;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies the
    /// schema, on the blocking pool.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let path = path.to_path_buf();
        let db = tokio::task::spawn_blocking(move || Db::open(&path))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        Ok(SqliteStore { db: Arc::new(db) })
    }
}

#[async_trait::async_trait]
impl ClientStore for SqliteStore {
    async fn create_client(
        &self,
        c: &Client,
        digest: Option<&[u8]>,
        audit: &AuditEntry,
    ) -> Result<()> {
        let (c, digest, audit) = (c.clone(), digest.map(<[u8]>::to_vec), audit.clone());
        blocking!(self, |db| db.create_client(&c, digest.as_deref(), &audit))
    }
    async fn import_clients(
        &self,
        clients: &[(Client, Vec<u8>)],
        audit: &AuditEntry,
    ) -> Result<()> {
        let (clients, audit) = (clients.to_vec(), audit.clone());
        blocking!(self, |db| db.import_clients(&clients, &audit))
    }
    async fn get_client(&self, id: &str) -> Result<Option<Client>> {
        let id = id.to_string();
        blocking!(self, |db| db.get_client(&id))
    }
    /// The client and its live secrets in one statement, on one pooled
    /// connection, in one trip to the blocking pool (a cache miss on the
    /// token path).
    async fn load_client(
        &self,
        id: &str,
        now: i64,
    ) -> Result<(Option<Client>, Vec<ClientSecretRecord>)> {
        let id = id.to_string();
        blocking!(self, |db| {
            // The client, or a decoy read and decoded alike (with its
            // secrets), then dropped: the same work for an unknown id.
            let conn = db.conn()?;
            let mut stmt = conn.prepare_cached(codec::client_with_secrets_sql(
                codec::Placeholders::Question,
            ))?;
            let mut rows = stmt.query(params![id, now])?;
            let mut found = None;
            while let Some(row) = rows.next()? {
                codec::client_with_secrets(&mut found, row)?;
            }
            Ok(codec::asked_client(found, &id))
        })
    }
    async fn list_clients(&self, after: Option<&str>, limit: u32) -> Result<Vec<Client>> {
        let after = after.map(str::to_string);
        blocking!(self, |db| db.list_clients(after.as_deref(), limit))
    }
    async fn update_client(&self, c: &Client, audit: &AuditEntry) -> Result<bool> {
        let (c, audit) = (c.clone(), audit.clone());
        blocking!(self, |db| db.update_client(&c, &audit))
    }
    async fn delete_client(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        let (id, audit) = (id.to_string(), audit.clone());
        blocking!(self, |db| db.delete_client(&id, &audit))
    }
    async fn live_secrets(&self, client_id: &str, now: i64) -> Result<Vec<ClientSecretRecord>> {
        let client_id = client_id.to_string();
        blocking!(self, |db| db.live_secrets(&client_id, now))
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
        let (client_id, digest, audit) = (client_id.to_string(), digest.to_vec(), audit.clone());
        blocking!(self, |db| db.rotate_secret(
            &client_id,
            &digest,
            now,
            old_expire_at,
            max_live,
            &audit
        ))
    }
}

#[async_trait::async_trait]
impl ApiKeyStore for SqliteStore {
    async fn create_api_key(
        &self,
        key: &ApiKeyRecord,
        max_active: u32,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<ApiKeyCreate> {
        let (key, audit) = (key.clone(), audit.clone());
        blocking!(self, |db| db.create_api_key(&key, max_active, now, &audit))
    }
    async fn find_api_key(&self, digest: &[u8]) -> Result<Option<ApiKeyRecord>> {
        let digest = digest.to_vec();
        blocking!(self, |db| db.find_api_key(&digest))
    }
    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let id = id.to_string();
        blocking!(self, |db| db.get_api_key(&id))
    }
    async fn list_api_keys(&self, client_id: &str) -> Result<Vec<ApiKeyRecord>> {
        let client_id = client_id.to_string();
        blocking!(self, |db| db.list_api_keys(&client_id))
    }
    async fn revoke_api_key(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<bool> {
        let (id, audit) = (id.to_string(), audit.clone());
        blocking!(self, |db| db.revoke_api_key(&id, now, &audit))
    }
    async fn touch_api_keys(&self, uses: &[(String, i64)]) -> Result<()> {
        let uses = uses.to_vec();
        blocking!(self, |db| db.touch_api_keys(&uses))
    }
}

#[async_trait::async_trait]
impl RevocationStore for SqliteStore {
    async fn revoke_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        let (jti, client_id, audit) = (jti.to_string(), client_id.to_string(), audit.clone());
        blocking!(self, |db| db
            .revoke_token(&jti, &client_id, expires_at, now, &audit))
    }
    async fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        let jti = jti.to_string();
        blocking!(self, |db| db.is_token_revoked(&jti))
    }
    async fn prune_revocations(&self, now: i64) -> Result<usize> {
        blocking!(self, |db| db.prune_revocations(now))
    }
}

#[async_trait::async_trait]
impl OneTimeStore for SqliteStore {
    async fn use_once(
        &self,
        what: OneTime<'_>,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        let item = (what.owner(), jti.to_string(), expires_at, now);
        let (rx, start) = self.db.assertions.push(item);
        if start {
            let db = self.db.clone();
            tokio::task::spawn_blocking(move || db.commit_assertions());
        }
        rx.await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(StoreError::NotWritable)
    }
}

#[async_trait::async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        blocking!(self, |db| db.signing_keys())
    }
    async fn insert_signing_key(
        &self,
        key: &SigningKeyRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<()> {
        let (key, audit) = (key.clone(), audit.cloned());
        blocking!(self, |db| db.insert_signing_key(&key, audit.as_ref()))
    }
    async fn retire_signing_key(&self, kid: &str, at: i64, audit: &AuditEntry) -> Result<bool> {
        let (kid, audit) = (kid.to_string(), audit.clone());
        blocking!(self, |db| db.retire_signing_key(&kid, at, &audit))
    }
    async fn compromise_signing_key(&self, kid: &str, at: i64, audit: &AuditEntry) -> Result<bool> {
        let (kid, audit) = (kid.to_string(), audit.clone());
        blocking!(self, |db| db.compromise_signing_key(&kid, at, &audit))
    }
}

#[async_trait::async_trait]
impl FederationStore for SqliteStore {
    async fn federation(&self) -> Result<Federation> {
        blocking!(self, |db| db.federation())
    }
    async fn add_federation_issuer(
        &self,
        i: &FederationIssuer,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let (i, audit) = (i.clone(), audit.clone());
        blocking!(self, |db| db.add_federation_issuer(&i, &audit))
    }
    async fn remove_federation_issuer(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        let (id, audit) = (id.to_string(), audit.clone());
        blocking!(self, |db| db.write_one(
            Change::Federation,
            "DELETE FROM federation_issuers WHERE id = ?1",
            params![id],
            &audit
        ))
    }
    async fn add_federation_rule(&self, r: &FederationRule, audit: &AuditEntry) -> Result<bool> {
        let (r, audit) = (r.clone(), audit.clone());
        blocking!(self, |db| db.add_federation_rule(&r, &audit))
    }
    async fn remove_federation_rule(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        let (id, audit) = (id.to_string(), audit.clone());
        blocking!(self, |db| db.write_one(
            Change::Federation,
            "DELETE FROM federation_rules WHERE id = ?1",
            params![id],
            &audit
        ))
    }
    async fn put_cimd_host(&self, h: &crate::domain::CimdHost, audit: &AuditEntry) -> Result<()> {
        let sql = codec::put_cimd_host_sql(|i| format!("?{i}"));
        let (host, scopes, audiences, at) = (
            h.host.clone(),
            h.scopes.join(" "),
            serde_json::to_string(&h.audiences).unwrap_or_else(|_| "[]".into()),
            h.created_at,
        );
        let audit = audit.clone();
        blocking!(self, |db| db
            .write_one(
                Change::Federation,
                &sql,
                params![host, scopes, audiences, at],
                &audit
            )
            .map(|_| ()))
    }
    async fn remove_cimd_host(&self, host: &str, audit: &AuditEntry) -> Result<bool> {
        let (host, audit) = (host.to_string(), audit.clone());
        blocking!(self, |db| db.write_one(
            Change::Federation,
            "DELETE FROM cimd_hosts WHERE host = ?1",
            params![host],
            &audit
        ))
    }
    async fn set_cimd_block(
        &self,
        url: &str,
        blocked: bool,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let (url, audit) = (url.to_string(), audit.clone());
        blocking!(self, |db| if blocked {
            db.write_one(
                Change::Federation,
                "INSERT INTO cimd_blocks (url, created_at) VALUES (?1, ?2) \
                 ON CONFLICT (url) DO NOTHING",
                params![url, now],
                &audit,
            )
        } else {
            db.write_one(
                Change::Federation,
                "DELETE FROM cimd_blocks WHERE url = ?1",
                params![url],
                &audit,
            )
        })
    }
}

#[async_trait::async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        let entry = entry.clone();
        blocking!(self, |db| db.append_audit(&entry))
    }
    async fn list_audit(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        blocking!(self, |db| db.list_audit(after, limit))
    }
}

#[async_trait::async_trait]
impl HealthStore for SqliteStore {
    async fn ping(&self) -> Result<()> {
        blocking!(self, |db| db.ping())
    }
    async fn probe_write(&self, now: i64) -> Result<()> {
        blocking!(self, |db| db.probe_write(now))
    }
}

#[async_trait::async_trait]
impl ChangeFeed for SqliteStore {
    fn change_marker(&self) -> i64 {
        self.db.changes.get()
    }
    fn changes(&self, after: i64, upto: i64) -> Option<Vec<Change>> {
        self.db.log.between(after, upto)
    }
    async fn external_change_marker(&self) -> Result<i64> {
        blocking!(self, |db| db.external_change_marker())
    }
}

#[async_trait::async_trait]
impl DumpStore for SqliteStore {
    async fn export(&self) -> Result<Dump> {
        blocking!(self, |db| db.export())
    }
    async fn import(&self, dump: &Dump, audit: &AuditEntry) -> Result<bool> {
        let (dump, audit) = (dump.clone(), audit.clone());
        blocking!(self, |db| db.import(&dump, &audit))
    }
}

impl Store for SqliteStore {
    fn console(&self) -> &dyn super::ConsoleStore {
        self
    }
    fn signals(&self) -> &dyn super::SignalStore {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn audit() -> AuditEntry {
        AuditEntry::new(0, "test", "x", None, json!({}))
    }

    fn client(id: &str) -> Client {
        Client {
            scopes: vec!["a".into()],
            token_quota: Some(4),
            quota_ban: Some(60),
            ..Client::fixture(id)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_assertions_share_commits_and_each_jti_is_used_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let store = std::sync::Arc::new(store);
        let run = |jti: fn(usize) -> String| {
            let store = store.clone();
            async move {
                let calls: Vec<_> = (0..64)
                    .map(|i| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            store
                                .use_once(OneTime::Assertion { client_id: "c" }, &jti(i), 100, 10)
                                .await
                                .unwrap()
                        })
                    })
                    .collect();
                let mut answers = Vec::new();
                for c in calls {
                    answers.push(c.await.unwrap());
                }
                answers
            }
        };
        let distinct = run(|i| format!("j{i}")).await;
        assert!(
            distinct.iter().all(|ok| *ok),
            "64 distinct jtis are all new"
        );
        let same = run(|_| "same".to_string()).await;
        assert_eq!(same.iter().filter(|ok| **ok).count(), 1, "one jti, one use");
        assert!(
            !store
                .use_once(OneTime::Assertion { client_id: "c" }, "j7", 100, 20)
                .await
                .unwrap(),
            "a replay"
        );
        // The committer answers, then finds the queue empty and stops.
        let mut stopped = false;
        for _ in 0..200 {
            if !store.db.assertions.committing() {
                stopped = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(stopped, "the committer stops when the queue is empty");
    }

    #[test]
    fn schema_version_is_recorded_and_reopening_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let s = Db::open(&path).unwrap();
            s.create_client(&client("c1"), Some(&[1; 32]), &audit())
                .unwrap();
        }
        let s = Db::open(&path).unwrap();
        let v: i64 = s
            .conn()
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(s.get_client("c1").unwrap().unwrap(), client("c1"));
    }
}
