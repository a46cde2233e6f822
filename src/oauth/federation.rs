//! Workload identity federation as pure functions: the external JWT a
//! workload presents (a Kubernetes service-account token, a GitHub Actions
//! OIDC token, a SPIFFE JWT-SVID), checked against its issuer's keys and the
//! clock (RFC 7523 §3, RFC 7519 §4.1), and the rules that map such an
//! identity to a Tollgate client (default deny). Keys, rules and the time
//! come in as arguments; fetching keys and the `jti` replay check are the
//! caller's.

use std::collections::BTreeMap;

use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;

use super::assertion::{self, AssertionError, SKEW};
use crate::domain::FederationRule;

/// Longest pattern (`subject`, a claim value) a rule may hold.
pub const MAX_PATTERN_LEN: usize = 256;

/// Most claim conditions one rule may hold.
pub const MAX_RULE_CLAIMS: usize = 16;

/// Longest claim value compared with a pattern; a longer one matches none.
const MAX_VALUE_LEN: usize = 1024;

/// The furthest ahead an external token's `exp` may lie (24 hours): a
/// platform token lives minutes to hours, and a `single_use` `jti` is stored
/// until `exp`, so an unbounded `exp` would be stored for as long.
pub const MAX_EXTERNAL_LIFETIME: i64 = 24 * 3600;

/// An external token whose signature and times were checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalToken {
    /// `iss`.
    pub iss: String,
    /// `sub`.
    pub sub: String,
    /// `aud`, as a list.
    pub aud: Vec<String>,
    /// `exp`: a token issued from it ends no later.
    pub exp: i64,
    /// `jti`, when it has one.
    pub jti: Option<String>,
    /// Every claim, for the rules' claim conditions.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Why an external token is refused; each names the check (the caller
/// answers `invalid_grant`, or `invalid_client` for a client assertion).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalError {
    /// Not a JWS, or an unreadable header or payload.
    #[error("the assertion is not a signed JWT")]
    Malformed,
    /// `iss` is missing or not a trusted issuer.
    #[error("the assertion's issuer is not a trusted issuer")]
    UntrustedIssuer,
    /// `alg` outside the accepted ones.
    #[error(
        "the assertion's alg is not one Tollgate accepts: ES256, EdDSA, Ed25519, RS256 or PS256"
    )]
    Algorithm,
    /// The header has `crit` (RFC 7515 §4.1.11).
    #[error("the assertion's header has crit, naming an extension Tollgate does not understand")]
    Critical,
    /// No key of the issuer has the header's `kid`.
    #[error("no key of the issuer has the assertion's kid")]
    UnknownKey,
    /// A key matches but does not fit the header's `alg`.
    #[error("the issuer's key does not fit the assertion's alg")]
    KeyMismatch,
    /// The signature does not verify.
    #[error("the assertion's signature does not verify with the issuer's keys")]
    Signature,
    /// `sub` missing.
    #[error("the assertion has no sub")]
    Subject,
    /// `aud` missing.
    #[error("the assertion has no aud")]
    Audience,
    /// `exp` missing or past.
    #[error("the assertion has expired or has no exp")]
    Expired,
    /// `exp` further ahead than [`MAX_EXTERNAL_LIFETIME`].
    #[error("the assertion's exp is more than 24 hours ahead")]
    TooLong,
    /// `iat` or `nbf` in the future.
    #[error("the assertion's iat or nbf lies in the future")]
    NotYetValid,
}

impl From<AssertionError> for ExternalError {
    fn from(e: AssertionError) -> Self {
        match e {
            AssertionError::Algorithm => ExternalError::Algorithm,
            AssertionError::UnknownKey => ExternalError::UnknownKey,
            AssertionError::KeyMismatch => ExternalError::KeyMismatch,
            AssertionError::Signature => ExternalError::Signature,
            AssertionError::Critical => ExternalError::Critical,
            _ => ExternalError::Malformed,
        }
    }
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(flatten)]
    all: serde_json::Map<String, serde_json::Value>,
}

/// The `iss` of a JWT, read without verifying it: only to know whose keys
/// to verify it with.
pub fn unverified_issuer(jwt: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let claims: Iss = assertion::unverified_claims(jwt)?;
    claims.iss.filter(|s| !s.is_empty() && s.len() <= 2048)
}

/// Verifies an external token with its issuer's `keys`: the signature, then
/// `iss` (must be `issuer`), `sub` and `aud` present, `exp` present and not
/// past, `iat`/`nbf` not in the future (each with [`SKEW`]). Its audience
/// is the rules' to check. `typ` is not checked: issuers set it variously
/// (`JWT`, `JOSE`, none).
pub fn verify(
    jwt: &str,
    issuer: &str,
    keys: &JwkSet,
    now: i64,
) -> Result<ExternalToken, ExternalError> {
    let raw: RawClaims = assertion::verify_signature(jwt, keys, false)?;
    let claims = raw.all;
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    if text("iss").as_deref() != Some(issuer) {
        return Err(ExternalError::UntrustedIssuer);
    }
    let sub = text("sub")
        .filter(|s| !s.is_empty())
        .ok_or(ExternalError::Subject)?;
    let aud: Vec<String> = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.clone()],
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    if aud.is_empty() {
        return Err(ExternalError::Audience);
    }
    let time = |name: &str| {
        assertion::seconds(&claims.get(name).cloned()).map_err(|_| ExternalError::Malformed)
    };
    let exp = time("exp")?.ok_or(ExternalError::Expired)?;
    if exp <= now - SKEW {
        return Err(ExternalError::Expired);
    }
    if exp > now.saturating_add(MAX_EXTERNAL_LIFETIME) {
        return Err(ExternalError::TooLong);
    }
    for t in [time("iat")?, time("nbf")?].into_iter().flatten() {
        if t > now + SKEW {
            return Err(ExternalError::NotYetValid);
        }
    }
    let jti = text("jti").filter(|j| !j.is_empty() && j.len() <= 256);
    Ok(ExternalToken {
        iss: issuer.to_string(),
        sub,
        aud,
        exp,
        jti,
        claims,
    })
}

/// Whether `value` matches `pattern`, where `*` stands for any run of
/// characters (none included) and everything else for itself. Linear in
/// the lengths for each star (the greedy match with one backtrack point),
/// never exponential.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

/// Checks a rule's pattern: 1 to [`MAX_PATTERN_LEN`] bytes, no control
/// characters, not `*` alone for a subject that should have been left out.
pub fn check_pattern(what: &str, pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN {
        return Err(format!("{what} must be 1 to {MAX_PATTERN_LEN} characters"));
    }
    if pattern.chars().any(char::is_control) {
        return Err(format!("{what} must not hold control characters"));
    }
    Ok(())
}

/// A claim's value as the text a pattern is matched against: a string as
/// it is, a number or a boolean in its JSON form (GitHub's `repository_id`
/// is a string, other issuers send numbers); anything else matches nothing.
fn claim_text(v: &serde_json::Value) -> Option<String> {
    let t = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (t.len() <= MAX_VALUE_LEN).then_some(t)
}

/// Why one rule does not match a token (`None`: it matches).
pub fn mismatch(rule: &FederationRule, token: &ExternalToken) -> Option<String> {
    if rule.issuer != token.iss {
        return Some("the rule is for another issuer".into());
    }
    if !token.aud.contains(&rule.audience) {
        return Some(format!("aud does not hold {:?}", rule.audience));
    }
    if let Some(p) = &rule.subject {
        if !glob_match(p, &token.sub) {
            return Some(format!("sub does not match {p:?}"));
        }
    }
    for (name, p) in &rule.claims {
        match token.claims.get(name).and_then(claim_text) {
            None => return Some(format!("claim {name:?} is missing or not a string")),
            Some(v) if !glob_match(p, &v) => {
                return Some(format!("claim {name:?} does not match {p:?}"))
            }
            Some(_) => {}
        }
    }
    None
}

/// The first rule (oldest first) that maps `token` to a client, restricted
/// to `client_id`'s rules when the request names a client; or, for each
/// rule of the issuer, why it does not match.
pub fn find_rule<'r>(
    rules: &'r [FederationRule],
    token: &ExternalToken,
    client_id: Option<&str>,
) -> Result<&'r FederationRule, Vec<(String, String)>> {
    let mut why = Vec::new();
    for rule in rules.iter().filter(|r| r.issuer == token.iss) {
        if let Some(id) = client_id {
            if rule.client_id != id {
                why.push((rule.id.clone(), "the rule is for another client".into()));
                continue;
            }
        }
        match mismatch(rule, token) {
            None => return Ok(rule),
            Some(reason) => why.push((rule.id.clone(), reason)),
        }
    }
    Err(why)
}

/// A rule's claim conditions, checked: at most [`MAX_RULE_CLAIMS`], names of
/// 1 to 64 characters that are not the registered claims the rule checks
/// otherwise, values valid patterns.
pub fn check_claims(claims: &BTreeMap<String, String>) -> Result<(), String> {
    if claims.len() > MAX_RULE_CLAIMS {
        return Err(format!(
            "a rule holds at most {MAX_RULE_CLAIMS} claim conditions"
        ));
    }
    for (name, p) in claims {
        if name.is_empty() || name.len() > 64 {
            return Err("claim names must be 1 to 64 characters".into());
        }
        if ["iss", "aud", "exp", "iat", "nbf"].contains(&name.as_str()) {
            return Err(format!(
                "claim {name:?} is checked by the issuer, audience and lifetime already"
            ));
        }
        check_pattern(&format!("claim {name:?}"), p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const ISS: &str = "https://k8s.example";

    fn key() -> (EncodingKey, JwkSet) {
        use ring::signature::KeyPair;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(pair.public_key().as_ref()), "kid": "k1"});
        let set = assertion::check_public_jwks(&json!({ "keys": [jwk] })).unwrap();
        (EncodingKey::from_ed_der(pkcs8.as_ref()), set)
    }

    fn jwt(key: &EncodingKey, claims: &serde_json::Value) -> String {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, claims, key).unwrap()
    }

    fn claims() -> serde_json::Value {
        json!({"iss": ISS, "sub": "system:serviceaccount:payments:api", "aud": ["tollgate"],
               "exp": NOW + 600, "iat": NOW, "jti": "j1",
               "kubernetes.io": {"namespace": "payments"}, "repository_id": "123", "run": 7})
    }

    fn rule() -> FederationRule {
        FederationRule {
            id: "fr_1".into(),
            issuer: ISS.into(),
            audience: "tollgate".into(),
            subject: Some("system:serviceaccount:payments:*".into()),
            claims: BTreeMap::new(),
            client_id: "tgc_a".into(),
            scopes: None,
            single_use: false,
            created_at: 0,
        }
    }

    #[test]
    fn globs_match_stars_and_only_stars() {
        for (p, v, want) in [
            ("a*c", "abc", true),
            ("a*c", "ac", true),
            ("a*c", "abd", false),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            (
                "repo:org/*:ref:refs/heads/main",
                "repo:org/x:ref:refs/heads/main",
                true,
            ),
            (
                "repo:org/*:ref:refs/heads/main",
                "repo:org/x:ref:refs/heads/dev",
                false,
            ),
            ("a?c", "abc", false),
            ("a.c", "abc", false),
            ("*b*b*", "abab", true),
            ("*b*b*", "ab", false),
            ("abc", "abcd", false),
            ("abc*", "abcd", true),
        ] {
            assert_eq!(glob_match(p, v), want, "{p} vs {v}");
        }
        // Many stars against a long value: no exponential backtracking.
        let p = "*a".repeat(100);
        let v = "a".repeat(5000) + "b";
        assert!(!glob_match(&p, &v));
    }

    #[test]
    fn a_valid_token_verifies_and_each_check_refuses() {
        let (k, set) = key();
        let t = verify(&jwt(&k, &claims()), ISS, &set, NOW).unwrap();
        assert_eq!(t.sub, "system:serviceaccount:payments:api");
        assert_eq!((t.exp, t.jti.as_deref()), (NOW + 600, Some("j1")));
        let refused = |change: &dyn Fn(&mut serde_json::Value), want: ExternalError| {
            let mut c = claims();
            change(&mut c);
            assert_eq!(
                verify(&jwt(&k, &c), ISS, &set, NOW),
                Err(want.clone()),
                "{want}"
            );
        };
        refused(
            &|c| c["iss"] = json!("https://other"),
            ExternalError::UntrustedIssuer,
        );
        refused(&|c| c["sub"] = json!(""), ExternalError::Subject);
        refused(&|c| c["aud"] = json!([]), ExternalError::Audience);
        refused(
            &|c| {
                c.as_object_mut().unwrap().remove("exp");
            },
            ExternalError::Expired,
        );
        refused(
            &|c| c["exp"] = json!(NOW - SKEW - 1),
            ExternalError::Expired,
        );
        refused(
            &|c| c["iat"] = json!(NOW + SKEW + 1),
            ExternalError::NotYetValid,
        );
        refused(
            &|c| c["nbf"] = json!(NOW + SKEW + 1),
            ExternalError::NotYetValid,
        );
        // Another key signed it.
        let (other, _) = key();
        assert_eq!(
            verify(&jwt(&other, &claims()), ISS, &set, NOW),
            Err(ExternalError::Signature)
        );
        // HS256 is never accepted.
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert_eq!(verify(&hs, ISS, &set, NOW), Err(ExternalError::Algorithm));
        assert_eq!(unverified_issuer(&jwt(&k, &claims())).as_deref(), Some(ISS));
        assert_eq!(unverified_issuer("x.y.z"), None);
    }

    #[test]
    fn rules_match_on_audience_subject_and_claims() {
        let (k, set) = key();
        let t = verify(&jwt(&k, &claims()), ISS, &set, NOW).unwrap();
        assert_eq!(mismatch(&rule(), &t), None);
        let mut r = rule();
        r.audience = "other".into();
        assert!(mismatch(&r, &t).unwrap().contains("aud"));
        let mut r = rule();
        r.subject = Some("system:serviceaccount:billing:*".into());
        assert!(mismatch(&r, &t).unwrap().contains("sub"));
        let mut r = rule();
        r.claims.insert("repository_id".into(), "123".into());
        r.claims.insert("run".into(), "7".into());
        assert_eq!(mismatch(&r, &t), None, "strings and numbers");
        r.claims.insert("repository_id".into(), "1234".into());
        assert!(mismatch(&r, &t).unwrap().contains("repository_id"));
        let mut r = rule();
        r.claims.insert("kubernetes.io".into(), "*".into());
        assert!(
            mismatch(&r, &t).unwrap().contains("missing"),
            "objects match nothing"
        );
        // Default deny, first match wins, a named client narrows.
        assert!(find_rule(&[], &t, None).unwrap_err().is_empty());
        let mut second = rule();
        second.id = "fr_2".into();
        second.client_id = "tgc_b".into();
        let rules = [rule(), second];
        assert_eq!(find_rule(&rules, &t, None).unwrap().id, "fr_1");
        assert_eq!(find_rule(&rules, &t, Some("tgc_b")).unwrap().id, "fr_2");
        let why = find_rule(&rules, &t, Some("tgc_c")).unwrap_err();
        assert_eq!(why.len(), 2);
    }

    #[test]
    fn rule_claims_are_bounded() {
        let mut c = BTreeMap::new();
        c.insert("aud".to_string(), "x".to_string());
        assert!(check_claims(&c).is_err());
        let many: BTreeMap<_, _> = (0..17)
            .map(|i| (format!("c{i}"), "x".to_string()))
            .collect();
        assert!(check_claims(&many).is_err());
        assert!(check_pattern("subject", "").is_err());
        assert!(check_pattern("subject", &"a".repeat(257)).is_err());
        assert!(check_pattern("subject", "a\nb").is_err());
        assert!(check_pattern("subject", "repo:org/*").is_ok());
    }
}
