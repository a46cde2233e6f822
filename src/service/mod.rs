//! The use cases shared by the HTTP server and the command line: the store,
//! the signing keys and the configuration behind `App`, the token use cases
//! here, introspection and revocation in `introspect`, administration in
//! `admin`. Errors are `error::ServiceError`, with no HTTP in them.

pub mod admin;
pub mod error;
pub mod introspect;
mod issue;
mod maintenance;
mod signing;

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::limits::{Decision, Limits};
use crate::secret::SecretString;
use crate::store::{CachedStore, Store};
use crate::token::keys::KeyError;
use crate::token::{self, KeyRing};

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
