//! Shared Signals endpoints (OpenID SSF 1.0): the transmitter metadata at
//! `/.well-known/ssf-configuration` (§7.1), the stream configuration (§8.1.1),
//! status (§8.1.2) and verification (§8.1.4) endpoints, and RFC 8936 poll.
//! A receiver authenticates with a Tollgate token holding `tollgate:ssf`
//! and sees only its own streams.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::admin::json_body;
use super::no_store_json;
use crate::service::error::ServiceError;
use crate::service::signals::{PollRequest, StreamRequest, SSF_SCOPE};
use crate::service::{now, App};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::get("/.well-known/ssf-configuration", configuration))
        .service(
            web::resource("/ssf/streams")
                .route(super::get_or_head().to(read_streams))
                .route(web::post().to(create_stream))
                .route(web::patch().to(update_stream))
                .route(web::put().to(replace_stream))
                .route(web::delete().to(delete_stream))
                .default_service(super::not_allowed("GET, HEAD, POST, PATCH, PUT, DELETE")),
        )
        .service(
            web::resource("/ssf/status")
                .route(super::get_or_head().to(read_status))
                .route(web::post().to(set_status))
                .default_service(super::not_allowed("GET, HEAD, POST")),
        )
        .service(super::post("/ssf/verify", verify))
        .service(super::post("/ssf/poll/{id}", poll));
}

/// SSF 1.0 §7.1: the transmitter's metadata.
async fn configuration(app: web::Data<App>) -> HttpResponse {
    HttpResponse::Ok().json(app.signals().configuration())
}

/// The receiver: the client whose token holds `tollgate:ssf`.
async fn receiver(app: &App, req: &HttpRequest) -> Result<String, ServiceError> {
    let caller = app
        .introspector()
        .authorize_bearer(&super::presented(req, app)?, SSF_SCOPE, now())
        .await?;
    Ok(caller.client_id)
}

#[derive(Deserialize)]
struct StreamQuery {
    stream_id: Option<String>,
}

fn query(req: &HttpRequest) -> Result<StreamQuery, ServiceError> {
    web::Query::<StreamQuery>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .map_err(|_| ServiceError::invalid_request("the query is not valid"))
}

/// SSF 1.0 §8.1.1.2: one stream (`?stream_id=`), or all the receiver's.
async fn read_streams(app: web::Data<App>, req: HttpRequest) -> Result<HttpResponse, ServiceError> {
    let me = receiver(&app, &req).await?;
    let s = app.signals();
    match query(&req)?.stream_id {
        Some(id) => Ok(no_store_json(s.view(&s.stream_of(&me, &id).await?))),
        None => {
            let all: Vec<_> = s.streams_of(&me).await?.iter().map(|x| s.view(x)).collect();
            Ok(no_store_json(all))
        }
    }
}

/// SSF 1.0 §8.1.1.1: creates a stream (201).
async fn create_stream(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let me = receiver(&app, &req).await?;
    let body: StreamRequest = json_body(&app, &req, payload).await?;
    let s = app.signals().create_stream(&me, body, now()).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(app.signals().view(&s)))
}

async fn update(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
    replace: bool,
) -> Result<HttpResponse, ServiceError> {
    let me = receiver(&app, &req).await?;
    let body: StreamRequest = json_body(&app, &req, payload).await?;
    let s = app
        .signals()
        .update_stream(&me, body, replace, now())
        .await?;
    Ok(no_store_json(app.signals().view(&s)))
}

/// SSF 1.0 §8.1.1.3: updates the members given.
async fn update_stream(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    update(app, req, payload, false).await
}

/// SSF 1.0 §8.1.1.4: replaces the configuration.
async fn replace_stream(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    update(app, req, payload, true).await
}

/// SSF 1.0 §8.1.1.5: deletes a stream (204).
async fn delete_stream(
    app: web::Data<App>,
    req: HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    let me = receiver(&app, &req).await?;
    let id = query(&req)?
        .stream_id
        .ok_or_else(|| ServiceError::invalid_request("stream_id is required"))?;
    app.signals().delete_stream(&me, &id, now()).await?;
    Ok(HttpResponse::NoContent().finish())
}

fn status_view(s: &crate::domain::ssf::SsfStream) -> serde_json::Value {
    let mut v = json!({"stream_id": s.id, "status": s.status.as_str()});
    if let Some(r) = &s.status_reason {
        v["reason"] = json!(r);
    }
    v
}

/// SSF 1.0 §8.1.2.1: a stream's status.
async fn read_status(app: web::Data<App>, req: HttpRequest) -> Result<HttpResponse, ServiceError> {
    let me = receiver(&app, &req).await?;
    let id = query(&req)?
        .stream_id
        .ok_or_else(|| ServiceError::invalid_request("stream_id is required"))?;
    Ok(no_store_json(status_view(
        &app.signals().stream_of(&me, &id).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    stream_id: String,
    status: String,
    reason: Option<String>,
}

/// SSF 1.0 §8.1.2.2: sets a stream's status.
async fn set_status(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let me = receiver(&app, &req).await?;
    let b: StatusBody = json_body(&app, &req, payload).await?;
    let s = app
        .signals()
        .set_status(&me, &b.stream_id, &b.status, b.reason, now())
        .await?;
    Ok(no_store_json(status_view(&s)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    stream_id: String,
    state: Option<String>,
}

/// SSF 1.0 §8.1.4.2: asks for a verification event (204).
async fn verify(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let me = receiver(&app, &req).await?;
    let b: VerifyBody = json_body(&app, &req, payload).await?;
    app.signals()
        .verify(&me, &b.stream_id, b.state.as_deref(), now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// RFC 8936 §2: polls a stream's SETs, acknowledging those taken.
async fn poll(
    app: web::Data<App>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let me = receiver(&app, &req).await?;
    let b: PollRequest = json_body(&app, &req, payload).await?;
    let answer = app.signals().poll(&me, &path, b, now()).await?;
    Ok(no_store_json(answer))
}
