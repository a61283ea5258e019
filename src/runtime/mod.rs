//! The engines, behind two narrow traits owned by the launcher, one per role:
//! a [`Runner`] runs chaincode, an [`Engine`] builds its images (in build
//! containers, so it runs containers too). On one Docker engine both are the
//! same [`docker::Docker`]; on a cluster the runner is the cluster's and the
//! builder stays a Docker engine.
//!
//! Each method is one engine step, so the launcher's ordering (remove the old
//! container, create, attach, start; for a build: create, upload the code,
//! run, download the output) and its policy are the launcher's, testable with
//! [`fake`]. What differs between engines stays behind the runner: how a
//! container is named, how its files ([`File`]) reach it, how its output is
//! read. Nothing here knows of the launcher or of output lines.

pub mod dns_label;
pub mod docker;
#[cfg(test)]
pub mod fake;
mod host;
pub mod kubernetes;
pub mod swarm;

pub use host::HostConfig;

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

/// Labels on everything cclaunch creates; nothing without them is touched.
pub const LABEL_MANAGED: &str = "org.cclaunch.managed";
pub const LABEL_PACKAGE_ID: &str = "org.cclaunch.package-id";
pub const LABEL_PEER_ID: &str = "org.cclaunch.peer-id";
pub const LABEL_NETWORK_ID: &str = "org.cclaunch.network-id";
pub const LABEL_VERSION: &str = "org.cclaunch.version";
/// The one label on images cclaunch built: the package id and the build key
/// they were built from, so one build serves every peer and network on the
/// engine (see `launcher::image_label`).
pub const LABEL_IMAGE: &str = "org.cclaunch.image";
/// On build cache volumes: the platform whose caches they hold.
pub const LABEL_CACHE: &str = "org.cclaunch.cache";
/// On a chaincode container created ahead of its start (a prepared one):
/// the fingerprint of the spec it was made from (see `launcher::prepared`).
pub const LABEL_PREPARED: &str = "org.cclaunch.prepared";
/// Fabric's own image label carrying the chaincode type (`GOLANG`, ...).
pub const LABEL_FABRIC_TYPE: &str = "org.hyperledger.fabric.chaincode.type";

pub type Labels = HashMap<String, String>;

/// A stream of raw bytes (tar archives, build contexts).
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A tar archive as the engine hands it over, chunk by chunk.
pub type Download = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;

/// A container's output, frame by frame, as the engine hands it over.
pub type OutputStream = Pin<Box<dyn Stream<Item = Result<Output, Error>> + Send>>;

/// What happened to containers, as the engine says it, one event at a time.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<ContainerEvent, Error>> + Send>>;

/// A change of one container's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// The container's id.
    pub id: String,
    /// Its name (the new one, for [`Change::Renamed`]).
    pub name: String,
    pub image: String,
    pub labels: Labels,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created,
    Started,
    /// It stopped running; its exit code, when the engine said it.
    Died {
        exit_code: Option<i64>,
    },
    Paused,
    Unpaused,
    Removed,
    /// Its name changed.
    Renamed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the container engine at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("{what} not found")]
    NotFound { what: String },
    /// The engine answered with an error (its HTTP status, when it sent
    /// one), or the client failed in a way that is not the connection.
    #[error("engine refused to {op} {target}")]
    Refused {
        op: &'static str,
        target: String,
        status: Option<u16>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{op} {target} timed out after {seconds} s")]
    Timeout {
        op: &'static str,
        target: String,
        seconds: u64,
    },
    #[error("{op} {target} was cancelled")]
    Cancelled { op: &'static str, target: String },
    #[error("building image {image} failed: {message}")]
    ImageBuildFailed { image: String, message: String },
    #[error("pushing image {image} to {registry} failed: {message}")]
    PushFailed {
        image: String,
        registry: String,
        message: String,
    },
    #[error("cannot pull {image} from the registry {registry}: {message}")]
    PullFailed {
        image: String,
        registry: String,
        message: String,
    },
    /// A cluster's task that ended without an exit code: its node went down
    /// (`node_down`), or the cluster rejected or orphaned it.
    #[error("{0}")]
    Lost(Box<Lost>),
    /// The endpoint answers, but is not what the runner needs (a swarm
    /// manager).
    #[error("the engine at {endpoint} cannot run chaincode: {reason}")]
    Unsuited { endpoint: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A container that ended, or could not start, for a reason the engine
    /// gave (out of memory, an image it cannot have): not an exit of the
    /// chaincode's own choosing.
    #[error("{0}")]
    Ended(Box<Ended>),
    /// The runner's own set-up is wrong (a kubeconfig that cannot be read).
    #[error("{context}")]
    Setup {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// How a container ended or failed to start, as its engine said it.
#[derive(Debug)]
pub struct Ended {
    /// Fabric's container name.
    pub target: String,
    /// The engine's own name for it (a Pod's).
    pub object: String,
    /// The node it ran on, when known.
    pub node: Option<String>,
    /// The engine's reason (`OOMKilled`, `ErrImageNeverPull`, `Evicted`).
    pub reason: String,
    /// The engine's message, if any.
    pub message: String,
    /// Its exit code, when it ran and exited.
    pub exit_code: Option<i64>,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "container {} ({}", self.target, self.object)?;
        if let Some(node) = &self.node {
            write!(f, " on node {node}")?;
        }
        match self.exit_code {
            Some(code) => write!(f, ") ended with exit code {code}: {}", self.reason)?,
            None => write!(f, ") did not run: {}", self.reason)?,
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message.trim())?;
        }
        Ok(())
    }
}

impl std::error::Error for Ended {}

/// A cluster's task that ended without an exit code.
#[derive(Debug, thiserror::Error)]
#[error("container {target}: its task is {state} on node {node}: {reason}")]
pub struct Lost {
    pub target: String,
    /// The node's hostname.
    pub node: String,
    /// The task's last reported state.
    pub state: String,
    pub reason: String,
    /// The node is down (the task may still run there, unreachable).
    pub node_down: bool,
}

impl Error {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// Which of a container's logged output to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// Keep streaming new output until the container exits.
    pub follow: bool,
    /// Only the last N lines; `None` = all.
    pub tail: Option<u64>,
    /// Only output logged at or after this Unix time (seconds); 0 = from the start.
    pub since: i64,
    /// Each frame starts with the time the engine logged it (RFC 3339) and a space.
    pub timestamps: bool,
}

impl LogQuery {
    /// Everything logged so far, then whatever follows.
    pub fn all(follow: bool) -> LogQuery {
        LogQuery {
            follow,
            tail: None,
            since: 0,
            timestamps: false,
        }
    }
}

/// Engine identity, for health checks.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
}

/// An image to build.
#[derive(Debug, Clone)]
pub struct ImageBuild {
    pub tag: String,
    pub labels: Labels,
    /// A tar (plain or gzip'd) holding the Dockerfile and what it adds.
    pub context: PathBuf,
    /// Pull newer base images first (`chaincode.pull`).
    pub pull: bool,
    /// Empty: the engine's default network.
    pub network_mode: String,
}

/// A registry images are pushed to, so that every node of a cluster runs
/// exactly the bytes that were built.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Registry {
    /// `host:port`, as in an image reference.
    pub address: String,
    /// Empty: no credentials.
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// When [`Engine::publish`] pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Every time (after a build): the registry gets what was built.
    Always,
    /// Only if this engine never pushed the image there (before a start).
    IfNotPushed,
}

/// A container to create: a chaincode's, or a build's.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// Empty: the engine names it (build containers).
    pub name: String,
    pub image: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub labels: Labels,
    pub host_config: HostConfig,
    /// Put in place before the container starts (the peer's TLS files).
    pub files: Vec<File>,
}

/// A file an engine puts into a container before it starts.
#[derive(Clone, PartialEq, Eq)]
pub struct File {
    /// Absolute.
    pub path: String,
    /// Permission bits, as in `0o644`.
    pub mode: u32,
    pub data: Vec<u8>,
    /// Holds a secret (a private key): never shown, kept as one where the
    /// engine tells secrets from other files.
    pub secret: bool,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let data = if self.secret {
            "<redacted>".to_string()
        } else {
            format!("{} bytes", self.data.len())
        };
        f.debug_struct("File")
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("data", &data)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    pub labels: Labels,
}

/// What the engine knows of a container.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: Labels,
    pub running: bool,
    pub status: String,
    pub exit_code: Option<i64>,
    pub args: Vec<String>,
    pub env: Vec<String>,
}

/// What the engine knows of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The engine's id (`sha256:...`): another build under the same tag has
    /// another id.
    pub id: String,
    pub labels: Labels,
}

/// Receives progress of long operations (build output lines).
pub trait Progress: Send + Sync {
    /// A line of the build's own output.
    fn line(&self, line: &str);
    /// A step of the build begins (shown as such, not as output).
    fn stage(&self, stage: &str) {
        self.line(stage)
    }
}

impl<F: Fn(&str) + Send + Sync> Progress for F {
    fn line(&self, line: &str) {
        self(line)
    }
}

/// Where chaincode runs: containers by Fabric's name, from create to
/// removal, and their output.
#[async_trait]
pub trait Runner: Send + Sync {
    async fn ping(&self) -> Result<EngineInfo, Error>;
    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>, Error>;
    /// Creates the container with its [`ContainerSpec::files`] in place; it
    /// does not run until [`Runner::start_container`].
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, Error>;
    /// The container's output from its start on (call it before start).
    async fn attach(&self, container: &str) -> Result<OutputStream, Error>;
    /// [`Runner::logs`] of a container the caller has just listed. A runner
    /// may skip its check that the container exists (Docker does: one call
    /// less each, for a thousand mirrors resumed at once); one gone
    /// meanwhile then ends the stream with the engine's error.
    async fn logs_of_listed(
        &self,
        container: &str,
        query: &LogQuery,
    ) -> Result<OutputStream, Error> {
        self.logs(container, query).await
    }
    async fn start_container(&self, container: &str) -> Result<(), Error>;
    async fn stop_container(&self, container: &str, timeout_secs: i64) -> Result<(), Error>;
    async fn kill_container(&self, container: &str) -> Result<(), Error>;
    /// Removes the container and whatever the engine made for it.
    async fn remove_container(&self, container: &str) -> Result<(), Error>;
    /// Blocks until the container exits; its exit code, non-zero ones too.
    async fn wait_container(&self, container: &str) -> Result<i64, Error>;
    /// The container's logged output.
    async fn logs(&self, container: &str, query: &LogQuery) -> Result<OutputStream, Error>;
    /// Containers (running or not) carrying all of `labels`, as listed:
    /// no exit codes, args or env (see [`Runner::inspect_container`]).
    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, Error>;
    /// State changes of containers carrying all of `labels`, from `since`
    /// (Unix seconds; the engine replays what it still holds from then) on,
    /// without end; `None` when this runner has no such feed (its callers
    /// list instead).
    async fn container_events(
        &self,
        labels: &[(&str, &str)],
        since: i64,
    ) -> Result<Option<EventStream>, Error> {
        let _ = (labels, since);
        Ok(None)
    }

    /// Whether a container can be created ahead of its start and be given
    /// its files later ([`Runner::put_files`]): not where a create runs it.
    fn prepares(&self) -> bool {
        false
    }
    /// Puts `files` into a created container, as [`Runner::create_container`]
    /// does with a spec's (on Docker: the same one gzip'd tar at `/`).
    async fn put_files(&self, container: &str, _files: &[File]) -> Result<(), Error> {
        Err(Error::Unsuited {
            endpoint: "this runner".to_string(),
            reason: format!("it cannot put files into container {container} after create"),
        })
    }
    /// Whether `path` exists in the container (created or not).
    async fn has_file(&self, container: &str, _path: &str) -> Result<bool, Error> {
        Err(Error::Unsuited {
            endpoint: "this runner".to_string(),
            reason: format!("it cannot look at the files of container {container}"),
        })
    }
}

/// Where images are built and kept: a Docker engine, which runs build
/// containers as a [`Runner`] and moves files in and out of them.
#[async_trait]
pub trait Engine: Runner {
    /// The image's labels, or `None` when there is no such image.
    async fn image_labels(&self, image: &str) -> Result<Option<Labels>, Error>;

    /// The image's id and labels, or `None` when there is no such image.
    async fn inspect_image(&self, image: &str) -> Result<Option<Image>, Error>;

    /// Builds an image from a build context (a tar, plain or gzip'd,
    /// holding a Dockerfile).
    async fn build_image(&self, build: &ImageBuild, progress: &dyn Progress) -> Result<(), Error>;

    /// The image's id (`sha256:...`), or `None` when there is no such image.
    async fn image_id(&self, image: &str) -> Result<Option<String>, Error>;
    /// Gives the image `source` names a second name, `target` (no copy).
    async fn tag_image(&self, source: &str, target: &str) -> Result<(), Error>;
    /// Removes the name `image`; the image goes with its last name.
    async fn remove_image(&self, image: &str) -> Result<(), Error>;
    /// Images carrying the label `key` (with `value`, when given): one row
    /// per name (the id when it has none) with the image's labels.
    async fn list_images(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<(String, Labels)>, Error>;

    /// Puts `image` in `registry` as `registry/image`, reporting the push's
    /// progress; its reference by digest (`registry/image@sha256:...`).
    async fn publish(
        &self,
        image: &str,
        registry: &Registry,
        push: Push,
        progress: &dyn Progress,
    ) -> Result<String, Error>;
    /// The reverse of [`Engine::publish`]: pulls `registry/image` and names
    /// it `image`. `false` when the registry does not have it.
    async fn fetch_published(
        &self,
        image: &str,
        registry: &Registry,
        progress: &dyn Progress,
    ) -> Result<bool, Error>;

    /// Volumes carrying all of `labels`.
    async fn list_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<VolumeInfo>, Error>;
    /// Refused (`Refused`, 409) while a container uses it.
    async fn remove_volume(&self, name: &str) -> Result<(), Error>;

    /// Unpacks a tar (gzip'd or not) at `path` in the container.
    async fn upload(&self, container: &str, path: &str, tar: Bytes) -> Result<(), Error>;
    /// As [`Engine::upload`], the tar streamed (a package's code): no time
    /// bound of its own, the caller's deadline ends it.
    async fn upload_stream(
        &self,
        container: &str,
        path: &str,
        tar: ByteStream,
    ) -> Result<(), Error>;
    /// Downloads `path` from a container as a tar, streamed.
    async fn download(&self, container: &str, path: &str) -> Result<Download, Error>;
}

/// Removes a container by id if the future owning this guard is dropped
/// midway (a cancelled caller), so no half-made container is left behind.
pub(crate) struct RemoveOnDrop {
    engine: Option<std::sync::Arc<dyn Runner>>,
    id: String,
}

impl RemoveOnDrop {
    pub(crate) fn new(engine: std::sync::Arc<dyn Runner>, id: &str) -> RemoveOnDrop {
        RemoveOnDrop {
            engine: Some(engine),
            id: id.to_string(),
        }
    }

    /// The owner finished: keep the container.
    pub(crate) fn disarm(mut self) {
        self.engine = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let (Some(engine), Ok(runtime)) =
            (self.engine.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let id = std::mem::take(&mut self.id);
        runtime.spawn(async move {
            if let Err(e) = engine.remove_container(&id).await {
                if !e.is_not_found() {
                    tracing::warn!(container = %id, error = %e, "could not remove the container of a cancelled call");
                }
            }
        });
    }
}
