//! The web console over HTTP: login links, the session cookie, CSRF, the
//! security headers, and each action checked through the OAuth endpoints.
//! (The same flows in a real browser: `interop/console`.)

use reqwest::{redirect, Client, StatusCode};
use serde_json::Value;

use crate::admin::call;
use crate::helpers::{json, s, TestApp};
use reqwest::Method;

/// A browser-like session on the console: no redirects followed, the
/// session cookie kept by hand.
pub(crate) struct Console<'a> {
    app: &'a TestApp,
    http: Client,
    cookie: String,
    session: String,
}

fn no_redirects() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of `name="…" value="…"` in a page.
fn field(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The text of the element with this id.
fn by_id(page: &str, id: &str) -> String {
    let at = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {page}"));
    let rest = &page[at..];
    let rest = &rest[rest.find('>').unwrap() + 1..];
    rest[..rest.find('<').unwrap()].to_string()
}

fn login_link(app: &TestApp) -> (String, String) {
    let v = app.cli(&["console", "login-link", "--base-url", &app.url("")]);
    (s(&v["url"]), s(&v["id"]))
}

impl<'a> Console<'a> {
    pub(crate) async fn sign_in(app: &'a TestApp) -> Console<'a> {
        let (url, session) = login_link(app);
        let cookie = open_link(app, &url).await.expect("signed in");
        Console {
            app,
            http: no_redirects(),
            cookie,
            session,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn page(&self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.text().await.unwrap()
    }

    async fn csrf(&self) -> String {
        field(&self.page("/console").await, "csrf")
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let csrf = self.csrf().await;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(form);
        self.http
            .post(self.app.url(path))
            .header("cookie", &self.cookie)
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    /// Posts a destructive action: first the confirmation page, then the
    /// confirmed form; returns where it sends the browser.
    async fn confirmed(&self, path: &str, label: &str) -> String {
        let r = self.post(path, &[]).await;
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(page.contains("Please confirm"), "{page}");
        assert!(page.contains(&format!(">{label}</button>")), "{page}");
        let r = self.post(path, &[("confirm", "yes")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        r.headers()["location"].to_str().unwrap().to_string()
    }
}

/// The console's page of client `id`, in a fresh session.
pub(crate) async fn client_page(app: &TestApp, id: &str) -> String {
    Console::sign_in(app)
        .await
        .page(&format!("/console/clients/{id}"))
        .await
}

async fn audit_actor_of(app: &TestApp, action: &str) -> Vec<String> {
    let v = app.cli(&["audit", "list", "--limit", "1000"]);
    v.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| s(&e["actor"]))
        .collect()
}

#[tokio::test]
async fn a_login_link_opens_one_session_with_a_strict_cookie() {
    let app = TestApp::spawn().await;
    let (url, id) = login_link(&app);
    assert!(
        url.starts_with(&app.url("/console/login?token=tgl_")),
        "{url}"
    );
    let http = no_redirects();
    // Opening the URL shows a button and does not use the link up.
    for _ in 0..2 {
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(page.contains(">Sign in</button>"), "{page}");
    }
    let token = url.split("token=").nth(1).unwrap();
    let r = http
        .post(app.url("/console/login"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/console");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("tollgate_console=tgcon_"), "{set}");
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=86400",
    ] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = set.split(';').next().unwrap();
    // Single use.
    let again = http
        .post(app.url("/console/login"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
    assert!(again.headers().get("set-cookie").is_none());
    // The session works, and the page carries the strict headers.
    let r = http
        .get(app.url("/console"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    assert!(!page.contains("<script"), "no script at all");
    for figure in ["tokens-issued", "failed-authentications", "refusals", "p99"] {
        by_id(&page, figure);
    }
    assert!(page.contains("<svg"), "the last hour's chart");
    // Without a cookie, or with a wrong one: to the sign-in page.
    for c in ["", "tollgate_console=tgcon_wrong"] {
        let r = http
            .get(app.url("/console/clients"))
            .header("cookie", c)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/console/login");
    }
    // The command line lists it, with who made the link.
    let sessions = app.cli(&["console", "sessions"]);
    let mine = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap();
    assert_eq!(mine["state"], "active");
    assert_eq!(mine["created_by"], "cli");
    assert!(mine.get("link_digest").is_none() && mine.get("session_digest").is_none());
    assert_eq!(audit_actor_of(&app, "console.login_link").await, ["cli"]);
    assert_eq!(
        audit_actor_of(&app, "console.login").await,
        [format!("console:{id}")]
    );
    // Nothing secret in the server's log.
    let logs = app.logs();
    assert!(
        !logs.contains(token) && !logs.contains(&cookie[17..]),
        "{logs}"
    );
}

#[tokio::test]
async fn console_actions_take_effect_at_the_oauth_endpoints_and_are_audited() {
    let app = TestApp::spawn().await;
    let c = Console::sign_in(&app).await;
    let actor = format!("console:{}", c.session);

    // Create client: the secret is shown once and works.
    let form = c.page("/console/clients/new").await;
    assert!(form.contains(">Create client</button>"));
    let r = c
        .post(
            "/console/clients",
            &[
                ("name", "payments"),
                ("scopes", "read write"),
                ("audiences", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    let secret = by_id(&page, "secret");
    assert!(secret.starts_with("tgs_"), "{secret}");
    let id = app
        .cli(&["client", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "payments")
        .map(|c| s(&c["client_id"]))
        .unwrap();
    let token = app.token(&id, &secret).await;
    let client_page = format!("/console/clients/{id}");
    let shown = c.page(&client_page).await;
    assert!(!shown.contains(&secret), "a secret is never shown again");
    for label in [
        "Disable",
        "Revoke all tokens",
        "Rotate secret",
        "Create API key",
    ] {
        assert!(shown.contains(&format!(">{label}</button>")), "{label}");
    }
    assert_eq!(by_id(&shown, "state"), "enabled");

    // Disable: asks first, and nothing happens until confirmed.
    let r = c.post(&format!("{client_page}/disable"), &[]).await;
    assert!(r.text().await.unwrap().contains("Please confirm"));
    assert_eq!(app.token_request(&id, &secret, None).await.status(), 200);
    let to = c
        .confirmed(&format!("{client_page}/disable"), "Disable")
        .await;
    assert_eq!(to, format!("{client_page}?done=disabled"));
    let (status, v) = json(app.token_request(&id, &secret, None).await).await;
    assert_eq!((status, s(&v["error"])), (401, "invalid_client".into()));
    assert_eq!(app.introspect(&token).await["active"], false);
    let shown = c.page(&to).await;
    assert_eq!(by_id(&shown, "state"), "disabled");
    assert!(shown.contains(">Enable</button>"));

    // Enable.
    let r = c.post(&format!("{client_page}/enable"), &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let token = app.token(&id, &secret).await;
    assert_eq!(app.introspect(&token).await["active"], true);

    // Revoke all tokens: the one held goes inactive, a new one works.
    let to = c
        .confirmed(&format!("{client_page}/revoke-tokens"), "Revoke all tokens")
        .await;
    assert_eq!(to, format!("{client_page}?done=tokens_revoked"));
    assert_eq!(app.introspect(&token).await["active"], false);
    // Tokens are stamped in whole seconds: the next second's token is live.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let fresh = app.token(&id, &secret).await;
    assert_eq!(app.introspect(&fresh).await["active"], true);

    // Create API key: shown once, exchanged at /authentication/token.
    let r = c
        .post(&format!("{client_page}/api-keys"), &[("name", "deploy")])
        .await;
    assert_eq!(r.status(), 200);
    let key = by_id(&r.text().await.unwrap(), "secret");
    let exchange = |key: String| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/authentication/token"))
                .json(&serde_json::json!({ "secret_key": key }))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(exchange(key.clone()).await, 200);
    let shown = c.page(&client_page).await;
    assert!(!shown.contains(&key));
    assert!(shown.contains(&key[key.len() - 4..]), "last 4 shown");
    let key_id = field(&shown, "client"); // the revoke form names the client
    assert_eq!(key_id, id);
    let key_row_at = shown.find("data-key=\"").unwrap() + 10;
    let key_id = &shown[key_row_at..key_row_at + shown[key_row_at..].find('"').unwrap()];

    // Revoke the key: confirmed, then the exchange fails.
    let to = c
        .confirmed(&format!("/console/api-keys/{key_id}/revoke"), "Revoke")
        .await;
    assert_eq!(to, format!("{client_page}?done=key_revoked"));
    assert_eq!(exchange(key).await, 401);

    // Rotate secret: the new one works at once.
    let r = c.post(&format!("{client_page}/rotate-secret"), &[]).await;
    assert!(r.text().await.unwrap().contains("Please confirm"));
    let r = c
        .post(
            &format!("{client_page}/rotate-secret"),
            &[("confirm", "yes")],
        )
        .await;
    let new_secret = by_id(&r.text().await.unwrap(), "secret");
    assert_ne!(new_secret, secret);
    app.token(&id, &new_secret).await;

    // Every action is audited with the session as actor.
    for action in [
        "client.create",
        "client.disable",
        "client.enable",
        "client.revoke_tokens",
        "api_key.create",
        "api_key.revoke",
        "client.rotate_secret",
    ] {
        // (The test's own introspection clients are made by the CLI.)
        let actors = audit_actor_of(&app, action).await;
        assert!(actors.contains(&actor), "{action}: {actors:?}");
        assert!(
            action == "client.create" || actors.iter().all(|a| a == &actor),
            "{action}: {actors:?}"
        );
    }
    // The audit page filters by actor and action.
    let page = c
        .page(&format!(
            "/console/audit?actor={actor}&action=client.disable"
        ))
        .await;
    assert_eq!(
        page.matches("<code>client.disable</code>").count(),
        1,
        "{page}"
    );
    assert!(!page.contains("<code>client.enable</code>"));
}

#[tokio::test]
async fn console_forms_need_their_sessions_csrf_token() {
    let app = TestApp::spawn().await;
    let a = Console::sign_in(&app).await;
    let b = Console::sign_in(&app).await;
    let (id, secret) = app.client("read", &[]);
    let path = format!("/console/clients/{id}/disable");
    let other = b.csrf().await;
    for form in [
        vec![("confirm", "yes")],
        vec![("csrf", ""), ("confirm", "yes")],
        vec![("csrf", other.as_str()), ("confirm", "yes")],
    ] {
        let r = a
            .http
            .post(app.url(&path))
            .header("cookie", &a.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{form:?}");
    }
    assert_eq!(app.token_request(&id, &secret, None).await.status(), 200);
    // Without a session the body is not even read.
    let r = a
        .http
        .post(app.url(&path))
        .form(&[("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // A state change never answers a GET.
    let r = a.get(&path).await;
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn sessions_end_by_sign_out_and_by_revocation_from_the_cli_or_the_api() {
    let app = TestApp::spawn().await;
    let a = Console::sign_in(&app).await;
    let b = Console::sign_in(&app).await;
    // Sign out: the cookie is cleared and no longer works.
    let r = a.post("/console/logout", &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(a.get("/console").await.status(), StatusCode::SEE_OTHER);
    // Revoked from the command line.
    let out = app.cli_raw(&["console", "sessions", "--revoke", &b.session], false);
    assert!(out.status.success());
    assert_eq!(b.get("/console").await.status(), StatusCode::SEE_OTHER);
    let v = app.cli(&["console", "sessions"]);
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["state"] == "revoked"));
    // The admin API twin: a link, listed, revoked before it is used.
    let admin = app.admin_token().await;
    let r = app
        .http
        .post(app.url("/admin/console/login-links"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let (status, link) = json(r).await;
    assert_eq!(status, 201);
    assert!(s(&link["url"]).starts_with(&app.url("/console/login?token=tgl_")));
    let (_, list) = json(
        app.http
            .get(app.url("/admin/console/sessions"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let listed: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["id"] == link["id"])
        .collect();
    assert_eq!(listed[0]["state"], "pending");
    let r = app
        .http
        .post(app.url(&format!(
            "/admin/console/sessions/{}/revoke",
            s(&link["id"])
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let token = s(&link["url"]).split("token=").nth(1).unwrap().to_string();
    let r = no_redirects()
        .post(app.url("/console/login"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a revoked link opens nothing");
    // Only admins make links.
    let (id, secret) = app.client("read", &[]);
    let plain = app.token(&id, &secret).await;
    let r = app
        .http
        .post(app.url("/admin/console/login-links"))
        .bearer_auth(&plain)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn the_clients_list_searches_and_pages_and_signing_keys_rotate_and_retire() {
    let app = TestApp::spawn().await;
    let out = app.cli_raw(
        &["client", "seed", "--count", "60", "--name", "bulk"],
        false,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.cli(&["client", "create", "--name", "Needle service"]);
    let c = Console::sign_in(&app).await;
    let first = c.page("/console/clients").await;
    assert_eq!(
        first.matches("<tr><td><a href=\"/console/clients/").count(),
        50
    );
    let marker = "rel=\"next\" href=\"";
    let next_at = first.find(marker).expect("a next page") + marker.len();
    let next = &first[next_at..next_at + first[next_at..].find('"').unwrap()];
    let second = c.page(&next.replace("&amp;", "&")).await;
    assert_eq!(
        second
            .matches("<tr><td><a href=\"/console/clients/")
            .count(),
        11
    );
    assert!(!second.contains("rel=\"next\""));
    let found = c.page("/console/clients?q=NEEDLE").await;
    assert_eq!(
        found.matches("<tr><td><a href=\"/console/clients/").count(),
        1
    );
    assert!(found.contains("Needle service"));
    // Markup in a search is shown as text.
    let page = c.page("/console/clients?q=%3Cscript%3E").await;
    assert!(!page.contains("<script>") && page.contains("&lt;script&gt;"));

    // Signing keys: Retire asks first, and the service still refuses to
    // retire the only key that signs; Rotate adds a key and schedules the
    // old one's retirement.
    let keys = app.cli(&["signing-key", "list"]);
    let only = s(&keys[0]["kid"]);
    let before = c.page("/console/signing-keys").await;
    assert_eq!(before.matches(">Retire</button>").count(), 1);
    let path = format!("/console/signing-keys/{only}/retire");
    let r = c.post(&path, &[]).await;
    assert!(r.text().await.unwrap().contains("Please confirm"));
    let r = c.post(&path, &[("confirm", "yes")]).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("only active signing key"));
    let r = c.post("/console/signing-keys/rotate", &[]).await;
    assert_eq!(
        r.headers()["location"],
        "/console/signing-keys?done=rotated"
    );
    let after = c.page("/console/signing-keys?done=rotated").await;
    assert!(after.contains("New signing key made."));
    let keys = app.cli(&["signing-key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let old = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| s(&k["kid"]) == only)
        .unwrap();
    assert!(old["retired_at"].is_i64(), "{old}");
    assert!(
        after.contains(&only) && after.contains(" (pending)"),
        "{after}"
    );
}

#[tokio::test]
async fn the_console_can_be_switched_off() {
    let app = TestApp::spawn_with(&[("TOLLGATE_CONSOLE", "off")]).await;
    for path in ["/console", "/console/login", "/console/assets/console.css"] {
        let r = no_redirects().get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    // Issue 23 (I7): no login links while it is off, from the command line
    // or the admin API.
    let out = app.cli_raw(&["console", "login-link"], true);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TOLLGATE_CONSOLE=off"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = app.admin_token().await;
    let (status, v) = json(
        app.http
            .post(app.url("/admin/console/login-links"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    // The stylesheet is served from the binary when it is on.
    let on = TestApp::spawn().await;
    let r = no_redirects()
        .get(on.url("/console/assets/console.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

#[tokio::test]
async fn behind_https_the_cookie_is_secure_and_host_prefixed() {
    // A proxy terminates TLS: the issuer is https, the hop is plain HTTP.
    let app = TestApp::spawn_with(&[("TOLLGATE_ISSUER", "https://tollgate.test")]).await;
    let v = app.cli(&["console", "login-link"]);
    let url = s(&v["url"]);
    assert!(
        url.starts_with("https://tollgate.test/console/login?token=tgl_"),
        "the issuer is the link's base: {url}"
    );
    let token = url.split("token=").nth(1).unwrap();
    let r = no_redirects()
        .post(app.url("/console/login"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("__Host-tollgate_console=tgcon_"), "{set}");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/;"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    let cookie = set.split(';').next().unwrap();
    let r = no_redirects()
        .get(app.url("/console"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Opens `link` (a login-link URL): the session cookie, or the status.
pub(crate) async fn open_link(app: &TestApp, url: &str) -> Result<String, StatusCode> {
    let token = url.split("token=").nth(1).unwrap().to_string();
    let r = no_redirects()
        .post(app.url("/console/login"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    if r.status() != StatusCode::SEE_OTHER || r.headers().get("set-cookie").is_none() {
        return Err(r.status());
    }
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    Ok(set.split(';').next().unwrap().to_string())
}

pub(crate) async fn console_status(app: &TestApp, cookie: &str) -> StatusCode {
    no_redirects()
        .get(app.url("/console/clients"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
}

/// Issue 23 (N2): a link made through the admin API by client X, and the
/// session it opens, stop as soon as X loses `tollgate:admin`, is disabled
/// or is deleted; links made on the command line are unaffected.
#[tokio::test]
async fn console_links_and_sessions_end_with_their_makers_admin_rights() {
    let app = TestApp::spawn().await;
    let (x, xsecret) = app.client("tollgate:admin", &[]);
    let xtoken = app.token(&x, &xsecret).await;
    let link = || async {
        let (status, v) = json(
            app.http
                .post(app.url("/admin/console/login-links"))
                .bearer_auth(&xtoken)
                .json(&serde_json::json!({"base_url": app.url("")}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{v}");
        s(&v["url"])
    };
    let (first, pending, later) = (link().await, link().await, link().await);
    let cookie = open_link(&app, &first).await.expect("signed in");
    assert_eq!(console_status(&app, &cookie).await, StatusCode::OK);
    let cli = Console::sign_in(&app).await;
    let admin = app.admin_token().await;
    let act = |method: Method, path: String, body: Option<serde_json::Value>| {
        let (app, admin) = (&app, &admin);
        async move {
            let (status, v) = call(app, admin, method, &path, body).await;
            assert!(status < 300, "{path}: {status} {v}");
        }
    };

    // X loses tollgate:admin: its session stops at the next request.
    let client = format!("/admin/clients/{x}");
    act(
        Method::PATCH,
        client.clone(),
        Some(serde_json::json!({"scopes": ["read"]})),
    )
    .await;
    assert_ne!(console_status(&app, &cookie).await, StatusCode::OK);
    assert_eq!(
        open_link(&app, &pending)
            .await
            .err()
            .map(|s| s.is_success()),
        Some(false)
    );
    // Given back: the session works again (rights are read live).
    act(
        Method::PATCH,
        client.clone(),
        Some(serde_json::json!({"scopes": ["tollgate:admin"]})),
    )
    .await;
    assert_eq!(console_status(&app, &cookie).await, StatusCode::OK);
    // Disabled, then deleted: stopped, and a pending link no longer signs in.
    act(Method::POST, format!("{client}/disable"), None).await;
    assert_ne!(console_status(&app, &cookie).await, StatusCode::OK);
    act(Method::POST, format!("{client}/enable"), None).await;
    assert_eq!(console_status(&app, &cookie).await, StatusCode::OK);
    act(Method::DELETE, client.clone(), None).await;
    assert_ne!(console_status(&app, &cookie).await, StatusCode::OK);
    assert!(
        open_link(&app, &later).await.is_err(),
        "a pending link of a deleted maker"
    );
    // The command line's session is unaffected.
    assert_eq!(cli.get("/console/clients").await.status(), StatusCode::OK);
}
