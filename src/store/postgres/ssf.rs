//! Shared Signals streams and their events on PostgreSQL. Instances of a
//! fleet store each action's event once per stream (a unique source), and
//! a lease on the stream row lets one instance at a time deliver it.

use super::rows::insert_audit;
use super::PostgresStore;
use crate::store::codec::{self, SSF_STREAM_COLUMNS};
use crate::store::{AuditEntry, NewSignal, PendingSignal, Result, SignalStore, SsfStream};

/// The transmitter's position in the audit log (`ssf_state`).
const CURSOR: &str = "audit_cursor";

impl PostgresStore {
    async fn write_stream(
        &self,
        s: &SsfStream,
        insert: bool,
        audit: Option<&AuditEntry>,
    ) -> Result<bool> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            let (client, description, method, url, header, events, status) =
                codec::ssf_stream_values(s);
            let sql = if insert {
                "INSERT INTO ssf_streams (id, client_id, description, delivery_method, \
                 endpoint_url, authorization_header, events_requested, status, status_reason, \
                 created_at, updated_at, last_error, last_error_at, failing_since, attempts, \
                 retry_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                 $15, $16)"
            } else {
                "UPDATE ssf_streams SET client_id = $2, description = $3, delivery_method = $4, \
                 endpoint_url = $5, authorization_header = $6, events_requested = $7, \
                 status = $8, status_reason = $9, created_at = $10, updated_at = $11, \
                 last_error = $12, last_error_at = $13, failing_since = $14, attempts = $15, \
                 retry_at = $16 WHERE id = $1"
            };
            let stmt = tx.prepare_cached(sql).await?;
            let n = tx
                .execute(
                    &stmt,
                    &[
                        &s.id,
                        &client,
                        &description,
                        &method,
                        &url,
                        &header,
                        &events,
                        &status,
                        &s.status_reason,
                        &s.created_at,
                        &s.updated_at,
                        &s.last_error,
                        &s.last_error_at,
                        &s.failing_since,
                        &s.attempts,
                        &s.retry_at,
                    ],
                )
                .await?;
            if n == 1 {
                if let Some(a) = audit {
                    insert_audit(&tx, a).await?;
                }
            }
            tx.commit().await?;
            Ok(n == 1)
        })
        .await
    }
}

#[async_trait::async_trait]
impl SignalStore for PostgresStore {
    async fn create_stream(&self, stream: &SsfStream, audit: &AuditEntry) -> Result<()> {
        self.write_stream(stream, true, Some(audit))
            .await
            .map(|_| ())
    }

    async fn get_stream(&self, id: &str) -> Result<Option<SsfStream>> {
        self.call(async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached(&format!(
                    "SELECT {SSF_STREAM_COLUMNS} FROM ssf_streams WHERE id = $1"
                ))
                .await?;
            match conn.query_opt(&stmt, &[&id]).await? {
                Some(r) => Ok(Some(codec::ssf_stream(&r)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn list_streams(&self) -> Result<Vec<SsfStream>> {
        self.call(async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached(&format!(
                    "SELECT {SSF_STREAM_COLUMNS} FROM ssf_streams ORDER BY created_at, id"
                ))
                .await?;
            conn.query(&stmt, &[])
                .await?
                .iter()
                .map(codec::ssf_stream)
                .collect()
        })
        .await
    }

    async fn update_stream(&self, stream: &SsfStream, audit: Option<&AuditEntry>) -> Result<bool> {
        self.write_stream(stream, false, audit).await
    }

    async fn delete_stream(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            tx.execute("DELETE FROM ssf_events WHERE stream_id = $1", &[&id])
                .await?;
            let n = tx
                .execute("DELETE FROM ssf_streams WHERE id = $1", &[&id])
                .await?;
            if n == 1 {
                insert_audit(&tx, audit).await?;
            }
            tx.commit().await?;
            Ok(n == 1)
        })
        .await
    }

    async fn add_signals(&self, events: &[NewSignal], cursor: Option<i64>) -> Result<usize> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO ssf_events (stream_id, jti, source, set_jwt, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (stream_id, source) DO NOTHING",
                )
                .await?;
            let mut added = 0;
            for e in events {
                added += tx
                    .execute(
                        &stmt,
                        &[&e.stream_id, &e.jti, &e.source, &e.set, &e.created_at],
                    )
                    .await? as usize;
            }
            if let Some(c) = cursor {
                tx.execute(
                    "INSERT INTO ssf_state (name, value) VALUES ($1, $2) ON CONFLICT (name) \
                     DO UPDATE SET value = greatest(ssf_state.value, excluded.value)",
                    &[&CURSOR, &c],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(added)
        })
        .await
    }

    async fn signal_cursor(&self) -> Result<Option<i64>> {
        self.call(async {
            let conn = self.conn().await?;
            Ok(conn
                .query_opt("SELECT value FROM ssf_state WHERE name = $1", &[&CURSOR])
                .await?
                .map(|r| r.get(0)))
        })
        .await
    }

    async fn lease_stream(&self, id: &str, owner: &str, now: i64, until: i64) -> Result<bool> {
        self.call(async {
            let conn = self.conn().await?;
            let n = conn
                .execute(
                    "UPDATE ssf_streams SET lease_owner = $2, lease_until = $4 WHERE id = $1 \
                     AND (lease_until IS NULL OR lease_until < $3 OR lease_owner = $2)",
                    &[&id, &owner, &now, &until],
                )
                .await?;
            Ok(n == 1)
        })
        .await
    }

    async fn pending_signals(&self, stream_id: &str, limit: u32) -> Result<Vec<PendingSignal>> {
        self.call(async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached(
                    "SELECT seq, jti, set_jwt FROM ssf_events WHERE stream_id = $1 \
                     AND delivered_at IS NULL ORDER BY seq LIMIT $2",
                )
                .await?;
            Ok(conn
                .query(&stmt, &[&stream_id, &(limit as i64)])
                .await?
                .iter()
                .map(|r| PendingSignal {
                    seq: r.get(0),
                    jti: r.get(1),
                    set: r.get(2),
                })
                .collect())
        })
        .await
    }

    async fn mark_delivered(&self, stream_id: &str, jtis: &[String], now: i64) -> Result<usize> {
        self.call(async {
            let conn = self.conn().await?;
            let n = conn
                .execute(
                    "UPDATE ssf_events SET delivered_at = $3 WHERE stream_id = $1 \
                     AND jti = ANY($2) AND delivered_at IS NULL",
                    &[&stream_id, &jtis, &now],
                )
                .await?;
            Ok(n as usize)
        })
        .await
    }

    async fn discard_signals(&self, stream_id: &str, now: i64) -> Result<usize> {
        self.call(async {
            let conn = self.conn().await?;
            let n = conn
                .execute(
                    "UPDATE ssf_events SET delivered_at = $2 WHERE stream_id = $1 \
                     AND delivered_at IS NULL",
                    &[&stream_id, &now],
                )
                .await?;
            Ok(n as usize)
        })
        .await
    }

    async fn signal_backlog(&self) -> Result<Vec<(String, i64)>> {
        self.call(async {
            let conn = self.conn().await?;
            Ok(conn
                .query(
                    "SELECT stream_id, count(*) FROM ssf_events WHERE delivered_at IS NULL \
                     GROUP BY stream_id",
                    &[],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
        .await
    }

    async fn prune_signals(&self, before: i64) -> Result<usize> {
        self.call(async {
            let conn = self.conn().await?;
            Ok(conn
                .execute("DELETE FROM ssf_events WHERE delivered_at < $1", &[&before])
                .await? as usize)
        })
        .await
    }
}
