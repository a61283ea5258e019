//! The trust boundary, on the real engine: chaincode (hostile code on the
//! host's network) cannot drive the sidecar, and what callers hand the
//! launcher cannot reach past it.
//!
//! - plain TCP needs `--insecure-plain-tcp` (a raw HTTP/2 `List` from inside
//!   a chaincode container shows why); from a chaincode container, the
//!   documented deployment (socket, mutual TLS, operations port) answers no
//!   API call, and the operations port only its two read-only GETs, with
//!   nothing secret, asking the engine a bounded number of times however
//!   hard it is hammered;
//! - `Build{path}` opens regular files inside `cclaunch.api.packageDirs`
//!   only, never waits on a FIFO, and says nothing about paths outside;
//! - `extra_env` cannot override the launcher's env or steer the loader,
//!   and a peer address a shell would act on is refused;
//! - a container is the chaincode's only with all of cclaunch's labels, and
//!   package ids Fabric could not have made are refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cclaunch::client::{self};
use cclaunch::proto::v1::launcher_client::LauncherClient;
use cclaunch::proto::v1::{self as pb, build_event::Event, build_request::Source};
use cclaunch::runtime::{Engine, Runner};
use common::grpc::launcher as connect;
use common::{docker, request, Env, SHENV};
use futures_util::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

const SHELL_RUNTIME: &[(&str, &str)] = &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)];

/// The hash part of a package id.
fn hash_of(package_id: &str) -> &str {
    package_id.rsplit(':').next().unwrap()
}

/// A raw gRPC `List` call over HTTP/2 without TLS, as busybox `nc` can
/// send it: the preface, an empty SETTINGS frame, the request headers
/// (HPACK literals, no Huffman) and the empty request message.
fn h2_list_request() -> Vec<u8> {
    fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
    }
    let mut headers = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/cclaunch.v1.Launcher/List"),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        // Literal header field without indexing, new name (RFC 7541 6.2.2).
        headers.push(0);
        headers.push(name.len() as u8);
        headers.extend_from_slice(name.as_bytes());
        headers.push(value.len() as u8);
        headers.extend_from_slice(value.as_bytes());
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frame(&mut out, 0x4, 0, 0, &[]); // SETTINGS
    frame(&mut out, 0x1, 0x4, 1, &headers); // HEADERS, END_HEADERS
    frame(&mut out, 0x0, 0x1, 1, &[0, 0, 0, 0, 0]); // DATA, END_STREAM
    out
}

/// What the probe chaincode runs, driven by its env: a raw `List` to each
/// port given (`PLAIN_PORT`, `TLS_PORT`, `OPS_PORT`), and on `OPS_PORT`
/// HTTP requests of every kind; each outcome on one line, then
/// `probes done`. The List answer would carry the chaincode's own id.
const PROBE: &str = r#"ID="$CORE_CHAINCODE_ID_NAME"
h2() {
  : > /tmp/$1.out
  # stdin stays open (an HTTP/2 server may drop a half-closed client's call)
  ( cat list.bin; sleep 30 ) | nc 127.0.0.1 $2 > /tmp/$1.out 2>/dev/null &
  nc=$!
  i=0
  while [ $i -lt 50 ] && ! grep -q "$ID" /tmp/$1.out; do sleep 0.1; i=$((i+1)); done
  kill $nc 2>/dev/null
  if grep -q "$ID" /tmp/$1.out; then echo "$1: API answered"; else echo "$1: no answer"; fi
}
http() {
  echo "$1 $2: $(wget -q -O - $3 "http://127.0.0.1:$OPS_PORT$2" 2>&1 | head -c 8000 | tr '\n' ' ')"
}
[ -n "$PLAIN_PORT" ] && h2 plain "$PLAIN_PORT"
[ -n "$TLS_PORT" ] && h2 tls "$TLS_PORT"
if [ -n "$OPS_PORT" ]; then
  h2 ops "$OPS_PORT"
  http GET /healthz
  http GET /metrics
  http POST /healthz "--post-data x"
  http POST /metrics "--post-data x"
  http GET /debug/pprof
fi
echo "probes done"
exec sleep 600
"#;

fn probe_package(env: &Env) -> cclaunch::package::Package {
    let code = env.dir.path().join("probe-src");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("start.sh"), PROBE).unwrap();
    std::fs::write(code.join("list.bin"), h2_list_request()).unwrap();
    env.package("node", "probe", "", &code)
}

/// The chaincode's output lines, from its start until `marker`.
async fn output_until(
    client: &mut LauncherClient<Channel>,
    package_id: &str,
    marker: &str,
) -> Vec<String> {
    let mut logs = client
        .logs(pb::LogsRequest {
            package_id: package_id.into(),
            follow: true,
            ..Default::default()
        })
        .await
        .expect("logs")
        .into_inner();
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        match tokio::time::timeout_at(deadline, logs.next()).await {
            Ok(Some(Ok(line))) => {
                let done = line.line == marker;
                lines.push(line.line);
                if done {
                    return lines;
                }
            }
            other => panic!("no {marker:?} in the output ({other:?}): {lines:?}"),
        }
    }
}

/// A relay to the engine's socket that counts the HTTP requests sent to
/// the engine, and can play a dead engine (connections dropped at once).
struct EngineProxy {
    path: PathBuf,
    requests: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
    /// Connections being relayed (cut when the engine goes down).
    relays: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EngineProxy {
    fn start(dir: &Path) -> EngineProxy {
        let engine = common::endpoint();
        let engine = PathBuf::from(engine.strip_prefix("unix://").expect("a unix engine"));
        let path = dir.join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let relays: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let task = tokio::spawn({
            let (requests, down, relays) = (requests.clone(), down.clone(), relays.clone());
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    if down.load(Ordering::SeqCst) {
                        continue; // dropped: the caller sees the engine go away
                    }
                    let (requests, engine) = (requests.clone(), engine.clone());
                    let relayed = tokio::spawn(async move {
                        let Ok(outbound) = tokio::net::UnixStream::connect(&engine).await else {
                            return;
                        };
                        relay(inbound, outbound, &requests).await;
                    });
                    let mut relays = relays.lock().unwrap();
                    relays.retain(|r| !r.is_finished());
                    relays.push(relayed);
                }
            }
        });
        EngineProxy {
            path,
            requests,
            down,
            relays,
            task,
        }
    }

    /// Down: every connection is cut, new ones dropped at once.
    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            for relay in self.relays.lock().unwrap().drain(..) {
                relay.abort();
            }
        }
    }

    fn endpoint(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways, counting request lines (`... HTTP/1.1\r\n`) sent to
/// the engine.
async fn relay(
    inbound: tokio::net::UnixStream,
    outbound: tokio::net::UnixStream,
    requests: &AtomicU64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const MARK: &[u8] = b" HTTP/1.1\r\n";
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_engine, mut to_engine) = outbound.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 << 10];
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            carry.extend_from_slice(&buf[..n]);
            let found = carry.windows(MARK.len()).filter(|w| *w == MARK).count();
            requests.fetch_add(found as u64, Ordering::SeqCst);
            let keep = carry.len().min(MARK.len() - 1);
            carry.drain(..carry.len() - keep);
            if to_engine.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_engine.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut from_engine, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Waits up to 20 s for a child to exit; kills it (and fails) if it does not.
async fn exits(mut child: tokio::process::Child, what: &str) -> (Option<i32>, String) {
    use tokio::io::AsyncReadExt;
    let mut stderr = child.stderr.take().expect("piped stderr");
    match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
        Ok(status) => {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            (status.unwrap().code(), text)
        }
        Err(_) => {
            let _ = child.kill().await;
            panic!("{what}: still running after 20 s");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaincode_cannot_drive_the_api_and_sees_only_a_bounded_read_only_operations_port() {
    let env = Env::new("trustnet", SHELL_RUNTIME).await;
    let package = probe_package(&env);
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");

    // Plain TCP, loopback or not, is refused unless asked for by name.
    for host in ["127.0.0.1", "0.0.0.0"] {
        let addr = format!("{host}:{}", common::free_port());
        let child = common::serve_command(&env, &["--tcp", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (code, stderr) = exits(child, &format!("plain TCP on {addr}")).await;
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("--insecure-plain-tcp"), "{stderr}");
        assert!(stderr.contains("chaincode"), "{stderr}");
    }

    // Why: with --insecure-plain-tcp on loopback, a chaincode container
    // (host network, Fabric's default) drives the API with a raw request.
    let socket = env.dir.path().join("run/plain.sock");
    let plain = format!("127.0.0.1:{}", common::free_port());
    let mut sidecar = common::serve_command(
        &env,
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--tcp",
            &plain,
            "--insecure-plain-tcp",
        ],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let mut client = connect(&socket).await;
    client
        .start(pb::StartRequest {
            package_id: package.id.clone(),
            peer_address: "127.0.0.1:7052".into(),
            extra_env: vec![format!("PLAIN_PORT={}", plain.rsplit(':').next().unwrap())],
            ..Default::default()
        })
        .await
        .expect("start");
    let lines = output_until(&mut client, &package.id, "probes done").await;
    assert!(lines.contains(&"plain: API answered".into()), "{lines:?}");
    client
        .stop(pb::ChaincodeRef {
            package_id: package.id.clone(),
        })
        .await
        .unwrap();
    assert!(common::terminate(&mut sidecar, Duration::from_secs(15))
        .await
        .success());

    // As documented: the socket, mutual TLS, the operations port; the
    // engine reached through a relay that counts what it is asked.
    let proxy = EngineProxy::start(env.dir.path());
    let pki = common::Pki::new(env.dir.path());
    let socket = env.dir.path().join("run/cclaunch.sock");
    let tls = format!("127.0.0.1:{}", common::free_port());
    let ops = format!("127.0.0.1:{}", common::free_port());
    let mut serve = vec![
        "--socket".to_string(),
        socket.display().to_string(),
        "--tcp".into(),
        tls.clone(),
        "--operations".into(),
        ops.clone(),
    ];
    serve.extend(pki.serve_args());
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    let mut sidecar = common::serve_command(&env, &serve)
        .env("CORE_VM_ENDPOINT", proxy.endpoint())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut client = connect(&socket).await;
    let probe = format!("probeb:{}", hash_of(&package.id));
    let port = |addr: &str| addr.rsplit(':').next().unwrap().to_string();
    client
        .start(pb::StartRequest {
            package_id: probe.clone(),
            peer_address: "127.0.0.1:7052".into(),
            extra_env: vec![
                format!("TLS_PORT={}", port(&tls)),
                format!("OPS_PORT={}", port(&ops)),
            ],
            image_of: package.id.clone(),
            ..Default::default()
        })
        .await
        .expect("start");
    let lines = output_until(&mut client, &probe, "probes done").await;
    let said = |prefix: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {lines:?}"))
            .clone()
    };
    assert_eq!(said("tls:"), "tls: no answer");
    assert_eq!(said("ops:"), "ops: no answer");
    assert_eq!(said("GET /healthz:"), r#"GET /healthz: {"status":"OK"}"#);
    assert!(
        said("GET /metrics:").contains("cclaunch_running_chaincodes 1"),
        "{lines:?}"
    );
    for refused in ["POST /healthz:", "POST /metrics:"] {
        assert!(said(refused).contains("405"), "{lines:?}");
    }
    assert!(said("GET /debug/pprof:").contains("404"), "{lines:?}");

    // Read-only: every other method and path is refused.
    for path in ["/healthz", "/metrics"] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let (status, _) = common::http(&ops, method, path, "{}").await;
            assert_eq!(status, 405, "{method} {path}");
        }
    }
    for path in ["/", "/logspec", "/version", "/metrics/x"] {
        assert_eq!(common::http(&ops, "GET", path, "").await.0, 404, "{path}");
    }

    // Bounded: hammered from the host's network for 3 s, the engine is
    // asked at most once a second per route (ping = 2 requests, list = 1).
    let before = proxy.requests();
    assert!(before > 0, "the relay counts what the sidecar asks");
    let began = Instant::now();
    let mut bodies = Vec::new();
    while began.elapsed() < Duration::from_secs(3) {
        // Within the operations port's connection cap (128 by default).
        let calls: Vec<_> = (0..100)
            .map(|i| {
                let ops = ops.clone();
                let path = if i % 2 == 0 { "/healthz" } else { "/metrics" };
                tokio::spawn(async move { common::http(&ops, "GET", path, "").await })
            })
            .collect();
        for call in calls {
            let (status, body) = call.await.unwrap();
            assert_eq!(status, 200, "{body}");
            bodies.push(body);
        }
    }
    let took = began.elapsed().as_secs_f64();
    let asked = proxy.requests() - before;
    let bound = 3 * (took.ceil() as u64 + 2);
    eprintln!(
        "{} operations requests in {took:.2} s: {asked} engine requests (bound {bound})",
        bodies.len()
    );
    assert!(asked >= 3, "answers older than a second are fetched again");
    assert!(
        asked <= bound,
        "{asked} engine requests for {} operations requests in {took:.2} s",
        bodies.len()
    );

    // Nothing secret: no paths (keys, socket, engine), no key material.
    let secrets = [
        env.dir.path().display().to_string(),
        "PRIVATE KEY".into(),
        "unix://".into(),
    ];
    for body in &bodies {
        for secret in &secrets {
            assert!(!body.contains(secret.as_str()), "{secret:?} in {body}");
        }
    }
    // A dead engine: /healthz says so (within the answer's lifetime) without
    // saying where the engine is; then it recovers.
    proxy.set_down(true);
    let mut unhealthy = String::new();
    let mut seen = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && !seen {
        let (status, body) = common::http(&ops, "GET", "/healthz", "").await;
        seen = status == 503;
        unhealthy = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "/healthz never said the engine is down: {unhealthy}");
    assert!(
        unhealthy.contains("failed to ping to Docker daemon"),
        "{unhealthy}"
    );
    for secret in &secrets {
        assert!(
            !unhealthy.contains(secret.as_str()),
            "{secret:?} in {unhealthy}"
        );
    }
    proxy.set_down(false);
    let deadline = Instant::now() + Duration::from_secs(15);
    while common::http(&ops, "GET", "/healthz", "").await.0 != 200 {
        assert!(Instant::now() < deadline, "/healthz never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    client
        .stop(pb::ChaincodeRef {
            package_id: probe.clone(),
        })
        .await
        .unwrap();
    assert!(common::terminate(&mut sidecar, Duration::from_secs(15))
        .await
        .success());
}

async fn build(
    client: &mut LauncherClient<Channel>,
    source: Source,
) -> Result<pb::BuildDone, tonic::Status> {
    let request = pb::BuildRequest {
        source: Some(source),
    };
    let mut events = client
        .build(futures_util::stream::iter([request]))
        .await?
        .into_inner();
    while let Some(event) = events.next().await {
        if let Some(Event::Done(done)) = event?.event {
            return Ok(done);
        }
    }
    Err(tonic::Status::internal(
        "the build stream ended without Done",
    ))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_by_path_reads_only_regular_files_inside_the_package_dirs() {
    let env = Env::new("trustpath", SHELL_RUNTIME).await;
    let root = env.dir.path();
    let (allowed, private) = (root.join("packages"), root.join("private"));
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&private).unwrap();
    let package = env.shell_package("trustpath", "echo hi\n");
    std::fs::copy(&package.file, allowed.join("cc.tar.gz")).unwrap();
    std::fs::copy(
        common::repo().join("testdata/bad/code-symlink.tar.gz"),
        allowed.join("bad.tar.gz"),
    )
    .unwrap();
    // A gzip'd private key: once, its first bytes came back in an error.
    std::fs::write(
        private.join("key.pem.gz"),
        gzip(b"-----BEGIN PRIVATE KEY-----\nSECRET-KEY-MATERIAL\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink(private.join("key.pem.gz"), allowed.join("link.tar.gz")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(allowed.join("fifo.tar.gz"))
        .status()
        .unwrap();
    assert!(made.success());

    let socket = root.join("run/cclaunch.sock");
    let _sidecar = common::serve_command(&env, &["--socket", socket.to_str().unwrap()])
        .env("CCLAUNCH_API_PACKAGEDIRS", &allowed)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut client = connect(&socket).await;
    let path = |p: PathBuf| Source::Path(p.display().to_string());

    let done = build(&mut client, path(allowed.join("cc.tar.gz")))
        .await
        .expect("a package inside the dirs builds");
    assert_eq!(done.package_id, package.id);

    // Outside, present or not, through `..` or a symlink: one refusal that
    // shows nothing of the file.
    let outside = [
        private.join("key.pem.gz"),
        private.join("missing.gz"),
        allowed.join("../private/key.pem.gz"),
        allowed.join("link.tar.gz"),
        PathBuf::from("/etc/shadow"),
        PathBuf::from("/proc/self/environ"),
    ];
    let mut shapes = Vec::new();
    for file in outside {
        let status = build(&mut client, path(file.clone())).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{file:?}: {status:?}"
        );
        let message = status.message();
        assert!(!message.contains("SECRET"), "{message}");
        assert!(message.contains("cclaunch.api.packageDirs"), "{message}");
        shapes.push(message.replace(&file.display().to_string(), "PATH"));
    }
    shapes.dedup();
    assert_eq!(shapes.len(), 1, "refusals differ: {shapes:?}");

    // A FIFO inside: refused at once, not waited on.
    let fifo = tokio::time::timeout(
        Duration::from_secs(10),
        build(&mut client, path(allowed.join("fifo.tar.gz"))),
    )
    .await
    .expect("a FIFO is refused without blocking")
    .unwrap_err();
    assert_eq!(fifo.code(), Code::InvalidArgument, "{fifo:?}");
    assert!(fifo.message().contains("FIFO"), "{}", fifo.message());

    // An invalid package inside: its error names the path given.
    let bad = build(&mut client, path(allowed.join("bad.tar.gz")))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("symlink"), "{}", bad.message());
    assert!(
        bad.message()
            .contains(&allowed.join("bad.tar.gz").display().to_string()),
        "{}",
        bad.message()
    );
    assert!(!bad.message().contains("/proc/self"), "{}", bad.message());

    // A package id Fabric could not have made, through the API.
    let odd = client
        .start(pb::StartRequest {
            package_id: "a\nb:1".into(),
            peer_address: "127.0.0.1:7052".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(odd.code(), Code::InvalidArgument);
    assert!(odd.message().contains(r#""a\nb:1""#), "{}", odd.message());

    // With no package dirs (the default), path builds are off.
    // (as another peer: one sidecar per peer holds its lock)
    let socket = root.join("run/nodirs.sock");
    let _sidecar = common::serve_command(&env, &["--socket", socket.to_str().unwrap()])
        .env("CORE_PEER_ID", format!("{}-nodirs", env.peer))
        .env("CCLAUNCH_API_PACKAGEDIRS", "")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut client = connect(&socket).await;
    let off = build(&mut client, path(allowed.join("cc.tar.gz")))
        .await
        .unwrap_err();
    assert_eq!(off.code(), Code::PermissionDenied, "{off:?}");
    assert!(
        off.message().contains("cclaunch.api.packageDirs"),
        "{}",
        off.message()
    );
}

/// No container carries this package id.
fn absent(package_id: &str) -> bool {
    let name = common::docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=org.cclaunch.package-id={package_id}"),
    ]);
    name.trim().is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_env_cannot_override_the_launcher_and_a_shell_never_sees_a_bad_peer_address() {
    let env = Env::new("trustenv", SHELL_RUNTIME).await;
    let package = env.shell_package("trustenv", "echo \"args: $*\"\nsleep 600\n");
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    for (entry, key) in [
        ("CORE_CHAINCODE_ID_NAME=evil_1:00", "CORE_CHAINCODE_ID_NAME"),
        ("CORE_PEER_TLS_ENABLED=false", "CORE_PEER_TLS_ENABLED"),
        (
            "CORE_PEER_TLS_ROOTCERT_FILE=/tmp/mine.crt",
            "CORE_PEER_TLS_ROOTCERT_FILE",
        ),
        (
            "CORE_TLS_CLIENT_KEY_PATH=/tmp/k",
            "CORE_TLS_CLIENT_KEY_PATH",
        ),
        ("CORE_PEER_LOCALMSPID=OtherMSP", "CORE_PEER_LOCALMSPID"),
        (
            "CORE_CHAINCODE_LOGGING_LEVEL=debug",
            "CORE_CHAINCODE_LOGGING_LEVEL",
        ),
        ("LD_PRELOAD=/tmp/evil.so", "LD_PRELOAD"),
        ("LD_AUDIT=/tmp/evil.so", "LD_AUDIT"),
        ("LD_LIBRARY_PATH=/tmp", "LD_LIBRARY_PATH"),
    ] {
        let mut start = request(&package.id);
        start.extra_env = vec!["FINE=1".into(), entry.into()];
        let error = env.launcher.start(start).await.map(|s| s.container);
        let error = cclaunch::error_chain(&error.expect_err(entry));
        assert!(
            error.contains(&format!("may not set \"{key}\"")),
            "{entry}: {error}"
        );
        assert!(absent(&package.id), "{entry}: nothing created");
    }

    for address in [
        "127.0.0.1:7052$(touch /tmp/pwned)",
        "$(id >&2):7052",
        "`id`:7052",
        "peer0:7052;id",
        "peer0:7052 --x",
        "peer0 7052:1",
        "peer0",
    ] {
        let mut start = request(&package.id);
        start.peer_address = address.into();
        let error = env.launcher.start(start).await.map(|s| s.container);
        let error = cclaunch::error_chain(&error.expect_err(address));
        assert!(error.contains("is not host:port"), "{address}: {error}");
        assert!(!error.contains('\n'), "{error}");
        assert!(absent(&package.id), "{address}: nothing created");
    }

    // Valid forms start, the address as given on the command line.
    for address in ["peer0.org1.example.com:7052", "[::1]:7052", "10.0.0.2:7052"] {
        let mut start = request(&package.id);
        start.peer_address = address.into();
        start.extra_env = vec!["NODE_OPTIONS=--max-old-space-size=512".into()];
        let started = env.launcher.start(start).await.expect(address);
        let info = env
            .engine
            .inspect_container(&started.container)
            .await
            .unwrap()
            .expect("container");
        assert!(
            info.args[2].contains(&format!("--peer.address {address}\n")),
            "{:?}",
            info.args
        );
        env.launcher.stop(&package.id).await.unwrap();
    }
}

/// A container made by hand under a chaincode's name, removed on drop.
struct Foreign(String);

impl Foreign {
    fn create(name: &str, labels: &[(&str, &str)]) -> Foreign {
        let mut args = vec!["create".to_string(), "--name".into(), name.into()];
        for (key, value) in labels {
            args.push("--label".into());
            args.push(format!("{key}={value}"));
        }
        args.extend([common::BUSYBOX.into(), "sleep".into(), "600".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let made = docker(&args);
        assert!(!made.trim().is_empty(), "docker create {name} failed");
        Foreign(name.to_string())
    }

    fn exists(&self) -> bool {
        !docker(&["ps", "-aq", "--filter", &format!("name=^/{}$", self.0)])
            .trim()
            .is_empty()
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_is_the_chaincodes_only_with_all_its_labels_and_odd_ids_are_refused() {
    let env = Env::new("trustown", SHELL_RUNTIME).await;
    let package = env.shell_package("trustown", "sleep 600\n");
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");
    let container = env.launcher.names(&package.id).unwrap().container;
    let hash = hash_of(&package.id);
    let other = format!("other_1:{hash}");

    // Every label cclaunch sets must say this peer and this chaincode.
    for (wrong, labels) in [
        (
            "peer",
            [
                ("org.cclaunch.managed", "true"),
                ("org.cclaunch.peer-id", "someone-else"),
                ("org.cclaunch.network-id", "test"),
                ("org.cclaunch.package-id", package.id.as_str()),
            ],
        ),
        (
            "network",
            [
                ("org.cclaunch.managed", "true"),
                ("org.cclaunch.peer-id", env.peer.as_str()),
                ("org.cclaunch.network-id", "othernet"),
                ("org.cclaunch.package-id", package.id.as_str()),
            ],
        ),
        (
            "package",
            [
                ("org.cclaunch.managed", "true"),
                ("org.cclaunch.peer-id", env.peer.as_str()),
                ("org.cclaunch.network-id", "test"),
                ("org.cclaunch.package-id", other.as_str()),
            ],
        ),
    ] {
        let foreign = Foreign::create(&container, &labels);
        let errors = [
            env.launcher.stop(&package.id).await.unwrap_err(),
            env.launcher.wait(&package.id).await.unwrap_err(),
            env.launcher
                .logs(&package.id, &cclaunch::runtime::LogQuery::all(false))
                .await
                .map(|_| ())
                .unwrap_err(),
            env.launcher
                .start(request(&package.id))
                .await
                .map(|s| s.container)
                .unwrap_err(),
        ];
        for error in errors {
            assert!(
                error.to_string().contains("was not created by cclaunch"),
                "{wrong}: {error}"
            );
        }
        assert!(foreign.exists(), "{wrong}: the container is untouched");
    }

    // `odd+1` and `odd-1` share a container name: one cannot touch the
    // other's container.
    let (plus, minus) = (format!("odd+1:{hash}"), format!("odd-1:{hash}"));
    assert_eq!(
        env.launcher.names(&plus).unwrap().container,
        env.launcher.names(&minus).unwrap().container
    );
    let mut start = request(&minus);
    start.image_of = Some(package.id.clone());
    let started = env.launcher.start(start).await.expect("start odd-1");
    for error in [
        env.launcher.stop(&plus).await.unwrap_err(),
        env.launcher.wait(&plus).await.unwrap_err(),
        {
            let mut start = request(&plus);
            start.image_of = Some(package.id.clone());
            env.launcher
                .start(start)
                .await
                .map(|s| s.container)
                .unwrap_err()
        },
    ] {
        assert!(
            error.to_string().contains("was not created by cclaunch"),
            "{error}"
        );
    }
    let info = env
        .engine
        .inspect_container(&started.container)
        .await
        .unwrap()
        .expect("still there");
    assert!(info.running, "odd-1 still runs");
    env.launcher
        .stop(&minus)
        .await
        .expect("its own id stops it");

    // Ids Fabric could not have made never name a container.
    for id in [
        "a b:1",
        "a\nb:1",
        "a-b:1",
        "cc:1.0",
        &format!("cc:{}", hash.to_uppercase()),
    ] {
        let error = env
            .launcher
            .start(request(id))
            .await
            .map(|s| s.container)
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not <label>:<sha256"), "{id:?}: {error}");
        assert!(!error.contains('\n'), "{error}");
        let error = env.launcher.stop(id).await.unwrap_err().to_string();
        assert!(error.contains("is not <label>:<sha256"), "{id:?}: {error}");
    }
    // ... nor keep anything from gc: a mistyped id to keep removes nothing.
    let error = env
        .launcher
        .gc(&cclaunch::launcher::Selection::AllBut(vec![
            "trustown:abc".into()
        ]))
        .await
        .map(|c| c.images)
        .unwrap_err();
    assert!(
        error.to_string().contains("is not <label>:<sha256"),
        "{error}"
    );
    let image = env.launcher.names(&package.id).unwrap().image;
    assert!(
        env.engine.image_labels(&image).await.unwrap().is_some(),
        "image kept"
    );

    // The CLI says the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cclaunch"))
        .args(["stop", "a-b:1"])
        .env("CORE_VM_ENDPOINT", common::endpoint())
        .env("CORE_PEER_ID", &env.peer)
        .env("CORE_PEER_NETWORKID", "test")
        .env_remove(client::SERVER_ENV)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is not <label>:<sha256"), "{stderr}");
}
