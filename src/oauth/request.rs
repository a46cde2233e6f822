//! A token request decoded from its HTTP parts into one value per grant
//! (RFC 6749 §4.4 client credentials, RFC 7523 §2.1 JWT bearer, RFC 8693
//! token exchange, and the API-key exchange): the edge hands over the body's parameters, the
//! `Authorization`, `DPoP` and `X-API-Key` headers, the client certificate,
//! the method and the path; the service takes the result through one entry
//! point. Adding a grant is one variant here and one arm there.

use std::sync::Arc;

use super::credentials::{self, ClientCredentials};
use super::error::OAuthError;
use super::exchange::ExchangeParams;
use super::grant::{check_grant_type, GrantType, TokenRequest};
use super::mtls::Certificate;
use super::Params;
use crate::secret::SecretString;

/// What the edge read off an HTTP request to a token endpoint, unparsed.
pub struct HttpParts<'a> {
    /// The body's parameters (form or JSON).
    pub params: &'a Params,
    /// The `Authorization` header.
    pub authorization: Option<&'a [u8]>,
    /// Every `DPoP` header (RFC 9449 §4.3: exactly one is allowed).
    pub dpop: Vec<&'a [u8]>,
    /// The `X-API-Key` header.
    pub api_key: Option<&'a [u8]>,
    /// The client certificate of the connection or of a trusted proxy.
    pub certificate: Option<Arc<Certificate>>,
    /// The HTTP method (`htm`).
    pub method: &'a str,
    /// The endpoint's path (`htu`'s path).
    pub path: &'a str,
}

/// One grant's own inputs.
#[derive(Debug)]
pub enum TokenGrant {
    /// RFC 6749 §4.4: the client's credentials, as presented.
    ClientCredentials {
        /// What the client presented; `None` is unauthenticated.
        client: Option<ClientCredentials>,
    },
    /// RFC 7523 §2.1: an external JWT; client authentication is optional
    /// (§3.1), a bare `client_id` may name the client.
    JwtBearer {
        /// Client credentials, when sent.
        client: Option<ClientCredentials>,
        /// A `client_id` sent without credentials.
        named_client: Option<String>,
        /// The `assertion`.
        assertion: SecretString,
    },
    /// RFC 7523 §2.1 with an identity assertion grant (ID-JAG, `typ:
    /// oauth-id-jag+jwt`): client authentication is required.
    IdJag {
        /// Client credentials, when sent (refused when not).
        client: Option<ClientCredentials>,
        /// The `assertion`.
        assertion: SecretString,
    },
    /// RFC 8693 §2.1: a subject token exchanged by an authenticated client
    /// for a delegated access token or a transaction token.
    TokenExchange {
        /// What the client presented; `None` is unauthenticated.
        client: Option<ClientCredentials>,
        /// The exchange's own parameters.
        exchange: ExchangeParams,
    },
    /// `POST /authentication/token`: an API key exchanged for a token.
    ApiKey {
        /// The key, from the body's `secret_key` or `X-API-Key`.
        key: SecretString,
    },
}

impl TokenGrant {
    /// The metrics label of the grant.
    pub fn label(&self) -> &'static str {
        match self {
            TokenGrant::ClientCredentials { .. } => "client_credentials",
            TokenGrant::JwtBearer { .. } => "jwt_bearer",
            TokenGrant::IdJag { .. } => "id_jag",
            TokenGrant::TokenExchange { exchange, .. } => match exchange.requested {
                super::exchange::Requested::AccessToken => "token_exchange",
                super::exchange::Requested::TxnToken => "txn_token",
            },
            TokenGrant::ApiKey { .. } => "api_key",
        }
    }
}

/// A DPoP proof as it came (RFC 9449 §4.3), for the service to check and
/// record before anything else.
#[derive(Debug, Clone)]
pub struct ProofParts<'a> {
    /// The `DPoP` headers.
    pub headers: Vec<&'a [u8]>,
    /// The request's method.
    pub method: &'a str,
    /// The request's path.
    pub path: &'a str,
}

/// A whole token request: the grant, what every grant shares (scope,
/// audiences, the certificate's thumbprint), and the DPoP proof unchecked.
#[derive(Debug)]
pub struct TokenEndpointRequest<'a> {
    /// The grant and its inputs.
    pub grant: TokenGrant,
    /// Scope, audiences and bindings; `request.dpop` is set by the service
    /// once the proof is checked.
    pub request: TokenRequest,
    /// The proof, unchecked.
    pub proof: ProofParts<'a>,
}

impl<'a> TokenEndpointRequest<'a> {
    /// Decodes a request to `POST /oauth/token` (RFC 6749 §4.4.2, RFC 7523
    /// §2.1). Errors are RFC 6749 §5.2's.
    pub fn decode(parts: HttpParts<'a>) -> Result<TokenEndpointRequest<'a>, OAuthError> {
        let params = parts.params;
        let grant = match check_grant_type(params)? {
            GrantType::ClientCredentials => TokenGrant::ClientCredentials {
                client: credentials::extract_with(
                    parts.authorization,
                    params,
                    parts.certificate.clone(),
                )?,
            },
            GrantType::JwtBearer => {
                let (client, named_client) =
                    credentials::extract_optional(parts.authorization, params)?;
                let assertion = params
                    .single("assertion")?
                    .ok_or_else(|| OAuthError::invalid_request("assertion is required"))?;
                let assertion = SecretString::new(assertion.to_string());
                // The header says which profile: read once, here.
                if super::idjag::is_id_jag(assertion.expose()) {
                    TokenGrant::IdJag { client, assertion }
                } else {
                    TokenGrant::JwtBearer {
                        client,
                        named_client,
                        assertion,
                    }
                }
            }
            GrantType::TokenExchange => TokenGrant::TokenExchange {
                client: credentials::extract_with(
                    parts.authorization,
                    params,
                    parts.certificate.clone(),
                )?,
                exchange: ExchangeParams::from_params(params)?,
            },
        };
        Self::with_grant(grant, parts)
    }

    /// Decodes a request to `POST /authentication/token`: the key as
    /// `secret_key` in the body or in an `X-API-Key` header, in one place
    /// only.
    pub fn decode_api_key(parts: HttpParts<'a>) -> Result<TokenEndpointRequest<'a>, OAuthError> {
        let header = match parts.api_key {
            Some(v) => Some(
                std::str::from_utf8(v)
                    .map_err(|_| OAuthError::invalid_request("malformed X-API-Key header"))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let key = match (header, parts.params.single("secret_key")?) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "API key given both in the X-API-Key header and in the body",
                ))
            }
            (Some(h), None) => h,
            (None, Some(b)) => b.to_string(),
            (None, None) => return Err(OAuthError::invalid_request("secret_key is required")),
        };
        Self::with_grant(
            TokenGrant::ApiKey {
                key: SecretString::new(key),
            },
            parts,
        )
    }

    fn with_grant(
        grant: TokenGrant,
        parts: HttpParts<'a>,
    ) -> Result<TokenEndpointRequest<'a>, OAuthError> {
        let mut request = TokenRequest::from_params(parts.params)?;
        request.certificate = parts.certificate.map(|c| c.thumbprint());
        Ok(TokenEndpointRequest {
            grant,
            request,
            proof: ProofParts {
                headers: parts.dpop,
                method: parts.method,
                path: parts.path,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::grant::JWT_BEARER;
    use crate::oauth::OAuthCode;

    fn parts<'a>(params: &'a Params, authorization: Option<&'a [u8]>) -> HttpParts<'a> {
        HttpParts {
            params,
            authorization,
            dpop: vec![],
            api_key: None,
            certificate: None,
            method: "POST",
            path: "/oauth/token",
        }
    }

    #[test]
    fn each_grant_decodes_into_its_own_variant() {
        let p = Params::from_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", "a"),
            ("client_secret", "s"),
            ("scope", "x y"),
            ("audience", "https://api"),
        ]);
        let r = TokenEndpointRequest::decode(parts(&p, None)).unwrap();
        match &r.grant {
            TokenGrant::ClientCredentials { client: Some(c) } => assert_eq!(c.client_id(), "a"),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.request.scope.as_deref(), Some("x y"));
        assert_eq!(r.request.audiences, ["https://api"]);
        assert_eq!(r.grant.label(), "client_credentials");

        let p = Params::from_pairs([
            ("grant_type", JWT_BEARER),
            ("assertion", "a.b.c"),
            ("client_id", "named"),
        ]);
        let r = TokenEndpointRequest::decode(parts(&p, None)).unwrap();
        match &r.grant {
            TokenGrant::JwtBearer {
                client: None,
                named_client: Some(n),
                assertion,
            } => assert_eq!((n.as_str(), assertion.expose()), ("named", "a.b.c")),
            other => panic!("{other:?}"),
        }
        // An ID-JAG is told by its header, once, at decoding.
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jag = format!(
            "{}.{}.{}",
            b64(r#"{"typ":"oauth-id-jag+jwt","alg":"ES256","kid":"k"}"#),
            b64("{}"),
            b64("sig")
        );
        let p = Params::from_pairs([("grant_type", JWT_BEARER), ("assertion", jag.as_str())]);
        let r = TokenEndpointRequest::decode(parts(&p, None)).unwrap();
        assert!(matches!(&r.grant, TokenGrant::IdJag { client: None, .. }));
        assert_eq!(r.grant.label(), "id_jag");

        let p = Params::from_pairs([("grant_type", JWT_BEARER)]);
        let e = TokenEndpointRequest::decode(parts(&p, None)).unwrap_err();
        assert_eq!(e.description, "assertion is required");

        let p = Params::from_pairs([("grant_type", "password")]);
        let e = TokenEndpointRequest::decode(parts(&p, None)).unwrap_err();
        assert_eq!(e.code, OAuthCode::UnsupportedGrantType);
    }

    #[test]
    fn an_api_key_comes_from_one_place_only() {
        let p = Params::from_pairs([("secret_key", "k1")]);
        let r = TokenEndpointRequest::decode_api_key(parts(&p, None)).unwrap();
        assert!(matches!(&r.grant, TokenGrant::ApiKey { key } if key.expose() == "k1"));
        let mut both = parts(&p, None);
        both.api_key = Some(b"k2");
        let e = TokenEndpointRequest::decode_api_key(both).unwrap_err();
        assert!(e.description.contains("both"));
        let empty = Params::default();
        let mut header = parts(&empty, None);
        header.api_key = Some(b" k3 ");
        let r = TokenEndpointRequest::decode_api_key(header).unwrap();
        assert!(matches!(&r.grant, TokenGrant::ApiKey { key } if key.expose() == "k3"));
        let e = TokenEndpointRequest::decode_api_key(parts(&empty, None)).unwrap_err();
        assert_eq!(e.description, "secret_key is required");
    }
}
