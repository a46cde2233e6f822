//! Per-client claims: a JSON object added to every access token the client
//! gets (client credentials, API keys, token exchange), returned by
//! introspection, set on the admin API, the command line and shown in the
//! console, at most 2 KiB, reserved names refused by name, kept across a
//! restart.

use reqwest::Method;
use serde_json::json;

use crate::admin::call;
use crate::helpers::{json, s, segment, TestApp};
use crate::private_key_jwt::admin_post;

#[tokio::test]
async fn a_clients_claims_go_into_each_token_and_introspection() {
    let mut app = TestApp::spawn().await;
    let mut admin = app.admin_token().await;
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/clients",
        json!({"name": "postgrest", "scopes": ["read"], "audiences": ["https://db.example.com"],
               "claims": {"role": "web_anon", "tenant_id": 42, "groups": ["a", "b"]}}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (id, secret) = (s(&v["client_id"]), s(&v["client_secret"]));
    let token = app.token(&id, &secret).await;
    let c = segment(&token, 1);
    assert_eq!(
        (
            c["role"].clone(),
            c["tenant_id"].clone(),
            c["groups"].clone()
        ),
        (json!("web_anon"), json!(42), json!(["a", "b"]))
    );
    assert_eq!(
        c["client_id"],
        id.as_str(),
        "the standard claims are intact"
    );
    let i = app.introspect(&token).await;
    assert_eq!(
        (
            i["active"].clone(),
            i["role"].clone(),
            i["tenant_id"].clone()
        ),
        (json!(true), json!("web_anon"), json!(42))
    );

    // An API key's token carries them too.
    let key = app.cli(&["api-key", "create", "--client", &id]);
    let (status, v) = json(
        app.http
            .post(app.url("/authentication/token"))
            .json(&json!({"secret_key": s(&key["secret_key"])}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(segment(&s(&v["access_token"]), 1)["role"], "web_anon");

    // Kept across a restart; PATCH replaces them whole; null removes them.
    app.restart();
    admin = app.admin_token().await;
    let (status, v) = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/admin/clients/{id}"),
        Some(json!({"claims": {"role": "web_user"}})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["claims"], json!({"role": "web_user"}));
    let c = segment(&app.token(&id, &secret).await, 1);
    assert_eq!(c["role"], "web_user");
    assert!(c.get("tenant_id").is_none());
    let (status, v) = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/admin/clients/{id}"),
        Some(json!({"claims": null})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(v.get("claims").is_none(), "{v}");
    assert!(segment(&app.token(&id, &secret).await, 1)
        .get("role")
        .is_none());
}

#[tokio::test]
async fn reserved_names_and_oversized_claims_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for (claims, words) in [
        (json!({"sub": "x"}), "sub"),
        (
            json!({"role": "a", "scope": "admin", "act": {}}),
            "act, scope",
        ),
        (json!({"tollgate_origin": []}), "tollgate_origin"),
        (json!({"tollgateX": 1}), "tollgateX"),
        (json!({"cnf": {}}), "cnf"),
        (json!({"blob": "x".repeat(2100)}), "over the limit of 2048"),
    ] {
        let (status, v) = admin_post(
            &app,
            &admin,
            "/admin/clients",
            json!({"name": "x", "claims": claims}),
        )
        .await;
        assert_eq!(status, 400, "{claims}: {v}");
        assert!(s(&v["error_description"]).contains(words), "{words}: {v}");
    }
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/clients",
        json!({"name": "x", "claims": ["not", "an", "object"]}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn the_cli_sets_claims_from_flags_or_a_file_and_the_console_shows_them() {
    let app = TestApp::spawn().await;
    let v = app.cli(&[
        "client",
        "create",
        "--name",
        "svc",
        "--scope",
        "read",
        "--claim",
        "tenant=\"acme\"",
        "--claim",
        "level=3",
        "--claim",
        "plain=hello",
    ]);
    let id = s(&v["client_id"]);
    assert_eq!(
        v["claims"],
        json!({"tenant": "acme", "level": 3, "plain": "hello"})
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), r#"{"roles": ["reader"]}"#).unwrap();
    let v = app.cli(&[
        "client",
        "update",
        &id,
        "--claims-file",
        file.path().to_str().unwrap(),
    ]);
    assert_eq!(v["claims"], json!({"roles": ["reader"]}));
    let out = app.cli_raw(
        &["client", "create", "--name", "bad", "--claim", "iss=\"me\""],
        true,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("iss"));
    let page = crate::console::client_page(&app, &id).await;
    assert!(page.contains("Claims") && page.contains("reader"), "{page}");
    let v = app.cli(&["client", "update", &id, "--no-claims"]);
    assert!(v.get("claims").is_none(), "{v}");
}

#[tokio::test]
async fn an_exchanged_token_carries_its_own_clients_claims_not_the_subjects() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (status, v) = admin_post(&app, &admin, "/admin/clients",
        json!({"name": "frontend", "scopes": ["pay"], "audiences": ["https://gateway.example.com"], "claims": {"tenant": "frontend-tenant"}})).await;
    assert_eq!(status, 201, "{v}");
    let t0 = app
        .token(&s(&v["client_id"]), &s(&v["client_secret"]))
        .await;
    let (status, v) = admin_post(&app, &admin, "/admin/clients",
        json!({"name": "gateway", "scopes": ["pay"], "audiences": ["https://orders.example.com"], "claims": {"tenant": "gateway-tenant"},
               "token_exchange": {"subject_audiences": ["https://gateway.example.com"]}})).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) =
        crate::exchange::exchange(&app, &s(&v["client_id"]), &s(&v["client_secret"]), &t0, &[])
            .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        segment(&s(&v["access_token"]), 1)["tenant"],
        "gateway-tenant"
    );
}
