//! Middleware in front of every route: the request's id, logging context,
//! access line and latency; per-IP request limits by endpoint class; and
//! CORS (any origin for the public JWKS and metadata, configured origins
//! only for everything else).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};

use super::client_ip;
use crate::service::error::ServiceError;
use crate::service::{now, App};

/// A new request id: this process's random prefix and a counter, unique
/// across a fleet without a random draw per request.
fn fresh_request_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| crate::secret::random_b64(9));
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // `{prefix}-{n:x}`, written without the formatting machinery.
    let mut id = String::with_capacity(prefix.len() + 17);
    id.push_str(prefix);
    id.push('-');
    push_hex(&mut id, n);
    id
}

/// Appends `n` in lower-case hexadecimal, as `{n:x}` writes it.
fn push_hex(out: &mut String, n: u64) {
    let digits = (u64::BITS - n.leading_zeros()).max(1).div_ceil(4);
    for i in (0..digits).rev() {
        out.push(char::from(
            b"0123456789abcdef"[((n >> (i * 4)) & 0xf) as usize],
        ));
    }
}

/// A request id on every response (`X-Request-Id`), the logging context of
/// the request, its access line (`tollgate::http::access` at info: the
/// client IP, method, path without query, status and duration) and its
/// latency under its route pattern (`/admin/clients/{id}`, not the concrete
/// path, so the label set stays bounded). The id a trusted proxy sent (1 to
/// 128 of `[A-Za-z0-9._:-]`) is kept; anyone else's is replaced by a fresh
/// one. One layer for all four, so that a request pays for one middleware
/// frame and one look-up of the application's state, not one per concern.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let app = req.app_data::<web::Data<App>>().cloned();
    let trusted = app
        .as_ref()
        .is_some_and(|app| super::from_trusted_proxy(req.request(), app));
    let given = req
        .headers()
        .get(&super::names::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        });
    let id = match (trusted, given) {
        (true, Some(g)) => g.to_string(),
        _ => fresh_request_id(),
    };
    let header = HeaderValue::from_str(&id).ok();
    let ctx = crate::logging::RequestContext::new(id);
    let span = crate::telemetry::RequestSpan::start(req.method().as_str());
    let method = span.as_ref().map(|_| req.method().to_string());
    let access = log::log_enabled!(target: "tollgate::http::access", log::Level::Info).then(|| {
        let ip = app
            .as_ref()
            .map(|app| client_ip(req.request(), app).to_string())
            .unwrap_or_default();
        // Path only: a query string could carry a secret sent by mistake.
        (ip, req.method().to_string(), loggable_path(req.path()))
    });
    let started = std::time::Instant::now();
    let res = crate::logging::scope(ctx.clone(), async {
        let res = match &span {
            Some(s) => s.run(next.call(req)).await,
            None => next.call(req).await,
        };
        if let (Some((ip, method, path)), Ok(r)) = (&access, &res) {
            log::info!(
                target: "tollgate::http::access",
                "{ip} \"{method} {path}\" {} {:.3}ms",
                r.status().as_u16(),
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
        res
    })
    .await;
    if let (Some(app), Ok(r)) = (&app, &res) {
        observe_latency(app, r, started.elapsed().as_secs_f64());
    }
    if let Some(span) = span {
        let (route, status) = match &res {
            Ok(r) => (r.request().match_pattern(), r.status().as_u16()),
            Err(e) => (None, e.as_response_error().status_code().as_u16()),
        };
        span.end(
            method.as_deref().unwrap_or_default(),
            route.as_deref(),
            status,
            ctx.client(),
        );
    }
    let mut res = res?;
    if let Some(v) = header {
        res.headers_mut()
            .insert(super::names::X_REQUEST_ID.clone(), v);
    }
    Ok(res)
}

/// Records a request's latency under its route pattern. A hot path is its
/// own route pattern, so it is matched by its path: no pattern is built and
/// nothing is allocated.
fn observe_latency<B>(app: &App, res: &ServiceResponse<B>, seconds: f64) {
    let metrics = app.metrics();
    match metrics.hot_latency(res.request().path()) {
        Some(h) => h.observe(seconds),
        None => {
            let endpoint = res
                .request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_string());
            metrics.observe_latency(&endpoint, seconds);
        }
    }
}

/// A request path as the text access line writes it between quotes: `"`,
/// `\\`, spaces and anything not printable ASCII percent-encoded, so a path
/// cannot close the quotes and forge the fields after them (the JSON log
/// escapes on its own).
pub fn loggable_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_graphic() && b != b'"' && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Paths that are public, read-only and cacheable: any origin may read them.
fn is_public(path: &str) -> bool {
    path.starts_with("/.well-known/")
}

/// Routes that answer 2xx only to an authenticated caller: a success there
/// proves the caller authenticated (a client secret, an API key or a bearer
/// token). Such callers are governed by their per-client quotas instead.
fn authenticates(path: &str) -> bool {
    matches!(
        path,
        "/oauth/token" | "/authentication/token" | "/oauth/introspect" | "/oauth/revoke"
    ) || path.starts_with("/admin/")
}

/// Per-address limits on every route of the public port, `OPTIONS` and
/// `/metrics` included: reads (GET, HEAD) and everything else counted
/// separately per minute. A request is counted unless it was an
/// authenticated success (2xx on an authenticating route): a busy resource
/// server introspecting, or a NAT'd fleet fetching tokens, is never refused
/// for its volume; per-client quotas govern authenticated callers. Failed and
/// unauthenticated requests fill the window; once full, the address is
/// refused (429) until the window ends.
pub async fn ip_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(app) = req.app_data::<web::Data<App>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    let limit = if read {
        app.config().ip_limit_get
    } else {
        app.config().ip_limit_post
    };
    if limit == 0 {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let ip = client_ip(req.request(), &app);
    let now = now();
    if let Some(d) = app.ip_refusal(ip, read, limit, now) {
        let resp = ServiceError::too_many_requests("too many requests from this address", d)
            .error_response();
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let counts_as_authenticated = authenticates(req.path());
    let res = next.call(req).await?;
    if !(counts_as_authenticated && res.status().is_success()) {
        app.count_ip(ip, read, now);
    }
    Ok(res.map_into_left_body())
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
            app.config()
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

#[cfg(test)]
mod path_tests {
    #[test]
    fn request_ids_are_the_prefix_and_a_hex_counter() {
        let first = super::fresh_request_id();
        let (prefix, n) = first.rsplit_once('-').unwrap();
        let n = u64::from_str_radix(n, 16).unwrap();
        assert!(!prefix.is_empty());
        let next = super::fresh_request_id();
        // Other tests may draw ids meanwhile: later, with the same prefix.
        let (p2, m) = next.rsplit_once('-').unwrap();
        assert_eq!(p2, prefix);
        assert!(u64::from_str_radix(m, 16).unwrap() > n);
        for n in [
            0,
            1,
            9,
            10,
            15,
            16,
            255,
            256,
            0xdead_beef,
            1 << 63,
            u64::MAX,
        ] {
            let mut out = String::from("x");
            super::push_hex(&mut out, n);
            assert_eq!(out, format!("x{n:x}"));
        }
    }

    #[test]
    fn a_path_cannot_forge_the_access_line() {
        assert_eq!(super::loggable_path("/oauth/token"), "/oauth/token");
        assert_eq!(
            super::loggable_path("/x\" 200 0.1ms 10.6.6.6 \"GET /admin"),
            "/x%22%20200%200.1ms%2010.6.6.6%20%22GET%20/admin"
        );
        assert_eq!(super::loggable_path("/a\\b\u{7f}é"), "/a%5Cb%7F%C3%A9");
    }
}
