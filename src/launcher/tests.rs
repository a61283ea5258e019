//! The launcher's own logic on the in-memory engine ([`crate::runtime::fake`]):
//! single flight, errors shared with their kind, cancellation, turns,
//! checkpoint resume. No engine and no waiting: calls are held at gates and
//! let go by the test, and the clock is paused, so timeouts pass at once.

use std::sync::Arc;
use std::time::Duration;

use super::{Error, Launcher, StartRequest, TlsMaterial};
use crate::config::Config;
use crate::launch::Kind;
use crate::output::captured::Captured;
use crate::package::{self, Limits, Metadata, Package};
use crate::runtime::fake::Fake;
use crate::runtime::{self, Labels};

pub(super) struct Setup {
    pub(super) fake: Fake,
    pub(super) launcher: Arc<Launcher>,
    pub(super) package: Package,
    pub(super) _dir: tempfile::TempDir,
}

/// A launcher for peer `peer` on a fresh fake engine, and a node package.
fn setup(peer: &str, build_timeout: &str) -> Setup {
    setup_with(peer, build_timeout, &[])
}

/// The same, with more configuration from the environment.
pub(super) fn setup_with(peer: &str, build_timeout: &str, more: &[(&str, &str)]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let (peer, timeout) = (peer.to_string(), build_timeout.to_string());
    let config = Config::load_with_env(None, |key| match key {
        "CCLAUNCH_STATEDIR" => Some(state.clone()),
        "CORE_PEER_ID" => Some(peer.clone()),
        "CCLAUNCH_BUILD_TIMEOUT" => Some(timeout.clone()),
        // Measuring a cache runs a container: counted apart (caches test).
        "CCLAUNCH_BUILD_CACHES" => Some("false".to_string()),
        _ => more
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string()),
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

/// Polls `check` until it holds. The clock is paused and moves only when
/// every task waits, so the 5 s bound is 5000 rounds of everything else
/// running, not a wall-clock wait.
pub(super) async fn until(mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in 5000 rounds"
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

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
async fn a_build_past_its_timeout_is_ended_as_timed_out() {
    // Ten minutes on the paused clock: they pass as soon as the build waits.
    let s = setup("timeout", "10m");
    s.fake.hold("wait_container");
    let error = spawn_build(&s).await.unwrap().expect_err("timed out");
    assert!(matches!(error, Error::BuildTimeout { .. }), "{error}");
    assert_eq!(error.kind(), Kind::DeadlineExceeded);
    assert!(s.fake.containers().is_empty(), "its container removed");
}

pub(super) fn request(package_id: &str, tls: bool) -> StartRequest {
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
pub(super) fn built(s: &Setup, package_id: &str) {
    let image = s.launcher.names(package_id).unwrap().image;
    s.fake.add_image(&image, Labels::new());
}

pub(super) type Start = tokio::task::JoinHandle<Result<super::Started, Error>>;

pub(super) fn spawn_start(s: &Setup, package_id: &str, tls: bool) -> Start {
    let launcher = Arc::clone(&s.launcher);
    let request = request(package_id, tls);
    tokio::spawn(async move { launcher.start(request).await })
}

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
async fn a_start_cancelled_at_any_step_leaves_no_container() {
    for step in ["create_container", "attach", "start_container"] {
        let s = setup("cancelstart", "10m");
        let id = &format!("cc:{}", "c".repeat(64));
        built(&s, id);
        s.fake.hold(step);
        let start = spawn_start(&s, id, true);
        s.fake.reached(step, 1).await;
        start.abort();
        let _ = start.await;
        // The engine finishes what it was asked (the create, the attach).
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

#[tokio::test(start_paused = true)]
async fn the_tls_files_go_in_with_the_create_keys_as_secrets() {
    let s = setup("tlsfiles", "10m");
    let id = &format!("cc:{}", "d".repeat(64));
    built(&s, id);
    spawn_start(&s, id, true).await.unwrap().expect("started");
    assert_tls_files(&s.fake.containers()[0]);
    assert_eq!(s.fake.calls("upload"), 0, "no upload of its own");
}

/// The container holds Fabric's five TLS files, the keys marked secret.
pub(super) fn assert_tls_files(container: &crate::runtime::fake::Container) {
    let files: Vec<(&str, bool)> = container
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.secret))
        .collect();
    assert_eq!(
        files,
        [
            ("/etc/hyperledger/fabric/client.key", true),
            ("/etc/hyperledger/fabric/client.crt", false),
            ("/etc/hyperledger/fabric/client_pem.key", true),
            ("/etc/hyperledger/fabric/client_pem.crt", false),
            ("/etc/hyperledger/fabric/peer.crt", false),
        ]
    );
}

/// A second launcher of the same peer, as a restarted sidecar is.
pub(super) fn restarted(s: &Setup) -> Arc<Launcher> {
    Arc::new(Launcher::new(
        Arc::new(s.fake.clone()),
        s.launcher.config().clone(),
    ))
}

/// A chaincode (package id `cc:` + `digit` x 64) started by a first sidecar
/// that mirrors `lines` numbered lines and shuts down; its container.
async fn mirrored_then_shut_down(
    s: &Setup,
    captured: &Captured,
    digit: char,
    lines: u32,
) -> String {
    let id = &format!("cc:{}", digit.to_string().repeat(64));
    built(s, id);
    s.fake.keep_running();
    let first = restarted(s);
    first.claim().expect("claimed");
    let started = first.start(request(id, false)).await.expect("started");
    for n in 1..=lines {
        s.fake.print(&started.container, &format!("line {n}"));
    }
    until(|| captured.of(&started.container).len() == lines as usize).await;
    first.stop_mirrors().await;
    started.container
}

/// Lines 1..=3 mirrored by a sidecar that then shuts down; lines 4 and 5
/// written while none runs; the log rotated by `rotated` lines; a new
/// sidecar resumes. What the new one mirrors.
async fn resumed_after(rotated: usize) -> Vec<String> {
    let (captured, _capturing) = Captured::start();
    let s = setup("resume", "10m");
    let container = mirrored_then_shut_down(&s, &captured, 'e', 3).await;
    let mirrored = || captured.of(&container);
    for n in 4..=5 {
        s.fake.print(&container, &format!("line {n}"));
    }
    s.fake.rotate(&container, rotated);

    let next = restarted(&s);
    next.claim().expect("claimed by the new sidecar");
    let resumed = next.resume().await.expect("resumed");
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    until(|| mirrored().len() >= 5).await;
    // Nothing more arrives: the log holds no other line.
    tokio::time::sleep(Duration::from_millis(100)).await;
    mirrored().split_off(3)
}

#[tokio::test(start_paused = true)]
async fn a_resumed_mirror_carries_on_after_the_last_line_with_no_repeats() {
    assert_eq!(resumed_after(0).await, ["line 4", "line 5"]);
}

#[tokio::test(start_paused = true)]
async fn a_resumed_mirror_carries_on_by_time_once_the_log_rotated() {
    // Two lines gone: counting from the log's start would skip line 4 and 5.
    assert_eq!(resumed_after(2).await, ["line 4", "line 5"]);
}

/// Opening a resumed log asks the engine on Kubernetes (the Pod's lookup):
/// a late answer there is asked again, not the end of that mirror.
#[tokio::test(start_paused = true)]
async fn a_resumed_log_whose_opening_timed_out_is_opened_again() {
    let (captured, _capturing) = Captured::start();
    let s = setup("reopen", "10m");
    let container = mirrored_then_shut_down(&s, &captured, 'f', 1).await;
    let mirrored = || captured.of(&container);
    s.fake.print(&container, "line 2");

    let next = restarted(&s);
    next.claim().expect("claimed by the new sidecar");
    let opened_before = s.fake.calls("logs");
    s.fake.fail_next("logs", 2, || runtime::Error::Timeout {
        op: "find the Pod of",
        target: "cc".into(),
        seconds: 10,
    });
    let resumed = next.resume().await.expect("resumed");
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(
        s.fake.calls("logs") - opened_before,
        3,
        "two late, one answered"
    );
    until(|| mirrored().len() == 2).await;
    assert_eq!(mirrored(), ["line 1", "line 2"]);
}

#[tokio::test(start_paused = true)]
async fn with_a_registry_builds_are_pushed_and_starts_run_the_pushed_digest() {
    let s = setup("registry", "10m");
    let registry = runtime::Registry {
        address: "10.9.0.1:5000".into(),
        ..Default::default()
    };
    let launcher = Arc::new(
        Launcher::new(Arc::new(s.fake.clone()), s.launcher.config().clone())
            .with_registry(registry),
    );
    let built = launcher
        .build(&s.package, &|_: &str| {})
        .await
        .expect("built");
    let pushed = s.fake.pushed();
    assert_eq!(pushed.len(), 1, "pushed once after the build");
    assert!(
        pushed[0].starts_with(&format!("10.9.0.1:5000/{}@sha256:", built.image)),
        "{pushed:?}"
    );
    // A reuse pushes only what was never pushed.
    launcher
        .build(&s.package, &|_: &str| {})
        .await
        .expect("reused");
    assert_eq!(s.fake.pushed().len(), 1, "{:?}", s.fake.pushed());
    let started = launcher
        .start(request(&s.package.id, false))
        .await
        .expect("started");
    let container = s
        .fake
        .containers()
        .into_iter()
        .find(|c| c.name == started.container)
        .expect("its container");
    assert_eq!(container.image, pushed[0], "the runner got the digest");

    // Another chaincode started from this image (`image_of`) keeps it in
    // use, though the runner names it by digest: gc of this package removes
    // its container, not the image.
    let other = format!("other:{}", "f".repeat(64));
    launcher
        .start(StartRequest {
            image_of: Some(s.package.id.clone()),
            ..request(&other, false)
        })
        .await
        .expect("started from the same image");
    let only = crate::launch::Selection::Only(vec![s.package.id.clone()]);
    let collected = launcher.gc(&only).await.expect("gc");
    assert_eq!(collected.containers, [started.container], "{collected:?}");
    assert!(collected.images.is_empty(), "{collected:?}");
}

/// gc takes this peer's images of either label scheme (this release's one
/// label, earlier releases' three) and nothing that only looks like them.
#[tokio::test(start_paused = true)]
async fn gc_takes_this_peers_images_of_either_label_scheme_and_no_look_alike() {
    let s = setup("mix", "10m");
    let id = |c: char| format!("cc{c}:{}", c.to_string().repeat(64));
    let (new, old, empty, unmanaged) = (id('a'), id('b'), id('c'), id('d'));
    let name = |id: &str| s.launcher.names(id).unwrap().image;
    let labels = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let legacy = |id: &str| {
        labels(&[
            (runtime::LABEL_MANAGED, "true"),
            (runtime::LABEL_PACKAGE_ID, id),
        ])
    };
    let value = format!("{new} {}", "0".repeat(64));
    s.fake
        .add_image(&name(&new), labels(&[(runtime::LABEL_IMAGE, &value)]));
    s.fake.add_image(&name(&old), legacy(&old));
    // Another peer's name for the same package: not this peer's to take.
    let elsewhere = other_peer(&s, "elsewhere").names(&old).unwrap().image;
    s.fake.add_image(&elsewhere, legacy(&old));
    s.fake
        .add_image(&name(&empty), labels(&[(runtime::LABEL_IMAGE, "")]));
    s.fake.add_image(
        &name(&unmanaged),
        labels(&[(runtime::LABEL_PACKAGE_ID, &unmanaged)]),
    );

    let all = crate::launch::Selection::AllBut(Vec::new());
    let mut collected = s.launcher.gc(&all).await.expect("gc").images;
    collected.sort();
    let mut want = vec![name(&new), name(&old)];
    want.sort();
    assert_eq!(collected, want);
    use crate::runtime::Engine as _;
    for kept in [elsewhere, name(&empty), name(&unmanaged)] {
        assert!(
            s.fake.image_labels(&kept).await.unwrap().is_some(),
            "{kept}"
        );
    }
}

/// A launcher for another peer on the same fake engine.
fn other_peer(s: &Setup, peer: &str) -> Launcher {
    let mut config = s.launcher.config().clone();
    config.peer.id = peer.to_string();
    Launcher::new(Arc::new(s.fake.clone()), config)
}

/// The node package's builder image, made on the fake engine.
fn make_builder(s: &Setup, labels: Labels) {
    let config = s.launcher.config();
    s.fake
        .add_image(&config.image(&config.chaincode.node.runtime), labels);
}

#[tokio::test(start_paused = true)]
async fn another_peer_names_the_same_build_instead_of_building_it_again() {
    let s = setup("first", "10m");
    make_builder(&s, Labels::new());
    let first = s
        .launcher
        .build(&s.package, &|_: &str| {})
        .await
        .expect("built");
    assert!(!first.reused);
    assert_eq!(s.fake.calls("build_image"), 1);

    let second = other_peer(&s, "second")
        .build(&s.package, &|_: &str| {})
        .await
        .expect("named");
    assert!(second.reused, "{second:?}");
    assert_ne!(second.image, first.image);
    assert_eq!(s.fake.calls("build_image"), 1, "no second engine build");
    assert_eq!(s.fake.calls("create_container"), 1, "no build container");
    let labels = |image: &str| {
        let fake = s.fake.clone();
        let image = image.to_string();
        async move {
            use crate::runtime::Engine as _;
            fake.image_labels(&image).await.unwrap().expect("image")
        }
    };
    let first_labels = labels(&first.image).await;
    assert_eq!(labels(&second.image).await, first_labels);
    let value = &first_labels[runtime::LABEL_IMAGE];
    let (id, key) = value.split_once(' ').expect("package id and build key");
    assert_eq!(id, s.package.id);
    assert!(
        key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "{value}"
    );

    // An earlier release's build of it (three labels, the same key) is the
    // only one left: still named, not built.
    let legacy = Labels::from([
        (runtime::LABEL_MANAGED.to_string(), "true".to_string()),
        (runtime::LABEL_PACKAGE_ID.to_string(), s.package.id.clone()),
        ("org.cclaunch.build-key".to_string(), key.to_string()),
    ]);
    s.fake.add_image(&first.image, legacy.clone());
    {
        use crate::runtime::Engine as _;
        s.fake.remove_image(&second.image).await.unwrap();
    }
    let fourth = other_peer(&s, "fourth")
        .build(&s.package, &|_: &str| {})
        .await
        .expect("named");
    assert!(fourth.reused, "{fourth:?}");
    assert_eq!(
        s.fake.calls("build_image"),
        1,
        "no build for a legacy image"
    );
    assert_eq!(labels(&fourth.image).await, legacy);

    // The builder image made again: another build, however alike the rest.
    make_builder(&s, Labels::from([("remade".to_string(), "1".to_string())]));
    let third = other_peer(&s, "third")
        .build(&s.package, &|_: &str| {})
        .await
        .expect("built");
    assert!(!third.reused);
    assert_eq!(s.fake.calls("build_image"), 2);
}

#[tokio::test(start_paused = true)]
async fn an_image_in_the_registry_is_pulled_not_built_again() {
    let s = setup("pulled", "10m");
    let registry = runtime::Registry {
        address: "10.9.0.1:5000".into(),
        ..Default::default()
    };
    let with_registry = || {
        Launcher::new(Arc::new(s.fake.clone()), s.launcher.config().clone())
            .with_registry(registry.clone())
    };
    let built = with_registry()
        .build(&s.package, &|_: &str| {})
        .await
        .expect("built");
    assert_eq!(s.fake.calls("build_image"), 1);
    // Gone from this engine (gc, or another build host): fetched back.
    let collected = with_registry()
        .gc(&crate::launch::Selection::Only(vec![s.package.id.clone()]))
        .await
        .expect("gc");
    assert_eq!(
        collected.images,
        std::slice::from_ref(&built.image),
        "{collected:?}"
    );
    let again = with_registry()
        .build(&s.package, &|_: &str| {})
        .await
        .expect("pulled");
    assert!(again.reused);
    // Looked for before each build: missing the first time, there the second.
    assert_eq!(s.fake.calls("fetch_published"), 2);
    assert_eq!(s.fake.calls("build_image"), 1, "not built again");
    assert_eq!(s.fake.pushed().len(), 1, "not pushed again");
}

#[tokio::test(start_paused = true)]
async fn builds_mount_their_platforms_cache_and_gc_caches_removes_it() {
    let s = setup("caches", "10m");
    let mut config = s.launcher.config().clone();
    config.cclaunch.build.caches = true;
    let launcher = Launcher::new(Arc::new(s.fake.clone()), config);
    launcher
        .build(&s.package, &|_: &str| {})
        .await
        .expect("built");
    // The build container's mount made the volume, with its labels.
    let volumes = {
        use crate::runtime::Engine as _;
        s.fake
            .list_volumes(&[("org.cclaunch.cache", "node")])
            .await
            .unwrap()
    };
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let path = &s.package.metadata.path;
    let name = super::caches::volume_name(launcher.config(), crate::platform::Platform::Node, path);
    assert_eq!(volumes[0].name, name);
    assert!(name.starts_with("cclaunch-cache-node-"), "{name}");
    assert_eq!(volumes[0].labels[runtime::LABEL_MANAGED], "true");
    assert_eq!(
        volumes[0].labels[runtime::LABEL_PEER_ID],
        launcher.config().peer.id
    );
    // The volume older releases shared among peers goes too; another
    // peer's cache, and a volume not of cclaunch's naming, stay.
    let cache = [
        (runtime::LABEL_MANAGED, "true"),
        (runtime::LABEL_CACHE, "node"),
    ];
    s.fake.add_volume("cclaunch-cache-node", &cache);
    let others = [
        "cclaunch-cache-node-0123456789abcdef",
        "cclaunch-cache-nodes",
    ];
    for other in others {
        let mut labels = cache.to_vec();
        labels.push((runtime::LABEL_PEER_ID, "another-peer"));
        labels.push((runtime::LABEL_NETWORK_ID, "test"));
        s.fake.add_volume(other, &labels);
    }
    let collected = launcher
        .gc(&crate::launch::Selection::Caches)
        .await
        .expect("gc");
    let mut removed = collected.volumes.clone();
    removed.sort();
    assert_eq!(removed, ["cclaunch-cache-node".to_string(), name]);
    let left = {
        use crate::runtime::Engine as _;
        s.fake.list_volumes(&[]).await.unwrap()
    };
    let mut left: Vec<String> = left.into_iter().map(|v| v.name).collect();
    left.sort();
    assert_eq!(left, others);
}
