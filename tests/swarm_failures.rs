//! What the CLI says on a swarm when something it needs is gone: a registry
//! that is down at push, a manager endpoint that accepts connections and
//! never answers, a manager whose dockerd was killed. Each is a clear error
//! naming the chaincode or the endpoint, within a bounded time, and nothing
//! is left half-done on the swarm.
//!
//! The silent manager needs no lab (it runs under plain `cargo test` too);
//! the others run under tests/cluster/with-swarm.sh (`make test-swarm`) and
//! elsewhere say they are skipped.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::swarm::Lab;

/// Held for writing by the test that kills the manager; the others that use
/// the lab hold it for reading.
static MANAGER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// `cclaunch ARGS` as `peer` with `engine.kind: swarm`, builds on
/// `build_engine`, the swarm at `manager` (empty: the build engine), pushing
/// to `registry`: (exit code, stdout, stderr, how long it took).
async fn run(
    build_engine: &str,
    manager: &str,
    registry: &str,
    peer: &str,
    args: &[&str],
) -> (Option<i32>, String, String, Duration) {
    let started = Instant::now();
    let limit = Duration::from_secs(300);
    let (code, stdout, stderr) =
        common::swarm::cclaunch(build_engine, manager, registry, peer, args, limit).await;
    (code, stdout, stderr, started.elapsed())
}

/// A shell package (shenv runs start.sh) in `dir`: its path.
fn shell_package(dir: &Path, label: &str, script: &str) -> String {
    let code = dir.join(format!("{label}-src"));
    std::fs::create_dir_all(&code).expect("mkdir");
    std::fs::write(code.join("start.sh"), script).expect("write start.sh");
    let file = dir.join(format!("{label}.tar.gz"));
    let metadata = cclaunch::package::Metadata {
        path: String::new(),
        kind: "node".into(),
        label: label.into(),
    };
    cclaunch::package::write(&metadata, &code, &file).expect("package");
    file.display().to_string()
}

/// A port on the hub's address that nothing listens on: a registry that is
/// down (the manager's connection to it is refused).
fn closed_hub_port(lab: &Lab) -> u16 {
    let addr = lab.hub_addr;
    lab.in_hub(move || {
        std::net::TcpListener::bind((addr, 0))
            .expect("bind in the hub")
            .local_addr()
            .expect("address")
            .port()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_down_at_push_fails_the_build_naming_the_chaincode_and_the_registry() {
    let Some(lab) = Lab::from_env() else { return };
    let _manager = MANAGER.read().await;
    lab.images(&["busybox", "shenv"]);
    let peer = common::unique_peer("swarmnoreg").to_lowercase();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = shell_package(dir.path(), "noreg", "echo never\n");
    let registry = format!("{}:{}", lab.hub_addr, closed_hub_port(&lab));
    let manager = lab.endpoint("mgr");

    let (code, id, stderr, _) = run(&manager, "", &registry, &peer, &["package-id", &file]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let id = id.trim().to_string();
    let (code, stdout, stderr, took) = run(&manager, "", &registry, &peer, &["build", &file]).await;
    eprintln!("build with the registry down failed in {took:.1?}: {stderr}");
    assert_ne!(code, Some(0), "{stdout}{stderr}");
    assert!(stderr.contains(&id), "the chaincode is named: {stderr}");
    assert!(
        stderr.contains(&registry),
        "the registry is named: {stderr}"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");

    // A start cannot run what never reached the registry: the same error,
    // and nothing of it on the swarm.
    let (code, stdout, stderr, _) = run(
        &manager,
        "",
        &registry,
        &peer,
        &["start", &file, "--peer-address", "127.0.0.1:7052"],
    )
    .await;
    assert_ne!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains(&id) && stderr.contains(&registry),
        "{stderr}"
    );
    assert!(
        lab.peer_leftovers(&peer).is_empty(),
        "{:?}",
        lab.peer_leftovers(&peer)
    );
}

/// The verbs that talk to the swarm, each with the time it took to fail.
async fn every_swarm_verb_fails_naming(
    build_engine: &str,
    manager: &str,
    peer: &str,
    dir: &Path,
    within: Duration,
) {
    let file = shell_package(dir, "nomanager", "echo never\n");
    let registry = "10.99.0.1:5000";
    let (code, id, stderr, _) = run(
        build_engine,
        manager,
        registry,
        peer,
        &["package-id", &file],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let id = id.trim().to_string();
    for args in [
        vec!["ps"],
        vec!["wait", id.as_str()],
        vec!["stop", id.as_str()],
        vec!["logs", id.as_str()],
    ] {
        let (code, stdout, stderr, took) = run(build_engine, manager, registry, peer, &args).await;
        eprintln!("{args:?} failed in {took:.1?}: {}", stderr.trim());
        assert_ne!(code, Some(0), "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains(manager),
            "{args:?}: the manager's endpoint is named: {stderr}"
        );
        assert!(took < within, "{args:?} took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_that_never_answers_fails_every_verb_within_the_timeout_naming_it() {
    // Accepts connections (the kernel completes them) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let manager = format!("tcp://{}", silent.local_addr().expect("address"));
    let peer = common::unique_peer("swarmsilent").to_lowercase();
    let dir = tempfile::tempdir().expect("temp dir");
    // The request timeout (cclaunch.engine.requestTimeout, 15 s) and the
    // process around it.
    every_swarm_verb_fails_naming(
        &common::endpoint(),
        &manager,
        &peer,
        dir.path(),
        Duration::from_secs(25),
    )
    .await;
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_manager_fails_every_verb_at_once_naming_its_endpoint() {
    let Some(lab) = Lab::from_env() else { return };
    let _manager = MANAGER.write().await;
    let peer = common::unique_peer("swarmmgrdown").to_lowercase();
    let dir = tempfile::tempdir().expect("temp dir");
    let manager = lab.endpoint("mgr");
    lab.kill_node("mgr");
    struct Restart(Lab);
    impl Drop for Restart {
        fn drop(&mut self) {
            self.0.start_node("mgr");
        }
    }
    let restart = Restart(lab.clone());
    // Its socket is left behind with nothing listening: refused at once.
    every_swarm_verb_fails_naming(
        &common::endpoint(),
        &manager,
        &peer,
        dir.path(),
        Duration::from_secs(10),
    )
    .await;
    drop(restart);
    // Back for the tests that follow: the swarm answers again.
    let answers = common::eventually(Duration::from_secs(60), || {
        lab.docker(&manager, &["node", "ls", "-q"]).status.success()
    })
    .await;
    assert!(answers, "the manager came back");
}
