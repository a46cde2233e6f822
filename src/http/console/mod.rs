//! The web console at `/console`: server-rendered pages for admins, signed in
//! with a single-use login link. Every action is a POST form with a CSRF
//! token, calls the same use case as the admin API and the command line, and
//! is audited as `console:<session id>`. No script: a strict CSP holds.

mod views;

use actix_web::cookie::{time::Duration as CookieAge, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::DefaultHeaders;
use actix_web::{guard, web, HttpRequest, HttpResponse, ResponseError};
use maud::Markup;
use serde::Deserialize;

use super::{get, next_cursor, post, read_body};
use crate::domain::{AuditFilter, ConsoleSession};
use crate::service::admin::NewClient;
use crate::service::console::{csrf_ok, csrf_token};
use crate::service::error::{ErrorCode, ServiceError};
use crate::service::{now, App};
use views::{client_path, Frame};

/// No script, no inline style, no framing, forms only to this origin.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Rows on a page of the clients list and of the audit log.
const PAGE: u32 = 50;

/// Registers the console's routes under `/console`; they answer only when
/// `TOLLGATE_CONSOLE` is on (otherwise the scope does not match: 404).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/console")
            .guard(guard::fn_guard(|ctx| {
                ctx.app_data::<web::Data<App>>()
                    .is_some_and(|app| app.config().console)
            }))
            .wrap(
                DefaultHeaders::new()
                    .add((header::CONTENT_SECURITY_POLICY, CSP))
                    .add((header::X_FRAME_OPTIONS, "DENY"))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    // The login link's token is in its URL: never sent on.
                    .add((header::REFERRER_POLICY, "no-referrer"))
                    .add((header::CACHE_CONTROL, "no-store")),
            )
            .service(get("", overview))
            .service(get("/", overview))
            .service(
                web::resource("/login")
                    .route(super::get_or_head().to(sign_in_page))
                    .route(web::post().to(sign_in))
                    .default_service(super::not_allowed("GET, HEAD, POST")),
            )
            .service(post("/logout", sign_out))
            .service(get("/assets/console.css", stylesheet))
            .service(
                web::resource("/clients")
                    .route(super::get_or_head().to(clients))
                    .route(web::post().to(create_client))
                    .default_service(super::not_allowed("GET, HEAD, POST")),
            )
            .service(get("/clients/new", new_client))
            .service(get("/clients/{id}", client))
            .service(client_action_route(
                "/clients/{id}/disable",
                ClientAction::Disable,
            ))
            .service(client_action_route(
                "/clients/{id}/enable",
                ClientAction::Enable,
            ))
            .service(client_action_route(
                "/clients/{id}/revoke-tokens",
                ClientAction::RevokeTokens,
            ))
            .service(client_action_route(
                "/clients/{id}/rotate-secret",
                ClientAction::RotateSecret,
            ))
            .service(post("/clients/{id}/api-keys", create_api_key))
            .service(post("/api-keys/{id}/revoke", revoke_api_key))
            .service(get("/signing-keys", signing_keys))
            .service(get("/ssf", ssf_streams))
            .service(post("/signing-keys/rotate", rotate_signing_key))
            .service(post("/signing-keys/{kid}/retire", retire_signing_key))
            .service(get("/audit", audit))
            .default_service(web::to(|| async {
                ConsoleError::Service(ServiceError::not_found("no such console page"))
                    .error_response()
            })),
    );
}

/// Why a console request was not served.
#[derive(Debug)]
enum ConsoleError {
    /// No live session: to the sign-in page.
    SignIn,
    /// A form without its session's CSRF token.
    Csrf,
    /// A use case refused.
    Service(ServiceError),
}

impl From<ServiceError> for ConsoleError {
    fn from(e: ServiceError) -> Self {
        ConsoleError::Service(e)
    }
}

impl From<crate::service::families::AdminError> for ConsoleError {
    fn from(e: crate::service::families::AdminError) -> Self {
        ConsoleError::Service(e.into())
    }
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsoleError::SignIn => f.write_str("no console session"),
            ConsoleError::Csrf => f.write_str("missing or wrong CSRF token"),
            ConsoleError::Service(e) => write!(f, "{}", e.description),
        }
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignIn => StatusCode::SEE_OTHER,
            ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::Service(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ConsoleError::SignIn => see_other("/console/login"),
            ConsoleError::Csrf => html_status(
                StatusCode::FORBIDDEN,
                views::error(
                    None,
                    403,
                    "This form is stale or did not come from the console: reload the page and try again.",
                ),
            ),
            ConsoleError::Service(e) => {
                if e.code == ErrorCode::ServerError {
                    // Logged once here; the page shows no internal text.
                    log::error!("console: {}", e.description);
                }
                let status = e.status_code();
                let mut resp =
                    html_status(status, views::error(None, status.as_u16(), &e.description));
                if let Some(after) = e.retry_after {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, header::HeaderValue::from(after));
                }
                resp
            }
        }
    }
}

type Page = Result<HttpResponse, ConsoleError>;

fn html(markup: Markup) -> HttpResponse {
    html_status(StatusCode::OK, markup)
}

fn html_status(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Whether the console is reached over HTTPS (native TLS, or an `https`
/// issuer in front): its cookie is then `Secure` and `__Host-` prefixed.
fn secure(app: &App) -> bool {
    app.config().tls_cert.is_some() || app.config().issuer.starts_with("https://")
}

fn cookie_name(app: &App) -> &'static str {
    if secure(app) {
        "__Host-tollgate_console"
    } else {
        "tollgate_console"
    }
}

/// The session cookie: `HttpOnly`, `SameSite=Strict`, `Secure` under HTTPS.
fn session_cookie(app: &App, value: String, max_age: i64) -> Cookie<'static> {
    let mut c = Cookie::build(cookie_name(app), value)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(CookieAge::seconds(max_age))
        .finish();
    if secure(app) {
        // `__Host-` requires `Secure` and `Path=/`.
        c.set_secure(true);
        c.set_path("/");
    } else {
        c.set_path("/console");
    }
    c
}

/// A signed-in request: its session and cookie value.
struct Signed {
    session: ConsoleSession,
    cookie: String,
    csrf: String,
}

impl Signed {
    fn frame(&self) -> Frame<'_> {
        Frame {
            csrf: &self.csrf,
            session: &self.session,
        }
    }

    /// The audit actor of its actions.
    fn actor(&self) -> String {
        self.session.actor()
    }
}

async fn signed_in(app: &App, req: &HttpRequest) -> Result<Signed, ConsoleError> {
    let cookie = req.cookie(cookie_name(app)).ok_or(ConsoleError::SignIn)?;
    let cookie = cookie.value().to_string();
    let session = app
        .console()
        .console_session(&cookie, now())
        .await
        .map_err(|e| match e.code {
            ErrorCode::InvalidToken => ConsoleError::SignIn,
            _ => ConsoleError::Service(e),
        })?;
    crate::logging::set_client(&session.actor());
    Ok(Signed {
        csrf: csrf_token(&cookie),
        session,
        cookie,
    })
}

/// The fields of a posted form (first value of each name wins).
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field, trimmed; `None` when absent or empty.
    fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    fn confirmed(&self) -> bool {
        self.get("confirm") == Some("yes")
    }

    /// A number field; empty is `None`.
    fn number<T: std::str::FromStr>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Option<T>, ServiceError> {
        self.text(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ServiceError::invalid_request(format!("{what} must be a whole number"))
                })
            })
            .transpose()
    }
}

async fn read_form(app: &App, payload: web::Payload) -> Result<Form, ConsoleError> {
    let body = read_body(app, payload).await?;
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .map(Form)
        .map_err(|_| ServiceError::invalid_request("the form could not be read").into())
}

/// A signed-in POST: the session first (an unauthenticated body is never
/// read), then the form and its CSRF token.
async fn signed_post(
    app: &App,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Signed, Form), ConsoleError> {
    let s = signed_in(app, req).await?;
    let form = read_form(app, payload).await?;
    if !csrf_ok(&s.cookie, form.get("csrf").unwrap_or("")) {
        return Err(ConsoleError::Csrf);
    }
    Ok((s, form))
}

/// The message of a `?done=` redirect: a fixed text, never echoed input.
fn flash(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "disabled" => "Client disabled: it gets no tokens, and its tokens introspect inactive.",
        "enabled" => "Client enabled.",
        "tokens_revoked" => "Every token issued to this client so far is revoked.",
        "key_revoked" => "API key revoked.",
        "rotated" => "New signing key made.",
        "retired" => "Signing key retired.",
        _ => return None,
    })
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(views::STYLESHEET)
}

#[derive(Deserialize)]
struct LinkQuery {
    token: Option<String>,
}

/// `GET /console/login?token=…`: a button that signs in (a GET never uses
/// the link up, so link previews and scanners cannot).
async fn sign_in_page(q: web::Query<LinkQuery>) -> HttpResponse {
    match q.into_inner().token {
        Some(token) if token.len() <= 128 => html(views::sign_in(&token)),
        _ => html(views::signed_out("Sign in with a login link.")),
    }
}

/// `POST /console/login`: the link becomes a session and its cookie.
async fn sign_in(app: web::Data<App>, payload: web::Payload) -> Page {
    let form = read_form(&app, payload).await?;
    let token = form.get("token").unwrap_or("");
    match app.console().open_console_session(token, now()).await {
        Ok((session, cookie)) => {
            log::info!("console session {} opened", session.id);
            Ok(HttpResponse::SeeOther()
                .cookie(session_cookie(
                    &app,
                    cookie.expose().to_string(),
                    ConsoleSession::ABSOLUTE_TIMEOUT,
                ))
                .insert_header((header::LOCATION, "/console"))
                .finish())
        }
        Err(e) if e.code == ErrorCode::InvalidToken => Ok(html_status(
            StatusCode::UNAUTHORIZED,
            views::signed_out(
                "This login link is not valid: it was used already, it is older than 10 minutes, or it was revoked.",
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/logout`: the session revokes itself.
async fn sign_out(app: web::Data<App>, req: HttpRequest, payload: web::Payload) -> Page {
    let (s, _) = signed_post(&app, &req, payload).await?;
    app.console()
        .revoke_console_session(&s.actor(), &s.session.id, now())
        .await?;
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&app, String::new(), 0))
        .content_type("text/html; charset=utf-8")
        .body(views::signed_out("Signed out.").into_string()))
}

async fn overview(app: web::Data<App>, req: HttpRequest) -> Page {
    let s = signed_in(&app, &req).await?;
    Ok(html(views::overview(
        &s.frame(),
        &app.console().overview(now()),
    )))
}

#[derive(Deserialize)]
struct ClientsQuery {
    q: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

async fn clients(app: web::Data<App>, req: HttpRequest, q: web::Query<ClientsQuery>) -> Page {
    let s = signed_in(&app, &req).await?;
    let q = q.into_inner();
    let query = q.q.unwrap_or_default();
    let list = app
        .console()
        .search_clients(&query, q.after.as_deref().filter(|a| !a.is_empty()), PAGE)
        .await?;
    let next = next_cursor(&list, PAGE, |c| c.id.clone());
    Ok(html(views::clients(
        &s.frame(),
        &query,
        &list,
        next.as_deref(),
        flash(q.done.as_deref()),
    )))
}

async fn new_client(app: web::Data<App>, req: HttpRequest) -> Page {
    let s = signed_in(&app, &req).await?;
    Ok(html(views::new_client(&s.frame())))
}

fn words(v: Option<String>) -> Vec<String> {
    v.map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// `POST /console/clients`: **Create client**; the secret is shown once.
async fn create_client(app: web::Data<App>, req: HttpRequest, payload: web::Payload) -> Page {
    let (s, form) = signed_post(&app, &req, payload).await?;
    let method = match form.text("token_endpoint_auth_method") {
        None => None,
        Some(m) => Some(
            crate::domain::ClientAuthMethod::parse(&m)
                .ok_or_else(|| ServiceError::invalid_request("unknown authentication method"))?,
        ),
    };
    let input = NewClient {
        name: form.text("name").unwrap_or_default(),
        owner: form.text("owner"),
        scopes: words(form.text("scopes")),
        audiences: words(form.text("audiences")),
        token_ttl: form.number("token_ttl", "the token lifetime")?,
        token_quota: form.number("token_quota", "the token quota")?,
        token_endpoint_auth_method: method,
        ..NewClient::default()
    };
    let (client, secret) = app.admin().create_client(&s.actor(), input, now()).await?;
    let back = client_path(&client.id);
    Ok(match &secret {
        Some(secret) => html(views::secret_once(
            &s.frame(),
            "Client created",
            &[("Client id", &client.id), ("Name", &client.name)],
            "Client secret",
            secret.expose(),
            &back,
        )),
        None => see_other(&back),
    })
}

async fn client(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
    q: web::Query<Done>,
) -> Page {
    let s = signed_in(&app, &req).await?;
    let c = app.admin().get_client(&id).await?;
    let keys = app.admin().list_api_keys(&c.id).await?;
    Ok(html(views::client(
        &s.frame(),
        &c,
        &keys,
        now(),
        flash(q.done.as_deref()),
    )))
}

fn client_page(id: &str, done: &str) -> HttpResponse {
    see_other(&format!("{}?done={done}", client_path(id)))
}

/// Shows the confirmation page unless the form says `confirm=yes`.
fn unconfirmed(
    s: &Signed,
    form: &Form,
    req: &HttpRequest,
    label: &str,
    question: String,
    back: &str,
) -> Option<HttpResponse> {
    (!form.confirmed()).then(|| {
        html(views::confirm(
            &s.frame(),
            req.path(),
            label,
            &question,
            back,
        ))
    })
}

/// The actions of a client's page that change the client.
#[derive(Clone, Copy)]
enum ClientAction {
    Disable,
    Enable,
    RevokeTokens,
    RotateSecret,
}

impl ClientAction {
    /// The button's label, the same on the confirmation page.
    fn label(self) -> &'static str {
        match self {
            ClientAction::Disable => "Disable",
            ClientAction::Enable => "Enable",
            ClientAction::RevokeTokens => "Revoke all tokens",
            ClientAction::RotateSecret => "Rotate secret",
        }
    }

    /// What the confirmation page asks; `None` for an action that takes
    /// nothing away.
    fn question(self, id: &str, app: &App) -> Option<String> {
        match self {
            ClientAction::Disable => Some(format!(
                "Disable client {id}? It will get no tokens, and every token it holds will introspect inactive until it is enabled again."
            )),
            ClientAction::Enable => None,
            ClientAction::RevokeTokens => Some(format!(
                "Revoke every token issued to {id} so far? Its services must ask for new ones."
            )),
            ClientAction::RotateSecret => Some(format!(
                "Make a new secret for {id}? The current one keeps working for the grace period ({} s), then stops.",
                app.config().secret_grace
            )),
        }
    }
}

/// A POST route for one client action.
fn client_action_route(path: &str, action: ClientAction) -> actix_web::Resource {
    post(
        path,
        move |app: web::Data<App>,
              req: HttpRequest,
              id: web::Path<String>,
              payload: web::Payload| client_action(app, req, id, payload, action),
    )
}

/// **Disable**, **Enable**, **Revoke all tokens**, **Rotate secret**: the
/// destructive ones ask first; each calls the admin use case.
async fn client_action(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    action: ClientAction,
) -> Page {
    let (s, form) = signed_post(&app, &req, payload).await?;
    let back = client_path(&id);
    if let Some(question) = action.question(&id, &app) {
        if let Some(page) = unconfirmed(&s, &form, &req, action.label(), question, &back) {
            return Ok(page);
        }
    }
    let (actor, now) = (s.actor(), now());
    match action {
        ClientAction::Disable | ClientAction::Enable => {
            let disable = matches!(action, ClientAction::Disable);
            app.admin()
                .set_client_disabled(&actor, &id, disable, now)
                .await?;
            Ok(client_page(
                &id,
                if disable { "disabled" } else { "enabled" },
            ))
        }
        ClientAction::RevokeTokens => {
            app.admin().revoke_client_tokens(&actor, &id, now).await?;
            Ok(client_page(&id, "tokens_revoked"))
        }
        ClientAction::RotateSecret => {
            let (secret, old_until) = app
                .admin()
                .rotate_client_secret(&actor, &id, None, now)
                .await?;
            let until = views::time(old_until);
            Ok(html(views::secret_once(
                &s.frame(),
                "Secret rotated",
                &[("Client id", &id), ("Previous secret valid until", &until)],
                "New client secret",
                secret.expose(),
                &back,
            )))
        }
    }
}

async fn create_api_key(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Page {
    let (s, form) = signed_post(&app, &req, payload).await?;
    let (key, secret) = app
        .admin()
        .create_api_key(&s.actor(), &id, form.text("name"), None, now())
        .await?;
    Ok(html(views::secret_once(
        &s.frame(),
        "API key created",
        &[("Key id", &key.id), ("Client id", &key.client_id)],
        "API key",
        secret.expose(),
        &client_path(&id),
    )))
}

async fn revoke_api_key(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Page {
    let (s, form) = signed_post(&app, &req, payload).await?;
    let back = form
        .text("client")
        .map_or_else(|| "/console/clients".to_string(), |c| client_path(&c));
    if let Some(page) = unconfirmed(
        &s,
        &form,
        &req,
        "Revoke",
        format!("Revoke API key {id}? Exchanges and introspection with it stop at once."),
        &back,
    ) {
        return Ok(page);
    }
    let key = app.admin().revoke_api_key(&s.actor(), &id, now()).await?;
    Ok(client_page(&key.client_id, "key_revoked"))
}

/// The Shared Signals streams, with status, backlog and last error.
async fn ssf_streams(app: web::Data<App>, req: HttpRequest) -> Page {
    let s = signed_in(&app, &req).await?;
    let streams = app.signals().admin_view().await?;
    Ok(html(views::ssf_streams(&s.frame(), &streams)))
}

async fn signing_keys(app: web::Data<App>, req: HttpRequest, q: web::Query<Done>) -> Page {
    let s = signed_in(&app, &req).await?;
    let mut keys = app.signing_keys().list_signing_keys().await?;
    keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.kid.cmp(&b.kid)));
    Ok(html(views::signing_keys(
        &s.frame(),
        &keys,
        now(),
        flash(q.done.as_deref()),
    )))
}

async fn rotate_signing_key(app: web::Data<App>, req: HttpRequest, payload: web::Payload) -> Page {
    let (s, _) = signed_post(&app, &req, payload).await?;
    app.signing_keys()
        .rotate_signing_key(&s.actor(), None, None, now())
        .await?;
    Ok(see_other("/console/signing-keys?done=rotated"))
}

async fn retire_signing_key(
    app: web::Data<App>,
    req: HttpRequest,
    kid: web::Path<String>,
    payload: web::Payload,
) -> Page {
    let (s, form) = signed_post(&app, &req, payload).await?;
    if let Some(page) = unconfirmed(
        &s,
        &form,
        &req,
        "Retire",
        format!("Retire signing key {kid}? It stops signing; tokens it signed stay valid until they expire."),
        "/console/signing-keys",
    ) {
        return Ok(page);
    }
    app.signing_keys()
        .retire_signing_key(&s.actor(), &kid, false, now())
        .await?;
    Ok(see_other("/console/signing-keys?done=retired"))
}

#[derive(Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    before: Option<i64>,
}

async fn audit(app: web::Data<App>, req: HttpRequest, q: web::Query<AuditQuery>) -> Page {
    let s = signed_in(&app, &req).await?;
    let q = q.into_inner();
    let given = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let filter = AuditFilter {
        actor: given(q.actor),
        action: given(q.action),
        target: given(q.target),
    };
    let entries = app.console().search_audit(&filter, q.before, PAGE).await?;
    let older = next_cursor(&entries, PAGE, |e| e.id);
    Ok(html(views::audit(&s.frame(), &filter, &entries, older)))
}
