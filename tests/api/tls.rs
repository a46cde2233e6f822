//! Native TLS: Tollgate serves HTTPS itself with a certificate made in the
//! test, derives an `https://` issuer, and reloads its certificate on SIGHUP
//! without dropping the connections already open.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use serde_json::Value;

use crate::helpers::TestApp;

/// A CA and a certificate it issued, as PEM.
pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) ca: CertifiedIssuer<'static, KeyPair>,
}

/// A new CA.
pub(crate) fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Tollgate test CA");
    CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap()
}

/// A server certificate for 127.0.0.1 from a new CA.
pub(crate) fn server_pki() -> Pki {
    let ca = ca();
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf.signed_by(&key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
        ca,
    }
}

/// Writes the server's pair into `dir`; the paths.
pub(crate) fn write_pair(dir: &std::path::Path, pki: &Pki) -> (String, String) {
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    std::fs::write(&key, &pki.key_pem).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

/// A client that trusts only `ca_pem`, keeping connections alive.
pub(crate) fn client_trusting(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn tollgate_serves_https_and_reloads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let first = server_pki();
    let (cert, key) = write_pair(dir.path(), &first);
    let app =
        TestApp::spawn_with(&[("TOLLGATE_TLS_CERT", &cert), ("TOLLGATE_TLS_KEY", &key)]).await;
    assert!(app.base.starts_with("https://127.0.0.1:"), "{}", app.base);
    let (id, secret) = app.client("read", &[]);
    let old = client_trusting(&first.ca_pem);
    let r = old
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let meta: Value = old
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], app.base.as_str(), "an https issuer");
    // Plain HTTP is not served on the TLS port.
    let plain = app.base.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.is_err());

    // New pair from another CA, then SIGHUP.
    let second = server_pki();
    write_pair(dir.path(), &second);
    let fresh = client_trusting(&second.ca_pem);
    assert!(
        fresh.get(app.url("/healthz")).send().await.is_err(),
        "not yet reloaded"
    );
    app.signal("HUP");
    crate::helpers::eventually(
        "the new certificate",
        std::time::Duration::from_secs(5),
        || async {
            client_trusting(&second.ca_pem)
                .get(app.url("/healthz"))
                .send()
                .await
                .is_ok()
        },
    )
    .await;
    // The connection opened before the reload still works: it was not
    // dropped (a new one would fail, as the old CA no longer fits).
    let r = old.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A broken pair on disk: the running one stays.
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    app.signal("HUP");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        client_trusting(&second.ca_pem)
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(app.logs().contains("not reloaded"), "{}", app.logs());
    let _ = first.ca.der();
}

#[tokio::test]
async fn a_certificate_without_its_key_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let pki = server_pki();
    let (cert, _) = write_pair(dir.path(), &pki);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["serve"])
        .env("TOLLGATE_BIND", "127.0.0.1:0")
        .env("TOLLGATE_DB", dir.path().join("t.db"))
        .env("TOLLGATE_KEYS_DIR", dir.path().join("keys"))
        .env("TOLLGATE_TLS_CERT", &cert)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TOLLGATE_TLS_KEY"), "{err}");
}

/// The ALPN protocol the TLS listener picks for a client offering `offer`.
async fn negotiated(app: &TestApp, pki: &Pki, offer: &[&[u8]]) -> Option<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::CertificateDer::from(pki.ca.der().to_vec());
    roots.add(ca).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = offer.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let addr = app.base.trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

/// Issue 23: the TLS listener offers HTTP/2 (preferred) and HTTP/1.1, as
/// docs/mtls.md says.
#[tokio::test]
async fn the_tls_listener_offers_http2_and_http11() {
    let dir = tempfile::tempdir().unwrap();
    let pki = server_pki();
    let (cert, key) = write_pair(dir.path(), &pki);
    let app =
        TestApp::spawn_with(&[("TOLLGATE_TLS_CERT", &cert), ("TOLLGATE_TLS_KEY", &key)]).await;
    assert_eq!(
        negotiated(&app, &pki, &[b"h2", b"http/1.1"])
            .await
            .as_deref(),
        Some(&b"h2"[..])
    );
    assert_eq!(
        negotiated(&app, &pki, &[b"http/1.1"]).await.as_deref(),
        Some(&b"http/1.1"[..])
    );
}

/// Issue 23 (N9): SIGHUP does not end a server without native TLS; it
/// logs that there is nothing to reload and keeps serving.
#[tokio::test]
async fn sighup_leaves_a_plain_http_server_running() {
    let app = TestApp::spawn().await;
    app.signal("HUP");
    app.signal("HUP");
    crate::helpers::eventually(
        "the SIGHUP log line",
        std::time::Duration::from_secs(5),
        || async { app.logs().contains("nothing to reload") },
    )
    .await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Issue 23 (N10): with native TLS and no issuer, the command line's login
/// link is `https://`, like the issuer the server derives.
#[tokio::test]
async fn a_login_link_for_a_native_tls_server_is_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = server_pki();
    let (cert, key) = write_pair(dir.path(), &pki);
    let app =
        TestApp::spawn_with(&[("TOLLGATE_TLS_CERT", &cert), ("TOLLGATE_TLS_KEY", &key)]).await;
    let v = app.cli(&["console", "login-link"]);
    let url = v["url"].as_str().unwrap();
    assert!(url.starts_with("https://"), "{url}");
}
