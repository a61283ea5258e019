//! `cclaunch serve`: the API on a Unix socket (mode 0660, a stale socket
//! replaced, a live one refused) and/or loopback TCP, with gRPC health and
//! reflection. SIGTERM stops accepting and lets in-flight calls finish; the
//! chaincode keeps running (a sidecar restart must not kill chaincode).

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;

use super::{pb, Api};
use crate::launcher::Launcher;

/// Where to listen.
#[derive(Debug, Clone)]
pub enum Listen {
    Unix(PathBuf),
    /// Plain TCP: loopback only, unless forced.
    Tcp {
        addr: SocketAddr,
        force: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("another process serves at {0}; stop it or pick another --socket")]
    SocketInUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("plain TCP on {0} would expose the engine to the network; use a loopback address, or --force-insecure-tcp")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {what}")]
    Listen {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
    #[error("gRPC reflection set-up failed: {0}")]
    Reflection(String),
}

fn listen_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.to_string();
    move |source| Error::Listen { what, source }
}

/// Binds a Unix socket at `path`: a leftover socket nobody answers on is
/// replaced; a live one is left alone.
async fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, Error> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Error::NotASocket(path.to_path_buf()));
        }
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(Error::SocketInUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(listen_err(path.display()))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(listen_err(dir.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(listen_err(path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(listen_err(path.display()))?;
    Ok(listener)
}

/// Serves until `shutdown` resolves, then drains in-flight calls.
pub async fn serve(
    launcher: Arc<Launcher>,
    listen: Listen,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::launcher_server::LauncherServer<Api>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::DESCRIPTOR)
        .build_v1()
        .map_err(|e| Error::Reflection(e.to_string()))?;
    let router = Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(Api::new(launcher).into_server());
    match listen {
        Listen::Unix(path) => {
            let listener = bind_unix(&path).await?;
            tracing::info!(socket = %path.display(), "cclaunch serving");
            let served = router
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
                .await
                .map_err(Error::Serve);
            let _ = std::fs::remove_file(&path);
            served
        }
        Listen::Tcp { addr, force } => {
            if !addr.ip().is_loopback() && !force {
                return Err(Error::NotLoopback(addr));
            }
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(listen_err(addr))?;
            tracing::info!(%addr, "cclaunch serving");
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
                .await
                .map_err(Error::Serve)
        }
    }
}
