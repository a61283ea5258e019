//! A sidecar SIGKILLed mid-build and mid-start leaves a build container and
//! a created-but-never-started chaincode container; the next `serve` of the
//! peer removes both before it serves. A CLI build of the same peer running
//! meanwhile is left alone, and cleaned once its process is gone.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cclaunch::client::{self, Address};
use cclaunch::proto::v1::launcher_client::LauncherClient;
use cclaunch::proto::v1::{self as pb, build_event::Event, build_request::Source};
use common::engine_proxy::EngineProxy;
use common::{docker, Env, SHENV};
use futures_util::StreamExt;
use tokio::io::AsyncBufReadExt;
use tonic::transport::Channel;

/// A client of the sidecar once it answers (the socket accepts connections
/// before the sidecar's start-up clean-up is done).
async fn connect(socket: &Path) -> LauncherClient<Channel> {
    let address = Address::Unix(socket.to_path_buf());
    for _ in 0..200 {
        if let Ok(mut client) = client::connect(&address, None, Duration::from_secs(1)).await {
            if client.list(pb::ListRequest {}).await.is_ok() {
                return client;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sidecar never listened on {}", socket.display());
}

/// This peer's containers carrying all of `labels` (`key=value`), any state.
fn containers(peer: &str, labels: &[&str]) -> Vec<String> {
    let mut args = vec![
        "ps".to_string(),
        "-aq".into(),
        "--filter".into(),
        format!("label=org.cclaunch.peer-id={peer}"),
    ];
    for label in labels {
        args.push("--filter".into());
        args.push(format!("label={label}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&args)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// A sidecar whose log is kept.
struct Sidecar {
    child: tokio::process::Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Sidecar {
    fn spawn(mut command: tokio::process::Command) -> Sidecar {
        let mut child = command
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Sidecar { child, log }
    }

    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sidecar_removes_what_a_killed_one_left_half_done() {
    let env = Env::new("leftover", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let socket = env.dir.path().join("run/cclaunch.sock");
    // A build that takes as long as the test needs: the builder's build.sh
    // replaced by one that sleeps.
    let slow = env.dir.path().join("slow-build.sh");
    std::fs::write(&slow, "#!/bin/sh\necho slow build begins\nexec sleep 600\n").unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = env.dir.path().join("slow.yaml");
    std::fs::write(
        &config,
        format!(
            "cclaunch:\n  build:\n    mounts: [\"{}:/chaincode/build.sh\"]\n",
            slow.display()
        ),
    )
    .unwrap();
    let slow_serve = |endpoint: &str| {
        let mut command = common::serve_command(&env, &["--socket", socket.to_str().unwrap()]);
        command
            .env("CCLAUNCH_CONFIG", &config)
            .env("CORE_VM_ENDPOINT", endpoint);
        command
    };
    let by_sidecar = env.shell_package("bysidecar", "sleep 600\n");
    let by_cli = env.shell_package("bycli", "sleep 600\n");
    let started = env.shell_package("midstart", "sleep 600\n");
    env.launcher
        .build(&started, &|_: &str| {})
        .await
        .expect("build the image the start will use");

    // A CLI build of the same peer, on the engine directly.
    let mut cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_cclaunch"));
    cli.arg("build")
        .arg(&by_cli.file)
        .env("CCLAUNCH_CONFIG", &config)
        .env("CORE_VM_ENDPOINT", common::endpoint())
        .env("CORE_PEER_ID", &env.peer)
        .env("CORE_PEER_NETWORKID", "test")
        .env("CORE_CHAINCODE_NODE_RUNTIME", SHENV)
        .env("CCLAUNCH_STATEDIR", common::state_dir(&env.peer))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut cli = cli.spawn().unwrap();
    let cli_build = format!("org.cclaunch.package-id={}", by_cli.id);
    assert!(
        common::eventually(Duration::from_secs(30), || containers(
            &env.peer,
            &["org.cclaunch.build=true", &cli_build]
        )
        .len()
            == 1)
        .await,
        "the CLI's build container runs"
    );

    // Sidecar 1 is killed in the middle of a build.
    let first = Sidecar::spawn(slow_serve(&common::endpoint()));
    let mut client = connect(&socket).await;
    let request = pb::BuildRequest {
        source: Some(Source::Path(by_sidecar.file.display().to_string())),
    };
    let mut events = client
        .build(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("build output within 30 s")
            .expect("build goes on")
            .unwrap();
        if matches!(event.event, Some(Event::Output(ref line)) if line.contains("slow build begins"))
        {
            break;
        }
    }
    assert_eq!(
        containers(&env.peer, &["org.cclaunch.build=true", &cli_build]).len(),
        1,
        "sidecar 1 left the live CLI's build alone: {:?}",
        first.log.lock().unwrap()
    );
    first.kill().await;
    cli.start_kill().unwrap();
    cli.wait().await.unwrap();
    assert_eq!(
        containers(&env.peer, &["org.cclaunch.build=true"]).len(),
        2,
        "two builds were cut short"
    );

    // Sidecar 2 finds both builds abandoned; then it is killed in the middle
    // of a start (the engine never answers the start request).
    let proxy = EngineProxy::start(&EngineProxy::upstream(), |method, path| {
        !(method == "POST" && path.ends_with("/start"))
    });
    let second = Sidecar::spawn(slow_serve(&proxy.endpoint()));
    let mut client = connect(&socket).await;
    assert_eq!(
        containers(&env.peer, &["org.cclaunch.build=true"]),
        Vec::<String>::new(),
        "sidecar 2 removed both abandoned build containers: {:?}",
        second.log.lock().unwrap()
    );
    let start = tokio::spawn(async move {
        client
            .start(pb::StartRequest {
                package_id: started.id.clone(),
                peer_address: "127.0.0.1:7052".into(),
                ..Default::default()
            })
            .await
    });
    assert!(
        common::eventually(Duration::from_secs(30), || proxy
            .held()
            .iter()
            .any(|l| l.contains("/start")))
        .await,
        "the start reached the engine"
    );
    second.kill().await;
    let _ = start.await;
    let unstarted = containers(&env.peer, &[]);
    assert_eq!(unstarted.len(), 1, "the created container stays");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &unstarted[0]]).trim(),
        "created"
    );

    // Sidecar 3 leaves the engine clean.
    let third = Sidecar::spawn(slow_serve(&common::endpoint()));
    let mut client = connect(&socket).await;
    let listed = client.list(pb::ListRequest {}).await.unwrap().into_inner();
    assert!(listed.chaincodes.is_empty(), "{listed:?}");
    assert_eq!(containers(&env.peer, &[]), Vec::<String>::new());
    assert!(
        third
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("created but never started")),
        "{:?}",
        third.log.lock().unwrap()
    );
    third.kill().await;
}
