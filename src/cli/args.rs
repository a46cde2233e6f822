//! The command line's shape: clap types for every command and flag. The
//! dispatch is in `cli/mod.rs`, the presentation in `cli/output.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Tollgate: an OAuth 2.0 client-credentials authorization server.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file; environment variables (TOLLGATE_*) override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Run the HTTP server.
    Serve {
        /// Exit when standard input closes (used by tests to never leave a server behind).
        #[arg(long, hide = true)]
        exit_on_eof: bool,
    },
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(Box<ClientCmd>),
    /// Manage API keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCmd),
    /// Manage token-signing keys.
    #[command(subcommand, name = "signing-key")]
    SigningKey(SigningKeyCmd),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Shared Signals (SSF) streams that receivers made.
    #[command(subcommand)]
    Ssf(SsfCmd),
    /// Workload identity federation: trusted issuers and the rules that map
    /// their tokens to clients.
    #[command(subcommand)]
    Federation(FederationCmd),
    /// The web console: login links and sessions.
    #[command(subcommand)]
    Console(ConsoleCmd),
    /// URL client ids (Client ID Metadata Documents): what each host's
    /// clients may get, and blocked URLs.
    #[command(subcommand)]
    Cimd(CimdCmd),
    /// Copy a deployment into a new, empty database: clients, hashed secrets,
    /// API keys, revocations, signing-key records and the audit log.
    Migrate {
        /// The source: a SQLite file or a postgres:// URL.
        #[arg(long, value_name = "DB")]
        from: String,
        /// The destination, created and migrated if needed; must hold no clients yet.
        #[arg(long, value_name = "DB")]
        to: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Forget revocations of tokens that have expired (the server also does this every minute).
    Prune {
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Args)]
pub(super) struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, Args)]
pub(super) struct QuotaArgs {
    /// Tokens the client may get per quota window (0: no quota; default: the server's).
    #[arg(long, value_name = "N")]
    pub(super) quota: Option<u64>,
    /// Quota window in seconds (default: the server's, 3600).
    #[arg(long, value_name = "SECONDS")]
    pub(super) quota_window: Option<i64>,
    /// Seconds a client over its quota is refused tokens (default: the server's, 3600).
    #[arg(long, value_name = "SECONDS")]
    pub(super) ban: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub(super) enum ClientCmd {
    /// Create a client and print its secret, once.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Allowed scopes, space-separated; may repeat.
        #[arg(long)]
        scope: Vec<String>,
        /// Allowed audience; may repeat; the first is the default.
        #[arg(long)]
        audience: Vec<String>,
        /// Access-token lifetime in seconds (default: the server's).
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<i64>,
        /// Owner (team, service or contact).
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        quota: QuotaArgs,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        exchange: ExchangeArgs,
        #[command(flatten)]
        claims: ClaimsArgs,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List clients.
    List {
        /// Start after this client id.
        #[arg(long)]
        after: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show one client.
    Show {
        /// Client id.
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Change a client's name, owner, scopes, audiences or TTL.
    Update {
        /// Client id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New scopes (replace the old ones); may repeat.
        #[arg(long)]
        scope: Option<Vec<String>>,
        /// New audiences (replace the old ones); may repeat.
        #[arg(long)]
        audience: Option<Vec<String>>,
        /// New token lifetime in seconds.
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<i64>,
        /// New owner.
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        quota: QuotaArgs,
        #[command(flatten)]
        keys: KeyArgs,
        #[command(flatten)]
        exchange: ExchangeArgs,
        #[command(flatten)]
        claims: ClaimsArgs,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Disable a client: no new tokens, existing ones introspect inactive.
    Disable {
        /// Client id.
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Enable a disabled client.
    Enable {
        /// Client id.
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete a client, its secrets and its API keys.
    Delete {
        /// Client id.
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Issue a new secret; old ones keep working for the grace period.
    RotateSecret {
        /// Client id.
        id: String,
        /// Seconds the old secrets keep working (default: the server's, 86400).
        #[arg(long, value_name = "SECONDS")]
        grace: Option<i64>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Create many clients at once (load tests, staging), reporting progress.
    Seed {
        /// How many clients.
        #[arg(long)]
        count: usize,
        /// Display name of each.
        #[arg(long, default_value = "seeded")]
        name: String,
        /// Allowed scopes, space-separated; may repeat.
        #[arg(long)]
        scope: Vec<String>,
        /// Allowed audience; may repeat.
        #[arg(long)]
        audience: Vec<String>,
        /// Print the credentials of the first N clients (shown once).
        #[arg(long, default_value_t = 0, value_name = "N")]
        show: usize,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Revoke every token issued to the client so far.
    RevokeTokens {
        /// Client id.
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ApiKeyCmd {
    /// Create an API key acting as a client and print it, once.
    Create {
        /// The client the key acts as.
        #[arg(long)]
        client: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Seconds until the key expires (default: never).
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<i64>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List a client's API keys (prefix and last four characters only).
    List {
        /// Client id.
        #[arg(long)]
        client: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Revoke an API key.
    Revoke {
        /// Key id (`key_…`).
        key_id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum SigningKeyCmd {
    /// List signing keys and their lifecycle.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Create a new signing key: published now, signing after the pre-publication time.
    Rotate {
        /// Algorithm: ES256, EdDSA, RS256 or PS256 (default: TOLLGATE_SIGNING_ALG).
        #[arg(long)]
        alg: Option<String>,
        /// Seconds the new key is published before it signs (default: TOLLGATE_KEY_PREPUBLISH).
        #[arg(long, value_name = "SECONDS")]
        prepublish: Option<i64>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Stop signing with a key now; it stays in the JWKS until its tokens expire.
    Retire {
        /// Key id (an RFC 7638 thumbprint, which may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// The key leaked: take it out of the JWKS now and make every token
        /// it signed inactive now (a new key signs from now if it was the only one).
        #[arg(long)]
        compromised: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum SsfCmd {
    /// Every stream with its receiver, delivery, status, backlog and last error.
    Streams {
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum AuditCmd {
    /// List audit entries, oldest first.
    List {
        /// Start after this entry id.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ConsoleCmd {
    /// Print a single-use login link for the console, valid for 10 minutes.
    #[command(name = "login-link")]
    LoginLink {
        /// The server's public URL, when it differs from the configured issuer.
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List console sessions and login links, newest first.
    Sessions {
        /// Revoke this session or unused link instead of listing.
        #[arg(long, value_name = "ID")]
        revoke: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum FederationCmd {
    /// Trusted issuers.
    #[command(subcommand)]
    Issuer(IssuerCmd),
    /// Rules mapping external identities to clients.
    #[command(subcommand)]
    Rule(RuleCmd),
    /// Say which rule an external token (a JWT in FILE, `-` for standard
    /// input) matches, or why each does not; nothing is issued.
    Test {
        /// The file holding the JWT.
        file: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum IssuerCmd {
    /// Trust an issuer. Without --jwks-file or --jwks-uri its keys are found
    /// by discovery (OpenID Connect, RFC 8414) at the issuer.
    Add {
        /// The issuer identifier, exactly as its tokens' `iss`.
        #[arg(long)]
        issuer: String,
        /// A file holding its public keys (a JWK Set), for issuers that cannot
        /// be reached (`kubectl get --raw /openid/v1/jwks`).
        #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
        jwks_file: Option<PathBuf>,
        /// Where its public keys are published.
        #[arg(long, value_name = "URL")]
        jwks_uri: Option<String>,
        /// Accept its identity assertion grants (ID-JAG) for agents.
        #[arg(long)]
        id_jag: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List trusted issuers.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Stop trusting an issuer (refused while rules use it).
    Remove {
        /// Its id (`fi_…`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum RuleCmd {
    /// Add a rule: tokens of ISSUER for AUDIENCE whose subject and claims
    /// match act as CLIENT_ID.
    Add {
        /// The trusted issuer.
        #[arg(long)]
        issuer: String,
        /// The `aud` the external token must carry.
        #[arg(long)]
        audience: String,
        /// The `sub` pattern (exact, or a glob with `*`).
        #[arg(long)]
        subject: Option<String>,
        /// A claim condition NAME=PATTERN (repeatable), e.g.
        /// `repository_id=123456`.
        #[arg(long = "claim", value_name = "NAME=PATTERN")]
        claims: Vec<String>,
        /// The client the identity acts as.
        #[arg(long)]
        client_id: String,
        /// Scopes it may get, space-separated, may repeat: a subset of the
        /// client's (default: the client's).
        #[arg(long)]
        scope: Vec<String>,
        /// Each external token (`jti`) may be exchanged once only.
        #[arg(long)]
        single_use: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List rules, in the order they are tried.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Remove a rule.
    Remove {
        /// Its id (`fr_…`).
        id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kid_that_begins_with_a_hyphen_is_a_value() {
        let cli = Cli::try_parse_from([
            "tollgate",
            "signing-key",
            "retire",
            "-R4VCpAws8JeB5_xPaJeDmhcVymiB5QvnFkV5_gghSk",
            "--compromised",
        ])
        .unwrap();
        match cli.command {
            Command::SigningKey(SigningKeyCmd::Retire {
                kid, compromised, ..
            }) => {
                assert_eq!(kid, "-R4VCpAws8JeB5_xPaJeDmhcVymiB5QvnFkV5_gghSk");
                assert!(compromised);
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}

/// How a client authenticates, and its public keys (RFC 7591 §2).
#[derive(clap::Args, Debug, Default)]
pub(super) struct KeyArgs {
    /// client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth or
    /// self_signed_tls_client_auth.
    #[arg(long, value_name = "METHOD")]
    pub auth_method: Option<String>,
    /// A JSON file holding the client's public JWK Set (private_key_jwt).
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
    pub jwks_file: Option<std::path::PathBuf>,
    /// The https URL where the client publishes its JWK Set (private_key_jwt).
    #[arg(long, value_name = "URL")]
    pub jwks_uri: Option<String>,
    /// Whether every token request of the client must carry a DPoP proof
    /// (RFC 9449 §5.2 dpop_bound_access_tokens).
    #[arg(long, value_name = "true|false")]
    pub dpop_bound: Option<bool>,
    /// tls_client_auth: the certificate's subject DN (RFC 4514, e.g. CN=payments,O=Acme).
    #[arg(long, value_name = "DN")]
    pub tls_subject_dn: Option<String>,
    /// tls_client_auth: a DNS name SAN of the certificate.
    #[arg(long, value_name = "NAME")]
    pub tls_san_dns: Option<String>,
    /// tls_client_auth: a URI SAN of the certificate (a SPIFFE ID).
    #[arg(long, value_name = "URI")]
    pub tls_san_uri: Option<String>,
    /// tls_client_auth: an IP address SAN of the certificate.
    #[arg(long, value_name = "IP")]
    pub tls_san_ip: Option<String>,
    /// tls_client_auth: an email SAN of the certificate.
    #[arg(long, value_name = "EMAIL")]
    pub tls_san_email: Option<String>,
    /// Whether the client's tokens are bound to its TLS certificate (RFC 8705 §3).
    #[arg(long, value_name = "true|false")]
    pub tls_bound: Option<bool>,
}

/// A client's token-exchange policy (RFC 8693; docs/token-exchange.md).
#[derive(clap::Args, Debug, Default)]
pub(super) struct ExchangeArgs {
    /// The client may exchange subject tokens whose aud includes this
    /// audience (repeat for several); on update, replaces the list.
    #[arg(long = "exchange-audience", value_name = "URI")]
    pub audiences: Vec<String>,
    /// A trusted federation issuer whose JWTs the client may exchange
    /// (repeat for several); on update, replaces the list.
    #[arg(long = "exchange-issuer", value_name = "ISSUER")]
    pub issuers: Vec<String>,
    /// Whether the client may request transaction tokens.
    #[arg(long, value_name = "true|false")]
    pub txn_tokens: Option<bool>,
    /// Update only: remove the policy (the client may no longer exchange).
    #[arg(long, conflicts_with_all = ["audiences", "issuers", "txn_tokens"])]
    pub no_token_exchange: bool,
}

impl ExchangeArgs {
    /// Whether any part of a policy was given.
    pub(super) fn given(&self) -> bool {
        !self.audiences.is_empty() || !self.issuers.is_empty() || self.txn_tokens.is_some()
    }

    /// The policy these flags make over `current` (`None`: no flag given).
    pub(super) fn policy(
        self,
        current: Option<&crate::domain::ExchangePolicy>,
    ) -> Option<crate::domain::ExchangePolicy> {
        if !self.given() {
            return None;
        }
        let mut p = current.cloned().unwrap_or(crate::domain::ExchangePolicy {
            subject_audiences: Vec::new(),
            subject_issuers: Vec::new(),
            txn_tokens: false,
        });
        if !self.audiences.is_empty() {
            p.subject_audiences = self.audiences;
        }
        if !self.issuers.is_empty() {
            p.subject_issuers = self.issuers;
        }
        if let Some(t) = self.txn_tokens {
            p.txn_tokens = t;
        }
        Some(p)
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum CimdCmd {
    /// What URL clients of each host may get.
    #[command(subcommand)]
    Host(CimdHostCmd),
    /// Block a URL client: it gets nothing from now on, and its tokens
    /// introspect inactive.
    Block {
        /// The client id (its document's URL).
        url: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Unblock a URL client.
    Unblock {
        /// The client id (its document's URL).
        url: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List the blocked URL clients.
    Blocks {
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum CimdHostCmd {
    /// Set what URL clients of a host may get (replacing what it had).
    Add {
        /// A host name, or *.example.com for its subdomains.
        #[arg(long)]
        host: String,
        /// A scope its clients may get (repeat for several).
        #[arg(long)]
        scope: Vec<String>,
        /// An audience its clients may get (repeat; the first is the default).
        #[arg(long)]
        audience: Vec<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List the host policies.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Remove a host's policy: its URL clients get nothing.
    Remove {
        /// The host, as added.
        host: String,
    },
}

/// A client's extra claims, added to every access token it gets.
#[derive(clap::Args, Debug, Default)]
pub(super) struct ClaimsArgs {
    /// A claim as NAME=JSON (`--claim tenant='"acme"'`, `--claim roles='["a","b"]'`;
    /// a value that is not JSON is taken as a string); repeat for several.
    /// On update, the given claims replace all of them.
    #[arg(long = "claim", value_name = "NAME=JSON")]
    pub claim: Vec<String>,
    /// A JSON file holding the claims object (instead of --claim).
    #[arg(long, value_name = "FILE", conflicts_with = "claim")]
    pub claims_file: Option<std::path::PathBuf>,
    /// Update only: remove every extra claim.
    #[arg(long, conflicts_with_all = ["claim", "claims_file"])]
    pub no_claims: bool,
}

impl ClaimsArgs {
    /// The claims object the flags give; `None` when none was given.
    pub(super) fn object(
        &self,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, String> {
        if let Some(path) = &self.claims_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            return match serde_json::from_str(&text) {
                Ok(serde_json::Value::Object(m)) => Ok(Some(m)),
                _ => Err(format!("{} is not a JSON object", path.display())),
            };
        }
        if self.claim.is_empty() {
            return Ok(None);
        }
        let mut m = serde_json::Map::new();
        for c in &self.claim {
            let (name, value) = c
                .split_once('=')
                .ok_or_else(|| format!("--claim {c:?}: expected NAME=JSON"))?;
            let value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
            m.insert(name.to_string(), value);
        }
        Ok(Some(m))
    }
}
