//! Starts the HTTP server: binds the listener (port 0 works), shares the
//! application core as `web::Data`, and runs the background maintenance tasks.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::middleware::Condition;
use actix_web::{web, HttpServer};

use crate::service::error::ServiceError;
use crate::service::App;

/// JSON errors for query strings and paths that fail to parse.
fn extractor_config(cfg: &mut web::ServiceConfig) {
    // The parser's message would quote the offending value: not echoed.
    cfg.app_data(web::QueryConfig::default().error_handler(|_, _| {
        ServiceError::invalid_request(
            "invalid query string: see docs/admin-api.md for its parameters",
        )
        .into()
    }))
    .app_data(
        web::PathConfig::default()
            .error_handler(|_, _| ServiceError::invalid_request("invalid path").into()),
    );
}

/// Binds and builds the server without running it; returns it with the
/// address it listens on and the app it serves (whose issuer follows the
/// bound address unless one was configured).
pub fn build(mut app: App) -> std::io::Result<(actix_web::dev::Server, SocketAddr, App)> {
    let listener = TcpListener::bind(app.config().bind)?;
    let addr = listener.local_addr()?;
    let tls = match (&app.config().tls_cert, &app.config().tls_key) {
        (Some(cert), Some(key)) => {
            let cert = super::tls::ReloadingCert::open(cert, key).map_err(std::io::Error::other)?;
            let config =
                super::tls::server_config(cert.clone(), app.config().tls_client_ca.is_some())
                    .map_err(std::io::Error::other)?;
            Some((cert, config))
        }
        _ => None,
    };
    if !app.config().issuer_explicit {
        let scheme = if tls.is_some() { "https" } else { "http" };
        app = app.with_issuer(format!("{scheme}://{addr}"));
    }
    let served = app.clone();
    let workers = app.config().workers;
    let request_timeout = app.config().request_timeout;
    let blocking_threads = app.config().blocking_threads;
    let data = web::Data::new(app);
    let ip_limits = data.config().ip_limit_get > 0 || data.config().ip_limit_post > 0;
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .wrap(actix_web::middleware::from_fn(super::middleware::cors))
            // Outside CORS, so that preflight requests are counted too.
            .wrap(Condition::new(
                ip_limits,
                actix_web::middleware::from_fn(super::middleware::ip_limit),
            ))
            // Outermost: every line logged for the request, the access
            // line included, carries its id, and its latency is measured
            // around everything else.
            .wrap(actix_web::middleware::from_fn(
                super::middleware::request_id,
            ))
            .configure(extractor_config)
            .configure(super::configure)
    })
    .workers(workers)
    .worker_max_blocking_threads(blocking_threads)
    .client_request_timeout(Duration::from_secs(request_timeout))
    .client_disconnect_timeout(Duration::from_secs(2))
    .shutdown_timeout(15)
    .on_connect(super::tls::on_connect);
    let server = match tls {
        Some((cert, config)) => {
            super::tls::handle_sighup(Some(cert));
            server.listen_rustls_0_23(listener, config)?
        }
        None => {
            super::tls::handle_sighup(None);
            server.listen(listener)?
        }
    }
    .run();
    Ok((server, addr, served))
}

/// The private metrics listener, when `TOLLGATE_METRICS_BIND` is set: it
/// serves `GET /metrics` only, outside the per-address limits, for the
/// monitoring network; the public port then answers 404 there.
pub fn build_metrics(app: &App) -> std::io::Result<Option<(actix_web::dev::Server, SocketAddr)>> {
    let Some(bind) = app.config().metrics_bind else {
        return Ok(None);
    };
    let listener = TcpListener::bind(bind)?;
    let addr = listener.local_addr()?;
    let data = web::Data::new(app.clone());
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .service(
                web::resource("/metrics")
                    .route(super::get_or_head().to(super::health::metrics_export))
                    .default_service(super::not_allowed("GET, HEAD")),
            )
            .default_service(web::to(super::not_found))
    })
    .workers(1)
    .disable_signals()
    .client_request_timeout(Duration::from_secs(app.config().request_timeout))
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(Some((server, addr)))
}

/// Background maintenance on the server's runtime: picks up signing-key
/// changes made by the command line or another instance as soon as they are
/// committed (checked every 100 ms, one atomic load) and at least every
/// second, polls for changes made outside Tollgate every second, and prunes
/// expired revocations every minute.
pub fn spawn_maintenance(app: App) {
    actix_web::rt::spawn(async move {
        let mut tick: u64 = 0;
        let mut fast = actix_web::rt::time::interval(Duration::from_millis(100));
        loop {
            fast.tick().await;
            tick += 1;
            let result = if tick.is_multiple_of(10) {
                app.maintain(tick / 10).await
            } else {
                app.maintain_keys().await
            };
            if let Err(e) = result {
                log::warn!("maintenance: {e}");
            }
        }
    });
}

/// The Shared Signals transmitter's loop: every 100 ms, recorded actions
/// become events and waiting events are pushed; delivered events are
/// forgotten after a day.
pub fn spawn_signals(app: App) {
    actix_web::rt::spawn(async move {
        let mut tick: u64 = 0;
        let mut every = actix_web::rt::time::interval(Duration::from_millis(100));
        let signals = app.signals().clone();
        loop {
            every.tick().await;
            tick += 1;
            if let Err(e) = signals.step(crate::service::now()).await {
                log::warn!("shared signals: {e}");
            }
            if tick.is_multiple_of(6000) {
                if let Err(e) = signals.prune(crate::service::now()).await {
                    log::warn!("shared signals: {e}");
                }
            }
        }
    });
}

/// Why the server did not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store or the keys could not be opened.
    #[error("{0}")]
    Start(#[from] crate::service::StartError),
    /// The listener failed.
    #[error("cannot serve: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the app and runs the server on an actix system of its own until it
/// is stopped (the command line's `serve`): the store's connections and
/// blocking calls live on that system's runtime.
pub fn serve(config: crate::config::Config) -> Result<(), ServeError> {
    crate::telemetry::init();
    let result = actix_web::rt::System::new().block_on(async move {
        let app = App::open(config).await?;
        Ok(run(app).await?)
    });
    // The spans of the last requests are sent before the process ends.
    crate::telemetry::shutdown();
    result
}

/// Runs the server until it is stopped (SIGTERM or SIGINT finish the
/// requests in flight first). Prints the bound address on stdout.
pub async fn run(app: App) -> std::io::Result<()> {
    let (server, addr, app) = build(app)?;
    let metrics = build_metrics(&app)?;
    spawn_maintenance(app.clone());
    spawn_signals(app.clone());
    log::info!("issuer {}", app.config().issuer);
    let metrics_handle = metrics.map(|(metrics, metrics_addr)| {
        log::info!("metrics listening on http://{metrics_addr}/metrics");
        let handle = metrics.handle();
        actix_web::rt::spawn(metrics);
        handle
    });
    let scheme = if app.config().tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    println!("tollgate listening on {scheme}://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let result = server.await;
    if let Some(h) = metrics_handle {
        h.stop(true).await;
    }
    // Uses noted since the last flush are written on a clean stop.
    if let Err(e) = app.api_keys().flush_key_uses().await {
        log::warn!("cannot record API-key uses: {e}");
    }
    result
}
