//! The sidecar's gRPC API (`cclaunch.v1.Launcher`), a thin face over the
//! [`Launcher`]: each call is one launcher call, and every launcher error maps
//! to one status code that says what kind of problem it is.

mod authority;
mod cached;
mod connections;
pub mod operations;
pub mod package_dirs;
mod serve;
pub(crate) mod status;

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::launcher::{Launcher, Selection, StartRequest as LaunchRequest, TlsMaterial};
use crate::logs::Lines;
use crate::package::{Limits, Package};
use crate::runtime::{self, Output};

pub use serve::{serve, Listen, ServerTls};
use status::to_status;

pub mod pb {
    tonic::include_proto!("cclaunch.v1");
    /// For gRPC reflection.
    pub const DESCRIPTOR: &[u8] = tonic::include_file_descriptor_set!("cclaunch_v1_descriptor");
}

use pb::launcher_server::Launcher as LauncherApi;

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct Api {
    launcher: Arc<Launcher>,
    /// Cancelled when the sidecar shuts down: following calls end at once.
    closing: tokio_util::sync::CancellationToken,
}

impl Api {
    pub fn new(launcher: Arc<Launcher>) -> Api {
        Api {
            launcher,
            closing: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Cancel it to end every following Logs and Wait with
    /// [`status::shutting_down`] (the sidecar is going away, the chaincode
    /// is not), so shutdown need not wait for them.
    pub fn closing(&self) -> tokio_util::sync::CancellationToken {
        self.closing.clone()
    }

    pub fn into_server(self) -> pb::launcher_server::LauncherServer<Api> {
        // Packages arrive in chunks, so the message limit only bounds a chunk.
        pb::launcher_server::LauncherServer::new(self)
    }

    fn limits(&self) -> Limits {
        Limits {
            max_unpacked_bytes: self.launcher.config().cclaunch.package.max_unpacked_bytes,
        }
    }
}

/// What a received package is read from, held (not read) until its build
/// ends: dropping it closes the descriptor or removes the spool file.
enum Received {
    /// A file in `cclaunch.api.packageDirs`, read through its descriptor.
    Opened { _file: package_dirs::Opened },
    /// The uploaded bytes, in a private temp file.
    Spool { _file: tempfile::TempPath },
}

fn refused(refusal: package_dirs::Refused) -> Status {
    use package_dirs::Refused;
    let message = refusal.to_string();
    match refusal {
        Refused::Off | Refused::Outside { .. } => Status::permission_denied(message),
        Refused::NotAFile { .. } => Status::invalid_argument(message),
        Refused::Open { source, .. } => {
            let message = format!("{message}: {}", source.kind());
            match source.kind() {
                std::io::ErrorKind::PermissionDenied => Status::permission_denied(message),
                _ => Status::internal(message),
            }
        }
    }
}

/// Receives a package: a path inside `cclaunch.api.packageDirs`, or chunks
/// spooled to a private temp file (bounded by the package cap), then
/// validated like any package.
async fn receive_package(
    mut requests: Streaming<pb::BuildRequest>,
    limits: Limits,
    package_dirs: Vec<String>,
) -> Result<(Package, Received), Status> {
    use pb::build_request::Source;
    let first = requests
        .message()
        .await?
        .and_then(|r| r.source)
        .ok_or_else(|| Status::invalid_argument("Build needs a path or the package bytes"))?;
    let (path, received, given) = match first {
        Source::Path(requested) => {
            let opened = tokio::task::spawn_blocking({
                let requested = requested.clone();
                move || package_dirs::open(&package_dirs, &requested)
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(refused)?;
            (
                opened.path(),
                Received::Opened { _file: opened },
                Some(requested),
            )
        }
        Source::Chunk(first) => {
            let file = tempfile::NamedTempFile::new()
                .map_err(|e| Status::internal(format!("cannot spool the package: {e}")))?;
            let (std_file, temp) = file.into_parts();
            let mut out = tokio::fs::File::from_std(std_file);
            let mut size = first.len() as u64;
            out.write_all(&first)
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
            while let Some(request) = requests.message().await? {
                match request.source {
                    Some(Source::Chunk(chunk)) => {
                        size += chunk.len() as u64;
                        if size > limits.max_unpacked_bytes {
                            return Err(Status::invalid_argument(format!(
                                "package is larger than {} bytes (cclaunch.package.maxUnpackedBytes)",
                                limits.max_unpacked_bytes
                            )));
                        }
                        out.write_all(&chunk)
                            .await
                            .map_err(|e| Status::internal(e.to_string()))?;
                    }
                    _ => {
                        return Err(Status::invalid_argument(
                            "after package bytes only more chunks may follow",
                        ))
                    }
                }
            }
            out.flush()
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
            (temp.to_path_buf(), Received::Spool { _file: temp }, None)
        }
    };
    let package = tokio::task::spawn_blocking({
        let path = path.clone();
        move || Package::open(&path, limits)
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
    .map_err(|e| {
        let status = to_status(&crate::launcher::Error::Package(e));
        match &given {
            // The package's errors name the file read, here the descriptor:
            // say the path the caller gave instead.
            Some(given) => Status::new(
                status.code(),
                status.message().replace(
                    &path.display().to_string(),
                    &crate::excerpt::quote(given).to_string(),
                ),
            ),
            None => status,
        }
    })?;
    Ok((package, received))
}

/// Passes build progress on to the Build caller.
struct Forward {
    events: mpsc::UnboundedSender<Result<pb::BuildEvent, Status>>,
    began: std::time::Instant,
}

impl Forward {
    fn send(&self, event: pb::build_event::Event) {
        let _ = self.events.send(Ok(pb::BuildEvent { event: Some(event) }));
    }
}

impl runtime::Progress for Forward {
    fn line(&self, line: &str) {
        self.send(pb::build_event::Event::Output(line.to_string()));
    }

    fn stage(&self, stage: &str) {
        self.send(pb::build_event::Event::Stage(pb::BuildStage {
            stage: stage.to_string(),
            elapsed_ms: u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX),
        }));
    }
}

/// A following stream that ends with [`status::shutting_down`] as soon as
/// `closing` is cancelled (dropping `stream` frees what feeds it).
fn until_shutdown<T: Send + 'static>(
    stream: Stream_<T>,
    closing: tokio_util::sync::CancellationToken,
) -> Stream_<T> {
    Box::pin(futures_util::stream::unfold(
        Some((stream, closing)),
        |state| async move {
            let (mut stream, closing) = state?;
            tokio::select! {
                item = stream.next() => item.map(|item| (item, Some((stream, closing)))),
                () = closing.cancelled() => Some((Err(status::shutting_down()), None)),
            }
        },
    ))
}

#[tonic::async_trait]
impl LauncherApi for Api {
    type BuildStream = Stream_<pb::BuildEvent>;
    type LogsStream = Stream_<pb::LogLine>;

    async fn build(
        &self,
        request: Request<Streaming<pb::BuildRequest>>,
    ) -> Result<Response<Self::BuildStream>, Status> {
        let began = std::time::Instant::now();
        let package_dirs = self.launcher.config().cclaunch.api.package_dirs.clone();
        let (package, received) =
            receive_package(request.into_inner(), self.limits(), package_dirs).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let launcher = self.launcher.clone();
        tokio::spawn(async move {
            let progress = Forward {
                events: tx.clone(),
                began,
            };
            runtime::Progress::stage(
                &progress,
                &format!("package {} received and valid", package.id),
            );
            let outcome = launcher.build(&package, &progress).await;
            drop(received);
            let _ = tx.send(match outcome {
                Ok(built) => Ok(pb::BuildEvent {
                    event: Some(pb::build_event::Event::Done(pb::BuildDone {
                        package_id: built.package_id,
                        image: built.image,
                        reused: built.reused,
                        r#type: built.platform.to_string(),
                    })),
                }),
                Err(e) => Err(to_status(&e)),
            });
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn start(
        &self,
        request: Request<pb::StartRequest>,
    ) -> Result<Response<pb::StartResponse>, Status> {
        let r = request.into_inner();
        let tls = match (
            r.client_cert.is_empty(),
            r.client_key.is_empty(),
            r.root_cert.is_empty(),
        ) {
            (true, true, true) => None,
            (false, false, false) => Some(TlsMaterial {
                client_cert: r.client_cert,
                client_key: r.client_key,
                root_cert: r.root_cert,
            }),
            _ => {
                return Err(Status::invalid_argument(
                    "give client_cert, client_key and root_cert together, or none for TLS off",
                ))
            }
        };
        if r.peer_address.is_empty() {
            return Err(Status::invalid_argument("peer_address is required"));
        }
        let started = self
            .launcher
            .start(LaunchRequest {
                package_id: r.package_id,
                platform: None,
                peer_address: r.peer_address,
                tls,
                msp_id: (!r.msp_id.is_empty()).then_some(r.msp_id),
                extra_env: r.extra_env,
                image_of: (!r.image_of.is_empty()).then_some(r.image_of),
            })
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::StartResponse {
            container: started.container,
            r#type: started.platform.to_string(),
        }))
    }

    async fn stop(
        &self,
        request: Request<pb::ChaincodeRef>,
    ) -> Result<Response<pb::StopResponse>, Status> {
        let id = request.into_inner().package_id;
        self.launcher.stop(&id).await.map_err(|e| to_status(&e))?;
        let container = self
            .launcher
            .names(&id)
            .map_err(|e| to_status(&e))?
            .container;
        Ok(Response::new(pb::StopResponse { container }))
    }

    async fn wait(
        &self,
        request: Request<pb::ChaincodeRef>,
    ) -> Result<Response<pb::WaitResponse>, Status> {
        let package_id = request.into_inner().package_id;
        let exit_code = tokio::select! {
            waited = self.launcher.wait(&package_id) => {
                waited.map_err(|e| to_status(&e))?
            }
            () = self.closing.cancelled() => return Err(status::shutting_down()),
        };
        Ok(Response::new(pb::WaitResponse { exit_code }))
    }

    async fn logs(
        &self,
        request: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let r = request.into_inner();
        let query = runtime::LogQuery {
            follow: r.follow,
            tail: (r.tail != 0).then_some(u64::from(r.tail)),
            since: r.since,
            timestamps: false,
        };
        let mut output = self
            .launcher
            .logs(&r.package_id, &query)
            .await
            .map_err(|e| to_status(&e))?;
        let max = self.launcher.config().cclaunch.output.max_line_bytes;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let (mut out, mut err) = (Lines::new(max), Lines::new(max));
            let mut pending = Vec::new();
            while let Some(frame) = output.next().await {
                match frame {
                    Ok(Output::Stdout(bytes)) => {
                        out.push(&bytes, |l| pending.push((l.text, "stdout")))
                    }
                    Ok(Output::Stderr(bytes)) => {
                        err.push(&bytes, |l| pending.push((l.text, "stderr")))
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Status::unavailable(e.to_string()))).await;
                        return;
                    }
                }
                for (line, stream) in pending.drain(..) {
                    if tx
                        .send(Ok(pb::LogLine {
                            line,
                            stream: stream.into(),
                        }))
                        .await
                        .is_err()
                    {
                        return; // the client went away
                    }
                }
            }
            out.finish(|l| pending.push((l.text, "stdout")));
            err.finish(|l| pending.push((l.text, "stderr")));
            for (line, stream) in pending {
                let _ = tx
                    .send(Ok(pb::LogLine {
                        line,
                        stream: stream.into(),
                    }))
                    .await;
            }
        });
        Ok(Response::new(until_shutdown(
            Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)),
            self.closing.clone(),
        )))
    }

    async fn list(
        &self,
        _: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let containers = self.launcher.list().await.map_err(|e| to_status(&e))?;
        let chaincodes = containers
            .into_iter()
            .map(|c| pb::Chaincode {
                package_id: c
                    .labels
                    .get(runtime::LABEL_PACKAGE_ID)
                    .cloned()
                    .unwrap_or_default(),
                container: c.name,
                state: c.status,
                running: c.running,
                exit_code: c.exit_code,
            })
            .collect();
        Ok(Response::new(pb::ListResponse { chaincodes }))
    }

    async fn health(
        &self,
        _: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        let info = self.launcher.health().await.map_err(|e| {
            Status::unavailable(format!(
                "failed to ping to Docker daemon: {}",
                status::chain(&e)
            ))
        })?;
        Ok(Response::new(pb::HealthResponse {
            engine_version: info.version,
            api_version: info.api_version,
        }))
    }

    async fn gc(
        &self,
        request: Request<pb::GcRequest>,
    ) -> Result<Response<pb::GcResponse>, Status> {
        let r = request.into_inner();
        let selection = if r.package_ids.is_empty() {
            Selection::AllBut(r.keep)
        } else {
            Selection::Only(r.package_ids)
        };
        let collected = self
            .launcher
            .gc(&selection)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::GcResponse {
            containers: collected.containers,
            images: collected.images,
        }))
    }
}
