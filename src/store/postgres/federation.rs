//! Trusted federation issuers and the rules that map their tokens to
//! clients, in PostgreSQL.

use super::*;

impl PostgresStore {
    pub(super) async fn federation_in_pg(&self) -> Result<Federation> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let f = read_federation(&tx).await?;
            tx.commit().await?;
            Ok(f)
        })
        .await
    }

    pub(super) async fn add_federation_issuer_in_pg(
        &self,
        i: &FederationIssuer,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            tag(&tx, &Change::Federation).await?;
            if insert_federation_issuer(&tx, i).await? != 1 {
                return Ok(false);
            }
            insert_audit(&tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    pub(super) async fn remove_federation_issuer_in_pg(
        &self,
        id: &str,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.call(self.write_one(
            Change::Federation,
            "DELETE FROM federation_issuers WHERE id = $1",
            &[&id],
            audit,
        ))
        .await
    }

    pub(super) async fn add_federation_rule_in_pg(
        &self,
        r: &FederationRule,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            tag(&tx, &Change::Federation).await?;
            // Locks both rows, so neither can be deleted under the new rule.
            let client = tx
                .query_opt(
                    "SELECT 1 FROM clients WHERE id = $1 FOR SHARE",
                    &[&r.client_id],
                )
                .await?;
            let issuer = tx
                .query_opt(
                    "SELECT 1 FROM federation_issuers WHERE issuer = $1 FOR SHARE",
                    &[&r.issuer],
                )
                .await?;
            if client.is_none() || issuer.is_none() {
                return Ok(false);
            }
            insert_federation_rule(&tx, r).await?;
            insert_audit(&tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    pub(super) async fn remove_federation_rule_in_pg(
        &self,
        id: &str,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.call(self.write_one(
            Change::Federation,
            "DELETE FROM federation_rules WHERE id = $1",
            &[&id],
            audit,
        ))
        .await
    }
}
