//! HTTP routing: thin handlers that extract, call the application core, and
//! serialize. `configure` is shared by the server and the tests.

pub mod admin;
pub mod console;
pub mod error;
pub mod health;
pub mod introspect;
pub mod middleware;
pub mod server;
pub mod ssf;
pub mod tls;
pub mod token;
pub mod well_known;

use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Responder, ResponseError};

use crate::oauth::params::{body_kind, Params};
use crate::service::error::{ErrorCode, ServiceError};
use crate::service::App;

/// The names of the non-standard headers read on the hot paths, built once:
/// a name given as `&str` is parsed and checked again at every look-up.
mod names {
    use actix_web::http::header::HeaderName;

    /// A trusted proxy's client certificate (RFC 9440).
    pub(super) static CLIENT_CERT: HeaderName = HeaderName::from_static("client-cert");
    /// A DPoP proof (RFC 9449 §4.1).
    pub(super) static DPOP: HeaderName = HeaderName::from_static("dpop");
    /// The addresses a request was forwarded for.
    pub(super) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    /// The request's id, given by a trusted proxy or answered.
    pub(super) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    /// An API key presented as a header.
    pub(super) static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
}

/// A resource answering `POST` with `handler` and 405 otherwise.
fn post<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(handler))
        .default_service(not_allowed("POST"))
}

/// A resource answering `GET` and `HEAD` with `handler` and 405 otherwise.
fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(get_or_head().to(handler))
        .default_service(not_allowed("GET, HEAD"))
}

/// A route for `GET` and `HEAD` (RFC 9110 §9.3.2: a server that answers GET
/// answers HEAD alike; actix sends the headers without the body).
pub fn get_or_head() -> actix_web::Route {
    web::route().guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
}

/// The 405 handler of a resource that allows the methods in `allow`.
pub fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move { method_not_allowed(allow) })
}

/// Registers every route on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(post("/oauth/token", token::token))
        .service(post("/authentication/token", token::api_key_token))
        .service(post("/oauth/introspect", introspect::introspect))
        .service(post("/oauth/revoke", introspect::revoke))
        .service(
            web::resource("/oauth/authorize")
                .route(
                    web::route()
                        .guard(
                            actix_web::guard::Any(actix_web::guard::Get())
                                .or(actix_web::guard::Head())
                                .or(actix_web::guard::Post()),
                        )
                        .to(well_known::authorize),
                )
                .default_service(not_allowed("GET, HEAD, POST")),
        )
        .service(get("/.well-known/jwks.json", well_known::jwks))
        .service(get(
            "/.well-known/oauth-authorization-server",
            well_known::metadata,
        ))
        .service(get(
            "/.well-known/oauth-authorization-server/{tail:.*}",
            well_known::metadata_at_path,
        ))
        .service(get("/healthz", health::healthz))
        .service(get("/readyz", health::readyz))
        .service(get("/metrics", health::metrics))
        .service(get("/openapi.json", well_known::openapi))
        .configure(ssf::configure)
        .service(web::scope("/admin").configure(admin::configure))
        .configure(console::configure)
        .default_service(web::to(not_found));
}

/// 404 for every unknown path, as JSON.
pub async fn not_found() -> HttpResponse {
    ServiceError::not_found("no such endpoint").error_response()
}

/// 405 for a known path with the wrong method, as JSON, with the `Allow`
/// header that RFC 9110 §15.5.6 requires.
pub fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut resp = ServiceError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this endpoint",
    )
    .error_response();
    resp.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    resp
}

/// Reads the whole body, refusing more than the configured limit (413) or a
/// body that does not arrive within the request timeout (408).
pub async fn read_body(app: &App, payload: web::Payload) -> Result<Bytes, ServiceError> {
    let limit = app.config().max_body_bytes;
    let timeout = Duration::from_secs(app.config().request_timeout);
    match tokio::time::timeout(timeout, payload.to_bytes_limited(limit)).await {
        Err(_) => Err(ServiceError::new(
            ErrorCode::RequestTimeout,
            "request body was not sent in time",
        )),
        Ok(Err(_)) => Err(ServiceError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than {limit} bytes"),
        )),
        Ok(Ok(Err(_))) => Err(ServiceError::invalid_request(
            "request body could not be read",
        )),
        Ok(Ok(Ok(bytes))) => Ok(bytes),
    }
}

/// Reads and decodes a form or JSON body into parameters. Parameters in the
/// query string are refused (RFC 6749 §2.3.1: credentials only in the body).
pub async fn read_params(
    app: &App,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Params, ServiceError> {
    if !req.query_string().is_empty() {
        return Err(ServiceError::invalid_request(
            "parameters must be sent in the request body, not the URL",
        ));
    }
    let body = read_body(app, payload).await?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let kind = body_kind(content_type, body.len())?;
    Ok(Params::decode(kind, &body)?)
}

/// Reads the body and the client credentials it carries, by HTTP Basic or in
/// the body (RFC 6749 §2.3.1); both at once is `invalid_request`.
pub async fn read_client_request(
    app: &App,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Params, Option<crate::oauth::ClientCredentials>), ServiceError> {
    let params = read_params(app, req, payload).await?;
    let creds = crate::oauth::credentials::extract_with(
        authorization(req),
        &params,
        client_certificate(req, app)?,
    )?;
    Ok((params, creds))
}

/// The DER chain (end entity first) of the request's client certificate
/// (RFC 8705): from this server's TLS handshake, or from an RFC 9440
/// `Client-Cert` header set by a trusted proxy that terminated TLS. The
/// header from anyone else is ignored and logged. More than one
/// `Client-Cert` header is refused (`400`): a proxy that appends its header
/// instead of replacing the client's would otherwise let the client choose
/// which certificate counts.
fn certificate_chain(
    req: &HttpRequest,
    app: &App,
) -> Result<Option<std::sync::Arc<Vec<Vec<u8>>>>, ServiceError> {
    if let Some(peer) = req.conn_data::<tls::PeerCertificates>() {
        return Ok(Some(peer.0.clone()));
    }
    let mut headers = req.headers().get_all(&names::CLIENT_CERT);
    let Some(header) = headers.next() else {
        return Ok(None);
    };
    if headers.next().is_some() {
        return Err(ServiceError::invalid_request(
            "more than one Client-Cert header: a request carries one certificate",
        ));
    }
    if !from_trusted_proxy(req, app) {
        log::warn!(
            "Client-Cert header from {} ignored: not a trusted proxy",
            req.peer_addr()
                .map_or_else(|| "an unknown peer".to_string(), |a| a.ip().to_string())
        );
        return Ok(None);
    }
    Ok(header
        .to_str()
        .ok()
        .and_then(crate::oauth::mtls::from_header)
        .map(|der| std::sync::Arc::new(vec![der])))
}

/// The client certificate of the request, parsed (see [`certificate_chain`]
/// for where it comes from); `None` when there is none or it cannot be read.
pub fn client_certificate(
    req: &HttpRequest,
    app: &App,
) -> Result<Option<std::sync::Arc<crate::oauth::mtls::Certificate>>, ServiceError> {
    Ok(certificate_chain(req, app)?
        .and_then(|chain| crate::oauth::mtls::Certificate::parse(&chain).ok())
        .map(std::sync::Arc::new))
}

/// What a request presented to a protected endpoint: its `Authorization`
/// and `DPoP` headers, method and path, and the thumbprint of its client
/// certificate, read the same way as at the token endpoint (native TLS or a
/// trusted proxy's `Client-Cert`), so a certificate-bound token works on
/// every route it was obtained through.
pub fn presented<'a>(
    req: &'a HttpRequest,
    app: &App,
) -> Result<crate::service::introspect::Presented<'a>, ServiceError> {
    Ok(crate::service::introspect::Presented {
        authorization: authorization(req),
        dpop: dpop_headers(req),
        method: req.method().as_str(),
        path: req.path(),
        certificate: certificate_chain(req, app)?
            .and_then(|chain| chain.first().map(|der| crate::oauth::mtls::thumbprint(der))),
    })
}

/// Every `DPoP` header of the request (RFC 9449 §4.3 wants exactly one).
pub fn dpop_headers(req: &HttpRequest) -> Vec<&[u8]> {
    req.headers()
        .get_all(&names::DPOP)
        .map(|v| v.as_bytes())
        .collect()
}

/// The raw Authorization header.
pub fn authorization(req: &HttpRequest) -> Option<&[u8]> {
    req.headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
}

/// A JSON response that must not be cached (RFC 6749 §5.1).
pub fn no_store_json(body: impl serde::Serialize) -> HttpResponse {
    // Room for a token response (an ES256 token is 500–900 bytes) from the
    // start: serde_json's own buffer starts at 128 bytes and is copied as it
    // doubles.
    let mut json = Vec::with_capacity(JSON_ANSWER_CAPACITY);
    if let Err(e) = serde_json::to_writer(&mut json, &body) {
        // Only a map with non-string keys fails, which no answer has.
        log::error!("an answer could not be written as JSON: {e}");
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        ))
        .insert_header((header::PRAGMA, header::HeaderValue::from_static("no-cache")))
        .insert_header(header::ContentType::json())
        .body(json)
}

/// The buffer a JSON answer is written into at first.
const JSON_ANSWER_CAPACITY: usize = 1024;

/// The cursor of the next page: the key of a full page's last item; `None`
/// when the page is not full, so there is no next one.
pub fn next_cursor<T, K>(page: &[T], limit: u32, key: impl FnOnce(&T) -> K) -> Option<K> {
    if page.len() == limit as usize {
        page.last().map(key)
    } else {
        None
    }
}

/// Whether the peer is one of `TOLLGATE_TRUSTED_PROXIES`, whose forwarding
/// headers (`X-Forwarded-For`, `Client-Cert`, `X-Request-Id`) are believed.
pub fn from_trusted_proxy(req: &HttpRequest, app: &App) -> bool {
    req.peer_addr()
        .is_some_and(|a| app.config().trusted_proxies.contains(&a.ip()))
}

/// The client's IP: the peer address, or, when the peer is a trusted proxy,
/// the right-most `X-Forwarded-For` address that is not a trusted proxy.
pub fn client_ip(req: &HttpRequest, app: &App) -> std::net::IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    if !from_trusted_proxy(req, app) {
        return peer;
    }
    let trusted = &app.config().trusted_proxies;
    let hops: Vec<&str> = req
        .headers()
        .get_all(&names::X_FORWARDED_FOR)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<std::net::IpAddr>() {
            Ok(addr) if trusted.contains(&addr) => continue,
            Ok(addr) => return addr,
            Err(_) => break,
        }
    }
    peer
}
