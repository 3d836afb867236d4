//! `fw exporter`: a small HTTP server (axum on a single-threaded tokio
//! runtime) answering `GET /metrics` with [`crate::watch::metrics`], read fresh
//! from the pinned maps at every scrape. Stops gracefully on Ctrl-C/SIGTERM:
//! no new connections, requests in flight are answered.
use std::net::{SocketAddr, TcpListener};

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use crate::{
    error::{Error, Result},
    kernel::{maps::FwMaps, pins::PinDir, shutdown::Shutdown},
    watch::metrics,
};

/// Where `fw exporter` listens unless told otherwise: loopback only, since
/// the metrics describe the host's firewall.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9788";

/// Binds `listen` (so a busy port is reported before anything starts), calls
/// `ready` with the bound address, and serves until `stop` is raised.
pub fn serve(
    pins: &PinDir,
    listen: SocketAddr,
    stop: &Shutdown,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    // A user who cannot read the pins would serve nothing but errors.
    pins.check_readable()?;
    let listener = TcpListener::bind(listen).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => "is another exporter running? use --listen",
            std::io::ErrorKind::AddrNotAvailable => {
                "the address is not on this host: give one of its addresses to --listen"
            }
            _ => "use --listen",
        };
        Error::io(format!("listening on {listen} ({hint})"), e)
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("configuring the listening socket", e))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("starting the exporter's runtime", e))?;
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/", get(index))
        .with_state(pins.clone());
    let stop = stop.clone();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::io("registering the listening socket", e))?;
        ready(local);
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.wait().await })
            .await
            .map_err(|e| Error::io("serving metrics", e))
    })
}

async fn index() -> &'static str {
    "fw exporter: metrics are at /metrics\n"
}

async fn scrape(State(pins): State<PinDir>) -> Response {
    // Map reads are syscalls: keep them off the async thread.
    let body = tokio::task::spawn_blocking(move || {
        let maps = FwMaps::open(&pins)?;
        metrics::scrape(&maps)
    })
    .await;
    match body {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        // fw not loaded (or pins of another build): the scrape fails, which
        // Prometheus records as `up == 0` for this target.
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("fw: {e}\n")).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("fw: scrape failed: {e}\n"),
        )
            .into_response(),
    }
}
