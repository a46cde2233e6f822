//! `GET /.well-known/jwks.json` (RFC 7517 §5),
//! `GET /.well-known/oauth-authorization-server` (RFC 8414 §3) and
//! `GET /openapi.json` (the OpenAPI 3.1 description, `docs/openapi.json`),
//! and `/oauth/authorize`, which refuses every request (no authorization
//! codes here).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::oauth::assertion::SIGNING_ALGS;
use crate::service::error::{ErrorCode, ServiceError};
use crate::service::{now, App};

/// The public signing keys, as of the last commit (a key marked compromised
/// through the command line is gone from the very next answer).
pub async fn jwks(app: web::Data<App>) -> Result<HttpResponse, ServiceError> {
    let jwks: serde_json::Value = app.jwks(now()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .json(jwks))
}

/// The path of an issuer identifier (`/tenant` of `https://host/tenant`),
/// without its trailing slash; empty when the issuer has none.
pub fn issuer_path(issuer: &str) -> &str {
    let rest = issuer.split_once("://").map_or(issuer, |(_, r)| r);
    rest.find('/')
        .map_or("", |i| &rest[i..])
        .trim_end_matches('/')
}

/// RFC 8414 §3.1: when the issuer has a path, the metadata is (also) at
/// `/.well-known/oauth-authorization-server` followed by that path. Any
/// other path below the well-known name is 404.
pub async fn metadata_at_path(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    let tail = req.match_info().query("tail");
    let path = issuer_path(&app.config().issuer);
    if path.is_empty() || path.trim_start_matches('/') != tail.trim_end_matches('/') {
        return super::not_found().await;
    }
    metadata(app).await
}

/// Authorization-server metadata (RFC 8414 §2).
pub async fn metadata(app: web::Data<App>) -> HttpResponse {
    let iss = &app.config().issuer;
    let algs = app.signing_algs();
    // Client authentication at the token, introspection and revocation
    // endpoints (RFC 8414 §2, RFC 8705 §2.1.1 and §2.2.1).
    let auth_methods: Vec<&str> = crate::domain::ClientAuthMethod::ALL
        .iter()
        .map(|m| m.as_str())
        .collect();
    let introspection_methods = [auth_methods.as_slice(), &["bearer"]].concat();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(json!({
            "issuer": iss,
            "token_endpoint": format!("{iss}/oauth/token"),
            "jwks_uri": format!("{iss}/.well-known/jwks.json"),
            "introspection_endpoint": format!("{iss}/oauth/introspect"),
            "revocation_endpoint": format!("{iss}/oauth/revoke"),
            // Tollgate issues no authorization codes. RFC 8414 §2 lets a
            // server without such grants leave this out, but the official
            // MCP SDK (and other strict clients) stop without it; the
            // endpoint answers every request `400 unsupported_response_type`.
            "authorization_endpoint": format!("{iss}/oauth/authorize"),
            "grant_types_supported": [
                "client_credentials",
                crate::oauth::grant::JWT_BEARER,
                crate::oauth::exchange::TOKEN_EXCHANGE,
            ],
            // RFC 8414 §2 requires the member; the authorization endpoint
            // issues nothing, so no response type is supported.
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": auth_methods,
            "token_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
            "introspection_endpoint_auth_methods_supported": introspection_methods,
            "introspection_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
            // RFC 9701 §6: signed introspection answers.
            "introspection_signing_alg_values_supported": algs,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
            "scopes_supported": ["tollgate:admin", "tollgate:introspect", "tollgate:ssf"],
            "access_token_signing_alg_values_supported": algs,
            // RFC 9449 §5.1.
            "dpop_signing_alg_values_supported": crate::oauth::dpop::SIGNING_ALGS,
            // RFC 8705 §3.3.
            "tls_client_certificate_bound_access_tokens": true,
            // draft-ietf-oauth-identity-assertion-authz-grant: ID-JAGs at
            // the JWT bearer grant.
            "authorization_grant_profiles_supported": [crate::oauth::idjag::ID_JAG_PROFILE],
            // draft-ietf-oauth-client-id-metadata-document: URL client ids.
            "client_id_metadata_document_supported": !app.config().cimd_allowed_hosts.is_empty(),
        }))
}

/// The authorization endpoint (RFC 6749 §3.1) of a server that issues no
/// authorization codes: every request is `400 unsupported_response_type`
/// (§4.1.2.1). It never redirects: no client has a registered
/// `redirect_uri`, so an error must not go to one (§4.1.2.1, RFC 9700
/// §4.11: no open redirector). Its parameters are not read.
pub async fn authorize() -> HttpResponse {
    use actix_web::ResponseError;
    ServiceError::new(
        ErrorCode::UnsupportedResponseType,
        "this server issues no authorization codes: it serves machine clients only;          use the client credentials grant (or the JWT bearer or token-exchange grant) at the token endpoint",
    )
    .error_response()
}

/// The OpenAPI 3.1 document, compiled in from `docs/openapi.json`.
const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// The OpenAPI document.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .content_type("application/json")
        .body(OPENAPI)
}

#[cfg(test)]
mod tests {
    use super::issuer_path;

    #[test]
    fn issuer_paths() {
        assert_eq!(issuer_path("http://127.0.0.1:8080"), "");
        assert_eq!(issuer_path("https://auth.example.com/"), "");
        assert_eq!(issuer_path("https://auth.example.com/tenant"), "/tenant");
        assert_eq!(issuer_path("https://auth.example.com/a/b/"), "/a/b");
    }
}
