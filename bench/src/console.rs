//! The console's pages under load, with 100,000 clients seeded.

use std::path::Path;

use tollgate::service::admin::NewClient;
use tollgate::service::now;

use crate::*;

/// Clients registered for the console's pages.
pub(crate) const CONSOLE_CLIENTS: usize = 100_000;
/// Connections for the console's pages: an operator or two, not a crowd.
pub(crate) const CONSOLE_CONNECTIONS: u32 = 2;
/// Seconds per console page.
pub(crate) const CONSOLE_SECONDS: u64 = 3;

/// The console's pages with 100,000 clients: a database of its own, seeded
/// with the clients and 1,000 audit entries (500 clients disabled and
/// enabled again), a session opened through the use case, then each page
/// fetched by wrk with the session cookie. A non-2xx answer (a redirect to
/// the sign-in page, say) counts as an error.
///
/// With `pg_url`, the same on PostgreSQL, in a schema of its own dropped
/// afterwards.
pub(crate) fn run_console(
    args: &Args,
    bin: &Path,
    template: &NewClient,
    pg_url: Option<&str>,
) -> Vec<Figures> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(&e.to_string()));
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap_or_else(|e| fail(&e.to_string()));
    let schema = format!("tollgate_bench_console_{}", std::process::id());
    let db = pg_url.map(|url| fresh_schema(url, &schema));
    let backend = if pg_url.is_some() {
        "PG console"
    } else {
        "console"
    };
    let app = open_app(dir.path(), db.as_deref());
    println!("seeding {CONSOLE_CLIENTS} clients for the console…");
    block(
        app.admin()
            .seed_clients("bench", CONSOLE_CLIENTS, template, 0, now(), |_| {}),
    )
    .unwrap_or_else(|e| fail(&e.to_string()));
    let some = block(app.admin().list_clients(None, 1000)).unwrap_or_else(|e| fail(&e.to_string()));
    for c in some.iter().take(500) {
        for disabled in [true, false] {
            block(
                app.admin()
                    .set_client_disabled("bench", &c.id, disabled, now()),
            )
            .unwrap_or_else(|e| fail(&e.to_string()));
        }
    }
    let link = block(
        app.console()
            .create_login_link(tollgate::domain::CLI_ACTOR, None, now()),
    )
    .unwrap_or_else(|e| fail(&e.to_string()));
    let (_, cookie) = block(
        app.console()
            .open_console_session(link.token.expose(), now()),
    )
    .unwrap_or_else(|e| fail(&e.to_string()));
    let middle = block(app.admin().list_clients(Some(&some[999].id), 1000))
        .unwrap_or_else(|e| fail(&e.to_string()));
    drop(app);
    if let Some(url) = pg_url {
        // What autovacuum does within a minute of the bulk load in a real
        // deployment: the visibility map (for index-only scans) and the
        // planner's statistics.
        pg_exec(
            url,
            &format!("VACUUM (ANALYZE) {schema}.clients, {schema}.audit_log"),
        )
        .unwrap_or_else(|e| fail(&format!("PostgreSQL: {e}")));
    }
    let server = start_server(bin, dir.path(), db.as_deref());
    let id = &some[0].id;
    let after = &middle[999].id;
    // The issuer is https: the cookie has the `__Host-` name.
    let cookie = format!("__Host-tollgate_console={}", cookie.expose());
    let pages = [
        ("overview", "/console".to_string(), ""),
        ("clients, first page", "/console/clients".to_string(), ""),
        (
            "clients, a page 2,000 in",
            format!("/console/clients?after={after}"),
            "",
        ),
        (
            "clients, search by part of an id",
            format!("/console/clients?q={}", &id[4..14]),
            "one match: every row is looked at",
        ),
        (
            "clients, search by name",
            "/console/clients?q=BENCH".to_string(),
            "every client matches: the first 50",
        ),
        ("client page", format!("/console/clients/{id}"), ""),
        ("signing keys", "/console/signing-keys".to_string(), ""),
        ("audit log", "/console/audit".to_string(), ""),
        (
            "audit log, filtered by action",
            "/console/audit?action=client.disable".to_string(),
            "",
        ),
    ];
    let mut out = Vec::new();
    for (name, path, note) in pages {
        let script = scripts.join(format!("console-{}.lua", out.len()));
        std::fs::write(
            &script,
            format!(
                r#"request = function()
  return wrk.format("GET", "{path}", {{ ["Cookie"] = "{cookie}" }})
end
"#
            ),
        )
        .unwrap_or_else(|e| fail(&e.to_string()));
        let mut f = wrk_with(
            args,
            CONSOLE_CONNECTIONS,
            &server,
            &format!("{backend}: {name}"),
            &script,
            CONSOLE_SECONDS,
        );
        f.note = note.to_string();
        out.push(f);
    }
    drop(server);
    if let Some(url) = pg_url {
        let _ = pg_exec(url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    }
    out
}
