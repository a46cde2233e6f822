//! How a client authenticates: the registered method's name
//! (`ClientAuthMethod`, RFC 7591 §2) and the method with exactly what it
//! needs (`ClientAuth`), built whole from the RFC 7591 fields and changed
//! whole by a patch.

use serde::Serialize;

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
        let keys = match (p.jwks, p.jwks_uri) {
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
                if keys?.is_some() {
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
            ClientAuthMethod::PrivateKeyJwt => keys?
                .map(ClientAuth::PrivateKeyJwt)
                .ok_or_else(|| "a private_key_jwt client needs jwks or jwks_uri".into()),
            ClientAuthMethod::SelfSignedTlsClientAuth => {
                keys?.map(ClientAuth::SelfSignedTls).ok_or_else(|| {
                    "a self_signed_tls_client_auth client needs jwks or jwks_uri".into()
                })
            }
            ClientAuthMethod::TlsClientAuth => {
                if keys?.is_some() {
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
}
