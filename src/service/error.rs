//! The use cases' error: an RFC-named code, a description that is safe to
//! show, and what a refusal tells the caller (when to retry, the limit that
//! refused it). No HTTP here: `crate::http::error` picks status and headers.
//!
//! Error codes follow RFC 6749 §5.2 (token endpoint), RFC 6750 §3.1 (bearer
//! tokens), RFC 7009 §2.2.1 (revocation) and RFC 8707 §2 (`invalid_target`).
//! Every error is the JSON body `{"error": "<code>", "error_description": "<text>"}`.

use std::borrow::Cow;
use std::fmt;

/// The machine-readable error codes Tollgate answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// RFC 6749 §5.2: the request is missing a required parameter, includes an
    /// unsupported parameter value, repeats a parameter, includes multiple
    /// credentials, uses more than one mechanism for authenticating the client,
    /// or is otherwise malformed.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed (unknown client, no client
    /// authentication included, or unsupported authentication method).
    InvalidClient,
    /// RFC 6749 §5.2: the client is not authorized to use this grant type.
    UnauthorizedClient,
    /// RFC 9449 §5, §7.1: the DPoP proof is missing where required or
    /// invalid.
    InvalidDpopProof,
    /// RFC 9449 §8: the proof must carry the server's nonce, sent in the
    /// `DPoP-Nonce` header.
    UseDpopNonce,
    /// RFC 6749 §5.2, RFC 7523 §3.1: the authorization grant (a JWT bearer
    /// assertion) is invalid, expired, replayed or matches no rule.
    InvalidGrant,
    /// RFC 6749 §5.2: the grant type is not supported by the authorization server.
    UnsupportedGrantType,
    /// RFC 6749 §5.2: the requested scope is invalid, unknown, malformed, or
    /// exceeds the scope granted to the client.
    InvalidScope,
    /// RFC 8707 §2: the requested resource is invalid, missing, unknown, or
    /// malformed.
    InvalidTarget,
    /// RFC 6750 §3.1: the access token provided is expired, revoked, malformed,
    /// or invalid for other reasons.
    InvalidToken,
    /// RFC 6750 §3.1: the request requires higher privileges than provided by
    /// the access token.
    InsufficientScope,
    /// RFC 7009 §2.2.1: the server does not support revocation of this token type.
    UnsupportedTokenType,
    /// RFC 6749 §4.1.2.1: the authorization server does not support obtaining
    /// an authorization code (or any response type) this way.
    UnsupportedResponseType,
    /// The resource does not exist.
    NotFound,
    /// The request conflicts with the current state (a limit or a duplicate).
    Conflict,
    /// The HTTP method is not allowed on this path.
    MethodNotAllowed,
    /// The request body is larger than the configured limit.
    PayloadTooLarge,
    /// The request body has a content type this endpoint does not accept.
    UnsupportedMediaType,
    /// The caller has been refused for sending too many requests.
    TooManyRequests,
    /// The client took too long to send its request.
    RequestTimeout,
    /// RFC 6749 §5.2 `server_error`-like: an internal failure; the cause is logged, never sent.
    ServerError,
    /// RFC 6749 §4.1.2.1: the server is temporarily unable to handle the request.
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The value of the `error` member.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// Which authentication scheme a 401 challenges for (RFC 7235 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// `WWW-Authenticate: Basic` — client authentication at the token endpoint (RFC 6749 §5.2).
    Basic,
    /// `WWW-Authenticate: Bearer` — a protected resource (RFC 6750 §3).
    Bearer,
    /// `WWW-Authenticate: DPoP` — a protected resource that takes
    /// DPoP-bound tokens (RFC 9449 §7.1), with the error and the algorithms.
    Dpop,
}

/// An error answered to the caller. Its description is always safe to show:
/// it never contains a secret, a key or a token.
#[derive(Debug, Clone)]
pub struct ServiceError {
    /// The error code.
    pub code: ErrorCode,
    /// Human-readable text for the developer calling the API.
    pub description: Cow<'static, str>,
    /// The challenge sent with a 401; defaults to `Basic` for `invalid_client`
    /// and `Bearer` for `invalid_token`.
    pub challenge: Option<Challenge>,
    /// Seconds for a `Retry-After` header (429 and 503).
    pub retry_after: Option<u64>,
    /// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` of a refusal.
    pub rate_limit: Option<crate::limits::Decision>,
    /// A fresh server nonce for the `DPoP-Nonce` header (RFC 9449 §8).
    pub dpop_nonce: Option<String>,
}

impl ServiceError {
    /// An error with a code and a description.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        let challenge = match code {
            ErrorCode::InvalidClient => Some(Challenge::Basic),
            ErrorCode::InvalidToken | ErrorCode::InsufficientScope => Some(Challenge::Bearer),
            _ => None,
        };
        ServiceError {
            code,
            description: description.into(),
            challenge,
            retry_after: None,
            rate_limit: None,
            dpop_nonce: None,
        }
    }

    /// 429 with `Retry-After` and the `RateLimit-*` headers of `decision`.
    pub fn too_many_requests(what: &str, decision: crate::limits::Decision) -> Self {
        let mut e = Self::new(
            ErrorCode::TooManyRequests,
            format!("{what}; retry in {} seconds", decision.reset.max(1)),
        );
        e.retry_after = Some(decision.reset.max(1));
        e.rate_limit = Some(decision);
        e
    }

    /// `invalid_request` (400).
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `not_found` (404).
    pub fn not_found(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotFound, description)
    }

    /// An internal failure: the cause is logged here and the caller only sees
    /// `server_error`.
    pub fn internal(cause: impl fmt::Display) -> Self {
        log::error!("internal error: {cause}");
        Self::new(ErrorCode::ServerError, "internal server error")
    }

    /// Replaces the challenge scheme sent with a 401.
    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = Some(challenge);
        self
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for ServiceError {}

/// Refuses request text with a NUL character, which no stored value holds
/// and PostgreSQL cannot compare: the same 400 on every backend.
pub fn no_nul(value: &str, what: &'static str) -> Result<(), ServiceError> {
    if value.contains('\0') {
        return Err(ServiceError::invalid_request(format!(
            "{what} contains a NUL character"
        )));
    }
    Ok(())
}

impl From<crate::store::StoreError> for ServiceError {
    fn from(err: crate::store::StoreError) -> Self {
        match err {
            crate::store::StoreError::Unavailable(cause) => {
                log::error!("database unavailable: {cause}");
                let mut e = ServiceError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the database is unreachable; retry shortly",
                );
                e.retry_after = Some(1);
                e
            }
            crate::store::StoreError::NotWritable(cause) => {
                log::error!("database not writable: {cause}");
                let mut e = ServiceError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the database cannot be written now; retry shortly",
                );
                e.retry_after = Some(5);
                e
            }
            crate::store::StoreError::Unstorable(cause) => {
                log::debug!("refused unstorable text: {cause}");
                ServiceError::invalid_request("a value contains a NUL character")
            }
            other => ServiceError::internal(other),
        }
    }
}

impl From<crate::oauth::OAuthCode> for ErrorCode {
    /// The same code: `oauth/`'s codes are a subset of these.
    fn from(code: crate::oauth::OAuthCode) -> Self {
        use crate::oauth::OAuthCode as O;
        match code {
            O::InvalidRequest => ErrorCode::InvalidRequest,
            O::InvalidClient => ErrorCode::InvalidClient,
            O::UnsupportedGrantType => ErrorCode::UnsupportedGrantType,
            O::UnauthorizedClient => ErrorCode::UnauthorizedClient,
            O::InvalidGrant => ErrorCode::InvalidGrant,
            O::InvalidScope => ErrorCode::InvalidScope,
            O::InvalidTarget => ErrorCode::InvalidTarget,
            O::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            O::ServerError => ErrorCode::ServerError,
        }
    }
}

impl From<crate::oauth::OAuthError> for ServiceError {
    fn from(err: crate::oauth::OAuthError) -> Self {
        match ErrorCode::from(err.code) {
            ErrorCode::ServerError => ServiceError::internal(err.description),
            code => ServiceError::new(code, err.description),
        }
    }
}
