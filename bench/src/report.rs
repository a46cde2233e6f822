//! Measuring and reporting: wrk's figures, peak RSS from /proc, the
//! machine, and the table written into `docs/benchmarks.md`.

use std::path::Path;
use std::process::Command;

use crate::*;

/// `f`'s rate as a share of W1's in the same run (empty without W1).
pub(crate) fn share_of_w1(results: &[Figures], f: &Figures) -> String {
    results
        .iter()
        .find(|r| r.name.starts_with("W1"))
        .map(|w1| format!("{:.0} % of W1", 100.0 * f.rps / w1.rps))
        .unwrap_or_default()
}

/// Throughput and CPU per request next to W1's, when W1 ran.
pub(crate) fn next_to_w1(results: &[Figures], f: &Figures) -> String {
    results
        .iter()
        .find(|r| r.name.starts_with("W1"))
        .map(|w1| {
            format!(
                "{:.2}× W1's throughput, {:.2}× its CPU per request",
                f.rps / w1.rps,
                f.cpu_us / w1.cpu_us
            )
        })
        .unwrap_or_default()
}

#[derive(Default, Clone)]
pub(crate) struct Figures {
    pub(crate) name: String,
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) rss_mib: f64,
    /// The server's CPU time (user + system, from `/proc/PID/stat`) over
    /// the run, per request served, in microseconds.
    pub(crate) cpu_us: f64,
    pub(crate) note: String,
}

/// A process's CPU time so far (user + system), in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: the fields after it are counted
    // from its closing parenthesis (utime and stime are fields 14 and 15).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / clock_ticks(),
        _ => f64::NAN,
    }
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

pub(crate) fn parse_ms(s: &str) -> f64 {
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

pub(crate) fn rss_reset(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// A process's resident set now, in MiB.
pub(crate) fn rss_now_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

pub(crate) fn rss_peak_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

pub(crate) fn wrk(
    args: &Args,
    server: &Server,
    name: &str,
    script: &Path,
    duration: u64,
) -> Figures {
    wrk_with(args, args.connections, server, name, script, duration)
}

/// The same workload against several instances at once, the connections
/// split evenly: requests, errors and rates add up; p50 is the mean of the
/// instances', p99 and peak RSS the worst.
pub(crate) fn wrk_fleet(
    args: &Args,
    servers: &[Server],
    name: &str,
    script: &Path,
    duration: u64,
) -> Figures {
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
        cpu_us: {
            let total: f64 = parts.iter().map(|p| p.cpu_us * p.requests as f64).sum();
            total / parts.iter().map(|p| p.requests).sum::<u64>().max(1) as f64
        },
        note: String::new(),
    };
    println!(
        "{name}: {:.0} req/s in all, {} requests, {} errors",
        f.rps, f.requests, f.errors
    );
    f
}

pub(crate) fn wrk_with(
    args: &Args,
    connections: u32,
    server: &Server,
    name: &str,
    script: &Path,
    duration: u64,
) -> Figures {
    rss_reset(server.child.id());
    let cpu_before = cpu_seconds(server.child.id());
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
    let cpu = cpu_seconds(server.child.id()) - cpu_before;
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
    f.cpu_us = cpu * 1e6 / f.requests.max(1) as f64;
    println!(
        "{name}: {:.0} req/s, {:.1} µs CPU/request, p50 {:.2} ms, p99 {:.2} ms, {} requests, {} errors, peak RSS {:.1} MiB",
        f.rps, f.cpu_us, f.p50_ms, f.p99_ms, f.requests, f.errors, f.rss_mib
    );
    f
}

pub(crate) fn machine() -> String {
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

pub(crate) fn write_results(path: &Path, table: &str) {
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

/// The CPU of one ES256 signature and one verification on this machine, in
/// microseconds: ring in this process on one thread, 3,000 of each after a
/// warm-up. Every report states W1's CPU per token as a multiple of it.
pub(crate) fn es256_costs() -> (f64, f64) {
    use ring::rand::SystemRandom;
    use ring::signature::{self, EcdsaKeyPair, KeyPair};
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let Ok(pkcs8) = EcdsaKeyPair::generate_pkcs8(alg, &rng) else {
        return (f64::NAN, f64::NAN);
    };
    let Ok(key) = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng) else {
        return (f64::NAN, f64::NAN);
    };
    let message = [7u8; 300];
    let n = 3_000;
    let mut sig = key.sign(&rng, &message).ok();
    for _ in 0..300 {
        sig = key.sign(&rng, &message).ok();
    }
    let start = std::time::Instant::now();
    for _ in 0..n {
        sig = key.sign(&rng, &message).ok();
    }
    let sign_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let public = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        key.public_key().as_ref().to_vec(),
    );
    let sig = sig.map(|s| s.as_ref().to_vec()).unwrap_or_default();
    let start = std::time::Instant::now();
    for _ in 0..n {
        let _ = public.verify(&message, &sig);
    }
    let verify_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    (sign_us, verify_us)
}
