//! The protocol's own error: an RFC-named code and a description, with no
//! HTTP in it (the edge picks the status; see `crate::error`).

use std::borrow::Cow;

/// The codes `oauth/` can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthCode {
    /// RFC 6749 §5.2: missing, repeated or malformed parameter, or more than
    /// one authentication method.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed.
    InvalidClient,
    /// RFC 6749 §5.2: the grant type is not supported.
    UnsupportedGrantType,
    /// RFC 6749 §5.2: the client may not use this grant (a token exchange
    /// without an exchange policy).
    UnauthorizedClient,
    /// RFC 6749 §5.2, RFC 7523 §3.1: the assertion grant is invalid.
    InvalidGrant,
    /// RFC 6749 §5.2: the scope is malformed or exceeds the client's.
    InvalidScope,
    /// RFC 8707 §2: the resource or audience is not allowed.
    InvalidTarget,
    /// The body is in an encoding this endpoint does not read (RFC 6749
    /// §4.4.2 names form encoding; JSON is accepted too).
    UnsupportedMediaType,
    /// A record the decision depends on is malformed; the description is for
    /// the log, never for the caller.
    ServerError,
}

/// An error of the protocol layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The code.
    pub code: OAuthCode,
    /// Text for the developer calling the API (for `ServerError`, for the log).
    pub description: Cow<'static, str>,
}

impl OAuthError {
    /// An error with a code and a description.
    pub fn new(code: OAuthCode, description: impl Into<Cow<'static, str>>) -> Self {
        OAuthError {
            code,
            description: description.into(),
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthCode::InvalidRequest, description)
    }

    /// The one `invalid_client` for every authentication failure (RFC 6749 §5.2).
    pub fn invalid_client() -> Self {
        Self::new(OAuthCode::InvalidClient, "client authentication failed")
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.description)
    }
}

impl std::error::Error for OAuthError {}
