//! The admin API under `/admin`, for bearer tokens holding `tollgate:admin`.
//! Each handler authorizes, then calls the same operation as the command line.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::{no_store_json, read_body};
use crate::service::admin::{api_key_view, ClientPatch, NewClient};
use crate::service::error::ServiceError;
use crate::service::federation::{NewIssuer, NewRule};
use crate::service::introspect::ADMIN_SCOPE;
use crate::service::{now, App};
use crate::token::Alg;

/// Registers the admin routes (under the `/admin` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/clients")
            .route(super::get_or_head().to(list_clients))
            .route(web::post().to(create_client))
            .default_service(super::not_allowed("GET, HEAD, POST")),
    )
    .service(
        web::resource("/clients/{id}")
            .route(super::get_or_head().to(show_client))
            .route(web::patch().to(update_client))
            .route(web::delete().to(delete_client))
            .default_service(super::not_allowed("GET, HEAD, PATCH, DELETE")),
    )
    .service(super::post("/clients/{id}/disable", disable_client))
    .service(super::post("/clients/{id}/enable", enable_client))
    .service(super::post("/clients/{id}/rotate-secret", rotate_secret))
    .service(super::post("/clients/{id}/revoke-tokens", revoke_tokens))
    .service(
        web::resource("/clients/{id}/api-keys")
            .route(super::get_or_head().to(list_api_keys))
            .route(web::post().to(create_api_key))
            .default_service(super::not_allowed("GET, HEAD, POST")),
    )
    .service(
        web::resource("/api-keys/{id}")
            .route(web::delete().to(revoke_api_key))
            .default_service(super::not_allowed("DELETE")),
    )
    .service(super::post("/api-keys/{id}/revoke", revoke_api_key))
    .service(super::get("/ssf/streams", list_ssf_streams))
    .service(super::get("/signing-keys", list_signing_keys))
    .service(super::post("/signing-keys/rotate", rotate_signing_key))
    .service(super::post(
        "/signing-keys/{kid}/retire",
        retire_signing_key,
    ))
    .service(super::get("/audit", list_audit))
    .service(
        web::resource("/federation/issuers")
            .route(super::get_or_head().to(list_federation_issuers))
            .route(web::post().to(add_federation_issuer))
            .default_service(super::not_allowed("GET, HEAD, POST")),
    )
    .service(
        web::resource("/federation/issuers/{id}")
            .route(web::delete().to(remove_federation_issuer))
            .default_service(super::not_allowed("DELETE")),
    )
    .service(
        web::resource("/federation/rules")
            .route(super::get_or_head().to(list_federation_rules))
            .route(web::post().to(add_federation_rule))
            .default_service(super::not_allowed("GET, HEAD, POST")),
    )
    .service(
        web::resource("/federation/rules/{id}")
            .route(web::delete().to(remove_federation_rule))
            .default_service(super::not_allowed("DELETE")),
    )
    .service(super::post("/federation/test", test_federation))
    .service(
        web::resource("/cimd/hosts")
            .route(super::get_or_head().to(list_cimd_hosts))
            .route(web::post().to(set_cimd_host))
            .default_service(super::not_allowed("GET, HEAD, POST")),
    )
    .service(
        web::resource("/cimd/hosts/{host}")
            .route(web::delete().to(remove_cimd_host))
            .default_service(super::not_allowed("DELETE")),
    )
    .service(
        web::resource("/cimd/blocks")
            .route(super::get_or_head().to(list_cimd_blocks))
            .route(web::post().to(block_cimd))
            .default_service(super::not_allowed("GET, HEAD, POST")),
    )
    .service(super::post("/cimd/unblock", unblock_cimd))
    .service(super::post("/console/login-links", create_login_link))
    .service(super::get("/console/sessions", list_console_sessions))
    .service(super::post(
        "/console/sessions/{id}/revoke",
        revoke_console_session,
    ));
}

/// Authorizes the admin caller and returns its client id, the audit actor.
/// Handlers call it before they read a body, so that an unauthenticated
/// caller's body is never parsed.
async fn admin_caller(app: &App, req: &HttpRequest) -> Result<String, ServiceError> {
    let caller = app
        .introspector()
        .authorize_bearer(&super::presented(req, app)?, ADMIN_SCOPE, now())
        .await?;
    Ok(caller.client_id)
}

/// A JSON body of type `T`; an empty body is `{}`. Errors say where the body
/// is wrong, never what it holds.
pub(super) async fn json_body<T: DeserializeOwned>(
    app: &App,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ServiceError> {
    let body = read_body(app, payload).await?;
    let body: &[u8] = if body.is_empty() { b"{}" } else { &body };
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if body != b"{}"
        && !ct.is_some_and(|c| {
            c.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
    {
        return Err(ServiceError::new(
            crate::service::error::ErrorCode::UnsupportedMediaType,
            "Content-Type must be application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| ServiceError::invalid_request(json_error(&e)))
}

/// A description of a JSON error that names its kind and position only: a
/// serde message would quote the offending value or member name.
pub fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => "is not valid JSON",
        Category::Data => {
            "has a member that is unknown or of the wrong type (see docs/admin-api.md)"
        }
    };
    format!(
        "the JSON body {what} at line {}, column {}",
        e.line(),
        e.column()
    )
}

fn created(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// Pagination of lists.
#[derive(Deserialize)]
struct Page {
    after: Option<String>,
    limit: Option<u32>,
}

async fn list_clients(
    app: web::Data<App>,
    req: HttpRequest,
    q: web::Query<Page>,
) -> Result<HttpResponse, ServiceError> {
    let Page { after, limit } = q.into_inner();
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    admin_caller(&app, &req).await?;
    let clients = app.admin().list_clients(after.as_deref(), limit).await?;
    let next = super::next_cursor(&clients, limit, |c| c.id.clone());
    Ok(no_store_json(
        json!({"data": clients, "meta": {"limit": limit, "count": clients.len(), "next_cursor": next}}),
    ))
}

async fn create_client(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    let input: NewClient = json_body(&app, &req, payload).await?;
    let now = now();
    let (client, secret) = app.admin().create_client(&actor, input, now).await?;
    let mut body = json!(client);
    if let Some(secret) = &secret {
        body["client_secret"] = json!(secret.expose());
    }
    Ok(created(body))
}

async fn show_client(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = id.into_inner();
    admin_caller(&app, &req).await?;
    let c = app.admin().get_client(&id).await?;
    Ok(no_store_json(c))
}

async fn update_client(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    let patch: ClientPatch = json_body(&app, &req, payload).await?;
    let id = id.into_inner();
    let now = now();
    let c = app.admin().update_client(&actor, &id, patch, now).await?;
    Ok(no_store_json(c))
}

async fn delete_client(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = id.into_inner();
    let actor = admin_caller(&app, &req).await?;
    let now = now();
    app.admin().delete_client(&actor, &id, now).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn disable_client(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = id.into_inner();
    let actor = admin_caller(&app, &req).await?;
    let now = now();
    let c = app
        .admin()
        .set_client_disabled(&actor, &id, true, now)
        .await?;
    Ok(no_store_json(c))
}

async fn enable_client(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = id.into_inner();
    let actor = admin_caller(&app, &req).await?;
    let now = now();
    let c = app
        .admin()
        .set_client_disabled(&actor, &id, false, now)
        .await?;
    Ok(no_store_json(c))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateSecret {
    grace_seconds: Option<i64>,
}

async fn rotate_secret(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    let input: RotateSecret = json_body(&app, &req, payload).await?;
    let id = id.into_inner();
    let now = now();
    let (secret, old_until) = app
        .admin()
        .rotate_client_secret(&actor, &id, input.grace_seconds, now)
        .await?;
    Ok(no_store_json(json!({
        "client_id": id,
        "client_secret": secret.expose(),
        "previous_secrets_expire_at": old_until,
    })))
}

async fn revoke_tokens(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = id.into_inner();
    let actor = admin_caller(&app, &req).await?;
    let now = now();
    let c = app.admin().revoke_client_tokens(&actor, &id, now).await?;
    // Answered once the revocation's second has passed (at most 1 s), so a
    // token issued after this answer is active.
    actix_web::rt::time::sleep(crate::service::admin::revocation_settles_in(
        c.tokens_revoked_before,
    ))
    .await;
    Ok(no_store_json(c))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewApiKey {
    name: Option<String>,
    expires_in: Option<i64>,
}

async fn create_api_key(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    let input: NewApiKey = json_body(&app, &req, payload).await?;
    let id = id.into_inner();
    let now = now();
    let (record, key) = app
        .admin()
        .create_api_key(&actor, &id, input.name, input.expires_in, now)
        .await?;
    let mut body = api_key_view(&record, now);
    body["secret_key"] = json!(key.expose());
    Ok(created(body))
}

async fn list_api_keys(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = id.into_inner();
    admin_caller(&app, &req).await?;
    let now = now();
    let keys = app.admin().list_api_keys(&id).await?;
    let data: Vec<_> = keys.iter().map(|k| api_key_view(k, now)).collect();
    Ok(no_store_json(
        json!({"data": data, "meta": {"count": data.len()}}),
    ))
}

async fn revoke_api_key(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let id = id.into_inner();
    let actor = admin_caller(&app, &req).await?;
    let now = now();
    let k = app.admin().revoke_api_key(&actor, &id, now).await?;
    Ok(no_store_json(api_key_view(&k, now)))
}

/// Every Shared Signals stream with its status, backlog and last error.
async fn list_ssf_streams(
    app: web::Data<App>,
    req: HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    admin_caller(&app, &req).await?;
    let streams = app.signals().admin_view().await?;
    Ok(no_store_json(
        json!({"meta": {"count": streams.len()}, "data": streams}),
    ))
}

async fn list_signing_keys(
    app: web::Data<App>,
    req: HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    admin_caller(&app, &req).await?;
    let keys = app.signing_keys().list_signing_keys().await?;
    Ok(no_store_json(
        json!({"data": keys, "meta": {"count": keys.len()}}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateKey {
    alg: Option<String>,
    prepublish_seconds: Option<i64>,
}

async fn rotate_signing_key(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    let input: RotateKey = json_body(&app, &req, payload).await?;
    let alg = match input.alg.as_deref() {
        None => None,
        Some(a) => Some(Alg::parse(a).ok_or_else(|| {
            ServiceError::invalid_request("alg must be ES256, EdDSA, RS256 or PS256")
        })?),
    };
    let now = now();
    let rec = app
        .signing_keys()
        .rotate_signing_key(&actor, alg, input.prepublish_seconds, now)
        .await?;
    Ok(created(json!(rec)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RetireKey {
    #[serde(default)]
    compromised: bool,
}

async fn retire_signing_key(
    app: web::Data<App>,
    req: HttpRequest,
    kid: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    let input: RetireKey = json_body(&app, &req, payload).await?;
    let kid = kid.into_inner();
    let now = now();
    let rec = app
        .signing_keys()
        .retire_signing_key(&actor, &kid, input.compromised, now)
        .await?;
    Ok(no_store_json(rec))
}

#[derive(Deserialize)]
struct AuditPage {
    after: Option<i64>,
    limit: Option<u32>,
}

async fn list_audit(
    app: web::Data<App>,
    req: HttpRequest,
    q: web::Query<AuditPage>,
) -> Result<HttpResponse, ServiceError> {
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    admin_caller(&app, &req).await?;
    let entries = app.admin().list_audit(after, limit).await?;
    let next = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(no_store_json(
        json!({"data": entries, "meta": {"limit": limit, "count": entries.len(), "next_cursor": next}}),
    ))
}

async fn list_federation_issuers(
    app: web::Data<App>,
    req: HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    admin_caller(&app, &req).await?;
    let f = app.admin().federation().await?;
    Ok(no_store_json(
        json!({"data": f.issuers, "meta": {"count": f.issuers.len()}}),
    ))
}

async fn add_federation_issuer(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    let input: NewIssuer = json_body(&app, &req, payload).await?;
    let issuer = app
        .admin()
        .add_federation_issuer(&actor, input, now())
        .await?;
    Ok(created(json!(issuer)))
}

async fn remove_federation_issuer(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    app.admin()
        .remove_federation_issuer(&actor, &id.into_inner(), now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_federation_rules(
    app: web::Data<App>,
    req: HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    admin_caller(&app, &req).await?;
    let f = app.admin().federation().await?;
    Ok(no_store_json(
        json!({"data": f.rules, "meta": {"count": f.rules.len()}}),
    ))
}

async fn add_federation_rule(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    let input: NewRule = json_body(&app, &req, payload).await?;
    let rule = app
        .admin()
        .add_federation_rule(&actor, input, now())
        .await?;
    Ok(created(json!(rule)))
}

async fn remove_federation_rule(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    app.admin()
        .remove_federation_rule(&actor, &id.into_inner(), now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FederationTest {
    assertion: String,
}

async fn test_federation(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    admin_caller(&app, &req).await?;
    let input: FederationTest = json_body(&app, &req, payload).await?;
    let report = app.admin().test_federation(&input.assertion, now()).await?;
    Ok(no_store_json(report))
}

/// The body of `POST /admin/console/login-links`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLoginLink {
    base_url: Option<String>,
}

/// A single-use console login link, valid for 10 minutes; shown once.
async fn create_login_link(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    let input: NewLoginLink = json_body(&app, &req, payload).await?;
    let link = app
        .console()
        .create_login_link(&actor, input.base_url.as_deref(), now())
        .await?;
    Ok(created(link.view()))
}

async fn list_console_sessions(
    app: web::Data<App>,
    req: HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    admin_caller(&app, &req).await?;
    let now = now();
    let sessions = app.console().list_console_sessions().await?;
    let data: Vec<_> = sessions
        .iter()
        .map(|s| crate::service::console::session_view(s, now))
        .collect();
    Ok(no_store_json(json!({ "data": data })))
}

async fn revoke_console_session(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    app.console()
        .revoke_console_session(&actor, &id, now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `{"url"}`: a URL client to block or unblock.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CimdUrl {
    url: String,
}

async fn list_cimd_hosts(
    app: web::Data<App>,
    req: HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    admin_caller(&app, &req).await?;
    let c = app.admin().cimd().await?;
    Ok(no_store_json(
        json!({"data": c.hosts, "meta": {"count": c.hosts.len()}}),
    ))
}

async fn set_cimd_host(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    let input: crate::service::cimd::NewCimdHost = json_body(&app, &req, payload).await?;
    let host = app.admin().set_cimd_host(&actor, input, now()).await?;
    Ok(created(json!(host)))
}

async fn remove_cimd_host(
    app: web::Data<App>,
    req: HttpRequest,
    host: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    app.admin()
        .remove_cimd_host(&actor, &host.into_inner(), now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_cimd_blocks(
    app: web::Data<App>,
    req: HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    admin_caller(&app, &req).await?;
    let c = app.admin().cimd().await?;
    Ok(no_store_json(
        json!({"data": c.blocks, "meta": {"count": c.blocks.len()}}),
    ))
}

async fn block_cimd(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    let input: CimdUrl = json_body(&app, &req, payload).await?;
    let changed = app
        .admin()
        .block_cimd(&actor, &input.url, true, now())
        .await?;
    Ok(no_store_json(
        json!({"url": input.url, "blocked": true, "changed": changed}),
    ))
}

async fn unblock_cimd(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ServiceError> {
    let actor = admin_caller(&app, &req).await?;
    let input: CimdUrl = json_body(&app, &req, payload).await?;
    let changed = app
        .admin()
        .block_cimd(&actor, &input.url, false, now())
        .await?;
    Ok(no_store_json(
        json!({"url": input.url, "blocked": false, "changed": changed}),
    ))
}
