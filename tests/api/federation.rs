//! Workload identity federation: trusted issuers (inline keys, `jwks_uri`,
//! discovery) and rules, administered through the admin API and the command
//! line; external tokens exchanged through the JWT bearer grant (RFC 7523
//! §2.1) and as client assertions, each check refusing; the dry run.

use serde_json::{json, Value};

use crate::helpers::{json, s, segment, TestApp};
use crate::private_key_jwt::{admin_post, es256, jti, jwks_server, now, sign, Key};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const K8S: &str = "https://kubernetes.default.svc.cluster.local";

/// A Kubernetes-like service-account token.
fn sa_token(key: &Key, sub: &str, aud: &str, ttl: i64) -> String {
    sign(
        key,
        &json!({
            "iss": K8S,
            "sub": sub,
            "aud": [aud],
            "iat": now(),
            "nbf": now(),
            "exp": now() + ttl,
            "jti": jti(),
            "kubernetes.io": {"namespace": "payments"},
        }),
    )
}

async fn bearer_grant(app: &TestApp, assertion: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("grant_type", JWT_BEARER), ("assertion", assertion)];
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

async fn admin_get(app: &TestApp, admin: &str, path: &str) -> Value {
    let (status, v) = json(
        app.http
            .get(app.url(path))
            .bearer_auth(admin)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn admin_delete(app: &TestApp, admin: &str, path: &str) -> u16 {
    app.http
        .delete(app.url(path))
        .bearer_auth(admin)
        .send()
        .await
        .expect("delete")
        .status()
        .as_u16()
}

/// A secret client holding `scopes`.
async fn client(app: &TestApp, admin: &str, scopes: &[&str]) -> String {
    let (status, v) = admin_post(
        app,
        admin,
        "/admin/clients",
        json!({"name": "payments-api", "scopes": scopes, "audiences": ["https://ledger"]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    s(&v["client_id"])
}

/// Trusts the cluster with `key` inline and adds a rule for `client_id`.
async fn trust(app: &TestApp, admin: &str, key: &Key, rule: Value) -> String {
    let (status, v) = admin_post(
        app,
        admin,
        "/admin/federation/issuers",
        json!({"issuer": K8S, "jwks": {"keys": [key.jwk.clone()]}}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert!(s(&v["id"]).starts_with("fi_"), "{v}");
    let (status, v) = admin_post(app, admin, "/admin/federation/rules", rule).await;
    assert_eq!(status, 201, "{v}");
    assert!(s(&v["id"]).starts_with("fr_"), "{v}");
    s(&v["id"])
}

#[tokio::test]
async fn a_service_account_token_is_exchanged_under_its_rule_and_every_check_refuses() {
    let app = TestApp::spawn_with(&[("TOLLGATE_AUTH_FAIL_IP_LIMIT", "1000")]).await;
    let admin = app.admin_token().await;
    let key = es256("sa-1");
    let id = client(&app, &admin, &["read", "write"]).await;
    let rule = trust(
        &app,
        &admin,
        &key,
        json!({"issuer": K8S, "audience": "tollgate", "subject": "system:serviceaccount:payments:*",
               "claims": {"kubernetes.io": "*"}, "client_id": id, "scopes": ["read"]}),
    )
    .await;
    // The claim condition on an object claim can never match: remove it and
    // add the rule as meant.
    assert_eq!(
        admin_delete(&app, &admin, &format!("/admin/federation/rules/{rule}")).await,
        204
    );
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/federation/rules",
        json!({"issuer": K8S, "audience": "tollgate", "subject": "system:serviceaccount:payments:*",
               "client_id": id, "scopes": ["read"]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let rule = s(&v["id"]);

    // The exchange: the client's token, narrowed to the rule's scopes, never
    // outliving the external token.
    let external = sa_token(&key, "system:serviceaccount:payments:api", "tollgate", 120);
    let (status, v) = bearer_grant(&app, &external, &[]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "read");
    assert!(v["expires_in"].as_i64().unwrap() <= 120, "{v}");
    let claims = segment(&s(&v["access_token"]), 1);
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["sub"], id.as_str());
    assert!(claims["exp"].as_i64().unwrap() <= now() + 120);
    let active = app.introspect(&s(&v["access_token"])).await;
    assert_eq!(active["active"], true, "{active}");
    // The same external token again: not single-use, so accepted.
    assert_eq!(bearer_grant(&app, &external, &[]).await.0, 200);
    // A JSON body, an audience of the client's, and the client named.
    let (status, v) = json(
        app.http
            .post(app.url("/oauth/token"))
            .json(&json!({"grant_type": JWT_BEARER, "assertion": external, "audience": "https://ledger", "client_id": id}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(segment(&s(&v["access_token"]), 1)["aud"], "https://ledger");

    // Each check refuses with invalid_grant and says which.
    let refused = |what: &'static str, says: &'static str| (what, says);
    let other_key = es256("sa-1");
    let untrusted = sign(
        &key,
        &json!({"iss": "https://elsewhere", "sub": "x", "aud": "tollgate", "exp": now() + 60}),
    );
    let cases = [
        (
            refused("another key", "signature"),
            sa_token(
                &other_key,
                "system:serviceaccount:payments:api",
                "tollgate",
                60,
            ),
        ),
        (refused("untrusted issuer", "trusted issuer"), untrusted),
        (
            refused("expired", "expired"),
            sa_token(&key, "system:serviceaccount:payments:api", "tollgate", -120),
        ),
        (
            refused("audience", "no federation rule"),
            sa_token(&key, "system:serviceaccount:payments:api", "other", 60),
        ),
        (
            refused("subject", "no federation rule"),
            sa_token(&key, "system:serviceaccount:billing:api", "tollgate", 60),
        ),
        (refused("not a JWT", "not a signed JWT"), "abc".to_string()),
    ];
    for ((what, says), assertion) in cases {
        let (status, v) = bearer_grant(&app, &assertion, &[]).await;
        assert_eq!(status, 400, "{what}: {v}");
        assert_eq!(v["error"], "invalid_grant", "{what}: {v}");
        assert!(s(&v["error_description"]).contains(says), "{what}: {v}");
    }
    // Scopes beyond the rule's, a client the rule is not for, no assertion.
    let (status, v) = bearer_grant(&app, &external, &[("scope", "write")]).await;
    assert_eq!(
        (status, s(&v["error"])),
        (400, "invalid_scope".into()),
        "{v}"
    );
    let (status, v) = bearer_grant(&app, &external, &[("client_id", "tgc_other")]).await;
    assert_eq!(
        (status, s(&v["error"])),
        (400, "invalid_grant".into()),
        "{v}"
    );
    let (status, v) = json(
        app.http
            .post(app.url("/oauth/token"))
            .form(&[("grant_type", JWT_BEARER)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, s(&v["error"])),
        (400, "invalid_request".into()),
        "{v}"
    );

    // A disabled client gets nothing through its rule.
    let (status, _) = admin_post(
        &app,
        &admin,
        &format!("/admin/clients/{id}/disable"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, v) = bearer_grant(&app, &external, &[]).await;
    assert_eq!(status, 400, "{v}");
    assert!(s(&v["error_description"]).contains("disabled"), "{v}");

    // Per-rule metrics, and the external identity in the log.
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(&format!(
            "tollgate_federation_exchanges_total{{result=\"issued\",rule=\"{rule}\"}} 3"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("result=\"no_rule\",rule=\"none\""),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("result=\"client_disabled\",rule=\"{rule}\"")));
    assert!(
        metrics.contains("tollgate_tokens_issued_total{grant=\"jwt_bearer\",result=\"issued\"} 3")
    );
    let logs = app.logs();
    assert!(
        logs.contains(&format!(
            "iss=\"{K8S}\" sub=\"system:serviceaccount:payments:api\""
        )),
        "{logs}"
    );
}

#[tokio::test]
async fn a_single_use_rule_refuses_a_replayed_token_even_after_a_restart() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let key = es256("gh");
    let id = client(&app, &admin, &["deploy"]).await;
    trust(
        &app,
        &admin,
        &key,
        json!({"issuer": K8S, "audience": "tollgate", "client_id": id, "single_use": true,
               "claims": {"repository_id": "123456", "ref": "refs/heads/*"}}),
    )
    .await;
    let token = |repo: &str, reference: &str, with_jti: bool| {
        let mut c = json!({"iss": K8S, "sub": "repo:acme/app:ref:refs/heads/main", "aud": "tollgate",
                           "exp": now() + 300, "iat": now(), "repository_id": repo, "ref": reference});
        if with_jti {
            c["jti"] = json!(jti());
        }
        sign(&key, &c)
    };
    let once = token("123456", "refs/heads/main", true);
    assert_eq!(bearer_grant(&app, &once, &[]).await.0, 200);
    let (status, v) = bearer_grant(&app, &once, &[]).await;
    assert_eq!(status, 400);
    assert!(
        s(&v["error_description"]).contains("exchanged before"),
        "{v}"
    );
    app.restart();
    assert_eq!(bearer_grant(&app, &once, &[]).await.0, 400, "remembered");
    // No jti: a single-use rule cannot tell replays apart.
    let (status, v) = bearer_grant(&app, &token("123456", "refs/heads/main", false), &[]).await;
    assert_eq!(status, 400);
    assert!(s(&v["error_description"]).contains("jti"), "{v}");
    // Claims: a re-registered repository with the same name has another id.
    assert_eq!(
        bearer_grant(&app, &token("999", "refs/heads/main", true), &[])
            .await
            .0,
        400
    );
    assert_eq!(
        bearer_grant(&app, &token("123456", "refs/tags/v1", true), &[])
            .await
            .0,
        400
    );
    assert_eq!(
        bearer_grant(&app, &token("123456", "refs/heads/dev", true), &[])
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn discovery_finds_the_issuers_keys_and_a_client_assertion_form_authenticates() {
    let app = TestApp::spawn_with(&[("TOLLGATE_FETCH_ALLOW_LOCAL", "true")]).await;
    let admin = app.admin_token().await;
    let key = es256("spiffe-1");
    let server = jwks_server(json!({"keys": [key.jwk.clone()]})).await;
    let id = client(&app, &admin, &["read"]).await;
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/federation/issuers",
        json!({"issuer": server.issuer}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/federation/rules",
        json!({"issuer": server.issuer, "audience": app.url("/oauth/token"),
               "subject": "spiffe://example.org/ns/payments/sa/*", "client_id": id}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let svid = |k: &Key, sub: &str| {
        sign(
            k,
            &json!({"iss": server.issuer, "sub": sub, "aud": app.url("/oauth/token"),
                    "exp": now() + 300, "iat": now()}),
        )
    };
    let good = svid(&key, "spiffe://example.org/ns/payments/sa/api");
    // Form (a): client credentials with the workload's token as the client
    // assertion and client_id naming the client.
    let form = |assertion: &str, client_id: &str| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", client_id.to_string()),
            ("client_assertion_type", ASSERTION_TYPE.to_string()),
            ("client_assertion", assertion.to_string()),
        ]
    };
    let (status, v) = json(
        app.http
            .post(app.url("/oauth/token"))
            .form(&form(&good, &id))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(segment(&s(&v["access_token"]), 1)["client_id"], id.as_str());
    assert_eq!(server.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The same token naming another client, or another subject: 401.
    for (assertion, client_id) in [
        (good.clone(), "tgc_nobody".to_string()),
        (
            svid(&key, "spiffe://example.org/ns/billing/sa/api"),
            id.clone(),
        ),
    ] {
        let (status, v) = json(
            app.http
                .post(app.url("/oauth/token"))
                .form(&form(&assertion, &client_id))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401, "{v}");
        assert_eq!(v["error"], "invalid_client");
    }
    // The form (b) with the same rule, and a rotated key refetched once.
    assert_eq!(bearer_grant(&app, &good, &[]).await.0, 200);
    let rotated = es256("spiffe-2");
    *server.keys.lock().unwrap() = json!({"keys": [rotated.jwk.clone()]});
    let (status, v) = bearer_grant(
        &app,
        &svid(&rotated, "spiffe://example.org/ns/payments/sa/api"),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(server.hits.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn issuers_and_rules_are_administered_audited_kept_and_tested() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let key = es256("k");
    let id = client(&app, &admin, &["read"]).await;
    let jwks = json!({"keys": [key.jwk.clone()]});
    for (what, body) in [
        ("http issuer", json!({"issuer": "http://k8s.example"})),
        (
            "both key sources",
            json!({"issuer": K8S, "jwks": jwks, "jwks_uri": "https://k8s.example/jwks"}),
        ),
        (
            "private key",
            json!({"issuer": K8S, "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "c"}]}}),
        ),
        ("unknown member", json!({"issuer": K8S, "keys": jwks})),
    ] {
        let (status, v) = admin_post(&app, &admin, "/admin/federation/issuers", body).await;
        assert_eq!(status, 400, "{what}: {v}");
    }
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/federation/issuers",
        json!({"issuer": K8S, "jwks": jwks}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let issuer_id = s(&v["id"]);
    let (status, _) = admin_post(
        &app,
        &admin,
        "/admin/federation/issuers",
        json!({"issuer": K8S}),
    )
    .await;
    assert_eq!(status, 409, "the issuer is trusted already");
    for (what, body, code) in [
        (
            "untrusted issuer",
            json!({"issuer": "https://other", "audience": "a", "client_id": id}),
            "invalid_request",
        ),
        (
            "unknown client",
            json!({"issuer": K8S, "audience": "a", "client_id": "tgc_none"}),
            "invalid_request",
        ),
        (
            "wider scopes",
            json!({"issuer": K8S, "audience": "a", "client_id": id, "scopes": ["admin"]}),
            "invalid_scope",
        ),
        (
            "empty subject",
            json!({"issuer": K8S, "audience": "a", "client_id": id, "subject": ""}),
            "invalid_request",
        ),
        (
            "registered claim",
            json!({"issuer": K8S, "audience": "a", "client_id": id, "claims": {"aud": "x"}}),
            "invalid_request",
        ),
    ] {
        let (status, v) = admin_post(&app, &admin, "/admin/federation/rules", body).await;
        assert_eq!(
            (status, s(&v["error"])),
            (400, code.to_string()),
            "{what}: {v}"
        );
    }
    // The command line adds a rule through the same use case.
    let rule = app.cli(&[
        "federation",
        "rule",
        "add",
        "--issuer",
        K8S,
        "--audience",
        "tollgate",
        "--subject",
        "system:serviceaccount:payments:*",
        "--claim",
        "team=pay*",
        "--client-id",
        &id,
        "--scope",
        "read",
    ]);
    let rule_id = s(&rule[0]["id"]);
    assert_eq!(rule[0]["claims"]["team"], "pay*");
    // Removing an issuer in use is refused.
    assert_eq!(
        admin_delete(
            &app,
            &admin,
            &format!("/admin/federation/issuers/{issuer_id}")
        )
        .await,
        409
    );
    // The dry run says which rule matches, or why not.
    let matching = sign(
        &key,
        &json!({"iss": K8S, "sub": "system:serviceaccount:payments:api", "aud": "tollgate", "exp": now() + 60, "team": "payments"}),
    );
    let (status, v) = admin_post(
        &app,
        &admin,
        "/admin/federation/test",
        json!({"assertion": matching}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["matched"].clone(), s(&v["rule"])),
        (json!(true), rule_id.clone()),
        "{v}"
    );
    let other_team = sign(
        &key,
        &json!({"iss": K8S, "sub": "system:serviceaccount:payments:api", "aud": "tollgate", "exp": now() + 60, "team": "ops"}),
    );
    let (_, v) = admin_post(
        &app,
        &admin,
        "/admin/federation/test",
        json!({"assertion": other_team}),
    )
    .await;
    assert_eq!(v["matched"], false, "{v}");
    assert!(s(&v["rules"][0]["reason"]).contains("team"), "{v}");
    // The CLI dry run, from a file; it fails when nothing matches.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token.jwt");
    std::fs::write(&file, &matching).unwrap();
    let report = app.cli(&["federation", "test", file.to_str().unwrap()]);
    assert_eq!(s(&report["rule"]), rule_id);
    std::fs::write(&file, &other_team).unwrap();
    assert!(!app
        .cli_raw(&["federation", "test", file.to_str().unwrap()], false)
        .status
        .success());
    // Nothing was issued by the dry runs.
    // (The issued series exists from the start, at 0: every jwt_bearer
    // series must still be 0.)
    let metrics = app.metrics_text().await;
    let jwt_bearer: Vec<&str> = metrics
        .lines()
        .filter(|l| l.contains("grant=\"jwt_bearer\""))
        .collect();
    assert!(jwt_bearer.iter().all(|l| l.ends_with(" 0")), "{metrics}");

    // Kept across a restart; listed by both the API and the CLI.
    app.restart();
    let admin = app.admin_token().await;
    let issuers = admin_get(&app, &admin, "/admin/federation/issuers").await;
    assert_eq!(issuers["data"][0]["issuer"], K8S);
    assert_eq!(issuers["data"][0]["jwks"], jwks);
    let rules = app.cli(&["federation", "rule", "list"]);
    assert_eq!(s(&rules[0]["id"]), rule_id);
    assert_eq!(rules[0]["subject"], "system:serviceaccount:payments:*");
    assert_eq!(rules[0]["scopes"], json!(["read"]));
    // Every change is in the audit log.
    let audit = admin_get(&app, &admin, "/admin/audit?limit=1000").await;
    let actions: Vec<String> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["action"]))
        .collect();
    for a in ["federation.issuer.add", "federation.rule.add"] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
    // Remove the rule (CLI), then the issuer (API); a deleted client takes
    // its rules along.
    let out = app.cli_raw(&["federation", "rule", "remove", &rule_id], false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        admin_delete(&app, &admin, &format!("/admin/federation/rules/{rule_id}")).await,
        404
    );
    let (status, _) = admin_post(
        &app,
        &admin,
        "/admin/federation/rules",
        json!({"issuer": K8S, "audience": "a", "client_id": id}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        admin_delete(&app, &admin, &format!("/admin/clients/{id}")).await,
        204
    );
    assert_eq!(
        admin_get(&app, &admin, "/admin/federation/rules").await["meta"]["count"],
        0
    );
    assert_eq!(
        admin_delete(
            &app,
            &admin,
            &format!("/admin/federation/issuers/{issuer_id}")
        )
        .await,
        204
    );
    let audit = admin_get(&app, &admin, "/admin/audit?limit=1000").await;
    let actions: Vec<String> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["action"]))
        .collect();
    for a in ["federation.rule.remove", "federation.issuer.remove"] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
}

/// Issue 23 (N1): a `single_use` workload token used as a client assertion
/// authenticates once; after its `exp`, inside the skew, it is refused at
/// introspection and revocation too. An external token whose `exp` lies
/// more than 24 h ahead is refused (nothing is stored for ten years).
#[tokio::test]
async fn a_single_use_workload_token_is_refused_after_its_exp_and_lifetimes_are_capped() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let key = es256("gh");
    let id = client(&app, &admin, &["tollgate:introspect", "deploy"]).await;
    trust(
        &app,
        &admin,
        &key,
        json!({"issuer": K8S, "audience": app.url("/oauth/token"), "client_id": id,
               "single_use": true}),
    )
    .await;
    let exp = now() + 1;
    let once = sign(
        &key,
        &json!({"iss": K8S, "sub": "system:serviceaccount:payments:api",
                "aud": app.url("/oauth/token"), "exp": exp, "iat": now(), "jti": jti()}),
    );
    let (other, osecret) = app.client("", &[]);
    let token = app.token(&other, &osecret).await;
    let call = |path: &'static str| {
        let form = vec![
            ("token", token.clone()),
            ("client_id", id.clone()),
            ("client_assertion_type", ASSERTION_TYPE.to_string()),
            ("client_assertion", once.clone()),
        ];
        let app = &app;
        async move {
            json(
                app.http
                    .post(app.url(path))
                    .form(&form)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let (status, v) = call("/oauth/introspect").await;
    assert_eq!((status, v["active"].clone()), (200, json!(true)), "{v}");
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert!(now() > exp, "past exp");
    for path in ["/oauth/introspect", "/oauth/revoke", "/oauth/introspect"] {
        let (status, v) = call(path).await;
        assert_eq!(status, 401, "{path} after exp: {v}");
        assert_eq!(v["error"], "invalid_client");
    }
    // Ten years ahead: refused, not stored for ten years.
    let far = sign(
        &key,
        &json!({"iss": K8S, "sub": "system:serviceaccount:payments:api",
                "aud": app.url("/oauth/token"), "exp": now() + 10 * 365 * 86400,
                "iat": now(), "jti": jti()}),
    );
    let (status, v) = bearer_grant(&app, &far, &[]).await;
    assert_eq!(status, 400, "{v}");
    assert!(s(&v["error_description"]).contains("24 hours"), "{v}");
}
