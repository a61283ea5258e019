//! Pods: the manifest of a chaincode's Pod and Secret (pure, below), finding
//! one by Fabric's container name, its Pod name or its uid, create (the Pod,
//! then its Secret owned by it), remove (a delete with the uid as
//! precondition, until the Pod is gone, then the Secret), inspect, list.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, EnvVar, KeyToPath, Pod, PodSpec, ResourceRequirements, Secret,
    SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};

use super::names::{self, CONTAINER_NAME, SCOPE};
use super::{Kubernetes, KubernetesOptions, Quantities, CONTAINER, POLL};
use crate::runtime::{ContainerInfo, ContainerSpec, Error, LABEL_MANAGED};

/// The volume holding the Secret's files.
const TLS_VOLUME: &str = "files";

/// A cclaunch Pod, found.
pub(super) struct Found {
    pub pod: Pod,
    /// The Pod's name.
    pub name: String,
    pub uid: String,
    /// Fabric's container name (its annotation).
    pub container: String,
}

impl Found {
    /// `container X (pod Y)`, for errors.
    pub fn target(&self) -> String {
        format!("container {} (pod {})", self.container, self.name)
    }
}

/// Whether `text` is written as a uid (`8-4-4-4-12` hex digits).
fn is_uid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether `text` is a DNS label (may be a Pod's name as it stands).
pub(super) fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// The Pod as found, if cclaunch made it: managed, with Fabric's name in
/// its annotation, a name and a uid.
fn ours(pod: Pod) -> Option<Found> {
    let meta = &pod.metadata;
    let managed = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_MANAGED))
        .map(String::as_str)
        == Some("true");
    let container = meta.annotations.as_ref()?.get(CONTAINER_NAME)?.clone();
    let (name, uid) = (meta.name.clone()?, meta.uid.clone()?);
    managed.then_some(Found {
        pod,
        name,
        uid,
        container,
    })
}

impl Kubernetes {
    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The Pod of Fabric's container name `name` (or of the Pod's name or
    /// uid `name`), if cclaunch made it.
    pub(super) async fn find(&self, name: &str) -> Result<Option<Found>, Error> {
        if is_uid(name) {
            let selector = names::selector(&[(LABEL_MANAGED, "true")]);
            let listed = self
                .call(
                    "list pods to find",
                    name,
                    self.pods().list(&ListParams::default().labels(&selector)),
                )
                .await?;
            return Ok(listed
                .items
                .into_iter()
                .filter_map(ours)
                .find(|found| found.uid == name));
        }
        let derived = names::pod_name(name);
        let mut candidates = vec![(derived, true)];
        if is_dns_label(name) {
            candidates.push((name.to_string(), false));
        }
        for (candidate, by_container) in candidates {
            let got = self
                .call(
                    "get pod",
                    &format!("container {name} (pod {candidate})"),
                    self.pods().get_opt(&candidate),
                )
                .await?;
            let Some(found) = got.and_then(ours) else {
                continue;
            };
            // A derived name is Fabric's only if the annotation says so (a
            // hash collision never answers for another container).
            if !by_container || found.container == name {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// As [`Kubernetes::find`]; no such Pod is an error.
    pub(super) async fn found(&self, name: &str) -> Result<Found, Error> {
        self.find(name).await?.ok_or_else(|| Error::NotFound {
            what: format!("container {name}"),
        })
    }

    /// The Pod, then the Secret with the spec's files owned by it; a Secret
    /// that cannot be made deletes the Pod. The Pod's uid.
    pub(super) async fn create_container(&self, spec: &ContainerSpec) -> Result<String, Error> {
        let (pod, secret) = manifest(spec, &self.options, &self.namespace)?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let target = format!("container {} (pod {name})", spec.name);
        let limit = self.timeouts().slow;
        let created = self
            .within(
                "create pod for",
                &target,
                limit,
                self.pods().create(&PostParams::default(), &pod),
            )
            .await?;
        let uid = created
            .metadata
            .uid
            .clone()
            .ok_or_else(|| Error::NotFound {
                what: format!("uid of the pod made for {target}"),
            })?;
        let Some(mut secret) = secret else {
            return Ok(uid);
        };
        secret.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".to_string(),
            kind: "Pod".to_string(),
            name: name.clone(),
            uid: uid.clone(),
            ..Default::default()
        }]);
        let made = self
            .within(
                "create the secret of",
                &target,
                limit,
                self.secrets().create(&PostParams::default(), &secret),
            )
            .await;
        if let Err(e) = made {
            // Its container waits for the Secret and never ran: no grace.
            let params = only(&uid, 0);
            let deleted = self
                .call(
                    "delete the pod without its secret of",
                    &target,
                    self.pods().delete(&name, &params),
                )
                .await;
            if let Err(cleanup) = deleted {
                tracing::warn!(container = %spec.name, pod = %name, error = %cleanup, "could not delete a pod whose secret was not made");
            }
            return Err(e);
        }
        Ok(uid)
    }

    /// Deletes the Pod (this one: its uid is the precondition) with the
    /// grace period, waits until it is gone, then deletes its Secret (which
    /// the garbage collector would delete later anyway).
    pub(super) async fn remove_container(&self, container: &str) -> Result<(), Error> {
        let found = self.found(container).await?;
        let target = found.target();
        let params = only(&found.uid, self.options.grace_seconds);
        let deleted = self
            .call(
                "delete pod of",
                &target,
                self.pods().delete(&found.name, &params),
            )
            .await;
        match deleted {
            Ok(_) | Err(Error::NotFound { .. }) => {}
            // 409: the uid precondition failed, so the Pod of that name is
            // a newer one; this one is gone.
            Err(Error::Refused {
                status: Some(409), ..
            }) => return Ok(()),
            Err(e) => return Err(e),
        }
        self.gone(&found).await?;
        let removed = self
            .call(
                "delete the secret of",
                &target,
                self.secrets().delete(&found.name, &DeleteParams::default()),
            )
            .await;
        match removed {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits (within the slow timeout) until the Pod `found` is no longer
    /// there; one that stays says on which node.
    ///
    /// A 1.20 kubelet confirms a deletion only once the Pod's volumes and
    /// cgroup are cleaned up and its status manager syncs (every 10 s):
    /// seconds after its container is dead. Once the kubelet reports the
    /// container ended (or never made), nothing of it runs any more, so the
    /// deletion is finished then with no grace (uid precondition again).
    async fn gone(&self, found: &Found) -> Result<(), Error> {
        let limit = self.timeouts().slow;
        let deadline = tokio::time::Instant::now() + limit;
        let mut forced = false;
        loop {
            let now = self
                .call("get pod", &found.target(), self.pods().get_opt(&found.name))
                .await?;
            match now {
                Some(pod) if pod.metadata.uid.as_deref() == Some(found.uid.as_str()) => {
                    if !forced && !runs(&pod) {
                        forced = true;
                        let params = only(&found.uid, 0);
                        let deleted = self
                            .call(
                                "finish the deletion of",
                                &found.target(),
                                self.pods().delete(&found.name, &params),
                            )
                            .await;
                        match deleted {
                            Ok(_)
                            | Err(Error::NotFound { .. })
                            | Err(Error::Refused {
                                status: Some(409), ..
                            }) => continue,
                            Err(e) => return Err(e),
                        }
                    }
                }
                _ => return Ok(()),
            }
            if tokio::time::Instant::now() >= deadline {
                let node = node_of(&found.pod).unwrap_or_else(|| "(none)".to_string());
                return Err(Error::Timeout {
                    op: "the deletion of",
                    target: format!("{} on node {node}", found.target()),
                    seconds: limit.as_secs().max(1),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// cclaunch's Pods carrying all of `labels` (each exact value checked
    /// against its annotation), with their state.
    pub(super) async fn list_containers(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<ContainerInfo>, Error> {
        let selector = names::selector(labels);
        let listed = self
            .call(
                "list pods in",
                &format!("namespace {}", self.namespace),
                self.pods().list(&ListParams::default().labels(&selector)),
            )
            .await?;
        Ok(listed
            .items
            .into_iter()
            .filter_map(ours)
            .map(|found| info(&found.pod))
            .filter(|info| {
                labels
                    .iter()
                    .all(|(k, v)| info.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect())
    }
}

/// Whether the Pod's container may run or be started still: not once the
/// kubelet reported it ended, or that it will never be made.
fn runs(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    match state_of(pod) {
        Some(ContainerState {
            terminated: Some(_),
            ..
        }) => false,
        Some(ContainerState {
            waiting: Some(w), ..
        }) => !w
            .reason
            .as_deref()
            .is_some_and(|r| super::wait::FATAL.contains(&r)),
        _ => true,
    }
}

/// The node a Pod was placed on.
pub(super) fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref().and_then(|s| s.node_name.clone())
}

/// The chaincode container's state.
pub(super) fn state_of(pod: &Pod) -> Option<ContainerState> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == CONTAINER)?
        .state
        .clone()
}

/// What the engine knows of the Pod, as of a container: cclaunch's labels
/// with their exact values (from the annotations), Fabric's args and env.
pub(super) fn info(pod: &Pod) -> ContainerInfo {
    let meta = &pod.metadata;
    let annotations = meta.annotations.clone().unwrap_or_default();
    let labels = meta
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != SCOPE)
        .map(|(k, v)| {
            let exact = annotations.get(&k).cloned().unwrap_or(v);
            (k, exact)
        })
        .collect();
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == CONTAINER));
    let state = state_of(pod);
    let failed = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed");
    let (status, running, exit_code) = match state {
        _ if meta.deletion_timestamp.is_some() => ("removing".to_string(), false, None),
        Some(ContainerState {
            running: Some(_), ..
        }) => ("running".to_string(), true, None),
        Some(ContainerState {
            terminated: Some(t),
            ..
        }) => ("exited".to_string(), false, Some(i64::from(t.exit_code))),
        _ if failed => ("exited".to_string(), false, None),
        Some(ContainerState {
            waiting: Some(w), ..
        }) => match w.reason {
            Some(reason) => (format!("waiting ({reason})"), false, None),
            None => ("waiting".to_string(), false, None),
        },
        _ => ("pending".to_string(), false, None),
    };
    ContainerInfo {
        id: meta.uid.clone().unwrap_or_default(),
        name: annotations.get(CONTAINER_NAME).cloned().unwrap_or_default(),
        image: container.and_then(|c| c.image.clone()).unwrap_or_default(),
        labels,
        running,
        status,
        exit_code,
        args: container
            .and_then(|c| c.args.clone())
            .unwrap_or_default()
            .iter()
            .map(|a| names::unescape(a))
            .collect(),
        env: container
            .and_then(|c| c.env.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                format!(
                    "{}={}",
                    e.name,
                    names::unescape(&e.value.unwrap_or_default())
                )
            })
            .collect(),
    }
}

/// The Secret's key for each file: its base name when that is a valid key
/// not taken yet, else `file-<index>`.
fn keys(spec: &ContainerSpec) -> Vec<String> {
    let mut taken = HashSet::new();
    spec.files
        .iter()
        .enumerate()
        .map(|(index, file)| {
            let base = file.path.rsplit('/').next().unwrap_or_default();
            let valid = !base.is_empty()
                && base != "."
                && base != ".."
                && base.len() <= 253
                && base
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            let key = if valid && !taken.contains(base) {
                base.to_string()
            } else {
                format!("file-{index}")
            };
            taken.insert(key.clone());
            key
        })
        .collect()
}

fn quantities(q: &Quantities) -> Option<BTreeMap<String, Quantity>> {
    let map: BTreeMap<String, Quantity> = [("cpu", &q.cpu), ("memory", &q.memory)]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), Quantity(v.clone())))
        .collect();
    (!map.is_empty()).then_some(map)
}

/// The Pod and (when the spec has files) the Secret of `spec` in
/// `namespace`: both named after Fabric's name, labelled for selection with
/// the exact values in annotations; the Secret's files mounted one by one
/// at their paths with their modes.
pub(super) fn manifest(
    spec: &ContainerSpec,
    options: &KubernetesOptions,
    namespace: &str,
) -> Result<(Pod, Option<Secret>), Error> {
    let name = names::pod_name(&spec.name);
    let labels: BTreeMap<String, String> =
        names::pod_labels(spec.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .into_iter()
            .collect();
    let mut annotations: BTreeMap<String, String> = spec
        .labels
        .iter()
        .filter(|(k, _)| names::valid_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(CONTAINER_NAME.to_string(), spec.name.clone());
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels.clone()),
        annotations: Some(annotations),
        // No blockOwnerDeletion: it would need `update` on the owner's
        // finalizers.
        owner_references: options.owner.as_ref().map(|(owner, uid)| {
            vec![OwnerReference {
                api_version: "v1".to_string(),
                kind: "Pod".to_string(),
                name: owner.clone(),
                uid: uid.clone(),
                ..Default::default()
            }]
        }),
        ..Default::default()
    };
    let mut env = Vec::with_capacity(spec.env.len());
    for entry in &spec.env {
        let (key, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        if key.is_empty() {
            return Err(Error::Unsuited {
                endpoint: format!("namespace {namespace}"),
                reason: format!(
                    "container {}: the env entry {entry:?} names no variable",
                    spec.name
                ),
            });
        }
        env.push(EnvVar {
            name: key.to_string(),
            value: Some(names::escape(value)),
            ..Default::default()
        });
    }
    let keys = keys(spec);
    let mounts: Vec<VolumeMount> = spec
        .files
        .iter()
        .zip(&keys)
        .map(|(file, key)| VolumeMount {
            name: TLS_VOLUME.to_string(),
            mount_path: file.path.clone(),
            sub_path: Some(key.clone()),
            read_only: Some(true),
            ..Default::default()
        })
        .collect();
    let resources = ResourceRequirements {
        requests: quantities(&options.requests),
        limits: quantities(&options.limits),
        ..Default::default()
    };
    let has_resources = resources.requests.is_some() || resources.limits.is_some();
    let container = Container {
        name: CONTAINER.to_string(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(options.image_pull_policy.clone()),
        // Args, not command: Docker's create sets Cmd and keeps the image's
        // entrypoint, and so does this.
        args: (!spec.args.is_empty()).then(|| spec.args.iter().map(|a| names::escape(a)).collect()),
        env: (!env.is_empty()).then_some(env),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        resources: has_resources.then_some(resources),
        ..Default::default()
    };
    let volumes = (!spec.files.is_empty()).then(|| {
        vec![Volume {
            name: TLS_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(name.clone()),
                items: Some(
                    spec.files
                        .iter()
                        .zip(&keys)
                        .map(|(file, key)| KeyToPath {
                            key: key.clone(),
                            path: key.clone(),
                            mode: Some(file.mode as i32),
                        })
                        .collect(),
                ),
                default_mode: Some(0o644),
                optional: Some(false),
            }),
            ..Default::default()
        }]
    });
    let pod = Pod {
        metadata: meta,
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: Some("Never".to_string()),
            host_network: Some(options.host_network),
            // The node's network, yet cluster DNS where there is one.
            dns_policy: options
                .host_network
                .then(|| "ClusterFirstWithHostNet".to_string()),
            enable_service_links: Some(false),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(i64::from(options.grace_seconds)),
            node_selector: (!options.node_selector.is_empty())
                .then(|| options.node_selector.clone()),
            tolerations: (!options.tolerations.is_empty()).then(|| options.tolerations.clone()),
            image_pull_secrets: (!options.image_pull_secrets.is_empty())
                .then(|| options.image_pull_secrets.clone()),
            volumes,
            ..Default::default()
        }),
        status: None,
    };
    let secret = (!spec.files.is_empty()).then(|| Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                CONTAINER_NAME.to_string(),
                spec.name.clone(),
            )])),
            ..Default::default()
        },
        immutable: Some(true),
        type_: Some("Opaque".to_string()),
        data: Some(
            spec.files
                .iter()
                .zip(&keys)
                .map(|(file, key)| (key.clone(), ByteString(file.data.clone())))
                .collect(),
        ),
        ..Default::default()
    });
    Ok((pod, secret))
}

/// A deletion of the Pod with `uid` and no other (a newer Pod of the same
/// name fails the precondition), with `grace_seconds` to stop.
fn only(uid: &str, grace_seconds: u32) -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(grace_seconds),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{
        File, HostConfig, Labels, LABEL_NETWORK_ID, LABEL_PACKAGE_ID, LABEL_PEER_ID,
    };

    fn spec() -> ContainerSpec {
        let file = |path: &str, data: &[u8], secret| File {
            path: path.to_string(),
            mode: 0o644,
            data: data.to_vec(),
            secret,
        };
        ContainerSpec {
            name: "dev-jdoe-mycc_1.0-3a7f".to_string(),
            image: "dev-jdoe-mycc_1.0-3a7f-0123:latest".to_string(),
            args: vec!["chaincode".into(), "-peer.address=$(HOST):7052".into()],
            env: vec![
                "CORE_CHAINCODE_ID_NAME=mycc:1.0".into(),
                "EMPTY=".into(),
                "PRICE=$5".into(),
            ],
            labels: Labels::from([
                (LABEL_MANAGED.to_string(), "true".to_string()),
                (
                    LABEL_PACKAGE_ID.to_string(),
                    format!("mycc:{}", "ab".repeat(32)),
                ),
                (LABEL_PEER_ID.to_string(), "jdoe".to_string()),
                (LABEL_NETWORK_ID.to_string(), "dev".to_string()),
            ]),
            host_config: HostConfig::default(),
            files: vec![
                file("/etc/hyperledger/fabric/client.key", b"key\0\xff", true),
                file("/etc/hyperledger/fabric/peer.crt", b"root", false),
                file("/other/peer.crt", b"again", false),
            ],
        }
    }

    #[test]
    fn the_pod_runs_fabrics_args_and_env_verbatim_once_with_files_mounted_one_by_one() {
        let options = KubernetesOptions {
            limits: Quantities {
                cpu: String::new(),
                memory: "64Mi".to_string(),
            },
            ..KubernetesOptions::default()
        };
        let (pod, secret) = manifest(&spec(), &options, "cc").unwrap();
        let name = pod.metadata.name.clone().unwrap();
        assert_eq!(name, names::pod_name("dev-jdoe-mycc_1.0-3a7f"));
        let pod_spec = pod.spec.clone().unwrap();
        assert_eq!(pod_spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod_spec.host_network, Some(true));
        assert_eq!(pod_spec.automount_service_account_token, Some(false));
        assert_eq!(pod_spec.enable_service_links, Some(false));
        let c = &pod_spec.containers[0];
        assert_eq!(c.command, None);
        assert_eq!(
            c.args.clone().unwrap(),
            ["chaincode", "-peer.address=$$(HOST):7052"]
        );
        assert_eq!(c.image_pull_policy.as_deref(), Some("Never"));
        let limits = c.resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["memory"], Quantity("64Mi".into()));
        let mounts: Vec<(String, String)> = c
            .volume_mounts
            .clone()
            .unwrap()
            .into_iter()
            .map(|m| (m.mount_path, m.sub_path.unwrap()))
            .collect();
        assert_eq!(
            mounts,
            [
                (
                    "/etc/hyperledger/fabric/client.key".into(),
                    "client.key".into()
                ),
                ("/etc/hyperledger/fabric/peer.crt".into(), "peer.crt".into()),
                ("/other/peer.crt".into(), "file-2".into()),
            ]
        );
        let secret = secret.unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some(name.as_str()));
        let data = secret.data.unwrap();
        assert_eq!(data["client.key"].0, b"key\0\xff");
        assert_eq!(data["file-2"].0, b"again");
        let items = pod_spec.volumes.unwrap()[0]
            .secret
            .clone()
            .unwrap()
            .items
            .unwrap();
        assert!(items.iter().all(|i| i.mode == Some(0o644)));

        // Read back as the launcher wrote it.
        let read = info(&pod);
        assert_eq!(read.name, "dev-jdoe-mycc_1.0-3a7f");
        assert_eq!(read.args, spec().args);
        assert_eq!(read.env, spec().env);
        assert_eq!(read.labels, spec().labels);
        assert_eq!(read.status, "pending");
        let labels = pod.metadata.labels.unwrap();
        assert!(labels[LABEL_PACKAGE_ID].starts_with("sha256-"));
        assert_eq!(labels[SCOPE], names::scope("dev", "jdoe"));
    }

    #[test]
    fn no_files_no_secret_and_an_env_entry_without_a_name_is_refused() {
        let mut spec = spec();
        spec.files.clear();
        let (pod, secret) = manifest(&spec, &KubernetesOptions::default(), "cc").unwrap();
        assert!(secret.is_none());
        assert!(pod.spec.unwrap().volumes.is_none());
        spec.env.push("=x".into());
        assert!(manifest(&spec, &KubernetesOptions::default(), "cc").is_err());
    }

    #[test]
    fn uids_are_told_from_names() {
        assert!(is_uid("0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"));
        assert!(!is_uid("dev-jdoe-mycc-1-0-3a7f"));
        assert!(!is_uid("0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5"));
    }
}
