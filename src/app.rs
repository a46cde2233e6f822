//! The application core shared by the HTTP server and the command line: the
//! store, the signing keys and the configuration, and the token use cases that
//! join protocol decisions to storage.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::config::Config;
use crate::error::ApiError;
use crate::limits::{Decision, Limits, FAIL_WINDOW};
use crate::oauth::grant::{self, Grant, Policy, TokenRequest};
use crate::oauth::ClientCredentials;
use crate::secret::{self, SecretString};
use crate::store::{ApiKeyRecord, AuditEntry, CachedStore, Client, SigningKeyRecord, Store};
use crate::token::keys::{self, KeyError};
use crate::token::{self, Claims, KeyRing, KeySet};

pub use crate::domain::now;

/// A start-up failure, shown as one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("cannot open database {path}: {source}")]
    Store {
        /// The database path.
        path: String,
        /// The cause.
        source: crate::store::StoreError,
    },
    /// The keys could not be loaded or created.
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    /// Storage failed while setting up keys.
    #[error("signing keys: {0}")]
    KeyRecords(#[from] crate::store::StoreError),
    /// The metrics registry could not be built.
    #[error("metrics: {0}")]
    Metrics(String),
}

/// A token just issued, with what the response reports.
#[derive(Debug)]
pub struct IssuedToken {
    /// The signed JWT.
    pub access_token: SecretString,
    /// Seconds until expiry.
    pub expires_in: i64,
    /// Granted scopes, space-separated.
    pub scope: String,
}

/// Everything a request or a command needs, shared behind `Arc`s.
#[derive(Clone)]
pub struct App {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The signing keys in force.
    pub keys: Arc<KeyRing>,
    /// In-memory rate limits and quotas of this process.
    pub limits: Arc<Limits>,
    /// The cache in front of the store (the same object as `store`).
    pub cache: Arc<CachedStore>,
    /// Signature checks already done, by token digest.
    pub verified: Arc<token::VerifiedCache>,
    /// Prometheus metrics of this process.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// API-key uses not yet written: key id to time of use.
    key_uses: Arc<std::sync::Mutex<HashMap<String, i64>>>,
}

impl App {
    /// Opens the store, applies the schema, makes sure a signing key exists,
    /// and loads the keys.
    pub fn open(config: Config) -> Result<App, StartError> {
        let store = crate::store::open(&config.db, config.db_pool_size).map_err(|source| {
            StartError::Store {
                path: crate::store::postgres::redact_url(&config.db),
                source,
            }
        })?;
        let cache = Arc::new(CachedStore::new(store));
        let metrics = Arc::new(
            crate::metrics::Metrics::new().map_err(|e| StartError::Metrics(e.to_string()))?,
        );
        let counted = metrics.clone();
        cache.on_write_failure(Box::new(move |reason| {
            counted.write_failures.with_label_values(&[reason]).inc();
        }));
        let app = App {
            config: Arc::new(config),
            store: cache.clone(),
            keys: Arc::new(KeyRing::default()),
            limits: Arc::new(Limits::default()),
            cache,
            verified: Arc::new(token::VerifiedCache::default()),
            key_uses: Arc::default(),
            metrics,
        };
        app.ensure_signing_key()?;
        app.reload_keys()?;
        Ok(app)
    }

    /// Records keys found in the keys directory that the database does not
    /// know, and creates the first key when there is none at all.
    fn ensure_signing_key(&self) -> Result<(), StartError> {
        let dir = &self.config.keys_dir;
        let loaded = keys::load_dir(dir)?;
        let records = self.store.signing_keys()?;
        let now = now();
        for (kid, key) in &loaded {
            if !records.iter().any(|r| &r.kid == kid) {
                self.store.insert_signing_key(
                    &SigningKeyRecord {
                        kid: kid.clone(),
                        alg: key.alg.as_str().to_string(),
                        created_at: now,
                        activates_at: 0,
                        retired_at: None,
                        compromised_at: None,
                    },
                    None,
                )?;
            }
        }
        let records = self.store.signing_keys()?;
        let set = KeySet::new(&records, &loaded, self.config.max_token_ttl);
        if set.signer(now).is_none() && records.iter().all(|r| r.activates_at <= now) {
            let key = keys::create_key_file(dir, self.config.signing_alg)?;
            log::info!("created signing key {} ({})", key.kid, key.alg.as_str());
            self.store.insert_signing_key(
                &SigningKeyRecord {
                    kid: key.kid.clone(),
                    alg: key.alg.as_str().to_string(),
                    created_at: now,
                    activates_at: now,
                    retired_at: None,
                    compromised_at: None,
                },
                Some(&AuditEntry::new(
                    now,
                    "system",
                    "signing_key.create",
                    Some(&key.kid),
                    serde_json::json!({"alg": key.alg.as_str()}),
                )),
            )?;
        }
        Ok(())
    }

    /// Reloads the key set when the key records changed; returns whether it did.
    pub fn reload_keys(&self) -> Result<bool, StartError> {
        // Read before the records: a change committed meanwhile moves it
        // again, and the next reader reloads once more.
        let marker = self.store.change_marker().unwrap_or(i64::MIN);
        let records = self.store.signing_keys()?;
        let current = self.keys.get();
        if current.records() == records && !records.is_empty() {
            self.keys.checked_at(marker);
            return Ok(false);
        }
        let mut loaded: HashMap<String, Arc<token::SigningKey>> = HashMap::new();
        let mut missing = false;
        for r in &records {
            match current.key(&r.kid) {
                Some(k) => {
                    loaded.insert(r.kid.clone(), k.clone());
                }
                None => missing = true,
            }
        }
        if missing {
            for (kid, key) in keys::load_dir(&self.config.keys_dir)? {
                loaded.entry(kid).or_insert(key);
            }
        }
        self.keys
            .set(KeySet::new(&records, &loaded, self.config.max_token_ttl));
        self.keys.checked_at(marker);
        Ok(true)
    }

    /// The key set, reloaded first when anything was committed since it was
    /// loaded (one atomic load when nothing was): a key retired or marked
    /// compromised through the command line or another instance is seen by
    /// the very next verification, not the next background tick. While the
    /// database cannot be read, the set in memory answers.
    pub fn current_keys(&self) -> Result<Arc<KeySet>, ApiError> {
        let marker = self.store.change_marker().unwrap_or(i64::MIN);
        if marker != self.keys.marker() {
            match self.reload_keys() {
                Ok(_) => {}
                Err(StartError::KeyRecords(crate::store::StoreError::WouldBlock)) => {
                    return Err(crate::store::StoreError::WouldBlock.into())
                }
                // The database is away: the set in memory keeps answering
                // (JWKS, verification), as it does between reloads.
                Err(e) => log::debug!("signing keys not reloaded: {e}"),
            }
        }
        Ok(self.keys.get())
    }

    /// The grant policy from the configuration.
    pub fn policy(&self) -> Policy {
        Policy {
            issuer: self.config.issuer.clone(),
            default_ttl: self.config.default_token_ttl,
            max_ttl: self.config.max_token_ttl,
        }
    }

    /// Refuses a caller that failed authentication too often (429): per IP,
    /// per client id and IP, and, once a client id has failed too often from
    /// anywhere, from every IP that has failed for it. An IP that has not
    /// failed for a client is never locked out by others' failures.
    fn check_failures(
        &self,
        client_id: Option<&str>,
        ip: IpAddr,
        now: i64,
    ) -> Result<(), ApiError> {
        let cfg = &self.config;
        let l = &self.limits;
        let refuse = |limit: u64, reset: u64| {
            log::info!("refused: too many failed authentications from {ip}");
            self.metrics
                .refusals
                .with_label_values(&["auth_failures"])
                .inc();
            Err(ApiError::too_many_requests(
                "too many failed authentication attempts",
                Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset,
                    refusals: 1,
                },
            ))
        };
        if let Some(reset) = l
            .fail_ip
            .exhausted(&ip, cfg.auth_fail_ip_limit, FAIL_WINDOW, now)
        {
            return refuse(cfg.auth_fail_ip_limit, reset);
        }
        if let Some(id) = client_id {
            let pair = (id.to_string(), ip);
            if let Some(reset) =
                l.fail_pair
                    .exhausted(&pair, cfg.auth_fail_pair_limit, FAIL_WINDOW, now)
            {
                return refuse(cfg.auth_fail_pair_limit, reset);
            }
            if let Some(reset) = l.fail_client.exhausted(
                &id.to_string(),
                cfg.auth_fail_client_limit,
                FAIL_WINDOW,
                now,
            ) {
                if l.fail_pair.count(&pair, FAIL_WINDOW, now) > 0 {
                    return refuse(cfg.auth_fail_client_limit, reset);
                }
            }
        }
        Ok(())
    }

    fn record_failure(&self, kind: &str, client_id: Option<&str>, ip: IpAddr, now: i64) {
        self.metrics.auth_failures.with_label_values(&[kind]).inc();
        let l = &self.limits;
        l.fail_ip.hit(&ip, u64::MAX, FAIL_WINDOW, 0, now);
        if let Some(id) = client_id {
            l.fail_pair
                .hit(&(id.to_string(), ip), u64::MAX, FAIL_WINDOW, 0, now);
            l.fail_client
                .hit(&id.to_string(), u64::MAX, FAIL_WINDOW, 0, now);
        }
    }

    /// Authenticates a client by its secret (RFC 6749 §2.3.1). Unknown, wrong
    /// and disabled all answer the same `invalid_client`.
    pub fn authenticate_client(
        &self,
        creds: Option<&ClientCredentials>,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<Client, ApiError> {
        let _fresh = self.cache.fresh_scope();
        let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let Some(creds) = creds else {
            return Err(ApiError::invalid_client());
        };
        if creds.client_id.len() > 256 || creds.secret.expose().len() > 512 {
            self.check_failures(None, ip, now)?;
            self.record_failure("client_secret", None, ip, now);
            return Err(ApiError::invalid_client());
        }
        self.check_failures(Some(&creds.client_id), ip, now)?;
        let client = self.store.get_client(&creds.client_id)?;
        let secrets = match &client {
            Some(_) => self.store.live_secrets(&creds.client_id, now)?,
            None => Vec::new(),
        };
        let matched = grant::secret_matches(&creds.secret, &secrets);
        match client {
            Some(c) if matched && !c.disabled => Ok(c),
            _ => {
                log::info!(
                    "client authentication failed for client_id {:?} from {ip}",
                    truncate(&creds.client_id)
                );
                self.record_failure("client_secret", Some(&creds.client_id), ip, now);
                Err(ApiError::invalid_client())
            }
        }
    }

    /// Counts a token against the client's quota; past it, the client is
    /// banned for the quota's ban time (429).
    fn spend_quota(&self, client: &Client, now: i64) -> Result<(), ApiError> {
        let quota = client.token_quota.unwrap_or(self.config.token_quota);
        if quota == 0 {
            return Ok(());
        }
        let window = client
            .quota_window
            .unwrap_or(self.config.token_quota_window);
        let ban = client.quota_ban.unwrap_or(self.config.token_quota_ban);
        // A fleet on PostgreSQL counts in the database, so that the quota
        // holds across instances; otherwise this process's memory counts.
        let d = match self.store.hit_quota(&client.id, quota, window, ban, now)? {
            Some(d) => d,
            None => self.limits.quota.hit(&client.id, quota, window, ban, now),
        };
        if !d.allowed {
            self.metrics.refusals.with_label_values(&["quota"]).inc();
            log_refusal(&d, &format!("client {} is over its token quota", client.id));
            return Err(ApiError::too_many_requests("token quota exceeded", d));
        }
        Ok(())
    }

    /// Client-credentials grant (RFC 6749 §4.4): authenticate, decide, count, sign.
    pub fn issue_for_client(
        &self,
        creds: Option<&ClientCredentials>,
        ip: Option<IpAddr>,
        req: &TokenRequest,
        now: i64,
    ) -> Result<IssuedToken, ApiError> {
        let _fresh = self.cache.fresh_scope();
        let client = self.authenticate_client(creds, ip, now)?;
        let grant = grant::decide(&client, req, &self.policy())?;
        let unsigned = self.prepare(&client, &grant, now, None)?;
        self.spend_quota(&client, now)?;
        self.sign(unsigned)
    }

    /// Finds the active API key for a presented key, or `None`.
    pub fn find_active_api_key(
        &self,
        key: &SecretString,
        now: i64,
    ) -> Result<Option<(ApiKeyRecord, Client)>, ApiError> {
        if key.expose().len() > 512 || !key.expose().starts_with(&self.config.api_key_prefix) {
            return Ok(None);
        }
        let digest = key.digest();
        let Some(record) = self.store.find_api_key(&digest)? else {
            return Ok(None);
        };
        if !secret::constant_time_eq(&record.digest, &digest)
            || record.state(now) != crate::store::ApiKeyState::Active
        {
            return Ok(None);
        }
        match self.store.get_client(&record.client_id)? {
            Some(client) if !client.disabled => Ok(Some((record, client))),
            _ => Ok(None),
        }
    }

    /// Exchanges an API key for an access token that acts as its client.
    pub fn issue_for_api_key(
        &self,
        key: &SecretString,
        ip: Option<IpAddr>,
        req: &TokenRequest,
        now: i64,
    ) -> Result<IssuedToken, ApiError> {
        let _fresh = self.cache.fresh_scope();
        let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        self.check_failures(None, ip, now)?;
        let Some((record, client)) = self.find_active_api_key(key, now)? else {
            log::info!("API key authentication failed from {ip}");
            self.record_failure("api_key", None, ip, now);
            return Err(ApiError::new(
                crate::error::ErrorCode::InvalidClient,
                "invalid, expired or revoked API key",
            )
            .with_challenge(crate::error::Challenge::Bearer));
        };
        let grant = grant::decide(&client, req, &self.policy())?;
        let unsigned = self.prepare(&client, &grant, now, Some(record.id.clone()))?;
        self.spend_quota(&client, now)?;
        self.touch_api_key(&record, now);
        self.sign(unsigned)
    }

    /// Notes a use of an API key. Uses are written in the background by
    /// [`App::flush_key_uses`], at most once a minute per key, so that the
    /// request path never waits for a disk write.
    pub fn touch_api_key(&self, record: &ApiKeyRecord, now: i64) {
        if record.last_used_at.is_some_and(|t| t >= now - 60) {
            return;
        }
        let mut pending = match self.key_uses.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if pending.len() < 100_000 {
            pending.insert(record.id.clone(), now);
        }
    }

    /// Writes the pending API-key uses in one transaction.
    pub fn flush_key_uses(&self) -> Result<usize, crate::store::StoreError> {
        let uses: Vec<(String, i64)> = {
            let mut pending = match self.key_uses.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            pending.drain().collect()
        };
        if !uses.is_empty() {
            self.store.touch_api_keys(&uses)?;
        }
        Ok(uses.len())
    }

    /// Builds and serializes the claims of a grant and picks the key that
    /// will sign them; refuses a token longer than [`token::MAX_TOKEN_LEN`]
    /// (too many scopes or audiences), which introspection and revocation
    /// could not take back.
    fn prepare(
        &self,
        client: &Client,
        grant: &Grant,
        now: i64,
        api_key_id: Option<String>,
    ) -> Result<Unsigned, ApiError> {
        let claims: Claims = grant::claims(
            &client.id,
            grant,
            &self.config.issuer,
            now,
            secret::random_b64(16),
            api_key_id,
        );
        let key = self
            .current_keys()?
            .signer(now)
            .cloned()
            .ok_or_else(|| ApiError::internal("no active signing key"))?;
        let payload = serde_json::to_vec(&claims).map_err(ApiError::internal)?;
        let len = token::signed_len(payload.len(), &key);
        if len > token::MAX_TOKEN_LEN {
            return Err(ApiError::invalid_request(format!(
                "the token would be {len} bytes, over the limit of {} that introspection \
                 and revocation accept; request fewer scopes or audiences",
                token::MAX_TOKEN_LEN
            )));
        }
        Ok(Unsigned {
            payload,
            key,
            expires_in: grant.ttl,
            scope: claims.scope,
        })
    }

    fn sign(&self, unsigned: Unsigned) -> Result<IssuedToken, ApiError> {
        let jwt =
            token::sign_payload(&unsigned.payload, &unsigned.key).map_err(ApiError::internal)?;
        Ok(IssuedToken {
            access_token: SecretString::new(jwt),
            expires_in: unsigned.expires_in,
            scope: unsigned.scope,
        })
    }
}

/// Claims ready to sign, with the key that will sign them.
struct Unsigned {
    payload: Vec<u8>,
    key: Arc<token::SigningKey>,
    expires_in: i64,
    scope: String,
}

/// Logs a rate-limit refusal: the first of a window at `warn`, the rest at
/// `debug` with their running count, so that a flood does not flood the log.
pub fn log_refusal(d: &Decision, what: &str) {
    if d.refusals <= 1 {
        log::warn!("refused: {what}");
    } else {
        log::debug!("refused: {what} ({} refusals in this window)", d.refusals);
    }
}

/// A client id as it may appear in a log line: bounded, and with nothing
/// that could be a secret. Whatever follows a separator (a caller that sent
/// `id:secret` as its id) is replaced by `<redacted>`, and a value that looks
/// like a secret, an API key or a token (a caller who swapped its fields) is
/// not logged at all.
pub fn truncate(s: &str) -> String {
    let head_len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .unwrap_or(s.len());
    let head = &s[..head_len];
    let looks_secret = head.starts_with(crate::secret::CLIENT_SECRET_PREFIX)
        || head.starts_with("eyJ")
        || (head.len() > 40 && !head.starts_with(crate::secret::CLIENT_ID_PREFIX));
    let mut out = if looks_secret {
        "<redacted>".to_string()
    } else {
        head.chars().take(64).collect()
    };
    if head_len < s.len() {
        out.push_str("<redacted>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn log_lines_never_carry_a_secret_or_part_of_one() {
        let secret = "tgs_g-VLZgjmTAZbCDH9OiRP5mmPKFrvN8ez4kzrd9NmlvU";
        for id in [
            format!("tgc_IE2NrTjv5RiDDgIZRnRPsQ:{secret}"),
            format!("tgc_IE2NrTjv5RiDDgIZRnRPsQ {secret}"),
            format!("tgc_x%3A{secret}"),
            secret.to_string(),
            format!("{secret}:tgc_IE2NrTjv5RiDDgIZRnRPsQ"),
            "tg_live_kqBSWfGV3x5DRJrllfodUYoF29hSY0ANnsQcS_lmUaQ".to_string(),
        ] {
            let logged = truncate(&id);
            assert!(!logged.contains("tgs_"), "{logged}");
            assert!(!logged.contains("g-VLZgjm"), "{logged}");
            assert!(!logged.contains("kqBSW"), "{logged}");
        }
        assert_eq!(
            truncate("tgc_IE2NrTjv5RiDDgIZRnRPsQ:tgs_abc"),
            "tgc_IE2NrTjv5RiDDgIZRnRPsQ<redacted>"
        );
        assert_eq!(
            truncate("tgc_IE2NrTjv5RiDDgIZRnRPsQ"),
            "tgc_IE2NrTjv5RiDDgIZRnRPsQ"
        );
    }
}
