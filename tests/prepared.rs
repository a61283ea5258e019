//! Prepared containers on the real engine: configured exactly as a freshly
//! created one (`docker inspect`), given the TLS files only at start, never
//! started when they no longer match, listed as prepared, removed by stop
//! and gc, kept across a sidecar restart, and a sidecar killed between
//! putting the files in and starting leaves nothing behind.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use cclaunch::client::{self, Address};
use cclaunch::launch::Selection;
use cclaunch::launcher::{Launcher, StartRequest};
use cclaunch::proto::v1::{self as pb, launcher_client::LauncherClient};
use cclaunch::runtime::{Engine, Runner, LABEL_PREPARED};
use common::engine_proxy::EngineProxy;
use common::{docker, Env, SHENV};
use serde_json::Value;
use tonic::transport::Channel;

/// The labels whose values name the process that made a container, or say
/// it was prepared: the only config a prepared container may differ in.
const OWN_LABELS: [&str; 2] = ["org.cclaunch.creator", LABEL_PREPARED];

fn tls_request(package_id: &str, tls: &cclaunch::launcher::TlsMaterial) -> StartRequest {
    StartRequest {
        tls: Some(tls.clone()),
        ..common::request(package_id)
    }
}

/// `docker inspect` of a container, as JSON.
fn inspect(container: &str) -> Value {
    let out = docker(&["inspect", container]);
    let mut all: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(all.len(), 1, "{out}");
    all.remove(0)
}

/// A sidecar's launcher for `peer` (it claimed the peer).
async fn sidecar(env: &Env, overrides: &[(&str, &str)]) -> Arc<Launcher> {
    let mut overrides = overrides.to_vec();
    overrides.push(("CORE_CHAINCODE_NODE_RUNTIME", SHENV));
    if !overrides.iter().any(|(k, _)| *k == "CCLAUNCH_PREPARE") {
        overrides.push(("CCLAUNCH_PREPARE", "true"));
    }
    let config = common::config(&env.peer, &overrides);
    let launcher = Arc::new(Launcher::new(env.engine.clone() as Arc<dyn Engine>, config));
    launcher.claim().expect("claimed");
    launcher
}

/// Whether the engine logged a start of container `id` since `since`.
fn ever_started(id: &str, since: &str) -> bool {
    let until = format!("{}", unix_now());
    let out = docker(&[
        "events",
        "--since",
        since,
        "--until",
        &until,
        "--filter",
        &format!("container={id}"),
        "--filter",
        "event=start",
        "--format",
        "{{.Action}}",
    ]);
    out.lines().any(|l| l.trim() == "start")
}

/// A test's engine and a shell chaincode that sleeps, built.
async fn sleeper(test: &str) -> (Env, cclaunch::package::Package) {
    let env = Env::new(test, &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let package = env.shell_package(test, "sleep 600\n");
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("built");
    (env, package)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_container_is_configured_as_a_fresh_one_and_gets_the_files_only_at_start() {
    let (env, package) = sleeper("prepinspect").await;
    let tls = common::tls_material();
    let id = &package.id;
    let launcher = sidecar(&env, &[]).await;
    let name = launcher.names(id).unwrap().container;

    launcher
        .start(tls_request(id, &tls))
        .await
        .expect("started");
    launcher.stop(id).await.expect("stopped");
    launcher.prepared(id).await;
    let prepared = inspect(&name);
    assert_eq!(prepared["State"]["Status"], "created");
    assert!(prepared["Config"]["Labels"][LABEL_PREPARED].is_string());
    for file in ["client.key", "client_pem.key", "peer.crt"] {
        let path = format!("/etc/hyperledger/fabric/{file}");
        assert!(
            !env.engine.has_file(&name, &path).await.unwrap(),
            "no {file} in a prepared container"
        );
    }
    let listed = launcher.list().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|c| (c.name.as_str(), c.status.as_str(), c.running))
            .collect::<Vec<_>>(),
        [(name.as_str(), "prepared", false)]
    );

    // The start uses it: the same container, the files in as a peer puts
    // them (the base64 quirk and the mode), running.
    launcher
        .start(tls_request(id, &tls))
        .await
        .expect("started");
    let started = inspect(&name);
    assert_eq!(started["Id"], prepared["Id"], "the prepared container ran");
    assert_eq!(started["State"]["Status"], "running");
    let b64 = base64::engine::general_purpose::STANDARD;
    let files = [
        ("client.key", b64.encode(&tls.client_key).into_bytes()),
        ("client.crt", b64.encode(&tls.client_cert).into_bytes()),
        ("client_pem.key", tls.client_key.clone()),
        ("client_pem.crt", tls.client_cert.clone()),
        ("peer.crt", tls.root_cert.clone()),
    ];
    for (file, wanted) in files {
        let path = format!("/etc/hyperledger/fabric/{file}");
        let (data, mode) = common::read_container_file(&env.engine, &name, &path).await;
        assert_eq!(data, wanted, "{file}");
        assert_eq!(mode & 0o7777, 0o644, "{file}");
    }

    // A freshly created container of the same start, by a launcher that
    // prepares nothing.
    launcher.stop(id).await.expect("stopped");
    launcher.prepared(id).await;
    launcher.stop(id).await.expect("the prepared one removed");
    launcher.prepared(id).await;
    assert!(
        docker(&["ps", "-aq", "--filter", &format!("name=^{name}$")])
            .trim()
            .is_empty()
    );
    drop(launcher);
    let fresh_launcher = sidecar(&env, &[("CCLAUNCH_PREPARE", "false")]).await;
    fresh_launcher
        .start(tls_request(id, &tls))
        .await
        .expect("started fresh");
    let fresh = inspect(&name);
    assert!(fresh["Config"]["Labels"].get(LABEL_PREPARED).is_none());

    // Config and HostConfig are the same but for cclaunch's own two labels.
    let config = |c: &Value| {
        let mut config = c["Config"].clone();
        let labels = config["Labels"].as_object_mut().unwrap();
        for label in OWN_LABELS {
            labels.remove(label);
        }
        config
    };
    assert_eq!(config(&prepared), config(&fresh));
    assert_eq!(prepared["HostConfig"], fresh["HostConfig"]);
    for field in ["Image", "Path", "Args", "Name", "Driver", "Platform"] {
        assert_eq!(prepared[field], fresh[field], "{field}");
    }
    // What differs is the container's identity and life, never its config.
    let differing: Vec<&String> = prepared
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| prepared[k.as_str()] != fresh[k.as_str()])
        .collect();
    eprintln!("top-level fields of docker inspect that differ: {differing:?}");
    for field in &differing {
        assert!(
            [
                "Id",
                "Created",
                "State",
                "Config",
                "ResolvConfPath",
                "HostnamePath",
                "HostsPath",
                "LogPath",
                "GraphDriver",
                "RestartCount",
                "NetworkSettings"
            ]
            .contains(&field.as_str()),
            "{field} differs: {} vs {}",
            prepared[field.as_str()],
            fresh[field.as_str()]
        );
    }
    fresh_launcher.stop(id).await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_container_that_no_longer_matches_is_replaced_never_started() {
    let (env, package) = sleeper("prepmismatch").await;
    let tls = common::tls_material();
    let id = &package.id;
    let since = format!("{}", unix_now().saturating_sub(1));
    let launcher = sidecar(&env, &[]).await;
    let name = launcher.names(id).unwrap().container;
    launcher
        .start(tls_request(id, &tls))
        .await
        .expect("started");
    launcher.stop(id).await.expect("stopped");
    launcher.prepared(id).await;
    let prepared = inspect(&name)["Id"].as_str().unwrap().to_string();
    drop(launcher);

    // The configuration changed: another logging level is another env.
    let changed = sidecar(&env, &[("CORE_CHAINCODE_LOGGING_LEVEL", "debug")]).await;
    changed.start(tls_request(id, &tls)).await.expect("started");
    let now = inspect(&name);
    assert_ne!(now["Id"], prepared.as_str(), "replaced");
    let env_now: Vec<&str> = now["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env_now.contains(&"CORE_CHAINCODE_LOGGING_LEVEL=debug"));
    assert!(!ever_started(&prepared, &since), "the stale one never ran");
    assert!(
        docker(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("id={prepared}")
        ])
        .trim()
        .is_empty(),
        "and is gone"
    );

    // TLS off this time: replaced again.
    changed.stop(id).await.expect("stopped");
    changed.prepared(id).await;
    let prepared = inspect(&name)["Id"].as_str().unwrap().to_string();
    changed.start(common::request(id)).await.expect("started");
    assert_ne!(inspect(&name)["Id"], prepared.as_str());
    assert!(!ever_started(&prepared, &since));

    // gc removes a prepared container with the rest.
    changed.stop(id).await.expect("stopped");
    changed.prepared(id).await;
    let collected = changed
        .gc(&Selection::Only(vec![id.clone()]))
        .await
        .expect("gc");
    assert_eq!(collected.containers, [name.as_str()]);
    assert!(
        docker(&["ps", "-aq", "--filter", &format!("name=^{name}$")])
            .trim()
            .is_empty()
    );
}

/// A client of the sidecar once it answers (after its start-up clean-up).
async fn connect(socket: &std::path::Path) -> LauncherClient<Channel> {
    let address = Address::Unix(socket.to_path_buf());
    for _ in 0..200 {
        if let Ok(mut client) = client::connect(&address, None, Duration::from_secs(1)).await {
            if client.list(pb::ListRequest {}).await.is_ok() {
                return client;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sidecar never listened on {}", socket.display());
}

fn pb_start(package_id: &str, tls: &cclaunch::launcher::TlsMaterial) -> pb::StartRequest {
    pb::StartRequest {
        package_id: package_id.to_string(),
        peer_address: "127.0.0.1:7052".into(),
        client_cert: tls.client_cert.clone(),
        client_key: tls.client_key.clone(),
        root_cert: tls.root_cert.clone(),
        ..Default::default()
    }
}

/// The id and state of the container `name`, if there is one.
fn state(name: &str) -> Option<(String, String)> {
    let out = docker(&["inspect", "-f", "{{.Id}} {{.State.Status}}", name]);
    let (id, status) = out.trim().split_once(' ')?;
    Some((id.to_string(), status.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sidecar_uses_a_prepared_container_and_removes_one_a_killed_start_filled() {
    let env = Env::new("preprestart", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let socket = env.dir.path().join("run/cclaunch.sock");
    let kept = env.shell_package("prepkept", "sleep 600\n");
    let filled = env.shell_package("prepfilled", "sleep 600\n");
    for package in [&kept, &filled] {
        env.launcher
            .build(package, &|_: &str| {})
            .await
            .expect("built");
    }
    let tls = common::tls_material();
    let name = |id: &str| env.launcher.names(id).unwrap().container;

    // Sidecar 1 runs both once; each stop prepares the next container.
    let hold = Arc::new(AtomicBool::new(false));
    let proxy = EngineProxy::start(&EngineProxy::upstream(), {
        let hold = hold.clone();
        move |method, path| {
            !(hold.load(Ordering::SeqCst) && method == "POST" && path.ends_with("/start"))
        }
    });
    let mut first = common::serve_command(&env, &["--socket", socket.to_str().unwrap()])
        .env("CCLAUNCH_PREPARE", "true")
        .env("CORE_VM_ENDPOINT", proxy.endpoint())
        .spawn()
        .expect("serve");
    let mut client = connect(&socket).await;
    for package in [&kept, &filled] {
        client
            .start(pb_start(&package.id, &tls))
            .await
            .expect("started");
        client
            .stop(pb::ChaincodeRef {
                package_id: package.id.clone(),
            })
            .await
            .expect("stopped");
    }
    let prepared = |id: &str| {
        state(&name(id))
            .filter(|(_, s)| s == "created")
            .map(|(i, _)| i)
    };
    assert!(
        common::eventually(Duration::from_secs(30), || prepared(&kept.id).is_some()
            && prepared(&filled.id).is_some())
        .await,
        "both prepared"
    );
    let (kept_id, filled_id) = (prepared(&kept.id).unwrap(), prepared(&filled.id).unwrap());
    let listed = client.list(pb::ListRequest {}).await.unwrap().into_inner();
    assert!(
        listed.chaincodes.iter().all(|c| c.state == "prepared"),
        "{listed:?}"
    );

    // Killed once a start put the files into one and asked the engine to
    // start it (the engine never answers).
    hold.store(true, Ordering::SeqCst);
    let start = tokio::spawn({
        let request = pb_start(&filled.id, &tls);
        async move { client.start(request).await }
    });
    assert!(
        common::eventually(Duration::from_secs(30), || proxy
            .held()
            .iter()
            .any(|l| l.contains("/start")))
        .await,
        "the start reached the engine"
    );
    first.kill().await.unwrap();
    let _ = start.await;
    assert!(
        env.engine
            .has_file(&filled_id, "/etc/hyperledger/fabric/client_pem.key")
            .await
            .unwrap(),
        "the files went in"
    );
    assert_eq!(
        prepared(&filled.id),
        Some(filled_id.clone()),
        "never started"
    );

    // Sidecar 2 removes the one holding the files, keeps the clean one,
    // mirrors neither, and starts from the clean one.
    let mut second = common::serve_command(&env, &["--socket", socket.to_str().unwrap()])
        .env("CCLAUNCH_PREPARE", "true")
        .spawn()
        .expect("serve");
    let mut client = connect(&socket).await;
    assert_eq!(state(&name(&filled.id)), None, "the filled one is gone");
    assert_eq!(
        prepared(&kept.id),
        Some(kept_id.clone()),
        "the clean one stays"
    );
    let started = client.start(pb_start(&kept.id, &tls)).await;
    started.expect("started");
    assert_eq!(
        state(&name(&kept.id)),
        Some((kept_id, "running".to_string())),
        "the prepared container ran"
    );
    client
        .start(pb_start(&filled.id, &tls))
        .await
        .expect("started anew");
    assert_eq!(
        state(&name(&filled.id)).map(|(_, s)| s).as_deref(),
        Some("running")
    );
    second.kill().await.unwrap();
}
