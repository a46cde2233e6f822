//! Seeding: clients in bulk through the service layer, and the request
//! bodies the assertion, federation and DPoP workloads send (signed here).

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine;
use serde_json::Value;

use tollgate::secret::SecretString;
use tollgate::service::admin::NewClient;
use tollgate::service::federation::{NewIssuer, NewRule};
use tollgate::service::{now, App};

use crate::*;

/// Assertions W8 prepares, each with its own `jti`: more than a 5-s run at
/// the rates this machine reaches, split between wrk's two threads.
pub(crate) const W8_ASSERTIONS: usize = 200_000;

/// A fresh ES256 key pair and its public JWK (with `kid`).
pub(crate) struct Es256 {
    pub(crate) pair: ring::signature::EcdsaKeyPair,
    pub(crate) rng: ring::rand::SystemRandom,
    pub(crate) jwk: Value,
    pub(crate) header: String,
}

impl Es256 {
    fn new(kid: &str) -> Es256 {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING as ALG};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ALG, &rng).unwrap_or_else(|e| fail(&e.to_string()));
        let pair = EcdsaKeyPair::from_pkcs8(&ALG, pkcs8.as_ref(), &rng)
            .unwrap_or_else(|e| fail(&e.to_string()));
        let public = pair.public_key().as_ref();
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
            "x": B64.encode(&public[1..33]), "y": B64.encode(&public[33..65]),
        });
        let header = B64.encode(format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#));
        Es256 {
            pair,
            rng,
            jwk,
            header,
        }
    }

    /// A compact JWS of `claims`.
    fn sign(&self, claims: &Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        let input = format!("{}.{}", self.header, B64.encode(claims.to_string()));
        let sig = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .unwrap_or_else(|e| fail(&e.to_string()));
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }
}

/// Registers a `private_key_jwt` client with a fresh ES256 key and writes
/// `n` token-request bodies, each with an assertion of its own `jti`, one per
/// line; returns the client id.
pub(crate) fn w8_bodies(app: &App, file: &Path, n: usize, t0: i64) -> String {
    let key = Es256::new("w8");
    let (client, _) = block(app.admin().create_client(
        "bench",
        NewClient {
            name: "w8".into(),
            scopes: vec!["read".into()],
            token_endpoint_auth_method: Some(tollgate::domain::ClientAuthMethod::PrivateKeyJwt),
            jwks: Some(serde_json::json!({"keys": [key.jwk]})),
            ..NewClient::default()
        },
        t0,
    ))
    .unwrap_or_else(|e| fail(&e.to_string()));
    let mut out = String::with_capacity(n * 600);
    for i in 0..n {
        let claims = serde_json::json!({
            "iss": client.id, "sub": client.id, "aud": "https://tollgate.bench",
            "iat": t0, "exp": t0 + 3000, "jti": format!("w8-{i}"),
        });
        let _ = writeln!(
            out,
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}",
            key.sign(&claims)
        );
    }
    std::fs::write(file, out).unwrap_or_else(|e| fail(&e.to_string()));
    client.id
}

/// DPoP proofs W10 signs just before it runs (their `iat` must be within a
/// minute of the server's clock), each with its own `jti`.
pub(crate) const W10_PROOFS: usize = 150_000;

/// Writes `n` DPoP proofs for `POST https://tollgate.bench/oauth/token`,
/// one per line, all by one fresh ES256 key.
pub(crate) fn w10_proofs(file: &Path, n: usize) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let key = Es256::new("dpop");
    let mut jwk = key.jwk.clone();
    if let Some(o) = jwk.as_object_mut() {
        o.remove("kid");
        o.remove("alg");
    }
    let header =
        B64.encode(serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).to_string());
    let key = Es256 { header, ..key };
    let t = now();
    let mut out = String::with_capacity(n * 500);
    for i in 0..n {
        let claims = serde_json::json!({
            "htm": "POST", "htu": "https://tollgate.bench/oauth/token", "iat": t, "jti": format!("w10-{i}"),
        });
        let _ = writeln!(out, "{}", key.sign(&claims));
    }
    std::fs::write(file, out).unwrap_or_else(|e| fail(&e.to_string()));
}

/// Workload tokens W9 cycles through (reused, as Kubernetes tokens are).
pub(crate) const W9_TOKENS: usize = 1_000;

/// Trusts a cluster with a fresh ES256 key inline, adds a rule mapping its
/// `payments` service accounts to a new client, and writes `n` JWT bearer
/// grant bodies, each with a service-account token of its own `sub`.
pub(crate) fn w9_bodies(app: &App, file: &Path, n: usize, t0: i64) {
    let key = Es256::new("sa");
    let cluster = "https://kubernetes.bench";
    let (client, _) = block(app.admin().create_client(
        "bench",
        NewClient {
            name: "w9".into(),
            scopes: vec!["read".into(), "write".into()],
            ..NewClient::default()
        },
        t0,
    ))
    .unwrap_or_else(|e| fail(&e.to_string()));
    block(app.admin().add_federation_issuer(
        "bench",
        NewIssuer {
            issuer: cluster.into(),
            jwks_uri: None,
            jwks: Some(serde_json::json!({"keys": [key.jwk]})),
            id_jag: false,
        },
        t0,
    ))
    .unwrap_or_else(|e| fail(&e.to_string()));
    block(app.admin().add_federation_rule(
        "bench",
        NewRule {
            issuer: cluster.into(),
            audience: "tollgate".into(),
            subject: Some("system:serviceaccount:payments:*".into()),
            claims: None,
            client_id: client.id.clone(),
            scopes: Some(vec!["read".into()]),
            single_use: None,
        },
        t0,
    ))
    .unwrap_or_else(|e| fail(&e.to_string()));
    let mut out = String::with_capacity(n * 600);
    for i in 0..n {
        let claims = serde_json::json!({
            "iss": cluster, "sub": format!("system:serviceaccount:payments:sa-{i}"),
            "aud": ["tollgate"], "iat": t0, "exp": t0 + 3000, "jti": format!("w9-{i}"),
        });
        let _ = writeln!(
            out,
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            key.sign(&claims)
        );
    }
    std::fs::write(file, out).unwrap_or_else(|e| fail(&e.to_string()));
}

/// What every run seeds: the clients, an introspector, 1,000 tokens (50
/// revoked) and a client with a quota of 2,000 tokens an hour.
pub(crate) struct Seeded {
    pub(crate) clients: Vec<(String, SecretString)>,
    /// `Authorization` header of the introspecting client.
    pub(crate) introspect_auth: String,
    pub(crate) tokens: Vec<String>,
    /// `Authorization` header of the client with the quota.
    pub(crate) quota_client: String,
    /// `Authorization` header of a Shared Signals receiver (W14).
    pub(crate) ssf_auth: String,
}

pub(crate) fn seed(app: &App, n: usize, template: &NewClient, t0: i64) -> Seeded {
    println!("seeding {n} clients…");
    let clients = block(
        app.admin()
            .seed_clients("bench", n, template, 100, t0, |n| println!("  {n} stored")),
    )
    .unwrap_or_else(|e| fail(&e.to_string()));
    let client = |name: &str, scopes: Vec<String>, quota: Option<u64>| {
        let (c, secret) = block(app.admin().create_client(
            "bench",
            NewClient {
                name: name.into(),
                scopes,
                token_quota: quota,
                quota_window: quota.map(|_| 3600),
                quota_ban: quota.map(|_| 0),
                ..NewClient::default()
            },
            t0,
        ))
        .unwrap_or_else(|e| fail(&e.to_string()));
        let secret = secret.unwrap_or_else(|| fail("a secret client has a secret"));
        basic(&c.id, &secret)
    };
    let introspect_auth = client("introspector", vec!["tollgate:introspect".into()], None);
    let quota_client = client("quota", Vec::new(), Some(2000));
    let ssf_auth = client("ssf-receiver", vec!["tollgate:ssf".into()], None);
    let mut tokens = Vec::new();
    for i in 0..1000 {
        let (id, secret) = &clients[i % clients.len()];
        let creds = tollgate::oauth::ClientCredentials::Secret {
            client_id: id.clone(),
            secret: secret.clone(),
            via: tollgate::domain::SecretVia::Basic,
        };
        use tollgate::oauth::request::{ProofParts, TokenEndpointRequest, TokenGrant};
        let request = TokenEndpointRequest {
            grant: TokenGrant::ClientCredentials {
                client: Some(creds),
            },
            request: Default::default(),
            proof: ProofParts {
                headers: Vec::new(),
                method: "POST",
                path: "/oauth/token",
            },
        };
        let context = tollgate::service::RequestContext {
            ip: std::net::Ipv4Addr::LOCALHOST.into(),
            now: t0,
        };
        let t =
            block(app.tokens().token(request, context)).unwrap_or_else(|e| fail(&e.to_string()));
        if i % 20 == 0 {
            block(app.introspector().revoke(id, t.access_token.expose(), t0))
                .unwrap_or_else(|e| fail(&e.to_string()));
        }
        tokens.push(t.access_token.expose().to_string());
    }
    Seeded {
        clients,
        introspect_auth,
        tokens,
        quota_client,
        ssf_auth,
    }
}

/// ID-JAGs W13 signs just before it runs (their `exp` is at most five
/// minutes ahead), each with its own `jti`.
pub(crate) const W13_JAGS: usize = 150_000;

/// W13's identity provider and agent: an issuer marked for ID-JAGs with a
/// fresh ES256 key inline, and a secret client whose audience is an MCP
/// server. Returns the key (its header `typ: oauth-id-jag+jwt`), the
/// client's id and its `Authorization` header.
pub(crate) fn w13_setup(app: &App, t0: i64) -> (Es256, String, String) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let key = Es256::new("idp");
    block(app.admin().add_federation_issuer(
        "bench",
        NewIssuer {
            issuer: W13_IDP.into(),
            jwks_uri: None,
            jwks: Some(serde_json::json!({"keys": [key.jwk]})),
            id_jag: true,
        },
        t0,
    ))
    .unwrap_or_else(|e| fail(&e.to_string()));
    let (client, secret) = block(app.admin().create_client(
        "bench",
        NewClient {
            name: "w13-agent".into(),
            scopes: vec!["tools:call".into()],
            audiences: vec![W13_MCP.into()],
            ..NewClient::default()
        },
        t0,
    ))
    .unwrap_or_else(|e| fail(&e.to_string()));
    let secret = secret.unwrap_or_else(|| fail("a secret client has a secret"));
    let header = B64.encode(r#"{"typ":"oauth-id-jag+jwt","alg":"ES256","kid":"idp"}"#);
    let auth = basic(&client.id, &secret);
    (Es256 { header, ..key }, client.id, auth)
}

const W13_IDP: &str = "https://idp.bench";
const W13_MCP: &str = "https://mcp.bench/mcp";

/// Writes `n` JWT bearer grant bodies, each with an ID-JAG for `client_id`
/// of its own `jti`, for Tollgate's `issuer`.
pub(crate) fn w13_bodies(key: &Es256, client_id: &str, issuer: &str, file: &Path, n: usize) {
    let t = now();
    let mut out = String::with_capacity(n * 700);
    for i in 0..n {
        let claims = serde_json::json!({
            "iss": W13_IDP, "sub": format!("user-{}", i % 1000), "aud": issuer, "client_id": client_id,
            "resource": W13_MCP, "scope": "tools:call", "iat": t, "exp": t + 240, "jti": format!("w13-{i}"),
        });
        let _ = writeln!(
            out,
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            key.sign(&claims)
        );
    }
    std::fs::write(file, out).unwrap_or_else(|e| fail(&e.to_string()));
}
