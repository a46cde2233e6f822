//! Token exchange (RFC 8693) and transaction tokens
//! (draft-ietf-oauth-transaction-tokens-10) as pure functions: the request's
//! parameters, the subject token once verified (by the caller), and the
//! decision: audience, scope, lifetime and the `act` chain of the token to
//! issue, or the refusal with its reason. Verification, the store and the
//! clock are the caller's.

use serde_json::{json, Map, Value};

use super::error::{OAuthCode, OAuthError};
use super::grant::{is_own_scope, Grant, Policy, TokenRequest};
use super::Params;
use crate::domain::{Client, ExchangePolicy};
use crate::secret::SecretString;
use crate::token::txn::TxnClaims;
use crate::token::Origin;

pub use super::grant::TOKEN_EXCHANGE;

/// RFC 8693 §3: an OAuth 2.0 access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// RFC 8693 §3: a JWT.
pub const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// draft-ietf-oauth-transaction-tokens-10 §10: a transaction token.
pub const TXN_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:txn_token";

/// The longest `request_context` or `request_details`, in bytes.
pub const MAX_CONTEXT_LEN: usize = 2048;

/// `subject_token_type` (RFC 8693 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectType {
    /// `…:access_token`.
    AccessToken,
    /// `…:jwt`.
    Jwt,
    /// `…:txn_token`: a transaction token to replace.
    TxnToken,
}

/// What the client asks for (`requested_token_type`, RFC 8693 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// A Tollgate access token (also for `…:jwt`: Tollgate's access
    /// tokens are JWTs).
    AccessToken,
    /// A transaction token.
    TxnToken,
}

/// The token-exchange parameters of a request (RFC 8693 §2.1).
#[derive(Debug)]
pub struct ExchangeParams {
    /// `subject_token`.
    pub subject_token: SecretString,
    /// `subject_token_type`.
    pub subject_type: SubjectType,
    /// `requested_token_type`; absent means an access token.
    pub requested: Requested,
    /// `request_context` (transaction tokens only).
    pub request_context: Map<String, Value>,
    /// `request_details` (transaction tokens only).
    pub request_details: Map<String, Value>,
}

fn invalid(description: &'static str) -> OAuthError {
    OAuthError::invalid_request(description)
}

/// A JSON object parameter of at most [`MAX_CONTEXT_LEN`] bytes.
fn object_param(params: &Params, name: &'static str) -> Result<Map<String, Value>, OAuthError> {
    let Some(text) = params.single(name)? else {
        return Ok(Map::new());
    };
    if text.len() > MAX_CONTEXT_LEN {
        return Err(OAuthError::invalid_request(format!(
            "{name} is longer than {MAX_CONTEXT_LEN} bytes"
        )));
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(OAuthError::invalid_request(format!(
            "{name} must be a JSON object"
        ))),
    }
}

impl ExchangeParams {
    /// Reads and checks the parameters: `subject_token` and its type are
    /// required (§2.1); `actor_token` is refused (Tollgate records the
    /// authenticated client as the actor); a transaction token is a subject
    /// only for a replacement, and the context parameters belong to
    /// transaction-token requests alone.
    pub fn from_params(params: &Params) -> Result<ExchangeParams, OAuthError> {
        if params.single("actor_token")?.is_some() || params.single("actor_token_type")?.is_some() {
            return Err(invalid(
                "actor_token is not supported: the actor is the authenticated client, recorded \
                 in the issued token's act claim",
            ));
        }
        let subject_token = params
            .single("subject_token")?
            .ok_or_else(|| invalid("subject_token is required"))?;
        let subject_type =
            match params.single("subject_token_type")? {
                None => return Err(invalid("subject_token_type is required")),
                Some(ACCESS_TOKEN_TYPE) => SubjectType::AccessToken,
                Some(JWT_TYPE) => SubjectType::Jwt,
                Some(TXN_TOKEN_TYPE) => SubjectType::TxnToken,
                Some(_) => return Err(invalid(
                    "subject_token_type must be urn:ietf:params:oauth:token-type:access_token, \
                     …:jwt or …:txn_token",
                )),
            };
        let requested =
            match params.single("requested_token_type")? {
                None | Some(ACCESS_TOKEN_TYPE) | Some(JWT_TYPE) => Requested::AccessToken,
                Some(TXN_TOKEN_TYPE) => Requested::TxnToken,
                Some(_) => return Err(invalid(
                    "requested_token_type must be urn:ietf:params:oauth:token-type:access_token \
                     or …:txn_token",
                )),
            };
        let request_context = object_param(params, "request_context")?;
        let request_details = object_param(params, "request_details")?;
        if requested == Requested::AccessToken {
            if subject_type == SubjectType::TxnToken {
                return Err(invalid(
                    "a transaction token is exchanged only for its replacement: set \
                     requested_token_type to urn:ietf:params:oauth:token-type:txn_token",
                ));
            }
            if !request_context.is_empty() || !request_details.is_empty() {
                return Err(invalid(
                    "request_context and request_details belong to transaction-token requests",
                ));
            }
        }
        if subject_type == SubjectType::TxnToken
            && (!request_context.is_empty() || !request_details.is_empty())
        {
            return Err(invalid(
                "a replacement transaction token keeps its original's request_context and \
                 request_details",
            ));
        }
        Ok(ExchangeParams {
            subject_token: SecretString::new(subject_token.to_string()),
            subject_type,
            requested,
            request_context,
            request_details,
        })
    }
}

/// A subject token once verified, whoever issued it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// `iss`.
    pub iss: String,
    /// `sub`.
    pub sub: String,
    /// `aud`.
    pub aud: Vec<String>,
    /// Its scopes (`scope`, or an `scp` list).
    pub scope: Vec<String>,
    /// `exp`.
    pub exp: i64,
    /// Its `act` (RFC 8693 §4.1).
    pub act: Option<Value>,
    /// Its `may_act` (RFC 8693 §4.4).
    pub may_act: Option<Value>,
    /// The Tollgate tokens the new token depends on: the subject itself when
    /// Tollgate issued it, then its own origin.
    pub origin: Vec<Origin>,
}

/// The scopes of an external token: `scope` (space-separated) or `scp` (a
/// list or a string).
pub fn external_scopes(claims: &Map<String, Value>) -> Vec<String> {
    let words = |s: &str| {
        s.split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) => words(s),
        (_, Some(Value::String(s))) => words(s),
        (_, Some(Value::Array(list))) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Why an exchange was refused: the error the caller gets, and the reason
/// the metrics count it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The error (RFC 6749 §5.2, RFC 8693 §2.2.2).
    pub error: OAuthError,
    /// The metric's `reason` label.
    pub reason: &'static str,
}

impl Refused {
    /// A refusal with `code`, `description` and `reason`.
    pub fn new(
        code: OAuthCode,
        description: impl Into<std::borrow::Cow<'static, str>>,
        reason: &'static str,
    ) -> Refused {
        Refused {
            error: OAuthError::new(code, description),
            reason,
        }
    }
}

/// The metric reasons an exchange may be refused for, so that their series
/// exist from start-up.
pub const REFUSAL_REASONS: &[&str] = &[
    "no_policy",
    "request",
    "subject_inactive",
    "subject_issuer",
    "subject_audience",
    "may_act",
    "depth",
    "scope",
    "target",
    "txn_disabled",
];

/// How many actors an `act` chain records; `None` if it is not a chain of
/// objects each with a string `sub` (RFC 8693 §4.1).
pub fn act_depth(act: Option<&Value>) -> Option<usize> {
    let mut depth = 0;
    let mut next = act;
    while let Some(v) = next {
        let obj = v.as_object()?;
        obj.get("sub")?.as_str()?;
        depth += 1;
        if depth > 64 {
            return None;
        }
        next = obj.get("act");
    }
    Some(depth)
}

/// Whether a subject's `may_act` (RFC 8693 §4.4) names the client `id` of
/// this server `issuer`: its `sub`, and its `iss` when present.
pub fn may_act_allows(may_act: &Value, id: &str, issuer: &str) -> bool {
    let Some(obj) = may_act.as_object() else {
        return false;
    };
    obj.get("sub").and_then(Value::as_str) == Some(id)
        && obj.get("iss").is_none_or(|i| i.as_str() == Some(issuer))
}

/// Checks that a subject may be exchanged by `client` under its `policy`:
/// its audience is one the client serves, its `may_act` (if any) names the
/// client, and one more actor stays within `max_depth`. Returns the new
/// token's `act`: the client, with the subject's chain nested (§4.1).
pub fn check_subject(
    client: &Client,
    policy: &ExchangePolicy,
    subject: &Subject,
    issuer: &str,
    max_depth: usize,
) -> Result<Value, Refused> {
    if !policy.admits_audience(&subject.aud) {
        return Err(Refused::new(
            OAuthCode::InvalidRequest,
            "the subject token's audience is none of this client's token_exchange \
             subject_audiences",
            "subject_audience",
        ));
    }
    if let Some(m) = &subject.may_act {
        if !may_act_allows(m, &client.id, issuer) {
            return Err(Refused::new(
                OAuthCode::InvalidRequest,
                "the subject token's may_act does not name this client",
                "may_act",
            ));
        }
    }
    let depth = act_depth(subject.act.as_ref()).ok_or_else(|| {
        Refused::new(
            OAuthCode::InvalidRequest,
            "the subject token's act claim is malformed",
            "subject_inactive",
        )
    })?;
    if depth + 1 > max_depth {
        return Err(Refused::new(
            OAuthCode::InvalidRequest,
            format!(
                "the subject token already records {depth} actors; one more would pass the \
                 limit of {max_depth}"
            ),
            "depth",
        ));
    }
    let mut act = json!({ "sub": client.id });
    if let Some(inner) = &subject.act {
        act["act"] = inner.clone();
    }
    Ok(act)
}

/// Requested ⊆ `available` (absent: all of it), never a `tollgate:*` scope;
/// in `available`'s order.
pub(crate) fn narrow_scope(
    available: &[String],
    requested: Option<&str>,
) -> Result<Vec<String>, Refused> {
    let scope_error = |d: &'static str| Refused::new(OAuthCode::InvalidScope, d, "scope");
    let available: Vec<String> = available
        .iter()
        .filter(|s| !is_own_scope(s))
        .cloned()
        .collect();
    let Some(text) = requested else {
        return Ok(available);
    };
    let parsed: oxide_auth::primitives::scope::Scope =
        text.parse().map_err(|_| scope_error("malformed scope"))?;
    let words: Vec<&str> = parsed.iter().collect();
    if words.iter().any(|w| is_own_scope(w)) {
        return Err(scope_error(
            "tollgate:* scopes are never obtained by exchange",
        ));
    }
    if !words.iter().all(|w| available.iter().any(|a| a == w)) {
        return Err(scope_error(
            "requested scope exceeds what the subject token and the client both hold",
        ));
    }
    Ok(available
        .into_iter()
        .filter(|a| words.contains(&a.as_str()))
        .collect())
}

/// The grant of a token acting for someone else (token exchange, an
/// ID-JAG): audience `fixed` when the grant names one (a request may only
/// repeat it), else the requested ones, each one of the client's (RFC 8707),
/// or the client's first; never this server's issuer (`own_refusal` says
/// why). Scope = `held` ∩ the client's, narrowed by the request's, never
/// `tollgate:*`. Lifetime: the client's.
pub(crate) fn delegated_grant(
    client: &Client,
    held: &[String],
    fixed: Option<&str>,
    req: &TokenRequest,
    policy: &Policy,
    own_refusal: &'static str,
) -> Result<Grant, Refused> {
    let target = |d: &'static str| Refused::new(OAuthCode::InvalidTarget, d, "target");
    let audience = match fixed {
        Some(r) => {
            if req.audiences.iter().any(|a| a != r) {
                return Err(target("the requested resource is not the grant's resource"));
            }
            vec![r.to_string()]
        }
        None if req.audiences.is_empty() => vec![client
            .audiences
            .first()
            .cloned()
            .ok_or_else(|| target("the client has no audience"))?],
        None => {
            if !req.audiences.iter().all(|a| client.audiences.contains(a)) {
                return Err(target("requested audience is not allowed for this client"));
            }
            req.audiences.clone()
        }
    };
    if audience.iter().any(|a| a == &policy.issuer) {
        return Err(target(own_refusal));
    }
    let both: Vec<String> = client
        .scopes
        .iter()
        .filter(|s| held.contains(s))
        .cloned()
        .collect();
    let scope = narrow_scope(&both, req.scope.as_deref())?;
    Ok(Grant {
        scope,
        audience,
        ttl: super::grant::client_ttl(client, policy),
    })
}

/// The grant of an access token by exchange ([`delegated_grant`] with the
/// subject's scope), its lifetime never past the subject's `exp`.
pub fn decide(
    client: &Client,
    subject: &Subject,
    req: &TokenRequest,
    policy: &Policy,
    now: i64,
) -> Result<Grant, Refused> {
    let mut grant = delegated_grant(
        client,
        &subject.scope,
        None,
        req,
        policy,
        "a token obtained by exchange is never for this server's own endpoints",
    )?;
    grant.ttl = grant.ttl.min(subject.exp - now).max(1);
    Ok(grant)
}

/// The trust domain and lifetime of transaction tokens.
#[derive(Debug, Clone, Copy)]
pub struct TxnPolicy<'a> {
    /// This server's issuer identifier.
    pub issuer: &'a str,
    /// `TOLLGATE_TXN_TRUST_DOMAIN`.
    pub trust_domain: &'a str,
    /// `TOLLGATE_TXN_TOKEN_TTL`.
    pub ttl: i64,
}

/// What a transaction token is made from: a subject token, or a transaction
/// token to replace.
#[derive(Debug, Clone)]
pub enum TxnSubject {
    /// An access token or JWT, verified.
    Token(Subject),
    /// A transaction token Tollgate issued, verified.
    Replace(TxnClaims),
}

/// The claims of a transaction token (draft §4.1.2): `aud` must be the
/// trust domain (§7.1); scope ⊆ the subject's; a replacement (§7.2) keeps
/// `txn`, `sub`, `aud` and the contexts, appends the requester to `req_wl`,
/// and ends no later than its original.
#[allow(clippy::too_many_arguments)]
pub fn decide_txn(
    client: &Client,
    policy: &ExchangePolicy,
    subject: &TxnSubject,
    req: &TokenRequest,
    params: &ExchangeParams,
    txn: &TxnPolicy<'_>,
    caller_ip: &str,
    fresh_txn: String,
    now: i64,
) -> Result<TxnClaims, Refused> {
    if req.audiences != [txn.trust_domain] {
        return Err(Refused::new(
            OAuthCode::InvalidTarget,
            "audience must be the transaction-token trust domain, alone",
            "target",
        ));
    }
    match subject {
        TxnSubject::Token(s) => {
            if !policy.admits_audience(&s.aud) {
                return Err(Refused::new(
                    OAuthCode::InvalidRequest,
                    "the subject token's audience is none of this client's token_exchange \
                     subject_audiences",
                    "subject_audience",
                ));
            }
            let scope = narrow_scope(&s.scope, req.scope.as_deref())?;
            let mut rctx = params.request_context.clone();
            rctx.insert("req_ip".into(), Value::String(caller_ip.to_string()));
            Ok(TxnClaims {
                iss: txn.issuer.to_string(),
                iat: now,
                exp: (now + txn.ttl).min(s.exp),
                aud: txn.trust_domain.to_string(),
                txn: fresh_txn,
                sub: s.sub.clone(),
                scope: scope.join(" "),
                req_wl: Value::String(client.id.clone()),
                rctx,
                tctx: params.request_details.clone(),
            })
        }
        TxnSubject::Replace(original) => {
            let held: Vec<String> = original
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let scope = narrow_scope(&held, req.scope.as_deref())?;
            let mut workloads = original.workloads();
            workloads.push(client.id.clone());
            Ok(TxnClaims {
                iss: txn.issuer.to_string(),
                iat: now,
                exp: (now + txn.ttl).min(original.exp),
                aud: original.aud.clone(),
                txn: original.txn.clone(),
                sub: original.sub.clone(),
                scope: scope.join(" "),
                req_wl: json!(workloads),
                rctx: original.rctx.clone(),
                tctx: original.tctx.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client {
            scopes: vec!["orders:read".into(), "orders:write".into(), "pay".into()],
            audiences: vec!["https://payments".into(), "https://ledger".into()],
            ..Client::fixture("orders")
        }
    }

    fn policy() -> ExchangePolicy {
        ExchangePolicy {
            subject_audiences: vec!["https://orders".into()],
            subject_issuers: vec![],
            txn_tokens: true,
        }
    }

    fn grant_policy() -> Policy {
        Policy {
            issuer: "http://iss".into(),
            default_ttl: 3600,
            max_ttl: 86_400,
        }
    }

    fn subject() -> Subject {
        Subject {
            iss: "http://iss".into(),
            sub: "user-1".into(),
            aud: vec!["https://orders".into()],
            scope: vec!["orders:read".into(), "pay".into(), "other".into()],
            exp: 1_000 + 600,
            act: Some(json!({"sub": "gateway"})),
            may_act: None,
            origin: vec![],
        }
    }

    fn req(scope: Option<&str>, aud: &[&str]) -> TokenRequest {
        TokenRequest {
            scope: scope.map(str::to_string),
            audiences: aud.iter().map(|s| s.to_string()).collect(),
            dpop: None,
            certificate: None,
        }
    }

    #[test]
    fn parameters_are_required_and_actor_tokens_refused() {
        let p = Params::from_pairs([("subject_token_type", ACCESS_TOKEN_TYPE)]);
        let e = ExchangeParams::from_params(&p).unwrap_err();
        assert_eq!(e.description, "subject_token is required");
        let p = Params::from_pairs([("subject_token", "t")]);
        let e = ExchangeParams::from_params(&p).unwrap_err();
        assert_eq!(e.description, "subject_token_type is required");
        let p = Params::from_pairs([
            ("subject_token", "t"),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("actor_token", "a"),
        ]);
        let e = ExchangeParams::from_params(&p).unwrap_err();
        assert!(e.description.starts_with("actor_token is not supported"));
        let p = Params::from_pairs([("subject_token", "t"), ("subject_token_type", "x")]);
        assert_eq!(
            ExchangeParams::from_params(&p).unwrap_err().code,
            OAuthCode::InvalidRequest
        );
        let p = Params::from_pairs([
            ("subject_token", "t"),
            ("subject_token_type", JWT_TYPE),
            ("requested_token_type", TXN_TOKEN_TYPE),
            ("request_context", r#"{"device":"d1"}"#),
        ]);
        let x = ExchangeParams::from_params(&p).unwrap();
        assert_eq!(x.requested, Requested::TxnToken);
        assert_eq!(x.request_context["device"], "d1");
        let p = Params::from_pairs([
            ("subject_token", "t"),
            ("subject_token_type", JWT_TYPE),
            ("requested_token_type", TXN_TOKEN_TYPE),
            ("request_details", "[1]"),
        ]);
        assert_eq!(
            ExchangeParams::from_params(&p).unwrap_err().description,
            "request_details must be a JSON object"
        );
        let long = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_CONTEXT_LEN));
        let p = Params::from_pairs([
            ("subject_token", "t"),
            ("subject_token_type", JWT_TYPE),
            ("requested_token_type", TXN_TOKEN_TYPE),
            ("request_context", long.as_str()),
        ]);
        assert!(ExchangeParams::from_params(&p)
            .unwrap_err()
            .description
            .contains("longer than 2048"));
        let p = Params::from_pairs([
            ("subject_token", "t"),
            ("subject_token_type", TXN_TOKEN_TYPE),
        ]);
        assert!(ExchangeParams::from_params(&p).is_err());
    }

    #[test]
    fn the_chain_nests_and_is_bounded() {
        let act = check_subject(&client(), &policy(), &subject(), "http://iss", 4).unwrap();
        assert_eq!(act, json!({"sub": "orders", "act": {"sub": "gateway"}}));
        assert_eq!(act_depth(Some(&act)), Some(2));
        let e = check_subject(&client(), &policy(), &subject(), "http://iss", 1).unwrap_err();
        assert_eq!(e.reason, "depth");
        let mut s = subject();
        s.act = Some(json!({"act": {"sub": "x"}}));
        assert!(check_subject(&client(), &policy(), &s, "http://iss", 4).is_err());
        s.act = None;
        let act = check_subject(&client(), &policy(), &s, "http://iss", 1).unwrap();
        assert_eq!(act, json!({"sub": "orders"}));
    }

    #[test]
    fn may_act_and_the_subject_audience_are_enforced() {
        let mut s = subject();
        s.may_act = Some(json!({"sub": "orders"}));
        assert!(check_subject(&client(), &policy(), &s, "http://iss", 4).is_ok());
        s.may_act = Some(json!({"sub": "orders", "iss": "http://other"}));
        let e = check_subject(&client(), &policy(), &s, "http://iss", 4).unwrap_err();
        assert_eq!(e.reason, "may_act");
        s.may_act = Some(json!({"sub": "someone-else"}));
        assert!(check_subject(&client(), &policy(), &s, "http://iss", 4).is_err());
        s.may_act = Some(json!("orders"));
        assert!(check_subject(&client(), &policy(), &s, "http://iss", 4).is_err());
        let mut s = subject();
        s.aud = vec!["https://elsewhere".into()];
        let e = check_subject(&client(), &policy(), &s, "http://iss", 4).unwrap_err();
        assert_eq!(e.reason, "subject_audience");
    }

    #[test]
    fn scope_audience_and_lifetime_are_narrowed() {
        let g = decide(
            &client(),
            &subject(),
            &req(None, &[]),
            &grant_policy(),
            1_000,
        )
        .unwrap();
        assert_eq!(g.scope, ["orders:read", "pay"]);
        assert_eq!(g.audience, ["https://payments"]);
        assert_eq!(g.ttl, 600, "never past the subject's exp");
        let g = decide(
            &client(),
            &subject(),
            &req(Some("pay"), &["https://ledger"]),
            &grant_policy(),
            1_000,
        )
        .unwrap();
        assert_eq!(
            (g.scope, g.audience),
            (vec!["pay".to_string()], vec!["https://ledger".to_string()])
        );
        let e = decide(
            &client(),
            &subject(),
            &req(Some("orders:write"), &[]),
            &grant_policy(),
            1_000,
        )
        .unwrap_err();
        assert_eq!(e.error.code, OAuthCode::InvalidScope);
        let e = decide(
            &client(),
            &subject(),
            &req(None, &["https://evil"]),
            &grant_policy(),
            1_000,
        )
        .unwrap_err();
        assert_eq!(e.error.code, OAuthCode::InvalidTarget);
        let mut c = client();
        c.audiences.push("http://iss".into());
        c.scopes.push("tollgate:admin".into());
        let mut s = subject();
        s.scope.push("tollgate:admin".into());
        let e = decide(&c, &s, &req(None, &["http://iss"]), &grant_policy(), 1_000).unwrap_err();
        assert_eq!(e.error.code, OAuthCode::InvalidTarget);
        let g = decide(&c, &s, &req(None, &[]), &grant_policy(), 1_000).unwrap();
        assert!(!g.scope.iter().any(|x| is_own_scope(x)));
        let e = decide(
            &c,
            &s,
            &req(Some("tollgate:admin"), &[]),
            &grant_policy(),
            1_000,
        )
        .unwrap_err();
        assert_eq!(e.error.code, OAuthCode::InvalidScope);
        let mut c = client();
        c.audiences.clear();
        assert_eq!(
            decide(&c, &subject(), &req(None, &[]), &grant_policy(), 1_000)
                .unwrap_err()
                .reason,
            "target"
        );
    }

    #[test]
    fn transaction_tokens_keep_their_transaction_when_replaced() {
        let txn = TxnPolicy {
            issuer: "http://iss",
            trust_domain: "https://td.example",
            ttl: 60,
        };
        let p = Params::from_pairs([
            ("subject_token", "t"),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("requested_token_type", TXN_TOKEN_TYPE),
            ("request_context", r#"{"req_ip":"6.6.6.6","device":"d"}"#),
            ("request_details", r#"{"action":"buy"}"#),
        ]);
        let params = ExchangeParams::from_params(&p).unwrap();
        let s = TxnSubject::Token(subject());
        let e = decide_txn(
            &client(),
            &policy(),
            &s,
            &req(None, &[]),
            &params,
            &txn,
            "1.2.3.4",
            "x".into(),
            1_000,
        )
        .unwrap_err();
        assert_eq!(e.error.code, OAuthCode::InvalidTarget);
        let r = req(Some("pay"), &["https://td.example"]);
        let t = decide_txn(
            &client(),
            &policy(),
            &s,
            &r,
            &params,
            &txn,
            "1.2.3.4",
            "txn-1".into(),
            1_000,
        )
        .unwrap();
        assert_eq!(
            (t.sub.as_str(), t.scope.as_str(), t.txn.as_str()),
            ("user-1", "pay", "txn-1")
        );
        assert_eq!(t.rctx["req_ip"], "1.2.3.4", "the caller's address wins");
        assert_eq!(t.rctx["device"], "d");
        assert_eq!(t.tctx["action"], "buy");
        assert_eq!((t.iat, t.exp), (1_000, 1_060));
        assert_eq!(t.req_wl, json!("orders"));
        // Replaced 30 s later by another workload: same txn, never later.
        let p = Params::from_pairs([
            ("subject_token", "t"),
            ("subject_token_type", TXN_TOKEN_TYPE),
            ("requested_token_type", TXN_TOKEN_TYPE),
        ]);
        let params = ExchangeParams::from_params(&p).unwrap();
        let mut other = client();
        other.id = "payments".into();
        let r2 = req(None, &["https://td.example"]);
        let t2 = decide_txn(
            &other,
            &policy(),
            &TxnSubject::Replace(t.clone()),
            &r2,
            &params,
            &txn,
            "5.5.5.5",
            "fresh".into(),
            1_030,
        )
        .unwrap();
        assert_eq!(
            (t2.txn.as_str(), t2.exp, t2.scope.as_str()),
            ("txn-1", 1_060, "pay")
        );
        assert_eq!(t2.req_wl, json!(["orders", "payments"]));
        assert_eq!(t2.rctx, t.rctx);
        let r3 = req(Some("pay orders:read"), &["https://td.example"]);
        let e = decide_txn(
            &other,
            &policy(),
            &TxnSubject::Replace(t),
            &r3,
            &params,
            &txn,
            "5.5.5.5",
            "f".into(),
            1_030,
        )
        .unwrap_err();
        assert_eq!(e.error.code, OAuthCode::InvalidScope, "never wider");
    }

    #[test]
    fn external_scopes_read_scope_or_scp() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(external_scopes(&m(json!({"scope": "a b"}))), ["a", "b"]);
        assert_eq!(external_scopes(&m(json!({"scp": ["a", "b"]}))), ["a", "b"]);
        assert!(external_scopes(&m(json!({}))).is_empty());
    }
}
