//! Fuzzes token-request decoding: form and JSON bodies into parameters, then
//! the grant type, scope, audience and resource checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::oauth::grant::{check_grant_type, TokenRequest};
use tollgate::oauth::params::{BodyKind, Params};

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else { return };
    let kind = if first & 1 == 0 { BodyKind::Form } else { BodyKind::Json };
    if let Ok(params) = Params::decode(kind, body) {
        let _ = check_grant_type(&params);
        let _ = TokenRequest::from_params(&params);
    }
});
