//! The benchmark harness: starts the release server in a temporary directory,
//! seeds clients, drives fixed workloads with wrk over 64 keep-alive
//! connections, checks correctness under load, and records the figures in
//! `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::Parser;
use serde_json::Value;

use tollgate::config::Config;
use tollgate::secret::SecretString;
use tollgate::service::admin::NewClient;
use tollgate::service::federation::{NewIssuer, NewRule};
use tollgate::service::{now, App};

/// Runs Tollgate's fixed benchmark workloads.
#[derive(Parser)]
#[command(name = "tollgate-bench")]
struct Args {
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
    /// PostgreSQL server for the fleet workloads (W1 and W2 on one instance
    /// and on two); a fresh schema is created in it and dropped afterwards.
    /// Select them alone with `--only PG`.
    #[arg(long, env = "TOLLGATE_BENCH_PG_URL", value_name = "URL")]
    pg_url: Option<String>,
}

/// Clients whose secrets W6 keeps: more than any 5-s run issues, so no client
/// is named twice (the cache holds 100,000 clients at most).
const W6_CLIENTS: usize = 300_000;

struct Server {
    child: Child,
    addr: String,
    startup: Duration,
    /// `http` or `https`.
    scheme: &'static str,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_for(dir: &Path, db: Option<&str>) -> Vec<(String, String)> {
    let db = db.map_or_else(
        || dir.join("tollgate.db").display().to_string(),
        str::to_string,
    );
    [
        ("TOLLGATE_BIND", "127.0.0.1:0".to_string()),
        ("TOLLGATE_DB", db),
        ("TOLLGATE_KEYS_DIR", dir.join("keys").display().to_string()),
        ("TOLLGATE_ISSUER", "https://tollgate.bench".to_string()),
        ("TOLLGATE_IP_LIMIT_GET", "0".to_string()),
        ("TOLLGATE_IP_LIMIT_POST", "0".to_string()),
        ("TOLLGATE_AUTH_FAIL_IP_LIMIT", "1000000000".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn open_app(dir: &Path, db: Option<&str>) -> App {
    let env = env_for(dir, db);
    let config = Config::from_sources(None, |k| {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .unwrap_or_else(|e| fail(&e.to_string()));
    block(App::open(config)).unwrap_or_else(|e| fail(&e.to_string()))
}

/// Runs one of Tollgate's async use cases (seeding, key creation) from the
/// harness's synchronous code, on one runtime kept for the whole run: the
/// store's connections and blocking calls live on it.
fn block<F: std::future::Future>(f: F) -> F::Output {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| fail(&format!("runtime: {e}")))
    })
    .block_on(f)
}

fn fail(msg: &str) -> ! {
    eprintln!("tollgate-bench: {msg}");
    std::process::exit(1)
}

fn start_server(bin: &Path, dir: &Path, db: Option<&str>) -> Server {
    start_server_with(bin, dir, db, &[])
}

/// A server serving HTTPS itself, with a P-256 certificate for 127.0.0.1
/// made by the `openssl` command in `dir`.
fn start_tls_server(bin: &Path, dir: &Path) -> Server {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run openssl: {e}")));
    if !status.success() {
        fail("openssl could not make a certificate");
    }
    let env = [
        ("TOLLGATE_TLS_CERT".to_string(), cert.display().to_string()),
        ("TOLLGATE_TLS_KEY".to_string(), key.display().to_string()),
    ];
    start_server_with(bin, dir, None, &env)
}

fn start_server_with(
    bin: &Path,
    dir: &Path,
    db: Option<&str>,
    extra: &[(String, String)],
) -> Server {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .arg("serve")
        .envs(env_for(dir, db))
        .envs(extra.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot start {}: {e}", bin.display())));
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap_or_else(|| fail("no stdout"));
    BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| fail(&e.to_string()));
    let startup = started.elapsed();
    let line = line.trim().trim_start_matches("tollgate listening on ");
    let (scheme, addr) = match line.strip_prefix("https://") {
        Some(a) => ("https", a.to_string()),
        None => ("http", line.trim_start_matches("http://").to_string()),
    };
    Server {
        child,
        addr,
        startup,
        scheme,
    }
}

/// A one-shot HTTP/1.1 request with `Connection: close`.
fn http(addr: &str, path: &str, headers: &[(&str, String)], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| fail(&e.to_string()));
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        let _ = write!(req, "{k}: {v}\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| fail(&e.to_string()));
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn basic(id: &str, secret: &SecretString) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{id}:{}", secret.expose()))
    )
}

/// Assertions W8 prepares, each with its own `jti`: more than a 5-s run at
/// the rates this machine reaches, split between wrk's two threads.
const W8_ASSERTIONS: usize = 200_000;

/// A fresh ES256 key pair and its public JWK (with `kid`).
struct Es256 {
    pair: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
    jwk: Value,
    header: String,
}

impl Es256 {
    fn new(kid: &str) -> Es256 {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING as ALG};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ALG, &rng).unwrap_or_else(|e| fail(&e.to_string()));
        let pair = EcdsaKeyPair::from_pkcs8(&ALG, pkcs8.as_ref(), &rng)
            .unwrap_or_else(|e| fail(&e.to_string()));
        let public = pair.public_key().as_ref();
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
            "x": B64.encode(&public[1..33]), "y": B64.encode(&public[33..65]),
        });
        let header = B64.encode(format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#));
        Es256 {
            pair,
            rng,
            jwk,
            header,
        }
    }

    /// A compact JWS of `claims`.
    fn sign(&self, claims: &Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        let input = format!("{}.{}", self.header, B64.encode(claims.to_string()));
        let sig = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .unwrap_or_else(|e| fail(&e.to_string()));
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }
}

/// Registers a `private_key_jwt` client with a fresh ES256 key and writes
/// `n` token-request bodies, each with an assertion of its own `jti`, one per
/// line; returns the client id.
fn w8_bodies(app: &App, file: &Path, n: usize, t0: i64) -> String {
    let key = Es256::new("w8");
    let (client, _) = block(app.create_client(
        "bench",
        NewClient {
            name: "w8".into(),
            scopes: vec!["read".into()],
            token_endpoint_auth_method: Some(tollgate::domain::ClientAuthMethod::PrivateKeyJwt),
            jwks: Some(serde_json::json!({"keys": [key.jwk]})),
            ..NewClient::default()
        },
        t0,
    ))
    .unwrap_or_else(|e| fail(&e.to_string()));
    let mut out = String::with_capacity(n * 600);
    for i in 0..n {
        let claims = serde_json::json!({
            "iss": client.id, "sub": client.id, "aud": "https://tollgate.bench",
            "iat": t0, "exp": t0 + 3000, "jti": format!("w8-{i}"),
        });
        let _ = writeln!(
            out,
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}",
            key.sign(&claims)
        );
    }
    std::fs::write(file, out).unwrap_or_else(|e| fail(&e.to_string()));
    client.id
}

/// DPoP proofs W10 signs just before it runs (their `iat` must be within a
/// minute of the server's clock), each with its own `jti`.
const W10_PROOFS: usize = 150_000;

/// Writes `n` DPoP proofs for `POST https://tollgate.bench/oauth/token`,
/// one per line, all by one fresh ES256 key.
fn w10_proofs(file: &Path, n: usize) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let key = Es256::new("dpop");
    let mut jwk = key.jwk.clone();
    if let Some(o) = jwk.as_object_mut() {
        o.remove("kid");
        o.remove("alg");
    }
    let header =
        B64.encode(serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).to_string());
    let key = Es256 { header, ..key };
    let t = now();
    let mut out = String::with_capacity(n * 500);
    for i in 0..n {
        let claims = serde_json::json!({
            "htm": "POST", "htu": "https://tollgate.bench/oauth/token", "iat": t, "jti": format!("w10-{i}"),
        });
        let _ = writeln!(out, "{}", key.sign(&claims));
    }
    std::fs::write(file, out).unwrap_or_else(|e| fail(&e.to_string()));
}

/// Workload tokens W9 cycles through (reused, as Kubernetes tokens are).
const W9_TOKENS: usize = 1_000;

/// Trusts a cluster with a fresh ES256 key inline, adds a rule mapping its
/// `payments` service accounts to a new client, and writes `n` JWT bearer
/// grant bodies, each with a service-account token of its own `sub`.
fn w9_bodies(app: &App, file: &Path, n: usize, t0: i64) {
    let key = Es256::new("sa");
    let cluster = "https://kubernetes.bench";
    let (client, _) = block(app.create_client(
        "bench",
        NewClient {
            name: "w9".into(),
            scopes: vec!["read".into(), "write".into()],
            ..NewClient::default()
        },
        t0,
    ))
    .unwrap_or_else(|e| fail(&e.to_string()));
    block(app.add_federation_issuer(
        "bench",
        NewIssuer {
            issuer: cluster.into(),
            jwks_uri: None,
            jwks: Some(serde_json::json!({"keys": [key.jwk]})),
        },
        t0,
    ))
    .unwrap_or_else(|e| fail(&e.to_string()));
    block(app.add_federation_rule(
        "bench",
        NewRule {
            issuer: cluster.into(),
            audience: "tollgate".into(),
            subject: Some("system:serviceaccount:payments:*".into()),
            claims: None,
            client_id: client.id.clone(),
            scopes: Some(vec!["read".into()]),
            single_use: None,
        },
        t0,
    ))
    .unwrap_or_else(|e| fail(&e.to_string()));
    let mut out = String::with_capacity(n * 600);
    for i in 0..n {
        let claims = serde_json::json!({
            "iss": cluster, "sub": format!("system:serviceaccount:payments:sa-{i}"),
            "aud": ["tollgate"], "iat": t0, "exp": t0 + 3000, "jti": format!("w9-{i}"),
        });
        let _ = writeln!(
            out,
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            key.sign(&claims)
        );
    }
    std::fs::write(file, out).unwrap_or_else(|e| fail(&e.to_string()));
}

/// A wrk script cycling through the lines of `file`, each wrk thread
/// starting at its own half, so that no line is sent twice in a run shorter
/// than the list; `request` is the Lua expression that makes a request of
/// `line`.
fn lines_script(scripts: &Path, name: &str, file: &Path, request: &str) -> PathBuf {
    let path = scripts.join(format!("{name}.lua"));
    std::fs::write(
        &path,
        format!(
            r#"local n = 0
function setup(thread)
  thread:set("tid", n)
  n = n + 1
end
local lines = {{}}
for line in io.lines("{}") do lines[#lines + 1] = line end
function init(args)
  i = (tid or 0) * math.floor(#lines / 2)
end
request = function()
  i = i + 1
  local line = lines[(i % #lines) + 1]
  return {request}
end
"#,
            file.display()
        ),
    )
    .unwrap_or_else(|e| fail(&e.to_string()));
    path
}

/// A wrk script posting the token-request bodies of `file` (one per line).
fn bodies_script(scripts: &Path, name: &str, file: &Path) -> PathBuf {
    lines_script(
        scripts,
        name,
        file,
        r#"wrk.format("POST", "/oauth/token", { ["Content-Type"] = "application/x-www-form-urlencoded" }, line)"#,
    )
}

/// `f`'s rate as a share of W1's in the same run (empty without W1).
fn share_of_w1(results: &[Figures], f: &Figures) -> String {
    results
        .iter()
        .find(|r| r.name.starts_with("W1"))
        .map(|w1| format!("{:.0} % of W1", 100.0 * f.rps / w1.rps))
        .unwrap_or_default()
}

fn lua_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(",\n")
}

/// A wrk script cycling through request bodies and Authorization headers.
/// A client-credentials token for a Basic `auth`, fetched on a connection of
/// its own (empty if refused).
fn fetch_token(addr: &str, auth: &str) -> String {
    let (_, body) = http(
        addr,
        "/oauth/token",
        &[
            ("Authorization", auth.to_string()),
            ("Content-Type", "application/x-www-form-urlencoded".into()),
        ],
        "grant_type=client_credentials",
    );
    serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["access_token"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Revokes `token` as the client of `auth`; the status.
fn revoke_token(addr: &str, auth: &str, token: &str) -> u16 {
    http(
        addr,
        "/oauth/revoke",
        &[
            ("Authorization", auth.to_string()),
            ("Content-Type", "application/x-www-form-urlencoded".into()),
        ],
        &format!("token={token}"),
    )
    .0
}

fn script(
    dir: &Path,
    name: &str,
    path: &str,
    content_type: &str,
    auths: &[String],
    bodies: &[String],
) -> PathBuf {
    let text = format!(
        r#"local auths = {{ {auths} }}
local bodies = {{ {bodies} }}
local i = math.random(1, 100000)
request = function()
  i = i + 1
  local h = {{ ["Content-Type"] = "{content_type}" }}
  if #auths > 0 then h["Authorization"] = auths[(i % #auths) + 1] end
  return wrk.format("POST", "{path}", h, bodies[(i % #bodies) + 1])
end
"#,
        auths = lua_list(auths),
        bodies = lua_list(bodies),
    );
    let file = dir.join(format!("{name}.lua"));
    std::fs::write(&file, text).unwrap_or_else(|e| fail(&e.to_string()));
    file
}

#[derive(Default, Clone)]
struct Figures {
    name: String,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    errors: u64,
    rss_mib: f64,
    note: String,
}

fn parse_ms(s: &str) -> f64 {
    let s = s.trim();
    let (num, mult) = if let Some(v) = s.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * mult
}

fn rss_reset(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn rss_peak_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn wrk(args: &Args, server: &Server, name: &str, script: &Path, duration: u64) -> Figures {
    wrk_with(args, args.connections, server, name, script, duration)
}

/// The same workload against several instances at once, the connections
/// split evenly: requests, errors and rates add up; p50 is the mean of the
/// instances', p99 and peak RSS the worst.
fn wrk_fleet(args: &Args, servers: &[Server], name: &str, script: &Path, duration: u64) -> Figures {
    let per = (args.connections / servers.len() as u32).max(1);
    let parts: Vec<Figures> = std::thread::scope(|scope| {
        let handles: Vec<_> = servers
            .iter()
            .enumerate()
            .map(|(i, server)| {
                let label = format!("{name} [instance {}]", i + 1);
                scope.spawn(move || wrk_with(args, per, server, &label, script, duration))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let n = parts.len().max(1) as f64;
    let f = Figures {
        name: name.to_string(),
        rps: parts.iter().map(|p| p.rps).sum(),
        p50_ms: parts.iter().map(|p| p.p50_ms).sum::<f64>() / n,
        p99_ms: parts.iter().map(|p| p.p99_ms).fold(0.0, f64::max),
        requests: parts.iter().map(|p| p.requests).sum(),
        errors: parts.iter().map(|p| p.errors).sum(),
        rss_mib: parts.iter().map(|p| p.rss_mib).fold(0.0, f64::max),
        note: String::new(),
    };
    println!(
        "{name}: {:.0} req/s in all, {} requests, {} errors",
        f.rps, f.requests, f.errors
    );
    f
}

fn wrk_with(
    args: &Args,
    connections: u32,
    server: &Server,
    name: &str,
    script: &Path,
    duration: u64,
) -> Figures {
    rss_reset(server.child.id());
    let out = Command::new("wrk")
        .args([
            "-t",
            &args.threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{duration}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("{}://{}", server.scheme, server.addr))
        .output()
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot run wrk ({e}); install it with: apt-get install wrk"
            ))
        });
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut f = Figures {
        name: name.to_string(),
        rss_mib: rss_peak_mib(server.child.id()),
        ..Figures::default()
    };
    let mut in_dist = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Latency Distribution") {
            in_dist = true;
        } else if in_dist && t.starts_with("50%") {
            f.p50_ms = parse_ms(&t[3..]);
        } else if in_dist && t.starts_with("99%") {
            f.p99_ms = parse_ms(&t[3..]);
            in_dist = false;
        } else if let Some(rps) = t.strip_prefix("Requests/sec:") {
            f.rps = rps.trim().parse().unwrap_or(0.0);
        } else if t.contains("requests in") {
            f.requests = t
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if t.starts_with("Non-2xx or 3xx responses:") {
            f.errors += t
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        } else if t.starts_with("Socket errors:") {
            f.errors += t
                .split(',')
                .filter_map(|p| {
                    p.split_whitespace()
                        .last()
                        .and_then(|n| n.parse::<u64>().ok())
                })
                .sum::<u64>();
        }
    }
    println!(
        "{name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} requests, {} errors, peak RSS {:.1} MiB",
        f.rps, f.p50_ms, f.p99_ms, f.requests, f.errors, f.rss_mib
    );
    f
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {mem:.0} GiB RAM, Linux {}",
        kernel.trim()
    )
}

fn main() {
    let args = Args::parse();
    let wants = |w: &str| {
        args.only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|x| x.trim().eq_ignore_ascii_case(w)))
    };
    if Command::new("wrk").arg("--version").output().is_err() {
        fail("wrk is not installed; install it with: apt-get install wrk");
    }
    println!("building the release server…");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--bin", "tollgate"])
        .status()
        .unwrap_or_else(|e| fail(&e.to_string()));
    if !status.success() {
        fail("cargo build failed");
    }
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("tollgate")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("target/release/tollgate"));

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
    let mut keys = Vec::new();
    for (id, _) in &clients {
        let (_, key) = block(app.create_api_key("bench", id, None, None, t0))
            .unwrap_or_else(|e| fail(&e.to_string()));
        keys.push(key.expose().to_string());
    }
    drop(app);

    let server = start_server(&bin, dir.path(), None);
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
            let ask = || {
                let (_, b) = http(
                    &addr,
                    "/oauth/introspect",
                    &[
                        ("Authorization", iauth.clone()),
                        ("Content-Type", form.into()),
                    ],
                    &format!("token={token}"),
                );
                serde_json::from_str::<Value>(&b)
                    .ok()
                    .and_then(|v| v["active"].as_bool())
            };
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
            app.seed_clients("bench", extra, &template, keep, now(), |n| {
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

    let mut table = String::new();
    let _ = writeln!(table, "Machine: {}.", machine());
    let _ = writeln!(
        table,
        "Load: wrk, {} threads, {} keep-alive connections, {} s per workload, on the same machine. Server: release build, `RUST_LOG=warn`, per-IP limits off, {} clients registered.\n",
        args.threads, args.connections, args.duration, args.clients
    );
    let _ = writeln!(
        table,
        "| workload | requests/s | p50 | p99 | errors | peak RSS | note |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---|");
    for f in &results {
        let _ = writeln!(
            table,
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.1} MiB | {} |",
            f.name, f.rps, f.p50_ms, f.p99_ms, f.errors, f.rss_mib, f.note
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
            "| page | requests/s | p50 | p99 | errors | peak RSS | note |"
        );
        let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---|");
        for f in &console_results {
            let _ = writeln!(
                table,
                "| {} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.1} MiB | {} |",
                f.name, f.rps, f.p50_ms, f.p99_ms, f.errors, f.rss_mib, f.note
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
            "| workload | requests/s | p50 | p99 | errors | peak RSS | note |"
        );
        let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---|");
        for f in &pg_results {
            let _ = writeln!(
                table,
                "| {} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.1} MiB | {} |",
                f.name, f.rps, f.p50_ms, f.p99_ms, f.errors, f.rss_mib, f.note
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

/// Clients registered for the console's pages.
const CONSOLE_CLIENTS: usize = 100_000;
/// Connections for the console's pages: an operator or two, not a crowd.
const CONSOLE_CONNECTIONS: u32 = 2;
/// Seconds per console page.
const CONSOLE_SECONDS: u64 = 3;

/// The console's pages with 100,000 clients: a database of its own, seeded
/// with the clients and 1,000 audit entries (500 clients disabled and
/// enabled again), a session opened through the use case, then each page
/// fetched by wrk with the session cookie. A non-2xx answer (a redirect to
/// the sign-in page, say) counts as an error.
///
/// With `pg_url`, the same on PostgreSQL, in a schema of its own dropped
/// afterwards.
fn run_console(
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
    block(app.seed_clients("bench", CONSOLE_CLIENTS, template, 0, now(), |_| {}))
        .unwrap_or_else(|e| fail(&e.to_string()));
    let some = block(app.list_clients(None, 1000)).unwrap_or_else(|e| fail(&e.to_string()));
    for c in some.iter().take(500) {
        for disabled in [true, false] {
            block(app.set_client_disabled("bench", &c.id, disabled, now()))
                .unwrap_or_else(|e| fail(&e.to_string()));
        }
    }
    let link =
        block(app.create_login_link("bench", None, now())).unwrap_or_else(|e| fail(&e.to_string()));
    let (_, cookie) = block(app.open_console_session(link.token.expose(), now()))
        .unwrap_or_else(|e| fail(&e.to_string()));
    let middle =
        block(app.list_clients(Some(&some[999].id), 1000)).unwrap_or_else(|e| fail(&e.to_string()));
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

/// What every run seeds: the clients, an introspector, 1,000 tokens (50
/// revoked) and a client with a quota of 2,000 tokens an hour.
struct Seeded {
    clients: Vec<(String, SecretString)>,
    /// `Authorization` header of the introspecting client.
    introspect_auth: String,
    tokens: Vec<String>,
    /// `Authorization` header of the client with the quota.
    quota_client: String,
}

fn seed(app: &App, n: usize, template: &NewClient, t0: i64) -> Seeded {
    println!("seeding {n} clients…");
    let clients =
        block(app.seed_clients("bench", n, template, 100, t0, |n| println!("  {n} stored")))
            .unwrap_or_else(|e| fail(&e.to_string()));
    let client = |name: &str, scopes: Vec<String>, quota: Option<u64>| {
        let (c, secret) = block(app.create_client(
            "bench",
            NewClient {
                name: name.into(),
                scopes,
                token_quota: quota,
                quota_window: quota.map(|_| 3600),
                quota_ban: quota.map(|_| 0),
                ..NewClient::default()
            },
            t0,
        ))
        .unwrap_or_else(|e| fail(&e.to_string()));
        let secret = secret.unwrap_or_else(|| fail("a secret client has a secret"));
        basic(&c.id, &secret)
    };
    let introspect_auth = client("introspector", vec!["tollgate:introspect".into()], None);
    let quota_client = client("quota", Vec::new(), Some(2000));
    let mut tokens = Vec::new();
    for i in 0..1000 {
        let (id, secret) = &clients[i % clients.len()];
        let creds = tollgate::oauth::ClientCredentials {
            client_id: id.clone(),
            secret: secret.clone(),
            method: tollgate::oauth::AuthMethod::Basic,
            certificate: None,
        };
        let t = block(app.issue_for_client(Some(&creds), None, &Default::default(), t0))
            .unwrap_or_else(|e| fail(&e.to_string()));
        if i % 20 == 0 {
            block(app.revoke(id, t.access_token.expose(), t0))
                .unwrap_or_else(|e| fail(&e.to_string()));
        }
        tokens.push(t.access_token.expose().to_string());
    }
    Seeded {
        clients,
        introspect_auth,
        tokens,
        quota_client,
    }
}

/// Runs one statement on `url` (schema set-up and clean-up).
fn pg_exec(url: &str, sql: &str) -> Result<String, String> {
    tollgate::store::postgres::execute_once(url, sql)
        .map(Option::unwrap_or_default)
        .map_err(|e| e.to_string())
}

fn pg_version(url: &str) -> String {
    pg_exec(url, "SHOW server_version")
        .map(|v| format!("PostgreSQL {v}"))
        .unwrap_or_else(|_| "PostgreSQL".into())
}

/// Makes `schema` anew in the PostgreSQL at `url`; returns the `TOLLGATE_DB`
/// URL that puts Tollgate in it.
fn fresh_schema(url: &str, schema: &str) -> String {
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
fn run_pg(args: &Args, bin: &Path, url: &str, template: &NewClient) -> (Vec<Figures>, Vec<String>) {
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

fn write_results(path: &Path, table: &str) {
    const BEGIN: &str = "<!-- bench:begin -->";
    const END: &str = "<!-- bench:end -->";
    let old = std::fs::read_to_string(path)
        .unwrap_or_else(|_| format!("# Benchmarks\n\n{BEGIN}\n{END}\n"));
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{BEGIN}\n{table}{}", &old[..b], &old[e..]),
        _ => format!("{old}\n{BEGIN}\n{table}{END}\n"),
    };
    match std::fs::write(path, new) {
        Ok(()) => println!("results written to {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}
