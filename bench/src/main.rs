//! The benchmark harness: starts the release server in a temporary directory,
//! seeds clients, drives fixed workloads with wrk over 64 keep-alive
//! connections, checks correctness under load, and records the figures in
//! `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;

use tollgate::service::admin::NewClient;
use tollgate::service::now;

/// The trust domain of W12's transaction tokens.
const TRUST_DOMAIN: &str = "https://bench.trust";

mod console;
mod fleet;
mod report;
mod scripts;
mod seeding;
mod server;
mod ssf;

use console::*;
use fleet::*;
use report::*;
use scripts::*;
use seeding::*;
use server::*;

/// Runs Tollgate's fixed benchmark workloads.
#[derive(Parser, Clone)]
#[command(name = "tollgate-bench")]
pub(crate) struct Args {
    /// Seconds each workload runs.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Clients registered for W1-W4.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Clients registered for W5 (0 skips W5).
    #[arg(long, default_value_t = 1_000_000)]
    scale_clients: usize,
    /// Only these workloads (comma-separated, e.g. W1,W2).
    #[arg(long)]
    only: Option<String>,
    /// Where to write the results (between the bench markers).
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
    /// Do not write the results file.
    #[arg(long)]
    no_write: bool,
    /// A server binary to measure instead of building this checkout's (an
    /// earlier commit's release build, for a before and after).
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// PostgreSQL server for the fleet workloads (W1 and W2 on one instance
    /// and on two); a fresh schema is created in it and dropped afterwards.
    /// Select them alone with `--only PG`.
    #[arg(long, env = "TOLLGATE_BENCH_PG_URL", value_name = "URL")]
    pg_url: Option<String>,
    /// Seconds of the memory soak, which runs only when named (`--only
    /// W1,SOAK`).
    #[arg(long, default_value_t = 1200)]
    soak_seconds: u64,
}

/// Clients whose secrets W6 keeps: more than any 5-s run issues, so no client
/// is named twice (the cache holds 100,000 clients at most).
pub(crate) const W6_CLIENTS: usize = 300_000;

fn main() {
    let args = Args::parse();
    let named = |w: &str| {
        args.only
            .as_deref()
            .is_some_and(|o| o.split(',').any(|x| x.trim().eq_ignore_ascii_case(w)))
    };
    let wants = |w: &str| args.only.is_none() || named(w);
    if Command::new("wrk").arg("--version").output().is_err() {
        fail("wrk is not installed; install it with: apt-get install wrk");
    }
    let bin = match &args.server {
        // Another build of the server (an earlier commit, for a before and
        // after on the same machine); the database is seeded by this one.
        Some(path) => path.clone(),
        None => {
            println!("building the release server…");
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--release", "--bin", "tollgate"])
                .status()
                .unwrap_or_else(|e| fail(&e.to_string()));
            if !status.success() {
                fail("cargo build failed");
            }
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("tollgate")))
                .filter(|p| p.exists())
                .unwrap_or_else(|| PathBuf::from("target/release/tollgate"))
        }
    };

    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(&e.to_string()));
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap_or_else(|e| fail(&e.to_string()));
    let app = open_app(dir.path(), None);
    let t0 = now();
    let template = NewClient {
        name: "bench".into(),
        scopes: vec!["read".into(), "write".into()],
        audiences: vec!["https://api.bench".into()],
        ..NewClient::default()
    };
    let Seeded {
        clients,
        introspect_auth,
        tokens,
        quota_client,
        ssf_auth,
    } = seed(&app, args.clients, &template, t0);
    let w8_file = dir.path().join("w8.bodies");
    if wants("W8") {
        println!("signing {W8_ASSERTIONS} client assertions for W8…");
        w8_bodies(&app, &w8_file, W8_ASSERTIONS, t0);
    }
    let w9_file = dir.path().join("w9.bodies");
    if wants("W9") {
        w9_bodies(&app, &w9_file, W9_TOKENS, t0);
    }
    // W11 and W12: a client that may exchange the tokens W2 introspects
    // (their audience is https://api.bench) and ask for transaction tokens.
    let (exchanger, exchanger_secret) = block(app.admin().create_client(
        "bench",
        NewClient {
            name: "exchanger".into(),
            scopes: vec!["read".into(), "write".into()],
            audiences: vec!["https://next.bench".into()],
            token_exchange: Some(tollgate::domain::ExchangePolicy {
                subject_audiences: vec!["https://api.bench".into()],
                subject_issuers: Vec::new(),
                txn_tokens: true,
            }),
            ..NewClient::default()
        },
        t0,
    ))
    .unwrap_or_else(|e| fail(&e.to_string()));
    let exchanger_auth = basic(
        &exchanger.id,
        &exchanger_secret.unwrap_or_else(|| fail("a secret client has a secret")),
    );
    let w13 = wants("W13").then(|| w13_setup(&app, t0));
    let mut keys = Vec::new();
    for (id, _) in &clients {
        let (_, key) = block(app.admin().create_api_key("bench", id, None, None, t0))
            .unwrap_or_else(|e| fail(&e.to_string()));
        keys.push(key.expose().to_string());
    }
    drop(app);

    let server = start_server_with(
        &bin,
        dir.path(),
        None,
        &[(
            "TOLLGATE_TXN_TRUST_DOMAIN".to_string(),
            TRUST_DOMAIN.to_string(),
        )],
    );
    println!(
        "server on {} (ready in {:.0} ms)",
        server.addr,
        server.startup.as_secs_f64() * 1000.0
    );
    let mut results: Vec<Figures> = Vec::new();
    let mut checks: Vec<String> = Vec::new();

    let w1_auths: Vec<String> = clients.iter().map(|(id, s)| basic(id, s)).collect();
    let form = "application/x-www-form-urlencoded";
    let w1 = script(
        &scripts,
        "w1",
        "/oauth/token",
        form,
        &w1_auths,
        &["grant_type=client_credentials".to_string()],
    );
    if wants("W0") {
        // The floor: the cheapest request through the same stack (HTTP/1.1
        // parsing, routing, middleware, a small JSON answer, the loopback
        // TCP round trip), so every other row can be read as floor + work.
        let floor = scripts.join("w0.lua");
        std::fs::write(&floor, "wrk.method = \"GET\"\nwrk.path = \"/healthz\"\n")
            .unwrap_or_else(|e| fail(&e.to_string()));
        results.push(wrk(
            &args,
            &server,
            "W0 floor (GET /healthz)",
            &floor,
            args.duration,
        ));
    }
    if wants("W1") {
        results.push(wrk(&args, &server, "W1 issuance", &w1, args.duration));
    }
    if wants("W2") {
        let bodies: Vec<String> = tokens.iter().map(|t| format!("token={t}")).collect();
        let w2 = script(
            &scripts,
            "w2",
            "/oauth/introspect",
            form,
            std::slice::from_ref(&introspect_auth),
            &bodies,
        );
        // Revocation under load: revoke a fresh token while W2 runs, and
        // introspect it at once.
        let addr = server.addr.clone();
        let (cid, csecret) = clients[0].clone();
        let iauth = introspect_auth.clone();
        let probe = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            let auth = basic(&cid, &csecret);
            let token = fetch_token(&addr, &auth);
            let ask = || introspect_active(&addr, &iauth, &token);
            let before = ask();
            let status = revoke_token(&addr, &auth, &token);
            let after = ask();
            (before, status, after)
        });
        results.push(wrk(
            &args,
            &server,
            "W2 JWT introspection",
            &w2,
            args.duration,
        ));
        let (before, status, after) = probe.join().unwrap_or((None, 0, None));
        let ok = before == Some(true) && status == 200 && after == Some(false);
        checks.push(format!(
            "Revocation under W2 load: active before = {before:?}, revoke = {status}, active on the very next introspection = {after:?}: {}",
            if ok { "PASS" } else { "FAIL" }
        ));
    }
    if wants("W7") {
        // W1 and W2 again while a side loop issues and revokes 20 tokens a
        // second (every revocation is a write the caches must see).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let revoked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let side = {
            let (stop, revoked) = (stop.clone(), revoked.clone());
            let addr = server.addr.clone();
            let (cid, csecret) = clients[1 % clients.len()].clone();
            std::thread::spawn(move || {
                let auth = basic(&cid, &csecret);
                let mut next = Instant::now();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let token = fetch_token(&addr, &auth);
                    let status = revoke_token(&addr, &auth, &token);
                    if status == 200 {
                        revoked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    next += Duration::from_millis(50);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        };
        let started = Instant::now();
        let bodies: Vec<String> = tokens.iter().map(|t| format!("token={t}")).collect();
        let w2 = script(
            &scripts,
            "w7-introspect",
            "/oauth/introspect",
            form,
            std::slice::from_ref(&introspect_auth),
            &bodies,
        );
        let mut issue = wrk(
            &args,
            &server,
            "W7 issuance, 20 revocations/s",
            &w1,
            args.duration,
        );
        let mut intro = wrk(
            &args,
            &server,
            "W7 introspection, 20 revocations/s",
            &w2,
            args.duration,
        );
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = side.join();
        let rate = revoked.load(std::sync::atomic::Ordering::SeqCst) as f64
            / started.elapsed().as_secs_f64();
        for (f, base) in [(&mut issue, "W1"), (&mut intro, "W2")] {
            f.note = match results.iter().find(|r| r.name.starts_with(base)) {
                Some(b) => format!("{:.2}× {base}; {rate:.1} revocations/s", f.rps / b.rps),
                None => format!("{rate:.1} revocations/s"),
            };
        }
        results.push(issue);
        results.push(intro);
    }
    if wants("W14") {
        // W14: W7 again (W1 while 20 tokens a second are issued and revoked)
        // with a Shared Signals push stream registered: each revocation is
        // also a SET signed and pushed to a receiver in this process.
        let recv = ssf::receiver();
        if !ssf::open_stream(&server.addr, &ssf_auth, &recv) {
            fail("W14: the stream was not created");
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (cid, csecret) = clients[3 % clients.len()].clone();
        let side = ssf::revocations(
            vec![server.addr.clone()],
            basic(&cid, &csecret),
            stop.clone(),
        );
        let mut f = wrk(
            &args,
            &server,
            "W14 issuance, 20 revocations/s pushed as SETs",
            &w1,
            args.duration,
        );
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let acks = side.join().unwrap_or_default();
        let l = ssf::latency(&acks, &recv);
        let w7 = results
            .iter()
            .find(|r| r.name == "W7 issuance, 20 revocations/s")
            .map(|r| r.cpu_us);
        f.note = match w7 {
            Some(w) => format!(
                "{}; CPU/request {:+.1} µs next to W7",
                l.note(),
                f.cpu_us - w
            ),
            None => l.note(),
        };
        checks.push(l.check("W14 Shared Signals on SQLite", acks.len()));
        results.push(f);
    }
    if wants("W3") {
        let bodies: Vec<String> = keys
            .iter()
            .map(|k| format!("{{\"secret_key\":\"{k}\"}}"))
            .collect();
        let w3 = script(
            &scripts,
            "w3",
            "/authentication/token",
            "application/json",
            &[],
            &bodies,
        );
        results.push(wrk(
            &args,
            &server,
            "W3 API-key exchange",
            &w3,
            args.duration,
        ));
    }
    if wants("W4") {
        let bodies: Vec<String> = keys.iter().map(|k| format!("token={k}")).collect();
        let w4 = script(
            &scripts,
            "w4",
            "/oauth/introspect",
            form,
            std::slice::from_ref(&introspect_auth),
            &bodies,
        );
        results.push(wrk(
            &args,
            &server,
            "W4 API-key introspection",
            &w4,
            args.duration,
        ));
    }
    if wants("W1") {
        let q = script(
            &scripts,
            "quota",
            "/oauth/token",
            form,
            std::slice::from_ref(&quota_client),
            &["grant_type=client_credentials".to_string()],
        );
        let f = wrk(&args, &server, "quota check", &q, 3);
        let granted = f.requests.saturating_sub(f.errors);
        checks.push(format!(
            "Quota under load: a client with a quota of 2000 got {granted} tokens out of {} requests: {}",
            f.requests,
            if granted == 2000 { "PASS" } else { "FAIL" }
        ));
    }
    if wants("W8") {
        // private_key_jwt: every request carries an assertion never seen
        // before, so each one verifies an ES256 signature and writes its jti
        // (the replay cache is durable). Each wrk thread takes its own half.
        let w8 = bodies_script(&scripts, "w8", &w8_file);
        let mut f = wrk(
            &args,
            &server,
            "W8 private_key_jwt issuance, a fresh jti each time",
            &w8,
            args.duration,
        );
        f.note = share_of_w1(&results, &f);
        results.push(f);
    }
    if wants("W9") {
        // Federation: the JWT bearer grant with reused service-account
        // tokens of 1,000 subjects, the issuer's keys inline (cached).
        let w9 = bodies_script(&scripts, "w9", &w9_file);
        let mut f = wrk(
            &args,
            &server,
            "W9 federation exchange (JWT bearer grant), keys cached",
            &w9,
            args.duration,
        );
        f.note = share_of_w1(&results, &f);
        results.push(f);
    }
    if wants("W10") {
        // DPoP-bound issuance: a client-credentials request with a fresh
        // proof each time (signature check, jti recorded, cnf.jkt in the
        // token). The proofs are signed now, so their iat is current.
        let w10_file = dir.path().join("w10.proofs");
        println!("signing {W10_PROOFS} DPoP proofs for W10…");
        w10_proofs(&w10_file, W10_PROOFS);
        let w10 = lines_script(
            &scripts,
            "w10",
            &w10_file,
            &format!(
                r#"wrk.format("POST", "/oauth/token", {{ ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = "{}", ["DPoP"] = line }}, "grant_type=client_credentials")"#,
                basic(&clients[0].0, &clients[0].1)
            ),
        );
        let mut f = wrk(
            &args,
            &server,
            "W10 DPoP-bound issuance, a fresh proof each time",
            &w10,
            args.duration,
        );
        f.note = share_of_w1(&results, &f);
        results.push(f);
    }
    for (name, label, txn) in [
        ("W11", "W11 token exchange of a Tollgate token", false),
        ("W12", "W12 transaction tokens", true),
    ] {
        if !wants(name) {
            continue;
        }
        // The subject tokens are W2's that are active (one in twenty is
        // revoked; an exchange of one is refused, as the tests check),
        // each seen by the verified-token cache after its first use.
        let extra = if txn {
            "&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Atxn_token\
             &audience=https%3A%2F%2Fbench.trust"
        } else {
            ""
        };
        let bodies: Vec<String> = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 20 != 0)
            .map(|(_, t)| {
                format!(
                    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
                     &subject_token={t}\
                     &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token{extra}"
                )
            })
            .collect();
        let w = script(
            &scripts,
            &name.to_ascii_lowercase(),
            "/oauth/token",
            form,
            std::slice::from_ref(&exchanger_auth),
            &bodies,
        );
        let mut f = wrk(&args, &server, label, &w, args.duration);
        f.note = next_to_w1(&results, &f);
        results.push(f);
    }
    if let Some((key, client_id, auth)) = &w13 {
        // ID-JAG (an enterprise IdP's assertion for an agent): a fresh jti
        // each request, so one ES256 verification, one durable replay
        // write and one signature. Signed now: exp is at most 5 min ahead.
        let file = dir.path().join("w13.bodies");
        println!("signing {W13_JAGS} ID-JAGs for W13…");
        w13_bodies(key, client_id, "https://tollgate.bench", &file, W13_JAGS);
        let script = lines_script(
            &scripts,
            "w13",
            &file,
            &format!(
                r#"wrk.format("POST", "/oauth/token", {{ ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = "{auth}" }}, line)"#
            ),
        );
        let mut f = wrk(
            &args,
            &server,
            "W13 ID-JAG grant, a fresh jti each time",
            &script,
            args.duration,
        );
        f.note = next_to_w1(&results, &f);
        results.push(f);
    }
    if named("SOAK") {
        // The memory soak (issue 25), only when named: W1 on 32
        // connections for --soak-seconds while a side loop issues,
        // introspects, revokes and re-introspects fresh 5-minute tokens,
        // 55 a second; RSS sampled every 10 s.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cycles = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let wrong = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let side = {
            let (stop, cycles, wrong) = (stop.clone(), cycles.clone(), wrong.clone());
            let addr = server.addr.clone();
            let (cid, csecret) = clients[2 % clients.len()].clone();
            let iauth = introspect_auth.clone();
            std::thread::spawn(move || {
                let auth = basic(&cid, &csecret);
                let active = |token: &str| introspect_active(&addr, &iauth, token);
                let mut next = Instant::now();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let token = fetch_token(&addr, &auth);
                    let ok = active(&token) == Some(true)
                        && revoke_token(&addr, &auth, &token) == 200
                        && active(&token) == Some(false);
                    if !ok {
                        wrong.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    cycles.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    next += Duration::from_micros(1_000_000 / 55);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        };
        let pid = server.child.id();
        let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sampler = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Ok(mut s) = samples.lock() {
                        s.push((started.elapsed().as_secs(), rss_now_mib(pid)));
                    }
                    std::thread::sleep(Duration::from_secs(10));
                }
            })
        };
        let mut soak_args = args.clone();
        soak_args.connections = 32;
        let mut f = wrk(
            &soak_args,
            &server,
            "SOAK W1 (32 connections) + 55 issue/introspect/revoke cycles/s",
            &w1,
            args.soak_seconds,
        );
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = side.join();
        let _ = sampler.join();
        let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
        let at = |secs: u64| {
            samples
                .iter()
                .rev()
                .find(|(t, _)| *t <= secs)
                .map_or(0.0, |(_, r)| *r)
        };
        let last = samples.last().map_or(0.0, |(_, r)| *r);
        let half = args.soak_seconds / 2;
        let (n, bad) = (
            cycles.load(std::sync::atomic::Ordering::SeqCst),
            wrong.load(std::sync::atomic::Ordering::SeqCst),
        );
        f.note = format!(
            "RSS {:.1} MiB at 1 min, {:.1} at half time, {:.1} at the end; {n} side cycles, {bad} wrong",
            at(60),
            at(half),
            last
        );
        checks.push(format!(
            "Soak: peak RSS {:.1} MiB (bound 96 MiB), {n} issue/introspect/revoke cycles with {bad} wrong answers: {}",
            f.rss_mib,
            if f.rss_mib <= 96.0 && bad == 0 { "PASS" } else { "FAIL" }
        ));
        let curve: Vec<String> = samples
            .iter()
            .filter(|(t, _)| t % 120 == 0)
            .map(|(t, r)| format!("{}:{r:.1}", t / 60))
            .collect();
        println!("soak RSS by minute (min:MiB): {}", curve.join(" "));
        results.push(f);
    }
    drop(server);
    if wants("TLS") {
        // W1 again over HTTPS served by Tollgate itself (rustls, keep-alive:
        // one handshake per connection), next to the plain W1 above.
        let tls = start_tls_server(&bin, dir.path());
        let mut f = wrk(
            &args,
            &tls,
            "W1 over HTTPS (native TLS)",
            &w1,
            args.duration,
        );
        if let Some(w1) = results.iter().find(|r| r.name == "W1 issuance") {
            f.note = format!("{:.0} % of plain W1", 100.0 * f.rps / w1.rps);
        }
        results.push(f);
    }

    if wants("PKCS11") {
        // W1 again with the signing key in a PKCS#11 token (softhsm2): the
        // instance makes an ES256 key there at start (its file key then only
        // publishes), and every signature is a C_Sign on a pooled session.
        match softhsm_token(dir.path()) {
            Some(env) => {
                let hsm = start_server_with(&bin, dir.path(), None, &env);
                let mut f = wrk(
                    &args,
                    &hsm,
                    "W1 with the ES256 key in softhsm2 (PKCS#11)",
                    &w1,
                    args.duration,
                );
                if let Some(w1) = results.iter().find(|r| r.name == "W1 issuance") {
                    f.note = format!(
                        "{:.2}× W1's CPU per token, {:.0} % of its requests/s",
                        f.cpu_us / w1.cpu_us,
                        100.0 * f.rps / w1.rps
                    );
                }
                results.push(f);
            }
            None => {
                println!("PKCS11 skipped: softhsm2 is not installed (apt-get install softhsm2)")
            }
        }
    }

    let mut startup_note = String::new();
    if (wants("W5") || wants("W6")) && args.scale_clients > 0 {
        let app = open_app(dir.path(), None);
        let extra = args.scale_clients.saturating_sub(args.clients + 2);
        // W6 needs the secrets of the clients it names, one per request.
        let keep = if wants("W6") {
            W6_CLIENTS.min(extra)
        } else {
            0
        };
        println!("seeding {extra} more clients for W5 and W6…");
        let started = Instant::now();
        let kept = block(
            app.admin()
                .seed_clients("bench", extra, &template, keep, now(), |n| {
                    if n % 200_000 == 0 {
                        println!("  {n} stored")
                    }
                }),
        )
        .unwrap_or_else(|e| fail(&e.to_string()));
        println!("  seeded in {:.1} s", started.elapsed().as_secs_f64());
        drop(app);
        let server = start_server(&bin, dir.path(), None);
        startup_note = format!(
            "Start-up with {} clients: ready (listening, keys loaded) in {:.0} ms.",
            args.scale_clients,
            server.startup.as_secs_f64() * 1000.0
        );
        println!("{startup_note}");
        let w1_rps = results
            .iter()
            .find(|r| r.name.starts_with("W1"))
            .map(|r| r.rps);
        if wants("W5") {
            let mut f = wrk(
                &args,
                &server,
                "W5 issuance, 1M clients",
                &w1,
                args.duration,
            );
            if let Some(w1) = w1_rps {
                f.note = format!("{:.0} % of W1", 100.0 * f.rps / w1);
            }
            results.push(f);
        }
        if wants("W6") {
            // Every request names another client of the million, in an order
            // no cache has seen: each costs a database read of the client and
            // its secrets. The Basic headers are read from a file at start
            // (a Lua table constructor this large overflows LuaJIT's limits).
            let auths_file = scripts.join("w6.auths");
            let lines: Vec<String> = kept.iter().map(|(id, sec)| basic(id, sec)).collect();
            std::fs::write(&auths_file, lines.join("\n") + "\n")
                .unwrap_or_else(|e| fail(&e.to_string()));
            let w6 = scripts.join("w6.lua");
            std::fs::write(
                &w6,
                format!(
                    r#"local auths = {{}}
for line in io.lines("{}") do auths[#auths + 1] = line end
local i = math.random(1, #auths)
request = function()
  i = i + 1
  local h = {{ ["Content-Type"] = "application/x-www-form-urlencoded" }}
  h["Authorization"] = auths[(i % #auths) + 1]
  return wrk.format("POST", "/oauth/token", h, "grant_type=client_credentials")
end
"#,
                    auths_file.display()
                ),
            )
            .unwrap_or_else(|e| fail(&e.to_string()));
            let mut f = wrk(
                &args,
                &server,
                "W6 issuance, a different client each time of 1M",
                &w6,
                args.duration,
            );
            f.note = match w1_rps {
                Some(w1) => format!(
                    "{:.0} % of W1; {} distinct clients in the rotation",
                    100.0 * f.rps / w1,
                    kept.len()
                ),
                None => format!("{} distinct clients in the rotation", kept.len()),
            };
            results.push(f);
        }
    }

    let mut console_results = Vec::new();
    if wants("CONSOLE") {
        console_results = run_console(&args, &bin, &template, None);
        if let Some(url) = args.pg_url.as_deref() {
            console_results.extend(run_console(&args, &bin, &template, Some(url)));
        }
    }

    let mut pg_results: Vec<Figures> = Vec::new();
    if let (true, Some(url)) = (wants("PG"), args.pg_url.as_deref()) {
        let (figures, pg_checks) = run_pg(&args, &bin, url, &template);
        pg_results = figures;
        checks.extend(pg_checks);
    }

    let (sign_us, verify_us) = es256_costs();
    if let Some(w1) = results.iter_mut().find(|r| r.name.starts_with("W1 ")) {
        let ratio = format!("{:.2}× one ES256 signature", w1.cpu_us / sign_us);
        w1.note = if w1.note.is_empty() {
            ratio
        } else {
            format!("{}; {ratio}", w1.note)
        };
    }
    let mut table = String::new();
    let _ = writeln!(table, "Machine: {}.", machine());
    let _ = writeln!(
        table,
        "One ES256 signature on this machine: {sign_us:.1} µs of CPU, one verification {verify_us:.1} µs (ring, in the harness's process, one thread). CPU/request is the server's user + system time over the run (`/proc/PID/stat`) divided by the requests it served."
    );
    let _ = writeln!(
        table,
        "Load: wrk, {} threads, {} keep-alive connections, {} s per workload, on the same machine. Server: release build, `RUST_LOG=warn`, per-IP limits off, {} clients registered.\n",
        args.threads, args.connections, args.duration, args.clients
    );
    let _ = writeln!(
        table,
        "| workload | requests/s | CPU/request | p50 | p99 | errors | peak RSS | note |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|---|");
    for f in &results {
        let _ = writeln!(
            table,
            "| {} | {:.0} | {:.1} µs | {:.2} ms | {:.2} ms | {} | {:.1} MiB | {} |",
            f.name, f.rps, f.cpu_us, f.p50_ms, f.p99_ms, f.errors, f.rss_mib, f.note
        );
    }
    if !console_results.is_empty() {
        let _ = writeln!(
            table,
            "\nThe web console's pages (GET with a session cookie), {CONSOLE_CLIENTS} clients and 1,000 audit entries on SQLite (and on PostgreSQL with `--pg-url`), {CONSOLE_CONNECTIONS} connections, {} s per page:\n",
            CONSOLE_SECONDS
        );
        let _ = writeln!(
            table,
            "| page | requests/s | CPU/request | p50 | p99 | errors | peak RSS | note |"
        );
        let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|---|");
        for f in &console_results {
            let _ = writeln!(
                table,
                "| {} | {:.0} | {:.1} µs | {:.2} ms | {:.2} ms | {} | {:.1} MiB | {} |",
                f.name, f.rps, f.cpu_us, f.p50_ms, f.p99_ms, f.errors, f.rss_mib, f.note
            );
        }
    }
    if !pg_results.is_empty() {
        let _ = writeln!(
            table,
            "\nOn PostgreSQL ({}), the server on the same machine, {} clients; two instances share the {} connections:\n",
            pg_version(args.pg_url.as_deref().unwrap_or_default()),
            args.clients,
            args.connections
        );
        let _ = writeln!(
            table,
            "| workload | requests/s | CPU/request | p50 | p99 | errors | peak RSS | note |"
        );
        let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|---|");
        for f in &pg_results {
            let _ = writeln!(
                table,
                "| {} | {:.0} | {:.1} µs | {:.2} ms | {:.2} ms | {} | {:.1} MiB | {} |",
                f.name, f.rps, f.cpu_us, f.p50_ms, f.p99_ms, f.errors, f.rss_mib, f.note
            );
        }
    }
    let _ = writeln!(table);
    for c in &checks {
        let _ = writeln!(table, "- {c}");
    }
    if !startup_note.is_empty() {
        let _ = writeln!(table, "- {startup_note}");
    }
    println!("\n{table}");
    if !args.no_write {
        write_results(&args.out, &table);
    }
}
