//! The launcher: builds, starts, stops and watches chaincode on an [`Engine`].
//!
//! It owns naming, the env and TLS bundle, the per-chaincode output mirrors and
//! the rule that only containers carrying cclaunch's labels are touched. It is
//! the local implementation of [`crate::launch::Launch`] (see `local`), which
//! every face calls.

mod build;
mod caches;

mod creator;
pub mod env;
mod gc;
mod image_label;
mod job;
mod leftovers;
mod local;
mod mirror;
pub mod prepared;
mod reuse;
mod roster;
mod start;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_prepared;
pub mod tls;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::excerpt::quote;
use crate::launch::Kind;
use crate::naming::{self, Names, Scope};
use crate::output::checkpoint;
use crate::platform;
use crate::runtime::{
    self, ContainerInfo, Engine, EngineInfo, Labels, LogQuery, OutputStream, Runner,
};

pub use crate::launch::{Built, Collected, Selection, StartRequest, Started, TlsMaterial};
pub use build::dropped_notice;
pub use creator::LABEL_CREATOR;
pub use leftovers::Leftovers;
pub use mirror::Resumed;

/// What a failed health check of a Docker engine (or swarm manager) says
/// first, wherever it is reported: Fabric's own words.
pub const PING_FAILED: &str = "failed to ping to Docker daemon";

/// The same, when chaincode runs on Kubernetes and its API server failed.
pub const KUBERNETES_PING_FAILED: &str = "failed to ping the Kubernetes API server";

/// Which engine a failed health check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinged {
    Docker,
    Kubernetes,
}

impl Pinged {
    /// `/healthz`'s failed check: the component and its reason.
    pub fn failed_check(self) -> (&'static str, &'static str) {
        match self {
            Pinged::Docker => ("docker", PING_FAILED),
            Pinged::Kubernetes => ("kubernetes", KUBERNETES_PING_FAILED),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Package(#[from] crate::package::Error),
    #[error(transparent)]
    PackageId(#[from] crate::ccid::Invalid),
    #[error("chaincode {package_id}")]
    Naming {
        package_id: String,
        #[source]
        source: naming::Error,
    },
    #[error("chaincode {package_id}")]
    Platform {
        package_id: String,
        #[source]
        source: platform::Error,
    },
    #[error("chaincode {package_id}: image {image} is not built; run `cclaunch build` on its package first")]
    NotBuilt { package_id: String, image: String },
    #[error("chaincode {package_id}: image {image} has no {} label, so its type is unknown; start it from its package file instead", runtime::LABEL_FABRIC_TYPE)]
    UnknownType { package_id: String, image: String },
    #[error("chaincode {package_id}: build failed in {builder} with exit code {code}{hint}\nBuild output (last {} lines):\n********************\n{}\n********************", output.len(), output.join("\n"))]
    BuildFailed {
        package_id: String,
        builder: String,
        code: i64,
        hint: String,
        output: Vec<String>,
    },
    #[error("chaincode {package_id}: container {container} exists but was not created by cclaunch for this chaincode and peer (its label {label} is {}, not {}); remove it yourself or use another peer id", quote_label(found), quote(wanted))]
    NotOurs {
        package_id: String,
        container: String,
        /// The first of cclaunch's labels that does not match.
        label: &'static str,
        found: Option<String>,
        wanted: String,
    },
    #[error("chaincode {package_id}: there is no container {container}")]
    NoContainer {
        package_id: String,
        container: String,
    },
    #[error("chaincode {package_id}: build did not finish within {timeout} (cclaunch.build.timeout); it was ended and its build container removed")]
    BuildTimeout { package_id: String, timeout: String },
    #[error("chaincode {package_id}: build cancelled: everyone who asked for it went away")]
    BuildCancelled { package_id: String },
    /// A build's failure, as every caller of that build hears it (each
    /// holds the one error).
    #[error(transparent)]
    Shared(Arc<Error>),
    /// The build this caller waited for ended without an outcome.
    #[error("chaincode {package_id}: the build it waited for ended without an outcome")]
    NoOutcome { package_id: String },
    #[error(
        "chaincode {package_id}: extra env entry {} is not KEY=value with a valid name",
        quote(entry)
    )]
    BadEnv { package_id: String, entry: String },
    #[error("chaincode {package_id}: extra env may not set {}: {why}", quote(key))]
    ReservedEnv {
        package_id: String,
        key: String,
        why: &'static str,
    },
    #[error("chaincode {package_id}")]
    PeerAddress {
        package_id: String,
        #[source]
        source: platform::address::Invalid,
    },
    #[error("chaincode {package_id}: invalid TLS material")]
    Tls {
        package_id: String,
        #[source]
        source: crate::launch::NotPem,
    },
    #[error("chaincode {package_id}")]
    Engine {
        package_id: String,
        #[source]
        source: runtime::Error,
    },
    #[error(transparent)]
    EngineOnly(runtime::Error),
    #[error("{}", .engine.failed_check().1)]
    Ping {
        engine: Pinged,
        #[source]
        source: runtime::Error,
    },
    #[error("peer {peer_id} of network {network_id} is served by another cclaunch serve{}, which holds {}; go through it (--server) or stop it first", holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default(), lock.display())]
    Served {
        network_id: String,
        peer_id: String,
        lock: std::path::PathBuf,
        holder: Option<u32>,
    },
    #[error("cannot lock {} (cclaunch.stateDir)", lock.display())]
    Lock {
        lock: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("chaincode {package_id}: {context}")]
    Io {
        package_id: String,
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// What kind of failure this is: the one mapping, which the sidecar's
    /// status codes and the CLI follow.
    pub fn kind(&self) -> Kind {
        match self {
            Error::Package(_)
            | Error::PackageId(_)
            | Error::Naming { .. }
            | Error::Platform { .. }
            | Error::Tls { .. }
            | Error::BadEnv { .. }
            | Error::ReservedEnv { .. }
            | Error::PeerAddress { .. } => Kind::InvalidArgument,
            Error::NotBuilt { .. } | Error::NoContainer { .. } => Kind::NotFound,
            Error::NotOurs { .. } | Error::UnknownType { .. } | Error::Served { .. } => {
                Kind::FailedPrecondition
            }
            Error::BuildFailed { .. } => Kind::Aborted,
            // A waiter fails as the build it shared failed.
            Error::Shared(source) => source.kind(),
            Error::NoOutcome { .. } => Kind::Aborted,
            Error::BuildTimeout { .. } => Kind::DeadlineExceeded,
            Error::BuildCancelled { .. } => Kind::Cancelled,
            Error::Ping { .. } => Kind::Unavailable,
            Error::Engine { source, .. } | Error::EngineOnly(source) => match source {
                runtime::Error::Unreachable { .. } => Kind::Unavailable,
                runtime::Error::NotFound { .. } => Kind::NotFound,
                runtime::Error::Timeout { .. } => Kind::DeadlineExceeded,
                runtime::Error::Cancelled { .. } => Kind::Cancelled,
                runtime::Error::ImageBuildFailed { .. } => Kind::Aborted,
                runtime::Error::PushFailed { .. } | runtime::Error::PullFailed { .. } => {
                    Kind::Unavailable
                }
                runtime::Error::Lost(lost) if lost.node_down => Kind::Unavailable,
                runtime::Error::Lost(_) => Kind::Aborted,
                runtime::Error::Unsuited { .. } | runtime::Error::Setup { .. } => {
                    Kind::FailedPrecondition
                }
                runtime::Error::Ended(_) => Kind::Aborted,
                runtime::Error::Refused { .. } | runtime::Error::Io { .. } => Kind::Internal,
            },
            Error::Io { .. } | Error::Lock { .. } => Kind::Internal,
        }
    }
}

/// A label's value as found on a container (bounded, escaped), or `unset`.
fn quote_label(found: &Option<String>) -> String {
    match found {
        Some(value) => quote(value).to_string(),
        None => "unset".to_string(),
    }
}

/// Wraps an engine error with the chaincode it concerned.
fn engine(package_id: &str) -> impl Fn(runtime::Error) -> Error + '_ {
    move |source| {
        crate::metrics::engine_error();
        Error::Engine {
            package_id: package_id.to_string(),
            source,
        }
    }
}

/// Wraps an engine error that concerns no single chaincode.
fn engine_only(source: runtime::Error) -> Error {
    crate::metrics::engine_error();
    Error::EngineOnly(source)
}

pub struct Launcher {
    /// Builds and keeps images.
    engine: Arc<dyn Engine>,
    /// Runs chaincode: the same engine, or a cluster's.
    runner: Arc<dyn Runner>,
    /// Where images go after a build, for a runner on other machines.
    registry: Option<runtime::Registry>,
    config: Config,
    scope: Scope,
    /// Output mirrors this process runs, by container name.
    mirrors: Mutex<HashMap<String, mirror::Mirror>>,
    checkpoints: checkpoint::Checkpoints,
    /// Builds under way, by image.
    flights: build::Flights,
    /// Start and stop of one chaincode take turns, by container name.
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The peer's lock, while this launcher serves it (see [`Launcher::claim`]).
    claimed: Mutex<Option<checkpoint::Lock>>,
    /// How chaincode was started, for the containers prepared after it.
    profiles: Mutex<prepared::Profiles>,
    /// Preparations under way, by container name.
    preparing: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    /// The peer's containers from the engine's events, once followed (see
    /// [`Launcher::keep_roster`]).
    roster: Arc<roster::Roster>,
    /// The task that follows them, ended with the launcher.
    roster_task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let task = self
            .roster_task
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

impl Launcher {
    /// A launcher that builds and runs chaincode on one engine.
    pub fn new(engine: Arc<dyn Engine>, config: Config) -> Launcher {
        let runner = Arc::clone(&engine) as Arc<dyn Runner>;
        Launcher::with_runner(engine, runner, config)
    }

    /// A launcher that builds on `engine` and runs chaincode on `runner`.
    pub fn with_runner(
        engine: Arc<dyn Engine>,
        runner: Arc<dyn Runner>,
        config: Config,
    ) -> Launcher {
        let scope = Scope::new(config.peer.network_id.clone(), config.peer.id.clone());
        let checkpoints = checkpoint::Checkpoints::new(
            &config.state_dir(),
            &config.peer.network_id,
            &config.peer.id,
        );
        Launcher {
            engine,
            runner,
            registry: None,
            config,
            scope,
            mirrors: Mutex::default(),
            checkpoints,
            flights: Arc::default(),
            turns: Mutex::default(),
            claimed: Mutex::default(),
            profiles: Mutex::default(),
            preparing: Mutex::default(),
            roster: Arc::default(),
            roster_task: Mutex::default(),
        }
    }

    /// Follows the engine's events for this peer's containers from now on,
    /// so `list` and `running` answer from what they said instead of asking
    /// the engine (a sidecar's; the CLI asks). Calling it again is a no-op.
    pub fn keep_roster(&self) {
        let mut task = self.roster_task.lock().unwrap_or_else(|p| p.into_inner());
        if task.is_none() {
            let labels = self
                .peer_labels()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let follow = roster::follow(Arc::clone(&self.roster), Arc::clone(&self.runner), labels);
            *task = Some(tokio::spawn(follow).abort_handle());
        }
    }

    /// The same, pushing every image it builds to `registry` and starting
    /// chaincode from there, by digest.
    pub fn with_registry(mut self, registry: runtime::Registry) -> Launcher {
        self.registry = Some(registry);
        self
    }

    /// `image` as the runner takes it: the reference by digest in the
    /// registry (pushed first if this engine never pushed it), or the image
    /// itself when the runner shares the engine's images.
    async fn published(
        &self,
        package_id: &str,
        image: &str,
        push: runtime::Push,
        progress: &dyn runtime::Progress,
    ) -> Result<String, Error> {
        let Some(registry) = &self.registry else {
            return Ok(image.to_string());
        };
        let timeout = self
            .config
            .build_timeout()
            .unwrap_or(std::time::Duration::from_secs(600));
        let publish = self.engine.publish(image, registry, push, progress);
        match tokio::time::timeout(timeout, publish).await {
            Ok(published) => published.map_err(engine(package_id)),
            Err(_) => Err(engine(package_id)(runtime::Error::Timeout {
                op: "push image",
                target: image.to_string(),
                seconds: timeout.as_secs(),
            })),
        }
    }

    /// Claims the peer for a sidecar's life: its lock in the stateDir, which
    /// makes this launcher the one that mirrors the peer's chaincode, keeps
    /// its checkpoints and cleans up what a killed predecessor left. Another
    /// process holding it is an error naming it; claiming again is a no-op.
    pub fn claim(&self) -> Result<(), Error> {
        let mut claimed = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
        if claimed.is_none() {
            *claimed = Some(self.checkpoints.lock().map_err(|e| self.lock_error(e))?);
        }
        Ok(())
    }

    /// Whether this launcher holds the peer's lock.
    pub fn serving(&self) -> bool {
        self.claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// For the CLI on the engine directly: refuses when a sidecar serves the
    /// peer (with the same stateDir), whose mirrors and checkpoints the CLI
    /// would otherwise compete with.
    pub fn check_unserved(&self) -> Result<(), Error> {
        if self.serving() {
            return Ok(());
        }
        self.checkpoints.probe().map_err(|e| self.lock_error(e))
    }

    fn lock_error(&self, error: checkpoint::LockError) -> Error {
        let lock = self.checkpoints.lock_path();
        match error {
            checkpoint::LockError::Held { holder } => Error::Served {
                network_id: self.config.peer.network_id.clone(),
                peer_id: self.config.peer.id.clone(),
                lock,
                holder,
            },
            checkpoint::LockError::Io(source) => Error::Lock { lock, source },
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The container and image names of a package id, as the peer makes
    /// them; an id Fabric could not have made is refused first.
    pub fn names(&self, package_id: &str) -> Result<Names, Error> {
        crate::ccid::check(package_id)?;
        self.scope
            .names(package_id)
            .map_err(|source| Error::Naming {
                package_id: package_id.to_string(),
                source,
            })
    }

    /// Labels marking what cclaunch made for a chaincode.
    fn labels(&self, package_id: &str) -> Labels {
        Labels::from([
            (runtime::LABEL_MANAGED.to_string(), "true".to_string()),
            (
                runtime::LABEL_PACKAGE_ID.to_string(),
                package_id.to_string(),
            ),
            (
                runtime::LABEL_PEER_ID.to_string(),
                self.config.peer.id.clone(),
            ),
            (
                runtime::LABEL_NETWORK_ID.to_string(),
                self.config.peer.network_id.clone(),
            ),
            (
                runtime::LABEL_VERSION.to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            (creator::LABEL_CREATOR.to_string(), self.creator()),
        ])
    }

    /// This process as the creator of what it makes (see `leftovers`).
    fn creator(&self) -> String {
        creator::label(if self.serving() {
            creator::Kind::Serve
        } else {
            creator::Kind::Cli
        })
    }

    pub async fn health(&self) -> Result<EngineInfo, Error> {
        let failed = |engine| {
            move |source| {
                crate::metrics::engine_error();
                Error::Ping { engine, source }
            }
        };
        let info = self.runner.ping().await.map_err(failed(self.runs_on()))?;
        if !self.one_engine() {
            self.engine.ping().await.map_err(failed(Pinged::Docker))?;
        }
        Ok(info)
    }

    /// What runs chaincode, as a failed health check names it.
    pub fn runs_on(&self) -> Pinged {
        match self.config.cclaunch.engine.kind {
            crate::config::EngineKind::Kubernetes => Pinged::Kubernetes,
            _ => Pinged::Docker,
        }
    }

    /// Whether images are built where chaincode runs.
    fn one_engine(&self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.engine), Arc::as_ptr(&self.runner))
    }

    /// The chaincode container of `package_id`, refused unless it carries
    /// every one of cclaunch's labels with this peer's and this chaincode's
    /// values: the name alone is not enough (distinct ids, peer ids and
    /// network ids can share a container name once sanitised).
    async fn own_container(
        &self,
        package_id: &str,
    ) -> Result<(Names, Option<ContainerInfo>), Error> {
        let names = self.names(package_id)?;
        let found = self
            .runner
            .inspect_container(&names.container)
            .await
            .map_err(engine(package_id))?;
        if let Some(info) = &found {
            let wanted = [
                (runtime::LABEL_MANAGED, "true"),
                (runtime::LABEL_PEER_ID, self.config.peer.id.as_str()),
                (
                    runtime::LABEL_NETWORK_ID,
                    self.config.peer.network_id.as_str(),
                ),
                (runtime::LABEL_PACKAGE_ID, package_id),
            ];
            for (label, value) in wanted {
                let found = info.labels.get(label);
                if found.map(String::as_str) != Some(value) {
                    return Err(Error::NotOurs {
                        package_id: package_id.to_string(),
                        container: names.container,
                        label,
                        found: found.cloned(),
                        wanted: value.to_string(),
                    });
                }
            }
        }
        Ok((names, found))
    }

    /// Waits for this chaincode's turn: its starts and stops never interleave
    /// (one entry per chaincode name, kept for the launcher's life).
    async fn turn(&self, package_id: &str) -> Result<tokio::sync::OwnedMutexGuard<()>, Error> {
        let container = self.names(package_id)?.container;
        Ok(self.turn_lock(&container).lock_owned().await)
    }

    /// The lock whose holder has the turn of the chaincode `container`.
    fn turn_lock(&self, container: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(turns.entry(container.to_string()).or_default())
    }

    /// Fabric's stop: stop with no grace period, kill, remove. Stop and kill
    /// failures are expected on a container that already exited, so only the
    /// removal's outcome is reported. A container that ran is followed by
    /// its next one, prepared (see `prepared`); stopping a prepared one
    /// only removes it.
    pub async fn stop(&self, package_id: &str) -> Result<(), Error> {
        let turn = self.turn(package_id).await?;
        let (names, found) = self.own_container(package_id).await?;
        let Some(found) = found else {
            return Err(Error::NoContainer {
                package_id: package_id.to_string(),
                container: names.container,
            });
        };
        self.remove_container(package_id, &names.container).await?;
        drop(turn);
        if !prepared::is_prepared(&found) {
            self.prepare_after_stop(package_id);
        }
        Ok(())
    }

    async fn remove_container(&self, package_id: &str, container: &str) -> Result<(), Error> {
        if let Err(e) = self.runner.stop_container(container, 0).await {
            tracing::debug!(container, error = %e, "stop container");
        }
        if let Err(e) = self.runner.kill_container(container).await {
            tracing::debug!(container, error = %e, "kill container");
        }
        self.runner
            .remove_container(container)
            .await
            .map_err(engine(package_id))?;
        self.forget_checkpoint(container).await;
        Ok(())
    }

    /// The name of the chaincode's container, which must exist (and be ours).
    async fn existing_container(&self, package_id: &str) -> Result<String, Error> {
        let (names, found) = self.own_container(package_id).await?;
        match found {
            Some(_) => Ok(names.container),
            None => Err(Error::NoContainer {
                package_id: package_id.to_string(),
                container: names.container,
            }),
        }
    }

    /// Blocks until the chaincode's container exits; its exit code.
    pub async fn wait(&self, package_id: &str) -> Result<i64, Error> {
        let container = self.existing_container(package_id).await?;
        self.runner
            .wait_container(&container)
            .await
            .map_err(engine(package_id))
    }

    /// The container's logged output.
    pub async fn logs(&self, package_id: &str, query: &LogQuery) -> Result<OutputStream, Error> {
        let container = self.existing_container(package_id).await?;
        self.runner
            .logs(&container, query)
            .await
            .map_err(engine(package_id))
    }

    /// Every container cclaunch made for this peer on `on`: chaincode and
    /// build containers, running or not.
    async fn peer_containers(&self, on: &dyn Runner) -> Result<Vec<ContainerInfo>, Error> {
        on.list_containers(&self.peer_labels())
            .await
            .map_err(engine_only)
    }

    /// The labels every container cclaunch made for this peer carries.
    fn peer_labels(&self) -> [(&'static str, &str); 3] {
        [
            (runtime::LABEL_MANAGED, "true"),
            (runtime::LABEL_PEER_ID, &self.config.peer.id),
            (runtime::LABEL_NETWORK_ID, &self.config.peer.network_id),
        ]
    }

    /// This peer's chaincode containers that cclaunch made, running or not
    /// (exited ones with their exit code).
    pub async fn list(&self) -> Result<Vec<ContainerInfo>, Error> {
        let mut found = match self.roster.containers() {
            Some(mut known) => {
                known.retain(is_chaincode);
                known.sort_by(|a, b| a.name.cmp(&b.name));
                known
            }
            None => self.listed().await?,
        };
        for container in &mut found {
            if prepared::is_prepared(container) {
                container.status = "prepared".to_string();
            }
        }
        Ok(found)
    }

    /// This peer's chaincode containers as the engine has them now.
    async fn listed(&self) -> Result<Vec<ContainerInfo>, Error> {
        let mut found = Vec::new();
        for listed in self.chaincode_containers().await? {
            if listed.running {
                found.push(listed);
                continue;
            }
            // A container gone meanwhile is skipped.
            let inspected = self
                .runner
                .inspect_container(&listed.id)
                .await
                .map_err(engine_only)?;
            found.extend(inspected.map(|i| ContainerInfo {
                name: listed.name,
                ..i
            }));
        }
        Ok(found)
    }

    /// How many of this peer's chaincode containers run (from the roster,
    /// else one listing, no inspect: `/metrics` asks this often).
    pub async fn running(&self) -> Result<usize, Error> {
        if let Some(running) = self.roster.running(is_chaincode) {
            return Ok(running);
        }
        Ok(self
            .chaincode_containers()
            .await?
            .iter()
            .filter(|c| c.running)
            .count())
    }

    /// This peer's chaincode containers as listed, by name.
    pub(super) async fn chaincode_containers(&self) -> Result<Vec<ContainerInfo>, Error> {
        let mut found = self.peer_containers(self.runner.as_ref()).await?;
        found.retain(is_chaincode);
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }
}

/// Build containers are ours too, but short-lived and not chaincode.
fn is_chaincode(c: &ContainerInfo) -> bool {
    c.labels.contains_key(runtime::LABEL_PACKAGE_ID) && !c.labels.contains_key(LABEL_BUILD)
}

/// Marks build containers, which `list` leaves out.
pub(crate) const LABEL_BUILD: &str = "org.cclaunch.build";
