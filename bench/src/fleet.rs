//! The PostgreSQL workloads: one instance and a fleet of two on one
//! database, each on a fresh schema.

use std::path::Path;

use tollgate::service::admin::NewClient;
use tollgate::service::now;

use crate::*;

/// Runs one statement on `url` (schema set-up and clean-up).
pub(crate) fn pg_exec(url: &str, sql: &str) -> Result<String, String> {
    tollgate::store::postgres::execute_once(url, sql)
        .map(Option::unwrap_or_default)
        .map_err(|e| e.to_string())
}

pub(crate) fn pg_version(url: &str) -> String {
    pg_exec(url, "SHOW server_version")
        .map(|v| format!("PostgreSQL {v}"))
        .unwrap_or_else(|_| "PostgreSQL".into())
}

/// Makes `schema` anew in the PostgreSQL at `url`; returns the `TOLLGATE_DB`
/// URL that puts Tollgate in it.
pub(crate) fn fresh_schema(url: &str, schema: &str) -> String {
    pg_exec(
        url,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    )
    .unwrap_or_else(|e| fail(&format!("PostgreSQL: {e}")));
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// W1 and W2 on PostgreSQL, one instance and then two sharing the database
/// and the keys, plus the fleet-wide quota under load.
pub(crate) fn run_pg(
    args: &Args,
    bin: &Path,
    url: &str,
    template: &NewClient,
) -> (Vec<Figures>, Vec<String>) {
    let schema = format!("tollgate_bench_{}", std::process::id());
    let db = fresh_schema(url, &schema);
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(&e.to_string()));
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap_or_else(|e| fail(&e.to_string()));
    let app = open_app(dir.path(), Some(&db));
    let t0 = now();
    println!("in PostgreSQL:");
    let Seeded {
        clients,
        introspect_auth,
        tokens,
        quota_client,
        ssf_auth,
    } = seed(&app, args.clients, template, t0);
    let (w8_file, w9_file) = (dir.path().join("w8.bodies"), dir.path().join("w9.bodies"));
    println!("signing {W8_ASSERTIONS} client assertions for PG W8…");
    w8_bodies(&app, &w8_file, W8_ASSERTIONS, t0);
    w9_bodies(&app, &w9_file, W9_TOKENS, t0);
    drop(app);

    let form = "application/x-www-form-urlencoded";
    let auths: Vec<String> = clients.iter().map(|(id, s)| basic(id, s)).collect();
    let w1 = script(
        &scripts,
        "pg_w1",
        "/oauth/token",
        form,
        &auths,
        &["grant_type=client_credentials".to_string()],
    );
    let bodies: Vec<String> = tokens.iter().map(|t| format!("token={t}")).collect();
    let w2 = script(
        &scripts,
        "pg_w2",
        "/oauth/introspect",
        form,
        std::slice::from_ref(&introspect_auth),
        &bodies,
    );
    let quota = script(
        &scripts,
        "pg_quota",
        "/oauth/token",
        form,
        std::slice::from_ref(&quota_client),
        &["grant_type=client_credentials".to_string()],
    );
    // Every instance runs in the same directory: its keys directory is the
    // fleet's shared key storage (the database is PostgreSQL).
    let start = || start_server(bin, dir.path(), Some(&db));
    let mut out = Vec::new();
    let mut checks = Vec::new();
    {
        let one = start();
        let mut f = wrk(args, &one, "PG W1 issuance, 1 instance", &w1, args.duration);
        f.note = "no database call per token (cache)".into();
        out.push(f);
        let mut f = wrk(
            args,
            &one,
            "PG W2 JWT introspection, 1 instance",
            &w2,
            args.duration,
        );
        f.note = "revocation answered from cache".into();
        out.push(f);
        let w8 = bodies_script(&scripts, "pg_w8", &w8_file);
        let mut f = wrk(
            args,
            &one,
            "PG W8 private_key_jwt issuance, a fresh jti each time, 1 instance",
            &w8,
            args.duration,
        );
        f.note = "one INSERT per jti, the fleet's replay cache".into();
        out.push(f);
        let w9 = bodies_script(&scripts, "pg_w9", &w9_file);
        out.push(wrk(
            args,
            &one,
            "PG W9 federation exchange, 1 instance",
            &w9,
            args.duration,
        ));
    }
    let fleet = vec![start(), start()];
    let mut f = wrk_fleet(
        args,
        &fleet,
        "PG W1 issuance, 2 instances",
        &w1,
        args.duration,
    );
    f.note = "both instances and wrk share 2 cores".into();
    out.push(f);
    out.push(wrk_fleet(
        args,
        &fleet,
        "PG W2 JWT introspection, 2 instances",
        &w2,
        args.duration,
    ));
    {
        // W14 on the fleet: the stream made through one instance, the
        // revocations alternating between both; each SET pushed once.
        let recv = crate::ssf::receiver();
        if !crate::ssf::open_stream(&fleet[0].addr, &ssf_auth, &recv) {
            fail("PG W14: the stream was not created");
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (cid, csecret) = clients[3 % clients.len()].clone();
        let side = crate::ssf::revocations(
            fleet.iter().map(|s| s.addr.clone()).collect(),
            basic(&cid, &csecret),
            stop.clone(),
        );
        let mut f = wrk_fleet(
            args,
            &fleet,
            "PG W14 issuance, 2 instances, 20 revocations/s pushed as SETs",
            &w1,
            args.duration,
        );
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let acks = side.join().unwrap_or_default();
        let l = crate::ssf::latency(&acks, &recv);
        f.note = l.note();
        checks.push(l.check(
            "W14 Shared Signals on a two-instance PostgreSQL fleet",
            acks.len(),
        ));
        out.push(f);
    }
    let q = wrk_fleet(args, &fleet, "PG quota check", &quota, 3);
    let granted = q.requests.saturating_sub(q.errors);
    checks.push(format!(
        "Quota across two PostgreSQL instances under load: a client with a quota of 2000 got {granted} tokens out of {} requests: {}",
        q.requests,
        if granted == 2000 { "PASS" } else { "FAIL" }
    ));
    drop(fleet);
    let _ = pg_exec(url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    (out, checks)
}
