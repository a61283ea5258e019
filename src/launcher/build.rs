//! Build: package → image. Reuses an existing image of the Fabric name;
//! otherwise runs the platform's build container (see `job`) and builds the
//! runtime image from its Dockerfile and the build output (`binpackage.tar`).

use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::job::{self, Ended, Job};
use super::{caches, reuse};
use super::{engine, image_label, Built, Error, Launcher, LABEL_BUILD};
use crate::config::Config;
use crate::package::{self, Package};
use crate::platform::{golang, Platform};
use crate::queue;
use crate::runtime::{self, ByteStream, Engine, Progress, Push};

/// Build output lines kept for the error report of a failed build.
const KEEP_BUILD_LINES: usize = 100;

/// Progress a caller has not taken yet, per caller (bytes); more is dropped
/// (and counted) rather than held up or buffered without end.
const CALLER_BUFFER: usize = 256 << 10;

/// Used if `cclaunch.build.timeout` is unreadable (it is checked on load).
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// What a caller is told when build output lines did not reach it.
pub fn dropped_notice(lines: u64) -> String {
    format!("{lines} build output lines dropped: client too slow")
}

/// A build's progress, as every caller of it receives it.
#[derive(Debug)]
enum Event {
    Line(String),
    Stage(String),
}

type Listeners = Arc<Mutex<Vec<queue::Sender<Event>>>>;

/// A build's outcome as its waiters see it: `None` while it runs, then its
/// result (an error shared, with its kind).
type Outcome = watch::Receiver<Option<Result<Made, Arc<Error>>>>;

/// How a build task made its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    Built,
    /// From an image already there (see `reuse`).
    Found,
}

/// A build under way, shared by everyone who asked for its image. It runs
/// in a task of its own, so a waiter that stays keeps it going when the
/// first caller leaves; once every caller has gone it is cancelled.
pub(super) struct Flight {
    interest: Weak<Interest>,
    outcome: Outcome,
    listeners: Listeners,
}

pub(super) type Flights = Arc<Mutex<std::collections::HashMap<String, Flight>>>;

/// Held by each caller of a build; the last one dropped cancels it.
struct Interest(CancellationToken);

impl Drop for Interest {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A caller's place in a build.
enum Role {
    /// Started it: hears its result first-hand.
    Leader(oneshot::Receiver<Result<Made, Arc<Error>>>),
    /// Joined it: hears its outcome, shared.
    Waiter(Outcome),
}

/// A caller in a build: its role, the build's progress for it, and its
/// share of interest in the build going on.
struct Joined {
    role: Role,
    events: queue::Receiver<Event>,
    _interest: Arc<Interest>,
}

impl Launcher {
    pub async fn build(&self, package: &Package, progress: &dyn Progress) -> Result<Built, Error> {
        let started = std::time::Instant::now();
        let result = match self.build_or_reuse(package, progress).await {
            Ok(built) if self.registry.is_some() => {
                let push = if built.reused {
                    Push::IfNotPushed
                } else {
                    Push::Always
                };
                self.published(&built.package_id, &built.image, push, progress)
                    .await
                    .map(|_| built)
            }
            result => result,
        };
        let reused = result.as_ref().is_ok_and(|b| b.reused);
        crate::metrics::build_finished(started.elapsed(), result.is_ok(), reused);
        if let Ok(built) = &result {
            self.prepare_after_build(&built.package_id);
        }
        result
    }

    async fn build_or_reuse(
        &self,
        package: &Package,
        progress: &dyn Progress,
    ) -> Result<Built, Error> {
        let package_id = package.id.as_str();
        let platform =
            Platform::from_type(&package.metadata.kind).map_err(|source| Error::Platform {
                package_id: package_id.to_string(),
                source,
            })?;
        let names = self.names(package_id)?;
        let built = |reused| Built {
            package_id: package_id.to_string(),
            image: names.image.clone(),
            platform,
            reused,
        };
        // One engine build per image, however many callers ask at once: the
        // first starts it, the others join it and share its outcome.
        let joined = loop {
            if self
                .engine
                .image_labels(&names.image)
                .await
                .map_err(engine(package_id))?
                .is_some()
            {
                tracing::info!(chaincode = package_id, image = %names.image, "image exists, reusing it");
                progress.stage("image exists, reusing it");
                return Ok(built(true));
            }
            match self.join_or_lead(package, platform, &names.image) {
                Ok(joined) => break joined,
                // Its last caller left: let it wind down, then start afresh.
                Err(mut dying) => {
                    let _ = dying.wait_for(Option::is_some).await;
                }
            }
        };
        if matches!(joined.role, Role::Waiter(_)) {
            progress.stage("waiting for the build of this image already in progress");
        }
        let Joined {
            role,
            events,
            _interest,
        } = joined;
        follow(events, progress).await;
        match role {
            Role::Leader(result) => match result.await {
                Ok(Ok(made)) => Ok(built(made == Made::Found)),
                // Its own error, unless a waiter still holds it too.
                Ok(Err(error)) => Err(Arc::try_unwrap(error).unwrap_or_else(Error::Shared)),
                Err(_) => Err(Error::NoOutcome {
                    package_id: package_id.to_string(),
                }),
            },
            Role::Waiter(outcome) => match outcome.borrow().clone() {
                Some(Ok(_)) => Ok(built(true)),
                Some(Err(error)) => Err(Error::Shared(error)),
                None => Err(Error::NoOutcome {
                    package_id: package_id.to_string(),
                }),
            },
        }
    }

    /// How many callers the build of `image` under way has (for tests).
    #[cfg(test)]
    pub(super) fn callers(&self, image: &str) -> usize {
        let flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        flights.get(image).map_or(0, |f| {
            f.listeners.lock().unwrap_or_else(|p| p.into_inner()).len()
        })
    }

    /// Joins the build of `image` under way, or starts it. `Err`: a build
    /// whose callers have all gone is still winding down; its outcome.
    fn join_or_lead(
        &self,
        package: &Package,
        platform: Platform,
        image: &str,
    ) -> Result<Joined, Outcome> {
        let (listener, events) = queue::channel(CALLER_BUFFER);
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(flight) = flights.get(image) {
            let interest = flight.interest.upgrade().ok_or(flight.outcome.clone())?;
            flight
                .listeners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(listener);
            return Ok(Joined {
                role: Role::Waiter(flight.outcome.clone()),
                events,
                _interest: interest,
            });
        }
        let cancel = CancellationToken::new();
        let interest = Arc::new(Interest(cancel.clone()));
        let (outcome_tx, outcome) = watch::channel(None);
        let listeners: Listeners = Arc::new(Mutex::new(vec![listener]));
        let (result_tx, result) = oneshot::channel();
        flights.insert(
            image.to_string(),
            Flight {
                interest: Arc::downgrade(&interest),
                outcome,
                listeners: Arc::clone(&listeners),
            },
        );
        let task = Task {
            engine: Arc::clone(&self.engine),
            config: self.config.clone(),
            labels: self.labels(&package.id),
            registry: self.registry.clone(),
            flights: Arc::clone(&self.flights),
            image: image.to_string(),
        };
        let package = package.clone();
        tokio::spawn(async move {
            let progress = Fanout(Arc::clone(&listeners));
            let result = task
                .build(&package, platform, &progress, &cancel)
                .await
                .map_err(Arc::new);
            // Gone from the table before the outcome is out: whoever comes
            // next finds the image, or (after a failure) starts afresh.
            drop(task);
            // Only waiters share the error; alone, the leader gets its own.
            if outcome_tx.receiver_count() > 0 {
                let _ = outcome_tx.send(Some(result.clone()));
            }
            listeners.lock().unwrap_or_else(|p| p.into_inner()).clear();
            let _ = result_tx.send(result);
        });
        Ok(Joined {
            role: Role::Leader(result),
            events,
            _interest: interest,
        })
    }
}

/// Passes a build's progress on to a caller until the build ends.
async fn follow(mut events: queue::Receiver<Event>, progress: &dyn Progress) {
    while let Some(item) = events.recv().await {
        match item {
            queue::Item::Value(Event::Line(line)) => progress.line(&line),
            queue::Item::Value(Event::Stage(stage)) => progress.stage(&stage),
            queue::Item::Dropped(n) => progress.stage(&dropped_notice(n)),
        }
    }
}

/// A build's progress to every caller of it: lines if there is room (a
/// slow caller loses some, counted), stages always.
struct Fanout(Listeners);

impl Progress for Fanout {
    fn line(&self, line: &str) {
        let mut listeners = self.0.lock().unwrap_or_else(|p| p.into_inner());
        listeners.retain(|l| !l.is_closed());
        for listener in listeners.iter() {
            listener.offer(Event::Line(line.to_string()), line.len());
        }
    }

    fn stage(&self, stage: &str) {
        let listeners = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for listener in listeners.iter() {
            let _ = listener.push(Event::Stage(stage.to_string()));
        }
    }
}

/// One engine build, owning all it needs: it outlives any single caller.
/// Dropped, it takes its image out of the table of builds under way.
struct Task {
    engine: Arc<dyn Engine>,
    config: Config,
    labels: runtime::Labels,
    registry: Option<runtime::Registry>,
    flights: Flights,
    image: String,
}

impl Drop for Task {
    fn drop(&mut self) {
        self.flights
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.image);
    }
}

impl Task {
    /// The engine build itself: an existing image of the same build if there
    /// is one (`reuse`), else the build container, then the runtime image;
    /// within `cclaunch.build.timeout` and until `cancel`.
    async fn build(
        &self,
        package: &Package,
        platform: Platform,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<Made, Error> {
        let package_id = package.id.as_str();
        let image = self.image.as_str();
        let timeout = self.config.build_timeout().unwrap_or(DEFAULT_TIMEOUT);
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || Error::BuildTimeout {
            package_id: package_id.to_string(),
            timeout: self.config.cclaunch.build.timeout.clone(),
        };
        let cancelled = || Error::BuildCancelled {
            package_id: package_id.to_string(),
        };
        let plan = platform
            .plan(&self.config, &package.metadata.path, &|key| {
                std::env::var(key).ok()
            })
            .map_err(|source| Error::Platform {
                package_id: package_id.to_string(),
                source,
            })?;
        let runtime_image = platform.runtime_image(&self.config);
        let found = async {
            let key = reuse::key(
                self.engine.as_ref(),
                &self.config,
                package_id,
                &plan,
                &runtime_image,
            )
            .await?;
            let found = reuse::existing(
                self.engine.as_ref(),
                self.registry.as_ref(),
                image,
                package_id,
                key.as_deref(),
                progress,
            )
            .await?;
            Ok::<_, runtime::Error>((key, found))
        };
        let (key, found) = tokio::select! {
            found = tokio::time::timeout_at(deadline, found) => {
                found.map_err(|_| timed_out())?.map_err(engine(package_id))?
            }
            () = cancel.cancelled() => return Err(cancelled()),
        };
        if let Some(found) = found {
            if self.holds(package_id).await? {
                tracing::info!(
                    chaincode = package_id,
                    image,
                    ?found,
                    "named an existing image; no build"
                );
                return Ok(Made::Found);
            }
            // Not what its name says (a registry holding something else
            // under it): dropped, and built afresh.
            tracing::warn!(
                chaincode = package_id,
                image,
                ?found,
                "the existing image is not of this package; building it"
            );
            self.engine
                .remove_image(image)
                .await
                .map_err(engine(package_id))?;
        }
        let build = &self.config.cclaunch.build;
        let mut labels = self.labels.clone();
        labels.insert(LABEL_BUILD.to_string(), "true".to_string());
        let cache = caches::of(platform, &package.metadata.path, &self.config);
        let job = Job {
            image: plan.builder_image.clone(),
            script: plan.script,
            // The operator's env last: it may point a tool elsewhere.
            env: plan
                .env
                .into_iter()
                .chain(cache.iter().flat_map(|c| c.env.iter().cloned()))
                .chain(build.env.iter().cloned())
                .collect(),
            network_mode: build.network_mode.clone(),
            mounts: build.mounts.clone(),
            volume: cache
                .as_ref()
                .map(|c| (c.volume.clone(), caches::labels(platform, &self.config))),
            cache_cap: build.cache_max_bytes,
            chaincode: package_id.to_string(),
            labels,
            deadline,
            cancel: cancel.clone(),
        };
        if cancel.is_cancelled() {
            return Err(cancelled());
        }
        tracing::info!(chaincode = package_id, builder = %job.image, "building chaincode");
        progress.stage(&format!("compiling in {}", job.image));

        let recorder = Recorder {
            inner: progress,
            lines: Mutex::default(),
        };
        let done = match job::run(&self.engine, &job, code_stream(package), &recorder).await {
            Ok(done) => done,
            Err(Ended::Failed { code }) => {
                let output = recorder
                    .lines
                    .into_inner()
                    .unwrap_or_else(|p| p.into_inner());
                return Err(Error::BuildFailed {
                    package_id: package_id.to_string(),
                    builder: job.image,
                    code,
                    hint: go_hint(platform, package, &output),
                    output: output.into_iter().collect(),
                });
            }
            Err(Ended::TimedOut) => {
                tracing::warn!(chaincode = package_id, timeout = %build.timeout, "build timed out; its container was removed");
                return Err(timed_out());
            }
            Err(Ended::Cancelled) => {
                tracing::info!(
                    chaincode = package_id,
                    "build cancelled: its callers went away; its container was removed"
                );
                return Err(cancelled());
            }
            Err(Ended::Engine(e)) => return Err(engine(package_id)(e)),
            Err(Ended::Io { context, source }) => {
                return Err(Error::Io {
                    package_id: package_id.to_string(),
                    context: context.to_string(),
                    source,
                })
            }
        };
        let binpackage = done.output;
        // Whatever the image build's outcome, the build container is gone
        // before the build returns (a CLI that exits leaves nothing).
        let imaged = async {
            let dockerfile = plan.dockerfile;
            let context =
                tokio::task::spawn_blocking(move || build_context(&dockerfile, &binpackage))
                    .await
                    .map_err(|e| io::Error::other(e.to_string()))
                    .and_then(|r| r)
                    .map_err(|source| Error::Io {
                        package_id: package_id.to_string(),
                        context: "writing the image build context".into(),
                        source,
                    })?;
            let network_mode = self
                .config
                .vm
                .docker
                .host_config
                .network_mode()
                .unwrap_or_default()
                .to_string();
            progress.stage(&format!("building image {image}"));
            // The runtime image's Dockerfile runs nothing of the chaincode's;
            // dropping the request ends the engine's build of it.
            let request = runtime::ImageBuild {
                tag: image.to_string(),
                labels: image_label::labels(package_id, key.as_deref()),
                context: context.to_path_buf(),
                pull: self.config.chaincode.pull,
                network_mode,
            };
            let built = self.engine.build_image(&request, progress);
            tokio::select! {
                built = tokio::time::timeout_at(deadline, built) => {
                    built.map_err(|_| timed_out())?.map_err(engine(package_id))?
                }
                () = cancel.cancelled() => return Err(cancelled()),
            }
            Ok(())
        }
        .await;
        // The build's own outcome is what the caller hears: an image made is
        // not failed for its build container, which is left to `leftovers`.
        match done.removed.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(chaincode = package_id, error = %e, "build container not removed")
            }
            Err(e) => {
                tracing::warn!(chaincode = package_id, error = %e, "build container removal did not finish")
            }
        }
        imaged?;
        tracing::info!(chaincode = package_id, image, "built image");
        Ok(Made::Built)
    }

    /// Whether the image of this task's name is cclaunch's, of `package_id`.
    async fn holds(&self, package_id: &str) -> Result<bool, Error> {
        let labels = self
            .engine
            .image_labels(&self.image)
            .await
            .map_err(engine(package_id))?
            .unwrap_or_default();
        Ok(image_label::package_id(&labels) == Some(package_id))
    }
}

/// Keeps the last build lines while passing them on.
struct Recorder<'a> {
    inner: &'a dyn Progress,
    lines: Mutex<std::collections::VecDeque<String>>,
}

impl Progress for Recorder<'_> {
    fn stage(&self, stage: &str) {
        self.inner.stage(stage);
    }

    fn line(&self, line: &str) {
        self.inner.line(line);
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == KEEP_BUILD_LINES {
            lines.pop_front();
        }
        lines.push_back(line.to_string());
    }
}

/// The package's code.tar.gz as a stream, read on a blocking thread through a
/// small bounded channel (memory stays flat whatever the package size).
fn code_stream(package: &Package) -> ByteStream {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let package = package.clone();
    tokio::task::spawn_blocking(move || {
        let result = package.read_code(|chunk| {
            tx.blocking_send(Ok(Bytes::copy_from_slice(chunk)))
                .map_err(|_| io::Error::other("build container upload ended early"))
        });
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Fabric's runtime build context: a tar of `Dockerfile` and
/// `binpackage.tar`, both mode 0100644. Fabric gzips it; the engine takes
/// it plain as well and builds the same image, without compressing tens of
/// megabytes here and decompressing them in the engine (about 0.2 s for a
/// Go binary; an image's bytes do not depend on how its context travelled).
fn build_context(dockerfile: &str, binpackage: &Path) -> io::Result<tempfile::TempPath> {
    let file = tempfile::NamedTempFile::new()?;
    let (out, path) = file.into_parts();
    let mut tar = tar::Builder::new(io::BufWriter::new(out));
    let mut header = package::file_header(dockerfile.len() as u64);
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
    let bin = std::fs::File::open(binpackage)?;
    let mut header = package::file_header(bin.metadata()?.len());
    tar.append_data(&mut header, "binpackage.tar", bin)?;
    tar.into_inner()?.flush()?;
    Ok(path)
}

/// A Go build that failed on a builder older than go.mod asks for is the most
/// common chaincode build failure ("toolchain drift"); say so plainly.
fn go_hint(
    platform: Platform,
    package: &Package,
    output: &std::collections::VecDeque<String>,
) -> String {
    if platform != Platform::Golang {
        return String::new();
    }
    let Some(wanted) = package.go_mod.as_deref().and_then(golang::required_go) else {
        return String::new();
    };
    let drift = output.iter().any(|l| {
        l.contains("requires go >=")
            || l.contains("module requires Go")
            || l.contains("invalid go version")
            || l.contains("unknown directive: toolchain")
    });
    if drift {
        format!(
            "\nhint: src/go.mod asks for Go {wanted}, newer than the Go in the builder image (chaincode.builder); use a newer builder image or lower the go directive"
        )
    } else {
        String::new()
    }
}
