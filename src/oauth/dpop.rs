//! DPoP (RFC 9449) as pure functions: the checks of a proof (§4.3), the JWK
//! thumbprint a bound token carries (RFC 7638), the access-token hash `ath`
//! (§4.2), and stateless server nonces (§8) derived from a shared secret and
//! the time. The `jti` replay check is the caller's, since it needs the
//! store.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use crate::token::jws::{Jws, JwsError};

/// The algorithms accepted on proofs (§4.3 check 5: asymmetric only), with
/// RFC 9864's `Ed25519` beside `EdDSA`.
pub const SIGNING_ALGS: &[&str] = crate::token::jws::ACCEPTED_ALGS;

/// Longest proof considered, in bytes.
pub const MAX_PROOF_LEN: usize = 8192;

/// What a proof is checked against.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The endpoint's URL as built from the issuer (`htu`), without query or
    /// fragment.
    pub url: &'a str,
    /// Now, in Unix seconds.
    pub now: i64,
    /// How far `iat` may lie from now, either way.
    pub window: i64,
    /// The nonces accepted now, when nonces are required.
    pub nonces: Option<&'a [String]>,
    /// The access token presented with the proof, whose hash `ath` must be.
    pub access_token: Option<&'a str>,
}

/// A valid proof: the key's thumbprint and the replay key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 SHA-256 thumbprint of the proof's key (`cnf.jkt`).
    pub jkt: String,
    /// `jti`.
    pub jti: String,
    /// `iat`.
    pub iat: i64,
}

/// Why a proof is refused; each names the check. The caller answers
/// `400 invalid_dpop_proof` (`use_dpop_nonce` for [`DpopError::Nonce`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// Not one JWS, or unreadable.
    #[error("the DPoP proof is not a signed JWT")]
    Malformed,
    /// `typ` is not `dpop+jwt`.
    #[error("the DPoP proof's typ must be dpop+jwt")]
    Type,
    /// `alg` is not accepted.
    #[error(
        "the DPoP proof's alg is not one Tollgate accepts: ES256, EdDSA, Ed25519, RS256 or PS256"
    )]
    Algorithm,
    /// The header has `crit` (RFC 7515 §4.1.11).
    #[error("the DPoP proof's header has crit, naming an extension Tollgate does not understand")]
    Critical,
    /// `jwk` is missing, holds a private key, or does not fit `alg`.
    #[error("the DPoP proof's jwk must be a public key that fits its alg")]
    Key,
    /// The signature does not verify with `jwk`.
    #[error("the DPoP proof's signature does not verify with its jwk")]
    Signature,
    /// `htm` is not the request's method.
    #[error("the DPoP proof's htm is not the request's method")]
    Method,
    /// `htu` is not the endpoint's URL.
    #[error("the DPoP proof's htu is not this endpoint's URL")]
    Url,
    /// `iat` missing or outside the window.
    #[error("the DPoP proof's iat is missing or not within {0} seconds of now")]
    Time(i64),
    /// `jti` missing or too long.
    #[error("the DPoP proof needs a jti of 1 to 256 characters")]
    Jti,
    /// `nonce` missing or not current.
    #[error("the DPoP proof must carry the server's current nonce")]
    Nonce,
    /// `ath` missing or not the access token's hash.
    #[error("the DPoP proof's ath is not the hash of the access token")]
    AccessTokenHash,
}

#[derive(Deserialize)]
struct ProofClaims {
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<serde_json::Value>,
    jti: Option<String>,
    nonce: Option<String>,
    ath: Option<String>,
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK: its required members,
/// lexicographically ordered, without white space, hashed and base64url
/// encoded. `None` for a key type without a thumbprint here.
pub fn thumbprint(jwk: &serde_json::Value) -> Option<String> {
    let member = |name: &str| -> Option<String> {
        let v = jwk.get(name)?.as_str()?;
        serde_json::to_string(v).ok()
    };
    let canonical = match jwk.get("kty")?.as_str()? {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            member("crv")?,
            member("x")?,
            member("y")?
        ),
        "OKP" => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            member("crv")?,
            member("x")?
        ),
        "RSA" => format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            member("e")?,
            member("n")?
        ),
        _ => return None,
    };
    Some(B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    )))
}

/// `ath`: the base64url SHA-256 of an access token (§4.2).
pub fn access_token_hash(token: &str) -> String {
    B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

/// The URL a proof's `htu` names, without query and fragment (§4.3 check
/// 9: "ignoring any query and fragment parts").
pub fn without_query(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// Checks a DPoP proof (RFC 9449 §4.3): one JWS with `typ` `dpop+jwt`, an
/// accepted `alg`, a public `jwk` that verifies the signature, `htm` and
/// `htu` of this request, `iat` within the window, a `jti`, and, when asked
/// for, the current `nonce` and the access token's `ath`.
pub fn verify(proof: &str, e: &Expected<'_>) -> Result<Proof, DpopError> {
    if proof.len() > MAX_PROOF_LEN || proof.split('.').count() != 3 {
        return Err(DpopError::Malformed);
    }
    let jws = Jws::parse(proof).map_err(|e| match e {
        JwsError::Malformed => DpopError::Malformed,
        JwsError::Algorithm => DpopError::Algorithm,
        JwsError::Critical => DpopError::Critical,
    })?;
    if jws.text("typ") != Some("dpop+jwt") {
        return Err(DpopError::Type);
    }
    let alg = jws.alg;
    let raw_jwk = jws.header.get("jwk").ok_or(DpopError::Key)?;
    if !raw_jwk.is_object()
        || super::assertion::PRIVATE_MEMBERS
            .iter()
            .any(|m| raw_jwk.get(*m).is_some())
    {
        return Err(DpopError::Key);
    }
    let kty_fits = matches!(
        (raw_jwk.get("kty").and_then(|k| k.as_str()), alg),
        (Some("EC"), Algorithm::ES256)
            | (Some("OKP"), Algorithm::EdDSA)
            | (Some("RSA"), Algorithm::RS256 | Algorithm::PS256)
    );
    let crv = raw_jwk.get("crv").and_then(|c| c.as_str());
    let curve_fits = match alg {
        Algorithm::ES256 => crv == Some("P-256"),
        Algorithm::EdDSA => crv == Some("Ed25519"),
        _ => true,
    };
    if !kty_fits || !curve_fits {
        return Err(DpopError::Key);
    }
    // A key's own `alg` in RFC 9864's name reads as the polymorphic one.
    let jwk_value = crate::token::jws::with_polymorphic_alg(raw_jwk.clone());
    let jwk: Jwk = serde_json::from_value(jwk_value).map_err(|_| DpopError::Key)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| DpopError::Key)?;
    let jkt = thumbprint(raw_jwk).ok_or(DpopError::Key)?;
    if !jws.verified_by(&key) {
        return Err(DpopError::Signature);
    }
    let claims: ProofClaims = jws.claims().ok_or(DpopError::Malformed)?;
    if claims.htm.as_deref() != Some(e.method) {
        return Err(DpopError::Method);
    }
    if claims.htu.as_deref().map(without_query) != Some(without_query(e.url)) {
        return Err(DpopError::Url);
    }
    let iat = super::assertion::seconds(&claims.iat)
        .map_err(|_| DpopError::Time(e.window))?
        .ok_or(DpopError::Time(e.window))?;
    if (iat - e.now).abs() > e.window {
        return Err(DpopError::Time(e.window));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(DpopError::Jti)?;
    if let Some(nonces) = e.nonces {
        if !claims.nonce.as_ref().is_some_and(|n| nonces.contains(n)) {
            return Err(DpopError::Nonce);
        }
    }
    if let Some(token) = e.access_token {
        if claims.ath.as_deref() != Some(access_token_hash(token).as_str()) {
            return Err(DpopError::AccessTokenHash);
        }
    }
    Ok(Proof { jkt, jti, iat })
}

/// The server nonce of time step `step` (§8): an HMAC of the step under the
/// fleet's shared secret, so every instance issues and accepts the same
/// nonces without talking to each other.
pub fn nonce(secret: &[u8], step: i64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, format!("dpop-nonce:{step}").as_bytes());
    B64.encode(&tag.as_ref()[..18])
}

/// The nonces accepted at `now`: the current step's and the previous one's,
/// so a nonce stays good for at least one whole step.
pub fn current_nonces(secret: &[u8], now: i64, step_seconds: i64) -> [String; 2] {
    let step = now.div_euclid(step_seconds.max(1));
    [nonce(secret, step), nonce(secret, step - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const URL: &str = "https://as.example/oauth/token";

    fn key() -> (EncodingKey, serde_json::Value) {
        use ring::signature::KeyPair;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk =
            json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(pair.public_key().as_ref())});
        (EncodingKey::from_ed_der(pkcs8.as_ref()), jwk)
    }

    fn proof(
        k: &EncodingKey,
        jwk: &serde_json::Value,
        typ: &str,
        claims: serde_json::Value,
    ) -> String {
        let mut h = Header::new(Algorithm::EdDSA);
        h.typ = Some(typ.into());
        h.jwk = Some(serde_json::from_value(jwk.clone()).unwrap());
        jsonwebtoken::encode(&h, &claims, k).unwrap()
    }

    fn claims() -> serde_json::Value {
        json!({"htm": "POST", "htu": URL, "iat": NOW, "jti": "p1"})
    }

    fn expected() -> Expected<'static> {
        Expected {
            method: "POST",
            url: URL,
            now: NOW,
            window: 60,
            nonces: None,
            access_token: None,
        }
    }

    #[test]
    fn the_rfc_7638_example_thumbprint() {
        // RFC 7638 §3.1.
        let jwk = json!({"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(
            thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn a_valid_proof_passes_and_each_check_refuses() {
        let (k, jwk) = key();
        let p = verify(&proof(&k, &jwk, "dpop+jwt", claims()), &expected()).unwrap();
        assert_eq!(p.jkt, thumbprint(&jwk).unwrap());
        assert_eq!((p.jti.as_str(), p.iat), ("p1", NOW));
        // A query in htu is ignored (§4.3 check 9).
        let mut c = claims();
        c["htu"] = json!(format!("{URL}?x=1"));
        assert!(verify(&proof(&k, &jwk, "dpop+jwt", c), &expected()).is_ok());

        let refused = |typ: &str, change: &dyn Fn(&mut serde_json::Value), want: DpopError| {
            let mut c = claims();
            change(&mut c);
            assert_eq!(
                verify(&proof(&k, &jwk, typ, c), &expected()),
                Err(want.clone()),
                "{want}"
            );
        };
        refused("JWT", &|_| {}, DpopError::Type);
        refused("dpop+jwt", &|c| c["htm"] = json!("GET"), DpopError::Method);
        refused(
            "dpop+jwt",
            &|c| c["htu"] = json!("https://as.example/oauth/introspect"),
            DpopError::Url,
        );
        refused(
            "dpop+jwt",
            &|c| c["iat"] = json!(NOW - 61),
            DpopError::Time(60),
        );
        refused(
            "dpop+jwt",
            &|c| c["iat"] = json!(NOW + 61),
            DpopError::Time(60),
        );
        refused(
            "dpop+jwt",
            &|c| {
                c.as_object_mut().unwrap().remove("iat");
            },
            DpopError::Time(60),
        );
        refused(
            "dpop+jwt",
            &|c| {
                c.as_object_mut().unwrap().remove("jti");
            },
            DpopError::Jti,
        );

        // The jwk is another key than the one that signed.
        let (_, other) = key();
        assert_eq!(
            verify(&proof(&k, &other, "dpop+jwt", claims()), &expected()),
            Err(DpopError::Signature)
        );
        // A private member in the jwk.
        let mut private = jwk.clone();
        private["d"] = json!("AAAA");
        let mut h = Header::new(Algorithm::EdDSA);
        h.typ = Some("dpop+jwt".into());
        let unsigned = jsonwebtoken::encode(&h, &claims(), &k).unwrap();
        let mut parts: Vec<String> = unsigned.split('.').map(str::to_string).collect();
        parts[0] =
            B64.encode(json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": private}).to_string());
        assert_eq!(verify(&parts.join("."), &expected()), Err(DpopError::Key));
        // No jwk at all; HS256.
        assert_eq!(verify(&unsigned, &expected()), Err(DpopError::Key));
        let mut hs = Header::new(Algorithm::HS256);
        hs.typ = Some("dpop+jwt".into());
        let hs = jsonwebtoken::encode(&hs, &claims(), &EncodingKey::from_secret(b"k")).unwrap();
        assert_eq!(verify(&hs, &expected()), Err(DpopError::Algorithm));
        assert_eq!(verify("a.b", &expected()), Err(DpopError::Malformed));
    }

    #[test]
    fn nonces_and_access_token_hashes_are_checked_when_asked_for() {
        let (k, jwk) = key();
        let secret = b"fleet secret";
        let nonces = current_nonces(secret, NOW, 300);
        let e = Expected {
            nonces: Some(&nonces),
            ..expected()
        };
        assert_eq!(
            verify(&proof(&k, &jwk, "dpop+jwt", claims()), &e),
            Err(DpopError::Nonce)
        );
        let mut c = claims();
        c["nonce"] = json!(nonces[1]);
        assert!(
            verify(&proof(&k, &jwk, "dpop+jwt", c), &e).is_ok(),
            "the previous step's"
        );
        let stale = nonce(secret, NOW / 300 - 2);
        let mut c = claims();
        c["nonce"] = json!(stale);
        assert_eq!(
            verify(&proof(&k, &jwk, "dpop+jwt", c), &e),
            Err(DpopError::Nonce)
        );
        assert_ne!(nonce(b"other", NOW / 300), nonces[0], "per secret");

        let e = Expected {
            access_token: Some("tok"),
            ..expected()
        };
        assert_eq!(
            verify(&proof(&k, &jwk, "dpop+jwt", claims()), &e),
            Err(DpopError::AccessTokenHash)
        );
        let mut c = claims();
        c["ath"] = json!(access_token_hash("tok"));
        assert!(verify(&proof(&k, &jwk, "dpop+jwt", c), &e).is_ok());
    }
}
