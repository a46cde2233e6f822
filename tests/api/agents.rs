//! Agents: the identity assertion JWT authorization grant (ID-JAG,
//! draft-ietf-oauth-identity-assertion-authz-grant) at the JWT bearer grant.
//! An authenticated client presents an enterprise IdP's ID-JAG from an
//! issuer marked `id_jag`; each check refuses with `invalid_grant` naming
//! it; the `jti` is used once, across restarts; the token is for the user
//! and the ID-JAG's resource, never for Tollgate itself.

use serde_json::{json, Value};

use crate::helpers::{json, s, segment, TestApp};
use crate::private_key_jwt::{admin_post, es256, jti, now, Key};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const IDP: &str = "https://idp.example.com";
const MCP: &str = "https://mcp.example.com/mcp";

/// An ID-JAG signed by `key`, `typ: oauth-id-jag+jwt`.
fn id_jag(key: &Key, claims: &Value) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some(key.kid.clone());
    h.typ = Some("oauth-id-jag+jwt".into());
    jsonwebtoken::encode(&h, claims, &key.enc).expect("sign")
}

fn claims(issuer: &str, client_id: &str, extra: Value) -> Value {
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

async fn grant(
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

struct Setup {
    key: Key,
    id: String,
    secret: String,
    issuer: String,
}

async fn setup(app: &TestApp, mark: bool) -> Setup {
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
