//! Fuzzes external (federation) tokens: the unverified issuer read that
//! picks the keys, and verification against an issuer's key set with every
//! claim check.
#![no_main]

use std::sync::OnceLock;

use jsonwebtoken::jwk::JwkSet;
use libfuzzer_sys::fuzz_target;
use tollgate::oauth::assertion::check_public_jwks;
use tollgate::oauth::federation::{unverified_issuer, verify};

fn keys() -> &'static JwkSet {
    static KEYS: OnceLock<JwkSet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        check_public_jwks(&serde_json::json!({"keys": [jwk]})).expect("a valid set")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(jwt) = std::str::from_utf8(data) else { return };
    let _ = unverified_issuer(jwt);
    let _ = verify(jwt, "https://issuer.test", keys(), 1_800_000_000);
});
