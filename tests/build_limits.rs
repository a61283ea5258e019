//! Builds are bounded: a client that does not read its Build stream costs
//! the sidecar a fixed amount of memory whatever the build prints (lines
//! beyond it are dropped and counted, never stages or the outcome); a build
//! that hangs ends at `cclaunch.build.timeout` with its container removed;
//! a build whose every caller left is cancelled, while one waiter that
//! stays keeps it going. All on the real engine, through a real `serve` or
//! the launcher, with the `shenv` node build path and a build.sh
//! bind-mounted over the image's own.

mod common;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cclaunch::launcher::Launcher;
use cclaunch::proto::v1::build_event::Event;
use cclaunch::runtime::Engine;
use common::sidecar::{build_containers, build_sh_yaml, chunks, script, Sidecar};
use common::{eventually, Env, SHENV};
use futures_util::StreamExt;

const SHELL_RUNTIME: &[(&str, &str)] = &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)];

/// What the stock shenv build.sh does: the package's src becomes the output.
const COPY: &str = "cp -R /chaincode/input/src/. /chaincode/output/\n";

async fn image_exists(env: &Env, package_id: &str) -> bool {
    let image = env.launcher.names(package_id).expect("names").image;
    env.engine
        .image_labels(&image)
        .await
        .expect("inspect")
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_printing_millions_of_lines_to_a_client_that_does_not_read_stays_small() {
    const LINES: u64 = 3_000_000;
    let env = Env::new("buildflood", SHELL_RUNTIME).await;
    let build_sh = script(
        env.dir.path(),
        "build.sh",
        &format!("seq 1 {LINES}\n{COPY}"),
    );
    let sidecar = Sidecar::spawn(&env, &build_sh_yaml(&build_sh, ""), &[], Stdio::null());
    let mut client = sidecar.client().await;
    let package = env.shell_package("flood", "echo hi\n");
    let base_kib = sidecar.status_kib("VmRSS");

    // Start the build and do not read: the stream stays open, unread.
    let mut events = client
        .build(futures_util::stream::iter(chunks(&package.file, 64 << 10)))
        .await
        .expect("build accepted")
        .into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while !image_exists(&env, &package.id).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the build never finished while its client read nothing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let peak_kib = sidecar.status_kib("VmHWM");
    println!(
        "sidecar RSS before {base_kib} KiB, peak {peak_kib} KiB over a {LINES}-line build nobody read"
    );
    assert!(
        peak_kib < base_kib + 64 * 1024,
        "sidecar peak RSS {peak_kib} KiB (from {base_kib} KiB): build output was buffered for the client"
    );

    // Now read it all: stages and the outcome are there, lines are missing
    // and every missing one is counted.
    let (mut lines, mut dropped, mut stages, mut done) = (0u64, 0u64, Vec::new(), None);
    while let Some(event) = events.next().await {
        match event.expect("build succeeds").event {
            Some(Event::Output(_)) => lines += 1,
            Some(Event::Stage(stage)) => {
                if let Some(n) = stage
                    .stage
                    .strip_suffix(" build output lines dropped: client too slow")
                {
                    dropped += n.parse::<u64>().expect("a count");
                } else {
                    stages.push(stage.stage);
                }
            }
            Some(Event::Done(d)) => done = Some(d),
            None => {}
        }
    }
    let done = done.expect("Done arrives");
    assert_eq!(done.package_id, package.id);
    assert!(!done.reused);
    assert_eq!(stages.len(), 3, "no stage is dropped: {stages:?}");
    assert!(stages[1].starts_with("compiling in"), "{stages:?}");
    assert!(stages[2].starts_with("building image"), "{stages:?}");
    assert!(dropped > 0, "lines were dropped ({lines} arrived)");
    assert!(
        lines + dropped >= LINES,
        "each line arrived or was counted: {lines} + {dropped} < {LINES}"
    );
    println!("{lines} lines arrived, {dropped} dropped and counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_build_times_out_leaves_no_build_container_and_frees_its_package() {
    let env = Env::new("buildhang", SHELL_RUNTIME).await;
    let build_sh = script(env.dir.path(), "build.sh", "echo hanging\nsleep 600\n");
    let yaml = build_sh_yaml(&build_sh, "    timeout: 3s\n");
    let sidecar = Sidecar::spawn(&env, &yaml, &[], Stdio::null());
    let mut client = sidecar.client().await;
    let package = env.shell_package("hang", "echo hi\n");

    // Twice: the first timing out must not block the next Build of it.
    for attempt in 1..=2 {
        let began = std::time::Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(90), async {
            let mut events = client
                .build(futures_util::stream::iter(chunks(&package.file, 64 << 10)))
                .await?
                .into_inner();
            while let Some(event) = events.next().await {
                event?;
            }
            Ok::<(), tonic::Status>(())
        })
        .await
        .unwrap_or_else(|_| panic!("attempt {attempt}: the hung build never ended"));
        let status = outcome.expect_err("a hung build fails");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
        for part in [package.id.as_str(), "3s", "cclaunch.build.timeout"] {
            assert!(status.message().contains(part), "{part:?} in {status:?}");
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "attempt {attempt} took {:?}",
            began.elapsed()
        );
        assert_eq!(
            build_containers(&env.peer),
            Vec::<String>::new(),
            "attempt {attempt}: the build container is gone when the error arrives"
        );
    }
    assert!(!image_exists(&env, &package.id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_whose_only_caller_goes_away_is_cancelled_and_its_container_removed() {
    let env = Env::new("buildgone", SHELL_RUNTIME).await;
    let build_sh = script(env.dir.path(), "build.sh", "sleep 600\n");
    let sidecar = Sidecar::spawn(&env, &build_sh_yaml(&build_sh, ""), &[], Stdio::null());
    let mut client = sidecar.client().await;
    let package = env.shell_package("gone", "echo hi\n");

    let events = client
        .build(futures_util::stream::iter(chunks(&package.file, 64 << 10)))
        .await
        .expect("build accepted")
        .into_inner();
    assert!(
        eventually(Duration::from_secs(60), || !build_containers(&env.peer)
            .is_empty())
        .await,
        "the build container runs"
    );
    // The caller goes: its stream and its connection close.
    drop(events);
    drop(client);
    assert!(
        eventually(Duration::from_secs(30), || build_containers(&env.peer)
            .is_empty())
        .await,
        "the build container of a build nobody waits for is removed: {:?}",
        build_containers(&env.peer)
    );
}

/// The launcher, in this process, with `build.sh` mounted over shenv's.
fn launcher_with_build_sh(env: &Env, build_sh: &std::path::Path) -> Arc<Launcher> {
    let mut config = common::config(&env.peer, SHELL_RUNTIME);
    config
        .cclaunch
        .build
        .mounts
        .push(format!("{}:/chaincode/build.sh", build_sh.display()));
    Arc::new(Launcher::new(env.engine.clone() as Arc<dyn Engine>, config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_stays_keeps_a_shared_build_going_after_the_first_caller_leaves() {
    let env = Env::new("buildwaiter", SHELL_RUNTIME).await;
    let build_sh = script(
        env.dir.path(),
        "build.sh",
        &format!("echo building\nsleep 3\n{COPY}"),
    );
    let launcher = launcher_with_build_sh(&env, &build_sh);
    let package = Arc::new(env.shell_package("waiter", "echo hi\n"));
    // A caller whose flag goes up once it has joined the build under way.
    let spawn_build = |package: &Arc<cclaunch::package::Package>| {
        let (launcher, package) = (launcher.clone(), package.clone());
        let joined = Arc::new(AtomicBool::new(false));
        let flag = joined.clone();
        let task = tokio::spawn(async move {
            let progress = move |line: &str| {
                if line.starts_with("waiting for the build") {
                    flag.store(true, Ordering::SeqCst);
                }
            };
            launcher.build(&package, &progress).await
        });
        (task, joined)
    };

    let (first, _) = spawn_build(&package);
    assert!(
        eventually(Duration::from_secs(60), || !build_containers(&env.peer)
            .is_empty())
        .await,
        "the build container runs"
    );
    let (waiter, joined) = spawn_build(&package);
    assert!(
        eventually(Duration::from_secs(10), || joined.load(Ordering::SeqCst)).await,
        "the second caller waits for the first one's build"
    );
    first.abort();
    let built = tokio::time::timeout(Duration::from_secs(120), waiter)
        .await
        .expect("the waiter gets an outcome")
        .unwrap()
        .expect("the build goes on for the waiter that stayed");
    assert!(image_exists(&env, &package.id).await, "{built:?}");
    assert!(build_containers(&env.peer).is_empty());

    // Both callers of a build go: it is cancelled and its container removed.
    let package = Arc::new(env.shell_package("bothgone", "echo bye\n"));
    let (a, _) = spawn_build(&package);
    assert!(
        eventually(Duration::from_secs(60), || !build_containers(&env.peer)
            .is_empty())
        .await,
        "the build container runs"
    );
    let (b, joined) = spawn_build(&package);
    assert!(eventually(Duration::from_secs(10), || joined.load(Ordering::SeqCst)).await);
    a.abort();
    b.abort();
    assert!(
        eventually(Duration::from_secs(30), || build_containers(&env.peer)
            .is_empty())
        .await,
        "the build container of a build nobody waits for is removed"
    );
    assert!(!image_exists(&env, &package.id).await);
}
