//! Token exchange (RFC 8693) and transaction tokens
//! (draft-ietf-oauth-transaction-tokens-10): a three-service chain records
//! `act` and narrows audience, scope and lifetime; the policy is deny by
//! default and administered through the admin API, the command line and
//! the console; every refusal names its reason and is counted; revocation
//! follows the chain (RFC 7009, revoke-all, disable, delete, a compromised
//! key, an API key); external subject tokens from trusted issuers with
//! `may_act`; DPoP binding; transaction tokens and their replacement.

use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::call;
use crate::helpers::{json, s, segment, TestApp};
use crate::private_key_jwt::{admin_post, es256, jti, now, sign, Key};

pub(crate) const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub(crate) const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const TXN: &str = "urn:ietf:params:oauth:token-type:txn_token";
const GATEWAY: &str = "https://gateway.example.com";
const ORDERS: &str = "https://orders.example.com";
const PAYMENTS: &str = "https://payments.example.com";
const IDP: &str = "https://idp.example.com";
const TRUST_DOMAIN: &str = "https://shop.example.com";

/// A secret client made through the admin API: (id, secret).
pub(crate) async fn exchange_client(
    app: &TestApp,
    admin: &str,
    scopes: &[&str],
    audiences: &[&str],
    policy: Option<Value>,
) -> (String, String) {
    let mut body = json!({"name": "svc", "scopes": scopes, "audiences": audiences});
    if let Some(p) = policy {
        body["token_exchange"] = p;
    }
    let (status, v) = admin_post(app, admin, "/admin/clients", body).await;
    assert_eq!(status, 201, "{v}");
    (s(&v["client_id"]), s(&v["client_secret"]))
}

/// An exchange by `id` with Basic authentication and a form body.
pub(crate) async fn exchange(
    app: &TestApp,
    id: &str,
    secret: &str,
    subject: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", ACCESS),
    ];
    for (k, v) in extra {
        if let Some(slot) = form.iter_mut().find(|(n, _)| n == k) {
            slot.1 = v;
        } else {
            form.push((k, v));
        }
    }
    json(
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&form)
            .send()
            .await
            .expect("exchange"),
    )
    .await
}

/// The three services of docs/token-exchange.md: a frontend whose tokens
/// are for the gateway, a gateway that exchanges them for the orders
/// service, and the orders service that exchanges those for payments.
pub(crate) struct Chain {
    pub frontend: (String, String),
    pub gateway: (String, String),
    pub orders: (String, String),
}

pub(crate) async fn chain(app: &TestApp, admin: &str) -> Chain {
    let frontend = exchange_client(
        app,
        admin,
        &["orders:read", "orders:write", "pay"],
        &[GATEWAY],
        None,
    )
    .await;
    let gateway = exchange_client(
        app,
        admin,
        &["orders:read", "pay"],
        &[ORDERS],
        Some(json!({"subject_audiences": [GATEWAY], "txn_tokens": true})),
    )
    .await;
    let orders = exchange_client(
        app,
        admin,
        &["pay"],
        &[PAYMENTS],
        Some(json!({"subject_audiences": [ORDERS], "txn_tokens": true})),
    )
    .await;
    Chain {
        frontend,
        gateway,
        orders,
    }
}

/// Token → gateway's exchange → orders' exchange: (t0, t1, t2).
pub(crate) async fn three_tokens(app: &TestApp, c: &Chain) -> (String, String, String) {
    let t0 = app.token(&c.frontend.0, &c.frontend.1).await;
    let (status, v) = exchange(app, &c.gateway.0, &c.gateway.1, &t0, &[]).await;
    assert_eq!(status, 200, "{v}");
    let t1 = s(&v["access_token"]);
    let (status, v) = exchange(app, &c.orders.0, &c.orders.1, &t1, &[]).await;
    assert_eq!(status, 200, "{v}");
    (t0, t1, s(&v["access_token"]))
}

fn error(v: &Value) -> (String, String) {
    (s(&v["error"]), s(&v["error_description"]))
}

#[tokio::test]
async fn a_three_service_chain_records_act_and_narrows_audience_scope_and_lifetime() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let c = chain(&app, &admin).await;
    let t0 = app.token(&c.frontend.0, &c.frontend.1).await;
    let c0 = segment(&t0, 1);

    // The gateway exchanges the frontend's token for one to the orders service.
    let (status, v) = exchange(&app, &c.gateway.0, &c.gateway.1, &t0, &[]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["issued_token_type"], ACCESS);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "orders:read pay");
    let t1 = s(&v["access_token"]);
    let c1 = segment(&t1, 1);
    assert_eq!(segment(&t1, 0)["typ"], "at+jwt");
    assert_eq!(c1["sub"], c0["sub"], "the subject is the frontend's");
    assert_eq!(c1["client_id"], c.gateway.0.as_str());
    assert_eq!(c1["act"], json!({"sub": c.gateway.0}));
    assert_eq!(c1["aud"], ORDERS);
    assert!(c1["exp"].as_i64() <= c0["exp"].as_i64());
    assert_eq!(c1["tollgate_origin"][0]["jti"], c0["jti"]);

    // Orders exchanges that one, by a JSON body (client_secret_post), for payments.
    let (status, v) = json(
        app.http
            .post(app.url("/oauth/token"))
            .json(&json!({
                "grant_type": EXCHANGE,
                "client_id": c.orders.0,
                "client_secret": c.orders.1,
                "subject_token": t1,
                "subject_token_type": JWT,
                "requested_token_type": ACCESS,
                "scope": "pay",
                "resource": PAYMENTS,
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let t2 = s(&v["access_token"]);
    let c2 = segment(&t2, 1);
    assert_eq!(
        c2["act"],
        json!({"sub": c.orders.0, "act": {"sub": c.gateway.0}}),
        "the whole chain, nearest actor outermost (RFC 8693 §4.1)"
    );
    assert_eq!(
        (c2["aud"].clone(), c2["scope"].clone()),
        (json!(PAYMENTS), json!("pay"))
    );
    assert_eq!(c2["sub"], c0["sub"]);

    // Introspection says who acts.
    let i = app.introspect(&t2).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["act"], c2["act"]);
    assert_eq!(i["sub"], c0["sub"]);
    assert_eq!(i["client_id"], c.orders.0.as_str());
    assert!(i.get("tollgate_origin").is_none());

    // The metadata lists the grant; the metrics count both exchanges.
    let (_, m) = json(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(m["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!(EXCHANGE)));
    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .contains(r#"tollgate_tokens_issued_total{grant="token_exchange",result="issued"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn every_refusal_names_its_reason_and_is_counted() {
    let app = TestApp::spawn_with(&[("TOLLGATE_AUTH_FAIL_IP_LIMIT", "1000")]).await;
    let admin = app.admin_token().await;
    let c = chain(&app, &admin).await;
    let (t0, t1, _) = three_tokens(&app, &c).await;
    let (g, gs) = (&c.gateway.0, &c.gateway.1);

    // No policy: unauthorized_client.
    let (status, v) = exchange(&app, &c.frontend.0, &c.frontend.1, &t0, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(error(&v).0, "unauthorized_client");

    // Unauthenticated, or a wrong secret: 401 before anything else.
    let (status, v) = json(
        app.http
            .post(app.url("/oauth/token"))
            .form(&[
                ("grant_type", EXCHANGE),
                ("subject_token", &t0),
                ("subject_token_type", ACCESS),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error(&v).0), (401, "invalid_client".into()));
    let (status, _) = exchange(&app, g, "tgs_wrong", &t0, &[]).await;
    assert_eq!(status, 401);

    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        // A token for another audience than the gateway serves.
        (
            vec![("subject_token", t1.as_str())],
            "invalid_request",
            "subject_audiences",
            "subject_audience",
        ),
        (
            vec![("scope", "orders:write")],
            "invalid_scope",
            "exceeds",
            "scope",
        ),
        (
            vec![("scope", "tollgate:admin")],
            "invalid_scope",
            "tollgate:*",
            "scope",
        ),
        (
            vec![("audience", "https://evil.example.com")],
            "invalid_target",
            "not allowed",
            "target",
        ),
        (
            vec![("subject_token", "not.a.jwt")],
            "invalid_request",
            "not a JWT",
            "subject_inactive",
        ),
    ];
    for (extra, code, words, _) in &cases {
        let (status, v) = exchange(&app, g, gs, &t0, extra).await;
        assert_eq!(status, 400, "{extra:?}: {v}");
        let (e, d) = error(&v);
        assert_eq!(e, *code, "{extra:?}: {d}");
        assert!(d.contains(words), "{extra:?}: {d}");
    }
    // Tollgate's own issuer is never the audience of an exchanged token.
    let mut own = exchange_client(
        &app,
        &admin,
        &["tollgate:admin", "pay"],
        &[ORDERS],
        Some(json!({"subject_audiences": [GATEWAY]})),
    )
    .await;
    let issuer = segment(&t0, 1)["iss"].as_str().unwrap().to_string();
    let (status, v) = exchange(&app, &own.0, &own.1, &t0, &[("audience", &issuer)]).await;
    assert_eq!((status, error(&v).0), (400, "invalid_target".into()), "{v}");
    own.1.clear();

    // Parameters: actor_token refused, subject_token_type required, unknown types.
    for (extra, words) in [
        (
            vec![("actor_token", t0.as_str()), ("actor_token_type", ACCESS)],
            "actor_token is not supported",
        ),
        (
            vec![("subject_token_type", "urn:x")],
            "subject_token_type must be",
        ),
        (
            vec![("requested_token_type", "urn:x")],
            "requested_token_type must be",
        ),
    ] {
        let (status, v) = exchange(&app, g, gs, &t0, &extra).await;
        assert_eq!(
            (status, error(&v).0),
            (400, "invalid_request".into()),
            "{v}"
        );
        assert!(error(&v).1.contains(words), "{v}");
    }

    let metrics = app.metrics_text().await;
    for (reason, at_least) in [
        ("no_policy", 1),
        ("subject_audience", 1),
        ("scope", 2),
        ("target", 2),
        ("subject_inactive", 1),
    ] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    r#"tollgate_token_exchange_refusals_total{{reason="{reason}"}}"#
                ))
            })
            .unwrap_or_else(|| panic!("no series for {reason}"));
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= at_least, "{line}");
    }
    assert!(metrics.contains(r#"tollgate_token_exchange_refusals_total{reason="depth"} 0"#));
}

#[tokio::test]
async fn revocation_follows_the_chain() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let c = chain(&app, &admin).await;
    let (iid, isecret) = app.client("tollgate:introspect", &[]);
    let active = |t: String| {
        let app = &app;
        let (iid, isecret) = (iid.clone(), isecret.clone());
        async move { app.introspect_as(&iid, &isecret, &t).await["active"] == true }
    };

    // RFC 7009 revocation of the root token: both descendants go at once.
    let (t0, t1, t2) = three_tokens(&app, &c).await;
    assert!(active(t2.clone()).await);
    assert_eq!(
        app.revoke(&c.frontend.0, &c.frontend.1, &t0).await.status(),
        200
    );
    assert!(!active(t1.clone()).await);
    assert!(!active(t2.clone()).await);
    let (status, v) = exchange(&app, &c.orders.0, &c.orders.1, &t1, &[]).await;
    assert_eq!(status, 400, "an inactive subject is refused: {v}");
    assert!(error(&v).1.contains("not active"));

    // Revoking the middle token takes its descendant, not its origin.
    let (t0, t1, t2) = three_tokens(&app, &c).await;
    assert_eq!(
        app.revoke(&c.gateway.0, &c.gateway.1, &t1).await.status(),
        200
    );
    assert!(active(t0.clone()).await);
    assert!(!active(t2.clone()).await);

    // Revoke-all of the frontend.
    let (_, t1, t2) = three_tokens(&app, &c).await;
    let (status, _) = call(
        &app,
        &admin,
        Method::POST,
        &format!("/admin/clients/{}/revoke-tokens", c.frontend.0),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(!active(t1).await);
    assert!(!active(t2).await);

    // The gateway disabled: the token it got, and the one exchanged from it.
    let frontend2 = exchange_client(&app, &admin, &["pay"], &[GATEWAY], None).await;
    let c2 = Chain {
        frontend: frontend2,
        gateway: c.gateway.clone(),
        orders: c.orders.clone(),
    };
    let (t0, t1, t2) = three_tokens(&app, &c2).await;
    let (status, _) = call(
        &app,
        &admin,
        Method::POST,
        &format!("/admin/clients/{}/disable", c.gateway.0),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(active(t0).await);
    assert!(!active(t1).await);
    assert!(!active(t2).await);

    // The frontend deleted.
    let gateway = exchange_client(
        &app,
        &admin,
        &["pay"],
        &[ORDERS],
        Some(json!({"subject_audiences": [GATEWAY]})),
    )
    .await;
    let c3 = Chain {
        frontend: c2.frontend.clone(),
        gateway,
        orders: c.orders.clone(),
    };
    let (_, t1, t2) = three_tokens(&app, &c3).await;
    let (status, _) = call(
        &app,
        &admin,
        Method::DELETE,
        &format!("/admin/clients/{}", c3.frontend.0),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert!(!active(t1).await);
    assert!(!active(t2).await);
}

#[tokio::test]
async fn a_compromised_key_or_a_revoked_api_key_ends_the_tokens_exchanged_from_theirs() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let c = chain(&app, &admin).await;

    // The subject signed by the old key; the exchange signed by the new one.
    let old_kid = s(&segment(&app.token(&c.frontend.0, &c.frontend.1).await, 0)["kid"]);
    let t0 = app.token(&c.frontend.0, &c.frontend.1).await;
    app.cli(&["signing-key", "rotate", "--prepublish", "0"]);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (status, v) = exchange(&app, &c.gateway.0, &c.gateway.1, &t0, &[]).await;
    assert_eq!(status, 200, "{v}");
    let t1 = s(&v["access_token"]);
    assert_ne!(s(&segment(&t1, 0)["kid"]), old_kid, "signed by the new key");
    assert_eq!(app.introspect(&t1).await["active"], true);
    app.cli(&["signing-key", "retire", &old_kid, "--compromised"]);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        app.introspect(&t1).await["active"],
        false,
        "its origin's key is compromised"
    );

    // A subject token obtained for an API key: revoking the key ends both.
    let key = app.cli(&["api-key", "create", "--client", &c.frontend.0]);
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
    let from_key = s(&v["access_token"]);
    let (status, v) = exchange(&app, &c.gateway.0, &c.gateway.1, &from_key, &[]).await;
    assert_eq!(status, 200, "{v}");
    let t1 = s(&v["access_token"]);
    assert_eq!(app.introspect(&t1).await["active"], true);
    app.cli(&["api-key", "revoke", &s(&key["id"])]);
    assert_eq!(app.introspect(&t1).await["active"], false);
}

#[tokio::test]
async fn the_chain_is_bounded_by_the_configured_depth() {
    let app = TestApp::spawn_with(&[("TOLLGATE_EXCHANGE_MAX_DEPTH", "2")]).await;
    let admin = app.admin_token().await;
    let c = chain(&app, &admin).await;
    let (_, _, t2) = three_tokens(&app, &c).await;
    // A third hop (payments back to orders' audience) would make three actors.
    let payments = exchange_client(
        &app,
        &admin,
        &["pay"],
        &[ORDERS],
        Some(json!({"subject_audiences": [PAYMENTS]})),
    )
    .await;
    let (status, v) = exchange(&app, &payments.0, &payments.1, &t2, &[]).await;
    assert_eq!(
        (status, error(&v).0),
        (400, "invalid_request".into()),
        "{v}"
    );
    assert!(error(&v).1.contains("limit of 2"), "{v}");
    assert!(app
        .metrics_text()
        .await
        .contains(r#"tollgate_token_exchange_refusals_total{reason="depth"} 1"#));
}

/// A trusted issuer with `key` inline.
async fn trust_idp(app: &TestApp, admin: &str, key: &Key) {
    let (status, v) = admin_post(
        app,
        admin,
        "/admin/federation/issuers",
        json!({"issuer": IDP, "jwks": {"keys": [key.jwk.clone()]}}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
}

fn idp_token(key: &Key, extra: Value) -> String {
    let mut claims = json!({
        "iss": IDP, "sub": "alice", "aud": GATEWAY, "scope": "orders:read pay",
        "iat": now(), "exp": now() + 300, "jti": jti(),
    });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    sign(key, &claims)
}

#[tokio::test]
async fn external_subject_tokens_come_from_the_policys_issuers_and_may_act_is_enforced() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let key = es256("idp-1");
    trust_idp(&app, &admin, &key).await;
    let (g, gs) = exchange_client(
        &app,
        &admin,
        &["orders:read", "pay"],
        &[ORDERS],
        Some(json!({"subject_audiences": [GATEWAY], "subject_issuers": [IDP]})),
    )
    .await;
    // Without the issuer in its policy, another client cannot present it.
    let (o, os) = exchange_client(
        &app,
        &admin,
        &["pay"],
        &[ORDERS],
        Some(json!({"subject_audiences": [GATEWAY]})),
    )
    .await;
    let (status, v) = exchange(&app, &o, &os, &idp_token(&key, json!({})), &[]).await;
    assert_eq!(status, 400, "{v}");
    assert!(error(&v).1.contains("issuer is not one"), "{v}");

    let (status, v) = exchange(
        &app,
        &g,
        &gs,
        &idp_token(&key, json!({})),
        &[("subject_token_type", JWT)],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let c = segment(&s(&v["access_token"]), 1);
    assert_eq!(
        (c["sub"].clone(), c["act"].clone()),
        (json!("alice"), json!({"sub": g}))
    );
    assert!(
        c.get("tollgate_origin").is_none(),
        "nothing of Tollgate's to follow"
    );

    // may_act names someone else, or another issuer: refused; names the gateway: granted.
    for may_act in [
        json!({"sub": "someone-else"}),
        json!({"sub": g, "iss": IDP}),
    ] {
        let (status, v) = exchange(
            &app,
            &g,
            &gs,
            &idp_token(&key, json!({"may_act": may_act})),
            &[],
        )
        .await;
        assert_eq!(status, 400, "{v}");
        assert!(error(&v).1.contains("may_act"), "{v}");
    }
    let t = idp_token(
        &key,
        json!({"may_act": {"sub": g}, "act": {"sub": "agent-7"}}),
    );
    let (status, v) = exchange(&app, &g, &gs, &t, &[]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        segment(&s(&v["access_token"]), 1)["act"],
        json!({"sub": g, "act": {"sub": "agent-7"}})
    );

    // Expired, forged or for another audience: invalid_request naming it.
    let expired = idp_token(&key, json!({"exp": now() - 120, "iat": now() - 600}));
    let forged = idp_token(&es256("idp-1"), json!({}));
    let elsewhere = idp_token(&key, json!({"aud": "https://elsewhere"}));
    for (t, words) in [
        (expired, "expired"),
        (forged, "signature"),
        (elsewhere, "subject_audiences"),
    ] {
        let (status, v) = exchange(&app, &g, &gs, &t, &[]).await;
        assert_eq!(
            (status, error(&v).0),
            (400, "invalid_request".into()),
            "{v}"
        );
        assert!(error(&v).1.contains(words), "{words}: {v}");
    }
}

/// A DPoP proof for the token endpoint, signed by `key`.
fn dpop_proof(key: &Key, url: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk});
    let claims = json!({"htm": "POST", "htu": url, "iat": now(), "jti": jti()});
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

#[tokio::test]
async fn a_dpop_proof_binds_the_exchanged_token() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let c = chain(&app, &admin).await;
    let t0 = app.token(&c.frontend.0, &c.frontend.1).await;
    let key = es256("dpop");
    let (status, v) = json(
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&c.gateway.0, Some(&c.gateway.1))
            .header("DPoP", dpop_proof(&key, &app.url("/oauth/token")))
            .form(&[
                ("grant_type", EXCHANGE),
                ("subject_token", &t0),
                ("subject_token_type", ACCESS),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["token_type"], "DPoP");
    let c1 = segment(&s(&v["access_token"]), 1);
    assert!(c1["cnf"]["jkt"].is_string(), "{c1}");
    assert_eq!(c1["act"], json!({"sub": c.gateway.0}));
}

#[tokio::test]
async fn transaction_tokens_carry_the_context_and_keep_their_txn_when_replaced() {
    let app = TestApp::spawn_with(&[("TOLLGATE_TXN_TRUST_DOMAIN", TRUST_DOMAIN)]).await;
    let admin = app.admin_token().await;
    let c = chain(&app, &admin).await;
    let t0 = app.token(&c.frontend.0, &c.frontend.1).await;
    let c0 = segment(&t0, 1);

    let (status, v) = json(
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&c.gateway.0, Some(&c.gateway.1))
            .json(&json!({
                "grant_type": EXCHANGE,
                "requested_token_type": TXN,
                "audience": TRUST_DOMAIN,
                "scope": "pay",
                "subject_token": t0,
                "subject_token_type": ACCESS,
                "request_context": {"device": "kiosk-4"},
                "request_details": {"action": "checkout", "amount": 42},
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["token_type"].clone(), v["issued_token_type"].clone()),
        (json!("N_A"), json!(TXN))
    );
    assert!(v.get("refresh_token").is_none());
    let txn = s(&v["access_token"]);
    assert_eq!(segment(&txn, 0)["typ"], "txntoken+jwt");
    let t = segment(&txn, 1);
    assert_eq!(t["aud"], TRUST_DOMAIN);
    assert_eq!(t["sub"], c0["sub"]);
    assert_eq!(t["scope"], "pay");
    assert_eq!(t["req_wl"], c.gateway.0.as_str());
    assert_eq!(t["rctx"]["device"], "kiosk-4");
    assert_eq!(t["rctx"]["req_ip"], "127.0.0.1");
    assert_eq!(t["tctx"], json!({"action": "checkout", "amount": 42}));
    assert!(t["txn"].as_str().unwrap().len() >= 22);
    let lifetime = t["exp"].as_i64().unwrap() - t["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 60, "TOLLGATE_TXN_TOKEN_TTL's default");

    // It verifies against the JWKS (what a workload does).
    let (_, jwks) = json(
        app.http
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let kid = s(&segment(&txn, 0)["kid"]);
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .unwrap()
            .clone(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[TRUST_DOMAIN]);
    jsonwebtoken::decode::<Value>(
        &txn,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .expect("verifies with the JWKS");
    // It is no access token: introspection says inactive, and it cannot be
    // exchanged for one.
    assert_eq!(app.introspect(&txn).await["active"], false);
    let (status, v) = exchange(
        &app,
        &c.orders.0,
        &c.orders.1,
        &txn,
        &[("subject_token_type", TXN)],
    )
    .await;
    assert_eq!(status, 400, "{v}");

    // Orders replaces it: the same txn, never wider, never later.
    let replace = |extra: Vec<(&'static str, String)>| {
        let app = &app;
        let orders = c.orders.clone();
        let txn = txn.clone();
        async move {
            let mut form = vec![
                ("grant_type", EXCHANGE.to_string()),
                ("requested_token_type", TXN.to_string()),
                ("audience", TRUST_DOMAIN.to_string()),
                ("subject_token", txn),
                ("subject_token_type", TXN.to_string()),
            ];
            form.extend(extra);
            json(
                app.http
                    .post(app.url("/oauth/token"))
                    .basic_auth(&orders.0, Some(&orders.1))
                    .form(&form)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, v) = replace(vec![]).await;
    assert_eq!(status, 200, "{v}");
    let r = segment(&s(&v["access_token"]), 1);
    assert_eq!(r["txn"], t["txn"]);
    assert_eq!(r["sub"], t["sub"]);
    assert_eq!(r["rctx"], t["rctx"]);
    assert_eq!(r["tctx"], t["tctx"]);
    assert_eq!(r["req_wl"], json!([c.gateway.0, c.orders.0]));
    assert!(r["exp"].as_i64() <= t["exp"].as_i64(), "{r} {t}");
    let (status, v) = replace(vec![("scope", "pay orders:read".into())]).await;
    assert_eq!((status, error(&v).0), (400, "invalid_scope".into()), "{v}");
    let (status, v) = replace(vec![("request_details", r#"{"x":1}"#.into())]).await;
    assert_eq!(
        (status, error(&v).0),
        (400, "invalid_request".into()),
        "{v}"
    );

    // The audience must be the trust domain; the context is bounded.
    let txn_req = |extra: &[(&str, &str)]| {
        let mut form = vec![
            ("grant_type", EXCHANGE),
            ("requested_token_type", TXN),
            ("subject_token", t0.as_str()),
            ("subject_token_type", ACCESS),
        ];
        form.extend_from_slice(extra);
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&c.gateway.0, Some(&c.gateway.1))
            .form(&form)
            .send()
    };
    let (status, v) = json(txn_req(&[("audience", ORDERS)]).await.unwrap()).await;
    assert_eq!((status, error(&v).0), (400, "invalid_target".into()), "{v}");
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(2100));
    let (status, v) = json(
        txn_req(&[("audience", TRUST_DOMAIN), ("request_context", &big)])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error(&v).0),
        (400, "invalid_request".into()),
        "{v}"
    );

    // A client whose policy does not allow them.
    let (x, xs) = exchange_client(
        &app,
        &admin,
        &["pay"],
        &[ORDERS],
        Some(json!({"subject_audiences": [GATEWAY]})),
    )
    .await;
    let (status, v) = json(
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&x, Some(&xs))
            .form(&[
                ("grant_type", EXCHANGE),
                ("requested_token_type", TXN),
                ("audience", TRUST_DOMAIN),
                ("subject_token", t0.as_str()),
                ("subject_token_type", ACCESS),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error(&v).0),
        (400, "unauthorized_client".into()),
        "{v}"
    );
    assert!(app
        .metrics_text()
        .await
        .contains(r#"tollgate_tokens_issued_total{grant="txn_token",result="issued"} 2"#));
}

#[tokio::test]
async fn without_a_trust_domain_no_transaction_token_is_issued() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let c = chain(&app, &admin).await;
    let t0 = app.token(&c.frontend.0, &c.frontend.1).await;
    let (status, v) = exchange(
        &app,
        &c.gateway.0,
        &c.gateway.1,
        &t0,
        &[("requested_token_type", TXN), ("audience", TRUST_DOMAIN)],
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(error(&v).1.contains("not enabled"), "{v}");
}

#[tokio::test]
async fn the_policy_is_checked_kept_across_restarts_and_managed_from_the_cli_and_console() {
    let mut app = TestApp::spawn().await;
    let mut admin = app.admin_token().await;
    let key = es256("idp-1");
    trust_idp(&app, &admin, &key).await;
    for (policy, words) in [
        (json!({"subject_audiences": []}), "at least one"),
        (json!({"subject_issuers": [IDP]}), "at least one"),
        (
            json!({"subject_audiences": [GATEWAY], "subject_issuers": ["https://unknown"]}),
            "not a trusted federation issuer",
        ),
        (
            json!({"subject_audiences": [GATEWAY], "extra": 1}),
            "unknown",
        ),
    ] {
        let (status, v) = admin_post(
            &app,
            &admin,
            "/admin/clients",
            json!({"name": "x", "token_exchange": policy}),
        )
        .await;
        assert_eq!(status, 400, "{policy}: {v}");
        assert!(error(&v).1.contains(words), "{words}: {v}");
    }
    let issuer = app.url("");
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/clients",
        json!({"name": "x", "token_exchange": {"subject_audiences": [issuer]}}),
    )
    .await;
    assert_eq!(status, 400, "the issuer is never a subject audience: {v}");

    // The CLI: create with a policy, change one part, remove it.
    let v = app.cli(&[
        "client",
        "create",
        "--name",
        "gw",
        "--scope",
        "pay",
        "--audience",
        ORDERS,
        "--exchange-audience",
        GATEWAY,
        "--exchange-issuer",
        IDP,
    ]);
    let id = s(&v["client_id"]);
    assert_eq!(
        v["token_exchange"],
        json!({"subject_audiences": [GATEWAY], "subject_issuers": [IDP]})
    );
    let v = app.cli(&["client", "update", &id, "--txn-tokens", "true"]);
    assert_eq!(
        v["token_exchange"],
        json!({"subject_audiences": [GATEWAY], "subject_issuers": [IDP], "txn_tokens": true})
    );
    let text = app.cli_raw(&["client", "show", &id], false);
    assert!(String::from_utf8_lossy(&text.stdout).contains("transaction tokens yes"));

    // Kept across a restart, shown in the console.
    app.restart();
    admin = app.admin_token().await;
    let (status, v) = call(
        &app,
        &admin,
        Method::GET,
        &format!("/admin/clients/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["token_exchange"]["txn_tokens"], true, "{v}");
    let page = crate::console::client_page(&app, &id).await;
    assert!(page.contains("Token exchange"), "{page}");
    assert!(page.contains(GATEWAY), "{page}");

    // PATCH null removes it; then the client may not exchange.
    let (status, v) = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/admin/clients/{id}"),
        Some(json!({"token_exchange": null})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(v.get("token_exchange").is_none(), "{v}");
    let v = app.cli(&["client", "update", &id, "--exchange-audience", GATEWAY]);
    assert_eq!(v["token_exchange"], json!({"subject_audiences": [GATEWAY]}));
    let v = app.cli(&["client", "update", &id, "--no-token-exchange"]);
    assert!(v.get("token_exchange").is_none(), "{v}");
    let audit = app.cli(&["audit", "list", "--limit", "1000"]);
    assert!(
        audit.to_string().contains("token_exchange"),
        "the change is audited"
    );
}
