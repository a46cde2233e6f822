//! `private_key_jwt` client authentication (RFC 7523 §2.2, §3): clients
//! registered with public keys, inline or at a `jwks_uri`, authenticate at
//! the token, introspection and revocation endpoints with signed
//! assertions; every check refuses with `401 invalid_client` naming it.

use p256::pkcs8::EncodePrivateKey;
use serde_json::{json, Value};

use crate::helpers::{json, s, TestApp};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A key pair made in the test: what signs, and its public JWK.
pub(crate) struct Key {
    pub(crate) kid: String,
    pub(crate) enc: jsonwebtoken::EncodingKey,
    pub(crate) jwk: Value,
}

pub(crate) fn es256(kid: &str) -> Key {
    let sk = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let der = sk.to_pkcs8_der().expect("pkcs8");
    let public = p256::PublicKey::from(sk.verifying_key());
    let mut jwk: Value = serde_json::from_str(&public.to_jwk_string()).expect("jwk");
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!("ES256");
    jwk["use"] = json!("sig");
    Key {
        kid: kid.into(),
        enc: jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()),
        jwk,
    }
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn jti() -> String {
    format!(
        "{:x}{:x}",
        rand_core::RngCore::next_u64(&mut rand_core::OsRng),
        now()
    )
}

/// Valid claims for `client_id` at `app`.
pub(crate) fn claims(app: &TestApp, client_id: &str) -> Value {
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": app.url("/oauth/token"),
        "iat": now(),
        "exp": now() + 300,
        "jti": jti(),
    })
}

pub(crate) fn sign(key: &Key, claims: &Value) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&h, claims, &key.enc).expect("sign")
}

pub(crate) async fn admin_post(
    app: &TestApp,
    admin: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    json(
        app.http
            .post(app.url(path))
            .bearer_auth(admin)
            .json(&body)
            .send()
            .await
            .expect("admin"),
    )
    .await
}

/// Registers a private_key_jwt client with `keys` inline, holding `scopes`.
pub(crate) async fn register(app: &TestApp, admin: &str, keys: &[&Key], scopes: &[&str]) -> String {
    let jwks = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    let (status, v) = admin_post(
        app,
        admin,
        "/admin/clients",
        json!({"name": "workload", "scopes": scopes, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert!(v.get("client_secret").is_none(), "no secret: {v}");
    assert_eq!(v["token_endpoint_auth_method"], "private_key_jwt");
    s(&v["client_id"])
}

pub(crate) async fn token_with(
    app: &TestApp,
    assertion: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    form.extend_from_slice(extra);
    json(
        app.http
            .post(app.url("/oauth/token"))
            .form(&form)
            .send()
            .await
            .expect("token"),
    )
    .await
}

#[tokio::test]
async fn a_signed_assertion_gets_a_token_once_and_every_check_refuses() {
    // More failures than the default throttle lets through in a minute.
    let app = TestApp::spawn_with(&[
        ("TOLLGATE_AUTH_FAIL_PAIR_LIMIT", "1000"),
        ("TOLLGATE_AUTH_FAIL_IP_LIMIT", "1000"),
    ])
    .await;
    let admin = app.admin_token().await;
    let key = es256("k1");
    let id = register(&app, &admin, &[&key], &["read"]).await;

    // Valid: a form body without client_id, then JSON with it.
    let good = sign(&key, &claims(&app, &id));
    let (status, v) = token_with(&app, &good, &[]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        crate::helpers::segment(&s(&v["access_token"]), 1)["client_id"],
        id.as_str()
    );
    let (status, v) = json(
        app.http
            .post(app.url("/oauth/token"))
            .json(&json!({
                "grant_type": "client_credentials",
                "client_id": id,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": sign(&key, &claims(&app, &id)),
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "JSON body: {v}");

    // Replay of the first assertion.
    let (status, v) = token_with(&app, &good, &[]).await;
    assert_eq!((status, s(&v["error"])), (401, "invalid_client".into()));
    assert!(s(&v["error_description"]).contains("jti"), "{v}");

    // Each claim check, by name.
    let mut cases: Vec<(&str, Value, &str)> = Vec::new();
    let base = claims(&app, &id);
    let with = |k: &str, val: Value| {
        let mut c = base.clone();
        c[k] = val;
        c["jti"] = json!(jti());
        c
    };
    cases.push((
        "aud elsewhere",
        with("aud", json!("https://elsewhere")),
        "aud",
    ));
    cases.push((
        "aud with two values",
        with("aud", json!([app.url("/oauth/token"), "https://x"])),
        "aud",
    ));
    cases.push(("iss not the client", with("iss", json!("someone")), "iss"));
    cases.push(("expired", with("exp", json!(now() - 600)), "expired"));
    cases.push((
        "exp too far ahead",
        with("exp", json!(now() + 7200)),
        "3600 seconds",
    ));
    cases.push((
        "iat in the future",
        with("iat", json!(now() + 600)),
        "future",
    ));
    cases.push((
        "nbf in the future",
        with("nbf", json!(now() + 600)),
        "future",
    ));
    let mut no_jti = base.clone();
    no_jti.as_object_mut().unwrap().remove("jti");
    cases.push(("no jti", no_jti, "jti"));
    let mut no_exp = with("jti", json!(jti()));
    no_exp.as_object_mut().unwrap().remove("exp");
    cases.push(("no exp", no_exp, "exp"));
    for (what, c, says) in cases {
        let (status, v) = token_with(&app, &sign(&key, &c), &[]).await;
        assert_eq!(
            (status, s(&v["error"])),
            (401, "invalid_client".into()),
            "{what}: {v}"
        );
        assert!(s(&v["error_description"]).contains(says), "{what}: {v}");
    }
    // The issuer identifier alone is an accepted aud, also as a one-element array.
    let issuer = app.url("");
    for aud in [json!(issuer), json!([issuer])] {
        let (status, v) = token_with(&app, &sign(&key, &with("aud", aud.clone())), &[]).await;
        assert_eq!(status, 200, "aud {aud}: {v}");
    }
}

#[tokio::test]
async fn signatures_keys_and_algorithms_are_checked() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let key = es256("k1");
    let id = register(&app, &admin, &[&key], &[]).await;
    let refused = |v: &Value, says: &str| {
        assert_eq!(s(&v["error"]), "invalid_client", "{v}");
        assert!(s(&v["error_description"]).contains(says), "{says}: {v}");
    };
    // Checks of the client's keys depend on the client: one description for
    // all of them (issue 24), the reason in the log.
    let generic = |v: &Value, logged: &str| {
        assert_eq!(s(&v["error"]), "invalid_client", "{v}");
        assert_eq!(
            s(&v["error_description"]),
            "client authentication failed",
            "{v}"
        );
        assert!(app.logs().contains(logged), "{logged}");
    };
    // Another key claiming the registered kid: the signature fails.
    let other = es256("k1");
    let (status, v) = token_with(&app, &sign(&other, &claims(&app, &id)), &[]).await;
    assert_eq!(status, 401);
    generic(&v, "signature does not verify");
    // An unknown kid.
    let (status, v) = token_with(&app, &sign(&es256("k9"), &claims(&app, &id)), &[]).await;
    assert_eq!(status, 401);
    generic(&v, "has the assertion's kid");
    // HS256 with the public key's text as the MAC key: never accepted.
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some("k1".into());
    let hs = jsonwebtoken::encode(
        &h,
        &claims(&app, &id),
        &jsonwebtoken::EncodingKey::from_secret(key.jwk.to_string().as_bytes()),
    )
    .unwrap();
    let (status, v) = token_with(&app, &hs, &[]).await;
    assert_eq!(status, 401);
    refused(&v, "alg");
    // alg none.
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "k1"})),
        b64(&claims(&app, &id))
    );
    let (status, v) = token_with(&app, &none, &[]).await;
    assert_eq!(status, 401, "{v}");
    // A typ of another kind of JWT (an access token, a DPoP proof).
    for typ in ["at+jwt", "dpop+jwt"] {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some("k1".into());
        h.typ = Some(typ.into());
        let jwt = jsonwebtoken::encode(&h, &claims(&app, &id), &key.enc).unwrap();
        let (status, v) = token_with(&app, &jwt, &[]).await;
        assert_eq!(status, 401, "{typ}");
        refused(&v, "typ");
    }
    // The typ RFC 7523bis names is accepted.
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("k1".into());
    h.typ = Some("client-authentication+jwt".into());
    let jwt = jsonwebtoken::encode(&h, &claims(&app, &id), &key.enc).unwrap();
    assert_eq!(token_with(&app, &jwt, &[]).await.0, 200);
    // A client_id that is not the assertion's.
    let (other_id, _) = app.client("", &[]);
    let (status, _) = token_with(
        &app,
        &sign(&key, &claims(&app, &id)),
        &[("client_id", other_id.as_str())],
    )
    .await;
    assert_eq!(status, 401);
    // Combined with a secret: invalid_request.
    let (status, v) = token_with(
        &app,
        &sign(&key, &claims(&app, &id)),
        &[("client_id", id.as_str()), ("client_secret", "x")],
    )
    .await;
    assert_eq!((status, s(&v["error"])), (400, "invalid_request".into()));
}

#[tokio::test]
async fn methods_do_not_cross_and_keys_rotate() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let old = es256("old");
    let id = register(&app, &admin, &[&old], &[]).await;
    // A secret client cannot authenticate with an assertion...
    let (secret_id, secret) = app.client("", &[]);
    let (status, v) = token_with(&app, &sign(&old, &claims(&app, &secret_id)), &[]).await;
    assert_eq!(status, 401, "{v}");
    // The same answer as an unknown client (issue 24); the log says why.
    assert_eq!(
        s(&v["error_description"]),
        "client authentication failed",
        "{v}"
    );
    assert!(app.logs().contains("not registered for private_key_jwt"));
    assert_eq!(
        app.token_request(&secret_id, &secret, None).await.status(),
        200
    );
    // ...and the private_key_jwt client has no secret to rotate.
    let (status, v) = admin_post(
        &app,
        &admin,
        &format!("/admin/clients/{id}/rotate-secret"),
        json!({}),
    )
    .await;
    assert_eq!(status, 400, "{v}");

    // Rotation: both keys, then the new one alone.
    let new = es256("new");
    let patch = |keys: Vec<Value>| {
        app.http
            .patch(app.url(&format!("/admin/clients/{id}")))
            .bearer_auth(&admin)
            .json(&json!({"jwks": {"keys": keys}}))
            .send()
    };
    assert_eq!(
        patch(vec![old.jwk.clone(), new.jwk.clone()])
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        token_with(&app, &sign(&old, &claims(&app, &id)), &[])
            .await
            .0,
        200
    );
    assert_eq!(
        token_with(&app, &sign(&new, &claims(&app, &id)), &[])
            .await
            .0,
        200
    );
    assert_eq!(patch(vec![new.jwk.clone()]).await.unwrap().status(), 200);
    assert_eq!(
        token_with(&app, &sign(&old, &claims(&app, &id)), &[])
            .await
            .0,
        401
    );
    assert_eq!(
        token_with(&app, &sign(&new, &claims(&app, &id)), &[])
            .await
            .0,
        200
    );

    // Registration refuses private keys, symmetric keys, and a missing set.
    let mut private = old.jwk.clone();
    private["d"] = json!("AAAA");
    for (what, body) in [
        (
            "private member",
            json!({"name": "x", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private]}}),
        ),
        (
            "oct key",
            json!({"name": "x", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        ),
        (
            "no keys",
            json!({"name": "x", "token_endpoint_auth_method": "private_key_jwt"}),
        ),
        (
            "both",
            json!({"name": "x", "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [old.jwk.clone()]}, "jwks_uri": "https://example.com/jwks"}),
        ),
        (
            "http jwks_uri",
            json!({"name": "x", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://example.com/jwks"}),
        ),
        (
            "keys on a secret client",
            json!({"name": "x", "jwks": {"keys": [old.jwk.clone()]}}),
        ),
    ] {
        let (status, v) = admin_post(&app, &admin, "/admin/clients", body).await;
        assert_eq!(
            (status, s(&v["error"])),
            (400, "invalid_request".into()),
            "{what}: {v}"
        );
    }
}

#[tokio::test]
async fn introspection_and_revocation_take_assertions_too() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let key = es256("k1");
    let id = register(&app, &admin, &[&key], &["tollgate:introspect"]).await;
    let (cid, secret) = app.client("", &[]);
    let token = app.token(&cid, &secret).await;
    let form = |token: &str| {
        vec![
            ("token".to_string(), token.to_string()),
            ("client_assertion_type".into(), ASSERTION_TYPE.into()),
            ("client_assertion".into(), sign(&key, &claims(&app, &id))),
        ]
    };
    let (status, v) = json(
        app.http
            .post(app.url("/oauth/introspect"))
            .form(&form(&token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, v["active"].clone()), (200, json!(true)), "{v}");
    // Revocation by the assertion client: its own token.
    let (status, v) = token_with(&app, &sign(&key, &claims(&app, &id)), &[]).await;
    assert_eq!(status, 200, "{v}");
    let own = s(&v["access_token"]);
    let r = app
        .http
        .post(app.url("/oauth/revoke"))
        .form(&form(&own))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.introspect(&own).await["active"], false);
}

#[tokio::test]
async fn a_used_assertion_stays_used_after_a_restart() {
    let issuer = "http://tollgate.restart.test";
    let mut app = TestApp::spawn_with(&[("TOLLGATE_ISSUER", issuer)]).await;
    let admin = app.admin_token().await;
    let key = es256("k1");
    let id = register(&app, &admin, &[&key], &[]).await;
    let at_issuer = || json!({"iss": id, "sub": id, "aud": issuer, "iat": now(), "exp": now() + 300, "jti": jti()});
    let once = sign(&key, &at_issuer());
    assert_eq!(token_with(&app, &once, &[]).await.0, 200);
    app.restart();
    let (status, v) = token_with(&app, &once, &[]).await;
    assert_eq!(status, 401, "{v}");
    assert!(s(&v["error_description"]).contains("jti"), "{v}");
    let (status, v) = token_with(&app, &sign(&key, &at_issuer()), &[]).await;
    assert_eq!(status, 200, "a fresh one works: {v}");
}

#[tokio::test]
async fn the_metadata_advertises_private_key_jwt() {
    let app = TestApp::spawn().await;
    let (_, v) = json(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    for ep in ["token", "introspection", "revocation"] {
        let methods = &v[format!("{ep}_endpoint_auth_methods_supported")];
        assert!(
            methods
                .as_array()
                .unwrap()
                .contains(&json!("private_key_jwt")),
            "{ep}: {v}"
        );
        assert_eq!(
            v[format!("{ep}_endpoint_auth_signing_alg_values_supported")],
            json!(["ES256", "EdDSA", "Ed25519", "RS256", "PS256"])
        );
    }
}

/// A JWKS server on loopback whose key set the test replaces. It is also an
/// issuer: `/.well-known/openid-configuration` names `issuer` and the set's
/// URL. `hits` counts fetches of the set.
pub(crate) struct JwksServer {
    pub(crate) url: String,
    pub(crate) issuer: String,
    pub(crate) keys: std::sync::Arc<std::sync::Mutex<Value>>,
    pub(crate) hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Milliseconds each key-set answer is held back.
    pub(crate) delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

pub(crate) async fn jwks_server(initial: Value) -> JwksServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer = format!("http://{addr}");
    let url = format!("{issuer}/jwks.json");
    let keys = std::sync::Arc::new(std::sync::Mutex::new(initial));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let delay_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (k, h, d) = (keys.clone(), hits.clone(), delay_ms.clone());
    let metadata = json!({"issuer": issuer, "jwks_uri": url}).to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (k, h, d, metadata) = (k.clone(), h.clone(), d.clone(), metadata.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split(' ').nth(1).unwrap_or("");
                let (status, body) = if path == "/.well-known/openid-configuration" {
                    ("200 OK", metadata)
                } else if path == "/jwks.json" {
                    h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let wait = d.load(std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                    ("200 OK", k.lock().unwrap().to_string())
                } else {
                    ("404 Not Found", "{}".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    JwksServer {
        url,
        issuer,
        keys,
        hits,
        delay_ms,
    }
}

#[tokio::test]
async fn keys_at_a_jwks_uri_are_fetched_cached_and_refetched_for_a_new_kid() {
    let app = TestApp::spawn_with(&[("TOLLGATE_FETCH_ALLOW_LOCAL", "true")]).await;
    let admin = app.admin_token().await;
    let k1 = es256("k1");
    let server = jwks_server(json!({"keys": [k1.jwk.clone()]})).await;
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/clients",
        json!({"name": "remote", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": server.url}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let id = s(&v["client_id"]);
    let hits = || server.hits.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        token_with(&app, &sign(&k1, &claims(&app, &id)), &[])
            .await
            .0,
        200
    );
    assert_eq!(
        token_with(&app, &sign(&k1, &claims(&app, &id)), &[])
            .await
            .0,
        200
    );
    assert_eq!(hits(), 1, "the set is cached");
    // The client rotates to k2 at its URI: the unknown kid refetches once.
    let k2 = es256("k2");
    *server.keys.lock().unwrap() = json!({"keys": [k2.jwk.clone()]});
    assert_eq!(
        token_with(&app, &sign(&k2, &claims(&app, &id)), &[])
            .await
            .0,
        200
    );
    assert_eq!(hits(), 2);
    // Another unknown kid within the minute: no fetch, refused.
    let (status, _) = token_with(&app, &sign(&es256("k3"), &claims(&app, &id)), &[]).await;
    assert_eq!(status, 401);
    assert_eq!(hits(), 2, "at most one refetch a minute");
}

#[tokio::test]
async fn a_jwks_uri_on_a_local_address_is_refused_without_the_setting() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/clients",
        json!({"name": "remote", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://127.0.0.1:1/jwks.json"}),
    )
    .await;
    // The form is fine (https); the address is checked at fetch time.
    assert_eq!(status, 201, "{v}");
    let id = s(&v["client_id"]);
    let key = es256("k1");
    let (status, v) = token_with(&app, &sign(&key, &claims(&app, &id)), &[]).await;
    assert_eq!(
        (status, s(&v["error"])),
        (401, "invalid_client".into()),
        "never a 5xx: {v}"
    );
    assert_eq!(
        s(&v["error_description"]),
        "client authentication failed",
        "{v}"
    );
    assert!(
        app.logs().contains("jwks_uri could not be fetched"),
        "logged"
    );
    assert!(app.logs().contains("not a public address"), "logged why");
}

/// Issue 23 (N1): an assertion is accepted until `exp` + skew, so its `jti`
/// is remembered until then: a replay after `exp` but inside the skew is
/// refused, at the token endpoint and at introspection.
#[tokio::test]
async fn a_used_assertion_is_refused_after_its_exp_inside_the_skew() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let key = es256("k1");
    let id = register(&app, &admin, &[&key], &["read", "tollgate:introspect"]).await;
    let mut c = claims(&app, &id);
    c["exp"] = json!(now() + 1);
    let once = sign(&key, &c);
    let (status, v) = token_with(&app, &once, &[]).await;
    assert_eq!(status, 200, "{v}");
    let token = s(&v["access_token"]);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert!(now() > c["exp"].as_i64().unwrap(), "past exp");
    for _ in 0..3 {
        let (status, v) = token_with(&app, &once, &[]).await;
        assert_eq!(status, 401, "a replay after exp: {v}");
        assert!(s(&v["error_description"]).contains("jti"), "{v}");
    }
    let (status, v) = json(
        app.http
            .post(app.url("/oauth/introspect"))
            .form(&[
                ("token", token.as_str()),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", once.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status, 401,
        "introspection with the replayed assertion: {v}"
    );
}

/// Issue 23: assertions up to 8 KiB are taken (an RSA-4096 platform token
/// with many claims exceeds 4 KiB); one over 8 KiB is refused.
#[tokio::test]
async fn assertions_up_to_eight_kib_are_accepted() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let key = es256("k1");
    let id = register(&app, &admin, &[&key], &["read"]).await;
    let mut c = claims(&app, &id);
    c["pad"] = json!("x".repeat(5000));
    let big = sign(&key, &c);
    assert!(big.len() > 6000 && big.len() <= 8192, "{}", big.len());
    let (status, v) = token_with(&app, &big, &[]).await;
    assert_eq!(status, 200, "{v}");
    c["jti"] = json!(jti());
    c["pad"] = json!("x".repeat(6500));
    let over = sign(&key, &c);
    assert!(over.len() > 8192, "{}", over.len());
    let (status, v) = token_with(&app, &over, &[]).await;
    assert_eq!(status, 400, "{v}");
}

/// Issue 23 (N3): concurrent requests share one key fetch per client: 40 at
/// once on a cold cache fetch once, and 40 with unknown `kid`s on a warm one
/// refetch once, with the key server slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_key_fetch() {
    let app = TestApp::spawn_with(&[
        ("TOLLGATE_FETCH_ALLOW_LOCAL", "true"),
        ("TOLLGATE_AUTH_FAIL_PAIR_LIMIT", "1000"),
        ("TOLLGATE_AUTH_FAIL_IP_LIMIT", "1000"),
    ])
    .await;
    let admin = app.admin_token().await;
    let k1 = es256("k1");
    let server = jwks_server(json!({"keys": [k1.jwk.clone()]})).await;
    server
        .delay_ms
        .store(300, std::sync::atomic::Ordering::SeqCst);
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/clients",
        json!({"name": "remote", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": server.url}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let id = s(&v["client_id"]);
    let hits = || server.hits.load(std::sync::atomic::Ordering::SeqCst);
    let burst = |key: &Key| {
        let assertions: Vec<String> = (0..40).map(|_| sign(key, &claims(&app, &id))).collect();
        let app = &app;
        async move {
            let calls = assertions.iter().map(|a| token_with(app, a, &[]));
            futures_util::future::join_all(calls)
                .await
                .into_iter()
                .map(|(status, _)| status)
                .collect::<Vec<u16>>()
        }
    };
    let statuses = burst(&k1).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(hits(), 1, "one fetch for 40 requests on a cold cache");
    let statuses = burst(&es256("unknown")).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(hits(), 2, "one refetch for 40 unknown kids");
}
