//! The command line: `serve`, and admin subcommands that call the same
//! operations as the admin API, against the same database and configuration.

mod args;
mod cimd;
mod console;
mod federation;
mod output;

pub use args::Cli;
use args::{ApiKeyCmd, AuditCmd, ClientCmd, Command, SigningKeyCmd, SsfCmd};

use std::process::ExitCode;

use clap::Parser;
use serde_json::json;

use crate::config::Config;
use crate::service::admin::{api_key_view, ClientPatch, NewClient};
use crate::service::error::ServiceError;
use crate::service::{now, App};
use crate::token::Alg;
use output::{
    client_row, key_rows, print_json, show_client, table, ts, CLIENT_HEADERS, KEY_HEADERS,
};

/// The audit actor for the command line.
use crate::domain::CLI_ACTOR;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve { .. } => "info",
        _ => "warn",
    };
    // `migrate` reads no configuration: its log format comes from the
    // environment alone. Every other command logs as configured.
    let json_env = std::env::var("TOLLGATE_LOG_FORMAT").is_ok_and(|f| f == "json");
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    if let Command::Migrate { from, to, out } = &cli.command {
        crate::logging::init(json_env, default_level);
        return match runtime() {
            Ok(rt) => rt.block_on(migrate(from, to, out.json)),
            Err(e) => {
                eprintln!("tollgate: runtime: {e}");
                ExitCode::from(1)
            }
        };
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            crate::logging::init(json_env, default_level);
            eprintln!("tollgate: {e}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init(config.log_json, default_level);
    if let Command::Serve { exit_on_eof } = cli.command {
        return serve(config, exit_on_eof);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tollgate: runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let app = match App::open(config).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("tollgate: {e}");
                return ExitCode::from(1);
            }
        };
        let result = match cli.command {
            Command::Client(c) => client(&app, *c).await,
            Command::ApiKey(c) => api_key(&app, c).await,
            Command::SigningKey(c) => signing_key(&app, c).await,
            Command::Ssf(c) => ssf(&app, c).await,
            Command::Audit(c) => audit(&app, c).await,
            Command::Federation(c) => federation::run(&app, c).await,
            Command::Console(c) => console::run(&app, c).await,
            Command::Cimd(c) => cimd::run(&app, c).await,
            Command::Prune { out } => prune(&app, out.json).await,
            Command::Serve { .. } | Command::Migrate { .. } => unreachable_here(),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tollgate: {}: {}", e.code.as_str(), e.description);
                ExitCode::from(1)
            }
        }
    })
}

/// `serve` and `migrate` are handled before the app is opened.
fn unreachable_here() -> Result<(), ServiceError> {
    Err(ServiceError::internal("handled before start-up"))
}

/// `tollgate migrate --from DB --to DB`.
async fn migrate(from: &str, to: &str, json: bool) -> ExitCode {
    use crate::store::postgres::redact_url;
    let fail = |what: String| {
        eprintln!("tollgate: {what}");
        ExitCode::from(1)
    };
    if from == to {
        return fail("--from and --to name the same database".into());
    }
    let is_sqlite_file = |db: &str| !crate::store::postgres::is_postgres_url(db);
    if is_sqlite_file(from) && !std::path::Path::new(from).exists() {
        return fail(format!("no database at {from}"));
    }
    let source = match crate::store::open(from, 4).await {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot open {}: {e}", redact_url(from))),
    };
    let target = match crate::store::open(to, 4).await {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot open {}: {e}", redact_url(to))),
    };
    let audit = crate::store::AuditEntry::new(
        now(),
        CLI_ACTOR,
        "store.migrate",
        None,
        json!({"from": redact_url(from)}),
    );
    match crate::store::copy(source.as_ref(), target.as_ref(), &audit).await {
        Ok(Some(n)) => {
            if json {
                print_json(&json!({"migrated": n, "to": redact_url(to)}));
            } else {
                println!(
                    "copied {} clients, {} secret digests, {} API keys, {} revocations, {} signing-key records and {} audit entries into {}; read back and verified",
                    n.clients, n.secrets, n.api_keys, n.revocations, n.signing_keys, n.audit_entries, redact_url(to)
                );
                println!(
                    "copy the keys directory (the PEM files) to every instance's TOLLGATE_KEYS_DIR"
                );
            }
            ExitCode::SUCCESS
        }
        Ok(None) => fail(format!(
            "{} already holds clients, API keys or revocations; migrate into an empty database",
            redact_url(to)
        )),
        Err(e) => fail(format!("migration failed: {e}")),
    }
}

fn serve(config: Config, exit_on_eof: bool) -> ExitCode {
    if exit_on_eof {
        std::thread::spawn(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            std::process::exit(0);
        });
    }
    match crate::http::server::serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::from(1)
        }
    }
}

/// The authentication method and keys given on the command line.
type KeyChoice = (
    Option<crate::domain::ClientAuthMethod>,
    Option<serde_json::Value>,
    Option<String>,
);

/// The RFC 8705 flags of `client create` and `client update`.
struct TlsNames {
    subject_dn: Option<String>,
    san_dns: Option<String>,
    san_uri: Option<String>,
    san_ip: Option<String>,
    san_email: Option<String>,
    bound: Option<bool>,
}

impl TlsNames {
    fn of(k: &args::KeyArgs) -> TlsNames {
        TlsNames {
            subject_dn: k.tls_subject_dn.clone(),
            san_dns: k.tls_san_dns.clone(),
            san_uri: k.tls_san_uri.clone(),
            san_ip: k.tls_san_ip.clone(),
            san_email: k.tls_san_email.clone(),
            bound: k.tls_bound,
        }
    }
}

fn key_args(k: args::KeyArgs) -> Result<KeyChoice, ServiceError> {
    let method = match k.auth_method.as_deref() {
        None => None,
        Some(m) => Some(crate::domain::ClientAuthMethod::parse(m).ok_or_else(|| {
            ServiceError::invalid_request(
                "--auth-method must be client_secret_basic, client_secret_post, private_key_jwt, \
                 tls_client_auth or self_signed_tls_client_auth",
            )
        })?),
    };
    let jwks = match k.jwks_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ServiceError::invalid_request(format!("cannot read {}: {e}", path.display()))
            })?;
            Some(serde_json::from_str(&text).map_err(|_| {
                ServiceError::invalid_request(format!("{} is not JSON", path.display()))
            })?)
        }
    };
    Ok((method, jwks, k.jwks_uri))
}

async fn client(app: &App, cmd: ClientCmd) -> Result<(), ServiceError> {
    match cmd {
        ClientCmd::Create {
            name,
            scope,
            audience,
            ttl,
            owner,
            quota,
            keys,
            exchange,
            claims,
            out,
        } => {
            if exchange.no_token_exchange || claims.no_claims {
                return Err(ServiceError::invalid_request(
                    "--no-token-exchange and --no-claims belong to client update",
                ));
            }
            let dpop = keys.dpop_bound;
            let tls = TlsNames::of(&keys);
            let (method, jwks, jwks_uri) = key_args(keys)?;
            let (c, secret) = app
                .admin()
                .create_client(
                    CLI_ACTOR,
                    NewClient {
                        name,
                        owner,
                        scopes: scope,
                        audiences: audience,
                        token_ttl: ttl,
                        token_quota: quota.quota,
                        quota_window: quota.quota_window,
                        quota_ban: quota.ban,
                        token_endpoint_auth_method: method,
                        jwks,
                        jwks_uri,
                        dpop_bound_access_tokens: dpop.unwrap_or(false),
                        tls_client_auth_subject_dn: tls.subject_dn,
                        tls_client_auth_san_dns: tls.san_dns,
                        tls_client_auth_san_uri: tls.san_uri,
                        tls_client_auth_san_ip: tls.san_ip,
                        tls_client_auth_san_email: tls.san_email,
                        tls_client_certificate_bound_access_tokens: tls.bound.unwrap_or(false),
                        token_exchange: exchange.policy(None),
                        claims: claims.object().map_err(ServiceError::invalid_request)?,
                    },
                    now(),
                )
                .await?;
            if out.json {
                let mut v = json!(c);
                if let Some(secret) = &secret {
                    v["client_secret"] = json!(secret.expose());
                }
                print_json(&v);
            } else {
                println!("client_id:     {}", c.id);
                if let Some(secret) = &secret {
                    println!("client_secret: {}", secret.expose());
                }
                println!("auth method:   {}", c.auth.method().as_str());
                println!("scopes:        {}", c.scopes.join(" "));
                println!("audiences:     {}", c.audiences.join(" "));
            }
            if secret.is_some() {
                eprintln!("note: the client secret is shown only this once; store it now.");
            }
        }
        ClientCmd::List { after, limit, out } => {
            let list = app.admin().list_clients(after.as_deref(), limit).await?;
            if out.json {
                print_json(&json!(list));
            } else {
                let rows: Vec<_> = list.iter().map(client_row).collect();
                table(&CLIENT_HEADERS, &rows);
            }
        }
        ClientCmd::Show { id, out } => show_client(&app.admin().get_client(&id).await?, out.json),
        ClientCmd::Update {
            id,
            name,
            scope,
            audience,
            ttl,
            owner,
            quota,
            keys,
            exchange,
            claims,
            out,
        } => {
            let claims = if claims.no_claims {
                Some(None)
            } else {
                claims
                    .object()
                    .map_err(ServiceError::invalid_request)?
                    .map(Some)
            };
            let dpop = keys.dpop_bound;
            let tls = TlsNames::of(&keys);
            let (method, jwks, jwks_uri) = key_args(keys)?;
            let token_exchange = if exchange.no_token_exchange {
                Some(None)
            } else if exchange.given() {
                let current = app.admin().get_client(&id).await?;
                Some(exchange.policy(current.token_exchange.as_ref()))
            } else {
                None
            };
            let patch = ClientPatch {
                name,
                owner: owner.map(Some),
                scopes: scope,
                audiences: audience,
                token_ttl: ttl.map(Some),
                token_quota: quota.quota.map(Some),
                quota_window: quota.quota_window.map(Some),
                quota_ban: quota.ban.map(Some),
                token_endpoint_auth_method: method,
                jwks: jwks.map(Some),
                jwks_uri: jwks_uri.map(Some),
                dpop_bound_access_tokens: dpop,
                tls_client_auth_subject_dn: tls.subject_dn.map(Some),
                tls_client_auth_san_dns: tls.san_dns.map(Some),
                tls_client_auth_san_uri: tls.san_uri.map(Some),
                tls_client_auth_san_ip: tls.san_ip.map(Some),
                tls_client_auth_san_email: tls.san_email.map(Some),
                tls_client_certificate_bound_access_tokens: tls.bound,
                token_exchange,
                claims,
            };
            show_client(
                &app.admin()
                    .update_client(CLI_ACTOR, &id, patch, now())
                    .await?,
                out.json,
            );
        }
        ClientCmd::Disable { id, out } => show_client(
            &app.admin()
                .set_client_disabled(CLI_ACTOR, &id, true, now())
                .await?,
            out.json,
        ),
        ClientCmd::Enable { id, out } => show_client(
            &app.admin()
                .set_client_disabled(CLI_ACTOR, &id, false, now())
                .await?,
            out.json,
        ),
        ClientCmd::Delete { id, out } => {
            app.admin().delete_client(CLI_ACTOR, &id, now()).await?;
            if out.json {
                print_json(&json!({"client_id": id, "deleted": true}));
            } else {
                println!("deleted client {id}");
            }
        }
        ClientCmd::RotateSecret { id, grace, out } => {
            let (secret, until) = app
                .admin()
                .rotate_client_secret(CLI_ACTOR, &id, grace, now())
                .await?;
            if out.json {
                print_json(
                    &json!({"client_id": id, "client_secret": secret.expose(), "previous_secrets_expire_at": until}),
                );
            } else {
                println!("client_id:     {id}");
                println!("client_secret: {}", secret.expose());
                println!("old secrets work until {}", ts(until));
            }
            eprintln!("note: the client secret is shown only this once; store it now.");
        }
        ClientCmd::Seed {
            count,
            name,
            scope,
            audience,
            show,
            out,
        } => {
            let template = NewClient {
                name,
                scopes: scope,
                audiences: audience,
                ..NewClient::default()
            };
            let started = std::time::Instant::now();
            // Progress after every stored batch (50,000 clients).
            let kept = app
                .admin()
                .seed_clients(CLI_ACTOR, count, &template, show, now(), |done| {
                    eprintln!(
                        "  {done}/{count} clients stored ({:.1} s)",
                        started.elapsed().as_secs_f64()
                    );
                })
                .await?;
            let creds: Vec<_> = kept
                .iter()
                .map(|(id, secret)| json!({"client_id": id, "client_secret": secret.expose()}))
                .collect();
            if out.json {
                print_json(&json!({"created": count, "clients": creds}));
            } else {
                println!("created {count} clients");
                for c in &creds {
                    println!(
                        "{} {}",
                        c["client_id"].as_str().unwrap_or(""),
                        c["client_secret"].as_str().unwrap_or("")
                    );
                }
            }
            if show > 0 {
                eprintln!("note: the client secrets are shown only this once; store them now.");
            }
        }
        ClientCmd::RevokeTokens { id, out } => {
            let c = app
                .admin()
                .revoke_client_tokens(CLI_ACTOR, &id, now())
                .await?;
            tokio::time::sleep(crate::service::admin::revocation_settles_in(
                c.tokens_revoked_before,
            ))
            .await;
            show_client(&c, out.json)
        }
    }
    Ok(())
}

async fn api_key(app: &App, cmd: ApiKeyCmd) -> Result<(), ServiceError> {
    let now = now();
    match cmd {
        ApiKeyCmd::Create {
            client,
            name,
            expires_in,
            out,
        } => {
            let (record, key) = app
                .admin()
                .create_api_key(CLI_ACTOR, &client, name, expires_in, now)
                .await?;
            if out.json {
                let mut v = api_key_view(&record, now);
                v["secret_key"] = json!(key.expose());
                print_json(&v);
            } else {
                println!("id:         {}", record.id);
                println!("client_id:  {}", record.client_id);
                println!("secret_key: {}", key.expose());
            }
            eprintln!("note: the API key is shown only this once; store it now.");
        }
        ApiKeyCmd::List { client, out } => {
            let keys = app.admin().list_api_keys(&client).await?;
            if out.json {
                print_json(&json!(keys
                    .iter()
                    .map(|k| api_key_view(k, now))
                    .collect::<Vec<_>>()));
            } else {
                table(&KEY_HEADERS, &key_rows(&keys, now));
            }
        }
        ApiKeyCmd::Revoke { key_id, out } => {
            let k = app.admin().revoke_api_key(CLI_ACTOR, &key_id, now).await?;
            if out.json {
                print_json(&api_key_view(&k, now));
            } else {
                table(&KEY_HEADERS, &key_rows(&[k], now));
            }
        }
    }
    Ok(())
}

async fn signing_key(app: &App, cmd: SigningKeyCmd) -> Result<(), ServiceError> {
    let print = |keys: &[crate::store::SigningKeyRecord], json_out: bool| {
        if json_out {
            print_json(&json!(keys));
        } else {
            let rows: Vec<_> = keys
                .iter()
                .map(|k| {
                    vec![
                        k.kid.clone(),
                        k.alg.clone(),
                        k.location.as_str().to_string(),
                        ts(k.created_at),
                        ts(k.activates_at),
                        k.retired_at.map(ts).unwrap_or_default(),
                        k.compromised_at.map(ts).unwrap_or_default(),
                    ]
                })
                .collect();
            table(
                &[
                    "KID",
                    "ALG",
                    "LOCATION",
                    "CREATED",
                    "SIGNS_FROM",
                    "RETIRED",
                    "COMPROMISED",
                ],
                &rows,
            );
        }
    };
    match cmd {
        SigningKeyCmd::List { out } => {
            print(&app.signing_keys().list_signing_keys().await?, out.json)
        }
        SigningKeyCmd::Rotate {
            alg,
            prepublish,
            out,
        } => {
            let alg = match alg {
                None => None,
                Some(a) => Some(Alg::parse(&a).ok_or_else(|| {
                    ServiceError::invalid_request("--alg must be ES256, EdDSA, RS256 or PS256")
                })?),
            };
            let rec = app
                .signing_keys()
                .rotate_signing_key(CLI_ACTOR, alg, prepublish, now())
                .await?;
            print(&[rec], out.json);
        }
        SigningKeyCmd::Retire {
            kid,
            compromised,
            out,
        } => {
            let rec = app
                .signing_keys()
                .retire_signing_key(CLI_ACTOR, &kid, compromised, now())
                .await?;
            print(&[rec], out.json);
        }
    }
    Ok(())
}

async fn prune(app: &App, json_out: bool) -> Result<(), ServiceError> {
    eprintln!("pruning expired revocations…");
    let n = app.prune_revocations(now()).await?;
    if json_out {
        print_json(&json!({"pruned": n}));
    } else {
        println!("pruned {n} expired revocations");
    }
    Ok(())
}

async fn ssf(app: &App, cmd: SsfCmd) -> Result<(), ServiceError> {
    let SsfCmd::Streams { out } = cmd;
    let streams = app.signals().admin_view().await?;
    if out.json {
        print_json(&json!(streams));
    } else {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        let rows: Vec<_> = streams
            .iter()
            .map(|s| {
                vec![
                    text(&s["stream_id"]),
                    text(&s["aud"]),
                    text(&s["delivery"]["method"]),
                    text(&s["status"]),
                    s["backlog"].to_string(),
                    text(&s["last_error"]),
                ]
            })
            .collect();
        table(
            &[
                "STREAM",
                "RECEIVER",
                "METHOD",
                "STATUS",
                "BACKLOG",
                "LAST_ERROR",
            ],
            &rows,
        );
    }
    Ok(())
}

async fn audit(app: &App, cmd: AuditCmd) -> Result<(), ServiceError> {
    let AuditCmd::List { after, limit, out } = cmd;
    let entries = app.admin().list_audit(after, limit).await?;
    if out.json {
        print_json(&json!(entries));
    } else {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                vec![
                    e.id.to_string(),
                    ts(e.at),
                    e.actor.clone(),
                    e.action.clone(),
                    e.target.clone().unwrap_or_default(),
                    e.detail.to_string(),
                ]
            })
            .collect();
        table(&["ID", "AT", "ACTOR", "ACTION", "TARGET", "DETAIL"], &rows);
    }
    Ok(())
}
