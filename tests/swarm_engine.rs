//! The Swarm runner (runtime::swarm) on the real three-node swarm of
//! tests/cluster: chaincode containers as one-replica services on a worker,
//! run exactly as the Docker engine runs the same spec (args, env, TLS files
//! byte for byte), their output through attach and logs with no line lost or
//! repeated, exit codes, a lost node named, nothing left after removal.
//!
//! Runs under tests/cluster/with-swarm.sh (`make test-swarm`); elsewhere each
//! test says it is skipped.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cclaunch::launch::TlsMaterial;
use cclaunch::runtime::docker::Docker;
use cclaunch::runtime::swarm::{names, Swarm, SwarmOptions};
use cclaunch::runtime::{
    ContainerSpec, Error, HostConfig, LogQuery, Output, OutputStream, Runner, LABEL_MANAGED,
    LABEL_PEER_ID,
};
use common::swarm::{Lab, Scope};
use futures_util::StreamExt;

/// Taking a worker down is exclusive: other tests' tasks could land on it.
static NODES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The labels cclaunch puts on a scope's chaincode.
impl Scope {
    fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_PEER_ID.to_string(), self.id.clone()),
        ])
    }
}

async fn swarm(lab: &Lab) -> Swarm {
    let options = SwarmOptions {
        constraints: vec!["node.role==worker".to_string()],
        ..SwarmOptions::default()
    };
    Swarm::connect(&lab.manager, options)
        .await
        .expect("connect to the manager")
}

/// A bollard client of a lab engine.
async fn connect(endpoint: &str) -> bollard::Docker {
    let path = endpoint.strip_prefix("unix://").expect("unix endpoint");
    bollard::Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
        .expect("connect")
        .negotiate_version()
        .await
        .expect("negotiate")
}

/// The manager's busybox pushed to the lab registry by cclaunch's own
/// `Engine::publish`: its reference by digest.
async fn push_busybox(lab: &Lab) -> String {
    use cclaunch::runtime::{Engine, Push, Registry};
    lab.images(&["busybox"]);
    let manager = cclaunch::runtime::docker::Docker::connect(&lab.manager)
        .await
        .expect("manager engine");
    let registry = Registry {
        address: lab.registry.clone(),
        ..Default::default()
    };
    let reference = manager
        .publish(common::BUSYBOX, &registry, Push::Always, &|_: &str| {})
        .await
        .expect("published");
    assert!(
        reference.starts_with(&format!("{}/cclaunch-test/busybox@sha256:", lab.registry)),
        "{reference}"
    );
    reference
}

/// A Fabric-like container name longer than a DNS label, with characters
/// a service name may not have.
fn fabric_name(scope: &Scope, what: &str) -> String {
    format!(
        "{}-{}-{what}_1.0-{}",
        scope.id,
        "dev-peer0.org1.example.com",
        "3a7f".repeat(12)
    )
}

fn spec(scope: &Scope, name: &str, image: &str, script: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        image: image.to_string(),
        args: vec![
            "sh".into(),
            "-c".into(),
            script.to_string(),
            "arg0".into(),
            "two words".into(),
        ],
        env: vec![
            "CORE_CHAINCODE_ID_NAME=mycc:1.0".into(),
            "CORE_PEER_TLS_ENABLED=true".into(),
            "EMPTY=".into(),
            "SPACED=a  b".into(),
        ],
        labels: scope.labels(),
        host_config: HostConfig::default(),
        files: Vec::new(),
    }
}

/// Everything a stream delivers (until it ends, within `limit`), split.
async fn collect(mut stream: OutputStream, limit: Duration) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    tokio::time::timeout(limit, async {
        while let Some(frame) = stream.next().await {
            match frame.expect("output frame") {
                Output::Stdout(b) => out.extend_from_slice(&b),
                Output::Stderr(b) => err.extend_from_slice(&b),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the output did not end within {limit:?}"));
    (out, err)
}

/// Runs `spec` to its end on `runner` as the launcher does (create, attach,
/// start, wait): what attach delivered and the exit code.
async fn run(runner: &dyn Runner, spec: &ContainerSpec) -> ((Vec<u8>, Vec<u8>), i64) {
    let id = runner.create_container(spec).await.expect("create");
    let attached = runner.attach(&spec.name).await.expect("attach");
    let reader = tokio::spawn(collect(attached, Duration::from_secs(90)));
    runner.start_container(&spec.name).await.expect("start");
    let code = tokio::time::timeout(Duration::from_secs(90), runner.wait_container(&id))
        .await
        .expect("wait within 90 s")
        .expect("wait");
    (reader.await.expect("reader"), code)
}

/// The worker's container of the service's task: (node, inspect).
async fn task_container(
    lab: &Lab,
    service: &str,
) -> (String, bollard::models::ContainerInspectResponse) {
    let manager = connect(&lab.manager).await;
    let filters = HashMap::from([("service".to_string(), vec![service.to_string()])]);
    let tasks = manager
        .list_tasks(Some(bollard::query_parameters::ListTasksOptions {
            filters: Some(filters),
        }))
        .await
        .expect("tasks");
    let task = tasks.first().expect("a task");
    let node = manager
        .inspect_node(task.node_id.as_deref().expect("node"))
        .await
        .expect("node");
    let hostname = node.description.and_then(|d| d.hostname).expect("hostname");
    let node = lab.node_of_hostname(&hostname).expect("a lab node");
    let container = task
        .status
        .as_ref()
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.container_id.clone())
        .expect("container id");
    let worker = connect(&lab.endpoint(&node)).await;
    let inspected = worker
        .inspect_container(&container, None)
        .await
        .expect("inspect on the worker");
    (node, inspected)
}

fn tls() -> TlsMaterial {
    // Bytes that a text-only path would mangle, in the key and the cert.
    let mut key = b"-----BEGIN PRIVATE KEY-----\n".to_vec();
    key.extend(0u8..=255);
    key.extend_from_slice(b"\r\n\0-----END PRIVATE KEY-----\n");
    let mut cert = b"-----BEGIN CERTIFICATE-----\n".to_vec();
    cert.extend((0u8..=255).rev());
    cert.extend_from_slice(b"\n-----END CERTIFICATE-----\n");
    TlsMaterial {
        client_cert: cert,
        client_key: key,
        root_cert: b"-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n".to_vec(),
    }
}

/// What a container says of itself: its args, its env (but HOSTNAME, which
/// names the container), and each TLS file's path, mode, owner, size and
/// bytes (base64).
const SELF_REPORT: &str = r#"echo "args: $0 | $1"
env | grep -v '^HOSTNAME=' | sort
for f in client.key client.crt client_pem.key client_pem.crt peer.crt; do
  f=/etc/hyperledger/fabric/$f; stat -c '%n %a %u %g %s' $f; base64 $f
done"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_runs_on_a_worker_exactly_as_docker_runs_the_same_spec() {
    let Some(lab) = Lab::from_env() else {
        return;
    };
    let _nodes = NODES.read().await;
    let started = Instant::now();
    let scope = Scope::new(&lab, "same", LABEL_PEER_ID);
    let image = push_busybox(&lab).await;
    let swarm = swarm(&lab).await;
    let name = fabric_name(&scope, "same");
    assert!(name.len() > 63, "{name}");
    let mut spec = spec(&scope, &name, &image, SELF_REPORT);
    spec.files = cclaunch::launcher::tls::files(&tls());

    // The Docker engine (the manager's own, as a plain engine) runs it first.
    let docker = Docker::connect(&lab.manager).await.expect("docker");
    let mut on_docker = spec.clone();
    on_docker.name = format!("{}-docker", scope.id);
    // The same image (the pushed reference was untagged on the manager).
    on_docker.image = common::BUSYBOX.to_string();
    let ((docker_out, docker_err), docker_code) = run(&docker, &on_docker).await;
    let docker_info = Runner::inspect_container(&docker, &on_docker.name)
        .await
        .expect("inspect")
        .expect("the container");
    Runner::remove_container(&docker, &on_docker.name)
        .await
        .expect("remove");
    assert_eq!(docker_code, 0, "{}", String::from_utf8_lossy(&docker_err));

    let ((out, err), code) = run(&swarm, &spec).await;
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&docker_out),
        "the task said something else than Docker's container"
    );
    assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
    let report = String::from_utf8_lossy(&out);
    assert!(report.starts_with("args: arg0 | two words\n"), "{report}");
    assert!(report.contains("\nSPACED=a  b\n"), "{report}");
    for file in [
        "client.key",
        "client.crt",
        "client_pem.key",
        "client_pem.crt",
        "peer.crt",
    ] {
        assert!(
            report.contains(&format!("/etc/hyperledger/fabric/{file} 644 0 0 ")),
            "{file}: {report}"
        );
    }

    // What ran on the worker: the spec's args as Cmd with the image's
    // entrypoint, the same env Docker's container got, the spec's labels.
    let info = swarm
        .inspect_container(&name)
        .await
        .expect("inspect")
        .expect("the service");
    assert_eq!(info.name, name);
    assert_eq!(info.status, "exited");
    assert_eq!(info.exit_code, Some(0));
    assert_eq!(info.args, spec.args);
    let service = names::service_name(&name);
    assert!(service.len() <= 63, "{service}");
    let (node, inspected) = task_container(&lab, &service).await;
    assert!(node.starts_with('w'), "ran on {node}, not a worker");
    let config = inspected.config.expect("config");
    assert_eq!(config.cmd.as_ref(), Some(&spec.args));
    assert_eq!(config.entrypoint, None);
    assert_eq!(
        config.env.map(|mut e| {
            e.sort();
            e
        }),
        Some({
            let mut e = docker_info.env.clone();
            e.sort();
            e
        })
    );
    assert_eq!(config.image.as_deref(), Some(image.as_str()));
    let labels = config.labels.unwrap_or_default();
    for (k, v) in scope.labels() {
        assert_eq!(
            labels.get(&k),
            Some(&v),
            "label {k} on the task's container"
        );
    }
    assert_eq!(
        inspected
            .host_config
            .and_then(|h| h.network_mode)
            .as_deref(),
        Some("host")
    );

    // The logs say the same as attach did, with timestamps when asked.
    let (logged, _) = collect(
        swarm
            .logs(&name, &LogQuery::all(false))
            .await
            .expect("logs"),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(logged, out);
    let stamped = LogQuery {
        timestamps: true,
        ..LogQuery::all(true)
    };
    let (stamped, _) = collect(
        swarm.logs(&name, &stamped).await.expect("logs"),
        Duration::from_secs(30),
    )
    .await;
    let stamped = String::from_utf8_lossy(&stamped);
    let unstamped: Vec<&str> = stamped
        .lines()
        .map(|l| {
            let (stamp, rest) = l.split_once(' ').expect("stamped line");
            assert!(stamp.ends_with('Z') && stamp.contains('T'), "{l}");
            rest
        })
        .collect();
    assert_eq!(
        unstamped,
        String::from_utf8_lossy(&out).lines().collect::<Vec<_>>()
    );

    swarm.remove_container(&name).await.expect("remove");
    assert_eq!(scope.leftovers(), Vec::<String>::new());
    assert!(swarm
        .inspect_container(&name)
        .await
        .expect("inspect")
        .is_none());
    eprintln!(
        "same spec on Docker and on {node}: {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_is_checked_and_a_worker_is_refused() {
    let Some(lab) = Lab::from_env() else {
        return;
    };
    let info = swarm(&lab).await.ping().await.expect("ping the manager");
    assert!(!info.version.is_empty());
    let worker = Swarm::connect(&lab.endpoint("w1"), SwarmOptions::default())
        .await
        .expect("connect to a worker");
    let refused = worker.ping().await.expect_err("a worker is no manager");
    assert!(matches!(refused, Error::Unsuited { .. }), "{refused:?}");
    assert!(
        refused.to_string().contains("not a swarm manager"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_once_through_attach_and_logs_and_the_exit_code_is_the_tasks() {
    let Some(lab) = Lab::from_env() else {
        return;
    };
    let _nodes = NODES.read().await;
    let scope = Scope::new(&lab, "lines", LABEL_PEER_ID);
    let image = push_busybox(&lab).await;
    let swarm = swarm(&lab).await;
    let name = fabric_name(&scope, "lines");
    // Output from the first instant on, both streams, then a pause and more
    // (so a followed log meets the end of the task while it reads).
    let script = "i=0; while [ $i -lt 3000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; \
                  sleep 1; echo last; exit 7";
    let spec = spec(&scope, &name, &image, script);
    let want_out: String = (0..3000)
        .map(|i| format!("out{i}\n"))
        .chain(["last\n".to_string()])
        .collect();
    let want_err: String = (0..3000).map(|i| format!("err{i}\n")).collect();

    let ((out, err), code) = run(&swarm, &spec).await;
    assert_eq!(code, 7);
    assert_eq!(
        String::from_utf8_lossy(&out),
        want_out,
        "stdout through attach"
    );
    assert_eq!(
        String::from_utf8_lossy(&err),
        want_err,
        "stderr through attach"
    );

    for follow in [false, true] {
        let (out, err) = collect(
            swarm
                .logs(&name, &LogQuery::all(follow))
                .await
                .expect("logs"),
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(String::from_utf8_lossy(&out), want_out, "follow {follow}");
        assert_eq!(String::from_utf8_lossy(&err), want_err, "follow {follow}");
    }
    let tail = LogQuery {
        tail: Some(1),
        ..LogQuery::all(false)
    };
    let (out, _) = collect(
        swarm.logs(&name, &tail).await.expect("logs"),
        Duration::from_secs(30),
    )
    .await;
    assert!(String::from_utf8_lossy(&out).ends_with("last\n"));

    // Listed by its labels, under Fabric's name, exited with its code.
    let listed = swarm
        .list_containers(&[(LABEL_MANAGED, "true"), (LABEL_PEER_ID, &scope.id)])
        .await
        .expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, name);
    assert_eq!((listed[0].running, listed[0].exit_code), (false, Some(7)));
    assert_eq!(
        swarm.wait_container(&name).await.expect("wait again"),
        7,
        "wait on an ended task"
    );

    swarm.remove_container(&name).await.expect("remove");
    assert_eq!(scope.leftovers(), Vec::<String>::new());
    let gone = swarm
        .wait_container(&name)
        .await
        .expect_err("wait on nothing");
    assert!(gone.is_not_found(), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_ends_a_running_task_and_takes_its_secrets_and_configs() {
    let Some(lab) = Lab::from_env() else {
        return;
    };
    let _nodes = NODES.read().await;
    let scope = Scope::new(&lab, "stop", LABEL_PEER_ID);
    let image = push_busybox(&lab).await;
    let swarm = swarm(&lab).await;
    let name = fabric_name(&scope, "stop");
    let mut spec = spec(&scope, &name, &image, "echo up; exec sleep 600");
    spec.files = cclaunch::launcher::tls::files(&tls());
    swarm.create_container(&spec).await.expect("create");
    // Created: the service, the two keys as secrets, the three
    // certificates as configs; nothing runs yet.
    let made = scope.leftovers();
    assert_eq!(
        made.iter().filter(|i| i.starts_with("secret ")).count(),
        2,
        "{made:?}"
    );
    assert_eq!(made.iter().filter(|i| i.starts_with("config ")).count(), 3);
    let info = swarm.inspect_container(&name).await.unwrap().unwrap();
    assert_eq!((info.status.as_str(), info.running), ("created", false));

    let attached = swarm.attach(&name).await.expect("attach");
    swarm.start_container(&name).await.expect("start");
    let mut attached = attached;
    let first = tokio::time::timeout(Duration::from_secs(60), attached.next())
        .await
        .expect("output within 60 s")
        .expect("a frame")
        .expect("no error");
    assert_eq!(first, Output::Stdout("up\n".into()));
    let running = swarm.inspect_container(&name).await.unwrap().unwrap();
    assert!(running.running, "{running:?}");

    // Fabric's stop: stop with no grace, kill, remove. On the swarm the
    // removal ends the task; the output then ends too, and nothing is left.
    let stopped = Instant::now();
    swarm.stop_container(&name, 0).await.expect("stop");
    swarm.kill_container(&name).await.expect("kill");
    swarm.remove_container(&name).await.expect("remove");
    let (rest, _) = collect(attached, Duration::from_secs(30)).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert_eq!(scope.leftovers(), Vec::<String>::new());
    let gone = swarm
        .stop_container(&name, 0)
        .await
        .expect_err("stop of nothing");
    assert!(gone.is_not_found(), "{gone:?}");
    eprintln!(
        "removed, output ended in {:.2} s",
        stopped.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_under_a_task_makes_wait_fail_naming_the_node() {
    let Some(lab) = Lab::from_env() else {
        return;
    };
    let _nodes = NODES.write().await;
    let scope = Scope::new(&lab, "lost", LABEL_PEER_ID);
    let image = push_busybox(&lab).await;
    let swarm = swarm(&lab).await;
    let name = fabric_name(&scope, "lost");
    let spec = spec(&scope, &name, &image, "echo up; exec sleep 600");
    swarm.create_container(&spec).await.expect("create");
    let mut attached = swarm.attach(&name).await.expect("attach");
    swarm.start_container(&name).await.expect("start");
    tokio::time::timeout(Duration::from_secs(60), attached.next())
        .await
        .expect("output within 60 s");
    let (node, _) = task_container(&lab, &names::service_name(&name)).await;
    let waiter = tokio::spawn({
        let swarm = swarm.clone();
        let name = name.clone();
        async move { swarm.wait_container(&name).await }
    });

    lab.kill_node(&node);
    let killed = Instant::now();
    let lost = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("wait ends within 20 s of the kill")
        .expect("waiter");
    let after = killed.elapsed();
    let error = lost.expect_err("a lost task has no exit code");
    let hostname = format!("{}-{node}", lab.prefix);
    match &error {
        Error::Lost(lost) => {
            assert_eq!(lost.node, hostname);
            assert!(lost.node_down);
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains(&hostname), "{error}");
    // The followed output ends too.
    let (rest, _) = collect(attached, Duration::from_secs(20)).await;
    assert!(rest.is_empty());
    eprintln!(
        "lost with {node} after {:.2} s: {error}",
        after.as_secs_f64()
    );

    lab.start_node(&node);
    swarm.remove_container(&name).await.expect("remove");
    assert_eq!(scope.leftovers(), Vec::<String>::new());
}
