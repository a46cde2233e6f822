//! Shared Signals (OpenID SSF 1.0) as pure protocol: which event each
//! recorded action becomes (CAEP 1.0 and RISC 1.0 event types), its
//! subject in an RFC 9493 / SSF 1.0 §3 format, and the Security Event
//! Token's claims (RFC 8417 §2.2). No I/O; takes the audit entry and `now`.

use serde_json::{json, Map, Value};

use crate::domain::AuditEntry;

/// CAEP 1.0 §3.1: a session (here: an access token, or every token of a
/// client issued up to a time) was revoked.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// CAEP 1.0 §3.3: a credential was created, changed or revoked.
pub const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
/// RISC 1.0 §2.3: the account (here: the client) was disabled.
pub const ACCOUNT_DISABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
/// RISC 1.0 §2.4: the account was enabled again.
pub const ACCOUNT_ENABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-enabled";
/// RISC 1.0 §2.2: the account was deleted.
pub const ACCOUNT_PURGED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-purged";
/// RISC 1.0 §2.7: a credential (here: a signing key) was compromised.
pub const CREDENTIAL_COMPROMISE: &str =
    "https://schemas.openid.net/secevent/risc/event-type/credential-compromise";
/// SSF 1.0 §8.1.4.1: the verification event.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// Every event type Tollgate transmits (`events_supported`).
pub const EVENTS_SUPPORTED: [&str; 7] = [
    SESSION_REVOKED,
    CREDENTIAL_CHANGE,
    ACCOUNT_DISABLED,
    ACCOUNT_ENABLED,
    ACCOUNT_PURGED,
    CREDENTIAL_COMPROMISE,
    VERIFICATION,
];

/// One event: its type, its subject (`sub_id`) and its members.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event type URI.
    pub typ: &'static str,
    /// The subject, in an RFC 9493 (or SSF 1.0 §3) format.
    pub sub_id: Value,
    /// The event's members.
    pub body: Value,
    /// The client the event is about, when it is about one.
    pub client_id: Option<String>,
}

/// SSF 1.0 §3.2.1: the JWT ID subject format (`iss` and `jti`).
fn jwt_id(issuer: &str, jti: &str) -> Value {
    json!({"format": "jwt_id", "iss": issuer, "jti": jti})
}

/// RFC 9493 §3.2.5: the Issuer and Subject format; a client-credentials
/// token's `sub` is its client id.
fn client_subject(issuer: &str, client_id: &str) -> Value {
    json!({"format": "iss_sub", "iss": issuer, "sub": client_id})
}

/// CAEP 1.0 §2 `initiating_entity`: the client itself (`user`), Tollgate
/// (`system`) or someone else (`admin`).
fn initiator(entry: &AuditEntry, client_id: Option<&str>) -> &'static str {
    if entry.actor == "system" {
        "system"
    } else if client_id == Some(entry.actor.as_str()) {
        "user"
    } else {
        "admin"
    }
}

/// The event a recorded action becomes, if it is one a resource server
/// must hear of: a token revoked (RFC 7009, or every token of a client),
/// a client disabled, enabled or deleted, a secret rotated, an API key
/// revoked, a signing key marked compromised.
pub fn event_of(entry: &AuditEntry, issuer: &str) -> Option<Event> {
    let target = entry.target.as_deref()?;
    let detail = |k: &str| entry.detail.get(k).and_then(Value::as_str);
    let timestamp = entry.at;
    let (typ, sub_id, mut body, client) = match entry.action.as_str() {
        "token.revoke" => {
            let client = detail("client_id").unwrap_or(&entry.actor).to_string();
            let mut body = json!({});
            // A token obtained by token exchange: the tokens it came from,
            // so a receiver can tell the chain (RFC 8693 §4.1).
            if let Some(origin) = entry.detail.get("origin").filter(|o| o.is_array()) {
                body["tollgate_origin"] = origin.clone();
            }
            body["tollgate_client_id"] = json!(client);
            (SESSION_REVOKED, jwt_id(issuer, target), body, Some(client))
        }
        "client.revoke_tokens" => (
            SESSION_REVOKED,
            client_subject(issuer, target),
            // Every token of the client issued at or before this second.
            json!({"tollgate_tokens_issued_before": entry.detail.get("revoked_before").cloned().unwrap_or(json!(timestamp))}),
            Some(target.to_string()),
        ),
        "client.disable" => (
            ACCOUNT_DISABLED,
            client_subject(issuer, target),
            json!({}),
            Some(target.to_string()),
        ),
        "client.enable" => (
            ACCOUNT_ENABLED,
            client_subject(issuer, target),
            json!({}),
            Some(target.to_string()),
        ),
        "client.delete" => (
            ACCOUNT_PURGED,
            client_subject(issuer, target),
            json!({}),
            Some(target.to_string()),
        ),
        "client.rotate_secret" => (
            CREDENTIAL_CHANGE,
            client_subject(issuer, target),
            json!({"credential_type": "client_secret", "change_type": "update"}),
            Some(target.to_string()),
        ),
        "api_key.revoke" => {
            let client = detail("client_id").unwrap_or(&entry.actor).to_string();
            (
                CREDENTIAL_CHANGE,
                client_subject(issuer, &client),
                json!({"credential_type": "api_key", "change_type": "revoke", "tollgate_api_key_id": target}),
                Some(client),
            )
        }
        "signing_key.compromise" => (
            CREDENTIAL_COMPROMISE,
            json!({"format": "opaque", "id": target}),
            json!({"credential_type": "signing_key", "tollgate_jwks_kid": target}),
            None,
        ),
        _ => return None,
    };
    if typ != CREDENTIAL_COMPROMISE {
        body["initiating_entity"] = json!(initiator(entry, client.as_deref()));
    }
    body["event_timestamp"] = json!(timestamp);
    Some(Event {
        typ,
        sub_id,
        body,
        client_id: client,
    })
}

/// The verification event a receiver asks for (SSF 1.0 §8.1.4.2), about
/// its stream, echoing its `state`.
pub fn verification(stream_id: &str, state: Option<&str>) -> Event {
    let mut body = Map::new();
    if let Some(s) = state {
        body.insert("state".into(), json!(s));
    }
    Event {
        typ: VERIFICATION,
        sub_id: json!({"format": "opaque", "id": stream_id}),
        body: Value::Object(body),
        client_id: None,
    }
}

/// The SET's claims (RFC 8417 §2.2, SSF 1.0 §4): `iss`, `aud` (the
/// receiver), `jti`, `iat`, `txn` (one per action: every stream's SET of
/// one action carries the same), `sub_id`, and `events` with one member.
pub fn set_claims(issuer: &str, aud: &str, jti: &str, iat: i64, txn: &str, e: &Event) -> Value {
    let mut events = Map::new();
    events.insert(e.typ.to_string(), e.body.clone());
    json!({
        "iss": issuer,
        "aud": aud,
        "jti": jti,
        "iat": iat,
        "txn": txn,
        "sub_id": e.sub_id,
        "events": events,
    })
}

/// The event types a stream gets of those it asked for (SSF 1.0 §8.1.1:
/// `events_delivered` is the intersection with `events_supported`).
pub fn delivered(requested: &[String]) -> Vec<String> {
    requested
        .iter()
        .filter(|r| EVENTS_SUPPORTED.contains(&r.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str, actor: &str, target: &str, detail: Value) -> AuditEntry {
        AuditEntry {
            id: 7,
            at: 1000,
            actor: actor.into(),
            action: action.into(),
            target: Some(target.into()),
            detail,
        }
    }

    #[test]
    fn a_revoked_token_is_a_session_revoked_event_about_its_jti() {
        let e = event_of(
            &entry(
                "token.revoke",
                "tgc_a",
                "jti-1",
                json!({"client_id": "tgc_a", "exp": 2000, "origin": ["root"]}),
            ),
            "https://iss",
        )
        .unwrap();
        assert_eq!(e.typ, SESSION_REVOKED);
        assert_eq!(
            e.sub_id,
            json!({"format": "jwt_id", "iss": "https://iss", "jti": "jti-1"})
        );
        assert_eq!(e.body["initiating_entity"], "user");
        assert_eq!(e.body["event_timestamp"], 1000);
        assert_eq!(e.body["tollgate_origin"], json!(["root"]));
        assert_eq!(e.client_id.as_deref(), Some("tgc_a"));
    }

    #[test]
    fn client_actions_map_to_risc_and_caep_events_about_the_client() {
        let cases = [
            ("client.disable", ACCOUNT_DISABLED),
            ("client.enable", ACCOUNT_ENABLED),
            ("client.delete", ACCOUNT_PURGED),
            ("client.rotate_secret", CREDENTIAL_CHANGE),
            ("client.revoke_tokens", SESSION_REVOKED),
        ];
        for (action, typ) in cases {
            let e = event_of(
                &entry(action, "tgc_admin", "tgc_b", json!({"revoked_before": 999})),
                "https://iss",
            )
            .unwrap();
            assert_eq!(e.typ, typ, "{action}");
            assert_eq!(e.sub_id["format"], "iss_sub");
            assert_eq!(e.sub_id["sub"], "tgc_b");
            assert_eq!(e.body["initiating_entity"], "admin");
        }
        let api_key = event_of(
            &entry(
                "api_key.revoke",
                "cli",
                "ak_1",
                json!({"client_id": "tgc_c"}),
            ),
            "https://iss",
        )
        .unwrap();
        assert_eq!(api_key.body["credential_type"], "api_key");
        assert_eq!(api_key.body["change_type"], "revoke");
        assert_eq!(api_key.sub_id["sub"], "tgc_c");
        let key = event_of(
            &entry("signing_key.compromise", "cli", "kid-1", json!({})),
            "https://iss",
        )
        .unwrap();
        assert_eq!(key.typ, CREDENTIAL_COMPROMISE);
        assert_eq!(key.sub_id, json!({"format": "opaque", "id": "kid-1"}));
    }

    #[test]
    fn other_actions_are_no_event() {
        for action in [
            "client.create",
            "client.update",
            "api_key.create",
            "ssf.stream.create",
        ] {
            assert!(event_of(&entry(action, "cli", "x", json!({})), "https://iss").is_none());
        }
    }

    #[test]
    fn a_set_has_one_event_and_the_receiver_as_audience() {
        let e = verification("ss_1", Some("abc"));
        let c = set_claims("https://iss", "tgc_r", "j", 5, "t", &e);
        assert_eq!(c["aud"], "tgc_r");
        assert_eq!(c["events"][VERIFICATION]["state"], "abc");
        assert_eq!(c["events"].as_object().unwrap().len(), 1);
        assert_eq!(
            delivered(&["x".into(), SESSION_REVOKED.into()]),
            vec![SESSION_REVOKED.to_string()]
        );
    }
}
