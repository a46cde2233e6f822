//! Test harness: runs the real `tollgate` binary on 127.0.0.1:0 in a temporary
//! directory, drives its command line, and reads its logs.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub base: String,
    pub http: reqwest::Client,
    child: Option<Child>,
    extra_env: Vec<(String, String)>,
    log_seq: usize,
    /// `TOLLGATE_DB`: a file in `dir`, or a PostgreSQL URL with its own schema.
    pub db: String,
    /// The PostgreSQL schema this app created (dropped with the app).
    pg_schema: Option<String>,
    /// The keys directory (shared by the instances of a fleet).
    pub keys_dir: PathBuf,
}

/// The PostgreSQL server for tests: `TOLLGATE_TEST_PG_URL`.
pub fn pg_url() -> Option<String> {
    std::env::var("TOLLGATE_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Whether the shared suite runs against PostgreSQL
/// (`TOLLGATE_TEST_BACKEND=postgres`) instead of SQLite.
pub fn on_postgres() -> bool {
    std::env::var("TOLLGATE_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The PostgreSQL URL, or a line saying the test is skipped and why.
pub fn pg_or_skip(test: &str) -> Option<String> {
    let url = pg_url();
    if url.is_none() {
        eprintln!("SKIPPED {test}: set TOLLGATE_TEST_PG_URL (such as postgres://postgres@127.0.0.1:5432/test) to run it");
    }
    url
}

/// Runs one statement on the test PostgreSQL server.
pub async fn pg_exec(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to TOLLGATE_TEST_PG_URL");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = task.await;
}

/// A fresh schema on the test server and a URL that works in it.
pub async fn pg_schema(url: &str) -> (String, String) {
    let schema = format!(
        "tg_{}",
        URL_SAFE_NO_PAD
            .encode(rand_bytes())
            .to_lowercase()
            .replace(['-', '_'], "x")
    );
    pg_exec(url, &format!("CREATE SCHEMA {schema}")).await;
    let sep = if url.contains('?') { '&' } else { '?' };
    (
        schema.clone(),
        format!("{url}{sep}options=-csearch_path%3D{schema}"),
    )
}

fn rand_bytes() -> [u8; 9] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; 9];
    for chunk in out.chunks_mut(3) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos(),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes()[..3]);
    }
    out
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tollgate")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(env: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, pg_schema) = if on_postgres() {
            let url = pg_url().expect(
                "TOLLGATE_TEST_BACKEND=postgres needs TOLLGATE_TEST_PG_URL, such as postgres://postgres@127.0.0.1:5432/test",
            );
            let (schema, db) = pg_schema(&url).await;
            (db, Some(schema))
        } else {
            (dir.path().join("tollgate.db").display().to_string(), None)
        };
        Self::spawn_on(dir, db, pg_schema, None, env)
    }

    /// A fleet of `n` instances on one fresh PostgreSQL schema, sharing one
    /// keys directory and one issuer.
    pub async fn fleet(url: &str, n: usize, env: &[(&str, &str)]) -> Vec<TestApp> {
        let (schema, db) = pg_schema(url).await;
        let mut env: Vec<(&str, &str)> = env.to_vec();
        env.push(("TOLLGATE_ISSUER", "http://tollgate.fleet.test"));
        let first = tempfile::tempdir().expect("tempdir");
        // Shared storage for the keys: a directory of the first instance's.
        let keys = first.path().join("keys");
        let mut fleet = vec![Self::spawn_on(
            first,
            db.clone(),
            Some(schema),
            Some(keys.clone()),
            &env,
        )];
        for _ in 1..n {
            let dir = tempfile::tempdir().expect("tempdir");
            fleet.push(Self::spawn_on(
                dir,
                db.clone(),
                None,
                Some(keys.clone()),
                &env,
            ));
        }
        fleet
    }

    /// Starts an app on `db` with the given keys directory (default: in `dir`).
    pub fn spawn_on(
        dir: tempfile::TempDir,
        db: String,
        pg_schema: Option<String>,
        keys_dir: Option<PathBuf>,
        env: &[(&str, &str)],
    ) -> TestApp {
        let keys_dir = keys_dir.unwrap_or_else(|| dir.path().join("keys"));
        let mut app = TestApp {
            db,
            pg_schema,
            keys_dir,
            dir,
            base: String::new(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            child: None,
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log_seq: 0,
        };
        app.start();
        app
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env("TOLLGATE_BIND", "127.0.0.1:0")
            .env("TOLLGATE_DB", &self.db)
            .env("TOLLGATE_KEYS_DIR", &self.keys_dir);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts the server and waits for the line that names its address.
    fn start(&mut self) {
        self.log_seq += 1;
        let log = std::fs::File::create(self.log_path(self.log_seq)).expect("log file");
        let mut child = self
            .command()
            .args(["serve", "--exit-on-eof"])
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn tollgate");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read address");
        let addr = line
            .trim()
            .strip_prefix("tollgate listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}; log: {}", self.logs()))
            .to_string();
        self.base = addr;
        self.child = Some(child);
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("server-{n}.log"))
    }

    /// Everything the database holds, as text: the SQLite file's bytes, or
    /// every row of every Tollgate table in PostgreSQL.
    pub async fn stored_text(&self) -> String {
        if self.pg_schema.is_none() && !self.db.starts_with("postgres") {
            // Recent commits may still sit in the write-ahead log.
            let mut bytes = std::fs::read(&self.db).expect("read database file");
            bytes.extend(std::fs::read(format!("{}-wal", self.db)).unwrap_or_default());
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        let (client, conn) = tokio_postgres::connect(&self.db, tokio_postgres::NoTls)
            .await
            .expect("connect");
        let task = tokio::spawn(conn);
        let mut out = String::new();
        for table in [
            "clients",
            "client_secrets",
            "api_keys",
            "revoked_tokens",
            "signing_keys",
            "audit_log",
            "quota_usage",
        ] {
            let row = client
                .query_one(
                    &format!("SELECT coalesce(string_agg(t::text, ' '), '') FROM {table} t"),
                    &[],
                )
                .await
                .expect("dump table");
            out.push_str(row.get::<_, &str>(0));
            out.push('\n');
        }
        drop(client);
        let _ = task.await;
        out
    }

    /// Everything every server run of this app has logged.
    pub fn logs(&self) -> String {
        (1..=self.log_seq)
            .map(|n| std::fs::read_to_string(self.log_path(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops the server: SIGKILL, no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal to the server (`TERM`, `KILL`, …).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits up to `secs` for the server to exit; its status if it did.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .expect("running")
                .try_wait()
                .expect("try_wait")
            {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    /// The host:port the server listens on.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// Sets (or replaces) an environment variable for the next start and
    /// every later command-line call.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.retain(|(k, _)| k != key);
        self.extra_env.push((key.to_string(), value.to_string()));
    }

    /// Kills and starts again on the same database and keys.
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Runs a command-line subcommand with `--json` and parses its output.
    pub fn cli(&self, args: &[&str]) -> Value {
        let out = self.cli_raw(args, true);
        assert!(
            out.status.success(),
            "tollgate {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    pub fn cli_raw(&self, args: &[&str], json: bool) -> std::process::Output {
        let mut cmd = self.command();
        cmd.args(args);
        if json {
            cmd.arg("--json");
        }
        cmd.output().expect("run tollgate")
    }

    /// Creates a client through the command line: (client_id, client_secret).
    pub fn client(&self, scopes: &str, audiences: &[&str]) -> (String, String) {
        let mut args = vec![
            "client",
            "create",
            "--name",
            "test client",
            "--scope",
            scopes,
        ];
        for a in audiences {
            args.extend(["--audience", a]);
        }
        let v = self.cli(&args);
        (s(&v["client_id"]), s(&v["client_secret"]))
    }

    /// A client-credentials request by Basic authentication and a form body,
    /// optionally through a proxy that sets `X-Forwarded-For`.
    pub async fn token_request(
        &self,
        id: &str,
        secret: &str,
        xff: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")]);
        if let Some(ip) = xff {
            req = req.header("x-forwarded-for", ip);
        }
        req.send().await.expect("token request")
    }

    /// A token for a client by Basic authentication and a form body.
    pub async fn token(&self, id: &str, secret: &str) -> String {
        let r = self.token_request(id, secret, None).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        s(&v["access_token"])
    }

    /// An admin token (a client holding `tollgate:admin`).
    pub async fn admin_token(&self) -> String {
        let (id, secret) = self.client("tollgate:admin", &[]);
        self.token(&id, &secret).await
    }

    /// Revokes `token` as the client `id` (RFC 7009), by Basic authentication.
    pub async fn revoke(&self, id: &str, secret: &str, token: &str) -> reqwest::Response {
        self.http
            .post(self.url("/oauth/revoke"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .expect("revoke")
    }

    /// Introspects as the client `id` (which holds `tollgate:introspect`).
    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn introspect_as(&self, id: &str, secret: &str, token: &str) -> Value {
        let r = self
            .http
            .post(self.url("/oauth/introspect"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .expect("introspect");
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }

    /// The `kid`s the JWKS publishes now.
    pub async fn jwks_kids(&self) -> Vec<String> {
        let (_, v) = json(
            self.http
                .get(self.url("/.well-known/jwks.json"))
                .send()
                .await
                .expect("jwks"),
        )
        .await;
        v["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| s(&k["kid"]))
            .collect()
    }

    /// Introspects with a fresh introspection client's Basic credentials.
    pub async fn introspect(&self, token: &str) -> Value {
        let (id, secret) = self.client("tollgate:introspect", &[]);
        let r = self
            .http
            .post(self.url("/oauth/introspect"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", token)])
            .send()
            .await
            .expect("introspect");
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
        if let (Some(schema), Some(url)) = (self.pg_schema.take(), pg_url()) {
            // Drop runs inside the test's runtime: clean up on a thread of its own.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(pg_exec(&url, &format!("DROP SCHEMA {schema} CASCADE")));
                }
            })
            .join();
        }
    }
}

/// A TCP relay in front of PostgreSQL that a test can cut, as if the
/// database became unreachable, and restore.
pub struct CuttableProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// While set (and cut), connections are accepted and then never answered,
    /// as when packets to the database are dropped.
    blackhole: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CuttableProxy {
    pub async fn start(target: String) -> CuttableProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            Default::default();
        let blackhole = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (up2, conns2, hole2) = (up.clone(), conns.clone(), blackhole.clone());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    if hole2.load(Ordering::SeqCst) {
                        held.push(inbound); // open, and silent
                    }
                    continue; // dropped: the connection is closed at once
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().expect("lock").push(task);
            }
        });
        CuttableProxy {
            port,
            up,
            blackhole,
            conns,
        }
    }

    /// Like `cut`, but new connections hang instead of closing.
    pub fn cut_silently(&self) {
        self.blackhole
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut();
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for t in self.conns.lock().expect("lock").drain(..) {
            t.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.blackhole
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Polls `check` every 20 ms until it holds, and fails the test once `bound`
/// has passed without it; how long it took. A zero bound means "at once".
pub async fn eventually<F, Fut>(
    what: &str,
    bound: std::time::Duration,
    mut check: F,
) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            let took = start.elapsed();
            eprintln!("{what}: seen after {took:?}");
            return took;
        }
        assert!(
            start.elapsed() <= bound,
            "{what}: not seen within {bound:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// How long a change the command line commits may take to reach a running
/// server: at once on SQLite (the shared change counter), within the fleet
/// bound of one second on PostgreSQL (NOTIFY).
pub fn cli_change_bound() -> std::time::Duration {
    if on_postgres() {
        std::time::Duration::from_secs(1)
    } else {
        std::time::Duration::ZERO
    }
}

pub fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// Decodes a JWT segment without verifying it.
pub fn segment(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("b64")).expect("json")
}

pub async fn json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
    (status, v)
}
