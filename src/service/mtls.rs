//! Mutual-TLS client authentication and certificate-bound tokens (RFC 8705)
//! in the use cases: `tls_client_auth` (the certificate chains to the
//! configured CA and holds the client's registered name, §2.1),
//! `self_signed_tls_client_auth` (its key is in the client's JWK Set, §2.2),
//! and `cnf.x5t#S256` for clients registered for bound tokens (§3).

use super::authenticator::{Authenticator, Refused};
use super::families::IssueError;
use crate::domain::{Client, KeySource, RegisteredName};
use crate::oauth::mtls;

impl Authenticator {
    /// RFC 8705 §2.1: the certificate chains to the configured CA and holds
    /// the client's registered subject DN or SAN.
    pub(super) fn verify_tls_client_auth(
        &self,
        cert: &mtls::Certificate,
        name: &RegisteredName,
        now: i64,
    ) -> Result<(), Refused> {
        let quietly = |reason: &str| Err(Refused::Quietly(reason.to_string()));
        let Some(roots) = self.client_ca.as_deref() else {
            return quietly("tls_client_auth needs TOLLGATE_TLS_CLIENT_CA on the server");
        };
        if !cert.chains_to(roots, now) {
            return quietly("the client certificate does not chain to the configured CA");
        }
        if !cert.holds(name) {
            return quietly(
                "the client certificate does not hold the client's registered subject or SAN",
            );
        }
        Ok(())
    }

    /// RFC 8705 §2.2: a self-signed certificate whose public key is one of
    /// the client's registered keys.
    pub(super) async fn verify_self_signed(
        &self,
        client: &Client,
        source: &KeySource,
        cert: &mtls::Certificate,
        now: i64,
    ) -> Result<(), Refused> {
        let keys = self
            .client_keys(&client.id, source, false, now)
            .await
            .map_err(|e| Refused::Quietly(format!("the client's keys: {e}")))?;
        if !cert.key_in(&keys) {
            return Err(Refused::Quietly(
                "the client certificate's key is not one of the client's registered keys".into(),
            ));
        }
        Ok(())
    }
}

impl super::issue::Tokens {
    /// RFC 8705 §3: the `x5t#S256` a token of `client` is bound to, when the
    /// client is registered for certificate-bound tokens; without a
    /// certificate such a client gets no token.
    pub(super) fn bind_certificate(
        &self,
        client: &Client,
        certificate: Option<&str>,
    ) -> Result<Option<String>, IssueError> {
        if !client.tls_client_certificate_bound_access_tokens {
            return Ok(None);
        }
        match certificate {
            Some(t) => Ok(Some(t.to_string())),
            None => Err(IssueError::invalid_request(
                "this client's tokens are certificate-bound: present its TLS client certificate",
            )),
        }
    }
}
