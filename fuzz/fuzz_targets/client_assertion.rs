//! Fuzzes client assertions (RFC 7523 §3): the one-time read, the claim
//! checks that need no key, and the signature against a registered set.
#![no_main]

use std::sync::OnceLock;

use jsonwebtoken::jwk::JwkSet;
use libfuzzer_sys::fuzz_target;
use tollgate::oauth::assertion::{check_public_jwks, claimed_client, Expected, UnverifiedAssertion};

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
    let _ = claimed_client(jwt);
    let audiences = ["https://tollgate.test".to_string()];
    let expected = Expected {
        client_id: "tgc_x",
        audiences: &audiences,
        now: 1_800_000_000,
        max_lifetime: 3600,
    };
    if let Ok(a) = UnverifiedAssertion::parse(jwt) {
        let _ = a.check(&expected);
        let _ = a.verify_signature(keys());
    }
});
