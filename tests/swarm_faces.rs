//! The CLI on a real swarm (`cclaunch.engine.kind: swarm`): a package is
//! built on the manager's engine, pushed to the lab registry, and runs as a
//! service on a worker by digest, with the peer's TLS files in place; its
//! output, exit code, listing and stop come back through the same verbs as
//! on Docker, and stop leaves no service, secret or config behind.
//!
//! Runs under tests/cluster/with-swarm.sh (`make test-swarm`); elsewhere it
//! says it is skipped.

mod common;

use std::path::Path;
use std::time::Duration;

use common::swarm::Lab;
use common::SHENV;

/// The binary as `peer` on the lab, chaincode on its workers: (exit code,
/// stdout, stderr).
async fn run(lab: &Lab, peer: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let limit = Duration::from_secs(300);
    common::swarm::cclaunch(&lab.endpoint("mgr"), "", &lab.registry, peer, args, limit).await
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path.display().to_string()
}

/// The manager's answer to `docker ARGS` (stdout, trimmed).
fn on_manager(lab: &Lab, args: &[&str]) -> String {
    let out = lab.docker(&lab.endpoint("mgr"), args);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_builds_pushes_and_runs_chaincode_as_a_service_on_a_worker() {
    let Some(lab) = Lab::from_env() else { return };
    lab.images(&["busybox", "shenv"]);
    let peer = common::unique_peer("swarmcli").to_lowercase();
    let dir = tempfile::tempdir().expect("temp dir");
    let code = dir.path().join("src");
    std::fs::create_dir_all(&code).expect("mkdir");
    // Prints where it runs, its id, and a digest of each TLS file with its
    // mode, then exits 3.
    std::fs::write(
        code.join("start.sh"),
        "echo \"host $(hostname)\"\necho \"id $CORE_CHAINCODE_ID_NAME\"\nfor f in client.key client.crt client_pem.key client_pem.crt peer.crt; do\n  p=/etc/hyperledger/fabric/$f\n  echo \"file $f $(stat -c %a $p) $(sha256sum < $p | cut -c1-64)\"\ndone\nexit 3\n",
    )
    .expect("write start.sh");
    let file = dir.path().join("cc.tar.gz");
    let metadata = cclaunch::package::Metadata {
        path: String::new(),
        kind: "node".into(),
        label: "swarmcli".into(),
    };
    cclaunch::package::write(&metadata, &code, &file).expect("package");
    let file = file.display().to_string();
    let tls = common::tls_material();
    let cert = write(dir.path(), "client.crt", &tls.client_cert);
    let key = write(dir.path(), "client.key", &tls.client_key);
    let root = write(dir.path(), "root.crt", &tls.root_cert);

    let (code, id, stderr) = run(&lab, &peer, &["package-id", &file]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let id = id.trim().to_string();
    let (code, names, stderr) = run(&lab, &peer, &["names", &id]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let name = |key: &str| {
        names
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in {names}"))
            .to_string()
    };
    let (container, image, service) = (name("container"), name("image"), name("service"));
    assert!(service.len() <= 63, "{service}");

    // Build on the manager's engine, then pushed: the registry has it.
    let (code, stdout, stderr) = run(&lab, &peer, &["build", &file]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let digests = on_manager(
        &lab,
        &[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &image,
        ],
    );
    let pushed = format!("{}/{image}@sha256:", lab.registry);
    assert!(digests.contains(&pushed), "{digests}");

    // Started with TLS and followed: its lines on stdout, its exit code kept.
    let (code, stdout, stderr) = run(
        &lab,
        &peer,
        &[
            "start",
            &file,
            "--peer-address",
            "127.0.0.1:7052",
            "--client-cert",
            &cert,
            "--client-key",
            &key,
            "--root-cert",
            &root,
            "-f",
        ],
    )
    .await;
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    let host = stdout
        .lines()
        .find_map(|l| l.strip_prefix("host "))
        .unwrap_or_else(|| panic!("no host line in {stdout}"));
    let node = lab.node_of_hostname(host);
    assert!(
        matches!(node.as_deref(), Some("w1" | "w2")),
        "ran on {host}, not a worker"
    );
    assert!(stdout.contains(&format!("id {id}\n")), "{stdout}");
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(b)
            .into_bytes()
    };
    let sha = |b: &[u8]| {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(b))
    };
    for (file, bytes) in [
        ("client.key", b64(&tls.client_key)),
        ("client.crt", b64(&tls.client_cert)),
        ("client_pem.key", tls.client_key.clone()),
        ("client_pem.crt", tls.client_cert.clone()),
        ("peer.crt", tls.root_cert.clone()),
    ] {
        let line = format!("file {file} 644 {}", sha(&bytes));
        assert!(stdout.lines().any(|l| l == line), "{line} not in {stdout}");
    }
    // The service runs the pushed bytes, by digest.
    let image_ref = on_manager(
        &lab,
        &[
            "service",
            "inspect",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
            &service,
        ],
    );
    assert!(image_ref.starts_with(&pushed), "{image_ref}");

    // The same verbs as on Docker: wait, logs, ps by Fabric's name.
    let (code, stdout, stderr) = run(&lab, &peer, &["wait", &id]).await;
    assert_eq!((code, stdout.trim()), (Some(0), "3"), "{stderr}");
    let (code, logs, stderr) = run(&lab, &peer, &["logs", &id]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(logs.contains(&format!("id {id}\n")), "{logs}");
    let (code, ps, stderr) = run(&lab, &peer, &["ps"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(ps.contains(&container), "{ps}");

    // Stop leaves nothing of it on the swarm.
    let (code, _, stderr) = run(&lab, &peer, &["stop", &id]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let label = format!("label=org.cclaunch.peer-id={peer}");
    for kind in ["service", "secret", "config"] {
        let left = on_manager(&lab, &[kind, "ls", "-q", "--filter", &label]);
        assert!(left.is_empty(), "{kind}s left after stop: {left}");
    }
}

/// A launcher on the swarm (as the CLI road makes it) mirrors a service's
/// output into the chaincode's logger; a second one, as a restarted sidecar,
/// resumes from the checkpoint: the lines logged while none ran are
/// mirrored, and none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_launcher_resumes_a_services_output_with_none_lost_or_repeated() {
    use cclaunch::launcher::Launcher;
    use cclaunch::runtime::docker::Docker;
    use cclaunch::runtime::swarm::{Swarm, SwarmOptions};
    use std::sync::Arc;

    let Some(lab) = Lab::from_env() else { return };
    lab.images(&["busybox", "shenv"]);
    let captured = common::captured();
    let peer = common::unique_peer("swarmresume").to_lowercase();
    let manager = lab.endpoint("mgr");
    let config = common::config(
        &peer,
        &[
            ("CORE_VM_ENDPOINT", manager.as_str()),
            ("CORE_CHAINCODE_NODE_RUNTIME", SHENV),
            ("CCLAUNCH_ENGINE_KIND", "swarm"),
            ("CCLAUNCH_REGISTRY_ADDRESS", lab.registry.as_str()),
        ],
    );
    let launcher = || async {
        let docker = Arc::new(Docker::connect(&manager).await.expect("manager engine"));
        let options = SwarmOptions {
            constraints: vec!["node.role==worker".into()],
            ..SwarmOptions::default()
        };
        let swarm = Arc::new(Swarm::connect(&manager, options).await.expect("swarm"));
        let registry = config.registry().expect("registry").expect("set");
        Launcher::with_runner(docker, swarm, config.clone()).with_registry(registry)
    };

    let dir = tempfile::tempdir().expect("temp dir");
    let code = dir.path().join("src");
    std::fs::create_dir_all(&code).expect("mkdir");
    std::fs::write(
        code.join("start.sh"),
        "i=0\nwhile true; do i=$((i+1)); echo \"s line $i\"; sleep 0.2; done\n",
    )
    .expect("write start.sh");
    let file = dir.path().join("cc.tar.gz");
    let metadata = cclaunch::package::Metadata {
        path: String::new(),
        kind: "node".into(),
        label: "swarmresume".into(),
    };
    cclaunch::package::write(&metadata, &code, &file).expect("package");
    let package = cclaunch::package::Package::open(&file, Default::default()).expect("open");

    let first = launcher().await;
    first.claim().expect("claimed");
    first.build(&package, &|_: &str| {}).await.expect("built");
    let started = first
        .start(common::request(&package.id))
        .await
        .expect("started");
    let target = format!("peer.chaincode.{}", started.container);
    let numbers = || -> Vec<u32> {
        captured
            .for_target(&target)
            .iter()
            .filter_map(|l| l.strip_prefix("s line ")?.parse().ok())
            .collect()
    };
    assert!(
        common::eventually(Duration::from_secs(60), || numbers().len() >= 5).await,
        "the first launcher mirrored {:?}",
        numbers()
    );
    first.stop_mirrors().await;
    drop(first);
    let stopped_after = numbers().len() as u32;
    // A few lines logged while no mirror runs.
    let service = cclaunch::runtime::swarm::names::service_name(&started.container);
    let logged = || {
        on_manager(&lab, &["service", "logs", "--raw", &service])
            .lines()
            .filter_map(|l| l.strip_prefix("s line ")?.trim().parse::<u32>().ok())
            .max()
            .unwrap_or(0)
    };
    assert!(
        common::eventually(Duration::from_secs(30), || logged() >= stopped_after + 3).await,
        "the service logged up to {} while no mirror ran",
        logged()
    );

    let second = launcher().await;
    second.claim().expect("claimed by the new launcher");
    let resumed = second.resume().await.expect("resumed");
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    let check = stopped_after + 6;
    assert!(
        common::eventually(Duration::from_secs(30), || numbers().len() as u32 >= check).await,
        "the new launcher mirrored {:?}",
        numbers()
    );
    let seen = numbers();
    let expected: Vec<u32> = (1..=seen.len() as u32).collect();
    assert_eq!(seen, expected, "lines lost or repeated across the restart");

    second.stop(&package.id).await.expect("stopped");
    assert!(on_manager(
        &lab,
        &[
            "service",
            "ls",
            "-q",
            "--filter",
            &format!("name={service}")
        ]
    )
    .is_empty());
}

/// A package pushed before is pulled back from the registry, not built
/// again, once the build engine has lost its image (gc, another host).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_in_the_registry_is_pulled_not_built_again() {
    let Some(lab) = Lab::from_env() else { return };
    lab.images(&["busybox", "shenv"]);
    let peer = common::unique_peer("swarmpull").to_lowercase();
    let dir = tempfile::tempdir().expect("temp dir");
    let code = dir.path().join("src");
    std::fs::create_dir_all(&code).expect("mkdir");
    std::fs::write(code.join("start.sh"), format!("echo {peer}\n")).expect("write");
    let file = dir.path().join("cc.tar.gz");
    let metadata = cclaunch::package::Metadata {
        path: String::new(),
        kind: "node".into(),
        label: "swarmpull".into(),
    };
    cclaunch::package::write(&metadata, &code, &file).expect("package");
    let file = file.display().to_string();

    let (code, stdout, stderr) = run(&lab, &peer, &["build", &file]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("compiling in"), "built: {stderr}");
    let (code, stdout, stderr) = run(&lab, &peer, &["gc", "--all"]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&lab.registry),
        "gc took the registry tag too: {stdout}"
    );

    let (code, stdout, stderr) = run(&lab, &peer, &["build", &file]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        !stderr.contains("compiling in"),
        "not built again: {stderr}"
    );
    assert!(stderr.contains("pulled"), "{stderr}");
    assert!(stdout.contains("(reused)"), "{stdout}");
    let (code, _, stderr) = run(&lab, &peer, &["gc", "--all"]).await;
    assert_eq!(code, Some(0), "{stderr}");
}
