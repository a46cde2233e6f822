//! Shared Signals (SSF 1.0): transmitter metadata, streams a receiver sees
//! alone, SETs signed with the JWKS's keys and pushed within a second
//! (RFC 8935) in order, retried after a 500 and delivered once, nothing
//! lost while the receiver and Tollgate restart, poll with acknowledgement
//! (RFC 8936), and one delivery per event across a fleet.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{eventually, json, pg_or_skip, s, segment, TestApp};
use crate::verify::verify_with_jwks;

const REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const DISABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// One POST a receiver got: its `Authorization`, `Content-Type` and body.
#[derive(Debug, Clone)]
struct Push {
    authorization: String,
    content_type: String,
    body: String,
}

/// A push receiver on 127.0.0.1 that records what it gets and answers
/// the statuses queued (202 once the queue is empty).
struct Receiver {
    url: String,
    port: u16,
    got: Arc<Mutex<Vec<Push>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        Self::on(0).await
    }

    async fn on(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Push>>> = Arc::default();
        let answers: Arc<Mutex<VecDeque<u16>>> = Arc::default();
        let (g, a) = (got.clone(), answers.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (g, a) = (g.clone(), a.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let (head, body) = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(i) = text.find("\r\n\r\n") {
                            let head = text[..i].to_string();
                            let len = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if buf.len() >= i + 4 + len {
                                break (head, text[i + 4..i + 4 + len].to_string());
                            }
                        }
                    };
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                            })
                            .unwrap_or_default()
                    };
                    let status = a.lock().unwrap().pop_front().unwrap_or(202);
                    g.lock().unwrap().push(Push {
                        authorization: header("authorization"),
                        content_type: header("content-type"),
                        body,
                    });
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/events"),
            port,
            got,
            answers,
            task,
        }
    }

    fn got(&self) -> Vec<Push> {
        self.got.lock().unwrap().clone()
    }

    /// The SETs it accepted (answered 202), in order.
    fn accepted(&self) -> Vec<Push> {
        self.got()
    }

    fn stop(self) {
        self.task.abort();
    }
}

/// A receiver client (holding `tollgate:ssf`) and its token.
async fn receiver_token(app: &TestApp) -> (String, String) {
    let (id, secret) = app.client("tollgate:ssf", &[]);
    let token = app.token(&id, &secret).await;
    (id, token)
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("ssf call");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn push_stream(app: &TestApp, token: &str, url: &str) -> String {
    let (status, v) = call(
        app,
        reqwest::Method::POST,
        "/ssf/streams",
        token,
        Some(json!({
            "delivery": {
                "method": "urn:ietf:rfc:8935",
                "endpoint_url": url,
                "authorization_header": "Bearer receiver-secret"
            },
            "events_requested": [REVOKED, DISABLED, VERIFICATION],
            "description": "resource server"
        })),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    s(&v["stream_id"])
}

/// Verifies a pushed SET with the JWKS; its claims.
async fn set_claims(app: &TestApp, set: &str) -> Value {
    let jwks = json(
        app.http
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .1;
    assert_eq!(segment(set, 0)["typ"], "secevent+jwt");
    verify_with_jwks(set, &jwks).unwrap_or_else(|e| panic!("{e}"))
}

fn local() -> Vec<(&'static str, &'static str)> {
    vec![
        ("TOLLGATE_FETCH_ALLOW_LOCAL", "true"),
        ("TOLLGATE_ISSUER", "http://tollgate.ssf.test"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_streams_belong_to_their_receiver() {
    let app = TestApp::spawn_with(&local()).await;
    let (status, meta) = json(
        app.http
            .get(app.url("/.well-known/ssf-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(meta["issuer"], "http://tollgate.ssf.test");
    assert_eq!(
        meta["jwks_uri"],
        "http://tollgate.ssf.test/.well-known/jwks.json"
    );
    assert_eq!(
        meta["delivery_methods_supported"],
        json!(["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"])
    );
    for k in [
        "configuration_endpoint",
        "status_endpoint",
        "verification_endpoint",
        "authorization_schemes",
    ] {
        assert!(!meta[k].is_null(), "{k}");
    }

    let (a, token_a) = receiver_token(&app).await;
    let (_, token_b) = receiver_token(&app).await;
    let receiver = Receiver::start().await;
    let id = push_stream(&app, &token_a, &receiver.url).await;

    // A token without the scope, and no token, are refused.
    let (plain_id, plain_secret) = app.client("read", &[]);
    let plain = app.token(&plain_id, &plain_secret).await;
    let (status, _) = call(&app, reqwest::Method::GET, "/ssf/streams", &plain, None).await;
    assert!(status == 401 || status == 403, "{status}");

    // The owner sees it, without the authorization header it set.
    let (status, v) = call(
        &app,
        reqwest::Method::GET,
        &format!("/ssf/streams?stream_id={id}"),
        &token_a,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["aud"], a.as_str());
    assert_eq!(v["delivery"]["endpoint_url"], receiver.url.as_str());
    assert!(!v.to_string().contains("receiver-secret"));
    assert_eq!(v["events_delivered"].as_array().unwrap().len(), 3);

    // Another receiver sees nothing and can change nothing.
    let (_, list) = call(&app, reqwest::Method::GET, "/ssf/streams", &token_b, None).await;
    assert_eq!(list, json!([]));
    for (method, path, body) in [
        (
            reqwest::Method::GET,
            format!("/ssf/streams?stream_id={id}"),
            None,
        ),
        (
            reqwest::Method::PATCH,
            "/ssf/streams".to_string(),
            Some(json!({"stream_id": id, "description": "mine"})),
        ),
        (
            reqwest::Method::DELETE,
            format!("/ssf/streams?stream_id={id}"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/ssf/status?stream_id={id}"),
            None,
        ),
        (
            reqwest::Method::POST,
            "/ssf/status".to_string(),
            Some(json!({"stream_id": id, "status": "disabled"})),
        ),
        (
            reqwest::Method::POST,
            "/ssf/verify".to_string(),
            Some(json!({"stream_id": id})),
        ),
    ] {
        let (status, _) = call(&app, method.clone(), &path, &token_b, body).await;
        assert_eq!(status, 404, "{method} {path}");
    }

    // Update, status, delete by the owner.
    let (status, v) = call(
        &app,
        reqwest::Method::PATCH,
        "/ssf/streams",
        &token_a,
        Some(json!({"stream_id": id, "description": "renamed"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["description"], "renamed");
    let (status, v) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/status",
        &token_a,
        Some(json!({"stream_id": id, "status": "paused", "reason": "maintenance"})),
    )
    .await;
    assert_eq!((status, &v["status"]), (200, &json!("paused")));
    let (_, v) = call(
        &app,
        reqwest::Method::GET,
        &format!("/ssf/status?stream_id={id}"),
        &token_a,
        None,
    )
    .await;
    assert_eq!(
        v,
        json!({"stream_id": id, "status": "paused", "reason": "maintenance"})
    );

    // A private address is refused without TOLLGATE_FETCH_ALLOW_LOCAL.
    let strict = TestApp::spawn().await;
    let (_, token_s) = receiver_token(&strict).await;
    let (status, v) = call(
        &strict,
        reqwest::Method::POST,
        "/ssf/streams",
        &token_s,
        Some(json!({"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": receiver.url}})),
    )
    .await;
    assert_eq!(status, 400, "{v}");

    // The admin sees every stream with its status and backlog.
    let admin = app.admin_token().await;
    let (status, v) = call(
        &app,
        reqwest::Method::GET,
        "/admin/ssf/streams",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["data"][0]["stream_id"], id.as_str());
    assert_eq!(v["data"][0]["status"], "paused");
    assert!(!v.to_string().contains("receiver-secret"));
    let cli = app.cli(&["ssf", "streams"]);
    assert_eq!(cli[0]["stream_id"], id.as_str());
    let console = crate::console::Console::sign_in(&app).await;
    let page = console.page("/console/ssf").await;
    assert!(
        page.contains(&id) && page.contains("paused (maintenance)"),
        "{page}"
    );
    assert!(!page.contains("receiver-secret"));

    let (status, _) = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/ssf/streams?stream_id={id}"),
        &token_a,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, list) = call(&app, reqwest::Method::GET, "/ssf/streams", &token_a, None).await;
    assert_eq!(list, json!([]));
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_the_receiver_as_signed_sets_in_order_within_a_second() {
    let app = TestApp::spawn_with(&local()).await;
    let (rs, token) = receiver_token(&app).await;
    let receiver = Receiver::start().await;
    let stream = push_stream(&app, &token, &receiver.url).await;

    // A verification event first, with the receiver's state.
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/verify",
        &token,
        Some(json!({"stream_id": stream, "state": "s-1"})),
    )
    .await;
    assert_eq!(status, 204);
    eventually("the verification event", Duration::from_secs(1), || {
        let n = receiver.got().len();
        async move { n == 1 }
    })
    .await;
    let v = set_claims(&app, &receiver.got()[0].body).await;
    assert_eq!(v["events"][VERIFICATION]["state"], "s-1");
    assert_eq!(v["sub_id"], json!({"format": "opaque", "id": stream}));

    // Three revocations (RFC 7009) and a disabled client, in this order.
    let (id, secret) = app.client("read", &["https://api"]);
    let mut jtis = Vec::new();
    for _ in 0..3 {
        let t = app.token(&id, &secret).await;
        jtis.push(s(&segment(&t, 1)["jti"]));
        assert_eq!(app.revoke(&id, &secret, &t).await.status(), 200);
    }
    let started = std::time::Instant::now();
    let admin = app.admin_token().await;
    let r = app
        .http
        .post(app.url(&format!("/admin/clients/{id}/disable")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually("four SETs pushed", Duration::from_secs(1), || {
        let n = receiver.got().len();
        async move { n == 5 }
    })
    .await;
    eprintln!("disabled → pushed in {:?}", started.elapsed());
    let pushes = receiver.got();
    let mut seen = Vec::new();
    for p in &pushes[1..] {
        assert_eq!(p.authorization, "Bearer receiver-secret");
        assert_eq!(p.content_type, "application/secevent+jwt");
        let c = set_claims(&app, &p.body).await;
        assert_eq!(c["iss"], "http://tollgate.ssf.test");
        assert_eq!(c["aud"], rs.as_str());
        assert!(c["jti"].is_string() && c["iat"].is_i64() && c["txn"].is_string());
        assert_eq!(c["events"].as_object().unwrap().len(), 1);
        seen.push(c);
    }
    for (i, jti) in jtis.iter().enumerate() {
        let e = &seen[i]["events"][REVOKED];
        assert_eq!(
            seen[i]["sub_id"],
            json!({"format": "jwt_id", "iss": "http://tollgate.ssf.test", "jti": jti}),
            "in order"
        );
        assert_eq!(e["initiating_entity"], "user");
        assert!(e["event_timestamp"].is_i64());
    }
    assert_eq!(
        seen[3]["sub_id"],
        json!({"format": "iss_sub", "iss": "http://tollgate.ssf.test", "sub": id})
    );
    assert_eq!(seen[3]["events"][DISABLED]["initiating_entity"], "admin");
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("tollgate_ssf_events_total{result=\"delivered\"} 5"),
        "{metrics}"
    );
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_500_gets_the_set_again_and_accepts_it_once() {
    let app = TestApp::spawn_with(&local()).await;
    let (_, token) = receiver_token(&app).await;
    let receiver = Receiver::start().await;
    receiver.answers.lock().unwrap().push_back(500);
    let stream = push_stream(&app, &token, &receiver.url).await;
    let (id, secret) = app.client("read", &[]);
    let t = app.token(&id, &secret).await;
    app.revoke(&id, &secret, &t).await;
    eventually("the retry", Duration::from_secs(5), || {
        let n = receiver.got().len();
        async move { n == 2 }
    })
    .await;
    let got = receiver.got();
    assert_eq!(got[0].body, got[1].body, "the same SET again");
    let admin = app.admin_token().await;
    let (_, v) = call(
        &app,
        reqwest::Method::GET,
        "/admin/ssf/streams",
        &admin,
        None,
    )
    .await;
    assert_eq!(v["data"][0]["stream_id"], stream.as_str());
    assert_eq!(v["data"][0]["last_error"], "the receiver answered 500");
    assert_eq!(v["data"][0]["backlog"], 0);
    // Accepted once: nothing more arrives.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.got().len(), 2);
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_while_the_receiver_is_down_across_a_restart_of_tollgate() {
    let mut app = TestApp::spawn_with(&local()).await;
    let (_, token) = receiver_token(&app).await;
    let receiver = Receiver::start().await;
    let (url, port) = (receiver.url.clone(), receiver.port);
    push_stream(&app, &token, &url).await;
    receiver.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The receiver is down: three revocations are acknowledged anyway.
    let (id, secret) = app.client("read", &[]);
    let mut jtis = Vec::new();
    for _ in 0..3 {
        let t = app.token(&id, &secret).await;
        jtis.push(s(&segment(&t, 1)["jti"]));
        assert_eq!(app.revoke(&id, &secret, &t).await.status(), 200);
    }
    // Tollgate is killed and started again; then the receiver comes back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.restart();
    let receiver = Receiver::on(port).await;
    eventually(
        "every SET after the restarts",
        Duration::from_secs(10),
        || {
            let n = receiver.got().len();
            async move { n >= 3 }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got: Vec<String> = {
        let mut out = Vec::new();
        for p in receiver.accepted() {
            out.push(s(&set_claims(&app, &p.body).await["sub_id"]["jti"]));
        }
        out
    };
    assert_eq!(got, jtis, "each once, in order");
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_receiver_gets_sets_until_it_acknowledges_them() {
    let app = TestApp::spawn_with(&local()).await;
    let (_, token) = receiver_token(&app).await;
    let (status, v) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/streams",
        &token,
        Some(json!({"delivery": {"method": "urn:ietf:rfc:8936"}, "events_requested": [REVOKED]})),
    )
    .await;
    assert_eq!(status, 201);
    let stream = s(&v["stream_id"]);
    let poll_path = format!("/ssf/poll/{stream}");
    assert_eq!(
        v["delivery"]["endpoint_url"],
        format!("http://tollgate.ssf.test{poll_path}")
    );
    let (id, secret) = app.client("read", &[]);
    for _ in 0..3 {
        let t = app.token(&id, &secret).await;
        app.revoke(&id, &secret, &t).await;
    }
    let poll = |body: Value| {
        let (app, token, path) = (&app, &token, &poll_path);
        async move { call(app, reqwest::Method::POST, path, token, Some(body)).await }
    };
    let mut sets = serde_json::Map::new();
    eventually("three SETs to poll", Duration::from_secs(1), || {
        let p = poll(json!({"returnImmediately": true}));
        async move { p.await.1["sets"].as_object().is_some_and(|m| m.len() == 3) }
    })
    .await;
    let (status, v) = poll(json!({"maxEvents": 2, "returnImmediately": true})).await;
    assert_eq!(status, 200);
    assert_eq!(v["moreAvailable"], true);
    sets.extend(v["sets"].as_object().unwrap().clone());
    assert_eq!(sets.len(), 2);
    for (jti, set) in &sets {
        let c = set_claims(&app, set.as_str().unwrap()).await;
        assert_eq!(&c["jti"], jti);
    }
    // Acknowledged: not answered again.
    let acked: Vec<&String> = sets.keys().collect();
    let (_, v) = poll(json!({"ack": acked, "returnImmediately": true})).await;
    let rest = v["sets"].as_object().unwrap();
    assert_eq!(rest.len(), 1);
    assert!(!rest.keys().any(|k| sets.contains_key(k)));
    let last: Vec<&String> = rest.keys().collect();
    let (_, v) = poll(json!({"ack": last, "returnImmediately": true})).await;
    assert_eq!(v["sets"], json!({}));
    assert_eq!(v["moreAvailable"], false);

    // A long poll waits for the next event.
    let waiting = tokio::spawn({
        let (http, url, token) = (app.http.clone(), app.url(&poll_path), token.clone());
        async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = app.token(&id, &secret).await;
    app.revoke(&id, &secret, &t).await;
    let v = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the long poll answers")
        .unwrap();
    assert_eq!(v["sets"].as_object().unwrap().len(), 1);

    // Disabling keeps nothing: what waited is gone when enabled again.
    let status = |s: &'static str| {
        let (app, token, stream) = (&app, &token, &stream);
        async move {
            call(
                app,
                reqwest::Method::POST,
                "/ssf/status",
                token,
                Some(json!({"stream_id": stream, "status": s})),
            )
            .await
            .0
        }
    };
    assert_eq!(status("disabled").await, 200);
    let t = app.token(&id, &secret).await;
    app.revoke(&id, &secret, &t).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status("enabled").await, 200);
    let (_, v) = poll(json!({"returnImmediately": true})).await;
    assert_eq!(v["sets"], json!({}), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_delivers_each_event_once() {
    let Some(url) = pg_or_skip("a_fleet_delivers_each_event_once") else {
        return;
    };
    let fleet = TestApp::fleet(&url, 2, &[("TOLLGATE_FETCH_ALLOW_LOCAL", "true")]).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let (_, token) = receiver_token(a).await;
    let receiver = Receiver::start().await;
    push_stream(a, &token, &receiver.url).await;
    let (id, secret) = a.client("read", &[]);
    let mut jtis = Vec::new();
    for i in 0..20 {
        let app = if i % 2 == 0 { a } else { b };
        let t = app.token(&id, &secret).await;
        jtis.push(s(&segment(&t, 1)["jti"]));
        assert_eq!(app.revoke(&id, &secret, &t).await.status(), 200);
    }
    eventually("twenty SETs", Duration::from_secs(3), || {
        let n = receiver.got().len();
        async move { n >= 20 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut got = Vec::new();
    for p in receiver.got() {
        got.push(s(&set_claims(a, &p.body).await["sub_id"]["jti"]));
    }
    assert_eq!(got.len(), 20, "each event once across the fleet");
    let mut sorted = got.clone();
    sorted.sort();
    let mut want = jtis.clone();
    want.sort();
    assert_eq!(sorted, want);
    receiver.stop();
}

/// Runs one statement on the app's database, SQLite or PostgreSQL.
async fn db_exec(app: &TestApp, sql: &str) {
    if crate::helpers::on_postgres() {
        crate::helpers::pg_exec(&app.db, sql).await;
    } else {
        let conn = rusqlite::Connection::open(&app.db).expect("open the database");
        conn.execute_batch(sql).expect(sql);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_for_a_day_has_its_stream_paused_with_the_reason() {
    let app = TestApp::spawn_with(&local()).await;
    let (_, token) = receiver_token(&app).await;
    let receiver = Receiver::start().await;
    receiver.answers.lock().unwrap().extend([503; 50]);
    let stream = push_stream(&app, &token, &receiver.url).await;
    let (id, secret) = app.client("read", &[]);
    let t = app.token(&id, &secret).await;
    app.revoke(&id, &secret, &t).await;
    eventually("the first failure", Duration::from_secs(2), || {
        let n = receiver.got().len();
        async move { n >= 1 }
    })
    .await;
    // The receiver has been failing since a day and a second ago.
    let day_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 86_401;
    db_exec(
        &app,
        &format!("UPDATE ssf_streams SET failing_since = {day_ago} WHERE id = '{stream}'"),
    )
    .await;
    let admin = app.admin_token().await;
    eventually("the stream paused", Duration::from_secs(5), || {
        let (app, admin) = (&app, &admin);
        async move {
            let (_, v) = call(app, reqwest::Method::GET, "/admin/ssf/streams", admin, None).await;
            v["data"][0]["status"] == "paused"
        }
    })
    .await;
    let (_, v) = call(
        &app,
        reqwest::Method::GET,
        "/admin/ssf/streams",
        &admin,
        None,
    )
    .await;
    let last = v["data"][0].clone();
    assert!(
        s(&last["status_reason"]).contains("failed for 24 hours"),
        "{last}"
    );
    assert_eq!(last["backlog"], 1, "the event is kept");
    let (_, v) = call(
        &app,
        reqwest::Method::GET,
        &format!("/ssf/status?stream_id={stream}"),
        &token,
        None,
    )
    .await;
    assert_eq!(v["status"], "paused");
    // Enabled again by the receiver: the kept event goes out.
    receiver.answers.lock().unwrap().clear();
    let before = receiver.got().len();
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/status",
        &token,
        Some(json!({"stream_id": stream, "status": "enabled"})),
    )
    .await;
    assert_eq!(status, 200);
    eventually("delivered after enabling", Duration::from_secs(2), || {
        let n = receiver.got().len();
        async move { n > before }
    })
    .await;
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_exchanged_token_names_the_tokens_it_came_from() {
    let app = TestApp::spawn_with(&local()).await;
    let (_, token) = receiver_token(&app).await;
    let receiver = Receiver::start().await;
    push_stream(&app, &token, &receiver.url).await;
    let admin = app.admin_token().await;
    let c = crate::exchange::chain(&app, &admin).await;
    let (t0, t1, t2) = crate::exchange::three_tokens(&app, &c).await;
    // The last link of the chain is revoked by its own client.
    assert_eq!(
        app.revoke(&c.orders.0, &c.orders.1, &t2).await.status(),
        200
    );
    eventually("the SET", Duration::from_secs(1), || {
        let n = receiver.got().len();
        async move { n == 1 }
    })
    .await;
    let claims = set_claims(&app, &receiver.got()[0].body).await;
    let event = &claims["events"][REVOKED];
    assert_eq!(claims["sub_id"]["jti"], segment(&t2, 1)["jti"]);
    assert_eq!(
        event["tollgate_origin"],
        json!([segment(&t1, 1)["jti"], segment(&t0, 1)["jti"]]),
        "nearest first"
    );
    receiver.stop();
}
