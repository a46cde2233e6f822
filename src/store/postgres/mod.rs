//! The PostgreSQL implementation of [`Store`], the shared store of a fleet:
//! tokio-postgres behind a deadpool pool, versioned migrations applied at
//! start-up, a LISTEN connection that turns other instances' commits into a
//! change marker, and fleet-wide token quotas counted in the database.
//!
//! Every call is native async on the caller's runtime (actix's workers in
//! the server): connections are driven by the runtime that opened them, and
//! no call ever blocks a thread. Each write names what it changed in a
//! transaction-local setting, `tollgate.change`, which the change trigger
//! sends with its notification, so every instance's cache forgets just that.

mod api_keys;
mod console;
mod dump;
mod errors;
mod federation;
mod jtis;
mod listen;
mod migrate;
mod pgpass;
mod quota;
mod rows;
mod ssf;
mod target;
#[cfg(test)]
mod tls_tests;

use crate::store::{
    ApiKeyStore, AuditStore, ChangeFeed, ClientStore, DumpStore, FederationStore, HealthStore,
    OneTime, OneTimeStore, RevocationStore, SigningKeyStore,
};
use jtis::*;
#[cfg(test)]
pub(super) use migrate::MIGRATIONS;
pub use migrate::SCHEMA_VERSION;
use rows::*;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use super::changes::{Change, ChangeLog};
use super::codec::{self, CLIENT_COLUMNS, KEY_COLUMNS, SIGNING_KEY_COLUMNS};
use super::{
    ApiKeyCreate, ApiKeyRecord, AuditEntry, Client, ClientSecretRecord, Dump, Federation,
    FederationIssuer, FederationRule, Result, SigningKeyRecord, Store, StoreError,
};
use crate::limits::Decision;

/// How long a caller waits for a pooled connection, or for a new one, before
/// the store reports itself unavailable (a 503 to HTTP callers).
const WAIT: Duration = Duration::from_secs(2);

pub use target::{is_postgres_url, redact_url, target};

/// Runs SQL once on its own connection (schema set-up in tests and the
/// benchmark); the first column of the first row, if any.
pub async fn execute(url: &str, sql: &str) -> Result<Option<String>> {
    let t = target(url).map_err(StoreError::Postgres)?;
    let (client, conn) = t.config.connect(t.tls).await?;
    let task = tokio::spawn(conn);
    let messages = client.simple_query(sql).await;
    drop(client);
    let _ = task.await;
    Ok(messages?.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    }))
}

/// [`execute`] for code that is not async: on a runtime of its own, so it
/// must not be called from inside one.
pub fn execute_once(url: &str, sql: &str) -> Result<Option<String>> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Unavailable(format!("runtime: {e}")))?
        .block_on(execute(url, sql))
}

/// A PostgreSQL database shared by a fleet.
pub struct PostgresStore {
    pool: Pool,
    /// Bumped by every notification on `tollgate_changes` and on every
    /// (re)connection of the listener, when notifications may have been missed.
    changes: Arc<AtomicI64>,
    /// What each bump of `changes` reported.
    log: Arc<ChangeLog>,
    /// The highest `tollgate_changes.version` notified (or read at LISTEN).
    notified: Arc<AtomicI64>,
    /// The version the last background poll read, and how many polls found
    /// a version that was never notified (a lost notification).
    polled: AtomicI64,
    lost: AtomicI64,
    /// When the database was last found unreachable (ms since the epoch), 0
    /// when the last call succeeded or the listener reconnected.
    down_at: Arc<AtomicI64>,
    /// The outage grace (ms, `TOLLGATE_OUTAGE_GRACE`); 0: none.
    grace_ms: Arc<AtomicI64>,
    /// The last confirmed-fresh moment (ms): a call succeeded while the
    /// change listener was listening, so the cache had missed nothing.
    confirmed_ms: Arc<AtomicI64>,
    /// Whether the change listener is connected and listening.
    listening: Arc<std::sync::atomic::AtomicBool>,
    /// Client-assertion `jti`s waiting to be recorded by one statement (a
    /// group commit, see [`super::batch`]): one `INSERT … SELECT FROM
    /// unnest(…)` per batch, one round trip and one commit; each `jti` is
    /// still durable before its token is issued.
    jtis: Arc<super::batch::Queue<AssertionUse, Result<bool>>>,
}

/// After a call finds the database unreachable, other calls fail at once for
/// this long instead of each waiting out the connection timeouts; then one
/// call tries again.
const FAIL_FAST_MS: i64 = 1000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Names what the transaction `tx` changes: the change triggers send it
/// with their notification at commit. [`Change::Everything`] sends nothing,
/// which a bare notification already means.
async fn tag(tx: &deadpool_postgres::Transaction<'_>, change: &Change) -> Result<()> {
    if let Some(text) = change.to_text() {
        let stmt = tx
            .prepare_cached("SELECT set_config('tollgate.change', $1, true)")
            .await?;
        tx.execute(&stmt, &[&text]).await?;
    }
    Ok(())
}

impl PostgresStore {
    /// Connects to `url`, applies the pending migrations and starts listening
    /// for changes on the current runtime. `pool_size` bounds this process's
    /// connections.
    pub async fn open(url: &str, pool_size: usize) -> Result<PostgresStore> {
        let target = target(url).map_err(StoreError::Postgres)?;
        let mut pg = target.config;
        pg.connect_timeout(WAIT);
        if pg.get_application_name().is_none() {
            pg.application_name("tollgate");
        }
        let manager = Manager::from_config(
            pg.clone(),
            target.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .recycle_timeout(Some(WAIT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Postgres(e.to_string()))?;
        let store = PostgresStore {
            pool,
            changes: Arc::new(AtomicI64::new(0)),
            log: Arc::new(ChangeLog::default()),
            notified: Arc::new(AtomicI64::new(0)),
            polled: AtomicI64::new(0),
            lost: AtomicI64::new(0),
            down_at: Arc::new(AtomicI64::new(0)),
            grace_ms: Arc::new(AtomicI64::new(0)),
            confirmed_ms: Arc::new(AtomicI64::new(0)),
            listening: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            jtis: Arc::default(),
        };
        store.migrate().await?;
        store.spawn_listener(pg, target.tls);
        Ok(store)
    }

    /// Runs a store call, failing at once while the database is known to be
    /// unreachable (see [`FAIL_FAST_MS`]), and records whether it was.
    async fn call<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        let down = self.down_at.load(Ordering::SeqCst);
        if down != 0 && now_ms() - down < FAIL_FAST_MS {
            return Err(StoreError::Unavailable(
                "unreachable moments ago; not waiting again yet".into(),
            ));
        }
        let out = f.await;
        match &out {
            Err(StoreError::Unavailable(_)) => self.down_at.store(now_ms(), Ordering::SeqCst),
            Ok(_) if down != 0 => self.down_at.store(0, Ordering::SeqCst),
            _ => {}
        }
        if out.is_ok() && self.listening.load(Ordering::SeqCst) {
            self.confirmed_ms.store(now_ms(), Ordering::SeqCst);
        }
        out
    }

    async fn conn(&self) -> Result<Object> {
        Ok(self.pool.get().await?)
    }

    /// Runs one statement in a transaction and, when it changed exactly one
    /// row, writes `audit` in the same transaction; returns whether it did.
    async fn write_one(
        &self,
        change: Change,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        audit: &AuditEntry,
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        tag(&tx, &change).await?;
        let stmt = tx.prepare_cached(sql).await?;
        let n = tx.execute(&stmt, params).await?;
        if n == 1 {
            insert_audit(&tx, audit).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(sql).await?;
        Ok(conn.query(&stmt, params).await?)
    }

    async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(sql).await?;
        Ok(conn.query_opt(&stmt, params).await?)
    }
}

#[async_trait::async_trait]
impl ClientStore for PostgresStore {
    async fn create_client(
        &self,
        c: &Client,
        secret_digest: Option<&[u8]>,
        audit: &AuditEntry,
    ) -> Result<()> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            tag(&tx, &Change::Client(c.id.clone())).await?;
            insert_client(&tx, c, secret_digest).await?;
            insert_audit(&tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn import_clients(
        &self,
        clients: &[(Client, Vec<u8>)],
        audit: &AuditEntry,
    ) -> Result<()> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            copy_in(
                &tx,
                "clients",
                CLIENT_COLUMNS,
                CLIENT_TYPES,
                clients.iter().map(client_of),
            )
            .await?;
            copy_in(
                &tx,
                "client_secrets",
                SECRET_COLUMNS,
                SECRET_TYPES,
                clients.iter().map(first_secret_of),
            )
            .await?;
            insert_audit(&tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn get_client(&self, id: &str) -> Result<Option<Client>> {
        self.call(async {
            let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1");
            self.query_opt(&sql, &[&id])
                .await?
                .map(|r| client_from_row(&r))
                .transpose()
        })
        .await
    }

    /// The client and its live secrets in one statement: one checkout and
    /// one round trip on a cache miss.
    async fn load_client(
        &self,
        id: &str,
        now: i64,
    ) -> Result<(Option<Client>, Vec<ClientSecretRecord>)> {
        // The client, or a decoy read and decoded alike (with its secrets),
        // then dropped: the same work for an unknown id (issue 23, item 11).
        let rows = self
            .call(self.query(
                codec::client_with_secrets_sql(codec::Placeholders::Dollar),
                &[&id, &now],
            ))
            .await?;
        let mut found = None;
        for row in &rows {
            codec::client_with_secrets(&mut found, row)?;
        }
        Ok(codec::asked_client(found, id))
    }
    async fn list_clients(&self, after: Option<&str>, limit: u32) -> Result<Vec<Client>> {
        self.call(async {
            let sql = format!(
                "SELECT {CLIENT_COLUMNS} FROM clients WHERE id COLLATE \"C\" > $1 \
                 ORDER BY id COLLATE \"C\" LIMIT $2"
            );
            let after = after.unwrap_or("");
            let rows = self.query(&sql, &[&after, &i64::from(limit)]).await?;
            rows.iter().map(client_from_row).collect()
        })
        .await
    }

    async fn update_client(&self, c: &Client, audit: &AuditEntry) -> Result<bool> {
        // Every column from the same list as the insert and the bulk loads
        // (the id and the creation time are written back unchanged).
        let values = client_params(c);
        let refs: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let change = Change::Client(c.id.clone());
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            tag(&tx, &change).await?;
            let stmt = tx
                .prepare_cached(&format!(
                    "UPDATE clients SET ({CLIENT_COLUMNS}) = ({CLIENT_VALUES}) WHERE id = $1"
                ))
                .await?;
            if tx.execute(&stmt, &refs).await? != 1 {
                return Ok(false);
            }
            if !c.auth.uses_secret() {
                // A keyless method has no live secret: moving back needs
                // rotate-secret, never the old secret revived (issue 23, N7).
                tx.execute(
                    "UPDATE client_secrets SET expires_at = $2 WHERE client_id = $1 \
                     AND (expires_at IS NULL OR expires_at > $2)",
                    &[&c.id, &c.updated_at],
                )
                .await?;
            }
            insert_audit(&tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn delete_client(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        self.call(self.write_one(
            Change::Client(id.to_string()),
            "DELETE FROM clients WHERE id = $1",
            &[&id],
            audit,
        ))
        .await
    }

    async fn live_secrets(&self, client_id: &str, now: i64) -> Result<Vec<ClientSecretRecord>> {
        self.call(async {
            let rows = self
                .query(
                    "SELECT id, digest, created_at, expires_at FROM client_secrets \
                     WHERE client_id = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY id",
                    &[&client_id, &now],
                )
                .await?;
            rows.iter().map(codec::client_secret).collect()
        })
        .await
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
        self.rotate_secret_in_pg(client_id, digest, now, old_expire_at, max_live, audit)
            .await
    }
}

#[async_trait::async_trait]
impl ApiKeyStore for PostgresStore {
    async fn create_api_key(
        &self,
        k: &ApiKeyRecord,
        max_active: u32,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<ApiKeyCreate> {
        self.create_api_key_in_pg(k, max_active, now, audit).await
    }

    async fn find_api_key(&self, digest: &[u8]) -> Result<Option<ApiKeyRecord>> {
        self.call(async {
            let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE digest = $1");
            self.query_opt(&sql, &[&digest])
                .await?
                .map(|r| key_from_row(&r))
                .transpose()
        })
        .await
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        self.call(async {
            let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
            self.query_opt(&sql, &[&id])
                .await?
                .map(|r| key_from_row(&r))
                .transpose()
        })
        .await
    }

    async fn list_api_keys(&self, client_id: &str) -> Result<Vec<ApiKeyRecord>> {
        self.call(async {
            let sql = format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE client_id = $1 \
                 ORDER BY created_at DESC, id COLLATE \"C\""
            );
            let rows = self.query(&sql, &[&client_id]).await?;
            rows.iter().map(key_from_row).collect()
        })
        .await
    }

    async fn revoke_api_key(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<bool> {
        self.call(self.write_one(
            Change::ApiKey {
                id: id.to_string(),
                digest: None,
            },
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &now],
            audit,
        ))
        .await
    }

    async fn touch_api_keys(&self, uses: &[(String, i64)]) -> Result<()> {
        self.touch_api_keys_in_pg(uses).await
    }
}

#[async_trait::async_trait]
impl RevocationStore for PostgresStore {
    async fn revoke_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        self.call(self.write_one(
            Change::Revocation(jti.to_string()),
            "INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
            &[&jti, &client_id, &expires_at, &now],
            audit,
        ))
        .await
        .map(|_| ())
    }

    async fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        self.call(async {
            Ok(self
                .query_opt("SELECT 1 FROM revoked_tokens WHERE jti = $1", &[&jti])
                .await?
                .is_some())
        })
        .await
    }

    async fn prune_revocations(&self, now: i64) -> Result<usize> {
        self.call(async {
            let conn = self.conn().await?;
            let n = conn
                .execute("DELETE FROM revoked_tokens WHERE expires_at < $1", &[&now])
                .await?;
            conn.execute("DELETE FROM quota_usage WHERE expires_at < $1", &[&now])
                .await?;
            conn.execute("DELETE FROM assertion_jtis WHERE expires_at < $1", &[&now])
                .await?;
            Ok(n as usize)
        })
        .await
    }
}

#[async_trait::async_trait]
impl OneTimeStore for PostgresStore {
    async fn use_once(
        &self,
        what: OneTime<'_>,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        let item = (what.owner(), jti.to_string(), expires_at, now);
        let (rx, start) = self.jtis.push(item);
        if start {
            tokio::spawn(commit_jtis(self.pool.clone(), self.jtis.clone()));
        }
        self.call(async { rx.await.map_err(|e| StoreError::Task(e.to_string()))? })
            .await
    }
}

#[async_trait::async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        self.call(async {
            let rows = self
                .query(
                    &format!(
                        "SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys \
                         ORDER BY activates_at, created_at"
                    ),
                    &[],
                )
                .await?;
            rows.iter().map(signing_key_from_row).collect()
        })
        .await
    }

    async fn insert_signing_key(
        &self,
        k: &SigningKeyRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<()> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            tag(&tx, &Change::SigningKeys).await?;
            insert_signing_key(&tx, k).await?;
            if let Some(a) = audit {
                insert_audit(&tx, a).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn retire_signing_key(&self, kid: &str, at: i64, audit: &AuditEntry) -> Result<bool> {
        self.call(self.write_one(
            Change::SigningKeys,
            "UPDATE signing_keys SET retired_at = $2 WHERE kid = $1 AND retired_at IS NULL",
            &[&kid, &at],
            audit,
        ))
        .await
    }

    async fn compromise_signing_key(&self, kid: &str, at: i64, audit: &AuditEntry) -> Result<bool> {
        self.call(self.write_one(
            Change::SigningKeys,
            "UPDATE signing_keys SET compromised_at = $2, \
             retired_at = LEAST(COALESCE(retired_at, $2), $2) \
             WHERE kid = $1 AND compromised_at IS NULL",
            &[&kid, &at],
            audit,
        ))
        .await
    }
}

#[async_trait::async_trait]
impl FederationStore for PostgresStore {
    async fn federation(&self) -> Result<Federation> {
        self.federation_in_pg().await
    }

    async fn add_federation_issuer(
        &self,
        i: &FederationIssuer,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.add_federation_issuer_in_pg(i, audit).await
    }

    async fn remove_federation_issuer(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        self.remove_federation_issuer_in_pg(id, audit).await
    }

    async fn add_federation_rule(&self, r: &FederationRule, audit: &AuditEntry) -> Result<bool> {
        self.add_federation_rule_in_pg(r, audit).await
    }

    async fn remove_federation_rule(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        self.remove_federation_rule_in_pg(id, audit).await
    }
    async fn put_cimd_host(&self, h: &crate::domain::CimdHost, audit: &AuditEntry) -> Result<()> {
        let sql = codec::put_cimd_host_sql(|i| format!("${i}"));
        let (scopes, audiences) = (
            h.scopes.join(" "),
            serde_json::to_string(&h.audiences).unwrap_or_else(|_| "[]".into()),
        );
        self.call(self.write_one(
            Change::Federation,
            &sql,
            &[&h.host, &scopes, &audiences, &h.created_at],
            audit,
        ))
        .await
        .map(|_| ())
    }
    async fn remove_cimd_host(&self, host: &str, audit: &AuditEntry) -> Result<bool> {
        self.call(self.write_one(
            Change::Federation,
            "DELETE FROM cimd_hosts WHERE host = $1",
            &[&host],
            audit,
        ))
        .await
    }
    async fn set_cimd_block(
        &self,
        url: &str,
        blocked: bool,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool> {
        if blocked {
            self.call(self.write_one(
                Change::Federation,
                "INSERT INTO cimd_blocks (url, created_at) VALUES ($1, $2) \
                 ON CONFLICT (url) DO NOTHING",
                &[&url, &now],
                audit,
            ))
            .await
        } else {
            self.call(self.write_one(
                Change::Federation,
                "DELETE FROM cimd_blocks WHERE url = $1",
                &[&url],
                audit,
            ))
            .await
        }
    }
}

#[async_trait::async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            insert_audit(&tx, entry).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn list_audit(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        self.call(async {
            let rows = self
                .query(
                    "SELECT id, at, actor, action, target, detail FROM audit_log \
                     WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&after, &i64::from(limit)],
                )
                .await?;
            rows.iter().map(audit_from_row).collect()
        })
        .await
    }
}

#[async_trait::async_trait]
impl HealthStore for PostgresStore {
    async fn probe_write(&self, now: i64) -> Result<()> {
        self.call(async {
            self.conn()
                .await?
                .execute(
                    "INSERT INTO write_probe (id, at) VALUES (1, $1) \
                     ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at",
                    &[&now],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.call(async {
            self.query("SELECT 1", &[]).await?;
            Ok(())
        })
        .await
    }

    fn set_outage_grace(&self, seconds: i64) {
        self.grace_ms.store(seconds.max(0) * 1000, Ordering::SeqCst);
    }

    fn outage_grace_left(&self) -> Option<i64> {
        let grace = self.grace_ms.load(Ordering::SeqCst);
        let unreachable =
            self.down_at.load(Ordering::SeqCst) != 0 && !self.listening.load(Ordering::SeqCst);
        if grace == 0 || !unreachable {
            return None;
        }
        let left = self.confirmed_ms.load(Ordering::SeqCst) + grace - now_ms();
        (left > 0).then(|| (left + 999) / 1000)
    }
}

#[async_trait::async_trait]
impl ChangeFeed for PostgresStore {
    fn change_marker(&self) -> i64 {
        self.changes.load(Ordering::SeqCst)
    }

    fn changes(&self, after: i64, upto: i64) -> Option<Vec<Change>> {
        self.log.between(after, upto)
    }

    /// Counts lost notifications: a version that the previous poll read and
    /// that no notification has reported since (a poll's grace for the
    /// notification to arrive). Our own writes are notified like anyone's.
    async fn external_change_marker(&self) -> Result<i64> {
        self.call(async {
            let row = self
                .query_opt("SELECT version FROM tollgate_changes WHERE id = 1", &[])
                .await?;
            let version: i64 = row.map(|r| r.get(0)).unwrap_or(0);
            let before = self.polled.swap(version, Ordering::SeqCst);
            if self.notified.load(Ordering::SeqCst) < before {
                self.lost.fetch_add(1, Ordering::SeqCst);
            }
            Ok(self.lost.load(Ordering::SeqCst))
        })
        .await
    }
}

#[async_trait::async_trait]
impl DumpStore for PostgresStore {
    async fn export(&self) -> Result<Dump> {
        self.export_in_pg().await
    }

    async fn import(&self, dump: &Dump, audit: &AuditEntry) -> Result<bool> {
        self.import_in_pg(dump, audit).await
    }
}

impl Store for PostgresStore {
    fn console(&self) -> &dyn super::ConsoleStore {
        self
    }

    fn signals(&self) -> &dyn super::SignalStore {
        self
    }

    fn shared_quota(&self) -> Option<&dyn super::SharedQuota> {
        Some(self)
    }
}
