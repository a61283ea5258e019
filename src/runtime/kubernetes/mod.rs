//! [`Runner`] on Kubernetes: each chaincode container is one bare Pod with
//! `restartPolicy: Never` (Fabric relaunches chaincode itself), and its TLS
//! files one Secret owned by that Pod (docs/KUBERNETES.md says why not a Job).
//!
//! How the launcher's steps map onto the API:
//! - create: the Pod, then the Secret with the spec's files, owned by the
//!   Pod (its uid from the reply) and mounted file by file (`pods`);
//! - attach: there is none; the stream follows the Pod's log from its first
//!   line once the container has left `waiting`, following again from a
//!   checkpoint when the API server drops it, until the container ends
//!   (`logs`);
//! - start: nothing (the kubelet starts the container once the Pod is
//!   scheduled and its Secret is there);
//! - stop, kill: nothing but a check that the Pod exists; remove is the
//!   stop: a delete with a short grace period and the Pod's uid as a
//!   precondition, waiting until it is gone, then its Secret;
//! - wait: the container's terminated state (`wait`): its exit code, or
//!   an error naming the reason (OOMKilled, an image the node cannot have).
//!
//! Fabric's container name is kept in an annotation (`names`); every verb
//! takes it, the Pod's name, or the Pod's uid (what create returns). Every
//! call has a deadline (the engine's request, slow or health timeout).

mod logs;
pub mod names;
pub mod placement;
mod pods;
mod wait;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::docker::Timeouts;
use super::{ContainerInfo, ContainerSpec, EngineInfo, Error, LogQuery, OutputStream, Runner};

/// How often a Pod's state is polled where no watch is kept (a log waiting
/// for its container to start, a delete waiting for the Pod to go).
const POLL: Duration = Duration::from_millis(250);

/// The chaincode container's name in its Pod.
pub const CONTAINER: &str = "chaincode";

/// How long the API server may stay away (unreachable, timing out,
/// answering 5xx) before a log reader or a Wait gives up: it is restarted,
/// or upgraded, under running chaincode.
const OUTAGE: Duration = Duration::from_secs(300);
/// The longest pause between two tries while it is away.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Calls it refuses (4xx) may fail this many times in a row.
const REFUSALS: u32 = 5;

/// The failed calls in a row of a long-running reader (a log, a Wait).
#[derive(Debug, Default)]
struct Retry {
    failures: u32,
    /// Of them, refusals (4xx) since the last answer or the last time the
    /// API server was away.
    refusals: u32,
    since: Option<tokio::time::Instant>,
}

impl Retry {
    /// One more failed call: the pause before the next try, or the error
    /// once the API server has been away for [`OUTAGE`] (refused calls:
    /// [`REFUSALS`] in a row).
    fn after(&mut self, e: Error, target: &str) -> Result<Duration, Error> {
        self.failures += 1;
        let since = *self.since.get_or_insert_with(tokio::time::Instant::now);
        // Away, or shedding load (429): it answers again later.
        let away = matches!(
            e,
            Error::Unreachable { .. }
                | Error::Timeout { .. }
                | Error::Refused {
                    status: None | Some(429 | 500..=599),
                    ..
                }
        );
        if away {
            self.refusals = 0;
        } else {
            self.refusals += 1;
        }
        if (away && since.elapsed() >= OUTAGE) || self.refusals >= REFUSALS {
            return Err(e);
        }
        if self.failures == 1 && away {
            tracing::warn!(target, error = %e, "the Kubernetes API server is away; trying again for up to {} s", OUTAGE.as_secs());
        }
        // Readers that failed together do not all come back at once.
        let spread = Duration::from_millis(u64::from(rand_ms()) % 250);
        Ok((POLL * self.failures).min(RETRY_MAX) + spread)
    }

    /// The API server answered another call: its outage is over, but
    /// refusals of the call that failed still count.
    fn answered(&mut self) {
        self.failures = 0;
        self.since = None;
    }

    /// A call went through.
    fn reset(&mut self) {
        if self.failures == 0 {
            return;
        }
        tracing::debug!(
            failures = self.failures,
            "the Kubernetes API server answers again"
        );
        *self = Retry::default();
    }
}

/// A few varying milliseconds (the clock's own): enough to spread
/// retries apart, no randomness needed beyond that.
fn rand_ms() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis())
}

/// Where and how chaincode Pods run.
#[derive(Debug, Clone)]
pub struct KubernetesOptions {
    /// The kubeconfig (its current context); `None`: in-cluster.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Empty: the kubeconfig context's namespace (in-cluster: the service
    /// account's), else `default`.
    pub namespace: String,
    /// Chaincode on its node's network (reaches the peer's address as on
    /// Docker), else on the pod network.
    pub host_network: bool,
    /// `Never` (images loaded onto the node) or `IfNotPresent` (pulled by
    /// digest from a registry).
    pub image_pull_policy: String,
    /// Kubernetes quantities; empty: none.
    pub requests: Quantities,
    pub limits: Quantities,
    /// Nodes whose labels have these values (`placement`).
    pub node_selector: std::collections::BTreeMap<String, String>,
    /// Taints a chaincode Pod tolerates.
    pub tolerations: Vec<k8s_openapi::api::core::v1::Toleration>,
    /// Secrets of the namespace with credentials the node pulls with.
    pub image_pull_secrets: Vec<k8s_openapi::api::core::v1::LocalObjectReference>,
    /// A deleted Pod's grace period (0 would be a forced deletion: the
    /// object goes while its container may still run).
    pub grace_seconds: u32,
    /// A Pod of the namespace (name, uid) that owns every chaincode Pod,
    /// so that deleting it deletes them (and their Secrets through them).
    pub owner: Option<(String, String)>,
    /// How long an image pull may keep failing (`ErrImagePull`,
    /// `ImagePullBackOff`) or a Pod stay unschedulable before Wait reports it.
    pub start_deadline: Duration,
    pub timeouts: Timeouts,
}

/// CPU and memory, as Kubernetes quantities (`500m`, `64Mi`); empty: unset.
#[derive(Debug, Clone, Default)]
pub struct Quantities {
    pub cpu: String,
    pub memory: String,
}

impl Default for KubernetesOptions {
    fn default() -> KubernetesOptions {
        KubernetesOptions {
            kubeconfig: None,
            namespace: String::new(),
            host_network: true,
            image_pull_policy: "Never".to_string(),
            requests: Quantities::default(),
            limits: Quantities::default(),
            node_selector: Default::default(),
            tolerations: Vec::new(),
            image_pull_secrets: Vec::new(),
            grace_seconds: 1,
            owner: None,
            start_deadline: Duration::from_secs(60),
            timeouts: Timeouts::default(),
        }
    }
}

/// A Kubernetes namespace's API, running chaincode as Pods.
#[derive(Clone)]
pub struct Kubernetes {
    client: kube::Client,
    /// The API server's URL, for errors.
    server: String,
    namespace: String,
    options: Arc<KubernetesOptions>,
}

impl Kubernetes {
    /// A client of the cluster `options.kubeconfig` names (or in-cluster);
    /// nothing is asked of the API server yet ([`Runner::ping`] does).
    pub async fn connect(options: KubernetesOptions) -> Result<Kubernetes, Error> {
        let config = match &options.kubeconfig {
            Some(path) => from_kubeconfig(path).await?,
            None => kube::Config::incluster().map_err(|e| Error::Setup {
                context: "cannot use the in-cluster service account (set cclaunch.engine.kubernetes.kubeconfig outside a cluster)".to_string(),
                source: Box::new(e),
            })?,
        };
        let server = config.cluster_url.to_string();
        let namespace = match options.namespace.as_str() {
            "" => config.default_namespace.clone(),
            namespace => namespace.to_string(),
        };
        let client = kube::Client::try_from(config).map_err(|e| Error::Setup {
            context: format!("cannot make a client of the Kubernetes API server at {server}"),
            source: Box::new(e),
        })?;
        Ok(Kubernetes {
            client,
            server,
            namespace,
            options: Arc::new(options),
        })
    }

    /// The namespace chaincode Pods go to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn timeouts(&self) -> &Timeouts {
        &self.options.timeouts
    }

    /// One call within `limit`, its error mapped (`target` names the
    /// chaincode or the Pod).
    async fn within<T>(
        &self,
        op: &'static str,
        target: &str,
        limit: Duration,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.fail(op, target, e)),
            Err(_) => Err(Error::Timeout {
                op,
                target: target.to_string(),
                seconds: limit.as_secs().max(1),
            }),
        }
    }

    /// As [`Kubernetes::within`] the request timeout.
    async fn call<T>(
        &self,
        op: &'static str,
        target: &str,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, Error> {
        self.within(op, target, self.timeouts().request, call).await
    }

    /// The API server's error as the runner's: 404 is `NotFound`, a
    /// connection that failed is `Unreachable`, any other answer `Refused`
    /// with its status.
    fn fail(&self, op: &'static str, target: &str, error: kube::Error) -> Error {
        match error {
            kube::Error::Api(response) if response.code == 404 => Error::NotFound {
                what: target.to_string(),
            },
            kube::Error::Api(response) => Error::Refused {
                op,
                target: target.to_string(),
                status: Some(response.code),
                source: Box::new(response),
            },
            e @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => Error::Unreachable {
                endpoint: self.server.clone(),
                reason: crate::error_chain(&e),
            },
            e => Error::Refused {
                op,
                target: target.to_string(),
                status: None,
                source: Box::new(e),
            },
        }
    }
}

/// The client configuration of the kubeconfig at `path`, its errors naming
/// the file.
async fn from_kubeconfig(path: &Path) -> Result<kube::Config, Error> {
    let setting = "cclaunch.engine.kubernetes.kubeconfig";
    if let Err(source) = std::fs::metadata(path) {
        return Err(Error::Io {
            context: format!("cannot read the kubeconfig {} ({setting})", path.display()),
            source,
        });
    }
    let file = kube::config::Kubeconfig::read_from(path).map_err(|e| Error::Setup {
        context: format!("the kubeconfig {} ({setting}) is not valid", path.display()),
        source: Box::new(e),
    })?;
    kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Setup {
            context: format!(
                "the kubeconfig {} ({setting}) names no usable cluster and user",
                path.display()
            ),
            source: Box::new(e),
        })
}

#[async_trait]
impl Runner for Kubernetes {
    /// The API server is ready (`/readyz`), its version, and one listing of
    /// cclaunch's Pods in the namespace (which proves the namespace and the
    /// rights to list there).
    async fn ping(&self) -> Result<EngineInfo, Error> {
        let limit = self.timeouts().health;
        let check = async {
            let ready = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(kube::Error::HttpError)?;
            self.client.request_text(ready).await?;
            let version = self.client.apiserver_version().await?;
            self.pods()
                .list(
                    &ListParams::default()
                        .labels(&names::selector(&[(super::LABEL_MANAGED, "true")]))
                        .limit(1),
                )
                .await?;
            Ok(EngineInfo {
                version: version.git_version,
                api_version: "v1".to_string(),
            })
        };
        let target = format!("namespace {}", self.namespace);
        self.within("check the health of", &target, limit, check)
            .await
    }

    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>, Error> {
        Ok(self.find(name).await?.map(|found| pods::info(&found.pod)))
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, Error> {
        Kubernetes::create_container(self, spec).await
    }

    async fn attach(&self, container: &str) -> Result<OutputStream, Error> {
        Kubernetes::attach(self, container).await
    }

    async fn start_container(&self, container: &str) -> Result<(), Error> {
        self.found(container).await.map(drop)
    }

    async fn stop_container(&self, container: &str, _timeout_secs: i64) -> Result<(), Error> {
        self.found(container).await.map(drop)
    }

    async fn kill_container(&self, container: &str) -> Result<(), Error> {
        self.found(container).await.map(drop)
    }

    async fn remove_container(&self, container: &str) -> Result<(), Error> {
        Kubernetes::remove_container(self, container).await
    }

    async fn wait_container(&self, container: &str) -> Result<i64, Error> {
        Kubernetes::wait_container(self, container).await
    }

    async fn logs(&self, container: &str, query: &LogQuery) -> Result<OutputStream, Error> {
        Kubernetes::logs(self, container, query).await
    }

    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, Error> {
        Kubernetes::list_containers(self, labels).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_reader_waits_out_an_api_server_away_but_not_a_refusal() {
        let away = || Error::Unreachable {
            endpoint: "https://127.0.0.1:6443".into(),
            reason: "connection refused".into(),
        };
        let refused = || Error::Refused {
            op: "read the log of",
            target: "pod x".into(),
            status: Some(403),
            source: "forbidden".into(),
        };
        let mut retry = Retry::default();
        let mut waited = Duration::ZERO;
        let spread = Duration::from_millis(250);
        while let Ok(pause) = retry.after(away(), "pod x") {
            assert!(pause < RETRY_MAX + spread);
            tokio::time::sleep(pause).await;
            waited += pause;
        }
        assert!(
            waited >= OUTAGE && waited < OUTAGE + RETRY_MAX + spread,
            "{waited:?}"
        );
        retry.reset();
        let first = retry.after(away(), "pod x").expect("tries again");
        assert!(first >= POLL && first < POLL + spread, "{first:?}");
        let mut retry = Retry::default();
        let tries = std::iter::from_fn(|| retry.after(refused(), "pod x").ok()).count();
        assert_eq!(tries as u32, REFUSALS - 1);
        // Refusals count in a row: the API server away in between clears them.
        let mut retry = Retry::default();
        for _ in 0..REFUSALS - 1 {
            retry.after(refused(), "pod x").expect("not yet");
        }
        retry.after(away(), "pod x").expect("away");
        retry
            .after(refused(), "pod x")
            .expect("a refusal after the outage starts afresh");
        // Another call answering does not clear the refusals of this one.
        let mut retry = Retry::default();
        for _ in 0..REFUSALS - 1 {
            retry.after(refused(), "pod x").expect("not yet");
            retry.answered();
        }
        assert!(retry.after(refused(), "pod x").is_err());
    }

    async fn connect_error(path: &Path) -> String {
        let options = KubernetesOptions {
            kubeconfig: Some(path.to_path_buf()),
            ..KubernetesOptions::default()
        };
        match Kubernetes::connect(options).await {
            Ok(_) => panic!("connected with {}", path.display()),
            Err(e) => crate::error_chain(&e),
        }
    }

    #[tokio::test]
    async fn a_missing_or_bad_kubeconfig_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.kubeconfig");
        let error = connect_error(&missing).await;
        assert!(
            error.starts_with(&format!(
                "cannot read the kubeconfig {} (cclaunch.engine.kubernetes.kubeconfig)",
                missing.display()
            )),
            "{error}"
        );

        let bad = dir.path().join("bad.kubeconfig");
        std::fs::write(&bad, "clusters: [not: {a: kubeconfig").unwrap();
        let error = connect_error(&bad).await;
        assert!(
            error.starts_with(&format!("the kubeconfig {} (", bad.display())),
            "{error}"
        );

        let empty = dir.path().join("empty.kubeconfig");
        std::fs::write(&empty, "apiVersion: v1\nkind: Config\n").unwrap();
        let error = connect_error(&empty).await;
        assert!(
            error.starts_with(&format!(
                "the kubeconfig {} (cclaunch.engine.kubernetes.kubeconfig) names no usable cluster",
                empty.display()
            )),
            "{error}"
        );
    }
}
