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

#[tokio::test]
async fn jwks_example_takes_dpop_bound_tokens_only_with_a_proof_of_their_key() {
    use crate::private_key_jwt::{es256, jti, now};
    use base64::Engine;
    use sha2::Digest;
    let app = TestApp::spawn().await;
    let (id, secret) = app.client("read", &["https://api.example.com"]);
    let Some(ex) = start(
        "resource_server_jwks",
        &[
            ("AUTH_SERVER_URL", &app.base),
            ("AUDIENCE", "https://api.example.com"),
        ],
    ) else {
        return;
    };
    let key = es256("client");
    let proof = |method: &str, url: &str, ath: Option<&str>, k: &crate::private_key_jwt::Key| {
        let mut claims = serde_json::json!({"htm": method, "htu": url, "iat": now(), "jti": jti()});
        if let Some(a) = ath {
            claims["ath"] = serde_json::json!(a);
        }
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.typ = Some("dpop+jwt".into());
        h.jwk = Some(serde_json::from_value(k.jwk.clone()).unwrap());
        jsonwebtoken::encode(&h, &claims, &k.enc).unwrap()
    };
    let (status, v) = json(
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .header("DPoP", proof("POST", &app.url("/oauth/token"), None, &key))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, s(&v["token_type"])), (200, "DPoP".into()), "{v}");
    let token = s(&v["access_token"]);
    let ath = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(token.as_bytes()));
    let url = format!("{}/hello", ex.base);
    let call = |scheme: &str, proof: Option<String>| {
        let mut r = app
            .http
            .get(&url)
            .header("Authorization", format!("{scheme} {token}"));
        if let Some(p) = proof {
            r = r.header("DPoP", p);
        }
        r.send()
    };
    let (status, v) = json(
        call("DPoP", Some(proof("GET", &url, Some(&ath), &key)))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, s(&v["scheme"])), (200, "DPoP".into()), "{v}");
    assert_eq!(
        call("Bearer", None).await.unwrap().status(),
        401,
        "as a bearer token"
    );
    assert_eq!(call("DPoP", None).await.unwrap().status(), 401, "no proof");
    let other = es256("thief");
    assert_eq!(
        call("DPoP", Some(proof("GET", &url, Some(&ath), &other)))
            .await
            .unwrap()
            .status(),
        401,
        "another key"
    );
    assert_eq!(
        call("DPoP", Some(proof("GET", &url, None, &key)))
            .await
            .unwrap()
            .status(),
        401,
        "no ath"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_example_takes_certificate_bound_tokens_only_over_their_certificate() {
    use crate::mtls::{client_cert, https, sans, spawn};
    use crate::tls::{ca, server_pki, write_pair};
    let dir = tempfile::tempdir().unwrap();
    let server = server_pki();
    let clients_ca = ca();
    let app = spawn(dir.path(), &server, &clients_ca);
    let created = app.cli(&[
        "client",
        "create",
        "--name",
        "bound",
        "--scope",
        "read",
        "--audience",
        "https://api.example.com",
        "--auth-method",
        "tls_client_auth",
        "--tls-san-uri",
        "spiffe://example.org/ns/payments/sa/api",
        "--tls-bound",
        "true",
    ]);
    let id = s(&created["client_id"]);
    let mine = client_cert(&clients_ca, "payments", sans());
    let r = https(&server, Some(&mine))
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = s(&r.json::<Value>().await.unwrap()["access_token"]);
    // The example serves HTTPS with the same server certificate and asks for
    // client certificates. It reaches Tollgate over HTTPS, trusting its CA.
    let rs_dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(rs_dir.path(), &server);
    let ca_file = rs_dir.path().join("ca.pem");
    std::fs::write(&ca_file, &server.ca_pem).unwrap();
    let Some(ex) = start(
        "resource_server_jwks",
        &[
            ("AUTH_SERVER_URL", &app.base),
            ("AUDIENCE", "https://api.example.com"),
            ("TLS_CERT", &cert),
            ("TLS_KEY", &key),
            ("TLS_CLIENT_CA", ca_file.to_str().unwrap()),
            ("AUTH_SERVER_CA", ca_file.to_str().unwrap()),
        ],
    ) else {
        return;
    };
    assert!(ex.base.starts_with("https://"), "{}", ex.base);
    let hello = |client: reqwest::Client| {
        let (url, token) = (format!("{}/hello", ex.base), token.clone());
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(hello(https(&server, Some(&mine))).await, 200);
    let other = client_cert(&clients_ca, "other", sans());
    assert_eq!(
        hello(https(&server, Some(&other))).await,
        401,
        "another certificate"
    );
    assert_eq!(hello(https(&server, None)).await, 401, "no certificate");
}
