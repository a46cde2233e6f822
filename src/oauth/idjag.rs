//! Identity assertion JWT authorization grants (ID-JAG,
//! draft-ietf-oauth-identity-assertion-authz-grant, the MCP
//! Enterprise-Managed Authorization extension) as pure functions: an
//! enterprise identity provider's signed statement that a user let this
//! client act for them at one resource, presented through the JWT bearer
//! grant (RFC 7523 §2.1). The signature, the issuer's trust and the `jti`
//! replay check are the caller's; the claims and the decision are here.

use serde_json::Value;

use super::assertion::SKEW;
use super::error::{OAuthCode, OAuthError};
use super::federation::ExternalToken;
use super::grant::{Grant, Policy, TokenRequest};
use crate::domain::Client;

/// The header `typ` of an ID-JAG (§3).
pub const ID_JAG_TYPE: &str = "oauth-id-jag+jwt";

/// The grant profile the metadata lists in
/// `authorization_grant_profiles_supported`.
pub const ID_JAG_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";

/// The furthest ahead an ID-JAG's `exp` may lie: five minutes.
pub const MAX_ID_JAG_LIFETIME: i64 = 300;

/// Whether a JWT's header says it is an ID-JAG (`typ`, case-insensitive,
/// RFC 7515 §4.1.9). Only the header is read.
pub fn is_id_jag(jwt: &str) -> bool {
    crate::token::jws::Jws::parse(jwt)
        .ok()
        .and_then(|j| j.text("typ").map(|t| t.eq_ignore_ascii_case(ID_JAG_TYPE)))
        .unwrap_or(false)
}

/// An ID-JAG whose claims were checked for `client`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdJag {
    /// The user (`sub`).
    pub sub: String,
    /// `jti`, to be used once.
    pub jti: String,
    /// `exp`.
    pub exp: i64,
    /// `resource`: the token's audience.
    pub resource: Option<String>,
    /// `scope`, as a list.
    pub scope: Vec<String>,
}

fn grant_error(d: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(OAuthCode::InvalidGrant, d)
}

/// Checks the claims of a verified ID-JAG for the authenticated `client`:
/// `aud` is this server's `issuer`; `exp` at most five minutes ahead; `iat`
/// and `jti` present; `client_id` is the client; `resource`, when present,
/// one of the client's audiences and never this server. Each failure is
/// `invalid_grant` naming the check.
pub fn check(
    token: &ExternalToken,
    issuer: &str,
    client: &Client,
    now: i64,
) -> Result<IdJag, OAuthError> {
    let text = |name: &str| token.claims.get(name).and_then(Value::as_str);
    if !token.aud.iter().any(|a| a == issuer) {
        return Err(grant_error(
            "the ID-JAG's aud is not this server's issuer identifier",
        ));
    }
    if token.exp > now + MAX_ID_JAG_LIFETIME + SKEW {
        return Err(grant_error("the ID-JAG's exp is more than 5 minutes ahead"));
    }
    if !token.claims.get("iat").is_some_and(Value::is_number) {
        return Err(grant_error("the ID-JAG has no iat"));
    }
    let jti = token
        .jti
        .clone()
        .ok_or_else(|| grant_error("the ID-JAG has no jti"))?;
    if text("client_id") != Some(client.id.as_str()) {
        return Err(grant_error(
            "the ID-JAG's client_id is not the authenticated client",
        ));
    }
    let resource = match token.claims.get("resource") {
        None => None,
        Some(Value::String(r)) if r != issuer && client.audiences.contains(r) => Some(r.clone()),
        Some(_) => {
            return Err(grant_error(
                "the ID-JAG's resource is not one of the client's audiences",
            ))
        }
    };
    let scope = text("scope")
        .map(|s| {
            s.split(' ')
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(IdJag {
        sub: token.sub.clone(),
        jti,
        exp: token.exp,
        resource,
        scope,
    })
}

/// The grant for an ID-JAG ([`super::exchange::delegated_grant`]):
/// audience its `resource` (a request's `resource` or `audience` must then
/// name the same), else the request's or the client's first, never this
/// server; scope = the ID-JAG's ∩ the client's, narrowed by the request's,
/// never `tollgate:*`; the client's lifetime.
pub fn decide(
    client: &Client,
    jag: &IdJag,
    req: &TokenRequest,
    policy: &Policy,
) -> Result<Grant, OAuthError> {
    super::exchange::delegated_grant(
        client,
        &jag.scope,
        jag.resource.as_deref(),
        req,
        policy,
        "a token acting for a user is never for this server's own endpoints",
    )
    .map_err(|r| r.error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://tollgate.example";

    fn client() -> Client {
        Client {
            scopes: vec![
                "files:read".into(),
                "files:write".into(),
                "tollgate:admin".into(),
            ],
            audiences: vec!["https://mcp.example/mcp".into(), "https://other".into()],
            ..Client::fixture("agent")
        }
    }

    fn token(extra: Value) -> ExternalToken {
        let mut claims = json!({
            "iss": "https://idp", "sub": "alice", "aud": ISS, "client_id": "agent",
            "jti": "j1", "iat": 1000, "exp": 1200, "scope": "files:read tollgate:admin other",
            "resource": "https://mcp.example/mcp",
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        let claims = claims.as_object().unwrap().clone();
        ExternalToken {
            iss: "https://idp".into(),
            sub: "alice".into(),
            aud: match &claims["aud"] {
                Value::String(s) => vec![s.clone()],
                _ => vec![],
            },
            exp: claims["exp"].as_i64().unwrap(),
            jti: claims
                .get("jti")
                .and_then(|j| j.as_str())
                .map(str::to_string),
            claims,
        }
    }

    fn policy() -> Policy {
        Policy {
            issuer: ISS.into(),
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
    fn each_claim_is_checked() {
        let ok = check(&token(json!({})), ISS, &client(), 1000).unwrap();
        assert_eq!(ok.resource.as_deref(), Some("https://mcp.example/mcp"));
        for (extra, words) in [
            (json!({"aud": "https://else"}), "aud"),
            (json!({"exp": 1000 + 400}), "5 minutes"),
            (json!({"iat": null}), "iat"),
            (json!({"jti": null}), "jti"),
            (json!({"client_id": "other"}), "client_id"),
            (json!({"resource": "https://evil"}), "resource"),
            (json!({"resource": ISS}), "resource"),
        ] {
            let e = check(&token(extra.clone()), ISS, &client(), 1000).unwrap_err();
            assert_eq!(e.code, OAuthCode::InvalidGrant);
            assert!(e.description.contains(words), "{extra}: {}", e.description);
        }
    }

    #[test]
    fn the_grant_is_the_resource_and_the_common_scope() {
        let jag = check(&token(json!({})), ISS, &client(), 1000).unwrap();
        let g = decide(&client(), &jag, &req(None, &[]), &policy()).unwrap();
        assert_eq!(g.audience, ["https://mcp.example/mcp"]);
        assert_eq!(
            g.scope,
            ["files:read"],
            "never tollgate:*, never beyond the client's"
        );
        let g = decide(
            &client(),
            &jag,
            &req(None, &["https://mcp.example/mcp"]),
            &policy(),
        )
        .unwrap();
        assert_eq!(g.audience, ["https://mcp.example/mcp"]);
        let e = decide(&client(), &jag, &req(None, &["https://other"]), &policy()).unwrap_err();
        assert_eq!(e.code, OAuthCode::InvalidTarget);
        let e = decide(&client(), &jag, &req(Some("files:write"), &[]), &policy()).unwrap_err();
        assert_eq!(e.code, OAuthCode::InvalidScope);
        let no_resource = check(&token(json!({"resource": null})), ISS, &client(), 1000).unwrap();
        let g = decide(&client(), &no_resource, &req(None, &[]), &policy()).unwrap();
        assert_eq!(
            g.audience,
            ["https://mcp.example/mcp"],
            "the client's first"
        );
        let e = decide(&client(), &no_resource, &req(None, &[ISS]), &policy()).unwrap_err();
        assert_eq!(e.code, OAuthCode::InvalidTarget);
    }
}
