//! The use cases shared by the HTTP server and the command line: the store,
//! the signing keys and the configuration behind `App`, the token use cases
//! here, introspection and revocation in `introspect`, administration in
//! `admin`. Errors are `error::ServiceError`, with no HTTP in them.

pub mod admin;
pub mod api_keys;
use crate::store::RevocationStore;
mod assertion;
pub mod authenticator;
pub mod cimd;
pub mod console;
pub mod dpop;
pub mod error;
mod exchange;
pub mod families;
pub mod federation;
mod idjag;
pub mod introspect;
pub mod issue;
mod keysets;
mod mtls;
pub mod signals;
pub mod signing;
mod support;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::limits::{Decision, Limits};
use crate::store::CachedStore;
use crate::token::{self, KeyRing};

pub use crate::domain::now;
pub use issue::{IssuedToken, RequestContext};
pub use support::{log_refusal, truncate, StartError};

/// What readiness reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The store answers a query.
    pub database: bool,
    /// The last write (or write probe) went through.
    pub writable: bool,
    /// A signing key signs now.
    pub signing_key: bool,
    /// Seconds left of the outage grace while the database is unreachable
    /// (`TOLLGATE_OUTAGE_GRACE`): issuance and introspection answer from the
    /// cache meanwhile.
    pub outage_grace_left: Option<i64>,
}

impl Readiness {
    /// Everything is.
    pub fn ready(&self) -> bool {
        self.database && self.writable && self.signing_key
    }
}

/// The composition root: it builds the components, each owning its state,
/// and hands them to the edge (HTTP, command line), which calls their use
/// cases. It keeps only what composes them and the background work.
#[derive(Clone)]
pub struct App {
    /// Validated configuration.
    config: Arc<Config>,
    /// The store, behind its cache.
    store: Arc<CachedStore>,
    /// The signing keys in force.
    keys: Arc<KeyRing>,
    /// In-memory rate limits and quotas of this process.
    limits: Arc<Limits>,
    /// Prometheus metrics of this process.
    metrics: Arc<crate::metrics::Metrics>,
    /// Client authentication: every method, its throttles and key sets.
    auth: Arc<authenticator::Authenticator>,
    /// The console: login links, sessions, searches, the overview.
    console: Arc<console::Console>,
    /// The signing keys: the ring in force, rotation and retirement.
    signing: Arc<signing::SigningKeys>,
    /// DPoP proofs and nonces.
    proofs: Arc<dpop::Proofs>,
    /// API-key lookups and uses.
    api_keys: Arc<api_keys::ApiKeys>,
    /// Issuance: the token endpoints.
    tokens: Arc<issue::Tokens>,
    /// Introspection, revocation and bearer authorization.
    introspector: Arc<introspect::Introspector>,
    /// Administration of clients, keys, federation and the audit log.
    admin: Arc<admin::Admin>,
    /// The Shared Signals transmitter: streams, events, delivery.
    signals: Arc<signals::Signals>,
}

/// The state the components share, from which [`App::compose`] builds them.
struct Parts {
    config: Arc<Config>,
    store: Arc<CachedStore>,
    keys: Arc<KeyRing>,
    limits: Arc<Limits>,
    metrics: Arc<crate::metrics::Metrics>,
    auth: Arc<authenticator::Authenticator>,
    console: Arc<console::Console>,
    signing: Arc<signing::SigningKeys>,
    dpop_secret: Option<Arc<Vec<u8>>>,
    verified: Arc<token::VerifiedCache>,
    key_uses: Arc<std::sync::Mutex<HashMap<String, i64>>>,
}

impl App {
    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The same app with another issuer (the server derives it from the
    /// address it bound when none was configured).
    pub fn with_issuer(self, issuer: String) -> App {
        let mut config = (*self.config).clone();
        config.issuer = issuer;
        let config = Arc::new(config);
        App::compose(Parts {
            auth: Arc::new(self.auth.with_config(config.clone())),
            console: Arc::new(self.console.with_config(config.clone())),
            signing: Arc::new(self.signing.with_config(config.clone())),
            dpop_secret: self.proofs.dpop_secret.clone(),
            verified: self.introspector.verified.clone(),
            key_uses: self.api_keys.key_uses.clone(),
            config,
            store: self.store,
            keys: self.keys,
            limits: self.limits,
            metrics: self.metrics,
        })
    }

    /// Builds the components from the state they share.
    fn compose(p: Parts) -> App {
        let proofs = Arc::new(dpop::Proofs {
            config: p.config.clone(),
            store: p.store.clone(),
            dpop_secret: p.dpop_secret,
        });
        let api_keys = Arc::new(api_keys::ApiKeys {
            config: p.config.clone(),
            store: p.store.clone(),
            key_uses: p.key_uses,
        });
        let introspector = Arc::new(introspect::Introspector {
            config: p.config.clone(),
            store: p.store.clone(),
            metrics: p.metrics.clone(),
            verified: p.verified,
            signing: p.signing.clone(),
            auth: p.auth.clone(),
            proofs: proofs.clone(),
            api_keys: api_keys.clone(),
        });
        let tokens = Arc::new(issue::Tokens {
            config: p.config.clone(),
            store: p.store.clone(),
            limits: p.limits.clone(),
            metrics: p.metrics.clone(),
            auth: p.auth.clone(),
            signing: p.signing.clone(),
            proofs: proofs.clone(),
            api_keys: api_keys.clone(),
            introspector: introspector.clone(),
        });
        let admin = Arc::new(admin::Admin {
            config: p.config.clone(),
            store: p.store.clone(),
            metrics: p.metrics.clone(),
            auth: p.auth.clone(),
        });
        let signals = Arc::new(signals::Signals::new(
            p.config.clone(),
            p.store.clone(),
            p.signing.clone(),
            p.metrics.clone(),
        ));
        App {
            signals,
            config: p.config,
            store: p.store,
            keys: p.keys,
            limits: p.limits,
            metrics: p.metrics,
            auth: p.auth,
            console: p.console,
            signing: p.signing,
            proofs,
            api_keys,
            tokens,
            introspector,
            admin,
        }
    }

    /// The Shared Signals transmitter.
    pub fn signals(&self) -> &Arc<signals::Signals> {
        &self.signals
    }

    /// The token endpoints' component.
    pub fn tokens(&self) -> &issue::Tokens {
        &self.tokens
    }

    /// Introspection, revocation and bearer authorization.
    pub fn introspector(&self) -> &introspect::Introspector {
        &self.introspector
    }

    /// Administration.
    pub fn admin(&self) -> &admin::Admin {
        &self.admin
    }

    /// DPoP proofs and nonces.
    pub fn proofs(&self) -> &dpop::Proofs {
        &self.proofs
    }

    /// API-key lookups and uses.
    pub fn api_keys(&self) -> &api_keys::ApiKeys {
        &self.api_keys
    }

    /// The signing-keys component.
    pub fn signing_keys(&self) -> &signing::SigningKeys {
        &self.signing
    }

    /// The console component.
    pub fn console(&self) -> &console::Console {
        &self.console
    }

    /// The client-authentication component.
    pub fn authenticator(&self) -> &authenticator::Authenticator {
        &self.auth
    }

    /// This process's metrics registry.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The metrics registry, to keep past a call that consumes the app.
    pub fn metrics_handle(&self) -> Arc<crate::metrics::Metrics> {
        self.metrics.clone()
    }

    /// The per-address limit: `Some(refusal)` when `ip` has used up its
    /// window of `limit` requests (`read`: GET and HEAD, else the rest).
    pub fn ip_refusal(&self, ip: IpAddr, read: bool, limit: u64, now: i64) -> Option<Decision> {
        let key = (ip, read);
        let reset = self.limits.ip.exhausted(&key, limit, 60, now)?;
        let d = self.limits.ip.hit(&key, limit, 60, 0, now);
        self.metrics.refusals.with_label_values(&["ip"]).inc();
        log_refusal(&d, &format!("per-IP limit reached by {ip}"));
        Some(Decision {
            allowed: false,
            limit,
            remaining: 0,
            reset,
            refusals: d.refusals,
        })
    }

    /// Counts one request against `ip`'s window.
    pub fn count_ip(&self, ip: IpAddr, read: bool, now: i64) {
        self.limits.ip.hit(&(ip, read), u64::MAX, 60, 0, now);
    }

    /// The JWKS document as of the last commit.
    pub async fn jwks(&self, now: i64) -> Result<serde_json::Value, error::ServiceError> {
        Ok(self.signing.current_keys().await.jwks(now))
    }

    /// The algorithms of the published signing keys, sorted.
    pub fn signing_algs(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .keys
            .get()
            .records()
            .into_iter()
            .map(|r| r.alg)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// What the caches hold now (the store's and the verified tokens'), in
    /// bytes by their estimate.
    pub fn cache_bytes(&self) -> usize {
        self.store.cached_bytes() + self.introspector.verified.bytes()
    }

    /// Seconds left of the outage grace, if the instance is in one.
    pub fn store_outage_grace_left(&self) -> Option<i64> {
        self.store.backend().outage_grace_left()
    }

    /// Readiness: whether the store answers a query, takes writes, and a
    /// key signs now.
    pub async fn readiness(&self, now: i64) -> Readiness {
        Readiness {
            database: self.store.backend().ping().await.is_ok(),
            writable: self.store.writable(),
            signing_key: self.keys.get().signer(now).is_some_and(|k| k.probe()),
            outage_grace_left: self.store.backend().outage_grace_left(),
        }
    }

    /// Opens the store, applies the schema, makes sure a signing key exists,
    /// and loads the keys. Inside the runtime that will serve: PostgreSQL
    /// connections and SQLite's blocking calls are driven by it.
    pub async fn open(config: Config) -> Result<App, StartError> {
        let store = crate::store::open(&config.db, config.db_pool_size)
            .await
            .map_err(|source| StartError::Store {
                path: crate::store::postgres::redact_url(&config.db),
                source,
            })?;
        // TOLLGATE_CACHE_MIB: three quarters for the store's cache, a
        // quarter for tokens already verified.
        let budget = config.cache_mib << 20;
        let cache = Arc::new(CachedStore::with_budget(store, budget / 4 * 3).await);
        cache.backend().set_outage_grace(config.outage_grace);
        let metrics = Arc::new(
            crate::metrics::Metrics::new().map_err(|e| StartError::Metrics(e.to_string()))?,
        );
        let counted = metrics.clone();
        cache.on_write_failure(Box::new(move |reason| {
            counted.write_failures.with_label_values(&[reason]).inc();
        }));
        let dpop_secret = if config.dpop_nonce {
            Some(Arc::new(crate::token::keys::shared_secret(
                &config.keys_dir,
                support::NONCE_SECRET_FILE,
            )?))
        } else {
            None
        };
        let client_ca = match &config.tls_client_ca {
            Some(path) => Some(Arc::new(
                support::load_client_ca(path).map_err(StartError::Tls)?,
            )),
            None => None,
        };
        let config = Arc::new(config);
        let limits = Arc::new(Limits::default());
        let auth = Arc::new(authenticator::Authenticator {
            config: config.clone(),
            store: cache.clone(),
            limits: limits.clone(),
            metrics: metrics.clone(),
            fetcher: crate::fetch::Fetcher::new(config.fetch_allow_local),
            remote_keys: Arc::default(),
            issuer_keys: Arc::default(),
            client_ca,
            cimd_docs: Arc::default(),
        });
        let console = Arc::new(console::Console::new(
            config.clone(),
            cache.clone(),
            metrics.clone(),
        ));
        let keys = Arc::new(KeyRing::default());
        let hsm = config.pkcs11.clone().map(|settings| {
            let hsm = Arc::new(token::pkcs11::Hsm::new(settings));
            let counted = metrics.clone();
            hsm.on_failure(Box::new(move |reason| {
                counted.pkcs11_failures.with_label_values(&[reason]).inc();
            }));
            hsm
        });
        let signing = Arc::new(signing::SigningKeys::new(
            config.clone(),
            cache.clone(),
            keys.clone(),
            hsm,
        ));
        let app = App::compose(Parts {
            auth,
            console,
            signing,
            dpop_secret,
            config,
            store: cache,
            keys,
            limits,
            verified: Arc::new(token::VerifiedCache::with_budget(budget / 4)),
            key_uses: Arc::default(),
            metrics,
        });
        app.signing.ensure_signing_key().await?;
        app.signing.reload_keys().await?;
        Ok(app)
    }
}

/// Work done in the background rather than on a request: reloading signing
/// keys when the database changed, noticing changes made outside Tollgate,
/// probing a store that refused a write, writing the API-key uses noted by
/// requests, and pruning limits and expired revocations. The server only
/// schedules these, on its runtime.
impl App {
    /// Every 100 ms when the signing keys may have changed: reloads them, so
    /// a rotation through another process signs here at once, unless a
    /// request has already reloaded them (`current_keys`).
    pub async fn maintain_keys(&self) -> Result<(), String> {
        if self.signing.keys_generation() == self.keys.marker() {
            return Ok(());
        }
        self.signing
            .reload_keys()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Every second, as the `tick`-th second: probes a store that refused a
    /// write, polls for changes made outside Tollgate (and reloads the keys
    /// if they may have changed); every
    /// 5 s writes API-key uses; every 10 s prunes the limiters; every minute
    /// forgets expired revocations.
    pub async fn maintain(&self, tick: u64) -> Result<(), String> {
        if !self.store.writable() {
            // A refused write marked the store not writable: try a small
            // write every second until one goes through.
            match self.store.probe_write(now()).await {
                Ok(()) => log::warn!("database takes writes again"),
                Err(e) => log::debug!("database still not writable: {e}"),
            }
        }
        if self
            .store
            .poll_external_changes()
            .await
            .map_err(|e| e.to_string())?
        {
            log::debug!("database changed outside Tollgate; cache cleared");
        }
        // Reloads only when the key generation moved (a change seen through
        // the change log, or the poll just above), not every second.
        self.maintain_keys().await?;
        if tick.is_multiple_of(5) {
            self.api_keys
                .flush_key_uses()
                .await
                .map_err(|e| e.to_string())?;
        }
        if tick.is_multiple_of(10) {
            let longest = self
                .config
                .token_quota_window
                .max(self.config.token_quota_ban)
                .max(30 * 86_400);
            self.limits.prune(now(), longest);
        }
        if tick.is_multiple_of(60) {
            let n = self
                .prune_revocations(now())
                .await
                .map_err(|e| e.to_string())?;
            if n > 0 {
                log::info!("pruned {n} expired revocations");
            }
            self.console
                .prune_console_sessions(now())
                .await
                .map_err(|e| e.to_string())?;
        }
        if tick % 60 == 1 {
            // The console's last-hour chart: one sample a minute, the
            // first a second after start.
            self.metrics.sample(now());
        }
        Ok(())
    }

    /// Forgets revocations of tokens that expired before `now`.
    pub async fn prune_revocations(&self, now: i64) -> Result<usize, crate::store::StoreError> {
        self.store.prune_revocations(now).await
    }
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
        // Issue 23 (10): the secret's body pasted straight after the id,
        // with no separator, keeps nothing of the secret.
        let body = "g-VLZgjmTAZbCDH9OiRP5mmPKFrvN8ez4kzrd9NmlvU";
        assert_eq!(
            truncate(&format!("tgc_IE2NrTjv5RiDDgIZRnRPsQ{body}")),
            "tgc_IE2NrTjv5RiDDgIZRnRPsQ<redacted>"
        );
        assert_eq!(
            truncate(&format!("tgc_IE2NrTjv5RiDDgIZRnRPsQtgs_{body}")),
            "tgc_IE2NrTjv5RiDDgIZRnRPsQ<redacted>"
        );
        // Not a Tollgate id: a fixed short prefix at most.
        assert_eq!(truncate("payments-service"), "payments-service");
        assert_eq!(truncate(&format!("my-client{body}")), "<redacted>");
        assert_eq!(
            truncate("a-rather-long-foreign-client-id"),
            "a-rather-long-fo<redacted>"
        );
    }
}
