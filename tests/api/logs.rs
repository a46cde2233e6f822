//! Structured logs and request ids: `TOLLGATE_LOG_FORMAT=json` prints one
//! JSON object per line, lines logged while serving a request carry its id
//! and authenticated client, and every response has an `X-Request-Id`
//! (one sent by a trusted proxy is kept, anyone else's is replaced).

use serde_json::Value;

use crate::helpers::TestApp;

async fn token_with_id(app: &TestApp, id: &str, secret: &str, request_id: &str) -> String {
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .header("X-Request-Id", request_id)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["x-request-id"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn json_lines_carry_request_and_client_and_responses_carry_request_ids() {
    let app = TestApp::spawn_with(&[("TOLLGATE_LOG_FORMAT", "json")]).await;
    let (id, secret) = app.client("read", &[]);
    // From an untrusted peer, a given id is replaced.
    let answered = token_with_id(&app, &id, &secret, "from-the-client").await;
    assert_ne!(answered, "from-the-client");
    assert!(
        answered.len() >= 12
            && answered
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{answered}"
    );
    // Every response has one, errors included, each different.
    let r = app.http.get(app.url("/nowhere")).send().await.unwrap();
    let other = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(other, answered);

    let logs = app.logs();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    assert!(!lines.is_empty());
    for l in &lines {
        for key in ["time", "level", "target", "message"] {
            assert!(l.get(key).is_some(), "{key} in {l}");
        }
    }
    // The access line of the token request names its id and client.
    assert!(
        lines.iter().any(|l| l["request_id"] == answered.as_str()
            && l["client_id"] == id.as_str()
            && l["message"].as_str().unwrap_or("").contains("/oauth/token")),
        "{logs}"
    );
    assert!(!logs.contains(&secret), "no secret in the logs");
}

#[tokio::test]
async fn a_trusted_proxys_request_id_is_kept() {
    let app = TestApp::spawn_with(&[("TOLLGATE_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let (id, secret) = app.client("read", &[]);
    assert_eq!(
        token_with_id(&app, &id, &secret, "edge-7f3a").await,
        "edge-7f3a"
    );
    // A malformed one is replaced even from a trusted proxy.
    assert_ne!(
        token_with_id(&app, &id, &secret, "bad id with spaces").await,
        "bad id with spaces"
    );
}
