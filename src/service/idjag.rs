//! The identity assertion JWT authorization grant (ID-JAG,
//! draft-ietf-oauth-identity-assertion-authz-grant) at the JWT bearer grant:
//! an authenticated client presents an enterprise identity provider's
//! assertion that a user lets it act for them at one resource. The issuer
//! must be a trusted federation issuer marked `id_jag`; the claims are
//! `oauth::idjag`'s to check; the `jti` is used once, fleet-wide and across
//! restarts. Every failure after client authentication is `invalid_grant`
//! naming the check.

use std::net::{IpAddr, Ipv4Addr};

use super::authenticator::AuthError;
use super::families::IssueError;
use super::issue::{Delegation, IssuedToken, Tokens};
use crate::oauth::grant::TokenRequest;
use crate::oauth::{idjag, ClientCredentials, OAuthError};
use crate::secret::SecretString;
use crate::store::{OneTime, OneTimeStore};

impl Tokens {
    /// RFC 7523 §2.1 with an ID-JAG: client authentication required, then
    /// the issuer's keys and trust for ID-JAGs, the claims, the `jti`, and
    /// a token for the user (`sub`) with the client as `client_id` and the
    /// ID-JAG's `resource` as audience.
    pub(super) async fn issue_for_id_jag(
        &self,
        creds: Option<&ClientCredentials>,
        assertion: &SecretString,
        ip: Option<IpAddr>,
        req: &TokenRequest,
        now: i64,
    ) -> Result<IssuedToken, IssueError> {
        let Some(creds) = creds else {
            return Err(IssueError::Client(AuthError::named(
                "an ID-JAG needs client authentication",
            )));
        };
        let client = self.auth.authenticate(Some(creds), ip, now).await?.client;
        crate::logging::set_client(&client.id);
        let refuse = |why: String| {
            log::info!("ID-JAG for client {} refused: {why}", client.id);
            self.auth.record_failure(
                "id_jag",
                Some(&client.id),
                ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                now,
            );
            IssueError::InvalidGrant(why.into())
        };
        let (token, fed) = match self.auth.verify_external(assertion.expose(), now).await? {
            Ok(t) => t,
            Err(r) => return Err(refuse(r.description.replace("assertion", "ID-JAG"))),
        };
        if !fed
            .issuers
            .iter()
            .any(|i| i.issuer == token.iss && i.id_jag)
        {
            return Err(refuse(
                "the ID-JAG's issuer is not trusted for ID-JAGs".into(),
            ));
        }
        let jag = idjag::check(&token, &self.config.issuer, &client, now)
            .map_err(|e: OAuthError| refuse(e.description.into_owned()))?;
        let grant = idjag::decide(&client, &jag, req, &self.policy())?;
        // Used once, per issuer, across restarts and instances (like a
        // client assertion's jti), once every other check has passed.
        if !self
            .store
            .use_once(
                OneTime::FederationToken { issuer: &token.iss },
                &jag.jti,
                crate::oauth::assertion::remember_until(jag.exp),
                now,
            )
            .await?
        {
            return Err(refuse("the ID-JAG was used before".into()));
        }
        log::info!(
            "ID-JAG from {:?} for sub {:?} issued to client {}",
            token.iss,
            jag.sub,
            client.id
        );
        let delegation = Delegation {
            sub: jag.sub,
            act: None,
            origin: Vec::new(),
        };
        self.issue_grant(&client, &grant, req, now, None, Some(delegation))
            .await
    }
}
