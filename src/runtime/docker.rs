//! [`Engine`] on a Docker engine, through bollard.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    ByteStream, ContainerInfo, ContainerSpec, Download, Engine, EngineInfo, Error, Labels,
    LogQuery, Output, OutputStream, Progress,
};
use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    AttachContainerOptions, BuildImageOptions, CreateContainerOptions,
    DownloadFromContainerOptions, KillContainerOptions, ListContainersOptions, ListImagesOptions,
    LogsOptions, RemoveContainerOptions, RemoveImageOptions, StopContainerOptions,
    UploadToContainerOptions,
};
use bytes::Bytes;
use futures_util::StreamExt;

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

impl From<&crate::config::Engine> for Timeouts {
    fn from(engine: &crate::config::Engine) -> Timeouts {
        Timeouts {
            request: engine.request_timeout,
            slow: engine.slow_request_timeout,
            health: engine.health_timeout,
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
            .map_err(|e| unreachable(e.to_string()))?;
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

    /// The bollard client, for callers that need an API this trait lacks.
    pub fn client(&self) -> &bollard::Docker {
        &self.client
    }

    /// Turns a bollard error into ours: 404 is NotFound, a broken connection
    /// is Unreachable, anything else keeps the operation and its target.
    fn fail(&self, op: &'static str, target: &str) -> impl Fn(BollardError) -> Error + '_ {
        self.fail_after(op, target, REQUEST_TIMEOUT)
    }

    /// As [`Docker::fail`], for a client whose answers are due within `limit`.
    fn fail_after(
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
                reason: format!("{op} {target}: {source}"),
            },
            source => Error::Engine {
                op,
                target: target.clone(),
                source,
            },
        }
    }
}

/// Runs one engine call within `limit`; past it, the call is dropped (its
/// connection with it) and fails as timed out, naming the call.
async fn within<T>(
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
fn whole_seconds(limit: Duration) -> u64 {
    limit.as_secs_f64().ceil().max(1.0) as u64
}

fn output_stream(
    stream: impl futures_util::Stream<Item = Result<LogOutput, BollardError>> + Send + 'static,
    docker: Docker,
    target: String,
) -> OutputStream {
    Box::pin(stream.filter_map(move |frame| {
        let fail = docker.clone();
        let target = target.clone();
        async move {
            match frame {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    Some(Ok(Output::Stdout(message)))
                }
                Ok(LogOutput::StdErr { message }) => Some(Ok(Output::Stderr(message))),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(fail.fail_after(
                    "read output of",
                    &target,
                    fail.timeouts.request,
                )(e))),
            }
        }
    }))
}

fn label_filter(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )])
}

fn info(inspect: bollard::models::ContainerInspectResponse) -> ContainerInfo {
    let state = inspect.state.unwrap_or_default();
    let config = inspect.config.unwrap_or_default();
    let running = state.running.unwrap_or(false);
    ContainerInfo {
        id: inspect.id.unwrap_or_default(),
        name: inspect
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: config.image.unwrap_or_default(),
        labels: config.labels.unwrap_or_default(),
        running,
        status: state.status.map(|s| s.to_string()).unwrap_or_default(),
        exit_code: if running { None } else { state.exit_code },
        args: config.cmd.unwrap_or_default(),
        env: config.env.unwrap_or_default(),
    }
}

#[async_trait]
impl Engine for Docker {
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

    async fn image_labels(&self, image: &str) -> Result<Option<Labels>, Error> {
        let inspect = async {
            match self.client.inspect_image(image).await {
                Ok(found) => Ok(Some(
                    found.config.and_then(|c| c.labels).unwrap_or_default(),
                )),
                Err(e) => match self.fail("inspect image", image)(e) {
                    Error::NotFound { .. } => Ok(None),
                    e => Err(e),
                },
            }
        };
        within("inspect image", image, self.timeouts.request, inspect).await
    }

    async fn build_image(
        &self,
        tag: &str,
        labels: &Labels,
        context: PathBuf,
        pull: bool,
        network_mode: &str,
        progress: &dyn Progress,
    ) -> Result<(), Error> {
        let file = tokio::fs::File::open(&context)
            .await
            .map_err(|source| Error::Io {
                context: format!("opening build context {}", context.display()),
                source,
            })?;
        let body = tokio_util::io::ReaderStream::new(file);
        let options = BuildImageOptions {
            t: Some(tag.to_string()),
            labels: Some(labels.clone()),
            pull: pull.then(|| "1".to_string()),
            networkmode: (!network_mode.is_empty()).then(|| network_mode.to_string()),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        let mut stream =
            self.client
                .build_image(options, None, Some(bollard::body_try_stream(body)));
        while let Some(item) = stream.next().await {
            let info = item.map_err(self.fail("build image", tag))?;
            if let Some(detail) = info.error_detail {
                return Err(Error::ImageBuildFailed {
                    image: tag.to_string(),
                    message: detail.message.unwrap_or_default(),
                });
            }
            if let Some(text) = info.stream {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    progress.line(line);
                }
            }
        }
        Ok(())
    }

    async fn remove_image(&self, image: &str) -> Result<(), Error> {
        let remove = async {
            self.client
                .remove_image(image, None::<RemoveImageOptions>, None)
                .await
                .map(|_| ())
                .map_err(self.fail("remove image", image))
        };
        within("remove image", image, self.timeouts.slow, remove).await
    }

    async fn list_images(&self, labels: &[(&str, &str)]) -> Result<Vec<(String, Labels)>, Error> {
        let options = ListImagesOptions {
            filters: Some(label_filter(labels)),
            ..Default::default()
        };
        let images = within("list images of", "engine", self.timeouts.request, async {
            self.client
                .list_images(Some(options))
                .await
                .map_err(self.fail("list images of", "engine"))
        })
        .await?;
        Ok(images
            .into_iter()
            .map(|i| (i.repo_tags.into_iter().next().unwrap_or(i.id), i.labels))
            .collect())
    }

    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>, Error> {
        let inspect = async {
            match self.client.inspect_container(name, None).await {
                Ok(found) => Ok(Some(info(found))),
                Err(e) => match self.fail("inspect container", name)(e) {
                    Error::NotFound { .. } => Ok(None),
                    e => Err(e),
                },
            }
        };
        within("inspect container", name, self.timeouts.request, inspect).await
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, Error> {
        let options = CreateContainerOptions {
            name: (!spec.name.is_empty()).then(|| spec.name.clone()),
            ..Default::default()
        };
        // A build container has no name yet: its image names it.
        let target = if spec.name.is_empty() {
            &spec.image
        } else {
            &spec.name
        };
        let config = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.args.clone()),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(spec.host_config.clone()),
            ..Default::default()
        };
        let create = async {
            self.client
                .create_container(Some(options), config)
                .await
                .map(|created| created.id)
                .map_err(|e| match self.fail("create container", target)(e) {
                    Error::NotFound { .. } => Error::NotFound {
                        what: format!("image {}", spec.image),
                    },
                    e => e,
                })
        };
        within("create container", target, self.timeouts.slow, create).await
    }

    async fn upload(&self, container: &str, path: &str, tar: Bytes) -> Result<(), Error> {
        let options = UploadToContainerOptions {
            path: path.to_string(),
            ..Default::default()
        };
        let upload = async {
            self.client
                .upload_to_container(container, Some(options), bollard::body_full(tar))
                .await
                .map_err(self.fail("upload files to container", container))
        };
        within(
            "upload files to container",
            container,
            self.timeouts.slow,
            upload,
        )
        .await
    }

    async fn upload_stream(
        &self,
        container: &str,
        path: &str,
        tar: ByteStream,
    ) -> Result<(), Error> {
        let options = UploadToContainerOptions {
            path: path.to_string(),
            ..Default::default()
        };
        self.client
            .upload_to_container(container, Some(options), bollard::body_try_stream(tar))
            .await
            .map_err(self.fail("upload files to container", container))
    }

    async fn attach(&self, container: &str) -> Result<OutputStream, Error> {
        // No log replay: cclaunch attaches before start, so there is nothing
        // to replay, and an engine slow to answer would replay lines the
        // stream (attached first) also delivers: seen twice under load.
        let options = AttachContainerOptions {
            stream: true,
            stdout: true,
            stderr: true,
            logs: false,
            ..Default::default()
        };
        // The stream lasts as long as the container; attaching does not.
        let attached = within(
            "attach to container",
            container,
            self.timeouts.request,
            async {
                self.client
                    .attach_container(container, Some(options))
                    .await
                    .map_err(self.fail("attach to container", container))
            },
        )
        .await?;
        Ok(output_stream(
            attached.output,
            self.clone(),
            container.to_string(),
        ))
    }

    async fn start_container(&self, container: &str) -> Result<(), Error> {
        let start = async {
            self.client
                .start_container(container, None)
                .await
                .map_err(self.fail("start container", container))
        };
        within("start container", container, self.timeouts.slow, start).await
    }

    async fn stop_container(&self, container: &str, timeout_secs: i64) -> Result<(), Error> {
        let options = StopContainerOptions {
            t: Some(timeout_secs as i32),
            ..Default::default()
        };
        let stop = async {
            self.client
                .stop_container(container, Some(options))
                .await
                .map_err(self.fail("stop container", container))
        };
        // The engine answers once the grace period is over.
        let grace = Duration::from_secs(u64::try_from(timeout_secs).unwrap_or(0));
        within(
            "stop container",
            container,
            self.timeouts.request + grace,
            stop,
        )
        .await
    }

    async fn kill_container(&self, container: &str) -> Result<(), Error> {
        let kill = async {
            self.client
                .kill_container(container, None::<KillContainerOptions>)
                .await
                .map_err(self.fail("kill container", container))
        };
        within("kill container", container, self.timeouts.request, kill).await
    }

    async fn remove_container(&self, container: &str) -> Result<(), Error> {
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        let remove = async {
            self.client
                .remove_container(container, Some(options))
                .await
                .map_err(self.fail("remove container", container))
        };
        within("remove container", container, self.timeouts.request, remove).await
    }

    async fn wait_container(&self, container: &str) -> Result<i64, Error> {
        // The engine answers at once and sends the exit code when there is
        // one: only the answer is timed.
        let mut stream = self.quick.wait_container(container, None);
        match stream.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero exit as an error; it is an exit code.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(self.fail_after(
                "wait for container",
                container,
                self.timeouts.request,
            )(e)),
            None => Err(Error::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: format!("wait for container {container}: the engine closed the stream"),
            }),
        }
    }

    async fn logs(&self, container: &str, query: &LogQuery) -> Result<OutputStream, Error> {
        // Fail early on an unknown container rather than inside the stream.
        if self.inspect_container(container).await?.is_none() {
            return Err(Error::NotFound {
                what: format!("container {container}"),
            });
        }
        let options = LogsOptions {
            follow: query.follow,
            stdout: true,
            stderr: true,
            tail: query
                .tail
                .map_or_else(|| "all".to_string(), |n| n.to_string()),
            // The engine API takes an i32; later times are clamped, not wrapped.
            since: i32::try_from(query.since.max(0)).unwrap_or(i32::MAX),
            timestamps: query.timestamps,
            ..Default::default()
        };
        // Only the engine's first answer is timed; a followed log then lasts.
        let stream = self.quick.logs(container, Some(options));
        Ok(output_stream(stream, self.clone(), container.to_string()))
    }

    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, Error> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(label_filter(labels)),
            ..Default::default()
        };
        let summaries = within(
            "list containers of",
            "engine",
            self.timeouts.request,
            async {
                self.client
                    .list_containers(Some(options))
                    .await
                    .map_err(self.fail("list containers of", "engine"))
            },
        )
        .await?;
        // The listing says enough (name, labels, state); exit codes come
        // from an inspect, for whoever needs them.
        Ok(summaries
            .into_iter()
            .filter_map(|summary| {
                let state = summary.state.map(|s| s.to_string()).unwrap_or_default();
                Some(ContainerInfo {
                    id: summary.id?,
                    name: summary
                        .names
                        .unwrap_or_default()
                        .first()
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    image: summary.image.unwrap_or_default(),
                    labels: summary.labels.unwrap_or_default(),
                    running: state == "running",
                    status: state,
                    exit_code: None,
                    args: Vec::new(),
                    env: Vec::new(),
                })
            })
            .collect())
    }

    async fn download(&self, container: &str, path: &str) -> Result<Download, Error> {
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let target = container.to_string();
        let docker = self.clone();
        let stream = self
            .client
            .download_from_container(container, Some(options))
            .map(move |chunk| chunk.map_err(docker.fail("download from container", &target)));
        Ok(Box::pin(stream))
    }
}
