//! Client authentication material: HTTP Basic with the form-decoding of
//! RFC 6749 §2.3.1 (`client_secret_basic`), body parameters
//! (`client_secret_post`), or a JWT client assertion (`private_key_jwt`,
//! RFC 7521 §4.2); more than one at once is an error.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::error::OAuthError;
use super::params::form_part;
use super::Params;
pub use crate::domain::SecretVia;
use crate::secret::SecretString;

/// What a client presented to authenticate, as it came over the wire: one
/// variant per way, each with exactly what that way carries (no secret
/// field holding a secret, a JWT or nothing).
#[derive(Debug, Clone)]
pub enum ClientCredentials {
    /// A client secret: HTTP Basic (`client_secret_basic`, RFC 6749
    /// §2.3.1) or body parameters (`client_secret_post`); `via` says which.
    Secret {
        /// The claimed client id.
        client_id: String,
        /// The presented secret.
        secret: SecretString,
        /// HTTP Basic or the body.
        via: SecretVia,
    },
    /// A signed JWT (`private_key_jwt`, RFC 7523 §2.2, or a workload's
    /// token from a trusted issuer used the same way).
    Assertion {
        /// The client id: `client_id`, or the assertion's `sub` without it
        /// (RFC 7521 §4.2).
        client_id: String,
        /// The assertion.
        jwt: SecretString,
    },
    /// A `client_id` alone on a connection with a client certificate
    /// (RFC 8705 §2: `tls_client_auth` or `self_signed_tls_client_auth`).
    Certificate {
        /// The claimed client id.
        client_id: String,
        /// The connection's client certificate.
        certificate: std::sync::Arc<super::mtls::Certificate>,
    },
}

impl ClientCredentials {
    /// The client id claimed, whatever the way.
    pub fn client_id(&self) -> &str {
        match self {
            ClientCredentials::Secret { client_id, .. }
            | ClientCredentials::Assertion { client_id, .. }
            | ClientCredentials::Certificate { client_id, .. } => client_id,
        }
    }

    /// How they came, as RFC 8414 names the way (a certificate is
    /// `tls_client_auth` until the client's registration says which kind).
    pub fn method(&self) -> &'static str {
        match self {
            ClientCredentials::Secret {
                via: SecretVia::Basic,
                ..
            } => "client_secret_basic",
            ClientCredentials::Secret {
                via: SecretVia::Post,
                ..
            } => "client_secret_post",
            ClientCredentials::Assertion { .. } => "private_key_jwt",
            ClientCredentials::Certificate { .. } => "tls_client_auth",
        }
    }
}

/// The longest Authorization header value considered.
const MAX_HEADER_LEN: usize = 8192;

/// The credentials of an `Authorization: Basic …` header, or `None` when the
/// header uses another scheme. RFC 6749 §2.3.1: the id and the secret are
/// form-encoded before Basic encoding, so they are form-decoded after it.
pub fn parse_basic(header: &[u8]) -> Result<Option<(String, SecretString)>, OAuthError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(OAuthError::invalid_request(
            "Authorization header is too long",
        ));
    }
    let text = std::str::from_utf8(header)
        .map_err(|_| OAuthError::invalid_request("malformed Authorization header"))?;
    let mut parts = text.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or("");
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let encoded = parts.next().unwrap_or("").trim();
    let decoded = STANDARD
        .decode(encoded)
        .map_err(|_| OAuthError::invalid_request("malformed Basic credentials: not base64"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| OAuthError::invalid_request("malformed Basic credentials: not UTF-8"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| OAuthError::invalid_request("malformed Basic credentials: no ':'"))?;
    // RFC 6749 §2.3.1: both are form-urlencoded before they are joined.
    let not_utf8 = |_| OAuthError::invalid_request("malformed Basic credentials: not UTF-8");
    let id = form_part(id).map_err(not_utf8)?.into_owned();
    let secret = form_part(secret).map_err(not_utf8)?.into_owned();
    if id.is_empty() {
        return Err(OAuthError::invalid_client());
    }
    Ok(Some((id, SecretString::new(secret))))
}

/// The client's credentials from the Authorization header or the body.
///
/// - Basic and body credentials together: `invalid_request` (RFC 6749 §2.3:
///   "MUST NOT use more than one authentication method in each request").
/// - Neither: `Ok(None)`; the caller answers `invalid_client`.
/// - A `client_id` without a secret: `invalid_client`, as confidential
///   clients must authenticate (RFC 6749 §4.4.2).
pub fn extract(
    authorization: Option<&[u8]>,
    params: &Params,
) -> Result<Option<ClientCredentials>, OAuthError> {
    extract_with(authorization, params, None)
}

/// [`extract`] on a connection that may carry a client certificate: a
/// `client_id` alone with a certificate is `tls_client_auth` (RFC 8705 §2),
/// and every credential carries the certificate.
pub fn extract_with(
    authorization: Option<&[u8]>,
    params: &Params,
    certificate: Option<std::sync::Arc<super::mtls::Certificate>>,
) -> Result<Option<ClientCredentials>, OAuthError> {
    extract_plain(authorization, params, certificate)
}

fn extract_plain(
    authorization: Option<&[u8]>,
    params: &Params,
    certificate: Option<std::sync::Arc<super::mtls::Certificate>>,
) -> Result<Option<ClientCredentials>, OAuthError> {
    let basic = match authorization {
        Some(h) => parse_basic(h)?,
        None => None,
    };
    let body_id = params.single("client_id")?;
    let body_secret = params.single("client_secret")?;
    let assertion_type = params.single("client_assertion_type")?;
    let assertion = params.single("client_assertion")?;
    if assertion_type.is_some() || assertion.is_some() {
        if basic.is_some() || body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "a client assertion cannot be combined with another client authentication method",
            ));
        }
        let (Some(kind), Some(assertion)) = (assertion_type, assertion) else {
            return Err(OAuthError::invalid_request(
                "client_assertion and client_assertion_type go together",
            ));
        };
        if kind != super::assertion::ASSERTION_TYPE {
            return Err(OAuthError::invalid_request(format!(
                "client_assertion_type must be {}",
                super::assertion::ASSERTION_TYPE
            )));
        }
        // RFC 7521 §4.2: client_id is optional, and must match when given.
        let client_id = match (body_id, super::assertion::claimed_client(assertion)) {
            (Some(id), _) => id.to_string(),
            (None, Some(sub)) => sub,
            (None, None) => return Err(OAuthError::invalid_client()),
        };
        return Ok(Some(ClientCredentials::Assertion {
            client_id,
            jwt: SecretString::new(assertion.to_string()),
        }));
    }
    match (basic, body_id, body_secret) {
        (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "client credentials given both in the Authorization header and in the body",
        )),
        (Some((id, _)), Some(body_id), None) if body_id != id => Err(OAuthError::invalid_request(
            "client_id in the body does not match the Authorization header",
        )),
        (Some((client_id, secret)), _, None) => Ok(Some(ClientCredentials::Secret {
            client_id,
            secret,
            via: SecretVia::Basic,
        })),
        (None, Some(id), Some(secret)) => Ok(Some(ClientCredentials::Secret {
            client_id: id.to_string(),
            secret: SecretString::new(secret.to_string()),
            via: SecretVia::Post,
        })),
        (None, Some(id), None) if certificate.is_some() => match certificate {
            Some(certificate) => Ok(Some(ClientCredentials::Certificate {
                client_id: id.to_string(),
                certificate,
            })),
            None => Err(OAuthError::invalid_client()),
        },
        (None, None, None) => Ok(None),
        (None, _, _) => Err(OAuthError::invalid_client()),
    }
}

/// For the JWT bearer grant (RFC 7523 §2.1, where client authentication is
/// optional): the client's credentials when it sent any, else the bare
/// `client_id` it named (which only restricts the rules considered).
pub fn extract_optional(
    authorization: Option<&[u8]>,
    params: &Params,
) -> Result<(Option<ClientCredentials>, Option<String>), OAuthError> {
    let basic = match authorization {
        Some(h) => parse_basic(h)?.is_some(),
        None => false,
    };
    let other = params.single("client_secret")?.is_some()
        || params.single("client_assertion")?.is_some()
        || params.single("client_assertion_type")?.is_some();
    if !basic && !other {
        return Ok((None, params.single("client_id")?.map(str::to_string)));
    }
    Ok((extract(authorization, params)?, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::OAuthCode;

    fn basic(id: &str, secret: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))).into_bytes()
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let (id, secret) = parse_basic(&basic("my%20client", "a%2Bb+c"))
            .unwrap()
            .unwrap();
        assert_eq!(id, "my client");
        assert_eq!(secret.expose(), "a+b c");
        let (id, secret) = parse_basic(&basic("tgc_plain-id", "tgs_plain_secret"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (id.as_str(), secret.expose()),
            ("tgc_plain-id", "tgs_plain_secret")
        );
        // An escape that decodes to bytes that are not UTF-8, in either part.
        for (id, secret) in [("a", "%FF"), ("%C3", "b"), ("a", "x%E2%82")] {
            let e = parse_basic(&basic(id, secret)).unwrap_err();
            assert_eq!(e.code, OAuthCode::InvalidRequest, "{id}:{secret}");
        }
    }

    #[test]
    fn other_schemes_are_not_basic() {
        assert!(parse_basic(b"Bearer abc").unwrap().is_none());
    }

    #[test]
    fn broken_basic_is_invalid_request() {
        for h in [&b"Basic !!!"[..], b"Basic Zm9v", b"Basic /w=="] {
            assert_eq!(parse_basic(h).unwrap_err().code, OAuthCode::InvalidRequest);
        }
    }

    #[test]
    fn both_methods_at_once_is_invalid_request() {
        let p = Params::from_pairs([("client_id", "a"), ("client_secret", "b")]);
        let e = extract(Some(&basic("a", "b")), &p).unwrap_err();
        assert_eq!(e.code, OAuthCode::InvalidRequest);
    }

    #[test]
    fn an_assertion_goes_alone_with_its_type() {
        let t = super::super::assertion::ASSERTION_TYPE;
        let p = Params::from_pairs([("client_assertion_type", t), ("client_assertion", "x.y.z")]);
        let e = extract(Some(&basic("a", "b")), &p).unwrap_err();
        assert_eq!(e.code, OAuthCode::InvalidRequest, "with Basic");
        let p = Params::from_pairs([
            ("client_assertion_type", t),
            ("client_assertion", "x.y.z"),
            ("client_secret", "s"),
        ]);
        assert_eq!(
            extract(None, &p).unwrap_err().code,
            OAuthCode::InvalidRequest
        );
        let p = Params::from_pairs([("client_assertion", "x.y.z")]);
        assert_eq!(
            extract(None, &p).unwrap_err().code,
            OAuthCode::InvalidRequest
        );
        let p = Params::from_pairs([
            ("client_assertion_type", "other"),
            ("client_assertion", "a"),
        ]);
        assert_eq!(
            extract(None, &p).unwrap_err().code,
            OAuthCode::InvalidRequest
        );
        let p = Params::from_pairs([
            ("client_assertion_type", t),
            ("client_assertion", "x.y.z"),
            ("client_id", "c1"),
        ]);
        let c = extract(None, &p).unwrap().unwrap();
        assert_eq!((c.client_id(), c.method()), ("c1", "private_key_jwt"));
        // Without client_id, the assertion's sub names the client.
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"sub":"c2"}"#);
        let jwt = format!("e30.{payload}.sig");
        let p = Params::from_pairs([("client_assertion_type", t), ("client_assertion", &jwt)]);
        assert_eq!(extract(None, &p).unwrap().unwrap().client_id(), "c2");
    }

    #[test]
    fn the_bearer_grant_takes_a_bare_client_id_or_credentials() {
        let p = Params::from_pairs([("client_id", "a")]);
        let (c, id) = extract_optional(None, &p).unwrap();
        assert!(c.is_none());
        assert_eq!(id.as_deref(), Some("a"));
        let p = Params::from_pairs([("client_id", "a"), ("client_secret", "s")]);
        let (c, id) = extract_optional(None, &p).unwrap();
        assert_eq!(c.unwrap().method(), "client_secret_post");
        assert!(id.is_none());
        let (c, _) = extract_optional(Some(&basic("a", "b")), &Params::default()).unwrap();
        assert_eq!(c.unwrap().method(), "client_secret_basic");
        assert_eq!(extract_optional(None, &Params::default()).unwrap().1, None);
    }

    #[test]
    fn body_credentials_and_missing_secret() {
        let p = Params::from_pairs([("client_id", "a"), ("client_secret", "b")]);
        let c = extract(None, &p).unwrap().unwrap();
        assert_eq!((c.client_id(), c.method()), ("a", "client_secret_post"));
        let p = Params::from_pairs([("client_id", "a")]);
        assert_eq!(
            extract(None, &p).unwrap_err().code,
            OAuthCode::InvalidClient
        );
        assert!(extract(None, &Params::default()).unwrap().is_none());
    }
}
