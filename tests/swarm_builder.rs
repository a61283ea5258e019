//! The external builder on a swarm, driven as a stock peer drives it:
//! `cclaunch builder install DIR`, then DIR/bin/{detect,build,release,run}
//! with the peer's arguments and only PATH and CCLAUNCH_SERVER, against a
//! real `cclaunch serve` whose engine is the lab's swarm. `run` holds a
//! chaincode that runs as a service on a worker, mirrors its output, and
//! the service is gone when run ends: killed as the peer kills it (SIGTERM),
//! or on the chaincode's own exit (run exits with its code).
//!
//! Runs under tests/cluster/with-swarm.sh (`make test-swarm`); elsewhere each
//! test says it is skipped.

mod common;

use std::path::Path;

use cclaunch::naming::Scope;
use cclaunch::runtime::swarm::names;
use common::builder::{run_shell, serve_in, text, TICKER};
use common::swarm::Lab;
use common::SHENV;

const BIN: &str = env!("CARGO_BIN_EXE_cclaunch");

/// `cclaunch serve` for `peer` on the lab's swarm, on a unix socket in
/// `dir`; killed when dropped.
async fn sidecar(lab: &Lab, peer: &str, dir: &Path) -> (tokio::process::Child, String) {
    let mut command = std::process::Command::new(BIN);
    command
        .env("CORE_VM_ENDPOINT", lab.endpoint("mgr"))
        .env("CORE_PEER_ID", peer)
        .env("CORE_PEER_NETWORKID", "test")
        .env("CORE_CHAINCODE_NODE_RUNTIME", SHENV)
        .env("CCLAUNCH_STATEDIR", common::state_dir(peer))
        .env("CCLAUNCH_ENGINE_KIND", "swarm")
        .env("CCLAUNCH_REGISTRY_ADDRESS", &lab.registry)
        .env("CCLAUNCH_SWARM_CONSTRAINTS", "node.role==worker");
    serve_in(command, dir).await
}

/// The service that runs the peer's chaincode id, as the manager lists it
/// (empty when there is none).
fn service_of(lab: &Lab, peer: &str, package_id: &str) -> (String, String) {
    let container = Scope::new("test", peer.to_string()).container_name(package_id);
    let service = names::service_name(&container);
    let out = lab.docker(
        &lab.manager,
        &[
            "service",
            "ls",
            "-q",
            "--filter",
            &format!("name={service}"),
        ],
    );
    (service, text(&out.stdout).trim().to_string())
}

fn ran_on_a_worker(lab: &Lab, line: &str) {
    let host = line.strip_prefix("host ").unwrap();
    let node = lab.node_of_hostname(host);
    assert!(
        matches!(node.as_deref(), Some("w1" | "w2")),
        "ran on {host}, not a worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_holds_a_service_on_a_worker_and_sigterm_removes_it() {
    let Some(lab) = Lab::from_env() else { return };
    lab.images(&["busybox", "shenv"]);
    let peer = common::unique_peer("swarmbldterm").to_lowercase();
    let root = tempfile::tempdir().unwrap();
    let (_sidecar, server) = sidecar(&lab, &peer, root.path()).await;
    let (package, _layout, run) = run_shell(root.path(), &server, "bldterm", TICKER);
    ran_on_a_worker(&lab, &run.line_starting("host ").await);
    run.ticking_as(&package.id).await;
    let (service, id) = service_of(&lab, &peer, &package.id);
    assert!(!id.is_empty(), "service {service} runs while run holds it");

    run.sigterm().await;
    assert_eq!(service_of(&lab, &peer, &package.id).1, "");
    assert!(
        lab.peer_leftovers(&peer).is_empty(),
        "{:?}",
        lab.peer_leftovers(&peer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ends_with_the_chaincodes_exit_code_and_leaves_no_service() {
    let Some(lab) = Lab::from_env() else { return };
    lab.images(&["busybox", "shenv"]);
    let peer = common::unique_peer("swarmbldexit").to_lowercase();
    let root = tempfile::tempdir().unwrap();
    let (_sidecar, server) = sidecar(&lab, &peer, root.path()).await;
    let (package, _layout, run) = run_shell(
        root.path(),
        &server,
        "bldexit",
        "echo \"host $(hostname)\"\nfor i in 1 2 3; do echo \"line $i\"; done\nexit 7\n",
    );
    let lines = run
        .exited_with(7, "line ", &["line 1", "line 2", "line 3"])
        .await;
    let host = lines
        .iter()
        .find(|l| l.starts_with("host "))
        .unwrap_or_else(|| panic!("no host line in {lines:?}"));
    ran_on_a_worker(&lab, host);
    assert_eq!(service_of(&lab, &peer, &package.id).1, "");
    assert!(
        lab.peer_leftovers(&peer).is_empty(),
        "{:?}",
        lab.peer_leftovers(&peer)
    );
}
