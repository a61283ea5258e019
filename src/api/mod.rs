//! The sidecar's gRPC API (`cclaunch.v1.Launcher`), a thin face over the
//! [`Launcher`]: each call is one launcher call, and every launcher error maps
//! to one status code that says what kind of problem it is.

mod authority;
mod cached;
mod connections;
pub mod operations;
pub mod package_dirs;
mod serve;
mod spool;
pub(crate) mod status;

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status, Streaming};

use crate::launcher::{Launcher, Selection, StartRequest as LaunchRequest, TlsMaterial};
use crate::logs::Lines;
use crate::package::{Limits, Package};
use crate::queue;
use crate::runtime::{self, Output};

pub use serve::{serve, Listen, ServerTls};
use spool::Spool;
use status::to_status;

use crate::proto::v1 as pb;

use pb::launcher_server::Launcher as LauncherApi;

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct Api {
    launcher: Arc<Launcher>,
    /// One permit per open Logs stream (`cclaunch.output.maxLogStreams`).
    log_streams: Arc<Semaphore>,
    spool: Spool,
    /// Cancelled when the sidecar shuts down: following calls end at once.
    closing: tokio_util::sync::CancellationToken,
}

impl Api {
    /// The API over `launcher`; makes its upload spool (removing what a
    /// killed sidecar left in it).
    pub fn new(launcher: Arc<Launcher>) -> Api {
        let max_log_streams = launcher.config().cclaunch.output.max_log_streams;
        Api {
            spool: Spool::open(launcher.config()),
            launcher,
            log_streams: Arc::new(Semaphore::new(max_log_streams.min(Semaphore::MAX_PERMITS))),
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
    /// The uploaded bytes, in the spool.
    Spooled { _file: spool::Spooled },
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
/// spooled (see [`spool`]), then validated like any package.
async fn receive_package(
    mut requests: Streaming<pb::BuildRequest>,
    limits: Limits,
    package_dirs: Vec<String>,
    spool: &Spool,
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
            let spooled = spool
                .receive(first, &mut requests)
                .await
                .map_err(|e| e.to_status())?;
            (
                spooled.path().to_path_buf(),
                Received::Spooled { _file: spooled },
                None,
            )
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

/// Build progress a Build caller has not read yet (bytes); lines beyond it
/// are dropped and counted, never stages or the outcome.
const BUILD_STREAM_BUFFER: usize = 256 << 10;

/// Output a Logs caller has not read yet (bytes): beyond it the stream
/// waits for the caller (the engine keeps the log), so a client that does
/// not read costs this much at most.
const LOGS_STREAM_BUFFER: usize = 256 << 10;

/// Queues one Logs line, waiting for room; fails once the client is gone.
async fn send_line(
    tx: &queue::Sender<Result<pb::LogLine, Status>>,
    line: String,
    stream: &str,
) -> Result<(), queue::Closed> {
    let bytes = line.len();
    let line = pb::LogLine {
        line,
        stream: stream.into(),
    };
    tx.send(Ok(line), bytes).await
}

/// Passes build progress on to the Build caller.
struct Forward {
    events: queue::Sender<Result<pb::BuildEvent, Status>>,
    began: std::time::Instant,
}

fn stage_event(stage: &str, began: std::time::Instant) -> pb::BuildEvent {
    pb::BuildEvent {
        event: Some(pb::build_event::Event::Stage(pb::BuildStage {
            stage: stage.to_string(),
            elapsed_ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
        })),
    }
}

impl runtime::Progress for Forward {
    fn line(&self, line: &str) {
        let event = pb::BuildEvent {
            event: Some(pb::build_event::Event::Output(line.to_string())),
        };
        self.events.offer(Ok(event), line.len());
    }

    fn stage(&self, stage: &str) {
        let _ = self.events.push(Ok(stage_event(stage, self.began)));
    }
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
        let (package, received) = receive_package(
            request.into_inner(),
            self.limits(),
            package_dirs,
            &self.spool,
        )
        .await?;
        let (tx, rx) = queue::channel(BUILD_STREAM_BUFFER);
        let launcher = self.launcher.clone();
        tokio::spawn(async move {
            let progress = Forward { events: tx, began };
            runtime::Progress::stage(
                &progress,
                &format!("package {} received and valid", package.id),
            );
            let outcome = tokio::select! {
                outcome = launcher.build(&package, &progress) => outcome,
                // The caller went away: its interest in the build goes with
                // this future (the build is cancelled if nobody else waits).
                () = progress.events.closed() => return,
            };
            drop(received);
            let _ = progress.events.push(match outcome {
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
        let stream = futures_util::stream::unfold(rx, move |mut rx| async move {
            let item = match rx.recv().await? {
                queue::Item::Value(event) => event,
                queue::Item::Dropped(n) => {
                    Ok(stage_event(&crate::launcher::dropped_notice(n), began))
                }
            };
            Some((item, rx))
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
        // A slot first, so a refused stream costs nothing.
        let slot = Arc::clone(&self.log_streams)
            .try_acquire_owned()
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "{} Logs streams are open, as many as cclaunch.output.maxLogStreams allows; close one and try again",
                    self.launcher.config().cclaunch.output.max_log_streams
                ))
            })?;
        let mut output = self
            .launcher
            .logs(&r.package_id, &query)
            .await
            .map_err(|e| to_status(&e))?;
        let max = self.launcher.config().cclaunch.output.max_line_bytes;
        let (tx, rx) = queue::channel(LOGS_STREAM_BUFFER);
        tokio::spawn(async move {
            let _slot = slot;
            let (mut out, mut err) = (Lines::new(max), Lines::new(max));
            let mut pending = Vec::new();
            loop {
                let frame = tokio::select! {
                    frame = output.next() => frame,
                    // The client went away, maybe while the chaincode is
                    // silent: the engine stream (and connection) goes now.
                    () = tx.closed() => return,
                };
                let Some(frame) = frame else { break };
                match frame {
                    Ok(Output::Stdout(bytes)) => {
                        out.push(&bytes, |l| pending.push((l.text, "stdout")))
                    }
                    Ok(Output::Stderr(bytes)) => {
                        err.push(&bytes, |l| pending.push((l.text, "stderr")))
                    }
                    Err(e) => {
                        let _ = tx.push(Err(Status::unavailable(e.to_string())));
                        return;
                    }
                }
                for (line, stream) in pending.drain(..) {
                    if send_line(&tx, line, stream).await.is_err() {
                        return; // the client went away
                    }
                }
            }
            out.finish(|l| pending.push((l.text, "stdout")));
            err.finish(|l| pending.push((l.text, "stderr")));
            for (line, stream) in pending {
                if send_line(&tx, line, stream).await.is_err() {
                    return;
                }
            }
        });
        // `send` waits for room, so nothing is ever dropped here.
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await? {
                    queue::Item::Value(line) => return Some((line, rx)),
                    queue::Item::Dropped(_) => continue,
                }
            }
        });
        Ok(Response::new(until_shutdown(
            Box::pin(stream),
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
