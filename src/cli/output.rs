//! Command-line output: aligned tables, JSON, readable timestamps, and the
//! table views of clients and API keys.

use serde_json::json;

/// Prints a JSON value, pretty.
pub(super) fn print_json(v: &serde_json::Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("tollgate: cannot print JSON: {e}"),
    }
}

/// Prints rows as a table with aligned columns.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A Unix time as RFC 3339 UTC.
pub(super) fn ts(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

pub(super) fn client_row(c: &crate::store::Client) -> Vec<String> {
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

pub(super) const CLIENT_HEADERS: [&str; 7] = [
    "CLIENT_ID",
    "NAME",
    "SCOPES",
    "AUDIENCES",
    "TTL",
    "STATE",
    "OWNER",
];

pub(super) fn show_client(c: &crate::store::Client, json: bool) {
    if json {
        print_json(&json!(c));
    } else {
        table(&CLIENT_HEADERS, &[client_row(c)]);
        if let Some(claims) = &c.claims {
            println!("claims: {}", serde_json::Value::Object(claims.clone()));
        }
        if let Some(p) = &c.token_exchange {
            println!(
                "token exchange: subject audiences {}; subject issuers {}; transaction tokens {}",
                p.subject_audiences.join(" "),
                if p.subject_issuers.is_empty() {
                    "none (Tollgate's own tokens only)".to_string()
                } else {
                    p.subject_issuers.join(" ")
                },
                if p.txn_tokens { "yes" } else { "no" }
            );
        }
    }
}

pub(super) fn key_rows(keys: &[crate::store::ApiKeyRecord], now: i64) -> Vec<Vec<String>> {
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

pub(super) const KEY_HEADERS: [&str; 8] = [
    "KEY_ID",
    "CLIENT_ID",
    "NAME",
    "KEY",
    "STATE",
    "CREATED",
    "LAST_USED",
    "EXPIRES",
];
