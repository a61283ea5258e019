//! The sidecar on TCP with mutual TLS beside its Unix socket, and the CLI
//! verbs through a sidecar (`--server`): a real `cclaunch serve` process on
//! the real engine, reached by gRPC clients with and without the right
//! certificate and by the real binary.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use cclaunch::client::{self, Address, ClientTls};
use cclaunch::proto::v1::{self as pb, launcher_client::LauncherClient};
use common::{Env, Pki};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Health through `client::connect`, retried while the sidecar comes up.
async fn healthy(address: &Address, tls: Option<&ClientTls>) -> pb::HealthResponse {
    let mut last = String::new();
    for _ in 0..150 {
        match client::connect(address, tls, Duration::from_secs(2)).await {
            Ok(mut c) => match c.health(pb::HealthRequest {}).await {
                Ok(r) => return r.into_inner(),
                Err(e) => last = format!("{e:?}"),
            },
            Err(e) => last = cclaunch::error_chain(&e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sidecar at {address} never answered: {last}");
}

/// A Health call over `endpoint`, its failure as text (connect or call).
async fn health_error(endpoint: Result<Endpoint, tonic::transport::Error>) -> String {
    let endpoint = match endpoint {
        Ok(e) => e.connect_timeout(Duration::from_secs(5)),
        Err(e) => return cclaunch::error_chain(&e),
    };
    let channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => return format!("connect: {}", cclaunch::error_chain(&e)),
    };
    match LauncherClient::new(channel)
        .health(pb::HealthRequest {})
        .await
    {
        Ok(r) => panic!("served: {:?}", r.into_inner()),
        Err(status) => {
            // Refused at the transport, never a reply the service made: a
            // service's status crosses the wire without a local source.
            assert!(std::error::Error::source(&status).is_some(), "{status:?}");
            format!("call: {}", cclaunch::error_chain(&status))
        }
    }
}

/// Runs the binary as this test's peer (bounded in time); (exit code,
/// stdout, stderr).
async fn run(peer: &str, args: Vec<String>) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cclaunch"))
        .args(&args)
        .env("CORE_VM_ENDPOINT", common::endpoint())
        .env("CORE_PEER_ID", peer)
        .env("CORE_PEER_NETWORKID", "test")
        .env("CORE_CHAINCODE_NODE_RUNTIME", common::SHENV)
        .env_remove(client::SERVER_ENV)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .unwrap_or_else(|_| panic!("cclaunch {args:?} did not finish"))
        .expect("run cclaunch");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A sidecar on a Unix socket and on loopback TCP with mutual TLS.
struct Sidecar {
    child: tokio::process::Child,
    socket: PathBuf,
    /// host:port of the TLS listener.
    addr: String,
}

fn spawn_sidecar(env: &Env, pki: &Pki) -> Sidecar {
    let socket = env.dir.path().join("run/cclaunch.sock");
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut serve = args(&["--socket", socket.to_str().unwrap(), "--tcp", &addr]);
    serve.extend(pki.serve_args());
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    Sidecar {
        child: common::spawn_serve(env, &serve),
        socket,
        addr,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_serves_clients_of_its_ca_only_and_the_socket_beside_it() {
    let env = Env::new("tls", &[]).await;
    let pki = Pki::new(env.dir.path());
    let mut sidecar = spawn_sidecar(&env, &pki);
    let addr = sidecar.addr.clone();

    let https = Address::parse(&format!("https://{addr}")).unwrap();
    let unix = Address::Unix(sidecar.socket.clone());
    let engine = healthy(&https, Some(&pki.client_tls("client"))).await;
    assert_eq!(engine.api_version, "1.41");
    assert_eq!(healthy(&unix, None).await.api_version, "1.41");

    // No client certificate: the handshake is refused (CertificateRequired).
    let no_cert = health_error(
        Endpoint::from_shared(format!("https://{addr}")).and_then(|e| {
            e.tls_config(
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pki.read("ca.crt"))),
            )
        }),
    )
    .await;
    eprintln!("no certificate: {no_cert}");
    // A certificate from another CA (one with the very same name): refused.
    let stranger = health_error(
        Endpoint::from_shared(format!("https://{addr}")).and_then(|e| {
            e.tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(pki.read("ca.crt")))
                    .identity(Identity::from_pem(
                        pki.read("stranger.crt"),
                        pki.read("stranger.key"),
                    )),
            )
        }),
    )
    .await;
    eprintln!("stranger: {stranger}");
    // The stranger through the CLI: a clear error naming the sidecar.
    let (code, _, stderr) = run(
        &env.peer,
        args(&[
            "ps",
            "--server",
            &format!("https://{addr}"),
            "--server-ca",
            &pki.path("ca.crt"),
            "--server-cert",
            &pki.path("stranger.crt"),
            "--server-key",
            &pki.path("stranger.key"),
        ]),
    )
    .await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with(&format!("error: sidecar at https://{addr}: ")),
        "{stderr}"
    );
    // Plain HTTP/2 to the TLS port.
    let plain = health_error(Endpoint::from_shared(format!("http://{addr}"))).await;
    eprintln!("plain: {plain}");
    // The right client still gets in afterwards.
    healthy(&https, Some(&pki.client_tls("client"))).await;

    let mut health = args(&["health", "--server", &format!("https://{addr}")]);
    health.extend(pki.client_args());
    let (code, stdout, stderr) = run(&env.peer, health).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "engine via sidecar at https://{addr}: ok (Docker "
        )) && stdout.ends_with(", API 1.41)\n"),
        "{stdout}"
    );
    // https without the client's material: told what is missing.
    let (code, _, stderr) = run(
        &env.peer,
        args(&["health", "--server", &format!("https://{addr}")]),
    )
    .await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("needs --server-ca, --server-cert, --server-key"),
        "{stderr}"
    );

    // SIGTERM stops both listeners and removes the socket.
    let status = common::terminate(&mut sidecar.child, Duration::from_secs(15)).await;
    assert!(status.success(), "{status}");
    assert!(!sidecar.socket.exists(), "socket removed on SIGTERM");
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "TCP listener closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_verbs_through_the_sidecar_print_what_they_print_directly() {
    let env = Env::new("tlscli", &[]).await;
    let pki = Pki::new(env.dir.path());
    let mut sidecar = spawn_sidecar(&env, &pki);
    let unix = format!("unix:{}", sidecar.socket.display());
    let https = format!("https://{}", sidecar.addr);
    healthy(
        &Address::parse(&https).unwrap(),
        Some(&pki.client_tls("client")),
    )
    .await;
    // A verb through the unix socket, through TLS, and directly.
    let through = |server: &str, verb: &[&str]| {
        let mut a = args(verb);
        a.extend(args(&["--server", server]));
        if server.starts_with("https") {
            a.extend(pki.client_args());
        }
        a
    };
    let package = env.shell_package(
        "tlscli",
        "echo hello over tls\necho on stderr >&2\nexit 3\n",
    );
    let file = package.file.to_str().unwrap();
    let names = env.launcher.names(&package.id).unwrap();

    let (code, stdout, stderr) = run(&env.peer, through(&https, &["build", file])).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, format!("image: {}\n", names.image));
    assert!(
        stderr.contains(&format!("build {}", package.id)),
        "{stderr}"
    );
    // Built by the sidecar, so reused: the same line through either road.
    let (_, direct, _) = run(&env.peer, args(&["build", file])).await;
    assert_eq!(direct, format!("image: {} (reused)\n", names.image));
    let (_, stdout, _) = run(&env.peer, through(&unix, &["build", file])).await;
    assert_eq!(stdout, direct);

    // start -f through TLS: the output streamed to stdout, the exit code kept.
    let (code, stdout, stderr) = run(
        &env.peer,
        through(
            &https,
            &["start", file, "--peer-address", "127.0.0.1:7052", "-f"],
        ),
    )
    .await;
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "image: {} (reused)\nstarted {} (node)\n",
            names.image, names.container
        )),
        "{stdout}"
    );
    assert!(stdout.contains("hello over tls\n"), "{stdout}");
    assert!(stdout.contains("on stderr\n"), "{stdout}");
    assert!(
        stderr.contains(&format!("chaincode {} exited with code 3", package.id)),
        "{stderr}"
    );

    for (verb, expected) in [
        (vec!["wait", package.id.as_str()], "3\n".to_string()),
        (
            vec!["logs", package.id.as_str(), "--tail", "1"],
            String::new(),
        ),
        (vec!["ps"], String::new()),
    ] {
        let (code, direct, stderr) = run(&env.peer, args(&verb)).await;
        assert_eq!(code, Some(0), "{verb:?}: {stderr}");
        if !expected.is_empty() {
            assert_eq!(direct, expected, "{verb:?}");
        }
        if verb[0] == "logs" {
            assert_eq!(direct.lines().count(), 1, "{direct}");
        }
        for server in [&unix, &https] {
            let (code, stdout, stderr) = run(&env.peer, through(server, &verb)).await;
            assert_eq!(code, Some(0), "{verb:?} via {server}: {stderr}");
            assert_eq!(stdout, direct, "{verb:?} via {server}");
        }
    }
    let (_, ps, _) = run(&env.peer, through(&unix, &["ps"])).await;
    assert!(
        ps.lines().any(|l| l.starts_with(&names.container)
            && l.contains(" 3 ")
            && l.ends_with(&package.id)),
        "{ps}"
    );

    let (code, stdout, stderr) =
        run(&env.peer, through(&https, &["stop", package.id.as_str()])).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, format!("stopped {}\n", names.container));
    // A status from the sidecar becomes a clear CLI error.
    let (code, _, stderr) = run(&env.peer, through(&unix, &["stop", package.id.as_str()])).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with(&format!("error: sidecar at {unix}: ")) && stderr.contains("no"),
        "{stderr}"
    );
    // A package id as is: start without -f, then stop, then gc.
    let (code, stdout, stderr) = run(
        &env.peer,
        through(
            &unix,
            &[
                "start",
                package.id.as_str(),
                "--peer-address",
                "127.0.0.1:7052",
            ],
        ),
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, format!("started {} (node)\n", names.container));
    let (code, stdout, stderr) = run(&env.peer, through(&https, &["gc", file])).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "removed container {}\nremoved image {}:latest\n",
            names.container, names.image
        )
    );
    let (_, stdout, _) = run(&env.peer, through(&https, &["gc", "--all"])).await;
    assert_eq!(stdout, "nothing to remove\n");
    common::terminate(&mut sidecar.child, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_is_refused_without_its_unsafe_flag_and_bad_tls_files_are_named() {
    let env = Env::new("tlsany", &[]).await;
    let pki = Pki::new(env.dir.path());
    let port = common::free_port();
    let any = format!("0.0.0.0:{port}");

    // Plain TCP without --insecure-plain-tcp: refused before anything listens.
    let (code, _, stderr) = run(&env.peer, args(&["serve", "--tcp", &any])).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("drive the engine") && stderr.contains("--insecure-plain-tcp"),
        "{stderr}"
    );

    // Bad TLS files: each named; the key's content never shown.
    let garbage = env.dir.path().join("garbage.key");
    std::fs::write(&garbage, "SECRET-KEY-MATERIAL\n").unwrap();
    let serve_with = |cert: &str, key: &str, ca: &str| {
        args(&[
            "serve",
            "--tcp",
            &any,
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--tls-client-ca",
            ca,
        ])
    };
    let (cert, key, ca) = (
        pki.path("server.crt"),
        pki.path("server.key"),
        pki.path("ca.crt"),
    );
    let missing = env.dir.path().join("missing.crt");
    let missing = missing.to_str().unwrap();
    let bad = garbage.to_str().unwrap();
    for (args, expected) in [
        (
            serve_with(missing, &key, &ca),
            format!("cannot read the server TLS certificate {missing}"),
        ),
        (
            serve_with(&cert, bad, &ca),
            format!("the server TLS key {bad}: holds no PEM private key"),
        ),
        (
            serve_with(&cert, &key, bad),
            format!("the client CA certificate {bad}: holds no PEM certificate"),
        ),
        (
            serve_with(&pki.path("client.crt"), &key, &ca),
            format!("mutual TLS from certificate {}", pki.path("client.crt")),
        ),
    ] {
        let (code, _, stderr) = run(&env.peer, args).await;
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(&expected), "{expected:?} in {stderr}");
        assert!(!stderr.contains("SECRET"), "{stderr}");
    }
    // The three TLS flags go together.
    let (code, _, stderr) = run(
        &env.peer,
        args(&["serve", "--tcp", &any, "--tls-cert", &cert]),
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");

    // With mutual TLS, every interface is fine.
    let mut serve = args(&["--tcp", &any]);
    serve.extend(pki.serve_args());
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    let mut child = common::spawn_serve(&env, &serve);
    let engine = healthy(
        &Address::parse(&format!("https://127.0.0.1:{port}")).unwrap(),
        Some(&pki.client_tls("client")),
    )
    .await;
    assert_eq!(engine.api_version, "1.41");
    assert!(common::terminate(&mut child, Duration::from_secs(15))
        .await
        .success());
}
