//! An engine that answers `/_ping` and `/version` but never anything else (a
//! wedged daemon, a stalled proxy): every verb fails within its timeout with
//! DEADLINE_EXCEEDED naming the call and the chaincode, and health (gRPC,
//! `/healthz`, the CLI) says the engine is not answering.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cclaunch::proto::v1::{self as pb, launcher_client::LauncherClient};
use cclaunch::runtime::Runner;
use common::engine_proxy::EngineProxy;
use common::{Env, SHENV};
use tonic::Code;

/// A call's outcome and how long it took; a call still hanging after 20 s
/// (the old engine timeout was 600 s) fails the test.
async fn timed<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> (tonic::Status, Duration) {
    let began = Instant::now();
    match tokio::time::timeout(Duration::from_secs(20), call).await {
        Ok(Ok(_)) => panic!("{what} succeeded on a stalled engine"),
        Ok(Err(status)) => (status, began.elapsed()),
        Err(_) => panic!("{what} still hangs after 20 s on a stalled engine"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_engine_fails_every_verb_in_time_and_health_says_so() {
    let env = Env::new("stall", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    // A chaincode running on the real engine, for the verbs to aim at.
    let package = env.shell_package("stall", "echo up\nexec sleep 300\n");
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    env.launcher
        .start(common::request(&package.id))
        .await
        .expect("start");
    let container = env.launcher.names(&package.id).unwrap().container;

    let proxy = EngineProxy::start(&EngineProxy::upstream(), |_, path| {
        path == "/_ping" || path.ends_with("/version")
    });
    let socket = env.dir.path().join("run/cclaunch.sock");
    let operations = format!("127.0.0.1:{}", common::free_port());
    let stalled = |command: &mut tokio::process::Command| {
        command
            .env("CORE_VM_ENDPOINT", proxy.endpoint())
            .env("CCLAUNCH_ENGINE_REQUESTTIMEOUT", "2s")
            .env("CCLAUNCH_ENGINE_SLOWREQUESTTIMEOUT", "3s")
            .env("CCLAUNCH_ENGINE_HEALTHTIMEOUT", "1s");
    };
    let mut serve = common::serve_command(
        &env,
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--operations",
            &operations,
        ],
    );
    stalled(&mut serve);
    let mut sidecar = serve.stdout(Stdio::null()).spawn().expect("spawn serve");
    // Before serving, the sidecar's start-up looks for leftovers and
    // resumes mirrors: two engine calls, each failing within its 2 s. The
    // verbs are timed once it serves.
    let mut client =
        LauncherClient::new(common::grpc::serving(&socket, Duration::from_secs(10)).await);

    let chaincode = pb::ChaincodeRef {
        package_id: package.id.clone(),
    };
    let inspect = format!("inspect container {container} timed out after 2 s");
    let mut calls = vec![
        (
            "List",
            timed("List", client.clone().list(pb::ListRequest {})).await,
            "list containers of engine timed out after 2 s".to_string(),
        ),
        (
            "Stop",
            timed("Stop", client.clone().stop(chaincode.clone())).await,
            inspect.clone(),
        ),
        (
            "Wait",
            timed("Wait", client.clone().wait(chaincode.clone())).await,
            inspect.clone(),
        ),
    ];
    let logs = pb::LogsRequest {
        package_id: package.id.clone(),
        follow: true,
        ..Default::default()
    };
    calls.push((
        "Logs",
        timed("Logs", client.logs(logs)).await,
        inspect.clone(),
    ));
    let start = pb::StartRequest {
        package_id: package.id.clone(),
        peer_address: "127.0.0.1:7052".into(),
        ..Default::default()
    };
    calls.push(("Start", timed("Start", client.start(start)).await, inspect));
    for (what, (status, took), said) in &calls {
        assert_eq!(status.code(), Code::DeadlineExceeded, "{what}: {status:?}");
        assert!(status.message().contains(said), "{what}: {status:?}");
        if *what != "List" {
            assert!(
                status
                    .message()
                    .starts_with(&format!("chaincode {}: ", package.id)),
                "{what} names the chaincode: {status:?}"
            );
        }
        assert!(*took < Duration::from_secs(6), "{what} took {took:?}");
    }

    let (status, took) = timed("Health", client.health(pb::HealthRequest {})).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains("health check of engine timed out after 1 s"),
        "{status:?}"
    );
    assert!(took < Duration::from_secs(4), "Health took {took:?}");
    // The operations port says only Fabric's fixed reason (the detail, which
    // names the engine, goes to the sidecar's log: chaincode can read /healthz).
    let (code, body) = common::http(&operations, "GET", "/healthz", "").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("failed to ping to Docker daemon"), "{body}");

    // The CLI on the engine directly says the same.
    for (verb, said) in [
        ("health", "health check of engine timed out after 1 s"),
        ("ps", "list containers of engine timed out after 2 s"),
    ] {
        let mut cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_cclaunch"));
        cli.arg(verb)
            .env("CORE_PEER_ID", &env.peer)
            .env("CORE_PEER_NETWORKID", "test");
        stalled(&mut cli);
        let began = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(20), cli.output())
            .await
            .expect("the CLI gives up in time")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{verb}: {stderr}");
        assert!(stderr.contains(said), "{verb}: {stderr}");
        assert!(began.elapsed() < Duration::from_secs(6), "{verb}");
    }

    assert!(
        proxy.held().iter().any(|l| l.contains("/containers/")),
        "the calls reached the stalled engine: {:?}",
        proxy.held()
    );
    // Nothing happened to the chaincode.
    let info = env
        .engine
        .inspect_container(&container)
        .await
        .unwrap()
        .expect("still there");
    assert!(info.running);
    common::terminate(&mut sidecar, Duration::from_secs(15)).await;

    // SIGTERM while a sidecar is still starting up (its two calls to the
    // stalled engine take 4 s): it ends cleanly once start-up is over, its
    // mirrors checkpointed and its socket removed, rather than dying of
    // the signal.
    let mut serve = common::serve_command(&env, &["--socket", socket.to_str().unwrap()]);
    stalled(&mut serve);
    let mut sidecar = serve.stdout(Stdio::null()).spawn().expect("spawn serve");
    let began = Instant::now();
    while !socket.exists() {
        assert!(began.elapsed() < Duration::from_secs(10), "never bound");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = common::terminate(&mut sidecar, Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the socket outlived a clean shutdown");
}
