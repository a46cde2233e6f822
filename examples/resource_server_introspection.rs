//! A resource server that asks Tollgate about every token (RFC 7662): it sees
//! revocations at once and accepts API keys as well as access tokens. It
//! authenticates with its own client holding `tollgate:introspect`.
//!
//! ```sh
//! tollgate client create --name billing-api --scope tollgate:introspect
//! AUTH_SERVER_URL=http://127.0.0.1:8080 RS_CLIENT_ID=… RS_CLIENT_SECRET=… \
//!     cargo run --example resource_server_introspection
//! curl -H "Authorization: Bearer $TOKEN_OR_API_KEY" http://127.0.0.1:9091/hello
//! ```

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

struct Config {
    introspect_url: String,
    client_id: String,
    client_secret: String,
    audience: Option<String>,
    http: reqwest::Client,
}

/// Introspects `token`; `Some(answer)` when it is active (and, for access
/// tokens, meant for this audience).
async fn introspect(cfg: &Config, token: &str) -> Result<Option<Value>, reqwest::Error> {
    let answer: Value = cfg
        .http
        .post(&cfg.introspect_url)
        .basic_auth(&cfg.client_id, Some(&cfg.client_secret))
        .form(&[("token", token)])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    if answer["active"] != true {
        return Ok(None);
    }
    if let (Some(aud), "Bearer") = (&cfg.audience, answer["token_type"].as_str().unwrap_or("")) {
        let ok = match &answer["aud"] {
            Value::String(a) => a == aud,
            Value::Array(list) => list.iter().any(|a| a == aud.as_str()),
            _ => false,
        };
        if !ok {
            return Ok(None);
        }
    }
    Ok(Some(answer))
}

async fn hello(cfg: web::Data<Config>, req: HttpRequest) -> HttpResponse {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    match introspect(&cfg, token).await {
        Ok(Some(a)) => {
            HttpResponse::Ok().json(json!({"hello": a["client_id"], "via": a["token_type"]}))
        }
        Ok(None) => HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", r#"Bearer error="invalid_token""#))
            .json(json!({"error": "invalid_token", "error_description": "inactive token"})),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(json!({"error": "temporarily_unavailable", "error_description": e.to_string()})),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let base = std::env::var("AUTH_SERVER_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let var =
        |k: &str| std::env::var(k).map_err(|_| std::io::Error::other(format!("{k} is required")));
    let cfg = web::Data::new(Config {
        introspect_url: format!("{base}/oauth/introspect"),
        client_id: var("RS_CLIENT_ID")?,
        client_secret: var("RS_CLIENT_SECRET")?,
        audience: std::env::var("AUDIENCE").ok(),
        http: reqwest::Client::new(),
    });
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:9091".into());
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
