//! The release server under test: start-up in a temporary directory, plain
//! or native TLS, on SQLite or PostgreSQL, and the single requests the
//! harness makes of it (a token, a revocation).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use tollgate::config::Config;
use tollgate::secret::SecretString;
use tollgate::service::App;

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) startup: Duration,
    /// `http` or `https`.
    pub(crate) scheme: &'static str,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn env_for(dir: &Path, db: Option<&str>) -> Vec<(String, String)> {
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
        // W14's Shared Signals receiver listens on 127.0.0.1.
        ("TOLLGATE_FETCH_ALLOW_LOCAL", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub(crate) fn open_app(dir: &Path, db: Option<&str>) -> App {
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
pub(crate) fn block<F: std::future::Future>(f: F) -> F::Output {
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

pub(crate) fn fail(msg: &str) -> ! {
    eprintln!("tollgate-bench: {msg}");
    std::process::exit(1)
}

pub(crate) fn start_server(bin: &Path, dir: &Path, db: Option<&str>) -> Server {
    start_server_with(bin, dir, db, &[])
}

/// A fresh softhsm2 token in `dir` (label `bench`, PIN in a file) and the
/// settings that keep a server's signing keys in it; `None` when softhsm2
/// is not installed.
pub(crate) fn softhsm_token(dir: &Path) -> Option<Vec<(String, String)>> {
    let module = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .find(|m| Path::new(m).exists())?;
    let tokens = dir.join("softhsm-tokens");
    std::fs::create_dir_all(&tokens).ok()?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .ok()?;
    let pin = dir.join("softhsm.pin");
    std::fs::write(&pin, "1234\n").ok()?;
    let ok = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            "1234",
            "--so-pin",
            "5678",
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| {
        vec![
            ("SOFTHSM2_CONF".into(), conf.display().to_string()),
            ("TOLLGATE_PKCS11_MODULE".into(), module.into()),
            ("TOLLGATE_PKCS11_TOKEN_LABEL".into(), "bench".into()),
            ("TOLLGATE_PKCS11_PIN_FILE".into(), pin.display().to_string()),
        ]
    })
}

/// A server serving HTTPS itself, with a P-256 certificate for 127.0.0.1
/// made by the `openssl` command in `dir`.
pub(crate) fn start_tls_server(bin: &Path, dir: &Path) -> Server {
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

pub(crate) fn start_server_with(
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
pub(crate) fn http(
    addr: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String) {
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

pub(crate) fn basic(id: &str, secret: &SecretString) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{id}:{}", secret.expose()))
    )
}

/// A wrk script cycling through request bodies and Authorization headers.
/// A client-credentials token for a Basic `auth`, fetched on a connection of
/// its own (empty if refused).
pub(crate) fn fetch_token(addr: &str, auth: &str) -> String {
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

/// Introspects `token` as the client of `auth` (which holds
/// `tollgate:introspect`): its `active`, if the answer says.
pub(crate) fn introspect_active(addr: &str, auth: &str, token: &str) -> Option<bool> {
    let (_, body) = http(
        addr,
        "/oauth/introspect",
        &[
            ("Authorization", auth.to_string()),
            ("Content-Type", "application/x-www-form-urlencoded".into()),
        ],
        &format!("token={token}"),
    );
    serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["active"].as_bool())
}

/// Revokes `token` as the client of `auth`; the status.
pub(crate) fn revoke_token(addr: &str, auth: &str, token: &str) -> u16 {
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
