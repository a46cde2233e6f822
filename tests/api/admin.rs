//! The admin API, its command-line twins, and the audit log.

use serde_json::{json, Value};

use crate::helpers::{json, s, segment, TestApp};

pub(crate) async fn call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    if r.status() == 204 {
        return (204, Value::Null);
    }
    json(r).await
}

use reqwest::Method;

#[tokio::test]
async fn admin_api_requires_an_admin_bearer_token() {
    let app = TestApp::spawn().await;
    let (status, v) = json(
        app.http
            .get(app.url("/admin/clients"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, s(&v["error"])), (401, "invalid_token".into()));
    let (id, secret) = app.client("read", &[]);
    let plain = app.token(&id, &secret).await;
    let (status, v) = call(&app, &plain, Method::GET, "/admin/clients", None).await;
    assert_eq!((status, s(&v["error"])), (403, "insufficient_scope".into()));
    let (status, _) = call(&app, "garbage", Method::GET, "/admin/clients", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn admin_manages_clients_end_to_end_with_audit() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let admin_id = s(&segment(&admin, 1)["client_id"]);
    let (status, c) = call(&app, &admin, Method::POST, "/admin/clients", Some(json!({"name": "billing", "scopes": ["read", "write"], "audiences": ["https://billing"], "owner": "team-b"}))).await;
    assert_eq!(status, 201, "{c}");
    let (id, secret) = (s(&c["client_id"]), s(&c["client_secret"]));
    let token = app.token(&id, &secret).await;
    assert_eq!(segment(&token, 1)["aud"], "https://billing");
    // show never includes the secret
    let (status, shown) = call(
        &app,
        &admin,
        Method::GET,
        &format!("/admin/clients/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(shown.get("client_secret").is_none());
    assert!(!shown.to_string().contains(&secret));
    // list is paginated
    for i in 0..3 {
        call(
            &app,
            &admin,
            Method::POST,
            "/admin/clients",
            Some(json!({"name": format!("c{i}")})),
        )
        .await;
    }
    let (_, page1) = call(&app, &admin, Method::GET, "/admin/clients?limit=2", None).await;
    assert_eq!(page1["data"].as_array().unwrap().len(), 2);
    let cursor = s(&page1["meta"]["next_cursor"]);
    let (_, page2) = call(
        &app,
        &admin,
        Method::GET,
        &format!("/admin/clients?limit=10&after={cursor}"),
        None,
    )
    .await;
    assert_eq!(
        page2["data"].as_array().unwrap().len(),
        3,
        "5 clients in all: admin + billing + 3"
    );
    // update
    let (status, u) = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/admin/clients/{id}"),
        Some(json!({"scopes": ["read"], "token_ttl": 60})),
    )
    .await;
    assert_eq!(status, 200, "{u}");
    assert_eq!(u["scopes"], json!(["read"]));
    let t = segment(&app.token(&id, &secret).await, 1);
    assert_eq!(
        (
            t["scope"].as_str(),
            t["exp"].as_i64().unwrap() - t["iat"].as_i64().unwrap()
        ),
        (Some("read"), 60)
    );
    let (status, v) = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/admin/clients/{id}"),
        Some(json!({"token_ttl": 999999})),
    )
    .await;
    assert_eq!((status, s(&v["error"])), (400, "invalid_request".into()));
    // disable / enable
    let (status, _) = call(
        &app,
        &admin,
        Method::POST,
        &format!("/admin/clients/{id}/disable"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let r = app.token_request(&id, &secret, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(app.introspect(&token).await["active"], false);
    call(
        &app,
        &admin,
        Method::POST,
        &format!("/admin/clients/{id}/enable"),
        None,
    )
    .await;
    assert_eq!(app.introspect(&token).await["active"], true);
    // revoke all tokens
    let (status, _) = call(
        &app,
        &admin,
        Method::POST,
        &format!("/admin/clients/{id}/revoke-tokens"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(app.introspect(&token).await["active"], false);
    // delete
    let (status, _) = call(
        &app,
        &admin,
        Method::DELETE,
        &format!("/admin/clients/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, v) = call(
        &app,
        &admin,
        Method::GET,
        &format!("/admin/clients/{id}"),
        None,
    )
    .await;
    assert_eq!((status, s(&v["error"])), (404, "not_found".into()));

    // Every action is in the audit log, with the admin as actor, via API and CLI.
    let (_, audit) = call(&app, &admin, Method::GET, "/admin/audit?limit=1000", None).await;
    let entries = audit["data"].as_array().unwrap();
    for action in [
        "client.create",
        "client.update",
        "client.disable",
        "client.enable",
        "client.revoke_tokens",
        "client.delete",
    ] {
        assert!(
            entries.iter().any(|e| e["action"] == action
                && e["actor"] == admin_id.as_str()
                && (e["target"] == id.as_str() || action == "client.create")),
            "missing {action}"
        );
    }
    let cli_audit = app.cli(&["audit", "list", "--limit", "1000"]);
    assert_eq!(cli_audit.as_array().unwrap().len(), entries.len());
    assert!(
        !audit.to_string().contains(&secret),
        "audit holds no secret"
    );
}

#[tokio::test]
async fn secret_rotation_keeps_the_old_secret_only_during_grace() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (id, old) = app.client("read", &[]);
    let (status, v) = call(
        &app,
        &admin,
        Method::POST,
        &format!("/admin/clients/{id}/rotate-secret"),
        Some(json!({"grace_seconds": 2})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let new = s(&v["client_secret"]);
    assert_ne!(new, old);
    let ok = |secret: String| {
        let app = &app;
        let id = id.clone();
        async move {
            app.token_request(&id, &secret, None)
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(ok(old.clone()).await, 200, "old secret inside grace");
    assert_eq!(ok(new.clone()).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(ok(old.clone()).await, 401, "old secret after grace");
    assert_eq!(ok(new.clone()).await, 200);
    // The CLI twin, with no grace: the previous secret stops at once.
    let v = app.cli(&["client", "rotate-secret", &id, "--grace", "0"]);
    let newest = s(&v["client_secret"]);
    crate::helpers::eventually(
        "previous secret refused",
        crate::helpers::cli_change_bound(),
        || async { ok(new.clone()).await == 401 },
    )
    .await;
    assert_eq!(ok(newest).await, 200);
    let (_, audit) = call(&app, &admin, Method::GET, "/admin/audit", None).await;
    assert_eq!(
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "client.rotate_secret")
            .count(),
        2
    );
}

#[tokio::test]
async fn api_keys_are_limited_listed_and_revoked() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (id, _) = app.client("read", &[]);
    let mut keys = Vec::new();
    for i in 0..5 {
        let (status, v) = call(
            &app,
            &admin,
            Method::POST,
            &format!("/admin/clients/{id}/api-keys"),
            Some(json!({"name": format!("k{i}")})),
        )
        .await;
        assert_eq!(status, 201, "{v}");
        keys.push(v);
    }
    let (status, v) = call(
        &app,
        &admin,
        Method::POST,
        &format!("/admin/clients/{id}/api-keys"),
        Some(json!({"name": "sixth"})),
    )
    .await;
    assert_eq!((status, s(&v["error"])), (409, "conflict".into()));
    assert!(s(&v["error_description"]).contains("maximum of 5"));
    let (status, list) = call(
        &app,
        &admin,
        Method::GET,
        &format!("/admin/clients/{id}/api-keys"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 5);
    for k in data {
        assert_eq!(k["state"], "active");
        assert_eq!(k["prefix"], "tg_live_");
        assert!(k.get("secret_key").is_none());
    }
    for k in &keys {
        assert!(!list.to_string().contains(&s(&k["secret_key"])));
    }
    // Revoke one: it stops working at once, and a new one fits.
    let first = s(&keys[0]["id"]);
    let (status, v) = call(
        &app,
        &admin,
        Method::POST,
        &format!("/admin/api-keys/{first}/revoke"),
        None,
    )
    .await;
    assert_eq!((status, s(&v["state"])), (200, "revoked".into()));
    let r = app
        .http
        .post(app.url("/authentication/token"))
        .json(&json!({"secret_key": keys[0]["secret_key"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, _) = call(
        &app,
        &admin,
        Method::POST,
        &format!("/admin/clients/{id}/api-keys"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201);
    // The CLI twin refuses the next one too.
    let out = app.cli_raw(&["api-key", "create", "--client", &id], true);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("maximum of 5"));
}

#[tokio::test]
async fn api_key_limit_is_configurable() {
    let app = TestApp::spawn_with(&[("TOLLGATE_MAX_API_KEYS_PER_CLIENT", "1")]).await;
    let (id, _) = app.client("read", &[]);
    app.cli(&["api-key", "create", "--client", &id]);
    let out = app.cli_raw(&["api-key", "create", "--client", &id], true);
    assert!(String::from_utf8_lossy(&out.stderr).contains("maximum of 1"));
}

#[tokio::test]
async fn signing_key_rotation_prepublishes_and_keeps_old_tokens_verifiable() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (id, secret) = app.client("read", &[]);
    let old_token = app.token(&id, &secret).await;
    let old_kid = s(&segment(&old_token, 0)["kid"]);
    let (status, rec) = call(
        &app,
        &admin,
        Method::POST,
        "/admin/signing-keys/rotate",
        Some(json!({"prepublish_seconds": 2, "alg": "EdDSA"})),
    )
    .await;
    assert_eq!(status, 201, "{rec}");
    let new_kid = s(&rec["kid"]);
    // Published at once, but not yet signing.
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| s(&k["kid"]))
        .collect();
    assert!(
        kids.contains(&new_kid) && kids.contains(&old_kid),
        "{kids:?}"
    );
    assert_eq!(
        segment(&app.token(&id, &secret).await, 0)["kid"],
        old_kid.as_str()
    );
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    let new_token = app.token(&id, &secret).await;
    assert_eq!(segment(&new_token, 0)["kid"], new_kid.as_str());
    assert_eq!(segment(&new_token, 0)["alg"], "EdDSA");
    // The old key stays published and its tokens stay active.
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == old_kid.as_str()));
    assert_eq!(app.introspect(&old_token).await["active"], true);
    assert_eq!(app.introspect(&new_token).await["active"], true);
    // The CLI twin: list shows the old key retired.
    let keys = app.cli(&["signing-key", "list"]);
    let old = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == old_kid.as_str())
        .unwrap();
    assert!(old["retired_at"].is_i64());
    let (_, audit) = call(&app, &admin, Method::GET, "/admin/audit", None).await;
    let actions: Vec<String> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["action"]))
        .collect();
    assert!(
        actions.contains(&"signing_key.rotate".to_string())
            && actions.contains(&"signing_key.retire".to_string())
    );
}

#[tokio::test]
async fn cli_signing_key_rotation_reaches_the_running_server_within_a_second() {
    let app = TestApp::spawn().await;
    let rec = app.cli(&["signing-key", "rotate", "--prepublish", "0"]);
    let new_kid = s(&rec[0]["kid"]);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (id, secret) = app.client("read", &[]);
    assert_eq!(
        segment(&app.token(&id, &secret).await, 0)["kid"],
        new_kid.as_str()
    );
}

#[tokio::test]
async fn api_key_last_use_is_recorded_in_the_background_and_on_shutdown() {
    let mut app = TestApp::spawn().await;
    let (id, _) = app.client("read", &[]);
    let key = app.cli(&["api-key", "create", "--client", &id]);
    assert!(key["last_used_at"].is_null());
    let r = app
        .http
        .post(app.url("/authentication/token"))
        .json(&json!({"secret_key": key["secret_key"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.signal("TERM");
    assert!(app.wait_exit(20).expect("exits").success());
    let list = app.cli(&["api-key", "list", "--client", &id]);
    assert!(list[0]["last_used_at"].as_i64().is_some(), "{list}");
}

#[tokio::test]
async fn an_admin_cannot_lock_itself_out_through_the_api() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let me = s(&segment(&admin, 1)["client_id"]);
    for (method, path) in [
        (Method::POST, format!("/admin/clients/{me}/disable")),
        (Method::POST, format!("/admin/clients/{me}/revoke-tokens")),
        (Method::DELETE, format!("/admin/clients/{me}")),
    ] {
        let (status, v) = call(&app, &admin, method, &path, None).await;
        assert_eq!((status, s(&v["error"])), (409, "conflict".into()), "{path}");
    }
    let (status, _) = call(&app, &admin, Method::GET, "/admin/clients", None).await;
    assert_eq!(status, 200, "still an admin");
    // The command line can: at once on SQLite, within the documented bound
    // on PostgreSQL (the change arrives as a notification).
    app.cli(&["client", "disable", &me]);
    crate::helpers::eventually(
        "the disabled admin refused",
        crate::helpers::cli_change_bound(),
        || async {
            call(&app, &admin, Method::GET, "/admin/clients", None)
                .await
                .0
                == 401
        },
    )
    .await;
}

#[tokio::test]
async fn cli_seeds_clients_with_progress_and_prunes() {
    let app = TestApp::spawn().await;
    let out = app.cli_raw(
        &[
            "client", "seed", "--count", "120", "--show", "2", "--scope", "read",
        ],
        true,
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("120/120 clients stored"));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["created"], 120);
    let first = &v["clients"][0];
    let token = app
        .token(&s(&first["client_id"]), &s(&first["client_secret"]))
        .await;
    assert_eq!(segment(&token, 1)["scope"], "read");
    assert_eq!(
        app.cli(&["client", "list", "--limit", "1000"])
            .as_array()
            .unwrap()
            .len(),
        120
    );
    assert_eq!(app.cli(&["prune"])["pruned"], 0);
}
