//! The SQLite implementation of [`Store`]: WAL mode, `synchronous=FULL`, a small
//! connection pool, prepared statements cached per connection.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

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
pub const SCHEMA_VERSION: i64 = 7;

/// The steps from each older version, in order: `(from, sql)` brings a
/// database at version `from` to `from + 1`. A new database gets [`SCHEMA`]
/// whole. Never edit a released step: add the next one.
const UPGRADES: &[(i64, &str)] = &[
    (
        1,
        // Version 2: signing keys can be marked compromised; a row that
        // readiness checks write to.
        "ALTER TABLE signing_keys ADD COLUMN compromised_at INTEGER;
         CREATE TABLE IF NOT EXISTS write_probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);",
    ),
    (
        2,
        // Version 3: client authentication methods and keys (private_key_jwt),
        // and the used client assertions.
        "ALTER TABLE clients ADD COLUMN token_endpoint_auth_method TEXT NOT NULL
             DEFAULT 'client_secret_basic';
         ALTER TABLE clients ADD COLUMN jwks TEXT;
         ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
         CREATE TABLE IF NOT EXISTS assertion_jtis (
             client_id  TEXT NOT NULL,
             jti        TEXT NOT NULL,
             expires_at INTEGER NOT NULL,
             PRIMARY KEY (client_id, jti)
         );",
    ),
    (
        3,
        // Version 4: trusted issuers and the rules that map their tokens to
        // clients (workload identity federation).
        "CREATE TABLE IF NOT EXISTS federation_issuers (
             id         TEXT PRIMARY KEY,
             issuer     TEXT NOT NULL UNIQUE,
             jwks_uri   TEXT,
             jwks       TEXT,
             created_at INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS federation_rules (
             id         TEXT PRIMARY KEY,
             issuer     TEXT NOT NULL REFERENCES federation_issuers(issuer) ON DELETE CASCADE,
             audience   TEXT NOT NULL,
             subject    TEXT,
             claims     TEXT NOT NULL DEFAULT '{}',
             client_id  TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
             scopes     TEXT,
             single_use INTEGER NOT NULL DEFAULT 0,
             created_at INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS federation_rules_by_client ON federation_rules(client_id);",
    ),
    (
        4,
        // Version 5: clients whose tokens must be DPoP-bound (RFC 9449 §5.2).
        "ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        5,
        // Version 6: mutual-TLS client authentication and certificate-bound
        // tokens (RFC 8705 §2.1.2, §3.4).
        "ALTER TABLE clients ADD COLUMN tls_client_auth_subject_dn TEXT;
         ALTER TABLE clients ADD COLUMN tls_client_auth_san_dns TEXT;
         ALTER TABLE clients ADD COLUMN tls_client_auth_san_uri TEXT;
         ALTER TABLE clients ADD COLUMN tls_client_auth_san_ip TEXT;
         ALTER TABLE clients ADD COLUMN tls_client_auth_san_email TEXT;
         ALTER TABLE clients ADD COLUMN tls_client_certificate_bound_access_tokens INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        6,
        // Version 7: the web console's login links and sessions, and
        // indexes for its audit-log filters.
        "CREATE TABLE IF NOT EXISTS console_sessions (
             id              TEXT PRIMARY KEY,
             created_by      TEXT NOT NULL,
             created_at      INTEGER NOT NULL,
             link_digest     BLOB UNIQUE,
             link_expires_at INTEGER NOT NULL,
             session_digest  BLOB UNIQUE,
             opened_at       INTEGER,
             last_seen_at    INTEGER,
             revoked_at      INTEGER
         );
         CREATE INDEX IF NOT EXISTS clients_by_id_name ON clients(id, name);
         CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log(actor, id);
         CREATE INDEX IF NOT EXISTS audit_log_by_action ON audit_log(action, id);
         CREATE INDEX IF NOT EXISTS audit_log_by_target ON audit_log(target, id);",
    ),
];

/// A counter shared by every process that uses the database, in a small
/// memory-mapped file beside it (`<db>-changes`). Every committed write bumps
/// it; readers compare it with one atomic load: no system call and no SQLite
/// call, so a cache can be checked for freshness on an async worker.
struct ChangeCounter {
    map: memmap2::MmapRaw,
}

impl ChangeCounter {
    fn open(db: &Path) -> std::io::Result<ChangeCounter> {
        let path = PathBuf::from(format!("{}-changes", db.display()));
        let file = private_file(&path)?;
        if file.metadata()?.len() < 8 {
            file.set_len(8)?;
        }
        let map = memmap2::MmapRaw::map_raw(&file)?;
        // Checked after mapping: another process may have truncated the file
        // between `set_len` and the mapping.
        if map.len() < 8 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the change counter file is shorter than 8 bytes",
            ));
        }
        Ok(ChangeCounter { map })
    }

    /// The one `unsafe` in Tollgate (the crate denies it elsewhere).
    #[allow(unsafe_code)]
    fn counter(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned and at least 8 bytes long
        // (checked in `open`), lives as long as `self`, and is only ever
        // accessed as one AtomicU64, which has the size and alignment of u64.
        // Atomic operations on a shared mapping are coherent across
        // processes on the platforms Tollgate runs on.
        unsafe { &*(self.map.as_ptr() as *const AtomicU64) }
    }

    /// Moves the counter on; its new value.
    fn bump(&self) -> i64 {
        self.counter().fetch_add(1, Ordering::SeqCst) as i64 + 1
    }

    fn get(&self) -> i64 {
        self.counter().load(Ordering::SeqCst) as i64
    }
}

/// Opens (creating if needed) a file readable and writable by its owner
/// only (0600), whatever the umask, and tightens an existing one: the
/// database holds digests and the audit log, which are nobody else's.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if file.metadata()?.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(file)
}

/// Makes the database file and its companions private before SQLite opens
/// them. SQLite creates `-wal` and `-shm` with the mode of the database
/// file, so a private database keeps them private; ones left by an older
/// release are tightened here.
fn make_private(db: &Path) -> std::io::Result<()> {
    private_file(db)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let companion = PathBuf::from(format!("{}{suffix}", db.display()));
        if companion.exists() {
            private_file(&companion)?;
        }
    }
    Ok(())
}

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

fn insert_audit(c: &Connection, e: &AuditEntry) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        e.at,
        e.actor,
        e.action,
        e.target,
        e.detail.to_string()
    ])?;
    Ok(())
}

/// Typed column access for the shared codec.
impl codec::Columns for Row<'_> {
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.get(i)?)
    }
    fn text_opt(&self, i: usize) -> Result<Option<String>> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.get(i)?)
    }
    fn int_opt(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool> {
        Ok(self.get(i)?)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        Ok(self.get(i)?)
    }
    fn json(&self, i: usize) -> Result<serde_json::Value> {
        let text: String = self.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }
}

/// A codec result as rusqlite's row-mapper type.
fn mapped<T>(r: Result<T>) -> rusqlite::Result<T> {
    r.map_err(|e| match e {
        StoreError::Sqlite(e) => e,
        other => rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Null,
            Box::new(other),
        ),
    })
}

fn client_from_row(r: &Row<'_>) -> rusqlite::Result<Client> {
    mapped(codec::client(r))
}

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    mapped(codec::api_key(r))
}

fn signing_key_from_row(r: &Row<'_>) -> rusqlite::Result<SigningKeyRecord> {
    mapped(codec::signing_key(r))
}

fn audit_from_row(r: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    mapped(codec::audit(r))
}

/// Inserts a client row and, when given, its first secret.
/// Placeholders for the values of [`CLIENT_COLUMNS`], `?1` being the id.
const CLIENT_VALUES: &str =
    "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, \
     ?21, ?22, ?23";

/// The values of [`CLIENT_COLUMNS`], in order: one list for insert and update.
fn client_values(c: &Client) -> Vec<Box<dyn rusqlite::ToSql>> {
    vec![
        Box::new(c.id.clone()),
        Box::new(c.name.clone()),
        Box::new(c.owner.clone()),
        Box::new(codec::scopes_text(c)),
        Box::new(codec::audiences_json(c)),
        Box::new(c.token_ttl),
        Box::new(c.disabled),
        Box::new(c.tokens_revoked_before),
        Box::new(c.created_at),
        Box::new(c.updated_at),
        Box::new(codec::quota_value(c)),
        Box::new(c.quota_window),
        Box::new(c.quota_ban),
        Box::new(c.token_endpoint_auth_method.as_str()),
        Box::new(codec::jwks_text(c)),
        Box::new(c.jwks_uri.clone()),
        Box::new(c.dpop_bound_access_tokens),
        Box::new(c.tls_client_auth_subject_dn.clone()),
        Box::new(c.tls_client_auth_san_dns.clone()),
        Box::new(c.tls_client_auth_san_uri.clone()),
        Box::new(c.tls_client_auth_san_ip.clone()),
        Box::new(c.tls_client_auth_san_email.clone()),
        Box::new(c.tls_client_certificate_bound_access_tokens),
    ]
}

fn insert_client(tx: &Connection, c: &Client, secret_digest: Option<&[u8]>) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO clients ({CLIENT_COLUMNS}) VALUES ({CLIENT_VALUES})"
    ))?
    .execute(rusqlite::params_from_iter(client_values(c)))?;
    if let Some(digest) = secret_digest {
        tx.prepare_cached(
            "INSERT INTO client_secrets (client_id, digest, created_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![c.id, digest, c.created_at])?;
    }
    Ok(())
}

impl Db {
    fn create_client(
        &self,
        c: &Client,
        secret_digest: Option<&[u8]>,
        audit: &AuditEntry,
    ) -> Result<()> {
        self.write(Some(Change::Client(c.id.clone())), |tx| {
            insert_client(tx, c, secret_digest)?;
            insert_audit(tx, audit)
        })
    }

    fn import_clients(&self, clients: &[(Client, Vec<u8>)], audit: &AuditEntry) -> Result<()> {
        self.write(Some(Change::Everything), |tx| {
            for (c, digest) in clients {
                insert_client(tx, c, Some(digest))?;
            }
            insert_audit(tx, audit)
        })
    }

    fn get_client(&self, id: &str) -> Result<Option<Client>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id = ?1"
        ))?;
        Ok(stmt.query_row([id], client_from_row).optional()?)
    }

    fn list_clients(&self, after: Option<&str>, limit: u32) -> Result<Vec<Client>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id > ?1 ORDER BY id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![after.unwrap_or(""), limit], client_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn update_client(&self, c: &Client, audit: &AuditEntry) -> Result<bool> {
        // Every column from the same list as the insert (the id and the
        // creation time are written back unchanged).
        self.write(Some(Change::Client(c.id.clone())), |tx| {
            let n = tx
                .prepare_cached(&format!(
                    "UPDATE clients SET ({CLIENT_COLUMNS}) = ({CLIENT_VALUES}) WHERE id = ?1"
                ))?
                .execute(rusqlite::params_from_iter(client_values(c)))?;
            if n != 1 {
                return Ok(false);
            }
            if !c.token_endpoint_auth_method.uses_secret() {
                // A keyless method has no live secret: moving back needs
                // rotate-secret, never the old secret revived.
                tx.prepare_cached(EXPIRE_SECRETS_SQLITE)?
                    .execute(params![c.id, c.updated_at])?;
            }
            insert_audit(tx, audit)?;
            Ok(true)
        })
    }

    fn delete_client(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        self.write_one(
            Change::Client(id.to_string()),
            "DELETE FROM clients WHERE id = ?1",
            [id],
            audit,
        )
    }

    fn live_secrets(&self, client_id: &str, now: i64) -> Result<Vec<ClientSecretRecord>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, digest, created_at, expires_at FROM client_secrets \
             WHERE client_id = ?1 AND (expires_at IS NULL OR expires_at > ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![client_id, now], |r| mapped(codec::client_secret(r)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
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
        self.write(Some(Change::Client(client_id.to_string())), |tx| {
            let exists: Option<i64> = tx
                .prepare_cached("SELECT 1 FROM clients WHERE id = ?1")?
                .query_row([client_id], |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                return Ok(false);
            }
            tx.prepare_cached(
                "UPDATE client_secrets SET expires_at = ?2 WHERE client_id = ?1 \
                 AND (expires_at IS NULL OR expires_at > ?2)",
            )?
            .execute(params![client_id, old_expire_at])?;
            tx.prepare_cached(
                "INSERT INTO client_secrets (client_id, digest, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![client_id, digest, now])?;
            // Keep at most `max_live` secrets live: the oldest ones end now.
            tx.prepare_cached(
                "UPDATE client_secrets SET expires_at = ?2 WHERE id IN ( \
                   SELECT id FROM client_secrets WHERE client_id = ?1 \
                   AND (expires_at IS NULL OR expires_at > ?2) ORDER BY id DESC LIMIT -1 OFFSET ?3)",
            )?
            .execute(params![client_id, now, max_live as i64])?;
            // Forget secrets that ended more than a day ago.
            tx.prepare_cached(
                "DELETE FROM client_secrets WHERE client_id = ?1 AND expires_at < ?2",
            )?
            .execute(params![client_id, now - 86_400])?;
            insert_audit(tx, audit)?;
            Ok(true)
        })
    }

    fn create_api_key(
        &self,
        k: &ApiKeyRecord,
        max_active: u32,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<ApiKeyCreate> {
        let change = Change::ApiKey {
            id: k.id.clone(),
            digest: Some(k.digest.clone()),
        };
        self.write(Some(change), |tx| {
            let exists: Option<i64> = tx
                .prepare_cached("SELECT 1 FROM clients WHERE id = ?1")?
                .query_row([&k.client_id], |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                return Ok(ApiKeyCreate::NoSuchClient);
            }
            let active: u32 = tx
                .prepare_cached(
                    "SELECT count(*) FROM api_keys WHERE client_id = ?1 AND revoked_at IS NULL \
                     AND (expires_at IS NULL OR expires_at > ?2)",
                )?
                .query_row(params![k.client_id, now], |r| r.get(0))?;
            if active >= max_active {
                return Ok(ApiKeyCreate::LimitReached(max_active));
            }
            insert_api_key(tx, k)?;
            insert_audit(tx, audit)?;
            Ok(ApiKeyCreate::Created)
        })
    }

    fn find_api_key(&self, digest: &[u8]) -> Result<Option<ApiKeyRecord>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE digest = ?1"
        ))?;
        Ok(stmt.query_row([digest], key_from_row).optional()?)
    }

    fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"))?;
        Ok(stmt.query_row([id], key_from_row).optional()?)
    }

    fn list_api_keys(&self, client_id: &str) -> Result<Vec<ApiKeyRecord>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE client_id = ?1 ORDER BY created_at DESC, id"
        ))?;
        let rows = stmt.query_map([client_id], key_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn revoke_api_key(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<bool> {
        self.write_one(
            Change::ApiKey {
                id: id.to_string(),
                digest: None,
            },
            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now],
            audit,
        )
    }

    fn touch_api_keys(&self, uses: &[(String, i64)]) -> Result<()> {
        // The last use of a key is not cached state: no change to report.
        self.write(None, |tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1 \
                 AND (last_used_at IS NULL OR last_used_at < ?2)",
            )?;
            for (id, at) in uses {
                stmt.execute(params![id, at])?;
            }
            Ok(())
        })
    }

    fn revoke_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        self.write_one(
            Change::Revocation(jti.to_string()),
            "INSERT OR IGNORE INTO revoked_tokens (jti, client_id, expires_at, revoked_at) \
                     VALUES (?1, ?2, ?3, ?4)",
            params![jti, client_id, expires_at, now],
            audit,
        )
        .map(|_| ())
    }

    fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        let conn = self.conn()?;
        let found: Option<i64> = conn
            .prepare_cached("SELECT 1 FROM revoked_tokens WHERE jti = ?1")?
            .query_row([jti], |r| r.get(0))
            .optional()?;
        Ok(found.is_some())
    }

    fn prune_revocations(&self, now: i64) -> Result<usize> {
        // Only revocations of expired tokens go: no cached answer changes.
        self.write(None, |tx| {
            tx.prepare_cached("DELETE FROM assertion_jtis WHERE expires_at < ?1")?
                .execute([now])?;
            Ok(tx
                .prepare_cached("DELETE FROM revoked_tokens WHERE expires_at < ?1")?
                .execute([now])?)
        })
    }

    /// Commits every queued `jti`, batch after batch, until none is left;
    /// runs on the blocking pool.
    fn commit_assertions(&self) {
        let _guard = self.assertions.guard();
        while let Some((items, senders)) = self.assertions.take() {
            for (answer, tx) in self.record_assertions(&items).into_iter().zip(senders) {
                let _ = tx.send(answer);
            }
        }
    }

    /// One transaction for every queued `jti`: each answer in order, or the
    /// failure for all of them (a refused commit records none).
    fn record_assertions(&self, queued: &[AssertionUse]) -> Vec<AssertionAnswer> {
        // Not cached state: no change to report.
        let written = self.write(None, |tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE assertion_jtis.expires_at < ?4",
            )?;
            queued
                .iter()
                .map(|(client, jti, exp, now)| {
                    Ok(stmt.execute(params![client, jti, exp, now])? == 1)
                })
                .collect::<Result<Vec<bool>>>()
        });
        match written {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => {
                let text = e.to_string();
                queued.iter().map(|_| Err(text.clone())).collect()
            }
        }
    }

    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys ORDER BY activates_at, created_at"
        ))?;
        let rows = stmt.query_map([], signing_key_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn insert_signing_key(&self, k: &SigningKeyRecord, audit: Option<&AuditEntry>) -> Result<()> {
        self.write(Some(Change::SigningKeys), |tx| {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO signing_keys \
                 (kid, alg, created_at, activates_at, retired_at, compromised_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                k.kid,
                k.alg,
                k.created_at,
                k.activates_at,
                k.retired_at,
                k.compromised_at
            ])?;
            if let Some(a) = audit {
                insert_audit(tx, a)?;
            }
            Ok(())
        })
    }

    fn retire_signing_key(&self, kid: &str, at: i64, audit: &AuditEntry) -> Result<bool> {
        self.write_one(
            Change::SigningKeys,
            "UPDATE signing_keys SET retired_at = ?2 WHERE kid = ?1 AND retired_at IS NULL",
            params![kid, at],
            audit,
        )
    }

    fn compromise_signing_key(&self, kid: &str, at: i64, audit: &AuditEntry) -> Result<bool> {
        self.write_one(
            Change::SigningKeys,
            "UPDATE signing_keys SET compromised_at = ?2, \
             retired_at = min(coalesce(retired_at, ?2), ?2) \
             WHERE kid = ?1 AND compromised_at IS NULL",
            params![kid, at],
            audit,
        )
    }

    fn probe_write(&self, now: i64) -> Result<()> {
        // A probe is no change for the caches.
        self.write(None, |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO write_probe (id, at) VALUES (1, ?1)",
                params![now],
            )?;
            Ok(())
        })
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        self.write(None, |tx| insert_audit(tx, entry))
    }

    fn list_audit(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, actor, action, target, detail FROM audit_log WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit], audit_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn ping(&self) -> Result<()> {
        let conn = self.conn()?;
        conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }

    /// `PRAGMA data_version` on the writer: it moves only when another
    /// connection commits, which is another process (the command line,
    /// another server on the file, an `sqlite3` shell).
    fn external_change_marker(&self) -> Result<i64> {
        Ok(crate::sync::lock(&self.writer).query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    fn export(&self) -> Result<Dump> {
        let mut conn = self.conn()?;
        // One read transaction: a consistent snapshot even while servers write.
        let tx = conn.transaction()?;
        let dump = Dump {
            clients: all(
                &tx,
                &format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id"),
                client_from_row,
            )?,
            secrets: all(
                &tx,
                "SELECT client_id, digest, created_at, expires_at FROM client_secrets ORDER BY id",
                |r| mapped(codec::secret_row(r)),
            )?,
            api_keys: all(
                &tx,
                &format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id"),
                key_from_row,
            )?,
            revocations: all(
                &tx,
                "SELECT jti, client_id, expires_at, revoked_at FROM revoked_tokens ORDER BY jti",
                |r| mapped(codec::revocation(r)),
            )?,
            signing_keys: all(
                &tx,
                &format!("SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys ORDER BY kid"),
                signing_key_from_row,
            )?,
            audit: all(
                &tx,
                "SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id",
                audit_from_row,
            )?,
            federation: read_federation(&tx)?,
        };
        tx.finish()?;
        Ok(dump)
    }

    fn import(&self, dump: &Dump, audit: &AuditEntry) -> Result<bool> {
        self.write(Some(Change::Everything), |tx| {
            let used: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM clients) OR EXISTS (SELECT 1 FROM api_keys) \
                 OR EXISTS (SELECT 1 FROM revoked_tokens)",
                [],
                |r| r.get(0),
            )?;
            if used {
                return Ok(false);
            }
            for c in &dump.clients {
                insert_client(tx, c, None)?;
            }
            let mut secret = tx.prepare_cached(
                "INSERT INTO client_secrets (client_id, digest, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for s in &dump.secrets {
                secret.execute(params![s.client_id, s.digest, s.created_at, s.expires_at])?;
            }
            for k in &dump.api_keys {
                insert_api_key(tx, k)?;
            }
            let mut revoked = tx.prepare_cached(
                "INSERT OR IGNORE INTO revoked_tokens (jti, client_id, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for r in &dump.revocations {
                revoked.execute(params![r.jti, r.client_id, r.expires_at, r.revoked_at])?;
            }
            let mut key = tx.prepare_cached(
                "INSERT OR IGNORE INTO signing_keys \
                 (kid, alg, created_at, activates_at, retired_at, compromised_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for k in &dump.signing_keys {
                key.execute(params![k.kid, k.alg, k.created_at, k.activates_at, k.retired_at, k.compromised_at])?;
            }
            // The old log keeps its numbers; entries already here follow it.
            let offset = dump.audit.iter().map(|e| e.id).max().unwrap_or(0);
            tx.execute("UPDATE audit_log SET id = -id", [])?;
            tx.execute("UPDATE audit_log SET id = ?1 - id WHERE id < 0", [offset])?;
            let mut entry = tx.prepare_cached(
                "INSERT INTO audit_log (id, at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for e in &dump.audit {
                entry.execute(params![
                    e.id,
                    e.at,
                    e.actor,
                    e.action,
                    e.target,
                    e.detail.to_string()
                ])?;
            }
            for i in &dump.federation.issuers {
                insert_federation_issuer(tx, i)?;
            }
            for r in &dump.federation.rules {
                insert_federation_rule(tx, r)?;
            }
            insert_audit(tx, audit)?;
            Ok(true)
        })
    }

    fn federation(&self) -> Result<Federation> {
        let conn = self.conn()?;
        read_federation(&conn)
    }

    fn add_federation_issuer(&self, i: &FederationIssuer, audit: &AuditEntry) -> Result<bool> {
        self.write(Some(Change::Federation), |tx| {
            let n = insert_federation_issuer(tx, i)?;
            if n == 1 {
                insert_audit(tx, audit)?;
            }
            Ok(n == 1)
        })
    }

    fn add_federation_rule(&self, r: &FederationRule, audit: &AuditEntry) -> Result<bool> {
        self.write(Some(Change::Federation), |tx| {
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM clients WHERE id = ?1) \
                 AND EXISTS (SELECT 1 FROM federation_issuers WHERE issuer = ?2)",
                params![r.client_id, r.issuer],
                |row| row.get(0),
            )?;
            if !exists {
                return Ok(false);
            }
            insert_federation_rule(tx, r)?;
            insert_audit(tx, audit)?;
            Ok(true)
        })
    }
}

fn read_federation(c: &Connection) -> Result<Federation> {
    Ok(Federation {
        issuers: all(
            c,
            &format!("SELECT {FEDERATION_ISSUER_COLUMNS} FROM federation_issuers ORDER BY issuer"),
            |r| mapped(codec::federation_issuer(r)),
        )?,
        rules: all(
            c,
            &format!(
                "SELECT {FEDERATION_RULE_COLUMNS} FROM federation_rules ORDER BY created_at, id"
            ),
            |r| mapped(codec::federation_rule(r)),
        )?,
    })
}

/// Inserts a trusted issuer unless its issuer identifier is taken; the rows
/// written.
fn insert_federation_issuer(tx: &Connection, i: &FederationIssuer) -> Result<usize> {
    Ok(tx
        .prepare_cached(&format!(
            "INSERT OR IGNORE INTO federation_issuers ({FEDERATION_ISSUER_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5)"
        ))?
        .execute(params![
            i.id,
            i.issuer,
            i.jwks_uri,
            codec::issuer_jwks_text(i),
            i.created_at
        ])?)
}

fn insert_federation_rule(tx: &Connection, r: &FederationRule) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO federation_rules ({FEDERATION_RULE_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?
    .execute(params![
        r.id,
        r.issuer,
        r.audience,
        r.subject,
        codec::rule_claims_text(r),
        r.client_id,
        codec::rule_scopes_text(r),
        r.single_use,
        r.created_at
    ])?;
    Ok(())
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
impl Store for SqliteStore {
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
    /// Both queries in one trip to the blocking pool (a cache miss on the
    /// token path costs one hop, not two).
    async fn load_client(
        &self,
        id: &str,
        now: i64,
    ) -> Result<(Option<Client>, Vec<ClientSecretRecord>)> {
        let id = id.to_string();
        blocking!(self, |db| {
            // The client, or a decoy read and decoded alike (with its
            // secrets), then dropped: the same work for an unknown id.
            let row = {
                let conn = db.conn()?;
                let mut stmt = conn.prepare_cached(&codec::client_or_decoy_sql("?1"))?;
                stmt.query_row([&id], client_from_row).optional()?
            };
            let owner = row.as_ref().map_or(id.as_str(), |c| c.id.as_str());
            let secrets = db.live_secrets(owner, now)?;
            Ok(match row {
                Some(c) if c.id == id => (Some(c), secrets),
                _ => (None, Vec::new()),
            })
        })
    }
    fn console(&self) -> &dyn super::ConsoleStore {
        self
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
    async fn use_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        let item = (client_id.to_string(), jti.to_string(), expires_at, now);
        let (rx, start) = self.db.assertions.push(item);
        if start {
            let db = self.db.clone();
            tokio::task::spawn_blocking(move || db.commit_assertions());
        }
        rx.await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(StoreError::NotWritable)
    }
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
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        let entry = entry.clone();
        blocking!(self, |db| db.append_audit(&entry))
    }
    async fn list_audit(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        blocking!(self, |db| db.list_audit(after, limit))
    }
    async fn ping(&self) -> Result<()> {
        blocking!(self, |db| db.ping())
    }
    async fn probe_write(&self, now: i64) -> Result<()> {
        blocking!(self, |db| db.probe_write(now))
    }
    fn change_marker(&self) -> i64 {
        self.db.changes.get()
    }
    fn changes(&self, after: i64, upto: i64) -> Option<Vec<Change>> {
        self.db.log.between(after, upto)
    }
    async fn external_change_marker(&self) -> Result<i64> {
        blocking!(self, |db| db.external_change_marker())
    }
    async fn export(&self) -> Result<Dump> {
        blocking!(self, |db| db.export())
    }
    async fn import(&self, dump: &Dump, audit: &AuditEntry) -> Result<bool> {
        let (dump, audit) = (dump.clone(), audit.clone());
        blocking!(self, |db| db.import(&dump, &audit))
    }
}

fn insert_api_key(tx: &Connection, k: &ApiKeyRecord) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?
    .execute(params![
        k.id,
        k.client_id,
        k.name,
        k.digest,
        k.prefix,
        k.last4,
        k.created_at,
        k.expires_at,
        k.last_used_at,
        k.revoked_at
    ])?;
    Ok(())
}

fn all<T>(
    conn: &Connection,
    sql: &str,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], f)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
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
                            store.use_assertion("c", &jti(i), 100, 10).await.unwrap()
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
            !store.use_assertion("c", "j7", 100, 20).await.unwrap(),
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
