//! Fuzzes DPoP proof checking (RFC 9449 §4.3): the JWS reader, the embedded
//! JWK, its thumbprint, and every claim check, with and without nonces and
//! an access token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::oauth::dpop::{verify, Expected};

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else { return };
    let nonces = ["n1".to_string()];
    for (nonces, token) in [(None, None), (Some(&nonces[..]), Some("eyJ.x.y"))] {
        let _ = verify(
            proof,
            &Expected {
                method: "POST",
                url: "https://tollgate.test/oauth/token",
                now: 1_800_000_000,
                window: 60,
                nonces,
                access_token: token,
            },
        );
    }
});
