//! The blocking queries behind [`SqliteStore`]'s reads and writes, on the
//! writer connection or a pooled reader.

use rusqlite::{params, Connection, OptionalExtension};

use super::*;

impl Db {
    pub(super) fn create_client(
        &self,
        c: &Client,
        secret_digest: Option<&[u8]>,
        audit: &AuditEntry,
    ) -> Result<()> {
        self.write(Some(Change::Client(c.id.clone())), |tx| {
            insert_client(tx, c, secret_digest)?;
            insert_audit(tx, audit)
        })
    }

    pub(super) fn import_clients(
        &self,
        clients: &[(Client, Vec<u8>)],
        audit: &AuditEntry,
    ) -> Result<()> {
        self.write(Some(Change::Everything), |tx| {
            for (c, digest) in clients {
                insert_client(tx, c, Some(digest))?;
            }
            insert_audit(tx, audit)
        })
    }

    pub(super) fn get_client(&self, id: &str) -> Result<Option<Client>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id = ?1"
        ))?;
        Ok(stmt.query_row([id], client_from_row).optional()?)
    }

    pub(super) fn list_clients(&self, after: Option<&str>, limit: u32) -> Result<Vec<Client>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id > ?1 ORDER BY id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![after.unwrap_or(""), limit], client_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub(super) fn update_client(&self, c: &Client, audit: &AuditEntry) -> Result<bool> {
        // Every column from the same list as the insert (the id and the
        // creation time are written back unchanged).
        self.write(Some(Change::Client(c.id.clone())), |tx| {
            let n = tx
                .prepare_cached(&format!(
                    "UPDATE clients SET ({CLIENT_COLUMNS}) = ({CLIENT_VALUES}) WHERE id = ?1"
                ))?
                .execute(rusqlite::params_from_iter(client_values(c)))?;
            if n != 1 {
                return Ok(false);
            }
            if !c.auth.uses_secret() {
                // A keyless method has no live secret: moving back needs
                // rotate-secret, never the old secret revived.
                tx.prepare_cached(EXPIRE_SECRETS_SQLITE)?
                    .execute(params![c.id, c.updated_at])?;
            }
            insert_audit(tx, audit)?;
            Ok(true)
        })
    }

    pub(super) fn delete_client(&self, id: &str, audit: &AuditEntry) -> Result<bool> {
        self.write_one(
            Change::Client(id.to_string()),
            "DELETE FROM clients WHERE id = ?1",
            [id],
            audit,
        )
    }

    pub(super) fn live_secrets(
        &self,
        client_id: &str,
        now: i64,
    ) -> Result<Vec<ClientSecretRecord>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, digest, created_at, expires_at FROM client_secrets \
             WHERE client_id = ?1 AND (expires_at IS NULL OR expires_at > ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![client_id, now], |r| mapped(codec::client_secret(r)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub(super) fn rotate_secret(
        &self,
        client_id: &str,
        digest: &[u8],
        now: i64,
        old_expire_at: i64,
        max_live: usize,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.write(Some(Change::Client(client_id.to_string())), |tx| {
            let exists: Option<i64> = tx
                .prepare_cached("SELECT 1 FROM clients WHERE id = ?1")?
                .query_row([client_id], |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                return Ok(false);
            }
            tx.prepare_cached(
                "UPDATE client_secrets SET expires_at = ?2 WHERE client_id = ?1 \
                 AND (expires_at IS NULL OR expires_at > ?2)",
            )?
            .execute(params![client_id, old_expire_at])?;
            tx.prepare_cached(
                "INSERT INTO client_secrets (client_id, digest, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![client_id, digest, now])?;
            // Keep at most `max_live` secrets live: the oldest ones end now.
            tx.prepare_cached(
                "UPDATE client_secrets SET expires_at = ?2 WHERE id IN ( \
                   SELECT id FROM client_secrets WHERE client_id = ?1 \
                   AND (expires_at IS NULL OR expires_at > ?2) ORDER BY id DESC LIMIT -1 OFFSET ?3)",
            )?
            .execute(params![client_id, now, max_live as i64])?;
            // Forget secrets that ended more than a day ago.
            tx.prepare_cached(
                "DELETE FROM client_secrets WHERE client_id = ?1 AND expires_at < ?2",
            )?
            .execute(params![client_id, now - 86_400])?;
            insert_audit(tx, audit)?;
            Ok(true)
        })
    }

    pub(super) fn create_api_key(
        &self,
        k: &ApiKeyRecord,
        max_active: u32,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<ApiKeyCreate> {
        let change = Change::ApiKey {
            id: k.id.clone(),
            digest: Some(k.digest.clone()),
        };
        self.write(Some(change), |tx| {
            let exists: Option<i64> = tx
                .prepare_cached("SELECT 1 FROM clients WHERE id = ?1")?
                .query_row([&k.client_id], |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                return Ok(ApiKeyCreate::NoSuchClient);
            }
            let active: u32 = tx
                .prepare_cached(
                    "SELECT count(*) FROM api_keys WHERE client_id = ?1 AND revoked_at IS NULL \
                     AND (expires_at IS NULL OR expires_at > ?2)",
                )?
                .query_row(params![k.client_id, now], |r| r.get(0))?;
            if active >= max_active {
                return Ok(ApiKeyCreate::LimitReached(max_active));
            }
            insert_api_key(tx, k)?;
            insert_audit(tx, audit)?;
            Ok(ApiKeyCreate::Created)
        })
    }

    pub(super) fn find_api_key(&self, digest: &[u8]) -> Result<Option<ApiKeyRecord>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE digest = ?1"
        ))?;
        Ok(stmt.query_row([digest], key_from_row).optional()?)
    }

    pub(super) fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"))?;
        Ok(stmt.query_row([id], key_from_row).optional()?)
    }

    pub(super) fn list_api_keys(&self, client_id: &str) -> Result<Vec<ApiKeyRecord>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE client_id = ?1 ORDER BY created_at DESC, id"
        ))?;
        let rows = stmt.query_map([client_id], key_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub(super) fn revoke_api_key(&self, id: &str, now: i64, audit: &AuditEntry) -> Result<bool> {
        self.write_one(
            Change::ApiKey {
                id: id.to_string(),
                digest: None,
            },
            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now],
            audit,
        )
    }

    pub(super) fn touch_api_keys(&self, uses: &[(String, i64)]) -> Result<()> {
        // The last use of a key is not cached state: no change to report.
        self.write(None, |tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1 \
                 AND (last_used_at IS NULL OR last_used_at < ?2)",
            )?;
            for (id, at) in uses {
                stmt.execute(params![id, at])?;
            }
            Ok(())
        })
    }

    pub(super) fn revoke_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        self.write_one(
            Change::Revocation(jti.to_string()),
            "INSERT OR IGNORE INTO revoked_tokens (jti, client_id, expires_at, revoked_at) \
                     VALUES (?1, ?2, ?3, ?4)",
            params![jti, client_id, expires_at, now],
            audit,
        )
        .map(|_| ())
    }

    pub(super) fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        let conn = self.conn()?;
        let found: Option<i64> = conn
            .prepare_cached("SELECT 1 FROM revoked_tokens WHERE jti = ?1")?
            .query_row([jti], |r| r.get(0))
            .optional()?;
        Ok(found.is_some())
    }

    pub(super) fn prune_revocations(&self, now: i64) -> Result<usize> {
        // Only revocations of expired tokens go: no cached answer changes.
        self.write(None, |tx| {
            tx.prepare_cached("DELETE FROM assertion_jtis WHERE expires_at < ?1")?
                .execute([now])?;
            Ok(tx
                .prepare_cached("DELETE FROM revoked_tokens WHERE expires_at < ?1")?
                .execute([now])?)
        })
    }

    /// Commits every queued `jti`, batch after batch, until none is left;
    /// runs on the blocking pool.
    pub(super) fn commit_assertions(&self) {
        let _guard = self.assertions.guard();
        while let Some((items, senders)) = self.assertions.take() {
            for (answer, tx) in self.record_assertions(&items).into_iter().zip(senders) {
                let _ = tx.send(answer);
            }
        }
    }

    /// One transaction for every queued `jti`: each answer in order, or the
    /// failure for all of them (a refused commit records none).
    pub(super) fn record_assertions(&self, queued: &[AssertionUse]) -> Vec<AssertionAnswer> {
        // Not cached state: no change to report.
        let written = self.write(None, |tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE assertion_jtis.expires_at < ?4",
            )?;
            queued
                .iter()
                .map(|(client, jti, exp, now)| {
                    Ok(stmt.execute(params![client, jti, exp, now])? == 1)
                })
                .collect::<Result<Vec<bool>>>()
        });
        match written {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => {
                let text = e.to_string();
                queued.iter().map(|_| Err(text.clone())).collect()
            }
        }
    }

    pub(super) fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys ORDER BY activates_at, created_at"
        ))?;
        let rows = stmt.query_map([], signing_key_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub(super) fn insert_signing_key(
        &self,
        k: &SigningKeyRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<()> {
        self.write(Some(Change::SigningKeys), |tx| {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO signing_keys \
                 (kid, alg, created_at, activates_at, retired_at, compromised_at, \
                 location, public_jwk) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                k.kid,
                k.alg,
                k.created_at,
                k.activates_at,
                k.retired_at,
                k.compromised_at,
                k.location.as_str(),
                k.public_jwk.as_ref().map(|j| j.to_string()),
            ])?;
            if let Some(a) = audit {
                insert_audit(tx, a)?;
            }
            Ok(())
        })
    }

    pub(super) fn retire_signing_key(
        &self,
        kid: &str,
        at: i64,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.write_one(
            Change::SigningKeys,
            "UPDATE signing_keys SET retired_at = ?2 WHERE kid = ?1 AND retired_at IS NULL",
            params![kid, at],
            audit,
        )
    }

    pub(super) fn compromise_signing_key(
        &self,
        kid: &str,
        at: i64,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.write_one(
            Change::SigningKeys,
            "UPDATE signing_keys SET compromised_at = ?2, \
             retired_at = min(coalesce(retired_at, ?2), ?2) \
             WHERE kid = ?1 AND compromised_at IS NULL",
            params![kid, at],
            audit,
        )
    }

    pub(super) fn probe_write(&self, now: i64) -> Result<()> {
        // A probe is no change for the caches.
        self.write(None, |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO write_probe (id, at) VALUES (1, ?1)",
                params![now],
            )?;
            Ok(())
        })
    }

    pub(super) fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        self.write(None, |tx| insert_audit(tx, entry))
    }

    pub(super) fn list_audit(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, actor, action, target, detail FROM audit_log WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit], audit_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub(super) fn ping(&self) -> Result<()> {
        let conn = self.conn()?;
        conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }

    /// `PRAGMA data_version` on the writer: it moves only when another
    /// connection commits, which is another process (the command line,
    /// another server on the file, an `sqlite3` shell).
    pub(super) fn external_change_marker(&self) -> Result<i64> {
        Ok(crate::sync::lock(&self.writer).query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    pub(super) fn export(&self) -> Result<Dump> {
        let mut conn = self.conn()?;
        // One read transaction: a consistent snapshot even while servers write.
        let tx = conn.transaction()?;
        let dump = Dump {
            clients: all(
                &tx,
                &format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id"),
                client_from_row,
            )?,
            secrets: all(
                &tx,
                "SELECT client_id, digest, created_at, expires_at FROM client_secrets ORDER BY id",
                |r| mapped(codec::secret_row(r)),
            )?,
            api_keys: all(
                &tx,
                &format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id"),
                key_from_row,
            )?,
            revocations: all(
                &tx,
                "SELECT jti, client_id, expires_at, revoked_at FROM revoked_tokens ORDER BY jti",
                |r| mapped(codec::revocation(r)),
            )?,
            signing_keys: all(
                &tx,
                &format!("SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys ORDER BY kid"),
                signing_key_from_row,
            )?,
            audit: all(
                &tx,
                "SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id",
                audit_from_row,
            )?,
            federation: read_federation(&tx)?,
        };
        tx.finish()?;
        Ok(dump)
    }

    pub(super) fn import(&self, dump: &Dump, audit: &AuditEntry) -> Result<bool> {
        self.write(Some(Change::Everything), |tx| {
            let used: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM clients) OR EXISTS (SELECT 1 FROM api_keys) \
                 OR EXISTS (SELECT 1 FROM revoked_tokens)",
                [],
                |r| r.get(0),
            )?;
            if used {
                return Ok(false);
            }
            for c in &dump.clients {
                insert_client(tx, c, None)?;
            }
            let mut secret = tx.prepare_cached(
                "INSERT INTO client_secrets (client_id, digest, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for s in &dump.secrets {
                secret.execute(params![s.client_id, s.digest, s.created_at, s.expires_at])?;
            }
            for k in &dump.api_keys {
                insert_api_key(tx, k)?;
            }
            let mut revoked = tx.prepare_cached(
                "INSERT OR IGNORE INTO revoked_tokens (jti, client_id, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for r in &dump.revocations {
                revoked.execute(params![r.jti, r.client_id, r.expires_at, r.revoked_at])?;
            }
            let mut key = tx.prepare_cached(
                "INSERT OR IGNORE INTO signing_keys \
                 (kid, alg, created_at, activates_at, retired_at, compromised_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for k in &dump.signing_keys {
                key.execute(params![k.kid, k.alg, k.created_at, k.activates_at, k.retired_at, k.compromised_at])?;
            }
            // The old log keeps its numbers; entries already here follow it.
            let offset = dump.audit.iter().map(|e| e.id).max().unwrap_or(0);
            tx.execute("UPDATE audit_log SET id = -id", [])?;
            tx.execute("UPDATE audit_log SET id = ?1 - id WHERE id < 0", [offset])?;
            let mut entry = tx.prepare_cached(
                "INSERT INTO audit_log (id, at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for e in &dump.audit {
                entry.execute(params![
                    e.id,
                    e.at,
                    e.actor,
                    e.action,
                    e.target,
                    e.detail.to_string()
                ])?;
            }
            for i in &dump.federation.issuers {
                insert_federation_issuer(tx, i)?;
            }
            for r in &dump.federation.rules {
                insert_federation_rule(tx, r)?;
            }
            insert_audit(tx, audit)?;
            Ok(true)
        })
    }

    pub(super) fn federation(&self) -> Result<Federation> {
        let conn = self.conn()?;
        read_federation(&conn)
    }

    pub(super) fn add_federation_issuer(
        &self,
        i: &FederationIssuer,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.write(Some(Change::Federation), |tx| {
            let n = insert_federation_issuer(tx, i)?;
            if n == 1 {
                insert_audit(tx, audit)?;
            }
            Ok(n == 1)
        })
    }

    pub(super) fn add_federation_rule(
        &self,
        r: &FederationRule,
        audit: &AuditEntry,
    ) -> Result<bool> {
        self.write(Some(Change::Federation), |tx| {
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM clients WHERE id = ?1) \
                 AND EXISTS (SELECT 1 FROM federation_issuers WHERE issuer = ?2)",
                params![r.client_id, r.issuer],
                |row| row.get(0),
            )?;
            if !exists {
                return Ok(false);
            }
            insert_federation_rule(tx, r)?;
            insert_audit(tx, audit)?;
            Ok(true)
        })
    }
}

pub(super) fn read_federation(c: &Connection) -> Result<Federation> {
    Ok(Federation {
        issuers: all(
            c,
            &format!("SELECT {FEDERATION_ISSUER_COLUMNS} FROM federation_issuers ORDER BY issuer"),
            |r| mapped(codec::federation_issuer(r)),
        )?,
        rules: all(
            c,
            &format!(
                "SELECT {FEDERATION_RULE_COLUMNS} FROM federation_rules ORDER BY created_at, id"
            ),
            |r| mapped(codec::federation_rule(r)),
        )?,
        cimd_hosts: all(
            c,
            &format!(
                "SELECT {} FROM cimd_hosts ORDER BY host",
                codec::CIMD_HOST_COLUMNS
            ),
            |r| mapped(codec::cimd_host(r)),
        )?,
        cimd_blocks: all(
            c,
            "SELECT url, created_at FROM cimd_blocks ORDER BY url",
            |r| mapped(codec::cimd_block(r)),
        )?,
    })
}

/// Inserts a trusted issuer unless its issuer identifier is taken; the rows
/// written.
pub(super) fn insert_federation_issuer(tx: &Connection, i: &FederationIssuer) -> Result<usize> {
    Ok(tx
        .prepare_cached(&format!(
            "INSERT OR IGNORE INTO federation_issuers ({FEDERATION_ISSUER_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        ))?
        .execute(params![
            i.id,
            i.issuer,
            i.jwks_uri,
            codec::issuer_jwks_text(i),
            i.created_at,
            i.id_jag
        ])?)
}

pub(super) fn insert_federation_rule(tx: &Connection, r: &FederationRule) -> Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO federation_rules ({FEDERATION_RULE_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?
    .execute(params![
        r.id,
        r.issuer,
        r.audience,
        r.subject,
        codec::rule_claims_text(r),
        r.client_id,
        codec::rule_scopes_text(r),
        r.single_use,
        r.created_at
    ])?;
    Ok(())
}
