//! A fleet: several instances on one PostgreSQL database (`TOLLGATE_TEST_PG_URL`).
//! Changes made through one instance reach the others within a second,
//! quotas hold across the fleet, one instance dying leaves the rest serving,
//! PostgreSQL going away fails closed, and `tollgate migrate` copies a SQLite
//! deployment. Without `TOLLGATE_TEST_PG_URL` every test here says it is
//! skipped and passes.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::call;
use crate::helpers::{eventually, json, pg_or_skip, pg_schema, s, segment, CuttableProxy, TestApp};

/// The documented bound for a change to reach every instance.
const BOUND: Duration = Duration::from_secs(1);

/// Polls `check` until it holds or `BOUND` passes; how long it took.
async fn within_bound<F, Fut>(what: &str, check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually(what, BOUND, check).await
}

async fn introspect_with(app: &TestApp, id: &str, secret: &str, token: &str) -> Value {
    app.introspect_as(id, secret, token).await
}

#[tokio::test]
async fn changes_through_one_instance_take_effect_on_the_other_within_a_second() {
    let Some(url) = pg_or_skip("fleet changes") else {
        return;
    };
    let fleet = TestApp::fleet(&url, 2, &[]).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let (iid, isecret) = a.client("tollgate:introspect", &[]);
    let admin = a.admin_token().await;

    // A revocation through A: B answers inactive.
    let (id, secret) = a.client("read", &[]);
    let token = b.token(&id, &secret).await;
    assert_eq!(
        introspect_with(b, &iid, &isecret, &token).await["active"],
        true
    );
    let r = a.revoke(&id, &secret, token.as_str()).await;
    assert_eq!(r.status(), 200);
    within_bound("revocation on B", || async {
        introspect_with(b, &iid, &isecret, &token).await["active"] == false
    })
    .await;

    // A client disabled through A: B stops issuing and its tokens die.
    let (id2, secret2) = a.client("read", &[]);
    let token2 = b.token(&id2, &secret2).await;
    let (status, _) = call(
        a,
        &admin,
        Method::POST,
        &format!("/admin/clients/{id2}/disable"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    within_bound("disabled client on B", || async {
        b.token_request(&id2, &secret2, None).await.status() == 401
    })
    .await;
    assert_eq!(
        introspect_with(b, &iid, &isecret, &token2).await["active"],
        false
    );

    // A secret rotated through A with no grace: B refuses the old one and
    // accepts the new one.
    let (id3, old) = a.client("read", &[]);
    assert_eq!(b.token_request(&id3, &old, None).await.status(), 200);
    let (status, v) = call(
        a,
        &admin,
        Method::POST,
        &format!("/admin/clients/{id3}/rotate-secret"),
        Some(json!({"grace_seconds": 0})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let new = s(&v["client_secret"]);
    within_bound("rotated secret on B", || async {
        b.token_request(&id3, &old, None).await.status() == 401
    })
    .await;
    assert_eq!(b.token_request(&id3, &new, None).await.status(), 200);

    // A signing key rotated through A (no pre-publication): B signs with it.
    let (status, rec) = call(
        a,
        &admin,
        Method::POST,
        "/admin/signing-keys/rotate",
        Some(json!({"prepublish_seconds": 0})),
    )
    .await;
    assert_eq!(status, 201, "{rec}");
    let kid = s(&rec["kid"]);
    within_bound("rotated signing key on B", || async {
        segment(&b.token(&id3, &new).await, 0)["kid"] == kid.as_str()
    })
    .await;
    // Both publish it, and a token from B verifies at A.
    let jwks: Value = a
        .http
        .get(a.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(jwks.to_string().contains(&kid));
    let from_b = b.token(&id3, &new).await;
    assert_eq!(
        introspect_with(a, &iid, &isecret, &from_b).await["active"],
        true
    );
}

#[tokio::test]
async fn a_quota_holds_across_the_fleet_sequentially_and_under_concurrency() {
    let Some(url) = pg_or_skip("fleet quota") else {
        return;
    };
    let fleet = TestApp::fleet(&url, 2, &[]).await;
    let (a, b) = (&fleet[0], &fleet[1]);

    // Alternating between the instances: exactly the quota, then a ban on both.
    let v = a.cli(&[
        "client", "create", "--name", "q", "--scope", "read", "--quota", "4", "--ban", "60",
    ]);
    let (id, secret) = (s(&v["client_id"]), s(&v["client_secret"]));
    let mut statuses = Vec::new();
    for i in 0..8 {
        let app = if i % 2 == 0 { a } else { b };
        statuses.push(
            app.token_request(&id, &secret, None)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429, 429, 429]);
    let r = b.token_request(&id, &secret, None).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry),
        "banned for the ban time: {retry}"
    );
    let (status, body) = json(r).await;
    assert_eq!(
        (status, s(&body["error"])),
        (429, "too_many_requests".into())
    );

    // 40 requests at once, 20 at each instance: exactly 10 tokens in all.
    let v = a.cli(&[
        "client", "create", "--name", "q2", "--scope", "read", "--quota", "10", "--ban", "0",
    ]);
    let (id, secret) = (s(&v["client_id"]), s(&v["client_secret"]));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (http, url) = (
            a.http.clone(),
            if i % 2 == 0 {
                a.url("/oauth/token")
            } else {
                b.url("/oauth/token")
            },
        );
        let (id, secret) = (id.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 10, "the fleet as a whole issued exactly the quota");
}

#[tokio::test]
async fn killing_one_instance_mid_load_leaves_the_other_serving() {
    let Some(url) = pg_or_skip("fleet kill") else {
        return;
    };
    // Per-IP limits are per instance and would refuse this one-IP load.
    let mut fleet = TestApp::fleet(&url, 2, &[("TOLLGATE_IP_LIMIT_POST", "0")]).await;
    let (id, secret) = fleet[0].client("read", &[]);
    let b_url = fleet[1].url("/oauth/token");
    let http = fleet[1].http.clone();
    let load = tokio::spawn(async move {
        let mut statuses = Vec::new();
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            let r = http
                .post(&b_url)
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            statuses.push(r.status().as_u16());
        }
        statuses
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    fleet[0].kill();
    let statuses = load.await.unwrap();
    assert!(statuses.len() > 20, "load ran: {}", statuses.len());
    assert!(
        statuses.iter().all(|s| *s == 200),
        "B kept serving while A died: {statuses:?}"
    );
    // And B still takes admin work.
    let (id2, secret2) = fleet[1].client("read", &[]);
    assert_eq!(
        fleet[1].token_request(&id2, &secret2, None).await.status(),
        200
    );
}

// The relay runs on the test's runtime while the test blocks on the server's start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_postgres_fails_closed_and_issued_tokens_still_verify() {
    let Some(url) = pg_or_skip("fleet outage") else {
        return;
    };
    let (proxy, db, schema, _) = through_proxy(&url).await;
    let app = TestApp::spawn_on(tempfile::tempdir().unwrap(), db, Some(schema), None, &[]);
    let (id, secret) = app.client("read", &[]);
    let token = app.token(&id, &secret).await;
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    proxy.cut();
    // Within the bound the instance notices and stops answering from memory.
    within_bound("issuance fails closed", || async {
        app.token_request(&id, &secret, None).await.status() == 503
    })
    .await;
    let r = app.token_request(&id, &secret, None).await;
    assert_eq!(r.headers()["retry-after"], "1");
    let (status, body) = json(r).await;
    assert_eq!(
        (status, s(&body["error"])),
        (503, "temporarily_unavailable".into())
    );
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    // The keys are in memory: JWKS still answers, and the token issued
    // before the outage verifies against it locally.
    let during: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(during, jwks);
    let kid = s(&segment(&token, 0)["kid"]);
    assert!(during["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == kid.as_str()));

    proxy.restore();
    within_bound_secs(5, || async {
        app.token_request(&id, &secret, None).await.status() == 200
    })
    .await;

    // A database that hangs instead of refusing: one call waits out the
    // 2-s timeout, the calls after it fail at once instead of each waiting.
    proxy.cut_silently();
    within_bound_secs(5, || async {
        app.token_request(&id, &secret, None).await.status() == 503
    })
    .await;
    let start = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(
            app.token_request(&id, &secret, None)
                .await
                .status()
                .as_u16(),
        );
    }
    let took = start.elapsed();
    eprintln!("10 requests against a silent database: {took:?}");
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    assert!(
        took < Duration::from_secs(4),
        "each request waited for the database: {took:?}"
    );
    proxy.restore();
    within_bound_secs(8, || async {
        app.token_request(&id, &secret, None).await.status() == 200
    })
    .await;
}

/// A fresh schema on `url`'s server and a relay to it that a test can cut:
/// (the relay, the schema's URL through it, the schema, its direct URL).
async fn through_proxy(url: &str) -> (CuttableProxy, String, String, String) {
    let (schema, direct) = pg_schema(url).await;
    let target = {
        let cfg: tokio_postgres::Config = url.parse().unwrap();
        let host = match &cfg.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[allow(unreachable_patterns)]
            _ => "127.0.0.1".to_string(),
        };
        format!(
            "{host}:{}",
            cfg.get_ports().first().copied().unwrap_or(5432)
        )
    };
    let proxy = CuttableProxy::start(target).await;
    // The same server, reached through the relay.
    let (scheme_user, rest) = url.split_once('@').unwrap();
    let path = &rest[rest.find('/').unwrap()..];
    let sep = if path.contains('?') { '&' } else { '?' };
    let db = format!(
        "{scheme_user}@127.0.0.1:{}{path}{sep}options=-csearch_path%3D{schema}",
        proxy.port
    );
    (proxy, db, schema, direct)
}

/// Issue 23 (16): with `TOLLGATE_OUTAGE_GRACE`, an instance that loses the
/// database keeps issuing and introspecting from its cache for the grace,
/// a revocation made (through another instance) before the outage still
/// holds, writes answer 503, `/readyz` and a metric say so; after the grace
/// it fails closed, and it recovers when the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_grace_keeps_tokens_and_introspection_from_the_cache() {
    let Some(url) = pg_or_skip("outage grace") else {
        return;
    };
    let (proxy, via_proxy, schema, direct) = through_proxy(&url).await;
    let a = TestApp::spawn_on(
        tempfile::tempdir().unwrap(),
        via_proxy,
        Some(schema),
        None,
        &[
            ("TOLLGATE_OUTAGE_GRACE", "5"),
            ("TOLLGATE_ISSUER", "http://tollgate.fleet.test"),
        ],
    );
    let b = TestApp::spawn_on(
        tempfile::tempdir().unwrap(),
        direct,
        None,
        Some(a.keys_dir.clone()),
        &[("TOLLGATE_ISSUER", "http://tollgate.fleet.test")],
    );
    let (id, secret) = a.client("read", &[]);
    let (iid, isecret) = a.client("tollgate:introspect", &[]);
    let revoked = a.token(&id, &secret).await;
    let kept = a.token(&id, &secret).await;
    for t in [&revoked, &kept] {
        assert_eq!(introspect_with(&a, &iid, &isecret, t).await["active"], true);
    }
    // Revoked through B before the outage: A hears of it.
    assert_eq!(b.revoke(&id, &secret, &revoked).await.status(), 200);
    within_bound("A hears of the revocation", || async {
        introspect_with(&a, &iid, &isecret, &revoked).await["active"] == false
    })
    .await;

    proxy.cut();
    within_bound_secs(4, || async {
        let r = a.http.get(a.url("/readyz")).send().await.unwrap();
        r.status() == 503 && r.text().await.unwrap().contains("outage grace")
    })
    .await;
    // Within the grace: tokens, introspection from the cache; the
    // revocation holds; a new token introspects active; writes are 503.
    let fresh = a.token(&id, &secret).await;
    assert_eq!(
        introspect_with(&a, &iid, &isecret, &kept).await["active"],
        true
    );
    assert_eq!(
        introspect_with(&a, &iid, &isecret, &fresh).await["active"],
        true
    );
    assert_eq!(
        introspect_with(&a, &iid, &isecret, &revoked).await["active"],
        false
    );
    assert_eq!(a.revoke(&id, &secret, &kept).await.status(), 503);
    let metrics = a.metrics_text().await;
    let gauge = metrics
        .lines()
        .find(|l| l.starts_with("tollgate_outage_grace_seconds "))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert_ne!(gauge, "tollgate_outage_grace_seconds 0", "{gauge}");
    // The grace ends: fail closed.
    within_bound_secs(10, || async {
        a.token_request(&id, &secret, None).await.status() == 503
    })
    .await;
    proxy.restore();
    within_bound_secs(8, || async {
        a.token_request(&id, &secret, None).await.status() == 200
    })
    .await;
    assert_eq!(
        introspect_with(&a, &iid, &isecret, &revoked).await["active"],
        false
    );
}

/// Like `within_bound`, for recovery, which waits on reconnection back-off.
async fn within_bound_secs<F, Fut>(secs: u64, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually("recovery", Duration::from_secs(secs), check).await;
}

#[tokio::test]
async fn issuing_tokens_writes_nothing_to_the_database() {
    let Some(url) = pg_or_skip("fleet no writes") else {
        return;
    };
    let fleet = TestApp::fleet(&url, 1, &[]).await;
    let app = &fleet[0];
    let (id, secret) = app.client("read", &[]);
    let key = s(&app.cli(&["api-key", "create", "--client", &id])["secret_key"]);
    let _ = app.token(&id, &secret).await;
    // Every row of every table but api_keys (whose last_used_at is written
    // in the background by design), with its xmin: an insert, update or
    // delete by any transaction changes this text.
    let writes = || async {
        let (client, conn) = tokio_postgres::connect(&app.db, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        let mut out = String::new();
        for table in [
            "clients",
            "client_secrets",
            "revoked_tokens",
            "signing_keys",
            "audit_log",
            "quota_usage",
            "tollgate_changes",
        ] {
            let row = client
                .query_one(
                    &format!(
                        "SELECT count(*)::text || ' ' || \
                         coalesce(string_agg(t.xmin::text || ':' || t::text, ' '), '') FROM {table} t"
                    ),
                    &[],
                )
                .await
                .unwrap();
            out.push_str(&format!("{table}: {}\n", row.get::<_, &str>(0)));
        }
        drop(client);
        let _ = task.await;
        out
    };
    let before = writes().await;
    for _ in 0..50 {
        let _ = app.token(&id, &secret).await;
    }
    for _ in 0..20 {
        let r = app
            .http
            .post(app.url("/authentication/token"))
            .json(&json!({"secret_key": key}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let after = writes().await;
    assert_eq!(before, after, "70 tokens wrote rows");

    // The one documented exception, which also shows the check can fail: a
    // client with a quota is counted in quota_usage, and nothing else changes.
    let v = app.cli(&[
        "client", "create", "--name", "q", "--scope", "read", "--quota", "100",
    ]);
    let base = writes().await;
    let _ = app
        .token(&s(&v["client_id"]), &s(&v["client_secret"]))
        .await;
    let counted = writes().await;
    let changed: Vec<&str> = base
        .lines()
        .zip(counted.lines())
        .filter(|(x, y)| x != y)
        .map(|(x, _)| x.split(':').next().unwrap())
        .collect();
    assert_eq!(changed, ["quota_usage"]);
}

#[tokio::test]
async fn migrate_copies_a_sqlite_deployment_into_postgres() {
    let Some(url) = pg_or_skip("migrate") else {
        return;
    };
    // A SQLite deployment with some history.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tollgate.db").display().to_string();
    let mut old = TestApp::spawn_on(
        dir,
        db,
        None,
        None,
        &[("TOLLGATE_ISSUER", "http://tollgate.migrate.test")],
    );
    let (iid, isecret) = old.client("tollgate:introspect", &[]);
    let (id, first) = old.client("read write", &["https://api.example"]);
    let rotated =
        s(&old.cli(&["client", "rotate-secret", &id, "--grace", "3600"])["client_secret"]);
    let key = s(&old.cli(&["api-key", "create", "--client", &id, "--name", "ci"])["secret_key"]);
    let gone = old.cli(&["api-key", "create", "--client", &id]);
    old.cli(&["api-key", "revoke", &s(&gone["id"])]);
    let revoked = old.token(&id, &first).await;
    let r = old.revoke(&id, &first, revoked.as_str()).await;
    assert_eq!(r.status(), 200);
    let audit_before = old.cli(&["audit", "list"]);
    old.kill();

    let (schema, pg) = pg_schema(&url).await;
    let out = old.cli_raw(&["migrate", "--from", &old.db, "--to", &pg], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["migrated"]["clients"], 2);
    assert_eq!(report["migrated"]["api_keys"], 2);
    assert_eq!(report["migrated"]["revocations"], 1);
    assert_eq!(report["migrated"]["secrets"], 3);

    // A second migration into the same database is refused.
    let again = old.cli_raw(&["migrate", "--from", &old.db, "--to", &pg], false);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("empty database"));

    // The same keys directory, now on PostgreSQL.
    let new = TestApp::spawn_on(
        tempfile::tempdir().unwrap(),
        pg,
        Some(schema),
        Some(old.keys_dir.clone()),
        &[("TOLLGATE_ISSUER", "http://tollgate.migrate.test")],
    );
    // Both live secrets still work (the hashes moved, not the secrets).
    assert_eq!(new.token_request(&id, &first, None).await.status(), 200);
    assert_eq!(new.token_request(&id, &rotated, None).await.status(), 200);
    // The API key works; the revoked one does not.
    let r = new
        .http
        .post(new.url("/authentication/token"))
        .json(&json!({"secret_key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let keys = new.cli(&["api-key", "list", "--client", &id]);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    assert!(keys.to_string().contains("revoked"));
    // The revoked token stays revoked.
    assert_eq!(
        introspect_with(&new, &iid, &isecret, &revoked).await["active"],
        false
    );
    // The audit log came along, in order, followed by the migration.
    let audit_after = new.cli(&["audit", "list"]);
    let actions = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| s(&e["action"]))
            .collect()
    };
    let (before, after) = (actions(&audit_before), actions(&audit_after));
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "old entries first, in order"
    );
    assert!(after.contains(&"store.migrate".to_string()));
}

/// Issue 13 items 2 and 3 across a fleet: a scope removed and a signing key
/// marked compromised through A take effect on B within a second.
#[tokio::test]
async fn scope_removal_and_key_compromise_reach_the_other_instance_within_a_second() {
    let Some(url) = pg_or_skip("fleet scope removal and key compromise") else {
        return;
    };
    let fleet = TestApp::fleet(&url, 2, &[]).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let root = a.admin_token().await;
    let (id, secret) = a.client("tollgate:admin", &[]);
    let token = a.token(&id, &secret).await;
    let admin_status = |app: &TestApp, t: String| {
        let req = app.http.get(app.url("/admin/clients")).bearer_auth(t);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(admin_status(b, token.clone()).await, 200);
    let (status, _) = call(
        a,
        &root,
        Method::PATCH,
        &format!("/admin/clients/{id}"),
        Some(json!({"scopes": ["read"]})),
    )
    .await;
    assert_eq!(status, 200);
    within_bound("scope removal on B", || async {
        admin_status(b, token.clone()).await == 403
    })
    .await;

    let (iid, isecret) = a.client("tollgate:introspect", &[]);
    let (rid, rsecret) = a.client("read", &[]);
    let issued = b.token(&rid, &rsecret).await;
    let kid = s(&segment(&issued, 0)["kid"]);
    assert_eq!(
        introspect_with(b, &iid, &isecret, &issued).await["active"],
        true
    );
    let (status, v) = call(
        a,
        &root,
        Method::POST,
        &format!("/admin/signing-keys/{kid}/retire"),
        Some(json!({"compromised": true})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    within_bound("compromised key on B", || async {
        introspect_with(b, &iid, &isecret, &issued).await["active"] == false
    })
    .await;
    assert!(!b.jwks_kids().await.contains(&kid), "gone from B's JWKS");
    let fresh = b.token(&rid, &rsecret).await;
    assert_ne!(s(&segment(&fresh, 0)["kid"]), kid);
    assert_eq!(
        introspect_with(a, &iid, &isecret, &fresh).await["active"],
        true
    );
}

/// Issue 13 item 11 on PostgreSQL: the primary is lost and the database
/// answers read-only (as a standby does after a failover). Writes get 503
/// with Retry-After, readiness says not writable, tokens are still issued;
/// once it takes writes again, so does Tollgate.
#[tokio::test]
async fn a_read_only_postgres_gives_503_to_writes_and_keeps_issuing() {
    let Some(url) = pg_or_skip("read-only PostgreSQL") else {
        return;
    };
    let name = format!(
        "tg_ro_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    crate::helpers::pg_exec(&url, &format!("CREATE DATABASE {name}")).await;
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (url.clone(), String::new()),
    };
    let db = format!("{}/{name}{query}", &base[..base.rfind('/').unwrap()]);
    let set_read_only = |on: bool| {
        let (url, name) = (url.clone(), name.clone());
        async move {
            let setting = if on {
                "SET default_transaction_read_only = on"
            } else {
                "RESET default_transaction_read_only"
            };
            crate::helpers::pg_exec(
                &url,
                &format!(
                    "ALTER DATABASE {name} {setting}; \
                     SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{name}' AND pid <> pg_backend_pid();"
                ),
            )
            .await;
        }
    };
    {
        let app = TestApp::spawn_on(tempfile::tempdir().unwrap(), db, None, None, &[]);
        let admin = app.admin_token().await;
        let (id, secret) = app.client("read", &[]);
        app.token(&id, &secret).await;

        set_read_only(true).await;
        let create = || {
            app.http
                .post(app.url("/admin/clients"))
                .bearer_auth(&admin)
                .json(&json!({"name": "during"}))
                .send()
        };
        // Once the pool has reconnected (the terminated sessions fail
        // first, as a failover would), writes are refused and readiness
        // names the cause.
        within_bound_secs(10, || async {
            let r = create().await.unwrap();
            assert!(r.status() == 503 || r.status() == 201, "{}", r.status());
            let (_, ready) = json(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
            r.status() == 503
                && ready["error_description"]
                    .as_str()
                    .is_some_and(|d| d.contains("not writable"))
        })
        .await;
        // Reads still work: tokens are issued.
        within_bound_secs(5, || async {
            app.token_request(&id, &secret, None).await.status() == 200
        })
        .await;
        let r = create().await.unwrap();
        assert!(r.headers().contains_key("retry-after"));
        let (status, v) = json(r).await;
        assert_eq!(
            (status, s(&v["error"])),
            (503, "temporarily_unavailable".into())
        );
        assert!(
            s(&v["error_description"]).contains("cannot be written"),
            "{v}"
        );

        set_read_only(false).await;
        within_bound_secs(10, || async {
            app.http
                .get(app.url("/readyz"))
                .send()
                .await
                .unwrap()
                .status()
                == 200
        })
        .await;
        within_bound_secs(5, || async { create().await.unwrap().status() == 201 }).await;
    }
    crate::helpers::pg_exec(&url, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
}

/// Issue 23 (N1): an assertion used once on A before its `exp` is refused on
/// A and on B after its `exp`, inside the skew.
#[tokio::test]
async fn a_used_assertion_is_refused_across_the_fleet_after_its_exp() {
    use crate::private_key_jwt::{es256, jti, now, register, sign, token_with};
    let Some(url) = pg_or_skip("assertion replay after exp") else {
        return;
    };
    let issuer = "http://tollgate.fleet.test";
    let fleet = TestApp::fleet(&url, 2, &[]).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let admin = a.admin_token().await;
    let key = es256("k1");
    let id = register(a, &admin, &[&key], &["read"]).await;
    let exp = now() + 1;
    let once = sign(
        &key,
        &json!({"iss": id, "sub": id, "aud": issuer, "iat": now(), "exp": exp, "jti": jti()}),
    );
    let (status, v) = token_with(a, &once, &[]).await;
    assert_eq!(status, 200, "{v}");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(now() > exp);
    for app in [b, a, b, a, b] {
        let (status, v) = token_with(app, &once, &[]).await;
        assert_eq!(status, 401, "replay after exp: {v}");
    }
}

/// Issue 23 (N2): a console session opened on A from a link that admin
/// client X made stops within a second when X is disabled through B.
#[tokio::test]
async fn a_console_session_ends_across_the_fleet_with_its_makers_rights() {
    use crate::console::{console_status, open_link};
    let Some(url) = pg_or_skip("console sessions across the fleet") else {
        return;
    };
    let fleet = TestApp::fleet(&url, 2, &[]).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let (x, xsecret) = a.client("tollgate:admin", &[]);
    let xtoken = a.token(&x, &xsecret).await;
    let (status, v) = json(
        a.http
            .post(a.url("/admin/console/login-links"))
            .bearer_auth(&xtoken)
            .json(&json!({"base_url": a.url("")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let cookie = open_link(a, &s(&v["url"])).await.expect("signed in");
    assert_eq!(console_status(a, &cookie).await, 200);
    let admin = b.admin_token().await;
    let (status, v) = call(
        b,
        &admin,
        Method::POST,
        &format!("/admin/clients/{x}/disable"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    within_bound("the session on A ends", || async {
        console_status(a, &cookie).await != 200
    })
    .await;
}

/// Token exchange (RFC 8693): a token revoked through one instance makes
/// every token exchanged from it, down the chain, inactive on the other
/// within the bound; a disabled actor too.
#[tokio::test]
async fn revocation_follows_an_exchange_chain_across_the_fleet_within_a_second() {
    let Some(url) = pg_or_skip("fleet exchange chain") else {
        return;
    };
    let fleet = TestApp::fleet(&url, 2, &[]).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let (iid, isecret) = a.client("tollgate:introspect", &[]);
    let admin = a.admin_token().await;
    let c = crate::exchange::chain(a, &admin).await;
    // Issued and exchanged on B, revoked through A, introspected on B.
    let (t0, t1, t2) = crate::exchange::three_tokens(b, &c).await;
    for t in [&t1, &t2] {
        assert_eq!(introspect_with(b, &iid, &isecret, t).await["active"], true);
    }
    assert_eq!(
        a.revoke(&c.frontend.0, &c.frontend.1, &t0).await.status(),
        200
    );
    let took = within_bound("the exchanged tokens on B", || async {
        introspect_with(b, &iid, &isecret, &t1).await["active"] == false
            && introspect_with(b, &iid, &isecret, &t2).await["active"] == false
    })
    .await;
    eprintln!("chain revocation reached the other instance in {took:?}");

    // The middle actor disabled through A: the last token dies on B.
    let (_, _, t2) = crate::exchange::three_tokens(b, &c).await;
    let (status, _) = call(
        a,
        &admin,
        Method::POST,
        &format!("/admin/clients/{}/disable", c.gateway.0),
        None,
    )
    .await;
    assert_eq!(status, 200);
    within_bound("the disabled actor's descendants on B", || async {
        introspect_with(b, &iid, &isecret, &t2).await["active"] == false
    })
    .await;
}

/// A URL client blocked through one instance is refused by the other, and
/// its tokens die there, within the bound (the federation snapshot's
/// change notification).
#[tokio::test]
async fn a_blocked_url_client_is_refused_across_the_fleet_within_a_second() {
    let Some(url) = pg_or_skip("fleet CIMD block") else {
        return;
    };
    let env = [
        ("TOLLGATE_CIMD_ALLOWED_HOSTS", "127.0.0.1"),
        ("TOLLGATE_FETCH_ALLOW_LOCAL", "true"),
    ];
    let fleet = TestApp::fleet(&url, 2, &env).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let (iid, isecret) = a.client("tollgate:introspect", &[]);
    let admin = a.admin_token().await;
    let key = crate::private_key_jwt::es256("agent-1");
    let server = crate::private_key_jwt::jwks_server(json!({})).await;
    let client_id = server.url.clone();
    *server.keys.lock().unwrap() = json!({"client_id": client_id, "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.jwk.clone()]}});
    let (status, _) = call(
        a,
        &admin,
        Method::POST,
        "/admin/cimd/hosts",
        Some(json!({"host": "127.0.0.1", "scopes": ["tools:call"], "audiences": ["https://mcp.example/mcp"]})),
    )
    .await;
    assert_eq!(status, 201);
    // The fleet's one issuer is every assertion's audience.
    let issuer = s(&segment(&admin, 1)["iss"]);
    let token_on_b = || async {
        let assertion = crate::private_key_jwt::sign(
            &key,
            &json!({"iss": client_id, "sub": client_id, "aud": issuer,
                    "iat": crate::private_key_jwt::now(), "exp": crate::private_key_jwt::now() + 120,
                    "jti": crate::private_key_jwt::jti()}),
        );
        crate::private_key_jwt::token_with(b, &assertion, &[]).await
    };
    // The host policy reached B within the bound.
    within_bound("the host policy on B", || async {
        token_on_b().await.0 == 200
    })
    .await;
    let (status, v) = token_on_b().await;
    assert_eq!(status, 200, "{v}");
    let token = s(&v["access_token"]);
    let (status, _) = call(
        a,
        &admin,
        Method::POST,
        "/admin/cimd/blocks",
        Some(json!({"url": client_id})),
    )
    .await;
    assert_eq!(status, 200);
    within_bound("the block on B", || async {
        introspect_with(b, &iid, &isecret, &token).await["active"] == false
    })
    .await;
    assert_eq!(token_on_b().await.0, 401, "and it gets no token there");
}

/// An ID-JAG's `jti` is used once across the fleet: exchanged on A, the
/// same ID-JAG is refused on B.
#[tokio::test]
async fn an_id_jag_is_used_once_across_the_fleet() {
    let Some(url) = pg_or_skip("fleet ID-JAG replay") else {
        return;
    };
    let fleet = TestApp::fleet(&url, 2, &[]).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let x = crate::agents::setup(a, true).await;
    let jag = crate::agents::id_jag(&x.key, &crate::agents::claims(&x.issuer, &x.id, json!({})));
    let (status, v) = crate::agents::grant(a, &x.id, &x.secret, &jag, &[]).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = crate::agents::grant(b, &x.id, &x.secret, &jag, &[]).await;
    assert_eq!(
        (status, s(&v["error"])),
        (400, "invalid_grant".into()),
        "{v}"
    );
    assert!(s(&v["error_description"]).contains("used before"), "{v}");
}
