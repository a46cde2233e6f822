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

/// Issue 23 (N7): moving a client to `private_key_jwt` ends its secrets;
/// moving it back leaves it without one until `rotate-secret`, and the old
/// secret never works again.
#[tokio::test]
async fn switching_to_a_keyless_method_and_back_does_not_revive_the_old_secret() {
    use crate::admin::call;
    use crate::private_key_jwt::es256;
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (id, secret) = app.client("read", &[]);
    let path = format!("/admin/clients/{id}");
    let key = es256("k1");
    let (status, v) = call(
        &app,
        &admin,
        Method::PATCH,
        &path,
        Some(
            serde_json::json!({"token_endpoint_auth_method": "private_key_jwt",
                                "jwks": {"keys": [key.jwk.clone()]}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let tried = |secret: String| {
        let (app, id) = (&app, id.clone());
        async move {
            app.http
                .post(app.url("/oauth/token"))
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(tried(secret.clone()).await, 401);
    let (status, v) = call(
        &app,
        &admin,
        Method::PATCH,
        &path,
        Some(
            serde_json::json!({"token_endpoint_auth_method": "client_secret_basic", "jwks": null}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        tried(secret.clone()).await,
        401,
        "the old secret stays dead"
    );
    let (status, v) = call(
        &app,
        &admin,
        Method::POST,
        &format!("{path}/rotate-secret"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        tried(s(&v["client_secret"])).await,
        200,
        "a rotated secret works"
    );
    assert_eq!(tried(secret).await, 401);
}

/// Issue 23 (N8): an anonymous caller whose assertion names a trusted issuer
/// whose keys cannot be fetched learns nothing of why (addresses, DNS,
/// HTTP status); the log has the reason.
#[tokio::test]
async fn federation_key_fetch_failures_are_not_described_to_the_caller() {
    use crate::private_key_jwt::{admin_post, es256, jti, now, sign};
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for issuer in ["https://127.0.0.1:9", "https://internal-only.invalid"] {
        let (status, v) = admin_post(
            &app,
            &admin,
            "/admin/federation/issuers",
            serde_json::json!({"issuer": issuer}),
        )
        .await;
        assert_eq!(status, 201, "{v}");
        let token = sign(
            &es256("k"),
            &serde_json::json!({"iss": issuer, "sub": "x", "aud": "tollgate",
                                "exp": now() + 60, "iat": now(), "jti": jti()}),
        );
        let (status, v) = json(
            app.http
                .post(app.url("/oauth/token"))
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", token.as_str()),
                ])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "{v}");
        let d = s(&v["error_description"]);
        assert!(d.contains("the issuer's keys could not be fetched"), "{v}");
        for leak in [
            "127.0.0.1",
            "resolve",
            "public address",
            "status",
            "lookup",
            ".invalid",
        ] {
            assert!(!d.contains(leak), "{leak} in {d}");
        }
    }
    let logs = app.logs();
    assert!(logs.contains("could not be fetched:"), "{logs}");
}

/// Issue 24 (5): every client-authentication failure that depends on
/// whether the client exists reads the same: an unknown client id, a known
/// client on another method, a disabled client and a wrong key, by
/// private_key_jwt and by client secret.
#[tokio::test]
async fn an_unknown_client_and_a_wrong_credential_are_indistinguishable() {
    use crate::private_key_jwt::{es256, jti, now, register, sign, token_with};
    let app = TestApp::spawn_with(&[
        ("TOLLGATE_AUTH_FAIL_PAIR_LIMIT", "1000"),
        ("TOLLGATE_AUTH_FAIL_IP_LIMIT", "1000"),
    ])
    .await;
    let admin = app.admin_token().await;
    let key = es256("k1");
    let jwt_client = register(&app, &admin, &[&key], &["read"]).await;
    let (secret_client, secret) = app.client("read", &[]);
    let (disabled, _) = app.client("read", &[]);
    app.cli(&["client", "disable", &disabled]);
    let assertion = |id: &str, k: &crate::private_key_jwt::Key| {
        sign(
            k,
            &serde_json::json!({"iss": id, "sub": id, "aud": app.url("/oauth/token"),
                                "iat": now(), "exp": now() + 60, "jti": jti()}),
        )
    };
    let mut answers = Vec::new();
    for (what, jwt) in [
        ("unknown id", assertion("tgc_AAAAAAAAAAAAAAAAAAAAAA", &key)),
        ("secret client", assertion(&secret_client, &key)),
        ("disabled client", assertion(&disabled, &key)),
        ("wrong key", assertion(&jwt_client, &es256("k1"))),
        ("unknown kid", assertion(&jwt_client, &es256("k2"))),
    ] {
        let (status, v) = token_with(&app, &jwt, &[]).await;
        answers.push((what, status, v));
    }
    let basic = |id: String, secret: String| {
        let app = &app;
        async move {
            let r = app.token_request(&id, &secret, None).await;
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (status, v) = basic("tgc_AAAAAAAAAAAAAAAAAAAAAA".into(), secret.clone()).await;
    answers.push(("unknown id, secret", status, v));
    let (status, v) = basic(secret_client.clone(), "tgs_wrong".into()).await;
    answers.push(("wrong secret", status, v));
    let (status, v) = basic(jwt_client.clone(), secret.clone()).await;
    answers.push(("private_key_jwt client, secret", status, v));
    let first = (answers[0].1, answers[0].2.clone());
    assert_eq!(first.0, 401);
    assert_eq!(first.1["error"], "invalid_client");
    for (what, status, v) in &answers {
        assert_eq!((*status, v), (first.0, &first.1), "{what}");
    }
}
