//! TLS to PostgreSQL end to end: each `sslmode` connecting, or refusing to,
//! through a test proxy that terminates TLS with certificates made here and
//! relays to the server at `TOLLGATE_TEST_PG_URL` (skipped without it).

use crate::store::ClientStore;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::{execute_once, PostgresStore};

/// PostgreSQL's SSLRequest: length 8, code 80877103 (protocol, "SSL Session
/// Encryption").
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// A certificate authority and a certificate it signed, with its key.
struct Pki {
    ca_pem: String,
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_pem: String,
    key_pem: String,
}

/// A server certificate for `names`.
fn pki(names: &[&str]) -> Pki {
    issue(names, ExtendedKeyUsagePurpose::ServerAuth)
}

fn issue(names: &[&str], usage: ExtendedKeyUsagePurpose) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut leaf = CertificateParams::new(names).unwrap();
    leaf.extended_key_usages = vec![usage];
    let leaf = leaf.signed_by(&key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        ca: ca.der().clone(),
        chain: vec![leaf.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        cert_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
    }
}

#[derive(Default)]
struct Seen {
    /// TLS handshakes completed.
    encrypted: AtomicUsize,
    /// SSLRequests answered "N".
    refused: AtomicUsize,
    /// Connections that started without asking for TLS.
    plain: AtomicUsize,
}

/// Answers SSLRequests as a PostgreSQL server would (with `tls`, or by
/// refusing), then relays in plaintext to `upstream`.
struct TlsProxy {
    addr: SocketAddr,
    seen: Arc<Seen>,
    _rt: tokio::runtime::Runtime,
}

impl TlsProxy {
    fn start(upstream: SocketAddr, tls: Option<&Pki>) -> TlsProxy {
        TlsProxy::start_asking(upstream, tls, None)
    }

    /// With `clients`, only clients with a certificate from its CA get in.
    fn start_asking(upstream: SocketAddr, tls: Option<&Pki>, clients: Option<&Pki>) -> TlsProxy {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let acceptor = tls.map(|p| {
            let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap();
            let builder = match clients {
                None => builder.with_no_client_auth(),
                Some(c) => {
                    let mut roots = rustls::RootCertStore::empty();
                    roots.add(c.ca.clone()).unwrap();
                    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                        Arc::new(roots),
                        provider.clone(),
                    )
                    .build()
                    .unwrap();
                    builder.with_client_cert_verifier(verifier)
                }
            };
            let config = builder
                .with_single_cert(p.chain.clone(), p.key.clone_key())
                .unwrap();
            TlsAcceptor::from(Arc::new(config))
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let counts = seen.clone();
        rt.spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), counts.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, upstream, acceptor, &seen).await;
                });
            }
        });
        TlsProxy {
            addr,
            seen,
            _rt: rt,
        }
    }

    fn count(&self, what: fn(&Seen) -> &AtomicUsize) -> usize {
        what(&self.seen).load(Ordering::SeqCst)
    }
}

async fn serve(
    mut conn: TcpStream,
    upstream: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    seen: &Seen,
) -> std::io::Result<()> {
    let mut first = [0u8; 8];
    conn.read_exact(&mut first).await?;
    let mut server = TcpStream::connect(upstream).await?;
    if first != SSL_REQUEST {
        seen.plain.fetch_add(1, Ordering::SeqCst);
        server.write_all(&first).await?;
        tokio::io::copy_bidirectional(&mut conn, &mut server).await?;
        return Ok(());
    }
    match acceptor {
        Some(acceptor) => {
            conn.write_all(b"S").await?;
            let mut tls = acceptor.accept(conn).await?;
            seen.encrypted.fetch_add(1, Ordering::SeqCst);
            tokio::io::copy_bidirectional(&mut tls, &mut server).await?;
        }
        None => {
            seen.refused.fetch_add(1, Ordering::SeqCst);
            conn.write_all(b"N").await?;
            tokio::io::copy_bidirectional(&mut conn, &mut server).await?;
        }
    }
    Ok(())
}

/// The real server's URL and address, or `None` (with a note) to skip.
fn upstream(test: &str) -> Option<(String, SocketAddr)> {
    let url = crate::store::contract::test_pg_url(test)?;
    let config: tokio_postgres::Config = url.parse().expect("TOLLGATE_TEST_PG_URL parses");
    let Some(tokio_postgres::config::Host::Tcp(host)) = config.get_hosts().first() else {
        panic!("TOLLGATE_TEST_PG_URL must name a TCP host");
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .unwrap()
        .next()
        .unwrap();
    Some((url, addr))
}

/// `url` with its host and port replaced by `addr` and `params` appended.
fn via(url: &str, addr: SocketAddr, host: &str, params: &str) -> String {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let user = config.get_user().unwrap_or("postgres");
    let db = config.get_dbname().unwrap_or("postgres");
    format!("postgres://{user}@{host}:{}/{db}?{params}", addr.port())
}

/// Writes `text` to `dir/name`; the path, for a URL parameter.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn connects(url: &str) -> Result<(), String> {
    execute_once(url, "SELECT 1")
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn each_sslmode_checks_what_libpq_checks() {
    let Some((url, pg)) = upstream("each_sslmode_checks_what_libpq_checks") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let good = pki(&["localhost", "127.0.0.1"]);
    let ca = write(dir.path(), "ca.pem", &good.ca_pem);
    let other_ca = write(dir.path(), "other.pem", &pki(&["localhost"]).ca_pem);
    let proxy = TlsProxy::start(pg, Some(&good));
    let at = |host: &str, params: &str| via(&url, proxy.addr, host, params);

    // verify-full: the chain and the name, by IP address or DNS name.
    for host in ["127.0.0.1", "localhost"] {
        let before = proxy.count(|s| &s.encrypted);
        connects(&at(host, &format!("sslmode=verify-full&sslrootcert={ca}"))).unwrap();
        assert_eq!(proxy.count(|s| &s.encrypted), before + 1, "{host}");
    }
    // A store opens, migrates and answers over TLS (pool and listener).
    let schema = format!("tgtls_{}", std::process::id());
    execute_once(
        &url,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    )
    .unwrap();
    let store_url = at(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}&options=-csearch_path%3D{schema}"),
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = PostgresStore::open(&store_url, 2)
                .await
                .expect("store over TLS");
            assert!(store.get_client("nobody").await.unwrap().is_none());
        });
    execute_once(&url, &format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    assert_eq!(proxy.count(|s| &s.plain), 0);
    assert_eq!(proxy.count(|s| &s.refused), 0);

    // A certificate from another authority is refused by every checking mode.
    for mode in ["verify-full", "verify-ca", "require"] {
        let err = connects(&at(
            "localhost",
            &format!("sslmode={mode}&sslrootcert={other_ca}"),
        ))
        .expect_err(mode);
        assert!(err.contains("certificate"), "{mode}: {err}");
    }
    // Without a root file, require and prefer encrypt without checking.
    for mode in ["require", "prefer"] {
        let before = proxy.count(|s| &s.encrypted);
        connects(&at("localhost", &format!("sslmode={mode}"))).unwrap();
        assert_eq!(proxy.count(|s| &s.encrypted), before + 1, "{mode}");
    }
    // disable never asks.
    connects(&at("localhost", "sslmode=disable")).unwrap();
    assert_eq!(proxy.count(|s| &s.plain), 1);

    // A certificate for another name: verify-ca accepts, verify-full does not.
    let misnamed = pki(&["db.example"]);
    let misnamed_ca = write(dir.path(), "misnamed.pem", &misnamed.ca_pem);
    let proxy = TlsProxy::start(pg, Some(&misnamed));
    let at = |params: &str| via(&url, proxy.addr, "localhost", params);
    let err = connects(&at(&format!(
        "sslmode=verify-full&sslrootcert={misnamed_ca}"
    )))
    .expect_err("wrong name accepted");
    assert!(err.contains("certificate"), "{err}");
    connects(&at(&format!("sslmode=verify-ca&sslrootcert={misnamed_ca}"))).unwrap();
    connects(&at(&format!("sslmode=require&sslrootcert={misnamed_ca}"))).unwrap();
    assert_eq!(proxy.count(|s| &s.encrypted), 2);

    // A server without TLS: prefer falls back to plaintext, require does not.
    let proxy = TlsProxy::start(pg, None);
    let at = |params: &str| via(&url, proxy.addr, "localhost", params);
    connects(&at("sslmode=prefer")).unwrap();
    connects(&at("")).unwrap();
    assert_eq!(proxy.count(|s| &s.refused), 2);
    let strict = [
        "sslmode=require".to_string(),
        format!("sslmode=require&sslrootcert={ca}"),
        format!("sslmode=verify-ca&sslrootcert={ca}"),
        format!("sslmode=verify-full&sslrootcert={ca}"),
    ];
    for params in strict {
        let err = connects(&at(&params)).expect_err(&params);
        assert!(
            err.contains("TLS") || err.contains("SSL"),
            "{params}: {err}"
        );
    }
    assert_eq!(proxy.count(|s| &s.refused), 6);
}

#[test]
fn the_default_encrypts_when_the_server_offers_tls() {
    let Some((url, _)) = upstream("the_default_encrypts_when_the_server_offers_tls") else {
        return;
    };
    if url.contains("sslmode") {
        eprintln!("SKIPPED the default sslmode: TOLLGATE_TEST_PG_URL sets one");
        return;
    }
    let offered = execute_once(&url, "SHOW ssl").unwrap();
    let used = execute_once(
        &url,
        "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .unwrap();
    // psql shows booleans as on/off for SHOW and true/false for values.
    let expected = if offered.as_deref() == Some("on") {
        "true"
    } else {
        "false"
    };
    assert_eq!(used.as_deref(), Some(expected), "server ssl={offered:?}");
}

#[test]
fn a_client_certificate_is_presented_when_the_server_asks() {
    let Some((url, pg)) = upstream("a_client_certificate_is_presented_when_the_server_asks") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = pki(&["localhost"]);
    let ca = write(dir.path(), "ca.pem", &server.ca_pem);
    let file = |name: &str, text: &str| write(dir.path(), name, text);
    let client = issue(&["tollgate"], ExtendedKeyUsagePurpose::ClientAuth);
    let (cert, key) = (
        file("client.pem", &client.cert_pem),
        file("client.key", &client.key_pem),
    );
    let stranger = issue(&["tollgate"], ExtendedKeyUsagePurpose::ClientAuth);
    let (other_cert, other_key) = (
        file("other.pem", &stranger.cert_pem),
        file("other.key", &stranger.key_pem),
    );
    let proxy = TlsProxy::start_asking(pg, Some(&server), Some(&client));
    let at = |extra: &str| {
        via(
            &url,
            proxy.addr,
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}{extra}"),
        )
    };

    connects(&at(&format!("&sslcert={cert}&sslkey={key}"))).unwrap();
    assert_eq!(proxy.count(|s| &s.encrypted), 1);
    // No certificate, or one from another authority: the server refuses.
    connects(&at("")).expect_err("no client certificate");
    connects(&at(&format!("&sslcert={other_cert}&sslkey={other_key}")))
        .expect_err("a stranger's certificate");
    // A key that does not match the certificate is caught before connecting.
    let err =
        connects(&at(&format!("&sslcert={cert}&sslkey={other_key}"))).expect_err("mismatched key");
    assert!(err.contains("ssl"), "{err}");
    assert_eq!(proxy.count(|s| &s.encrypted), 1);
}
