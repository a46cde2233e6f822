//! Regression tests for the second attack review and its interop and
//! availability findings (issue 23): each fails when its fix is removed.

use serde_json::Value;

use crate::helpers::{json, s, TestApp};

/// Issue 23 (15): strict clients (the official MCP SDK) need an
/// `authorization_endpoint` in RFC 8414 metadata; Tollgate issues no codes,
/// so it publishes one that refuses every request, never redirecting.
#[tokio::test]
async fn the_authorization_endpoint_is_published_and_refuses_every_request() {
    let app = TestApp::spawn().await;
    let (_, meta) = json(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let issuer = s(&meta["issuer"]);
    assert_eq!(
        meta["authorization_endpoint"],
        format!("{issuer}/oauth/authorize")
    );
    assert_eq!(meta["response_types_supported"], serde_json::json!([]));
    let at = app.url("/oauth/authorize?response_type=code&client_id=x&redirect_uri=https://evil.example/cb&state=s");
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let r = app.http.request(method.clone(), &at).send().await.unwrap();
        assert_eq!(r.status(), 400, "{method}");
        assert!(r.headers().get("location").is_none(), "never redirects");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "unsupported_response_type", "{method}");
        assert!(
            s(&v["error_description"]).contains("no authorization codes"),
            "{v}"
        );
    }
    let head = app.http.head(&at).send().await.unwrap();
    assert_eq!(head.status(), 400);
}
