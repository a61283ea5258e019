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
    // One label of cclaunch's: the classic builder makes a step of each.
    let base = labels(&first, SHENV).await;
    let ours: Vec<_> = fresh
        .keys()
        .filter(|k| k.starts_with("org.cclaunch.") && !base.contains_key(*k))
        .collect();
    assert_eq!(ours, [runtime::LABEL_IMAGE], "{fresh:?}");
    let (id, key) = fresh[runtime::LABEL_IMAGE]
        .split_once(' ')
        .expect("package id and build key");
    assert_eq!(id, package.id);
    assert_eq!(key.len(), 64, "{fresh:?}");
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

/// Images an earlier release built carry three labels of cclaunch's where
/// this one writes one: still cclaunch's, so gc removes them. An image under
/// the same name without them is not cclaunch's, and stays.
#[tokio::test]
async fn an_image_an_earlier_release_built_is_still_cclaunchs() {
    let env = Env::new("legacy", SHELL_RUNTIME).await;
    let package = env.shell_package("legacy", &format!("echo {}\n", env.peer));
    let image = env.launcher.names(&package.id).expect("names").image;
    std::fs::write(
        env.dir.path().join("Dockerfile"),
        format!("FROM {}\n", common::BUSYBOX),
    )
    .expect("Dockerfile");
    let context = env.dir.path().to_str().expect("utf-8 path");
    let make = |labels: &[String]| {
        let mut args = vec!["build", "-q", "-t", &image];
        for label in labels {
            args.extend(["--label", label]);
        }
        args.push(context);
        docker(&args);
        assert!(!image_id(&image).is_empty(), "made {image}");
    };
    let gc = || async {
        env.launcher
            .gc(&Selection::Only(vec![package.id.clone()]))
            .await
            .expect("gc")
            .images
    };

    make(&[format!("{}={}", runtime::LABEL_PACKAGE_ID, package.id)]);
    assert_eq!(gc().await, Vec::<String>::new(), "not labelled managed");
    let look_alike = image_id(&image);
    assert!(!look_alike.is_empty(), "a look-alike stays");

    make(&[
        format!("{}=true", runtime::LABEL_MANAGED),
        format!("{}={}", runtime::LABEL_PACKAGE_ID, package.id),
        "org.cclaunch.build-key=0f0f".to_string(),
    ]);
    assert_eq!(gc().await, [format!("{image}:latest")]);
    assert!(image_id(&image).is_empty(), "removed");
    docker(&["rmi", &look_alike]);
}

/// An earlier release's build (three labels, among them the build key, which
/// is made as it was then) is still named for another peer, not built again.
#[tokio::test]
async fn another_peer_names_an_earlier_releases_build() {
    let first = Env::new("oldkey1", SHELL_RUNTIME).await;
    let second = Env::new("oldkey2", SHELL_RUNTIME).await;
    let package = first.shell_package("oldkey", &format!("echo {}\n", first.peer));
    let built = first
        .launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("built");
    let labels = first
        .engine
        .image_labels(&built.image)
        .await
        .expect("inspect")
        .expect("image");
    let (_, key) = labels[runtime::LABEL_IMAGE]
        .split_once(' ')
        .expect("package id and build key");
    // The first peer's image as an earlier release labelled it, in its place.
    docker(&["rmi", &built.image]);
    std::fs::write(
        first.dir.path().join("Dockerfile"),
        format!("FROM {SHENV}\n"),
    )
    .expect("Dockerfile");
    let labels = [
        format!("{}=true", runtime::LABEL_MANAGED),
        format!("{}={}", runtime::LABEL_PACKAGE_ID, package.id),
        format!("org.cclaunch.build-key={key}"),
    ];
    let mut args = vec!["build", "-q", "-t", &built.image];
    for label in &labels {
        args.extend(["--label", label]);
    }
    args.push(first.dir.path().to_str().expect("utf-8 path"));
    docker(&args);
    let legacy = image_id(&built.image);
    assert!(!legacy.is_empty(), "made the earlier release's image");

    let named = second
        .launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("named");
    assert!(named.reused, "{named:?}");
    assert_eq!(image_id(&named.image), legacy, "a tag of it, not a build");
}
