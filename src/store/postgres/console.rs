//! The console's queries on PostgreSQL: login links, sessions, searches.

use super::rows::{audit_from_row, client_from_row, insert_audit};
use super::PostgresStore;
use crate::store::codec::{self, CLIENT_COLUMNS, CONSOLE_SESSION_COLUMNS};
use crate::store::{AuditEntry, AuditFilter, Client, ConsoleSession, ConsoleStore, Result};

#[async_trait::async_trait]
impl ConsoleStore for PostgresStore {
    async fn create_login_link(
        &self,
        s: &ConsoleSession,
        link_digest: &[u8],
        audit: &AuditEntry,
    ) -> Result<()> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO console_sessions (id, created_by, created_at, link_digest, \
                     link_expires_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .await?;
            tx.execute(
                &stmt,
                &[
                    &s.id,
                    &s.created_by,
                    &s.created_at,
                    &link_digest,
                    &s.link_expires_at,
                ],
            )
            .await?;
            insert_audit(&tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn open_session(
        &self,
        link_digest: &[u8],
        session_digest: &[u8],
        now: i64,
        audit: &AuditEntry,
    ) -> Result<Option<ConsoleSession>> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            let stmt = tx
                .prepare_cached(&format!(
                    "UPDATE console_sessions SET link_digest = NULL, session_digest = $2, \
                     opened_at = $3, last_seen_at = $3 \
                     WHERE link_digest = $1 AND link_expires_at > $3 AND opened_at IS NULL \
                     AND revoked_at IS NULL RETURNING {CONSOLE_SESSION_COLUMNS}"
                ))
                .await?;
            let Some(row) = tx
                .query_opt(&stmt, &[&link_digest, &session_digest, &now])
                .await?
            else {
                return Ok(None);
            };
            let s = codec::console_session(&row)?;
            let mut audit = audit.clone();
            audit.actor = s.actor();
            audit.target = Some(s.id.clone());
            insert_audit(&tx, &audit).await?;
            tx.commit().await?;
            Ok(Some(s))
        })
        .await
    }

    async fn find_session(&self, session_digest: &[u8]) -> Result<Option<ConsoleSession>> {
        self.call(async {
            let sql = format!(
                "SELECT {CONSOLE_SESSION_COLUMNS} FROM console_sessions WHERE session_digest = $1"
            );
            let row = self.query_opt(&sql, &[&session_digest]).await?;
            row.as_ref().map(codec::console_session).transpose()
        })
        .await
    }

    async fn touch_session(&self, id: &str, now: i64) -> Result<()> {
        self.call(async {
            self.query(
                "UPDATE console_sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2",
                &[&id, &now],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn list_sessions(&self) -> Result<Vec<ConsoleSession>> {
        self.call(async {
            let sql = format!(
                "SELECT {CONSOLE_SESSION_COLUMNS} FROM console_sessions \
                 ORDER BY created_at DESC, id LIMIT 10000"
            );
            let rows = self.query(&sql, &[]).await?;
            rows.iter().map(codec::console_session).collect()
        })
        .await
    }

    async fn revoke_session(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<bool> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            let stmt = tx
                .prepare_cached(
                    "UPDATE console_sessions SET revoked_at = $2, link_digest = NULL \
                     WHERE id = $1 AND revoked_at IS NULL",
                )
                .await?;
            let n = tx.execute(&stmt, &[&id, &now]).await?;
            if n == 1 {
                insert_audit(&tx, audit).await?;
            }
            tx.commit().await?;
            Ok(n == 1)
        })
        .await
    }

    async fn prune_sessions(&self, before: i64) -> Result<usize> {
        self.call(async {
            let conn = self.conn().await?;
            let n = conn
                .execute(
                    "DELETE FROM console_sessions WHERE created_at < $1",
                    &[&before],
                )
                .await?;
            Ok(n as usize)
        })
        .await
    }

    async fn search_clients(
        &self,
        query: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Client>> {
        self.call(async {
            // A LIKE on the lowered id and name, in id order until `limit`
            // match (the index of (id COLLATE "C", search) gives the order).
            let sql = format!(
                "SELECT {CLIENT_COLUMNS} FROM clients WHERE id COLLATE \"C\" > $2 \
                 AND search LIKE $1 ORDER BY id COLLATE \"C\" LIMIT $3"
            );
            let q = crate::store::contains_pattern(&query.to_lowercase());
            let after = after.unwrap_or("");
            let rows = self.query(&sql, &[&q, &after, &i64::from(limit)]).await?;
            rows.iter().map(client_from_row).collect()
        })
        .await
    }

    async fn search_audit(
        &self,
        f: &AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.call(async {
            let before = before.unwrap_or(i64::MAX);
            let rows = self
                .query(
                    "SELECT id, at, actor, action, target, detail FROM audit_log \
                     WHERE id < $4 AND ($1::text IS NULL OR actor = $1) \
                     AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR target = $3) \
                     ORDER BY id DESC LIMIT $5",
                    &[&f.actor, &f.action, &f.target, &before, &i64::from(limit)],
                )
                .await?;
            rows.iter().map(audit_from_row).collect()
        })
        .await
    }
}
