//! W14: Shared Signals latency. A push receiver in this process, a stream
//! registered on Tollgate, and 20 revocations a second while W1 runs: from
//! each revocation's answer to the receiver's 202 for its SET.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::server::{fetch_token, http, revoke_token};

/// A push receiver: when each SET arrived, by the revoked token's `jti`.
pub(crate) struct Receiver {
    pub(crate) url: String,
    got: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
}

fn payload(jwt: &str) -> Option<Value> {
    let part = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// Starts a receiver on 127.0.0.1 (a thread per connection; 202 to all).
pub(crate) fn receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
    let url = format!("http://{}/ssf", listener.local_addr().expect("addr"));
    let got: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut sock) = conn else { continue };
            let g = g.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let body = loop {
                    let n = sock.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(i) = text.find("\r\n\r\n") {
                        let len = text[..i]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .and_then(|v| v.trim().parse::<usize>().ok())
                            })
                            .unwrap_or(0);
                        if buf.len() >= i + 4 + len {
                            break text[i + 4..i + 4 + len].to_string();
                        }
                    }
                };
                let _ = sock.write_all(
                    b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                let at = Instant::now();
                if let Some(jti) =
                    payload(&body).and_then(|c| c["sub_id"]["jti"].as_str().map(str::to_string))
                {
                    if let Ok(mut g) = g.lock() {
                        g.entry(jti).or_default().push(at);
                    }
                }
            });
        }
    });
    Receiver { url, got }
}

/// Registers a push stream for `receiver` through the instance at `addr`,
/// as the client of Basic `auth` (which holds `tollgate:ssf`).
pub(crate) fn open_stream(addr: &str, auth: &str, receiver: &Receiver) -> bool {
    let token = fetch_token(addr, auth);
    let body = json!({
        "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": receiver.url},
        "events_requested": ["https://schemas.openid.net/secevent/caep/event-type/session-revoked"]
    });
    let (status, _) = http(
        addr,
        "/ssf/streams",
        &[
            ("Authorization", format!("Bearer {token}")),
            ("Content-Type", "application/json".into()),
        ],
        &body.to_string(),
    );
    status == 201
}

/// Issues and revokes 20 tokens a second through `addrs` in turn until
/// `stop`; each revoked `jti` with the moment its revocation was answered.
pub(crate) fn revocations(
    addrs: Vec<String>,
    auth: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(String, Instant)>> {
    std::thread::spawn(move || {
        let mut acks = Vec::new();
        let mut next = Instant::now();
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let addr = &addrs[i % addrs.len()];
            i += 1;
            let token = fetch_token(addr, &auth);
            if let Some(jti) = payload(&token).and_then(|c| c["jti"].as_str().map(str::to_string)) {
                if revoke_token(addr, &auth, &token) == 200 {
                    acks.push((jti, Instant::now()));
                }
            }
            next += Duration::from_millis(50);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        acks
    })
}

/// What W14 measured.
pub(crate) struct Latency {
    pub(crate) n: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) missing: usize,
    pub(crate) twice: usize,
}

impl Latency {
    /// The row's note: SETs, latency, missing and repeated.
    pub(crate) fn note(&self) -> String {
        format!(
            "{} SETs: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms from the revocation's answer to the receiver's 202; {} missing, {} twice",
            self.n, self.p50_ms, self.p99_ms, self.max_ms, self.missing, self.twice
        )
    }

    /// The check: p99 at most 1 s, nothing missing, nothing twice.
    pub(crate) fn check(&self, what: &str, revocations: usize) -> String {
        let pass = self.p99_ms <= 1000.0 && self.missing == 0 && self.twice == 0 && self.n > 0;
        format!(
            "{what}: {revocations} revocations, SET p99 {:.0} ms (bound 1000), {} missing, {} delivered twice: {}",
            self.p99_ms,
            self.missing,
            self.twice,
            if pass { "PASS" } else { "FAIL" }
        )
    }
}

/// Waits up to 3 s for the last SETs, then the latencies from each
/// revocation's answer to its SET's 202 (0 when the SET came first).
pub(crate) fn latency(acks: &[(String, Instant)], r: &Receiver) -> Latency {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let all = r
            .got
            .lock()
            .map(|g| acks.iter().all(|(j, _)| g.contains_key(j)))
            .unwrap_or(false);
        if all || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = r.got.lock().map(|g| g.clone()).unwrap_or_default();
    let mut ms: Vec<f64> = Vec::new();
    let (mut missing, mut twice) = (0, 0);
    for (jti, ack) in acks {
        match got.get(jti) {
            Some(times) => {
                if times.len() > 1 {
                    twice += 1;
                }
                ms.push(times[0].saturating_duration_since(*ack).as_secs_f64() * 1000.0);
            }
            None => missing += 1,
        }
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        if ms.is_empty() {
            0.0
        } else {
            ms[((ms.len() - 1) as f64 * q).round() as usize]
        }
    };
    Latency {
        n: ms.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: ms.last().copied().unwrap_or(0.0),
        missing,
        twice,
    }
}
