//! The launcher's own logic on the in-memory engine ([`crate::runtime::fake`]):
//! single flight, errors shared with their kind, cancellation, turns. No
//! engine, no sleeps: calls are held at gates and let go by the test.

use std::sync::Arc;
use std::time::Duration;

use super::{Error, Launcher, StartRequest, TlsMaterial};
use crate::config::Config;
use crate::launch::Kind;
use crate::package::{self, Limits, Metadata, Package};
use crate::runtime::fake::Fake;
use crate::runtime::{self, Labels};

struct Setup {
    fake: Fake,
    launcher: Arc<Launcher>,
    package: Package,
    _dir: tempfile::TempDir,
}

/// A launcher for peer `peer` on a fresh fake engine, and a node package.
fn setup(peer: &str, build_timeout: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let (peer, timeout) = (peer.to_string(), build_timeout.to_string());
    let config = Config::load_with_env(None, |key| match key {
        "CCLAUNCH_STATEDIR" => Some(state.clone()),
        "CORE_PEER_ID" => Some(peer.clone()),
        "CCLAUNCH_BUILD_TIMEOUT" => Some(timeout.clone()),
        _ => None,
    })
    .unwrap();
    let code = dir.path().join("src");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("start.sh"), "echo hi\n").unwrap();
    let file = dir.path().join("cc.tar.gz");
    let metadata = Metadata {
        path: String::new(),
        kind: "node".into(),
        label: "cc".into(),
    };
    package::write(&metadata, &code, &file).unwrap();
    let package = Package::open(&file, Limits::default()).unwrap();
    let fake = Fake::new();
    let launcher = Arc::new(Launcher::new(Arc::new(fake.clone()), config));
    Setup {
        fake,
        launcher,
        package,
        _dir: dir,
    }
}

/// Polls `check` until it holds (at most 5 s: every condition here is
/// met within milliseconds).
async fn until(mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in 5 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

type Build = tokio::task::JoinHandle<Result<super::Built, Error>>;

fn spawn_build(s: &Setup) -> Build {
    let (launcher, package) = (Arc::clone(&s.launcher), s.package.clone());
    tokio::spawn(async move { launcher.build(&package, &|_: &str| {}).await })
}

/// Three Builds of one package, the build held until all three joined it.
async fn three_joined(s: &Setup) -> Vec<Build> {
    s.fake.hold("wait_container");
    let image = s.launcher.names(&s.package.id).unwrap().image;
    let builds: Vec<Build> = (0..3).map(|_| spawn_build(s)).collect();
    s.fake.reached("wait_container", 1).await;
    until(|| s.launcher.callers(&image) == 3).await;
    builds
}

#[tokio::test]
async fn concurrent_builds_of_one_package_make_one_engine_build() {
    let s = setup("single", "10m");
    let builds = three_joined(&s).await;
    s.fake.open("wait_container", 1);
    let mut reused = Vec::new();
    for build in builds {
        reused.push(build.await.unwrap().expect("built").reused);
    }
    reused.sort();
    assert_eq!(reused, [false, true, true], "one built, two shared it");
    assert_eq!(s.fake.calls("create_container"), 1, "one build container");
    assert_eq!(s.fake.calls("build_image"), 1);
}

#[tokio::test]
async fn a_shared_builds_failure_reaches_every_waiter_with_its_kind() {
    let s = setup("shared", "10m");
    s.fake
        .fail("wait_container", || runtime::Error::Unreachable {
            endpoint: "unix:///fake.sock".into(),
            reason: "the engine is down".into(),
        });
    let builds = three_joined(&s).await;
    s.fake.open("wait_container", 1);
    for build in builds {
        let error = build.await.unwrap().expect_err("the build failed");
        assert_eq!(error.kind(), Kind::Unavailable, "{error}");
        assert!(
            crate::error_chain(&error).contains("the engine is down"),
            "{}",
            crate::error_chain(&error)
        );
    }
    assert_eq!(s.fake.calls("create_container"), 1, "one build container");
}

#[tokio::test]
async fn a_build_whose_last_caller_left_is_cancelled_and_its_container_removed() {
    let s = setup("cancel", "10m");
    s.fake.hold("wait_container");
    let build = spawn_build(&s);
    s.fake.reached("wait_container", 1).await;
    assert_eq!(s.fake.containers().len(), 1, "the build container");
    build.abort();
    until(|| s.fake.containers().is_empty()).await;
    until(|| s.launcher.flights.lock().unwrap().is_empty()).await;
    assert_eq!(s.fake.calls("build_image"), 0);
}

#[tokio::test]
async fn one_waiter_staying_keeps_the_build_going() {
    let s = setup("stay", "10m");
    s.fake.hold("wait_container");
    let image = s.launcher.names(&s.package.id).unwrap().image;
    let first = spawn_build(&s);
    s.fake.reached("wait_container", 1).await;
    let second = spawn_build(&s);
    until(|| s.launcher.callers(&image) == 2).await;
    first.abort();
    s.fake.open("wait_container", 1);
    let built = second
        .await
        .unwrap()
        .expect("built for the caller that stayed");
    assert!(built.reused, "it joined the first caller's build");
    assert_eq!(s.fake.calls("create_container"), 1, "one build container");
    assert_eq!(s.fake.calls("build_image"), 1);
}

#[tokio::test]
async fn a_build_past_its_timeout_is_ended_as_timed_out() {
    let s = setup("timeout", "50ms");
    s.fake.hold("wait_container");
    let error = spawn_build(&s).await.unwrap().expect_err("timed out");
    assert!(matches!(error, Error::BuildTimeout { .. }), "{error}");
    assert_eq!(error.kind(), Kind::DeadlineExceeded);
    assert!(s.fake.containers().is_empty(), "its container removed");
}

fn request(package_id: &str, tls: bool) -> StartRequest {
    StartRequest {
        package_id: package_id.to_string(),
        platform: Some(crate::platform::Platform::Node),
        peer_address: "127.0.0.1:7052".into(),
        tls: tls.then(|| TlsMaterial {
            client_cert: b"-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n".to_vec(),
            client_key: b"-----BEGIN PRIVATE KEY-----\nB\n-----END PRIVATE KEY-----\n".to_vec(),
            root_cert: b"-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n".to_vec(),
        }),
        msp_id: None,
        extra_env: Vec::new(),
        image_of: None,
    }
}

/// Makes the image of `package_id` exist, as a build would have.
fn built(s: &Setup, package_id: &str) {
    let image = s.launcher.names(package_id).unwrap().image;
    s.fake.add_image(&image, Labels::new());
}

type Start = tokio::task::JoinHandle<Result<super::Started, Error>>;

fn spawn_start(s: &Setup, package_id: &str, tls: bool) -> Start {
    let launcher = Arc::clone(&s.launcher);
    let request = request(package_id, tls);
    tokio::spawn(async move { launcher.start(request).await })
}

#[tokio::test]
async fn starts_of_one_chaincode_take_turns_and_of_two_run_at_once() {
    let s = setup("turns", "10m");
    let (a, b) = (
        &format!("a:{}", "a".repeat(64)),
        &format!("b:{}", "b".repeat(64)),
    );
    built(&s, a);
    built(&s, b);
    s.fake.hold("create_container");
    let first_a = spawn_start(&s, a, false);
    let start_b = spawn_start(&s, b, false);
    // a and b are in create at the same time.
    s.fake.reached("create_container", 2).await;
    let second_a = spawn_start(&s, a, false);
    s.fake.open("create_container", 3);
    for start in [first_a, start_b, second_a] {
        start.await.unwrap().expect("started");
    }
    // The second start of a waited for the first, then replaced its
    // container (a create while it stood would have been refused).
    let names: Vec<String> = s.fake.containers().into_iter().map(|c| c.name).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(s.fake.calls("create_container"), 3);
    assert_eq!(s.fake.calls("remove_container"), 1);
}

#[tokio::test]
async fn a_start_cancelled_at_any_step_leaves_no_container() {
    for step in ["create_container", "upload", "start_container"] {
        let s = setup("cancelstart", "10m");
        let id = &format!("cc:{}", "c".repeat(64));
        built(&s, id);
        s.fake.hold(step);
        let start = spawn_start(&s, id, true);
        s.fake.reached(step, 1).await;
        start.abort();
        let _ = start.await;
        // The engine finishes what it was asked (the create, the upload).
        s.fake.open(step, 1);
        until(|| s.fake.containers().is_empty()).await;
        // And the chaincode's turn is free again: a new start goes through.
        s.fake.open(step, 1);
        spawn_start(&s, id, true)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        assert_eq!(s.fake.containers().len(), 1, "{step}");
    }
}
