//! Log output: env_logger's text lines, or one JSON object per line (`time`,
//! `level`, `target`, `message`, and the `request_id` and `client_id` of the
//! request being served). The request's context lives in a task-local that
//! the HTTP layer sets around each request; the use cases name the client
//! once they have authenticated it. Nothing here ever holds a secret.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// The request a log line belongs to.
#[derive(Debug)]
pub struct RequestContext {
    /// The request id (`X-Request-Id`).
    pub id: String,
    /// The authenticated client, once known.
    client: Mutex<Option<String>>,
}

impl RequestContext {
    /// A context for request `id`.
    pub fn new(id: String) -> Arc<RequestContext> {
        Arc::new(RequestContext {
            id,
            client: Mutex::new(None),
        })
    }

    /// The authenticated client, once known.
    pub fn client(&self) -> Option<String> {
        crate::sync::lock(&self.client).clone()
    }
}

tokio::task_local! {
    static CONTEXT: Arc<RequestContext>;
}

/// Runs `f` with `ctx` as the context of every line it logs.
pub async fn scope<F: Future>(ctx: Arc<RequestContext>, f: F) -> F::Output {
    CONTEXT.scope(ctx, f).await
}

/// Names the authenticated client of the request being served, if any.
pub fn set_client(client_id: &str) {
    let _ = CONTEXT.try_with(|c| {
        *crate::sync::lock(&c.client) = Some(client_id.to_string());
    });
}

/// The request id and client of the request being served.
fn current() -> Option<(String, Option<String>)> {
    CONTEXT
        .try_with(|c| (c.id.clone(), crate::sync::lock(&c.client).clone()))
        .ok()
}

/// One JSON log line.
fn json_line(record: &log::Record<'_>) -> String {
    let mut line = serde_json::json!({
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "level": record.level().as_str(),
        "target": record.target(),
        "message": record.args().to_string(),
    });
    if let Some((id, client)) = current() {
        line["request_id"] = serde_json::json!(id);
        if let Some(c) = client {
            line["client_id"] = serde_json::json!(c);
        }
    }
    line.to_string()
}

/// Starts logging to stderr: `RUST_LOG` filters (`default` when unset);
/// `json` picks JSON lines. tokio-postgres is never below info: at debug it
/// logs every statement's parameters (key digests, token ids, client ids).
pub fn init(json: bool, default: &str) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    builder.filter_module("tokio_postgres", log::LevelFilter::Info);
    if json {
        builder.format(|buf, record| writeln!(buf, "{}", json_line(record)));
    }
    let _ = builder.try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_carry_the_request_and_its_client_once_known() {
        let record = |msg: &str| {
            let args = format_args!("{msg}");
            let line = json_line(
                &log::Record::builder()
                    .args(args)
                    .level(log::Level::Info)
                    .target("t")
                    .build(),
            );
            serde_json::from_str::<serde_json::Value>(&line).unwrap()
        };
        let outside = record("outside");
        assert!(outside.get("request_id").is_none());
        assert_eq!(outside["level"], "INFO");
        assert_eq!(outside["message"], "outside");
        let ctx = RequestContext::new("req-1".into());
        scope(ctx, async {
            let before = record("before");
            assert_eq!(before["request_id"], "req-1");
            assert!(before.get("client_id").is_none());
            set_client("tgc_a");
            let after = record("after \"quoted\"");
            assert_eq!(after["client_id"], "tgc_a");
            assert_eq!(after["message"], "after \"quoted\"");
        })
        .await;
    }
}
