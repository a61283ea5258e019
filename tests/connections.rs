//! Connections to `cclaunch serve` are bounded, with real sockets and real
//! clients: a silent connection is closed within the header timeout (the
//! gRPC socket and the operations port alike), one past the cap is closed at
//! once while a well-behaved client keeps its answers, a connection with no
//! call is closed after the idle timeout but one with a call open is kept,
//! calls per connection are capped, a dead peer is dropped by HTTP/2
//! keepalive, and at the file-descriptor limit the accept loop waits instead
//! of spinning a core.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cclaunch::client::{self, Address};
use cclaunch::proto::v1::{self as pb, launcher_client::LauncherClient};
use common::Env;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tonic::transport::Channel;

/// `cclaunch serve` on a socket in `env`'s directory, with `limits` as
/// `CCLAUNCH_API_*` variables and its log kept.
struct Sidecar {
    child: tokio::process::Child,
    socket: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Sidecar {
    fn spawn(env: &Env, extra: &[&str], limits: &[(&str, &str)], prlimit: Option<u32>) -> Sidecar {
        let socket = env.dir.path().join("run/cclaunch.sock");
        let mut args = vec!["--socket", socket.to_str().unwrap()];
        args.extend_from_slice(extra);
        let base = common::serve_command(env, &args);
        let base = base.as_std();
        // Under prlimit (which execs cclaunch: one pid) when a limit is asked.
        let mut command = match prlimit {
            Some(n) => {
                let mut c = tokio::process::Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(base.get_program());
                c
            }
            None => tokio::process::Command::new(base.get_program()),
        };
        command.args(base.get_args());
        for (key, value) in base.get_envs() {
            if let Some(value) = value {
                command.env(key, value);
            }
        }
        for (key, value) in limits {
            command.env(format!("CCLAUNCH_API_{key}"), value);
        }
        let mut child = command
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn cclaunch serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Sidecar { child, socket, log }
    }

    /// A client once the sidecar answers Health.
    async fn client(&self) -> LauncherClient<Channel> {
        let address = Address::Unix(self.socket.clone());
        for _ in 0..200 {
            if let Ok(mut client) = client::connect(&address, None, Duration::from_secs(1)).await {
                if client.health(pb::HealthRequest {}).await.is_ok() {
                    return client;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("sidecar never answered on {}", self.socket.display());
    }

    fn logged(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// User plus system CPU time so far.
    fn cpu(&self) -> Duration {
        let pid = self.child.id().expect("running");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        // utime and stime: fields 14 and 15, in clock ticks (100 a second).
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }
}

/// How long until the server closes `stream` (EOF or reset), up to `within`;
/// `None` if it is still open then. Whatever the server sends is read.
async fn closed_after(stream: &mut tokio::net::UnixStream, within: Duration) -> Option<Duration> {
    let began = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return began.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// A raw HTTP/2 connection (the `h2` crate) to the socket: the sender, and
/// the connection's task, which ends when the server closes it.
async fn h2_connect(
    socket: &Path,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<()>,
    std::os::unix::net::UnixStream,
) {
    let std_stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    // A second descriptor of the same socket: the test can read from it
    // after the client stops (the socket stays open while it exists).
    let spare = std_stream.try_clone().unwrap();
    std_stream.set_nonblocking(true).unwrap();
    let io = tokio::net::UnixStream::from_std(std_stream).unwrap();
    let (send, connection) = h2::client::handshake(io).await.unwrap();
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (send, task, spare)
}

/// Sends a gRPC health call with an empty request; the response to come.
async fn send_health(
    send: &mut h2::client::SendRequest<Bytes>,
    method: &str,
) -> h2::client::ResponseFuture {
    let request = http::Request::post(format!("http://sidecar/grpc.health.v1.Health/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = send
        .clone()
        .ready()
        .await
        .unwrap()
        .send_request(request, false)
        .unwrap();
    // One empty protobuf message: no compression, length 0.
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    response
}

/// A health call's first message read; the stream (for a Watch, still open).
async fn health_call(send: &mut h2::client::SendRequest<Bytes>, method: &str) -> h2::RecvStream {
    let response = send_health(send, method).await.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.into_body();
    let first = stream.data().await.expect("a message").unwrap();
    let _ = stream.flow_control().release_capacity(first.len());
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_surplus_connections_are_closed_while_clients_get_answers() {
    let env = Env::new("conncap", &[]).await;
    let operations = format!("127.0.0.1:{}", common::free_port());
    let sidecar = Sidecar::spawn(
        &env,
        &["--operations", &operations],
        &[
            ("HEADERTIMEOUT", "4s"),
            ("IDLETIMEOUT", "3s"),
            ("MAXCONNECTIONS", "4"),
        ],
        None,
    );
    // A well-behaved client: one connection, used below while at the cap.
    let mut client = sidecar.client().await;

    // Three silent ones fill the cap (4); three more are closed at once.
    // Counted as connections the sidecar accepted on its socket, so its
    // engine connections coming and going do not blur the count, and only
    // once the client's is the only one left (connections from the
    // client's readiness probes may still be closing).
    let pid = sidecar.child.id().unwrap();
    let accepted = || common::sidecar::accepted_on(pid, &sidecar.socket);
    assert!(
        common::eventually(Duration::from_secs(10), || accepted() == 1).await,
        "the sidecar holds {} connections besides the client's",
        accepted().saturating_sub(1)
    );
    let connected = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(
            tokio::net::UnixStream::connect(&sidecar.socket)
                .await
                .unwrap(),
        );
    }
    // The silent ones are accepted before the surplus is tried.
    assert!(
        common::eventually(Duration::from_secs(10), || accepted() == 4).await,
        "the sidecar accepted {} of the three silent connections",
        accepted().saturating_sub(1)
    );
    for n in 0..3 {
        let mut surplus = tokio::net::UnixStream::connect(&sidecar.socket)
            .await
            .unwrap();
        let closed = closed_after(&mut surplus, Duration::from_millis(1500)).await;
        assert!(
            closed.is_some(),
            "surplus connection {n} was not closed at once"
        );
    }
    assert_eq!(
        sidecar.logged("too many connections"),
        1,
        "said once per burst"
    );
    client
        .health(pb::HealthRequest {})
        .await
        .expect("the well-behaved client is answered at the cap");

    // Silent connections are closed within the header timeout (4 s).
    for stream in &mut silent {
        let closed = closed_after(stream, Duration::from_secs(10))
            .await
            .expect("a silent connection is closed");
        let after = connected.elapsed();
        assert!(
            after >= Duration::from_millis(3500) && after < Duration::from_secs(8),
            "closed {after:?} after connecting ({closed:?} of waiting)"
        );
    }
    // Slots are free again: a new client is answered.
    let mut again = sidecar.client().await;
    again.list(pb::ListRequest {}).await.expect("answered");

    // The operations port: the same header timeout, and it still answers.
    let mut quiet = tokio::net::TcpStream::connect(&operations).await.unwrap();
    let began = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), quiet.read(&mut buf))
        .await
        .expect("a silent operations connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        began.elapsed() >= Duration::from_millis(3500),
        "{:?}",
        began.elapsed()
    );
    let (code, body) = common::http(&operations, "GET", "/healthz", "").await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_busy_ones_stay_calls_are_capped_and_dead_peers_dropped() {
    let env = Env::new("connidle", &[]).await;
    let sidecar = Sidecar::spawn(
        &env,
        &[],
        &[
            ("IDLETIMEOUT", "2s"),
            ("KEEPALIVEINTERVAL", "1s"),
            ("KEEPALIVETIMEOUT", "1s"),
            ("MAXSTREAMS", "2"),
        ],
        None,
    );
    sidecar.client().await;

    // A call, then nothing: closed about 2 s after the call ended.
    let (mut send, closed, _spare) = h2_connect(&sidecar.socket).await;
    let mut check = health_call(&mut send, "Check").await;
    while check.data().await.is_some() {}
    let _ = check.trailers().await;
    let ended = Instant::now();
    tokio::time::timeout(Duration::from_secs(8), closed)
        .await
        .expect("an idle connection is closed")
        .unwrap();
    let idle = ended.elapsed();
    assert!(
        idle >= Duration::from_millis(1500) && idle < Duration::from_secs(6),
        "closed {idle:?} after its call"
    );

    // A Watch stays open (its connection too) well past the idle timeout;
    // cancelled, the connection is idle and closed.
    let (mut send, mut closed, _spare) = h2_connect(&sidecar.socket).await;
    let watch = health_call(&mut send, "Watch").await;
    let kept = tokio::time::timeout(Duration::from_secs(5), &mut closed).await;
    assert!(kept.is_err(), "a connection with a call open was closed");
    drop(watch);
    drop(send);
    tokio::time::timeout(Duration::from_secs(8), closed)
        .await
        .expect("closed once its call ended")
        .unwrap();

    // At most 2 calls at once on a connection (maxStreams): the server says
    // so in its HTTP/2 settings, and the client waits for a slot.
    let (mut send, _task, _spare) = h2_connect(&sidecar.socket).await;
    let first = health_call(&mut send, "Watch").await;
    let _second = health_call(&mut send, "Watch").await;
    let mut third = send_health(&mut send, "Check").await;
    let early = tokio::time::timeout(Duration::from_secs(1), &mut third).await;
    assert!(
        early.is_err(),
        "a third call was answered while two were open"
    );
    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("answered once a call ends")
        .unwrap();
    assert_eq!(third.status(), 200);

    // A peer that stops answering (its Watch open, no FIN: the spare
    // descriptor keeps the socket) is dropped by keepalive: pings unanswered
    // for 1 s after a 1 s quiet spell.
    let (mut send, task, spare) = h2_connect(&sidecar.socket).await;
    let _watch = health_call(&mut send, "Watch").await;
    task.abort();
    let dropped = tokio::task::spawn_blocking(move || {
        let began = Instant::now();
        let mut spare = spare;
        // Non-blocking was set on the shared file description for tokio.
        spare.set_nonblocking(false).unwrap();
        spare
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match spare.read(&mut buf) {
                Ok(0) => return Some(began.elapsed()),
                Ok(_) => {} // pings nobody answers
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return None,
                Err(_) => return Some(began.elapsed()),
            }
        }
    })
    .await
    .unwrap();
    let dropped = dropped.expect("a dead peer's connection is dropped");
    eprintln!("a dead peer was dropped {dropped:?} after it stopped answering");
    assert!(
        dropped < Duration::from_secs(8),
        "dropped after {dropped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_file_descriptor_limit_the_server_waits_instead_of_spinning() {
    let env = Env::new("connfd", &[]).await;
    let sidecar = Sidecar::spawn(
        &env,
        &[],
        &[("HEADERTIMEOUT", "120s"), ("MAXCONNECTIONS", "1000")],
        Some(64),
    );
    sidecar.client().await;

    // More connections than descriptors: the server takes what it can, the
    // rest wait in the kernel's queue, and accept fails with EMFILE.
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(
            tokio::net::UnixStream::connect(&sidecar.socket)
                .await
                .unwrap(),
        );
    }
    let pid = sidecar.child.id().unwrap();
    let open = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert!(
        common::eventually(Duration::from_secs(10), || open() >= 64).await,
        "the server ran out of descriptors: {} open",
        open()
    );
    let (cpu, wall) = (sidecar.cpu(), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (used, took) = (sidecar.cpu() - cpu, wall.elapsed());
    eprintln!("at the descriptor limit: {used:?} of CPU in {took:?}");
    assert!(
        used < Duration::from_millis(300),
        "the server used {used:?} of CPU in {took:?} at the descriptor limit"
    );
    // Once per burst of failures (a descriptor freed meanwhile ends one),
    // not once per try.
    let said = sidecar.logged("cannot accept connections");
    assert!(
        (1..=3).contains(&said),
        "said {said} times: {:?}",
        sidecar.log.lock().unwrap()
    );

    // Once the connections close, it answers again.
    drop(held);
    let began = Instant::now();
    let mut client = tokio::time::timeout(Duration::from_secs(20), sidecar.client())
        .await
        .expect("answers again once descriptors are free");
    client.list(pb::ListRequest {}).await.expect("answered");
    eprintln!(
        "answering again {:?} after the connections closed",
        began.elapsed()
    );
    assert!(
        common::eventually(Duration::from_secs(5), || sidecar
            .logged("accepting connections again")
            >= 1)
        .await
    );
}
