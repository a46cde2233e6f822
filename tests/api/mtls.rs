//! Mutual TLS (RFC 8705) with certificates made in the test: `tls_client_auth`
//! against each kind of registered name, `self_signed_tls_client_auth`
//! against the registered key, certificate-bound tokens (`cnf.x5t#S256`)
//! at the admin API, and the RFC 9440 `Client-Cert` header from trusted
//! proxies only.

use base64::Engine;
use rcgen::{
    CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType,
};
use serde_json::{json, Value};
use sha2::Digest;

use crate::helpers::{s, segment, TestApp};
use crate::tls::{ca, client_trusting, server_pki, write_pair, Pki};

/// A client certificate with its key as PEM, and its DER.
pub(crate) struct ClientCert {
    pub(crate) pem: String,
    pub(crate) der: Vec<u8>,
    pub(crate) key: KeyPair,
}

pub(crate) fn client_cert(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    sans: Vec<SanType>,
) -> ClientCert {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Acme");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).unwrap();
    ClientCert {
        pem: format!("{}{}", cert.pem(), key.serialize_pem()),
        der: cert.der().to_vec(),
        key,
    }
}

fn self_signed(cn: &str) -> ClientCert {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    ClientCert {
        pem: format!("{}{}", cert.pem(), key.serialize_pem()),
        der: cert.der().to_vec(),
        key,
    }
}

pub(crate) fn sans() -> Vec<SanType> {
    vec![
        SanType::URI(
            "spiffe://example.org/ns/payments/sa/api"
                .try_into()
                .unwrap(),
        ),
        SanType::DnsName("payments.internal".try_into().unwrap()),
        SanType::IpAddress("10.1.2.3".parse().unwrap()),
        SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
    ]
}

fn x5t(der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
}

/// A client over TLS trusting the server's CA, presenting `cert` if given.
pub(crate) fn https(server: &Pki, cert: Option<&ClientCert>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(server.ca_pem.as_bytes()).unwrap());
    if let Some(c) = cert {
        b = b.identity(reqwest::Identity::from_pem(c.pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

async fn post(client: &reqwest::Client, url: String, form: &[(&str, &str)]) -> (u16, Value) {
    let r = client.post(url).form(form).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A server with TLS and client certificates from `client_ca`.
pub(crate) fn spawn(
    dir: &std::path::Path,
    server: &Pki,
    client_ca: &CertifiedIssuer<'static, KeyPair>,
) -> TestApp {
    let (cert, key) = write_pair(dir, server);
    let ca_file = dir.join("clients-ca.pem");
    std::fs::write(&ca_file, client_ca.pem()).unwrap();
    TestApp::spawn_with(&[
        ("TOLLGATE_TLS_CERT", &cert),
        ("TOLLGATE_TLS_KEY", &key),
        ("TOLLGATE_TLS_CLIENT_CA", ca_file.to_str().unwrap()),
    ])
    .block()
}

trait Block {
    fn block(self) -> TestApp;
}

impl<F: std::future::Future<Output = TestApp>> Block for F {
    fn block(self) -> TestApp {
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(self))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_auth_matches_each_registered_name_and_binds_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_pki();
    let clients_ca = ca();
    let app = spawn(dir.path(), &server, &clients_ca);
    let good = client_cert(&clients_ca, "payments", sans());
    let stranger = client_cert(
        &clients_ca,
        "billing",
        vec![SanType::DnsName("billing.internal".try_into().unwrap())],
    );
    let forged = client_cert(&ca(), "payments", sans());
    let token_url = app.url("/oauth/token");
    for (flag, value) in [
        // rcgen writes CN before O; RFC 4514 lists the last RDN first.
        ("--tls-subject-dn", "O=Acme, CN=payments"),
        ("--tls-san-dns", "payments.internal"),
        ("--tls-san-uri", "spiffe://example.org/ns/payments/sa/api"),
        ("--tls-san-ip", "10.1.2.3"),
        ("--tls-san-email", "ops@example.com"),
    ] {
        let created = app.cli(&[
            "client",
            "create",
            "--name",
            "mtls",
            "--scope",
            "read",
            "--auth-method",
            "tls_client_auth",
            flag,
            value,
        ]);
        assert!(created.get("client_secret").is_none(), "{created}");
        let id = s(&created["client_id"]);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
        ];
        let (status, v) = post(&https(&server, Some(&good)), token_url.clone(), &form).await;
        assert_eq!(status, 200, "{flag}: {v}");
        assert_eq!(segment(&s(&v["access_token"]), 1)["client_id"], id.as_str());
        assert!(
            segment(&s(&v["access_token"]), 1).get("cnf").is_none(),
            "not bound unless asked"
        );
        let (status, v) = post(&https(&server, Some(&stranger)), token_url.clone(), &form).await;
        assert_eq!(status, 401, "{flag}: another name: {v}");
        // Failures that depend on the client all read alike (issue 24); the
        // log says which check refused.
        assert_eq!(
            s(&v["error_description"]),
            "client authentication failed",
            "{v}"
        );
        assert!(app.logs().contains("registered subject or SAN"));
        let (status, v) = post(&https(&server, Some(&forged)), token_url.clone(), &form).await;
        assert_eq!(status, 401, "{flag}: another CA: {v}");
        assert_eq!(
            s(&v["error_description"]),
            "client authentication failed",
            "{v}"
        );
        assert!(app.logs().contains("does not chain to the configured CA"));
        let (status, v) = post(&https(&server, None), token_url.clone(), &form).await;
        assert_eq!(
            (status, s(&v["error"])),
            (401, "invalid_client".into()),
            "{flag}: no certificate"
        );
    }
    // Exactly one name: two, or none, are refused at registration.
    let out = app.cli_raw(
        &[
            "client",
            "create",
            "--name",
            "x",
            "--auth-method",
            "tls_client_auth",
            "--tls-san-dns",
            "a",
            "--tls-san-ip",
            "10.0.0.1",
        ],
        false,
    );
    assert!(!out.status.success());
    let out = app.cli_raw(
        &[
            "client",
            "create",
            "--name",
            "x",
            "--auth-method",
            "tls_client_auth",
        ],
        false,
    );
    assert!(!out.status.success());

    // Certificate-bound tokens, introspected by a client that authenticates
    // with its own certificate.
    let bound = app.cli(&[
        "client",
        "create",
        "--name",
        "bound",
        "--scope",
        "read",
        "--auth-method",
        "tls_client_auth",
        "--tls-san-uri",
        "spiffe://example.org/ns/payments/sa/api",
        "--tls-bound",
        "true",
    ]);
    let id = s(&bound["client_id"]);
    let (status, v) = post(
        &https(&server, Some(&good)),
        token_url.clone(),
        &[("grant_type", "client_credentials"), ("client_id", &id)],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    let token = s(&v["access_token"]);
    assert_eq!(
        segment(&token, 1)["cnf"]["x5t#S256"],
        x5t(&good.der).as_str()
    );
    let gateway_cert = client_cert(
        &clients_ca,
        "gateway",
        vec![SanType::DnsName("gateway.internal".try_into().unwrap())],
    );
    let gateway = app.cli(&[
        "client",
        "create",
        "--name",
        "gw",
        "--scope",
        "tollgate:introspect",
        "--auth-method",
        "tls_client_auth",
        "--tls-san-dns",
        "gateway.internal",
    ]);
    let (status, v) = post(
        &https(&server, Some(&gateway_cert)),
        app.url("/oauth/introspect"),
        &[("token", &token), ("client_id", &s(&gateway["client_id"]))],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["active"], true);
    assert_eq!(v["cnf"]["x5t#S256"], x5t(&good.der).as_str());
    // Revocation authenticates the same way.
    let (status, _) = post(
        &https(&server, Some(&good)),
        app.url("/oauth/revoke"),
        &[("token", &token), ("client_id", &id)],
    )
    .await;
    assert_eq!(status, 200);
    // The metadata names the methods.
    let m: Value = https(&server, None)
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["tls_client_certificate_bound_access_tokens"], true);
    for method in ["tls_client_auth", "self_signed_tls_client_auth"] {
        assert!(m["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(method)));
    }
    let _ = &good.key;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_tls_client_auth_takes_the_registered_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_pki();
    let app = spawn(dir.path(), &server, &ca());
    let mine = self_signed("workload");
    let raw = mine.key.public_key_raw();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64.encode(&raw[1..33]), "y": b64.encode(&raw[33..65])});
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, json!({"keys": [jwk]}).to_string()).unwrap();
    let created = app.cli(&[
        "client",
        "create",
        "--name",
        "ss",
        "--scope",
        "read",
        "--auth-method",
        "self_signed_tls_client_auth",
        "--jwks-file",
        jwks_file.to_str().unwrap(),
        "--tls-bound",
        "true",
    ]);
    let id = s(&created["client_id"]);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
    ];
    let (status, v) = post(&https(&server, Some(&mine)), app.url("/oauth/token"), &form).await;
    assert_eq!(status, 200, "{v}");
    let token = s(&v["access_token"]);
    assert_eq!(
        segment(&token, 1)["cnf"]["x5t#S256"],
        x5t(&mine.der).as_str()
    );
    let (status, v) = post(
        &https(&server, Some(&self_signed("workload"))),
        app.url("/oauth/token"),
        &form,
    )
    .await;
    assert_eq!(status, 401, "another key: {v}");
    assert_eq!(
        s(&v["error_description"]),
        "client authentication failed",
        "{v}"
    );
    assert!(app
        .logs()
        .contains("not one of the client's registered keys"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_bound_token_opens_the_admin_api_only_over_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_pki();
    let clients_ca = ca();
    let app = spawn(dir.path(), &server, &clients_ca);
    let admin_cert = client_cert(
        &clients_ca,
        "admin",
        vec![SanType::DnsName("admin.internal".try_into().unwrap())],
    );
    let other_cert = client_cert(
        &clients_ca,
        "other",
        vec![SanType::DnsName("other.internal".try_into().unwrap())],
    );
    let created = app.cli(&[
        "client",
        "create",
        "--name",
        "admin",
        "--scope",
        "tollgate:admin",
        "--auth-method",
        "tls_client_auth",
        "--tls-san-dns",
        "admin.internal",
        "--tls-bound",
        "true",
    ]);
    let id = s(&created["client_id"]);
    let (status, v) = post(
        &https(&server, Some(&admin_cert)),
        app.url("/oauth/token"),
        &[("grant_type", "client_credentials"), ("client_id", &id)],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let token = s(&v["access_token"]);
    let get = |c: reqwest::Client| {
        let (url, token) = (app.url("/admin/clients"), token.clone());
        async move {
            c.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get(https(&server, Some(&admin_cert))).await, 200);
    assert_eq!(
        get(https(&server, Some(&other_cert))).await,
        401,
        "another certificate"
    );
    assert_eq!(get(https(&server, None)).await, 401, "no certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_cert_header_counts_from_trusted_proxies_only() {
    let dir = tempfile::tempdir().unwrap();
    let clients_ca = ca();
    let ca_file = dir.path().join("clients-ca.pem");
    std::fs::write(&ca_file, clients_ca.pem()).unwrap();
    let cert = client_cert(&clients_ca, "payments", sans());
    let header = format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(&cert.der)
    );
    for (trusted, want) in [(true, 200u16), (false, 401)] {
        let mut env = vec![("TOLLGATE_TLS_CLIENT_CA", ca_file.to_str().unwrap())];
        if trusted {
            env.push(("TOLLGATE_TRUSTED_PROXIES", "127.0.0.1"));
        }
        let app = TestApp::spawn_with(&env).await;
        let created = app.cli(&[
            "client",
            "create",
            "--name",
            "behind-proxy",
            "--scope",
            "read",
            "--auth-method",
            "tls_client_auth",
            "--tls-san-dns",
            "payments.internal",
        ]);
        let id = s(&created["client_id"]);
        let r = app
            .http
            .post(app.url("/oauth/token"))
            .header("Client-Cert", &header)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "trusted proxy: {trusted}");
        if !trusted {
            assert!(
                app.logs()
                    .contains("Client-Cert header from 127.0.0.1 ignored"),
                "{}",
                app.logs()
            );
        }
    }
    let _ = client_trusting;
}

/// Issue 23 (N6 and I3): behind a trusted proxy, a request with two
/// `Client-Cert` headers is refused whichever comes first, and a
/// certificate-bound admin token obtained through the proxy opens the admin
/// API through the same proxy with the same certificate, and only with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cert_headers_are_one_per_request_and_read_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let clients_ca = ca();
    let ca_file = dir.path().join("clients-ca.pem");
    std::fs::write(&ca_file, clients_ca.pem()).unwrap();
    let header = |c: &ClientCert| {
        format!(
            ":{}:",
            base64::engine::general_purpose::STANDARD.encode(&c.der)
        )
    };
    let pay = client_cert(&clients_ca, "payments", sans());
    let other = client_cert(
        &clients_ca,
        "billing",
        vec![SanType::DnsName("billing.internal".try_into().unwrap())],
    );
    let app = TestApp::spawn_with(&[
        ("TOLLGATE_TLS_CLIENT_CA", ca_file.to_str().unwrap()),
        ("TOLLGATE_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let created = app.cli(&[
        "client",
        "create",
        "--name",
        "admin-behind-proxy",
        "--scope",
        "tollgate:admin",
        "--auth-method",
        "tls_client_auth",
        "--tls-san-dns",
        "payments.internal",
        "--tls-bound",
        "true",
    ]);
    let id = s(&created["client_id"]);
    let token_with = |headers: Vec<String>| {
        let mut r = app.http.post(app.url("/oauth/token"));
        for h in headers {
            r = r.header("Client-Cert", h);
        }
        let id = id.clone();
        async move {
            crate::helpers::json(
                r.form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", id.as_str()),
                ])
                .send()
                .await
                .unwrap(),
            )
            .await
        }
    };
    for twice in [
        vec![header(&pay), header(&other)],
        vec![header(&other), header(&pay)],
    ] {
        let (status, v) = token_with(twice).await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"], "invalid_request");
        assert!(s(&v["error_description"]).contains("Client-Cert"), "{v}");
    }
    let (status, v) = token_with(vec![header(&pay)]).await;
    assert_eq!(status, 200, "{v}");
    let token = s(&v["access_token"]);
    let admin = |cert: Option<&ClientCert>| {
        let mut r = app.http.get(app.url("/admin/clients")).bearer_auth(&token);
        if let Some(c) = cert {
            r = r.header("Client-Cert", header(c));
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        admin(Some(&pay)).await,
        200,
        "its certificate, through the proxy"
    );
    assert_eq!(admin(Some(&other)).await, 401, "another certificate");
    assert_eq!(admin(None).await, 401, "no certificate");
}
