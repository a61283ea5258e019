//! Services: finding one by Fabric's container name, create (its files
//! first), scale (start, stop), remove (its files after it), inspect, list.

use bollard::models::{
    Limit, NetworkAttachmentConfig, Service, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::{
    InspectServiceOptions, ListServicesOptions, ListTasksOptions, UpdateServiceOptions,
};
use std::collections::HashMap;

use super::files::Made;
use super::names::{service_name, LABEL_CONTAINER_NAME};
use super::{tasks, Swarm};
use crate::runtime::docker::label_filter;
use crate::runtime::{ContainerInfo, ContainerSpec, Error, LABEL_MANAGED};

/// A cclaunch service, found.
pub(super) struct Found {
    pub id: String,
    /// Fabric's container name (its label).
    pub container: String,
    pub service: Service,
}

impl Swarm {
    /// The service of Fabric's container name `name` (or of the service id
    /// or name `name`), if cclaunch made it.
    pub(super) async fn find(&self, name: &str) -> Result<Option<Found>, Error> {
        for (candidate, derived) in [(service_name(name), true), (name.to_string(), false)] {
            let inspected = self
                .call(
                    "inspect service",
                    name,
                    self.client()
                        .inspect_service(&candidate, None::<InspectServiceOptions>),
                )
                .await;
            let service = match inspected {
                Ok(service) => service,
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let spec = service.spec.as_ref();
            let labels = spec.and_then(|s| s.labels.as_ref());
            let label = |key: &str| labels.and_then(|l| l.get(key)).cloned();
            // Not by a prefix of its id, nor someone else's service.
            let exact = derived
                || service.id.as_deref() == Some(name)
                || spec.and_then(|s| s.name.as_deref()) == Some(name);
            if !exact || label(LABEL_MANAGED).as_deref() != Some("true") {
                continue;
            }
            let (Some(id), Some(container)) = (service.id.clone(), label(LABEL_CONTAINER_NAME))
            else {
                continue;
            };
            return Ok(Some(Found {
                id,
                container,
                service,
            }));
        }
        Ok(None)
    }

    /// As [`Swarm::find`]; no such service is an error.
    pub(super) async fn found(&self, name: &str) -> Result<Found, Error> {
        self.find(name).await?.ok_or_else(|| Error::NotFound {
            what: format!("container {name}"),
        })
    }

    /// Its files, then the service at 0 replicas (see the module's comment);
    /// a service that is not created leaves no file behind.
    pub(super) async fn create_container(&self, spec: &ContainerSpec) -> Result<String, Error> {
        let service = service_name(&spec.name);
        let (mounts, made) = self
            .make_files(&service, &spec.name, &spec.labels, &spec.files)
            .await?;
        let mut labels = spec.labels.clone();
        labels.insert(LABEL_CONTAINER_NAME.to_string(), spec.name.clone());
        let host = &spec.host_config;
        let limits =
            (host.memory().is_some() || host.nano_cpus().is_some()).then(|| TaskSpecResources {
                limits: Some(Limit {
                    memory_bytes: host.memory(),
                    nano_cpus: host.nano_cpus(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        let options = &self.options;
        let service_spec = ServiceSpec {
            name: Some(service.clone()),
            labels: Some(labels.clone()),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(0) }),
                ..Default::default()
            }),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(spec.image.clone()),
                    // Args, not Command: Docker's create sets Cmd and keeps
                    // the image's entrypoint, and so does this.
                    args: Some(spec.args.clone()),
                    env: Some(spec.env.clone()),
                    labels: Some(labels),
                    // Removing the service is Fabric's stop: no grace.
                    stop_grace_period: Some(0),
                    secrets: (!mounts.secrets.is_empty()).then_some(mounts.secrets),
                    configs: (!mounts.configs.is_empty()).then_some(mounts.configs),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                    ..Default::default()
                }),
                placement: (!options.constraints.is_empty()).then(|| TaskSpecPlacement {
                    constraints: Some(options.constraints.clone()),
                    ..Default::default()
                }),
                resources: limits,
                networks: (!options.network.is_empty()).then(|| {
                    vec![NetworkAttachmentConfig {
                        target: Some(options.network.clone()),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .slow_call(
                "create service for container",
                &spec.name,
                self.client().create_service(service_spec, None),
            )
            .await;
        match created {
            Ok(created) => Ok(created.id.unwrap_or(service)),
            Err(e) => {
                if let Err(cleanup) = self.remove_files(&spec.name, &made).await {
                    tracing::warn!(container = %spec.name, error = %cleanup, "could not remove the files of a service that was not created");
                }
                Err(e)
            }
        }
    }

    /// Sets the service's replicas (1: start); a service already at
    /// `replicas` is left as it is.
    ///
    /// An update names the version it read. A new service's version can move
    /// just after it is created (the manager, likely swarmkit's allocator,
    /// updates it), so a start right after a create can name a version that
    /// is already gone: the manager answers "update out of sequence". A
    /// failed update whose service has moved to another version since is read
    /// again and retried, a few times; the error text is not parsed.
    pub(super) async fn scale(&self, container: &str, replicas: i64) -> Result<(), Error> {
        const ATTEMPTS: usize = 5;
        let mut found = self.found(container).await?;
        for attempt in 1.. {
            let version = version_of(&found, container)?;
            let mut spec = found.service.spec.clone().unwrap_or_default();
            let current = spec
                .mode
                .as_ref()
                .and_then(|m| m.replicated.as_ref())
                .and_then(|r| r.replicas);
            if current == Some(replicas) {
                return Ok(());
            }
            spec.mode = Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated {
                    replicas: Some(replicas),
                }),
                ..Default::default()
            });
            let options = UpdateServiceOptions {
                version,
                ..Default::default()
            };
            let op = if replicas > 0 {
                "start service of container"
            } else {
                "stop service of container"
            };
            let updated = self
                .slow_call(
                    op,
                    container,
                    self.client().update_service(&found.id, spec, options, None),
                )
                .await;
            let Err(e) = updated else { return Ok(()) };
            if attempt == ATTEMPTS {
                return Err(e);
            }
            match self.find(container).await {
                Ok(Some(again)) if version_of(&again, container)? != version => {
                    tracing::debug!(
                        container,
                        version,
                        "service changed under the update; retrying"
                    );
                    found = again;
                }
                _ => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    /// The service, then the secrets and configs it mounted that cclaunch
    /// made for it.
    pub(super) async fn remove_container(&self, container: &str) -> Result<(), Error> {
        let found = self.found(container).await?;
        self.call(
            "remove service of container",
            container,
            self.client().delete_service(&found.id),
        )
        .await?;
        let spec = found
            .service
            .spec
            .and_then(|s| s.task_template)
            .and_then(|t| t.container_spec)
            .unwrap_or_default();
        let made = Made {
            secrets: spec
                .secrets
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| s.secret_id)
                .collect(),
            configs: spec
                .configs
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.config_id)
                .collect(),
        };
        self.remove_files(&found.container, &made).await
    }

    pub(super) async fn inspect_container(
        &self,
        name: &str,
    ) -> Result<Option<ContainerInfo>, Error> {
        let Some(found) = self.find(name).await? else {
            return Ok(None);
        };
        let tasks = self.tasks_of(&[found.id.as_str()]).await?;
        let task = tasks::latest(tasks.iter());
        Ok(Some(tasks::info(&found.service, task)))
    }

    /// The tasks of these services (one listing).
    pub(super) async fn tasks_of(
        &self,
        services: &[&str],
    ) -> Result<Vec<bollard::models::Task>, Error> {
        let filters = HashMap::from([(
            "service".to_string(),
            services.iter().map(|s| s.to_string()).collect(),
        )]);
        let target = services.first().copied().unwrap_or("swarm");
        self.call(
            "list tasks of service",
            target,
            self.client().list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            })),
        )
        .await
    }

    /// Services carrying all of `labels`, with their state from one task
    /// listing.
    pub(super) async fn list_containers(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<ContainerInfo>, Error> {
        let services = self
            .call(
                "list services of",
                "swarm",
                self.client().list_services(Some(ListServicesOptions {
                    filters: Some(label_filter(labels)),
                    ..Default::default()
                })),
            )
            .await?;
        let services: Vec<Service> = services
            .into_iter()
            .filter(|s| {
                let have = s.spec.as_ref().and_then(|s| s.labels.as_ref());
                s.id.is_some()
                    && have.is_some_and(|l| {
                        l.get(LABEL_MANAGED).map(String::as_str) == Some("true")
                            && l.contains_key(LABEL_CONTAINER_NAME)
                            // Swarm reads `key=` as "any value": an empty
                            // peer or network id must still match exactly.
                            && labels
                                .iter()
                                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
                    })
            })
            .collect();
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = services.iter().filter_map(|s| s.id.as_deref()).collect();
        let all_tasks = self.tasks_of(&ids).await?;
        Ok(services
            .iter()
            .map(|service| {
                let task = tasks::latest(
                    all_tasks
                        .iter()
                        .filter(|t| t.service_id.is_some() && t.service_id == service.id),
                );
                tasks::info(service, task)
            })
            .collect())
    }
}

/// The version index an update of `found` must name.
fn version_of(found: &Found, container: &str) -> Result<i32, Error> {
    found
        .service
        .version
        .as_ref()
        .and_then(|v| v.index)
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| Error::NotFound {
            what: format!("version of service {} (container {container})", found.id),
        })
}
