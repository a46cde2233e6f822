//! `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009).

use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};

use super::{client_ip, no_store_json, read_client_request};
use crate::oauth::Params;
use crate::service::error::ServiceError;
use crate::service::{now, App};

fn token_param(params: &Params) -> Result<String, ServiceError> {
    // token_type_hint is read (so a repeated one is refused) but only a hint:
    // the token's own form decides (RFC 7662 §2.1, RFC 7009 §2.1).
    params.single("token_type_hint")?;
    params
        .single("token")?
        .map(str::to_string)
        .ok_or_else(|| ServiceError::invalid_request("token is required"))
}

/// Introspection: the caller holds `tollgate:introspect`.
pub async fn introspect(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let (params, creds) = read_client_request(&app, &req, payload).await?;
    let token = token_param(&params);
    let ip = client_ip(&req, &app);
    let metrics = app.metrics_handle();
    let answer = async {
        let now = now();
        let caller = app
            .introspector()
            .authorize_introspection(
                creds.as_ref(),
                &super::presented(&req, &app)?,
                Some(ip),
                now,
            )
            .await?;
        let answer = app
            .introspector()
            .introspect(token.as_deref().map_err(Clone::clone)?, now)
            .await?;
        Ok::<_, ServiceError>((caller, answer, now))
    }
    .await;
    let result = match &answer {
        Ok((_, v, _)) if v.active() => "active",
        Ok(_) => "inactive",
        Err(_) => "refused",
    };
    metrics.introspection(result);
    let (caller, answer, now) = answer?;
    if wants_signed(&req) {
        // RFC 9701 §4, §5: the same answer, signed, for the caller.
        let jwt = app
            .introspector()
            .signed_answer(&caller.client_id, answer, now)
            .await?;
        return Ok(HttpResponse::Ok()
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .content_type(SIGNED_INTROSPECTION)
            .body(jwt));
    }
    Ok(no_store_json(answer))
}

/// Revocation: a client revokes its own token or API key; 200 regardless.
pub async fn revoke(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let (params, creds) = read_client_request(&app, &req, payload).await?;
    let token = token_param(&params);
    let ip = client_ip(&req, &app);
    let now = now();
    let client = app
        .authenticator()
        .authenticate_client(creds.as_ref(), Some(ip), now)
        .await?;
    app.introspector().revoke(&client.id, &token?, now).await?;
    Ok(no_store_json(serde_json::json!({})))
}

/// The media type of a signed introspection answer (RFC 9701 §4).
const SIGNED_INTROSPECTION: &str = "application/token-introspection+jwt";

/// Whether the caller asked for a signed answer: `Accept` names
/// `application/token-introspection+jwt` (RFC 9701 §4).
fn wants_signed(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(actix_web::http::header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(SIGNED_INTROSPECTION))
        })
}
