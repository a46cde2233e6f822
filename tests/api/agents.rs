//! Agents: the identity assertion JWT authorization grant (ID-JAG,
//! draft-ietf-oauth-identity-assertion-authz-grant) at the JWT bearer grant.
//! An authenticated client presents an enterprise IdP's ID-JAG from an
//! issuer marked `id_jag`; each check refuses with `invalid_grant` naming
//! it; the `jti` is used once, across restarts; the token is for the user
//! and the ID-JAG's resource, never for Tollgate itself. URL client ids
//! (Client ID Metadata Documents): resolved only on allowed hosts under an
//! admin's host policy, fetched once and kept, checked, blocked at once.

use serde_json::{json, Value};

use crate::helpers::{json, s, segment, TestApp};
use crate::private_key_jwt::{admin_post, es256, jti, now, Key};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const IDP: &str = "https://idp.example.com";
const MCP: &str = "https://mcp.example.com/mcp";

/// An ID-JAG signed by `key`, `typ: oauth-id-jag+jwt`.
pub(crate) fn id_jag(key: &Key, claims: &Value) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some(key.kid.clone());
    h.typ = Some("oauth-id-jag+jwt".into());
    jsonwebtoken::encode(&h, claims, &key.enc).expect("sign")
}

pub(crate) fn claims(issuer: &str, client_id: &str, extra: Value) -> Value {
    let mut c = json!({
        "iss": IDP, "sub": "alice@example.com", "aud": issuer, "client_id": client_id,
        "resource": MCP, "scope": "tools:call files:read tollgate:admin",
        "jti": jti(), "iat": now(), "exp": now() + 120,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

pub(crate) async fn grant(
    app: &TestApp,
    id: &str,
    secret: &str,
    assertion: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", JWT_BEARER),
        ("assertion", assertion),
        ("client_id", id),
        ("client_secret", secret),
    ];
    form.extend_from_slice(extra);
    json(
        app.http
            .post(app.url("/oauth/token"))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

pub(crate) struct Setup {
    pub key: Key,
    pub id: String,
    pub secret: String,
    pub issuer: String,
}

pub(crate) async fn setup(app: &TestApp, mark: bool) -> Setup {
    let admin = app.admin_token().await;
    let key = es256("idp-1");
    let (status, v) = admin_post(
        app,
        &admin,
        "/admin/federation/issuers",
        json!({"issuer": IDP, "jwks": {"keys": [key.jwk.clone()]}, "id_jag": mark}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["id_jag"], mark);
    let (status, v) = admin_post(
        app,
        &admin,
        "/admin/clients",
        json!({"name": "agent", "scopes": ["tools:call", "tollgate:admin"], "audiences": [MCP, "https://other.example.com"]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let issuer = s(&segment(&admin, 1)["iss"]);
    Setup {
        key,
        id: s(&v["client_id"]),
        secret: s(&v["client_secret"]),
        issuer,
    }
}

#[tokio::test]
async fn an_id_jag_gets_a_token_for_the_user_at_its_resource_once() {
    let mut app = TestApp::spawn().await;
    let x = setup(&app, true).await;
    let jag = id_jag(&x.key, &claims(&x.issuer, &x.id, json!({})));
    let (status, v) = grant(&app, &x.id, &x.secret, &jag, &[("resource", MCP)]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["scope"], "tools:call",
        "the ID-JAG's ∩ the client's, never tollgate:*"
    );
    let c = segment(&s(&v["access_token"]), 1);
    assert_eq!(c["sub"], "alice@example.com");
    assert_eq!(c["client_id"], x.id.as_str());
    assert_eq!(c["aud"], MCP);
    assert!(c.get("act").is_none());
    let i = app.introspect(&s(&v["access_token"])).await;
    assert_eq!(
        (i["active"].clone(), i["sub"].clone()),
        (json!(true), json!("alice@example.com"))
    );

    // Used once, across a restart.
    let (status, v) = grant(&app, &x.id, &x.secret, &jag, &[]).await;
    assert_eq!((status, s(&v["error"])), (400, "invalid_grant".into()));
    assert!(s(&v["error_description"]).contains("used before"), "{v}");
    app.restart();
    let (status, _) = grant(&app, &x.id, &x.secret, &jag, &[]).await;
    assert_eq!(status, 400, "remembered across a restart");

    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .contains(r#"tollgate_tokens_issued_total{grant="id_jag",result="invalid_grant"} 1"#),
        "{metrics}"
    );
    let (_, m) = json(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        m["authorization_grant_profiles_supported"],
        json!(["urn:ietf:params:oauth:grant-profile:id-jag"])
    );
}

#[tokio::test]
async fn every_check_refuses_with_invalid_grant_naming_it() {
    let app = TestApp::spawn_with(&[
        ("TOLLGATE_AUTH_FAIL_PAIR_LIMIT", "1000"),
        ("TOLLGATE_AUTH_FAIL_CLIENT_LIMIT", "1000"),
    ])
    .await;
    let x = setup(&app, true).await;
    let cases = [
        (json!({"aud": "https://elsewhere"}), "aud"),
        (json!({"exp": now() + 600}), "5 minutes"),
        (json!({"exp": now() - 120}), "expired"),
        (json!({"iat": null}), "iat"),
        (json!({"jti": null}), "jti"),
        (json!({"client_id": "tgc_someone_else"}), "client_id"),
        (json!({"resource": "https://evil.example.com"}), "resource"),
        (json!({"resource": x.issuer.clone()}), "resource"),
    ];
    for (extra, words) in cases {
        let jag = id_jag(&x.key, &claims(&x.issuer, &x.id, extra.clone()));
        let (status, v) = grant(&app, &x.id, &x.secret, &jag, &[]).await;
        assert_eq!(
            (status, s(&v["error"])),
            (400, "invalid_grant".into()),
            "{extra}: {v}"
        );
        assert!(s(&v["error_description"]).contains(words), "{extra}: {v}");
    }
    // A forged signature.
    let jag = id_jag(&es256("idp-1"), &claims(&x.issuer, &x.id, json!({})));
    let (status, v) = grant(&app, &x.id, &x.secret, &jag, &[]).await;
    assert_eq!(status, 400);
    assert!(s(&v["error_description"]).contains("signature"), "{v}");
    // The request may not point elsewhere than the ID-JAG's resource, nor at Tollgate.
    let jag = id_jag(&x.key, &claims(&x.issuer, &x.id, json!({})));
    let (status, v) = grant(
        &app,
        &x.id,
        &x.secret,
        &jag,
        &[("resource", "https://other.example.com")],
    )
    .await;
    assert_eq!(
        (status, s(&v["error"])),
        (400, "invalid_target".into()),
        "{v}"
    );
    let jag = id_jag(&x.key, &claims(&x.issuer, &x.id, json!({"resource": null})));
    let (status, v) = grant(&app, &x.id, &x.secret, &jag, &[("audience", &x.issuer)]).await;
    assert_eq!(
        (status, s(&v["error"])),
        (400, "invalid_target".into()),
        "{v}"
    );
    // Client authentication is required, and must hold.
    let jag = id_jag(&x.key, &claims(&x.issuer, &x.id, json!({})));
    let (status, v) = json(
        app.http
            .post(app.url("/oauth/token"))
            .form(&[
                ("grant_type", JWT_BEARER),
                ("assertion", jag.as_str()),
                ("client_id", x.id.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, s(&v["error"])),
        (401, "invalid_client".into()),
        "{v}"
    );
    let (status, _) = grant(&app, &x.id, "tgs_wrong", &jag, &[]).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn only_an_issuer_marked_for_id_jags_is_accepted() {
    let app = TestApp::spawn().await;
    let x = setup(&app, false).await;
    let jag = id_jag(&x.key, &claims(&x.issuer, &x.id, json!({})));
    let (status, v) = grant(&app, &x.id, &x.secret, &jag, &[]).await;
    assert_eq!(
        (status, s(&v["error"])),
        (400, "invalid_grant".into()),
        "{v}"
    );
    assert!(
        s(&v["error_description"]).contains("not trusted for ID-JAGs"),
        "{v}"
    );
    // The CLI marks one; list shows it.
    let v = app.cli(&[
        "federation",
        "issuer",
        "add",
        "--issuer",
        "https://idp2.example.com",
        "--jwks-uri",
        "https://idp2.example.com/jwks",
        "--id-jag",
    ]);
    assert_eq!(v[0]["id_jag"], true, "{v}");
    let out = app.cli_raw(&["federation", "issuer", "list"], false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ID-JAG"), "{text}");
}

/// A URL client's document at `server`'s URL: its own URL as `client_id`,
/// `private_key_jwt`, its key inline.
fn document(url: &str, key: &Key, method: &str) -> Value {
    json!({"client_id": url, "client_name": "Research agent", "token_endpoint_auth_method": method,
           "jwks": {"keys": [key.jwk.clone()]}})
}

async fn url_client_token(app: &TestApp, url: &str, key: &Key) -> (u16, Value) {
    let assertion = crate::private_key_jwt::sign(key, &crate::private_key_jwt::claims(app, url));
    crate::private_key_jwt::token_with(app, &assertion, &[]).await
}

#[tokio::test]
async fn url_client_ids_resolve_under_their_hosts_policy_and_can_be_blocked_at_once() {
    let app = TestApp::spawn_with(&[
        ("TOLLGATE_CIMD_ALLOWED_HOSTS", "127.0.0.1"),
        ("TOLLGATE_FETCH_ALLOW_LOCAL", "true"),
        ("TOLLGATE_AUTH_FAIL_PAIR_LIMIT", "1000"),
    ])
    .await;
    let admin = app.admin_token().await;
    let (_, m) = json(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(m["client_id_metadata_document_supported"], true);
    let key = es256("agent-1");
    let server = crate::private_key_jwt::jwks_server(json!({})).await;
    let url = server.url.clone();
    *server.keys.lock().unwrap() = document(&url, &key, "private_key_jwt");

    // No policy for its host yet: refused, and nothing fetched.
    let (status, v) = url_client_token(&app, &url, &key).await;
    assert_eq!(
        (status, s(&v["error"])),
        (401, "invalid_client".into()),
        "{v}"
    );
    assert_eq!(server.hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/cimd/hosts",
        json!({"host": "127.0.0.1", "scopes": ["tools:call"], "audiences": [MCP]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = url_client_token(&app, &url, &key).await;
    assert_eq!(status, 200, "{v}");
    let token = s(&v["access_token"]);
    let c = segment(&token, 1);
    assert_eq!(
        (c["client_id"].clone(), c["aud"].clone(), c["scope"].clone()),
        (json!(url), json!(MCP), json!("tools:call"))
    );
    // Kept (Cache-Control absent: 60 s), not fetched again.
    assert_eq!(url_client_token(&app, &url, &key).await.0, 200);
    assert_eq!(server.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(app.introspect(&token).await["client_id"], url.as_str());
    let audit = app.cli(&["audit", "list", "--limit", "1000"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "cimd.document.fetch" && e["target"] == url.as_str()),
        "{audit}"
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"tollgate_cimd_documents_total{result="fetched"} 1"#),
        "{metrics}"
    );

    // Blocked through the admin API: refused at once, its tokens inactive.
    let (status, v) = admin_post(&app, &admin, "/admin/cimd/blocks", json!({"url": url})).await;
    assert_eq!((status, v["changed"].clone()), (200, json!(true)), "{v}");
    assert_eq!(app.introspect(&token).await["active"], false);
    assert_eq!(url_client_token(&app, &url, &key).await.0, 401);
    // Unblocked from the command line: back within the CLI's change bound.
    let v = app.cli(&["cimd", "unblock", &url]);
    assert_eq!(v["changed"], true);
    crate::helpers::eventually(
        "the unblock from the command line",
        crate::helpers::cli_change_bound(),
        || async { url_client_token(&app, &url, &key).await.0 == 200 },
    )
    .await;

    // The policy removed: refused again.
    let v = app.cli(&["cimd", "host", "list"]);
    assert_eq!(v[0]["host"], "127.0.0.1");
    let out = app.cli_raw(&["cimd", "host", "remove", "127.0.0.1"], false);
    assert!(out.status.success());
    crate::helpers::eventually(
        "the removal from the command line",
        crate::helpers::cli_change_bound(),
        || async { url_client_token(&app, &url, &key).await.0 == 401 },
    )
    .await;
}

#[tokio::test]
async fn a_url_clients_document_must_describe_a_private_key_jwt_client_at_its_url() {
    let app = TestApp::spawn_with(&[
        ("TOLLGATE_CIMD_ALLOWED_HOSTS", "127.0.0.1"),
        ("TOLLGATE_FETCH_ALLOW_LOCAL", "true"),
        ("TOLLGATE_AUTH_FAIL_PAIR_LIMIT", "1000"),
    ])
    .await;
    let admin = app.admin_token().await;
    let (status, _) = admin_post(
        &app,
        &admin,
        "/admin/cimd/hosts",
        json!({"host": "127.0.0.1", "scopes": ["tools:call"], "audiences": [MCP]}),
    )
    .await;
    assert_eq!(status, 201);
    let key = es256("agent-1");
    type MakeDoc = fn(&str, &Key) -> Value;
    let cases: [(MakeDoc, &str); 3] = [
        (|url, k| document(url, k, "client_secret_basic"), "method"),
        (
            |_, k| document("https://someone-else.example/c.json", k, "private_key_jwt"),
            "client_id",
        ),
        (
            |url, _| json!({"client_id": url, "token_endpoint_auth_method": "private_key_jwt"}),
            "no keys",
        ),
    ];
    for (doc, why) in cases {
        let server = crate::private_key_jwt::jwks_server(json!({})).await;
        *server.keys.lock().unwrap() = doc(&server.url, &key);
        let (status, v) = url_client_token(&app, &server.url, &key).await;
        assert_eq!(
            (status, s(&v["error"])),
            (401, "invalid_client".into()),
            "{why}: {v}"
        );
    }
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"tollgate_cimd_documents_total{result="invalid"} 3"#),
        "{metrics}"
    );
    // A URL on a host not allowed is not resolved at all: an unknown client.
    let server = crate::private_key_jwt::jwks_server(json!({})).await;
    let other = server.url.replace("127.0.0.1", "localhost");
    *server.keys.lock().unwrap() = document(&other, &key, "private_key_jwt");
    assert_eq!(url_client_token(&app, &other, &key).await.0, 401);
    assert_eq!(server.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Host policies are checked: no tollgate:* scope, no issuer audience.
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/cimd/hosts",
        json!({"host": "a.example", "scopes": ["tollgate:admin"]}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/cimd/hosts",
        json!({"host": "bad host!"}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
}
