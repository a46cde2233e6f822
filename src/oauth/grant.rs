//! The client-credentials grant (RFC 6749 §4.4): grant type, secret check,
//! scope choice (§3.3) and audience choice (RFC 8707), as pure functions.

use oxide_auth::primitives::scope::Scope;

use super::error::{OAuthCode, OAuthError};
use super::Params;
use crate::secret::{constant_time_eq, SecretString};
use crate::store::{Client, ClientSecretRecord};
use crate::token::{Audience, Claims};

/// What a token request asks for, once decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRequest {
    /// `scope`, as sent.
    pub scope: Option<String>,
    /// `audience` and every `resource` (RFC 8707 §2).
    pub audiences: Vec<String>,
    /// A checked DPoP proof sent with the request (RFC 9449 §5): the token
    /// is bound to its key.
    pub dpop: Option<super::dpop::Proof>,
    /// The `x5t#S256` of the client certificate of the connection (RFC 8705
    /// §3): a client registered for certificate-bound tokens gets one bound
    /// to it.
    pub certificate: Option<String>,
}

impl TokenRequest {
    /// Reads `scope`, `audience` and `resource` from the parameters.
    pub fn from_params(params: &Params) -> Result<TokenRequest, OAuthError> {
        let scope = params.single("scope")?.map(str::to_string);
        let mut audiences: Vec<String> = Vec::new();
        if let Some(a) = params.single("audience")? {
            audiences.push(a.to_string());
        }
        for r in params.multi("resource") {
            // RFC 8707 §2: an absolute URI without a fragment.
            if !r.contains(':') || r.contains('#') {
                return Err(OAuthError::new(
                    OAuthCode::InvalidTarget,
                    "resource must be an absolute URI without a fragment",
                ));
            }
            if !audiences.iter().any(|a| a == r) {
                audiences.push(r.to_string());
            }
        }
        Ok(TokenRequest {
            scope,
            audiences,
            dpop: None,
            certificate: None,
        })
    }
}

/// `grant_type` of the JWT bearer grant (RFC 7523 §2.1).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// `grant_type` of token exchange (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The grant types the token endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 7523 §2.1: an external JWT exchanged under a federation rule.
    JwtBearer,
    /// RFC 8693 §2.1: a subject token exchanged for a delegated token.
    TokenExchange,
}

impl GrantType {
    /// Its `grant_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::JwtBearer => JWT_BEARER,
            GrantType::TokenExchange => TOKEN_EXCHANGE,
        }
    }
}

/// Reads `grant_type` for the token endpoint (RFC 6749 §4.4.2, §5.2).
pub fn check_grant_type(params: &Params) -> Result<GrantType, OAuthError> {
    match params.single("grant_type")? {
        None => Err(OAuthError::invalid_request("grant_type is required")),
        Some("client_credentials") => Ok(GrantType::ClientCredentials),
        Some(JWT_BEARER) => Ok(GrantType::JwtBearer),
        Some(TOKEN_EXCHANGE) => Ok(GrantType::TokenExchange),
        Some(_) => Err(OAuthError::new(
            OAuthCode::UnsupportedGrantType,
            "grant_type must be client_credentials, urn:ietf:params:oauth:grant-type:jwt-bearer \
             or urn:ietf:params:oauth:grant-type:token-exchange",
        )),
    }
}

/// Server-wide limits that shape a grant.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The issuer URL, also the audience of clients that have none.
    pub issuer: String,
    /// Lifetime for clients without their own.
    pub default_ttl: i64,
    /// Cap on every lifetime.
    pub max_ttl: i64,
}

/// What a client is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Granted scopes, in the client's order.
    pub scope: Vec<String>,
    /// Audiences of the token.
    pub audience: Vec<String>,
    /// Lifetime in seconds.
    pub ttl: i64,
}

/// Checks a presented secret against every live secret of a client, in time
/// independent of which one matches (or none). An unknown client is checked
/// against a dummy digest so it costs the same.
pub fn secret_matches(presented: &SecretString, secrets: &[ClientSecretRecord]) -> bool {
    let digest = presented.digest();
    let mut ok = false;
    for s in secrets {
        ok |= constant_time_eq(&digest, &s.digest);
    }
    if secrets.is_empty() {
        let _ = constant_time_eq(&digest, &[0u8; 32]);
    }
    ok
}

/// The prefix of the scopes that grant rights on Tollgate itself
/// (`tollgate:admin`, `tollgate:introspect`).
pub const OWN_SCOPE_PREFIX: &str = "tollgate:";

/// Whether `scope` grants rights on Tollgate itself.
pub fn is_own_scope(scope: &str) -> bool {
    scope.starts_with(OWN_SCOPE_PREFIX)
}

/// A client's token lifetime: its own or the default, capped by the maximum.
pub fn client_ttl(client: &Client, policy: &Policy) -> i64 {
    client
        .token_ttl
        .unwrap_or(policy.default_ttl)
        .clamp(1, policy.max_ttl)
}

/// Decides scope, audience and lifetime for an authenticated, enabled client.
///
/// - Audience (RFC 8707 §2): each requested audience must be one of the
///   client's; absent means the client's first (or the issuer when it has
///   none). The issuer itself may also be asked for by a client that holds a
///   `tollgate:*` scope. Else `invalid_target`.
/// - Scope (RFC 6749 §3.3): the requested set must be a subset of the
///   client's; absent means the client's full set. Else `invalid_scope`.
///   `tollgate:*` scopes are granted only in a token whose sole audience is
///   the issuer (RFC 9068 §4: a resource server must check that it is the
///   audience; Tollgate is the resource server of these scopes, so a token
///   for any other audience cannot carry them, and a resource server cannot
///   replay a token it received against Tollgate). Absent, they are left
///   out of such tokens; asked for, they are `invalid_scope`.
/// - Lifetime: the client's TTL or the default, capped by the maximum.
pub fn decide(client: &Client, req: &TokenRequest, policy: &Policy) -> Result<Grant, OAuthError> {
    let allowed: Scope = client.scopes.join(" ").parse().map_err(|_| {
        OAuthError::new(
            OAuthCode::ServerError,
            format!("client {} has a malformed scope", client.id),
        )
    })?;
    let audience = if req.audiences.is_empty() {
        vec![client
            .audiences
            .first()
            .cloned()
            .unwrap_or_else(|| policy.issuer.clone())]
    } else {
        let may_ask_issuer = client.scopes.iter().any(|s| is_own_scope(s));
        for a in &req.audiences {
            let own = a == &policy.issuer && may_ask_issuer;
            if !own && !client.audiences.iter().any(|c| c == a) {
                return Err(OAuthError::new(
                    OAuthCode::InvalidTarget,
                    "requested audience is not allowed for this client",
                ));
            }
        }
        req.audiences.clone()
    };
    let for_tollgate = audience.len() == 1 && audience[0] == policy.issuer;
    let scope = match &req.scope {
        None => client
            .scopes
            .iter()
            .filter(|s| for_tollgate || !is_own_scope(s))
            .cloned()
            .collect(),
        Some(text) => {
            let requested: Scope = text
                .parse()
                .map_err(|_| OAuthError::new(OAuthCode::InvalidScope, "malformed scope"))?;
            if !allowed.priviledged_to(&requested) {
                return Err(OAuthError::new(
                    OAuthCode::InvalidScope,
                    "requested scope exceeds the scope granted to the client",
                ));
            }
            if !for_tollgate && requested.iter().any(is_own_scope) {
                return Err(OAuthError::new(
                    OAuthCode::InvalidScope,
                    "tollgate:* scopes are granted only in tokens whose audience is this \
                     server's issuer identifier; request audience=<issuer> alone",
                ));
            }
            client
                .scopes
                .iter()
                .filter(|s| requested.iter().any(|r| r == s.as_str()))
                .cloned()
                .collect()
        }
    };
    let ttl = client_ttl(client, policy);
    Ok(Grant {
        scope,
        audience,
        ttl,
    })
}

/// The RFC 9068 §2.2 claims for a grant issued at `now`.
pub fn claims(
    client_id: &str,
    grant: &Grant,
    issuer: &str,
    now: i64,
    jti: String,
    api_key_id: Option<String>,
) -> Claims {
    Claims {
        iss: issuer.to_string(),
        sub: client_id.to_string(),
        aud: Audience::from_list(grant.audience.clone()),
        exp: now + grant.ttl,
        iat: now,
        jti,
        client_id: client_id.to_string(),
        scope: grant.scope.join(" "),
        api_key_id,
        cnf: None,
        act: None,
        may_act: None,
        origin: Vec::new(),
        extra: serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client {
            id: "c".into(),
            scopes: vec!["read".into(), "write".into()],
            audiences: vec!["https://a".into(), "https://b".into()],
            ..Client::fixture("c")
        }
    }

    fn policy() -> Policy {
        Policy {
            issuer: "http://iss".into(),
            default_ttl: 3600,
            max_ttl: 86_400,
        }
    }

    fn req(scope: Option<&str>, aud: &[&str]) -> TokenRequest {
        TokenRequest {
            scope: scope.map(str::to_string),
            audiences: aud.iter().map(|s| s.to_string()).collect(),
            dpop: None,
            certificate: None,
        }
    }

    #[test]
    fn absent_scope_and_audience_mean_the_clients_defaults() {
        let g = decide(&client(), &req(None, &[]), &policy()).unwrap();
        assert_eq!(g.scope, vec!["read", "write"]);
        assert_eq!(g.audience, vec!["https://a"]);
        assert_eq!(g.ttl, 3600);
    }

    #[test]
    fn scope_must_be_a_subset() {
        let g = decide(&client(), &req(Some("write"), &[]), &policy()).unwrap();
        assert_eq!(g.scope, vec!["write"]);
        let e = decide(&client(), &req(Some("read admin"), &[]), &policy()).unwrap_err();
        assert_eq!(e.code, OAuthCode::InvalidScope);
        let e = decide(&client(), &req(Some("re\"ad"), &[]), &policy()).unwrap_err();
        assert_eq!(e.code, OAuthCode::InvalidScope);
    }

    #[test]
    fn audience_must_be_allowed() {
        let g = decide(&client(), &req(None, &["https://b"]), &policy()).unwrap();
        assert_eq!(g.audience, vec!["https://b"]);
        let e = decide(&client(), &req(None, &["https://evil"]), &policy()).unwrap_err();
        assert_eq!(e.code, OAuthCode::InvalidTarget);
    }

    #[test]
    fn own_scopes_only_in_tokens_for_the_issuer_alone() {
        let mut c = client();
        c.scopes = vec!["invoices:read".into(), "tollgate:admin".into()];
        // Default audience is the client's own: the admin scope is left out.
        let g = decide(&c, &req(None, &[]), &policy()).unwrap();
        assert_eq!(
            (g.audience, g.scope),
            (
                vec!["https://a".to_string()],
                vec!["invoices:read".to_string()]
            )
        );
        // Asked for with another audience: refused.
        let e = decide(&c, &req(Some("tollgate:admin"), &["https://a"]), &policy()).unwrap_err();
        assert_eq!(e.code, OAuthCode::InvalidScope);
        // With the issuer and another audience: refused too.
        let e = decide(
            &c,
            &req(Some("tollgate:admin"), &["http://iss", "https://a"]),
            &policy(),
        )
        .unwrap_err();
        assert_eq!(e.code, OAuthCode::InvalidScope);
        // The issuer alone: granted.
        let g = decide(&c, &req(None, &["http://iss"]), &policy()).unwrap();
        assert_eq!(g.audience, vec!["http://iss"]);
        assert_eq!(g.scope, vec!["invoices:read", "tollgate:admin"]);
        // A client without an own scope cannot ask for the issuer.
        let e = decide(&client(), &req(None, &["http://iss"]), &policy()).unwrap_err();
        assert_eq!(e.code, OAuthCode::InvalidTarget);
    }

    #[test]
    fn ttl_is_capped_by_the_maximum() {
        let mut c = client();
        c.token_ttl = Some(1_000_000);
        assert_eq!(decide(&c, &req(None, &[]), &policy()).unwrap().ttl, 86_400);
    }

    #[test]
    fn grant_type_checks() {
        assert_eq!(
            check_grant_type(&Params::default()).unwrap_err().code,
            OAuthCode::InvalidRequest
        );
        let p = Params::from_pairs([("grant_type", "password")]);
        assert_eq!(
            check_grant_type(&p).unwrap_err().code,
            OAuthCode::UnsupportedGrantType
        );
        assert_eq!(
            check_grant_type(&Params::from_pairs([("grant_type", "client_credentials")])),
            Ok(GrantType::ClientCredentials)
        );
        assert_eq!(
            check_grant_type(&Params::from_pairs([("grant_type", JWT_BEARER)])),
            Ok(GrantType::JwtBearer)
        );
    }

    #[test]
    fn secrets_match_any_live_digest_only() {
        let s = SecretString::new("tgs_x".into());
        let rec = |d: [u8; 32]| ClientSecretRecord {
            id: 1,
            digest: d.to_vec(),
            created_at: 0,
            expires_at: None,
        };
        assert!(secret_matches(&s, &[rec([0; 32]), rec(s.digest())]));
        assert!(!secret_matches(&s, &[rec([0; 32])]));
        assert!(!secret_matches(&s, &[]));
    }
}
