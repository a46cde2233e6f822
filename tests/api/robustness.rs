//! Quotas, rate limits, hostile input, CORS, shutdown and crash durability.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{json, s, TestApp};

fn assert_429(r: &reqwest::Response, limit: &str) {
    assert_eq!(r.status(), 429);
    let h = r.headers();
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(h["ratelimit-limit"], limit);
    assert_eq!(h["ratelimit-remaining"], "0");
    assert!(
        h["ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(h["content-type"], "application/json");
}

#[tokio::test]
async fn token_quota_of_four_an_hour_bans_the_client_for_an_hour() {
    let app = TestApp::spawn().await;
    let v = app.cli(&[
        "client",
        "create",
        "--name",
        "tight",
        "--quota",
        "4",
        "--quota-window",
        "3600",
        "--ban",
        "3600",
    ]);
    let (id, secret) = (s(&v["client_id"]), s(&v["client_secret"]));
    let (other, other_secret) = app.client("read", &[]);
    for _ in 0..4 {
        assert_eq!(app.token_request(&id, &secret, None).await.status(), 200);
    }
    let r = app.token_request(&id, &secret, None).await;
    assert_429(&r, "4");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3590..=3600).contains(&retry), "{retry}");
    let (_, body) = json(r).await;
    assert_eq!(body["error"], "too_many_requests");
    // The ban covers the API-key exchange too, and no other client.
    let key = s(&app.cli(&["api-key", "create", "--client", &id])["secret_key"]);
    let r = app
        .http
        .post(app.url("/authentication/token"))
        .json(&json!({"secret_key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(
        app.token_request(&other, &other_secret, None)
            .await
            .status(),
        200
    );
    assert!(
        app.logs().contains("over its token quota"),
        "refusals are logged"
    );
}

#[tokio::test]
async fn server_wide_quota_default_and_admin_override() {
    let app = TestApp::spawn_with(&[
        ("TOLLGATE_TOKEN_QUOTA", "2"),
        ("TOLLGATE_TOKEN_QUOTA_BAN", "0"),
    ])
    .await;
    let (id, secret) = app.client("read", &[]);
    let admin = app.admin_token().await; // the admin's own quota: 1 of 2
    for _ in 0..2 {
        assert_eq!(app.token_request(&id, &secret, None).await.status(), 200);
    }
    assert_429(&app.token_request(&id, &secret, None).await, "2");
    // The admin API sets a per-client quota (0: none).
    let r = app
        .http
        .request(Method::PATCH, app.url(&format!("/admin/clients/{id}")))
        .bearer_auth(&admin)
        .json(&json!({"token_quota": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.token_request(&id, &secret, None).await.status(), 200);
}

#[tokio::test]
async fn per_ip_limits_apply_per_endpoint_class_and_trust_only_configured_proxies() {
    let app = TestApp::spawn_with(&[
        ("TOLLGATE_IP_LIMIT_GET", "5"),
        ("TOLLGATE_IP_LIMIT_POST", "3"),
    ])
    .await;
    for _ in 0..5 {
        assert_eq!(
            app.http
                .get(app.url("/.well-known/jwks.json"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let r = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_429(&r, "5");
    // X-Forwarded-For is ignored from an untrusted peer.
    let r = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Every public route is limited, health checks and metrics included.
    for path in ["/healthz", "/metrics"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 429, "{path}");
    }
    // POST is counted separately.
    for _ in 0..3 {
        let r = app
            .http
            .post(app.url("/oauth/token"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_429(&r, "3");

    let proxied = TestApp::spawn_with(&[
        ("TOLLGATE_IP_LIMIT_GET", "2"),
        ("TOLLGATE_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    for ip in ["198.51.100.1", "198.51.100.2"] {
        for _ in 0..2 {
            let r = proxied
                .http
                .get(proxied.url("/.well-known/jwks.json"))
                .header("x-forwarded-for", ip)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{ip}");
        }
    }
    let r = proxied
        .http
        .get(proxied.url("/.well-known/jwks.json"))
        .header("x-forwarded-for", "10.9.9.9, 198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "the right-most untrusted hop is the client"
    );
}

#[tokio::test]
async fn failed_authentication_is_throttled_without_locking_out_other_ips() {
    let app = TestApp::spawn_with(&[
        ("TOLLGATE_TRUSTED_PROXIES", "127.0.0.1"),
        ("TOLLGATE_AUTH_FAIL_PAIR_LIMIT", "3"),
        ("TOLLGATE_AUTH_FAIL_CLIENT_LIMIT", "5"),
        ("TOLLGATE_AUTH_FAIL_IP_LIMIT", "8"),
    ])
    .await;
    let (id, secret) = app.client("read", &[]);
    let attacker = "203.0.113.66";
    for _ in 0..3 {
        assert_eq!(
            app.token_request(&id, "tgs_guess", Some(attacker))
                .await
                .status(),
            401
        );
    }
    // The attacker's pair is throttled, even with the right secret…
    assert_429(&app.token_request(&id, &secret, Some(attacker)).await, "3");
    // …but the real client, from its own address, is not.
    assert_eq!(
        app.token_request(&id, &secret, Some("198.51.100.7"))
            .await
            .status(),
        200
    );
    // Past the client-wide limit, only addresses that failed are refused.
    for ip in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(
            app.token_request(&id, "tgs_guess", Some(ip)).await.status(),
            401
        );
    }
    assert_429(
        &app.token_request(&id, "tgs_guess", Some("203.0.113.1"))
            .await,
        "5",
    );
    assert_eq!(
        app.token_request(&id, &secret, Some("198.51.100.8"))
            .await
            .status(),
        200
    );
    // Per IP, across client ids.
    let spray = "203.0.113.99";
    for n in 0..8 {
        assert_eq!(
            app.token_request(&format!("tgc_unknown{n}"), "x", Some(spray))
                .await
                .status(),
            401
        );
    }
    assert_429(
        &app.token_request("tgc_another", "x", Some(spray)).await,
        "8",
    );
    assert!(app.logs().contains("too many failed authentications"));
}

#[tokio::test]
async fn hostile_input_gets_clear_json_errors() {
    let app = TestApp::spawn_with(&[("TOLLGATE_MAX_BODY_BYTES", "8192")]).await;
    let (id, secret) = app.client("read", &[]);
    let url = app.url("/oauth/token");
    let form = |body: Vec<u8>| {
        app.http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "oversized body",
            form(vec![b'a'; 9000]),
            413,
            "payload_too_large",
        ),
        (
            "unknown content type",
            app.http
                .post(&url)
                .header("content-type", "application/xml")
                .body("<a/>"),
            415,
            "unsupported_media_type",
        ),
        (
            "malformed JSON",
            app.http
                .post(&url)
                .header("content-type", "application/json")
                .body("{\"a\": [}"),
            400,
            "invalid_request",
        ),
        (
            "JSON that is not an object",
            app.http
                .post(&url)
                .header("content-type", "application/json")
                .body("[\"grant_type\"]"),
            400,
            "invalid_request",
        ),
        (
            "non-UTF-8 bytes",
            form(b"grant_type=client_credentials&scope=\xff\xfe".to_vec()),
            400,
            "invalid_request",
        ),
        (
            "percent-encoded non-UTF-8",
            form(b"grant_type=client_credentials&scope=%C3%28".to_vec()),
            400,
            "invalid_request",
        ),
        (
            "repeated parameter",
            form(b"grant_type=client_credentials&grant_type=client_credentials".to_vec()),
            400,
            "invalid_request",
        ),
        (
            "field far too long",
            form(format!("grant_type=client_credentials&scope={}", "a".repeat(1900)).into_bytes()),
            200,
            "",
        ),
        (
            "broken Basic",
            app.http
                .post(&url)
                .header("authorization", "Basic %%%")
                .form(&[("grant_type", "client_credentials")]),
            400,
            "invalid_request",
        ),
        (
            "Basic without colon",
            app.http
                .post(&url)
                .header(
                    "authorization",
                    format!("Basic {}", STANDARD.encode("nocolon")),
                )
                .form(&[("grant_type", "client_credentials")]),
            400,
            "invalid_request",
        ),
        (
            "wrong method",
            app.http.put(&url),
            405,
            "method_not_allowed",
        ),
        (
            "parameters in the URL",
            app.http
                .post(format!("{url}?grant_type=client_credentials"))
                .basic_auth(&id, Some(&secret)),
            400,
            "invalid_request",
        ),
    ];
    for (what, req, status, error) in cases {
        let r = req.send().await.unwrap();
        if status == 200 {
            // 1.9 KB of scope fits the body limit but not the scope: refused, not crashed.
            assert!(
                r.status() == 400 || r.status() == 401,
                "{what}: {}",
                r.status()
            );
            continue;
        }
        let (got, v) = json(r).await;
        assert_eq!(
            (got, v["error"].as_str().unwrap_or("")),
            (status, error),
            "{what}: {v}"
        );
    }
    // A field longer than the per-value limit, in a larger body.
    let app2 = TestApp::spawn_with(&[("TOLLGATE_MAX_BODY_BYTES", "65536")]).await;
    let r = app2
        .http
        .post(app2.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", &"a".repeat(10_000)),
        ])
        .send()
        .await
        .unwrap();
    let (got, v) = json(r).await;
    assert_eq!((got, s(&v["error"])), (400, "invalid_request".into()));
    assert!(s(&v["error_description"]).contains("longer than"));
    assert!(!app.logs().contains("panicked"));
}

#[tokio::test]
async fn a_half_sent_body_times_out_with_408() {
    let app = TestApp::spawn_with(&[("TOLLGATE_REQUEST_TIMEOUT", "1")]).await;
    let mut stream = TcpStream::connect(app.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"POST /oauth/token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=")
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test]
async fn cors_allows_any_origin_on_public_endpoints_only() {
    let app = TestApp::spawn().await;
    let pre = |path: &str, origin: &str| {
        app.http
            .request(Method::OPTIONS, app.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
    };
    let r = pre("/.well-known/jwks.json", "https://anywhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["access-control-max-age"], "86400");
    let r = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .header("origin", "https://anywhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let r = pre("/oauth/token", "https://anywhere.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .header("origin", "https://anywhere.example")
        .form(&[("a", "b")])
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let configured =
        TestApp::spawn_with(&[("TOLLGATE_CORS_ORIGINS", "https://console.example")]).await;
    let r = configured
        .http
        .request(Method::OPTIONS, configured.url("/oauth/introspect"))
        .header("origin", "https://console.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://console.example"
    );
    let r = configured
        .http
        .request(Method::OPTIONS, configured.url("/oauth/introspect"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_then_exits() {
    let mut app = TestApp::spawn().await;
    let (id, secret) = app.client("read", &[]);
    let body = "grant_type=client_credentials";
    let mut stream = TcpStream::connect(app.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Basic {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        STANDARD.encode(format!("{id}:{secret}")),
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    app.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body.as_bytes()[10..]).unwrap();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("access_token"));
    let status = app.wait_exit(20).expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    // New connections are no longer accepted.
    assert!(TcpStream::connect(app.addr()).is_err());
}

#[tokio::test]
async fn sigkill_during_a_burst_loses_no_acknowledged_write() {
    let mut app = TestApp::spawn_with(&[("TOLLGATE_ISSUER", "https://tollgate.test")]).await;
    let admin = app.admin_token().await;
    let (id, secret) = app.client("read", &[]);
    let mut tokens = Vec::new();
    for _ in 0..40 {
        tokens.push(app.token(&id, &secret).await);
    }
    let acked_clients = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let acked_revocations = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    let mut to_revoke = tokens.clone().into_iter();
    for i in 0..200 {
        let http = app.http.clone();
        let base = app.base.clone();
        let admin = admin.clone();
        let acked = acked_clients.clone();
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{base}/admin/clients"))
                .bearer_auth(&admin)
                .json(&json!({"name": format!("burst-{i}")}))
                .send()
                .await;
            if let Ok(r) = r {
                if r.status() == 201 {
                    if let Ok(v) = r.json::<Value>().await {
                        acked.lock().unwrap().push(s(&v["client_id"]));
                    }
                }
            }
        }));
        // Interleave revocations with the creations.
        if i % 5 == 0 {
            if let Some(t) = to_revoke.next() {
                let http = app.http.clone();
                let base = app.base.clone();
                let (id, secret) = (id.clone(), secret.clone());
                let acked = acked_revocations.clone();
                tasks.push(tokio::spawn(async move {
                    let r = http
                        .post(format!("{base}/oauth/revoke"))
                        .basic_auth(&id, Some(&secret))
                        .form(&[("token", &t)])
                        .send()
                        .await;
                    if let Ok(r) = r {
                        if r.status() == 200 {
                            acked.lock().unwrap().push(t);
                        }
                    }
                }));
            }
        }
    }
    // Kill once writes of both kinds are acknowledged, with others in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (acked_clients.lock().unwrap().len() < 20 || acked_revocations.lock().unwrap().len() < 3)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    app.kill();
    for t in tasks {
        let _ = t.await;
    }
    let clients = acked_clients.lock().unwrap().clone();
    let revoked = acked_revocations.lock().unwrap().clone();
    assert!(
        !clients.is_empty() && !revoked.is_empty(),
        "{} clients, {} revocations",
        clients.len(),
        revoked.len()
    );
    app.restart();
    let admin = app.admin_token().await;
    for c in &clients {
        let r = app
            .http
            .get(app.url(&format!("/admin/clients/{c}")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged client {c} survived");
    }
    for t in &revoked {
        assert_eq!(
            app.introspect(t).await,
            json!({"active": false}),
            "acknowledged revocation survived"
        );
    }
    eprintln!(
        "after SIGKILL: {} clients and {} revocations acknowledged, all present",
        clients.len(),
        revoked.len()
    );
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_tokens_failures_introspections_revocations_refusals_and_latency() {
    let app = TestApp::spawn().await;
    let v = app.cli(&[
        "client", "create", "--name", "m", "--quota", "2", "--ban", "60",
    ]);
    let (id, secret) = (s(&v["client_id"]), s(&v["client_secret"]));
    let token = app.token(&id, &secret).await;
    app.token(&id, &secret).await;
    assert_eq!(app.token_request(&id, &secret, None).await.status(), 429);
    assert_eq!(
        app.token_request(&id, "tgs_wrong", None).await.status(),
        401
    );
    assert_eq!(app.introspect(&token).await["active"], true);
    assert_eq!(app.introspect("garbage").await["active"], false);
    let r = app.revoke(&id, &secret, &token).await;
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    assert_eq!(
        metric(
            &text,
            r#"tollgate_tokens_issued_total{grant="client_credentials",result="issued"}"#
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"tollgate_tokens_issued_total{grant="client_credentials",result="too_many_requests"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            r#"tollgate_tokens_issued_total{grant="client_credentials",result="invalid_client"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            r#"tollgate_client_auth_failures_total{kind="client_secret"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(&text, r#"tollgate_introspections_total{result="active"}"#),
        1.0
    );
    assert_eq!(
        metric(&text, r#"tollgate_introspections_total{result="inactive"}"#),
        1.0
    );
    assert_eq!(
        metric(&text, r#"tollgate_revocations_total{kind="access_token"}"#),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            r#"tollgate_rate_limit_refusals_total{limit="quota"}"#
        ),
        1.0
    );
    assert!(
        metric(
            &text,
            r#"tollgate_request_duration_seconds_count{endpoint="/oauth/token"}"#
        ) >= 4.0
    );
}

/// A NUL character in an id, a cursor or a search: PostgreSQL cannot store
/// or compare it, and it once answered 500 there. Every backend now answers
/// alike: an unknown client, a missing record, or 400.
#[tokio::test]
async fn a_nul_character_in_ids_cursors_and_searches_is_never_a_server_error() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("tgc_\u{0}x", Some("tgs_whatever"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (status, v) = json(r).await;
    assert_eq!((status, s(&v["error"])), (401, "invalid_client".into()));
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "a\u{0}b"),
            ("client_secret", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for (path, want) in [
        ("/admin/clients?after=%00", 400),
        ("/admin/clients/tgc_%00", 404),
        ("/admin/clients/tgc_%00/api-keys", 404),
    ] {
        let r = app
            .http
            .get(app.url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{path}");
    }
    for path in [
        "/admin/api-keys/key_%00/revoke",
        "/admin/clients/tgc_%00/disable",
    ] {
        let r = app
            .http
            .post(app.url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    // The console, signed in.
    let console = crate::console::Console::sign_in(&app).await;
    for (path, want) in [
        ("/console/clients?q=%00", 400),
        ("/console/clients?after=%00", 400),
        ("/console/audit?actor=%00", 400),
        ("/console/audit?target=a%00", 400),
        ("/console/clients/tgc_%00", 404),
    ] {
        let r = console.get(path).await;
        assert_eq!(r.status(), want, "{path}");
    }
}
