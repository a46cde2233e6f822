//! The OAuth 2.0 protocol as plain Rust: request decoding, client credentials,
//! and the client-credentials grant decision. No I/O; time comes in as `now`.

pub mod assertion;
pub mod cimd;
pub mod credentials;
pub mod dpop;
pub mod error;
pub mod exchange;
pub mod federation;
pub mod grant;
pub mod idjag;
pub mod introspection;
pub mod mtls;
pub mod params;
#[cfg(test)]
mod proptests;
pub mod request;
pub mod ssf;

pub use credentials::ClientCredentials;
pub use error::{OAuthCode, OAuthError};
pub use grant::{Grant, Policy, TokenRequest};
pub use params::Params;
