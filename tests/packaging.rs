//! What ships: the portable binary (`make portable`) in an old-glibc root
//! filesystem (Debian bullseye, glibc 2.31, as Fabric's 2.5.0-2.5.10 peer
//! images), reaching a real sidecar through its Unix socket and over mutual
//! TLS by host name; and the sidecar image, built from the Dockerfile on
//! local bases, serving on a socket in a shared directory and launching a
//! chaincode through the mounted engine socket.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use cclaunch::devpeer::ca::DevCa;
use common::{Env, SHENV};

const BULLSEYE: &str = "cclaunch-test/bullseye:latest";
const BUSYBOX: &str = common::BUSYBOX;

/// `make portable`, once per test process (a no-op when it is fresh). Run
/// without the variables cargo sets for tests: build scripts that watch
/// them (ring's watches CARGO_MANIFEST_DIR) would otherwise rebuild
/// everything each time the binary is made from a shell and then a test.
fn portable_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let mut make = Command::new("make");
            make.args(["-s", "portable"]).current_dir(common::repo());
            for (key, _) in std::env::vars_os() {
                let key = key.to_string_lossy();
                if key.starts_with("CARGO_") || key == "OUT_DIR" {
                    make.env_remove(&*key);
                }
            }
            let made = make.status().expect("run make portable");
            assert!(made.success(), "make portable failed: {made}");
            common::repo().join("target/portable/cclaunch")
        })
        .clone()
}

fn image_present(image: &str) {
    assert!(
        !common::docker(&["images", "-q", image]).trim().is_empty(),
        "test image {image} missing: run testdata/images/make-images.sh"
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `docker run --rm ARGS`, bounded in time.
fn docker_run(args: &[&str]) -> Output {
    let mut command = Command::new("timeout");
    command.args(["300", "docker", "run", "--rm"]).args(args);
    command.output().expect("docker run")
}

fn succeeded(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn mount(host: &Path, at: &str, mode: &str) -> String {
    format!("{}:{at}:{mode}", host.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portable_binary_runs_on_glibc_2_31_and_reaches_a_sidecar() {
    image_present(BULLSEYE);
    let glibc = docker_run(&[BULLSEYE, "ldd", "--version"]);
    assert!(
        succeeded("ldd", &glibc).contains("2.31"),
        "{}",
        text(&glibc.stdout)
    );
    // The ordinary build needs a newer glibc: the reason for the portable one.
    let ordinary = Path::new(env!("CARGO_BIN_EXE_cclaunch"));
    let refused = docker_run(&[
        "-v",
        &mount(ordinary, "/usr/local/bin/cclaunch", "ro"),
        BULLSEYE,
        "cclaunch",
        "--version",
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("version `GLIBC_2.3"),
        "{}",
        text(&refused.stderr)
    );

    let binary = portable_binary();
    let env = Env::new("portable", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let bin = mount(&binary, "/usr/local/bin/cclaunch", "ro");
    let version = docker_run(&["-v", &bin, BULLSEYE, "cclaunch", "--version"]);
    assert_eq!(
        succeeded("--version", &version).trim(),
        format!("cclaunch {}", env!("CARGO_PKG_VERSION"))
    );

    // A sidecar on the host: a Unix socket in a directory the container
    // mounts, and mutual TLS on loopback for a name only /etc/hosts knows.
    let ca = DevCa::new().unwrap();
    let server = ca.server(&["cclaunch-sidecar.test".into()]).unwrap();
    let client = ca.client("peer0").unwrap();
    let pki = env.dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    for (name, pem) in [
        ("ca.crt", ca.ca_pem().into_bytes()),
        ("server.crt", server.cert_pem.into_bytes()),
        ("server.key", server.key_pem.into_bytes()),
        ("client.crt", client.client_cert),
        ("client.key", client.client_key),
    ] {
        std::fs::write(pki.join(name), pem).unwrap();
    }
    let run_dir = env.dir.path().join("run");
    let socket = run_dir.join("cclaunch.sock");
    let port = common::free_port();
    let file = |name: &str| pki.join(name).display().to_string();
    let mut sidecar = common::spawn_serve(
        &env,
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--tcp",
            &format!("127.0.0.1:{port}"),
            "--tls-cert",
            &file("server.crt"),
            "--tls-key",
            &file("server.key"),
            "--tls-client-ca",
            &file("ca.crt"),
        ],
    );
    let listening = common::eventually(Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    })
    .await;
    assert!(listening, "sidecar never listened");

    // SRC and META as the peer hands them to its builder.
    let work = env.dir.path().join("work");
    for dir in ["src/src", "meta", "bld"] {
        std::fs::create_dir_all(work.join(dir)).unwrap();
    }
    // code.tar.gz's layout: the node platform's code under src/.
    std::fs::write(work.join("src/src/start.sh"), "echo old glibc\n").unwrap();
    std::fs::write(
        work.join("meta/metadata.json"),
        r#"{"type":"node","label":"portable","path":""}"#,
    )
    .unwrap();
    let run_mount = mount(&run_dir, "/run/cclaunch", "rw");
    let work_mount = mount(&work, "/work", "rw");
    let pki_mount = mount(&pki, "/pki", "ro");
    // As the peer runs its builder: an environment pruned to PATH and the
    // propagated variables.
    let in_bullseye = |args: &[&str]| {
        let mut all = vec![
            "--network",
            "host",
            "--add-host",
            "cclaunch-sidecar.test:127.0.0.1",
            "-v",
            &bin,
            "-v",
            &run_mount,
            "-v",
            &work_mount,
            "-v",
            &pki_mount,
            BULLSEYE,
            "env",
            "-i",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "CCLAUNCH_SERVER=unix:/run/cclaunch/cclaunch.sock",
            "cclaunch",
        ];
        all.extend_from_slice(args);
        docker_run(&all)
    };

    succeeded(
        "builder detect",
        &in_bullseye(&["builder", "detect", "/work/src", "/work/meta"]),
    );
    let built = in_bullseye(&["builder", "build", "/work/src", "/work/meta", "/work/bld"]);
    succeeded("builder build", &built);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("bld/cclaunch.json")).unwrap()).unwrap();
    let image = record["image"]
        .as_str()
        .expect("image in BLD/cclaunch.json");
    assert!(
        !common::docker(&["images", "-q", image]).trim().is_empty(),
        "{image} built"
    );
    let health = succeeded("health", &in_bullseye(&["health"]));
    assert!(
        health.contains("via sidecar at unix:/run/cclaunch/cclaunch.sock: ok"),
        "{health}"
    );
    succeeded("ps", &in_bullseye(&["ps"]));

    // https by host name: /etc/hosts (nss files) in the static glibc.
    let https = format!("https://cclaunch-sidecar.test:{port}");
    let tls = [
        "--server",
        &https,
        "--server-ca",
        "/pki/ca.crt",
        "--server-cert",
        "/pki/client.crt",
        "--server-key",
        "/pki/client.key",
    ];
    let health = succeeded(
        "health over https",
        &in_bullseye(&[&["health"][..], &tls].concat()),
    );
    assert!(
        health.contains(&format!("via sidecar at {https}: ok")),
        "{health}"
    );

    common::terminate(&mut sidecar, Duration::from_secs(20)).await;
}

/// What a container wrote (the sidecar logs to stderr).
fn log_of(container: &str) -> String {
    let out = Command::new("docker")
        .args(["logs", container])
        .output()
        .expect("docker logs");
    text(&out.stdout) + &text(&out.stderr)
}

/// Removes the sidecar container and image this test made, pass or fail.
struct Made {
    container: String,
    image: String,
}

impl Drop for Made {
    fn drop(&mut self) {
        common::docker(&["rm", "-f", &self.container]);
        common::docker(&["rmi", "-f", &self.image]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_image_builds_from_local_bases_and_launches_a_chaincode() {
    image_present(BULLSEYE);
    image_present(BUSYBOX);
    portable_binary();
    let env = Env::new("image", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let made = Made {
        container: format!("cclaunch-test-sidecar-{}", env.peer),
        image: format!("cclaunch-test/sidecar:{}", env.peer.to_lowercase()),
    };

    // As `make docker-image-portable`, on local bases: busybox only copies.
    let built = Command::new("timeout")
        .args(["600", "docker", "build", "-q"])
        .args(["--build-arg", "BINARY=target/portable/cclaunch"])
        .args(["--build-arg", &format!("RUST_IMAGE={BUSYBOX}")])
        .args(["--build-arg", &format!("RUNTIME_IMAGE={BULLSEYE}")])
        .args(["--label", "org.cclaunch.test-image=true", "-t", &made.image])
        .arg(common::repo())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    succeeded("docker build", &built);

    let run_dir = env.dir.path().join("shared");
    std::fs::create_dir_all(&run_dir).unwrap();
    let engine = common::endpoint();
    let engine_socket = engine
        .strip_prefix("unix://")
        .expect("a unix engine endpoint");
    let started = Command::new("docker")
        .args(["run", "-d", "--name", &made.container, "--network", "none"])
        .args(["-v", &format!("{engine_socket}:/var/run/docker.sock")])
        .args(["-v", &mount(&run_dir, "/run/cclaunch", "rw")])
        .args(["-e", &format!("CORE_PEER_ID={}", env.peer)])
        .args(["-e", "CORE_PEER_NETWORKID=test"])
        .args(["-e", &format!("CORE_CHAINCODE_NODE_RUNTIME={SHENV}")])
        .args(["-e", "NO_COLOR=1"])
        .arg(&made.image)
        .output()
        .expect("docker run");
    succeeded("docker run the sidecar", &started);
    let socket = run_dir.join("cclaunch.sock");
    let listening = common::eventually(Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    })
    .await;
    assert!(
        listening,
        "the sidecar container never listened:\n{}",
        log_of(&made.container)
    );

    // The CLI on the host, through the container's socket.
    let server = format!("unix:{}", socket.display());
    let package = env.shell_package("image", "echo up in the image\nsleep 300\n");
    let file = package.file.to_str().unwrap();
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cclaunch"))
            .args(args)
            .args(["--server", &server])
            .env_remove("CCLAUNCH_SERVER")
            .output()
            .expect("run cclaunch")
    };
    succeeded("build", &cli(&["build", file]));
    succeeded(
        "start",
        &cli(&["start", file, "--peer-address", "127.0.0.1:7052"]),
    );
    let container = env.launcher.names(&package.id).unwrap().container;
    let state = common::docker(&[
        "inspect",
        "-f",
        &format!(
            "{{{{.State.Running}}}} {{{{index .Config.Labels \"{}\"}}}}",
            cclaunch::runtime::LABEL_PEER_ID
        ),
        &container,
    ]);
    assert_eq!(state.trim(), format!("true {}", env.peer));
    let line = format!("peer.chaincode.{container}: up in the image");
    let mirrored = common::eventually(Duration::from_secs(30), || {
        log_of(&made.container).contains(&line)
    })
    .await;
    assert!(
        mirrored,
        "the sidecar in the image mirrors the chaincode's output:\n{}",
        log_of(&made.container)
    );
    let listed = succeeded("ps", &cli(&["ps"]));
    assert!(listed.contains(&container), "{listed}");

    succeeded("stop", &cli(&["stop", &package.id]));
    assert!(
        common::docker(&["ps", "-aq", "--filter", &format!("name=^{container}$")])
            .trim()
            .is_empty()
    );
    drop(made);
}
