//! The command line: `serve`, and admin subcommands that call the same
//! operations as the admin API, against the same database and configuration.

mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::admin::{api_key_view, ClientPatch, NewClient};
use crate::app::{now, App};
use crate::config::Config;
use crate::error::ApiError;
use crate::token::Alg;
use output::{print_json, table, ts};

/// Tollgate: an OAuth 2.0 client-credentials authorization server.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file; environment variables (TOLLGATE_*) override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
        /// Exit when standard input closes (used by tests to never leave a server behind).
        #[arg(long, hide = true)]
        exit_on_eof: bool,
    },
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCmd),
    /// Manage API keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCmd),
    /// Manage token-signing keys.
    #[command(subcommand, name = "signing-key")]
    SigningKey(SigningKeyCmd),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Copy a deployment into a new, empty database: clients, hashed secrets,
    /// API keys, revocations, signing-key records and the audit log.
    Migrate {
        /// The source: a SQLite file or a postgres:// URL.
        #[arg(long, value_name = "DB")]
        from: String,
        /// The destination, created and migrated if needed; must hold no clients yet.
        #[arg(long, value_name = "DB")]
        to: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Forget revocations of tokens that have expired (the server also does this every minute).
    Prune {
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Args)]
struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct QuotaArgs {
    /// Tokens the client may get per quota window (0: no quota; default: the server's).
    #[arg(long, value_name = "N")]
    quota: Option<u64>,
    /// Quota window in seconds (default: the server's, 3600).
    #[arg(long, value_name = "SECONDS")]
    quota_window: Option<i64>,
    /// Seconds a client over its quota is refused tokens (default: the server's, 3600).
    #[arg(long, value_name = "SECONDS")]
    ban: Option<i64>,
}

#[derive(Debug, Subcommand)]
enum ClientCmd {
    /// Create a client and print its secret, once.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Allowed scopes, space-separated; may repeat.
        #[arg(long)]
        scope: Vec<String>,
        /// Allowed audience; may repeat; the first is the default.
        #[arg(long)]
        audience: Vec<String>,
        /// Access-token lifetime in seconds (default: the server's).
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<i64>,
        /// Owner (team, service or contact).
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        quota: QuotaArgs,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List clients.
    List {
        /// Start after this client id.
        #[arg(long)]
        after: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show one client.
    Show {
        /// Client id.
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Change a client's name, owner, scopes, audiences or TTL.
    Update {
        /// Client id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New scopes (replace the old ones); may repeat.
        #[arg(long)]
        scope: Option<Vec<String>>,
        /// New audiences (replace the old ones); may repeat.
        #[arg(long)]
        audience: Option<Vec<String>>,
        /// New token lifetime in seconds.
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<i64>,
        /// New owner.
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        quota: QuotaArgs,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Disable a client: no new tokens, existing ones introspect inactive.
    Disable {
        /// Client id.
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Enable a disabled client.
    Enable {
        /// Client id.
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete a client, its secrets and its API keys.
    Delete {
        /// Client id.
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Issue a new secret; old ones keep working for the grace period.
    RotateSecret {
        /// Client id.
        id: String,
        /// Seconds the old secrets keep working (default: the server's, 86400).
        #[arg(long, value_name = "SECONDS")]
        grace: Option<i64>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Create many clients at once (load tests, staging), reporting progress.
    Seed {
        /// How many clients.
        #[arg(long)]
        count: usize,
        /// Display name of each.
        #[arg(long, default_value = "seeded")]
        name: String,
        /// Allowed scopes, space-separated; may repeat.
        #[arg(long)]
        scope: Vec<String>,
        /// Allowed audience; may repeat.
        #[arg(long)]
        audience: Vec<String>,
        /// Print the credentials of the first N clients (shown once).
        #[arg(long, default_value_t = 0, value_name = "N")]
        show: usize,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Revoke every token issued to the client so far.
    RevokeTokens {
        /// Client id.
        id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
enum ApiKeyCmd {
    /// Create an API key acting as a client and print it, once.
    Create {
        /// The client the key acts as.
        #[arg(long)]
        client: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Seconds until the key expires (default: never).
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<i64>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List a client's API keys (prefix and last four characters only).
    List {
        /// Client id.
        #[arg(long)]
        client: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Revoke an API key.
    Revoke {
        /// Key id (`key_…`).
        key_id: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
enum SigningKeyCmd {
    /// List signing keys and their lifecycle.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Create a new signing key: published now, signing after the pre-publication time.
    Rotate {
        /// Algorithm: ES256, EdDSA or RS256 (default: TOLLGATE_SIGNING_ALG).
        #[arg(long)]
        alg: Option<String>,
        /// Seconds the new key is published before it signs (default: TOLLGATE_KEY_PREPUBLISH).
        #[arg(long, value_name = "SECONDS")]
        prepublish: Option<i64>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Stop signing with a key now; it stays in the JWKS until its tokens expire.
    Retire {
        /// Key id.
        kid: String,
        /// The key leaked: take it out of the JWKS now and make every token
        /// it signed inactive now (a new key signs from now if it was the only one).
        #[arg(long)]
        compromised: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// List audit entries, oldest first.
    List {
        /// Start after this entry id.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        out: JsonFlag,
    },
}

/// The audit actor for the command line.
const CLI_ACTOR: &str = "cli";

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(
        match cli.command {
            Command::Serve { .. } => "info",
            _ => "warn",
        },
    ))
    // tokio-postgres logs every statement's parameters at debug (key
    // digests, token ids, client ids): never below info, whatever RUST_LOG says.
    .filter_module("tokio_postgres", log::LevelFilter::Info)
    .init();
    if let Command::Migrate { from, to, out } = &cli.command {
        return migrate(from, to, out.json);
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::from(2);
        }
    };
    let app = match App::open(config) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Serve { exit_on_eof } => return serve(app, exit_on_eof),
        Command::Client(c) => client(&app, c),
        Command::ApiKey(c) => api_key(&app, c),
        Command::SigningKey(c) => signing_key(&app, c),
        Command::Audit(c) => audit(&app, c),
        Command::Prune { out } => prune(&app, out.json),
        Command::Migrate { .. } => unreachable_migrate(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: {}: {}", e.code.as_str(), e.description);
            ExitCode::from(1)
        }
    }
}

/// Handled before the configuration is read: it names both databases itself.
fn unreachable_migrate() -> Result<(), ApiError> {
    Err(ApiError::internal("migrate is handled before start-up"))
}

/// `tollgate migrate --from DB --to DB`.
fn migrate(from: &str, to: &str, json: bool) -> ExitCode {
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
    let source = match crate::store::open(from, 4) {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot open {}: {e}", redact_url(from))),
    };
    let target = match crate::store::open(to, 4) {
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
    match crate::store::copy(source.as_ref(), target.as_ref(), &audit) {
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

fn serve(app: App, exit_on_eof: bool) -> ExitCode {
    if exit_on_eof {
        std::thread::spawn(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            std::process::exit(0);
        });
    }
    let system = actix_web::rt::System::new();
    match system.block_on(crate::server::run(app)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: cannot serve: {e}");
            ExitCode::from(1)
        }
    }
}

fn client_row(c: &crate::store::Client) -> Vec<String> {
    vec![
        c.id.clone(),
        c.name.clone(),
        c.scopes.join(" "),
        c.audiences.join(" "),
        c.token_ttl.map_or("default".into(), |t| t.to_string()),
        if c.disabled { "disabled" } else { "enabled" }.into(),
        c.owner.clone().unwrap_or_default(),
    ]
}

const CLIENT_HEADERS: [&str; 7] = [
    "CLIENT_ID",
    "NAME",
    "SCOPES",
    "AUDIENCES",
    "TTL",
    "STATE",
    "OWNER",
];

fn show_client(c: &crate::store::Client, json: bool) {
    if json {
        print_json(&json!(c));
    } else {
        table(&CLIENT_HEADERS, &[client_row(c)]);
    }
}

fn client(app: &App, cmd: ClientCmd) -> Result<(), ApiError> {
    match cmd {
        ClientCmd::Create {
            name,
            scope,
            audience,
            ttl,
            owner,
            quota,
            out,
        } => {
            let (c, secret) = app.create_client(
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
                },
                now(),
            )?;
            if out.json {
                let mut v = json!(c);
                v["client_secret"] = json!(secret.expose());
                print_json(&v);
            } else {
                println!("client_id:     {}", c.id);
                println!("client_secret: {}", secret.expose());
                println!("scopes:        {}", c.scopes.join(" "));
                println!("audiences:     {}", c.audiences.join(" "));
            }
            eprintln!("note: the client secret is shown only this once; store it now.");
        }
        ClientCmd::List { after, limit, out } => {
            let list = app.list_clients(after.as_deref(), limit)?;
            if out.json {
                print_json(&json!(list));
            } else {
                let rows: Vec<_> = list.iter().map(client_row).collect();
                table(&CLIENT_HEADERS, &rows);
            }
        }
        ClientCmd::Show { id, out } => show_client(&app.get_client(&id)?, out.json),
        ClientCmd::Update {
            id,
            name,
            scope,
            audience,
            ttl,
            owner,
            quota,
            out,
        } => {
            let patch = ClientPatch {
                name,
                owner: owner.map(Some),
                scopes: scope,
                audiences: audience,
                token_ttl: ttl.map(Some),
                token_quota: quota.quota.map(Some),
                quota_window: quota.quota_window.map(Some),
                quota_ban: quota.ban.map(Some),
            };
            show_client(&app.update_client(CLI_ACTOR, &id, patch, now())?, out.json);
        }
        ClientCmd::Disable { id, out } => show_client(
            &app.set_client_disabled(CLI_ACTOR, &id, true, now())?,
            out.json,
        ),
        ClientCmd::Enable { id, out } => show_client(
            &app.set_client_disabled(CLI_ACTOR, &id, false, now())?,
            out.json,
        ),
        ClientCmd::Delete { id, out } => {
            app.delete_client(CLI_ACTOR, &id, now())?;
            if out.json {
                print_json(&json!({"client_id": id, "deleted": true}));
            } else {
                println!("deleted client {id}");
            }
        }
        ClientCmd::RotateSecret { id, grace, out } => {
            let (secret, until) = app.rotate_client_secret(CLI_ACTOR, &id, grace, now())?;
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
            let kept = app.seed_clients(CLI_ACTOR, count, &template, show, now(), |done| {
                eprintln!(
                    "  {done}/{count} clients stored ({:.1} s)",
                    started.elapsed().as_secs_f64()
                );
            })?;
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
            let c = app.revoke_client_tokens(CLI_ACTOR, &id, now())?;
            std::thread::sleep(crate::admin::revocation_settles_in(c.tokens_revoked_before));
            show_client(&c, out.json)
        }
    }
    Ok(())
}

fn key_rows(keys: &[crate::store::ApiKeyRecord], now: i64) -> Vec<Vec<String>> {
    keys.iter()
        .map(|k| {
            vec![
                k.id.clone(),
                k.client_id.clone(),
                k.name.clone().unwrap_or_default(),
                format!("{}…{}", k.prefix, k.last4),
                k.state(now).to_string(),
                ts(k.created_at),
                k.last_used_at.map(ts).unwrap_or_else(|| "never".into()),
                k.expires_at.map(ts).unwrap_or_else(|| "never".into()),
            ]
        })
        .collect()
}

const KEY_HEADERS: [&str; 8] = [
    "KEY_ID",
    "CLIENT_ID",
    "NAME",
    "KEY",
    "STATE",
    "CREATED",
    "LAST_USED",
    "EXPIRES",
];

fn api_key(app: &App, cmd: ApiKeyCmd) -> Result<(), ApiError> {
    let now = now();
    match cmd {
        ApiKeyCmd::Create {
            client,
            name,
            expires_in,
            out,
        } => {
            let (record, key) = app.create_api_key(CLI_ACTOR, &client, name, expires_in, now)?;
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
            let keys = app.list_api_keys(&client)?;
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
            let k = app.revoke_api_key(CLI_ACTOR, &key_id, now)?;
            if out.json {
                print_json(&api_key_view(&k, now));
            } else {
                table(&KEY_HEADERS, &key_rows(&[k], now));
            }
        }
    }
    Ok(())
}

fn signing_key(app: &App, cmd: SigningKeyCmd) -> Result<(), ApiError> {
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
        SigningKeyCmd::List { out } => print(&app.list_signing_keys()?, out.json),
        SigningKeyCmd::Rotate {
            alg,
            prepublish,
            out,
        } => {
            let alg = match alg {
                None => None,
                Some(a) => Some(Alg::parse(&a).ok_or_else(|| {
                    ApiError::invalid_request("--alg must be ES256, EdDSA or RS256")
                })?),
            };
            let rec = app.rotate_signing_key(CLI_ACTOR, alg, prepublish, now())?;
            print(&[rec], out.json);
        }
        SigningKeyCmd::Retire {
            kid,
            compromised,
            out,
        } => {
            let rec = app.retire_signing_key(CLI_ACTOR, &kid, compromised, now())?;
            print(&[rec], out.json);
        }
    }
    Ok(())
}

fn prune(app: &App, json_out: bool) -> Result<(), ApiError> {
    eprintln!("pruning expired revocations…");
    let n = app.store.prune_revocations(now())?;
    if json_out {
        print_json(&json!({"pruned": n}));
    } else {
        println!("pruned {n} expired revocations");
    }
    Ok(())
}

fn audit(app: &App, cmd: AuditCmd) -> Result<(), ApiError> {
    let AuditCmd::List { after, limit, out } = cmd;
    let entries = app.list_audit(after, limit)?;
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
