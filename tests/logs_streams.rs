//! Logs streams are bounded: a client that does not read costs the sidecar
//! a small, fixed buffer (not hundreds of 64 KiB lines), everything goes
//! when the client goes (also while the chaincode is silent: the engine
//! connection closes at once), and open streams are capped. Against a real
//! `serve` on the real engine, measured from /proc.

mod common;

use std::process::Stdio;
use std::time::Duration;

use cclaunch::proto::v1 as pb;
use common::sidecar::Sidecar;
use common::{docker, eventually, Env, SHENV};
use futures_util::StreamExt;
use tokio::io::AsyncBufReadExt;

const SHELL_RUNTIME: &[(&str, &str)] = &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)];

/// Builds and starts a shell chaincode through the sidecar, then waits
/// until the engine has logged its `last` line; its container name.
async fn run_chaincode(
    client: &mut cclaunch::proto::v1::launcher_client::LauncherClient<tonic::transport::Channel>,
    package: &cclaunch::package::Package,
    last: &str,
) -> String {
    let container = common::sidecar::build_and_start(client, package).await;
    assert!(
        eventually(Duration::from_secs(120), || docker(&[
            "logs", "--tail", "1", &container
        ])
        .trim_end()
            == last)
        .await,
        "the chaincode logged its output"
    );
    container
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_clients_that_do_not_read_hold_little_memory_and_streams_are_capped() {
    const STREAMS: usize = 20;
    const LINES: usize = 300;
    const WIDTH: usize = 60_000;
    let env = Env::new("logsmem", SHELL_RUNTIME).await;
    let sidecar = Sidecar::spawn(
        &env,
        "",
        &[("CCLAUNCH_OUTPUT_MAXLOGSTREAMS", &STREAMS.to_string())],
        Stdio::null(),
    );
    let mut client = sidecar.client().await;
    // 300 lines of 60,000 bytes (18 MB) in the engine's log, then silence.
    let package = env.shell_package(
        "wide",
        &format!(
            "pad=$(head -c {WIDTH} /dev/zero | tr '\\0' x)\ni=0\nwhile [ $i -lt {LINES} ]; do echo \"$i $pad\"; i=$((i+1)); done\necho done\nsleep 600\n"
        ),
    );
    run_chaincode(&mut client, &package, "done").await;
    let request = pb::LogsRequest {
        package_id: package.id.clone(),
        follow: true,
        ..Default::default()
    };

    let base_kib = sidecar.status_kib("VmRSS");
    // Clients on connections of their own that take one line, then stop
    // reading while the stream stays open.
    let mut idle = Vec::new();
    for _ in 0..STREAMS {
        let mut client = sidecar.client().await;
        let mut lines = client
            .logs(request.clone())
            .await
            .expect("logs")
            .into_inner();
        let first = lines.next().await.expect("a line").expect("a line");
        assert!(first.line.starts_with("0 xxx"), "{:.20}", first.line);
        idle.push((client, lines));
    }
    // Each open stream may fill what it buffers; watch the sidecar while
    // it does (failing as soon as it holds too much).
    let limit_kib = base_kib + 64 * 1024;
    let mut peak_kib = 0;
    let watch_until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < watch_until {
        peak_kib = peak_kib.max(sidecar.status_kib("VmRSS"));
        assert!(
            peak_kib < limit_kib,
            "sidecar RSS {peak_kib} KiB with {STREAMS} unread Logs streams (from {base_kib} KiB)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Between samples too.
    peak_kib = peak_kib.max(sidecar.status_kib("VmHWM"));
    assert!(peak_kib < limit_kib, "sidecar peak RSS {peak_kib} KiB");
    println!("sidecar RSS {base_kib} KiB, at most {peak_kib} KiB with {STREAMS} unread Logs streams of an 18 MB log");
    // The stream over the cap is refused, saying which key sets it.
    let status = client
        .logs(request.clone())
        .await
        .expect_err("over the cap");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("cclaunch.output.maxLogStreams"),
        "{status:?}"
    );

    // The clients go: the slots come back and memory stays down.
    drop(idle);
    let mut lines = loop {
        match client.logs(request.clone()).await {
            Ok(reply) => break reply.into_inner(),
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(status) => panic!("{status:?}"),
        }
    };
    // A reading client gets every line whole.
    let mut count = 0;
    while let Some(line) = lines.next().await {
        let line = line.expect("a line").line;
        if line == "done" {
            break;
        }
        assert_eq!(
            line.len(),
            WIDTH + 1 + count.to_string().len(),
            "line {count}"
        );
        assert!(line.starts_with(&format!("{count} x")));
        count += 1;
    }
    assert_eq!(count, LINES);
    drop(lines);
    let after_kib = sidecar.status_kib("VmRSS");
    println!("sidecar RSS {after_kib} KiB once the clients went");
    assert!(
        after_kib < limit_kib,
        "{after_kib} KiB after the clients went"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_logs_follow_clients_release_their_engine_connections() {
    const CLIENTS: usize = 10;
    let env = Env::new("logsfd", SHELL_RUNTIME).await;
    let sidecar = Sidecar::spawn(&env, "", &[], Stdio::null());
    let mut client = sidecar.client().await;
    let package = env.shell_package("silent", "echo up\nsleep 600\n");
    run_chaincode(&mut client, &package, "up").await;
    let base = sidecar.sockets();

    // `cclaunch logs -f` through the sidecar, each showing the line so far
    // and then waiting on a chaincode that prints nothing more. Each starts
    // with SIGINT ignored, as a script's background job has it: cclaunch
    // handles the signal itself, so `kill -INT` still ends it.
    let server = format!("unix:{}", sidecar.socket.display());
    let mut followers = Vec::new();
    for _ in 0..CLIENTS {
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "trap '' INT; exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_cclaunch"))
            .args(["logs", "-f", &package.id, "--server", &server])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cclaunch logs -f");
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
            .await
            .expect("a line in time")
            .expect("read");
        assert_eq!(first.as_deref(), Some("up"));
        followers.push((child, stdout));
    }
    let following = sidecar.sockets();
    println!("sidecar sockets: {base} before, {following} with {CLIENTS} followers");
    assert!(
        following >= base + CLIENTS,
        "each follower holds an engine connection: {following} sockets from {base}"
    );

    // Interrupted, as a user does with Ctrl-C.
    for (child, _) in &mut followers {
        let pid = child.id().expect("running").to_string();
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill -INT");
    }
    for (child, _) in &mut followers {
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("the follower ends on SIGINT")
            .expect("wait");
        assert_eq!(status.code(), Some(130), "{status:?}");
    }
    assert!(
        eventually(Duration::from_secs(10), || sidecar.sockets() <= base + 1).await,
        "the sidecar still holds {} sockets ({base} before the followers): their engine connections leaked",
        sidecar.sockets()
    );
}
