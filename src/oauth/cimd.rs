//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document)
//! as pure functions: which `client_id`s are URLs Tollgate resolves (an
//! allowed host), what a fetched document must hold (its own URL as
//! `client_id`, `private_key_jwt` with `jwks` or `jwks_uri`), how long it is
//! kept, and the client it makes under its host's policy. Fetching, caching
//! and the store are the caller's.

use serde_json::Value;

use crate::domain::{CimdHost, Client, ClientAuth, KeySource};

/// The shortest time a document is kept, whatever its `Cache-Control`.
pub const MIN_CACHE: u64 = 60;

/// The longest time a document is kept.
pub const MAX_CACHE: u64 = 24 * 3600;

/// The longest URL client id.
pub const MAX_URL_LEN: usize = 2048;

/// Whether `pattern` is a host name (lower case, labels of letters, digits
/// and `-`, at most 253 bytes), optionally after `*.`: what
/// `TOLLGATE_CIMD_ALLOWED_HOSTS` and a host policy may name.
pub fn is_host_pattern(pattern: &str) -> bool {
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// Whether `host` matches `pattern`: equal, or `*.suffix` and a subdomain
/// of the suffix (not the suffix itself). Both compared in lower case.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        None => pattern == host,
    }
}

/// The host of a `client_id` that is a URL client id Tollgate resolves:
/// `https` (or `http` when local fetches are allowed, for tests and labs),
/// a path, no query or fragment or user info, on an allowed host. `None`
/// for every other client id (then it is looked up as registered).
pub fn url_client_host(client_id: &str, allowed: &[String], allow_http: bool) -> Option<String> {
    if allowed.is_empty() || client_id.len() > MAX_URL_LEN {
        return None;
    }
    let scheme_ok =
        client_id.starts_with("https://") || (allow_http && client_id.starts_with("http://"));
    if !scheme_ok {
        return None;
    }
    let url = reqwest::Url::parse(client_id).ok()?;
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.path() == "/"
    {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    allowed
        .iter()
        .any(|p| host_matches(p, &host))
        .then_some(host)
}

/// The policy that governs a host: an exact entry first, then the longest
/// matching `*.` entry.
pub fn host_policy<'h>(hosts: &'h [CimdHost], host: &str) -> Option<&'h CimdHost> {
    hosts
        .iter()
        .find(|h| h.host.eq_ignore_ascii_case(host))
        .or_else(|| {
            hosts
                .iter()
                .filter(|h| h.host.starts_with("*.") && host_matches(&h.host, host))
                .max_by_key(|h| h.host.len())
        })
}

/// Seconds to keep a document: its `max-age` clamped to 60 s … 24 h
/// (absent: the minimum).
pub fn keep_for(max_age: Option<u64>) -> u64 {
    max_age.unwrap_or(MIN_CACHE).clamp(MIN_CACHE, MAX_CACHE)
}

/// What a document says about its client, once checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// `client_name`, when given.
    pub name: Option<String>,
    /// Its public keys.
    pub keys: KeySource,
}

/// Checks a fetched document for the URL it came from: `client_id` equal
/// to the URL, `token_endpoint_auth_method` `private_key_jwt`, and `jwks`
/// (an object) or `jwks_uri` (a string), not both. The reason is for the
/// log; the caller answers `invalid_client`.
pub fn check_document(url: &str, doc: &Value) -> Result<Document, String> {
    let text = |name: &str| doc.get(name).and_then(Value::as_str);
    if text("client_id") != Some(url) {
        return Err("the document's client_id is not its URL".into());
    }
    if text("token_endpoint_auth_method") != Some("private_key_jwt") {
        return Err("the document's token_endpoint_auth_method is not private_key_jwt".into());
    }
    let keys = match (doc.get("jwks"), doc.get("jwks_uri")) {
        (Some(j @ Value::Object(_)), None) => KeySource::Jwks(j.clone()),
        (None, Some(Value::String(u))) => KeySource::Uri(u.clone()),
        _ => return Err("the document needs jwks or jwks_uri, one of them".into()),
    };
    Ok(Document {
        name: text("client_name").map(|n| n.chars().take(200).collect()),
        keys,
    })
}

/// The client a URL client id stands for: the document's keys, its host's
/// scopes and audiences, the server's defaults for the rest.
pub fn client(url: &str, doc: &Document, policy: &CimdHost) -> Client {
    Client {
        id: url.to_string(),
        name: doc.name.clone().unwrap_or_else(|| url.to_string()),
        owner: None,
        scopes: policy.scopes.clone(),
        audiences: policy.audiences.clone(),
        token_ttl: None,
        disabled: false,
        tokens_revoked_before: None,
        token_quota: None,
        quota_window: None,
        quota_ban: None,
        created_at: policy.created_at,
        updated_at: policy.created_at,
        auth: ClientAuth::PrivateKeyJwt(doc.keys.clone()),
        dpop_bound_access_tokens: false,
        tls_client_certificate_bound_access_tokens: false,
        token_exchange: None,
        claims: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hosts_match_exactly_or_by_subdomain() {
        assert!(host_matches("agents.example", "AGENTS.example"));
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
        assert!(!host_matches("agents.example", "evil-agents.example"));
    }

    #[test]
    fn only_urls_on_allowed_hosts_are_url_clients() {
        let allowed = vec!["*.agents.example".to_string(), "app.example".to_string()];
        let h = |id: &str| url_client_host(id, &allowed, false);
        assert_eq!(
            h("https://x.agents.example/client.json").as_deref(),
            Some("x.agents.example")
        );
        assert_eq!(
            h("https://app.example/oauth/client").as_deref(),
            Some("app.example")
        );
        for no in [
            "tgc_abc",
            "http://app.example/c.json",
            "https://app.example/",
            "https://app.example/c?x=1",
            "https://app.example/c#f",
            "https://u:p@app.example/c",
            "https://other.example/c.json",
        ] {
            assert_eq!(h(no), None, "{no}");
        }
        assert_eq!(
            url_client_host("https://app.example/c", &[], false),
            None,
            "off"
        );
        let local = vec!["127.0.0.1".to_string()];
        assert!(url_client_host("http://127.0.0.1:9/c.json", &local, true).is_some());
    }

    #[test]
    fn the_exact_host_wins_then_the_longest_wildcard() {
        let p = |host: &str| CimdHost {
            host: host.into(),
            scopes: vec![host.into()],
            audiences: vec![],
            created_at: 0,
        };
        let hosts = vec![p("*.example"), p("*.agents.example"), p("a.agents.example")];
        assert_eq!(
            host_policy(&hosts, "a.agents.example").unwrap().host,
            "a.agents.example"
        );
        assert_eq!(
            host_policy(&hosts, "b.agents.example").unwrap().host,
            "*.agents.example"
        );
        assert_eq!(host_policy(&hosts, "c.example").unwrap().host, "*.example");
        assert!(host_policy(&hosts, "other.test").is_none());
    }

    #[test]
    fn documents_are_checked() {
        let url = "https://a.example/c.json";
        let ok = json!({"client_id": url, "token_endpoint_auth_method": "private_key_jwt",
                        "jwks_uri": "https://a.example/jwks", "client_name": "Agent"});
        let d = check_document(url, &ok).unwrap();
        assert_eq!(d.name.as_deref(), Some("Agent"));
        assert_eq!(d.keys, KeySource::Uri("https://a.example/jwks".into()));
        for (bad, words) in [
            (
                json!({"client_id": "https://else/c", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "x"}),
                "client_id",
            ),
            (
                json!({"client_id": url, "token_endpoint_auth_method": "client_secret_basic", "jwks_uri": "x"}),
                "private_key_jwt",
            ),
            (
                json!({"client_id": url, "token_endpoint_auth_method": "private_key_jwt"}),
                "jwks",
            ),
            (
                json!({"client_id": url, "token_endpoint_auth_method": "private_key_jwt", "jwks": {}, "jwks_uri": "x"}),
                "jwks",
            ),
        ] {
            assert!(
                check_document(url, &bad).unwrap_err().contains(words),
                "{bad}"
            );
        }
        assert_eq!(keep_for(None), 60);
        assert_eq!(keep_for(Some(5)), 60);
        assert_eq!(keep_for(Some(600)), 600);
        assert_eq!(keep_for(Some(10_000_000)), 86_400);
    }
}
