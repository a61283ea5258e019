//! The faces that build and run in one go, on the real single-node
//! Kubernetes of tests/cluster with `imageSource: registry`: the host's
//! Docker engine builds, cclaunch pushes to the lab registry, and the Pod
//! runs the image by digest, pulled by the lab's containerd.
//! - The external builder, driven as a stock peer drives it
//!   (DIR/bin/{detect,build,release,run} with only PATH and CCLAUNCH_SERVER)
//!   against a `cclaunch serve` whose engine is the lab: `run` holds a Pod,
//!   mirrors its output in order and removes it when the peer SIGTERMs run,
//!   or ends with the chaincode's exit code; no Pod or Secret is left.
//! - `cclaunch try` run in the lab's network namespace: a Go chaincode
//!   (golang-shim, built by Fabric's `-mod=vendor` road) runs as a
//!   host-network Pod, registers with try's devpeer over mutual TLS and
//!   answers invokes; nothing of the peer is left.
//!
//! Runs under tests/cluster/with-k8s.sh (`make test-k8s`); elsewhere each
//! test says it is skipped.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cclaunch::package::{self, Metadata};
use common::builder::{run_shell, serve_in, TICKER};
use common::k8s::Cluster;
use common::SHENV;

const BIN: &str = env!("CARGO_BIN_EXE_cclaunch");

/// The environment of a cclaunch process for `peer` on the lab, its images
/// pushed to the lab registry and run from there.
fn on_the_lab(command: &mut Command, lab: &Cluster, peer: &str) {
    command
        .env("CORE_VM_ENDPOINT", common::endpoint())
        .env("CORE_PEER_ID", peer)
        .env("CORE_PEER_NETWORKID", "test")
        .env("CCLAUNCH_STATEDIR", common::state_dir(peer))
        .env("CCLAUNCH_ENGINE_KIND", "kubernetes")
        .env("CCLAUNCH_ENGINE_KUBERNETES_KUBECONFIG", &lab.sa_kubeconfig)
        .env("CCLAUNCH_ENGINE_KUBERNETES_NAMESPACE", &lab.namespace)
        .env("CCLAUNCH_ENGINE_KUBERNETES_IMAGESOURCE", "registry")
        .env("CCLAUNCH_REGISTRY_ADDRESS", &lab.registry)
        .env("RUST_LOG", "off")
        .env_remove(cclaunch::client::SERVER_ENV);
}

/// Removes what a test's peer left: its Pods and Secrets in the lab, its
/// images and state on the host.
struct Cleanup {
    lab: Cluster,
    peer: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.lab.delete_peer_objects(&self.peer);
        common::cleanup(&self.peer);
    }
}

/// `cclaunch serve` for `peer` in the lab's network namespace, on a unix
/// socket in `dir` (unix sockets cross namespaces); killed when dropped.
async fn sidecar(lab: &Cluster, peer: &str, dir: &Path) -> (tokio::process::Child, String) {
    let mut command = lab.command(BIN);
    command.env("CORE_CHAINCODE_NODE_RUNTIME", SHENV);
    on_the_lab(&mut command, lab, peer);
    serve_in(command, dir).await
}

/// The peer's Pods as `name image imagePullPolicy` lines.
fn pods_of(lab: &Cluster, peer: &str) -> Vec<String> {
    let template = r#"{range .items[*]}{.metadata.name} {.spec.containers[0].image} {.spec.containers[0].imagePullPolicy}{"\n"}{end}"#;
    let out = lab.kubectl(&[
        "get",
        "pods",
        "-n",
        &lab.namespace,
        "-l",
        &format!("org.cclaunch.peer-id={peer}"),
        "-o",
        &format!("jsonpath={template}"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        common::builder::text(&out.stderr)
    );
    common::builder::text(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_external_builder_runs_a_pod_pulled_by_digest_and_sigterm_on_run_removes_it() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let peer = common::unique_peer("k8sbldterm").to_lowercase();
    let _cleanup = Cleanup {
        lab: lab.clone(),
        peer: peer.clone(),
    };
    let root = tempfile::tempdir().unwrap();
    let (_sidecar, server) = sidecar(&lab, &peer, root.path()).await;
    let (package, _layout, run) = run_shell(root.path(), &server, "k8sbldterm", TICKER);
    run.ticking_as(&package.id).await;
    // One Pod, its image the pushed one by digest, pulled when not present.
    let pods = pods_of(&lab, &peer);
    assert_eq!(pods.len(), 1, "{pods:?}");
    let fields: Vec<&str> = pods[0].split(' ').collect();
    let image = fields[1];
    assert!(
        image.starts_with(&format!("{}/", lab.registry)) && image.contains("@sha256:"),
        "the Pod runs the pushed image by digest: {image}"
    );
    assert_eq!(fields[2], "IfNotPresent", "{pods:?}");

    let lines = run.sigterm().await;
    let said: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("cclaunch: "))
        .collect();
    eprintln!("run said: {said:?}");
    // A Pod goes once its kubelet has ended it (3-5 s on the lab); the
    // sidecar finishes the stop even when run's own 4 s are up, and run
    // says so.
    assert!(
        said.iter().any(|l| l.contains("SIGTERM: stopped chaincode")
            || l.ends_with("within 4 s; it goes on stopping it")),
        "{said:?}"
    );
    assert!(
        common::eventually(Duration::from_secs(30), || lab
            .peer_objects(&peer)
            .is_empty())
        .await,
        "{:?}",
        lab.peer_objects(&peer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ends_with_the_chaincodes_exit_code_and_leaves_no_pod_or_secret() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let peer = common::unique_peer("k8sbldexit").to_lowercase();
    let _cleanup = Cleanup {
        lab: lab.clone(),
        peer: peer.clone(),
    };
    let root = tempfile::tempdir().unwrap();
    let (_sidecar, server) = sidecar(&lab, &peer, root.path()).await;
    let (_package, _layout, run) = run_shell(
        root.path(),
        &server,
        "k8sbldexit",
        "for i in 1 2 3; do echo \"line $i\"; done\nexit 7\n",
    );
    run.exited_with(7, "line ", &["line 1", "line 2", "line 3"])
        .await;
    assert_eq!(lab.peer_objects(&peer), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_runs_a_go_chaincode_as_a_pod_that_registers_over_mutual_tls_and_answers() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let peer = common::unique_peer("k8stry").to_lowercase();
    let _cleanup = Cleanup {
        lab: lab.clone(),
        peer: peer.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let code = common::golang_shim(dir.path());
    let file = dir.path().join("k8stry_1.0.tar.gz");
    let metadata = Metadata {
        path: "example.com/cclaunch/shimcc".into(),
        kind: "golang".into(),
        label: "k8stry_1.0".into(),
    };
    let id = package::write(&metadata, &code, &file).expect("package");
    let mut command = lab.command(BIN);
    command
        .env("CORE_CHAINCODE_BUILDER", common::CCENV)
        .env("CORE_CHAINCODE_GOLANG_RUNTIME", common::BUSYBOX);
    on_the_lab(&mut command, &lab, &peer);
    common::try_put_get(command, &file, &[], &id, "127.0.0.1").await;
    assert_eq!(lab.peer_objects(&peer), Vec::<String>::new());
}
