//! Output mirroring, wait and stop against the real engine, on the busybox
//! `shenv` runtime (Fabric's node start path: /chaincode/start.sh).

mod common;

use std::time::Duration;

use common::{captured, request, Env, SHENV};

const SHELL_RUNTIME: &[(&str, &str)] = &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_lines_arrive_complete_and_in_order() {
    let captured = captured();
    let env = Env::new("lines", SHELL_RUNTIME).await;
    assert_eq!(env.launcher.config().chaincode.node.runtime, SHENV);
    let package = env.shell_package(
        "lines",
        "seq 1 100000 | sed 's/^/line /'\necho done-on-stderr >&2\n",
    );
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    let started = env
        .launcher
        .start(request(&package.id))
        .await
        .expect("start");

    assert_eq!(env.launcher.wait(&package.id).await.expect("wait"), 0);
    let mirrored = env
        .launcher
        .output_closed(&package.id)
        .await
        .expect("mirror ran");
    assert_eq!(mirrored, 100_001);

    let lines = captured.for_target(&format!("peer.chaincode.{}", started.container));
    assert_eq!(lines.len(), 100_001, "every line arrives once");
    let stdout: Vec<&String> = lines.iter().filter(|l| l.starts_with("line ")).collect();
    for (i, line) in stdout.iter().enumerate() {
        assert_eq!(
            **line,
            format!("line {}", i + 1),
            "line {} out of order",
            i + 1
        );
    }
    assert!(
        lines.contains(&"done-on-stderr".to_string()),
        "stderr is mirrored too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_the_exit_code_and_stop_removes_the_container() {
    let env = Env::new("wait", SHELL_RUNTIME).await;
    for (label, code) in [("exit0", 0), ("exit3", 3), ("exit255", 255)] {
        let package = env.shell_package(label, &format!("echo bye\nexit {code}\n"));
        env.launcher
            .build(&package, &|_: &str| {})
            .await
            .expect("build");
        let started = env
            .launcher
            .start(request(&package.id))
            .await
            .expect("start");
        let waited = tokio::time::timeout(Duration::from_secs(60), env.launcher.wait(&package.id))
            .await
            .expect("wait returns")
            .expect("wait");
        assert_eq!(waited, code, "{label}");
        env.launcher.stop(&package.id).await.expect("stop");
        assert!(
            env.engine_has_no(&started.container).await,
            "{label}: container removed"
        );
    }

    // A running chaincode: stop ends it at once (no grace period) and removes it.
    let package = env.shell_package("sleeper", "echo up\nsleep 600\n");
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    let started = env
        .launcher
        .start(request(&package.id))
        .await
        .expect("start");
    let t = std::time::Instant::now();
    env.launcher.stop(&package.id).await.expect("stop");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    assert!(env.engine_has_no(&started.container).await);
    let err = env
        .launcher
        .stop(&package.id)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("there is no container"), "{err}");
}

impl Env {
    async fn engine_has_no(&self, container: &str) -> bool {
        use cclaunch::runtime::Runner;
        self.engine
            .inspect_container(container)
            .await
            .expect("inspect")
            .is_none()
    }
}
