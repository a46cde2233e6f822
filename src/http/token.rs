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

fn respond(t: &IssuedToken) -> HttpResponse {
    no_store_json(TokenResponse {
        access_token: t.access_token.expose(),
        token_type: "Bearer",
        expires_in: t.expires_in,
        scope: &t.scope,
    })
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
            let creds = credentials::extract(authorization(&req), &params)?;
            let request = TokenRequest::from_params(&params)?;
            app.issue_for_client(creds.as_ref(), Some(ip), &request, now())
                .await
        }
        GrantType::JwtBearer => {
            let (creds, named) = credentials::extract_optional(authorization(&req), &params)?;
            let assertion = params
                .single("assertion")?
                .ok_or_else(|| ServiceError::invalid_request("assertion is required"))?;
            let assertion = SecretString::new(assertion.to_string());
            let request = TokenRequest::from_params(&params)?;
            let now = now();
            let client = match creds {
                Some(c) => Some(app.authenticate_client(Some(&c), Some(ip), now).await?.id),
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
    Ok(respond(&issued))
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
    let request = TokenRequest::from_params(&params)?;
    let ip = client_ip(&req, &app);
    let metrics = app.metrics_handle();
    let issued = app.issue_for_api_key(&key, Some(ip), &request, now()).await;
    metrics.token(
        "api_key",
        issued.as_ref().map(|_| ()).map_err(|e| e.code.as_str()),
    );
    let issued = issued?;
    Ok(respond(&issued))
}
