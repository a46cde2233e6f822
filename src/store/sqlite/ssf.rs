//! Shared Signals streams and their events on SQLite.

use rusqlite::{params, OptionalExtension, Row};

use super::{insert_audit, mapped, Db, SqliteStore};
use crate::store::codec::{self, SSF_STREAM_COLUMNS};
use crate::store::{
    AuditEntry, NewSignal, PendingSignal, Result, SignalStore, SsfStream, StoreError,
};

fn stream_from_row(r: &Row<'_>) -> rusqlite::Result<SsfStream> {
    mapped(codec::ssf_stream(r))
}

/// The transmitter's position in the audit log (`ssf_state`).
const CURSOR: &str = "audit_cursor";

impl Db {
    fn write_stream(
        &self,
        s: &SsfStream,
        insert: bool,
        audit: Option<&AuditEntry>,
    ) -> Result<bool> {
        self.write(None, |tx| {
            let (client, description, method, url, header, events, status) =
                codec::ssf_stream_values(s);
            let sql = if insert {
                "INSERT INTO ssf_streams (id, client_id, description, delivery_method, \
                 endpoint_url, authorization_header, events_requested, status, status_reason, \
                 created_at, updated_at, last_error, last_error_at, failing_since, attempts, \
                 retry_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
                 ?15, ?16)"
            } else {
                "UPDATE ssf_streams SET client_id = ?2, description = ?3, delivery_method = ?4, \
                 endpoint_url = ?5, authorization_header = ?6, events_requested = ?7, \
                 status = ?8, status_reason = ?9, created_at = ?10, updated_at = ?11, \
                 last_error = ?12, last_error_at = ?13, failing_since = ?14, attempts = ?15, \
                 retry_at = ?16 WHERE id = ?1"
            };
            let n = tx.prepare_cached(sql)?.execute(params![
                s.id,
                client,
                description,
                method,
                url,
                header,
                events,
                status,
                s.status_reason,
                s.created_at,
                s.updated_at,
                s.last_error,
                s.last_error_at,
                s.failing_since,
                s.attempts,
                s.retry_at
            ])?;
            if n == 1 {
                if let Some(a) = audit {
                    insert_audit(tx, a)?;
                }
            }
            Ok(n == 1)
        })
    }

    fn get_stream(&self, id: &str) -> Result<Option<SsfStream>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SSF_STREAM_COLUMNS} FROM ssf_streams WHERE id = ?1"
        ))?;
        Ok(stmt.query_row([id], stream_from_row).optional()?)
    }

    fn list_streams(&self) -> Result<Vec<SsfStream>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SSF_STREAM_COLUMNS} FROM ssf_streams ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([], stream_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn delete_stream(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        self.write(None, |tx| {
            tx.prepare_cached("DELETE FROM ssf_events WHERE stream_id = ?1")?
                .execute([id])?;
            let n = tx
                .prepare_cached("DELETE FROM ssf_streams WHERE id = ?1")?
                .execute([id])?;
            if n == 1 {
                insert_audit(tx, audit)?;
            }
            Ok(n == 1)
        })
    }

    fn add_signals(&self, events: &[NewSignal], cursor: Option<i64>) -> Result<usize> {
        self.write(None, |tx| {
            let mut added = 0;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO ssf_events (stream_id, jti, source, set_jwt, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for e in events {
                    added += stmt.execute(params![e.stream_id, e.jti, e.source, e.set, e.created_at])?;
                }
            }
            if let Some(c) = cursor {
                tx.prepare_cached(
                    "INSERT INTO ssf_state (name, value) VALUES (?1, ?2) \
                     ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
                )?
                .execute(params![CURSOR, c])?;
            }
            Ok(added)
        })
    }

    fn signal_cursor(&self) -> Result<Option<i64>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT value FROM ssf_state WHERE name = ?1")?;
        Ok(stmt.query_row([CURSOR], |r| r.get(0)).optional()?)
    }

    fn lease_stream(&self, id: &str, owner: &str, now: i64, until: i64) -> Result<bool> {
        self.write(None, |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE ssf_streams SET lease_owner = ?2, lease_until = ?4 WHERE id = ?1 \
                     AND (lease_until IS NULL OR lease_until < ?3 OR lease_owner = ?2)",
                )?
                .execute(params![id, owner, now, until])?;
            Ok(n == 1)
        })
    }

    fn pending_signals(&self, stream_id: &str, limit: u32) -> Result<Vec<PendingSignal>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, jti, set_jwt FROM ssf_events WHERE stream_id = ?1 \
             AND delivered_at IS NULL ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![stream_id, limit], |r| {
            Ok(PendingSignal {
                seq: r.get(0)?,
                jti: r.get(1)?,
                set: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn mark_delivered(&self, stream_id: &str, jtis: &[String], now: i64) -> Result<usize> {
        self.write(None, |tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE ssf_events SET delivered_at = ?3 WHERE stream_id = ?1 AND jti = ?2 \
                 AND delivered_at IS NULL",
            )?;
            let mut n = 0;
            for j in jtis {
                n += stmt.execute(params![stream_id, j, now])?;
            }
            Ok(n)
        })
    }

    fn discard_signals(&self, stream_id: &str, now: i64) -> Result<usize> {
        self.write(None, |tx| {
            Ok(tx
                .prepare_cached(
                    "UPDATE ssf_events SET delivered_at = ?2 WHERE stream_id = ?1 \
                     AND delivered_at IS NULL",
                )?
                .execute(params![stream_id, now])?)
        })
    }

    fn signal_backlog(&self) -> Result<Vec<(String, i64)>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT stream_id, count(*) FROM ssf_events WHERE delivered_at IS NULL \
             GROUP BY stream_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn prune_signals(&self, before: i64) -> Result<usize> {
        self.write(None, |tx| {
            Ok(tx
                .prepare_cached("DELETE FROM ssf_events WHERE delivered_at < ?1")?
                .execute([before])?)
        })
    }
}

#[async_trait::async_trait]
impl SignalStore for SqliteStore {
    async fn create_stream(&self, stream: &SsfStream, audit: &AuditEntry) -> Result<()> {
        let (s, a) = (stream.clone(), audit.clone());
        blocking!(self, |db| db.write_stream(&s, true, Some(&a)).map(|_| ()))
    }
    async fn get_stream(&self, id: &str) -> Result<Option<SsfStream>> {
        let id = id.to_string();
        blocking!(self, |db| db.get_stream(&id))
    }
    async fn list_streams(&self) -> Result<Vec<SsfStream>> {
        blocking!(self, |db| db.list_streams())
    }
    async fn update_stream(&self, stream: &SsfStream, audit: Option<&AuditEntry>) -> Result<bool> {
        let (s, a) = (stream.clone(), audit.cloned());
        blocking!(self, |db| db.write_stream(&s, false, a.as_ref()))
    }
    async fn delete_stream(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        let (id, a) = (id.to_string(), audit.clone());
        blocking!(self, |db| db.delete_stream(&id, &a))
    }
    async fn add_signals(&self, events: &[NewSignal], cursor: Option<i64>) -> Result<usize> {
        let events = events.to_vec();
        blocking!(self, |db| db.add_signals(&events, cursor))
    }
    async fn signal_cursor(&self) -> Result<Option<i64>> {
        blocking!(self, |db| db.signal_cursor())
    }
    async fn lease_stream(&self, id: &str, owner: &str, now: i64, until: i64) -> Result<bool> {
        let (id, owner) = (id.to_string(), owner.to_string());
        blocking!(self, |db| db.lease_stream(&id, &owner, now, until))
    }
    async fn pending_signals(&self, stream_id: &str, limit: u32) -> Result<Vec<PendingSignal>> {
        let id = stream_id.to_string();
        blocking!(self, |db| db.pending_signals(&id, limit))
    }
    async fn mark_delivered(&self, stream_id: &str, jtis: &[String], now: i64) -> Result<usize> {
        let (id, jtis) = (stream_id.to_string(), jtis.to_vec());
        blocking!(self, |db| db.mark_delivered(&id, &jtis, now))
    }
    async fn discard_signals(&self, stream_id: &str, now: i64) -> Result<usize> {
        let id = stream_id.to_string();
        blocking!(self, |db| db.discard_signals(&id, now))
    }
    async fn signal_backlog(&self) -> Result<Vec<(String, i64)>> {
        blocking!(self, |db| db.signal_backlog())
    }
    async fn prune_signals(&self, before: i64) -> Result<usize> {
        blocking!(self, |db| db.prune_signals(before))
    }
}
