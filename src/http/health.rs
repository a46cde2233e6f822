//! `GET /healthz` (the process answers), `GET /readyz` (database and keys
//! usable) and `GET /metrics` (Prometheus text format).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::service::error::{ErrorCode, ServiceError};
use crate::service::{now, App};

/// Liveness.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: the store answers, takes writes, and a key can sign. A store
/// whose last write was refused (a full disk, a read-only file, a standby)
/// is not writable until a write or the background probe goes through;
/// tokens are still issued and introspected from the cache meanwhile.
pub async fn readyz(app: web::Data<App>) -> Result<HttpResponse, ServiceError> {
    let r = app.readiness(now()).await;
    let grace = match r.outage_grace_left {
        Some(left) => {
            format!("; outage grace: issuing and introspecting from the cache for {left} s more")
        }
        None => String::new(),
    };
    if r.ready() {
        Ok(HttpResponse::Ok().json(
            json!({"status": "ready", "database": "ok", "database_writable": true, "signing_key": "ok"}),
        ))
    } else {
        let mut e = ServiceError::new(
            ErrorCode::TemporarilyUnavailable,
            format!(
                "not ready: database {}, signing key {}{grace}",
                match (r.database, r.writable) {
                    (false, _) => "unavailable",
                    (true, false) => "not writable",
                    (true, true) => "ok",
                },
                if r.signing_key { "ok" } else { "missing" }
            ),
        );
        e.retry_after = Some(5);
        Err(e)
    }
}

/// Prometheus metrics on the public port, unless they have a private
/// listener of their own (`TOLLGATE_METRICS_BIND`): then 404 here.
pub async fn metrics(app: web::Data<App>) -> HttpResponse {
    if app.config().metrics_bind.is_some() {
        return super::not_found().await;
    }
    metrics_export(app).await
}

/// Prometheus metrics in the text exposition format 0.0.4.
pub async fn metrics_export(app: web::Data<App>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body({
            let m = app.metrics();
            m.outage_grace
                .set(app.store_outage_grace_left().unwrap_or(0));
            m.cache_bytes
                .set(i64::try_from(app.cache_bytes()).unwrap_or(i64::MAX));
            m.render()
        })
}
