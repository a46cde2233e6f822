//! Domain records shared by the store, the use cases and the token code:
//! clients, client secrets (digests only), API keys and their state, signing
//! keys and audit entries. No I/O here.

use serde::Serialize;

mod auth;
pub mod ssf;
pub use auth::{
    AuthParts, AuthPatch, ClientAuth, ClientAuthMethod, KeySource, RegisteredName, SecretVia,
};

/// Current Unix time in seconds (the one clock the layers below the use
/// cases read; use cases take `now` as a parameter).
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A registered OAuth client.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Client {
    /// Public identifier (`client_id`).
    #[serde(rename = "client_id")]
    pub id: String,
    /// Display name.
    pub name: String,
    /// Free-text owner (team, service, contact).
    pub owner: Option<String>,
    /// Scopes the client may request.
    pub scopes: Vec<String>,
    /// Audiences the client may request; the first is the default.
    pub audiences: Vec<String>,
    /// Access-token lifetime in seconds; `None` is the server default.
    pub token_ttl: Option<i64>,
    /// A disabled client gets no tokens and its tokens introspect inactive.
    pub disabled: bool,
    /// Tokens issued before this time introspect inactive (revoke-all).
    pub tokens_revoked_before: Option<i64>,
    /// Token quota per window; `None` is the server default, `Some(0)` none.
    pub token_quota: Option<u64>,
    /// Quota window in seconds; `None` is the server default.
    pub quota_window: Option<i64>,
    /// Ban after exceeding the quota, in seconds; `None` is the server default.
    pub quota_ban: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// How the client must authenticate: one method with exactly what it
    /// needs (serialised as RFC 7591 §2 `token_endpoint_auth_method` with
    /// `jwks`, `jwks_uri` or one `tls_client_auth_*` name).
    #[serde(flatten)]
    pub auth: ClientAuth,
    /// RFC 9449 §5.2: every token request must carry a DPoP proof.
    pub dpop_bound_access_tokens: bool,
    /// RFC 8705 §3.4: its tokens are bound to its certificate.
    pub tls_client_certificate_bound_access_tokens: bool,
    /// RFC 8693: which subject tokens it may exchange; `None` (the default)
    /// is none at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_exchange: Option<ExchangePolicy>,
    /// Extra claims added to every access token it gets (tenant ids,
    /// roles); never a registered or Tollgate-set name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The longest a client's extra claims may be, serialised.
pub const MAX_CLIENT_CLAIMS_LEN: usize = 2048;

/// Claim names a client's extra claims may not use: every registered JWT
/// claim (RFC 7519 §4.1) and every claim Tollgate sets; and any name that
/// starts with `tollgate`.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "scope",
    "client_id",
    "cnf",
    "act",
    "may_act",
    "txn",
    "auth_time",
    "acr",
    "amr",
    "api_key_id",
];

/// The reserved names among `claims`, in order (empty: none).
pub fn reserved_claims(claims: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    claims
        .keys()
        .filter(|k| RESERVED_CLAIMS.contains(&k.as_str()) || k.starts_with("tollgate"))
        .cloned()
        .collect()
}

/// A client's token-exchange policy (RFC 8693), deny by default: the
/// subject tokens it may present, and whether it may request transaction
/// tokens (draft-ietf-oauth-transaction-tokens-10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangePolicy {
    /// A subject token's `aud` must include one of these: the audiences
    /// the client serves as a resource server. Never empty (absent, the
    /// policy is refused by name).
    #[serde(default)]
    pub subject_audiences: Vec<String>,
    /// Trusted federation issuers whose JWTs it may present as subject
    /// tokens; empty is Tollgate's own tokens only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_issuers: Vec<String>,
    /// It may request transaction tokens.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub txn_tokens: bool,
}

impl ExchangePolicy {
    /// Most entries in each list.
    pub const MAX_ENTRIES: usize = 16;

    /// Whether a subject token for `aud` may be presented.
    pub fn admits_audience(&self, aud: &[String]) -> bool {
        aud.iter().any(|a| self.subject_audiences.contains(a))
    }

    /// Its bytes on the heap, for the cache's weight.
    pub fn heap_bytes(&self) -> usize {
        let list = |v: &Vec<String>| {
            v.capacity() * std::mem::size_of::<String>()
                + v.iter().map(String::capacity).sum::<usize>()
        };
        list(&self.subject_audiences) + list(&self.subject_issuers)
    }
}

/// A stored client secret: only its digest.
#[derive(Debug, Clone)]
pub struct ClientSecretRecord {
    /// Row id.
    pub id: i64,
    /// SHA-256 of the secret.
    pub digest: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
    /// End of its validity (set by a rotation); `None` means none.
    pub expires_at: Option<i64>,
}

/// A stored API key: only its digest and the parts safe to show.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyRecord {
    /// Public id (`key_…`).
    pub id: String,
    /// The client the key acts as.
    pub client_id: String,
    /// Display name.
    pub name: Option<String>,
    /// SHA-256 of the key.
    #[serde(skip)]
    pub digest: Vec<u8>,
    /// The recognisable prefix, such as `tg_live_`.
    pub prefix: String,
    /// Last four characters, to tell keys apart.
    pub last4: String,
    /// Creation time.
    pub created_at: i64,
    /// Expiry, if any.
    pub expires_at: Option<i64>,
    /// Last exchange or introspection seen, to the minute.
    pub last_used_at: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}

/// The state of an API key at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyState {
    /// It may be exchanged and introspects active.
    Active,
    /// Revoked by an admin or by its client.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl ApiKeyState {
    /// `active`, `revoked` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyState::Active => "active",
            ApiKeyState::Revoked => "revoked",
            ApiKeyState::Expired => "expired",
        }
    }
}

impl std::fmt::Display for ApiKeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ApiKeyRecord {
    /// Its state at `now`: revocation wins over expiry.
    pub fn state(&self, now: i64) -> ApiKeyState {
        if self.revoked_at.is_some() {
            ApiKeyState::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now) {
            ApiKeyState::Expired
        } else {
            ApiKeyState::Active
        }
    }
}

/// Signing-key lifecycle metadata.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// RFC 7638 thumbprint; also the PEM file name.
    pub kid: String,
    /// JWS algorithm.
    pub alg: String,
    /// Creation time.
    pub created_at: i64,
    /// When it starts signing (it is published from creation).
    pub activates_at: i64,
    /// When it stopped signing.
    pub retired_at: Option<i64>,
    /// When it was declared compromised: from then on it is not published
    /// and no token it signed is active.
    pub compromised_at: Option<i64>,
    /// Where its private key is.
    pub location: KeyLocation,
    /// The public JWK of a key held in a PKCS#11 token, so that every
    /// instance publishes and verifies it, with the module or without it
    /// (`None` for a file key: the file says it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_jwk: Option<serde_json::Value>,
}

impl SigningKeyRecord {
    /// A key file's record: published from creation, signing from
    /// `activates_at`, neither retired nor compromised.
    pub fn new(kid: &str, alg: &str, created_at: i64, activates_at: i64) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.to_string(),
            alg: alg.to_string(),
            created_at,
            activates_at,
            retired_at: None,
            compromised_at: None,
            location: KeyLocation::File,
            public_jwk: None,
        }
    }
}

/// Where a signing key's private half is held.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyLocation {
    /// A PEM file in the keys directory.
    #[default]
    File,
    /// A PKCS#11 token (an HSM): sensitive, never extractable.
    Pkcs11,
}

impl KeyLocation {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyLocation::File => "file",
            KeyLocation::Pkcs11 => "pkcs11",
        }
    }

    /// From its stored name; anything unknown is a file key.
    pub fn parse(s: &str) -> KeyLocation {
        match s {
            "pkcs11" => KeyLocation::Pkcs11,
            _ => KeyLocation::File,
        }
    }
}

/// The actor of everything done from the command line (an operator on the
/// host, not a client: its rights do not come from a client's scopes).
pub const CLI_ACTOR: &str = "cli";

/// One audit-log entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    /// Sequence number (0 before it is stored).
    pub id: i64,
    /// When.
    pub at: i64,
    /// Who: an admin client id, or `cli` for the command line.
    pub actor: String,
    /// What, such as `client.create`.
    pub action: String,
    /// On what: a client id, key id, kid or jti.
    pub target: Option<String>,
    /// Details without any secret.
    pub detail: serde_json::Value,
}

impl AuditEntry {
    /// A new entry to be stored.
    pub fn new(
        at: i64,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: serde_json::Value,
    ) -> Self {
        AuditEntry {
            id: 0,
            at,
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.map(str::to_string),
            detail,
        }
    }
}

/// A console login link and, once opened, the session it became. The link
/// and the session cookie are stored only as digests, in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleSession {
    /// Public identifier (`cs_…`), the audit actor `console:<id>`.
    pub id: String,
    /// Who made the login link: an admin client id, or `cli`.
    pub created_by: String,
    /// When the link was made.
    pub created_at: i64,
    /// The link opens no session after this.
    pub link_expires_at: i64,
    /// When the link was opened and became a session.
    pub opened_at: Option<i64>,
    /// The session's last request (updated at most once a minute).
    pub last_seen_at: Option<i64>,
    /// When it was revoked (signed out, or by an admin).
    pub revoked_at: Option<i64>,
}

/// Where a console session stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleSessionState {
    /// A link not opened yet, still valid.
    Pending,
    /// A link never opened, now past its 10 minutes.
    LinkExpired,
    /// A session in use.
    Active,
    /// A session past its idle or absolute limit.
    Expired,
    /// Revoked, or signed out.
    Revoked,
}

impl ConsoleSessionState {
    /// The lowercase name shown by the CLI and the console.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleSessionState::Pending => "pending",
            ConsoleSessionState::LinkExpired => "link_expired",
            ConsoleSessionState::Active => "active",
            ConsoleSessionState::Expired => "expired",
            ConsoleSessionState::Revoked => "revoked",
        }
    }
}

impl ConsoleSession {
    /// A login link is good for 10 minutes.
    pub const LINK_TTL: i64 = 600;
    /// A session ends after 8 hours without a request.
    pub const IDLE_TIMEOUT: i64 = 8 * 3600;
    /// A session ends 24 hours after it was opened, in use or not.
    pub const ABSOLUTE_TIMEOUT: i64 = 24 * 3600;

    /// Its state at `now`: revoked, or else usable until [`Self::expires_at`].
    pub fn state(&self, now: i64) -> ConsoleSessionState {
        let live = now < self.expires_at();
        match (self.revoked_at, self.opened_at, live) {
            (Some(_), _, _) => ConsoleSessionState::Revoked,
            (None, None, true) => ConsoleSessionState::Pending,
            (None, None, false) => ConsoleSessionState::LinkExpired,
            (None, Some(_), true) => ConsoleSessionState::Active,
            (None, Some(_), false) => ConsoleSessionState::Expired,
        }
    }

    /// The audit actor of what the session does: `console:<id>`.
    pub fn actor(&self) -> String {
        format!("console:{}", self.id)
    }

    /// When it stops being usable, whichever limit comes first.
    pub fn expires_at(&self) -> i64 {
        match self.opened_at {
            None => self.link_expires_at,
            Some(opened) => (opened + Self::ABSOLUTE_TIMEOUT)
                .min(self.last_seen_at.unwrap_or(opened) + Self::IDLE_TIMEOUT),
        }
    }
}

/// Filters of the audit log in the console: each given one must match exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Who.
    pub actor: Option<String>,
    /// What (`client.disable`, …).
    pub action: Option<String>,
    /// On what.
    pub target: Option<String>,
}

/// Test fixtures shared by every module's unit tests (integration tests have
/// theirs in `tests/api/helpers.rs`).
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    impl Client {
        /// An enabled client with nothing set: tests change what they need
        /// with struct-update syntax.
        pub(crate) fn fixture(id: &str) -> Client {
            Client {
                id: id.into(),
                name: "n".into(),
                owner: None,
                scopes: vec![],
                audiences: vec![],
                token_ttl: None,
                disabled: false,
                tokens_revoked_before: None,
                token_quota: None,
                quota_window: None,
                quota_ban: None,
                created_at: 0,
                updated_at: 0,
                auth: ClientAuth::Secret(SecretVia::Basic),
                dpop_bound_access_tokens: false,
                tls_client_certificate_bound_access_tokens: false,
                token_exchange: None,
                claims: None,
            }
        }
    }

    impl AuditEntry {
        /// An audit entry by `test` for `action`.
        pub(crate) fn fixture(action: &str) -> AuditEntry {
            AuditEntry::new(0, "test", action, None, serde_json::json!({"n": 1}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_serialises_with_the_rfc_7591_names() {
        let c = Client {
            auth: ClientAuth::TlsClientAuth(RegisteredName::Uri("spiffe://a/b".into())),
            ..Client::fixture("c")
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["token_endpoint_auth_method"], "tls_client_auth");
        assert_eq!(v["tls_client_auth_san_uri"], "spiffe://a/b");
        assert!(v.get("jwks").is_none() && v.get("tls_client_auth_subject_dn").is_none());
        assert!(v.get("auth").is_none());
    }

    #[test]
    fn console_sessions_expire_after_idle_and_absolute_limits() {
        let mut s = ConsoleSession {
            id: "cs_x".into(),
            created_by: "cli".into(),
            created_at: 1000,
            link_expires_at: 1000 + ConsoleSession::LINK_TTL,
            opened_at: None,
            last_seen_at: None,
            revoked_at: None,
        };
        assert_eq!(s.state(1599), ConsoleSessionState::Pending);
        assert_eq!(s.state(1600), ConsoleSessionState::LinkExpired);
        s.opened_at = Some(1100);
        s.last_seen_at = Some(1100);
        assert_eq!(s.state(1600), ConsoleSessionState::Active);
        // Idle for 8 hours.
        assert_eq!(s.state(1100 + 8 * 3600 - 1), ConsoleSessionState::Active);
        assert_eq!(s.state(1100 + 8 * 3600), ConsoleSessionState::Expired);
        // In use all along, it still ends 24 hours after it was opened.
        s.last_seen_at = Some(1100 + 23 * 3600);
        assert_eq!(s.state(1100 + 24 * 3600 - 1), ConsoleSessionState::Active);
        assert_eq!(s.state(1100 + 24 * 3600), ConsoleSessionState::Expired);
        assert_eq!(s.expires_at(), 1100 + 24 * 3600);
        s.revoked_at = Some(1200);
        assert_eq!(s.state(1300), ConsoleSessionState::Revoked);
    }

    #[test]
    fn api_key_state_prefers_revocation_and_serializes_lowercase() {
        let mut k = ApiKeyRecord {
            id: "key_x".into(),
            client_id: "c".into(),
            name: None,
            digest: vec![],
            prefix: "tg_live_".into(),
            last4: "abcd".into(),
            created_at: 0,
            expires_at: Some(10),
            last_used_at: None,
            revoked_at: None,
        };
        assert_eq!(k.state(9), ApiKeyState::Active);
        assert_eq!(k.state(10), ApiKeyState::Expired);
        k.revoked_at = Some(5);
        assert_eq!(k.state(9), ApiKeyState::Revoked);
        assert_eq!(serde_json::json!(k.state(9)), "revoked");
    }
}

/// An external token issuer whose JWTs Tollgate accepts in exchange for its
/// own tokens (workload identity federation): a Kubernetes cluster, GitHub
/// Actions, a SPIFFE trust domain. Its keys are `jwks` (inline), or at
/// `jwks_uri`, or found by discovery at the issuer when neither is set.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FederationIssuer {
    /// Identifier (`fi_…`).
    pub id: String,
    /// The issuer identifier, the exact `iss` of its tokens.
    pub issuer: String,
    /// Where its keys are published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Its keys, inline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// Creation time.
    pub created_at: i64,
    /// Its identity assertion grants (ID-JAG,
    /// draft-ietf-oauth-identity-assertion-authz-grant) are accepted.
    pub id_jag: bool,
}

/// A federation rule: which external identities act as which client.
/// `subject` and every `claims` value are exact strings or globs with `*`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FederationRule {
    /// Identifier (`fr_…`).
    pub id: String,
    /// The trusted issuer whose tokens it matches.
    pub issuer: String,
    /// The `aud` the external token must carry.
    pub audience: String,
    /// The `sub` pattern; `None` matches any subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Further claims and their patterns, all of which must match.
    pub claims: std::collections::BTreeMap<String, String>,
    /// The Tollgate client the identity acts as.
    pub client_id: String,
    /// Scopes it may get, a subset of the client's; `None` is the client's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Whether each external token (`jti`) may be exchanged once only.
    pub single_use: bool,
    /// Creation time.
    pub created_at: i64,
}

/// Every trusted issuer and rule (a small set, read whole and cached).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Federation {
    /// Trusted issuers.
    pub issuers: Vec<FederationIssuer>,
    /// Rules, oldest first (the order in which they are tried).
    pub rules: Vec<FederationRule>,
    /// What URL clients (Client ID Metadata Documents) of each host may
    /// get, by host.
    pub cimd_hosts: Vec<CimdHost>,
    /// URL clients blocked.
    pub cimd_blocks: Vec<CimdBlock>,
}

/// What URL clients of a host may get: an admin's decision
/// (draft-ietf-oauth-client-id-metadata-document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CimdHost {
    /// A host name, or `*.` and a suffix.
    pub host: String,
    /// The scopes its clients may get.
    pub scopes: Vec<String>,
    /// The audiences its clients may get; the first is the default.
    pub audiences: Vec<String>,
    /// Creation (or last change) time.
    pub created_at: i64,
}

/// A URL client that gets nothing, from the moment it is blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CimdBlock {
    /// The client id (the document's URL).
    pub url: String,
    /// When it was blocked.
    pub created_at: i64,
}
