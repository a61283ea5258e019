//! A sidecar restart: `cclaunch serve` is SIGKILLed while two chaincodes run
//! and started again. The new process lists both, resumes mirroring each one's
//! output right after the last line the killed one logged (lines written
//! while no sidecar ran included, none twice), tracks their exit, and Logs
//! with `since` streams new lines only.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cclaunch::proto::v1::{self as pb};
use common::grpc::{build_and_start, launcher as connect};
use common::{Env, SHENV};
use futures_util::StreamExt;
use tokio::io::AsyncBufReadExt;

/// A `cclaunch serve` process whose stderr (its log) is collected line by line.
struct Sidecar {
    child: tokio::process::Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Sidecar {
    fn spawn(env: &Env, socket: &Path) -> Sidecar {
        let mut child = common::serve_command(env, &["--socket", socket.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn cclaunch serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Sidecar { child, log }
    }

    /// The chaincode lines this sidecar mirrored: `(chaincode letter, number)`.
    fn mirrored(&self) -> Vec<(char, u32)> {
        let pattern = regex::Regex::new(r"peer\.chaincode\.\S+ .*\b([ab]) line (\d+)$").unwrap();
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| {
                let c = pattern.captures(l)?;
                Some((c[1].chars().next()?, c[2].parse().ok()?))
            })
            .collect()
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

fn numbers(lines: &[(char, u32)], which: char) -> Vec<u32> {
    lines
        .iter()
        .filter(|(c, _)| *c == which)
        .map(|(_, n)| *n)
        .collect()
}

/// The killed sidecar's lines and the new one's follow on without a gap or
/// a repeat: together they are exactly 1..=n, in order.
fn assert_continues(first: &[u32], second: &[u32], which: char) {
    let joined: Vec<u32> = first.iter().chain(second).copied().collect();
    let expected: Vec<u32> = (1..=joined.len() as u32).collect();
    assert_eq!(
        joined, expected,
        "chaincode {which}: killed sidecar mirrored {first:?}, new one {second:?}"
    );
}

/// The highest N of the lines `<which> line N` the engine logged for
/// `container` (stdout and stderr).
fn logged_up_to(container: &str, which: char) -> u32 {
    let out = std::process::Command::new("docker")
        .args(["logs", container])
        .output()
        .expect("docker logs");
    [out.stdout, out.stderr]
        .iter()
        .flat_map(|o| {
            String::from_utf8_lossy(o)
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter_map(|l| {
            l.strip_prefix(&format!("{which} line "))?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sidecar_comes_back_to_its_chaincode() {
    let env = Env::new("restart", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let socket: PathBuf = env.dir.path().join("run/cclaunch.sock");
    let a = env.shell_package(
        "resa",
        "i=0\nwhile true; do i=$((i+1)); echo \"a line $i\"; sleep 0.3; done\n",
    );
    let b = env.shell_package(
        "resb",
        "i=0\nwhile [ $i -lt 40 ]; do i=$((i+1)); echo \"b line $i\" >&2; sleep 0.3; done\nexit 5\n",
    );

    let mut first = Sidecar::spawn(&env, &socket);
    let mut client = connect(&socket).await;
    let a_id = build_and_start(&mut client, &a.file).await;
    let b_id = build_and_start(&mut client, &b.file).await;
    assert!(
        common::eventually(Duration::from_secs(20), || {
            let seen = first.mirrored();
            numbers(&seen, 'a').len() >= 3 && numbers(&seen, 'b').len() >= 3
        })
        .await,
        "first sidecar mirrors both: {:?}",
        first.log.lock().unwrap()
    );
    // Killed once its checkpoints hold every line it mirrored (lines come
    // every 300 ms, checkpoints follow within 50 ms).
    let config = env.launcher.config();
    let checkpoints = cclaunch::output::checkpoint::Checkpoints::new(
        &config.state_dir(),
        &config.peer.network_id,
        &config.peer.id,
    );
    let checkpointed = |id: &str, which: char| {
        let container = env.launcher.names(id).unwrap().container;
        let inspected = common::docker(&["inspect", "--format", "{{.Id}}", &container]);
        let at = checkpoints
            .load(&container, inspected.trim())
            .map(|skip| skip.at);
        let mirrored = numbers(&first.mirrored(), which).len() as u64;
        at.is_some_and(|at| at.stdout.max(at.stderr) == mirrored)
    };
    assert!(
        common::eventually(Duration::from_secs(10), || checkpointed(&a_id, 'a')
            && checkpointed(&b_id, 'b'))
        .await,
        "the checkpoints never caught up with the mirrored lines"
    );
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    let before = first.mirrored();
    // Both keep writing while no sidecar runs: a few lines each.
    for (id, which) in [(&a_id, 'a'), (&b_id, 'b')] {
        let container = env.launcher.names(id).unwrap().container;
        let last = numbers(&before, which).last().copied().unwrap_or(0);
        assert!(
            common::eventually(Duration::from_secs(20), || logged_up_to(&container, which)
                >= last + 3)
            .await,
            "chaincode {which} logged no more lines while no sidecar ran"
        );
    }

    let second = Sidecar::spawn(&env, &socket);
    let mut client = connect(&socket).await;
    let listed = client.list(pb::ListRequest {}).await.unwrap().into_inner();
    let ids: BTreeSet<&str> = listed
        .chaincodes
        .iter()
        .filter(|c| c.running)
        .map(|c| c.package_id.as_str())
        .collect();
    assert_eq!(ids, BTreeSet::from([a_id.as_str(), b_id.as_str()]));

    // Logs with `since` a second from now: only lines logged after it.
    let last_before_since = numbers(&before, 'a').last().copied().unwrap_or(0) + 5;
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let since = unix_now();
    let mut recent = client
        .logs(pb::LogsRequest {
            package_id: a_id.clone(),
            follow: true,
            since,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let line = tokio::time::timeout(Duration::from_secs(10), recent.next())
        .await
        .expect("a new line within 10 s")
        .expect("stream open")
        .unwrap();
    let n: u32 = line.line.trim_start_matches("a line ").parse().unwrap();
    assert!(
        n > last_before_since,
        "Logs since {since} began with {line:?}, an old line"
    );
    drop(recent);

    // B exits on its own: Wait answers, and the new sidecar saw it go.
    let waited = tokio::time::timeout(
        Duration::from_secs(30),
        client.wait(pb::ChaincodeRef {
            package_id: b_id.clone(),
        }),
    )
    .await
    .expect("B exits within 30 s")
    .unwrap()
    .into_inner();
    assert_eq!(waited.exit_code, 5);
    assert!(
        common::eventually(Duration::from_secs(10), || second
            .logged("chaincode exited with code 5"))
        .await,
        "new sidecar logs B's exit"
    );

    let after = second.mirrored();
    // ~5 lines each came while no sidecar ran, and more after: all mirrored.
    assert!(numbers(&after, 'a').len() >= 8, "{after:?}");
    assert_continues(&numbers(&before, 'a'), &numbers(&after, 'a'), 'a');
    assert_continues(&numbers(&before, 'b'), &numbers(&after, 'b'), 'b');
    assert_eq!(numbers(&before, 'b').len() + numbers(&after, 'b').len(), 40);

    // SIGTERM while a client follows A's output (a call that never ends by
    // itself): the sidecar writes its checkpoints, stops within its drain
    // limit, and the next one carries on right after its last line.
    let mut follow = client
        .logs(pb::LogsRequest {
            package_id: a_id.clone(),
            follow: true,
            tail: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    follow.next().await.expect("a line").unwrap();
    let mut second = second;
    // Within its drain limit, despite the open Logs call.
    let status = common::terminate(&mut second.child, Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
    let after = second.mirrored();
    let third = Sidecar::spawn(&env, &socket);
    let mut client = connect(&socket).await;
    assert!(
        common::eventually(Duration::from_secs(20), || numbers(&third.mirrored(), 'a')
            .len()
            >= 3)
        .await
    );
    let upto_second: Vec<u32> = numbers(&before, 'a')
        .into_iter()
        .chain(numbers(&after, 'a'))
        .collect();
    assert_continues(&upto_second, &numbers(&third.mirrored(), 'a'), 'a');

    // Stopping through the new sidecar removes the checkpoint with the container.
    let checkpoints = common::checkpoint_dir(&env.peer);
    let names = || -> Vec<String> {
        std::fs::read_dir(&checkpoints)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(
        names().iter().any(|f| f.contains("resa")),
        "A's checkpoint is not where the test looks: {:?}",
        names()
    );
    client
        .stop(pb::ChaincodeRef {
            package_id: a_id.clone(),
        })
        .await
        .unwrap();
    let left = names();
    assert!(
        !left.iter().any(|f| f.contains("resa")),
        "A's checkpoint outlived its container: {left:?}"
    );
}

/// The engine's log rotates its oldest file away, so counting lines from its
/// start no longer lines up with what was mirrored: a resumed mirror still
/// carries on right after the last line logged, by the engine's timestamps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_after_log_rotation_carries_on_after_the_last_line() {
    use cclaunch::launcher::Launcher;
    let captured = common::captured();
    let env = Env::new("rotate", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let mut config = env.launcher.config().clone();
    config.vm.docker.host_config = config.vm.docker.host_config.clone().with(
        "LogConfig",
        serde_json::json!({"Type": "json-file", "Config": {"max-size": "10k", "max-file": "2"}}),
    );
    let first = Launcher::new(env.engine.clone(), config.clone());
    // 300 padded lines (~80 KB of log, so the oldest files are rotated away),
    // then ten short lines a second: the output while no mirror runs stays
    // in the log.
    let package = env.shell_package(
        "rotate",
        "pad=$(printf '%0200d' 0)\ni=0\nwhile [ $i -lt 300 ]; do i=$((i+1)); echo \"r line $i $pad\"; done\nwhile true; do i=$((i+1)); echo \"r line $i\"; sleep 0.1; done\n",
    );
    first.build(&package, &|_: &str| {}).await.unwrap();
    let started = first.start(common::request(&package.id)).await.unwrap();
    let target = format!("peer.chaincode.{}", started.container);
    let numbers = || numbered(&captured, &target);
    assert!(common::eventually(Duration::from_secs(30), || numbers().len() >= 310).await);
    first.stop_mirrors().await;
    let stopped_after = numbers().len() as u32;
    // A few lines logged while no mirror runs.
    assert!(
        common::eventually(Duration::from_secs(20), || logged_up_to(
            &started.container,
            'r'
        ) >= stopped_after + 3)
        .await
    );

    let second = Launcher::new(env.engine.clone(), config);
    let resumed = second.resume().await.unwrap();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(
        resumed[0].from.map(|p| p.stdout),
        Some(stopped_after.into())
    );
    let check = stopped_after + 8;
    assert!(common::eventually(Duration::from_secs(20), || numbers().len() as u32 >= check).await);
    second.stop_mirrors().await;
    let seen = numbers();
    let expected: Vec<u32> = (1..=check).collect();
    assert_eq!(
        seen[..check as usize],
        expected[..],
        "stopped after line {stopped_after}; then came {:?}",
        &seen[stopped_after as usize..check as usize]
    );
}

/// After a restart the engine answers every chaincode's log request at once
/// and may be late with some. A resumed log whose first answer times out is
/// asked for again, and its mirror carries on right after the last line.
/// Here the engine's first answer to the log request comes after 3 s, past a
/// 1 s request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_log_answered_late_is_asked_for_again() {
    use cclaunch::launcher::Launcher;
    use cclaunch::runtime::docker::{Docker, Timeouts};
    use common::engine_proxy::{EngineProxy, Verdict};
    use std::sync::atomic::{AtomicU32, Ordering};
    let captured = common::captured();
    let env = Env::new("asklate", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let config = env.launcher.config().clone();
    let package = env.shell_package(
        "asklate",
        "i=0\nwhile true; do i=$((i+1)); echo \"q line $i\"; sleep 0.2; done\n",
    );
    let first = Launcher::new(env.engine.clone(), config.clone());
    first.build(&package, &|_: &str| {}).await.unwrap();
    let started = first.start(common::request(&package.id)).await.unwrap();
    let target = format!("peer.chaincode.{}", started.container);
    let numbers = || numbered(&captured, &target);
    assert!(common::eventually(Duration::from_secs(20), || numbers().len() >= 3).await);
    first.stop_mirrors().await;
    let stopped_after = numbers().len() as u32;

    let asked = Arc::new(AtomicU32::new(0));
    let proxy = EngineProxy::judging(&EngineProxy::upstream(), {
        let asked = asked.clone();
        move |method, path| {
            let log = method == "GET" && path.contains("/logs");
            if log && asked.fetch_add(1, Ordering::SeqCst) == 0 {
                Verdict::Delay(Duration::from_secs(3))
            } else {
                Verdict::Forward
            }
        }
    });
    let late = Docker::connect(&proxy.endpoint())
        .await
        .unwrap()
        .with_timeouts(Timeouts {
            request: Duration::from_secs(1),
            ..Timeouts::default()
        });
    let second = Launcher::new(Arc::new(late), config);
    let resumed = second.resume().await.unwrap();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    let check = stopped_after + 15;
    assert!(
        common::eventually(Duration::from_secs(30), || numbers().len() as u32 >= check).await,
        "the resumed mirror stopped at {:?} (log asked for {} times)",
        numbers().last(),
        asked.load(Ordering::SeqCst)
    );
    second.stop_mirrors().await;
    assert!(
        asked.load(Ordering::SeqCst) >= 2,
        "the log was asked for once"
    );
    let seen = numbers();
    let expected: Vec<u32> = (1..=check).collect();
    assert_eq!(
        seen[..check as usize],
        expected[..],
        "stopped after line {stopped_after}"
    );
    env.launcher.stop(&package.id).await.unwrap();
}

/// The numbers of the `X line N` lines mirrored into `target`, in order.
fn numbered(captured: &common::Captured, target: &str) -> Vec<u32> {
    captured
        .for_target(target)
        .iter()
        .filter_map(|l| l.split(' ').nth(2)?.parse().ok())
        .collect()
}
