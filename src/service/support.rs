//! What every use case of the service layer shares and nothing composes:
//! the start-up error, the rule for logging a client id, and the refusal
//! log line. It imports nothing of `service/`, so the components and
//! `App` both stand above it.

use crate::limits::Decision;

/// The scope a caller needs to introspect.
pub const INTROSPECT_SCOPE: &str = "tollgate:introspect";
/// The scope a caller needs for the admin API.
pub const ADMIN_SCOPE: &str = "tollgate:admin";

/// The file in the keys directory whose secret derives the DPoP nonces.
pub(super) const NONCE_SECRET_FILE: &str = "dpop-nonce.secret";
use crate::token::keys::KeyError;

/// A start-up failure, shown as one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("cannot open database {path}: {source}")]
    Store {
        /// The database path.
        path: String,
        /// The cause.
        source: crate::store::StoreError,
    },
    /// The keys could not be loaded or created.
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    /// Storage failed while setting up keys.
    #[error("signing keys: {0}")]
    KeyRecords(#[from] crate::store::StoreError),
    /// The client CA file could not be read.
    #[error("TOLLGATE_TLS_CLIENT_CA: {0}")]
    Tls(String),
    /// The metrics registry could not be built.
    #[error("metrics: {0}")]
    Metrics(String),
}

/// Logs a rate-limit refusal: the first of a window at `warn`, the rest at
/// `debug` with their running count, so that a flood does not flood the log.
pub fn log_refusal(d: &Decision, what: &str) {
    if d.refusals <= 1 {
        log::warn!("refused: {what}");
    } else {
        log::debug!("refused: {what} ({} refusals in this window)", d.refusals);
    }
}

/// The length of a client id Tollgate makes: `tgc_` and 22 base64url
/// characters (128 bits).
const CLIENT_ID_LEN: usize = crate::secret::CLIENT_ID_PREFIX.len() + 22;

/// The most characters of a value that is not a Tollgate client id logged.
const FOREIGN_ID_LOGGED: usize = 16;

/// A client id as it may appear in a log line: only the id, whatever
/// follows it. A value that starts like a Tollgate id is cut at an id's
/// length; anything else at a fixed short prefix; the rest (a caller that
/// sent `id:secret`, or the secret pasted straight after the id, as its id)
/// is replaced by `<redacted>`. A value that looks like a secret, an API key
/// or a token (a caller who swapped its fields) is not logged at all.
pub fn truncate(s: &str) -> String {
    let head_len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .unwrap_or(s.len());
    let head = &s[..head_len];
    let looks_secret = head.starts_with(crate::secret::CLIENT_SECRET_PREFIX)
        || head.starts_with("eyJ")
        || (head.len() > 40 && !head.starts_with(crate::secret::CLIENT_ID_PREFIX));
    if looks_secret {
        return "<redacted>".to_string();
    }
    let keep = if head.starts_with(crate::secret::CLIENT_ID_PREFIX) {
        CLIENT_ID_LEN
    } else {
        FOREIGN_ID_LOGGED
    };
    // ASCII only up to head_len, so a byte index is a char index.
    let mut out = head[..head.len().min(keep)].to_string();
    if out.len() < s.len() {
        out.push_str("<redacted>");
    }
    out
}

/// Reads the CA certificates of `TOLLGATE_TLS_CLIENT_CA` as trust anchors.
pub(super) fn load_client_ca(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::TrustAnchor<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<rustls::pki_types::CertificateDer<'static>> =
        rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    certs
        .iter()
        .map(|c| {
            webpki::anchor_from_trusted_cert(c)
                .map(|a| a.to_owned())
                .map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect()
}
