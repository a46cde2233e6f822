//! Prometheus metrics: tokens issued, authentication failures,
//! introspections, revocations, rate-limit refusals, federation exchanges
//! and request latency,
//! in a registry owned by the app (no global state).

use std::collections::VecDeque;
use std::sync::Mutex;

use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The upper bounds of the latency histogram's buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// How many minute samples are kept: the last hour and one more.
const HISTORY: usize = 61;

/// The counters that the console's overview shows, read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// When (seconds since the epoch).
    pub at: i64,
    /// Tokens issued, every grant.
    pub issued: u64,
    /// Failed client authentications, every kind.
    pub failed_auth: u64,
    /// 429 refusals, every limit.
    pub refusals: u64,
    /// Requests answered, every endpoint.
    pub requests: u64,
    /// Requests answered within each of [`LATENCY_BUCKETS`] (cumulative).
    pub latency: Vec<u64>,
}

impl Totals {
    /// The 99th percentile latency of the requests answered between `from`
    /// and `self`, as the upper bound of the histogram bucket it falls in
    /// (`None` without requests; `f64::INFINITY` beyond the last bucket).
    pub fn p99_since(&self, from: &Totals) -> Option<f64> {
        let n = self.requests.saturating_sub(from.requests);
        if n == 0 {
            return None;
        }
        // The smallest bucket that holds at least 99 % of the requests.
        let wanted = n - n / 100;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let here = self.latency.get(i).copied().unwrap_or(0);
            let before = from.latency.get(i).copied().unwrap_or(0);
            if here.saturating_sub(before) >= wanted {
                return Some(*bound);
            }
        }
        Some(f64::INFINITY)
    }
}

/// The endpoints whose latency series are resolved once (the hot paths);
/// a label lookup hashes its values on every call.
const HOT_ENDPOINTS: [&str; 5] = [
    "/oauth/token",
    "/oauth/introspect",
    "/authentication/token",
    "/oauth/revoke",
    "/.well-known/jwks.json",
];

/// The series of the hot paths, resolved at start.
struct Hot {
    /// `tokens{grant, result="issued"}` by grant.
    issued: Vec<(&'static str, prometheus::IntCounter)>,
    /// `introspections{result}` for active, inactive and refused.
    introspected: Vec<(&'static str, prometheus::IntCounter)>,
    /// `latency{endpoint}` for [`HOT_ENDPOINTS`].
    latency: Vec<(&'static str, prometheus::Histogram)>,
}

/// Every metric Tollgate exports.
pub struct Metrics {
    registry: Registry,
    hot: Hot,
    /// `tollgate_tokens_issued_total{grant, result}`.
    pub tokens: IntCounterVec,
    /// `tollgate_client_auth_failures_total{kind}`.
    pub auth_failures: IntCounterVec,
    /// `tollgate_introspections_total{result}`.
    pub introspections: IntCounterVec,
    /// `tollgate_revocations_total{kind}`.
    pub revocations: IntCounterVec,
    /// `tollgate_rate_limit_refusals_total{limit}`.
    pub refusals: IntCounterVec,
    /// `tollgate_request_duration_seconds{endpoint}`.
    pub latency: HistogramVec,
    /// `tollgate_store_write_failures_total{reason}`: writes the database
    /// refused (`not_writable`: disk full, read-only, locked, I/O error;
    /// `unavailable`: unreachable).
    pub write_failures: IntCounterVec,
    /// `tollgate_federation_exchanges_total{rule, result}`: external tokens
    /// per federation rule (`none` when no rule matched): `issued` (JWT
    /// bearer grant), `authenticated` (client assertion), the error code of
    /// a grant refused after its rule matched, or the reason of a refusal.
    pub federation: IntCounterVec,
    /// `tollgate_token_exchange_refusals_total{reason}`: exchanges refused
    /// after the client authenticated (`oauth::exchange::REFUSAL_REASONS`).
    pub exchange_refusals: IntCounterVec,
    /// `tollgate_cimd_documents_total{result}`: URL clients' documents
    /// (`fetched`, `cached`, or why refused).
    pub cimd: IntCounterVec,
    /// `tollgate_ssf_events_total{result}`: Security Event Tokens
    /// `stored` for a stream, `delivered` (pushed, or acknowledged by a
    /// poll) and push attempts `failed`.
    pub ssf: IntCounterVec,
    /// `tollgate_pkcs11_failures_total{reason}`: what the PKCS#11 token
    /// failed to do (`connect`, `login`, `sign`, `generate`).
    pub pkcs11_failures: IntCounterVec,
    /// `tollgate_outage_grace_seconds`: seconds left of the outage grace
    /// while the database is unreachable and the instance answers from its
    /// cache (`TOLLGATE_OUTAGE_GRACE`); 0 otherwise. Set when rendered.
    pub outage_grace: prometheus::IntGauge,
    /// `tollgate_cache_bytes`: what the store's cache holds now, by its
    /// entries' estimated weight (bounded by `TOLLGATE_CACHE_MIB`). Set
    /// when rendered.
    pub cache_bytes: prometheus::IntGauge,
    /// A sample of [`Totals`] a minute, for the console's last-hour chart.
    history: Mutex<VecDeque<Totals>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_request_duration_seconds",
                "HTTP request latency by endpoint.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["endpoint"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        let outage_grace = prometheus::IntGauge::new(
            "tollgate_outage_grace_seconds",
            "Seconds left of the outage grace while the database is unreachable (0: not in one).",
        )?;
        registry.register(Box::new(outage_grace.clone()))?;
        let cache_bytes = prometheus::IntGauge::new(
            "tollgate_cache_bytes",
            "Bytes the store's cache holds now (estimated; bounded by TOLLGATE_CACHE_MIB).",
        )?;
        registry.register(Box::new(cache_bytes.clone()))?;
        Ok(Metrics {
            outage_grace,
            cache_bytes,
            write_failures: counter(
                &registry,
                "tollgate_store_write_failures_total",
                "Writes the database refused, by reason (not_writable, unavailable).",
                &["reason"],
            )?,
            tokens: counter(
                &registry,
                "tollgate_tokens_issued_total",
                "Token requests by grant (client_credentials, api_key, jwt_bearer, token_exchange, txn_token) and result (issued or the error code).",
                &["grant", "result"],
            )?,
            auth_failures: counter(
                &registry,
                "tollgate_client_auth_failures_total",
                "Failed client authentications by kind (client_secret, private_key_jwt, api_key, jwt_bearer).",
                &["kind"],
            )?,
            introspections: counter(
                &registry,
                "tollgate_introspections_total",
                "Introspections by result (active, inactive, refused).",
                &["result"],
            )?,
            revocations: counter(
                &registry,
                "tollgate_revocations_total",
                "Revocations by kind (access_token, api_key).",
                &["kind"],
            )?,
            refusals: counter(
                &registry,
                "tollgate_rate_limit_refusals_total",
                "429 refusals by limit (quota, ip, auth_failures).",
                &["limit"],
            )?,
            federation: counter(
                &registry,
                "tollgate_federation_exchanges_total",
                "Workload identity federation exchanges by rule (none: no rule matched) and result (issued, authenticated, or why refused).",
                &["rule", "result"],
            )?,
            exchange_refusals: counter(
                &registry,
                "tollgate_token_exchange_refusals_total",
                "Token exchanges (RFC 8693) and transaction-token requests refused after client authentication, by reason.",
                &["reason"],
            )?,
            cimd: counter(
                &registry,
                "tollgate_cimd_documents_total",
                "URL client ids (Client ID Metadata Documents) resolved, by result (fetched, cached, blocked, no_policy, fetch_failed, invalid).",
                &["result"],
            )?,
            ssf: counter(
                &registry,
                "tollgate_ssf_events_total",
                "Shared Signals events: SETs stored for a stream, delivered (pushed or acknowledged), and push attempts failed.",
                &["result"],
            )?,
            pkcs11_failures: counter(
                &registry,
                "tollgate_pkcs11_failures_total",
                "Failures of the PKCS#11 token that holds the signing keys, by reason (connect, login, sign, generate); issuance answers 503 meanwhile.",
                &["reason"],
            )?,
            latency,
            registry,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            hot: Hot {
                issued: Vec::new(),
                introspected: Vec::new(),
                latency: Vec::new(),
            },
        }
        .resolved())
    }

    /// With the hot paths' series resolved.
    fn resolved(mut self) -> Metrics {
        for r in crate::oauth::exchange::REFUSAL_REASONS {
            self.exchange_refusals.with_label_values(&[r]);
        }
        self.hot.issued = [
            "client_credentials",
            "jwt_bearer",
            "api_key",
            "token_exchange",
            "txn_token",
            "id_jag",
        ]
        .into_iter()
        .map(|g| (g, self.tokens.with_label_values(&[g, "issued"])))
        .collect();
        self.hot.introspected = ["active", "inactive", "refused"]
            .into_iter()
            .map(|r| (r, self.introspections.with_label_values(&[r])))
            .collect();
        self.hot.latency = HOT_ENDPOINTS
            .into_iter()
            .map(|e| (e, self.latency.with_label_values(&[e])))
            .collect();
        self
    }

    /// Counts one introspection by result (`active`, `inactive`,
    /// `refused`).
    pub fn introspection(&self, result: &str) {
        match self.hot.introspected.iter().find(|(r, _)| *r == result) {
            Some((_, c)) => c.inc(),
            None => self.introspections.with_label_values(&[result]).inc(),
        }
    }

    /// The latency series of a request path that is one of the hot paths
    /// (whose route pattern is the path itself), resolved at start.
    pub fn hot_latency(&self, path: &str) -> Option<&prometheus::Histogram> {
        self.hot
            .latency
            .iter()
            .find(|(e, _)| *e == path)
            .map(|(_, h)| h)
    }

    /// Observes one request's latency at `endpoint` (its route pattern).
    pub fn observe_latency(&self, endpoint: &str, seconds: f64) {
        match self.hot_latency(endpoint) {
            Some(h) => h.observe(seconds),
            None => self.latency.with_label_values(&[endpoint]).observe(seconds),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::warn!("cannot encode metrics: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Counts one outcome of a token request.
    pub fn token(&self, grant: &str, result: Result<(), &str>) {
        let label = match result {
            Ok(()) => {
                if let Some((_, c)) = self.hot.issued.iter().find(|(g, _)| *g == grant) {
                    c.inc();
                    return;
                }
                "issued"
            }
            Err(code) => code,
        };
        self.tokens.with_label_values(&[grant, label]).inc();
    }

    /// The overview's counters now.
    pub fn totals(&self, at: i64) -> Totals {
        let mut t = Totals {
            at,
            latency: vec![0; LATENCY_BUCKETS.len()],
            ..Totals::default()
        };
        let label = |m: &prometheus::proto::Metric, name: &str| {
            m.get_label()
                .iter()
                .find(|l| l.name() == name)
                .map(|l| l.value().to_string())
        };
        for f in self.tokens.collect() {
            for m in f.get_metric() {
                if label(m, "result").as_deref() == Some("issued") {
                    t.issued += m.get_counter().get_value() as u64;
                }
            }
        }
        let sum = |c: &IntCounterVec| -> u64 {
            c.collect()
                .iter()
                .flat_map(|f| f.get_metric())
                .map(|m| m.get_counter().get_value() as u64)
                .sum()
        };
        t.failed_auth = sum(&self.auth_failures);
        t.refusals = sum(&self.refusals);
        for f in self.latency.collect() {
            for m in f.get_metric() {
                let h = m.get_histogram();
                t.requests += h.get_sample_count();
                for (i, b) in h.get_bucket().iter().enumerate().take(t.latency.len()) {
                    t.latency[i] += b.cumulative_count();
                }
            }
        }
        t
    }

    /// Records this minute's totals; the oldest beyond an hour is dropped.
    pub fn sample(&self, at: i64) {
        let t = self.totals(at);
        let mut h = crate::sync::lock(&self.history);
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(t);
    }

    /// The minute samples of the last hour, oldest first.
    pub fn history(&self) -> Vec<Totals> {
        crate::sync::lock(&self.history).iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hot_series_count_like_the_looked_up_ones() {
        let m = super::Metrics::new().unwrap();
        m.token("api_key", Ok(()));
        m.token("api_key", Err("invalid_client"));
        m.introspection("active");
        m.introspection("refused");
        m.observe_latency("/oauth/token", 0.001);
        m.observe_latency("/admin/clients/{id}", 0.001);
        let text = m.render();
        for line in [
            r#"tollgate_tokens_issued_total{grant="api_key",result="issued"} 1"#,
            r#"tollgate_tokens_issued_total{grant="api_key",result="invalid_client"} 1"#,
            r#"tollgate_introspections_total{result="active"} 1"#,
            r#"tollgate_introspections_total{result="refused"} 1"#,
            r#"tollgate_request_duration_seconds_count{endpoint="/oauth/token"} 1"#,
            r#"tollgate_request_duration_seconds_count{endpoint="/admin/clients/{id}"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(m.hot_latency("/oauth/introspect").is_some());
        assert!(m.hot_latency("/admin/clients").is_none());
    }

    use super::*;

    #[test]
    fn totals_sum_labels_and_p99_takes_the_bucket_of_the_99th_percentile() {
        let m = Metrics::new().unwrap();
        let before = m.totals(0);
        m.token("client_credentials", Ok(()));
        m.token("api_key", Ok(()));
        m.token("client_credentials", Err("invalid_client"));
        m.auth_failures.with_label_values(&["client_secret"]).inc();
        m.refusals.with_label_values(&["quota"]).inc_by(3);
        for _ in 0..99 {
            m.latency.with_label_values(&["token"]).observe(0.0004);
        }
        m.latency.with_label_values(&["admin"]).observe(0.2);
        let now = m.totals(60);
        assert_eq!(
            (now.issued, now.failed_auth, now.refusals, now.requests),
            (2, 1, 3, 100)
        );
        // 99 of 100 within 0.5 ms.
        assert_eq!(now.p99_since(&before), Some(0.0005));
        m.latency.with_label_values(&["admin"]).observe(0.2);
        assert_eq!(m.totals(61).p99_since(&before), Some(0.25));
        assert_eq!(now.p99_since(&now), None);
        for minute in 0..70 {
            m.sample(minute * 60);
        }
        let h = m.history();
        assert_eq!(h.len(), 61);
        assert_eq!(h.first().unwrap().at, 9 * 60);
    }
}
