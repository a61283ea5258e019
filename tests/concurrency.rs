//! Concurrency on the real engine: one engine build per image whoever asks,
//! the same outcome for every caller, distinct chaincodes in parallel, and
//! starts of one chaincode taking turns.

mod common;

use std::sync::Arc;

use cclaunch::runtime::Runner;
use common::{docker, request, Env, SHENV};

/// Counts the build containers the engine creates for a peer while it runs:
/// a live `docker events` subscription (a `--since` replay reads the engine's
/// small ring of recent events, which busy parallel tests overrun). Marker
/// containers with the same labels fence the count: one seen at the start
/// proves the subscription is in place, one seen at the end that every
/// earlier event has arrived (the engine sends them in order).
struct BuildWatch {
    child: std::process::Child,
    ids: Arc<std::sync::Mutex<Vec<String>>>,
    peer: String,
    markers: std::sync::Mutex<Vec<String>>,
    from: usize,
}

impl BuildWatch {
    async fn start(peer: &str) -> BuildWatch {
        let mut child = std::process::Command::new("docker")
            .args([
                "events",
                "--format",
                "{{.ID}}",
                "--filter",
                "type=container",
                "--filter",
                "event=create",
            ])
            .args(["--filter", "label=org.cclaunch.build=true", "--filter"])
            .arg(format!("label=org.cclaunch.peer-id={peer}"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("docker events");
        let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn({
            let ids = Arc::clone(&ids);
            move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    ids.lock().unwrap().push(line);
                }
            }
        });
        let mut watch = BuildWatch {
            child,
            ids,
            peer: peer.to_string(),
            markers: std::sync::Mutex::default(),
            from: 0,
        };
        watch.from = watch.fence().await;
        watch
    }

    /// Makes marker containers until the subscription reports one; the
    /// number of events up to and including it.
    async fn fence(&self) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let marker = docker(&[
                "create",
                "--label",
                "org.cclaunch.build=true",
                "--label",
                &format!("org.cclaunch.peer-id={}", self.peer),
                common::BUSYBOX,
                "true",
            ]);
            let marker = marker.trim().to_string();
            docker(&["rm", &marker]);
            self.markers.lock().unwrap().push(marker.clone());
            let seen = common::eventually(std::time::Duration::from_secs(2), || {
                self.ids.lock().unwrap().contains(&marker)
            })
            .await;
            if seen {
                let ids = self.ids.lock().unwrap();
                return ids
                    .iter()
                    .position(|id| *id == marker)
                    .map_or(0, |at| at + 1);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "docker events never reported a marker container"
            );
        }
    }

    async fn created(mut self) -> usize {
        let to = self.fence().await - 1;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (ids, markers) = (self.ids.lock().unwrap(), self.markers.lock().unwrap());
        ids[self.from..to]
            .iter()
            .filter(|id| !markers.contains(id))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_builds_of_one_package_cause_one_engine_build() {
    let env = Env::new("flight", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let package = Arc::new(env.shell_package("flight", "sleep 600\n"));
    let watch = BuildWatch::start(&env.peer).await;
    let builds: Vec<_> = (0..16)
        .map(|_| {
            let launcher = env.launcher.clone();
            let package = package.clone();
            tokio::spawn(async move { launcher.build(&package, &|_: &str| {}).await })
        })
        .collect();
    let mut built = Vec::new();
    for b in builds {
        built.push(b.await.unwrap().expect("every caller gets the image"));
    }
    assert_eq!(
        built.iter().filter(|b| !b.reused).count(),
        1,
        "one caller built"
    );
    assert!(built.iter().all(|b| b.image == built[0].image));
    assert_eq!(watch.created().await, 1, "the engine ran one build");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_sharing_a_failed_build_all_get_its_error() {
    let env = Env::new("flightfail", &[]).await;
    let code = env.dir.path().join("broken");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("go.mod"),
        "module example.com/broken\n\ngo 1.19\n",
    )
    .unwrap();
    std::fs::write(
        code.join("main.go"),
        "package main\n\nfunc main() { broken }\n",
    )
    .unwrap();
    let package = Arc::new(env.package("golang", "flightfail_1", "example.com/broken", &code));
    let watch = BuildWatch::start(&env.peer).await;
    let builds: Vec<_> = (0..4)
        .map(|_| {
            let launcher = env.launcher.clone();
            let package = package.clone();
            tokio::spawn(async move { launcher.build(&package, &|_: &str| {}).await })
        })
        .collect();
    for b in builds {
        let err = b.await.unwrap().unwrap_err().to_string();
        assert!(
            err.contains("build failed in cclaunch-test/ccenv:latest with exit code"),
            "{err}"
        );
    }
    assert_eq!(watch.created().await, 1, "one failing build, not four");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_distinct_chaincodes_start_concurrently_and_all_run() {
    let env = Env::new("many", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let packages: Vec<_> = (0..16)
        .map(|i| Arc::new(env.shell_package(&format!("many{i}"), "sleep 600\n")))
        .collect();
    let mut tasks = Vec::new();
    for package in &packages {
        let launcher = env.launcher.clone();
        let package = package.clone();
        tasks.push(tokio::spawn(async move {
            launcher.build(&package, &|_: &str| {}).await?;
            launcher.start(request(&package.id)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("start");
    }
    for package in &packages {
        let container = env.launcher.names(&package.id).unwrap().container;
        let info = env
            .engine
            .inspect_container(&container)
            .await
            .unwrap()
            .expect("exists");
        assert!(info.running, "{container} runs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_of_one_chaincode_take_turns() {
    let env = Env::new("turns", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let package = Arc::new(env.shell_package("turns", "sleep 600\n"));
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    let starts: Vec<_> = (0..6)
        .map(|_| {
            let launcher = env.launcher.clone();
            let id = package.id.clone();
            tokio::spawn(async move { launcher.start(request(&id)).await })
        })
        .collect();
    for s in starts {
        // Each replaces the previous one cleanly: no name conflicts.
        s.await.unwrap().expect("start");
    }
    let running = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=org.cclaunch.peer-id={}", env.peer),
    ]);
    assert_eq!(running.lines().count(), 1, "exactly one container remains");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_start_leaves_no_half_made_container() {
    let env = Env::new("cancel", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let package = env.shell_package("cancel", "sleep 600\n");
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    let tls = common::tls_material();
    let mut cancelled = 0;
    // Cut the call off at growing delays, so some land between create and start.
    for ms in [5u64, 10, 20, 30, 40, 60, 80, 120, 160, 250] {
        let mut req = request(&package.id);
        req.tls = Some(tls.clone());
        let attempt = tokio::time::timeout(
            std::time::Duration::from_millis(ms),
            env.launcher.start(req),
        )
        .await;
        let container = env.launcher.names(&package.id).unwrap().container;
        match attempt {
            Ok(started) => {
                started.expect("start");
                env.launcher.stop(&package.id).await.expect("stop");
            }
            Err(_) => {
                cancelled += 1;
                let gone = common::eventually(std::time::Duration::from_secs(10), || {
                    docker(&["ps", "-aq", "--filter", &format!("name=^/{container}$")])
                        .trim()
                        .is_empty()
                })
                .await;
                assert!(
                    gone,
                    "a start cancelled after {ms} ms left its container behind"
                );
            }
        }
    }
    // stop waits for the chaincode's turn, so for any reaper still at work:
    // afterwards nothing of the cancelled attempts may remain.
    let err = env.launcher.stop(&package.id).await.unwrap_err();
    assert!(err.to_string().contains("there is no container"), "{err}");
    assert!(
        cancelled > 0,
        "no start was cut off; the delays are too long for this machine"
    );
}
