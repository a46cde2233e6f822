//! Introspection (RFC 7662) and revocation (RFC 7009).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{json, s, segment, TestApp};

fn server_key(app: &TestApp) -> (String, EncodingKey) {
    let entry = std::fs::read_dir(app.dir.path().join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let kid = entry
        .path()
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let pem = std::fs::read(entry.path()).unwrap();
    (kid, EncodingKey::from_ec_pem(&pem).unwrap())
}

fn sign(alg: Algorithm, kid: &str, claims: &Value, key: &EncodingKey) -> String {
    let mut h = Header::new(alg);
    h.typ = Some("at+jwt".into());
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

#[tokio::test]
async fn introspection_answers_active_for_a_live_token_and_an_api_key() {
    let app = TestApp::spawn().await;
    let v = app.cli(&[
        "client",
        "create",
        "--name",
        "svc",
        "--scope",
        "read",
        "--audience",
        "https://api",
        "--owner",
        "team-a",
    ]);
    let (id, secret) = (s(&v["client_id"]), s(&v["client_secret"]));
    let token = app.token(&id, &secret).await;
    let a = app.introspect(&token).await;
    assert_eq!(a["active"], true);
    assert_eq!(a["client_id"], id.as_str());
    assert_eq!(a["sub"], id.as_str());
    assert_eq!(a["scope"], "read");
    assert_eq!(a["aud"], "https://api");
    assert_eq!(a["iss"], app.base.as_str());
    assert_eq!(a["token_type"], "Bearer");
    let claims = segment(&token, 1);
    for k in ["exp", "iat", "jti"] {
        assert_eq!(a[k], claims[k], "{k}");
    }
    let key = app.cli(&["api-key", "create", "--client", &id, "--name", "deploy"]);
    let a = app.introspect(&s(&key["secret_key"])).await;
    assert_eq!(a["active"], true);
    assert_eq!(a["token_type"], "api_key");
    assert_eq!(a["key_id"], key["id"]);
    assert_eq!(a["name"], "deploy");
    assert_eq!(a["owner"], "team-a");
    assert_eq!(a["client_id"], id.as_str());
}

#[tokio::test]
async fn introspection_requires_an_authenticated_caller_with_the_scope() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read", &[]);
    let token = app.token(&id, &secret).await;
    let url = app.url("/oauth/introspect");
    // Nobody.
    let (status, v) = json(
        app.http
            .post(&url)
            .form(&[("token", &token)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert!(v.get("active").is_none());
    // A client without tollgate:introspect.
    let r = app
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .form(&[("token", &token)])
        .send()
        .await
        .unwrap();
    let (status, v) = json(r).await;
    assert_eq!((status, s(&v["error"])), (401, "invalid_client".into()));
    // A bearer token without the scope: 403.
    let r = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .form(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A bearer token with the scope, and a JSON body.
    let (iid, isecret) = app.client("tollgate:introspect", &[]);
    let bearer = app.token(&iid, &isecret).await;
    let r = app
        .http
        .post(&url)
        .bearer_auth(&bearer)
        .json(&json!({"token": token, "token_type_hint": "access_token"}))
        .send()
        .await
        .unwrap();
    let (status, v) = json(r).await;
    assert_eq!((status, v["active"].as_bool()), (200, Some(true)));
}

#[tokio::test]
async fn introspection_answers_only_inactive_for_every_bad_token() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read", &[]);
    let good = app.token(&id, &secret).await;
    let claims = segment(&good, 1);
    let (kid, key) = server_key(&app);
    let now = claims["iat"].as_i64().unwrap();

    let mut tampered: Vec<String> = good.split('.').map(str::to_string).collect();
    tampered[1] = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!({"client_id": id, "scope": "admin"})).unwrap());
    let mut foreign = claims.clone();
    foreign["iss"] = json!("https://evil.example");
    let mut expired = claims.clone();
    expired["iat"] = json!(now - 100);
    expired["exp"] = json!(now - 10);
    let other_key = EncodingKey::from_ec_der(
        ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &ring::rand::SystemRandom::new(),
        )
        .unwrap()
        .as_ref(),
    );
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public_json = jwks["keys"][0].to_string();
    let header_none =
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "at+jwt", "kid": kid}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());

    let bad: Vec<(&str, String)> = vec![
        ("bad signature", tampered.join(".")),
        (
            "foreign issuer",
            sign(Algorithm::ES256, &kid, &foreign, &key),
        ),
        ("expired", sign(Algorithm::ES256, &kid, &expired, &key)),
        (
            "unknown kid",
            sign(Algorithm::ES256, "not-a-kid", &claims, &other_key),
        ),
        (
            "other key, our kid",
            sign(Algorithm::ES256, &kid, &claims, &other_key),
        ),
        ("alg none", format!("{header_none}.{payload}.")),
        (
            "HS256 with the public key",
            sign(
                Algorithm::HS256,
                &kid,
                &claims,
                &EncodingKey::from_secret(public_json.as_bytes()),
            ),
        ),
        ("garbage", "not a token at all".into()),
        (
            "unknown api key",
            "tg_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        ),
    ];
    assert_eq!(
        app.introspect(&sign(Algorithm::ES256, &kid, &claims, &key))
            .await["active"],
        true,
        "control: our re-signed token is active"
    );
    for (what, token) in bad {
        assert_eq!(
            app.introspect(&token).await,
            json!({"active": false}),
            "{what}"
        );
    }
}

#[tokio::test]
async fn revocation_is_seen_by_the_very_next_introspection_and_survives_restart() {
    let mut app = TestApp::spawn_with(&[("TOLLGATE_ISSUER", "https://tollgate.test")]).await;
    let (id, secret) = app.client("read", &[]);
    let (other, other_secret) = app.client("read", &[]);
    let token = app.token(&id, &secret).await;
    let others = app.token(&other, &other_secret).await;
    let url = app.url("/oauth/revoke");
    // Another client cannot revoke it: 200, but nothing happens.
    let r = app
        .http
        .post(&url)
        .basic_auth(&other, Some(&other_secret))
        .form(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.introspect(&token).await["active"], true);
    // Unknown tokens get 200 too.
    let r = app
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .form(&[("token", "garbage")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Unauthenticated revocation is refused.
    let r = app
        .http
        .post(&url)
        .form(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The owner revokes it: inactive at once.
    let r = app
        .http
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("token", token.as_str()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.introspect(&token).await, json!({"active": false}));
    assert_eq!(app.introspect(&others).await["active"], true);
    // An API key revoked through the same endpoint.
    let key = s(&app.cli(&["api-key", "create", "--client", &id])["secret_key"]);
    let r = app
        .http
        .post(&url)
        .json(&json!({"token": key, "client_id": id, "client_secret": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.introspect(&key).await, json!({"active": false}));
    app.restart();
    assert_eq!(app.introspect(&token).await, json!({"active": false}));
    assert_eq!(app.introspect(&key).await, json!({"active": false}));
    assert_eq!(app.introspect(&others).await["active"], true);
}

#[tokio::test]
async fn disabled_deleted_and_revoked_all_clients_lose_their_tokens() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read", &[]);
    let token = app.token(&id, &secret).await;
    let key = s(&app.cli(&["api-key", "create", "--client", &id])["secret_key"]);
    let from_key: Value = app
        .http
        .post(app.url("/authentication/token"))
        .json(&json!({"secret_key": key}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let from_key = s(&from_key["access_token"]);
    // Each command-line change is seen at once on SQLite, and within the
    // documented bound on PostgreSQL (it arrives as a notification).
    let seen = |what: &'static str, token: String, active: bool| {
        let app = &app;
        async move {
            crate::helpers::eventually(what, crate::helpers::cli_change_bound(), || async {
                app.introspect(&token).await["active"] == active
            })
            .await;
        }
    };
    app.cli(&["client", "disable", &id]);
    seen("disabled: token inactive", token.clone(), false).await;
    assert_eq!(app.introspect(&key).await["active"], false);
    let r = app.token_request(&id, &secret, None).await;
    assert_eq!(r.status(), 401);
    app.cli(&["client", "enable", &id]);
    seen("enabled: token active", token.clone(), true).await;
    // A token from a revoked API key dies with the key.
    let kid = s(&app.cli(&["api-key", "list", "--client", &id])[0]["id"]);
    assert_eq!(app.introspect(&from_key).await["active"], true);
    app.cli(&["api-key", "revoke", &kid]);
    seen("key revoked: its token inactive", from_key.clone(), false).await;
    // Revoke-all.
    app.cli(&["client", "revoke-tokens", &id]);
    seen("revoke-all", token.clone(), false).await;
    // Deleted.
    let (id2, secret2) = app.client("read", &[]);
    let token2 = app.token(&id2, &secret2).await;
    app.cli(&["client", "delete", &id2]);
    seen("deleted: token inactive", token2.clone(), false).await;
}
