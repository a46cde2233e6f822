//! `POST /oauth/token` (RFC 6749 §4.4) and `POST /authentication/token` (API-key exchange).

use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use super::{authorization, client_ip, no_store_json, read_params};
use crate::oauth::credentials;
use crate::oauth::grant::{check_grant_type, GrantType, TokenRequest};
use crate::secret::SecretString;
use crate::service::error::ServiceError;
use crate::service::{now, App, IssuedToken};

/// RFC 6749 §5.1 success body.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    scope: &'a str,
}

fn respond(app: &App, t: &IssuedToken) -> HttpResponse {
    let mut response = no_store_json(TokenResponse {
        access_token: t.access_token.expose(),
        token_type: t.token_type,
        expires_in: t.expires_in,
        scope: &t.scope,
    });
    // RFC 9449 §8.2: the nonce for the client's next proof.
    if let Some(nonce) = app.dpop_nonce(now()) {
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&nonce) {
            response.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("dpop-nonce"),
                v,
            );
        }
    }
    response
}

/// The DPoP proof of a token request to `path`, if it sent one: checked,
/// and its `jti` recorded before anything else is done.
async fn dpop_proof(
    app: &App,
    req: &HttpRequest,
    path: &str,
) -> Result<Option<crate::oauth::dpop::Proof>, ServiceError> {
    app.token_request_proof(
        &super::dpop_headers(req),
        req.method().as_str(),
        path,
        now(),
    )
    .await
}

/// The token endpoint, form or JSON body: the client-credentials grant
/// (Basic, body credentials or a client assertion) and the JWT bearer grant
/// (RFC 7523 §2.1: `assertion`, client authentication optional).
pub async fn token(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let params = read_params(&app, &req, payload).await?;
    let grant = check_grant_type(&params)?;
    let ip = client_ip(&req, &app);
    let metrics = app.metrics_handle();
    let issued = match grant {
        GrantType::ClientCredentials => {
            let cert = super::client_certificate(&req, &app)?;
            let creds = credentials::extract_with(authorization(&req), &params, cert.clone())?;
            let mut request = TokenRequest::from_params(&params)?;
            request.dpop = dpop_proof(&app, &req, "/oauth/token").await?;
            request.certificate = cert.map(|c| c.thumbprint());
            app.issue_for_client(creds.as_ref(), Some(ip), &request, now())
                .await
        }
        GrantType::JwtBearer => {
            let (creds, named) = credentials::extract_optional(authorization(&req), &params)?;
            let assertion = params
                .single("assertion")?
                .ok_or_else(|| ServiceError::invalid_request("assertion is required"))?;
            let assertion = SecretString::new(assertion.to_string());
            let mut request = TokenRequest::from_params(&params)?;
            request.dpop = dpop_proof(&app, &req, "/oauth/token").await?;
            request.certificate = super::client_certificate(&req, &app)?.map(|c| c.thumbprint());
            let now = now();
            let client = match creds {
                Some(c) => Some(
                    app.authenticator()
                        .authenticate_client(Some(&c), Some(ip), now)
                        .await?
                        .id,
                ),
                None => named,
            };
            app.issue_for_jwt_bearer(&assertion, client.as_deref(), Some(ip), &request, now)
                .await
        }
    };
    let label = match grant {
        GrantType::ClientCredentials => "client_credentials",
        GrantType::JwtBearer => "jwt_bearer",
    };
    metrics.token(
        label,
        issued.as_ref().map(|_| ()).map_err(|e| e.code.as_str()),
    );
    let issued = issued?;
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
    let header_key = match req.headers().get("x-api-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ServiceError::invalid_request("malformed X-API-Key header"))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let key = match (header_key, params.single("secret_key")?) {
        (Some(_), Some(_)) => {
            return Err(ServiceError::invalid_request(
                "API key given both in the X-API-Key header and in the body",
            ))
        }
        (Some(h), None) => h,
        (None, Some(b)) => b.to_string(),
        (None, None) => return Err(ServiceError::invalid_request("secret_key is required")),
    };
    let key = SecretString::new(key);
    let mut request = TokenRequest::from_params(&params)?;
    request.dpop = dpop_proof(&app, &req, "/authentication/token").await?;
    request.certificate = super::client_certificate(&req, &app)?.map(|c| c.thumbprint());
    let ip = client_ip(&req, &app);
    let metrics = app.metrics_handle();
    let issued = app.issue_for_api_key(&key, Some(ip), &request, now()).await;
    metrics.token(
        "api_key",
        issued.as_ref().map(|_| ()).map_err(|e| e.code.as_str()),
    );
    let issued = issued?;
    Ok(respond(&app, &issued))
}
