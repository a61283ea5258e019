//! Section 4: the sidecar API as a peer uses it. The sidecar runs in this
//! process (`api::serve` on a temp Unix socket, a `Launcher` over the real
//! engine) and is driven by the gRPC client over that socket.
//!
//! - N chaincodes launched at once vs the same N one after another;
//! - Build of a package whose image exists, by path and by streamed bytes,
//!   next to the parts it is made of.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cclaunch::api::{serve, Listen};
use cclaunch::client::{self, Address};
use cclaunch::config::Config;
use cclaunch::launcher::{Launcher, Selection, TlsMaterial};
use cclaunch::package::{Limits, Package};
use cclaunch::proto::v1::{self as pb, build_event::Event, build_request::Source};
use cclaunch::runtime::docker::Docker;
use cclaunch::runtime::Engine;
use futures_util::StreamExt;
use tonic::transport::Channel;

use super::{median, p90, shell_package, tls, Result, SHENV};

type Client = pb::launcher_client::LauncherClient<Channel>;

const FLEETS: [usize; 3] = [1, 8, 32];
/// Rounds per fleet size; concurrent and sequential take turns going first.
const ROUNDS: usize = 3;
const BUILD_CALLS: usize = 50;
const BUILD_TARGET_MS: f64 = 5.0;

pub async fn launches_and_builds(docker: Arc<Docker>, dir: &Path) -> Result<()> {
    // A peer id of this run's own: everything the section makes carries it,
    // so the closing Gc removes exactly that (after a failure too) and other
    // users of the engine are left alone.
    let peer_id = format!("bench-api-{}", std::process::id());
    let config_file = dir.join("api.yaml");
    std::fs::write(
        &config_file,
        format!(
            "chaincode:\n  node:\n    runtime: {SHENV}\npeer:\n  id: {peer_id}\n  networkId: bench\ncclaunch:\n  api:\n    packageDirs: [{:?}]\n",
            dir.display().to_string()
        ),
    )?;
    let launcher = Arc::new(Launcher::new(
        docker.clone(),
        Config::load(Some(&config_file))?,
    ));
    let socket = dir.join("run/api.sock");
    let (stop_serving, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        launcher.clone(),
        vec![Listen::Unix(socket.clone())],
        async {
            let _ = stopped.await;
        },
    ));

    let outcome = async {
        let client = connect(&socket).await?;
        let package = shell_package(dir, "benchapi", "sleep 600\n")?;
        let t = Instant::now();
        let first = build(&mut client.clone(), path_source(&package)).await?;
        let first_ms = ms(t);
        launches(&client, &first.package_id).await?;
        reused_builds(&client, &socket, &docker, &package, &first.image, first_ms).await
    }
    .await;

    let collected = launcher.gc(&Selection::AllBut(Vec::new())).await;
    let _ = stop_serving.send(());
    server.await??;
    outcome?;
    collected?;
    Ok(())
}

/// Waits for the sidecar's socket (it binds in its own task), then connects
/// as a peer's external builder does.
async fn connect(socket: &Path) -> Result<Client> {
    for _ in 0..250 {
        if socket.exists() {
            let address = Address::Unix(socket.to_path_buf());
            return Ok(client::connect(&address, None, Duration::from_secs(5)).await?);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("the sidecar never listened on {}", socket.display()).into())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn path_source(package: &Package) -> Vec<pb::BuildRequest> {
    vec![pb::BuildRequest {
        source: Some(Source::Path(package.file.display().to_string())),
    }]
}

async fn build(client: &mut Client, requests: Vec<pb::BuildRequest>) -> Result<pb::BuildDone> {
    let mut events = client
        .build(futures_util::stream::iter(requests))
        .await?
        .into_inner();
    while let Some(event) = events.next().await {
        if let Some(Event::Done(done)) = event?.event {
            return Ok(done);
        }
    }
    Err("the build stream ended without Done".into())
}

/// Start of chaincode `package_id` from the image built for `image_of`, with
/// TLS, as a peer asks for it.
fn start_request(package_id: &str, image_of: &str, tls: &TlsMaterial) -> pb::StartRequest {
    pb::StartRequest {
        package_id: package_id.into(),
        peer_address: "127.0.0.1:7052".into(),
        client_cert: tls.client_cert.clone(),
        client_key: tls.client_key.clone(),
        root_cert: tls.root_cert.clone(),
        image_of: image_of.into(),
        ..Default::default()
    }
}

async fn timed_start(
    mut client: Client,
    request: pb::StartRequest,
) -> std::result::Result<f64, tonic::Status> {
    let t = Instant::now();
    client.start(request).await?;
    Ok(ms(t))
}

/// Launches all at once: the wall time and each launch's own latency.
async fn concurrently(client: &Client, requests: &[pb::StartRequest]) -> Result<(f64, Vec<f64>)> {
    let t = Instant::now();
    // Each call on its own task, as a peer's concurrent launches would be,
    // all multiplexed on the one connection.
    let calls: Vec<_> = requests
        .iter()
        .map(|r| tokio::spawn(timed_start(client.clone(), r.clone())))
        .collect();
    let mut each = Vec::with_capacity(calls.len());
    for call in calls {
        each.push(call.await??);
    }
    Ok((ms(t), each))
}

async fn sequentially(client: &Client, requests: &[pb::StartRequest]) -> Result<(f64, Vec<f64>)> {
    let t = Instant::now();
    let mut each = Vec::with_capacity(requests.len());
    for r in requests {
        each.push(timed_start(client.clone(), r.clone()).await?);
    }
    Ok((ms(t), each))
}

/// Stops (and removes) the chaincode, all at once; not timed.
async fn stop_all(client: &Client, requests: &[pb::StartRequest]) -> Result<()> {
    let stops = requests.iter().map(|r| {
        let mut client = client.clone();
        let package_id = r.package_id.clone();
        async move { client.stop(pb::ChaincodeRef { package_id }).await }
    });
    for stopped in futures_util::future::join_all(stops).await {
        stopped?;
    }
    Ok(())
}

#[derive(Default)]
struct Mode {
    walls: Vec<f64>,
    each: Vec<f64>,
}

impl Mode {
    fn record(&mut self, (wall, each): (f64, Vec<f64>)) {
        self.walls.push(wall);
        self.each.extend(each);
    }
}

async fn launches(client: &Client, built: &str) -> Result<()> {
    // N distinct chaincode ids started from the one built image (image_of),
    // so no launch waits on a build.
    let hash = built.rsplit(':').next().unwrap_or(built);
    let tls = tls()?;
    let mut rows = Vec::new();
    for n in FLEETS {
        let requests: Vec<_> = (0..n)
            .map(|i| start_request(&format!("benchapi{i}:{hash}"), built, &tls))
            .collect();
        let (mut together, mut apart) = (Mode::default(), Mode::default());
        for round in 0..ROUNDS {
            // Alternate the order so drift in the engine's state (or the
            // machine's load) does not favour one mode.
            for concurrent in [round % 2 == 0, round % 2 == 1] {
                if concurrent {
                    together.record(concurrently(client, &requests).await?);
                } else {
                    apart.record(sequentially(client, &requests).await?);
                }
                stop_all(client, &requests).await?;
            }
        }
        rows.push((n, together, apart));
    }
    println!("## Launches through the API: N chaincodes at once vs one after another, {ROUNDS} rounds each\n");
    println!("Each launch is a `Start` RPC with TLS over the sidecar's Unix socket (create + TLS upload + start); wall times are the median round's.\n");
    println!("| N | at once: wall ms | at once: per launch median / p90 ms | one by one: wall ms | one by one: per launch median / p90 ms | speed-up (wall) |");
    println!("|---|---|---|---|---|---|");
    for (n, mut together, mut apart) in rows {
        let (wt, wa) = (median(&mut together.walls), median(&mut apart.walls));
        println!(
            "| {n} | {wt:.0} | {:.0} / {:.0} | {wa:.0} | {:.0} / {:.0} | {:.2}x |",
            median(&mut together.each),
            p90(&mut together.each),
            median(&mut apart.each),
            p90(&mut apart.each),
            wa / wt
        );
    }
    println!();
    Ok(())
}

/// Build of a package whose image exists, both sources, interleaved; and the
/// parts that call is made of, measured alone, to show where the time goes.
async fn reused_builds(
    client: &Client,
    socket: &Path,
    docker: &Docker,
    package: &Package,
    image: &str,
    first_ms: f64,
) -> Result<()> {
    let bytes = std::fs::read(&package.file)?;
    let chunks = || {
        bytes
            .chunks(64 << 10)
            .map(|c| pb::BuildRequest {
                source: Some(Source::Chunk(c.to_vec())),
            })
            .collect::<Vec<_>>()
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(socket).await?);
    let mut client = client.clone();
    let (mut by_path, mut by_chunk) = (Vec::new(), Vec::new());
    let (mut open, mut inspect, mut round_trip) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..BUILD_CALLS {
        let t = Instant::now();
        let done = build(&mut client, path_source(package)).await?;
        by_path.push(ms(t));
        let t = Instant::now();
        let again = build(&mut client, chunks()).await?;
        by_chunk.push(ms(t));
        if !(done.reused && again.reused) {
            return Err("a Build of the built package did not reuse its image".into());
        }

        let file = package.file.clone();
        let t = Instant::now();
        tokio::task::spawn_blocking(move || Package::open(&file, Limits::default())).await??;
        open.push(ms(t));
        let t = Instant::now();
        docker.image_labels(image).await?;
        inspect.push(ms(t));
        let t = Instant::now();
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "cclaunch.v1.Launcher".into(),
            })
            .await?;
        round_trip.push(ms(t));
    }
    println!(
        "## Build of an already-built package through the API, {BUILD_CALLS} interleaved calls each\n"
    );
    println!(
        "A {} byte shell package; its first Build (image made) took {first_ms:.0} ms.\n",
        bytes.len()
    );
    println!("| call | median ms | p90 ms | vs {BUILD_TARGET_MS} ms target |\n|---|---|---|---|");
    for (name, samples) in [
        ("`Build`, `path` source (reused)", &mut by_path),
        (
            "`Build`, `chunk` source (bytes streamed, spooled, reused)",
            &mut by_chunk,
        ),
    ] {
        let m = median(samples);
        let verdict = if m < BUILD_TARGET_MS {
            "within"
        } else {
            "over"
        };
        println!("| {name} | {m:.2} | {:.2} | {verdict} |", p90(samples));
    }
    for (name, samples) in [
        (
            "part: `Package::open` of the file (validate + sha256)",
            &mut open,
        ),
        ("part: engine image inspect (the reuse check)", &mut inspect),
        (
            "part: gRPC round trip on the socket (`grpc.health.v1` Check, no engine call)",
            &mut round_trip,
        ),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | |",
            median(samples),
            p90(samples)
        );
    }
    println!();
    Ok(())
}

/// A second connection for the health service (the launcher client keeps
/// its channel to itself), made the same way as `client::connect`'s.
async fn channel(socket: &Path) -> Result<Channel> {
    let socket = socket.to_path_buf();
    let channel = tonic::transport::Endpoint::from_static("http://sidecar")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await?;
    Ok(channel)
}
