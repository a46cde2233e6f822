//! `tollgate cimd`: what URL clients (Client ID Metadata Documents) of each
//! host may get, and blocked URLs, through the same use cases as the admin
//! API.

use serde_json::json;

use super::args::{CimdCmd, CimdHostCmd};
use super::output::{print_json, table, ts};
use super::CLI_ACTOR;
use crate::service::cimd::NewCimdHost;
use crate::service::error::ServiceError;
use crate::service::{now, App};

pub(super) async fn run(app: &App, cmd: CimdCmd) -> Result<(), ServiceError> {
    match cmd {
        CimdCmd::Host(CimdHostCmd::Add {
            host,
            scope,
            audience,
            out,
        }) => {
            let h = app
                .admin()
                .set_cimd_host(
                    CLI_ACTOR,
                    NewCimdHost {
                        host,
                        scopes: scope,
                        audiences: audience,
                    },
                    now(),
                )
                .await?;
            hosts(&[h], out.json);
        }
        CimdCmd::Host(CimdHostCmd::List { out }) => {
            hosts(&app.admin().cimd().await?.hosts, out.json)
        }
        CimdCmd::Host(CimdHostCmd::Remove { host }) => {
            app.admin()
                .remove_cimd_host(CLI_ACTOR, &host, now())
                .await?;
            println!("removed the policy for {host}");
        }
        CimdCmd::Block { url, out } => block(app, &url, true, out.json).await?,
        CimdCmd::Unblock { url, out } => block(app, &url, false, out.json).await?,
        CimdCmd::Blocks { out } => {
            let blocks = app.admin().cimd().await?.blocks;
            if out.json {
                print_json(&json!(blocks));
            } else {
                let rows: Vec<_> = blocks
                    .iter()
                    .map(|b| vec![b.url.clone(), ts(b.created_at)])
                    .collect();
                table(&["URL", "BLOCKED"], &rows);
            }
        }
    }
    Ok(())
}

async fn block(app: &App, url: &str, blocked: bool, json_out: bool) -> Result<(), ServiceError> {
    let changed = app
        .admin()
        .block_cimd(CLI_ACTOR, url, blocked, now())
        .await?;
    if json_out {
        print_json(&json!({"url": url, "blocked": blocked, "changed": changed}));
    } else {
        let verb = if blocked { "blocked" } else { "unblocked" };
        println!("{url} {verb}{}", if changed { "" } else { " (already)" });
    }
    Ok(())
}

fn hosts(list: &[crate::domain::CimdHost], json_out: bool) {
    if json_out {
        print_json(&json!(list));
        return;
    }
    let rows: Vec<_> = list
        .iter()
        .map(|h| {
            vec![
                h.host.clone(),
                h.scopes.join(" "),
                h.audiences.join(" "),
                ts(h.created_at),
            ]
        })
        .collect();
    table(&["HOST", "SCOPES", "AUDIENCES", "SET"], &rows);
}
