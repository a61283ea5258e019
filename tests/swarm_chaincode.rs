//! Real chaincode on a real swarm: a Go chaincode and the Node chaincode on
//! the npm fabric-shim (the same testdata/chaincode samples tests/devpeer.rs
//! runs on Docker) are built by cclaunch on the manager's engine, pushed to
//! the lab registry, and run as services on a worker; they dial a devpeer
//! that listens in the hub over mutual TLS, register and answer invokes. The
//! Go chaincode is golang-shim: our own minimal shim (Fabric's Go shim cannot
//! be fetched here) on grpc vendored from Debian.
//!
//! The lab's nodes have no route out, so `npm install` in the build
//! container cannot reach the npm registry: the test installs the Node
//! chaincode's dependencies on the host engine first (as a developer
//! vendoring node_modules into the package), and Fabric's node build on the
//! manager then runs `npm install --production` with nothing to fetch.
//!
//! Runs under tests/cluster/with-swarm.sh (`make test-swarm`); elsewhere it
//! says it is skipped.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cclaunch::devpeer::ca::DevCa;
use cclaunch::devpeer::{Creator, DevPeer, TlsSetup};
use cclaunch::launcher::{Launcher, StartRequest};
use cclaunch::package::{Limits, Metadata, Package};
use cclaunch::runtime::docker::Docker;
use cclaunch::runtime::swarm::{names, Swarm, SwarmOptions};
use common::swarm::Lab;
use common::{captured, eventually};

/// A devpeer serving in the hub (mutual TLS), where the workers reach it.
/// Its server runs on a thread of its own in the hub's namespace; the test
/// drives it through `peer` (a handle on the same state) from anywhere.
struct HubPeer {
    peer: DevPeer,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HubPeer {
    fn start(lab: &Lab, ca: &DevCa) -> HubPeer {
        let admin = ca.client("Admin@Org1MSP").expect("admin identity");
        let peer = DevPeer::new(Creator {
            msp_id: "Org1MSP".into(),
            cert_pem: admin.client_cert,
        });
        let server = ca
            .server(&[lab.hub_addr.to_string()])
            .expect("server identity");
        let tls = TlsSetup {
            cert_pem: server.cert_pem,
            key_pem: server.key_pem,
            client_ca_pem: ca.ca_pem(),
        };
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (serving, hub, at) = (peer.clone(), lab.clone(), lab.hub_addr);
        let thread = std::thread::spawn(move || {
            hub.in_hub(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime in the hub");
                runtime.block_on(async move {
                    let listening = serving
                        .listen(SocketAddr::new(at, 0), Some(tls))
                        .await
                        .expect("devpeer listens in the hub");
                    addr_tx.send(listening.addr).expect("report the address");
                    let _ = stopped.await;
                    listening.shutdown().await;
                })
            })
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("devpeer listening in the hub");
        HubPeer {
            peer,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for HubPeer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A launcher on the lab as the CLI road makes it for `engine.kind: swarm`:
/// builds on the manager's engine, pushes to the lab registry, runs
/// services on the workers.
async fn launcher(lab: &Lab, peer: &str) -> Launcher {
    let manager = lab.endpoint("mgr");
    let config = common::config(
        peer,
        &[
            ("CORE_VM_ENDPOINT", manager.as_str()),
            ("CCLAUNCH_ENGINE_KIND", "swarm"),
            ("CCLAUNCH_REGISTRY_ADDRESS", lab.registry.as_str()),
        ],
    );
    let timeouts = (&config.cclaunch.engine).into();
    let docker = Arc::new(
        Docker::connect(&manager)
            .await
            .expect("manager engine")
            .with_timeouts(timeouts),
    );
    let options = SwarmOptions {
        constraints: vec!["node.role==worker".into()],
        timeouts,
        ..SwarmOptions::default()
    };
    let swarm = Arc::new(Swarm::connect(&manager, options).await.expect("swarm"));
    let registry = config.registry().expect("registry").expect("set");
    let launcher = Launcher::with_runner(docker, swarm, config).with_registry(registry);
    launcher.claim().expect("claimed");
    launcher
}

fn metadata(kind: &str, label: &str, path: &str) -> Metadata {
    Metadata {
        path: path.into(),
        kind: kind.into(),
        label: label.into(),
    }
}

fn package(dir: &Path, kind: &str, label: &str, path: &str, code: &Path) -> Package {
    let file = dir.join(format!("{label}.tar.gz"));
    cclaunch::package::write(&metadata(kind, label, path), code, &file).expect("package");
    Package::open(&file, Limits::default()).expect("package is valid")
}

/// The swarm node (`w1`, `w2`, `mgr`) whose task runs `service`.
fn node_of(lab: &Lab, service: &str) -> String {
    let out = lab.docker(
        &lab.manager,
        &[
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}}",
            service,
        ],
    );
    let hostname = String::from_utf8_lossy(&out.stdout).trim().to_string();
    lab.node_of_hostname(&hostname)
        .unwrap_or_else(|| panic!("service {service} runs on {hostname:?}"))
}

fn lines_of(container: &str) -> Vec<String> {
    captured().for_target(&format!("peer.chaincode.{container}"))
}

fn start_request(package: &Package, hub: &HubPeer, ca: &DevCa) -> StartRequest {
    StartRequest {
        package_id: package.id.clone(),
        platform: None,
        peer_address: hub.addr.to_string(),
        tls: Some(ca.client(&package.id).expect("client identity")),
        msp_id: None,
        extra_env: Vec::new(),
        image_of: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_chaincode_on_the_real_shim_registers_over_mutual_tls_from_a_worker_and_answers_invokes(
) {
    let Some(lab) = Lab::from_env() else { return };
    let _ = captured();
    let dir = tempfile::tempdir().expect("temp dir");
    let code = common::node::shim_with_dependencies(dir.path());
    let images = Instant::now();
    lab.images(&["nodeenv"]);
    eprintln!("nodeenv on the manager in {:.1?}", images.elapsed());
    let peer = common::unique_peer("swarmnode").to_lowercase();
    let launcher = launcher(&lab, &peer).await;
    let package = common::node::package_with_node_modules(dir.path(), "swarmshim_1.0", &code);

    let built = Instant::now();
    let progress = std::sync::Mutex::new(Vec::<String>::new());
    let record = |line: &str| progress.lock().unwrap().push(line.to_string());
    launcher
        .build(&package, &record)
        .await
        .unwrap_or_else(|e| panic!("build: {e:#} {:?}", progress.lock().unwrap()));
    eprintln!("built and pushed in {:.1?}", built.elapsed());

    let ca = DevCa::new().expect("CA");
    let hub = HubPeer::start(&lab, &ca);
    let started = Instant::now();
    let running = launcher
        .start(start_request(&package, &hub, &ca))
        .await
        .expect("start");
    let service = names::service_name(&running.container);
    tokio::time::timeout(
        Duration::from_secs(120),
        hub.peer.wait_registered(&package.id),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "never registered; its output: {:?}",
            lines_of(&running.container)
        )
    });
    eprintln!(
        "registered {:.1?} after start (image pulled by the worker)",
        started.elapsed()
    );
    let node = node_of(&lab, &service);
    assert!(matches!(node.as_str(), "w1" | "w2"), "ran on {node}");

    common::assert_put_get(&hub.peer, &package.id).await;
    let nope = common::invoke(&hub.peer, &package.id, &["nope"]).await;
    assert_eq!(nope.status, 500, "an unknown function is an error status");
    assert!(
        eventually(Duration::from_secs(30), || lines_of(&running.container)
            .iter()
            .any(|l| l.contains("node-shim") && l.contains("put")))
        .await,
        "its own log lines are mirrored: {:?}",
        lines_of(&running.container)
    );

    launcher.stop(&package.id).await.expect("stopped");
    assert!(
        lab.peer_leftovers(&peer).is_empty(),
        "{:?}",
        lab.peer_leftovers(&peer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_chaincode_with_vendored_grpc_registers_over_mutual_tls_from_a_worker_and_answers_invokes(
) {
    let Some(lab) = Lab::from_env() else { return };
    let _ = captured();
    let images = Instant::now();
    lab.images(&["ccenv", "busybox"]);
    eprintln!("ccenv, busybox on the manager in {:.1?}", images.elapsed());
    let dir = tempfile::tempdir().expect("temp dir");
    // Vendored, so the manager's build (no route out) needs no module proxy.
    let code = common::golang_shim(dir.path());
    let peer = common::unique_peer("swarmgo").to_lowercase();
    let launcher = launcher(&lab, &peer).await;
    let package = package(
        dir.path(),
        "golang",
        "swarmgo_1",
        "example.com/cclaunch/shimcc",
        &code,
    );
    let built = Instant::now();
    launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    eprintln!("built and pushed in {:.1?}", built.elapsed());

    let ca = DevCa::new().expect("CA");
    let hub = HubPeer::start(&lab, &ca);
    let started = Instant::now();
    let running = launcher
        .start(start_request(&package, &hub, &ca))
        .await
        .expect("start");
    tokio::time::timeout(
        Duration::from_secs(120),
        hub.peer.wait_registered(&package.id),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "never registered; its output: {:?}",
            lines_of(&running.container)
        )
    });
    eprintln!(
        "registered {:.1?} after start (image pulled by the worker)",
        started.elapsed()
    );
    let node = node_of(&lab, &names::service_name(&running.container));
    assert!(matches!(node.as_str(), "w1" | "w2"), "ran on {node}");

    common::assert_put_get(&hub.peer, &package.id).await;
    let nope = common::invoke(&hub.peer, &package.id, &["nope"]).await;
    assert_eq!(
        (nope.status, nope.message.as_str()),
        (500, "unknown function nope")
    );
    let registered = format!("shim: registered as {}", package.id);
    assert!(
        eventually(Duration::from_secs(30), || {
            let lines = lines_of(&running.container);
            lines.contains(&registered) && lines.iter().any(|l| l == "shimcc: Invoke put k1 v1")
        })
        .await,
        "its own log lines are mirrored: {:?}",
        lines_of(&running.container)
    );

    launcher.stop(&package.id).await.expect("stopped");
    assert!(
        lab.peer_leftovers(&peer).is_empty(),
        "{:?}",
        lab.peer_leftovers(&peer)
    );
}

/// `cclaunch try` on a swarm: the CLI runs where the workers reach it (the
/// hub), devpeer listens there at `--listen`, and the Node chaincode, built
/// on the manager and run on a worker, registers with it over mutual TLS and
/// answers; at the end nothing of the peer is left on the swarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_runs_a_chaincode_on_a_worker_against_a_devpeer_listening_where_the_workers_reach_it() {
    let Some(lab) = Lab::from_env() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let code = common::node::shim_with_dependencies(dir.path());
    lab.images(&["nodeenv"]);
    let peer = common::unique_peer("swarmtry").to_lowercase();
    let package = common::node::package_with_node_modules(dir.path(), "swarmtry_1.0", &code);
    let file = dir.path().join("swarmtry_1.0.tar.gz");
    let listen = format!("{}:0", lab.hub_addr);
    let mut command = lab.hub_command(env!("CARGO_BIN_EXE_cclaunch"));
    command
        .env("CORE_VM_ENDPOINT", lab.endpoint("mgr"))
        .env("CORE_PEER_ID", &peer)
        .env("CORE_PEER_NETWORKID", "test")
        .env("CORE_CHAINCODE_NODE_RUNTIME", common::NODEENV)
        .env("CCLAUNCH_STATEDIR", common::state_dir(&peer))
        .env("CCLAUNCH_ENGINE_KIND", "swarm")
        .env("CCLAUNCH_REGISTRY_ADDRESS", &lab.registry)
        .env("CCLAUNCH_SWARM_CONSTRAINTS", "node.role==worker")
        .env("RUST_LOG", "off")
        .env_remove(cclaunch::client::SERVER_ENV);
    common::try_put_get(
        command,
        &file,
        &["--listen", &listen],
        &package.id,
        &lab.hub_addr.to_string(),
    )
    .await;
    assert!(
        lab.peer_leftovers(&peer).is_empty(),
        "{:?}",
        lab.peer_leftovers(&peer)
    );
}
