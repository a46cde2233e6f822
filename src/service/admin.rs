//! Administrative operations, shared by the admin HTTP API and the command
//! line so that nothing is written twice. Every change writes an audit entry
//! in the same transaction.

use crate::store::ApiKeyStore;
use crate::store::ClientStore;
use serde_json::json;

use super::families::AdminError;
use crate::domain::{
    AuthParts, AuthPatch, ClientAuth, ClientAuthMethod, KeySource, RegisteredName,
};
use crate::secret::{self, SecretString};
use std::sync::Arc;

use super::authenticator::Authenticator;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::CachedStore;
use crate::store::{ApiKeyCreate, ApiKeyRecord, AuditEntry, Client};

/// At most this many client secrets are live at once during rotations.
pub const MAX_LIVE_SECRETS: usize = 5;

/// The fields of a new client.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// Display name (required).
    pub name: String,
    /// Free-text owner.
    #[serde(default)]
    pub owner: Option<String>,
    /// Allowed scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Allowed audiences; the first is the default.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Token lifetime in seconds.
    #[serde(default)]
    pub token_ttl: Option<i64>,
    /// Tokens per quota window (0: no quota); absent: the server default.
    #[serde(default)]
    pub token_quota: Option<u64>,
    /// Quota window in seconds; absent: the server default.
    #[serde(default)]
    pub quota_window: Option<i64>,
    /// Ban after exceeding the quota, in seconds; absent: the server default.
    #[serde(default)]
    pub quota_ban: Option<i64>,
    /// How it authenticates (RFC 7591 §2); absent: a secret.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<ClientAuthMethod>,
    /// Its public keys (RFC 7591 §2 `jwks`), for `private_key_jwt`.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// Where its public keys are published (RFC 7591 §2 `jwks_uri`).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// RFC 9449 §5.2: its token requests must carry a DPoP proof.
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// RFC 8705 §2.1.2, for `tls_client_auth`: the subject DN.
    #[serde(default)]
    pub tls_client_auth_subject_dn: Option<String>,
    /// RFC 8705 §2.1.2: a dNSName SAN.
    #[serde(default)]
    pub tls_client_auth_san_dns: Option<String>,
    /// RFC 8705 §2.1.2: a URI SAN (a SPIFFE ID).
    #[serde(default)]
    pub tls_client_auth_san_uri: Option<String>,
    /// RFC 8705 §2.1.2: an IP address SAN.
    #[serde(default)]
    pub tls_client_auth_san_ip: Option<String>,
    /// RFC 8705 §2.1.2: an email SAN.
    #[serde(default)]
    pub tls_client_auth_san_email: Option<String>,
    /// RFC 8705 §3.4: its tokens are bound to its certificate.
    #[serde(default)]
    pub tls_client_certificate_bound_access_tokens: bool,
    /// RFC 8693: its token-exchange policy; absent, none.
    #[serde(default)]
    pub token_exchange: Option<crate::domain::ExchangePolicy>,
    /// Extra claims for its tokens (a JSON object, at most 2 KiB).
    #[serde(default)]
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Changes to a client; absent fields stay as they are.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    /// New name.
    pub name: Option<String>,
    /// New owner (`null` clears it).
    #[serde(default, with = "serde_with_double_option")]
    pub owner: Option<Option<String>>,
    /// New scopes.
    pub scopes: Option<Vec<String>>,
    /// New audiences.
    pub audiences: Option<Vec<String>>,
    /// New TTL (`null` returns to the server default).
    #[serde(default, with = "serde_with_double_option")]
    pub token_ttl: Option<Option<i64>>,
    /// New quota (`null` returns to the server default, 0 is none).
    #[serde(default, with = "serde_with_double_option")]
    pub token_quota: Option<Option<u64>>,
    /// New quota window (`null` returns to the server default).
    #[serde(default, with = "serde_with_double_option")]
    pub quota_window: Option<Option<i64>>,
    /// New ban duration (`null` returns to the server default).
    #[serde(default, with = "serde_with_double_option")]
    pub quota_ban: Option<Option<i64>>,
    /// New authentication method.
    pub token_endpoint_auth_method: Option<ClientAuthMethod>,
    /// New inline keys (`null` removes them): a key rotation sends the old
    /// and the new key together, then the new one alone.
    #[serde(default, with = "serde_with_double_option")]
    pub jwks: Option<Option<serde_json::Value>>,
    /// New key location (`null` removes it).
    #[serde(default, with = "serde_with_double_option")]
    pub jwks_uri: Option<Option<String>>,
    /// Whether its token requests must carry a DPoP proof.
    pub dpop_bound_access_tokens: Option<bool>,
    /// New subject DN (`null` removes it).
    #[serde(default, with = "serde_with_double_option")]
    pub tls_client_auth_subject_dn: Option<Option<String>>,
    /// New dNSName SAN (`null` removes it).
    #[serde(default, with = "serde_with_double_option")]
    pub tls_client_auth_san_dns: Option<Option<String>>,
    /// New URI SAN (`null` removes it).
    #[serde(default, with = "serde_with_double_option")]
    pub tls_client_auth_san_uri: Option<Option<String>>,
    /// New IP SAN (`null` removes it).
    #[serde(default, with = "serde_with_double_option")]
    pub tls_client_auth_san_ip: Option<Option<String>>,
    /// New email SAN (`null` removes it).
    #[serde(default, with = "serde_with_double_option")]
    pub tls_client_auth_san_email: Option<Option<String>>,
    /// Whether its tokens are bound to its certificate.
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// New token-exchange policy (`null` removes it: no exchange).
    #[serde(default, with = "serde_with_double_option")]
    pub token_exchange: Option<Option<crate::domain::ExchangePolicy>>,
    /// New extra claims, whole (`null` removes them).
    #[serde(default, with = "serde_with_double_option")]
    pub claims: Option<Option<serde_json::Map<String, serde_json::Value>>>,
}

/// Tells a JSON `null` (clear) from an absent member (keep).
mod serde_with_double_option {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

pub(super) fn invalid(msg: impl Into<std::borrow::Cow<'static, str>>) -> AdminError {
    AdminError::invalid(msg)
}

/// An admin cannot lock itself out through the API: disabling, deleting or
/// revoking the tokens of the client it is authenticated as is refused (the
/// command line, or another admin client, can).
fn not_self(actor: &str, id: &str, what: &str) -> Result<(), AdminError> {
    if actor == id {
        return Err(AdminError::conflict(format!(
            "an admin client cannot {what} itself; use another admin client or the command line"
        )));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), AdminError> {
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(invalid("name must be 1 to 200 printable characters"));
    }
    Ok(())
}

fn check_owner(owner: &Option<String>) -> Result<(), AdminError> {
    if let Some(o) = owner {
        if o.chars().count() > 200 || o.chars().any(char::is_control) {
            return Err(invalid("owner must be at most 200 printable characters"));
        }
    }
    Ok(())
}

/// Scope tokens per RFC 6749 §3.3, in the one grammar Tollgate uses:
/// oxide-auth's `Scope` parser (the grant uses it too) decides what a valid
/// token is; Tollgate adds its limits (128 bytes a token, 64 tokens) and
/// keeps the client's order without duplicates.
pub(super) fn normalize_scopes(scopes: &[String]) -> Result<Vec<String>, AdminError> {
    let bad =
        || invalid("each scope must be 1 to 128 characters of the RFC 6749 §3.3 scope-token set");
    let mut out: Vec<String> = Vec::new();
    for text in scopes {
        let _: oxide_auth::primitives::scope::Scope = text.parse().map_err(|_| bad())?;
        for s in text.split(' ').filter(|s| !s.is_empty()) {
            if s.len() > 128 {
                return Err(bad());
            }
            if !out.iter().any(|o| o == s) {
                out.push(s.to_string());
            }
        }
    }
    if out.len() > 64 {
        return Err(invalid("at most 64 scopes"));
    }
    Ok(out)
}

fn check_quota_settings(
    quota: Option<u64>,
    window: Option<i64>,
    ban: Option<i64>,
) -> Result<(), AdminError> {
    if quota.is_some_and(|q| q > 1_000_000_000) {
        return Err(invalid("token_quota must be at most 1000000000"));
    }
    if window.is_some_and(|w| !(1..=30 * 86_400).contains(&w)) {
        return Err(invalid(
            "quota_window must be between 1 and 2592000 seconds",
        ));
    }
    if ban.is_some_and(|b| !(0..=30 * 86_400).contains(&b)) {
        return Err(invalid("quota_ban must be between 0 and 2592000 seconds"));
    }
    Ok(())
}

/// A client's extra claims: at most 2 KiB serialised, no reserved name
/// (every registered JWT claim, every claim Tollgate sets, any `tollgate…`).
/// An empty object is none.
fn check_claims(
    claims: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, AdminError> {
    let Some(claims) = claims.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let reserved = crate::domain::reserved_claims(&claims);
    if !reserved.is_empty() {
        let shown: Vec<String> = reserved
            .iter()
            .map(|n| n.chars().filter(|c| !c.is_control()).take(64).collect())
            .collect();
        return Err(invalid(format!(
            "claims: reserved names cannot be set: {}",
            shown.join(", ")
        )));
    }
    let len = serde_json::to_string(&claims).map_or(usize::MAX, |t| t.len());
    if len > crate::domain::MAX_CLIENT_CLAIMS_LEN {
        return Err(invalid(format!(
            "claims: {len} bytes serialised, over the limit of {}",
            crate::domain::MAX_CLIENT_CLAIMS_LEN
        )));
    }
    Ok(Some(claims))
}

pub(super) fn check_audiences(audiences: &[String]) -> Result<Vec<String>, AdminError> {
    let mut out: Vec<String> = Vec::new();
    for a in audiences {
        if a.is_empty() || a.len() > 512 || a.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "each audience must be 1 to 512 characters without spaces",
            ));
        }
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    if out.len() > 32 {
        return Err(invalid("at most 32 audiences"));
    }
    Ok(out)
}

/// Administration: clients, their secrets and API keys, federation
/// issuers and rules, and the audit log. Every change writes its audit
/// entry in the same transaction.
#[derive(Clone)]
pub struct Admin {
    /// Validated configuration.
    pub(super) config: Arc<Config>,
    /// The store, behind its cache.
    pub(super) store: Arc<CachedStore>,
    /// Prometheus metrics of this process.
    pub(super) metrics: Arc<Metrics>,
    /// Client authentication (a federation test verifies a token as the
    /// exchange would).
    pub(super) auth: Arc<Authenticator>,
}

impl Admin {
    /// What a client's method holds, checked: valid public keys (`jwks`) or
    /// a URL Tollgate may fetch (`jwks_uri`), or a well-formed registered
    /// name. The shape (one method, nothing of another) is
    /// [`ClientAuth::from_parts`]'s.
    fn check_auth(&self, auth: &ClientAuth) -> Result<(), AdminError> {
        match auth {
            ClientAuth::Secret(_) => Ok(()),
            ClientAuth::TlsClientAuth(name) => {
                crate::oauth::mtls::check_registered(name).map_err(invalid)
            }
            ClientAuth::PrivateKeyJwt(source) | ClientAuth::SelfSignedTls(source) => match source {
                KeySource::Jwks(j) => self.check_key_source(Some(j), None),
                KeySource::Uri(u) => self.check_key_source(None, Some(u)),
            },
        }
    }

    /// Public keys given inline (`jwks`: public keys of the accepted kinds)
    /// or by location (`jwks_uri`: a URL Tollgate may fetch), never both;
    /// neither is fine here. Clients and federation issuers alike.
    pub(super) fn check_key_source(
        &self,
        jwks: Option<&serde_json::Value>,
        jwks_uri: Option<&str>,
    ) -> Result<(), AdminError> {
        match (jwks, jwks_uri) {
            (Some(_), Some(_)) => Err(invalid("give jwks or jwks_uri, not both")),
            (Some(jwks), None) => crate::oauth::assertion::check_public_jwks(jwks)
                .map(|_| ())
                .map_err(|e| invalid(e.to_string())),
            (None, Some(uri)) => crate::fetch::check_url(uri, self.config.fetch_allow_local)
                .map(|_| ())
                .map_err(|e| invalid(format!("jwks_uri: {e}"))),
            (None, None) => Ok(()),
        }
    }

    fn check_ttl(&self, ttl: Option<i64>) -> Result<(), AdminError> {
        match ttl {
            Some(t) if !(1..=self.config.max_token_ttl).contains(&t) => Err(invalid(format!(
                "token_ttl must be between 1 and {} seconds",
                self.config.max_token_ttl
            ))),
            _ => Ok(()),
        }
    }

    /// Validates `input` and builds a new client with a fresh id.
    async fn new_client(&self, input: &NewClient, now: i64) -> Result<Client, AdminError> {
        check_name(&input.name)?;
        check_owner(&input.owner)?;
        self.check_ttl(input.token_ttl)?;
        check_quota_settings(input.token_quota, input.quota_window, input.quota_ban)?;
        let auth = ClientAuth::from_parts(AuthParts {
            method: input.token_endpoint_auth_method.unwrap_or_default(),
            jwks: input.jwks.clone(),
            jwks_uri: input.jwks_uri.clone(),
            names: [
                input.tls_client_auth_subject_dn.clone(),
                input.tls_client_auth_san_dns.clone(),
                input.tls_client_auth_san_uri.clone(),
                input.tls_client_auth_san_ip.clone(),
                input.tls_client_auth_san_email.clone(),
            ],
        })
        .map_err(invalid)?;
        self.check_auth(&auth)?;
        Ok(Client {
            id: secret::generate_id(secret::CLIENT_ID_PREFIX),
            name: input.name.trim().to_string(),
            owner: input.owner.clone(),
            scopes: normalize_scopes(&input.scopes)?,
            audiences: check_audiences(&input.audiences)?,
            token_ttl: input.token_ttl,
            disabled: false,
            tokens_revoked_before: None,
            token_quota: input.token_quota,
            quota_window: input.quota_window,
            quota_ban: input.quota_ban,
            created_at: now,
            updated_at: now,
            auth,
            dpop_bound_access_tokens: input.dpop_bound_access_tokens,
            tls_client_certificate_bound_access_tokens: input
                .tls_client_certificate_bound_access_tokens,
            token_exchange: self.check_exchange(input.token_exchange.clone()).await?,
            claims: check_claims(input.claims.clone())?,
        })
    }

    /// Creates a client; its secret is returned here and never again. A
    /// `private_key_jwt` client gets no secret.
    pub async fn create_client(
        &self,
        actor: &str,
        input: NewClient,
        now: i64,
    ) -> Result<(Client, Option<SecretString>), AdminError> {
        let client = self.new_client(&input, now).await?;
        let secret = client
            .auth
            .uses_secret()
            .then(|| secret::generate(secret::CLIENT_SECRET_PREFIX));
        let audit = AuditEntry::new(
            now,
            actor,
            "client.create",
            Some(&client.id),
            json!({
                "name": client.name,
                "scopes": client.scopes,
                "audiences": client.audiences,
                "token_endpoint_auth_method": client.auth.method(),
                "token_exchange": client.token_exchange,
            }),
        );
        let digest = secret.as_ref().map(SecretString::digest);
        self.store
            .create_client(&client, digest.as_ref().map(|d| &d[..]), &audit)
            .await?;
        Ok((client, secret))
    }

    /// Creates `count` clients like `template` in large transactions, for
    /// seeding and load tests; returns the credentials of the first `keep`.
    /// `progress` is called with the number stored so far.
    pub async fn seed_clients(
        &self,
        actor: &str,
        count: usize,
        template: &NewClient,
        keep: usize,
        now: i64,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<(String, SecretString)>, AdminError> {
        // Validated once, like a single creation; each client gets its own id.
        let model = self.new_client(template, now).await?;
        let mut kept = Vec::new();
        let mut done = 0;
        while done < count {
            let n = (count - done).min(50_000);
            let mut batch = Vec::with_capacity(n);
            for _ in 0..n {
                let secret = secret::generate(secret::CLIENT_SECRET_PREFIX);
                let client = Client {
                    id: secret::generate_id(secret::CLIENT_ID_PREFIX),
                    ..model.clone()
                };
                if kept.len() < keep {
                    kept.push((client.id.clone(), secret.clone()));
                }
                batch.push((client, secret.digest().to_vec()));
            }
            let audit = AuditEntry::new(now, actor, "client.seed", None, json!({"count": n}));
            self.store.import_clients(&batch, &audit).await?;
            done += n;
            progress(done);
        }
        Ok(kept)
    }

    /// One client, or 404.
    pub async fn get_client(&self, id: &str) -> Result<Client, AdminError> {
        self.store
            .get_client(id)
            .await?
            .ok_or_else(|| AdminError::not_found("no such client"))
    }

    /// A page of clients ordered by id.
    pub async fn list_clients(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Client>, AdminError> {
        super::error::no_nul(after.unwrap_or(""), "the cursor")
            .map_err(|e| AdminError::invalid(e.description))?;
        Ok(self.store.list_clients(after, limit.clamp(1, 1000)).await?)
    }

    async fn save_client(
        &self,
        actor: &str,
        client: &Client,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<(), AdminError> {
        let audit = AuditEntry::new(client.updated_at, actor, action, Some(&client.id), detail);
        if !self.store.update_client(client, &audit).await? {
            return Err(AdminError::not_found("no such client"));
        }
        Ok(())
    }

    /// Changes a client's name, owner, scopes, audiences or TTL.
    pub async fn update_client(
        &self,
        actor: &str,
        id: &str,
        patch: ClientPatch,
        now: i64,
    ) -> Result<Client, AdminError> {
        let mut c = self.get_client(id).await?;
        let mut changed = Vec::new();
        if let Some(name) = patch.name {
            check_name(&name)?;
            c.name = name.trim().to_string();
            changed.push("name");
        }
        if let Some(owner) = patch.owner {
            check_owner(&owner)?;
            c.owner = owner;
            changed.push("owner");
        }
        if let Some(scopes) = patch.scopes {
            c.scopes = normalize_scopes(&scopes)?;
            changed.push("scopes");
        }
        if let Some(aud) = patch.audiences {
            c.audiences = check_audiences(&aud)?;
            changed.push("audiences");
        }
        if let Some(ttl) = patch.token_ttl {
            self.check_ttl(ttl)?;
            c.token_ttl = ttl;
            changed.push("token_ttl");
        }
        if let Some(q) = patch.token_quota {
            c.token_quota = q;
            changed.push("token_quota");
        }
        if let Some(w) = patch.quota_window {
            c.quota_window = w;
            changed.push("quota_window");
        }
        if let Some(b) = patch.quota_ban {
            c.quota_ban = b;
            changed.push("quota_ban");
        }
        if let Some(dpop) = patch.dpop_bound_access_tokens {
            c.dpop_bound_access_tokens = dpop;
            changed.push("dpop_bound_access_tokens");
        }
        // The method is replaced whole (ClientAuth::patched), never repaired
        // field by field.
        let auth = AuthPatch {
            method: patch.token_endpoint_auth_method,
            jwks: patch.jwks,
            jwks_uri: patch.jwks_uri,
            names: [
                patch.tls_client_auth_subject_dn,
                patch.tls_client_auth_san_dns,
                patch.tls_client_auth_san_uri,
                patch.tls_client_auth_san_ip,
                patch.tls_client_auth_san_email,
            ],
        };
        if auth.method.is_some() {
            changed.push("token_endpoint_auth_method");
        }
        if auth.jwks.is_some() {
            changed.push("jwks");
        }
        if auth.jwks_uri.is_some() {
            changed.push("jwks_uri");
        }
        for (new, name) in auth.names.iter().zip(RegisteredName::FIELDS) {
            if new.is_some() {
                changed.push(name);
            }
        }
        c.auth = c.auth.patched(auth).map_err(invalid)?;
        self.check_auth(&c.auth)?;
        if let Some(bound) = patch.tls_client_certificate_bound_access_tokens {
            c.tls_client_certificate_bound_access_tokens = bound;
            changed.push("tls_client_certificate_bound_access_tokens");
        }
        if let Some(policy) = patch.token_exchange {
            c.token_exchange = self.check_exchange(policy).await?;
            changed.push("token_exchange");
        }
        if let Some(claims) = patch.claims {
            c.claims = check_claims(claims)?;
            changed.push("claims");
        }
        check_quota_settings(c.token_quota, c.quota_window, c.quota_ban)?;
        c.updated_at = now;
        self.save_client(actor, &c, "client.update", json!({"changed": changed}))
            .await?;
        Ok(c)
    }

    /// Disables or enables a client.
    pub async fn set_client_disabled(
        &self,
        actor: &str,
        id: &str,
        disabled: bool,
        now: i64,
    ) -> Result<Client, AdminError> {
        if disabled {
            not_self(actor, id, "disable")?;
        }
        let mut c = self.get_client(id).await?;
        c.disabled = disabled;
        c.updated_at = now;
        let action = if disabled {
            "client.disable"
        } else {
            "client.enable"
        };
        self.save_client(actor, &c, action, json!({})).await?;
        Ok(c)
    }

    /// Deletes a client with its secrets and API keys.
    pub async fn delete_client(&self, actor: &str, id: &str, now: i64) -> Result<(), AdminError> {
        not_self(actor, id, "delete")?;
        let audit = AuditEntry::new(now, actor, "client.delete", Some(id), json!({}));
        if !self.store.delete_client(id, &audit).await? {
            return Err(AdminError::not_found("no such client"));
        }
        Ok(())
    }

    /// Rotates a client's secret: the new one is returned once; older ones keep
    /// working for `grace` seconds (the configured default when `None`).
    pub async fn rotate_client_secret(
        &self,
        actor: &str,
        id: &str,
        grace: Option<i64>,
        now: i64,
    ) -> Result<(SecretString, i64), AdminError> {
        let grace = grace.unwrap_or(self.config.secret_grace);
        if !(0..=30 * 86_400).contains(&grace) {
            return Err(invalid("grace must be between 0 and 2592000 seconds"));
        }
        if !self.get_client(id).await?.auth.uses_secret() {
            return Err(invalid(
                "a private_key_jwt client has no secret; change its jwks or jwks_uri instead",
            ));
        }
        let secret = secret::generate(secret::CLIENT_SECRET_PREFIX);
        let audit = AuditEntry::new(
            now,
            actor,
            "client.rotate_secret",
            Some(id),
            json!({"grace_seconds": grace}),
        );
        if !self
            .store
            .rotate_secret(
                id,
                &secret.digest(),
                now,
                now + grace,
                MAX_LIVE_SECRETS,
                &audit,
            )
            .await?
        {
            return Err(AdminError::not_found("no such client"));
        }
        Ok((secret, now + grace))
    }

    /// Revokes every token issued to a client up to now (inclusive of this
    /// second). Token times are whole seconds (RFC 7519 `iat`), so the
    /// revocation has completed once that second has passed: callers wait
    /// [`revocation_settles_in`] before they answer, and a token issued after
    /// the answer is active.
    pub async fn revoke_client_tokens(
        &self,
        actor: &str,
        id: &str,
        now: i64,
    ) -> Result<Client, AdminError> {
        not_self(actor, id, "revoke the tokens of")?;
        let mut c = self.get_client(id).await?;
        c.tokens_revoked_before = Some(now);
        c.updated_at = now;
        self.save_client(
            actor,
            &c,
            "client.revoke_tokens",
            json!({"revoked_before": now}),
        )
        .await?;
        Ok(c)
    }

    /// Creates an API key for a client; the key is returned here and never again.
    pub async fn create_api_key(
        &self,
        actor: &str,
        client_id: &str,
        name: Option<String>,
        expires_in: Option<i64>,
        now: i64,
    ) -> Result<(ApiKeyRecord, SecretString), AdminError> {
        if let Some(n) = &name {
            check_name(n)?;
        }
        if let Some(e) = expires_in {
            if !(1..=10 * 365 * 86_400).contains(&e) {
                return Err(invalid("expires_in must be between 1 second and 10 years"));
            }
        }
        let key = secret::generate(&self.config.api_key_prefix);
        let exposed = key.expose();
        let record = ApiKeyRecord {
            id: secret::generate_id(secret::API_KEY_ID_PREFIX),
            client_id: client_id.to_string(),
            name,
            digest: key.digest().to_vec(),
            prefix: self.config.api_key_prefix.clone(),
            last4: exposed[exposed.len() - 4..].to_string(),
            created_at: now,
            expires_at: expires_in.map(|e| now + e),
            last_used_at: None,
            revoked_at: None,
        };
        let audit = AuditEntry::new(
            now,
            actor,
            "api_key.create",
            Some(&record.id),
            json!({"client_id": client_id, "name": record.name, "expires_at": record.expires_at}),
        );
        match self
            .store
            .create_api_key(&record, self.config.max_api_keys_per_client, now, &audit)
            .await?
        {
            ApiKeyCreate::Created => Ok((record, key)),
            ApiKeyCreate::NoSuchClient => Err(AdminError::not_found("no such client")),
            ApiKeyCreate::LimitReached(n) => Err(AdminError::conflict(format!(
                "client already has the maximum of {n} active API keys; revoke one first"
            ))),
        }
    }

    /// The API keys of a client (never the keys themselves).
    pub async fn list_api_keys(&self, client_id: &str) -> Result<Vec<ApiKeyRecord>, AdminError> {
        self.get_client(client_id).await?;
        Ok(self.store.list_api_keys(client_id).await?)
    }

    /// Revokes an API key.
    pub async fn revoke_api_key(
        &self,
        actor: &str,
        key_id: &str,
        now: i64,
    ) -> Result<ApiKeyRecord, AdminError> {
        let key = self
            .store
            .get_api_key(key_id)
            .await?
            .ok_or_else(|| AdminError::not_found("no such API key"))?;
        let audit = AuditEntry::new(
            now,
            actor,
            "api_key.revoke",
            Some(key_id),
            json!({"client_id": key.client_id}),
        );
        if !self.store.revoke_api_key(key_id, now, &audit).await? {
            return Err(AdminError::conflict("API key is already revoked"));
        }
        self.metrics
            .revocations
            .with_label_values(&["api_key"])
            .inc();
        self.store
            .get_api_key(key_id)
            .await?
            .ok_or_else(|| AdminError::not_found("no such API key"))
    }

    /// Audit entries after `after`, oldest first.
    pub async fn list_audit(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, AdminError> {
        Ok(self
            .store
            .backend()
            .list_audit(after, limit.clamp(1, 1000))
            .await?)
    }
}

/// How long until a revoke-all that covers tokens issued up to the second
/// `revoked_before` has completed: until the next second begins, at most one
/// second. A token issued after that has a later `iat` and stays active.
pub fn revocation_settles_in(revoked_before: Option<i64>) -> std::time::Duration {
    let Some(t) = revoked_before else {
        return std::time::Duration::ZERO;
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let end_ms = (t + 1).saturating_mul(1000);
    std::time::Duration::from_millis(end_ms.saturating_sub(now_ms).clamp(0, 1000) as u64)
}

/// The JSON view of an API key: never the key, only its prefix and last four.
pub fn api_key_view(k: &ApiKeyRecord, now: i64) -> serde_json::Value {
    json!({
        "id": k.id,
        "client_id": k.client_id,
        "name": k.name,
        "prefix": k.prefix,
        "last4": k.last4,
        "created_at": k.created_at,
        "expires_at": k.expires_at,
        "last_used_at": k.last_used_at,
        "revoked_at": k.revoked_at,
        "state": k.state(now),
    })
}
