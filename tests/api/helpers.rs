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
        let mut app = TestApp {
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
            .env("TOLLGATE_DB", self.dir.path().join("tollgate.db"))
            .env("TOLLGATE_KEYS_DIR", self.dir.path().join("keys"));
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
