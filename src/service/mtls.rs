//! Mutual-TLS client authentication and certificate-bound tokens (RFC 8705)
//! in the use cases: `tls_client_auth` (the certificate chains to the
//! configured CA and holds the client's registered name, §2.1),
//! `self_signed_tls_client_auth` (its key is in the client's JWK Set, §2.2),
//! and `cnf.x5t#S256` for clients registered for bound tokens (§3).

use std::net::IpAddr;

use super::authenticator::{AuthError, Authenticator};
use super::error::ServiceError;
use super::keysets::KeySource;
use super::{truncate, App};
use crate::domain::{Client, ClientAuthMethod};
use crate::oauth::mtls;

impl Authenticator {
    /// Authenticates a client by the TLS certificate of the connection.
    /// Every failure is the same `401 invalid_client` (its reason in the
    /// log), and counts against the failure throttles.
    pub(super) async fn authenticate_with_certificate(
        &self,
        client_id: &str,
        cert: &mtls::Certificate,
        ip: IpAddr,
        now: i64,
    ) -> Result<Client, AuthError> {
        // The reason goes to the log; the caller gets `invalid_client`.
        let logged = |reason: &str| {
            log::info!(
                "certificate authentication refused for client_id {:?} from {ip}: {reason}",
                truncate(client_id),
            );
            AuthError::failed()
        };
        let fail = |e: AuthError| {
            self.record_failure("tls_client_auth", Some(client_id), ip, now);
            e
        };
        if client_id.len() > 256 {
            self.check_failures(None, ip, now)?;
            return Err(fail(logged("client_id too long")));
        }
        self.check_failures(Some(client_id), ip, now)?;
        // Every failure from here depends on the client (whether it exists,
        // its method, its registered name or keys): one answer for all, the
        // reason in the log only (issue 24).
        let refuse = |reason: &str| fail(logged(reason));
        let client = match self.store.get_client(client_id).await? {
            Some(c) if !c.disabled => c,
            _ => return Err(refuse("no such enabled client")),
        };
        match client.token_endpoint_auth_method {
            ClientAuthMethod::TlsClientAuth => {
                let Some(roots) = self.client_ca.as_deref() else {
                    return Err(refuse(
                        "tls_client_auth needs TOLLGATE_TLS_CLIENT_CA on the server",
                    ));
                };
                if !cert.chains_to(roots, now) {
                    return Err(refuse(
                        "the client certificate does not chain to the configured CA",
                    ));
                }
                let names = mtls::registered_names(&client);
                if names.len() != 1 || !cert.holds(&names[0]) {
                    return Err(refuse(
                        "the client certificate does not hold the client's registered subject or SAN",
                    ));
                }
            }
            ClientAuthMethod::SelfSignedTlsClientAuth => {
                let source = match (&client.jwks, &client.jwks_uri) {
                    (Some(jwks), _) => KeySource::Inline(jwks),
                    (None, Some(uri)) => KeySource::Uri(uri),
                    (None, None) => return Err(refuse("the client has no registered keys")),
                };
                let keys = self
                    .key_set(&self.remote_keys, &client.id, source, false, now)
                    .await
                    .map_err(|e| refuse(&format!("the client's keys: {e}")))?;
                if !cert.key_in(&keys) {
                    return Err(refuse(
                        "the client certificate's key is not one of the client's registered keys",
                    ));
                }
            }
            _ => return Err(refuse(
                "the client is not registered for tls_client_auth or self_signed_tls_client_auth",
            )),
        }
        crate::logging::set_client(&client.id);
        Ok(client)
    }
}

impl App {
    /// RFC 8705 §3: the `x5t#S256` a token of `client` is bound to, when the
    /// client is registered for certificate-bound tokens; without a
    /// certificate such a client gets no token.
    pub(super) fn bind_certificate(
        &self,
        client: &Client,
        certificate: Option<&str>,
    ) -> Result<Option<String>, ServiceError> {
        if !client.tls_client_certificate_bound_access_tokens {
            return Ok(None);
        }
        match certificate {
            Some(t) => Ok(Some(t.to_string())),
            None => Err(ServiceError::invalid_request(
                "this client's tokens are certificate-bound: present its TLS client certificate",
            )),
        }
    }
}
