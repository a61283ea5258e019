//! Where a verb's work happens: on the engine through a launcher of the
//! CLI's own, or in a running sidecar (`--server`). [`Backend::new`] is the
//! one place that picks; verbs ask the backend and print its answers the same
//! way whichever road was taken.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use tonic::transport::Channel;

use super::ServerArgs;
use crate::client::{self, Address, ClientTls};
use crate::config::Config;
use crate::launcher::{Collected, Launcher, Selection, StartRequest};
use crate::logs::Lines;
use crate::package::Package;
use crate::platform::Platform;
use crate::proto::v1::{self as pb, launcher_client::LauncherClient};
use crate::runtime::docker::Docker;
use crate::runtime::{Output, Progress, LABEL_PACKAGE_ID};

/// How long to wait for the sidecar to answer the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After the chaincode exited, how long `start -f` lets its last lines arrive.
const LAST_LINES: Duration = Duration::from_secs(10);

pub enum Backend {
    Direct(Launcher),
    Sidecar(Sidecar),
}

pub struct Sidecar {
    address: Address,
    client: LauncherClient<Channel>,
    /// This machine's configuration: for reading package files given as
    /// chaincode names (their id) before anything is sent.
    config: Config,
}

/// A build's outcome.
pub struct Built {
    pub image: String,
    pub reused: bool,
    /// Known on the direct road, where start can skip reading the image.
    pub platform: Option<Platform>,
}

/// A start's outcome.
pub struct Started {
    pub container: String,
    /// golang, node or java.
    pub platform: String,
}

/// One line of `ps`.
pub struct Row {
    pub container: String,
    pub state: String,
    pub exit_code: Option<i64>,
    pub package_id: String,
}

/// The engine's answer to a health check, and how it was reached.
pub struct Engine {
    pub reached: String,
    pub version: String,
    pub api_version: String,
}

impl ServerArgs {
    /// The sidecar's address and, for https, this client's TLS material.
    pub(crate) fn target(&self) -> Result<Option<(Address, Option<ClientTls>)>> {
        let Some(text) = self.server.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let address = Address::parse(text)?;
        if !matches!(address, Address::Https(_)) {
            return Ok(Some((address, None)));
        }
        let (ca, cert, key) = match (&self.server_ca, &self.server_cert, &self.server_key) {
            (Some(ca), Some(cert), Some(key)) => (ca, cert, key),
            _ => {
                let missing: Vec<&str> = [
                    (self.server_ca.is_none(), "--server-ca"),
                    (self.server_cert.is_none(), "--server-cert"),
                    (self.server_key.is_none(), "--server-key"),
                ]
                .into_iter()
                .filter_map(|(missing, flag)| missing.then_some(flag))
                .collect();
                anyhow::bail!(
                    "sidecar at {address}: https is mutual TLS and needs {} (or CCLAUNCH_SERVER_CA, _CERT, _KEY)",
                    missing.join(", ")
                );
            }
        };
        let read = |what: &str, path: &Path| {
            std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
        };
        let tls = ClientTls {
            ca: read("the sidecar's CA certificate (--server-ca)", ca)?,
            cert: read("the client certificate (--server-cert)", cert)?,
            key: read("the client key (--server-key)", key)?,
            domain: None,
        };
        Ok(Some((address, Some(tls))))
    }
}

/// A gRPC status from the sidecar, as the CLI tells it.
#[derive(Debug)]
struct Refused(tonic::Status);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = &self.0;
        if status.message().is_empty() {
            write!(f, "{}", status.code().description())
        } else {
            f.write_str(status.message())
        }
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

impl Backend {
    /// The sidecar when `server` names one, else a launcher on the engine.
    pub async fn new(server: &ServerArgs, config: Config) -> Result<Backend> {
        match server.target()? {
            Some((address, tls)) => {
                let client = client::connect(&address, tls.as_ref(), CONNECT_TIMEOUT).await?;
                Ok(Backend::Sidecar(Sidecar {
                    address,
                    client,
                    config,
                }))
            }
            None => {
                let docker = Docker::connect(&config.vm.endpoint)
                    .await?
                    .with_timeouts((&config.cclaunch.engine).into());
                Ok(Backend::Direct(Launcher::new(Arc::new(docker), config)))
            }
        }
    }

    /// For verbs that make or remove chaincode containers: on the engine
    /// directly, refused while a sidecar serves the same peer (it mirrors
    /// and checkpoints that peer's chaincode; go through it instead).
    pub fn exclusive(&self) -> Result<()> {
        match self {
            Backend::Direct(launcher) => Ok(launcher.check_unserved()?),
            Backend::Sidecar(_) => Ok(()),
        }
    }

    pub fn config(&self) -> &Config {
        match self {
            Backend::Direct(launcher) => launcher.config(),
            Backend::Sidecar(sidecar) => &sidecar.config,
        }
    }

    /// Builds a package, showing build output on `progress`. The sidecar gets
    /// the package's bytes: it need not share this machine's disk.
    pub async fn build(&self, package: &Package, progress: &dyn Progress) -> Result<Built> {
        match self {
            Backend::Direct(launcher) => {
                let built = launcher.build(package, progress).await?;
                Ok(Built {
                    image: built.image,
                    reused: built.reused,
                    platform: Some(built.platform),
                })
            }
            Backend::Sidecar(sidecar) => sidecar.build(package, progress).await,
        }
    }

    pub async fn start(&self, request: StartRequest) -> Result<Started> {
        match self {
            Backend::Direct(launcher) => {
                let started = launcher.start(request).await?;
                Ok(Started {
                    container: started.container,
                    platform: started.platform.to_string(),
                })
            }
            Backend::Sidecar(sidecar) => {
                let tls = request.tls.unwrap_or_else(|| crate::launcher::TlsMaterial {
                    client_cert: Vec::new(),
                    client_key: Vec::new(),
                    root_cert: Vec::new(),
                });
                let started = sidecar
                    .client
                    .clone()
                    .start(pb::StartRequest {
                        package_id: request.package_id,
                        peer_address: request.peer_address,
                        client_cert: tls.client_cert,
                        client_key: tls.client_key,
                        root_cert: tls.root_cert,
                        msp_id: request.msp_id.unwrap_or_default(),
                        extra_env: request.extra_env,
                        image_of: request.image_of.unwrap_or_default(),
                    })
                    .await
                    .map_err(|s| sidecar.refused(s))?
                    .into_inner();
                Ok(Started {
                    container: started.container,
                    platform: started.r#type,
                })
            }
        }
    }

    /// Stops a chaincode; its container's name.
    pub async fn stop(&self, package_id: &str) -> Result<String> {
        match self {
            Backend::Direct(launcher) => {
                launcher.stop(package_id).await?;
                Ok(launcher.names(package_id)?.container)
            }
            Backend::Sidecar(sidecar) => Ok(sidecar
                .client
                .clone()
                .stop(reference(package_id))
                .await
                .map_err(|s| sidecar.refused(s))?
                .into_inner()
                .container),
        }
    }

    /// Blocks until the chaincode exits; its exit code.
    pub async fn wait(&self, package_id: &str) -> Result<i64> {
        match self {
            Backend::Direct(launcher) => Ok(launcher.wait(package_id).await?),
            Backend::Sidecar(sidecar) => Ok(sidecar
                .client
                .clone()
                .wait(reference(package_id))
                .await
                .map_err(|s| sidecar.refused(s))?
                .into_inner()
                .exit_code),
        }
    }

    /// `start -f`: stays until the chaincode exits, its output mirrored (the
    /// direct road's launcher logs it to stderr; the sidecar's lines are
    /// streamed to `line`); the exit code.
    pub async fn follow(&self, package_id: &str, line: fn(&str)) -> Result<i64> {
        match self {
            Backend::Direct(launcher) => {
                let code = launcher.wait(package_id).await?;
                launcher.output_closed(package_id).await;
                Ok(code)
            }
            Backend::Sidecar(sidecar) => {
                let mut lines = sidecar.logs(package_id, true, 0, 0).await?;
                let address = sidecar.address.clone();
                let printer = tokio::spawn(async move {
                    while let Some(next) = lines.next().await {
                        match next {
                            Ok(l) => line(&l.line),
                            Err(status) => {
                                eprintln!(
                                    "warning: sidecar at {address}: output stream ended: {}",
                                    Refused(status)
                                );
                                break;
                            }
                        }
                    }
                });
                let code = self.wait(package_id).await;
                if code.is_ok() {
                    let _ = tokio::time::timeout(LAST_LINES, printer).await;
                } else {
                    printer.abort();
                }
                code
            }
        }
    }

    /// The chaincode's output, line by line; `tail` is a line count or "all".
    pub async fn logs(
        &self,
        package_id: &str,
        follow: bool,
        tail: &str,
        mut line: impl FnMut(&str),
    ) -> Result<()> {
        let tail = match tail {
            "all" => None,
            n => Some(
                n.parse::<u64>()
                    .map_err(|_| anyhow::anyhow!("--tail {n:?}: give a line count or \"all\""))?,
            ),
        };
        match self {
            Backend::Direct(launcher) => {
                let max = launcher.config().cclaunch.output.max_line_bytes;
                let query = crate::runtime::LogQuery {
                    follow,
                    tail,
                    since: 0,
                    timestamps: false,
                };
                let mut output = launcher.logs(package_id, &query).await?;
                let (mut out, mut err) = (Lines::new(max), Lines::new(max));
                let mut print = |l: crate::logs::Line| line(&l.text);
                while let Some(frame) = output.next().await {
                    match frame? {
                        Output::Stdout(bytes) => out.push(&bytes, &mut print),
                        Output::Stderr(bytes) => err.push(&bytes, &mut print),
                    }
                }
                out.finish(&mut print);
                err.finish(&mut print);
                Ok(())
            }
            Backend::Sidecar(sidecar) => {
                // The API's tail counts lines with 0 meaning all of them, so
                // "none of the old lines" is asked for as "since now".
                let (tail, since) = match tail {
                    None => (0, 0),
                    Some(0) if !follow => return Ok(()),
                    Some(0) => (
                        0,
                        i64::try_from(crate::logs::unix_now().as_secs()).unwrap_or(i64::MAX),
                    ),
                    Some(n) => (u32::try_from(n).unwrap_or(u32::MAX), 0),
                };
                let mut lines = sidecar.logs(package_id, follow, tail, since).await?;
                while let Some(next) = lines.next().await {
                    line(&next.map_err(|s| sidecar.refused(s))?.line);
                }
                Ok(())
            }
        }
    }

    /// cclaunch's chaincode containers.
    pub async fn list(&self) -> Result<Vec<Row>> {
        match self {
            Backend::Direct(launcher) => Ok(launcher
                .list()
                .await?
                .into_iter()
                .map(|c| Row {
                    package_id: c.labels.get(LABEL_PACKAGE_ID).cloned().unwrap_or_default(),
                    container: c.name,
                    state: c.status,
                    exit_code: c.exit_code,
                })
                .collect()),
            Backend::Sidecar(sidecar) => Ok(sidecar
                .client
                .clone()
                .list(pb::ListRequest {})
                .await
                .map_err(|s| sidecar.refused(s))?
                .into_inner()
                .chaincodes
                .into_iter()
                .map(|c| Row {
                    container: c.container,
                    state: c.state,
                    exit_code: c.exit_code,
                    package_id: c.package_id,
                })
                .collect()),
        }
    }

    pub async fn gc(&self, selection: Selection) -> Result<Collected> {
        match self {
            Backend::Direct(launcher) => Ok(launcher.gc(&selection).await?),
            Backend::Sidecar(sidecar) => {
                let request = match selection {
                    Selection::Only(package_ids) => pb::GcRequest {
                        package_ids,
                        keep: Vec::new(),
                    },
                    Selection::AllBut(keep) => pb::GcRequest {
                        package_ids: Vec::new(),
                        keep,
                    },
                };
                let collected = sidecar
                    .client
                    .clone()
                    .gc(request)
                    .await
                    .map_err(|s| sidecar.refused(s))?
                    .into_inner();
                Ok(Collected {
                    containers: collected.containers,
                    images: collected.images,
                })
            }
        }
    }

    pub async fn health(&self) -> Result<Engine> {
        match self {
            Backend::Direct(launcher) => {
                let info = launcher
                    .health()
                    .await
                    .context("failed to ping to Docker daemon")?;
                Ok(Engine {
                    reached: launcher.config().vm.endpoint.clone(),
                    version: info.version,
                    api_version: info.api_version,
                })
            }
            Backend::Sidecar(sidecar) => {
                let info = sidecar
                    .client
                    .clone()
                    .health(pb::HealthRequest {})
                    .await
                    .map_err(|s| sidecar.refused(s))?
                    .into_inner();
                Ok(Engine {
                    reached: format!("via sidecar at {}", sidecar.address),
                    version: info.engine_version,
                    api_version: info.api_version,
                })
            }
        }
    }
}

fn reference(package_id: &str) -> pb::ChaincodeRef {
    pb::ChaincodeRef {
        package_id: package_id.to_string(),
    }
}

impl Sidecar {
    fn refused(&self, status: tonic::Status) -> anyhow::Error {
        // A status with a local source is the connection failing, not the
        // sidecar answering. Over mutual TLS a refused client certificate
        // shows up that way, on the first call rather than at connect.
        let dropped = std::error::Error::source(&status).is_some();
        let error = anyhow::Error::new(Refused(status));
        let error = if dropped && matches!(self.address, Address::Https(_)) {
            error.context(
                "the connection failed (mutual TLS: is --server-cert signed by the CA the \
                 sidecar trusts, its --tls-client-ca?)",
            )
        } else {
            error
        };
        error.context(format!("sidecar at {}", self.address))
    }

    async fn logs(
        &self,
        package_id: &str,
        follow: bool,
        tail: u32,
        since: i64,
    ) -> Result<tonic::Streaming<pb::LogLine>> {
        Ok(self
            .client
            .clone()
            .logs(pb::LogsRequest {
                package_id: package_id.to_string(),
                follow,
                tail,
                since,
            })
            .await
            .map_err(|s| self.refused(s))?
            .into_inner())
    }

    async fn build(&self, package: &Package, progress: &dyn Progress) -> Result<Built> {
        let done = client::build(&mut self.client.clone(), &package.file, progress)
            .await
            .map_err(|e| match e {
                client::BuildError::Status(status) => self.refused(status),
                other => anyhow::Error::new(other).context(format!("sidecar at {}", self.address)),
            })?;
        if done.package_id != package.id {
            anyhow::bail!(
                "sidecar at {}: built {} but {} is {}",
                self.address,
                done.package_id,
                package.file.display(),
                package.id
            );
        }
        Ok(Built {
            image: done.image,
            reused: done.reused,
            platform: Platform::from_type(&done.r#type).ok(),
        })
    }
}
