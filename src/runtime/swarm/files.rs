//! A container's files on the swarm: each secret file (a key) a swarm secret,
//! each other file a swarm config, made per launch and mounted at the file's
//! path with its mode, owned by root, with the same bytes.

use base64::Engine as _;
use bollard::models::{
    ConfigSpec, SecretSpec, TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile,
    TaskSpecContainerSpecFile1, TaskSpecContainerSpecSecrets,
};
use bollard::query_parameters::{ListConfigsOptions, ListSecretsOptions};

use super::names::{self, LABEL_CONTAINER_NAME};
use super::Swarm;
use crate::runtime::{Error, File, Labels, LABEL_MANAGED};

/// The secrets and configs made for one launch, by id.
#[derive(Debug, Default)]
pub(super) struct Made {
    pub secrets: Vec<String>,
    pub configs: Vec<String>,
}

/// The mounts of a launch's files, for the service's container spec.
#[derive(Debug, Default)]
pub(super) struct Mounts {
    pub secrets: Vec<TaskSpecContainerSpecSecrets>,
    pub configs: Vec<TaskSpecContainerSpecConfigs>,
}

impl Swarm {
    /// Makes `files` for service `service` (Fabric's `container`), labelled
    /// with `labels`; a failure midway removes what was made.
    pub(super) async fn make_files(
        &self,
        service: &str,
        container: &str,
        labels: &Labels,
        files: &[File],
    ) -> Result<(Mounts, Made), Error> {
        let mut made = Made::default();
        let mut mounts = Mounts::default();
        if files.is_empty() {
            return Ok((mounts, made));
        }
        let launch = names::launch_suffix(service);
        let mut labels = labels.clone();
        labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
        labels.insert(LABEL_CONTAINER_NAME.to_string(), container.to_string());
        let b64 = base64::engine::general_purpose::STANDARD;
        for (index, file) in files.iter().enumerate() {
            let name = names::file_name(service, &launch, index);
            let created = if file.secret {
                let spec = SecretSpec {
                    name: Some(name.clone()),
                    labels: Some(labels.clone()),
                    data: Some(b64.encode(&file.data)),
                    ..Default::default()
                };
                self.slow_call("create secret", &name, self.client().create_secret(spec))
                    .await
                    .map(|created| {
                        made.secrets.push(created.id.clone());
                        mounts.secrets.push(TaskSpecContainerSpecSecrets {
                            file: Some(TaskSpecContainerSpecFile {
                                name: Some(file.path.clone()),
                                uid: Some("0".into()),
                                gid: Some("0".into()),
                                mode: Some(file.mode),
                            }),
                            secret_id: Some(created.id),
                            secret_name: Some(name),
                        });
                    })
            } else {
                let spec = ConfigSpec {
                    name: Some(name.clone()),
                    labels: Some(labels.clone()),
                    data: Some(b64.encode(&file.data)),
                    ..Default::default()
                };
                self.slow_call("create config", &name, self.client().create_config(spec))
                    .await
                    .map(|created| {
                        made.configs.push(created.id.clone());
                        mounts.configs.push(TaskSpecContainerSpecConfigs {
                            file: Some(TaskSpecContainerSpecFile1 {
                                name: Some(file.path.clone()),
                                uid: Some("0".into()),
                                gid: Some("0".into()),
                                mode: Some(file.mode),
                            }),
                            config_id: Some(created.id),
                            config_name: Some(name),
                            ..Default::default()
                        });
                    })
            };
            if let Err(e) = created {
                if let Err(cleanup) = self.remove_files(container, &made).await {
                    tracing::warn!(container, error = %cleanup, "could not remove the files of a failed create");
                }
                return Err(e);
            }
        }
        Ok((mounts, made))
    }

    /// Removes the secrets and configs in `made` that cclaunch made for
    /// `container` (others are left alone); all are tried, the first
    /// failure is returned.
    pub(super) async fn remove_files(&self, container: &str, made: &Made) -> Result<(), Error> {
        let mut first = None;
        if made.secrets.is_empty() && made.configs.is_empty() {
            return Ok(());
        }
        let filters = super::super::docker::label_filter(&[
            (LABEL_MANAGED, "true"),
            (LABEL_CONTAINER_NAME, container),
        ]);
        if !made.secrets.is_empty() {
            let ours = self
                .call(
                    "list secrets of",
                    container,
                    self.client().list_secrets(Some(ListSecretsOptions {
                        filters: Some(filters.clone()),
                    })),
                )
                .await;
            match ours {
                Ok(ours) => {
                    for secret in ours {
                        let Some(id) = secret.id.filter(|id| made.secrets.contains(id)) else {
                            continue;
                        };
                        let removed = self
                            .call("remove secret", &id, self.client().delete_secret(&id))
                            .await;
                        if let Err(e) = removed {
                            first.get_or_insert(e);
                        }
                    }
                }
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        if !made.configs.is_empty() {
            let ours = self
                .call(
                    "list configs of",
                    container,
                    self.client().list_configs(Some(ListConfigsOptions {
                        filters: Some(filters),
                    })),
                )
                .await;
            match ours {
                Ok(ours) => {
                    for config in ours {
                        let Some(id) = config.id.filter(|id| made.configs.contains(id)) else {
                            continue;
                        };
                        let removed = self
                            .call("remove config", &id, self.client().delete_config(&id))
                            .await;
                        if let Err(e) = removed {
                            first.get_or_insert(e);
                        }
                    }
                }
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}
