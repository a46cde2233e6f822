//! Regression tests for the attack review (issue 13): each test fails when
//! its fix is removed.

use serde_json::Value;

use crate::helpers::{json, s, segment, TestApp};

/// RFC 9110 §15.5.6: every 405 names the allowed methods.
#[tokio::test]
async fn every_405_carries_an_allow_header() {
    let app = TestApp::spawn().await;
    let cases: &[(&str, &str, &str)] = &[
        ("PUT", "/oauth/token", "POST"),
        ("GET", "/oauth/introspect", "POST"),
        ("DELETE", "/oauth/revoke", "POST"),
        ("POST", "/.well-known/jwks.json", "GET, HEAD"),
        (
            "POST",
            "/.well-known/oauth-authorization-server",
            "GET, HEAD",
        ),
        ("POST", "/healthz", "GET, HEAD"),
        ("PUT", "/admin/clients", "GET, HEAD, POST"),
        ("POST", "/admin/clients/tgc_x", "GET, HEAD, PATCH, DELETE"),
        ("GET", "/admin/clients/tgc_x/disable", "POST"),
        ("GET", "/admin/api-keys/key_x", "DELETE"),
        ("DELETE", "/admin/audit", "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let r = app
            .http
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(
            r.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(*allow),
            "{method} {path}"
        );
        let (_, v) = json(r).await;
        assert_eq!(v["error"], "method_not_allowed");
    }
}

/// RFC 9110 §9.3.2: HEAD answers like GET, without a body.
#[tokio::test]
async fn head_works_on_every_get_endpoint() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/admin/clients",
        "/admin/signing-keys",
        "/admin/audit",
    ] {
        let get = app
            .http
            .get(app.url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        let head = app
            .http
            .head(app.url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 200, "GET {path}");
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path} body");
    }
}

/// RFC 8414 §3.1: an issuer with a path has its metadata at the
/// well-known name followed by that path; other paths are 404.
#[tokio::test]
async fn metadata_is_served_at_the_path_aware_location() {
    let app = TestApp::spawn_with(&[("TOLLGATE_ISSUER", "https://auth.example.com/tenant")]).await;
    let (status, v) = json(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server/tenant"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["issuer"], "https://auth.example.com/tenant");
    assert_eq!(
        v["token_endpoint"],
        "https://auth.example.com/tenant/oauth/token"
    );
    let (status, v) = json(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server/other"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, s(&v["error"])), (404, "not_found".into()));
}

#[allow(dead_code)]
fn claims(token: &str) -> Value {
    segment(token, 1)
}
