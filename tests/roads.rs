//! One road: every CLI verb prints the same, byte for byte, on the engine
//! directly and through a sidecar (`--server`), `start -f` included (the
//! chaincode's lines on stdout, its exit code kept). The real binary, a
//! real `cclaunch serve` and the real engine.

mod common;

use std::time::Duration;

use common::{Env, SHENV};

/// The binary as this test's peer, with no diagnostics log (the direct
/// road's launcher logs; a sidecar logs in its own process): (exit code,
/// stdout, stderr).
async fn run(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cclaunch"))
        .args(args)
        .env("CORE_VM_ENDPOINT", common::endpoint())
        .env("CORE_PEER_ID", &env.peer)
        .env("CORE_PEER_NETWORKID", "test")
        .env("CORE_CHAINCODE_NODE_RUNTIME", SHENV)
        .env("CCLAUNCH_STATEDIR", common::state_dir(&env.peer))
        .env("RUST_LOG", "off")
        .env_remove(cclaunch::client::SERVER_ENV)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .unwrap_or_else(|_| panic!("cclaunch {args:?} did not finish"))
        .expect("run cclaunch");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Each verb's (exit code, stdout, stderr) on one road: build, start -f,
/// wait, logs, ps, stop, gc, in that order (each road starts with no image).
async fn verbs(env: &Env, file: &str, id: &str, server: &[&str]) -> Vec<(String, Outcome)> {
    let mut outcomes = Vec::new();
    for verb in [
        vec!["build", file],
        vec!["start", file, "--peer-address", "127.0.0.1:7052", "-f"],
        vec!["wait", id],
        vec!["logs", id],
        vec!["logs", id, "--tail", "2"],
        vec!["ps"],
        vec!["stop", id],
        vec!["gc", id],
    ] {
        let mut args = verb.clone();
        args.extend_from_slice(server);
        let (code, stdout, stderr) = run(env, &args).await;
        outcomes.push((
            verb.join(" "),
            Outcome {
                code,
                stdout,
                stderr: progress(&stderr, id),
            },
        ));
    }
    outcomes
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// stderr as compared: without the build's own output (the engine's image
/// build names fresh layers each time) and without the stage saying that
/// an uploaded package arrived whole (only a sidecar receives one).
fn progress(stderr: &str, id: &str) -> String {
    let output = format!("build {id} | ");
    let upload = format!("build {id}: package {id} received and valid");
    stderr
        .lines()
        .filter(|l| !l.starts_with(&output) && *l != upload)
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_prints_the_same_on_the_engine_and_through_a_sidecar() {
    let env = Env::new("roads", &[]).await;
    // One stream only: the engine keeps no order between a container's
    // stdout and stderr, so two runs may interleave them differently
    // (tests/tls.rs shows stderr lines reach stdout through either road).
    let package = env.shell_package(
        "roads",
        "echo first line\necho second line\necho third line\nexit 5\n",
    );
    let file = package.file.to_str().unwrap().to_string();
    let id = package.id.clone();
    let names = env.launcher.names(&id).unwrap();

    let direct = verbs(&env, &file, &id, &[]).await;
    let start = &direct[1].1;
    assert_eq!(start.code, Some(5), "{start:?}");
    assert!(
        start.stdout.starts_with(&format!(
            "image: {} (reused)\nstarted {} (node)\n",
            names.image, names.container
        )),
        "{start:?}"
    );
    assert!(
        start
            .stdout
            .ends_with("\nfirst line\nsecond line\nthird line\n"),
        "{start:?}"
    );
    assert!(
        start
            .stderr
            .ends_with(&format!("chaincode {id} exited with code 5\n")),
        "{start:?}"
    );
    assert_eq!(
        direct[7].1.stdout,
        format!("removed image {}:latest\n", names.image)
    );

    let socket = env.dir.path().join("run/cclaunch.sock");
    let _sidecar = common::spawn_serve(&env, &["--socket", socket.to_str().unwrap()]);
    let up = common::eventually(Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    })
    .await;
    assert!(up, "the sidecar never listened");
    let server = format!("unix:{}", socket.display());
    let through = verbs(&env, &file, &id, &["--server", &server]).await;

    for ((verb, direct), (_, through)) in direct.iter().zip(&through) {
        assert_eq!(direct, through, "{verb}: direct, then through the sidecar");
    }
}
