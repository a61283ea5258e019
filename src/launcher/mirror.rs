//! The output mirrors this process runs: one per chaincode container, begun
//! at start (from the attach stream), or resumed after a restart (from the
//! engine's log, skipping what the last mirror already logged), each with a
//! checkpoint writer and a watcher that logs the chaincode's exit.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{engine, Error, Launcher};
use crate::output::{self, Position, Skip};
use crate::runtime::{self, ContainerInfo, LogQuery, OutputStream};

/// How long checkpoint writers may take at shutdown: a bound for a stuck
/// disk, not a wait (they finish as soon as they can); a write cut short
/// repeats lines after the restart, so it is generous.
const WRITER_GRACE: Duration = Duration::from_secs(10);
/// More grace at shutdown for each mirror whose checkpoint is written.
const WRITER_GRACE_EACH: Duration = Duration::from_millis(20);
/// Logs opened at once when resuming mirrors after a restart.
const RESUME_AT_ONCE: usize = 32;
/// A resumed log whose opening or first answer was late is asked for this
/// many times more in all, waiting a little longer before each.
const ASK_AGAIN: u32 = 3;
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(1);

pub(super) struct Mirror {
    /// Resolves to the number of lines mirrored once the output closes.
    handle: Option<JoinHandle<u64>>,
    /// Taken when the container is removed (see `forget_checkpoint`).
    writer: Option<JoinHandle<()>>,
}

impl Mirror {
    /// Ends the mirror and its checkpoint writer, whose last write (of the
    /// old container's id) must not land over a newer mirror's.
    fn abort(self) {
        if let Some(handle) = self.handle {
            handle.abort();
        }
        if let Some(writer) = self.writer {
            writer.abort();
        }
    }
}

/// A chaincode container whose mirror `resume` picked up again.
#[derive(Debug, Clone)]
pub struct Resumed {
    pub package_id: String,
    pub container: String,
    pub running: bool,
    /// What the last mirror had logged; `None`: no checkpoint for this
    /// container, so only output from now on is mirrored.
    pub from: Option<Position>,
}

impl Launcher {
    /// Mirrors `output` into the chaincode's logger (with `skip`: a
    /// timestamped log re-read after a restart), keeping a checkpoint, and
    /// logs the chaincode's exit once its output closes.
    pub(super) fn spawn_mirror(
        &self,
        package_id: &str,
        container: &str,
        container_id: &str,
        output: OutputStream,
        skip: Option<Skip>,
    ) {
        let max_line = self.config.cclaunch.output.max_line_bytes;
        let rate = crate::rate::Rate::of(&self.config);
        let (progress, position) = watch::channel(Position::default());
        let writer = self.checkpoints.follow(
            container.to_string(),
            container_id.to_string(),
            position,
            skip.is_none(),
        );
        let handle = tokio::spawn({
            let engine = Arc::clone(&self.runner);
            let (package_id, container) = (package_id.to_string(), container.to_string());
            async move {
                let lines =
                    output::mirror(&container, output, max_line, rate, skip, progress).await;
                // The output closes when the chaincode exits: say how it ended
                // (a container removed meanwhile has nothing to report).
                match engine.wait_container(&container).await {
                    Ok(code) => {
                        tracing::info!(chaincode = %package_id, container, exit_code = code, "chaincode exited with code {code}")
                    }
                    Err(e) => tracing::debug!(container, error = %e, "no exit code"),
                }
                lines
            }
        });
        let mirror = Mirror {
            handle: Some(handle),
            writer: Some(writer),
        };
        let replaced = self
            .mirrors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(container.to_string(), mirror);
        if let Some(old) = replaced {
            old.abort();
        }
    }

    /// Picks up this peer's chaincode containers after a restart: each one
    /// not mirrored by this process is mirrored again from its checkpoint
    /// (lines made while no sidecar ran included, none logged twice). A
    /// running container without a checkpoint is mirrored from now on; an
    /// exited one without a checkpoint is left alone.
    pub async fn resume(&self) -> Result<Vec<Resumed>, Error> {
        self.resume_listed(None).await
    }

    /// [`Launcher::resume`] from `listed`, this peer's chaincode containers
    /// as the start-up clean-up just listed them (`None`: list them now).
    pub async fn resume_listed(
        &self,
        listed: Option<Vec<ContainerInfo>>,
    ) -> Result<Vec<Resumed>, Error> {
        if !self.config.vm.docker.attach_stdout {
            return Ok(Vec::new()); // nothing was mirrored before either
        }
        let containers = match listed {
            Some(mut listed) => {
                listed.retain(super::is_chaincode);
                listed
            }
            None => self.chaincode_containers().await?,
        };
        // Checkpoints of containers removed while no sidecar ran (or of a
        // start cancelled midway) go.
        self.checkpoints
            .sweep(&containers.iter().map(|c| c.name.clone()).collect());
        let mut due = Vec::new();
        for info in containers {
            let Some(package_id) = info.labels.get(runtime::LABEL_PACKAGE_ID).cloned() else {
                continue;
            };
            // Never started: nothing to mirror.
            if super::prepared::is_prepared(&info) {
                continue;
            }
            let mirrored = self
                .mirrors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&info.name);
            if mirrored {
                continue;
            }
            let from = self.checkpoints.load(&info.name, &info.id);
            let skip = match from {
                Some(skip) => skip,
                None if info.running => Skip::until_now(),
                None => continue,
            };
            due.push((package_id, info, from, skip));
        }
        // Opened a few at a time where opening asks the engine (a Pod's
        // lookup on Kubernetes). On Docker a listed container's log is asked
        // for only when its mirror first reads it, so the mirrors start at
        // once and the engine serves their requests as it can: 1,000 logging
        // again 7.8 s after a restart at load ~500, against 21 s when each
        // took an inspect and a request, 16 at a time (docs/BENCHMARKS.md).
        let mut opened = futures_util::stream::iter(due.into_iter().map(
            |(package_id, info, from, skip)| async move {
                let query = LogQuery {
                    timestamps: true,
                    ..LogQuery::all(info.running)
                };
                let mut asked = 0;
                let output = ask(self.runner.as_ref(), &info.name, &query, &mut asked).await;
                let output = output.map(|first| {
                    let runner = Arc::clone(&self.runner);
                    asked_again(runner, info.name.clone(), query, first, asked)
                });
                (package_id, info, from, skip, output)
            },
        ))
        .buffer_unordered(RESUME_AT_ONCE);
        let mut resumed = Vec::new();
        let mut failed = None;
        while let Some((package_id, info, from, skip, output)) = opened.next().await {
            let output = match output {
                Ok(output) => output,
                // Removed between the listing and now: nothing to resume.
                Err(e) if e.is_not_found() => continue,
                // One log the engine would not give stops only its mirror.
                Err(e) => {
                    let e = engine(&package_id)(e);
                    tracing::warn!(chaincode = %package_id, container = %info.name, error = %crate::error_chain(&e), "cannot resume mirroring this chaincode's output");
                    failed.get_or_insert(e);
                    continue;
                }
            };
            tracing::info!(chaincode = %package_id, container = %info.name, running = info.running, from = ?from.map(|s| s.at), "resuming output mirror");
            self.spawn_mirror(&package_id, &info.name, &info.id, output, Some(skip));
            resumed.push(Resumed {
                package_id,
                container: info.name,
                running: info.running,
                from: from.map(|s| s.at),
            });
        }
        // Every one failed: the engine, not a container, is the trouble.
        match failed {
            Some(e) if resumed.is_empty() => Err(e),
            _ => Ok(resumed),
        }
    }

    /// Stops every mirror and writes its exact position, for a clean
    /// shutdown: the next process resumes right after the last line logged.
    pub async fn stop_mirrors(&self) {
        let mirrors: Vec<Mirror> = self
            .mirrors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, m)| m)
            .collect();
        // All stop first, then their writers finish side by side, within
        // one grace period for all.
        let mut writers = Vec::with_capacity(mirrors.len());
        for mirror in mirrors {
            if let Some(handle) = mirror.handle {
                handle.abort();
            }
            // The aborted mirror drops its position sender; the writer then
            // writes the last position and ends.
            writers.extend(mirror.writer);
        }
        // A thousand writes on a busy host take more than one's grace.
        let grace = WRITER_GRACE + WRITER_GRACE_EACH * writers.len() as u32;
        let unwritten = writers.len();
        let all = futures_util::future::join_all(writers);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                mirrors = unwritten,
                "not every mirror checkpoint was written within {} ms",
                grace.as_millis()
            );
        }
    }

    /// After a container is removed: lets its mirror's checkpoint writer
    /// finish (the output closes with the container), then deletes the
    /// checkpoint, so no file outlives its container.
    pub(super) async fn forget_checkpoint(&self, container: &str) {
        let writer = self
            .mirrors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(container)
            .and_then(|m| m.writer.take());
        if let Some(mut writer) = writer {
            if tokio::time::timeout(WRITER_GRACE, &mut writer)
                .await
                .is_err()
            {
                // A stuck disk: no later write of this writer's may follow
                // the removal (one already on the blocking pool may).
                writer.abort();
            }
        }
        self.checkpoints.remove(container);
    }

    /// Waits until the output of a chaincode mirrored by this launcher has
    /// been mirrored to the end (its container closed its IO); the line count.
    pub async fn output_closed(&self, package_id: &str) -> Option<u64> {
        let names = self.names(package_id).ok()?;
        let handle = {
            let mut mirrors = self.mirrors.lock().unwrap_or_else(|p| p.into_inner());
            mirrors.get_mut(&names.container)?.handle.take()?
        };
        handle.await.ok()
    }
}

/// A late or unreachable engine, not a missing container: worth asking
/// again.
fn passing(e: &runtime::Error) -> bool {
    matches!(
        e,
        runtime::Error::Timeout { .. } | runtime::Error::Unreachable { .. }
    )
}

/// The wait before asking for the `asked`th time: a little longer each
/// time, and spread by container, so the logs that timed out together after
/// a restart are not all asked for again in the same instant.
fn pause(container: &str, asked: u32) -> Duration {
    use std::hash::BuildHasher;
    let spread = std::collections::hash_map::RandomState::new().hash_one(container) % 1000;
    ASK_AGAIN_AFTER * asked + ASK_AGAIN_AFTER.mul_f64(spread as f64 / 2000.0)
}

/// Whether to ask again after `e`, having asked `asked` times more.
fn worth_asking_again(e: &runtime::Error, asked: u32) -> bool {
    asked < ASK_AGAIN && passing(e)
}

/// Counts one more asking and waits before it.
async fn before_asking_again(container: &str, e: &runtime::Error, asked: &mut u32) {
    *asked += 1;
    tracing::debug!(container, error = %e, asked = *asked, "asking again for a resumed log");
    tokio::time::sleep(pause(container, *asked)).await;
}

/// A resumed log's request; a late or unreachable engine is asked again
/// (where opening asks the engine: a Pod's lookup on Kubernetes), counted
/// in `asked`.
async fn ask(
    runner: &dyn runtime::Runner,
    container: &str,
    query: &LogQuery,
    asked: &mut u32,
) -> Result<OutputStream, runtime::Error> {
    loop {
        match runner.logs_of_listed(container, query).await {
            Err(e) if worth_asking_again(&e, *asked) => {
                before_asking_again(container, &e, asked).await;
            }
            answer => return answer,
        }
    }
}

/// A resumed log whose first answer timed out, or whose engine could not be
/// reached, is asked for again: an engine answering a thousand of them after
/// a restart may be late with some. Nothing of it was counted yet, so the
/// new request skips exactly what the first would have. After the first
/// answer the log flows through untouched.
fn asked_again(
    runner: Arc<dyn runtime::Runner>,
    container: String,
    query: LogQuery,
    first: OutputStream,
    mut asked: u32,
) -> OutputStream {
    let answered = async move {
        let mut output = first;
        loop {
            match output.next().await {
                Some(Err(e)) if worth_asking_again(&e, asked) => {
                    before_asking_again(&container, &e, &mut asked).await;
                    output = match ask(runner.as_ref(), &container, &query, &mut asked).await {
                        Ok(output) => output,
                        Err(e) => return (Some(Err(e)), empty()),
                    };
                }
                // An ended stream is not polled again.
                None => return (None, empty()),
                first => return (first, output),
            }
        }
    };
    Box::pin(
        futures_util::stream::once(answered)
            .flat_map(|(first, rest)| futures_util::stream::iter(first).chain(rest)),
    )
}

fn empty() -> OutputStream {
    Box::pin(futures_util::stream::empty())
}
