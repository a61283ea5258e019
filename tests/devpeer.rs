//! A real chaincode comes up: the npm fabric-shim / fabric-contract-api
//! chaincode in testdata is built (npm install runs in the build container),
//! started by cclaunch, registers with devpeer over mutual TLS or plain TCP,
//! and answers transactions; its own log lines arrive in the mirrored output.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cclaunch::devpeer::ca::DevCa;
use cclaunch::devpeer::proto::protos::chaincode_message::Type;
use cclaunch::devpeer::proto::protos::chaincode_support_client::ChaincodeSupportClient;
use cclaunch::devpeer::proto::protos::{ChaincodeId, ChaincodeMessage};
use cclaunch::devpeer::tryout::{self, Invocation, Options};
use cclaunch::devpeer::{Creator, DevPeer, TlsSetup};
use cclaunch::launcher::StartRequest;
use common::{captured, eventually, free_port, http, repo, Env};
use prost::Message;

fn options(tls: bool, calls: &[&[&str]]) -> Options {
    Options {
        tls,
        channel: "mychannel".into(),
        msp_id: "Org1MSP".into(),
        startup_timeout: Duration::from_secs(120),
        invoke_timeout: Duration::from_secs(30),
        invocations: calls
            .iter()
            .map(|args| Invocation {
                args: args.iter().map(|a| a.to_string()).collect(),
                init: false,
            })
            .collect(),
        keep: false,
        listen: ([127, 0, 0, 1], 0).into(),
    }
}

/// Each answer of a `try` as (status, payload as text).
fn answers(outcome: &tryout::Outcome) -> Vec<(i32, String)> {
    outcome
        .responses
        .iter()
        .map(|(_, r)| {
            let r = r.as_ref().expect("answered");
            (r.status, String::from_utf8_lossy(&r.payload).into_owned())
        })
        .collect()
}

fn lines_of(container: &str) -> Vec<String> {
    captured().for_target(&format!("peer.chaincode.{container}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_api_chaincode_registers_over_mutual_tls_and_keeps_state() {
    contract_flow(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_api_chaincode_works_with_tls_off() {
    contract_flow(false).await;
}

async fn contract_flow(tls: bool) {
    let _ = captured();
    let env = Env::new(
        if tls {
            "contract-tls"
        } else {
            "contract-plain"
        },
        &[],
    )
    .await;
    let package = env.package(
        "node",
        "asset-contract_1.0",
        "",
        &repo().join("testdata/chaincode/node-contract"),
    );
    let outcome = tryout::run(
        &*env.launcher,
        &package,
        &options(
            tls,
            &[
                &["CreateAsset", "a1", "blue"],
                &["ReadAsset", "a1"],
                &["AssetExists", "a2"],
                &["NoSuchFunction"],
            ],
        ),
        &|_: &str| {},
    )
    .await
    .expect("try");
    assert_eq!(
        outcome.package_id, package.id,
        "registered under the package id"
    );
    let r = &outcome.responses;
    let ok = |i: usize| r[i].1.as_ref().expect("answered");
    assert_eq!(ok(0).status, 200);
    assert_eq!(
        (
            ok(1).status,
            String::from_utf8_lossy(&ok(1).payload).into_owned()
        ),
        (200, r#"{"ID":"a1","Color":"blue"}"#.to_string())
    );
    assert_eq!(String::from_utf8_lossy(&ok(2).payload), "false");
    assert_eq!(ok(3).status, 500);
    assert!(
        ok(3).message.contains("does not exist: NoSuchFunction"),
        "{}",
        ok(3).message
    );
    assert!(!outcome.all_ok());

    let logs = lines_of(&outcome.container);
    assert!(
        logs.iter()
            .any(|l| l.contains("asset-contract: CreateAsset a1")),
        "chaincode's own log lines are mirrored: {logs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_level_shim_chaincode_works_with_tls_off() {
    shim_flow(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_level_shim_chaincode_registers_over_mutual_tls() {
    shim_flow(true).await;
}

async fn shim_flow(tls: bool) {
    let _ = captured();
    let env = Env::new(if tls { "shim-tls" } else { "shim-plain" }, &[]).await;
    let package = env.package(
        "node",
        "shim_1.0",
        "",
        &repo().join("testdata/chaincode/node-shim"),
    );
    let outcome = tryout::run(
        &*env.launcher,
        &package,
        &options(
            tls,
            &[
                &["put", "k1", "v1"],
                &["get", "k1"],
                &["del", "k1"],
                &["get", "k1"],
                &["nope"],
            ],
        ),
        &|_: &str| {},
    )
    .await
    .expect("try");
    let payloads = answers(&outcome);
    assert_eq!(
        payloads[..4],
        [
            (200, "".into()),
            (200, "v1".into()),
            (200, "".into()),
            (200, "".into())
        ]
    );
    assert_eq!(payloads[4].0, 500, "unknown function is an error status");
    let logs = lines_of(&outcome.container);
    assert!(
        logs.iter()
            .any(|l| l.contains("node-shim") && l.contains("put")),
        "{logs:?}"
    );
}

/// Go: golang-shim (our minimal shim, not Fabric's; grpc vendored from
/// Debian) built by Fabric's `-mod=vendor` road in ccenv, registers over
/// mutual TLS and answers INIT and invokes that read and write state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_shim_chaincode_registers_over_mutual_tls_and_keeps_state() {
    let _ = captured();
    let env = Env::new("goshim-tls", &[]).await;
    let code = common::golang_shim(env.dir.path());
    let package = env.package("golang", "goshim_1.0", "example.com/cclaunch/shimcc", &code);
    let began = Instant::now();
    let built = env
        .launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    let build_took = began.elapsed();
    assert!(!built.reused, "a fresh package is built");
    let mut opts = options(
        true,
        &[
            &["init"],
            &["put", "k1", "v1"],
            &["get", "k1"],
            &["echo", "a", "b"],
            &["del", "k1"],
            &["get", "k1"],
            &["nope"],
        ],
    );
    opts.invocations[0].init = true;
    let began = Instant::now();
    let outcome = tryout::run(&*env.launcher, &package, &opts, &|_: &str| {})
        .await
        .expect("try");
    let tried = began.elapsed();
    let answers = answers(&outcome);
    assert_eq!(
        answers[..6],
        [
            (200, "".into()),
            (200, "".into()),
            (200, "v1".into()),
            (200, "a b".into()),
            (200, "".into()),
            (200, "".into()),
        ]
    );
    let unknown = outcome.responses[6].1.as_ref().unwrap();
    assert_eq!(
        (unknown.status, unknown.message.as_str()),
        (500, "unknown function nope")
    );
    let logs = lines_of(&outcome.container);
    for line in [
        format!("shim: registered as {}", package.id),
        "shim: ready".to_string(),
        "shimcc: Invoke put k1 v1".to_string(),
    ] {
        assert!(logs.contains(&line), "{line:?} in {logs:?}");
    }
    assert!(
        logs.iter().any(|l| l.starts_with("shimcc: Init tx=")),
        "{logs:?}"
    );
    println!(
        "golang-shim: build {:.1} s, start (create + TLS upload + start) {} ms, registered {} ms after Start was called, start + {} invokes + stop {:.2} s",
        build_took.as_secs_f64(),
        outcome.start_took.as_millis(),
        outcome.registered_after.as_millis(),
        outcome.responses.len(),
        tried.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaincode_that_dies_before_registering_is_reported_with_its_output_in_seconds() {
    let env = Env::new("badstart", &[]).await;
    let package = env.package(
        "node",
        "badstart_1",
        "",
        &repo().join("testdata/chaincode/node-badstart"),
    );
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    let started = Instant::now();
    let err = tryout::run(&*env.launcher, &package, &options(true, &[]), &|_: &str| {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("chaincode registration failed: container exited with 3\n"),
        "{text}"
    );
    assert!(
        text.contains("badstart: line one") && text.contains("badstart: about to fail"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}, not the startup timeout",
        started.elapsed()
    );
    let container = env.launcher.names(&package.id).unwrap().container;
    assert_eq!(
        common::docker(&["ps", "-aq", "--filter", &format!("name={container}")]).trim(),
        "",
        "cleaned up"
    );
}

async fn tls_devpeer(ca: &DevCa) -> (DevPeer, cclaunch::devpeer::Listening) {
    let admin = ca.client("Admin@Org1MSP").unwrap();
    let peer = DevPeer::new(Creator {
        msp_id: "Org1MSP".into(),
        cert_pem: admin.client_cert,
    });
    let server = ca.server(&[]).unwrap();
    let listening = peer
        .listen(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Some(TlsSetup {
                cert_pem: server.cert_pem,
                key_pem: server.key_pem,
                client_ca_pem: ca.ca_pem(),
            }),
        )
        .await
        .unwrap();
    (peer, listening)
}

/// Tries to register `name`; Ok(first answer type) or the failure.
async fn register_as(
    addr: SocketAddr,
    tls: tonic::transport::ClientTlsConfig,
    name: &str,
) -> Result<i32, String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut client = ChaincodeSupportClient::new(channel);
    let hello = ChaincodeMessage {
        r#type: Type::Register as i32,
        payload: ChaincodeId {
            name: name.into(),
            ..Default::default()
        }
        .encode_to_vec(),
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(hello).await.unwrap();
    let mut answers = client
        .register(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|e| format!("register: {e}"))?
        .into_inner();
    let first = answers
        .message()
        .await
        .map_err(|e| format!("stream: {e}"))?;
    drop(tx);
    first.map(|m| m.r#type).ok_or_else(|| "no answer".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_on_a_client_without_a_valid_certificate_is_refused() {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let ca = DevCa::new().unwrap();
    let (peer, listening) = tls_devpeer(&ca).await;
    let trust = Certificate::from_pem(ca.ca_pem());

    let no_cert = ClientTlsConfig::new()
        .ca_certificate(trust.clone())
        .domain_name("localhost");
    assert!(
        register_as(listening.addr, no_cert, "nocert:1")
            .await
            .is_err(),
        "no client certificate"
    );

    let other = DevCa::new().unwrap().client("intruder").unwrap();
    let foreign = ClientTlsConfig::new()
        .ca_certificate(trust.clone())
        .domain_name("localhost")
        .identity(Identity::from_pem(other.client_cert, other.client_key));
    assert!(
        register_as(listening.addr, foreign, "foreign:1")
            .await
            .is_err(),
        "certificate from another CA"
    );

    let good = ca.client("good").unwrap();
    let valid = ClientTlsConfig::new()
        .ca_certificate(trust)
        .domain_name("localhost")
        .identity(Identity::from_pem(good.client_cert, good.client_key));
    assert_eq!(
        register_as(listening.addr, valid.clone(), "good:1").await,
        Ok(Type::Registered as i32)
    );
    assert!(eventually(Duration::from_secs(5), || peer.registered().is_empty()).await);
    assert_eq!(
        peer.registered(),
        Vec::<String>::new(),
        "the stream ended with the client"
    );
    listening.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_registration_of_the_same_id_gets_error() {
    let peer = DevPeer::new(Creator {
        msp_id: "Org1MSP".into(),
        cert_pem: Vec::new(),
    });
    let listening = peer
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)), None)
        .await
        .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", listening.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut client = ChaincodeSupportClient::new(channel.clone());
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let hello = ChaincodeMessage {
            r#type: Type::Register as i32,
            payload: ChaincodeId {
                name: "twice:1".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            ..Default::default()
        };
        tx.send(hello).await.unwrap();
        let mut answers = client
            .register(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let first = answers.message().await.unwrap().unwrap();
        streams.push((tx, answers, first.r#type));
    }
    assert_eq!(streams[0].2, Type::Registered as i32);
    assert_eq!(streams[1].2, Type::Error as i32);

    // A malformed first message (not REGISTER) is refused with ERROR too.
    let mut client = ChaincodeSupportClient::new(channel.clone());
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(ChaincodeMessage {
        r#type: Type::Transaction as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut answers = client
        .register(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answers.message().await.unwrap().unwrap().r#type,
        Type::Error as i32
    );
    drop((tx, streams));
    listening.shutdown().await;
}

/// The standard-library samples (no Fabric shim for Go or Java here; the Go
/// chaincode that registers is golang-shim above) prove they dial devpeer's
/// address and read their TLS files.
async fn sample_reaches_devpeer_with_tls(kind: &str, name: &str, path: &str) {
    let _ = captured();
    let env = Env::new(kind, &[]).await;
    let ca = DevCa::new().unwrap();
    let (_peer, listening) = tls_devpeer(&ca).await;
    let package = env.package(
        kind,
        &format!("devpeer-{kind}_1"),
        path,
        &repo().join("testdata/chaincode").join(kind),
    );
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    let started = env
        .launcher
        .start(StartRequest {
            package_id: package.id.clone(),
            platform: None,
            peer_address: listening.addr.to_string(),
            tls: Some(ca.client(&package.id).unwrap()),
            msp_id: None,
            extra_env: Vec::new(),
            image_of: None,
        })
        .await
        .expect("start");
    let ready = format!("{name} ready");
    assert!(
        eventually(Duration::from_secs(60), || lines_of(&started.container)
            .contains(&ready))
        .await,
        "{:?}",
        lines_of(&started.container)
    );
    let logs = lines_of(&started.container);
    assert!(logs.contains(&"tls ok".to_string()), "{logs:?}");
    assert!(
        logs.contains(&format!("peer connected {}", listening.addr)),
        "{logs:?}"
    );
    env.launcher.stop(&package.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_sample_dials_devpeer_and_reads_its_tls_files() {
    sample_reaches_devpeer_with_tls("golang", "sample-go", "example.com/cclaunch/sample").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_sample_dials_devpeer_and_reads_its_tls_files() {
    sample_reaches_devpeer_with_tls("java", "sample-java", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devpeer_serve_lets_a_harness_start_chaincode_separately_and_query_it() {
    use cclaunch::launcher::TlsMaterial;
    let env = Env::new("serve", &[]).await;
    let (listen, control) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let tls_dir = env.dir.path().join("devpeer-tls");
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_cclaunch"))
        .args([
            "devpeer",
            "serve",
            "--listen",
            &listen,
            "--control",
            &control,
            "--tls",
            "--tls-dir",
        ])
        .arg(&tls_dir)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(serve.stdout.take().unwrap());
    let mut banner = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut out, &mut banner)
        .await
        .unwrap();
    assert!(
        banner.contains(&listen) && banner.contains("mutual TLS"),
        "{banner}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(tls_dir.join("client.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the client key is private");

    let package = env.package(
        "node",
        "served_1",
        "",
        &repo().join("testdata/chaincode/node-shim"),
    );
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    let read = |f: &str| std::fs::read(tls_dir.join(f)).unwrap();
    env.launcher
        .start(StartRequest {
            package_id: package.id.clone(),
            platform: None,
            peer_address: listen.clone(),
            tls: Some(TlsMaterial {
                client_cert: read("client.crt"),
                client_key: read("client.key"),
                root_cert: read("ca.crt"),
            }),
            msp_id: None,
            extra_env: Vec::new(),
            image_of: None,
        })
        .await
        .expect("start");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = http(&control, "GET", "/chaincodes", "").await;
        assert_eq!(status, 200, "{body}");
        if body.contains(&package.id) {
            break;
        }
        assert!(Instant::now() < deadline, "never registered: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let call = |args: &str| format!(r#"{{"chaincode":"{}","args":{args}}}"#, package.id);
    assert_eq!(
        http(&control, "POST", "/invoke", &call(r#"["put","k","v"]"#))
            .await
            .0,
        200
    );
    let (status, body) = http(&control, "POST", "/invoke", &call(r#"["get","k"]"#)).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""status":200"#) && body.contains(r#""payload":"v""#),
        "{body}"
    );
    let (status, _) = http(
        &control,
        "POST",
        "/invoke",
        r#"{"chaincode":"nobody:1","args":["x"]}"#,
    )
    .await;
    assert_eq!(status, 404, "unknown chaincode");

    env.launcher.stop(&package.id).await.unwrap();
    // SIGTERM: devpeer stops cleanly.
    let status = common::terminate(&mut serve, Duration::from_secs(15)).await;
    assert!(status.success(), "{status}");
}
