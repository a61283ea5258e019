//! The sidecar API end to end: a real `cclaunch serve` process on a Unix
//! socket, driven by a gRPC client through Build (chunks and path), Start,
//! Logs, Wait, List, Stop and Gc on the real engine; bad calls get status
//! codes that say what is wrong.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cclaunch::proto::v1::launcher_client::LauncherClient;
use cclaunch::proto::v1::{self as pb, build_event::Event, build_request::Source};
use common::{Env, SHENV};
use futures_util::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

/// A hash no package here has, for ids of chaincode that was never built.
const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const UNKNOWN: &str = "unknown_1:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Sidecar {
    child: tokio::process::Child,
    socket: PathBuf,
    operations: String,
}

fn spawn_sidecar(env: &Env) -> Sidecar {
    let socket = env.dir.path().join("run/cclaunch.sock");
    let operations = format!("127.0.0.1:{}", common::free_port());
    let child = common::spawn_serve(
        env,
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--operations",
            &operations,
        ],
    );
    Sidecar {
        child,
        socket,
        operations,
    }
}

async fn build(
    client: &mut LauncherClient<Channel>,
    requests: Vec<pb::BuildRequest>,
) -> Result<(Vec<String>, pb::BuildDone), tonic::Status> {
    let mut events = client
        .build(futures_util::stream::iter(requests))
        .await?
        .into_inner();
    let mut output = Vec::new();
    while let Some(event) = events.next().await {
        match event?.event {
            Some(Event::Output(line)) => output.push(line),
            Some(Event::Stage(stage)) => output.push(format!("stage: {}", stage.stage)),
            Some(Event::Done(done)) => return Ok((output, done)),
            None => {}
        }
    }
    Err(tonic::Status::internal("build stream ended without Done"))
}

fn chunks(file: &Path) -> Vec<pb::BuildRequest> {
    std::fs::read(file)
        .unwrap()
        .chunks(1024)
        .map(|c| pb::BuildRequest {
            source: Some(Source::Chunk(c.to_vec())),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_client_drives_a_chaincode_through_its_whole_life() {
    let env = Env::new("api", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let mut sidecar = spawn_sidecar(&env);
    // Standard health service: SERVING.
    let channel = common::grpc::serving(&sidecar.socket, Duration::from_secs(60)).await;
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&sidecar.socket).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o660, "socket mode");

    let mut client = LauncherClient::new(channel);
    let engine = client
        .health(pb::HealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(engine.api_version, "1.41");

    let package = env.shell_package(
        "apicc",
        "echo hello from api $EXTRA\nsleep 2\necho bye >&2\nexit 7\n",
    );
    let (output, done) = build(&mut client, chunks(&package.file))
        .await
        .expect("build from chunks");
    assert_eq!(done.package_id, package.id);
    assert!(!done.reused);
    assert!(
        output.iter().any(|l| l.contains("Successfully tagged")),
        "{output:?}"
    );
    // Stages come in order, around the build's own output.
    let stages: Vec<&String> = output.iter().filter(|l| l.starts_with("stage: ")).collect();
    assert_eq!(stages.len(), 3, "{output:?}");
    assert!(stages[0].contains(&format!("package {} received", package.id)));
    assert!(stages[1].contains("compiling in cclaunch-test/shenv"));
    assert!(stages[2].contains("building image"));
    let path = pb::BuildRequest {
        source: Some(Source::Path(package.file.display().to_string())),
    };
    let (stages, again) = build(&mut client, vec![path])
        .await
        .expect("build from path");
    assert!(again.reused, "second build reuses the image");
    assert_eq!(
        stages.last().map(String::as_str),
        Some("stage: image exists, reusing it")
    );

    let started = client
        .start(pb::StartRequest {
            package_id: package.id.clone(),
            peer_address: "127.0.0.1:7052".into(),
            extra_env: vec!["EXTRA=1".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.r#type, "node");

    let mut logs = client
        .logs(pb::LogsRequest {
            package_id: package.id.clone(),
            follow: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut lines = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(30), logs.next())
        .await
        .expect("logs end")
    {
        let line = line.unwrap();
        lines.push((line.line, line.stream));
    }
    assert!(
        lines.contains(&("hello from api 1".into(), "stdout".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("bye".into(), "stderr".into())),
        "{lines:?}"
    );

    // The operations endpoint: healthy engine, the build and launch counted.
    let (status, body) = common::http(&sidecar.operations, "GET", "/healthz", "").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"OK"}"#));
    let (status, metrics) = common::http(&sidecar.operations, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    for expected in [
        "cclaunch_build_duration_seconds_count{success=\"true\",reused=\"false\"} 1\n",
        "cclaunch_build_duration_seconds_count{success=\"true\",reused=\"true\"} 1\n",
        "cclaunch_launch_duration_seconds_count 1\n",
        "cclaunch_lines_mirrored_total 2\n",
    ] {
        assert!(metrics.contains(expected), "{expected:?} in:\n{metrics}");
    }

    let waited = client
        .wait(pb::ChaincodeRef {
            package_id: package.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(waited.exit_code, 7);
    let listed = client.list(pb::ListRequest {}).await.unwrap().into_inner();
    let mine = listed
        .chaincodes
        .iter()
        .find(|c| c.package_id == package.id)
        .expect("listed");
    assert_eq!((mine.running, mine.exit_code), (false, Some(7)));
    assert_eq!(mine.container, started.container);

    client
        .stop(pb::ChaincodeRef {
            package_id: package.id.clone(),
        })
        .await
        .unwrap();
    let listed = client.list(pb::ListRequest {}).await.unwrap().into_inner();
    assert!(!listed.chaincodes.iter().any(|c| c.package_id == package.id));
    let collected = client
        .gc(pb::GcRequest {
            package_ids: vec![package.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(collected.images.len(), 1, "{collected:?}");

    // SIGTERM: the sidecar drains and exits cleanly, removing its socket.
    let status = common::terminate(&mut sidecar.child, Duration::from_secs(15)).await;
    assert!(status.success(), "{status}");
    assert!(!sidecar.socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_get_status_codes_that_say_what_is_wrong() {
    let env = Env::new("apibad", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let sidecar = spawn_sidecar(&env);
    let mut client = common::grpc::launcher(&sidecar.socket).await;

    let start = |package_id: &str| pb::StartRequest {
        package_id: package_id.into(),
        peer_address: "127.0.0.1:7052".into(),
        ..Default::default()
    };
    let code = |r: Result<tonic::Response<pb::StartResponse>, tonic::Status>| r.unwrap_err().code();
    assert_eq!(code(client.start(start(UNKNOWN)).await), Code::NotFound);
    assert_eq!(
        code(client.start(start(&format!("a..b:{HASH}"))).await),
        Code::InvalidArgument,
        "name breaks Docker's rules"
    );
    let mut bad_tls = start(UNKNOWN);
    bad_tls.client_cert = b"not pem".to_vec();
    bad_tls.client_key = b"not pem".to_vec();
    bad_tls.root_cert = b"not pem".to_vec();
    let status = client.start(bad_tls).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("not PEM"), "{}", status.message());
    let mut half_tls = start(UNKNOWN);
    half_tls.client_cert = b"-----BEGIN CERTIFICATE-----".to_vec();
    assert_eq!(code(client.start(half_tls).await), Code::InvalidArgument);

    let hostile = common::repo().join("testdata/bad/code-symlink.tar.gz");
    let status = build(&mut client, chunks(&hostile)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("symlink"), "{}", status.message());
    // Larger than the sidecar's cap (1 MiB here): refused while it arrives.
    let big: Vec<pb::BuildRequest> = (0..20)
        .map(|_| pb::BuildRequest {
            source: Some(Source::Chunk(vec![0u8; 64 << 10])),
        })
        .collect();
    let status = build(&mut client, big).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("larger than"),
        "{}",
        status.message()
    );
    let status = build(&mut client, vec![]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let stop = client
        .stop(pb::ChaincodeRef {
            package_id: UNKNOWN.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(stop.code(), Code::NotFound);
    let wait = client
        .wait(pb::ChaincodeRef {
            package_id: UNKNOWN.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(wait.code(), Code::NotFound);
}

/// A Stop whose caller gives up midway (the external builder's `run` has 4 s
/// before the peer kills it) is finished by the sidecar all the same: the
/// container is removed, not left stopped. The engine here takes 2 s to
/// answer the stop, the first of the stop's three calls; the caller gives
/// up after 0.5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_whose_caller_gives_up_midway_is_finished_all_the_same() {
    use common::engine_proxy::{EngineProxy, Verdict};
    let env = Env::new("apigone", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let proxy = EngineProxy::judging(&EngineProxy::upstream(), |method, path| {
        if method == "POST" && path.contains("/containers/") && path.contains("/stop") {
            Verdict::Delay(Duration::from_secs(2))
        } else {
            Verdict::Forward
        }
    });
    let (_child, mut client) = serve_through(&env, &proxy).await;
    let package = env.shell_package("apigone", "echo up\nsleep 60\n");
    let container = common::sidecar::build_and_start(&mut client, &package).await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(500),
        client.stop(pb::ChaincodeRef {
            package_id: package.id.clone(),
        }),
    )
    .await;
    assert!(gave_up.is_err(), "the stop answered within 0.5 s");
    let exists = || {
        std::process::Command::new("docker")
            .args(["container", "inspect", &container])
            .output()
            .expect("docker")
            .status
            .success()
    };
    assert!(
        common::eventually(Duration::from_secs(20), || !exists()).await,
        "container {container} left behind by a stop whose caller went away"
    );
}

/// A client that retries Start on its own deadline: each retry identical to
/// the start still in flight gets that start's outcome; none queues behind it
/// to replace its container. The engine here takes 2 s to answer the
/// container's start; the client gives up after 0.5 s, twice, then waits.
/// A Start with other settings is a new start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_retried_while_in_flight_is_one_start() {
    use common::engine_proxy::{EngineProxy, Verdict};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let env = Env::new("apiretry", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let creates = Arc::new(AtomicU32::new(0));
    let proxy = EngineProxy::judging(&EngineProxy::upstream(), {
        let creates = creates.clone();
        move |method, path| {
            if method == "POST" && path.contains("/containers/create") {
                creates.fetch_add(1, Ordering::SeqCst);
            }
            if method == "POST" && path.contains("/containers/") && path.ends_with("/start") {
                Verdict::Delay(Duration::from_secs(2))
            } else {
                Verdict::Forward
            }
        }
    });
    let (_child, mut client) = serve_through(&env, &proxy).await;
    let package = env.shell_package("apiretry", "echo up\nsleep 60\n");
    common::sidecar::build(&mut client, &package).await;
    // Counted from here: the build ran in a container of its own.
    creates.store(0, Ordering::SeqCst);
    let request = pb::StartRequest {
        package_id: package.id.clone(),
        peer_address: "127.0.0.1:7052".into(),
        ..Default::default()
    };
    for _ in 0..2 {
        let gave_up =
            tokio::time::timeout(Duration::from_millis(500), client.start(request.clone())).await;
        assert!(gave_up.is_err(), "the start answered within 0.5 s");
    }
    let started = client.start(request.clone()).await.unwrap().into_inner();
    assert_eq!(
        creates.load(Ordering::SeqCst),
        1,
        "one start, one container"
    );
    let id = |name: &str| common::docker(&["inspect", "--format", "{{.Id}}", name]);
    let first = id(&started.container);
    // Nothing queued behind it replaces the container afterwards.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(creates.load(Ordering::SeqCst), 1);
    assert_eq!(id(&started.container), first);

    // Another peer address: a new start, which replaces the container.
    let other = pb::StartRequest {
        peer_address: "127.0.0.1:7053".into(),
        ..request
    };
    client.start(other.clone()).await.unwrap();
    assert_eq!(creates.load(Ordering::SeqCst), 2);
    assert_ne!(id(&started.container), first);

    // A Stop queued behind a start in flight: the same Start after it is a
    // start of its own, so the chaincode runs at the end.
    creates.store(0, Ordering::SeqCst);
    let third = pb::StartRequest {
        peer_address: "127.0.0.1:7054".into(),
        ..other
    };
    let gave_up =
        tokio::time::timeout(Duration::from_millis(500), client.start(third.clone())).await;
    assert!(gave_up.is_err(), "the start answered within 0.5 s");
    let mut stopper = client.clone();
    let chaincode = package.id.clone();
    let stop = tokio::spawn(async move {
        stopper
            .stop(pb::ChaincodeRef {
                package_id: chaincode,
            })
            .await
    });
    // The stop is queued behind the start before the start is asked again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.start(third).await.unwrap();
    stop.await.unwrap().expect("stopped");
    assert_eq!(
        creates.load(Ordering::SeqCst),
        2,
        "the start after the stop made a container of its own"
    );
    let running = common::docker(&[
        "inspect",
        "--format",
        "{{.State.Running}}",
        &started.container,
    ]);
    assert_eq!(running.trim(), "true");
    client
        .stop(pb::ChaincodeRef {
            package_id: package.id.clone(),
        })
        .await
        .unwrap();
}

/// `cclaunch serve` for `env` whose engine is reached through `proxy`; a
/// client of it.
async fn serve_through(
    env: &Env,
    proxy: &common::engine_proxy::EngineProxy,
) -> (
    tokio::process::Child,
    LauncherClient<tonic::transport::Channel>,
) {
    let socket = env.dir.path().join("run/cclaunch.sock");
    let child = common::serve_command(env, &["--socket", socket.to_str().unwrap()])
        .env("CORE_VM_ENDPOINT", proxy.endpoint())
        .spawn()
        .expect("spawn cclaunch serve");
    (child, common::grpc::launcher(&socket).await)
}
