//! The resource-server examples in `examples/`, run against the real server.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::helpers::{json, s, TestApp};

struct Example {
    child: Child,
    base: String,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The built example, which `cargo test` compiles before running tests.
fn example_bin(name: &str) -> Option<PathBuf> {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_tollgate"))
        .parent()?
        .join("examples")
        .join(name);
    path.exists().then_some(path)
}

fn start(name: &str, env: &[(&str, &str)]) -> Option<Example> {
    let Some(bin) = example_bin(name) else {
        eprintln!("SKIPPED: examples/{name} is not built (run the whole `cargo test`)");
        return None;
    };
    let mut child = Command::new(bin)
        .envs(env.iter().copied())
        .env("BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn example");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("resource server listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    Some(Example { child, base })
}

async fn hello(app: &TestApp, ex: &Example, token: Option<&str>) -> (u16, Value) {
    let mut req = app.http.get(format!("{}/hello", ex.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    json(req.send().await.unwrap()).await
}

#[tokio::test]
async fn jwks_example_accepts_good_tokens_and_refuses_others() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read", &["https://api.example.com"]);
    let (other, other_secret) = app.client("read", &["https://elsewhere.example"]);
    let Some(ex) = start(
        "resource_server_jwks",
        &[
            ("AUTH_SERVER_URL", &app.base),
            ("AUDIENCE", "https://api.example.com"),
        ],
    ) else {
        return;
    };
    let (status, v) = hello(&app, &ex, Some(&app.token(&id, &secret).await)).await;
    assert_eq!((status, s(&v["hello"])), (200, id));
    assert_eq!(hello(&app, &ex, None).await.0, 401);
    assert_eq!(
        hello(&app, &ex, Some(&app.token(&other, &other_secret).await))
            .await
            .0,
        401,
        "wrong audience"
    );
    assert_eq!(hello(&app, &ex, Some("garbage")).await.0, 401);
}

#[tokio::test]
async fn introspection_example_sees_revocation_at_once_and_accepts_api_keys() {
    let app = TestApp::spawn().await;
    let (rs_id, rs_secret) = app.client("tollgate:introspect", &[]);
    let (id, secret) = app.client("read", &["https://api.example.com"]);
    let Some(ex) = start(
        "resource_server_introspection",
        &[
            ("AUTH_SERVER_URL", &app.base),
            ("RS_CLIENT_ID", &rs_id),
            ("RS_CLIENT_SECRET", &rs_secret),
            ("AUDIENCE", "https://api.example.com"),
        ],
    ) else {
        return;
    };
    let token = app.token(&id, &secret).await;
    assert_eq!(hello(&app, &ex, Some(&token)).await.0, 200);
    let r = app.revoke(&id, &secret, &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(hello(&app, &ex, Some(&token)).await.0, 401, "revoked");
    let key = s(&app.cli(&["api-key", "create", "--client", &id])["secret_key"]);
    let (status, v) = hello(&app, &ex, Some(&key)).await;
    assert_eq!((status, s(&v["via"])), (200, "api_key".to_string()));
}
