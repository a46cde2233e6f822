//! OpenTelemetry traces over OTLP/HTTP, off unless
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set: a span per HTTP request (route,
//! status, the authenticated client id, never a secret), with child spans
//! for store calls and token signing. The exporter sends batches from its
//! own thread (`OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf`, the default,
//! or `http/json`; `OTEL_BSP_SCHEDULE_DELAY` and the other standard batch
//! variables apply).

use std::future::Future;
use std::sync::OnceLock;

use opentelemetry::trace::{FutureExt, Span, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};

/// The tracer provider, when tracing is on.
static PROVIDER: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();

/// Starts the OTLP exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set;
/// returns whether tracing is on. An exporter that cannot be built is
/// logged and leaves tracing off.
pub fn init() -> bool {
    let Ok(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        return false;
    };
    if endpoint.trim().is_empty() {
        return false;
    }
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let protocol = match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        Ok("http/json") => Protocol::HttpJson,
        _ => Protocol::HttpBinary,
    };
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            log::error!("OTLP traces off: {e}");
            return false;
        }
    };
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("tollgate")
                .build(),
        )
        .build();
    log::info!("OTLP traces to {endpoint}");
    PROVIDER.set(provider).is_ok()
}

/// Sends the spans not yet exported (at shutdown).
pub fn shutdown() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.force_flush();
        let _ = p.shutdown();
    }
}

fn tracer() -> Option<opentelemetry_sdk::trace::SdkTracer> {
    PROVIDER.get().map(|p| p.tracer("tollgate"))
}

/// A request's span: what its end needs to know.
pub struct RequestSpan {
    cx: Context,
}

impl RequestSpan {
    /// A new root span named after the method (renamed with the route when
    /// it ends), or `None` when tracing is off.
    pub fn start(method: &str) -> Option<RequestSpan> {
        let span = tracer()?.start(format!("HTTP {method}"));
        Some(RequestSpan {
            cx: Context::current_with_span(span),
        })
    }

    /// Runs the request's future inside the span.
    pub async fn run<F: Future>(&self, f: F) -> F::Output {
        f.with_context(self.cx.clone()).await
    }

    /// Ends the span with the route, status and client.
    pub fn end(self, method: &str, route: Option<&str>, status: u16, client_id: Option<String>) {
        let span = self.cx.span();
        if let Some(r) = route {
            span.update_name(format!("{method} {r}"));
            span.set_attribute(KeyValue::new("http.route", r.to_string()));
        }
        span.set_attribute(KeyValue::new("http.request.method", method.to_string()));
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if let Some(c) = client_id {
            span.set_attribute(KeyValue::new("client_id", c));
        }
        span.end();
    }
}

/// Runs `f` in a child span `name` of the current span (a store call).
pub async fn child<F: Future>(name: &'static str, f: F) -> F::Output {
    let Some(tracer) = tracer() else {
        return f.await;
    };
    let span = tracer.start_with_context(name, &Context::current());
    let cx = Context::current_with_span(span);
    let out = f.with_context(cx.clone()).await;
    cx.span().end();
    out
}

/// Runs `f` in a child span `name` of the current span (signing).
pub fn child_sync<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    let Some(tracer) = tracer() else {
        return f();
    };
    let mut span = tracer.start_with_context(name, &Context::current());
    let out = f();
    span.end();
    out
}
