//! The sidecar's gRPC API (`cclaunch.v1.Launcher`), a thin face over the
//! [`Launch`] interface of its [`Launcher`]: each call is one launcher call,
//! converted by [`crate::wire`], and every error's kind is its status code.

mod authority;
mod cached;
mod connections;
mod detached;
pub mod operations;
pub mod package_dirs;
mod serve;
mod spool;
mod starts;

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status, Streaming};

use crate::launch::{Launch, Progress};
use crate::launcher::Launcher;
use crate::package::{Limits, Package};
use crate::queue;
use crate::wire;

pub use serve::{serve, Listen, ServerTls};
use spool::Spool;

use crate::proto::v1 as pb;

use pb::launcher_server::Launcher as LauncherApi;

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct Api {
    launcher: Arc<Launcher>,
    /// The same launcher, as every face calls it.
    launch: Arc<dyn Launch>,
    /// One permit per open Logs stream (`cclaunch.output.maxLogStreams`).
    log_streams: Arc<Semaphore>,
    spool: Spool,
    /// Cancelled when the sidecar shuts down: following calls end at once.
    closing: tokio_util::sync::CancellationToken,
    /// Starts and stops running on their own, waited for at shutdown.
    detached: detached::Detached,
    starts: starts::Starts,
}

impl Api {
    /// The API over `launcher`; makes its upload spool (removing what a
    /// killed sidecar left in it).
    pub fn new(launcher: Arc<Launcher>) -> Api {
        let max_log_streams = launcher.config().cclaunch.output.max_log_streams;
        Api {
            spool: Spool::open(launcher.config()),
            launch: launcher.clone(),
            launcher,
            log_streams: Arc::new(Semaphore::new(max_log_streams.min(Semaphore::MAX_PERMITS))),
            closing: tokio_util::sync::CancellationToken::new(),
            detached: detached::Detached::new(detached::AT_MOST),
            starts: starts::Starts::default(),
        }
    }

    /// The starts and stops whose callers went away: shutdown waits for
    /// them (bounded), so a stop is not cut between its stop and its remove.
    pub fn detached(&self) -> tokio_util::task::TaskTracker {
        self.detached.tracker()
    }

    /// Cancel it to end every following Logs and Wait with
    /// [`wire::shutting_down`] (the sidecar is going away, the chaincode
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
        let status = wire::status(&crate::launcher::Error::Package(e).into());
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

/// A following stream that ends with [`wire::shutting_down`] as soon as
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
                () = closing.cancelled() => Some((Err(wire::shutting_down()), None)),
            }
        },
    ))
}

/// Runs a start or stop to its end even when its caller goes away (see
/// [`detached`]); its outcome goes to the caller if it is still there.
async fn detached<T: Send + 'static>(
    detached: &detached::Detached,
    call: &str,
    chaincode: &str,
    work: impl std::future::Future<Output = Result<T, crate::launch::Error>> + Send + 'static,
) -> Result<T, Status> {
    match detached.spawn(call, chaincode, work)?.await {
        Ok(outcome) => outcome.map_err(|e| wire::status(&e)),
        Err(e) => Err(ended_abnormally(call, chaincode, e)),
    }
}

/// A detached start or stop that panicked (or was cancelled).
fn ended_abnormally(call: &str, chaincode: &str, e: tokio::task::JoinError) -> Status {
    Status::internal(format!(
        "the {call} of chaincode {chaincode} ended abnormally: {e}"
    ))
}

/// Build progress a Build caller has not read yet (bytes); lines beyond it
/// are dropped and counted, never stages or the outcome.
const BUILD_STREAM_BUFFER: usize = 256 << 10;

/// Output a Logs caller has not read yet (bytes): beyond it the stream
/// waits for the caller (the engine keeps the log), so a client that does
/// not read costs this much at most.
const LOGS_STREAM_BUFFER: usize = 256 << 10;

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

impl Progress for Forward {
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
        let launch = self.launch.clone();
        tokio::spawn(async move {
            let progress = Forward { events: tx, began };
            Progress::stage(
                &progress,
                &format!("package {} received and valid", package.id),
            );
            let outcome = tokio::select! {
                outcome = launch.build(&package, &progress) => outcome,
                // The caller went away: its interest in the build goes with
                // this future (the build is cancelled if nobody else waits).
                () = progress.events.closed() => return,
            };
            drop(received);
            let _ = progress.events.push(match outcome {
                Ok(built) => Ok(pb::BuildEvent {
                    event: Some(pb::build_event::Event::Done(wire::built(built))),
                }),
                Err(e) => Err(wire::status(&e)),
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
        let started = self
            .starts
            .start(self.launch.clone(), &self.detached, request.into_inner())
            .await?;
        Ok(Response::new(started))
    }

    async fn stop(
        &self,
        request: Request<pb::ChaincodeRef>,
    ) -> Result<Response<pb::StopResponse>, Status> {
        let id = request.into_inner().package_id;
        self.starts.forget(&id);
        let launch = self.launch.clone();
        let chaincode = id.clone();
        let container = detached(&self.detached, "stop", &chaincode, async move {
            launch.stop(&id).await
        })
        .await?;
        Ok(Response::new(pb::StopResponse { container }))
    }

    async fn wait(
        &self,
        request: Request<pb::ChaincodeRef>,
    ) -> Result<Response<pb::WaitResponse>, Status> {
        let package_id = request.into_inner().package_id;
        let exit_code = tokio::select! {
            waited = self.launch.wait(&package_id) => {
                waited.map_err(|e| wire::status(&e))?
            }
            () = self.closing.cancelled() => return Err(wire::shutting_down()),
        };
        Ok(Response::new(pb::WaitResponse { exit_code }))
    }

    async fn logs(
        &self,
        request: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let r = request.into_inner();
        let query = wire::from_logs_request(&r);
        // A slot first, so a refused stream costs nothing.
        let slot = Arc::clone(&self.log_streams)
            .try_acquire_owned()
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "{} Logs streams are open, as many as cclaunch.output.maxLogStreams allows; close one and try again",
                    self.launcher.config().cclaunch.output.max_log_streams
                ))
            })?;
        let mut lines = self
            .launch
            .logs(&r.package_id, query)
            .await
            .map_err(|e| wire::status(&e))?;
        let (tx, rx) = queue::channel(LOGS_STREAM_BUFFER);
        tokio::spawn(async move {
            let _slot = slot;
            loop {
                let line = tokio::select! {
                    line = lines.next() => line,
                    // The client went away, maybe while the chaincode is
                    // silent: the engine stream (and connection) goes now.
                    () = tx.closed() => return,
                };
                let Some(line) = line else { return };
                let line = match line {
                    Ok(line) => wire::line(line),
                    Err(e) => {
                        let _ = tx.push(Err(wire::status(&e)));
                        return;
                    }
                };
                let bytes = line.line.len();
                if tx.send(Ok(line), bytes).await.is_err() {
                    return; // the client went away
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
        let chaincodes = self.launch.list().await.map_err(|e| wire::status(&e))?;
        Ok(Response::new(pb::ListResponse {
            chaincodes: chaincodes.into_iter().map(wire::chaincode).collect(),
        }))
    }

    async fn health(
        &self,
        _: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        let health = self.launch.health().await.map_err(|e| wire::status(&e))?;
        Ok(Response::new(pb::HealthResponse {
            engine_version: health.version,
            api_version: health.api_version,
            engine: health.engine,
        }))
    }

    async fn gc(
        &self,
        request: Request<pb::GcRequest>,
    ) -> Result<Response<pb::GcResponse>, Status> {
        let selection = wire::from_gc_request(request.into_inner());
        let collected = self
            .launch
            .gc(&selection)
            .await
            .map_err(|e| wire::status(&e))?;
        Ok(Response::new(wire::collected(collected)))
    }
}
