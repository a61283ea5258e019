//! [`Engine`] on a Docker engine, through bollard: connecting, error
//! mapping and call timeouts here; the calls by API area in `images`,
//! `containers` and `logs` (attach, logs, wait).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::ListContainersOptions;
use bytes::Bytes;

use super::{
    ByteStream, ContainerInfo, ContainerSpec, Download, Engine, EngineInfo, Error, EventStream,
    File, Image, ImageBuild, Labels, LogQuery, OutputStream, Progress, Push, Registry, Runner,
    VolumeInfo,
};

/// How long the engine may take to answer a build's requests (image builds
/// and build-container uploads send their answer only when done).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// How long connecting (and version negotiation) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long each kind of engine call may take: an engine that accepts
/// requests but never answers fails calls as timed out instead of hanging
/// them (builds excepted: they have their own bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Inspect, list, stop, kill, remove; the first answer of attach, logs
    /// and wait (their streams then last as long as they need).
    pub request: Duration,
    /// Create, start, upload, download, image removal.
    pub slow: Duration,
    /// The health check: ping, version and one real listing.
    pub health: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            request: Duration::from_secs(15),
            slow: Duration::from_secs(60),
            health: Duration::from_secs(5),
        }
    }
}

/// A Docker engine, with the API version negotiated (Debian's 20.10 speaks 1.41).
#[derive(Clone)]
pub struct Docker {
    /// For builds: answers may take [`REQUEST_TIMEOUT`].
    client: bollard::Docker,
    /// The same connections, for streams whose first answer is due within
    /// `timeouts.request` (bollard's timeout covers a request's answer, not
    /// the body that streams after it).
    quick: bollard::Docker,
    timeouts: Timeouts,
    endpoint: String,
}

impl Docker {
    /// Connects to `endpoint` (`unix:///var/run/docker.sock`, `tcp://host:2375`)
    /// and settles the API version; an engine that is down fails here, fast.
    pub async fn connect(endpoint: &str) -> Result<Docker, Error> {
        let unreachable = |reason: String| Error::Unreachable {
            endpoint: endpoint.to_string(),
            reason,
        };
        let timeout = REQUEST_TIMEOUT.as_secs();
        let client = if let Some(path) = endpoint.strip_prefix("unix://") {
            if !std::path::Path::new(path).exists() {
                return Err(unreachable(format!(
                    "no socket at {path}; is the engine running?"
                )));
            }
            bollard::Docker::connect_with_unix(path, timeout, bollard::API_DEFAULT_VERSION)
        } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
            bollard::Docker::connect_with_http(endpoint, timeout, bollard::API_DEFAULT_VERSION)
        } else {
            return Err(unreachable(
                "unsupported endpoint scheme; use unix:///path or tcp://host:port".to_string(),
            ));
        }
        .map_err(|e| unreachable(e.to_string()))?;
        let client = tokio::time::timeout(CONNECT_TIMEOUT, client.negotiate_version())
            .await
            .map_err(|_| unreachable(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
            // The whole chain: hyper's own text ("client error (Connect)")
            // leaves out why (refused, no such file).
            .map_err(|e| unreachable(crate::error_chain(&e)))?;
        Ok(Docker {
            quick: client.clone(),
            client,
            timeouts: Timeouts::default(),
            endpoint: endpoint.to_string(),
        }
        .with_timeouts(Timeouts::default()))
    }

    /// The same engine with other call timeouts (`cclaunch.engine.*`).
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Docker {
        // bollard counts whole seconds.
        self.quick = self
            .client
            .clone()
            .with_timeout(Duration::from_secs(whole_seconds(timeouts.request)));
        self.timeouts = timeouts;
        self
    }

    /// The client, for the Swarm runner on the same connection (answers
    /// may take as long as a build's; bound each call with [`within`]).
    pub(in crate::runtime) fn client(&self) -> &bollard::Docker {
        &self.client
    }

    /// The client whose answers are due within `timeouts.request`, for
    /// streams (the Swarm runner's logs).
    pub(in crate::runtime) fn quick(&self) -> &bollard::Docker {
        &self.quick
    }

    pub(in crate::runtime) fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    pub(in crate::runtime) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Turns a bollard error into ours: 404 is NotFound, a broken connection
    /// is Unreachable, anything else keeps the operation and its target.
    pub(in crate::runtime) fn fail(
        &self,
        op: &'static str,
        target: &str,
    ) -> impl Fn(BollardError) -> Error + '_ {
        self.fail_after(op, target, REQUEST_TIMEOUT)
    }

    /// As [`Docker::fail`], for a client whose answers are due within `limit`.
    pub(in crate::runtime) fn fail_after(
        &self,
        op: &'static str,
        target: &str,
        limit: Duration,
    ) -> impl Fn(BollardError) -> Error + '_ {
        let target = target.to_string();
        move |source| match source {
            BollardError::DockerResponseServerError {
                status_code: 404, ..
            } => Error::NotFound {
                what: target.clone(),
            },
            BollardError::RequestTimeoutError => Error::Timeout {
                op,
                target: target.clone(),
                seconds: whole_seconds(limit),
            },
            BollardError::HyperLegacyError { .. }
            | BollardError::IOError { .. }
            | BollardError::SocketNotFoundError(_) => Error::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: format!("{op} {target}: {}", crate::error_chain(&source)),
            },
            source => Error::Refused {
                op,
                target: target.clone(),
                status: match &source {
                    BollardError::DockerResponseServerError { status_code, .. } => {
                        Some(*status_code)
                    }
                    _ => None,
                },
                source: Box::new(source),
            },
        }
    }
}

/// Runs one engine call within `limit`; past it, the call is dropped (its
/// connection with it) and fails as timed out, naming the call.
pub(in crate::runtime) async fn within<T>(
    op: &'static str,
    target: &str,
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(Error::Timeout {
            op,
            target: target.to_string(),
            seconds: whole_seconds(limit),
        })
    })
}

/// A timeout in whole seconds, at least one (as bollard takes it).
pub(in crate::runtime) fn whole_seconds(limit: Duration) -> u64 {
    limit.as_secs_f64().ceil().max(1.0) as u64
}

pub(in crate::runtime) fn label_filter(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )])
}

mod containers;
mod events;
pub mod files;
mod images;
mod logs;
mod volumes;

pub use containers::check_host_config;
pub(in crate::runtime) use logs::logs_options;

#[async_trait]
impl Runner for Docker {
    async fn ping(&self) -> Result<EngineInfo, Error> {
        // An engine can answer /_ping and /version from memory while every
        // real call hangs (a wedged daemon, a stalled proxy): one real
        // listing too, or health would say OK while every verb times out.
        let check = async {
            self.client
                .ping()
                .await
                .map_err(self.fail("ping", "engine"))?;
            let version = self
                .client
                .version()
                .await
                .map_err(self.fail("query version of", "engine"))?;
            let options = ListContainersOptions {
                all: true,
                limit: Some(1),
                filters: Some(label_filter(&[(super::LABEL_MANAGED, "true")])),
                ..Default::default()
            };
            self.client
                .list_containers(Some(options))
                .await
                .map_err(self.fail("list containers of", "engine"))?;
            Ok(EngineInfo {
                version: version.version.unwrap_or_default(),
                api_version: self.client.client_version().to_string(),
            })
        };
        within("health check of", "engine", self.timeouts.health, check).await
    }

    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>, Error> {
        Docker::inspect_container(self, name).await
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, Error> {
        Docker::create_container(self, spec).await
    }

    async fn attach(&self, container: &str) -> Result<OutputStream, Error> {
        Docker::attach(self, container).await
    }

    async fn start_container(&self, container: &str) -> Result<(), Error> {
        Docker::start_container(self, container).await
    }

    async fn stop_container(&self, container: &str, timeout_secs: i64) -> Result<(), Error> {
        Docker::stop_container(self, container, timeout_secs).await
    }

    async fn kill_container(&self, container: &str) -> Result<(), Error> {
        Docker::kill_container(self, container).await
    }

    async fn remove_container(&self, container: &str) -> Result<(), Error> {
        Docker::remove_container(self, container).await
    }

    async fn wait_container(&self, container: &str) -> Result<i64, Error> {
        Docker::wait_container(self, container).await
    }

    async fn logs(&self, container: &str, query: &LogQuery) -> Result<OutputStream, Error> {
        Docker::logs(self, container, query).await
    }

    async fn logs_of_listed(
        &self,
        container: &str,
        query: &LogQuery,
    ) -> Result<OutputStream, Error> {
        Ok(Docker::logs_of_listed(self, container, query))
    }

    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, Error> {
        Docker::list_containers(self, labels).await
    }

    async fn container_events(
        &self,
        labels: &[(&str, &str)],
        since: i64,
    ) -> Result<Option<EventStream>, Error> {
        Ok(Some(Docker::container_events(self, labels, since)))
    }

    fn prepares(&self) -> bool {
        true
    }

    async fn put_files(&self, container: &str, files: &[File]) -> Result<(), Error> {
        Docker::put_files(self, container, files).await
    }

    async fn has_file(&self, container: &str, path: &str) -> Result<bool, Error> {
        Docker::has_file(self, container, path).await
    }
}

#[async_trait]
impl Engine for Docker {
    async fn image_labels(&self, image: &str) -> Result<Option<Labels>, Error> {
        Docker::image_labels(self, image).await
    }

    async fn inspect_image(&self, image: &str) -> Result<Option<Image>, Error> {
        Docker::inspect_image(self, image).await
    }

    async fn build_image(&self, build: &ImageBuild, progress: &dyn Progress) -> Result<(), Error> {
        Docker::build_image(self, build, progress).await
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, Error> {
        Docker::image_id(self, image).await
    }

    async fn tag_image(&self, source: &str, target: &str) -> Result<(), Error> {
        Docker::tag_image(self, source, target).await
    }

    async fn remove_image(&self, image: &str) -> Result<(), Error> {
        Docker::remove_image(self, image).await
    }

    async fn list_images(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<(String, Labels)>, Error> {
        Docker::list_images(self, key, value).await
    }

    async fn publish(
        &self,
        image: &str,
        registry: &Registry,
        push: Push,
        progress: &dyn Progress,
    ) -> Result<String, Error> {
        Docker::publish(self, image, registry, push, progress).await
    }

    async fn fetch_published(
        &self,
        image: &str,
        registry: &Registry,
        progress: &dyn Progress,
    ) -> Result<bool, Error> {
        Docker::fetch_published(self, image, registry, progress).await
    }

    async fn list_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<VolumeInfo>, Error> {
        Docker::list_volumes(self, labels).await
    }

    async fn remove_volume(&self, name: &str) -> Result<(), Error> {
        Docker::remove_volume(self, name).await
    }

    async fn upload(&self, container: &str, path: &str, tar: Bytes) -> Result<(), Error> {
        Docker::upload(self, container, path, tar).await
    }

    async fn upload_stream(
        &self,
        container: &str,
        path: &str,
        tar: ByteStream,
    ) -> Result<(), Error> {
        Docker::upload_stream(self, container, path, tar).await
    }

    async fn download(&self, container: &str, path: &str) -> Result<Download, Error> {
        Docker::download(self, container, path).await
    }
}
