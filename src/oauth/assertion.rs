//! Client assertions: `private_key_jwt` client authentication (RFC 7523 §2.2
//! and §3, RFC 7521 §4.2, OpenID Connect Core §9): which public keys a client
//! may register, and whether a presented assertion is valid for a client.
//! Pure: the keys, the accepted audiences and the time come in as arguments;
//! the replay check (`jti`) is the caller's, since it needs the store.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::token::jws::{Jws, JwsError};
use serde::Deserialize;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The signature algorithms accepted on assertions (never `none` or HS*:
/// a shared-key MAC would make the client's public key a secret).
/// `Ed25519` is RFC 9864's fully-specified name for EdDSA on Ed25519, which
/// current client libraries (openid-client, oauth4webapi) sign with.
pub const SIGNING_ALGS: &[&str] = crate::token::jws::ACCEPTED_ALGS;

/// Longest assertion considered, in bytes.
pub const MAX_ASSERTION_LEN: usize = 8192;

/// Most keys one client may register.
pub const MAX_KEYS: usize = 10;

/// Longest JWK Set accepted, inline or fetched, in bytes.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Seconds of clock difference tolerated on `iat`, `nbf` and `exp`.
pub const SKEW: i64 = 60;

/// The last instant a one-time value that expires at `exp` can still be
/// accepted (`exp` + [`SKEW`]): its `jti` must be remembered until then, or
/// a used assertion is accepted again inside the skew (RFC 7523 §3 item 7).
pub fn remember_until(exp: i64) -> i64 {
    exp.saturating_add(SKEW)
}

/// Private-key members of a JWK (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2):
/// a registered set must hold none.
pub(crate) const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a key set cannot be registered or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeySetError(pub String);

/// Checks a client's JWK Set (RFC 7517 §5): 1 to [`MAX_KEYS`] public keys of
/// the kinds [`SIGNING_ALGS`] use (EC P-256, OKP Ed25519, RSA of at least
/// 2048 bits), no private members, `alg` (when given) one of those, `kid`s
/// unique. Returns the parsed set.
pub fn check_public_jwks(value: &serde_json::Value) -> Result<JwkSet, KeySetError> {
    let bad = |m: String| Err(KeySetError(m));
    if value.to_string().len() > MAX_JWKS_BYTES {
        return bad(format!("jwks is larger than {MAX_JWKS_BYTES} bytes"));
    }
    let Some(keys) = value.get("keys").and_then(|k| k.as_array()) else {
        return bad("jwks must be a JWK Set: an object with a \"keys\" array".into());
    };
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return bad(format!("jwks must hold 1 to {MAX_KEYS} keys"));
    }
    for (i, k) in keys.iter().enumerate() {
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| k.get(**m).is_some()) {
            return bad(format!(
                "jwks key {i} holds the private member \"{m}\": register public keys only"
            ));
        }
    }
    let set: JwkSet = serde_json::from_value(fully_specified_to_eddsa(value))
        .map_err(|_| KeySetError("jwks holds a key that is not a valid JWK".into()))?;
    let mut kids: Vec<&str> = Vec::new();
    for (i, k) in set.keys.iter().enumerate() {
        if let Some(kid) = k.common.key_id.as_deref() {
            if kids.contains(&kid) {
                return bad(format!("jwks key {i}: kid {kid:?} is not unique"));
            }
            kids.push(kid);
        }
        if let Some(alg) = k.common.key_algorithm {
            if !SIGNING_ALGS.contains(&key_alg_name(alg)) {
                return bad(format!(
                    "jwks key {i}: alg must be one of {}",
                    SIGNING_ALGS.join(", ")
                ));
            }
        }
        match &k.algorithm {
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {}
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {}
            AlgorithmParameters::RSA(rsa) => {
                if rsa_modulus_bits(&rsa.n) < 2048 {
                    return bad(format!("jwks key {i}: RSA keys must be at least 2048 bits"));
                }
                if !rsa_exponent_ok(&rsa.e) {
                    return bad(format!(
                        "jwks key {i}: the RSA public exponent must be odd, at least 65537 and under 2^256"
                    ));
                }
            }
            _ => {
                return bad(format!(
                    "jwks key {i}: only EC P-256, OKP Ed25519 and RSA keys sign the accepted algorithms"
                ))
            }
        }
        if DecodingKey::from_jwk(k).is_err() {
            return bad(format!("jwks key {i} cannot be used to verify signatures"));
        }
    }
    Ok(set)
}

/// The set with each key's RFC 9864 `alg` read as jsonwebtoken's name
/// ([`crate::token::jws::with_polymorphic_alg`]).
fn fully_specified_to_eddsa(value: &serde_json::Value) -> serde_json::Value {
    let mut value = value.clone();
    if let Some(keys) = value.get_mut("keys").and_then(|k| k.as_array_mut()) {
        for k in keys {
            *k = crate::token::jws::with_polymorphic_alg(k.take());
        }
    }
    value
}

/// The bit length of a base64url big-endian integer (an RSA modulus):
/// leading zero bytes do not count, so a 1024-bit modulus padded to 256
/// bytes is 1024 bits. 0 when it does not decode.
fn rsa_modulus_bits(n: &str) -> usize {
    use base64::Engine;
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n) else {
        return 0;
    };
    match bytes.iter().position(|b| *b != 0) {
        None => 0,
        Some(i) => (bytes.len() - i) * 8 - bytes[i].leading_zeros() as usize,
    }
}

/// Whether an RSA public exponent is one a sound key has (NIST SP 800-56B
/// §6.2: odd, 65537 ≤ e < 2^256): `e = 1` makes every signature trivial,
/// and small exponents invite the attacks RFC 8017 warns of.
fn rsa_exponent_ok(e: &str) -> bool {
    use base64::Engine;
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(e) else {
        return false;
    };
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let e = &bytes[start..];
    if e.is_empty() || e.len() > 32 || e[e.len() - 1] & 1 == 0 {
        return false;
    }
    // At least 65537 = 0x010001.
    e.len() > 3 || (e.len() == 3 && e >= &[0x01, 0x00, 0x01][..])
}

fn key_alg_name(a: KeyAlgorithm) -> &'static str {
    match a {
        KeyAlgorithm::ES256 => "ES256",
        KeyAlgorithm::EdDSA => "EdDSA",
        KeyAlgorithm::RS256 => "RS256",
        KeyAlgorithm::PS256 => "PS256",
        _ => "other",
    }
}

/// What the assertion is checked against.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The client: `iss` and `sub` must both be it.
    pub client_id: &'a str,
    /// Accepted `aud` values: Tollgate's issuer identifier and the URL of
    /// the endpoint (RFC 7523 §3 item 3).
    pub audiences: &'a [String],
    /// Now, in Unix seconds.
    pub now: i64,
    /// How far ahead `exp` may lie.
    pub max_lifetime: i64,
}

/// A valid assertion's replay key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Its `jti`.
    pub jti: String,
    /// Its `exp`: the `jti` is remembered until then.
    pub exp: i64,
}

/// Why an assertion is refused; each names the check (the caller answers
/// `401 invalid_client` with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not a JWS, or an unreadable header or payload.
    #[error("the client assertion is not a signed JWT")]
    Malformed,
    /// `alg` outside [`SIGNING_ALGS`].
    #[error("the client assertion's alg is not one Tollgate accepts: ES256, EdDSA, Ed25519, RS256 or PS256")]
    Algorithm,
    /// The header has `crit`: it names an extension Tollgate does not
    /// understand (RFC 7515 §4.1.11).
    #[error(
        "the client assertion's header has crit, naming an extension Tollgate does not understand"
    )]
    Critical,
    /// `typ` names another kind of JWT.
    #[error("the client assertion's typ must be JWT or client-authentication+jwt")]
    Type,
    /// No registered key has the header's `kid` (a key set at a `jwks_uri`
    /// may be refetched).
    #[error("no registered key of the client has the assertion's kid")]
    UnknownKey,
    /// A key matches but its `alg` or type does not fit the header's `alg`.
    #[error("the client's key does not fit the assertion's alg")]
    KeyMismatch,
    /// The signature does not verify with any fitting key.
    #[error("the client assertion's signature does not verify")]
    Signature,
    /// `iss` or `sub` is not the client id.
    #[error("the client assertion's iss and sub must both be the client_id")]
    Subject,
    /// `aud` is not Tollgate.
    #[error("the client assertion's aud must be this server's issuer or endpoint URL")]
    Audience,
    /// `exp` missing or past.
    #[error("the client assertion has expired or has no exp")]
    Expired,
    /// `exp` too far ahead.
    #[error("the client assertion's exp is more than {0} seconds ahead")]
    TooLong(i64),
    /// `iat` or `nbf` in the future.
    #[error("the client assertion's iat or nbf lies in the future")]
    NotYetValid,
    /// `jti` missing or unusable.
    #[error("the client assertion needs a jti of 1 to 256 characters")]
    Jti,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    iat: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    jti: Option<String>,
}

/// A whole-second NumericDate (RFC 7519 §2): integers or fractions.
pub fn seconds(v: &Option<serde_json::Value>) -> Result<Option<i64>, AssertionError> {
    match v {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|f| Some(f.floor() as i64))
            .ok_or(AssertionError::Malformed),
    }
}

/// The client an assertion names (its `sub`), read without verifying it:
/// only to know whose keys to verify it with (RFC 7521 §4.2: `client_id` is
/// optional when the assertion identifies the client).
pub fn claimed_client(assertion: &str) -> Option<String> {
    let claims: AssertionClaims = unverified_claims(assertion)?;
    claims.sub.filter(|s| !s.is_empty() && s.len() <= 256)
}

/// The payload of a JWT of at most [`MAX_ASSERTION_LEN`] bytes, read
/// without verifying it: only to pick the keys that will verify it.
pub fn unverified_claims<T: serde::de::DeserializeOwned>(jwt: &str) -> Option<T> {
    if jwt.len() > MAX_ASSERTION_LEN {
        return None;
    }
    let payload = jwt.split('.').nth(1)?;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A client assertion read once (RFC 7523 §3), not yet verified: its
/// header checked (`alg`, `typ`, no `crit`) and its claims decoded. Every
/// later step reuses it: the claim checks, which need no key and so answer
/// alike whether the client exists or not, and then the signature.
pub struct UnverifiedAssertion<'a> {
    jws: Jws<'a>,
    claims: AssertionClaims,
}

impl<'a> UnverifiedAssertion<'a> {
    /// Reads an assertion: at most [`MAX_ASSERTION_LEN`] bytes, a compact
    /// JWS whose `typ` (when present) is `JWT` or
    /// `client-authentication+jwt` (RFC 7523bis), with decodable claims.
    pub fn parse(assertion: &'a str) -> Result<UnverifiedAssertion<'a>, AssertionError> {
        let jws = read_jws(assertion, true)?;
        let claims = jws.claims().ok_or(AssertionError::Malformed)?;
        Ok(UnverifiedAssertion { jws, claims })
    }

    /// The claims' checks (RFC 7523 §3 items 1–7 but the signature): `iss`
    /// and `sub` the client, `aud` Tollgate, `exp` present, not past and not
    /// too far, `iat`/`nbf` not ahead, a `jti`. No key is needed.
    pub fn check(&self, expected: &Expected<'_>) -> Result<Verified, AssertionError> {
        check_claims(&self.claims, expected)
    }

    /// Whether one of `keys` signed it (see [`signed_by`]).
    pub fn verify_signature(&self, keys: &JwkSet) -> Result<(), AssertionError> {
        signed_by(&self.jws, keys)
    }
}

/// Verifies `assertion` for `expected.client_id` with the client's `keys`:
/// the signature (by the key with the header's `kid`, or by any fitting key
/// when there is none), then every claim RFC 7523 §3 requires.
pub fn verify(
    assertion: &str,
    keys: &JwkSet,
    expected: &Expected<'_>,
) -> Result<Verified, AssertionError> {
    let a = UnverifiedAssertion::parse(assertion)?;
    a.verify_signature(keys)?;
    a.check(expected)
}

/// Splits a JWS of at most [`MAX_ASSERTION_LEN`] bytes and checks its
/// header: `alg` one of [`SIGNING_ALGS`], no `crit`, and with `check_typ`
/// a `typ` (when present) of `JWT` or `client-authentication+jwt`.
fn read_jws(assertion: &str, check_typ: bool) -> Result<Jws<'_>, AssertionError> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return Err(AssertionError::Malformed);
    }
    let jws = Jws::parse(assertion).map_err(|e| match e {
        JwsError::Malformed => AssertionError::Malformed,
        JwsError::Algorithm => AssertionError::Algorithm,
        JwsError::Critical => AssertionError::Critical,
    })?;
    if check_typ && jws.header.contains_key("typ") {
        let typ = jws.text("typ").unwrap_or("").to_ascii_lowercase();
        let typ = typ.strip_prefix("application/").unwrap_or(&typ);
        if typ != "jwt" && typ != "client-authentication+jwt" {
            return Err(AssertionError::Type);
        }
    }
    Ok(jws)
}

/// Verifies a JWS with one of `keys` and returns its payload (see
/// [`read_jws`] and [`signed_by`]). Claims are the caller's.
pub fn verify_signature<T: serde::de::DeserializeOwned>(
    assertion: &str,
    keys: &JwkSet,
    check_typ: bool,
) -> Result<T, AssertionError> {
    let jws = read_jws(assertion, check_typ)?;
    signed_by(&jws, keys)?;
    jws.claims().ok_or(AssertionError::Malformed)
}

/// Whether one of `keys` signed `jws`: the key with the header's `kid` (or
/// any fitting key when there is none), a key's own `alg` and type fitting
/// the header's.
fn signed_by(jws: &Jws<'_>, keys: &JwkSet) -> Result<(), AssertionError> {
    let alg = jws.alg;
    let kid = match jws.header.get("kid") {
        None => None,
        Some(serde_json::Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(AssertionError::Malformed),
    };
    let candidates: Vec<&Jwk> = match kid {
        Some(kid) => {
            let k = keys
                .keys
                .iter()
                .filter(|k| k.common.key_id.as_deref() == Some(kid))
                .collect::<Vec<_>>();
            if k.is_empty() {
                return Err(AssertionError::UnknownKey);
            }
            k
        }
        None => keys.keys.iter().collect(),
    };
    let fitting: Vec<&Jwk> = candidates.into_iter().filter(|k| fits(k, alg)).collect();
    if fitting.is_empty() {
        return Err(if kid.is_some() {
            AssertionError::KeyMismatch
        } else {
            AssertionError::UnknownKey
        });
    }
    for k in fitting {
        let Ok(key) = DecodingKey::from_jwk(k) else {
            continue;
        };
        if jws.verified_by(&key) {
            return Ok(());
        }
    }
    Err(AssertionError::Signature)
}

/// Whether `k` can verify `alg`: its type, curve and `alg` (when given) fit.
fn fits(k: &Jwk, alg: Algorithm) -> bool {
    let alg_ok = k
        .common
        .key_algorithm
        .is_none_or(|a| key_alg_name(a) == alg_name(alg));
    let type_ok = match (&k.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::PS256) => true,
        _ => false,
    };
    alg_ok && type_ok
}

fn alg_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        Algorithm::PS256 => "PS256",
        _ => "other",
    }
}

fn check_claims(c: &AssertionClaims, e: &Expected<'_>) -> Result<Verified, AssertionError> {
    if c.iss.as_deref() != Some(e.client_id) || c.sub.as_deref() != Some(e.client_id) {
        return Err(AssertionError::Subject);
    }
    let aud_ok = match &c.aud {
        Some(serde_json::Value::String(a)) => e.audiences.contains(a),
        // RFC 7523bis: a one-element array is accepted, more is not.
        Some(serde_json::Value::Array(list)) if list.len() == 1 => list[0]
            .as_str()
            .is_some_and(|a| e.audiences.iter().any(|x| x == a)),
        _ => false,
    };
    if !aud_ok {
        return Err(AssertionError::Audience);
    }
    let exp = seconds(&c.exp)?.ok_or(AssertionError::Expired)?;
    if exp <= e.now - SKEW {
        return Err(AssertionError::Expired);
    }
    if exp > e.now + e.max_lifetime {
        return Err(AssertionError::TooLong(e.max_lifetime));
    }
    for t in [seconds(&c.iat)?, seconds(&c.nbf)?].into_iter().flatten() {
        if t > e.now + SKEW {
            return Err(AssertionError::NotYetValid);
        }
    }
    let jti = c
        .jti
        .as_deref()
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(AssertionError::Jti)?;
    Ok(Verified {
        jti: jti.to_string(),
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn expected(aud: &[String]) -> Expected<'_> {
        Expected {
            client_id: "c1",
            audiences: aud,
            now: NOW,
            max_lifetime: 3600,
        }
    }

    fn claims() -> serde_json::Value {
        json!({"iss": "c1", "sub": "c1", "aud": "https://as", "exp": NOW + 60, "iat": NOW, "jti": "j"})
    }

    fn set(jwk: serde_json::Value) -> JwkSet {
        check_public_jwks(&json!({"keys": [jwk]})).unwrap()
    }

    fn ed25519() -> (EncodingKey, serde_json::Value) {
        use ring::signature::KeyPair;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(pair.public_key().as_ref()), "kid": "ed"});
        (EncodingKey::from_ed_der(pkcs8.as_ref()), jwk)
    }

    fn rsa(bits: usize) -> (EncodingKey, serde_json::Value) {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits).unwrap();
        let pem = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let jwk = json!({
            "kty": "RSA",
            "n": B64.encode(key.n().to_bytes_be()),
            "e": B64.encode(key.e().to_bytes_be()),
            "kid": "rsa",
        });
        (EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(), jwk)
    }

    fn signed(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &serde_json::Value) -> String {
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, claims, key).unwrap()
    }

    /// A JWS with `header` as given, signed with `key` under `alg`.
    fn raw_signed(
        header: serde_json::Value,
        alg: Algorithm,
        key: &EncodingKey,
        claims: &serde_json::Value,
    ) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
        format!("{input}.{sig}")
    }

    #[test]
    fn rfc_9864_ed25519_is_accepted_as_eddsa_on_header_and_key() {
        let aud = vec!["https://as".to_string()];
        let (ed, mut ed_jwk) = ed25519();
        ed_jwk["alg"] = json!("Ed25519");
        let keys = set(ed_jwk.clone());
        let jwt = raw_signed(
            json!({"alg": "Ed25519", "kid": "ed", "typ": "JWT"}),
            Algorithm::EdDSA,
            &ed,
            &claims(),
        );
        assert!(verify(&jwt, &keys, &expected(&aud)).is_ok());
        let polymorphic = signed(Algorithm::EdDSA, "ed", &ed, &claims());
        assert!(verify(&polymorphic, &keys, &expected(&aud)).is_ok());
        // Ed25519 names an Ed25519 key only.
        let (_, mut rsa_jwk) = rsa(2048);
        rsa_jwk["alg"] = json!("Ed25519");
        assert!(check_public_jwks(&json!({"keys": [rsa_jwk]})).is_err());
        // An algorithm Tollgate does not take says so.
        let es512 = raw_signed(
            json!({"alg": "ES512", "kid": "ed"}),
            Algorithm::EdDSA,
            &ed,
            &claims(),
        );
        let e = verify(&es512, &keys, &expected(&aud)).unwrap_err();
        assert_eq!(e, AssertionError::Algorithm);
        assert!(e.to_string().contains("Ed25519"), "{e}");
    }

    #[test]
    fn a_header_with_crit_is_refused() {
        let aud = vec!["https://as".to_string()];
        let (ed, ed_jwk) = ed25519();
        let jwt = raw_signed(
            json!({"alg": "EdDSA", "kid": "ed", "crit": ["exp"], "exp": 1}),
            Algorithm::EdDSA,
            &ed,
            &claims(),
        );
        assert_eq!(
            verify(&jwt, &set(ed_jwk), &expected(&aud)).unwrap_err(),
            AssertionError::Critical
        );
    }

    #[test]
    fn eddsa_rs256_and_ps256_assertions_verify() {
        let aud = vec!["https://as".to_string()];
        let (ed, ed_jwk) = ed25519();
        let jwt = signed(Algorithm::EdDSA, "ed", &ed, &claims());
        assert_eq!(
            verify(&jwt, &set(ed_jwk), &expected(&aud)).unwrap(),
            Verified {
                jti: "j".into(),
                exp: NOW + 60
            }
        );
        let (r, r_jwk) = rsa(2048);
        let keys = set(r_jwk);
        for alg in [Algorithm::RS256, Algorithm::PS256] {
            let jwt = signed(alg, "rsa", &r, &claims());
            assert!(verify(&jwt, &keys, &expected(&aud)).is_ok(), "{alg:?}");
        }
        // RS384 with the same key: not an accepted algorithm.
        let jwt = signed(Algorithm::RS384, "rsa", &r, &claims());
        assert_eq!(
            verify(&jwt, &keys, &expected(&aud)),
            Err(AssertionError::Algorithm)
        );
    }

    #[test]
    fn a_key_whose_alg_or_type_does_not_fit_is_not_used() {
        let aud = vec!["https://as".to_string()];
        let (ed, mut ed_jwk) = ed25519();
        ed_jwk["alg"] = json!("ES256");
        let jwt = signed(Algorithm::EdDSA, "ed", &ed, &claims());
        assert_eq!(
            verify(&jwt, &set(ed_jwk), &expected(&aud)),
            Err(AssertionError::KeyMismatch)
        );
    }

    #[test]
    fn key_sets_hold_public_keys_of_the_accepted_kinds_only() {
        let (_, small) = rsa(1024);
        assert!(
            check_public_jwks(&json!({"keys": [small]})).is_err(),
            "1024-bit RSA"
        );
        // Padded with zero bytes to 256 bytes, it is still 1024 bits.
        let mut padded = small.clone();
        let n = B64.decode(small["n"].as_str().unwrap()).unwrap();
        let mut wide = vec![0u8; 256 - n.len()];
        wide.extend_from_slice(&n);
        padded["n"] = json!(B64.encode(&wide));
        assert!(
            check_public_jwks(&json!({"keys": [padded]})).is_err(),
            "padded"
        );
        let (_, good) = rsa(2048);
        assert!(check_public_jwks(&json!({"keys": [good.clone()]})).is_ok());
        for e in [
            &[1u8][..],
            &[3],
            &[0, 0, 3],
            &[0x01, 0x00, 0x00],
            &[0x01, 0x00, 0x02],
            &[0; 0],
        ] {
            let mut weak = good.clone();
            weak["e"] = json!(B64.encode(e));
            assert!(
                check_public_jwks(&json!({"keys": [weak]})).is_err(),
                "e = {e:?}"
            );
        }
        let mut big_e = good.clone();
        big_e["e"] = json!(B64.encode([0x01, 0x00, 0x00, 0x01]));
        assert!(check_public_jwks(&json!({"keys": [big_e]})).is_ok());
        let (_, ed) = ed25519();
        let mut with_d = ed.clone();
        with_d["d"] = json!("AAAA");
        assert!(check_public_jwks(&json!({"keys": [with_d]})).is_err());
        assert!(
            check_public_jwks(&json!({"keys": [ed.clone(), ed.clone()]})).is_err(),
            "kid twice"
        );
        assert!(check_public_jwks(&json!({"keys": []})).is_err());
        assert!(
            check_public_jwks(&json!([ed.clone()])).is_err(),
            "not a set"
        );
        let mut hs = ed.clone();
        hs["alg"] = json!("HS256");
        assert!(check_public_jwks(&json!({"keys": [hs]})).is_err());
        let many: Vec<_> = (0..11)
            .map(|i| {
                let mut k = ed.clone();
                k["kid"] = json!(format!("k{i}"));
                k
            })
            .collect();
        assert!(
            check_public_jwks(&json!({"keys": many})).is_err(),
            "11 keys"
        );
        assert!(check_public_jwks(&json!({"keys": [ed]})).is_ok());
    }

    #[test]
    fn the_claimed_client_is_the_unverified_sub() {
        let (ed, _) = ed25519();
        let jwt = signed(Algorithm::EdDSA, "ed", &ed, &claims());
        assert_eq!(claimed_client(&jwt).as_deref(), Some("c1"));
        assert_eq!(claimed_client("garbage"), None);
        assert_eq!(claimed_client(&"a".repeat(MAX_ASSERTION_LEN + 1)), None);
    }
}
