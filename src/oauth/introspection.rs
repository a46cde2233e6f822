//! The introspection answer (RFC 7662 §2.2), written straight from the
//! token's claims: no intermediate JSON tree, no copy of a claim.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::token::Claims;

/// Names an active token's answer always sets; a client's extra claim of
/// the same name is left out (the extra claims cannot override them).
const SET_NAMES: [&str; 14] = [
    "active",
    "token_type",
    "client_id",
    "sub",
    "scope",
    "aud",
    "iss",
    "exp",
    "iat",
    "jti",
    "api_key_id",
    "cnf",
    "act",
    "may_act",
];

/// What an introspection answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `{"active": false}`, which says nothing more (RFC 7662 §2.2).
    Inactive,
    /// An active JWT access token: its claims.
    Token(Arc<Claims>),
    /// An active API key (built by the caller).
    ApiKey(Value),
}

impl Answer {
    /// Whether the token is active.
    pub fn active(&self) -> bool {
        !matches!(self, Answer::Inactive)
    }
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Answer::Inactive => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("active", &false)?;
                m.end()
            }
            Answer::ApiKey(v) => v.serialize(s),
            Answer::Token(c) => active_token(c, s),
        }
    }
}

/// RFC 7662 §2.2 for an active token: `token_type` (RFC 9449 §6.2: `DPoP`
/// for a token bound to a DPoP key), the registered claims, `cnf`
/// (RFC 7800 §3.1), `act` and `may_act` (RFC 8693 §4.1, §4.4), then the
/// client's extra claims under names not set above.
fn active_token<S: Serializer>(c: &Claims, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(None)?;
    m.serialize_entry("active", &true)?;
    let dpop = c.cnf.as_ref().is_some_and(|x| x.jkt.is_some());
    m.serialize_entry("token_type", if dpop { "DPoP" } else { "Bearer" })?;
    m.serialize_entry("client_id", &c.client_id)?;
    m.serialize_entry("sub", &c.sub)?;
    m.serialize_entry("scope", &c.scope)?;
    m.serialize_entry("aud", &c.aud)?;
    m.serialize_entry("iss", &c.iss)?;
    m.serialize_entry("exp", &c.exp)?;
    m.serialize_entry("iat", &c.iat)?;
    m.serialize_entry("jti", &c.jti)?;
    if let Some(k) = &c.api_key_id {
        m.serialize_entry("api_key_id", k)?;
    }
    if let Some(cnf) = &c.cnf {
        m.serialize_entry("cnf", cnf)?;
    }
    if let Some(act) = &c.act {
        m.serialize_entry("act", act)?;
    }
    if let Some(may_act) = &c.may_act {
        m.serialize_entry("may_act", may_act)?;
    }
    for (name, value) in &c.extra {
        if !SET_NAMES.contains(&name.as_str()) {
            m.serialize_entry(name, value)?;
        }
    }
    m.end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims() -> Claims {
        serde_json::from_value(json!({
            "iss": "https://issuer.example", "sub": "c1", "aud": "https://api.example",
            "exp": 200, "iat": 100, "jti": "j1", "client_id": "c1", "scope": "a b",
            "tenant": "acme", "scope_extra": ["x"],
        }))
        .expect("claims")
    }

    #[test]
    fn an_active_token_answers_its_claims_and_its_extra_claims() {
        let mut c = claims();
        // An extra claim may not stand in for a name the answer sets.
        c.extra.insert("active".into(), json!(false));
        c.extra.insert("token_type".into(), json!("Basic"));
        let v = serde_json::to_value(Answer::Token(Arc::new(c))).expect("json");
        assert_eq!(
            v,
            json!({
                "active": true, "token_type": "Bearer", "client_id": "c1", "sub": "c1",
                "scope": "a b", "aud": "https://api.example", "iss": "https://issuer.example",
                "exp": 200, "iat": 100, "jti": "j1", "tenant": "acme", "scope_extra": ["x"],
            })
        );
    }

    #[test]
    fn a_dpop_bound_token_is_of_type_dpop_and_shows_its_key() {
        let mut c = claims();
        c.cnf =
            serde_json::from_value(json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}))
                .expect("cnf");
        let v = serde_json::to_value(Answer::Token(Arc::new(c))).expect("json");
        assert_eq!(v["token_type"], "DPoP");
        assert_eq!(
            v["cnf"]["jkt"],
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
    }

    #[test]
    fn an_inactive_answer_says_nothing_more() {
        assert_eq!(
            serde_json::to_string(&Answer::Inactive).expect("json"),
            r#"{"active":false}"#
        );
        assert!(!Answer::Inactive.active());
    }
}
