//! OpenTelemetry traces over OTLP/HTTP, received by a collector on loopback:
//! a span per request with route, status and client id (never a secret),
//! and child spans for store calls and signing under it.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::helpers::{eventually, TestApp};

/// An OTLP/HTTP collector on 127.0.0.1 that keeps every JSON body posted
/// to `/v1/traces`.
async fn collector() -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let kept = kept.clone();
            tokio::spawn(async move {
                loop {
                    // One request: headers, then Content-Length bytes.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 65536];
                    let head_end = loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
                    kept.lock().unwrap().push(body);
                    let resp = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), bodies)
}

/// Every span received so far.
fn spans(bodies: &Mutex<Vec<String>>) -> Vec<Value> {
    let mut out = Vec::new();
    for b in bodies.lock().unwrap().iter() {
        let v: Value = serde_json::from_str(b).unwrap_or(Value::Null);
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                out.extend(ss["spans"].as_array().into_iter().flatten().cloned());
            }
        }
    }
    out
}

fn attr(span: &Value, key: &str) -> Option<Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| a["value"].clone())
}

#[tokio::test]
async fn each_request_is_a_span_with_its_route_status_client_and_children() {
    let (endpoint, bodies) = collector().await;
    let app = TestApp::spawn_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let (id, secret) = app.client("read", &[]);
    let token = app.token(&id, &secret).await;
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    eventually("the spans", std::time::Duration::from_secs(10), || async {
        spans(&bodies)
            .iter()
            .filter(|s| s["name"] == "POST /oauth/token")
            .count()
            >= 2
    })
    .await;
    let all = spans(&bodies);
    let issued = all
        .iter()
        .find(|s| {
            s["name"] == "POST /oauth/token"
                && attr(s, "http.response.status_code").is_some_and(|v| v["intValue"] == "200")
        })
        .expect("the token request's span");
    assert_eq!(
        attr(issued, "http.route").unwrap()["stringValue"],
        "/oauth/token"
    );
    assert_eq!(
        attr(issued, "client_id").unwrap()["stringValue"],
        id.as_str()
    );
    // Its children: the client's store call and the signature.
    let children: Vec<&Value> = all
        .iter()
        .filter(|s| s["parentSpanId"] == issued["spanId"] && s["traceId"] == issued["traceId"])
        .collect();
    let names: Vec<&str> = children.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(names.contains(&"token.sign"), "{names:?}");
    assert!(names.contains(&"store.load_client"), "{names:?}");
    // The refused one has no client (it never authenticated).
    let refused = all
        .iter()
        .find(|s| attr(s, "http.response.status_code").is_some_and(|v| v["intValue"] == "401"))
        .expect("the refused request's span");
    assert!(attr(refused, "client_id").is_none());
    // Never a secret, a token or a password.
    let everything = bodies.lock().unwrap().join("\n");
    assert!(!everything.contains(&secret));
    assert!(!everything.contains(&token));
    assert!(!everything.contains("wrong"));
}
