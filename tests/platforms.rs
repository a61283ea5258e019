//! Each language's sample chaincode goes through build and start on the real
//! engine; what the running container got (args, env, TLS files) is read back
//! from the engine and checked against what a Fabric peer gives, and the
//! chaincode dials the peer address it was handed.

mod common;

use std::time::Duration;

use base64::Engine as _;
use cclaunch::launcher::{StartRequest, TlsMaterial};
use cclaunch::platform::Platform;
use cclaunch::runtime::{Engine, Runner};
use common::{captured, eventually, read_container_file, repo, Env};
use tokio::net::TcpListener;

struct Case {
    kind: &'static str,
    /// What the sample calls itself.
    name: &'static str,
    path: &'static str,
    platform: Platform,
}

async fn build_start_and_inspect(case: Case) {
    let captured = captured();
    let env = Env::new(case.kind, &[]).await;
    let code = repo().join("testdata/chaincode").join(case.kind);
    let package = env.package(
        case.kind,
        &format!("sample-{}_1.0", case.kind),
        case.path,
        &code,
    );

    let built = env
        .launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    assert!(!built.reused, "first build builds");
    assert_eq!(built.platform, case.platform);
    let labels = env
        .engine
        .image_labels(&built.image)
        .await
        .unwrap()
        .expect("image exists");
    assert_eq!(
        labels
            .get("org.hyperledger.fabric.chaincode.type")
            .map(String::as_str),
        Some(case.platform.fabric_type())
    );

    // The peer's chaincode listener stand-in: the sample must dial it.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let peer_address = listener.local_addr().unwrap().to_string();
    let tls: TlsMaterial = common::tls_material();
    let started = env
        .launcher
        .start(StartRequest {
            package_id: package.id.clone(),
            platform: None, // read from the image's Fabric label
            peer_address: peer_address.clone(),
            tls: Some(tls.clone()),
            msp_id: Some("Org1MSP".into()),
            extra_env: Vec::new(),
            image_of: None,
        })
        .await
        .expect("start");
    let accepted = tokio::time::timeout(Duration::from_secs(120), listener.accept()).await;
    assert!(
        accepted.is_ok(),
        "{}: the chaincode never dialled {peer_address}",
        case.kind
    );

    // Args and env, as the engine recorded them (Config.Env keeps the order).
    let info = env
        .engine
        .inspect_container(&started.container)
        .await
        .unwrap()
        .expect("container");
    let checked = cclaunch::platform::PeerAddress::parse(&peer_address).unwrap();
    assert_eq!(info.args, case.platform.args(&checked));
    let logging = env.launcher.config().logging_env();
    let expected_env: Vec<String> = [
        format!("CORE_CHAINCODE_ID_NAME={}", package.id),
        logging[0].clone(),
        logging[1].clone(),
        logging[2].clone(),
        "CORE_PEER_TLS_ENABLED=true".into(),
        "CORE_TLS_CLIENT_KEY_PATH=/etc/hyperledger/fabric/client.key".into(),
        "CORE_TLS_CLIENT_CERT_PATH=/etc/hyperledger/fabric/client.crt".into(),
        "CORE_TLS_CLIENT_KEY_FILE=/etc/hyperledger/fabric/client_pem.key".into(),
        "CORE_TLS_CLIENT_CERT_FILE=/etc/hyperledger/fabric/client_pem.crt".into(),
        "CORE_PEER_TLS_ROOTCERT_FILE=/etc/hyperledger/fabric/peer.crt".into(),
        "CORE_PEER_LOCALMSPID=Org1MSP".into(),
    ]
    .to_vec();
    assert_eq!(
        info.env[..expected_env.len()],
        expected_env[..],
        "env in the peer's order"
    );
    assert!(
        info.env
            .contains(&"CORE_CHAINCODE_BUILDLEVEL=2.5.16".to_string()),
        "image ENV from the Dockerfile"
    );

    // The five TLS files: two base64, three PEM, all mode 0644.
    let b64 = base64::engine::general_purpose::STANDARD;
    for (file, want) in [
        ("client.key", b64.encode(&tls.client_key).into_bytes()),
        ("client.crt", b64.encode(&tls.client_cert).into_bytes()),
        ("client_pem.key", tls.client_key.clone()),
        ("client_pem.crt", tls.client_cert.clone()),
        ("peer.crt", tls.root_cert.clone()),
    ] {
        let (data, mode) = read_container_file(
            &env.engine,
            &started.container,
            &format!("/etc/hyperledger/fabric/{file}"),
        )
        .await;
        assert_eq!(data, want, "{file}");
        assert_eq!(mode & 0o7777, 0o644, "{file} mode");
    }

    // The chaincode itself saw the same: its own report in the mirrored output.
    let target = format!("peer.chaincode.{}", started.container);
    let ready = format!("{} ready", case.name);
    let seen = eventually(Duration::from_secs(60), || {
        captured.for_target(&target).contains(&ready)
    })
    .await;
    let lines = captured.for_target(&target);
    assert!(seen, "{}: no ready line; output: {lines:?}", case.kind);
    assert!(
        lines.contains(&"tls ok".to_string()),
        "{}: {lines:?}",
        case.kind
    );
    assert!(
        lines.contains(&format!("peer connected {peer_address}")),
        "{}: {lines:?}",
        case.kind
    );
    assert!(
        lines.contains(&format!("env CORE_CHAINCODE_ID_NAME={}", package.id)),
        "{lines:?}"
    );

    // Building again reuses the image.
    let again = env
        .launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("rebuild");
    assert!(again.reused);
    assert_eq!(again.image, built.image);

    env.launcher.stop(&package.id).await.expect("stop");
    assert!(env
        .engine
        .inspect_container(&started.container)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golang_sample_builds_starts_and_gets_the_peers_args_env_and_tls() {
    build_start_and_inspect(Case {
        kind: "golang",
        name: "sample-go",
        path: "example.com/cclaunch/sample",
        platform: Platform::Golang,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sample_builds_starts_and_gets_the_peers_args_env_and_tls() {
    build_start_and_inspect(Case {
        kind: "node",
        name: "sample-node",
        path: "",
        platform: Platform::Node,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_sample_builds_starts_and_gets_the_peers_args_env_and_tls() {
    build_start_and_inspect(Case {
        kind: "java",
        name: "sample-java",
        path: "",
        platform: Platform::Java,
    })
    .await;
}
