//! Native TLS (rustls): the server's certificate and key from PEM files,
//! reloaded on SIGHUP without dropping connections (new handshakes use the
//! new pair, established connections keep theirs), and optional client
//! certificates for RFC 8705, whose chain the use cases check (so that a
//! self-signed certificate can still authenticate its registered key).

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use actix_web::dev::Extensions;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The client's certificate chain from the TLS handshake, end entity first,
/// kept in the connection's data.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Arc<Vec<Vec<u8>>>);

/// Loads a certificate chain and its key.
fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("{} does not match {}: {e}", key.display(), cert.display()))?;
    Ok(Arc::new(certified))
}

/// The server's certificate, swappable while the server runs.
#[derive(Debug)]
pub struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
    cert: PathBuf,
    key: PathBuf,
}

impl ReloadingCert {
    /// Loads the pair; fails when either file is unusable.
    pub fn open(cert: &Path, key: &Path) -> Result<Arc<ReloadingCert>, String> {
        Ok(Arc::new(ReloadingCert {
            current: RwLock::new(load(cert, key)?),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }))
    }

    /// Loads the files again; on failure the pair in use stays and the
    /// reason is logged.
    pub fn reload(&self) {
        match load(&self.cert, &self.key) {
            Ok(k) => {
                *crate::sync::write(&self.current) = k;
                log::info!("TLS certificate reloaded from {}", self.cert.display());
            }
            Err(e) => log::error!("TLS certificate not reloaded, the old one stays: {e}"),
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(crate::sync::read(&self.current).clone())
    }
}

/// Asks for a client certificate and takes any, after the handshake proves
/// that the client holds its key (TLS `CertificateVerify`): whether it
/// chains to the configured CA (`tls_client_auth`) or is a registered
/// self-signed key (`self_signed_tls_client_auth`) is decided per client.
#[derive(Debug)]
struct OptionalClientCert {
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The rustls configuration: the reloading certificate, and optional client
/// certificates when a client CA is configured.
pub fn server_config(
    cert: Arc<ReloadingCert>,
    client_certs: bool,
) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if client_certs {
        builder.with_client_cert_verifier(Arc::new(OptionalClientCert {
            algs: provider.signature_verification_algorithms,
        }))
    } else {
        builder.with_no_client_auth()
    };
    // ALPN: actix-http puts `h2` and `http/1.1` first in whatever list it is
    // given (actix-http `service.rs`), so HTTP/2 and HTTP/1.1 are both
    // offered, h2 preferred; listing them here says so rather than hiding
    // it behind a list that looked like HTTP/1.1 only (docs/mtls.md).
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Keeps the client's certificates, if it sent any, in the connection data
/// (`HttpServer::on_connect`).
pub fn on_connect(conn: &dyn Any, data: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    if let Some(tls) = conn.downcast_ref::<Tls>() {
        if let Some(certs) = tls.get_ref().1.peer_certificates() {
            let chain = certs.iter().map(|c| c.as_ref().to_vec()).collect();
            data.insert(PeerCertificates(Arc::new(chain)));
        }
    }
}

/// Handles SIGHUP for as long as the server runs: reloads the certificate
/// when there is one, and otherwise logs that there is nothing to reload.
/// Installed on every server, TLS or not, before it serves a request: the
/// signal's default action would end the process, and a fleet-wide
/// `systemctl reload` or a logrotate hook must not take a plain-HTTP
/// instance down.
pub fn handle_sighup(cert: Option<Arc<ReloadingCert>>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        log::warn!("cannot listen for SIGHUP: it would end the process, and nothing is reloaded");
        return;
    };
    actix_web::rt::spawn(async move {
        while hup.recv().await.is_some() {
            match &cert {
                Some(cert) => cert.reload(),
                None => log::info!("SIGHUP: no TLS certificate is configured; nothing to reload"),
            }
        }
    });
}
