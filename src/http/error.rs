//! Service errors as HTTP: the status of each code, `WWW-Authenticate` on 401
//! and 403 (RFC 6750 §3), `Retry-After` and `RateLimit-*` on refusals, and
//! the one JSON body `{"error", "error_description"}` (RFC 6749 §5.2).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::service::error::{Challenge, ErrorCode, ServiceError};

/// The HTTP status that goes with a code.
pub fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl ResponseError for ServiceError {
    fn status_code(&self) -> StatusCode {
        // At a protected resource, a DPoP failure is a 401 with a DPoP
        // challenge (RFC 9449 §7.1); at the token endpoint it is a 400.
        if self.challenge == Some(Challenge::Dpop) {
            return StatusCode::UNAUTHORIZED;
        }
        status(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status_code());
        builder
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
        if self.status_code() == StatusCode::UNAUTHORIZED
            || self.code == ErrorCode::InsufficientScope
        {
            let value = match self.challenge.unwrap_or(Challenge::Bearer) {
                Challenge::Basic => r#"Basic realm="tollgate""#.to_string(),
                Challenge::Bearer => {
                    format!(r#"Bearer realm="tollgate", error="{}""#, self.code.as_str())
                }
                Challenge::Dpop => format!(
                    r#"DPoP realm="tollgate", error="{}", algs="{}""#,
                    self.code.as_str(),
                    crate::oauth::dpop::SIGNING_ALGS.join(" ")
                ),
            };
            if let Ok(value) = HeaderValue::from_str(&value) {
                builder.insert_header((header::WWW_AUTHENTICATE, value));
            }
        }
        if let Some(nonce) = &self.dpop_nonce {
            builder.insert_header(("DPoP-Nonce", nonce.as_str()));
        }
        if let Some(secs) = self.retry_after {
            builder.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(d) = self.rate_limit {
            builder
                .insert_header(("RateLimit-Limit", d.limit.to_string()))
                .insert_header(("RateLimit-Remaining", d.remaining.to_string()))
                .insert_header(("RateLimit-Reset", d.reset.max(1).to_string()));
        }
        builder.json(ErrorBody {
            error: self.code.as_str(),
            error_description: &self.description,
        })
    }
}

impl From<actix_web::error::BlockingError> for ServiceError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        ServiceError::internal(err)
    }
}
