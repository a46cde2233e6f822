//! A resource server that validates Tollgate's access tokens locally with the
//! JWKS (RFC 9068 §4): pinned algorithm per key, `typ`, `iss`, `aud`, `exp`,
//! and a required scope. Refetches the JWKS once when it meets an unknown `kid`.
//! A DPoP-bound token (`cnf.jkt`) is accepted only as `Authorization: DPoP`
//! with a proof of its key for this request (RFC 9449 §7), checked with
//! `tollgate::oauth::dpop::verify`; as a bearer token it is refused. With
//! `TLS_CERT`, `TLS_KEY` and `TLS_CLIENT_CA` it serves HTTPS and asks for
//! client certificates: a certificate-bound token (`cnf.x5t#S256`, RFC 8705
//! §3) is accepted only over a connection that presents that certificate.
//!
//! ```sh
//! AUTH_SERVER_URL=http://127.0.0.1:8080 AUDIENCE=https://api.example.com \
//!     cargo run --example resource_server_jwks
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9090/hello
//! curl -H "Authorization: DPoP $TOKEN" -H "DPoP: $PROOF" http://127.0.0.1:9090/hello
//! ```

use std::sync::RwLock;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use serde_json::{json, Value};

struct Config {
    issuer: String,
    jwks_url: String,
    audience: String,
    scope: String,
    jwks: RwLock<JwkSet>,
    /// This server's own base URL, as clients see it (the `htu` of proofs).
    base: std::sync::OnceLock<String>,
}

/// The client that reaches Tollgate; `AUTH_SERVER_CA` (a PEM file) adds a
/// root for a Tollgate serving HTTPS with a private CA.
fn http_client() -> reqwest::Client {
    let mut b = reqwest::Client::builder();
    if let Ok(path) = std::env::var("AUTH_SERVER_CA") {
        if let Ok(pem) = std::fs::read(path) {
            if let Ok(c) = reqwest::Certificate::from_pem(&pem) {
                b = b.add_root_certificate(c);
            }
        }
    }
    b.build().unwrap_or_default()
}

async fn fetch_jwks(url: &str) -> Result<JwkSet, String> {
    http_client()
        .get(url)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}

/// Validates a bearer token; returns its claims or why it was refused.
async fn validate(cfg: &Config, token: &str) -> Result<Value, String> {
    let header = decode_header(token).map_err(|e| e.to_string())?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err("not an access token (typ)".into());
    }
    let kid = header.kid.ok_or("no kid")?;
    let known = cfg
        .jwks
        .read()
        .map_err(|e| e.to_string())?
        .find(&kid)
        .is_some();
    if !known {
        // A rotated-in key is published before it signs: refetch once.
        let fresh = fetch_jwks(&cfg.jwks_url).await?;
        *cfg.jwks.write().map_err(|e| e.to_string())? = fresh;
    }
    let jwks = cfg.jwks.read().map_err(|e| e.to_string())?;
    let jwk = jwks.find(&kid).ok_or("unknown kid")?;
    // Pin the algorithm the JWK declares, never the token's header alone.
    let alg = jwk.common.key_algorithm.ok_or("JWK without alg")?;
    let alg: jsonwebtoken::Algorithm = alg.to_string().parse().map_err(|_| "unsupported alg")?;
    let mut v = Validation::new(alg);
    v.set_issuer(&[&cfg.issuer]);
    v.set_audience(&[&cfg.audience]);
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let claims = decode::<Value>(token, &key, &v)
        .map_err(|e| e.to_string())?
        .claims;
    let scopes = claims["scope"].as_str().unwrap_or("");
    if !scopes.split(' ').any(|s| s == cfg.scope) {
        return Err(format!("missing scope {}", cfg.scope));
    }
    Ok(claims)
}

/// A 401 with the challenge of the scheme the token needs.
fn refuse(scheme: &str, error: &str, why: &str) -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((
            "WWW-Authenticate",
            format!(r#"{scheme} error="{error}", error_description="{why}""#),
        ))
        .json(json!({"error": error, "error_description": why}))
}

/// RFC 9449 §7: the proof must be one valid `DPoP` header for this method
/// and URL, with `ath` the token's hash, made by the key in `cnf.jkt`.
fn check_proof(cfg: &Config, req: &HttpRequest, token: &str, jkt: &str) -> Result<(), String> {
    let mut proofs = req.headers().get_all("dpop");
    let (Some(proof), None) = (proofs.next(), proofs.next()) else {
        return Err("send exactly one DPoP proof".into());
    };
    let url = format!(
        "{}{}",
        cfg.base.get().map_or("", String::as_str),
        req.path()
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let expected = tollgate::oauth::dpop::Expected {
        method: req.method().as_str(),
        url: &url,
        now,
        window: 60,
        nonces: None,
        access_token: Some(token),
    };
    let proof = proof.to_str().map_err(|e| e.to_string())?;
    let checked = tollgate::oauth::dpop::verify(proof, &expected).map_err(|e| e.to_string())?;
    if checked.jkt != jkt {
        return Err("the proof's key is not the token's".into());
    }
    // A real server also remembers each proof's jti for the window, and
    // refuses it when seen again (RFC 9449 §11.1).
    Ok(())
}

async fn hello(cfg: web::Data<Config>, req: HttpRequest) -> HttpResponse {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (scheme, token) = match auth.split_once(' ') {
        Some(("Bearer", t)) => ("Bearer", t),
        Some(("DPoP", t)) => ("DPoP", t),
        _ => return refuse("Bearer", "invalid_token", "bearer token required"),
    };
    let claims = match validate(&cfg, token).await {
        Ok(claims) => claims,
        Err(why) => return refuse(scheme, "invalid_token", &why),
    };
    if let Some(x5t) = claims["cnf"]["x5t#S256"].as_str() {
        // RFC 8705 §3: the SHA-256 of the certificate on this connection.
        let presented = req
            .conn_data::<tollgate::http::tls::PeerCertificates>()
            .and_then(|p| {
                p.0.first()
                    .map(|der| tollgate::oauth::mtls::thumbprint(der))
            });
        if presented.as_deref() != Some(x5t) {
            return refuse(
                "Bearer",
                "invalid_token",
                "the token is bound to a client certificate this connection did not present",
            );
        }
    }
    match (scheme, claims["cnf"]["jkt"].as_str()) {
        ("Bearer", None) => {}
        ("Bearer", Some(_)) => {
            return refuse(
                "DPoP",
                "invalid_token",
                "a DPoP-bound token needs the DPoP scheme",
            )
        }
        ("DPoP", Some(jkt)) => {
            if let Err(why) = check_proof(&cfg, &req, token, jkt) {
                return refuse("DPoP", "invalid_dpop_proof", &why);
            }
        }
        _ => return refuse("Bearer", "invalid_token", "the token is not DPoP-bound"),
    }
    HttpResponse::Ok().json(json!({"hello": claims["client_id"], "scheme": scheme}))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let base = std::env::var("AUTH_SERVER_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let meta: Value = http_client()
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(std::io::Error::other)?
        .json()
        .await
        .map_err(std::io::Error::other)?;
    let jwks_url = meta["jwks_uri"]
        .as_str()
        .unwrap_or_default()
        .replace(meta["issuer"].as_str().unwrap_or_default(), &base);
    let cfg = web::Data::new(Config {
        issuer: meta["issuer"].as_str().unwrap_or_default().to_string(),
        jwks: RwLock::new(fetch_jwks(&jwks_url).await.map_err(std::io::Error::other)?),
        jwks_url,
        audience: std::env::var("AUDIENCE").unwrap_or_else(|_| "https://api.example.com".into()),
        scope: std::env::var("SCOPE").unwrap_or_else(|_| "read".into()),
        base: std::sync::OnceLock::new(),
    });
    let shared = cfg.clone();
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:9090".into());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(cfg.clone())
            .route("/hello", web::get().to(hello))
    })
    .workers(1)
    .on_connect(tollgate::http::tls::on_connect);
    let tls = match (std::env::var("TLS_CERT"), std::env::var("TLS_KEY")) {
        (Ok(cert), Ok(key)) => {
            let cert = tollgate::http::tls::ReloadingCert::open(cert.as_ref(), key.as_ref())
                .map_err(std::io::Error::other)?;
            let client_certs = std::env::var("TLS_CLIENT_CA").is_ok();
            Some(
                tollgate::http::tls::server_config(cert, client_certs)
                    .map_err(std::io::Error::other)?,
            )
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = match tls {
        Some(config) => server.bind_rustls_0_23(bind, config)?,
        None => server.bind(bind)?,
    };
    let base = format!("{scheme}://{}", server.addrs()[0]);
    let _ = shared.base.set(base.clone());
    println!("resource server listening on {base}");
    server.run().await
}
