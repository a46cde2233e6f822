//! The console's queries on SQLite: login links, sessions, searches.

use rusqlite::{params, OptionalExtension, Row};

use super::{audit_from_row, client_from_row, insert_audit, mapped, Db, SqliteStore};
use crate::store::codec::{self, CLIENT_COLUMNS, CONSOLE_SESSION_COLUMNS};
use crate::store::{
    AuditEntry, AuditFilter, Client, ConsoleSession, ConsoleStore, Result, StoreError,
};

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<ConsoleSession> {
    mapped(codec::console_session(r))
}

impl Db {
    fn create_login_link(
        &self,
        s: &ConsoleSession,
        link_digest: &[u8],
        audit: &AuditEntry,
    ) -> Result<()> {
        self.write(None, |tx| {
            tx.prepare_cached(
                "INSERT INTO console_sessions (id, created_by, created_at, link_digest, \
                 link_expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                s.id,
                s.created_by,
                s.created_at,
                link_digest,
                s.link_expires_at
            ])?;
            insert_audit(tx, audit)
        })
    }

    fn open_session(
        &self,
        link_digest: &[u8],
        session_digest: &[u8],
        now: i64,
        audit: &AuditEntry,
    ) -> Result<Option<ConsoleSession>> {
        self.write(None, |tx| {
            let opened = tx
                .prepare_cached(&format!(
                    "UPDATE console_sessions SET link_digest = NULL, session_digest = ?2, \
                     opened_at = ?3, last_seen_at = ?3 \
                     WHERE link_digest = ?1 AND link_expires_at > ?3 AND opened_at IS NULL \
                     AND revoked_at IS NULL RETURNING {CONSOLE_SESSION_COLUMNS}"
                ))?
                .query_row(params![link_digest, session_digest, now], session_from_row)
                .optional()?;
            if let Some(s) = &opened {
                let mut audit = audit.clone();
                audit.actor = s.actor();
                audit.target = Some(s.id.clone());
                insert_audit(tx, &audit)?;
            }
            Ok(opened)
        })
    }

    fn find_session(&self, session_digest: &[u8]) -> Result<Option<ConsoleSession>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CONSOLE_SESSION_COLUMNS} FROM console_sessions WHERE session_digest = ?1"
        ))?;
        Ok(stmt
            .query_row([session_digest], session_from_row)
            .optional()?)
    }

    fn touch_session(&self, id: &str, now: i64) -> Result<()> {
        self.write(None, |tx| {
            tx.prepare_cached(
                "UPDATE console_sessions SET last_seen_at = ?2 WHERE id = ?1 AND last_seen_at < ?2",
            )?
            .execute(params![id, now])?;
            Ok(())
        })
    }

    fn list_sessions(&self) -> Result<Vec<ConsoleSession>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CONSOLE_SESSION_COLUMNS} FROM console_sessions \
             ORDER BY created_at DESC, id LIMIT 10000"
        ))?;
        let rows = stmt.query_map([], session_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn revoke_session(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<bool> {
        self.write(None, |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE console_sessions SET revoked_at = ?2, link_digest = NULL \
                     WHERE id = ?1 AND revoked_at IS NULL",
                )?
                .execute(params![id, now])?;
            if n == 1 {
                insert_audit(tx, audit)?;
            }
            Ok(n == 1)
        })
    }

    fn prune_sessions(&self, before: i64) -> Result<usize> {
        self.write(None, |tx| {
            Ok(tx
                .prepare_cached("DELETE FROM console_sessions WHERE created_at < ?1")?
                .execute([before])?)
        })
    }

    fn search_clients(&self, query: &str, after: &str, limit: u32) -> Result<Vec<Client>> {
        let conn = self.conn()?;
        // The ids are found on the covering index of (id, name), walked in
        // id order until `limit` match (LIKE ignores ASCII case); only the
        // matching rows are read.
        let mut stmt = conn.prepare_cached(&format!(
            r"SELECT {CLIENT_COLUMNS} FROM clients WHERE id IN (
                SELECT id FROM clients INDEXED BY clients_by_id_name WHERE id > ?2
                AND (id LIKE ?1 ESCAPE '\' OR name LIKE ?1 ESCAPE '\') ORDER BY id LIMIT ?3)
              ORDER BY id"
        ))?;
        let pattern = crate::store::contains_pattern(query);
        let rows = stmt.query_map(params![pattern, after, limit], client_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn search_audit(&self, f: &AuditFilter, before: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, actor, action, target, detail FROM audit_log \
             WHERE id < ?4 AND (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2) \
             AND (?3 IS NULL OR target = ?3) ORDER BY id DESC LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![f.actor, f.action, f.target, before, limit],
            audit_from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

#[async_trait::async_trait]
impl ConsoleStore for SqliteStore {
    async fn create_login_link(
        &self,
        s: &ConsoleSession,
        link_digest: &[u8],
        audit: &AuditEntry,
    ) -> Result<()> {
        let (s, d, a) = (s.clone(), link_digest.to_vec(), audit.clone());
        blocking!(self, |db| db.create_login_link(&s, &d, &a))
    }
    async fn open_session(
        &self,
        link_digest: &[u8],
        session_digest: &[u8],
        now: i64,
        audit: &AuditEntry,
    ) -> Result<Option<ConsoleSession>> {
        let (l, s, a) = (link_digest.to_vec(), session_digest.to_vec(), audit.clone());
        blocking!(self, |db| db.open_session(&l, &s, now, &a))
    }
    async fn find_session(&self, session_digest: &[u8]) -> Result<Option<ConsoleSession>> {
        let d = session_digest.to_vec();
        blocking!(self, |db| db.find_session(&d))
    }
    async fn touch_session(&self, id: &str, now: i64) -> Result<()> {
        let id = id.to_string();
        blocking!(self, |db| db.touch_session(&id, now))
    }
    async fn list_sessions(&self) -> Result<Vec<ConsoleSession>> {
        blocking!(self, |db| db.list_sessions())
    }
    async fn revoke_session(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<bool> {
        let (id, a) = (id.to_string(), audit.clone());
        blocking!(self, |db| db.revoke_session(&id, now, &a))
    }
    async fn prune_sessions(&self, before: i64) -> Result<usize> {
        blocking!(self, |db| db.prune_sessions(before))
    }
    async fn search_clients(
        &self,
        query: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Client>> {
        let (q, after) = (query.to_string(), after.unwrap_or("").to_string());
        blocking!(self, |db| db.search_clients(&q, &after, limit))
    }
    async fn search_audit(
        &self,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let f = filter.clone();
        let before = before.unwrap_or(i64::MAX);
        blocking!(self, |db| db.search_audit(&f, before, limit))
    }
}
