//! Rows of the PostgreSQL store: the codec's column access, the values of
//! each record for statements and binary COPY, and the bulk writers.

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use super::super::codec::{self, CLIENT_COLUMNS, KEY_COLUMNS};
use super::super::{
    ApiKeyRecord, AuditEntry, Client, Result, RevocationRecord, SecretRow, SigningKeyRecord,
};

pub(super) async fn insert_audit(
    tx: &deadpool_postgres::Transaction<'_>,
    e: &AuditEntry,
) -> Result<()> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    tx.execute(&stmt, &[&e.at, &e.actor, &e.action, &e.target, &e.detail])
        .await?;
    Ok(())
}

/// Typed column access for the shared codec.
impl codec::Columns for Row {
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.try_get(i)?)
    }
    fn text_opt(&self, i: usize) -> Result<Option<String>> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.try_get(i)?)
    }
    fn int_opt(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool> {
        Ok(self.try_get(i)?)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        Ok(self.try_get(i)?)
    }
    fn json(&self, i: usize) -> Result<serde_json::Value> {
        Ok(self.try_get(i)?)
    }
}

pub(super) fn client_from_row(r: &Row) -> Result<Client> {
    codec::client(r)
}

pub(super) fn key_from_row(r: &Row) -> Result<ApiKeyRecord> {
    codec::api_key(r)
}

pub(super) fn audit_from_row(r: &Row) -> Result<AuditEntry> {
    codec::audit(r)
}

pub(super) fn signing_key_from_row(r: &Row) -> Result<SigningKeyRecord> {
    codec::signing_key(r)
}

/// One row's values, in column order, owned so that bulk loads can stream them.
pub(super) type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// Placeholders for the values of [`CLIENT_COLUMNS`], `$1` being the id.
pub(super) const CLIENT_VALUES: &str =
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
     $21, $22, $23, $24, $25";

/// The values of [`CLIENT_COLUMNS`], and their types for a binary COPY.
pub(super) fn client_params(c: &Client) -> Params {
    let (method, jwks, jwks_uri, [n0, n1, n2, n3, n4]) = codec::auth_columns(c);
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
        Box::new(method.to_string()),
        Box::new(jwks),
        Box::new(jwks_uri),
        Box::new(c.dpop_bound_access_tokens),
        Box::new(n0),
        Box::new(n1),
        Box::new(n2),
        Box::new(n3),
        Box::new(n4),
        Box::new(c.tls_client_certificate_bound_access_tokens),
        Box::new(codec::exchange_json(c)),
        Box::new(codec::claims_json(c)),
    ]
}
pub(super) const CLIENT_TYPES: &[Type] = &[
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::BOOL,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::BOOL,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::BOOL,
    Type::TEXT,
    Type::TEXT,
];

/// The values of [`KEY_COLUMNS`], and their types for a binary COPY.
pub(super) fn key_params(k: &ApiKeyRecord) -> Params {
    vec![
        Box::new(k.id.clone()),
        Box::new(k.client_id.clone()),
        Box::new(k.name.clone()),
        Box::new(k.digest.clone()),
        Box::new(k.prefix.clone()),
        Box::new(k.last4.clone()),
        Box::new(k.created_at),
        Box::new(k.expires_at),
        Box::new(k.last_used_at),
        Box::new(k.revoked_at),
    ]
}
pub(super) const KEY_TYPES: &[Type] = &[
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::BYTEA,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
];

pub(super) const SECRET_COLUMNS: &str = "client_id, digest, created_at, expires_at";
pub(super) const SECRET_TYPES: &[Type] = &[Type::TEXT, Type::BYTEA, Type::INT8, Type::INT8];

/// The values of [`SECRET_COLUMNS`].
pub(super) fn secret_params(
    client_id: &str,
    digest: &[u8],
    created_at: i64,
    expires_at: Option<i64>,
) -> Params {
    vec![
        Box::new(client_id.to_string()),
        Box::new(digest.to_vec()),
        Box::new(created_at),
        Box::new(expires_at),
    ]
}

// Named functions rather than closures for the bulk writers: a store
// future must be `Send`, and closures over borrowed rows are not general
// enough over their lifetimes for that.

/// A client of an import batch.
pub(super) fn client_of(row: &(Client, Vec<u8>)) -> Params {
    client_params(&row.0)
}

/// The one secret of a client in an import batch.
pub(super) fn first_secret_of(row: &(Client, Vec<u8>)) -> Params {
    secret_params(&row.0.id, &row.1, row.0.created_at, None)
}

/// A secret of a migration dump.
pub(super) fn secret_row_params(s: &SecretRow) -> Params {
    secret_params(&s.client_id, &s.digest, s.created_at, s.expires_at)
}

/// A revocation of a migration dump.
pub(super) fn revocation_params(r: &RevocationRecord) -> Params {
    vec![
        Box::new(r.jti.clone()),
        Box::new(r.client_id.clone()),
        Box::new(r.expires_at),
        Box::new(r.revoked_at),
    ]
}

/// An audit entry of a migration dump, with its number.
pub(super) fn audit_params(e: &AuditEntry) -> Params {
    vec![
        Box::new(e.id),
        Box::new(e.at),
        Box::new(e.actor.clone()),
        Box::new(e.action.clone()),
        Box::new(e.target.clone()),
        Box::new(e.detail.clone()),
    ]
}

pub(super) async fn insert_client(
    tx: &deadpool_postgres::Transaction<'_>,
    c: &Client,
    secret_digest: Option<&[u8]>,
) -> Result<()> {
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO clients ({CLIENT_COLUMNS}) VALUES ({CLIENT_VALUES})"
        ))
        .await?;
    tx.execute_raw(&stmt, client_params(c)).await?;
    let Some(secret_digest) = secret_digest else {
        return Ok(());
    };
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO client_secrets ({SECRET_COLUMNS}) VALUES ($1, $2, $3, $4)"
        ))
        .await?;
    tx.execute_raw(
        &stmt,
        secret_params(&c.id, secret_digest, c.created_at, None),
    )
    .await?;
    Ok(())
}

/// Loads rows into a table with one binary `COPY … FROM STDIN`. Bulk loads
/// (`client seed`, `migrate`) go this way rather than row by row: besides
/// saving a round trip per row, one statement fires the table's change
/// trigger once, where one per row would update the `tollgate_changes` row
/// once per row in one transaction, each update slower than the last
/// (measured: 100,000 clients took 9 minutes row by row).
pub(super) async fn copy_in(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
    columns: &str,
    types: &[Type],
    rows: impl IntoIterator<Item = Params>,
) -> Result<u64> {
    let sink = tx
        .copy_in(&format!(
            "COPY {table} ({columns}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, types));
    for row in rows {
        writer.as_mut().write_raw(row).await?;
    }
    Ok(writer.finish().await?)
}

/// Every row of a query, decoded.
pub(super) async fn all<T>(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    decode: impl Fn(&Row) -> Result<T>,
) -> Result<Vec<T>> {
    tx.query(sql, &[]).await?.iter().map(decode).collect()
}

pub(super) async fn insert_api_key(
    tx: &deadpool_postgres::Transaction<'_>,
    k: &ApiKeyRecord,
) -> Result<()> {
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .await?;
    tx.execute_raw(&stmt, key_params(k)).await?;
    Ok(())
}

pub(super) async fn insert_signing_key(
    tx: &deadpool_postgres::Transaction<'_>,
    k: &SigningKeyRecord,
) -> Result<()> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO signing_keys (kid, alg, created_at, activates_at, retired_at, \
             compromised_at, location, public_jwk) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &k.kid,
            &k.alg,
            &k.created_at,
            &k.activates_at,
            &k.retired_at,
            &k.compromised_at,
            &k.location.as_str(),
            &k.public_jwk.as_ref().map(|j| j.to_string()),
        ],
    )
    .await?;
    Ok(())
}

/// Every trusted issuer and rule, in one transaction's snapshot.
pub(super) async fn read_federation(
    tx: &deadpool_postgres::Transaction<'_>,
) -> Result<crate::domain::Federation> {
    use super::codec::{FEDERATION_ISSUER_COLUMNS, FEDERATION_RULE_COLUMNS};
    Ok(crate::domain::Federation {
        issuers: all(
            tx,
            &format!(
                "SELECT {FEDERATION_ISSUER_COLUMNS} FROM federation_issuers \
                 ORDER BY issuer COLLATE \"C\""
            ),
            codec::federation_issuer,
        )
        .await?,
        rules: all(
            tx,
            &format!(
                "SELECT {FEDERATION_RULE_COLUMNS} FROM federation_rules \
                 ORDER BY created_at, id COLLATE \"C\""
            ),
            codec::federation_rule,
        )
        .await?,
        cimd_hosts: all(
            tx,
            &format!(
                "SELECT {} FROM cimd_hosts ORDER BY host COLLATE \"C\"",
                codec::CIMD_HOST_COLUMNS
            ),
            codec::cimd_host,
        )
        .await?,
        cimd_blocks: all(
            tx,
            "SELECT url, created_at FROM cimd_blocks ORDER BY url COLLATE \"C\"",
            codec::cimd_block,
        )
        .await?,
    })
}

/// Inserts a trusted issuer unless its issuer identifier is taken; the rows
/// written.
pub(super) async fn insert_federation_issuer(
    tx: &deadpool_postgres::Transaction<'_>,
    i: &crate::domain::FederationIssuer,
) -> Result<u64> {
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO federation_issuers ({}) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT DO NOTHING",
            codec::FEDERATION_ISSUER_COLUMNS
        ))
        .await?;
    Ok(tx
        .execute(
            &stmt,
            &[
                &i.id,
                &i.issuer,
                &i.jwks_uri,
                &codec::issuer_jwks_text(i),
                &i.created_at,
                &i.id_jag,
            ],
        )
        .await?)
}

pub(super) async fn insert_federation_rule(
    tx: &deadpool_postgres::Transaction<'_>,
    r: &crate::domain::FederationRule,
) -> Result<()> {
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO federation_rules ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            codec::FEDERATION_RULE_COLUMNS
        ))
        .await?;
    tx.execute(
        &stmt,
        &[
            &r.id,
            &r.issuer,
            &r.audience,
            &r.subject,
            &codec::rule_claims_text(r),
            &r.client_id,
            &codec::rule_scopes_text(r),
            &r.single_use,
            &r.created_at,
        ],
    )
    .await?;
    Ok(())
}
