//! Request bodies, form-encoded or JSON, decoded into one parameter map that
//! refuses repeated parameters (RFC 6749 §3.2) and oversized values.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::error::{OAuthCode, OAuthError};

/// The most parameters a body may carry.
pub const MAX_PARAMS: usize = 32;
/// The longest a parameter name or value may be, in bytes.
pub const MAX_VALUE_LEN: usize = crate::token::MAX_TOKEN_LEN;
/// The longest an assertion parameter may be (`client_assertion`,
/// `assertion`): an external token signed with RSA-4096 and carrying many
/// claims exceeds 4 KiB. Tollgate's own tokens keep [`MAX_VALUE_LEN`].
pub const MAX_ASSERTION_PARAM_LEN: usize = super::assertion::MAX_ASSERTION_LEN;

/// Parameters that carry an assertion from outside, allowed up to
/// [`MAX_ASSERTION_PARAM_LEN`].
const ASSERTION_PARAMS: [&str; 3] = ["client_assertion", "assertion", "subject_token"];

/// Parameters whose value is a JSON object (draft-ietf-oauth-transaction-tokens-10
/// §7.1): in a JSON body they may come as objects, kept as their text.
const OBJECT_PARAMS: [&str; 2] = ["request_context", "request_details"];

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/x-www-form-urlencoded` (RFC 6749 §4.4.2).
    Form,
    /// `application/json`.
    Json,
}

/// Picks the decoder from the `Content-Type` header; anything else is 415.
/// A missing content type with an empty body decodes as an empty form.
pub fn body_kind(content_type: Option<&str>, body_len: usize) -> Result<BodyKind, OAuthError> {
    let Some(ct) = content_type else {
        if body_len == 0 {
            return Ok(BodyKind::Form);
        }
        return Err(OAuthError::new(
            OAuthCode::UnsupportedMediaType,
            "Content-Type must be application/x-www-form-urlencoded or application/json",
        ));
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Ok(BodyKind::Form),
        "application/json" => Ok(BodyKind::Json),
        _ => Err(OAuthError::new(
            OAuthCode::UnsupportedMediaType,
            "Content-Type must be application/x-www-form-urlencoded or application/json",
        )),
    }
}

/// Decoded request parameters: each name with every value it was given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    map: BTreeMap<String, Vec<String>>,
}

impl Params {
    /// Decodes a body of the given kind.
    pub fn decode(kind: BodyKind, body: &[u8]) -> Result<Params, OAuthError> {
        match kind {
            BodyKind::Form => Self::from_form(body),
            BodyKind::Json => Self::from_json(body),
        }
    }

    /// Decodes `application/x-www-form-urlencoded` (the WHATWG URL
    /// standard's parser, §5.1, which RFC 6749 Appendix B points to):
    /// pairs split on `&`, a name from its value on the first `=`, `+` a
    /// space, then percent-decoding (the `percent_encoding` crate).
    ///
    /// Unlike that parser, which decodes invalid UTF-8 lossily (to U+FFFD),
    /// a body or a decoded part that is not UTF-8 is refused rather than
    /// acted on mangled. A part without `%` or `+` is taken as it is (the
    /// body is UTF-8 already), so the common bodies are read in one pass
    /// with no copy but the parameter's own string.
    pub fn from_form(body: &[u8]) -> Result<Params, OAuthError> {
        let body = std::str::from_utf8(body)
            .map_err(|_| OAuthError::invalid_request("request body is not valid UTF-8"))?;
        let mut params = Params::default();
        for pair in body.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.push(
                form_part(name)?.into_owned(),
                form_part(value)?.into_owned(),
            )?;
        }
        Ok(params)
    }

    /// Decodes a JSON object whose members are strings or arrays of strings;
    /// `null` members count as absent.
    pub fn from_json(body: &[u8]) -> Result<Params, OAuthError> {
        let object: JsonObject = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                OAuthError::invalid_request("JSON body must be an object")
            } else {
                OAuthError::invalid_request("malformed JSON body")
            }
        })?;
        let mut params = Params::default();
        for (name, value) in object.0 {
            match value {
                Value::Null => {}
                Value::String(s) => params.push(name, s)?,
                Value::Object(_) if OBJECT_PARAMS.contains(&name.as_str()) => {
                    let text = value.to_string();
                    params.push(name, text)?
                }
                Value::Array(items) => {
                    for item in items {
                        match item {
                            Value::String(s) => params.push(name.clone(), s)?,
                            _ => return Err(not_string(&name)),
                        }
                    }
                }
                _ => return Err(not_string(&name)),
            }
        }
        Ok(params)
    }

    pub(super) fn push(&mut self, name: String, value: String) -> Result<(), OAuthError> {
        let limit = if ASSERTION_PARAMS.contains(&name.as_str()) {
            MAX_ASSERTION_PARAM_LEN
        } else {
            MAX_VALUE_LEN
        };
        if name.len() > MAX_VALUE_LEN || value.len() > limit {
            return Err(OAuthError::invalid_request(format!(
                "a parameter is longer than {limit} bytes"
            )));
        }
        let count: usize = self.map.values().map(Vec::len).sum();
        if count >= MAX_PARAMS {
            return Err(OAuthError::invalid_request(format!(
                "more than {MAX_PARAMS} parameters"
            )));
        }
        self.map.entry(name).or_default().push(value);
        Ok(())
    }

    /// A parameter that may appear at most once (RFC 6749 §3.2). Empty values
    /// count as absent (RFC 6749 §3.1).
    pub fn single(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        match self.map.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) if one.is_empty() => Ok(None),
            Some([one]) => Ok(Some(one)),
            Some(_) => Err(OAuthError::invalid_request(format!(
                "parameter {} must not be repeated",
                printable(name)
            ))),
        }
    }

    /// Every non-empty value of a parameter that may repeat (RFC 8707 `resource`).
    pub fn multi(&self, name: &str) -> Vec<&str> {
        self.map
            .get(name)
            .map(|v| {
                v.iter()
                    .map(String::as_str)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Builds parameters from pairs (tests and internal callers).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Params {
        let mut p = Params::default();
        for (k, v) in pairs {
            p.map.entry(k.to_string()).or_default().push(v.to_string());
        }
        p
    }
}

/// A parameter name shown in an error: bounded and stripped of control characters.
fn printable(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// The parameter names Tollgate reads; only these are ever named in an error.
const KNOWN: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "audience",
    "resource",
    "secret_key",
    "token",
    "token_type_hint",
    "subject_token",
    "subject_token_type",
    "requested_token_type",
    "actor_token",
    "actor_token_type",
    "request_context",
    "request_details",
];

/// One name or value of a form: `+` is a space, then percent-decoding;
/// the result must be UTF-8. Also the rule of Basic credentials' id and
/// secret (RFC 6749 §2.3.1). A part with neither `%` nor `+` is returned as
/// it is, without a copy.
pub(super) fn form_part(part: &str) -> Result<Cow<'_, str>, OAuthError> {
    if memchr::memchr2(b'%', b'+', part.as_bytes()).is_none() {
        return Ok(Cow::Borrowed(part));
    }
    let spaced = part.replace('+', " ");
    let decoded: Vec<u8> = percent_encoding::percent_decode(spaced.as_bytes()).collect();
    String::from_utf8(decoded)
        .map(Cow::Owned)
        .map_err(|_| OAuthError::invalid_request("parameter is not valid UTF-8"))
}

/// A submitted member that is not a string. Its name is shown only when it
/// is one Tollgate knows: an error never echoes what the caller sent.
fn not_string(name: &str) -> OAuthError {
    match KNOWN.iter().find(|k| **k == name) {
        Some(k) => OAuthError::invalid_request(format!("parameter {k} must be a string")),
        None => OAuthError::invalid_request("every parameter must be a string"),
    }
}

/// A JSON object kept as its members in order, duplicates included, so that
/// a repeated member is refused rather than silently overwritten.
struct JsonObject(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    if out.len() >= MAX_PARAMS {
                        return Err(serde::de::Error::custom("too many members"));
                    }
                    out.push((k, v));
                }
                Ok(JsonObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_and_json_decode_to_the_same_params() {
        let f = Params::from_form(b"grant_type=client_credentials&scope=a+b&resource=x&resource=y")
            .unwrap();
        let j = Params::from_json(
            br#"{"grant_type":"client_credentials","scope":"a b","resource":["x","y"]}"#,
        )
        .unwrap();
        assert_eq!(f, j);
        assert_eq!(f.single("scope").unwrap(), Some("a b"));
        assert_eq!(f.multi("resource"), vec!["x", "y"]);
    }

    #[test]
    fn repeated_parameters_are_invalid_request() {
        let p = Params::from_form(b"scope=a&scope=b").unwrap();
        assert_eq!(
            p.single("scope").unwrap_err().code,
            OAuthCode::InvalidRequest
        );
        let p = Params::from_json(br#"{"scope":"a","scope":"b"}"#).unwrap();
        assert_eq!(
            p.single("scope").unwrap_err().code,
            OAuthCode::InvalidRequest
        );
    }

    #[test]
    fn hostile_bodies_are_refused() {
        assert!(Params::from_json(b"[1,2]").is_err());
        assert!(Params::from_json(b"{\"a\":").is_err());
        assert!(Params::from_json(br#"{"a":1}"#).is_err());
        assert!(Params::from_form(b"a=%FF").is_err());
        assert!(Params::from_form(&[0x61, 0x3d, 0xff]).is_err());
        let long = format!("a={}", "x".repeat(MAX_VALUE_LEN + 1));
        assert!(Params::from_form(long.as_bytes()).is_err());
        // Assertions from outside may be up to 8 KiB, and no longer.
        for name in ASSERTION_PARAMS {
            let fits = format!("{name}={}", "x".repeat(MAX_ASSERTION_PARAM_LEN));
            assert!(Params::from_form(fits.as_bytes()).is_ok(), "{name}");
            let over = format!("{name}={}", "x".repeat(MAX_ASSERTION_PARAM_LEN + 1));
            assert!(Params::from_form(over.as_bytes()).is_err(), "{name}");
        }
        let token = format!("token={}", "x".repeat(MAX_VALUE_LEN + 1));
        assert!(Params::from_form(token.as_bytes()).is_err());
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=v")).collect();
        assert!(Params::from_form(many.join("&").as_bytes()).is_err());
    }

    #[test]
    fn content_types_pick_decoder_or_415() {
        assert_eq!(
            body_kind(Some("application/json; charset=utf-8"), 2).unwrap(),
            BodyKind::Json
        );
        assert_eq!(
            body_kind(Some("Application/X-WWW-Form-Urlencoded"), 2).unwrap(),
            BodyKind::Form
        );
        assert_eq!(
            body_kind(Some("text/plain"), 2).unwrap_err().code,
            OAuthCode::UnsupportedMediaType
        );
        assert_eq!(
            body_kind(None, 5).unwrap_err().code,
            OAuthCode::UnsupportedMediaType
        );
    }
}
