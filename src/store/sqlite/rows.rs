//! SQLite rows to records and back, through the shared codec, and the
//! inserts several writes share.

use rusqlite::{params, Connection, Row};

use super::*;

pub(super) fn insert_audit(c: &Connection, e: &AuditEntry) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        e.at,
        e.actor,
        e.action,
        e.target,
        e.detail.to_string()
    ])?;
    Ok(())
}

/// Typed column access for the shared codec.
impl codec::Columns for Row<'_> {
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.get(i)?)
    }
    fn text_opt(&self, i: usize) -> Result<Option<String>> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.get(i)?)
    }
    fn int_opt(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool> {
        Ok(self.get(i)?)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        Ok(self.get(i)?)
    }
    fn json(&self, i: usize) -> Result<serde_json::Value> {
        let text: String = self.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }
}

/// A codec result as rusqlite's row-mapper type.
pub(super) fn mapped<T>(r: Result<T>) -> rusqlite::Result<T> {
    r.map_err(|e| match e {
        StoreError::Sqlite(e) => e,
        other => rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Null,
            Box::new(other),
        ),
    })
}

pub(super) fn client_from_row(r: &Row<'_>) -> rusqlite::Result<Client> {
    mapped(codec::client(r))
}

pub(super) fn key_from_row(r: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    mapped(codec::api_key(r))
}

pub(super) fn signing_key_from_row(r: &Row<'_>) -> rusqlite::Result<SigningKeyRecord> {
    mapped(codec::signing_key(r))
}

pub(super) fn audit_from_row(r: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    mapped(codec::audit(r))
}

/// Inserts a client row and, when given, its first secret.
/// Placeholders for the values of [`CLIENT_COLUMNS`], `?1` being the id.
pub(super) const CLIENT_VALUES: &str =
    "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, \
     ?21, ?22, ?23, ?24, ?25";

/// The values of [`CLIENT_COLUMNS`], in order: one list for insert and update.
pub(super) fn client_values(c: &Client) -> Vec<Box<dyn rusqlite::ToSql>> {
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
        Box::new(method),
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

pub(super) fn insert_client(
    tx: &Connection,
    c: &Client,
    secret_digest: Option<&[u8]>,
) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO clients ({CLIENT_COLUMNS}) VALUES ({CLIENT_VALUES})"
    ))?
    .execute(rusqlite::params_from_iter(client_values(c)))?;
    if let Some(digest) = secret_digest {
        tx.prepare_cached(
            "INSERT INTO client_secrets (client_id, digest, created_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![c.id, digest, c.created_at])?;
    }
    Ok(())
}

pub(super) fn insert_api_key(tx: &Connection, k: &ApiKeyRecord) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?
    .execute(params![
        k.id,
        k.client_id,
        k.name,
        k.digest,
        k.prefix,
        k.last4,
        k.created_at,
        k.expires_at,
        k.last_used_at,
        k.revoked_at
    ])?;
    Ok(())
}

pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], f)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
