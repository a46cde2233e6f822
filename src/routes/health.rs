//! `GET /healthz` (the process answers) and `GET /readyz` (database and keys usable).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::app::{now, App};
use crate::error::{ApiError, ErrorCode};

/// Liveness.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: the store answers and a key can sign.
pub async fn readyz(app: web::Data<App>) -> Result<HttpResponse, ApiError> {
    let store = app.store.clone();
    let db_ok = web::block(move || store.ping())
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
    let keys_ok = app.keys.get().signer(now()).is_some();
    if db_ok && keys_ok {
        Ok(HttpResponse::Ok()
            .json(json!({"status": "ready", "database": "ok", "signing_key": "ok"})))
    } else {
        Err(ApiError::new(
            ErrorCode::TemporarilyUnavailable,
            format!(
                "not ready: database {}, signing key {}",
                if db_ok { "ok" } else { "unavailable" },
                if keys_ok { "ok" } else { "missing" }
            ),
        ))
    }
}
