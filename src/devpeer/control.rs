//! `cclaunch devpeer serve`'s control endpoint: plain HTTP/JSON on loopback,
//! so a harness (or curl) can ask which chaincodes registered and send them
//! transactions while it starts chaincode separately.
//!
//! - `GET /chaincodes` → `{"registered": ["label:hash", ...]}`
//! - `POST /invoke` with `{"chaincode", "channel"?, "args": [...], "init"?}`
//!   → `{"status", "message", "payload"}` (payload as UTF-8, lossy)

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{DevPeer, Error};

#[derive(Debug, Deserialize)]
pub struct InvokeRequest {
    pub chaincode: String,
    #[serde(default = "default_channel")]
    pub channel: String,
    pub args: Vec<String>,
    #[serde(default)]
    pub init: bool,
}

fn default_channel() -> String {
    "mychannel".to_string()
}

#[derive(Debug, Serialize, Deserialize)]
pub struct InvokeReply {
    pub status: i32,
    pub message: String,
    pub payload: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Registered {
    pub registered: Vec<String>,
}

/// Serves the control endpoint on `addr` until the task is dropped.
pub async fn serve(
    peer: DevPeer,
    addr: SocketAddr,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), Error> {
    let (listener, bound) = super::bind(addr).await?;
    let app = Router::new()
        .route("/chaincodes", get(chaincodes))
        .route("/invoke", post(invoke))
        .with_state(peer);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "devpeer control endpoint stopped");
        }
    });
    Ok((bound, task))
}

async fn chaincodes(State(peer): State<DevPeer>) -> Json<Registered> {
    Json(Registered {
        registered: peer.registered(),
    })
}

async fn invoke(
    State(peer): State<DevPeer>,
    Json(request): Json<InvokeRequest>,
) -> Result<Json<InvokeReply>, (StatusCode, String)> {
    let args = request.args.into_iter().map(String::into_bytes).collect();
    match peer
        .invoke(
            &request.chaincode,
            &request.channel,
            args,
            request.init,
            Duration::from_secs(30),
        )
        .await
    {
        Ok(r) => Ok(Json(InvokeReply {
            status: r.status,
            message: r.message,
            payload: String::from_utf8_lossy(&r.payload).into_owned(),
        })),
        Err(e @ Error::NotRegistered(_)) => Err((StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ Error::Timeout { .. }) => Err((StatusCode::GATEWAY_TIMEOUT, e.to_string())),
        Err(e) => Err((StatusCode::BAD_GATEWAY, e.to_string())),
    }
}
