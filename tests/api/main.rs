//! Integration tests: the real server on 127.0.0.1:0, one test binary.

mod admin;
mod agents;
mod claims;
mod console;
mod docs;
mod dpop;
mod examples;
mod exchange;
mod federation;
mod fleet;
mod hardening;
mod helpers;
mod introspection;
mod logs;
mod mtls;
mod pkcs11;
mod private_key_jwt;
mod review;
mod robustness;
mod ssf;
mod tls;
mod token;
mod traces;
mod verify;
