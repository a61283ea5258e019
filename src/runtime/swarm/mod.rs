//! [`Runner`] on a Docker Swarm manager: each chaincode container is a
//! one-replica service that Swarm never restarts (Fabric relaunches chaincode
//! itself), placed on whichever node the constraints allow.
//!
//! How the launcher's steps map onto a service:
//! - create: the spec's files become secrets (keys) and configs (the rest),
//!   then the service is created with **0 replicas**, so nothing runs and
//!   nothing converges yet, while the service (and its name, labels, args,
//!   env) already exists for inspect, list and remove as a created container
//!   does on Docker;
//! - attach: follows the service's logs before any task exists; Swarm hands
//!   the subscription the task's output from its first line once the task is
//!   placed, and the stream ends when the task does (`logs`);
//! - start: scales the service to 1;
//! - stop, kill: nothing but a check that the service exists: removing it
//!   is the stop (its task's stop grace is 0, as Fabric's stop). Scaling to 0
//!   and then removing the service crashes a 20.10 manager (swarmkit's
//!   `SetServiceTasksRemove` dereferences a task the task reaper removed
//!   meanwhile: seen on the lab, a nil pointer panic);
//! - remove: the service, then its secrets and configs;
//! - wait: the task's exit code, or the node it was lost with (`tasks`).
//!
//! Fabric's container name is kept in a label (`names`); every verb takes it
//! (or the service id that create returned). Connection, error mapping and
//! call timeouts are the Docker engine's (runtime::docker).

mod files;
mod logs;
pub mod names;
mod services;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::docker::{within, Docker, Timeouts};
use super::{ContainerInfo, ContainerSpec, EngineInfo, Error, LogQuery, OutputStream, Runner};

/// How often task state is polled (wait, the end of a followed log): Swarm
/// has no event for a task's end.
const POLL: Duration = Duration::from_millis(250);

/// Where and how chaincode services run.
#[derive(Debug, Clone)]
pub struct SwarmOptions {
    /// The network tasks attach to; `host` (the default) is the predefined
    /// host network, so chaincode reaches the peer's address as on Docker.
    /// Empty: none named (Swarm's default).
    pub network: String,
    /// Placement constraints (`node.role==worker`, `node.labels.cc==true`).
    pub constraints: Vec<String>,
    pub timeouts: Timeouts,
}

impl Default for SwarmOptions {
    fn default() -> SwarmOptions {
        SwarmOptions {
            network: "host".to_string(),
            constraints: Vec::new(),
            timeouts: Timeouts::default(),
        }
    }
}

/// A Swarm manager's engine, running chaincode as services.
#[derive(Clone)]
pub struct Swarm {
    docker: Docker,
    options: Arc<SwarmOptions>,
}

impl Swarm {
    /// Connects to the manager at `endpoint` (as [`Docker::connect`]); that it
    /// is a manager is checked by [`Runner::ping`].
    pub async fn connect(endpoint: &str, options: SwarmOptions) -> Result<Swarm, Error> {
        let docker = Docker::connect(endpoint)
            .await?
            .with_timeouts(options.timeouts);
        Ok(Swarm {
            docker,
            options: Arc::new(options),
        })
    }

    fn client(&self) -> &bollard::Docker {
        self.docker.client()
    }

    fn timeouts(&self) -> &Timeouts {
        self.docker.timeouts()
    }

    /// One call within the request timeout, its error mapped.
    async fn call<T>(
        &self,
        op: &'static str,
        target: &str,
        call: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, Error> {
        let limit = self.timeouts().request;
        within(op, target, limit, async {
            call.await
                .map_err(self.docker.fail_after(op, target, limit))
        })
        .await
    }

    /// As [`Swarm::call`], within the slow timeout (creates, updates).
    async fn slow_call<T>(
        &self,
        op: &'static str,
        target: &str,
        call: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, Error> {
        let limit = self.timeouts().slow;
        within(op, target, limit, async {
            call.await
                .map_err(self.docker.fail_after(op, target, limit))
        })
        .await
    }

    fn endpoint(&self) -> &str {
        self.docker.endpoint()
    }
}

#[async_trait]
impl Runner for Swarm {
    async fn ping(&self) -> Result<EngineInfo, Error> {
        let check = async {
            self.client()
                .ping()
                .await
                .map_err(self.docker.fail("ping", "engine"))?;
            let version = self
                .client()
                .version()
                .await
                .map_err(self.docker.fail("query version of", "engine"))?;
            let info = self
                .client()
                .info()
                .await
                .map_err(self.docker.fail("query info of", "engine"))?;
            let swarm = info.swarm.unwrap_or_default();
            if swarm.control_available != Some(true) {
                let state = swarm
                    .local_node_state
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown".to_string());
                return Err(Error::Unsuited {
                    endpoint: self.endpoint().to_string(),
                    reason: format!(
                        "it is not a swarm manager (its swarm state: {})",
                        if state.is_empty() { "inactive" } else { &state }
                    ),
                });
            }
            // One real listing: a manager without a quorum answers the
            // above from memory and fails every swarm call.
            self.client()
                .list_services(Some(bollard::query_parameters::ListServicesOptions {
                    filters: Some(super::docker::label_filter(&[(
                        super::LABEL_MANAGED,
                        "true",
                    )])),
                    ..Default::default()
                }))
                .await
                .map_err(self.docker.fail("list services of", "swarm"))?;
            Ok(EngineInfo {
                version: version.version.unwrap_or_default(),
                api_version: self.client().client_version().to_string(),
            })
        };
        within("health check of", "swarm", self.timeouts().health, check).await
    }

    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>, Error> {
        Swarm::inspect_container(self, name).await
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, Error> {
        Swarm::create_container(self, spec).await
    }

    async fn attach(&self, container: &str) -> Result<OutputStream, Error> {
        Swarm::attach(self, container).await
    }

    async fn start_container(&self, container: &str) -> Result<(), Error> {
        self.scale(container, 1).await
    }

    async fn stop_container(&self, container: &str, _timeout_secs: i64) -> Result<(), Error> {
        self.found(container).await.map(drop)
    }

    async fn kill_container(&self, container: &str) -> Result<(), Error> {
        self.found(container).await.map(drop)
    }

    async fn remove_container(&self, container: &str) -> Result<(), Error> {
        Swarm::remove_container(self, container).await
    }

    async fn wait_container(&self, container: &str) -> Result<i64, Error> {
        Swarm::wait_container(self, container).await
    }

    async fn logs(&self, container: &str, query: &LogQuery) -> Result<OutputStream, Error> {
        Swarm::logs(self, container, query).await
    }

    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, Error> {
        Swarm::list_containers(self, labels).await
    }
}
