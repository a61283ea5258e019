//! `make bench`: cclaunch's hot paths measured side by side with their floors,
//! in one run, interleaved, on the same engine and image. Prints a Markdown
//! report (kept in docs/BENCHMARKS.md).
//!
//! 1. start latency (create + TLS upload + start): cclaunch vs a minimal
//!    bollard client issuing the same calls back to back vs the docker CLI;
//! 2. output mirroring of 1,000,000 lines: cclaunch vs `docker logs -f`;
//! 3. package id + validation of a 200 MB package: cclaunch vs `sha256sum`
//!    (throughput and the child's peak RSS);
//! 4. through the gRPC API, as a peer drives it: 1, 8 and 32 launches at once
//!    vs the same launches one after another, and Build of a built package;
//! 5. Node chaincode registration (the real shim);
//! 6. builds: a second peer's build of the same package vs the first build,
//!    and version 2 with version 1's build cache vs versions 1 and 2 on a cold one;
//! 7. 1,000 chaincodes under one sidecar process: RSS per chaincode, `List`
//!    and `/metrics` latency, a restart resuming every mirror, memory over
//!    steady output (`fleet`; CCLAUNCH_BENCH_FLEET, CCLAUNCH_BENCH_STEADY_SECS);
//! 8. Start from a prepared container vs a full create + TLS upload + start
//!    (`prepared`);
//! 9. the Swarm engine against the Docker engine (`swarm`: start latency and
//!    32 launches at once across the workers), on the lab of tests/cluster.
//!
//! `cargo run --release --example bench -- api` runs only the named sections
//! (start, mirroring, package, api, node, builds, fleet, prepared); no
//! argument runs them all but `swarm`, which runs alone under
//! tests/cluster/with-swarm.sh.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, UploadToContainerOptions,
};
use cclaunch::config::Config;
use cclaunch::launcher::{Launcher, StartRequest, TlsMaterial};
use cclaunch::package::{self, Limits, Metadata, Package};
use cclaunch::runtime::docker::Docker;
use cclaunch::runtime::Runner;

mod api;
mod builds;
mod fleet;
mod swarm;

const ROUNDS: usize = 15;
const SHENV: &str = "cclaunch-test/shenv:latest";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let only: Vec<String> = std::env::args().skip(1).collect();
    if only.iter().any(|s| s == "swarm") {
        return swarm_only(&only).await;
    }
    // Mirrored lines are formatted as in production, then discarded, so the
    // mirroring figure includes the logger's cost.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .init();
    let dir = tempfile::tempdir()?;
    let config_file = dir.path().join("core.yaml");
    // The mirror's rate limit (cclaunch.output.maxLinesPerSecond, on by
    // default) is off: the mirroring figure is the pipeline's own speed.
    std::fs::write(
        &config_file,
        format!(
            "chaincode:\n  node:\n    runtime: {SHENV}\npeer:\n  id: bench\n  networkId: bench\ncclaunch:\n  output:\n    maxLinesPerSecond: 0\n    maxBytesPerSecond: 0\n"
        ),
    )?;
    let config = Config::load(Some(&config_file))?;
    let docker = Arc::new(Docker::connect(&config.vm.endpoint).await?);
    let info = docker.ping().await?;
    let launcher = Launcher::new(docker.clone(), config);

    println!("# cclaunch benchmarks\n");
    println!(
        "Machine: {} cores, Docker {} (API {}), cclaunch {} (release build). Run: `make bench`.\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        info.version,
        info.api_version,
        env!("CARGO_PKG_VERSION")
    );

    let run = |section: &str| only.is_empty() || only.iter().any(|s| s == section);
    if run("start") {
        start_latency(&launcher, dir.path()).await?;
    }
    if run("mirroring") {
        mirroring(&launcher, dir.path()).await?;
    }
    if run("package") {
        package_throughput(dir.path())?;
    }
    if run("api") {
        api::launches_and_builds(docker.clone(), dir.path()).await?;
    }
    if run("node") {
        node_registration(docker.clone(), dir.path()).await?;
    }
    if run("builds") {
        builds::builds(dir.path()).await?;
    }
    if run("fleet") {
        fleet::fleet(docker.clone(), dir.path()).await?;
    }
    if run("prepared") {
        prepared_start(docker.clone(), dir.path()).await?;
    }
    Ok(())
}

/// A sidecar's launcher (it claimed its peer, so it prepares containers)
/// and the same start timed from a prepared container and from nothing,
/// interleaved, TLS on, one chaincode, one image.
async fn prepared_start(docker: Arc<Docker>, dir: &Path) -> Result<()> {
    let config_file = dir.join("prepared.yaml");
    std::fs::write(
        &config_file,
        format!(
            "chaincode:\n  node:\n    runtime: {SHENV}\npeer:\n  id: benchprep\n  networkId: bench\ncclaunch:\n  prepare: true\n  stateDir: {}\n",
            dir.join("prepared-state").display()
        ),
    )?;
    let launcher = Launcher::new(docker, Config::load(Some(&config_file))?);
    launcher.claim()?;
    let package = shell_package(dir, "benchprep", "sleep 600\n")?;
    let built = launcher.build(&package, &|_: &str| {}).await?;
    let id = package.id.as_str();
    let request = StartRequest {
        package_id: id.to_string(),
        platform: None,
        peer_address: "127.0.0.1:7052".into(),
        tls: Some(tls()?),
        msp_id: None,
        extra_env: Vec::new(),
        image_of: None,
    };
    // Each round begins with the next container prepared (by a stop).
    launcher.start(request.clone()).await?;
    launcher.stop(id).await?;
    launcher.prepared(id).await;
    let (mut prepared, mut full) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for from_prepared in [round % 2 == 0, round % 2 == 1] {
            if !from_prepared {
                // Stopping a prepared container removes it: nothing is left.
                launcher.stop(id).await?;
                launcher.prepared(id).await;
            }
            let t = Instant::now();
            launcher.start(request.clone()).await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if from_prepared {
                prepared.push(ms);
            } else {
                full.push(ms);
            }
            launcher.stop(id).await?;
            launcher.prepared(id).await;
        }
    }
    launcher.stop(id).await?;

    // The engine's own share, from a bare bollard client: create, upload
    // and start of the same container, each timed.
    let client = bollard_client(&launcher.config().vm.endpoint).await?;
    let tarball = bytes::Bytes::from(cclaunch::runtime::docker::files::tarball(
        &cclaunch::launcher::tls::files(request.tls.as_ref().ok_or("tls")?),
    )?);
    let host_config: bollard::models::HostConfig = serde_json::from_value(
        serde_json::Value::Object(launcher.config().vm.docker.host_config.settings().clone()),
    )?;
    let (mut creates, mut uploads, mut starts) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let name = format!("bench-prepared-floor-{round}");
        let t = Instant::now();
        client
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(built.image.clone()),
                    cmd: Some(vec!["sleep".into(), "600".into()]),
                    host_config: Some(host_config.clone()),
                    ..Default::default()
                },
            )
            .await?;
        creates.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        upload_at_root(&client, &name, &tarball).await?;
        uploads.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        client.start_container(&name, None).await?;
        starts.push(t.elapsed().as_secs_f64() * 1000.0);
        force_remove(&client, &name).await?;
    }
    let (mp, mf) = (median(&mut prepared), median(&mut full));
    println!("## Start from a prepared container, {ROUNDS} interleaved rounds, TLS on\n");
    println!("| `Launcher::start` | median ms | p90 ms | vs full |\n|---|---|---|---|");
    println!(
        "| full: inspect, image inspect, create, TLS upload, attach, start | {mf:.1} | {:.1} | 1.00x |",
        p90(&mut full)
    );
    println!(
        "| prepared: inspect (fingerprint check), image inspect, TLS upload, attach, start | {mp:.1} | {:.1} | {:.2}x |",
        p90(&mut prepared),
        mp / mf
    );
    let (c, u, st) = (
        median(&mut creates),
        median(&mut uploads),
        median(&mut starts),
    );
    println!(
        "\nThe engine's calls alone (bare bollard, same image and tarball, medians): create {c:.1} ms, TLS upload {u:.1} ms, start {st:.1} ms; a prepared start saves the create, so its floor is {:.2}x.",
        (u + st) / (c + u + st)
    );
    println!("\nTarget: prepared at most 0.6x the full start at the median.\n");
    docker_cli(&["rmi", "-f", &built.image])?;
    Ok(())
}

/// The swarm section (`bench -- swarm`), alone: it needs the lab that
/// tests/cluster/with-swarm.sh brings up, so `make bench` runs it in an
/// invocation of its own, and a run without arguments leaves it out.
async fn swarm_only(only: &[String]) -> Result<()> {
    use tracing_subscriber::prelude::*;
    if only.len() > 1 {
        return Err("the swarm section runs alone (it needs the swarm lab)".into());
    }
    let first = swarm::FirstLines::default();
    tracing_subscriber::registry().with(first.clone()).init();
    let dir = tempfile::tempdir()?;
    swarm::run(first, dir.path()).await
}

fn shell_package(dir: &Path, label: &str, script: &str) -> Result<Package> {
    let code = dir.join(format!("{label}-src"));
    std::fs::create_dir_all(&code)?;
    std::fs::write(code.join("start.sh"), script)?;
    let file = dir.join(format!("{label}.tar.gz"));
    let meta = Metadata {
        path: String::new(),
        kind: "node".into(),
        label: label.into(),
    };
    package::write(&meta, &code, &file)?;
    Ok(Package::open(&file, Limits::default())?)
}

fn tls() -> Result<TlsMaterial> {
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["bench".into()])?.self_signed(&key)?;
    Ok(TlsMaterial {
        client_cert: cert.pem().into_bytes(),
        client_key: key.serialize_pem().into_bytes(),
        root_cert: cert.pem().into_bytes(),
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn p90(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[(v.len() * 9 / 10).min(v.len() - 1)]
}

fn docker_cli(args: &[&str]) -> Result<()> {
    let out = Command::new("docker").args(args).output()?;
    if !out.status.success() {
        return Err(format!("docker {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// A raw bollard client of the engine (the floor cclaunch is measured
/// against), its API version negotiated as cclaunch's own.
async fn bollard_client(endpoint: &str) -> Result<bollard::Docker> {
    let client = match endpoint.strip_prefix("unix://") {
        Some(path) => bollard::Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)?,
        None => bollard::Docker::connect_with_http(endpoint, 120, bollard::API_DEFAULT_VERSION)?,
    };
    Ok(client.negotiate_version().await?)
}

async fn start_latency(launcher: &Launcher, dir: &Path) -> Result<()> {
    let package = shell_package(dir, "benchstart", "sleep 600\n")?;
    let built = launcher.build(&package, &|_: &str| {}).await?;
    let tls = tls()?;
    let tarball = bytes::Bytes::from(cclaunch::runtime::docker::files::tarball(
        &cclaunch::launcher::tls::files(&tls),
    )?);
    let tar_file = dir.join("tls.tar.gz");
    std::fs::write(&tar_file, &tarball)?;
    let env = cclaunch::launcher::env::chaincode_env(
        &package.id,
        &launcher.config().logging_env(),
        true,
        "SampleOrg",
    );
    let peer = cclaunch::platform::PeerAddress::parse("127.0.0.1:7052")?;
    let args = cclaunch::platform::Platform::Node.args(&peer);
    let client = bollard_client(&launcher.config().vm.endpoint).await?;
    let host_config: bollard::models::HostConfig = serde_json::from_value(
        serde_json::Value::Object(launcher.config().vm.docker.host_config.settings().clone()),
    )?;

    let (mut ours, mut floor, mut cli) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // cclaunch: inspect old + image type + create + attach + TLS upload + start.
        let t = Instant::now();
        launcher
            .start(StartRequest {
                package_id: package.id.clone(),
                platform: None,
                peer_address: "127.0.0.1:7052".into(),
                tls: Some(tls.clone()),
                msp_id: None,
                extra_env: Vec::new(),
                image_of: None,
            })
            .await?;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        launcher.stop(&package.id).await?;

        // The floor: the same three engine calls, back to back, from bollard.
        let name = format!("bench-floor-{round}");
        let t = Instant::now();
        client
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(built.image.clone()),
                    cmd: Some(args.clone()),
                    env: Some(env.clone()),
                    host_config: Some(host_config.clone()),
                    ..Default::default()
                },
            )
            .await?;
        upload_at_root(&client, &name, &tarball).await?;
        client.start_container(&name, None).await?;
        floor.push(t.elapsed().as_secs_f64() * 1000.0);
        force_remove(&client, &name).await?;

        // The docker CLI: create, cp, start.
        let name = format!("bench-cli-{round}");
        let mut create: Vec<String> = vec![
            "create".into(),
            "--name".into(),
            name.clone(),
            "--network".into(),
            "host".into(),
        ];
        for e in &env {
            create.push("-e".into());
            create.push(e.clone());
        }
        create.push(built.image.clone());
        create.extend(args.iter().cloned());
        let create: Vec<&str> = create.iter().map(String::as_str).collect();
        let t = Instant::now();
        docker_cli(&create)?;
        let mut cp = Command::new("docker")
            .args(["cp", "-", &format!("{name}:/")])
            .stdin(Stdio::piped())
            .spawn()?;
        cp.stdin.take().ok_or("stdin")?.write_all(&tarball)?;
        cp.wait()?;
        docker_cli(&["start", &name])?;
        cli.push(t.elapsed().as_secs_f64() * 1000.0);
        docker_cli(&["rm", "-f", &name])?;
    }
    let (mo, mf, mc) = (median(&mut ours), median(&mut floor), median(&mut cli));
    println!("## Start latency (create + TLS upload + start), {ROUNDS} interleaved rounds\n");
    println!("| path | median ms | p90 ms | vs floor |\n|---|---|---|---|");
    println!("| cclaunch `Launcher::start` (also checks ownership, reads the image's type, attaches output) | {mo:.1} | {:.1} | {:.2}x |", p90(&mut ours), mo / mf);
    println!(
        "| minimal bollard client (floor) | {mf:.1} | {:.1} | 1.00x |",
        p90(&mut floor)
    );
    println!(
        "| docker CLI create/cp/start | {mc:.1} | {:.1} | {:.2}x |",
        p90(&mut cli),
        mc / mf
    );
    println!("\nTarget: cclaunch within 1.10x of the floor at the median.\n");
    docker_cli(&["rmi", "-f", &built.image])?;
    Ok(())
}

async fn mirroring(launcher: &Launcher, dir: &Path) -> Result<()> {
    const LINES: u64 = 1_000_000;
    // The container waits a moment so both readers are attached before it writes.
    let package = shell_package(dir, "benchlines", "sleep 1\nseq 1 1000000\n")?;
    let built = launcher.build(&package, &|_: &str| {}).await?;
    println!("## Output mirroring: a container printing {LINES} lines, 3 interleaved rounds\n");
    println!("| reader | lines seen | lines/s (median) |\n|---|---|---|");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut ours_seen, mut theirs_seen) = (0, 0);
    for _ in 0..3 {
        let request = StartRequest {
            package_id: package.id.clone(),
            platform: None,
            peer_address: "127.0.0.1:7052".into(),
            tls: None,
            msp_id: None,
            extra_env: Vec::new(),
            image_of: None,
        };
        let started = launcher.start(request.clone()).await?;
        let t = Instant::now();
        ours_seen = launcher.output_closed(&package.id).await.unwrap_or(0);
        ours.push(ours_seen as f64 / (t.elapsed().as_secs_f64() - 1.0));
        launcher.stop(&package.id).await?;

        let started2 = launcher.start(request).await?;
        let t = Instant::now();
        let mut child = Command::new("docker")
            .args(["logs", "-f", &started2.container])
            .stdout(Stdio::piped())
            .spawn()?;
        let reader = BufReader::new(child.stdout.take().ok_or("stdout")?);
        theirs_seen = reader.lines().count() as u64;
        child.wait()?;
        theirs.push(theirs_seen as f64 / (t.elapsed().as_secs_f64() - 1.0));
        launcher.stop(&package.id).await?;
        let _ = started;
    }
    println!("| cclaunch (attach → line splitter → `peer.chaincode.<name>` logger) | {ours_seen} | {:.0} |", median(&mut ours));
    println!(
        "| `docker logs -f` | {theirs_seen} | {:.0} |",
        median(&mut theirs)
    );
    println!("\nThe rate counts from start, less the container's 1 s head start. The mirror's rate limit is off here (`cclaunch.output.maxLinesPerSecond: 0`, `maxBytesPerSecond: 0`); with the defaults, 10,000 lines/s with a 30 s burst, a flood like this one is mirrored up to the limit and the rest counted as dropped. Target: no slower, zero lines lost.\n");
    docker_cli(&["rmi", "-f", &built.image])?;
    Ok(())
}

fn package_throughput(dir: &Path) -> Result<()> {
    use rand_like::fill;
    // 200 MB of incompressible code in 50 files: the worst case for hashing and
    // inflating (the outer gzip cannot shrink it either).
    let code = dir.join("big-src");
    std::fs::create_dir_all(&code)?;
    let mut seed = 0x9e3779b97f4a7c15u64;
    for i in 0..50 {
        let mut data = vec![0u8; 4 << 20];
        fill(&mut data, &mut seed);
        std::fs::write(code.join(format!("blob{i:02}.bin")), data)?;
    }
    let file = dir.join("big.tar.gz");
    let meta = Metadata {
        path: String::new(),
        kind: "node".into(),
        label: "big".into(),
    };
    package::write(&meta, &code, &file)?;
    std::fs::remove_dir_all(&code)?;
    let size = std::fs::metadata(&file)?.len() as f64 / 1e6;
    let bin = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("cclaunch"))
        .ok_or("no target dir")?;
    let file_arg = file.to_str().ok_or("path")?;
    let mut rows: HashMap<&str, (Vec<f64>, u64)> = HashMap::new();
    for _ in 0..3 {
        for (name, program, args) in [
            (
                "cclaunch package-id (validate both layers + sha256)",
                bin.to_str().ok_or("path")?,
                vec!["package-id", file_arg],
            ),
            (
                "sha256sum (hash only, the floor)",
                "sha256sum",
                vec![file_arg],
            ),
        ] {
            let (secs, rss_kib) = run_measured(program, &args)?;
            let row = rows.entry(name).or_default();
            row.0.push(size / secs);
            row.1 = row.1.max(rss_kib);
        }
    }
    println!("## Package id + validation, {size:.0} MB package, 3 interleaved rounds\n");
    println!("| command | MB/s (median) | peak RSS |\n|---|---|---|");
    for name in [
        "cclaunch package-id (validate both layers + sha256)",
        "sha256sum (hash only, the floor)",
    ] {
        let row = rows.get_mut(name).ok_or("row")?;
        println!(
            "| {name} | {:.0} | {:.1} MB |",
            median(&mut row.0),
            row.1 as f64 / 1024.0
        );
    }
    println!("\nTarget: at least 300 MB/s, peak RSS under 64 MB.\n");
    Ok(())
}

/// The real Node shim: from `start` to REGISTER at devpeer, next to the
/// container start alone, so the shim's own start-up cost is visible.
async fn node_registration(docker: Arc<Docker>, dir: &Path) -> Result<()> {
    use cclaunch::devpeer::{Creator, DevPeer};
    const ROUNDS: usize = 10;
    let config_file = dir.join("node.yaml");
    std::fs::write(
        &config_file,
        "chaincode:\n  node:\n    runtime: cclaunch-test/nodeenv:latest\npeer:\n  id: bench\n  networkId: bench\ncclaunch:\n  build:\n    mounts: [\"/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/host-ca.crt\"]\n    env: [\"npm_config_cafile=/etc/ssl/certs/host-ca.crt\"]\n",
    )?;
    let launcher = Launcher::new(docker, Config::load(Some(&config_file))?);
    let code = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/chaincode/node-shim");
    let file = dir.join("node-shim.tar.gz");
    let meta = Metadata {
        path: String::new(),
        kind: "node".into(),
        label: "benchshim".into(),
    };
    package::write(&meta, &code, &file)?;
    let package = Package::open(&file, Limits::default())?;
    let built = launcher.build(&package, &|_: &str| {}).await?;
    let peer = DevPeer::new(Creator {
        msp_id: "SampleOrg".into(),
        cert_pem: Vec::new(),
    });
    let listening = peer.listen(([127, 0, 0, 1], 0).into(), None).await?;
    let (mut start, mut register) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        launcher
            .start(StartRequest {
                package_id: package.id.clone(),
                platform: Some(built.platform),
                peer_address: listening.addr.to_string(),
                tls: None,
                msp_id: None,
                extra_env: Vec::new(),
                image_of: None,
            })
            .await?;
        start.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::timeout(Duration::from_secs(60), peer.wait_registered(&package.id)).await?;
        register.push(t.elapsed().as_secs_f64() * 1000.0);
        launcher.stop(&package.id).await?;
        // Let devpeer see the stream end before the next round registers again.
        let gone = async {
            while peer.registered().contains(&package.id) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), gone).await?;
    }
    listening.shutdown().await;
    println!("## Node chaincode (npm fabric-shim 2.5.8) registration, {ROUNDS} rounds\n");
    println!("| from `start` to | median ms | p90 ms |\n|---|---|---|");
    println!(
        "| container started (create + start) | {:.0} | {:.0} |",
        median(&mut start),
        p90(&mut start)
    );
    println!(
        "| REGISTER received at devpeer | {:.0} | {:.0} |",
        median(&mut register),
        p90(&mut register)
    );
    println!("\nThe difference is the shim's own start-up (npm start, node, grpc-js connect).\n");
    docker_cli(&["rmi", "-f", &built.image])?;
    Ok(())
}

/// Runs a command to completion; wall seconds and the child's peak RSS (KiB),
/// read from its own VmHWM while it runs (a spawned child's rusage would also
/// count the parent's memory it shared before exec).
fn run_measured(program: &str, args: &[&str]) -> Result<(f64, u64)> {
    let t = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak = peak.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let secs = t.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("{program} failed ({status})").into());
    }
    Ok((secs, peak))
}

mod rand_like {
    /// xorshift64*: fast incompressible bytes without a dependency.
    pub fn fill(buf: &mut [u8], state: &mut u64) {
        for chunk in buf.chunks_mut(8) {
            *state ^= *state >> 12;
            *state ^= *state << 25;
            *state ^= *state >> 27;
            let v = state.wrapping_mul(0x2545f4914f6cdd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `tarball` unpacked at `/` in the container, as a peer uploads its TLS files.
async fn upload_at_root(
    client: &bollard::Docker,
    name: &str,
    tarball: &bytes::Bytes,
) -> Result<()> {
    let options = UploadToContainerOptions {
        path: "/".into(),
        ..Default::default()
    };
    client
        .upload_to_container(name, Some(options), bollard::body_full(tarball.clone()))
        .await?;
    Ok(())
}

async fn force_remove(client: &bollard::Docker, name: &str) -> Result<()> {
    let options = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    client.remove_container(name, Some(options)).await?;
    Ok(())
}
