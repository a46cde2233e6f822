//! The use cases' errors by family: issuance, introspection (with the
//! authorization of callers by their tokens), administration, and DPoP
//! proofs, beside client authentication's `AuthError`. Each names what went
//! wrong as its own variants; the edge's `ServiceError` is made from each
//! here, in one place per family, and `http::error` gives it its status,
//! body and headers. A fault (`Internal`) is logged once, when it becomes
//! the edge's error.

use std::borrow::Cow;

use super::authenticator::AuthError;
use super::error::{Challenge, ErrorCode, ServiceError};
use crate::limits::Decision;
use crate::oauth::OAuthError;
use crate::store::StoreError;

/// Why a DPoP proof was refused (RFC 9449 §4.3, §8, §11.1).
#[derive(Debug)]
pub enum ProofError {
    /// `invalid_dpop_proof`, naming the check.
    Invalid(Cow<'static, str>),
    /// `use_dpop_nonce`: the nonce is missing or stale; `nonce` is the one
    /// to use (RFC 9449 §8).
    UseNonce {
        /// Why.
        why: String,
        /// The current nonce, for the `DPoP-Nonce` header.
        nonce: Option<String>,
    },
    /// The store could not record the proof's `jti`.
    Store(StoreError),
}

/// Why a token was not issued.
#[derive(Debug)]
pub enum IssueError {
    /// The client did not authenticate (RFC 6749 §5.2 `invalid_client`).
    Client(AuthError),
    /// The request, as RFC 6749 §5.2 names it: `invalid_request`,
    /// `invalid_scope`, `invalid_target`, `unauthorized_client`,
    /// `unsupported_grant_type`.
    Request(OAuthError),
    /// The grant (an assertion, an API key's state) is not good: RFC 6749
    /// §5.2 `invalid_grant`.
    InvalidGrant(Cow<'static, str>),
    /// An API key that is unknown, expired or revoked (`invalid_client`
    /// with a Bearer challenge: the key is the credential).
    InvalidApiKey,
    /// The DPoP proof.
    Proof(ProofError),
    /// The client's token quota is spent (429 with `Retry-After`).
    Quota(Decision),
    /// The store could not answer or write.
    Store(StoreError),
    /// No key can sign now: none is active here, or the PKCS#11 token that
    /// holds it is unavailable (503 `temporarily_unavailable` with
    /// `Retry-After`; never a software key instead).
    Signing(String),
    /// A fault.
    Internal(String),
}

/// Why an introspection, a revocation or a caller's token was refused.
#[derive(Debug)]
pub enum IntrospectionError {
    /// The caller did not authenticate as a client, or lacks
    /// `tollgate:introspect` (`invalid_client`).
    Client(AuthError),
    /// RFC 6750 §3.1 `invalid_token`: missing, inactive, another audience,
    /// or presented the wrong way for its binding; `dpop` asks for a DPoP
    /// challenge (RFC 9449 §7.1).
    InvalidToken {
        /// Why, safe to show.
        why: Cow<'static, str>,
        /// Whether the challenge is `DPoP` rather than `Bearer`.
        dpop: bool,
    },
    /// RFC 6750 §3.1 `insufficient_scope` (403).
    InsufficientScope(Cow<'static, str>),
    /// A DPoP proof at a protected resource (401 with a DPoP challenge).
    Proof(ProofError),
    /// The store could not answer or write.
    Store(StoreError),
}

/// Why an administrative operation was refused.
#[derive(Debug)]
pub enum AdminError {
    /// The input is not valid (400 `invalid_request`), naming the field.
    Invalid(Cow<'static, str>),
    /// A scope the operation needs is not the client's (400
    /// `invalid_scope`).
    InvalidScope(Cow<'static, str>),
    /// Nothing by that id (404).
    NotFound(Cow<'static, str>),
    /// It conflicts with what exists: a taken name, a limit, a state (409).
    Conflict(Cow<'static, str>),
    /// The store could not answer or write.
    Store(StoreError),
    /// A fault (a key file could not be written).
    Internal(String),
}

impl From<StoreError> for ProofError {
    fn from(e: StoreError) -> Self {
        ProofError::Store(e)
    }
}
impl From<StoreError> for IssueError {
    fn from(e: StoreError) -> Self {
        IssueError::Store(e)
    }
}
impl From<AuthError> for IssueError {
    fn from(e: AuthError) -> Self {
        IssueError::Client(e)
    }
}
impl From<OAuthError> for IssueError {
    fn from(e: OAuthError) -> Self {
        IssueError::Request(e)
    }
}
impl From<ProofError> for IssueError {
    fn from(e: ProofError) -> Self {
        IssueError::Proof(e)
    }
}
impl From<StoreError> for IntrospectionError {
    fn from(e: StoreError) -> Self {
        IntrospectionError::Store(e)
    }
}
impl From<AuthError> for IntrospectionError {
    fn from(e: AuthError) -> Self {
        IntrospectionError::Client(e)
    }
}
impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Store(e)
    }
}

impl IssueError {
    /// The RFC 6749 §5.2 (or RFC 9449, RFC 6585) code it answers with,
    /// for the metrics' outcome label.
    pub fn code(&self) -> &'static str {
        match self {
            IssueError::Client(AuthError::Throttled(_)) | IssueError::Quota(_) => {
                "too_many_requests"
            }
            IssueError::Client(AuthError::Store(e))
            | IssueError::Store(e)
            | IssueError::Proof(ProofError::Store(e)) => match e {
                StoreError::Unavailable(_) | StoreError::NotWritable(_) => {
                    "temporarily_unavailable"
                }
                StoreError::Unstorable(_) => "invalid_request",
                _ => "server_error",
            },
            IssueError::Client(_) | IssueError::InvalidApiKey => "invalid_client",
            IssueError::Request(e) => ErrorCode::from(e.code).as_str(),
            IssueError::InvalidGrant(_) => "invalid_grant",
            IssueError::Proof(ProofError::UseNonce { .. }) => "use_dpop_nonce",
            IssueError::Proof(ProofError::Invalid(_)) => "invalid_dpop_proof",
            IssueError::Signing(_) => "temporarily_unavailable",
            IssueError::Internal(_) => "server_error",
        }
    }

    /// `invalid_request` naming the problem.
    pub fn invalid_request(why: impl Into<Cow<'static, str>>) -> IssueError {
        IssueError::Request(OAuthError::invalid_request(why))
    }
}

impl AdminError {
    /// 400 `invalid_request` naming the field.
    pub fn invalid(why: impl Into<Cow<'static, str>>) -> AdminError {
        AdminError::Invalid(why.into())
    }
    /// 400 `invalid_scope`.
    pub fn invalid_scope(why: impl Into<Cow<'static, str>>) -> AdminError {
        AdminError::InvalidScope(why.into())
    }
    /// 404.
    pub fn not_found(why: impl Into<Cow<'static, str>>) -> AdminError {
        AdminError::NotFound(why.into())
    }
    /// 409.
    pub fn conflict(why: impl Into<Cow<'static, str>>) -> AdminError {
        AdminError::Conflict(why.into())
    }
}

impl IntrospectionError {
    /// `invalid_token` with a Bearer challenge.
    pub fn invalid_token(why: impl Into<Cow<'static, str>>) -> IntrospectionError {
        IntrospectionError::InvalidToken {
            why: why.into(),
            dpop: false,
        }
    }
}

// The edge's error, one conversion per family.

impl From<ProofError> for ServiceError {
    fn from(e: ProofError) -> Self {
        match e {
            ProofError::Invalid(why) => ServiceError::new(ErrorCode::InvalidDpopProof, why),
            ProofError::UseNonce { why, nonce } => {
                let mut err = ServiceError::new(ErrorCode::UseDpopNonce, why);
                err.dpop_nonce = nonce;
                err
            }
            ProofError::Store(e) => e.into(),
        }
    }
}

impl From<IssueError> for ServiceError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::Client(e) => e.into(),
            IssueError::Request(e) => e.into(),
            IssueError::InvalidGrant(why) => ServiceError::new(ErrorCode::InvalidGrant, why),
            IssueError::InvalidApiKey => ServiceError::new(
                ErrorCode::InvalidClient,
                "invalid, expired or revoked API key",
            )
            .with_challenge(Challenge::Bearer),
            IssueError::Proof(e) => e.into(),
            IssueError::Quota(d) => ServiceError::too_many_requests("token quota exceeded", d),
            IssueError::Store(e) => e.into(),
            IssueError::Signing(cause) => {
                // The token's failure is logged once where it happens.
                log::debug!("cannot sign: {cause}");
                let mut e = ServiceError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the signing key cannot sign now; try again shortly",
                );
                e.retry_after = Some(1);
                e
            }
            IssueError::Internal(cause) => ServiceError::internal(cause),
        }
    }
}

impl From<IntrospectionError> for ServiceError {
    fn from(e: IntrospectionError) -> Self {
        match e {
            IntrospectionError::Client(e) => e.into(),
            IntrospectionError::InvalidToken { why, dpop } => {
                let err = ServiceError::new(ErrorCode::InvalidToken, why);
                if dpop {
                    err.with_challenge(Challenge::Dpop)
                } else {
                    err
                }
            }
            IntrospectionError::InsufficientScope(why) => {
                ServiceError::new(ErrorCode::InsufficientScope, why)
            }
            IntrospectionError::Proof(e) => ServiceError::from(e).with_challenge(Challenge::Dpop),
            IntrospectionError::Store(e) => e.into(),
        }
    }
}

impl From<AdminError> for ServiceError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(why) => ServiceError::invalid_request(why),
            AdminError::InvalidScope(why) => ServiceError::new(ErrorCode::InvalidScope, why),
            AdminError::NotFound(why) => ServiceError::not_found(why),
            AdminError::Conflict(why) => ServiceError::new(ErrorCode::Conflict, why),
            AdminError::Store(e) => e.into(),
            AdminError::Internal(cause) => ServiceError::internal(cause),
        }
    }
}

impl std::fmt::Display for AdminError {
    /// The edge's text of it (the command line prints this).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::Invalid(w)
            | AdminError::InvalidScope(w)
            | AdminError::NotFound(w)
            | AdminError::Conflict(w) => f.write_str(w),
            AdminError::Store(e) => write!(f, "{e}"),
            AdminError::Internal(c) => write!(f, "internal error: {c}"),
        }
    }
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProofError::Invalid(w) => write!(f, "invalid_dpop_proof: {w}"),
            ProofError::UseNonce { why, .. } => write!(f, "use_dpop_nonce: {why}"),
            ProofError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::fmt::Display for IssueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IssueError::Client(e) => write!(f, "invalid_client: {e}"),
            IssueError::Request(e) => {
                write!(f, "{}: {}", ErrorCode::from(e.code).as_str(), e.description)
            }
            IssueError::InvalidGrant(w) => write!(f, "invalid_grant: {w}"),
            IssueError::InvalidApiKey => f.write_str("invalid_client: invalid API key"),
            IssueError::Proof(e) => write!(f, "{e}"),
            IssueError::Quota(_) => f.write_str("too_many_requests: token quota exceeded"),
            IssueError::Store(e) => write!(f, "{e}"),
            IssueError::Signing(c) => write!(f, "temporarily_unavailable: {c}"),
            IssueError::Internal(c) => write!(f, "internal error: {c}"),
        }
    }
}

impl std::fmt::Display for IntrospectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntrospectionError::Client(e) => write!(f, "invalid_client: {e}"),
            IntrospectionError::InvalidToken { why, .. } => write!(f, "invalid_token: {why}"),
            IntrospectionError::InsufficientScope(w) => write!(f, "insufficient_scope: {w}"),
            IntrospectionError::Proof(e) => write!(f, "{e}"),
            IntrospectionError::Store(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_becomes_one_edge_error() {
        let d = Decision {
            allowed: false,
            limit: 4,
            remaining: 0,
            reset: 30,
            refusals: 1,
        };
        let e = ServiceError::from(IssueError::Quota(d));
        assert_eq!(
            (e.code, e.retry_after),
            (ErrorCode::TooManyRequests, Some(30))
        );
        assert_eq!(IssueError::Quota(d).code(), "too_many_requests");
        let e = ServiceError::from(IssueError::InvalidApiKey);
        assert_eq!(e.code, ErrorCode::InvalidClient);
        assert_eq!(e.challenge, Some(Challenge::Bearer));
        let nonce = IssueError::Proof(ProofError::UseNonce {
            why: "stale".into(),
            nonce: Some("n1".into()),
        });
        assert_eq!(nonce.code(), "use_dpop_nonce");
        let e = ServiceError::from(nonce);
        assert_eq!(e.dpop_nonce.as_deref(), Some("n1"));
        // At a protected resource a proof's refusal asks for DPoP.
        let e = ServiceError::from(IntrospectionError::Proof(ProofError::Invalid("x".into())));
        assert_eq!(
            (e.code, e.challenge),
            (ErrorCode::InvalidDpopProof, Some(Challenge::Dpop))
        );
        let e = ServiceError::from(IntrospectionError::InsufficientScope("s".into()));
        assert_eq!(e.code, ErrorCode::InsufficientScope);
        let e = ServiceError::from(AdminError::conflict("taken"));
        assert_eq!((e.code, &*e.description), (ErrorCode::Conflict, "taken"));
        let e = ServiceError::from(AdminError::from(StoreError::Unavailable("down".into())));
        assert_eq!(
            (e.code, e.retry_after),
            (ErrorCode::TemporarilyUnavailable, Some(1))
        );
        assert_eq!(
            IssueError::Client(AuthError::failed()).code(),
            "invalid_client"
        );
    }
}
