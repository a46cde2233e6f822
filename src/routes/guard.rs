//! Middleware in front of every route: per-IP request limits by endpoint
//! class, and CORS (any origin for the public JWKS and metadata, configured
//! origins only for everything else).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};

use super::client_ip;
use crate::app::{now, App};
use crate::error::ApiError;

/// Paths that are public, read-only and cacheable: any origin may read them.
fn is_public(path: &str) -> bool {
    path.starts_with("/.well-known/")
}

/// Per-IP limits: reads (GET, HEAD) and writes (everything else) are counted
/// separately per minute. Health checks are exempt.
pub async fn ip_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(app) = req.app_data::<web::Data<App>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let path = req.path();
    if path == "/healthz"
        || path == "/readyz"
        || path == "/metrics"
        || req.method() == Method::OPTIONS
    {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    let limit = if read {
        app.config.ip_limit_get
    } else {
        app.config.ip_limit_post
    };
    if limit > 0 {
        let ip = client_ip(req.request(), &app);
        let d = app.limits.ip.hit(&(ip, read), limit, 60, 0, now());
        if !d.allowed {
            app.metrics.refusals.with_label_values(&["ip"]).inc();
            crate::app::log_refusal(&d, &format!("per-IP limit reached by {ip}"));
            let resp = ApiError::too_many_requests("too many requests from this address", d)
                .error_response();
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// CORS: the public endpoints allow any origin with a day of preflight
/// caching; the rest allow only the configured origins, and none by default.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let Some(origin) = origin else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let public = is_public(req.path());
    let allowed = public
        || req.app_data::<web::Data<App>>().is_some_and(|app| {
            app.config
                .cors_origins
                .iter()
                .any(|o| o.as_bytes() == origin.as_bytes())
        });
    if !allowed {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let allow_origin = if public {
        HeaderValue::from_static("*")
    } else {
        origin
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut resp = HttpResponse::NoContent();
        resp.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin));
        if public {
            resp.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD"))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"));
        } else {
            resp.insert_header((
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "GET, POST, PATCH, DELETE",
            ))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type, x-api-key",
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .insert_header((header::VARY, "Origin"));
        }
        return Ok(req.into_response(resp.finish()).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    if !public {
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(res.map_into_left_body())
}

/// Records each request's latency under its route pattern (`/admin/clients/{id}`,
/// not the concrete path, so the label set stays bounded). Public routes are
/// named after their path, which avoids building the pattern per request.
pub async fn latency(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<App>>().map(|a| a.metrics.clone());
    let started = std::time::Instant::now();
    let res = next.call(req).await?;
    if let Some(m) = metrics {
        let endpoint = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_string());
        m.latency
            .with_label_values(&[&endpoint])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}
