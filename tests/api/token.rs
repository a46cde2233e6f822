//! The token endpoints, JWKS, metadata and health.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{json, s, segment, TestApp};
use crate::verify::verify_with_jwks;

const API: &str = "https://api.example.com";

async fn jwks(app: &TestApp) -> Value {
    app.http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn token_with_basic_and_form_is_an_rfc9068_jwt_verified_against_jwks() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read write", &[API]);
    let r = app.token_request(&id, &secret, None).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    let (status, body) = json(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read write");
    let token = s(&body["access_token"]);
    let header = segment(&token, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let claims = verify_with_jwks(&token, &jwks(&app).await).expect("independent verification");
    assert_eq!(claims["iss"], app.base.as_str());
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["scope"], "read write");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    let jti = s(&claims["jti"]);
    assert!(jti.len() >= 22, "jti has at least 128 bits: {jti}");
    // A tampered payload fails the same independent check.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!({"sub": "someone-else"})).unwrap());
    parts[1] = &forged;
    assert!(verify_with_jwks(&parts.join("."), &jwks(&app).await).is_err());
}

#[tokio::test]
async fn token_accepts_the_json_body_as_it_stands() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read", &["https://other.example", API]);
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .json(&json!({"audience": API, "grant_type": "client_credentials", "client_id": id, "client_secret": secret}))
        .send()
        .await
        .unwrap();
    let (status, body) = json(r).await;
    assert_eq!(status, 200, "{body}");
    let claims = segment(&s(&body["access_token"]), 1);
    assert_eq!(claims["aud"], API);
}

#[tokio::test]
async fn token_accepts_form_body_credentials_and_repeated_resources() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read write", &["https://a.example", "https://b.example"]);
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={id}&client_secret={secret}&scope=write&resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example"
        ))
        .send()
        .await
        .unwrap();
    let (status, body) = json(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "write");
    let claims = segment(&s(&body["access_token"]), 1);
    assert_eq!(
        claims["aud"],
        json!(["https://a.example", "https://b.example"])
    );
}

#[tokio::test]
async fn token_rejects_unknown_client_and_wrong_secret_identically_with_401() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read", &[]);
    let wrong = app.token_request(&id, &format!("{secret}x"), None).await;
    let unknown = app.token_request("tgc_nobody", &secret, None).await;
    assert_eq!(
        wrong.headers()["www-authenticate"],
        r#"Basic realm="tollgate""#
    );
    assert_eq!(
        unknown.headers()["www-authenticate"],
        r#"Basic realm="tollgate""#
    );
    let (a, body_a) = json(wrong).await;
    let (b, body_b) = json(unknown).await;
    assert_eq!((a, b), (401, 401));
    assert_eq!(body_a["error"], "invalid_client");
    assert_eq!(body_a, body_b);
    // No credentials at all is invalid_client too.
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (status, body) = json(r).await;
    assert_eq!(
        (status, s(&body["error"])),
        (401, "invalid_client".to_string())
    );
}

#[tokio::test]
async fn token_errors_follow_rfc6749_section_5_2() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read", &[API]);
    let cases: Vec<(Value, Option<bool>, u16, &str)> = vec![
        // (body, use basic?, status, error)
        (
            json!({"grant_type": "client_credentials", "client_id": id, "client_secret": secret}),
            Some(true),
            400,
            "invalid_request",
        ),
        (
            json!({"client_id": id, "client_secret": secret}),
            None,
            400,
            "invalid_request",
        ),
        (
            json!({"grant_type": "password", "client_id": id, "client_secret": secret}),
            None,
            400,
            "unsupported_grant_type",
        ),
        (
            json!({"grant_type": "client_credentials", "client_id": id, "client_secret": secret, "scope": "read admin"}),
            None,
            400,
            "invalid_scope",
        ),
        (
            json!({"grant_type": "client_credentials", "client_id": id, "client_secret": secret, "audience": "https://evil.example"}),
            None,
            400,
            "invalid_target",
        ),
        (
            json!({"grant_type": "client_credentials", "client_id": id, "client_secret": secret, "resource": "not a uri"}),
            None,
            400,
            "invalid_target",
        ),
        (
            json!({"grant_type": "client_credentials", "client_id": id}),
            None,
            401,
            "invalid_client",
        ),
    ];
    for (body, basic, status, error) in cases {
        let mut req = app.http.post(app.url("/oauth/token")).json(&body);
        if basic.is_some() {
            req = req.basic_auth(&id, Some(&secret));
        }
        let (got, v) = json(req.send().await.unwrap()).await;
        assert_eq!(
            (got, v["error"].as_str().unwrap()),
            (status, error),
            "{body} -> {v}"
        );
        assert!(v["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
    }
}

#[tokio::test]
async fn wrong_content_type_method_and_path_get_json_errors() {
    let app = TestApp::spawn().await;
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    let (status, v) = json(r).await;
    assert_eq!(
        (status, s(&v["error"])),
        (415, "unsupported_media_type".into())
    );
    let (status, v) = json(app.http.get(app.url("/oauth/token")).send().await.unwrap()).await;
    assert_eq!((status, s(&v["error"])), (405, "method_not_allowed".into()));
    let (status, v) = json(app.http.get(app.url("/nope")).send().await.unwrap()).await;
    assert_eq!((status, s(&v["error"])), (404, "not_found".into()));
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "application/json")
        .body("{\"grant_type\":")
        .send()
        .await
        .unwrap();
    let (status, v) = json(r).await;
    assert_eq!((status, s(&v["error"])), (400, "invalid_request".into()));
}

#[tokio::test]
async fn api_key_exchanges_for_a_token_by_json_form_and_header() {
    let app = TestApp::spawn().await;
    let (id, _) = app.client("read", &[API]);
    let key = app.cli(&["api-key", "create", "--client", &id, "--name", "ci"]);
    let secret_key = s(&key["secret_key"]);
    assert!(secret_key.starts_with("tg_live_"), "{secret_key}");
    assert!(secret_key.len() >= "tg_live_".len() + 43);
    let url = app.url("/authentication/token");
    let attempts = vec![
        app.http.post(&url).json(&json!({"secret_key": secret_key})),
        app.http.post(&url).form(&[("secret_key", &secret_key)]),
        app.http.post(&url).header("x-api-key", &secret_key),
    ];
    for req in attempts {
        let (status, body) = json(req.send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        let claims = verify_with_jwks(&s(&body["access_token"]), &jwks(&app).await).unwrap();
        assert_eq!(claims["client_id"], id.as_str());
        assert_eq!(claims["aud"], API);
        assert_eq!(claims["api_key_id"], key["id"]);
    }
    let (status, v) = json(
        app.http
            .post(&url)
            .json(&json!({"secret_key": "tg_live_wrong"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, s(&v["error"])), (401, "invalid_client".into()));
    // The key is never shown again and only its digest is stored.
    let list = app.cli(&["api-key", "list", "--client", &id]);
    assert!(!list.to_string().contains(&secret_key));
    assert_eq!(list[0]["last4"], &secret_key[secret_key.len() - 4..]);
    let stored = app.stored_text().await;
    assert!(stored.contains(&id), "the dump holds the client");
    assert!(!stored.contains(&secret_key[8..]));
}

#[tokio::test]
async fn api_key_prefix_is_configurable() {
    let app = TestApp::spawn_with(&[("TOLLGATE_API_KEY_PREFIX", "sp_live_")]).await;
    let (id, _) = app.client("read", &[]);
    let key = s(&app.cli(&["api-key", "create", "--client", &id])["secret_key"]);
    assert!(key.starts_with("sp_live_"));
    let r = app
        .http
        .post(app.url("/authentication/token"))
        .json(&json!({"secret_key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn published_oauth2_client_library_fetches_a_token() {
    use oauth2::basic::BasicClient;
    use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read write", &[API]);
    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret))
        .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap());
    let http = oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("read".into()))
        .request_async(&http)
        .await
        .expect("oauth2 crate gets a token");
    assert_eq!(token.scopes().unwrap()[0].as_str(), "read");
    let claims = verify_with_jwks(token.access_token().secret(), &jwks(&app).await).unwrap();
    assert_eq!(claims["client_id"], id.as_str());
}

#[tokio::test]
async fn eddsa_rs256_and_ps256_tokens_verify_independently() {
    for alg in ["EdDSA", "RS256", "PS256"] {
        let app = TestApp::spawn_with(&[("TOLLGATE_SIGNING_ALG", alg)]).await;
        let (id, secret) = app.client("read", &[]);
        let token = app.token(&id, &secret).await;
        assert_eq!(segment(&token, 0)["alg"], alg);
        let keys = jwks(&app).await;
        assert_eq!(keys["keys"][0]["alg"], alg);
        let claims = verify_with_jwks(&token, &keys).unwrap();
        // No audience configured: the issuer is the audience.
        assert_eq!(claims["aud"], app.base.as_str());
        assert_eq!(app.introspect(&token).await["active"], true);
    }
}

#[tokio::test]
async fn a_ps256_key_rotated_in_signs_and_survives_a_restart() {
    let mut app = TestApp::spawn().await;
    let rec = app.cli(&[
        "signing-key",
        "rotate",
        "--alg",
        "PS256",
        "--prepublish",
        "0",
    ]);
    assert_eq!(rec[0]["alg"], "PS256", "{rec}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (id, secret) = app.client("read", &[]);
    let token = app.token(&id, &secret).await;
    assert_eq!(segment(&token, 0)["alg"], "PS256");
    assert!(verify_with_jwks(&token, &jwks(&app).await).is_ok());
    // The PEM file is an RSA key like RS256's: the record keeps it PS256.
    app.restart();
    let (id, secret) = app.client("read", &[]);
    let token = app.token(&id, &secret).await;
    assert_eq!(segment(&token, 0)["alg"], "PS256");
    assert_eq!(app.introspect(&token).await["active"], true);
}

#[tokio::test]
async fn ttl_follows_the_client_and_is_capped_by_the_server() {
    let app = TestApp::spawn_with(&[("TOLLGATE_MAX_TOKEN_TTL", "7200")]).await;
    let v = app.cli(&["client", "create", "--name", "short", "--ttl", "120"]);
    let token = app
        .token(&s(&v["client_id"]), &s(&v["client_secret"]))
        .await;
    let c = segment(&token, 1);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 120);
    let out = app.cli_raw(
        &["client", "create", "--name", "long", "--ttl", "90000"],
        true,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token_ttl"));
}

#[tokio::test]
async fn jwks_metadata_and_health_are_served() {
    let app = TestApp::spawn().await;
    let keys = jwks(&app).await;
    let k = &keys["keys"][0];
    assert_eq!(
        (k["kty"].as_str(), k["alg"].as_str(), k["use"].as_str()),
        (Some("EC"), Some("ES256"), Some("sig"))
    );
    assert!(k.get("d").is_none(), "no private part");
    let kid = s(&k["kid"]);
    assert!(app
        .dir
        .path()
        .join("keys")
        .join(format!("{kid}.pem"))
        .exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(app.dir.path().join("keys").join(format!("{kid}.pem")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (status, m) = json(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(m["issuer"], app.base.as_str());
    assert_eq!(m["token_endpoint"], app.url("/oauth/token"));
    assert_eq!(m["jwks_uri"], app.url("/.well-known/jwks.json"));
    assert!(m["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("client_credentials")));
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "tls_client_auth",
            "self_signed_tls_client_auth"
        ])
    );
    assert!(m["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("urn:ietf:params:oauth:grant-type:jwt-bearer")));
    let (status, h) = json(app.http.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!((status, h["status"].as_str()), (200, Some("ok")));
    let (status, _) = json(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn clients_keys_and_signing_key_survive_a_restart() {
    let mut app = TestApp::spawn_with(&[("TOLLGATE_ISSUER", "https://tollgate.test")]).await;
    let (id, secret) = app.client("read", &[]);
    let kid_before = s(&jwks(&app).await["keys"][0]["kid"]);
    let token_before = app.token(&id, &secret).await;
    app.restart();
    assert_eq!(s(&jwks(&app).await["keys"][0]["kid"]), kid_before);
    let token_after = app.token(&id, &secret).await;
    assert_eq!(segment(&token_after, 0)["kid"], kid_before.as_str());
    assert_eq!(app.introspect(&token_before).await["active"], true);
}

#[tokio::test]
async fn bad_configuration_stops_startup_with_one_line_naming_the_setting() {
    let app = TestApp::spawn().await;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
    let out = cmd
        .current_dir(app.dir.path())
        .env("TOLLGATE_SIGNING_ALG", "HS256")
        .env("TOLLGATE_DB", app.dir.path().join("x.db"))
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("TOLLGATE_SIGNING_ALG"), "{err}");
    assert!(!err.contains("panicked"));
}

#[tokio::test]
async fn logs_of_a_full_run_hold_no_secret_key_or_token() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read tollgate:introspect", &[]);
    let token = app.token(&id, &secret).await;
    let key = s(&app.cli(&["api-key", "create", "--client", &id])["secret_key"]);
    let _ = app
        .http
        .post(app.url("/authentication/token"))
        .json(&json!({"secret_key": key}))
        .send()
        .await
        .unwrap();
    let _ = app
        .http
        .post(app.url(&format!("/oauth/token?client_secret={secret}")))
        .send()
        .await
        .unwrap();
    let _ = app
        .http
        .post(app.url("/oauth/token"))
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}x"))),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let _ = app.introspect(&token).await;
    // A caller that swapped its fields sends its secret as the client id.
    let _ = app.token_request(&secret, &id, None).await;
    let logs = app.logs();
    assert!(logs.contains("POST /oauth/token"), "logging is on: {logs}");
    for needle in [&secret[4..], &key[8..], token.as_str(), &token[..60]] {
        assert!(!logs.contains(needle), "log leaks a secret");
    }
}
