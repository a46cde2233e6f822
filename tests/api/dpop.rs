//! DPoP (RFC 9449): proofs made in the test bind tokens to their key
//! (`cnf.jkt`, `token_type: DPoP`) at the token and API-key endpoints; each
//! check of §4.3 refuses with `400 invalid_dpop_proof`; replayed proofs,
//! nonces (§8), `dpop_bound_access_tokens` (§5.2); DPoP-bound tokens at
//! Tollgate's own admin API and introspection (§7).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;

use crate::helpers::{json, s, segment, TestApp};
use crate::private_key_jwt::{admin_post, es256, jti, now, Key};

/// RFC 7638 thumbprint of an EC key, computed here independently.
fn thumbprint(jwk: &Value) -> String {
    let canonical = format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        s(&jwk["crv"]),
        s(&jwk["x"]),
        s(&jwk["y"])
    );
    B64.encode(sha2::Sha256::digest(canonical.as_bytes()))
}

/// A proof signed by `key` with `jwk` in its header, written out by hand so
/// that the header holds exactly what the test puts there.
fn proof_with(key: &Key, typ: &str, jwk: &Value, claims: &Value) -> String {
    let header = json!({"typ": typ, "alg": "ES256", "jwk": jwk});
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key.enc, jsonwebtoken::Algorithm::ES256)
            .unwrap();
    format!("{input}.{sig}")
}

fn proof(key: &Key, method: &str, url: &str, extra: Value) -> String {
    let mut claims = json!({"htm": method, "htu": url, "iat": now(), "jti": jti()});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    proof_with(key, "dpop+jwt", &key.jwk, &claims)
}

async fn token_with_proof(
    app: &TestApp,
    id: &str,
    secret: &str,
    proofs: &[&str],
) -> (u16, Value, Option<String>) {
    let mut r = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")]);
    for p in proofs {
        r = r.header("DPoP", *p);
    }
    let resp = r.send().await.unwrap();
    let nonce = resp
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, v) = json(resp).await;
    (status, v, nonce)
}

#[tokio::test]
async fn a_proof_binds_the_token_to_its_key_and_every_check_refuses() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read", &[]);
    let key = es256("dpop");
    let url = app.url("/oauth/token");
    let good = proof(&key, "POST", &url, json!({}));
    let (status, v, _) = token_with_proof(&app, &id, &secret, &[&good]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["token_type"], "DPoP");
    let token = s(&v["access_token"]);
    let jkt = thumbprint(&key.jwk);
    assert_eq!(segment(&token, 1)["cnf"]["jkt"], jkt.as_str());
    let info = app.introspect(&token).await;
    assert_eq!(info["token_type"], "DPoP", "{info}");
    assert_eq!(info["cnf"]["jkt"], jkt.as_str());
    // Without a proof: a plain bearer token, no cnf.
    let (status, v, _) = token_with_proof(&app, &id, &secret, &[]).await;
    assert_eq!((status, s(&v["token_type"])), (200, "Bearer".into()));
    assert!(segment(&s(&v["access_token"]), 1).get("cnf").is_none());

    // The same proof twice: its jti was used.
    let (status, v, _) = token_with_proof(&app, &id, &secret, &[&good]).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"], "invalid_dpop_proof");
    assert!(s(&v["error_description"]).contains("jti"), "{v}");

    let mut private = key.jwk.clone();
    private["d"] = json!("AAAA");
    let claims = || json!({"htm": "POST", "htu": url, "iat": now(), "jti": jti()});
    let hs = {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.typ = Some("dpop+jwt".into());
        jsonwebtoken::encode(&h, &claims(), &jsonwebtoken::EncodingKey::from_secret(b"k")).unwrap()
    };
    let other = es256("other");
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "typ",
            vec![proof_with(&key, "JWT", &key.jwk, &claims())],
            "typ",
        ),
        (
            "private jwk",
            vec![proof_with(&key, "dpop+jwt", &private, &claims())],
            "public key",
        ),
        (
            "another key's jwk",
            vec![proof_with(&key, "dpop+jwt", &other.jwk, &claims())],
            "signature",
        ),
        ("HS256", vec![hs], "alg"),
        ("htm", vec![proof(&key, "GET", &url, json!({}))], "htm"),
        (
            "htu",
            vec![proof(
                &key,
                "POST",
                &app.url("/oauth/introspect"),
                json!({}),
            )],
            "htu",
        ),
        (
            "old iat",
            vec![proof(&key, "POST", &url, json!({"iat": now() - 120}))],
            "iat",
        ),
        (
            "future iat",
            vec![proof(&key, "POST", &url, json!({"iat": now() + 120}))],
            "iat",
        ),
        (
            "no jti",
            vec![proof_with(
                &key,
                "dpop+jwt",
                &key.jwk,
                &json!({"htm": "POST", "htu": url, "iat": now()}),
            )],
            "jti",
        ),
        (
            "two headers",
            vec![
                proof(&key, "POST", &url, json!({})),
                proof(&key, "POST", &url, json!({})),
            ],
            "one DPoP header",
        ),
        ("not a JWT", vec!["abc".into()], "signed JWT"),
    ];
    for (what, proofs, says) in cases {
        let refs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let (status, v, _) = token_with_proof(&app, &id, &secret, &refs).await;
        assert_eq!(status, 400, "{what}: {v}");
        assert_eq!(v["error"], "invalid_dpop_proof", "{what}: {v}");
        assert!(s(&v["error_description"]).contains(says), "{what}: {v}");
    }
    // A query on htu is ignored (§4.3 check 9).
    let with_query = proof(&key, "POST", &format!("{url}?x=1"), json!({}));
    assert_eq!(
        token_with_proof(&app, &id, &secret, &[&with_query]).await.0,
        200
    );

    // The API-key exchange binds too.
    let admin = app.admin_token().await;
    let (status, created) = admin_post(
        &app,
        &admin,
        &format!("/admin/clients/{id}/api-keys"),
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, v) = json(
        app.http
            .post(app.url("/authentication/token"))
            .header(
                "DPoP",
                proof(&key, "POST", &app.url("/authentication/token"), json!({})),
            )
            .json(&json!({"secret_key": created["secret_key"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, s(&v["token_type"])), (200, "DPoP".into()), "{v}");
    assert_eq!(
        segment(&s(&v["access_token"]), 1)["cnf"]["jkt"],
        jkt.as_str()
    );
    // The metadata advertises the algorithms.
    let m: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        m["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "Ed25519", "RS256", "PS256"])
    );
}

#[tokio::test]
async fn a_dpop_bound_client_gets_no_token_without_a_proof() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/clients",
        json!({"name": "bound", "scopes": ["read"], "dpop_bound_access_tokens": true}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["dpop_bound_access_tokens"], true);
    let (id, secret) = (s(&v["client_id"]), s(&v["client_secret"]));
    let (status, v, _) = token_with_proof(&app, &id, &secret, &[]).await;
    assert_eq!(
        (status, s(&v["error"])),
        (400, "invalid_dpop_proof".into()),
        "{v}"
    );
    let key = es256("k");
    let p = proof(&key, "POST", &app.url("/oauth/token"), json!({}));
    assert_eq!(token_with_proof(&app, &id, &secret, &[&p]).await.0, 200);
    // Kept across a restart; the command line turns it off.
    app.restart();
    assert_eq!(token_with_proof(&app, &id, &secret, &[]).await.0, 400);
    let shown = app.cli(&["client", "update", &id, "--dpop-bound", "false"]);
    assert_eq!(shown["dpop_bound_access_tokens"], false, "{shown}");
    // The running server sees the command line's change within the bound.
    crate::helpers::eventually(
        "the change from the command line",
        crate::helpers::cli_change_bound(),
        || async { token_with_proof(&app, &id, &secret, &[]).await.0 == 200 },
    )
    .await;
}

#[tokio::test]
async fn nonces_are_required_when_enabled_and_survive_a_restart() {
    let mut app = TestApp::spawn_with(&[("TOLLGATE_DPOP_NONCE", "true")]).await;
    let (id, secret) = app.client("read", &[]);
    let key = es256("k");
    let url = app.url("/oauth/token");
    let (status, v, nonce) =
        token_with_proof(&app, &id, &secret, &[&proof(&key, "POST", &url, json!({}))]).await;
    assert_eq!(
        (status, s(&v["error"])),
        (400, "use_dpop_nonce".into()),
        "{v}"
    );
    let nonce = nonce.expect("a DPoP-Nonce header");
    let (status, v, next) = token_with_proof(
        &app,
        &id,
        &secret,
        &[&proof(&key, "POST", &url, json!({"nonce": nonce}))],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(next.is_some(), "the next nonce comes with the token");
    let (status, _, _) = token_with_proof(
        &app,
        &id,
        &secret,
        &[&proof(&key, "POST", &url, json!({"nonce": "made-up"}))],
    )
    .await;
    assert_eq!(status, 400);
    // Another instance with the same keys directory (here: a restart)
    // accepts the nonce: it derives from the shared secret file.
    app.restart();
    let url = app.url("/oauth/token");
    let (status, v, _) = token_with_proof(
        &app,
        &id,
        &secret,
        &[&proof(&key, "POST", &url, json!({"nonce": nonce}))],
    )
    .await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn dpop_bound_tokens_work_at_the_admin_api_only_with_a_proof_of_their_key() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("tollgate:admin tollgate:introspect", &[]);
    let key = es256("admin");
    let (status, v, _) = token_with_proof(
        &app,
        &id,
        &secret,
        &[&proof(&key, "POST", &app.url("/oauth/token"), json!({}))],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let token = s(&v["access_token"]);
    let ath = B64.encode(sha2::Sha256::digest(token.as_bytes()));
    let clients = app.url("/admin/clients");
    let get = |auth: String, proofs: Vec<String>| {
        let mut r = app.http.get(&clients).header("Authorization", auth);
        for p in proofs {
            r = r.header("DPoP", p);
        }
        r.send()
    };
    let ok = proof(&key, "GET", &clients, json!({"ath": ath}));
    let r = get(format!("DPoP {token}"), vec![ok.clone()])
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let other = es256("other");
    for (what, auth, proofs, says) in [
        (
            "as a bearer token",
            format!("Bearer {token}"),
            vec![],
            "DPoP-bound",
        ),
        (
            "without a proof",
            format!("DPoP {token}"),
            vec![],
            "needs a DPoP proof",
        ),
        (
            "replayed proof",
            format!("DPoP {token}"),
            vec![ok.clone()],
            "jti",
        ),
        (
            "no ath",
            format!("DPoP {token}"),
            vec![proof(&key, "GET", &clients, json!({}))],
            "ath",
        ),
        (
            "another key",
            format!("DPoP {token}"),
            vec![proof(&other, "GET", &clients, json!({"ath": ath}))],
            "not the key",
        ),
        (
            "another URL",
            format!("DPoP {token}"),
            vec![proof(
                &key,
                "GET",
                &app.url("/admin/audit"),
                json!({"ath": ath}),
            )],
            "htu",
        ),
    ] {
        let r = get(auth, proofs).await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.starts_with("DPoP "), "{what}: {challenge}");
        let v: Value = r.json().await.unwrap();
        assert!(s(&v["error_description"]).contains(says), "{what}: {v}");
    }
    // An unbound token sent as DPoP is refused too.
    let plain = app.token(&id, &secret).await;
    let r = get(format!("DPoP {plain}"), vec![]).await.unwrap();
    assert_eq!(r.status(), 401);
    // Bearer introspection with the DPoP-bound token and a proof.
    let introspect = app.url("/oauth/introspect");
    let (status, v) = json(
        app.http
            .post(&introspect)
            .header("Authorization", format!("DPoP {token}"))
            .header(
                "DPoP",
                proof(&key, "POST", &introspect, json!({"ath": ath})),
            )
            .form(&[("token", plain.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, v["active"].clone()), (200, json!(true)), "{v}");
}

#[tokio::test]
async fn a_fleet_shares_nonces_and_the_replay_cache() {
    let Some(url) = crate::helpers::pg_or_skip("DPoP fleet") else {
        return;
    };
    let fleet = TestApp::fleet(&url, 2, &[("TOLLGATE_DPOP_NONCE", "true")]).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let (id, secret) = a.client("read", &[]);
    let key = es256("k");
    // Both instances share the issuer, so one proof fits either.
    let issuer_url = format!(
        "{}/oauth/token",
        crate::helpers::segment(&a.token(&id, &secret).await, 1)["iss"]
            .as_str()
            .unwrap()
    );
    let (status, _, nonce) = token_with_proof(
        a,
        &id,
        &secret,
        &[&proof(&key, "POST", &issuer_url, json!({}))],
    )
    .await;
    assert_eq!(status, 400);
    let nonce = nonce.expect("a nonce from A");
    let p = proof(&key, "POST", &issuer_url, json!({"nonce": nonce}));
    let (status, v, _) = token_with_proof(b, &id, &secret, &[&p]).await;
    assert_eq!(status, 200, "B takes A's nonce: {v}");
    let (status, v, _) = token_with_proof(a, &id, &secret, &[&p]).await;
    assert_eq!(status, 400, "A knows B saw the proof: {v}");
    assert!(s(&v["error_description"]).contains("jti"), "{v}");
}

/// Issue 24 (2): a proof's `jti` is recorded before the client is
/// authenticated, so a replayed proof is refused without any client
/// authentication: no failure is counted, whatever credentials come with it.
#[tokio::test]
async fn a_replayed_proof_is_refused_before_client_authentication() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read", &[]);
    let key = es256("dpop");
    let p = proof(&key, "POST", &app.url("/oauth/token"), json!({}));
    let (status, v, _) = token_with_proof(&app, &id, &secret, &[&p]).await;
    assert_eq!(status, 200, "{v}");
    let failures = || async {
        let text = app.metrics_text().await;
        text.lines()
            .filter(|l| l.starts_with("tollgate_client_auth_failures_total"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };
    let before = failures().await;
    for (who, secret) in [
        (id.as_str(), "tgs_wrong"),
        ("tgc_AAAAAAAAAAAAAAAAAAAAAA", "x"),
    ] {
        let (status, v, _) = token_with_proof(&app, who, secret, &[&p]).await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"], "invalid_dpop_proof", "{v}");
        assert!(s(&v["error_description"]).contains("used before"), "{v}");
    }
    assert_eq!(
        failures().await,
        before,
        "no client authentication was tried"
    );
}
