//! The Kubernetes lab of tests/cluster works as the Kubernetes engine's tests
//! will need it, through kube-rs and k8s-openapi against its real 1.20.2 API
//! server: a pod with host networking runs an image imported from the host's
//! engine and its exit code and reason are read back (by watch); a Secret
//! mounts as single files under /etc/hyperledger/fabric, mode 0644, byte for
//! byte; a pod's log is followed as it is written; a container over its
//! memory limit is reported OOMKilled; a pod reaches a server of the test on
//! 127.0.0.1 and nothing outside the lab; deleting an owner deletes what it
//! owns; the service account's kubeconfig has only its Role's rights.
//! Everything made is removed.
//!
//! Runs under tests/cluster/with-k8s.sh (`make test-k8s`); elsewhere each
//! test says it is skipped.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::k8s::Cluster;
use futures_util::{AsyncBufReadExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerState, ContainerStateTerminated, KeyToPath, Namespace, Node,
    Pod, PodSpec, ResourceRequirements, Secret, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt};

/// Label on everything a test makes, valued with its scope's id.
const SCOPE: &str = "test.cclaunch.org/scope";
/// The host engine's busybox, imported into the lab (`lab.images`).
const BUSYBOX: &str = common::BUSYBOX;
/// How long a pod may take to start and end on a busy 2-core machine.
const POD_LIMIT: Duration = Duration::from_secs(120);

/// One test's names, and the guard that removes its pods, secrets and
/// config maps (by label, with kubectl, so it also works while panicking).
struct Scope {
    lab: Cluster,
    id: String,
}

impl Scope {
    fn new(lab: &Cluster, test: &str) -> Scope {
        // A DNS label: lower case, digits and '-', short enough for suffixes.
        let mut id: String = common::unique_peer(test)
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        id.truncate(40);
        Scope {
            lab: lab.clone(),
            id: id.trim_end_matches('-').to_string(),
        }
    }

    fn meta(&self, what: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(format!("{}-{what}", self.id)),
            namespace: Some(self.lab.namespace.clone()),
            labels: Some(BTreeMap::from([(SCOPE.to_string(), self.id.clone())])),
            ..Default::default()
        }
    }

    fn selector(&self) -> String {
        format!("{SCOPE}={}", self.id)
    }

    /// Deletes this scope's pods, secrets and config maps, and waits until
    /// the API server lists none of them.
    async fn remove_all(&self, client: &kube::Client) {
        let ns = &self.lab.namespace;
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let lp = ListParams::default().labels(&self.selector());
        let dp = DeleteParams::default().grace_period(0);
        pods.delete_collection(&dp, &lp).await.expect("delete pods");
        secrets
            .delete_collection(&dp, &lp)
            .await
            .expect("delete secrets");
        maps.delete_collection(&dp, &lp)
            .await
            .expect("delete config maps");
        let deadline = Instant::now() + POD_LIMIT;
        loop {
            let left = pods.list(&lp).await.expect("list pods").items.len()
                + secrets.list(&lp).await.expect("list secrets").items.len()
                + maps.list(&lp).await.expect("list config maps").items.len();
            if left == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{left} objects of scope {} still listed {POD_LIMIT:?} after their deletion",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let out = self.lab.kubectl(&[
            "delete",
            "pods,secrets,configmaps",
            "-n",
            &self.lab.namespace,
            "-l",
            &self.selector(),
            "--grace-period=0",
            "--force",
            "--wait=false",
        ]);
        if !out.status.success() {
            eprintln!(
                "cleanup of scope {}: {}",
                self.id,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A pod of one busybox container running `script` with host networking,
/// restartPolicy Never, the lab's imported image (never pulled).
fn busybox_pod(scope: &Scope, what: &str, script: &str) -> Pod {
    Pod {
        metadata: scope.meta(what),
        spec: Some(PodSpec {
            host_network: Some(true),
            restart_policy: Some("Never".into()),
            termination_grace_period_seconds: Some(1),
            automount_service_account_token: Some(false),
            containers: vec![Container {
                name: "main".into(),
                image: Some(BUSYBOX.into()),
                image_pull_policy: Some("Never".into()),
                command: Some(vec!["sh".into(), "-c".into(), script.into()]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn state_of(pod: &Pod) -> Option<ContainerState> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .clone()
}

/// Waits, by watching the pod, until its container's state passes `done`;
/// returns that state.
async fn wait_state(
    pods: &Api<Pod>,
    name: &str,
    what: &str,
    done: impl Fn(&ContainerState) -> bool,
) -> ContainerState {
    let deadline = Instant::now() + POD_LIMIT;
    let reached = |pod: &Pod| state_of(pod).filter(|state| done(state));
    loop {
        let pod = pods.get(name).await.expect("get pod");
        if let Some(state) = reached(&pod) {
            return state;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "pod {name} not {what} within {POD_LIMIT:?}: {:?}",
            pod.status
        );
        let version = pod
            .metadata
            .resource_version
            .clone()
            .expect("resourceVersion");
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(left.as_secs().clamp(1, 290) as u32);
        let mut events = pods
            .watch(&params, &version)
            .await
            .expect("watch pod")
            .boxed();
        while let Ok(Some(event)) = tokio::time::timeout(left, events.next()).await {
            match event.expect("watch event") {
                WatchEvent::Added(pod) | WatchEvent::Modified(pod) => {
                    if let Some(state) = reached(&pod) {
                        return state;
                    }
                }
                WatchEvent::Deleted(_) => panic!("pod {name} deleted while waiting until {what}"),
                WatchEvent::Bookmark(_) => {}
                // 410 Gone: the version is too old; get the pod again.
                WatchEvent::Error(e) if e.code == 410 => break,
                WatchEvent::Error(e) => panic!("watch pod {name}: {e:?}"),
            }
        }
    }
}

/// Waits until the pod's container has terminated; returns that state
/// (exit code, reason).
async fn terminated(pods: &Api<Pod>, name: &str) -> ContainerStateTerminated {
    wait_state(pods, name, "terminated", |s| s.terminated.is_some())
        .await
        .terminated
        .unwrap()
}

/// The whole log of a pod's container, once it has ended.
async fn log_of(pods: &Api<Pod>, name: &str) -> String {
    pods.logs(name, &LogParams::default())
        .await
        .expect("pod log")
}

/// The next line of a followed log, within [`POD_LIMIT`] (`None`: the end).
async fn next<S: Stream<Item = std::io::Result<String>> + Unpin>(lines: &mut S) -> Option<String> {
    tokio::time::timeout(POD_LIMIT, lines.next())
        .await
        .expect("a log line in time")
        .map(|line| line.expect("log stream"))
}

/// Polls until `name` is gone (404) from `api`, within `limit`.
async fn gone<K>(api: &Api<K>, name: &str, limit: Duration)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + limit;
    loop {
        match api.get_opt(name).await.expect("get") {
            None => return,
            Some(_) => assert!(
                Instant::now() < deadline,
                "{name} still there after {limit:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn a_host_network_pod_runs_an_imported_image_and_its_exit_is_read_back() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    lab.images(&["busybox"]);
    // The host's interfaces (a pod of the lab must see none of them but lo).
    let host_links = links(&std::fs::read_to_string("/proc/thread-self/net/dev").unwrap());
    let scope = Scope::new(&lab, "exit");
    let lab2 = lab.clone();
    lab.block_on(async move {
        let client = lab2.client().await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &lab2.namespace);
        let script = "echo to-stdout; echo to-stderr >&2; cat /proc/net/dev; exit 3";
        let failing = busybox_pod(&scope, "fails", script);
        let succeeding = busybox_pod(&scope, "succeeds", "exit 0");
        let pp = PostParams::default();
        let failing = pods.create(&pp, &failing).await.expect("create pod");
        let succeeding = pods.create(&pp, &succeeding).await.expect("create pod");
        let failing = failing.metadata.name.unwrap();
        let succeeding = succeeding.metadata.name.unwrap();

        let state = terminated(&pods, &failing).await;
        assert_eq!(
            (state.exit_code, state.reason.as_deref()),
            (3, Some("Error"))
        );
        // Each stream keeps its order, not the order between the two.
        let log = log_of(&pods, &failing).await;
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            lines.contains(&"to-stdout") && lines.contains(&"to-stderr"),
            "log: {log}"
        );
        let seen = links(&log);
        assert!(
            seen.contains(&"lo".to_string()),
            "interfaces in the pod: {seen:?}"
        );
        for link in host_links.iter().filter(|l| *l != "lo") {
            assert!(
                !seen.contains(link),
                "the pod sees the host's {link}: {seen:?}"
            );
        }

        let state = terminated(&pods, &succeeding).await;
        assert_eq!(
            (state.exit_code, state.reason.as_deref()),
            (0, Some("Completed"))
        );
        scope.remove_all(&client).await;
    });
}

/// The interface names of a /proc/net/dev listing.
fn links(dev: &str) -> Vec<String> {
    dev.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .filter(|name| !name.is_empty() && !name.contains(' '))
        .collect()
}

#[test]
fn a_secret_mounts_as_single_files_under_etc_hyperledger_fabric_mode_0644_byte_for_byte() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    lab.images(&["busybox"]);
    let scope = Scope::new(&lab, "secret");
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["peer0.org1.example.com".into()]).unwrap();
    // Fabric's three TLS files, plus every byte value (nothing is text-only).
    let files: BTreeMap<String, Vec<u8>> = BTreeMap::from([
        ("client.crt".into(), cert.pem().into_bytes()),
        ("client.key".into(), key_pair.serialize_pem().into_bytes()),
        ("peer.crt".into(), cert.pem().into_bytes()),
        ("bytes".into(), (0..=255u8).rev().collect()),
    ]);
    let lab2 = lab.clone();
    lab.block_on(async move {
        let client = lab2.client().await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &lab2.namespace);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &lab2.namespace);
        let secret = Secret {
            metadata: scope.meta("tls"),
            data: Some(
                files
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.clone())))
                    .collect(),
            ),
            ..Default::default()
        };
        let secret = secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("create secret");
        let mut script = String::from("cd /etc/hyperledger/fabric && ls -A | tr '\\n' ' ' && echo");
        for name in files.keys() {
            script +=
                &format!(" && echo \"== {name} $(stat -c '%a %F %s' {name})\" && base64 {name}");
        }
        let mut pod = busybox_pod(&scope, "reader", &script);
        let spec = pod.spec.as_mut().unwrap();
        spec.volumes = Some(vec![Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: secret.metadata.name.clone(),
                default_mode: Some(0o644),
                items: Some(
                    files
                        .keys()
                        .map(|k| KeyToPath {
                            key: k.clone(),
                            path: k.clone(),
                            mode: Some(0o644),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        spec.containers[0].volume_mounts = Some(
            files
                .keys()
                .map(|k| VolumeMount {
                    name: "tls".into(),
                    mount_path: format!("/etc/hyperledger/fabric/{k}"),
                    sub_path: Some(k.clone()),
                    read_only: Some(true),
                    ..Default::default()
                })
                .collect(),
        );
        let name = pods
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod")
            .metadata
            .name
            .unwrap();
        let state = terminated(&pods, &name).await;
        let log = log_of(&pods, &name).await;
        assert_eq!(state.exit_code, 0, "log: {log}");

        // "bytes client.crt client.key peer.crt \n== NAME MODE TYPE SIZE\nBASE64...\n..."
        let mut sections = log.split("== ");
        let listing: Vec<&str> = sections.next().unwrap().split_whitespace().collect();
        let mut expected: Vec<&str> = files.keys().map(String::as_str).collect();
        expected.sort();
        let mut listed = listing.clone();
        listed.sort();
        assert_eq!(
            listed, expected,
            "the directory holds exactly the secret's files"
        );
        for section in sections {
            let (head, body) = section.split_once('\n').unwrap();
            let (name, stat) = head.split_once(' ').unwrap();
            let want = &files[name];
            assert_eq!(stat, format!("644 regular file {}", want.len()), "{name}");
            let got = base64::engine::general_purpose::STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .unwrap();
            assert_eq!(&got, want, "{name} byte for byte");
        }
        assert_eq!(log.matches("== ").count(), files.len(), "log: {log}");
        scope.remove_all(&client).await;
    });
}

#[test]
fn a_pods_log_is_followed_as_it_is_written() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    lab.images(&["busybox"]);
    let scope = Scope::new(&lab, "follow");
    let lab2 = lab.clone();
    lab.block_on(async move {
        let client = lab2.client().await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &lab2.namespace);
        // The gate: a connection the test accepts at once (the backlog) and
        // closes only after it has read "first": the container cannot write
        // "second" before that.
        let gate = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = gate.local_addr().unwrap().port();
        let script = format!("echo first; busybox nc 127.0.0.1 {port} </dev/null; echo second >&2");
        let pod = busybox_pod(&scope, "writer", &script);
        let name = pods
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod")
            .metadata
            .name
            .unwrap();

        // Following works once the container runs: before the pod is
        // scheduled, 1.20 answers a follow with an empty log (200), and
        // while the container is created, with 400.
        let state = wait_state(&pods, &name, "running", |s| {
            s.running.is_some() || s.terminated.is_some()
        })
        .await;
        assert!(
            state.running.is_some(),
            "the container waits for the gate: {state:?}"
        );
        let lp = LogParams {
            follow: true,
            ..Default::default()
        };
        let stream = pods.log_stream(&name, &lp).await.expect("follow the log");
        let mut lines = Box::pin(stream.lines());
        assert_eq!(next(&mut lines).await.as_deref(), Some("first"));

        let (connection, _) = tokio::time::timeout(POD_LIMIT, gate.accept())
            .await
            .expect("the pod connects")
            .unwrap();
        drop(connection);
        // (stderr: the gate orders it after stdout's "first")
        assert_eq!(next(&mut lines).await.as_deref(), Some("second"));
        assert_eq!(
            next(&mut lines).await,
            None,
            "the stream ends with the container"
        );
        let state = terminated(&pods, &name).await;
        assert_eq!(state.exit_code, 0);
        scope.remove_all(&client).await;
    });
}

#[test]
fn a_container_over_its_memory_limit_is_reported_oomkilled() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    lab.images(&["busybox"]);
    let scope = Scope::new(&lab, "oom");
    let lab2 = lab.clone();
    lab.block_on(async move {
        let client = lab2.client().await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &lab2.namespace);
        // dd fills a 64 MiB buffer; the limit is 16 MiB. The lab's containerd
        // misses the OOM (exit 137, reason "Error", no TaskOOM logged) when
        // it comes before the shim watches the container's cgroup, which a
        // loaded machine delays past the start (seen on a CI run), or as the
        // shim exits when the first process itself is killed. So dd starts
        // 2 s after the shell, and the shell outlives it by a second.
        let mut pod = busybox_pod(
            &scope,
            "hog",
            "sleep 2; busybox dd if=/dev/zero of=/dev/null bs=64M count=1; code=$?; sleep 1; exit $code",
        );
        let limit = BTreeMap::from([("memory".to_string(), Quantity("16Mi".into()))]);
        pod.spec.as_mut().unwrap().containers[0].resources = Some(ResourceRequirements {
            limits: Some(limit.clone()),
            requests: Some(limit),
            ..Default::default()
        });
        let name = pods
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod")
            .metadata
            .name
            .unwrap();
        let state = terminated(&pods, &name).await;
        assert_eq!(
            (state.exit_code, state.reason.as_deref()),
            (137, Some("OOMKilled")),
            "{state:?}"
        );
        scope.remove_all(&client).await;
    });
}

#[test]
fn a_host_network_pod_reaches_a_server_on_127_0_0_1_and_nothing_outside_the_lab() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    lab.images(&["busybox"]);
    let scope = Scope::new(&lab, "reach");
    let lab2 = lab.clone();
    lab.block_on(async move {
        let client = lab2.client().await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &lab2.namespace);
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        // A cloud's metadata address: the lab has no route to it.
        let script = format!(
            "echo hello-from-pod | busybox nc 127.0.0.1 {port}; echo nc=$?; \
             busybox nc 169.254.169.254 80 </dev/null 2>&1; echo metadata=$?"
        );
        let pod = busybox_pod(&scope, "client", &script);
        let name = pods
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod")
            .metadata
            .name
            .unwrap();

        let (connection, _) = tokio::time::timeout(POD_LIMIT, server.accept())
            .await
            .expect("the pod connects")
            .unwrap();
        let (read, mut write) = connection.into_split();
        let mut line = String::new();
        tokio::io::BufReader::new(read)
            .read_line(&mut line)
            .await
            .unwrap();
        assert_eq!(line, "hello-from-pod\n");
        write
            .write_all(format!("ack {line}").as_bytes())
            .await
            .unwrap();
        drop(write);

        let state = terminated(&pods, &name).await;
        let log = log_of(&pods, &name).await;
        assert_eq!(state.exit_code, 0, "log: {log}");
        assert!(log.starts_with("ack hello-from-pod\nnc=0\n"), "log: {log}");
        assert!(
            log.contains("Network is unreachable") && log.ends_with("metadata=1\n"),
            "the metadata address is unreachable from the lab: {log}"
        );
        scope.remove_all(&client).await;
    });
}

#[test]
fn deleting_the_owner_deletes_the_pod_and_secret_it_owns() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    lab.images(&["busybox"]);
    let scope = Scope::new(&lab, "owner");
    let lab2 = lab.clone();
    lab.block_on(async move {
        let client = lab2.client().await;
        let ns = &lab2.namespace;
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let pp = PostParams::default();
        let owner = ConfigMap {
            metadata: scope.meta("owner"),
            ..Default::default()
        };
        let owner = maps.create(&pp, &owner).await.expect("create config map");
        let owned_by = |mut meta: ObjectMeta| {
            meta.owner_references = Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: owner.metadata.name.clone().unwrap(),
                uid: owner.metadata.uid.clone().unwrap(),
                ..Default::default()
            }]);
            meta
        };
        let secret = Secret {
            metadata: owned_by(scope.meta("owned")),
            string_data: Some(BTreeMap::from([("k".into(), "v".into())])),
            ..Default::default()
        };
        let secret = secrets.create(&pp, &secret).await.expect("create secret");
        let mut pod = busybox_pod(
            &scope,
            "owned",
            "trap 'exit 0' TERM; while :; do sleep 1; done",
        );
        pod.metadata = owned_by(pod.metadata);
        let pod = pods.create(&pp, &pod).await.expect("create pod");

        maps.delete(
            owner.metadata.name.as_deref().unwrap(),
            &DeleteParams::background(),
        )
        .await
        .expect("delete the owner");
        gone(&pods, pod.metadata.name.as_deref().unwrap(), POD_LIMIT).await;
        gone(
            &secrets,
            secret.metadata.name.as_deref().unwrap(),
            POD_LIMIT,
        )
        .await;
        scope.remove_all(&client).await;
    });
}

#[test]
fn the_service_account_kubeconfig_has_only_its_roles_rights() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let scope = Scope::new(&lab, "rbac");
    let lab2 = lab.clone();
    lab.block_on(async move {
        let client = lab2.sa_client().await;
        let ns = &lab2.namespace;
        let forbidden = |result: Result<_, kube::Error>, what: &str| match result {
            Err(kube::Error::Api(e)) if e.code == 403 => {}
            other => panic!("{what}: expected 403, got {:?}", other.map(|_: ()| ())),
        };
        // Allowed: its namespace's pods, secrets (made and removed).
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        pods.list(&ListParams::default())
            .await
            .expect("list pods in its namespace");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let secret = Secret {
            metadata: scope.meta("sa"),
            string_data: Some(BTreeMap::from([("k".into(), "v".into())])),
            ..Default::default()
        };
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("create a secret");
        // Refused: other namespaces, cluster-scoped objects.
        let elsewhere: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
        forbidden(
            elsewhere.list(&ListParams::default()).await.map(drop),
            "secrets in kube-system",
        );
        let nodes: Api<Node> = Api::all(client.clone());
        forbidden(nodes.list(&ListParams::default()).await.map(drop), "nodes");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(format!("{}-ns", scope.id)),
                ..Default::default()
            },
            ..Default::default()
        };
        forbidden(
            namespaces
                .create(&PostParams::default(), &namespace)
                .await
                .map(drop),
            "create a namespace",
        );
        scope.remove_all(&lab2.client().await).await;
    });
}
