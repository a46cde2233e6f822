//! Tollgate: an OAuth 2.0 client-credentials authorization server that issues
//! JWT access tokens (RFC 9068) for client secrets and API keys.
#![deny(unsafe_code)]
#![warn(unreachable_pub)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
pub mod config;
pub mod domain;
pub mod fetch;
pub mod http;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod oauth;
pub mod secret;
pub mod service;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod token;
