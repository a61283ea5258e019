//! One build per engine: a package built for one peer is named for another
//! peer on the same engine instead of being built again, with exactly the
//! name and labels a build of its own would have given it.

mod common;

use cclaunch::launch::Selection;
use cclaunch::runtime::{self, Engine};
use common::{docker, Env, SHENV};

const SHELL_RUNTIME: &[(&str, &str)] = &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)];

fn image_id(image: &str) -> String {
    docker(&["image", "inspect", "--format", "{{.Id}}", image])
        .trim()
        .to_string()
}

#[tokio::test]
async fn another_peer_gets_the_first_peers_build_under_its_own_name() {
    let first = Env::new("reuse1", SHELL_RUNTIME).await;
    let second = Env::new("reuse2", SHELL_RUNTIME).await;
    // Unique bytes: no other test's build of it can be on the engine.
    let package = first.shell_package("reuse", &format!("echo {}\n", first.peer));

    let built = first
        .launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("built");
    assert!(!built.reused);
    let started = std::time::Instant::now();
    let named = second
        .launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("named");
    let took = started.elapsed();
    assert!(named.reused, "{named:?}");
    assert_eq!(
        named.image,
        second.launcher.names(&package.id).expect("names").image,
        "the second peer's Fabric name"
    );
    assert_ne!(named.image, built.image);
    assert_eq!(image_id(&named.image), image_id(&built.image), "one image");
    let labels = |env: &Env, image: &str| {
        let (engine, image) = (env.engine.clone(), image.to_string());
        async move {
            engine
                .image_labels(&image)
                .await
                .expect("inspect")
                .expect("image")
        }
    };
    let fresh = labels(&first, &built.image).await;
    assert_eq!(labels(&second, &named.image).await, fresh);
    assert_eq!(
        fresh.get(runtime::LABEL_PACKAGE_ID).map(String::as_str),
        Some(package.id.as_str())
    );
    assert!(fresh.contains_key(runtime::LABEL_BUILD_KEY), "{fresh:?}");
    println!("second peer's build: {took:?}");

    // gc for the second peer takes its name only; the first peer's stays.
    let collected = second
        .launcher
        .gc(&Selection::Only(vec![package.id.clone()]))
        .await
        .expect("gc");
    assert_eq!(collected.images, [format!("{}:latest", named.image)]);
    assert!(second
        .engine
        .image_labels(&named.image)
        .await
        .expect("inspect")
        .is_none());
    assert!(first
        .engine
        .image_labels(&built.image)
        .await
        .expect("inspect")
        .is_some());
}

#[tokio::test]
async fn a_changed_recipe_is_built_not_named() {
    let first = Env::new("recipe1", SHELL_RUNTIME).await;
    // Another build env: another recipe, so its own build.
    let second = Env::new(
        "recipe2",
        &[
            ("CORE_CHAINCODE_NODE_RUNTIME", SHENV),
            ("CCLAUNCH_BUILD_NETWORKMODE", "none"),
        ],
    )
    .await;
    let package = first.shell_package("recipe", &format!("echo {}\n", first.peer));
    let built = first
        .launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("built");
    let other = second
        .launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("built");
    assert!(!other.reused, "{other:?}");
    assert_ne!(image_id(&other.image), image_id(&built.image));
}
