//! Where and how to reach PostgreSQL: a `postgres://` URL, with libpq's TLS
//! settings (`sslmode`, `sslrootcert`), turned into a tokio-postgres config
//! and a rustls connector; and the URL as it may be shown (password hidden).
//!
//! The TLS modes follow libpq (PostgreSQL manual, "SSL Support", table
//! "SSL Mode Descriptions"), so a URL copied from a managed database's
//! console means here what it means to `psql`:
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | no | no |
//! | `allow`, `prefer` (the default) | if the server offers TLS | no |
//! | `require` | yes | only with `sslrootcert`: the chain, not the name |
//! | `verify-ca` | yes | the chain |
//! | `verify-full` | yes | the chain and the host name (or IP address) |
//!
//! `sslcert` and `sslkey` name a client certificate and its key, for a
//! server that authenticates clients by certificate.
//!
//! The chain is checked against the PEM certificates in `sslrootcert`, or the
//! system's roots when it is absent or `system`. Even unchecked certificates
//! must sign the handshake: the connection is encrypted to whoever holds the
//! key, which stops eavesdroppers but not an active impostor; use
//! `verify-full` across any network you do not control.

use std::path::Path;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Whether a `TOLLGATE_DB` value names a PostgreSQL database.
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// A database URL with any password (in the user part or a `password`
/// parameter) replaced, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((user, host)) => {
                let user = user.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:***@{host}")
            }
            None => base.to_string(),
        },
        None => base.to_string(),
    };
    match query {
        None => base,
        Some(q) => {
            let params: Vec<String> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some(("password", _)) => "password=***".to_string(),
                    _ => p.to_string(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
    }
}

const MODES: &str = "expected disable, allow, prefer, require, verify-ca or verify-full";

/// How to check the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// A database to connect to: the driver's settings and the TLS connector.
#[derive(Clone)]
pub struct Target {
    /// Host, port, user, database, options, and whether TLS is required.
    pub config: tokio_postgres::Config,
    /// Used when the mode asks for TLS and the server agrees.
    pub tls: MakeRustlsConnect,
}

/// Reads a URL; the error says what is wrong without repeating the password.
pub fn target(url: &str) -> Result<Target, String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut mode = "prefer".to_string();
    let mut root_cert: Option<String> = None;
    let mut identity: (Option<String>, Option<String>) = (None, None);
    // The other parameters go to tokio-postgres untouched (still encoded).
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || {
            percent_decode_str(value)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| format!("{key}: not UTF-8"))
        };
        match key {
            "sslmode" => mode = decoded()?,
            "sslrootcert" => root_cert = Some(decoded()?),
            "sslcert" => identity.0 = Some(decoded()?),
            "sslkey" => identity.1 = Some(decoded()?),
            _ => rest.push(pair),
        }
    }
    let (ssl_mode, check) = match (mode.as_str(), &root_cert) {
        ("disable", _) => (SslMode::Disable, Check::Nothing),
        ("allow" | "prefer", _) => (SslMode::Prefer, Check::Nothing),
        ("require", None) => (SslMode::Require, Check::Nothing),
        ("require", Some(_)) | ("verify-ca", _) => (SslMode::Require, Check::Chain),
        ("verify-full", _) => (SslMode::Require, Check::ChainAndName),
        (other, _) => return Err(format!("sslmode {other:?}: {MODES}")),
    };
    let rebuilt = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config: tokio_postgres::Config = rebuilt
        .parse()
        .map_err(|e: tokio_postgres::Error| e.to_string())?;
    config.ssl_mode(ssl_mode);
    if let Some(password) = super::pgpass::password_for(&config, &|k| std::env::var(k).ok()) {
        config.password(password);
    }
    let identity = match identity {
        (Some(cert), Some(key)) => Some(client_identity(&cert, &key)?),
        (None, None) => None,
        _ => return Err("sslcert and sslkey must be given together".into()),
    };
    let tls = MakeRustlsConnect::new(client_config(check, root_cert.as_deref(), identity)?);
    Ok(Target { config, tls })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The trusted roots: the PEM file named by `sslrootcert`, or the system's.
fn roots(root_cert: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(path) if path != "system" => {
            let certs = CertificateDer::pem_file_iter(Path::new(path))
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("sslrootcert {path}: no usable certificate"));
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "no system CA certificates found: set sslrootcert to the server's CA file"
                        .into(),
                );
            }
        }
    }
    Ok(roots)
}

/// A client certificate chain and its private key.
type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// `sslcert` (PEM, the client certificate then any intermediates) and
/// `sslkey` (PEM, PKCS#8, PKCS#1 or SEC1), for servers that authenticate
/// clients by certificate (`cert` in pg_hba.conf).
fn client_identity(cert: &str, key: &str) -> Result<Identity, String> {
    let chain = CertificateDer::pem_file_iter(Path::new(cert))
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("sslcert {cert}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("sslcert {cert}: no certificate"));
    }
    let key =
        PrivateKeyDer::from_pem_file(Path::new(key)).map_err(|e| format!("sslkey {key}: {e}"))?;
    Ok((chain, key))
}

fn client_config(
    check: Check,
    root_cert: Option<&str>,
    identity: Option<Identity>,
) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let chain = match check {
        Check::Nothing => None,
        Check::Chain | Check::ChainAndName => Some(
            WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(root_cert)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| e.to_string())?,
        ),
    };
    let verifier = Arc::new(Verifier {
        chain,
        name: check == Check::ChainAndName,
        algorithms: provider.signature_verification_algorithms,
    });
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("sslcert/sslkey: {e}")),
    }
}

/// libpq's check of the server's certificate: the chain (when `chain` is
/// set) and the name (when `name` is also). Whatever is checked, the
/// handshake must be signed by the certificate's key.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // verify-ca: the chain is all that is asked.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_recognised_and_passwords_redacted() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("postgresql://h/db"));
        assert!(!is_postgres_url("./tollgate.db"));
        assert_eq!(
            redact_url("postgres://user:hunter2@db:5432/t"),
            "postgres://user:***@db:5432/t"
        );
        assert_eq!(redact_url("postgres://db/t"), "postgres://db/t");
        assert_eq!(
            redact_url("postgres://u@db/t?sslmode=require&password=hunter2"),
            "postgres://u:***@db/t?sslmode=require&password=***"
        );
    }

    #[test]
    fn tls_modes_follow_libpq() {
        let mode = |url: &str| target(url).map(|t| t.config.get_ssl_mode());
        assert_eq!(mode("postgres://h/d"), Ok(SslMode::Prefer));
        assert_eq!(mode("postgres://h/d?sslmode=disable"), Ok(SslMode::Disable));
        assert_eq!(mode("postgres://h/d?sslmode=allow"), Ok(SslMode::Prefer));
        assert_eq!(mode("postgres://h/d?sslmode=require"), Ok(SslMode::Require));
        assert_eq!(
            mode("postgres://h/d?sslmode=require&application_name=x"),
            Ok(SslMode::Require)
        );
        assert!(mode("postgres://h/d?sslmode=sometimes")
            .unwrap_err()
            .contains("verify-full"));
        let missing = mode("postgres://h/d?sslmode=verify-ca&sslrootcert=/nonexistent.pem");
        assert!(missing.unwrap_err().contains("/nonexistent.pem"));
        // Other parameters reach the driver, still encoded.
        let t = target("postgres://u@h/d?options=-csearch_path%3Dx&sslmode=disable").unwrap();
        assert_eq!(t.config.get_options(), Some("-csearch_path=x"));
        assert_eq!(t.config.get_user(), Some("u"));
        let half = target("postgres://h/d?sslcert=/c.pem").err().unwrap();
        assert!(half.contains("together"), "{half}");
        let missing = target("postgres://h/d?sslcert=/no/c.pem&sslkey=/no/k.pem")
            .err()
            .unwrap();
        assert!(missing.contains("/no/c.pem"), "{missing}");
    }
}
