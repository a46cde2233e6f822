//! The one row codec of both backends: column lists, and how each record is
//! read from a row and written as column values. A backend supplies typed
//! column access ([`Columns`]); the mapping of columns to fields is here once.

use std::sync::OnceLock;

use super::{
    ApiKeyRecord, AuditEntry, Client, ClientSecretRecord, Result, RevocationRecord, SecretRow,
    SigningKeyRecord, StoreError,
};

/// The `clients` columns every query selects, in [`client`]'s order.
pub const CLIENT_COLUMNS: &str = "id, name, owner, scopes, audiences, token_ttl, disabled, \
     tokens_revoked_before, created_at, updated_at, token_quota, quota_window, quota_ban, \
     token_endpoint_auth_method, jwks, jwks_uri, dpop_bound_access_tokens, \
     tls_client_auth_subject_dn, tls_client_auth_san_dns, tls_client_auth_san_uri, \
     tls_client_auth_san_ip, tls_client_auth_san_email, tls_client_certificate_bound_access_tokens, \
     token_exchange, claims";

/// The client with id `{1}`, or when there is none another client (a
/// decoy), in [`CLIENT_COLUMNS`] order, then its secrets live at `{2}`
/// (Unix seconds) in four more columns (`id, digest, created_at,
/// expires_at`, all NULL when it has none): one row per secret, by id. A
/// cache miss on the token path is one statement, one connection and, on
/// PostgreSQL, one round trip. The decoy makes a first lookup of an unknown
/// id read and decode a row and its secrets like one of a known id, so the
/// two cost the same work (issue 23, item 11); the caller keeps the rows
/// only if the client's id is the one asked for. Read with
/// [`client_with_secrets`]. Built once per backend: it runs on every miss.
pub fn client_with_secrets_sql(backend: Placeholders) -> &'static str {
    static SQLITE: OnceLock<String> = OnceLock::new();
    static POSTGRES: OnceLock<String> = OnceLock::new();
    let (cell, id, now) = match backend {
        Placeholders::Question => (&SQLITE, "?1", "?2"),
        Placeholders::Dollar => (&POSTGRES, "$1", "$2"),
    };
    cell.get_or_init(|| {
        let columns = CLIENT_COLUMNS
            .split(',')
            .map(|c| format!("c.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        // No sort and no temporary table: the client is one row found by
        // key (the decoy is the first id, an end of the key's index), so
        // its secrets come out of their index already in id order.
        format!(
            "SELECT {columns}, s.id, s.digest, s.created_at, s.expires_at \
             FROM clients AS c \
             LEFT JOIN client_secrets AS s \
               ON s.client_id = c.id AND (s.expires_at IS NULL OR s.expires_at > {now}) \
             WHERE c.id = coalesce( \
               (SELECT id FROM clients WHERE id = {id}), \
               (SELECT min(id) FROM clients)) \
             ORDER BY s.id"
        )
    })
}

/// How a backend writes a statement's numbered parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// SQLite's `?1`.
    Question,
    /// PostgreSQL's `$1`.
    Dollar,
}

/// Reads one row of [`client_with_secrets_sql`] into `found`: the client
/// (or the decoy) from the first row, a secret from each row that has one.
/// `found` stays `None` when there is no row at all (no client stored).
pub fn client_with_secrets(
    found: &mut Option<(Client, Vec<ClientSecretRecord>)>,
    row: &impl Columns,
) -> Result<()> {
    let (_, secrets) = match found {
        Some(f) => f,
        None => found.insert((client(row)?, Vec::new())),
    };
    let at = Shifted(row, CLIENT_COLUMN_COUNT);
    if at.int_opt(0)?.is_some() {
        secrets.push(client_secret(&at)?);
    }
    Ok(())
}

/// What [`client_with_secrets`] read, for the id asked: the client and its
/// secrets when the row was that client's, nothing when it was the decoy.
pub fn asked_client(
    found: Option<(Client, Vec<ClientSecretRecord>)>,
    id: &str,
) -> (Option<Client>, Vec<ClientSecretRecord>) {
    match found {
        Some((c, secrets)) if c.id == id => (Some(c), secrets),
        _ => (None, Vec::new()),
    }
}

/// How many columns [`CLIENT_COLUMNS`] names: its commas and one,
/// counted when the crate is compiled.
const CLIENT_COLUMN_COUNT: usize = {
    let list = CLIENT_COLUMNS.as_bytes();
    let (mut i, mut n) = (0, 1);
    while i < list.len() {
        if list[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
};

/// A row read from column `.1` on: the columns after a record's own.
struct Shifted<'a, R>(&'a R, usize);

impl<R: Columns> Columns for Shifted<'_, R> {
    fn text(&self, i: usize) -> Result<String> {
        self.0.text(i + self.1)
    }
    fn text_opt(&self, i: usize) -> Result<Option<String>> {
        self.0.text_opt(i + self.1)
    }
    fn int(&self, i: usize) -> Result<i64> {
        self.0.int(i + self.1)
    }
    fn int_opt(&self, i: usize) -> Result<Option<i64>> {
        self.0.int_opt(i + self.1)
    }
    fn flag(&self, i: usize) -> Result<bool> {
        self.0.flag(i + self.1)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        self.0.bytes(i + self.1)
    }
    fn json(&self, i: usize) -> Result<serde_json::Value> {
        self.0.json(i + self.1)
    }
}

/// The `api_keys` columns every query selects, in [`api_key`]'s order.
pub const KEY_COLUMNS: &str =
    "id, client_id, name, digest, prefix, last4, created_at, expires_at, last_used_at, revoked_at";

/// The `signing_keys` columns, in [`signing_key`]'s order.
pub const SIGNING_KEY_COLUMNS: &str =
    "kid, alg, created_at, activates_at, retired_at, compromised_at, location, public_jwk";

/// The `federation_issuers` columns, in [`federation_issuer`]'s order.
pub const FEDERATION_ISSUER_COLUMNS: &str = "id, issuer, jwks_uri, jwks, created_at, id_jag";

/// The `federation_rules` columns, in [`federation_rule`]'s order.
pub const FEDERATION_RULE_COLUMNS: &str =
    "id, issuer, audience, subject, claims, client_id, scopes, single_use, created_at";

/// The `ssf_streams` columns, in [`ssf_stream`]'s order.
pub const SSF_STREAM_COLUMNS: &str = "id, client_id, description, delivery_method, endpoint_url, \
     authorization_header, events_requested, status, status_reason, created_at, updated_at, \
     last_error, last_error_at, failing_since, attempts, retry_at";

/// A stream from a row of [`SSF_STREAM_COLUMNS`].
pub fn ssf_stream(r: &impl Columns) -> Result<super::SsfStream> {
    let method = r.text(3)?;
    let delivery = if method == crate::domain::ssf::POLL_METHOD {
        super::SsfDelivery::Poll
    } else {
        super::SsfDelivery::Push {
            endpoint_url: r.text_opt(4)?.unwrap_or_default(),
            authorization_header: r.text_opt(5)?,
        }
    };
    Ok(super::SsfStream {
        id: r.text(0)?,
        client_id: r.text(1)?,
        description: r.text_opt(2)?,
        delivery,
        events_requested: serde_json::from_str(&r.text(6)?)
            .map_err(|e| StoreError::Corrupt(format!("events_requested: {e}")))?,
        status: super::StreamStatus::parse(&r.text(7)?)
            .ok_or_else(|| StoreError::Corrupt("stream status".into()))?,
        status_reason: r.text_opt(8)?,
        created_at: r.int(9)?,
        updated_at: r.int(10)?,
        last_error: r.text_opt(11)?,
        last_error_at: r.int_opt(12)?,
        failing_since: r.int_opt(13)?,
        attempts: r.int(14)?,
        retry_at: r.int(15)?,
    })
}

/// A stream's columns after `id` as stored, in [`SSF_STREAM_COLUMNS`]'
/// order: client, description, method, URL, header, events (JSON),
/// status, reason, created, updated, error, error time, failing since,
/// attempts, retry time.
#[allow(clippy::type_complexity)]
pub fn ssf_stream_values(
    s: &super::SsfStream,
) -> (
    &str,
    Option<&str>,
    &'static str,
    Option<&str>,
    Option<&str>,
    String,
    &'static str,
) {
    let (url, header) = match &s.delivery {
        super::SsfDelivery::Push {
            endpoint_url,
            authorization_header,
        } => (Some(endpoint_url.as_str()), authorization_header.as_deref()),
        super::SsfDelivery::Poll => (None, None),
    };
    (
        &s.client_id,
        s.description.as_deref(),
        s.delivery.method(),
        url,
        header,
        serde_json::to_string(&s.events_requested).unwrap_or_else(|_| "[]".into()),
        s.status.as_str(),
    )
}

/// The `console_sessions` columns, in [`console_session`]'s order.
pub const CONSOLE_SESSION_COLUMNS: &str =
    "id, created_by, created_at, link_expires_at, opened_at, last_seen_at, revoked_at";

/// Typed access to the columns of one row, by position.
pub trait Columns {
    /// A text column.
    fn text(&self, i: usize) -> Result<String>;
    /// A nullable text column.
    fn text_opt(&self, i: usize) -> Result<Option<String>>;
    /// An integer column.
    fn int(&self, i: usize) -> Result<i64>;
    /// A nullable integer column.
    fn int_opt(&self, i: usize) -> Result<Option<i64>>;
    /// A boolean column (SQLite stores 0 or 1).
    fn flag(&self, i: usize) -> Result<bool>;
    /// A binary column.
    fn bytes(&self, i: usize) -> Result<Vec<u8>>;
    /// A JSON column (SQLite stores text, PostgreSQL `jsonb`).
    fn json(&self, i: usize) -> Result<serde_json::Value>;
}

/// Scopes as stored: space-separated scope tokens.
pub fn scopes_text(c: &Client) -> String {
    c.scopes.join(" ")
}

/// Audiences as stored: a JSON array, the first being the default.
pub fn audiences_json(c: &Client) -> String {
    serde_json::to_string(&c.audiences).unwrap_or_else(|_| "[]".into())
}

/// The token quota as stored: a signed integer, saturating.
pub fn quota_value(c: &Client) -> Option<i64> {
    c.token_quota.map(|q| q.min(i64::MAX as u64) as i64)
}

/// The token-exchange policy as stored: JSON text, or NULL for none.
pub fn exchange_json(c: &Client) -> Option<String> {
    c.token_exchange
        .as_ref()
        .and_then(|p| serde_json::to_string(p).ok())
}

/// The extra claims as stored: JSON text, or NULL for none.
pub fn claims_json(c: &Client) -> Option<String> {
    c.claims
        .as_ref()
        .and_then(|m| serde_json::to_string(m).ok())
}

/// The authentication columns as stored: the method's name, the inline key
/// set as JSON text, the key URL, and the five `tls_client_auth_*` names.
pub fn auth_columns(
    c: &Client,
) -> (
    &'static str,
    Option<String>,
    Option<String>,
    [Option<String>; 5],
) {
    let p = c.auth.parts();
    (
        p.method.as_str(),
        p.jwks.map(|j| j.to_string()),
        p.jwks_uri,
        p.names,
    )
}

/// A client from a row of [`CLIENT_COLUMNS`].
pub fn client(r: &impl Columns) -> Result<Client> {
    let audiences = r.text(4)?;
    Ok(Client {
        id: r.text(0)?,
        name: r.text(1)?,
        owner: r.text_opt(2)?,
        scopes: r
            .text(3)?
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        audiences: serde_json::from_str(&audiences)
            .map_err(|e| StoreError::Corrupt(format!("audiences: {e}")))?,
        token_ttl: r.int_opt(5)?,
        disabled: r.flag(6)?,
        tokens_revoked_before: r.int_opt(7)?,
        created_at: r.int(8)?,
        updated_at: r.int(9)?,
        token_quota: r.int_opt(10)?.map(|q| q.max(0) as u64),
        quota_window: r.int_opt(11)?,
        quota_ban: r.int_opt(12)?,
        auth: crate::domain::ClientAuth::from_parts(crate::domain::AuthParts {
            method: {
                let m = r.text(13)?;
                crate::domain::ClientAuthMethod::parse(&m)
                    .ok_or_else(|| StoreError::Corrupt(format!("auth method {m:?}")))?
            },
            jwks: r
                .text_opt(14)?
                .map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("jwks: {e}")))?,
            jwks_uri: r.text_opt(15)?,
            names: [
                r.text_opt(17)?,
                r.text_opt(18)?,
                r.text_opt(19)?,
                r.text_opt(20)?,
                r.text_opt(21)?,
            ],
        })
        .map_err(|e| StoreError::Corrupt(format!("client authentication: {e}")))?,
        dpop_bound_access_tokens: r.flag(16)?,
        tls_client_certificate_bound_access_tokens: r.flag(22)?,
        token_exchange: r
            .text_opt(23)?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("token_exchange: {e}")))?,
        claims: r
            .text_opt(24)?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("claims: {e}")))?,
    })
}

/// An API key from a row of [`KEY_COLUMNS`].
pub fn api_key(r: &impl Columns) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.text(0)?,
        client_id: r.text(1)?,
        name: r.text_opt(2)?,
        digest: r.bytes(3)?,
        prefix: r.text(4)?,
        last4: r.text(5)?,
        created_at: r.int(6)?,
        expires_at: r.int_opt(7)?,
        last_used_at: r.int_opt(8)?,
        revoked_at: r.int_opt(9)?,
    })
}

/// A signing-key record from a row of [`SIGNING_KEY_COLUMNS`].
pub fn signing_key(r: &impl Columns) -> Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: r.text(0)?,
        alg: r.text(1)?,
        created_at: r.int(2)?,
        activates_at: r.int(3)?,
        retired_at: r.int_opt(4)?,
        compromised_at: r.int_opt(5)?,
        location: crate::domain::KeyLocation::parse(&r.text(6)?),
        public_jwk: r
            .text_opt(7)?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("public_jwk: {e}")))?,
    })
}

/// An audit entry from a row of `id, at, actor, action, target, detail`.
pub fn audit(r: &impl Columns) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.int(0)?,
        at: r.int(1)?,
        actor: r.text(2)?,
        action: r.text(3)?,
        target: r.text_opt(4)?,
        detail: r.json(5)?,
    })
}

/// A console link or session from a row of [`CONSOLE_SESSION_COLUMNS`].
pub fn console_session(r: &impl Columns) -> Result<super::ConsoleSession> {
    Ok(super::ConsoleSession {
        id: r.text(0)?,
        created_by: r.text(1)?,
        created_at: r.int(2)?,
        link_expires_at: r.int(3)?,
        opened_at: r.int_opt(4)?,
        last_seen_at: r.int_opt(5)?,
        revoked_at: r.int_opt(6)?,
    })
}

/// A live secret from a row of `id, digest, created_at, expires_at`.
pub fn client_secret(r: &impl Columns) -> Result<ClientSecretRecord> {
    Ok(ClientSecretRecord {
        id: r.int(0)?,
        digest: r.bytes(1)?,
        created_at: r.int(2)?,
        expires_at: r.int_opt(3)?,
    })
}

/// A secret of a dump from a row of `client_id, digest, created_at, expires_at`.
pub fn secret_row(r: &impl Columns) -> Result<SecretRow> {
    Ok(SecretRow {
        client_id: r.text(0)?,
        digest: r.bytes(1)?,
        created_at: r.int(2)?,
        expires_at: r.int_opt(3)?,
    })
}

/// A revocation from a row of `jti, client_id, expires_at, revoked_at`.
pub fn revocation(r: &impl Columns) -> Result<RevocationRecord> {
    Ok(RevocationRecord {
        jti: r.text(0)?,
        client_id: r.text(1)?,
        expires_at: r.int(2)?,
        revoked_at: r.int(3)?,
    })
}

/// A trusted issuer from a row of [`FEDERATION_ISSUER_COLUMNS`].
pub fn federation_issuer(r: &impl Columns) -> Result<crate::domain::FederationIssuer> {
    Ok(crate::domain::FederationIssuer {
        id: r.text(0)?,
        issuer: r.text(1)?,
        jwks_uri: r.text_opt(2)?,
        jwks: r
            .text_opt(3)?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("federation jwks: {e}")))?,
        created_at: r.int(4)?,
        id_jag: r.flag(5)?,
    })
}

/// The `cimd_hosts` columns, in [`cimd_host`]'s order.
pub const CIMD_HOST_COLUMNS: &str = "host, scopes, audiences, created_at";

/// A URL clients' host from a row of [`CIMD_HOST_COLUMNS`].
pub fn cimd_host(r: &impl Columns) -> Result<crate::domain::CimdHost> {
    let audiences = r.text(2)?;
    Ok(crate::domain::CimdHost {
        host: r.text(0)?,
        scopes: r
            .text(1)?
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        audiences: serde_json::from_str(&audiences)
            .map_err(|e| StoreError::Corrupt(format!("cimd audiences: {e}")))?,
        created_at: r.int(3)?,
    })
}

/// A blocked URL client from a row of `url, created_at`.
pub fn cimd_block(r: &impl Columns) -> Result<crate::domain::CimdBlock> {
    Ok(crate::domain::CimdBlock {
        url: r.text(0)?,
        created_at: r.int(1)?,
    })
}

/// The SQL that stores a URL clients' host (insert or replace), with
/// placeholders `p(1)` … `p(4)` for [`CIMD_HOST_COLUMNS`].
pub fn put_cimd_host_sql(p: impl Fn(usize) -> String) -> String {
    format!(
        "INSERT INTO cimd_hosts ({CIMD_HOST_COLUMNS}) VALUES ({}, {}, {}, {}) \
         ON CONFLICT (host) DO UPDATE SET scopes = excluded.scopes, \
         audiences = excluded.audiences, created_at = excluded.created_at",
        p(1),
        p(2),
        p(3),
        p(4)
    )
}

/// A federation rule from a row of [`FEDERATION_RULE_COLUMNS`].
pub fn federation_rule(r: &impl Columns) -> Result<crate::domain::FederationRule> {
    Ok(crate::domain::FederationRule {
        id: r.text(0)?,
        issuer: r.text(1)?,
        audience: r.text(2)?,
        subject: r.text_opt(3)?,
        claims: serde_json::from_str(&r.text(4)?)
            .map_err(|e| StoreError::Corrupt(format!("federation claims: {e}")))?,
        client_id: r.text(5)?,
        scopes: r.text_opt(6)?.map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        }),
        single_use: r.flag(7)?,
        created_at: r.int(8)?,
    })
}

/// A rule's claim conditions as stored: a JSON object.
pub fn rule_claims_text(r: &crate::domain::FederationRule) -> String {
    serde_json::to_string(&r.claims).unwrap_or_else(|_| "{}".into())
}

/// A rule's scopes as stored: space-separated, `None` for the client's.
pub fn rule_scopes_text(r: &crate::domain::FederationRule) -> Option<String> {
    r.scopes.as_ref().map(|s| s.join(" "))
}

/// An issuer's inline keys as stored: JSON text.
pub fn issuer_jwks_text(i: &crate::domain::FederationIssuer) -> Option<String> {
    i.jwks.as_ref().map(|j| j.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_count_is_the_lists() {
        assert_eq!(CLIENT_COLUMNS.split(',').count(), CLIENT_COLUMN_COUNT);
    }

    #[test]
    fn each_backend_has_its_own_placeholders() {
        let q = client_with_secrets_sql(Placeholders::Question);
        assert!(q.contains("id = ?1") && q.contains("> ?2") && !q.contains('$'));
        let d = client_with_secrets_sql(Placeholders::Dollar);
        assert!(d.contains("id = $1") && d.contains("> $2") && !d.contains('?'));
    }
}
