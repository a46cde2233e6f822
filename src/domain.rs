//! Domain records shared by the store, the use cases and the token code:
//! clients, client secrets (digests only), API keys and their state, signing
//! keys and audit entries. No I/O here.

use serde::Serialize;

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
}

/// A client authentication method (RFC 7591 §2, names from the IANA "OAuth
/// Token Endpoint Authentication Methods" registry). A client registered
/// with a secret method may use either secret method, as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// A secret in HTTP Basic (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// A secret in the body (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523 §2.2, OpenID
    /// Connect Core §9).
    PrivateKeyJwt,
    /// A certificate chaining to the configured CA, with the registered
    /// subject or SAN (RFC 8705 §2.1).
    TlsClientAuth,
    /// A self-signed certificate whose key is in the client's `jwks`
    /// (RFC 8705 §2.2).
    SelfSignedTlsClientAuth,
}

impl ClientAuthMethod {
    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
            ClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
            ClientAuthMethod::TlsClientAuth => "tls_client_auth",
            ClientAuthMethod::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// Every method, in the order the metadata lists them.
    pub const ALL: [ClientAuthMethod; 5] = [
        ClientAuthMethod::ClientSecretBasic,
        ClientAuthMethod::ClientSecretPost,
        ClientAuthMethod::PrivateKeyJwt,
        ClientAuthMethod::TlsClientAuth,
        ClientAuthMethod::SelfSignedTlsClientAuth,
    ];

    /// The method a registered name names.
    pub fn parse(s: &str) -> Option<ClientAuthMethod> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether the client holds a secret.
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost
        )
    }

    /// Whether the client authenticates with a TLS client certificate.
    pub fn uses_certificate(self) -> bool {
        matches!(
            self,
            ClientAuthMethod::TlsClientAuth | ClientAuthMethod::SelfSignedTlsClientAuth
        )
    }
}

/// How a registered client must authenticate: each method with exactly what
/// it needs, and nothing that belongs to another (RFC 7591 §2, RFC 8705 §2).
/// The store keeps it as today's columns (`AuthParts`); the admin API reads
/// and writes the same RFC 7591 names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// A client secret (RFC 6749 §2.3.1). Either secret method is accepted;
    /// `SecretVia` is the registered name, kept as registered.
    Secret(SecretVia),
    /// A JWT signed with one of its keys (RFC 7523 §2.2).
    PrivateKeyJwt(KeySource),
    /// A certificate chaining to the configured CA and holding this name
    /// (RFC 8705 §2.1).
    TlsClientAuth(RegisteredName),
    /// A self-signed certificate whose key is one of these (RFC 8705 §2.2).
    SelfSignedTls(KeySource),
}

/// The registered secret method's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretVia {
    /// `client_secret_basic`.
    Basic,
    /// `client_secret_post`.
    Post,
}

/// Where a client's public keys are (RFC 7591 §2): inline or at a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `jwks`: a JWK Set.
    Jwks(serde_json::Value),
    /// `jwks_uri`: where the JWK Set is published.
    Uri(String),
}

/// The one name a `tls_client_auth` client registered (RFC 8705 §2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisteredName {
    /// `tls_client_auth_subject_dn`.
    SubjectDn(String),
    /// `tls_client_auth_san_dns`.
    Dns(String),
    /// `tls_client_auth_san_uri`.
    Uri(String),
    /// `tls_client_auth_san_ip`.
    Ip(String),
    /// `tls_client_auth_san_email`.
    Email(String),
}

impl RegisteredName {
    /// The RFC 8705 §2.1.2 metadata names, in [`AuthParts::names`] order.
    pub const FIELDS: [&'static str; 5] = [
        "tls_client_auth_subject_dn",
        "tls_client_auth_san_dns",
        "tls_client_auth_san_uri",
        "tls_client_auth_san_ip",
        "tls_client_auth_san_email",
    ];

    /// Its metadata name and value.
    pub fn field(&self) -> (&'static str, &str) {
        let (i, v) = self.slot();
        (Self::FIELDS[i], v)
    }

    fn slot(&self) -> (usize, &str) {
        match self {
            RegisteredName::SubjectDn(v) => (0, v),
            RegisteredName::Dns(v) => (1, v),
            RegisteredName::Uri(v) => (2, v),
            RegisteredName::Ip(v) => (3, v),
            RegisteredName::Email(v) => (4, v),
        }
    }

    fn at(i: usize, v: String) -> RegisteredName {
        match i {
            0 => RegisteredName::SubjectDn(v),
            1 => RegisteredName::Dns(v),
            2 => RegisteredName::Uri(v),
            3 => RegisteredName::Ip(v),
            _ => RegisteredName::Email(v),
        }
    }
}

/// A client's authentication as flat RFC 7591 fields: how the store's
/// columns and the admin API's JSON carry a [`ClientAuth`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthParts {
    /// `token_endpoint_auth_method`.
    pub method: ClientAuthMethod,
    /// `jwks`.
    pub jwks: Option<serde_json::Value>,
    /// `jwks_uri`.
    pub jwks_uri: Option<String>,
    /// The `tls_client_auth_*` names, in [`RegisteredName::FIELDS`] order.
    pub names: [Option<String>; 5],
}

impl ClientAuth {
    /// The registered method's name.
    pub fn method(&self) -> ClientAuthMethod {
        match self {
            ClientAuth::Secret(SecretVia::Basic) => ClientAuthMethod::ClientSecretBasic,
            ClientAuth::Secret(SecretVia::Post) => ClientAuthMethod::ClientSecretPost,
            ClientAuth::PrivateKeyJwt(_) => ClientAuthMethod::PrivateKeyJwt,
            ClientAuth::TlsClientAuth(_) => ClientAuthMethod::TlsClientAuth,
            ClientAuth::SelfSignedTls(_) => ClientAuthMethod::SelfSignedTlsClientAuth,
        }
    }

    /// Whether the client holds a secret.
    pub fn uses_secret(&self) -> bool {
        matches!(self, ClientAuth::Secret(_))
    }

    /// Its public keys, for the methods that have them.
    pub fn key_source(&self) -> Option<&KeySource> {
        match self {
            ClientAuth::PrivateKeyJwt(k) | ClientAuth::SelfSignedTls(k) => Some(k),
            _ => None,
        }
    }

    /// As flat fields.
    pub fn parts(&self) -> AuthParts {
        let mut p = AuthParts {
            method: self.method(),
            ..AuthParts::default()
        };
        match self.key_source() {
            Some(KeySource::Jwks(j)) => p.jwks = Some(j.clone()),
            Some(KeySource::Uri(u)) => p.jwks_uri = Some(u.clone()),
            None => {}
        }
        if let ClientAuth::TlsClientAuth(name) = self {
            let (i, v) = name.slot();
            p.names[i] = Some(v.to_string());
        }
        p
    }

    /// From flat fields, whole: the method with exactly what it needs, and a
    /// field that belongs to another method is an error. The message names
    /// the fields and is safe to show.
    pub fn from_parts(p: AuthParts) -> Result<ClientAuth, String> {
        let names: Vec<(usize, String)> = p
            .names
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, v)))
            .collect();
        let keys = || match (p.jwks.clone(), p.jwks_uri.clone()) {
            (Some(_), Some(_)) => Err("give jwks or jwks_uri, not both".to_string()),
            (Some(j), None) => Ok(Some(KeySource::Jwks(j))),
            (None, Some(u)) => Ok(Some(KeySource::Uri(u))),
            (None, None) => Ok(None),
        };
        if p.method != ClientAuthMethod::TlsClientAuth && !names.is_empty() {
            return Err(
                "tls_client_auth_* names are for token_endpoint_auth_method tls_client_auth".into(),
            );
        }
        match p.method {
            ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost => {
                if keys()?.is_some() {
                    return Err(
                        "jwks and jwks_uri are for token_endpoint_auth_method private_key_jwt"
                            .into(),
                    );
                }
                Ok(ClientAuth::Secret(
                    if p.method == ClientAuthMethod::ClientSecretPost {
                        SecretVia::Post
                    } else {
                        SecretVia::Basic
                    },
                ))
            }
            ClientAuthMethod::PrivateKeyJwt => keys()?
                .map(ClientAuth::PrivateKeyJwt)
                .ok_or_else(|| "a private_key_jwt client needs jwks or jwks_uri".into()),
            ClientAuthMethod::SelfSignedTlsClientAuth => {
                keys()?.map(ClientAuth::SelfSignedTls).ok_or_else(|| {
                    "a self_signed_tls_client_auth client needs jwks or jwks_uri".into()
                })
            }
            ClientAuthMethod::TlsClientAuth => {
                if keys()?.is_some() {
                    return Err("a tls_client_auth client has no jwks or jwks_uri".into());
                }
                let mut names = names;
                if names.len() != 1 {
                    return Err("a tls_client_auth client needs exactly one of \
                         tls_client_auth_subject_dn, tls_client_auth_san_dns, \
                         tls_client_auth_san_uri, tls_client_auth_san_ip, \
                         tls_client_auth_san_email"
                        .into());
                }
                let (i, v) = names.remove(0);
                Ok(ClientAuth::TlsClientAuth(RegisteredName::at(i, v)))
            }
        }
    }

    /// This method changed by `patch` (RFC 7591 fields; `None` keeps, `Some(None)`
    /// clears), whole: a patch naming another method starts that method
    /// afresh from the patch's fields, keeping only the key source when both
    /// methods use keys (`private_key_jwt` and `self_signed_tls_client_auth`).
    pub fn patched(&self, patch: AuthPatch) -> Result<ClientAuth, String> {
        let current = self.parts();
        let method = patch.method.unwrap_or(current.method);
        let base = if method == current.method {
            current
        } else {
            let mut fresh = AuthParts {
                method,
                ..AuthParts::default()
            };
            let keyed = |m: ClientAuthMethod| {
                matches!(
                    m,
                    ClientAuthMethod::PrivateKeyJwt | ClientAuthMethod::SelfSignedTlsClientAuth
                )
            };
            if keyed(method) && keyed(current.method) {
                fresh.jwks = current.jwks;
                fresh.jwks_uri = current.jwks_uri;
            }
            fresh
        };
        let mut next = base;
        if let Some(j) = patch.jwks {
            next.jwks = j;
        }
        if let Some(u) = patch.jwks_uri {
            next.jwks_uri = u;
        }
        for (slot, new) in next.names.iter_mut().zip(patch.names) {
            if let Some(v) = new {
                *slot = v;
            }
        }
        ClientAuth::from_parts(next)
    }
}

/// Changes to a client's authentication, as the admin API sends them.
#[derive(Debug, Clone, Default)]
pub struct AuthPatch {
    /// A new method.
    pub method: Option<ClientAuthMethod>,
    /// New inline keys (`Some(None)` removes them).
    pub jwks: Option<Option<serde_json::Value>>,
    /// A new key location (`Some(None)` removes it).
    pub jwks_uri: Option<Option<String>>,
    /// New `tls_client_auth_*` names, in [`RegisteredName::FIELDS`] order.
    pub names: [Option<Option<String>>; 5],
}

impl Serialize for ClientAuth {
    /// The RFC 7591 §2 members: `token_endpoint_auth_method`, and `jwks`,
    /// `jwks_uri` or the one `tls_client_auth_*` name where the method has one.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("token_endpoint_auth_method", &self.method())?;
        match self.key_source() {
            Some(KeySource::Jwks(j)) => m.serialize_entry("jwks", j)?,
            Some(KeySource::Uri(u)) => m.serialize_entry("jwks_uri", u)?,
            None => {}
        }
        if let ClientAuth::TlsClientAuth(name) = self {
            let (field, v) = name.field();
            m.serialize_entry(field, v)?;
        }
        m.end()
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

    fn parts(method: ClientAuthMethod) -> AuthParts {
        AuthParts {
            method,
            ..AuthParts::default()
        }
    }

    #[test]
    fn a_client_auth_is_one_method_with_exactly_what_it_needs() {
        let jwks = serde_json::json!({"keys": []});
        assert_eq!(
            ClientAuth::from_parts(parts(ClientAuthMethod::ClientSecretPost)),
            Ok(ClientAuth::Secret(SecretVia::Post))
        );
        let keyed = AuthParts {
            jwks: Some(jwks.clone()),
            ..parts(ClientAuthMethod::PrivateKeyJwt)
        };
        let auth = ClientAuth::from_parts(keyed.clone()).unwrap();
        assert_eq!(
            auth,
            ClientAuth::PrivateKeyJwt(KeySource::Jwks(jwks.clone()))
        );
        assert_eq!(auth.parts(), keyed, "parts round-trip");
        // Nothing of another method, and nothing missing.
        let err = |p: AuthParts| ClientAuth::from_parts(p).unwrap_err();
        assert!(err(parts(ClientAuthMethod::PrivateKeyJwt)).contains("needs jwks or jwks_uri"));
        assert!(err(AuthParts {
            jwks: Some(jwks.clone()),
            ..parts(ClientAuthMethod::ClientSecretBasic)
        })
        .contains("private_key_jwt"));
        assert!(err(AuthParts {
            jwks: Some(jwks.clone()),
            jwks_uri: Some("https://k".into()),
            ..parts(ClientAuthMethod::SelfSignedTlsClientAuth)
        })
        .contains("not both"));
        let mut two = parts(ClientAuthMethod::TlsClientAuth);
        two.names[0] = Some("CN=a".into());
        two.names[2] = Some("spiffe://x/y".into());
        assert!(err(two).contains("exactly one"));
        let mut stray = parts(ClientAuthMethod::ClientSecretBasic);
        stray.names[1] = Some("a.example".into());
        assert!(err(stray).contains("tls_client_auth_* names"));
        let mut one = parts(ClientAuthMethod::TlsClientAuth);
        one.names[3] = Some("10.0.0.1".into());
        let auth = ClientAuth::from_parts(one.clone()).unwrap();
        assert_eq!(
            auth,
            ClientAuth::TlsClientAuth(RegisteredName::Ip("10.0.0.1".into()))
        );
        assert_eq!(auth.parts(), one);
    }

    #[test]
    fn a_patch_replaces_the_method_whole() {
        let jwks = serde_json::json!({"keys": []});
        let keyed = ClientAuth::PrivateKeyJwt(KeySource::Jwks(jwks.clone()));
        // To a secret: the keys go with the old method.
        let to_secret = AuthPatch {
            method: Some(ClientAuthMethod::ClientSecretBasic),
            ..AuthPatch::default()
        };
        assert_eq!(
            keyed.patched(to_secret),
            Ok(ClientAuth::Secret(SecretVia::Basic))
        );
        // Between the two keyed methods the key source stays.
        let to_self_signed = AuthPatch {
            method: Some(ClientAuthMethod::SelfSignedTlsClientAuth),
            ..AuthPatch::default()
        };
        assert_eq!(
            keyed.patched(to_self_signed),
            Ok(ClientAuth::SelfSignedTls(KeySource::Jwks(jwks.clone())))
        );
        // The same method: fields change in place, and a switch of source
        // must clear the other one.
        let uri_only = AuthPatch {
            jwks_uri: Some(Some("https://k".into())),
            ..AuthPatch::default()
        };
        assert!(keyed.patched(uri_only.clone()).is_err());
        let swap = AuthPatch {
            jwks: Some(None),
            ..uri_only
        };
        assert_eq!(
            keyed.patched(swap),
            Ok(ClientAuth::PrivateKeyJwt(KeySource::Uri(
                "https://k".into()
            )))
        );
        // To tls_client_auth: only the patch's name counts.
        let mut to_tls = AuthPatch {
            method: Some(ClientAuthMethod::TlsClientAuth),
            ..AuthPatch::default()
        };
        assert!(keyed.patched(to_tls.clone()).is_err());
        to_tls.names[0] = Some(Some("CN=svc".into()));
        assert_eq!(
            keyed.patched(to_tls),
            Ok(ClientAuth::TlsClientAuth(RegisteredName::SubjectDn(
                "CN=svc".into()
            )))
        );
    }

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
}
