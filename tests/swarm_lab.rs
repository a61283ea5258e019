//! The swarm lab of tests/cluster works as the Swarm engine's tests will need
//! it: on its real three-node swarm, an image pushed to the lab registry runs
//! by digest as a one-replica `--network host` service on a worker, its logs,
//! exit code, secrets and configs come back exactly, a server in the hub is
//! reached from a worker, and a worker whose dockerd is killed is seen down
//! within seconds and comes back. Everything made is removed.
//!
//! Runs under tests/cluster/with-swarm.sh (`make test-swarm`); elsewhere each
//! test says it is skipped.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bollard::auth::DockerCredentials;
use bollard::models::{
    ConfigSpec, NetworkAttachmentConfig, NodeState, SecretSpec, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, Task, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecConfigs,
    TaskSpecContainerSpecFile, TaskSpecContainerSpecFile1, TaskSpecContainerSpecSecrets,
    TaskSpecPlacement, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    ListContainersOptions, ListTasksOptions, LogsOptions, PushImageOptions, RemoveImageOptions,
    TagImageOptions,
};
use common::swarm::{Lab, Scope};
use futures_util::StreamExt;

/// Label on everything a test makes, valued with its scope's id.
const LABEL: &str = "org.cclaunch.test.swarm-lab";

/// Taking a worker down is exclusive: other tests' tasks could land on it.
static NODES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// This test file's names and labels in a scope.
impl Scope {
    fn labels(&self) -> HashMap<String, String> {
        HashMap::from([(LABEL.to_string(), self.id.clone())])
    }

    fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.id)
    }
}

/// A child process killed (and reaped) when the test ends, pass or fail.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bollard client of a lab engine, its API version negotiated.
async fn connect(endpoint: &str) -> bollard::Docker {
    let client = match endpoint.strip_prefix("unix://") {
        Some(path) => bollard::Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION),
        None => bollard::Docker::connect_with_http(endpoint, 120, bollard::API_DEFAULT_VERSION),
    }
    .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    client
        .negotiate_version()
        .await
        .unwrap_or_else(|e| panic!("{endpoint}: {e}"))
}

/// Tags the manager's busybox into the lab registry under this scope and
/// pushes it; returns the reference by digest (`registry/repo@sha256:…`).
async fn push_busybox(lab: &Lab, manager: &bollard::Docker, scope: &Scope) -> String {
    lab.images(&["busybox"]);
    let repo = format!("{}/{}/busybox", lab.registry, scope.id);
    manager
        .tag_image(
            common::BUSYBOX,
            Some(TagImageOptions {
                repo: Some(repo.clone()),
                tag: Some("t".into()),
            }),
        )
        .await
        .expect("tag");
    // Engine 20.10 answers a push without X-Registry-Auth with "Bad
    // parameters and missing X-Registry-Auth": send empty credentials.
    let mut push = manager.push_image(
        &repo,
        Some(PushImageOptions {
            tag: Some("t".into()),
            ..Default::default()
        }),
        Some(DockerCredentials::default()),
    );
    while let Some(item) = push.next().await {
        let info = item.unwrap_or_else(|e| panic!("push {repo}: {e}"));
        assert!(info.error_detail.is_none(), "push {repo}: {info:?}");
    }
    let image = manager
        .inspect_image(&format!("{repo}:t"))
        .await
        .expect("inspect");
    let reference = image
        .repo_digests
        .unwrap_or_default()
        .into_iter()
        .find(|d| d.starts_with(&format!("{repo}@sha256:")))
        .unwrap_or_else(|| panic!("no digest of {repo} after the push"));
    manager
        .remove_image(&format!("{repo}:t"), None::<RemoveImageOptions>, None)
        .await
        .expect("untag");
    reference
}

/// A one-replica service that Swarm never restarts, on the host's network,
/// running `script` with sh.
fn service(scope: &Scope, name: &str, image: &str, script: &str, constraint: &str) -> ServiceSpec {
    ServiceSpec {
        name: Some(scope.name(name)),
        labels: Some(scope.labels()),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image.to_string()),
                command: Some(vec!["sh".into(), "-c".into(), script.into()]),
                labels: Some(scope.labels()),
                // A stop or a restarted dockerd ends the task in 1 s, not 10.
                stop_grace_period: Some(1_000_000_000),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(vec![constraint.to_string()]),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some("host".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create(manager: &bollard::Docker, spec: ServiceSpec) -> String {
    let name = spec.name.clone().unwrap_or_default();
    manager
        .create_service(spec, None)
        .await
        .unwrap_or_else(|e| panic!("create service {name}: {e}"))
        .id
        .expect("service id")
}

/// The service's task, once `done` holds for it (polled, up to `within`).
async fn task_when(
    manager: &bollard::Docker,
    service: &str,
    within: Duration,
    done: impl Fn(&Task) -> bool,
) -> Task {
    let deadline = Instant::now() + within;
    let filters = HashMap::from([("service".to_string(), vec![service.to_string()])]);
    let mut last = None;
    while Instant::now() < deadline {
        let tasks = manager
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters.clone()),
            }))
            .await
            .expect("list tasks");
        if let Some(task) = tasks.into_iter().next() {
            if done(&task) {
                return task;
            }
            last = Some(task);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("service {service}: task not as expected within {within:?}; last seen {last:#?}");
}

fn state(task: &Task) -> Option<TaskState> {
    task.status.as_ref().and_then(|s| s.state)
}

fn finished(task: &Task) -> bool {
    matches!(
        state(task),
        Some(TaskState::COMPLETE | TaskState::FAILED | TaskState::REJECTED | TaskState::SHUTDOWN)
    )
}

fn exit_code(task: &Task) -> Option<i64> {
    task.status
        .as_ref()
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.exit_code)
}

/// The lab node (`w1`, `w2`, `mgr`) a task was placed on.
async fn node_of(lab: &Lab, manager: &bollard::Docker, task: &Task) -> (String, String) {
    let id = task.node_id.clone().expect("task has a node");
    let node = manager.inspect_node(&id).await.expect("inspect node");
    let hostname = node
        .description
        .and_then(|d| d.hostname)
        .expect("node hostname");
    let name = lab
        .node_of_hostname(&hostname)
        .unwrap_or_else(|| panic!("node {hostname} is not one of the lab's"));
    (name, id)
}

#[derive(Clone, Copy, PartialEq)]
enum Stream {
    Stdout,
    Stderr,
}

/// Everything the service wrote on `stream`, in order, as text.
async fn logs(manager: &bollard::Docker, service: &str, stream: Stream) -> String {
    String::from_utf8(raw_logs(manager, service, stream).await).expect("UTF-8 output")
}

/// Everything the service wrote on `stream`, in order.
async fn raw_logs(manager: &bollard::Docker, service: &str, stream: Stream) -> Vec<u8> {
    let mut stream = manager.service_logs(
        service,
        Some(LogsOptions {
            stdout: stream == Stream::Stdout,
            stderr: stream == Stream::Stderr,
            ..Default::default()
        }),
    );
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.extend_from_slice(&item.expect("service logs").into_bytes());
    }
    out
}

/// Removes the service and checks that neither the manager nor any worker
/// keeps anything of this scope (the worker drops the task's container
/// shortly after the service goes).
async fn remove_all(lab: &Lab, manager: &bollard::Docker, scope: &Scope, services: &[&str]) {
    for id in services {
        manager.delete_service(id).await.expect("remove service");
    }
    for item in scope.leftovers() {
        let (kind, id) = item.split_once(' ').unwrap();
        match kind {
            "secret" => manager.delete_secret(id).await.expect("remove secret"),
            "config" => manager.delete_config(id).await.expect("remove config"),
            _ => panic!("{item} left after its removal"),
        }
    }
    assert_eq!(scope.leftovers(), Vec::<String>::new());
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL}={}", scope.id)])]);
    for worker in &lab.workers {
        let engine = connect(worker).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = engine
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    filters: Some(filters.clone()),
                    ..Default::default()
                }))
                .await
                .expect("list containers");
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{worker} still has {} container(s) of {} 30 s after the service went",
                left.len(),
                scope.id
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_image_runs_by_digest_on_a_worker_and_its_logs_and_exit_code_come_back() {
    let Some(lab) = Lab::from_env() else {
        return;
    };
    let _nodes = NODES.read().await;
    let started = Instant::now();
    let scope = Scope::new(&lab, "digest", LABEL);
    let manager = connect(&lab.manager).await;
    let image = push_busybox(&lab, &manager, &scope).await;

    let script = "echo one; echo \"two on $(hostname)\"; echo three >&2; exit 7";
    let id = create(
        &manager,
        service(&scope, "run", &image, script, "node.role==worker"),
    )
    .await;
    let task = task_when(&manager, &id, Duration::from_secs(60), finished).await;
    let (node, _) = node_of(&lab, &manager, &task).await;
    assert!(
        node.starts_with('w'),
        "the task ran on {node}, not a worker"
    );

    assert_eq!(state(&task), Some(TaskState::FAILED), "{task:#?}");
    assert_eq!(exit_code(&task), Some(7), "{task:#?}");
    let err = task.status.as_ref().and_then(|s| s.err.clone());
    assert_eq!(err.as_deref(), Some("task: non-zero exit (7)"));

    // The worker ran exactly the pushed bytes: it pulled them by digest.
    let worker = connect(&lab.endpoint(&node)).await;
    let container = task
        .status
        .as_ref()
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.container_id.clone())
        .expect("container id");
    let inspected = worker
        .inspect_container(&container, None)
        .await
        .expect("inspect the task's container on its worker");
    assert_eq!(inspected.config.and_then(|c| c.image), Some(image.clone()));
    let pulled = worker
        .inspect_image(&inspected.image.expect("image id"))
        .await
        .expect("inspect image on the worker");
    assert!(
        pulled.repo_digests.unwrap_or_default().contains(&image),
        "{node} did not pull {image}"
    );

    // Each stream in order; Swarm does not keep the order across the two.
    let hostname = format!("{}-{node}", lab.prefix);
    assert_eq!(
        logs(&manager, &id, Stream::Stdout).await,
        format!("one\ntwo on {hostname}\n")
    );
    assert_eq!(logs(&manager, &id, Stream::Stderr).await, "three\n");

    remove_all(&lab, &manager, &scope, &[&id]).await;
    eprintln!(
        "pushed image by digest on {node}: {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

/// Bytes that a text-only path would mangle: every byte value, CRLF, NUL.
fn awkward_bytes(head: &str) -> Vec<u8> {
    let mut data = head.as_bytes().to_vec();
    data.extend(0u8..=255);
    data.extend_from_slice(b"\r\n\0tail without newline");
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_configs_mount_at_absolute_paths_with_mode_0644_byte_for_byte() {
    let Some(lab) = Lab::from_env() else {
        return;
    };
    let _nodes = NODES.read().await;
    let scope = Scope::new(&lab, "files", LABEL);
    let manager = connect(&lab.manager).await;
    let image = push_busybox(&lab, &manager, &scope).await;
    let b64 = base64::engine::general_purpose::STANDARD;

    let files = [
        (
            "/etc/hyperledger/fabric/client.key",
            awkward_bytes("-----BEGIN PRIVATE KEY-----\n"),
            true,
        ),
        (
            "/etc/hyperledger/fabric/client.crt",
            awkward_bytes("-----BEGIN CERTIFICATE-----\n"),
            false,
        ),
        (
            "/etc/hyperledger/fabric/peer.crt",
            b"root cert\n".to_vec(),
            false,
        ),
    ];
    let mut secrets = Vec::new();
    let mut configs = Vec::new();
    for (n, (path, data, secret)) in files.iter().enumerate() {
        let name = scope.name(&format!("f{n}"));
        let file = |name: &str| TaskSpecContainerSpecFile {
            name: Some(name.to_string()),
            uid: Some("0".into()),
            gid: Some("0".into()),
            mode: Some(0o644),
        };
        if *secret {
            let id = manager
                .create_secret(SecretSpec {
                    name: Some(name.clone()),
                    labels: Some(scope.labels()),
                    data: Some(b64.encode(data)),
                    ..Default::default()
                })
                .await
                .expect("create secret")
                .id;
            secrets.push(TaskSpecContainerSpecSecrets {
                file: Some(file(path)),
                secret_id: Some(id),
                secret_name: Some(name),
            });
        } else {
            let id = manager
                .create_config(ConfigSpec {
                    name: Some(name.clone()),
                    labels: Some(scope.labels()),
                    data: Some(b64.encode(data)),
                    ..Default::default()
                })
                .await
                .expect("create config")
                .id;
            let f = file(path);
            configs.push(TaskSpecContainerSpecConfigs {
                file: Some(TaskSpecContainerSpecFile1 {
                    name: f.name,
                    uid: f.uid,
                    gid: f.gid,
                    mode: f.mode,
                }),
                config_id: Some(id),
                config_name: Some(name),
                ..Default::default()
            });
        }
    }
    // Per file: "path mode uid gid size", then its bytes in base64, then "end".
    let script = "for f in /etc/hyperledger/fabric/client.key /etc/hyperledger/fabric/client.crt \
                  /etc/hyperledger/fabric/peer.crt; do stat -c '%n %a %u %g %s' $f; base64 $f; echo end; done";
    let mut spec = service(&scope, "files", &image, script, "node.role==worker");
    let container = spec
        .task_template
        .as_mut()
        .and_then(|t| t.container_spec.as_mut())
        .unwrap();
    container.secrets = Some(secrets);
    container.configs = Some(configs);
    let id = create(&manager, spec).await;
    let task = task_when(&manager, &id, Duration::from_secs(60), finished).await;
    assert_eq!(state(&task), Some(TaskState::COMPLETE), "{task:#?}");
    assert_eq!(exit_code(&task), Some(0));

    let out = logs(&manager, &id, Stream::Stdout).await;
    let mut lines = out.lines();
    for (path, data, _) in &files {
        let head = lines.next().expect("stat line");
        assert_eq!(head, format!("{path} 644 0 0 {}", data.len()), "{out}");
        let mut encoded = String::new();
        for line in lines.by_ref() {
            if line == "end" {
                break;
            }
            encoded.push_str(line);
        }
        assert_eq!(
            &b64.decode(&encoded).expect("base64 from the task"),
            data,
            "{path} read back"
        );
    }
    remove_all(&lab, &manager, &scope, &[&id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_in_the_hub_is_reached_from_a_task_on_a_worker() {
    let Some(lab) = Lab::from_env() else {
        return;
    };
    let _nodes = NODES.read().await;
    let scope = Scope::new(&lab, "hub", LABEL);
    let manager = connect(&lab.manager).await;
    let image = push_busybox(&lab, &manager, &scope).await;

    // The lab's addresses exist only in the lab's namespaces.
    let host_addrs = std::process::Command::new("ip")
        .args(["-o", "addr"])
        .output()
        .expect("ip addr");
    assert!(
        !String::from_utf8_lossy(&host_addrs.stdout).contains(&lab.hub_addr.to_string()),
        "the host's namespace has a lab address"
    );

    let listener = lab.hub_listener(0);
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut line = String::new();
        BufReader::new(&conn).read_line(&mut line).expect("read");
        conn.write_all(b"pong\n").expect("answer");
        (peer, line)
    });
    let script = format!(
        "echo \"ping from $(hostname)\" | nc {} {port}",
        lab.hub_addr
    );
    let id = create(
        &manager,
        service(&scope, "dial", &image, &script, "node.role==worker"),
    )
    .await;
    let task = task_when(&manager, &id, Duration::from_secs(60), finished).await;
    assert_eq!(state(&task), Some(TaskState::COMPLETE), "{task:#?}");
    let (node, _) = node_of(&lab, &manager, &task).await;
    let (peer, line) = server.join().expect("server thread");
    assert_eq!(line, format!("ping from {}-{node}\n", lab.prefix));
    let node_ip = match node.as_str() {
        "w1" => "10.99.0.12",
        _ => "10.99.0.13",
    };
    assert_eq!(
        peer.ip().to_string(),
        node_ip,
        "the worker dialled from its own address"
    );
    assert_eq!(logs(&manager, &id, Stream::Stdout).await, "pong\n");
    remove_all(&lab, &manager, &scope, &[&id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devpeer_serve_in_the_hub_is_dialled_from_a_worker_and_driven_from_the_test() {
    let Some(lab) = Lab::from_env() else {
        return;
    };
    let _nodes = NODES.read().await;
    let scope = Scope::new(&lab, "devpeer", LABEL);
    let manager = connect(&lab.manager).await;
    let image = push_busybox(&lab, &manager, &scope).await;

    // Free ports in the hub, found there (its port space is its own).
    let free = |ip: std::net::IpAddr| {
        lab.in_hub(move || {
            std::net::TcpListener::bind((ip, 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
    };
    let listen = format!("{}:{}", lab.hub_addr, free(lab.hub_addr));
    let control_port = free([127, 0, 0, 1].into());
    let mut devpeer = KillOnDrop(
        lab.hub_command(env!("CARGO_BIN_EXE_cclaunch"))
            .args(["devpeer", "serve", "--listen", &listen, "--control"])
            .arg(format!("127.0.0.1:{control_port}"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("devpeer serve in the hub"),
    );
    let mut banner = String::new();
    BufReader::new(devpeer.0.stdout.take().unwrap())
        .read_line(&mut banner)
        .expect("banner");
    assert!(banner.contains(&listen), "{banner}");

    // Its control endpoint is on the hub's loopback: reached from a thread
    // in the hub (a TCP connection from the host's namespace cannot).
    let registered = lab.in_hub(move || {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", control_port)).expect("control");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        conn.write_all(b"GET /chaincodes HTTP/1.1\r\nHost: devpeer\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    });
    assert!(
        registered.starts_with("HTTP/1.1 200") && registered.contains("\"registered\":[]"),
        "{registered}"
    );

    // A task on a worker connects to devpeer's chaincode address (busybox nc
    // exits 0 once devpeer closes the connection it sent nothing on).
    let (host, port) = listen.split_once(':').unwrap();
    let script = format!("timeout 20 nc -w 5 {host} {port} </dev/null && echo connected");
    let id = create(
        &manager,
        service(&scope, "reach", &image, &script, "node.role==worker"),
    )
    .await;
    let task = task_when(&manager, &id, Duration::from_secs(60), finished).await;
    assert_eq!(
        (state(&task), exit_code(&task)),
        (Some(TaskState::COMPLETE), Some(0)),
        "{task:#?}"
    );
    // What devpeer said: an HTTP/2 server's first frame, SETTINGS (type 4).
    let said = raw_logs(&manager, &id, Stream::Stdout).await;
    assert!(
        said.len() > 9 && said[3] == 4 && said.ends_with(b"connected\n"),
        "{said:?}"
    );
    drop(devpeer);
    remove_all(&lab, &manager, &scope, &[&id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_under_a_running_task_is_down_within_seconds_and_comes_back() {
    let Some(lab) = Lab::from_env() else {
        return;
    };
    let _nodes = NODES.write().await;
    let scope = Scope::new(&lab, "nodedown", LABEL);
    let manager = connect(&lab.manager).await;
    let image = push_busybox(&lab, &manager, &scope).await;

    let script = "trap 'echo stopped; exit 0' TERM; echo started; sleep 600 & wait";
    let id = create(
        &manager,
        service(&scope, "long", &image, script, "node.role==worker"),
    )
    .await;
    let task = task_when(&manager, &id, Duration::from_secs(60), |t| {
        state(t) == Some(TaskState::RUNNING)
    })
    .await;
    let (node, node_id) = node_of(&lab, &manager, &task).await;

    lab.kill_node(&node);
    let killed = Instant::now();
    let status = loop {
        let status = manager
            .inspect_node(&node_id)
            .await
            .expect("inspect node")
            .status
            .expect("node status");
        if status.state == Some(NodeState::DOWN) {
            break status;
        }
        // With the lab's 1 s heartbeat: 2-4 s; Swarm's default 5 s: 10-16 s.
        assert!(
            killed.elapsed() < Duration::from_secs(8),
            "{node} still {:?} 8 s after its dockerd was killed",
            status.state
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let down_after = killed.elapsed();
    assert_eq!(status.message.as_deref(), Some("heartbeat failure"));
    // What an engine sees of the lost task: its node is down; Swarm no longer
    // wants it running, but cannot know its real state.
    let lost = task_when(&manager, &id, Duration::from_secs(10), |t| {
        t.desired_state != Some(TaskState::RUNNING)
    })
    .await;
    eprintln!(
        "{node} down after {:.2} s; its task: desired {:?}, state {:?}",
        down_after.as_secs_f64(),
        lost.desired_state,
        state(&lost)
    );

    let restarted = Instant::now();
    lab.start_node(&node);
    loop {
        let node_state = manager
            .inspect_node(&node_id)
            .await
            .expect("inspect node")
            .status
            .and_then(|s| s.state);
        if node_state == Some(NodeState::READY) {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "{node} not ready 30 s after its restart: {node_state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready_after = restarted.elapsed();
    // The restarted dockerd stops the task its predecessor left running.
    let ended = task_when(&manager, &id, Duration::from_secs(30), finished).await;
    eprintln!(
        "{node} ready {:.2} s after its dockerd was started again; task then {:?} (exit {:?})",
        ready_after.as_secs_f64(),
        state(&ended),
        exit_code(&ended)
    );
    remove_all(&lab, &manager, &scope, &[&id]).await;
}
