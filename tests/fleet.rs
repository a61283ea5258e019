//! Many chaincodes under one `cclaunch serve` (issue 10's "1,000 chaincodes
//! per sidecar", at a scale a test affords): the shortcuts that make a
//! sidecar scale must not change what it does.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cclaunch::proto::v1::{self as pb, build_event::Event, build_request::Source};
use common::grpc::launcher as connect;
use common::{Env, SHENV};
use futures_util::StreamExt;
use tokio::io::AsyncBufReadExt;

/// Chaincodes in the fleet: more than the open-file limit the sidecar is
/// started with allows connections for.
const FLEET: usize = 60;
/// The soft open-file limit a service manager gives a process.
const SOFT_NOFILE: u64 = 64;

/// A `cclaunch serve` started with [`SOFT_NOFILE`] as its soft open-file
/// limit (the hard one as inherited), its log read for fleet lines: the
/// numbers it mirrored, by container.
struct Sidecar {
    child: tokio::process::Child,
    lines: Arc<Mutex<BTreeMap<String, Vec<u32>>>>,
}

impl Sidecar {
    fn spawn(env: &Env, socket: &Path) -> Sidecar {
        let mut command = common::serve_command(env, &["--socket", socket.to_str().unwrap()]);
        command
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped());
        // SAFETY: only setrlimit (async-signal-safe) runs in the child.
        unsafe {
            command.pre_exec(|| {
                let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
                rustix::process::setrlimit(
                    rustix::process::Resource::Nofile,
                    rustix::process::Rlimit {
                        current: Some(SOFT_NOFILE),
                        maximum: limit.maximum,
                    },
                )
                .map_err(std::io::Error::from)
            });
        }
        let mut child = command.spawn().expect("spawn cclaunch serve");
        let lines = Arc::new(Mutex::new(BTreeMap::<String, Vec<u32>>::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = lines.clone();
        tokio::spawn(async move {
            let pattern =
                regex::Regex::new(r"peer\.chaincode\.([A-Za-z0-9_.-]+).* fleet line (\d+)$")
                    .unwrap();
            let mut log = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = log.next_line().await {
                if let Some(c) = pattern.captures(&line) {
                    let n = c[2].parse().unwrap();
                    sink.lock()
                        .unwrap()
                        .entry(c[1].to_string())
                        .or_default()
                        .push(n);
                }
            }
        });
        Sidecar { child, lines }
    }

    fn mirrored(&self) -> BTreeMap<String, Vec<u32>> {
        self.lines.lock().unwrap().clone()
    }

    /// Whether every chaincode of the fleet has at least `n` lines here.
    fn each_has(&self, n: usize) -> bool {
        let lines = self.lines.lock().unwrap();
        lines.len() == FLEET && lines.values().all(|l| l.len() >= n)
    }
}

async fn build(
    client: &mut pb::launcher_client::LauncherClient<tonic::transport::Channel>,
    file: &Path,
) -> String {
    let request = pb::BuildRequest {
        source: Some(Source::Path(file.display().to_string())),
    };
    let mut events = client
        .build(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    while let Some(event) = events.next().await {
        if let Some(Event::Done(done)) = event.unwrap().event {
            return done.package_id;
        }
    }
    panic!("the build stream ended without Done");
}

/// A sidecar whose soft open-file limit is lower than its fleet needs still
/// mirrors every chaincode (it raises the limit); a clean restart resumes
/// every mirror right after its last line (the logs reopened several at a
/// time, the checkpoints written side by side at shutdown): across the two
/// processes each chaincode's lines come exactly once, in order, the ones
/// written while no sidecar ran included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_is_mirrored_and_resumed_without_a_line_lost_or_repeated() {
    let env = Env::new("fleet", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let socket = env.dir.path().join("run/cclaunch.sock");
    let package = env.shell_package(
        "fleet",
        "i=0\nwhile true; do i=$((i+1)); echo \"fleet line $i\"; sleep 0.5; done\n",
    );
    let first = Sidecar::spawn(&env, &socket);
    let mut client = connect(&socket).await;
    let built = build(&mut client, &package.file).await;
    let hash = built.rsplit(':').next().unwrap();
    let starts = futures_util::stream::iter((0..FLEET).map(|i| {
        let mut client = client.clone();
        let request = pb::StartRequest {
            package_id: format!("fleet{i}:{hash}"),
            peer_address: "127.0.0.1:7052".into(),
            image_of: built.clone(),
            ..Default::default()
        };
        async move { client.start(request).await }
    }))
    .buffer_unordered(8)
    .collect::<Vec<_>>()
    .await;
    for started in starts {
        started.expect("every chaincode starts under a low soft open-file limit");
    }
    assert!(
        common::eventually(Duration::from_secs(60), || first.each_has(3)).await,
        "the first sidecar mirrors every chaincode: {} of {FLEET} seen",
        first.mirrored().len()
    );
    let listed = client.list(pb::ListRequest {}).await.unwrap().into_inner();
    assert_eq!(
        listed.chaincodes.iter().filter(|c| c.running).count(),
        FLEET
    );

    let mut first = first;
    let status = common::terminate(&mut first.child, Duration::from_secs(30)).await;
    assert!(status.success(), "{status}");
    let before = first.mirrored();
    // Lines made while no sidecar runs: one or two per chaincode.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let second = Sidecar::spawn(&env, &socket);
    let mut client = connect(&socket).await;
    assert!(
        common::eventually(Duration::from_secs(60), || second.each_has(4)).await,
        "the new sidecar resumes every mirror: {} of {FLEET} seen",
        second.mirrored().len()
    );
    let after = second.mirrored();
    for (container, first_lines) in &before {
        let then: Vec<u32> = first_lines
            .iter()
            .chain(after.get(container).into_iter().flatten())
            .copied()
            .collect();
        let expected: Vec<u32> = (1..=then.len() as u32).collect();
        assert_eq!(
            then,
            expected,
            "{container}: first sidecar mirrored {first_lines:?}, the new one {:?}",
            after.get(container)
        );
    }
    let listed = client.list(pb::ListRequest {}).await.unwrap().into_inner();
    assert_eq!(
        listed.chaincodes.iter().filter(|c| c.running).count(),
        FLEET
    );
}

/// What the engine says of this peer's chaincode containers: (package id,
/// state, running, exit code once exited), sorted.
fn engine_truth(peer: &str) -> Vec<(String, String, bool, Option<i64>)> {
    let filter = format!("label={}={peer}", cclaunch::runtime::LABEL_PEER_ID);
    let ids = common::docker(&["ps", "-aq", "--filter", &filter]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let format = format!(
        "{{{{index .Config.Labels \"{}\"}}}} {{{{.State.Status}}}} {{{{.State.Running}}}} {{{{.State.ExitCode}}}}",
        cclaunch::runtime::LABEL_PACKAGE_ID
    );
    let mut args = vec!["inspect", "--format", &format];
    args.extend(&ids);
    let mut truth: Vec<_> = common::docker(&args)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [id, state, running, code] = f[..] else {
                return None; // removed between ps and inspect
            };
            let exited = state == "exited";
            Some((
                id.to_string(),
                state.to_string(),
                running == "true",
                exited.then(|| code.parse().unwrap()),
            ))
        })
        .collect();
    truth.sort();
    truth
}

/// `GET /metrics` on the operations endpoint: `cclaunch_running_chaincodes`.
async fn running_gauge(operations: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(operations).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("cclaunch_running_chaincodes "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `List` and `/metrics` answer from the engine's events, not a listing
/// each: after starts, a Stop, exits of their own (code 3), a `docker kill`
/// (137), a `docker rm -f`, a pause and a `docker start` behind the
/// sidecar's back, they say what the engine says, and the engine was not
/// asked for a listing by any of those calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_metrics_from_engine_events_match_the_engine() {
    let env = Env::new("roster", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let listings = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let proxy =
        common::engine_proxy::EngineProxy::start(&common::engine_proxy::EngineProxy::upstream(), {
            let listings = listings.clone();
            move |_, path| {
                if path.contains("/containers/json") {
                    listings.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                true
            }
        });
    let socket = env.dir.path().join("run/cclaunch.sock");
    let mut child = common::serve_command(
        &env,
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--operations",
            "127.0.0.1:0",
        ],
    )
    .env("CORE_VM_ENDPOINT", proxy.endpoint())
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("spawn cclaunch serve");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let operations = loop {
        let line = stdout
            .next_line()
            .await
            .unwrap()
            .expect("serve prints its endpoints");
        if let Some(rest) = line.strip_prefix("operations endpoint on http://") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });

    let package = env.shell_package(
        "roster",
        "case \"$CORE_CHAINCODE_ID_NAME\" in\n  exits*) sleep 1; exit 3 ;;\n  *) exec sleep 600 ;;\nesac\n",
    );
    let mut client = connect(&socket).await;
    let built = build(&mut client, &package.file).await;
    let hash = built.rsplit(':').next().unwrap().to_string();
    let id = |name: &str| format!("{name}:{hash}");
    for name in [
        "runs0", "runs1", "runs2", "runs3", "runs4", "runs5", "exits0", "exits1",
    ] {
        client
            .start(pb::StartRequest {
                package_id: id(name),
                peer_address: "127.0.0.1:7052".into(),
                image_of: built.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let container = |name: &str| env.launcher.names(&id(name)).unwrap().container;
    client
        .stop(pb::ChaincodeRef {
            package_id: id("runs0"),
        })
        .await
        .unwrap();
    common::docker(&["kill", &container("runs1")]);
    common::docker(&["rm", "-f", &container("runs2")]);
    common::docker(&["pause", &container("runs3")]);
    common::docker(&["kill", &container("runs4")]);
    common::docker(&["start", &container("runs4")]);

    let answers = |listed: pb::ListResponse| {
        let mut said: Vec<_> = listed
            .chaincodes
            .into_iter()
            .map(|c| {
                let exited = c.state == "exited";
                (
                    c.package_id,
                    c.state,
                    c.running,
                    c.exit_code.filter(|_| exited),
                )
            })
            .collect();
        said.sort();
        said
    };
    // Events come a moment after what caused them: wait for agreement.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (said, truth, gauge) = loop {
        let truth = engine_truth(&env.peer);
        let said = answers(client.list(pb::ListRequest {}).await.unwrap().into_inner());
        let gauge = running_gauge(&operations).await;
        let running = truth.iter().filter(|t| t.2).count() as u64;
        let settled = truth
            .iter()
            .all(|t| !t.0.starts_with("exits") || t.1 == "exited");
        if (said == truth && gauge == running && settled) || tokio::time::Instant::now() > deadline
        {
            break (said, truth, gauge);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(said, truth, "List said what the engine says");
    assert_eq!(gauge, truth.iter().filter(|t| t.2).count() as u64);
    let wanted = |name: &str, state: &str, running: bool, code: Option<i64>| {
        (id(name), state.to_string(), running, code)
    };
    assert_eq!(
        truth,
        [
            wanted("exits0", "exited", false, Some(3)),
            wanted("exits1", "exited", false, Some(3)),
            wanted("runs1", "exited", false, Some(137)),
            // Paused still runs, as the engine says.
            wanted("runs3", "paused", true, None),
            wanted("runs4", "running", true, None),
            wanted("runs5", "running", true, None),
        ]
    );

    // Asked again and again: the engine lists nothing for it.
    let before = listings.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..5 {
        client.list(pb::ListRequest {}).await.unwrap();
        tokio::time::sleep(cclaunch::api::operations::ANSWER_TTL).await;
        running_gauge(&operations).await;
    }
    assert_eq!(
        listings.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "List and /metrics asked the engine for a listing"
    );
    common::docker(&["unpause", &container("runs3")]);
    drop(child);
}
