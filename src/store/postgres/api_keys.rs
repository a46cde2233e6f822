//! API keys and client secrets in PostgreSQL: creation under the
//! per-client limit, last-use touches, and secret rotation.

use super::*;

impl PostgresStore {
    pub(super) async fn create_api_key_in_pg(
        &self,
        k: &ApiKeyRecord,
        max_active: u32,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<ApiKeyCreate> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            let change = Change::ApiKey {
                id: k.id.clone(),
                digest: Some(k.digest.clone()),
            };
            tag(&tx, &change).await?;
            // Locks the client row, so two instances cannot both add the fifth key.
            let exists = tx
                .query_opt(
                    "SELECT 1 FROM clients WHERE id = $1 FOR UPDATE",
                    &[&k.client_id],
                )
                .await?;
            if exists.is_none() {
                return Ok(ApiKeyCreate::NoSuchClient);
            }
            let active: i64 = tx
                .query_one(
                    "SELECT count(*) FROM api_keys WHERE client_id = $1 AND revoked_at IS NULL \
                     AND (expires_at IS NULL OR expires_at > $2)",
                    &[&k.client_id, &now],
                )
                .await?
                .get(0);
            if active >= i64::from(max_active) {
                return Ok(ApiKeyCreate::LimitReached(max_active));
            }
            insert_api_key(&tx, k).await?;
            insert_audit(&tx, audit).await?;
            tx.commit().await?;
            Ok(ApiKeyCreate::Created)
        })
        .await
    }

    pub(super) async fn touch_api_keys_in_pg(&self, uses: &[(String, i64)]) -> Result<()> {
        self.call(async {
            let (ids, ats): (Vec<&str>, Vec<i64>) =
                uses.iter().map(|(id, at)| (id.as_str(), *at)).unzip();
            let conn = self.conn().await?;
            conn.execute(
                "UPDATE api_keys k SET last_used_at = u.at \
                 FROM unnest($1::text[], $2::bigint[]) AS u(id, at) \
                 WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)",
                &[&ids, &ats],
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub(super) async fn rotate_secret_in_pg(
        &self,
        client_id: &str,
        digest: &[u8],
        now: i64,
        old_expire_at: i64,
        max_live: usize,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            tag(&tx, &Change::Client(client_id.to_string())).await?;
            // Locks the client row: rotations of one client run one at a time.
            let exists = tx
                .query_opt(
                    "SELECT 1 FROM clients WHERE id = $1 FOR UPDATE",
                    &[&client_id],
                )
                .await?;
            if exists.is_none() {
                return Ok(false);
            }
            tx.execute(
                "UPDATE client_secrets SET expires_at = $2 WHERE client_id = $1 \
                 AND (expires_at IS NULL OR expires_at > $2)",
                &[&client_id, &old_expire_at],
            )
            .await?;
            tx.execute(
                "INSERT INTO client_secrets (client_id, digest, created_at) VALUES ($1, $2, $3)",
                &[&client_id, &digest, &now],
            )
            .await?;
            // Keep at most `max_live` secrets live: the oldest ones end now.
            tx.execute(
                "UPDATE client_secrets SET expires_at = $2 WHERE id IN ( \
                   SELECT id FROM client_secrets WHERE client_id = $1 \
                   AND (expires_at IS NULL OR expires_at > $2) ORDER BY id DESC OFFSET $3)",
                &[&client_id, &now, &(max_live as i64)],
            )
            .await?;
            // Forget secrets that ended more than a day ago.
            tx.execute(
                "DELETE FROM client_secrets WHERE client_id = $1 AND expires_at < $2",
                &[&client_id, &(now - 86_400)],
            )
            .await?;
            insert_audit(&tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }
}
