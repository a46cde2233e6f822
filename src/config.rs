//! The one typed `Config`: read from an optional TOML file, then from the
//! environment (which wins), and validated once. Every setting is declared
//! once, in [`SETTINGS`] (TOML key, environment variable, default, range,
//! meaning); the reader, the list of variables and the documentation test
//! all derive from that table.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::token::Alg;

/// Server-wide settings, typed and validated. Each field is read from the
/// setting of the same name in [`SETTINGS`], which gives its variable,
/// default, range and meaning.
#[derive(Debug, Clone)]
pub struct Config {
    /// The [`BIND`] setting, validated.
    pub bind: SocketAddr,
    /// The [`DB`] setting, validated.
    pub db: String,
    /// The [`DB_POOL_SIZE`] setting, validated.
    pub db_pool_size: usize,
    /// The [`OUTAGE_GRACE`] setting, validated (seconds).
    pub outage_grace: i64,
    /// The [`CACHE_MIB`] setting, validated.
    pub cache_mib: usize,
    /// The [`KEYS_DIR`] setting, validated.
    pub keys_dir: PathBuf,
    /// The [`ISSUER`] setting, validated.
    pub issuer: String,
    /// Whether `issuer` was set explicitly; if not, the server derives it from
    /// the address it actually bound (so port 0 gives a usable issuer).
    pub issuer_explicit: bool,
    /// The [`SIGNING_ALG`] setting, validated.
    pub signing_alg: Alg,
    /// The [`API_KEY_PREFIX`] setting, validated.
    pub api_key_prefix: String,
    /// The [`DEFAULT_TOKEN_TTL`] setting, validated.
    pub default_token_ttl: i64,
    /// The [`MAX_TOKEN_TTL`] setting, validated.
    pub max_token_ttl: i64,
    /// The [`MAX_API_KEYS_PER_CLIENT`] setting, validated.
    pub max_api_keys_per_client: u32,
    /// The [`SECRET_GRACE`] setting, validated.
    pub secret_grace: i64,
    /// The [`KEY_PREPUBLISH`] setting, validated.
    pub key_prepublish: i64,
    /// The [`WORKERS`] setting, validated.
    pub workers: usize,
    /// The [`BLOCKING_THREADS`] setting, validated.
    pub blocking_threads: usize,
    /// The [`MAX_BODY_BYTES`] setting, validated.
    pub max_body_bytes: usize,
    /// The [`REQUEST_TIMEOUT`] setting, validated.
    pub request_timeout: u64,
    /// The [`TOKEN_QUOTA`] setting, validated.
    pub token_quota: u64,
    /// The [`TOKEN_QUOTA_WINDOW`] setting, validated.
    pub token_quota_window: i64,
    /// The [`TOKEN_QUOTA_BAN`] setting, validated.
    pub token_quota_ban: i64,
    /// The [`IP_LIMIT_GET`] setting, validated.
    pub ip_limit_get: u64,
    /// The [`IP_LIMIT_POST`] setting, validated.
    pub ip_limit_post: u64,
    /// The [`TRUSTED_PROXIES`] setting, validated.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The [`AUTH_FAIL_IP_LIMIT`] setting, validated.
    pub auth_fail_ip_limit: u64,
    /// The [`AUTH_FAIL_PAIR_LIMIT`] setting, validated.
    pub auth_fail_pair_limit: u64,
    /// The [`AUTH_FAIL_CLIENT_LIMIT`] setting, validated.
    pub auth_fail_client_limit: u64,
    /// The [`METRICS_BIND`] setting, validated.
    pub metrics_bind: Option<SocketAddr>,
    /// The [`CORS_ORIGINS`] setting, validated.
    pub cors_origins: Vec<String>,
    /// The [`ASSERTION_MAX_LIFETIME`] setting.
    pub assertion_max_lifetime: i64,
    /// The [`FETCH_ALLOW_LOCAL`] setting.
    pub fetch_allow_local: bool,
    /// The [`TLS_CERT`] setting.
    pub tls_cert: Option<PathBuf>,
    /// The [`TLS_KEY`] setting.
    pub tls_key: Option<PathBuf>,
    /// The [`TLS_CLIENT_CA`] setting.
    pub tls_client_ca: Option<PathBuf>,
    /// The [`LOG_FORMAT`] setting: JSON lines.
    pub log_json: bool,
    /// The [`DPOP_IAT_WINDOW`] setting.
    pub dpop_iat_window: i64,
    /// The [`DPOP_NONCE`] setting.
    pub dpop_nonce: bool,
    /// The [`DPOP_NONCE_LIFETIME`] setting.
    pub dpop_nonce_lifetime: i64,
    /// The [`CONSOLE`] setting: the web console is served.
    pub console: bool,
    /// The [`EXCHANGE_MAX_DEPTH`] setting: actors in an `act` chain at most.
    pub exchange_max_depth: usize,
    /// The [`TXN_TRUST_DOMAIN`] setting: transaction tokens are issued for
    /// this trust domain; `None`, not at all.
    pub txn_trust_domain: Option<String>,
    /// The [`TXN_TOKEN_TTL`] setting.
    pub txn_token_ttl: i64,
    /// The PKCS#11 token of the signing keys ([`PKCS11_MODULE`],
    /// [`PKCS11_TOKEN_LABEL`], [`PKCS11_PIN_FILE`]); `None`: key files.
    pub pkcs11: Option<crate::token::pkcs11::Pkcs11Settings>,
    /// The [`CIMD_ALLOWED_HOSTS`] setting: hosts whose URLs may be client
    /// ids (a name, or `*.` and a suffix); empty, none.
    pub cimd_allowed_hosts: Vec<String>,
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

/// What kind of value a setting holds, and its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number in `min..=max`.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// Text, checked by the setting's own parser.
    Text,
    /// A comma-separated list in the environment, an array in TOML.
    List,
}

/// One setting, declared once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The TOML key.
    pub key: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// The default, written as a value of the variable would be; `None`
    /// when there is none or it is derived (see `default_doc`).
    pub default: Option<&'static str>,
    /// The default as the documentation states it.
    pub default_doc: &'static str,
    /// Its kind and range.
    pub kind: Kind,
    /// What it means (the documentation table carries the longer story).
    pub doc: &'static str,
}

macro_rules! settings {
    ($( $name:ident = $key:literal, $env:literal, $default:expr, $default_doc:literal, $kind:expr, $doc:literal; )*) => {
        $(
            #[doc = $doc]
            pub const $name: Setting = Setting {
                key: $key,
                env: $env,
                default: $default,
                default_doc: $default_doc,
                kind: $kind,
                doc: $doc,
            };
        )*
        /// Every setting Tollgate reads, in the order of the documentation.
        pub const SETTINGS: &[Setting] = &[$($name),*];
    };
}

const fn int(min: i64, max: i64) -> Kind {
    Kind::Int { min, max }
}

const DAY: i64 = 86_400;

settings! {
    BIND = "bind", "TOLLGATE_BIND", Some("127.0.0.1:8080"), "`127.0.0.1:8080`", Kind::Text,
        "Listen address; port 0 picks a free port.";
    DB = "db", "TOLLGATE_DB", Some("./tollgate.db"), "`./tollgate.db`", Kind::Text,
        "SQLite database file, or a postgres:// URL for a fleet on PostgreSQL.";
    DB_POOL_SIZE = "db_pool_size", "TOLLGATE_DB_POOL_SIZE", Some("16"), "`16`", int(1, 1024),
        "PostgreSQL connections per instance at most; ignored by SQLite.";
    OUTAGE_GRACE = "outage_grace", "TOLLGATE_OUTAGE_GRACE", Some("0"), "`0`", int(0, 300),
        "Seconds a PostgreSQL instance keeps issuing and introspecting from its cache while the database is unreachable, after its last confirmed-fresh moment; writes still answer 503. 0: fail closed at once.";
    CACHE_MIB = "cache_mib", "TOLLGATE_CACHE_MIB", Some("32"), "`32`", int(1, 4096),
        "MiB the store's cache may hold (clients and their secrets, API keys, revocation answers), by its entries' estimated size; also at most 100,000 entries a map. More keeps more clients warm when each request names another client; less bounds memory tighter.";
    KEYS_DIR = "keys_dir", "TOLLGATE_KEYS_DIR", Some("./keys"), "`./keys`", Kind::Text,
        "Directory of the signing-key PEM files.";
    ISSUER = "issuer", "TOLLGATE_ISSUER", None, "`http://` (`https://` with `TOLLGATE_TLS_CERT`) + the bound address", Kind::Text,
        "The `iss` claim and the base of every URL in the metadata.";
    SIGNING_ALG = "signing_alg", "TOLLGATE_SIGNING_ALG", Some("ES256"), "`ES256`", Kind::Text,
        "Algorithm of newly generated signing keys: ES256, EdDSA, RS256 or PS256.";
    API_KEY_PREFIX = "api_key_prefix", "TOLLGATE_API_KEY_PREFIX", Some("tg_live_"), "`tg_live_`", Kind::Text,
        "Prefix of new API keys, 1 to 32 of [A-Za-z0-9_-].";
    DEFAULT_TOKEN_TTL = "default_token_ttl", "TOLLGATE_DEFAULT_TOKEN_TTL", Some("3600"), "`3600`", int(1, DAY),
        "Token lifetime in seconds for clients without their own (at most the maximum).";
    MAX_TOKEN_TTL = "max_token_ttl", "TOLLGATE_MAX_TOKEN_TTL", Some("86400"), "`86400`", int(1, DAY),
        "Cap on every token lifetime, in seconds.";
    MAX_API_KEYS_PER_CLIENT = "max_api_keys_per_client", "TOLLGATE_MAX_API_KEYS_PER_CLIENT", Some("5"), "`5`", int(1, 1000),
        "Active API keys a client may hold at once.";
    SECRET_GRACE = "secret_grace", "TOLLGATE_SECRET_GRACE", Some("86400"), "`86400`", int(0, 30 * DAY),
        "Default seconds an old client secret keeps working after a rotation.";
    KEY_PREPUBLISH = "key_prepublish", "TOLLGATE_KEY_PREPUBLISH", Some("300"), "`300`", int(0, 7 * DAY),
        "Default seconds a rotated-in signing key is published before it signs.";
    WORKERS = "workers", "TOLLGATE_WORKERS", None, "CPU count", int(1, 256),
        "HTTP worker threads.";
    BLOCKING_THREADS = "blocking_threads", "TOLLGATE_BLOCKING_THREADS", Some("4"), "`4`", int(1, 512),
        "Threads per worker that run database calls.";
    MAX_BODY_BYTES = "max_body_bytes", "TOLLGATE_MAX_BODY_BYTES", Some("16384"), "`16384`",
        int(2 * crate::token::MAX_TOKEN_LEN as i64, 1024 * 1024),
        "Largest request body; it must hold the longest token and credentials.";
    REQUEST_TIMEOUT = "request_timeout", "TOLLGATE_REQUEST_TIMEOUT", Some("10"), "`10`", int(1, 300),
        "Seconds a client may take to send its headers and body (then 408).";
    TOKEN_QUOTA = "token_quota", "TOLLGATE_TOKEN_QUOTA", Some("0"), "`0` (none)", int(0, 1_000_000_000),
        "Tokens a client may get per quota window, unless it has its own quota.";
    TOKEN_QUOTA_WINDOW = "token_quota_window", "TOLLGATE_TOKEN_QUOTA_WINDOW", Some("3600"), "`3600`", int(1, 30 * DAY),
        "Quota window in seconds.";
    TOKEN_QUOTA_BAN = "token_quota_ban", "TOLLGATE_TOKEN_QUOTA_BAN", Some("3600"), "`3600`", int(0, 30 * DAY),
        "Seconds a client over its quota is refused tokens.";
    IP_LIMIT_GET = "ip_limit_get", "TOLLGATE_IP_LIMIT_GET", Some("1200"), "`1200`", int(0, 1_000_000_000),
        "GET and HEAD requests per client IP per minute that are not authenticated successes (0: off).";
    IP_LIMIT_POST = "ip_limit_post", "TOLLGATE_IP_LIMIT_POST", Some("600"), "`600`", int(0, 1_000_000_000),
        "Other requests per client IP per minute that are not authenticated successes (0: off).";
    TRUSTED_PROXIES = "trusted_proxies", "TOLLGATE_TRUSTED_PROXIES", None, "none", Kind::List,
        "Proxy IPs whose X-Forwarded-For is believed.";
    AUTH_FAIL_IP_LIMIT = "auth_fail_ip_limit", "TOLLGATE_AUTH_FAIL_IP_LIMIT", Some("30"), "`30`", int(1, 1_000_000_000),
        "Failed authentications per IP per minute before that IP is refused.";
    AUTH_FAIL_PAIR_LIMIT = "auth_fail_pair_limit", "TOLLGATE_AUTH_FAIL_PAIR_LIMIT", Some("10"), "`10`", int(1, 1_000_000_000),
        "Failed authentications per client id and IP per minute.";
    AUTH_FAIL_CLIENT_LIMIT = "auth_fail_client_limit", "TOLLGATE_AUTH_FAIL_CLIENT_LIMIT", Some("100"), "`100`", int(1, 1_000_000_000),
        "Failed authentications per client id per minute from anywhere.";
    CORS_ORIGINS = "cors_origins", "TOLLGATE_CORS_ORIGINS", None, "none", Kind::List,
        "Origins allowed to call the token, introspection, revocation and admin endpoints from a browser.";
    METRICS_BIND = "metrics_bind", "TOLLGATE_METRICS_BIND", None, "none", Kind::Text,
        "HOST:PORT of a private listener for GET /metrics; the public port then answers 404 there.";
    ASSERTION_MAX_LIFETIME = "assertion_max_lifetime", "TOLLGATE_ASSERTION_MAX_LIFETIME", Some("3600"), "`3600`", int(60, DAY),
        "How far ahead a private_key_jwt client assertion's exp may lie, in seconds.";
    FETCH_ALLOW_LOCAL = "fetch_allow_local", "TOLLGATE_FETCH_ALLOW_LOCAL", Some("false"), "`false`", Kind::Text,
        "`true` lets jwks_uri fetches reach loopback, private and link-local addresses, over http too (tests, labs).";
    TLS_CERT = "tls_cert", "TOLLGATE_TLS_CERT", None, "none (plain HTTP)", Kind::Text,
        "PEM file of the server's certificate chain: Tollgate serves HTTPS itself (rustls); reloaded on SIGHUP.";
    TLS_KEY = "tls_key", "TOLLGATE_TLS_KEY", None, "none", Kind::Text,
        "PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1); reloaded on SIGHUP.";
    TLS_CLIENT_CA = "tls_client_ca", "TOLLGATE_TLS_CLIENT_CA", None, "none", Kind::Text,
        "PEM file of the CA certificates client certificates chain to (tls_client_auth); enables optional client certificates.";
    LOG_FORMAT = "log_format", "TOLLGATE_LOG_FORMAT", Some("text"), "`text`", Kind::Text,
        "`json` logs one JSON object per line (time, level, target, message, request_id, client_id).";
    DPOP_IAT_WINDOW = "dpop_iat_window", "TOLLGATE_DPOP_IAT_WINDOW", Some("60"), "`60`", int(5, 3600),
        "How far a DPoP proof's iat may lie from now, either way, in seconds; its jti is remembered that long.";
    DPOP_NONCE = "dpop_nonce", "TOLLGATE_DPOP_NONCE", Some("false"), "`false`", Kind::Text,
        "`true` requires the server's DPoP nonce in every proof (RFC 9449 §8).";
    DPOP_NONCE_LIFETIME = "dpop_nonce_lifetime", "TOLLGATE_DPOP_NONCE_LIFETIME", Some("300"), "`300`", int(10, DAY),
        "Seconds between DPoP nonce rotations; a nonce is accepted for up to two of them.";
    CONSOLE = "console", "TOLLGATE_CONSOLE", Some("on"), "`on`", Kind::Text,
        "`off` stops serving the web console at `/console` (its routes answer 404).";
    EXCHANGE_MAX_DEPTH = "exchange_max_depth", "TOLLGATE_EXCHANGE_MAX_DEPTH", Some("4"), "`4`", int(1, 16),
        "Actors a token-exchange chain may record in `act` at most (RFC 8693 §4.1); one more exchange is `invalid_request`.";
    TXN_TRUST_DOMAIN = "txn_trust_domain", "TOLLGATE_TXN_TRUST_DOMAIN", None, "none (off)", Kind::Text,
        "A URI naming the trust domain of transaction tokens (draft-ietf-oauth-transaction-tokens): set, clients whose exchange policy allows it may request them with `audience` set to it.";
    CIMD_ALLOWED_HOSTS = "cimd_allowed_hosts", "TOLLGATE_CIMD_ALLOWED_HOSTS", None, "none (off)", Kind::List,
        "Hosts whose https URLs may be client ids (Client ID Metadata Documents); `*.` allows a domain's subdomains.";
    TXN_TOKEN_TTL = "txn_token_ttl", "TOLLGATE_TXN_TOKEN_TTL", Some("60"), "`60`", int(1, 300),
        "Lifetime of a transaction token in seconds; a replacement never outlives the original by it.";
    PKCS11_MODULE = "pkcs11_module", "TOLLGATE_PKCS11_MODULE", None, "none (keys are files)", Kind::Text,
        "Path of a PKCS#11 module (`/usr/lib/softhsm/libsofthsm2.so`, an HSM vendor's library): set, every new signing key is made in the token and no file key signs.";
    PKCS11_TOKEN_LABEL = "pkcs11_token_label", "TOLLGATE_PKCS11_TOKEN_LABEL", None, "none (required with the module)", Kind::Text,
        "Label of the PKCS#11 token that holds the signing keys.";
    PKCS11_PIN_FILE = "pkcs11_pin_file", "TOLLGATE_PKCS11_PIN_FILE", None, "none (required with the module)", Kind::Text,
        "A file holding the token's user PIN (a trailing newline is ignored); the PIN itself is never a setting.";
}

/// Whether `url` can be the base of Tollgate's URLs (the issuer, a console
/// login link's host): `http(s)://`, without query, fragment or space.
pub fn is_base_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://")) && !url.contains(['?', '#', ' '])
}

/// Every environment variable Tollgate reads, with its TOML key.
pub fn env_vars() -> impl Iterator<Item = (&'static str, &'static str)> {
    SETTINGS.iter().map(|s| (s.env, s.key))
}

/// The raw values of the settings: the environment first, then the file.
struct Sources<E> {
    file: toml::Table,
    env: E,
}

impl<E: Fn(&str) -> Option<String>> Sources<E> {
    /// The value of `s` as text, or its default; `None` when unset and
    /// without a fixed default. Empty variables count as unset.
    fn text(&self, s: &Setting) -> Result<Option<String>, ConfigError> {
        if let Some(v) = (self.env)(s.env).filter(|v| !v.is_empty()) {
            return Ok(Some(v));
        }
        let from_file = match self.file.get(s.key) {
            None => None,
            Some(toml::Value::String(v)) => Some(v.clone()),
            Some(toml::Value::Integer(v)) => Some(v.to_string()),
            Some(toml::Value::Array(items)) if s.kind == Kind::List => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        toml::Value::String(v) => out.push(v.clone()),
                        _ => return Err(bad(s.key, "expected an array of strings")),
                    }
                }
                Some(out.join(","))
            }
            Some(_) => {
                return Err(bad(
                    s.key,
                    match s.kind {
                        Kind::Int { .. } => "expected a whole number",
                        Kind::Text => "expected a string",
                        Kind::List => "expected an array of strings",
                    },
                ))
            }
        };
        Ok(from_file.or_else(|| s.default.map(str::to_string)))
    }

    /// A whole-number setting, checked against its range; `None` when it is
    /// unset and has no fixed default.
    fn int_opt(&self, s: &Setting) -> Result<Option<i64>, ConfigError> {
        let Kind::Int { min, max } = s.kind else {
            return Err(bad(s.env, "not a whole-number setting"));
        };
        let Some(text) = self.text(s)? else {
            return Ok(None);
        };
        let v: i64 = text
            .trim()
            .parse()
            .map_err(|_| bad(s.env, format!("expected a whole number, got {text:?}")))?;
        if !(min..=max).contains(&v) {
            return Err(bad(s.env, format!("must be between {min} and {max}")));
        }
        Ok(Some(v))
    }

    /// A whole-number setting with a fixed default.
    fn int(&self, s: &Setting) -> Result<i64, ConfigError> {
        self.int_opt(s)?
            .ok_or_else(|| bad(s.env, "has no default and is not set"))
    }

    /// A list setting (empty when unset).
    fn list(&self, s: &Setting) -> Result<Vec<String>, ConfigError> {
        Ok(self
            .text(s)?
            .map(|v| {
                v.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn socket_addr(s: &Setting, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        bad(
            s.env,
            format!("expected HOST:PORT such as 127.0.0.1:8080, got {text:?}"),
        )
    })
}

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
        let file = match file {
            None => toml::Table::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad("--config", format!("cannot read {}: {e}", path.display())))?;
                let table: toml::Table = toml::from_str(&text).map_err(|e| {
                    bad(
                        "--config",
                        format!("{}: {}", path.display(), e.message().trim()),
                    )
                })?;
                if let Some(unknown) = table.keys().find(|k| !SETTINGS.iter().any(|s| s.key == *k))
                {
                    return Err(bad(
                        "--config",
                        format!("{}: unknown setting {unknown:?}", path.display()),
                    ));
                }
                table
            }
        };
        let src = Sources { file, env };
        let text = |s: &Setting| src.text(s);

        let bind_text = text(&BIND)?.unwrap_or_default();
        let bind = socket_addr(&BIND, &bind_text)?;
        let metrics_bind = match text(&METRICS_BIND)? {
            None => None,
            Some(t) => Some(socket_addr(&METRICS_BIND, &t)?),
        };
        let db = text(&DB)?.unwrap_or_default();
        if crate::store::postgres::is_postgres_url(&db) {
            if let Err(e) = crate::store::postgres::target(&db) {
                return Err(bad(
                    DB.env,
                    format!(
                        "not a usable PostgreSQL URL ({e}): {}",
                        crate::store::postgres::redact_url(&db)
                    ),
                ));
            }
        }
        let keys_dir = PathBuf::from(text(&KEYS_DIR)?.unwrap_or_default());
        let issuer_text = text(&ISSUER)?;
        let issuer_explicit = issuer_text.is_some();
        // Without an explicit issuer, the scheme follows native TLS here as
        // in the server, so the command line (a console login link) names
        // the same URL the server serves (issue 23, N10).
        let scheme = if text(&TLS_CERT)?.is_some() {
            "https"
        } else {
            "http"
        };
        let issuer = issuer_text
            .unwrap_or_else(|| format!("{scheme}://{bind}"))
            .trim_end_matches('/')
            .to_string();
        if !is_base_url(&issuer) {
            return Err(bad(
                ISSUER.env,
                format!("expected an http(s) URL without query or fragment, got {issuer:?}"),
            ));
        }
        let pkcs11 = match (
            text(&PKCS11_MODULE)?,
            text(&PKCS11_TOKEN_LABEL)?,
            text(&PKCS11_PIN_FILE)?,
        ) {
            (None, None, None) => None,
            (Some(module), Some(token_label), Some(pin_file)) => {
                if token_label.is_empty() || token_label.len() > 32 {
                    return Err(bad(
                        PKCS11_TOKEN_LABEL.env,
                        "a PKCS#11 token label has 1 to 32 characters",
                    ));
                }
                Some(crate::token::pkcs11::Pkcs11Settings {
                    module: PathBuf::from(module),
                    token_label,
                    pin_file: PathBuf::from(pin_file),
                })
            }
            (module, label, _) => {
                let missing = if module.is_none() {
                    PKCS11_MODULE.env
                } else if label.is_none() {
                    PKCS11_TOKEN_LABEL.env
                } else {
                    PKCS11_PIN_FILE.env
                };
                return Err(bad(
                    missing,
                    "the PKCS#11 settings go together: TOLLGATE_PKCS11_MODULE, \
                     TOLLGATE_PKCS11_TOKEN_LABEL and TOLLGATE_PKCS11_PIN_FILE",
                ));
            }
        };
        let alg_text = text(&SIGNING_ALG)?.unwrap_or_default();
        let signing_alg = Alg::parse(&alg_text).ok_or_else(|| {
            bad(
                SIGNING_ALG.env,
                format!("expected one of ES256, EdDSA, RS256, PS256, got {alg_text:?}"),
            )
        })?;
        let api_key_prefix = text(&API_KEY_PREFIX)?.unwrap_or_default();
        if api_key_prefix.is_empty()
            || api_key_prefix.len() > 32
            || !api_key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(bad(
                API_KEY_PREFIX.env,
                format!("expected 1 to 32 characters of [A-Za-z0-9_-], got {api_key_prefix:?}"),
            ));
        }
        let max_token_ttl = src.int(&MAX_TOKEN_TTL)?;
        let default_token_ttl = src.int(&DEFAULT_TOKEN_TTL)?;
        if default_token_ttl > max_token_ttl {
            return Err(bad(
                DEFAULT_TOKEN_TTL.env,
                format!("must be between 1 and the maximum TTL ({max_token_ttl} seconds)"),
            ));
        }
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut trusted_proxies = Vec::new();
        for p in src.list(&TRUSTED_PROXIES)? {
            trusted_proxies.push(p.parse().map_err(|_| {
                bad(
                    TRUSTED_PROXIES.env,
                    format!("expected IP addresses, got {p:?}"),
                )
            })?);
        }
        let flag = |s: &Setting| match text(s)?.as_deref() {
            Some("true") => Ok(true),
            Some("false") | None => Ok(false),
            Some(other) => Err(bad(s.env, format!("expected true or false, got {other:?}"))),
        };
        let fetch_allow_local = flag(&FETCH_ALLOW_LOCAL)?;
        let dpop_nonce = flag(&DPOP_NONCE)?;
        let console = match text(&CONSOLE)?.as_deref() {
            Some("on") | None => true,
            Some("off") => false,
            Some(other) => {
                return Err(bad(
                    CONSOLE.env,
                    format!("expected on or off, got {other:?}"),
                ))
            }
        };
        let path = |s: &Setting| text(s).map(|t| t.map(PathBuf::from));
        let (tls_cert, tls_key, tls_client_ca) =
            (path(&TLS_CERT)?, path(&TLS_KEY)?, path(&TLS_CLIENT_CA)?);
        if tls_cert.is_some() != tls_key.is_some() {
            return Err(bad(
                TLS_CERT.env,
                format!("{} and {} go together", TLS_CERT.env, TLS_KEY.env),
            ));
        }

        let txn_trust_domain = text(&TXN_TRUST_DOMAIN)?;
        if let Some(d) = &txn_trust_domain {
            if !d.contains(':') || d.contains(['#', ' ']) || d.len() > 512 {
                return Err(bad(
                    TXN_TRUST_DOMAIN.env,
                    format!("expected an absolute URI without a fragment, got {d:?}"),
                ));
            }
        }

        let mut cimd_allowed_hosts = Vec::new();
        for h in src.list(&CIMD_ALLOWED_HOSTS)? {
            let h = h.to_ascii_lowercase();
            if !crate::oauth::cimd::is_host_pattern(&h) {
                return Err(bad(
                    CIMD_ALLOWED_HOSTS.env,
                    format!("expected host names such as agents.example.com or *.example.com, got {h:?}"),
                ));
            }
            cimd_allowed_hosts.push(h);
        }

        let cors_origins = src.list(&CORS_ORIGINS)?;
        for o in &cors_origins {
            if !(o.starts_with("https://") || o.starts_with("http://")) || o.ends_with('/') {
                return Err(bad(
                    CORS_ORIGINS.env,
                    format!("expected origins such as https://app.example.com, got {o:?}"),
                ));
            }
        }

        Ok(Config {
            bind,
            db,
            db_pool_size: src.int(&DB_POOL_SIZE)? as usize,
            outage_grace: src.int(&OUTAGE_GRACE)?,
            cache_mib: src.int(&CACHE_MIB)? as usize,
            keys_dir,
            issuer,
            issuer_explicit,
            signing_alg,
            api_key_prefix,
            default_token_ttl,
            max_token_ttl,
            max_api_keys_per_client: src.int(&MAX_API_KEYS_PER_CLIENT)? as u32,
            secret_grace: src.int(&SECRET_GRACE)?,
            key_prepublish: src.int(&KEY_PREPUBLISH)?,
            workers: src.int_opt(&WORKERS)?.map_or(cpus.min(256), |w| w as usize),
            blocking_threads: src.int(&BLOCKING_THREADS)? as usize,
            max_body_bytes: src.int(&MAX_BODY_BYTES)? as usize,
            request_timeout: src.int(&REQUEST_TIMEOUT)? as u64,
            token_quota: src.int(&TOKEN_QUOTA)? as u64,
            token_quota_window: src.int(&TOKEN_QUOTA_WINDOW)?,
            token_quota_ban: src.int(&TOKEN_QUOTA_BAN)?,
            ip_limit_get: src.int(&IP_LIMIT_GET)? as u64,
            ip_limit_post: src.int(&IP_LIMIT_POST)? as u64,
            trusted_proxies,
            auth_fail_ip_limit: src.int(&AUTH_FAIL_IP_LIMIT)? as u64,
            auth_fail_pair_limit: src.int(&AUTH_FAIL_PAIR_LIMIT)? as u64,
            auth_fail_client_limit: src.int(&AUTH_FAIL_CLIENT_LIMIT)? as u64,
            cors_origins,
            metrics_bind,
            assertion_max_lifetime: src.int(&ASSERTION_MAX_LIFETIME)?,
            fetch_allow_local,
            tls_cert,
            tls_key,
            tls_client_ca,
            log_json: match text(&LOG_FORMAT)?.as_deref() {
                None | Some("text") => false,
                Some("json") => true,
                Some(other) => {
                    return Err(bad(
                        LOG_FORMAT.env,
                        format!("expected text or json, got {other:?}"),
                    ))
                }
            },
            dpop_iat_window: src.int(&DPOP_IAT_WINDOW)?,
            dpop_nonce,
            dpop_nonce_lifetime: src.int(&DPOP_NONCE_LIFETIME)?,
            console,
            exchange_max_depth: src.int(&EXCHANGE_MAX_DEPTH)? as usize,
            txn_trust_domain,
            txn_token_ttl: src.int(&TXN_TOKEN_TTL)?,
            cimd_allowed_hosts,
            pkcs11,
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
    fn every_setting_is_declared_once_and_its_default_is_valid() {
        let mut keys: Vec<_> = SETTINGS.iter().map(|s| s.key).collect();
        let mut envs: Vec<_> = SETTINGS.iter().map(|s| s.env).collect();
        keys.sort_unstable();
        envs.sort_unstable();
        keys.dedup();
        envs.dedup();
        assert_eq!((keys.len(), envs.len()), (SETTINGS.len(), SETTINGS.len()));
        for s in SETTINGS {
            assert_eq!(s.env, format!("TOLLGATE_{}", s.key.to_uppercase()));
            if let (Kind::Int { min, max }, Some(d)) = (s.kind, s.default) {
                let d: i64 = d.parse().unwrap();
                assert!((min..=max).contains(&d), "{}", s.env);
            }
        }
        // A file value of the wrong type names the key.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "workers = \"many\"\ntrusted_proxies = [\"127.0.0.1\"]\n",
        )
        .unwrap();
        let e = Config::from_sources(Some(&path), |_| None).unwrap_err();
        assert!(e.to_string().contains("TOLLGATE_WORKERS"), "{e}");
        std::fs::write(&path, "workers = 3\ntrusted_proxies = [\"127.0.0.1\"]\n").unwrap();
        let c = Config::from_sources(Some(&path), |_| None).unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(c.trusted_proxies.len(), 1);
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
