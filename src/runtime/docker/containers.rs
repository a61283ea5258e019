//! Containers: inspect, create, upload into, start, stop, kill, remove,
//! list by labels, download from.

use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig as DockerHostConfig};
use bollard::query_parameters::{
    ContainerArchiveInfoOptions, CreateContainerOptions, DownloadFromContainerOptions,
    KillContainerOptions, ListContainersOptions, RemoveContainerOptions, StopContainerOptions,
    UploadToContainerOptions,
};
use bytes::Bytes;
use futures_util::StreamExt;

use super::{label_filter, within, Docker};
use crate::runtime::{ByteStream, ContainerInfo, ContainerSpec, Download, Error, File, HostConfig};

/// Whether the engine API can take `host` (core.yaml's
/// `vm.docker.hostConfig`): each key's value of the right type.
pub fn check_host_config(host: &HostConfig) -> Result<(), serde_json::Error> {
    docker_host_config(host).map(drop)
}

fn docker_host_config(host: &HostConfig) -> Result<DockerHostConfig, serde_json::Error> {
    serde_json::from_value(serde_json::Value::Object(host.settings().clone()))
}

impl Docker {
    pub(super) async fn inspect_container(
        &self,
        name: &str,
    ) -> Result<Option<ContainerInfo>, Error> {
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

    /// Create, then the spec's files uploaded as Fabric uploads them (one
    /// gzip'd tar at `/`); a container whose files did not get in is removed.
    pub(super) async fn create_container(&self, spec: &ContainerSpec) -> Result<String, Error> {
        let id = self.create_bare(spec).await?;
        if spec.files.is_empty() {
            return Ok(id);
        }
        match self.put_files(&id, &spec.files).await {
            Ok(()) => Ok(id),
            Err(e) => {
                if let Err(cleanup) = self.remove_container(&id).await {
                    tracing::warn!(container = %spec.name, error = %cleanup, "could not remove a container whose files did not get in");
                }
                Err(e)
            }
        }
    }

    /// The files as Fabric uploads them: one gzip'd tar extracted at `/`.
    pub(super) async fn put_files(&self, container: &str, files: &[File]) -> Result<(), Error> {
        match super::files::tarball(files) {
            Ok(tarball) => self.upload(container, "/", Bytes::from(tarball)).await,
            Err(source) => Err(Error::Io {
                context: format!("packing the files of container {container}"),
                source,
            }),
        }
    }

    /// Whether `path` exists in the container: the engine's stat of it.
    pub(super) async fn has_file(&self, container: &str, path: &str) -> Result<bool, Error> {
        let options = ContainerArchiveInfoOptions {
            path: path.to_string(),
        };
        let stat = async {
            match self
                .client
                .get_container_archive_info(container, Some(options))
                .await
            {
                Ok(_) => Ok(true),
                Err(e) => match self.fail("look at files of container", container)(e) {
                    // The container or the path: the caller tells them apart.
                    Error::NotFound { .. } => Ok(false),
                    e => Err(e),
                },
            }
        };
        within(
            "look at files of container",
            container,
            self.timeouts.request,
            stat,
        )
        .await
    }

    async fn create_bare(&self, spec: &ContainerSpec) -> Result<String, Error> {
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
            host_config: Some(docker_host_config(&spec.host_config).map_err(|source| {
                Error::Io {
                    context: format!("vm.docker.hostConfig for container {target}"),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidInput, source),
                }
            })?),
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

    pub(super) async fn upload(
        &self,
        container: &str,
        path: &str,
        tar: Bytes,
    ) -> Result<(), Error> {
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

    pub(super) async fn upload_stream(
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

    pub(super) async fn start_container(&self, container: &str) -> Result<(), Error> {
        let start = async {
            self.client
                .start_container(container, None)
                .await
                .map_err(self.fail("start container", container))
        };
        within("start container", container, self.timeouts.slow, start).await
    }

    pub(super) async fn stop_container(
        &self,
        container: &str,
        timeout_secs: i64,
    ) -> Result<(), Error> {
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

    pub(super) async fn kill_container(&self, container: &str) -> Result<(), Error> {
        let kill = async {
            self.client
                .kill_container(container, None::<KillContainerOptions>)
                .await
                .map_err(self.fail("kill container", container))
        };
        within("kill container", container, self.timeouts.request, kill).await
    }

    pub(super) async fn remove_container(&self, container: &str) -> Result<(), Error> {
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

    pub(super) async fn list_containers(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<ContainerInfo>, Error> {
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

    pub(super) async fn download(&self, container: &str, path: &str) -> Result<Download, Error> {
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
