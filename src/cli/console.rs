//! `tollgate console`: login links for the web console, and its sessions.

use serde_json::json;

use super::args::ConsoleCmd;
use super::output::{print_json, table, ts};
use super::CLI_ACTOR;
use crate::service::console::session_view;
use crate::service::error::ServiceError;
use crate::service::{now, App};

/// Runs one `tollgate console` command.
pub(super) async fn run(app: &App, cmd: ConsoleCmd) -> Result<(), ServiceError> {
    match cmd {
        ConsoleCmd::LoginLink { base_url, out } => {
            let link = app
                .console()
                .create_login_link(CLI_ACTOR, base_url.as_deref(), now())
                .await?;
            if out.json {
                print_json(&link.view());
            } else {
                // The URL alone on stdout, so that scripts can take it.
                println!("{}", link.url.expose());
                eprintln!(
                    "single use, valid until {} (session {})",
                    ts(link.session.link_expires_at),
                    link.session.id
                );
            }
        }
        ConsoleCmd::Sessions {
            revoke: Some(id),
            out,
        } => {
            app.console()
                .revoke_console_session(CLI_ACTOR, &id, now())
                .await?;
            if out.json {
                print_json(&json!({"id": id, "revoked": true}));
            } else {
                println!("revoked {id}");
            }
        }
        ConsoleCmd::Sessions { revoke: None, out } => {
            let now = now();
            let sessions = app.console().list_console_sessions().await?;
            if out.json {
                print_json(&json!(sessions
                    .iter()
                    .map(|s| session_view(s, now))
                    .collect::<Vec<_>>()));
            } else {
                let rows: Vec<_> = sessions
                    .iter()
                    .map(|s| {
                        vec![
                            s.id.clone(),
                            s.state(now).as_str().to_string(),
                            s.created_by.clone(),
                            ts(s.created_at),
                            s.opened_at.map(ts).unwrap_or_default(),
                            s.last_seen_at.map(ts).unwrap_or_default(),
                            ts(s.expires_at()),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "ID",
                        "STATE",
                        "CREATED BY",
                        "CREATED",
                        "OPENED",
                        "LAST SEEN",
                        "ENDS",
                    ],
                    &rows,
                );
            }
        }
    }
    Ok(())
}
