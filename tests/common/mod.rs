//! Shared set-up for tests against the real Docker engine.
//!
//! Every test gets its own peer id, so its container and image names are its
//! own (tests run in parallel safely), and a guard that removes whatever
//! carries that peer id when the test ends, pass or fail.
#![allow(dead_code)]

pub mod builder;
pub mod engine_proxy;
pub mod grpc;
pub mod k8s;
pub mod mutate;
pub mod node;
pub mod sidecar;
pub mod swarm;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cclaunch::config::Config;
use cclaunch::launcher::{Launcher, StartRequest, TlsMaterial};
use cclaunch::package::{self, Limits, Metadata, Package};
use cclaunch::runtime::docker::Docker;
use cclaunch::runtime::{self, Engine};

pub const BUSYBOX: &str = "cclaunch-test/busybox:latest";
pub const SHENV: &str = "cclaunch-test/shenv:latest";
pub const CCENV: &str = "cclaunch-test/ccenv:latest";
pub const NODEENV: &str = "cclaunch-test/nodeenv:latest";
pub const JAVAENV: &str = "cclaunch-test/javaenv:latest";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn endpoint() -> String {
    std::env::var("CORE_VM_ENDPOINT").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// A peer id no other test uses.
pub fn unique_peer(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        test
    )
}

/// The build container trusts the host's CA bundle, so `npm install` in it
/// reaches the npm registry from this machine (whose TLS chain only the host
/// bundle has): the build-container settings a real network needs.
const BUILD_CA: &str = "cclaunch:\n  build:\n    mounts: [\"/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/host-ca.crt\"]\n    env: [\"npm_config_cafile=/etc/ssl/certs/host-ca.crt\", \"NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca.crt\"]\n";

/// The test config: local stand-in images, this test's peer id, then
/// `overrides` as environment variables (`CORE_CHAINCODE_NODE_RUNTIME`, ...).
pub fn config(peer: &str, overrides: &[(&str, &str)]) -> Config {
    let yaml = format!(
        "{BUILD_CA}  stateDir: {state}\nvm:\n  endpoint: {endpoint}\nchaincode:\n  builder: {CCENV}\n  golang:\n    runtime: {BUSYBOX}\n  node:\n    runtime: {NODEENV}\n  java:\n    runtime: {JAVAENV}\npeer:\n  id: {peer}\n  networkId: test\n  localMspId: Org1MSP\n",
        endpoint = endpoint(),
        state = state_dir(peer).display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("core.yaml");
    std::fs::write(&file, yaml).expect("write config");
    let env = |key: &str| {
        overrides
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    };
    Config::load_with_env(Some(&file), env).expect("test config is valid")
}

/// testdata/chaincode/golang-shim copied under `dir` with its vendor/ made
/// by vendor.sh (from Debian's Go packages; not committed), as its author
/// would package it: Fabric's build then takes the `-mod=vendor` road.
pub fn golang_shim(dir: &Path) -> PathBuf {
    let sample = repo().join("testdata/chaincode/golang-shim");
    let code = dir.join("golang-shim");
    cclaunch::builder::source::copy_tree(&sample, &code).expect("copy golang-shim");
    let out = Command::new("bash")
        .arg(sample.join("vendor.sh"))
        .arg(&code)
        .output()
        .expect("run vendor.sh");
    assert!(
        out.status.success(),
        "vendor.sh failed (apt-get install golang-google-grpc-dev golang-google-protobuf-dev): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    code
}

/// A launcher on the real engine plus the guard that cleans up after it.
pub struct Env {
    pub launcher: Arc<Launcher>,
    pub engine: Arc<Docker>,
    pub peer: String,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub async fn new(test: &str, overrides: &[(&str, &str)]) -> Env {
        let peer = unique_peer(test);
        let config = config(&peer, overrides);
        let engine = Arc::new(
            Docker::connect(&config.vm.endpoint)
                .await
                .expect("engine is up (scripts/ensure-docker.sh)")
                .with_timeouts((&config.cclaunch.engine).into()),
        );
        for image in [BUSYBOX, SHENV] {
            assert!(
                engine.image_labels(image).await.expect("inspect").is_some(),
                "test image {image} missing: run testdata/images/make-images.sh"
            );
        }
        let launcher = Arc::new(Launcher::new(engine.clone() as Arc<dyn Engine>, config));
        Env {
            launcher,
            engine,
            peer,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Packages `code_dir` (files under src/) into this test's temp dir.
    pub fn package(&self, kind: &str, label: &str, path: &str, code_dir: &Path) -> Package {
        let file = self.dir.path().join(format!("{label}.tar.gz"));
        let metadata = Metadata {
            path: path.to_string(),
            kind: kind.to_string(),
            label: label.to_string(),
        };
        package::write(&metadata, code_dir, &file).expect("write package");
        Package::open(&file, Limits::default()).expect("package is valid")
    }

    /// A node-type package for the busybox `shenv` runtime whose start.sh is `script`.
    pub fn shell_package(&self, label: &str, script: &str) -> Package {
        let code = self.dir.path().join(format!("{label}-src"));
        std::fs::create_dir_all(&code).expect("mkdir");
        std::fs::write(code.join("start.sh"), script).expect("write start.sh");
        self.package("node", label, "", &code)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        cleanup(&self.peer);
    }
}

/// This peer's `cclaunch.stateDir` (mirror checkpoints), removed by `cleanup`.
pub fn state_dir(peer: &str) -> PathBuf {
    std::env::temp_dir().join("cclaunch-test-state").join(peer)
}

/// The variables a lab's wrapper script exported, as a getter, or `None`
/// (with a line on stderr naming the test, from its thread's name, and how
/// to run it) when any of them is absent.
pub fn lab_vars(vars: &[&str], lab: &str, how: &str) -> Option<impl Fn(&str) -> String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if vars.iter().any(|name| var(name).is_none()) {
        eprintln!(
            "{}: skipped, no {lab} (run it under {how})",
            std::thread::current().name().unwrap_or("lab test")
        );
        return None;
    }
    Some(move |name: &str| var(name).unwrap_or_default())
}

/// Runs `f` on a thread of its own that entered the network namespace
/// `netns` (a name under /run/netns, made by a lab's scripts): every socket
/// `f` makes lives there and keeps working when handed to other threads,
/// and every thread the new thread starts is in the namespace too. The
/// thread carries the caller's name (a lab's skip and panic lines name the
/// test); a panic in `f` is the caller's.
pub fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::os::fd::AsRawFd;
    let path = Path::new("/run/netns").join(netns);
    std::thread::Builder::new()
        .name(std::thread::current().name().unwrap_or("lab").into())
        .spawn(move || {
            let netns = std::fs::File::open(&path)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            // SAFETY: setns on a valid fd; it changes only this thread's
            // network namespace (the thread ends with `f`).
            let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns({}): {}",
                path.display(),
                std::io::Error::last_os_error()
            );
            f()
        })
        .expect("spawn a thread for a lab's namespace")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Where the sidecar of this test's peer keeps its output checkpoints
/// (`stateDir/mirror/NETWORK_ID/PEER_ID`; the tests' network id is `test`).
pub fn checkpoint_dir(peer: &str) -> PathBuf {
    state_dir(peer).join("mirror").join("test").join(peer)
}

/// Removes every container and image labelled with this peer id.
pub fn cleanup(peer: &str) {
    let _ = std::fs::remove_dir_all(state_dir(peer));
    let filter = format!("label={}={peer}", runtime::LABEL_PEER_ID);
    let ids = docker(&["ps", "-aq", "--filter", &filter]);
    for id in ids.split_whitespace() {
        docker(&["rm", "-f", id]);
    }
    // Images are named for the peer id; labelled as this release labels
    // them, or as earlier ones did (tests/reuse.rs makes one).
    for label in [runtime::LABEL_IMAGE, "org.cclaunch.managed=true"] {
        let filter = format!("label={label}");
        let images = docker(&["images", "--format", "{{.Repository}}", "--filter", &filter]);
        for image in images
            .split_whitespace()
            .filter(|i| i.contains(&peer.to_lowercase()))
        {
            docker(&["rmi", "-f", image]);
        }
    }
}

pub fn docker(args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A CA and a client certificate signed by it, as a peer would issue them.
pub fn tls_material() -> TlsMaterial {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(vec!["test-ca".into()]).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["chaincode".into()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("cert");
    TlsMaterial {
        client_cert: cert.pem().into_bytes(),
        client_key: key.serialize_pem().into_bytes(),
        root_cert: ca.pem().into_bytes(),
    }
}

/// Collects what the chaincode loggers receive: (target, message).
#[derive(Clone, Default)]
pub struct Captured {
    pub lines: Arc<Mutex<Vec<(String, String)>>>,
    pub bytes: Arc<Mutex<u64>>,
    /// When set, only byte counts are kept (for huge outputs).
    pub count_only: bool,
}

impl Captured {
    pub fn for_target(&self, target: &str) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == target)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

struct MessageVisitor(String);

impl tracing::field::Visit for MessageVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let target = event.metadata().target();
        if !target.starts_with("peer.chaincode.") {
            return;
        }
        let mut visitor = MessageVisitor(String::new());
        event.record(&mut visitor);
        *self.bytes.lock().unwrap() += visitor.0.len() as u64;
        if !self.count_only {
            self.lines
                .lock()
                .unwrap()
                .push((target.to_string(), visitor.0));
        }
    }
}

/// The process-wide capture of chaincode output, installed on first use.
/// Targets are per container, and containers per test, so tests share it.
pub fn captured() -> Captured {
    captured_with(false)
}

/// As [`captured`], keeping only byte counts (for huge outputs).
pub fn captured_counting() -> Captured {
    captured_with(true)
}

fn captured_with(count_only: bool) -> Captured {
    use tracing_subscriber::prelude::*;
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured {
                count_only,
                ..Default::default()
            };
            let _ = tracing_subscriber::registry()
                .with(captured.clone())
                .try_init();
            captured
        })
        .clone()
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn eventually<F: FnMut() -> bool>(timeout: Duration, mut check: F) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check()
}

/// Reads a file from a container (through the engine's archive API).
pub async fn read_container_file(engine: &Docker, container: &str, path: &str) -> (Vec<u8>, u32) {
    use futures_util::TryStreamExt;
    use std::io::Read;
    let chunks: Vec<bytes::Bytes> = engine
        .download(container, path)
        .await
        .expect("download")
        .try_collect()
        .await
        .expect("download");
    let tar_bytes = chunks.concat();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut entry = archive
        .entries()
        .expect("tar")
        .next()
        .expect("one entry")
        .expect("entry");
    let mode = entry.header().mode().expect("mode");
    let mut data = Vec::new();
    entry.read_to_end(&mut data).expect("read");
    (data, mode)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 exchange (the control endpoint speaks plain HTTP).
pub async fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect control");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

/// A plain start request (TLS off) for a package id.
pub fn request(package_id: &str) -> StartRequest {
    StartRequest {
        package_id: package_id.to_string(),
        platform: None,
        peer_address: "127.0.0.1:7052".into(),
        tls: None,
        msp_id: None,
        extra_env: Vec::new(),
        image_of: None,
    }
}

/// Sends SIGTERM, as a peer or an orchestrator stops a process, and waits
/// (up to `within`) for the exit.
pub async fn terminate(
    child: &mut tokio::process::Child,
    within: Duration,
) -> std::process::ExitStatus {
    let pid = child.id().expect("process still running").to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    tokio::time::timeout(within, child.wait())
        .await
        .expect("exits on SIGTERM in time")
        .expect("wait")
}

/// `cclaunch serve` with `args`, configured for this test's peer id, its
/// state directory, the `shenv` node runtime, 1 MiB package caps (as
/// uploaded and unpacked) and `Build{path}` allowed from the test's temp dir.
pub fn serve_command(env: &Env, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cclaunch"));
    command
        .arg("serve")
        .args(args)
        .env("CORE_VM_ENDPOINT", endpoint())
        .env("CORE_PEER_ID", &env.peer)
        .env("CCLAUNCH_STATEDIR", state_dir(&env.peer))
        .env("CORE_PEER_NETWORKID", "test")
        .env("CORE_CHAINCODE_NODE_RUNTIME", SHENV)
        .env("CCLAUNCH_PACKAGE_MAXUNPACKEDBYTES", "1048576")
        .env("CCLAUNCH_PACKAGE_MAXPACKAGEBYTES", "1048576")
        .env("CCLAUNCH_API_PACKAGEDIRS", env.dir.path())
        .kill_on_drop(true);
    command
}

/// [`serve_command`], spawned. Killed when dropped.
pub fn spawn_serve(env: &Env, args: &[&str]) -> tokio::process::Child {
    serve_command(env, args)
        .spawn()
        .expect("spawn cclaunch serve")
}

/// A sidecar's PEM files: its CA (which signs its server certificate and its
/// clients'), a client of that CA, and a stranger whose certificate comes
/// from another CA.
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        let ca = cclaunch::devpeer::ca::DevCa::new().unwrap();
        let other = cclaunch::devpeer::ca::DevCa::new().unwrap();
        let server = ca.server(&[]).unwrap();
        let client = ca.client("admin").unwrap();
        let stranger = other.client("stranger").unwrap();
        for (name, pem) in [
            ("ca.crt", ca.ca_pem().into_bytes()),
            ("server.crt", server.cert_pem.into_bytes()),
            ("server.key", server.key_pem.into_bytes()),
            ("client.crt", client.client_cert),
            ("client.key", client.client_key),
            ("other-ca.crt", other.ca_pem().into_bytes()),
            ("stranger.crt", stranger.client_cert),
            ("stranger.key", stranger.client_key),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap()
    }

    /// The three serve flags.
    pub fn serve_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path("server.crt"),
            "--tls-key".into(),
            self.path("server.key"),
            "--tls-client-ca".into(),
            self.path("ca.crt"),
        ]
    }

    /// The CLI's client flags for an https --server.
    pub fn client_args(&self) -> Vec<String> {
        vec![
            "--server-ca".into(),
            self.path("ca.crt"),
            "--server-cert".into(),
            self.path("client.crt"),
            "--server-key".into(),
            self.path("client.key"),
        ]
    }

    pub fn client_tls(&self, who: &str) -> cclaunch::client::ClientTls {
        cclaunch::client::ClientTls {
            ca: self.read("ca.crt"),
            cert: self.read(&format!("{who}.crt")),
            key: self.read(&format!("{who}.key")),
            domain: None,
        }
    }
}

/// `args` invoked on chaincode `id` through devpeer `peer` on mychannel:
/// what the chaincode answered (an error if it did not within 30 s).
pub async fn invoke(
    peer: &cclaunch::devpeer::DevPeer,
    id: &str,
    args: &[&str],
) -> cclaunch::devpeer::Response {
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    peer.invoke(id, "mychannel", args, false, Duration::from_secs(30))
        .await
        .expect("answered")
}

/// The round trip every registering sample answers: `put k1 v1`, then
/// `get k1` reads `v1` back.
pub async fn assert_put_get(peer: &cclaunch::devpeer::DevPeer, id: &str) {
    let put = invoke(peer, id, &["put", "k1", "v1"]).await;
    assert_eq!(put.status, 200, "{}", put.message);
    let get = invoke(peer, id, &["get", "k1"]).await;
    assert_eq!((get.status, get.payload.as_slice()), (200, &b"v1"[..]));
}

/// `cclaunch try FILE --tls` with a `put` and a `get` invoke, as `command`
/// (made where the chaincode reaches it) with `args` after: run within
/// 300 s; what it printed, after checking that it exited 0, that the
/// chaincode `id` registered with devpeer at `at` over mutual TLS, and that
/// the get answered the put's value.
pub async fn try_put_get(
    mut command: Command,
    file: &Path,
    args: &[&str],
    id: &str,
    at: &str,
) -> String {
    command
        .arg("try")
        .arg(file)
        .args(["--tls", "--timeout", "120s"])
        .args([
            "--invoke",
            r#"["put","k1","v1"]"#,
            "--invoke",
            r#"["get","k1"]"#,
        ])
        .args(args);
    let started = std::time::Instant::now();
    let out = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), out)
        .await
        .expect("try finishes within 300 s")
        .expect("run cclaunch try");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("try in {:.1?}", started.elapsed());
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("registered {id} with devpeer at {at}:")),
        "{stdout}"
    );
    assert!(stdout.contains(", mutual TLS"), "{stdout}");
    assert!(
        stdout.contains(r#"invoke ["get","k1"] -> status 200 message "" payload "v1""#),
        "{stdout}"
    );
    stdout
}
