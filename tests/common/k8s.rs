//! The Kubernetes lab of tests/cluster: a real single-node Kubernetes 1.20.2
//! (etcd, API server, controller-manager, scheduler, kubelet, containerd)
//! whose every process runs in one network namespace with nothing but
//! loopback and the pod bridge. `tests/cluster/with-k8s.sh CMD` brings one up
//! and exports where it is; [`Cluster::from_env`] reads that, and is `None`
//! outside the wrapper (the test then skips, saying so).
//!
//! Network rule: the API server listens on 127.0.0.1:6443 *inside* the
//! namespace; the host's namespace cannot reach it, and nothing in the lab can
//! reach outside it. A Rust client therefore runs on a runtime whose threads
//! entered the namespace ([`Cluster::block_on`]); a process runs there
//! through tests/cluster/in-k8s.sh ([`Cluster::command`]).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running lab, as `with-k8s.sh` exported it.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The lab's prefix (network namespace and cgroup names).
    pub prefix: String,
    /// The lab directory (tests/cluster/k8s.sh describes its layout).
    pub dir: PathBuf,
    /// Name of the network namespace (under /run/netns).
    pub netns: String,
    /// The API server's URL, valid inside the namespace.
    pub api: String,
    /// Kubeconfig of the cluster admin (client certificate, system:masters).
    pub kubeconfig: PathBuf,
    /// Kubeconfig of the service account cclaunch/cclaunch (a token; the
    /// Role of tests/cluster/k8s-rbac.yaml, in [`Cluster::namespace`] only).
    pub sa_kubeconfig: PathBuf,
    /// The tests' namespace.
    pub namespace: String,
    /// The lab build's binaries (kubectl, kube-apiserver, ...).
    pub bin: PathBuf,
    /// The lab containerd's socket (images: [`Cluster::images`]).
    pub containerd: PathBuf,
    /// The pod bridge's address: where pods on the pod network reach the
    /// lab's namespace.
    pub pod_gateway: IpAddr,
    /// The lab registry (plain HTTP): the host's engine pushes there, the
    /// lab's containerd pulls from it, by the same address.
    pub registry: String,
}

const VARS: [&str; 11] = [
    "CCLAUNCH_K8S_PREFIX",
    "CCLAUNCH_K8S_LAB",
    "CCLAUNCH_K8S_NETNS",
    "CCLAUNCH_K8S_API",
    "CCLAUNCH_K8S_KUBECONFIG",
    "CCLAUNCH_K8S_SA_KUBECONFIG",
    "CCLAUNCH_K8S_NAMESPACE",
    "CCLAUNCH_K8S_BIN",
    "CCLAUNCH_K8S_CONTAINERD",
    "CCLAUNCH_K8S_POD_GATEWAY",
    "CCLAUNCH_K8S_REGISTRY",
];

impl Cluster {
    /// The lab the wrapper exported, or `None` (with a line on stderr naming
    /// the test, from its thread's name, and how to run it) when the
    /// variables are absent.
    pub fn from_env() -> Option<Cluster> {
        let get = super::lab_vars(
            &VARS,
            "Kubernetes lab",
            "tests/cluster/with-k8s.sh, as `make test-k8s` does",
        )?;
        Some(Cluster {
            prefix: get("CCLAUNCH_K8S_PREFIX"),
            dir: get("CCLAUNCH_K8S_LAB").into(),
            netns: get("CCLAUNCH_K8S_NETNS"),
            api: get("CCLAUNCH_K8S_API"),
            kubeconfig: get("CCLAUNCH_K8S_KUBECONFIG").into(),
            sa_kubeconfig: get("CCLAUNCH_K8S_SA_KUBECONFIG").into(),
            namespace: get("CCLAUNCH_K8S_NAMESPACE"),
            bin: get("CCLAUNCH_K8S_BIN").into(),
            containerd: get("CCLAUNCH_K8S_CONTAINERD").into(),
            pod_gateway: get("CCLAUNCH_K8S_POD_GATEWAY")
                .parse()
                .expect("CCLAUNCH_K8S_POD_GATEWAY is an IP address"),
            registry: get("CCLAUNCH_K8S_REGISTRY"),
        })
    }

    /// A lab script (tests/cluster/NAME) with the lab's environment.
    pub fn script(&self, name: &str) -> Command {
        let mut command = Command::new(super::repo().join("tests/cluster").join(name));
        command
            .env("CCLAUNCH_K8S_PREFIX", &self.prefix)
            .env("CCLAUNCH_K8S_LAB", &self.dir);
        command
    }

    /// Puts images of the host's engine into the lab's containerd
    /// (tests/cluster/k8s-images.sh): `busybox` for
    /// `cclaunch-test/busybox:latest`, or any reference the host engine has.
    /// An image already there costs nothing. Pods use them with
    /// `imagePullPolicy: Never`.
    pub fn images(&self, images: &[&str]) {
        let out = self
            .script("k8s-images.sh")
            .args(images)
            .output()
            .expect("run tests/cluster/k8s-images.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprint!("{stderr}");
        assert!(
            out.status.success(),
            "tests/cluster/k8s-images.sh {images:?} failed ({}): {stderr}",
            out.status
        );
    }

    /// Runs `f` on a thread of its own that entered the lab's network
    /// namespace: every socket `f` makes (listening or connecting) lives
    /// there and keeps working when handed to other threads, and every
    /// thread the new thread starts is in the namespace too.
    pub fn in_netns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        super::in_netns(&self.netns, f)
    }

    /// Runs `future` to completion on a tokio runtime made inside the lab's
    /// network namespace: its worker and blocking threads are started from
    /// there, so every connection the future and its tasks open (a Kubernetes
    /// client, a server for pods) is in the namespace. Make clients inside
    /// the future ([`Cluster::client`]): a client lives on its runtime.
    pub fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.in_netns(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime in the lab's namespace")
                .block_on(future)
        })
    }

    /// A Kubernetes client as the cluster admin. Call it inside
    /// [`Cluster::block_on`].
    pub async fn client(&self) -> kube::Client {
        client(&self.kubeconfig).await
    }

    /// A Kubernetes client as the service account cclaunch/cclaunch (least
    /// privilege). Call it inside [`Cluster::block_on`].
    pub async fn sa_client(&self) -> kube::Client {
        client(&self.sa_kubeconfig).await
    }

    /// A listener on 127.0.0.1 in the lab's namespace (port 0: any free
    /// port), reachable from pods with `hostNetwork: true`.
    pub fn listener(&self, port: u16) -> TcpListener {
        self.in_netns(move || TcpListener::bind((Ipv4Addr::LOCALHOST, port)))
            .unwrap_or_else(|e| panic!("listen on 127.0.0.1:{port} in the lab: {e}"))
    }

    /// `program` run in the lab's network namespace
    /// (tests/cluster/in-k8s.sh): the cclaunch binary or a server that pods
    /// dial on 127.0.0.1.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = self.script("in-k8s.sh");
        command.arg(program);
        command
    }

    /// kubectl as the admin, in the lab's namespace (cleanup in Drop,
    /// diagnostics).
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        self.command(self.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=30s")
            .args(args)
            .output()
            .expect("run kubectl in the lab")
    }

    /// The Pods and Secrets of `peer` (cclaunch's peer label) in the tests'
    /// namespace, as `kind/name`.
    pub fn peer_objects(&self, peer: &str) -> Vec<String> {
        let out = self.kubectl(&[
            "get",
            "pods,secrets",
            "-n",
            &self.namespace,
            "-l",
            &format!("org.cclaunch.peer-id={peer}"),
            "-o",
            "name",
        ]);
        assert!(
            out.status.success(),
            "kubectl get: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Deletes the Pods and Secrets of `peer` at once (a test's cleanup:
    /// kubectl, so it also works while panicking); says what failed.
    pub fn delete_peer_objects(&self, peer: &str) {
        let out = self.kubectl(&[
            "delete",
            "pods,secrets",
            "-n",
            &self.namespace,
            "-l",
            &format!("org.cclaunch.peer-id={peer}"),
            "--grace-period=0",
            "--force",
            "--wait=false",
        ]);
        if !out.status.success() {
            eprintln!(
                "cleanup of peer {peer}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let file = kube::config::Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("read {}: {e}", kubeconfig.display()));
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", kubeconfig.display()));
    kube::Client::try_from(config)
        .unwrap_or_else(|e| panic!("client for {}: {e}", kubeconfig.display()))
}
