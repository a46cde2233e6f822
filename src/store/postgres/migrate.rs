//! PostgreSQL schema migrations: numbered SQL files applied in order, each
//! once, under an advisory lock so that instances starting together migrate
//! once; a schema newer than this build stops start-up.

use super::PostgresStore;
use crate::store::{Result, StoreError};

/// The migrations, in order; the number is the schema version each leaves.
pub(crate) const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../../schema-postgres/0001_initial.sql"),
    ),
    (
        2,
        "signing key compromise, write probe",
        include_str!("../../../schema-postgres/0002_compromise_and_write_probe.sql"),
    ),
    (
        3,
        "change notifications name what changed",
        include_str!("../../../schema-postgres/0003_precise_change_notifications.sql"),
    ),
    (
        4,
        "client authentication methods and keys, used assertions",
        include_str!("../../../schema-postgres/0004_private_key_jwt.sql"),
    ),
    (
        5,
        "workload identity federation: trusted issuers and rules",
        include_str!("../../../schema-postgres/0005_federation.sql"),
    ),
    (
        6,
        "DPoP-bound clients",
        include_str!("../../../schema-postgres/0006_dpop.sql"),
    ),
    (
        7,
        "mutual-TLS clients and certificate-bound tokens",
        include_str!("../../../schema-postgres/0007_mtls.sql"),
    ),
    (
        8,
        "console login links and sessions, audit-log filter indexes",
        include_str!("../../../schema-postgres/0008_console.sql"),
    ),
    (
        9,
        "token-exchange policies",
        include_str!("../../../schema-postgres/0009_token_exchange.sql"),
    ),
    (
        10,
        "agents: trusted issuers of ID-JAGs, URL clients' hosts and blocks",
        include_str!("../../../schema-postgres/0010_agents.sql"),
    ),
    (
        11,
        "per-client claims",
        include_str!("../../../schema-postgres/0011_client_claims.sql"),
    ),
    (
        12,
        "signing keys in a PKCS#11 token",
        include_str!("../../../schema-postgres/0012_pkcs11_keys.sql"),
    ),
    (
        13,
        "Shared Signals streams and events",
        include_str!("../../../schema-postgres/0013_ssf.sql"),
    ),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = 13;

/// The advisory lock that serialises migrations of instances starting together.
const MIGRATION_LOCK: i64 = 0x746f_6c6c_6761_7465; // "tollgate"

impl PostgresStore {
    pub(super) async fn migrate(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // Instances starting together wait here for the first to finish.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        // "already exists, skipping" notices would be logged on every start.
        tx.batch_execute("SET LOCAL client_min_messages = warning")
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS tollgate_migrations (
                 version    INTEGER PRIMARY KEY,
                 name       TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
        let current: i32 = tx
            .query_one(
                "SELECT COALESCE(max(version), 0) FROM tollgate_migrations",
                &[],
            )
            .await?
            .get(0);
        if current > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: current.into(),
                supported: SCHEMA_VERSION.into(),
            });
        }
        for (version, name, sql) in MIGRATIONS {
            if *version > current {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO tollgate_migrations (version, name) VALUES ($1, $2)",
                    &[version, name],
                )
                .await?;
                log::info!("applied PostgreSQL migration {version} ({name})");
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
