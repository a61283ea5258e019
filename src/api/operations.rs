//! The operations endpoint, as a Fabric peer has one: `GET /healthz` (200
//! only when the engine answers; Fabric's JSON shape) and `GET /metrics`
//! (Prometheus text). Nothing else: other paths are 404, other methods 405.
//!
//! Chaincode shares the host's network, so it can reach this port: it says
//! nothing secret (no engine address, paths, keys or package content: a
//! failed check names the component only, the detail goes to the log), and
//! however often it is asked, the engine is asked at most once a second per
//! route (see [`Cached`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::cached::Cached;
use super::connections::{Activity, Incoming, Limits, TrackCallsLayer};
use crate::launcher::{Launcher, Pinged};

/// How long one engine answer serves every request.
pub const ANSWER_TTL: Duration = Duration::from_secs(1);

struct Operations {
    launcher: Arc<Launcher>,
    /// The engine that did not answer its ping, if one did not.
    engine_up: Cached<Option<Pinged>>,
    /// Running chaincode containers, if the engine could list them.
    running: Cached<Option<usize>>,
}

/// Serves on `addr` with the API's connection bounds (cclaunch.api.*).
pub async fn serve(
    launcher: Arc<Launcher>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let limits = Limits::from(&launcher.config().cclaunch.api);
    let incoming = Incoming::new(listener, limits, format!("operations http://{bound}"));
    let operations = Arc::new(Operations {
        launcher,
        engine_up: Cached::new(ANSWER_TTL),
        running: Cached::new(ANSWER_TTL),
    });
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(operations)
        .layer(TrackCallsLayer);
    let task = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<Activity>();
        if let Err(e) = axum::serve(incoming, app).await {
            tracing::error!(error = %e, "operations endpoint stopped");
        }
    });
    tracing::info!(addr = %bound, "operations endpoint (/healthz, /metrics)");
    Ok((bound, task))
}

async fn healthz(State(operations): State<Arc<Operations>>) -> impl IntoResponse {
    let launcher = Arc::clone(&operations.launcher);
    // Whatever else fails (a check that panicked) is about the runner.
    let runner = launcher.runs_on();
    // None: healthy; else the engine that failed.
    let failed = operations
        .engine_up
        .get(|| async move {
            match launcher.health().await {
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain(&e), "/healthz: the engine does not answer");
                    Some(match e {
                        crate::launcher::Error::Ping { engine, .. } => engine,
                        _ => runner,
                    })
                }
            }
        })
        .await
        .unwrap_or(Some(runner));
    match failed {
        None => (StatusCode::OK, Json(json!({"status": "OK"}))),
        Some(engine) => {
            let (component, reason) = engine.failed_check();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "Service Unavailable",
                    "failed_checks": [{"component": component, "reason": reason}]
                })),
            )
        }
    }
}

async fn metrics(State(operations): State<Arc<Operations>>) -> impl IntoResponse {
    let launcher = Arc::clone(&operations.launcher);
    let running = operations
        .running
        .get(|| async move { launcher.running().await.ok() })
        .await
        .flatten()
        .unwrap_or(0);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(running),
    )
}
