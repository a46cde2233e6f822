//! Compact JWS (RFC 7515 §7.1) read one way wherever Tollgate verifies a JWT
//! from outside (client assertions, federation tokens, DPoP proofs) or its
//! own: the header parsed once, `alg` mapped to what jsonwebtoken verifies
//! (RFC 9864's fully-specified `Ed25519` is EdDSA on Ed25519), `crit`
//! refused (§4.1.11), and the signature checked over the signing input.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The asymmetric algorithms Tollgate verifies on JWTs from outside, by the
/// names a header may carry: `Ed25519` (RFC 9864 §2.2) and the polymorphic
/// `EdDSA` (RFC 8037) name the same signature on an Ed25519 key.
pub const ACCEPTED_ALGS: &[&str] = &["ES256", "EdDSA", "Ed25519", "RS256", "PS256"];

/// The algorithm a header's `alg` names, if Tollgate accepts it.
pub fn accepted_alg(name: &str) -> Option<Algorithm> {
    match name {
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" | "Ed25519" => Some(Algorithm::EdDSA),
        "RS256" => Some(Algorithm::RS256),
        "PS256" => Some(Algorithm::PS256),
        _ => None,
    }
}

/// A JWK with its `alg` `Ed25519` (RFC 9864 §2.2) written as `EdDSA`, the
/// name jsonwebtoken parses, when it is an Ed25519 key: on such a key they
/// are one algorithm. Any other key keeps its `alg` (and an `Ed25519` one
/// then fails to parse, as it should).
pub fn with_polymorphic_alg(mut jwk: Value) -> Value {
    let text = |k: &Value, m: &str| k.get(m).and_then(Value::as_str).map(str::to_string);
    let ed25519 = text(&jwk, "kty").as_deref() == Some("OKP")
        && text(&jwk, "crv").as_deref() == Some("Ed25519");
    if ed25519 && text(&jwk, "alg").as_deref() == Some("Ed25519") {
        jwk["alg"] = Value::from("EdDSA");
    }
    jwk
}

/// Why a compact JWS cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwsError {
    /// Not three base64url parts, or a header that is not a JSON object.
    Malformed,
    /// `alg` missing or not one of [`ACCEPTED_ALGS`].
    Algorithm,
    /// `crit` present: Tollgate understands no JWS extension, so a token
    /// that makes one critical must be refused (RFC 7515 §4.1.11).
    Critical,
}

/// A compact JWS split and its header read; the signature not yet checked.
#[derive(Debug)]
pub struct Jws<'a> {
    /// The header's members.
    pub header: Map<String, Value>,
    /// The algorithm `alg` names.
    pub alg: Algorithm,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> Jws<'a> {
    /// Splits `jwt` and reads its header: `alg` one of [`ACCEPTED_ALGS`]
    /// (or, with `algs`, one of those names), no `crit`.
    pub fn parse(jwt: &'a str) -> Result<Jws<'a>, JwsError> {
        let mut parts = jwt.splitn(4, '.');
        let (Some(h), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed);
        };
        let header: Map<String, Value> = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwsError::Malformed)?;
        if header.contains_key("crit") {
            return Err(JwsError::Critical);
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(accepted_alg)
            .ok_or(JwsError::Algorithm)?;
        Ok(Jws {
            header,
            alg,
            signing_input: &jwt[..h.len() + 1 + payload.len()],
            payload,
            signature,
        })
    }

    /// A string member of the header.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// Whether `key` signed this JWS with its `alg`.
    pub fn verified_by(&self, key: &DecodingKey) -> bool {
        jsonwebtoken::crypto::verify(self.signature, self.signing_input.as_bytes(), key, self.alg)
            .unwrap_or(false)
    }

    /// The payload as `T`; `None` when it is not base64url JSON of that
    /// shape. Call only after [`Jws::verified_by`].
    pub fn claims<T: DeserializeOwned>(&self) -> Option<T> {
        let bytes = B64.decode(self.payload).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jws(header: &str) -> String {
        format!(
            "{}.{}.{}",
            B64.encode(header),
            B64.encode("{}"),
            B64.encode("sig")
        )
    }

    #[test]
    fn algorithms_by_either_ed25519_name_and_never_symmetric() {
        for (alg, want) in [
            ("ES256", Some(Algorithm::ES256)),
            ("EdDSA", Some(Algorithm::EdDSA)),
            ("Ed25519", Some(Algorithm::EdDSA)),
            ("RS256", Some(Algorithm::RS256)),
            ("PS256", Some(Algorithm::PS256)),
            ("HS256", None),
            ("none", None),
            ("Ed448", None),
            ("ed25519", None),
        ] {
            let t = jws(&format!(r#"{{"alg":"{alg}"}}"#));
            assert_eq!(Jws::parse(&t).ok().map(|j| j.alg), want, "{alg}");
        }
    }

    #[test]
    fn crit_and_malformed_headers_are_refused() {
        let crit = jws(r#"{"alg":"ES256","crit":["x-unknown"],"x-unknown":1}"#);
        assert_eq!(Jws::parse(&crit).unwrap_err(), JwsError::Critical);
        let empty_crit = jws(r#"{"alg":"ES256","crit":[]}"#);
        assert_eq!(Jws::parse(&empty_crit).unwrap_err(), JwsError::Critical);
        assert_eq!(Jws::parse("a.b").unwrap_err(), JwsError::Malformed);
        assert_eq!(Jws::parse("a.b.c.d").unwrap_err(), JwsError::Malformed);
        let not_object = format!("{}.e30.c2ln", B64.encode("[1]"));
        assert_eq!(Jws::parse(&not_object).unwrap_err(), JwsError::Malformed);
        assert_eq!(Jws::parse(&jws("{}")).unwrap_err(), JwsError::Algorithm);
    }
}
