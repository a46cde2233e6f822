//! The one typed `Config`: read from an optional TOML file, then from the
//! environment (which wins), and validated once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::token::Alg;

/// Server-wide settings. Each field names its TOML key, its environment
/// variable and its default.
#[derive(Debug, Clone)]
pub struct Config {
    /// `bind` / `TOLLGATE_BIND`, default `127.0.0.1:8080`. Port 0 picks a free port.
    pub bind: SocketAddr,
    /// `db` / `TOLLGATE_DB`, default `./tollgate.db`: the SQLite database
    /// file, or a `postgres://user@host:5432/db` URL for a fleet on PostgreSQL.
    pub db: String,
    /// `db_pool_size` / `TOLLGATE_DB_POOL_SIZE`, default 16: PostgreSQL
    /// connections per instance at most (ignored by SQLite).
    pub db_pool_size: usize,
    /// `keys_dir` / `TOLLGATE_KEYS_DIR`, default `./keys`: signing-key PEM files.
    pub keys_dir: PathBuf,
    /// `issuer` / `TOLLGATE_ISSUER`, default `http://` plus the bind address:
    /// the `iss` claim and the base of every URL in the metadata.
    pub issuer: String,
    /// Whether `issuer` was set explicitly; if not, the server derives it from
    /// the address it actually bound (so port 0 gives a usable issuer).
    pub issuer_explicit: bool,
    /// `signing_alg` / `TOLLGATE_SIGNING_ALG`, default `ES256` (also `EdDSA`, `RS256`):
    /// the algorithm of newly generated signing keys.
    pub signing_alg: Alg,
    /// `api_key_prefix` / `TOLLGATE_API_KEY_PREFIX`, default `tg_live_`.
    pub api_key_prefix: String,
    /// `default_token_ttl` / `TOLLGATE_DEFAULT_TOKEN_TTL`, default 3600 seconds:
    /// the access-token lifetime of a client without its own TTL.
    pub default_token_ttl: i64,
    /// `max_token_ttl` / `TOLLGATE_MAX_TOKEN_TTL`, default 86400 seconds: the cap
    /// on every access-token lifetime.
    pub max_token_ttl: i64,
    /// `max_api_keys_per_client` / `TOLLGATE_MAX_API_KEYS_PER_CLIENT`, default 5:
    /// active API keys a client may hold at once.
    pub max_api_keys_per_client: u32,
    /// `secret_grace` / `TOLLGATE_SECRET_GRACE`, default 86400 seconds: how long
    /// an old client secret keeps working after a rotation, unless told otherwise.
    pub secret_grace: i64,
    /// `key_prepublish` / `TOLLGATE_KEY_PREPUBLISH`, default 300 seconds: how long
    /// a rotated-in signing key is published in the JWKS before it signs.
    pub key_prepublish: i64,
    /// `workers` / `TOLLGATE_WORKERS`, default the number of CPUs: HTTP worker threads.
    pub workers: usize,
    /// `blocking_threads` / `TOLLGATE_BLOCKING_THREADS`, default 1: threads per
    /// worker that run database calls. Few threads avoid context switches
    /// under load (see docs/benchmarks.md); raise it if slow disks stall writes.
    pub blocking_threads: usize,
    /// `max_body_bytes` / `TOLLGATE_MAX_BODY_BYTES`, default 16384: the largest
    /// request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// `request_timeout` / `TOLLGATE_REQUEST_TIMEOUT`, default 10 seconds: how
    /// long a client may take to send its headers and its body (then 408).
    pub request_timeout: u64,
    /// `token_quota` / `TOLLGATE_TOKEN_QUOTA`, default 0 (no quota): tokens a
    /// client may get per quota window, unless the client sets its own.
    pub token_quota: u64,
    /// `token_quota_window` / `TOLLGATE_TOKEN_QUOTA_WINDOW`, default 3600 seconds.
    pub token_quota_window: i64,
    /// `token_quota_ban` / `TOLLGATE_TOKEN_QUOTA_BAN`, default 3600 seconds: how
    /// long a client that exceeds its quota is refused tokens.
    pub token_quota_ban: i64,
    /// `ip_limit_get` / `TOLLGATE_IP_LIMIT_GET`, default 1200: GET and HEAD
    /// requests per client IP per minute that are not authenticated
    /// successes (0 turns the limit off).
    pub ip_limit_get: u64,
    /// `ip_limit_post` / `TOLLGATE_IP_LIMIT_POST`, default 600: other requests
    /// per client IP per minute that are not authenticated successes (0 turns
    /// the limit off).
    pub ip_limit_post: u64,
    /// `trusted_proxies` / `TOLLGATE_TRUSTED_PROXIES`, default none: proxy IPs
    /// whose `X-Forwarded-For` is believed (comma-separated).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// `auth_fail_ip_limit` / `TOLLGATE_AUTH_FAIL_IP_LIMIT`, default 30: failed
    /// authentications per IP per minute before that IP is refused (429).
    pub auth_fail_ip_limit: u64,
    /// `auth_fail_pair_limit` / `TOLLGATE_AUTH_FAIL_PAIR_LIMIT`, default 10:
    /// failed authentications per client id and IP per minute.
    pub auth_fail_pair_limit: u64,
    /// `auth_fail_client_limit` / `TOLLGATE_AUTH_FAIL_CLIENT_LIMIT`, default 100:
    /// failed authentications per client id per minute from anywhere; past it,
    /// only IPs that have not failed for that client may still try.
    pub auth_fail_client_limit: u64,
    /// `metrics_bind` / `TOLLGATE_METRICS_BIND`, default none: when set,
    /// `/metrics` is served on this address only (a private port for the
    /// monitoring network) and no longer on the public one.
    pub metrics_bind: Option<SocketAddr>,
    /// `cors_origins` / `TOLLGATE_CORS_ORIGINS`, default none: origins allowed to
    /// call the token, introspection, revocation and admin endpoints from a
    /// browser (comma-separated). JWKS and metadata allow any origin.
    pub cors_origins: Vec<String>,
}

/// A configuration error: one line naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {message}")]
pub struct ConfigError {
    /// The setting at fault (environment variable or TOML key).
    pub setting: String,
    /// What is wrong with it.
    pub message: String,
}

fn bad(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_string(),
        message: message.into(),
    }
}

/// The TOML file's shape; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    db: Option<String>,
    db_pool_size: Option<i64>,
    keys_dir: Option<String>,
    issuer: Option<String>,
    signing_alg: Option<String>,
    api_key_prefix: Option<String>,
    default_token_ttl: Option<i64>,
    max_token_ttl: Option<i64>,
    max_api_keys_per_client: Option<u32>,
    secret_grace: Option<i64>,
    key_prepublish: Option<i64>,
    workers: Option<usize>,
    blocking_threads: Option<i64>,
    max_body_bytes: Option<usize>,
    request_timeout: Option<i64>,
    token_quota: Option<i64>,
    token_quota_window: Option<i64>,
    token_quota_ban: Option<i64>,
    ip_limit_get: Option<i64>,
    ip_limit_post: Option<i64>,
    trusted_proxies: Option<Vec<String>>,
    auth_fail_ip_limit: Option<i64>,
    auth_fail_pair_limit: Option<i64>,
    auth_fail_client_limit: Option<i64>,
    cors_origins: Option<Vec<String>>,
    metrics_bind: Option<String>,
}

/// Every environment variable Tollgate reads, with its TOML key.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("TOLLGATE_BIND", "bind"),
    ("TOLLGATE_DB", "db"),
    ("TOLLGATE_DB_POOL_SIZE", "db_pool_size"),
    ("TOLLGATE_KEYS_DIR", "keys_dir"),
    ("TOLLGATE_ISSUER", "issuer"),
    ("TOLLGATE_SIGNING_ALG", "signing_alg"),
    ("TOLLGATE_API_KEY_PREFIX", "api_key_prefix"),
    ("TOLLGATE_DEFAULT_TOKEN_TTL", "default_token_ttl"),
    ("TOLLGATE_MAX_TOKEN_TTL", "max_token_ttl"),
    (
        "TOLLGATE_MAX_API_KEYS_PER_CLIENT",
        "max_api_keys_per_client",
    ),
    ("TOLLGATE_SECRET_GRACE", "secret_grace"),
    ("TOLLGATE_KEY_PREPUBLISH", "key_prepublish"),
    ("TOLLGATE_WORKERS", "workers"),
    ("TOLLGATE_BLOCKING_THREADS", "blocking_threads"),
    ("TOLLGATE_MAX_BODY_BYTES", "max_body_bytes"),
    ("TOLLGATE_REQUEST_TIMEOUT", "request_timeout"),
    ("TOLLGATE_TOKEN_QUOTA", "token_quota"),
    ("TOLLGATE_TOKEN_QUOTA_WINDOW", "token_quota_window"),
    ("TOLLGATE_TOKEN_QUOTA_BAN", "token_quota_ban"),
    ("TOLLGATE_IP_LIMIT_GET", "ip_limit_get"),
    ("TOLLGATE_IP_LIMIT_POST", "ip_limit_post"),
    ("TOLLGATE_TRUSTED_PROXIES", "trusted_proxies"),
    ("TOLLGATE_AUTH_FAIL_IP_LIMIT", "auth_fail_ip_limit"),
    ("TOLLGATE_AUTH_FAIL_PAIR_LIMIT", "auth_fail_pair_limit"),
    ("TOLLGATE_AUTH_FAIL_CLIENT_LIMIT", "auth_fail_client_limit"),
    ("TOLLGATE_CORS_ORIGINS", "cors_origins"),
    ("TOLLGATE_METRICS_BIND", "metrics_bind"),
];

impl Config {
    /// Reads the optional TOML file, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::from_sources(file, |name| std::env::var(name).ok())
    }

    /// Reads the optional TOML file, then variables through `env`, so tests can
    /// pass a map instead of changing the process environment.
    pub fn from_sources(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file_cfg = match file {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad("--config", format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text).map_err(|e| {
                    bad(
                        "--config",
                        format!("{}: {}", path.display(), e.message().trim()),
                    )
                })?
            }
        };
        // Environment first, then file, then default.
        let text = |var: &str, from_file: &Option<String>| -> Option<String> {
            env(var)
                .filter(|v| !v.is_empty())
                .or_else(|| from_file.clone())
        };
        let number = |var: &str, from_file: Option<i64>| -> Result<Option<i64>, ConfigError> {
            match env(var).filter(|v| !v.is_empty()) {
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| bad(var, format!("expected a whole number, got {v:?}"))),
                None => Ok(from_file),
            }
        };

        let bind_text =
            text("TOLLGATE_BIND", &file_cfg.bind).unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            bad(
                "TOLLGATE_BIND",
                format!("expected HOST:PORT such as 127.0.0.1:8080, got {bind_text:?}"),
            )
        })?;
        let metrics_bind = match text("TOLLGATE_METRICS_BIND", &file_cfg.metrics_bind) {
            None => None,
            Some(t) => Some(t.parse::<SocketAddr>().map_err(|_| {
                bad(
                    "TOLLGATE_METRICS_BIND",
                    format!("expected HOST:PORT such as 127.0.0.1:9090, got {t:?}"),
                )
            })?),
        };
        let db = text("TOLLGATE_DB", &file_cfg.db).unwrap_or_else(|| "./tollgate.db".into());
        if crate::store::postgres::is_postgres_url(&db) {
            if let Err(e) = crate::store::postgres::target(&db) {
                return Err(bad(
                    "TOLLGATE_DB",
                    format!(
                        "not a usable PostgreSQL URL ({e}): {}",
                        crate::store::postgres::redact_url(&db)
                    ),
                ));
            }
        }
        let keys_dir = PathBuf::from(
            text("TOLLGATE_KEYS_DIR", &file_cfg.keys_dir).unwrap_or_else(|| "./keys".into()),
        );
        let issuer_explicit = text("TOLLGATE_ISSUER", &file_cfg.issuer).is_some();
        let issuer =
            text("TOLLGATE_ISSUER", &file_cfg.issuer).unwrap_or_else(|| format!("http://{bind}"));
        let issuer = issuer.trim_end_matches('/').to_string();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://"))
            || issuer.contains(['?', '#', ' '])
        {
            return Err(bad(
                "TOLLGATE_ISSUER",
                format!("expected an http(s) URL without query or fragment, got {issuer:?}"),
            ));
        }
        let alg_text =
            text("TOLLGATE_SIGNING_ALG", &file_cfg.signing_alg).unwrap_or_else(|| "ES256".into());
        let signing_alg = Alg::parse(&alg_text).ok_or_else(|| {
            bad(
                "TOLLGATE_SIGNING_ALG",
                format!("expected one of ES256, EdDSA, RS256, got {alg_text:?}"),
            )
        })?;
        let api_key_prefix = text("TOLLGATE_API_KEY_PREFIX", &file_cfg.api_key_prefix)
            .unwrap_or_else(|| "tg_live_".into());
        if api_key_prefix.is_empty()
            || api_key_prefix.len() > 32
            || !api_key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(bad(
                "TOLLGATE_API_KEY_PREFIX",
                format!("expected 1 to 32 characters of [A-Za-z0-9_-], got {api_key_prefix:?}"),
            ));
        }
        // A whole number from the environment or the file, or the default,
        // within lo..=hi; `unit` finishes the error message.
        let ranged =
            |var: &str, from_file: Option<i64>, default: i64, lo: i64, hi: i64, unit: &str| {
                let v = number(var, from_file)?.unwrap_or(default);
                if (lo..=hi).contains(&v) {
                    Ok(v)
                } else {
                    Err(bad(var, format!("must be between {lo} and {hi}{unit}")))
                }
            };
        let max_token_ttl = ranged(
            "TOLLGATE_MAX_TOKEN_TTL",
            file_cfg.max_token_ttl,
            86_400,
            1,
            86_400,
            " seconds",
        )?;
        let default_token_ttl =
            number("TOLLGATE_DEFAULT_TOKEN_TTL", file_cfg.default_token_ttl)?.unwrap_or(3_600);
        if !(1..=max_token_ttl).contains(&default_token_ttl) {
            return Err(bad(
                "TOLLGATE_DEFAULT_TOKEN_TTL",
                format!("must be between 1 and the maximum TTL ({max_token_ttl} seconds)"),
            ));
        }
        let max_keys = ranged(
            "TOLLGATE_MAX_API_KEYS_PER_CLIENT",
            file_cfg.max_api_keys_per_client.map(i64::from),
            5,
            1,
            1000,
            "",
        )?;
        let secret_grace = ranged(
            "TOLLGATE_SECRET_GRACE",
            file_cfg.secret_grace,
            86_400,
            0,
            30 * 86_400,
            " seconds",
        )?;
        let key_prepublish = ranged(
            "TOLLGATE_KEY_PREPUBLISH",
            file_cfg.key_prepublish,
            300,
            0,
            7 * 86_400,
            " seconds",
        )?;
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = ranged(
            "TOLLGATE_WORKERS",
            file_cfg.workers.map(|w| w as i64),
            cpus as i64,
            1,
            256,
            "",
        )?;
        let db_pool_size = ranged(
            "TOLLGATE_DB_POOL_SIZE",
            file_cfg.db_pool_size,
            16,
            1,
            1024,
            "",
        )?;
        let max_body = ranged(
            "TOLLGATE_MAX_BODY_BYTES",
            file_cfg.max_body_bytes.map(|w| w as i64),
            16 * 1024,
            // A body must hold the longest token and a client's credentials.
            2 * crate::token::MAX_TOKEN_LEN as i64,
            1024 * 1024,
            "",
        )?;

        let list = |var: &str, from_file: &Option<Vec<String>>| -> Vec<String> {
            match env(var) {
                Some(v) => v
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                None => from_file.clone().unwrap_or_default(),
            }
        };
        let blocking_threads = ranged(
            "TOLLGATE_BLOCKING_THREADS",
            file_cfg.blocking_threads,
            1,
            1,
            512,
            "",
        )?;
        let request_timeout = ranged(
            "TOLLGATE_REQUEST_TIMEOUT",
            file_cfg.request_timeout,
            10,
            1,
            300,
            "",
        )?;
        let day = 86_400;
        let token_quota = ranged(
            "TOLLGATE_TOKEN_QUOTA",
            file_cfg.token_quota,
            0,
            0,
            1_000_000_000,
            "",
        )?;
        let token_quota_window = ranged(
            "TOLLGATE_TOKEN_QUOTA_WINDOW",
            file_cfg.token_quota_window,
            3600,
            1,
            30 * day,
            "",
        )?;
        let token_quota_ban = ranged(
            "TOLLGATE_TOKEN_QUOTA_BAN",
            file_cfg.token_quota_ban,
            3600,
            0,
            30 * day,
            "",
        )?;
        let ip_limit_get = ranged(
            "TOLLGATE_IP_LIMIT_GET",
            file_cfg.ip_limit_get,
            1200,
            0,
            1_000_000_000,
            "",
        )?;
        let ip_limit_post = ranged(
            "TOLLGATE_IP_LIMIT_POST",
            file_cfg.ip_limit_post,
            600,
            0,
            1_000_000_000,
            "",
        )?;
        let auth_fail_ip_limit = ranged(
            "TOLLGATE_AUTH_FAIL_IP_LIMIT",
            file_cfg.auth_fail_ip_limit,
            30,
            1,
            1_000_000_000,
            "",
        )?;
        let auth_fail_pair_limit = ranged(
            "TOLLGATE_AUTH_FAIL_PAIR_LIMIT",
            file_cfg.auth_fail_pair_limit,
            10,
            1,
            1_000_000_000,
            "",
        )?;
        let auth_fail_client_limit = ranged(
            "TOLLGATE_AUTH_FAIL_CLIENT_LIMIT",
            file_cfg.auth_fail_client_limit,
            100,
            1,
            1_000_000_000,
            "",
        )?;
        let mut trusted_proxies = Vec::new();
        for p in list("TOLLGATE_TRUSTED_PROXIES", &file_cfg.trusted_proxies) {
            trusted_proxies.push(p.parse().map_err(|_| {
                bad(
                    "TOLLGATE_TRUSTED_PROXIES",
                    format!("expected IP addresses, got {p:?}"),
                )
            })?);
        }
        let cors_origins = list("TOLLGATE_CORS_ORIGINS", &file_cfg.cors_origins);
        for o in &cors_origins {
            if !(o.starts_with("https://") || o.starts_with("http://")) || o.ends_with('/') {
                return Err(bad(
                    "TOLLGATE_CORS_ORIGINS",
                    format!("expected origins such as https://app.example.com, got {o:?}"),
                ));
            }
        }

        Ok(Config {
            bind,
            db,
            db_pool_size: db_pool_size as usize,
            keys_dir,
            issuer,
            issuer_explicit,
            signing_alg,
            api_key_prefix,
            default_token_ttl,
            max_token_ttl,
            max_api_keys_per_client: max_keys as u32,
            secret_grace,
            key_prepublish,
            workers: workers as usize,
            blocking_threads: blocking_threads as usize,
            max_body_bytes: max_body as usize,
            request_timeout: request_timeout as u64,
            token_quota: token_quota as u64,
            token_quota_window,
            token_quota_ban,
            ip_limit_get: ip_limit_get as u64,
            ip_limit_post: ip_limit_post as u64,
            trusted_proxies,
            auth_fail_ip_limit: auth_fail_ip_limit as u64,
            auth_fail_pair_limit: auth_fail_pair_limit as u64,
            auth_fail_client_limit: auth_fail_client_limit as u64,
            cors_origins,
            metrics_bind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_sources(None, move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_without_any_setting() {
        let c = with(&[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
        assert_eq!(c.db, "./tollgate.db");
        assert_eq!(c.signing_alg, Alg::Es256);
        assert_eq!(c.api_key_prefix, "tg_live_");
        assert_eq!(c.max_token_ttl, 86_400);
        assert_eq!(c.default_token_ttl, 3_600);
        assert_eq!(c.max_api_keys_per_client, 5);
    }

    #[test]
    fn environment_wins_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "signing_alg = \"RS256\"\napi_key_prefix = \"sp_live_\"\n",
        )
        .unwrap();
        let c = Config::from_sources(Some(&path), |k| {
            (k == "TOLLGATE_SIGNING_ALG").then(|| "EdDSA".to_string())
        })
        .unwrap();
        assert_eq!(c.signing_alg, Alg::EdDsa);
        assert_eq!(c.api_key_prefix, "sp_live_");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = with(&[("TOLLGATE_SIGNING_ALG", "HS256")]).unwrap_err();
        assert!(e.to_string().contains("TOLLGATE_SIGNING_ALG"), "{e}");
        let e = with(&[("TOLLGATE_BIND", "nowhere")]).unwrap_err();
        assert!(e.to_string().contains("TOLLGATE_BIND"), "{e}");
        let e = with(&[("TOLLGATE_MAX_TOKEN_TTL", "100000")]).unwrap_err();
        assert!(e.to_string().contains("TOLLGATE_MAX_TOKEN_TTL"), "{e}");
        let e = with(&[("TOLLGATE_API_KEY_PREFIX", "bad prefix")]).unwrap_err();
        assert!(e.to_string().contains("TOLLGATE_API_KEY_PREFIX"), "{e}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "bnid = \"x\"\n").unwrap();
        let e = Config::from_sources(Some(&path), |_| None).unwrap_err();
        assert!(e.to_string().contains("bnid"), "{e}");
    }
}
