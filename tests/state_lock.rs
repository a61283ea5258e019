//! Sidecars sharing a stateDir: each peer's checkpoints are its own (a
//! restarted sidecar of one peer no longer sweeps another's away), and a
//! peer has one sidecar at a time: a second `serve` of it is refused, naming
//! the lock and the process holding it, and so is the CLI on the engine
//! directly for verbs that make or remove that peer's containers.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cclaunch::proto::v1::{self as pb};
use common::grpc::{build_and_start, launcher as connect};
use common::{Env, SHENV};

/// `cclaunch serve` for `env`'s peer on `socket`, with `state` as stateDir.
fn serve(env: &Env, socket: &Path, state: &Path) -> tokio::process::Command {
    let mut command = common::serve_command(env, &["--socket", socket.to_str().unwrap()]);
    command
        .env("CCLAUNCH_STATEDIR", state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Every file under `dir` named `name`.
fn find(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(find(&path, name));
        } else if entry.file_name() == name {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_sharing_a_state_dir_keep_their_checkpoints_and_a_peer_has_one_sidecar() {
    let a = Env::new("locka", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let b = Env::new("lockb", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let state = tempfile::tempdir().unwrap();
    let (socket_a, socket_b) = (
        a.dir.path().join("run/a.sock"),
        b.dir.path().join("run/b.sock"),
    );

    let mut sidecar_a = serve(&a, &socket_a, state.path()).spawn().unwrap();
    let mut sidecar_b = serve(&b, &socket_b, state.path()).spawn().unwrap();
    let mut client_a = connect(&socket_a).await;
    connect(&socket_b).await;
    let package = a.shell_package(
        "locka",
        "i=0\nwhile true; do i=$((i+1)); echo \"line $i\"; sleep 0.2; done\n",
    );
    let id = build_and_start(&mut client_a, &package.file).await;
    let container = a.launcher.names(&id).unwrap().container;
    let checkpoint = format!("{container}.json");
    assert!(
        common::eventually(Duration::from_secs(10), || !find(state.path(), &checkpoint)
            .is_empty())
        .await,
        "sidecar A checkpoints its chaincode's output"
    );

    // B restarts: its resume sweeps checkpoints of containers it does not
    // know; A's chaincode is not B's business.
    common::terminate(&mut sidecar_b, Duration::from_secs(15)).await;
    let mut sidecar_b = serve(&b, &socket_b, state.path()).spawn().unwrap();
    let mut client_b = connect(&socket_b).await;
    client_b.list(pb::ListRequest {}).await.unwrap();
    assert_eq!(
        find(state.path(), &checkpoint).len(),
        1,
        "A's checkpoint survives B's restart"
    );

    // A second sidecar of peer A (another socket, the same stateDir) is
    // refused before it listens, naming the lock and its holder.
    let socket_a2 = a.dir.path().join("run/a2.sock");
    let second = tokio::time::timeout(
        Duration::from_secs(20),
        serve(&a, &socket_a2, state.path()).output(),
    )
    .await
    .expect("the second sidecar exits at once")
    .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    let holder = sidecar_a.id().unwrap();
    assert!(
        stderr.contains(&format!(
            "peer {} of network test is served by another cclaunch serve (pid {holder}), which holds {}",
            a.peer,
            state.path().join("mirror/test").join(&a.peer).join("serve.lock").display()
        )),
        "{stderr}"
    );
    assert!(!socket_a2.exists(), "the refused sidecar made no socket");

    // The CLI on the engine: reading is fine, removing A's chaincode is
    // the sidecar's job.
    let cli = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cclaunch"));
        command
            .args(args)
            .env("CORE_VM_ENDPOINT", common::endpoint())
            .env("CORE_PEER_ID", &a.peer)
            .env("CORE_PEER_NETWORKID", "test")
            .env("CCLAUNCH_STATEDIR", state.path());
        command.output().unwrap()
    };
    let ps = cli(&["ps"]);
    assert!(ps.status.success());
    assert!(String::from_utf8_lossy(&ps.stdout).contains(&container));
    let stop = cli(&["stop", &id]);
    let stderr = String::from_utf8_lossy(&stop.stderr);
    assert!(!stop.status.success());
    assert!(
        stderr.contains(&format!(
            "is served by another cclaunch serve (pid {holder})"
        )) && stderr.contains("go through it (--server)"),
        "{stderr}"
    );
    let through = cli(&[
        "stop",
        &id,
        "--server",
        &format!("unix:{}", socket_a.display()),
    ]);
    assert!(
        through.status.success(),
        "{}",
        String::from_utf8_lossy(&through.stderr)
    );

    common::terminate(&mut sidecar_a, Duration::from_secs(15)).await;
    common::terminate(&mut sidecar_b, Duration::from_secs(15)).await;
    // With no sidecar, the peer is the CLI's again.
    let gc = cli(&["gc", "--all"]);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
}
