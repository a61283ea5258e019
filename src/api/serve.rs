//! `cclaunch serve`: the API on a Unix socket (mode 0660, a stale socket
//! replaced, a live one refused) and/or TCP, with gRPC health and reflection.
//! TCP is mutual TLS (any address; every client must present a certificate
//! from the configured CA) or, only when asked for by name, plain: chaincode
//! shares the host's network, so plain TCP is open to it even on loopback. All
//! listeners share one launcher and one shutdown: SIGTERM stops accepting on
//! every one, ends following Logs and Wait at once (UNAVAILABLE with
//! `cclaunch-shutting-down` metadata: `builder run` waits for the next
//! sidecar), lets other calls in flight finish and removes the socket; the
//! chaincode keeps running (a sidecar restart must not kill chaincode).
//! Every listener's connections are bounded and timed (`connections`).

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use super::connections::{Incoming, Limits, TrackCallsLayer};
use super::{authority, pb, Api};
use crate::launcher::Launcher;

/// How long a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to listen.
#[derive(Debug, Clone)]
pub enum Listen {
    Unix(PathBuf),
    /// TCP: mutual TLS when `tls` is given; plain otherwise, and then only
    /// with `insecure_plain` (anything that reaches the port drives the
    /// engine: chaincode on the host's network too, loopback included).
    Tcp {
        addr: SocketAddr,
        insecure_plain: bool,
        tls: Option<ServerTls>,
    },
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
            Listen::Tcp {
                addr, tls: Some(_), ..
            } => write!(f, "https://{addr} (mutual TLS)"),
            Listen::Tcp {
                addr, tls: None, ..
            } => write!(f, "http://{addr} (plain TCP, insecure)"),
        }
    }
}

/// The server's side of mutual TLS, as PEM: its certificate chain and key,
/// and the CA every client's certificate must chain to. Clients without a
/// certificate, or with one from another CA, fail the handshake.
#[derive(Clone)]
pub struct ServerTls {
    cert: Vec<u8>,
    /// Never logged, never in an error message.
    key: Vec<u8>,
    client_ca: Vec<u8>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &format_args!("{} bytes", self.cert.len()))
            .field("key", &"<redacted>")
            .field("client_ca", &format_args!("{} bytes", self.client_ca.len()))
            .finish()
    }
}

impl ServerTls {
    /// Reads the three PEM files, checking each holds what it should; an
    /// error names the file at fault (and never quotes the key).
    pub fn from_files(cert: &Path, key: &Path, client_ca: &Path) -> Result<ServerTls, Error> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| Error::TlsRead {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let bad = |what: &'static str, path: &Path, why: String| Error::TlsFile {
            what,
            path: path.to_path_buf(),
            why,
        };
        let certificates = |what: &'static str, path: &Path, pem: &[u8]| {
            let mut count = 0;
            for item in CertificateDer::pem_slice_iter(pem) {
                item.map_err(|e| bad(what, path, format!("not valid PEM ({e})")))?;
                count += 1;
            }
            if count == 0 {
                return Err(bad(
                    what,
                    path,
                    "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
                ));
            }
            Ok(())
        };
        let tls = ServerTls {
            cert: read("server TLS certificate", cert)?,
            key: read("server TLS key", key)?,
            client_ca: read("client CA certificate", client_ca)?,
        };
        certificates("server TLS certificate", cert, &tls.cert)?;
        certificates("client CA certificate", client_ca, &tls.client_ca)?;
        // The parser's own error could quote a line of the key: not shown.
        PrivateKeyDer::from_pem_slice(&tls.key).map_err(|_| {
            bad(
                "server TLS key",
                key,
                "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".into(),
            )
        })?;
        // Certificate and key must belong together; rustls checks that when
        // the acceptor is made, so make one now to fail before serving.
        Server::builder()
            .tls_config(tls.config())
            .map_err(|source| Error::Tls {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                client_ca: client_ca.to_path_buf(),
                why: crate::error_chain(&source),
            })?;
        Ok(tls)
    }

    fn config(&self) -> ServerTlsConfig {
        // client_auth_optional stays false: a certificate is required.
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert, &self.key))
            .client_ca_root(Certificate::from_pem(&self.client_ca))
            .timeout(TLS_HANDSHAKE_TIMEOUT)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("another process serves at {0}; stop it or pick another --socket")]
    SocketInUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("plain TCP on {0} would let anything that reaches the port drive the engine, chaincode included (it shares the host's network, loopback too); serve the Unix socket or mutual TLS (--tls-cert, --tls-key, --tls-client-ca), or accept that with --insecure-plain-tcp")]
    PlainTcp(SocketAddr),
    #[error("nothing to listen on")]
    NoListener,
    #[error("cannot listen on {what}")]
    Listen {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the {what} {}", path.display())]
    TlsRead {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the {what} {}: {why}", path.display())]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("mutual TLS from certificate {}, key {} and client CA {}: {why}", cert.display(), key.display(), client_ca.display())]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        client_ca: PathBuf,
        why: String,
    },
    #[error("gRPC server on {listener} failed")]
    Serve {
        listener: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("gRPC reflection set-up failed: {0}")]
    Reflection(String),
    #[error(transparent)]
    Claim(crate::launcher::Error),
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

/// A listener bound and ready, with the server (TLS or not) that serves it.
enum Bound {
    Unix(tokio::net::UnixListener, PathBuf),
    Tcp(tokio::net::TcpListener, Box<Server>),
}

async fn bind(listen: &Listen) -> Result<Bound, Error> {
    match listen {
        Listen::Unix(path) => Ok(Bound::Unix(bind_unix(path).await?, path.clone())),
        Listen::Tcp {
            addr,
            insecure_plain,
            tls,
        } => {
            if tls.is_none() && !insecure_plain {
                return Err(Error::PlainTcp(*addr));
            }
            let server = match tls {
                // Checked when the ServerTls was made; cannot fail here.
                Some(tls) => Server::builder()
                    .tls_config(tls.config())
                    .map_err(|source| Error::Serve {
                        listener: listen.to_string(),
                        source,
                    })?,
                None => Server::builder(),
            };
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(listen_err(addr))?;
            Ok(Bound::Tcp(listener, Box::new(server)))
        }
    }
}

/// HTTP/2 limits every gRPC listener gets (cclaunch.api.*); connection
/// counts and timeouts are [`Incoming`]'s.
fn limited(server: Server, api: &crate::config::Api) -> Server {
    server
        .max_concurrent_streams(api.max_streams)
        .http2_keepalive_interval(Some(api.keepalive_interval))
        .http2_keepalive_timeout(Some(api.keepalive_timeout))
}

fn remove_sockets(bound: &[Bound]) {
    for b in bound {
        if let Bound::Unix(_, path) = b {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How long calls in flight may go on once shutdown begins.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves on every listener until `shutdown` resolves (or one listener
/// fails), then writes the mirrors' checkpoints, stops accepting on all,
/// lets calls in flight finish (for up to [`DRAIN`]) and removes the socket.
/// Every listener is bound before anything else happens, so a bad one (or
/// another sidecar already serving here) leaves nothing half-started; then
/// the chaincode of an earlier sidecar is resumed.
pub async fn serve(
    launcher: Arc<Launcher>,
    listeners: Vec<Listen>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if listeners.is_empty() {
        return Err(Error::NoListener);
    }
    launcher.claim().map_err(Error::Claim)?;
    let mut bound = Vec::new();
    for listen in &listeners {
        match bind(listen).await {
            Ok(b) => bound.push(b),
            Err(e) => {
                remove_sockets(&bound);
                return Err(e);
            }
        }
    }
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::launcher_server::LauncherServer<Api>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::DESCRIPTOR)
        .build_v1()
        .map_err(|e| Error::Reflection(e.to_string()));
    let reflection = match reflection {
        Ok(r) => r,
        Err(e) => {
            remove_sockets(&bound);
            return Err(e);
        }
    };
    // The peer is ours: first remove what a killed predecessor left
    // half-done, then pick up chaincode started before a restart (its
    // output mirrored again from its checkpoint). An engine that is down now
    // is not fatal: Health and /healthz say so.
    // List and /metrics answer from the engine's events from now on.
    launcher.keep_roster();
    let listed = match launcher.clean_up_leftovers().await {
        Ok(removed) => {
            if !removed.is_empty() {
                tracing::info!(
                    build_containers = removed.build_containers.len(),
                    unstarted_containers = removed.unstarted_containers.len(),
                    "removed what a process that is gone left half-done"
                );
            }
            removed.listed
        }
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), "cannot look for containers a killed process left");
            None
        }
    };
    match launcher.resume_listed(listed).await {
        Ok(resumed) => tracing::info!(chaincodes = resumed.len(), "resumed output mirrors"),
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), "cannot resume mirroring chaincode output")
        }
    }
    let api = Api::new(Arc::clone(&launcher));
    let closing = api.closing();
    let detached = api.detached();
    let routes = Routes::new(health_service)
        .add_service(reflection)
        .add_service(api.into_server());

    let stop = CancellationToken::new();
    let sockets: Vec<PathBuf> = bound
        .iter()
        .filter_map(|b| match b {
            Bound::Unix(_, path) => Some(path.clone()),
            Bound::Tcp(..) => None,
        })
        .collect();
    let settings = launcher.config().cclaunch.api.clone();
    let limits = Limits::from(&settings);
    let servers = bound.into_iter().zip(&listeners).map(|(bound, listen)| {
        let stop = stop.clone();
        let routes = routes.clone();
        let name = listen.to_string();
        let settings = settings.clone();
        tracing::info!(listener = %name, "cclaunch serving");
        if let Listen::Tcp { tls: None, .. } = listen {
            tracing::warn!(listener = %name, "plain TCP (--insecure-plain-tcp): anything that reaches this port, chaincode included, drives the engine");
        }
        async move {
            let signal = stop.clone().cancelled_owned();
            let served = match bound {
                Bound::Unix(listener, _) => {
                    let incoming = Incoming::new(listener, limits, name.clone());
                    limited(Server::builder(), &settings)
                        .layer(TrackCallsLayer)
                        .add_routes(routes)
                        // Stock C-core and grpc-java clients send the socket path
                        // as :authority, which h2 refuses: rewritten to localhost.
                        .serve_with_incoming_shutdown(
                            incoming.map(|conn| conn.map(authority::Connection::new)),
                            signal,
                        )
                        .await
                }
                Bound::Tcp(listener, server) => {
                    let incoming = Incoming::new(listener, limits, name.clone());
                    limited(*server, &settings)
                        .layer(TrackCallsLayer)
                        .add_routes(routes)
                        .serve_with_incoming_shutdown(incoming, signal)
                        .await
                }
            };
            if served.is_err() {
                // One listener down takes the others down with it: a
                // sidecar half-serving is harder to notice than one that exits.
                stop.cancel();
            }
            served.map_err(|source| Error::Serve {
                listener: name,
                source,
            })
        }
    });
    let servers = futures_util::future::join_all(servers);
    tokio::pin!(servers);
    let results = tokio::select! {
        // A listener failed and took the others down.
        results = &mut servers => results,
        () = shutdown => {
            // Checkpoints first; then following Logs and Wait end at once
            // (their clients wait for the next sidecar), so the drain is
            // left with calls that do end.
            launcher.stop_mirrors().await;
            closing.cancel();
            stop.cancel();
            match tokio::time::timeout(DRAIN, &mut servers).await {
                Ok(results) => results,
                Err(_) => {
                    tracing::warn!("calls still open {} s after shutdown began (builds); closing them", DRAIN.as_secs());
                    Vec::new()
                }
            }
        }
    };
    // Starts and stops whose callers went away finish (a Start's mirror is
    // then stopped with the rest just below).
    detached.close();
    if tokio::time::timeout(DRAIN, detached.wait()).await.is_err() {
        tracing::warn!(
            "starts or stops still running {} s after the calls ended; left as they are",
            DRAIN.as_secs()
        );
    }
    launcher.stop_mirrors().await;
    for path in &sockets {
        let _ = std::fs::remove_file(path);
    }
    results.into_iter().collect::<Result<Vec<()>, Error>>()?;
    Ok(())
}
