//! The operations endpoint, as a Fabric peer has one: `GET /healthz` (200
//! only when the engine answers; Fabric's JSON shape) and `GET /metrics`
//! (Prometheus text).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::connections::{Activity, Incoming, Limits, TrackCallsLayer};
use crate::launcher::Launcher;

/// Serves on `addr` with the API's connection bounds (cclaunch.api.*).
pub async fn serve(
    launcher: Arc<Launcher>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let limits = Limits::from(&launcher.config().cclaunch.api);
    let incoming = Incoming::new(listener, limits, format!("operations http://{bound}"));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(launcher)
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

async fn healthz(State(launcher): State<Arc<Launcher>>) -> impl IntoResponse {
    match launcher.health().await {
        Ok(_) => (StatusCode::OK, Json(json!({"status": "OK"}))),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "Service Unavailable",
                "failed_checks": [{"component": "docker", "reason": format!("failed to ping to Docker daemon: {}", super::status::chain(&e))}]
            })),
        ),
    }
}

async fn metrics(State(launcher): State<Arc<Launcher>>) -> impl IntoResponse {
    let running = launcher
        .list()
        .await
        .map(|c| c.iter().filter(|c| c.running).count())
        .unwrap_or(0);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(running),
    )
}
