//! A resource server that validates Tollgate's access tokens locally with the
//! JWKS (RFC 9068 §4): pinned algorithm per key, `typ`, `iss`, `aud`, `exp`,
//! and a required scope. Refetches the JWKS once when it meets an unknown `kid`.
//!
//! ```sh
//! AUTH_SERVER_URL=http://127.0.0.1:8080 AUDIENCE=https://api.example.com \
//!     cargo run --example resource_server_jwks
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9090/hello
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
}

async fn fetch_jwks(url: &str) -> Result<JwkSet, String> {
    reqwest::get(url)
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

async fn hello(cfg: web::Data<Config>, req: HttpRequest) -> HttpResponse {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer"))
            .json(json!({"error": "invalid_token", "error_description": "bearer token required"}));
    };
    match validate(&cfg, token).await {
        Ok(claims) => HttpResponse::Ok().json(json!({"hello": claims["client_id"]})),
        Err(why) => HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", r#"Bearer error="invalid_token""#))
            .json(json!({"error": "invalid_token", "error_description": why})),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let base = std::env::var("AUTH_SERVER_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let meta: Value = reqwest::get(format!("{base}/.well-known/oauth-authorization-server"))
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
    });
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:9090".into());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(cfg.clone())
            .route("/hello", web::get().to(hello))
    })
    .workers(1)
    .bind(bind)?;
    println!("resource server listening on http://{}", server.addrs()[0]);
    server.run().await
}
