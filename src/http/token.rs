//! `POST /oauth/token` (RFC 6749 §4.4) and `POST /authentication/token` (API-key exchange).

use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use super::{authorization, client_ip, no_store_json, read_params};
use crate::oauth::request::{HttpParts, TokenEndpointRequest};
use crate::service::error::ServiceError;
use crate::service::{now, App, IssuedToken, RequestContext};

/// RFC 6749 §5.1 success body.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    scope: &'a str,
    /// RFC 8693 §2.2.1, for a token exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
}

fn respond(app: &App, t: &IssuedToken) -> HttpResponse {
    let mut response = no_store_json(TokenResponse {
        access_token: t.access_token.expose(),
        token_type: t.token_type,
        expires_in: t.expires_in,
        scope: &t.scope,
        issued_token_type: t.issued_token_type,
    });
    // RFC 9449 §8.2: the nonce for the client's next proof.
    if let Some(nonce) = app.proofs().dpop_nonce(now()) {
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&nonce) {
            response.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("dpop-nonce"),
                v,
            );
        }
    }
    response
}

/// The HTTP parts of a token request to `path`, as `oauth::request` reads
/// them.
fn http_parts<'a>(
    app: &App,
    req: &'a HttpRequest,
    params: &'a crate::oauth::Params,
    path: &'a str,
) -> Result<HttpParts<'a>, ServiceError> {
    Ok(HttpParts {
        params,
        authorization: authorization(req),
        dpop: super::dpop_headers(req),
        api_key: req
            .headers()
            .get(&super::names::X_API_KEY)
            .map(|v| v.as_bytes()),
        certificate: super::client_certificate(req, app)?,
        method: req.method().as_str(),
        path,
    })
}

/// The token endpoint, form or JSON body: the client-credentials grant
/// (Basic, body credentials, a client assertion or a certificate) and the
/// JWT bearer grant (RFC 7523 §2.1: `assertion`, client authentication
/// optional).
pub async fn token(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let params = read_params(&app, &req, payload).await?;
    let request = TokenEndpointRequest::decode(http_parts(&app, &req, &params, "/oauth/token")?)?;
    let context = RequestContext::new(client_ip(&req, &app));
    let issued = app.tokens().token(request, context).await?;
    Ok(respond(&app, &issued))
}

/// API-key exchange: the key comes as `secret_key` in a JSON or form body, or
/// in an `X-API-Key` header; one place only.
pub async fn api_key_token(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let params = read_params(&app, &req, payload).await?;
    let parts = http_parts(&app, &req, &params, "/authentication/token")?;
    let request = TokenEndpointRequest::decode_api_key(parts)?;
    let context = RequestContext::new(client_ip(&req, &app));
    let issued = app.tokens().token(request, context).await?;
    Ok(respond(&app, &issued))
}
