//! `tollgate federation`: trusted issuers, rules, and a dry run of an
//! external token against them, through the same use cases as the admin API.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::args::{FederationCmd, IssuerCmd, RuleCmd};
use super::output::{print_json, table, ts};
use super::CLI_ACTOR;
use crate::domain::{FederationIssuer, FederationRule};
use crate::service::error::ServiceError;
use crate::service::federation::{NewIssuer, NewRule};
use crate::service::{now, App};

fn read(path: &Path) -> Result<String, ServiceError> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    text.map_err(|e| ServiceError::invalid_request(format!("cannot read {}: {e}", path.display())))
}

fn print_issuers(issuers: &[FederationIssuer], json_out: bool) {
    if json_out {
        print_json(&json!(issuers));
        return;
    }
    let rows: Vec<_> = issuers
        .iter()
        .map(|i| {
            let keys = match (&i.jwks, &i.jwks_uri) {
                (Some(_), _) => "inline".to_string(),
                (None, Some(u)) => u.clone(),
                (None, None) => "discovery".to_string(),
            };
            vec![
                i.id.clone(),
                i.issuer.clone(),
                keys,
                if i.id_jag { "yes" } else { "no" }.to_string(),
                ts(i.created_at),
            ]
        })
        .collect();
    table(&["ID", "ISSUER", "KEYS", "ID-JAG", "CREATED"], &rows);
}

fn print_rules(rules: &[FederationRule], json_out: bool) {
    if json_out {
        print_json(&json!(rules));
        return;
    }
    let rows: Vec<_> = rules
        .iter()
        .map(|r| {
            let claims: Vec<String> = r.claims.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![
                r.id.clone(),
                r.issuer.clone(),
                r.audience.clone(),
                r.subject.clone().unwrap_or_else(|| "*".into()),
                claims.join(","),
                r.client_id.clone(),
                r.scopes.as_ref().map(|s| s.join(" ")).unwrap_or_default(),
                if r.single_use { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "ISSUER",
            "AUDIENCE",
            "SUBJECT",
            "CLAIMS",
            "CLIENT",
            "SCOPES",
            "SINGLE_USE",
        ],
        &rows,
    );
}

/// Runs one `federation` command.
pub(super) async fn run(app: &App, cmd: FederationCmd) -> Result<(), ServiceError> {
    match cmd {
        FederationCmd::Issuer(IssuerCmd::Add {
            issuer,
            jwks_file,
            jwks_uri,
            id_jag,
            out,
        }) => {
            let jwks = match jwks_file {
                None => None,
                Some(path) => Some(serde_json::from_str(&read(&path)?).map_err(|_| {
                    ServiceError::invalid_request(format!("{} is not JSON", path.display()))
                })?),
            };
            let input = NewIssuer {
                issuer,
                jwks_uri,
                jwks,
                id_jag,
            };
            let i = app
                .admin()
                .add_federation_issuer(CLI_ACTOR, input, now())
                .await?;
            print_issuers(&[i], out.json);
        }
        FederationCmd::Issuer(IssuerCmd::List { out }) => {
            print_issuers(&app.admin().federation().await?.issuers, out.json)
        }
        FederationCmd::Issuer(IssuerCmd::Remove { id }) => {
            app.admin()
                .remove_federation_issuer(CLI_ACTOR, &id, now())
                .await?;
            println!("removed trusted issuer {id}");
        }
        FederationCmd::Rule(RuleCmd::Add {
            issuer,
            audience,
            subject,
            claims,
            client_id,
            scope,
            single_use,
            out,
        }) => {
            let mut conditions = BTreeMap::new();
            for c in claims {
                let Some((name, pattern)) = c.split_once('=') else {
                    return Err(ServiceError::invalid_request("--claim takes NAME=PATTERN"));
                };
                conditions.insert(name.to_string(), pattern.to_string());
            }
            let input = NewRule {
                issuer,
                audience,
                subject,
                claims: Some(conditions),
                client_id,
                scopes: (!scope.is_empty()).then_some(scope),
                single_use: Some(single_use),
            };
            let r = app
                .admin()
                .add_federation_rule(CLI_ACTOR, input, now())
                .await?;
            print_rules(&[r], out.json);
        }
        FederationCmd::Rule(RuleCmd::List { out }) => {
            print_rules(&app.admin().federation().await?.rules, out.json)
        }
        FederationCmd::Rule(RuleCmd::Remove { id }) => {
            app.admin()
                .remove_federation_rule(CLI_ACTOR, &id, now())
                .await?;
            println!("removed federation rule {id}");
        }
        FederationCmd::Test { file, out } => {
            let jwt = read(&file)?;
            let report = app.admin().test_federation(jwt.trim(), now()).await?;
            if out.json {
                print_json(&report);
            } else {
                match report["rule"].as_str() {
                    Some(rule) => println!(
                        "matches rule {rule}: acts as client {}",
                        report["client_id"].as_str().unwrap_or_default()
                    ),
                    None => println!(
                        "no rule matches{}",
                        report["error"]
                            .as_str()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ),
                }
                for r in report["rules"].as_array().into_iter().flatten() {
                    println!(
                        "  {}: {}",
                        r["id"].as_str().unwrap_or_default(),
                        r["reason"].as_str().unwrap_or("matches")
                    );
                }
            }
            if report["matched"] != json!(true) {
                return Err(ServiceError::invalid_request("no federation rule matches"));
            }
        }
    }
    Ok(())
}
