//! Moving a whole deployment in and out of PostgreSQL: the export that
//! `tollgate migrate` reads and the import that writes it, each one
//! transaction.

use super::*;

impl PostgresStore {
    pub(super) async fn export_in_pg(&self) -> Result<Dump> {
        self.call(async {
            let mut conn = self.conn().await?;
            // One snapshot for every table, even while instances write.
            let tx = conn
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let dump = Dump {
                clients: all(
                    &tx,
                    &format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id COLLATE \"C\""),
                    client_from_row,
                )
                .await?,
                secrets: all(
                    &tx,
                    "SELECT client_id, digest, created_at, expires_at FROM client_secrets ORDER BY id",
                    codec::secret_row,
                )
                .await?,
                api_keys: all(
                    &tx,
                    &format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id COLLATE \"C\""),
                    key_from_row,
                )
                .await?,
                revocations: all(
                    &tx,
                    "SELECT jti, client_id, expires_at, revoked_at FROM revoked_tokens \
                     ORDER BY jti COLLATE \"C\"",
                    codec::revocation,
                )
                .await?,
                signing_keys: all(
                    &tx,
                    &format!(
                        "SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys ORDER BY kid COLLATE \"C\""
                    ),
                    signing_key_from_row,
                )
                .await?,
                audit: all(
                    &tx,
                    "SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id",
                    audit_from_row,
                )
                .await?,
                federation: read_federation(&tx).await?,
            };
            tx.commit().await?;
            Ok(dump)
        }).await
    }

    pub(super) async fn import_in_pg(&self, dump: &Dump, audit: &AuditEntry) -> Result<bool> {
        self.call(async {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await?;
            let used: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM clients) OR EXISTS (SELECT 1 FROM api_keys) \
                     OR EXISTS (SELECT 1 FROM revoked_tokens)",
                    &[],
                )
                .await?
                .get(0);
            if used {
                return Ok(false);
            }
            copy_in(
                &tx,
                "clients",
                CLIENT_COLUMNS,
                CLIENT_TYPES,
                dump.clients.iter().map(client_params),
            )
            .await?;
            copy_in(
                &tx,
                "client_secrets",
                SECRET_COLUMNS,
                SECRET_TYPES,
                dump.secrets.iter().map(secret_row_params),
            )
            .await?;
            copy_in(
                &tx,
                "api_keys",
                KEY_COLUMNS,
                KEY_TYPES,
                dump.api_keys.iter().map(key_params),
            )
            .await?;
            copy_in(
                &tx,
                "revoked_tokens",
                "jti, client_id, expires_at, revoked_at",
                &[Type::TEXT, Type::TEXT, Type::INT8, Type::INT8],
                dump.revocations.iter().map(revocation_params),
            )
            .await?;
            for k in &dump.signing_keys {
                insert_signing_key(&tx, k).await?;
            }
            // The old log keeps its numbers; entries already here (the key
            // records of a fresh instance) follow it.
            let offset: i64 = dump.audit.iter().map(|e| e.id).max().unwrap_or(0);
            // Two steps, so that no intermediate id collides.
            tx.batch_execute("UPDATE audit_log SET id = -id").await?;
            tx.execute("UPDATE audit_log SET id = $1 - id WHERE id < 0", &[&offset])
                .await?;
            copy_in(
                &tx,
                "audit_log",
                "id, at, actor, action, target, detail",
                &[
                    Type::INT8,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::JSONB,
                ],
                dump.audit.iter().map(audit_params),
            )
            .await?;
            tx.execute(
                "SELECT setval(pg_get_serial_sequence('audit_log', 'id'), \
                 GREATEST((SELECT max(id) FROM audit_log), 1))",
                &[],
            )
            .await?;
            for i in &dump.federation.issuers {
                insert_federation_issuer(&tx, i).await?;
            }
            for r in &dump.federation.rules {
                insert_federation_rule(&tx, r).await?;
            }
            insert_audit(&tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }
}
