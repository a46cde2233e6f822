//! An independent verifier: checks a token's signature against the served JWKS
//! with p256, ed25519-dalek and rsa directly, not with Tollgate's own code.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

fn b64(v: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(v.as_str().expect("string"))
        .expect("base64url")
}

/// Verifies `token`'s signature with the JWK of its `kid` in `jwks`; returns the claims.
pub fn verify_with_jwks(token: &str, jwks: &Value) -> Result<Value, String> {
    let mut parts = token.split('.');
    let (h, p, sig) = (
        parts.next().ok_or("no header")?,
        parts.next().ok_or("no payload")?,
        parts.next().ok_or("no sig")?,
    );
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .ok_or("no keys")?
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or("kid not in JWKS")?;
    if header["alg"] != jwk["alg"] {
        return Err("alg differs from the JWK's".into());
    }
    let message = format!("{h}.{p}");
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|e| e.to_string())?;
    match jwk["kty"].as_str() {
        Some("EC") => {
            use p256::ecdsa::signature::Verifier;
            let point = p256::EncodedPoint::from_affine_coordinates(
                b64(&jwk["x"]).as_slice().into(),
                b64(&jwk["y"]).as_slice().into(),
                false,
            );
            let key =
                p256::ecdsa::VerifyingKey::from_encoded_point(&point).map_err(|e| e.to_string())?;
            let sig = p256::ecdsa::Signature::from_slice(&sig).map_err(|e| e.to_string())?;
            key.verify(message.as_bytes(), &sig)
                .map_err(|e| e.to_string())?;
        }
        Some("OKP") => {
            let x: [u8; 32] = b64(&jwk["x"]).try_into().map_err(|_| "bad x")?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|e| e.to_string())?;
            let sig = ed25519_dalek::Signature::from_slice(&sig).map_err(|e| e.to_string())?;
            key.verify_strict(message.as_bytes(), &sig)
                .map_err(|e| e.to_string())?;
        }
        Some("RSA") => {
            use sha2::Digest;
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&b64(&jwk["n"])),
                rsa::BigUint::from_bytes_be(&b64(&jwk["e"])),
            )
            .map_err(|e| e.to_string())?;
            let hashed = sha2::Sha256::digest(message.as_bytes());
            if header["alg"] == "PS256" {
                // RFC 7518 §3.5: PSS with SHA-256, MGF1 with SHA-256.
                key.verify(rsa::Pss::new::<sha2::Sha256>(), &hashed, &sig)
                    .map_err(|e| e.to_string())?;
            } else {
                key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &hashed, &sig)
                    .map_err(|e| e.to_string())?;
            }
        }
        other => return Err(format!("unexpected kty {other:?}")),
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())
}
