//! Build caches between builds (Go's build cache in a volume of cclaunch's):
//! filled by a build, used by the next version's, and never the cause of a
//! wrong build: a corrupt cache or two builds sharing a cold one still give
//! binaries that run and say what their source says.

mod common;

use std::path::{Path, PathBuf};

use cclaunch::launch::Selection;
use cclaunch::package::Package;
use common::{docker, Env, BUSYBOX};

/// A copy of the Go sample whose chaincode calls itself `name`.
fn go_source(dir: &Path, name: &str) -> PathBuf {
    let code = dir.join(format!("{name}-src"));
    std::fs::create_dir_all(&code).expect("mkdir");
    let sample = common::repo().join("testdata/chaincode/golang");
    std::fs::copy(sample.join("go.mod"), code.join("go.mod")).expect("go.mod");
    let main = std::fs::read_to_string(sample.join("main.go")).expect("main.go");
    let renamed = main.replace(
        "const name = \"sample-go\"",
        &format!("const name = \"{name}\""),
    );
    assert_ne!(renamed, main, "the sample names itself");
    std::fs::write(code.join("main.go"), renamed).expect("write main.go");
    code
}

fn go_package(env: &Env, name: &str) -> Package {
    let code = go_source(env.dir.path(), name);
    env.package("golang", name, "example.com/cclaunch/sample", &code)
}

/// What the built chaincode says when it starts (it prints its name).
fn first_line(image: &str) -> String {
    docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "timeout",
        "2",
        "chaincode",
        "-peer.address=127.0.0.1:1",
    ])
    .lines()
    .next()
    .unwrap_or_default()
    .to_string()
}

/// Runs `script` in a busybox container with `volume` at /c.
fn in_volume(volume: &str, script: &str) -> String {
    docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{volume}:/c"),
        BUSYBOX,
        "sh",
        "-c",
        script,
    ])
}

/// Files in the cache volume.
fn cached_files(volume: &str) -> usize {
    in_volume(volume, "find /c -type f | wc -l")
        .trim()
        .parse()
        .unwrap_or(0)
}

/// An env whose cache volumes are this test's own (their names start with
/// the prefix returned), removed when the guard goes.
/// `extra` environment variables on top.
async fn env(test: &str, extra: &[(&str, &str)]) -> (Env, Volumes) {
    let prefix = format!("cclaunch-test-cache-{}", common::unique_peer(test));
    (env_with(test, &prefix, extra).await, Volumes(prefix))
}

async fn env_with(test: &str, prefix: &str, extra: &[(&str, &str)]) -> Env {
    let mut vars = vec![("CCLAUNCH_BUILD_CACHEVOLUME", prefix)];
    vars.extend_from_slice(extra);
    Env::new(test, &vars).await
}

/// Builds the Go sample named `name` for `env`'s peer and checks that the
/// image runs its own code; how long the build took.
async fn builds_right(env: &Env, name: &str) -> std::time::Duration {
    let started = std::time::Instant::now();
    let built = env
        .launcher
        .build(&go_package(env, name), &|_: &str| {})
        .await
        .unwrap_or_else(|e| panic!("{name} built: {e}"));
    let took = started.elapsed();
    assert!(
        first_line(&built.image).starts_with(&format!("{name} starting")),
        "{name} runs its own code"
    );
    took
}

struct Volumes(String);

impl Volumes {
    /// The Go cache volumes made so far, by name.
    fn golang(&self) -> Vec<String> {
        let filter = format!("name={}-golang-", self.0);
        let mut names: Vec<String> = docker(&["volume", "ls", "-q", "--filter", &filter])
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    /// The one Go cache volume made so far.
    fn one(&self) -> String {
        match &self.golang()[..] {
            [one] => one.clone(),
            other => panic!("not one Go cache volume: {other:?}"),
        }
    }
}

impl Drop for Volumes {
    fn drop(&mut self) {
        for volume in self.golang() {
            docker(&["volume", "rm", "-f", &volume]);
        }
    }
}

#[tokio::test]
async fn a_second_version_builds_with_the_first_ones_cache_and_gc_removes_it() {
    let (env, volumes) = env("cachev2", &[]).await;
    let cold = builds_right(&env, "cache-v1").await;
    let volume = volumes.one();
    let labels = docker(&["volume", "inspect", "--format", "{{json .Labels}}", &volume]);
    assert!(
        labels.contains(&format!("\"org.cclaunch.peer-id\":\"{}\"", env.peer)),
        "{labels}"
    );
    assert!(
        labels.contains("\"org.cclaunch.cache\":\"golang\""),
        "{labels}"
    );
    assert!(
        labels.contains("\"org.cclaunch.managed\":\"true\""),
        "{labels}"
    );
    assert!(cached_files(&volume) > 100, "Go's cache was filled");

    let warm = builds_right(&env, "cache-v2").await;
    println!("Go sample build: cold cache {cold:?}, warm cache {warm:?}");
    assert_eq!(volumes.one(), volume, "v2 used v1's cache");

    // Another peer's build (of another package: the same one would be a
    // tag) never mounts this peer's cache, and its gc leaves it alone.
    let other = env_with("cacheother", &volumes.0, &[]).await;
    builds_right(&other, "cache-other").await;
    let both = volumes.golang();
    assert_eq!(both.len(), 2, "a cache of its own: {both:?}");
    let theirs: Vec<String> = both.into_iter().filter(|v| *v != volume).collect();
    let collected = other.launcher.gc(&Selection::Caches).await.expect("gc");
    assert_eq!(collected.volumes, theirs);

    let collected = env.launcher.gc(&Selection::Caches).await.expect("gc");
    assert_eq!(collected.volumes, std::slice::from_ref(&volume));
    assert!(collected.images.is_empty() && collected.containers.is_empty());
    assert!(
        docker(&["volume", "ls", "-q", "--filter", &format!("name={volume}")])
            .trim()
            .is_empty()
    );
}

#[tokio::test]
async fn a_corrupt_cache_still_gives_a_right_build() {
    let (env, volumes) = env("cachebad", &[]).await;
    let v1 = go_package(&env, "corrupt-v1");
    env.launcher
        .build(&v1, &|_: &str| {})
        .await
        .expect("v1 built");
    let volume = volumes.one();
    // Every cached file cut short or overwritten with other bytes, as a
    // crash or a full disk leaves a cache.
    in_volume(
        &volume,
        "n=0; for f in $(find /c -type f); do n=$((n+1)); if [ $((n%2)) = 0 ]; then : > $f; else echo garbage > $f; fi; done",
    );
    builds_right(&env, "corrupt-v2").await;
}

#[tokio::test]
async fn two_builds_sharing_a_cold_cache_both_come_out_right() {
    let (env, volumes) = env("cacheboth", &[]).await;
    let (a, b) = (go_package(&env, "shared-a"), go_package(&env, "shared-b"));
    let (built_a, built_b) = tokio::join!(
        env.launcher.build(&a, &|_: &str| {}),
        env.launcher.build(&b, &|_: &str| {})
    );
    let (built_a, built_b) = (built_a.expect("a built"), built_b.expect("b built"));
    assert!(first_line(&built_a.image).starts_with("shared-a starting"));
    assert!(first_line(&built_b.image).starts_with("shared-b starting"));
    volumes.one();
}

/// A cache found over `cclaunch.build.cacheMaxBytes` when a build begins
/// (measured in the build's own container, before the build's code runs) is
/// removed after that build, and the next build fills a new one and comes
/// out right. The measurement is not build output.
#[tokio::test]
async fn a_cache_over_its_cap_is_removed_after_the_next_build() {
    let (env, volumes) = env("cachecap", &[("CCLAUNCH_BUILD_CACHEMAXBYTES", "1048576")]).await;
    builds_right(&env, "capped-v1").await;
    // Empty when v1 began: kept, full now (Go's cache of the sample is
    // megabytes).
    let volume = volumes.one();
    assert!(cached_files(&volume) > 0, "v1 filled its cache");
    let said = std::sync::Mutex::new(Vec::new());
    let progress = |line: &str| said.lock().expect("lines").push(line.to_string());
    let built = env
        .launcher
        .build(&go_package(&env, "capped-v2"), &progress)
        .await
        .expect("v2 built");
    assert!(first_line(&built.image).starts_with("capped-v2 starting"));
    let said = said.into_inner().expect("lines");
    assert!(
        !said.iter().any(|l| l.contains("build cache KiB")),
        "the measurement is not build output: {said:?}"
    );
    assert!(
        common::eventually(std::time::Duration::from_secs(60), || volumes
            .golang()
            .is_empty())
        .await,
        "a cache over 1 MiB is still there after v2: {:?}",
        volumes.golang()
    );
    builds_right(&env, "capped-v3").await;
    assert_eq!(volumes.one(), volume, "v3 filled a new one under the name");
}
