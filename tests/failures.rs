//! Failures get a clear error naming the chaincode and the cause, and leave
//! nothing behind: failed builds, foreign containers, missing images, a dead
//! engine.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use cclaunch::launcher::Error;
use cclaunch::runtime::{Engine, Runner};
use common::{docker, request, Env, BUSYBOX};

fn go_source(env: &Env, name: &str, go_mod: &str, main: &str) -> std::path::PathBuf {
    let dir = env.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("go.mod"), go_mod).unwrap();
    std::fs::write(dir.join("main.go"), main).unwrap();
    dir
}

fn build_containers_of(peer: &str) -> String {
    docker(&[
        "ps",
        "-aq",
        "--filter",
        "label=org.cclaunch.build=true",
        "--filter",
        &format!("label=org.cclaunch.peer-id={peer}"),
    ])
}

/// Builds `main` as Go module example.com/`name` (go 1.19), version 1.
async fn build_go(
    env: &Env,
    name: &str,
    main: &str,
) -> (
    cclaunch::package::Package,
    Result<cclaunch::launcher::Built, Error>,
) {
    let module = format!("example.com/{name}");
    let code = go_source(env, name, &format!("module {module}\n\ngo 1.19\n"), main);
    let package = env.package("golang", &format!("{name}_1"), &module, &code);
    let built = env.launcher.build(&package, &|_: &str| {}).await;
    (package, built)
}

/// What a build left: whether a build container of the peer is still there,
/// and whether the chaincode's image is.
async fn left_behind(env: &Env, package_id: &str) -> (bool, bool) {
    let image = env.launcher.names(package_id).unwrap().image;
    (
        !build_containers_of(&env.peer).trim().is_empty(),
        env.engine.image_labels(&image).await.unwrap().is_some(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_reports_its_output_and_leaves_no_build_container() {
    let env = Env::new("buildfail", &[]).await;
    let (package, built) = build_go(
        &env,
        "broken",
        "package main\n\nfunc main() { this is not go }\n",
    )
    .await;
    let err = built.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::BuildFailed { code: 1.., .. }),
        "{text}"
    );
    assert!(
        text.starts_with(&format!(
            "chaincode {}: build failed in cclaunch-test/ccenv:latest",
            package.id
        )),
        "{text}"
    );
    assert!(
        text.contains("main.go:3"),
        "the compiler's own message is in the error: {text}"
    );
    assert_eq!(
        left_behind(&env, &package.id).await,
        (false, false),
        "(build container, image)"
    );
}

/// The build container's removal runs beside the image build; a build that
/// returns has seen it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_that_succeeded_has_removed_its_build_container() {
    let env = Env::new("buildok", &[]).await;
    let (package, built) = build_go(&env, "fine", "package main\n\nfunc main() {}\n").await;
    assert!(!built.expect("build").reused);
    assert_eq!(
        left_behind(&env, &package.id).await,
        (false, true),
        "(build container, image)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toolchain_drift_is_named_in_the_error() {
    let env = Env::new("drift", &[]).await;
    // Range over an int needs Go 1.22; the builder stand-in has Debian's 1.19.
    let code = go_source(
        &env,
        "newgo",
        "module example.com/newgo\n\ngo 1.22\n",
        "package main\n\nfunc main() {\n\tfor range 3 {\n\t}\n}\n",
    );
    let package = env.package("golang", "newgo_1", "example.com/newgo", &code);
    let text = env
        .launcher
        .build(&package, &|_: &str| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("hint: src/go.mod asks for Go 1.22"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_cclaunch_did_not_make_is_never_touched() {
    let env = Env::new("foreign", &[("CORE_CHAINCODE_NODE_RUNTIME", common::SHENV)]).await;
    let package = env.shell_package("foreign", "sleep 600\n");
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    let container = env.launcher.names(&package.id).unwrap().container;
    // Someone else's container under the same name (no cclaunch labels).
    let made = docker(&[
        "create",
        "--name",
        &container,
        "--label",
        &format!("org.cclaunch.peer-id={}", env.peer),
        BUSYBOX,
        "sleep",
        "600",
    ]);
    assert!(!made.trim().is_empty(), "docker create failed");

    for err in [
        env.launcher.start(request(&package.id)).await.unwrap_err(),
        env.launcher.stop(&package.id).await.unwrap_err(),
        env.launcher.wait(&package.id).await.unwrap_err(),
    ] {
        assert!(matches!(err, Error::NotOurs { .. }), "{err}");
        assert!(
            err.to_string().contains("was not created by cclaunch"),
            "{err}"
        );
    }
    let info = env
        .engine
        .inspect_container(&container)
        .await
        .unwrap()
        .expect("still there");
    assert_eq!(info.args, ["sleep", "600"], "untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_an_unbuilt_chaincode_says_to_build_it() {
    let env = Env::new("unbuilt", &[]).await;
    let err = env
        .launcher
        .start(request(
            "never_built:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotBuilt { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("chaincode never_built:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef: image"),
        "{err}"
    );
    let container = env
        .launcher
        .names("never_built:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        .unwrap()
        .container;
    assert!(
        env.engine
            .inspect_container(&container)
            .await
            .unwrap()
            .is_none(),
        "nothing created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_chaincode_type_is_refused_before_any_engine_work() {
    let env = Env::new("unknowntype", &[]).await;
    let dir = env.dir.path().join("car");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("x"), "x").unwrap();
    let package = env.package("car", "car_1", "", &dir);
    let err = env
        .launcher
        .build(&package, &|_: &str| {})
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), format!("chaincode {}", package.id));
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "unknown chaincodeType: \"car\""
    );
}

/// The CLI against an engine that is not there: a clear error, fast.
#[test]
fn engine_down_is_a_clear_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    // A socket file nobody listens on (a crashed engine leaves one behind).
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let endpoints = [
        "unix:///nonexistent/docker.sock".to_string(),
        format!("unix://{}", stale.display()),
        "tcp://127.0.0.1:1".to_string(),
    ];
    for endpoint in endpoints {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_cclaunch"))
            .args(["ps"])
            .env("CORE_VM_ENDPOINT", &endpoint)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{endpoint}");
        assert!(
            stderr.contains(&format!("cannot reach the container engine at {endpoint}")),
            "{endpoint}: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{endpoint}: took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_only_the_chosen_chaincode_of_this_peer() {
    use cclaunch::launcher::Selection;
    let env = Env::new("gc", &[("CORE_CHAINCODE_NODE_RUNTIME", common::SHENV)]).await;
    let keep = env.shell_package("keepme", "sleep 600\n");
    let drop_ = env.shell_package("dropme", "sleep 600\n");
    for p in [&keep, &drop_] {
        env.launcher.build(p, &|_: &str| {}).await.expect("build");
        env.launcher.start(request(&p.id)).await.expect("start");
    }
    // As the external builder runs it: the peer's chaincode id on the image
    // of the package it rebuilt. That image is in use, so it stays.
    let rebuilt = env.shell_package("rebuilt", "sleep 600\n");
    env.launcher
        .build(&rebuilt, &|_: &str| {})
        .await
        .expect("build");
    let peers_id = format!("peers_1:{}", "ab".repeat(32));
    let mut aliased = request(&peers_id);
    aliased.image_of = Some(rebuilt.id.clone());
    env.launcher.start(aliased).await.expect("start image_of");
    // A foreign container that merely looks like ours is never collected.
    let foreign = format!("{}-foreign", env.peer);
    docker(&[
        "create",
        "--name",
        &foreign,
        "--label",
        &format!("org.cclaunch.peer-id={}", env.peer),
        BUSYBOX,
        "true",
    ]);

    let collected = env
        .launcher
        .gc(&Selection::AllBut(vec![keep.id.clone(), peers_id.clone()]))
        .await
        .expect("gc");
    let dropped = env.launcher.names(&drop_.id).unwrap();
    assert_eq!(
        collected.containers,
        std::slice::from_ref(&dropped.container)
    );
    assert_eq!(collected.images.len(), 1);
    assert!(collected.images[0].starts_with(&dropped.image));
    assert!(env
        .engine
        .inspect_container(&dropped.container)
        .await
        .unwrap()
        .is_none());
    assert!(env
        .engine
        .image_labels(&dropped.image)
        .await
        .unwrap()
        .is_none());
    assert!(
        env.engine
            .image_labels(&env.launcher.names(&rebuilt.id).unwrap().image)
            .await
            .unwrap()
            .is_some(),
        "an image a kept container runs stays"
    );
    let kept = env.launcher.names(&keep.id).unwrap();
    assert!(
        env.engine
            .inspect_container(&kept.container)
            .await
            .unwrap()
            .is_some(),
        "kept container stays"
    );
    assert!(
        env.engine
            .inspect_container(&foreign)
            .await
            .unwrap()
            .is_some(),
        "foreign container untouched"
    );
}
