//! Prometheus metrics: tokens issued, authentication failures,
//! introspections, revocations, rate-limit refusals, federation exchanges
//! and request latency,
//! in a registry owned by the app (no global state).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Every metric Tollgate exports.
pub struct Metrics {
    registry: Registry,
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
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["endpoint"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Metrics {
            write_failures: counter(
                &registry,
                "tollgate_store_write_failures_total",
                "Writes the database refused, by reason (not_writable, unavailable).",
                &["reason"],
            )?,
            tokens: counter(
                &registry,
                "tollgate_tokens_issued_total",
                "Token requests by grant (client_credentials, api_key, jwt_bearer) and result (issued or the error code).",
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
            latency,
            registry,
        })
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
            Ok(()) => "issued",
            Err(code) => code,
        };
        self.tokens.with_label_values(&[grant, label]).inc();
    }
}
