//! The external builder as a peer runs it: `cclaunch builder install DIR`,
//! then DIR/bin/{detect,build,release,run} with the peer's arguments and a
//! pruned environment (PATH and CCLAUNCH_SERVER only, or less), against a
//! real `cclaunch serve` and the real engine. SRC is the package's
//! code.tar.gz extracted as Fabric's untar does it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cclaunch::naming::Scope;
use common::builder::{chaincode_json, install, run_ok, text, verb, Layout, Running};
use common::{Env, SHENV};

struct Sidecar {
    child: tokio::process::Child,
    address: String,
}

async fn spawn_sidecar(env: &Env) -> Sidecar {
    let socket = env.dir.path().join("run/cclaunch.sock");
    let child = common::serve_command(env, &["--socket", socket.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn cclaunch serve");
    for _ in 0..100 {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return Sidecar {
                child,
                address: format!("unix:{}", socket.display()),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sidecar never listened on {}", socket.display());
}

fn container_state(name: &str) -> String {
    common::docker(&["inspect", "-f", "{{.State.Status}}", name])
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_builds_and_runs_chaincode_through_the_sidecar_and_stops_it_with_sigterm() {
    let env = Env::new("builder", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let sidecar = spawn_sidecar(&env).await;
    let server = Some(sidecar.address.as_str());
    let builder = install(env.dir.path(), None);
    let package = env.shell_package(
        "bldcc",
        "echo \"id=$CORE_CHAINCODE_ID_NAME\"\necho \"msp=$CORE_PEER_LOCALMSPID tls=$CORE_PEER_TLS_ENABLED\"\necho \"args=$*\"\necho ready\nexec sleep 300\n",
    );
    let layout = Layout::of(&package);

    run_ok(verb(&builder, "detect", &[&layout.src, &layout.meta], None));
    let built = run_ok(layout.build(&builder, server));
    let stderr = text(&built.stderr);
    assert!(
        stderr.contains("build.sh: copied"),
        "build output forwarded: {stderr}"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.bld.join("cclaunch.json")).unwrap()).unwrap();
    let rebuilt = record["package_id"].as_str().unwrap().to_string();
    assert_eq!(record["type"], "node");
    assert!(
        rebuilt.starts_with("bldcc:") && rebuilt != package.id,
        "{record}"
    );
    let scope = Scope::new("test", env.peer.clone());
    assert_eq!(record["image"], scope.image_name(&rebuilt).unwrap());

    // Building again (the peer reinstalling) reuses the image.
    let again = run_ok(layout.build(&builder, server));
    assert!(text(&again.stderr).contains(&format!(
        "reused image {}",
        record["image"].as_str().unwrap()
    )));

    run_ok(verb(
        &builder,
        "release",
        &[&layout.bld, &layout.release],
        None,
    ));
    assert_eq!(std::fs::read_dir(&layout.release).unwrap().count(), 0);

    chaincode_json(&layout, &package.id, None);
    let run = Running::spawn(layout.run(&builder, server));
    run.until_line("ready").await;
    {
        let lines = run.lines();
        for expected in [
            format!("id={}", package.id),
            "msp=Org1MSP tls=false".to_string(),
            "args=--peer.address 127.0.0.1:7052".to_string(),
        ] {
            assert!(lines.contains(&expected), "{expected:?} in {lines:?}");
        }
    }
    // Named from the peer's chaincode id, running the rebuilt package's image.
    let container = scope.container_name(&package.id);
    assert_eq!(container_state(&container), "running");
    let image = common::docker(&["inspect", "-f", "{{.Config.Image}}", &container]);
    assert_eq!(image.trim(), record["image"].as_str().unwrap());

    // The peer stops chaincode with SIGTERM.
    let pid = run.child.id().unwrap().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let (code, lines) = run.exit(Duration::from_secs(15)).await;
    assert_eq!(code, Some(143), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("SIGTERM: stopped chaincode {}", package.id))),
        "{lines:?}"
    );
    assert_eq!(container_state(&container), "", "container removed");
    drop(sidecar);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_hands_the_chaincode_the_peers_tls_material_and_exits_with_its_code() {
    let env = Env::new("buildertls", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    // The sidecar on another host's terms: TCP with mutual TLS. Its address
    // is baked into the scripts (the peer passes no CCLAUNCH_SERVER); the
    // client's PEM files come through propagateEnvironment.
    let pki = common::Pki::new(env.dir.path());
    let file = |name: &str| pki.path(name);
    let listen = format!("127.0.0.1:{}", common::free_port());
    let mut args = vec!["--tcp".to_string(), listen.clone()];
    args.extend(pki.serve_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _sidecar = common::serve_command(&env, &args)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn cclaunch serve");
    assert!(
        common::eventually(Duration::from_secs(20), || std::net::TcpStream::connect(
            &listen
        )
        .is_ok())
        .await,
        "sidecar listens on {listen}"
    );
    let builder = install(env.dir.path(), Some(&format!("https://{listen}")));
    let with_client_tls = |mut cmd: Command| {
        cmd.env("CCLAUNCH_SERVER_CA", file("ca.crt"))
            .env("CCLAUNCH_SERVER_CERT", file("client.crt"))
            .env("CCLAUNCH_SERVER_KEY", file("client.key"));
        cmd
    };
    let package = env.shell_package(
        "bldtls",
        "echo \"tls=$CORE_PEER_TLS_ENABLED\"\n\
         echo \"root=$(head -n 1 \"$CORE_PEER_TLS_ROOTCERT_FILE\")\"\n\
         echo \"cert=$(head -n 1 \"$CORE_TLS_CLIENT_CERT_FILE\")\"\n\
         [ -s \"$CORE_TLS_CLIENT_KEY_FILE\" ] && echo key-present\n\
         echo bye\nexit 3\n",
    );
    let layout = Layout::of(&package);
    // Without the client's certificate the sidecar refuses the builder.
    let refused = layout.build(&builder, None).output().unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("--server-cert"),
        "{}",
        text(&refused.stderr)
    );
    run_ok(with_client_tls(layout.build(&builder, None)));
    let tls = common::tls_material();
    chaincode_json(&layout, &package.id, Some(&tls));

    let run = Running::spawn(with_client_tls(layout.run(&builder, None)));
    let (code, lines) = run.exit(Duration::from_secs(60)).await;
    assert_eq!(code, Some(3), "{lines:?}");
    for expected in [
        "tls=true",
        "root=-----BEGIN CERTIFICATE-----",
        "cert=-----BEGIN CERTIFICATE-----",
        "key-present",
        "bye",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected:?} in {lines:?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("chaincode {} exited with code 3", package.id))),
        "{lines:?}"
    );
    // run ends the chaincode's life: its exited container is removed.
    let container = Scope::new("test", env.peer.clone()).container_name(&package.id);
    assert_eq!(container_state(&container), "", "exited container removed");
    let key_body = text(&tls.client_key).lines().nth(1).unwrap().to_string();
    assert!(
        !lines.iter().any(|l| l.contains(&key_body)),
        "the private key never reaches stderr"
    );
}

/// The sidecar restarts while `run` waits on its chaincode: the chaincode
/// keeps running and `run` keeps the peer's hold on it, carries on with its
/// output once the new sidecar answers, and exits with its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_rides_out_a_sidecar_restart() {
    let env = Env::new("builderlost", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let mut sidecar = spawn_sidecar(&env).await;
    let server = Some(sidecar.address.clone());
    let builder = install(env.dir.path(), None);
    let package = env.shell_package(
        "bldlost",
        "echo ready\nsleep 4\necho after-restart\nexit 4\n",
    );
    let layout = Layout::of(&package);
    run_ok(layout.build(&builder, server.as_deref()));
    chaincode_json(&layout, &package.id, None);
    let run = Running::spawn(layout.run(&builder, server.as_deref()));
    run.until_line("ready").await;
    sidecar.child.kill().await.unwrap();
    // The new sidecar comes up only once `run` has noticed the old one gone.
    run.until_line_with(&format!("lost the sidecar at {}", sidecar.address))
        .await;
    let _back = spawn_sidecar(&env).await;
    let (code, lines) = run.exit(Duration::from_secs(30)).await;
    assert_eq!(code, Some(4), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "chaincode {}: lost the sidecar at {}",
            package.id, sidecar.address
        )) && l.contains("keeps running")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "after-restart"), "{lines:?}");
}

/// The sidecar is stopped (SIGTERM) while `run` follows its chaincode: the
/// following Logs and Wait end at once with the "shutting down" status, so
/// the sidecar exits in well under a second instead of draining for 10 s,
/// and `run` waits for the next sidecar and carries on with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sidecar_ends_followers_at_once_and_run_carries_on_with_the_next() {
    let env = Env::new("builderterm", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let mut sidecar = spawn_sidecar(&env).await;
    let server = Some(sidecar.address.clone());
    let builder = install(env.dir.path(), None);
    let package = env.shell_package(
        "bldterm",
        "echo ready\nwhile [ ! -e /tmp/go-on ]; do sleep 0.2; done\necho after-restart\nexit 4\n",
    );
    let layout = Layout::of(&package);
    run_ok(layout.build(&builder, server.as_deref()));
    chaincode_json(&layout, &package.id, None);
    let run = Running::spawn(layout.run(&builder, server.as_deref()));
    run.until_line("ready").await;

    let began = std::time::Instant::now();
    let status = common::terminate(&mut sidecar.child, Duration::from_secs(15)).await;
    let took = began.elapsed();
    assert!(status.success(), "{status:?}");
    eprintln!("sidecar exited {took:?} after SIGTERM with run following");
    assert!(
        took < Duration::from_secs(2),
        "SIGTERM took {took:?} with followers open"
    );

    let _back = spawn_sidecar(&env).await;
    let container = Scope::new("test", env.peer.clone()).container_name(&package.id);
    common::docker(&["exec", &container, "touch", "/tmp/go-on"]);
    let (code, lines) = run.exit(Duration::from_secs(30)).await;
    assert_eq!(code, Some(4), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "chaincode {}: the sidecar at {} is shutting down",
            package.id, sidecar.address
        ))),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "after-restart"), "{lines:?}");
}

#[test]
fn detect_claims_the_configured_types_without_a_sidecar() {
    let root = tempfile::tempdir().unwrap();
    let builder = install(root.path(), None);
    let detect = |kind: &str, types: Option<&str>| {
        let layout = Layout::new(&format!(r#"{{"path":"","type":"{kind}","label":"cc_1"}}"#));
        let mut cmd = verb(&builder, "detect", &[&layout.src, &layout.meta], None);
        if let Some(types) = types {
            cmd.env("CCLAUNCH_BUILDER_TYPES", types);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), text(&out.stderr))
    };
    for claimed in ["node", "NODE", "golang", "java", "ccaas"] {
        assert_eq!(detect(claimed, None).0, Some(0), "{claimed}");
    }
    let (code, stderr) = detect("cobol", None);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(r#"chaincode cc_1 has type "cobol", not one of cclaunch.builder.types (golang, node, java, ccaas)"#),
        "{stderr}"
    );
    assert_eq!(detect("node", Some("ccaas")).0, Some(1), "configured away");
    assert_eq!(detect("ccaas", Some("ccaas")).0, Some(0));

    let layout = Layout::new("not json");
    let out = verb(&builder, "detect", &[&layout.src, &layout.meta], None)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not chaincode metadata"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ccaas_build_and_release_write_the_connection_the_peer_dials() {
    let root = tempfile::tempdir().unwrap();
    let builder = install(root.path(), None);
    let layout = Layout::new(r#"{"path":"","type":"CCAAS","label":"svc_1"}"#);
    std::fs::write(
        layout.src.join("connection.json"),
        r#"{"address":"{{.peername}}_svc:{{.port}}","dial_timeout":"10s","tls_required":false,"client_key":"dropped"}"#,
    )
    .unwrap();
    let indexes = layout.src.join("META-INF/statedb/couchdb/indexes");
    std::fs::create_dir_all(&indexes).unwrap();
    std::fs::write(
        indexes.join("byColor.json"),
        r#"{"index":{"fields":["color"]}}"#,
    )
    .unwrap();

    // Without values for its templates the build fails, naming the key.
    let out = layout.build(&builder, None).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("chaincode svc_1 (ccaas)")
            && text(&out.stderr).contains("address: no value for {{.peername}}"),
        "{}",
        text(&out.stderr)
    );

    let mut build = layout.build(&builder, None);
    build
        .env("CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG", r#"{"peername":"peer0org1"}"#)
        .env("CCLAUNCH_CONFIG", write_config(root.path(), "cclaunch:\n  builder:\n    ccaas:\n      templateValues: {peername: ignored, port: 9999}\n"));
    run_ok(build);
    run_ok(verb(
        &builder,
        "release",
        &[&layout.bld, &layout.release],
        None,
    ));

    let released = layout.release.join("chaincode/server/connection.json");
    let connection: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&released).unwrap()).unwrap();
    let mut fields: Vec<&str> = connection.keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "address",
            "client_auth_required",
            "client_cert",
            "client_key",
            "dial_timeout",
            "domain",
            "root_cert",
            "tls_required"
        ]
    );
    assert_eq!(connection["address"], "peer0org1_svc:9999");
    assert_eq!(connection["dial_timeout"], "10s");
    assert_eq!(connection["tls_required"], false);
    assert_eq!(
        connection["client_key"], "",
        "TLS fields dropped with TLS off"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&released).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(layout.release.join("statedb/couchdb/indexes/byColor.json"))
            .unwrap(),
        r#"{"index":{"fields":["color"]}}"#
    );

    // The peer never runs a ccaas chaincode; if something does, it is told why not.
    chaincode_json(&layout, "svc_1:abc", None);
    let out = layout
        .run(&builder, Some("unix:/nonexistent"))
        .output()
        .unwrap();
    // cclaunch's own failure, never a chaincode's exit code.
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("there is nothing to run"),
        "{}",
        text(&out.stderr)
    );
}

fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let file = dir.join("cclaunch.yaml");
    std::fs::write(&file, yaml).unwrap();
    file
}

#[test]
fn build_refuses_a_hostile_source_before_it_asks_the_sidecar() {
    let root = tempfile::tempdir().unwrap();
    let builder = install(root.path(), None);
    let layout = Layout::new(r#"{"path":"","type":"node","label":"evil_1"}"#);
    std::fs::create_dir_all(layout.src.join("src")).unwrap();
    std::fs::write(layout.src.join("src/package.json"), "{}").unwrap();
    let build = |server: Option<&str>| {
        let out = layout.build(&builder, server).output().unwrap();
        (out.status.code(), text(&out.stderr))
    };

    let (code, stderr) = build(None);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("chaincode evil_1: no sidecar address: set CCLAUNCH_SERVER"),
        "{stderr}"
    );
    let (code, stderr) = build(Some("unix:/nonexistent/cclaunch.sock"));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("cannot reach the sidecar at unix:/nonexistent/cclaunch.sock"),
        "{stderr}"
    );

    std::os::unix::fs::symlink("/etc/passwd", layout.src.join("src/index.js")).unwrap();
    let (code, stderr) = build(Some("unix:/nonexistent/cclaunch.sock"));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!(
            "chaincode evil_1: refusing the chaincode source {}: {} is a symlink",
            layout.src.display(),
            layout.src.join("src/index.js").display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot reach"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&layout.bld).unwrap().count(),
        0,
        "BLD untouched"
    );
}
