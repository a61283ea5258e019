//! `bench -- swarm`: the Swarm engine on the lab of tests/cluster (run under
//! `tests/cluster/with-swarm.sh`, as `make bench` does), against the Docker
//! engine on the same daemon (the lab's manager) with the same image:
//!
//! 1. start latency, interleaved: until `Launcher::start` returns, and until
//!    the chaincode's first line reached cclaunch (it runs);
//! 2. 32 chaincodes launched at once on the workers: wall time until every
//!    start returned and until every one ran, and how many ran on each node.
//!
//! Each chaincode prints its host name first: that line is the "it runs"
//! mark and says which node it runs on.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cclaunch::config::Config;
use cclaunch::launcher::{Launcher, StartRequest};
use cclaunch::runtime::docker::Docker;
use cclaunch::runtime::swarm::{Swarm, SwarmOptions};
use cclaunch::runtime::Runner;

use super::{median, p90, shell_package, Result, SHENV};

const ROUNDS: usize = 11;
const AT_ONCE: usize = 32;

/// The first mirrored line of each chaincode logger, and when it came.
#[derive(Clone, Default)]
pub struct FirstLines(Arc<Mutex<HashMap<String, (Instant, String)>>>);

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FirstLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let Some(container) = event.metadata().target().strip_prefix("peer.chaincode.") else {
            return;
        };
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !lines.contains_key(container) {
            let mut message = Message(String::new());
            event.record(&mut message);
            lines.insert(container.to_string(), (Instant::now(), message.0));
        }
    }
}

impl FirstLines {
    fn take(&self, container: &str) -> Option<(Instant, String)> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(container)
    }

    /// Waits (polling, with a deadline) for the first line of `container`.
    async fn wait(&self, container: &str) -> Result<(Instant, String)> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(first) = self.take(container) {
                return Ok(first);
            }
            if Instant::now() > deadline {
                return Err(format!("{container} printed nothing within 300 s").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn lab_var(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| {
        format!("{name} is not set: run the swarm section under tests/cluster/with-swarm.sh").into()
    })
}

fn request(package_id: &str, image_of: &str) -> StartRequest {
    StartRequest {
        package_id: package_id.into(),
        platform: None,
        peer_address: "127.0.0.1:7052".into(),
        tls: Some(super::tls().expect("TLS material")),
        msp_id: None,
        extra_env: Vec::new(),
        image_of: Some(image_of.into()),
    }
}

pub async fn run(first: FirstLines, dir: &Path) -> Result<()> {
    let manager = lab_var("CCLAUNCH_SWARM_MANAGER")?;
    let registry = lab_var("CCLAUNCH_SWARM_REGISTRY")?;
    let images = std::process::Command::new("tests/cluster/images.sh")
        .args(["busybox", "shenv"])
        .status()?;
    if !images.success() {
        return Err("tests/cluster/images.sh busybox shenv failed".into());
    }
    let config_file = dir.join("swarm.yaml");
    std::fs::write(
        &config_file,
        format!(
            "vm:\n  endpoint: {manager}\nchaincode:\n  node:\n    runtime: {SHENV}\npeer:\n  id: bench-swarm-{pid}\n  networkId: bench\ncclaunch:\n  stateDir: {state}\n  engine:\n    kind: swarm\n  registry:\n    address: {registry}\n",
            pid = std::process::id(),
            state = dir.join("state").display(),
        ),
    )?;
    let config = Config::load(Some(&config_file))?;
    let timeouts = (&config.cclaunch.engine).into();
    let docker = Arc::new(Docker::connect(&manager).await?.with_timeouts(timeouts));
    let options = SwarmOptions {
        constraints: vec!["node.role==worker".into()],
        timeouts,
        ..SwarmOptions::default()
    };
    let swarm = Arc::new(Swarm::connect(&manager, options).await?);
    let info = swarm.ping().await?;
    let registry = config.registry()?.ok_or("no registry")?;
    let on_swarm =
        Launcher::with_runner(docker.clone(), swarm, config.clone()).with_registry(registry);
    let on_docker = Launcher::new(docker, config);

    println!("## Swarm engine against the Docker engine (lab of tests/cluster)\n");
    println!(
        "Lab: a manager and two workers, each dockerd {} (API {}) in its own network namespace \
         on this machine, registry at {}; swarm services placed on `node.role==worker`. \
         The Docker rows run on the manager's dockerd, the same daemon and image.\n",
        info.version,
        info.api_version,
        lab_var("CCLAUNCH_SWARM_REGISTRY")?
    );

    let package = shell_package(
        dir,
        "benchswarm",
        "echo \"host $(hostname)\"\nexec sleep 600\n",
    )?;
    let t = Instant::now();
    on_swarm.build(&package, &|_: &str| {}).await?;
    let built = t.elapsed().as_secs_f64();

    // 1. One chaincode at a time, the engines alternating which goes first.
    let mut rows: [(Vec<f64>, Vec<f64>); 2] = Default::default();
    for round in 0..ROUNDS {
        for turn in 0..2 {
            let which = (round + turn) % 2;
            let launcher = if which == 0 { &on_docker } else { &on_swarm };
            let t = Instant::now();
            let started = launcher.start(request(&package.id, &package.id)).await?;
            let returned = t.elapsed();
            let (ran, _) = first.wait(&started.container).await?;
            rows[which].0.push(returned.as_secs_f64() * 1000.0);
            rows[which]
                .1
                .push(ran.duration_since(t).as_secs_f64() * 1000.0);
            launcher.stop(&package.id).await?;
        }
    }
    println!(
        "### Start latency, {ROUNDS} interleaved rounds (image built and pushed once in {built:.1} s)\n"
    );
    println!("| engine | `start` returns, median ms | p90 ms | first line mirrored (it runs), median ms | p90 ms |");
    println!("|---|---|---|---|---|");
    for (name, (returned, ran)) in ["Docker (manager's dockerd)", "Swarm (service on a worker)"]
        .iter()
        .zip(rows.iter_mut())
    {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            median(returned),
            p90(returned),
            median(ran),
            p90(ran)
        );
    }
    println!();

    // 2. AT_ONCE chaincode ids from the one pushed image, all at once.
    let hash = package.id.split_once(':').map(|(_, h)| h).unwrap_or("0");
    let ids: Vec<String> = (0..AT_ONCE)
        .map(|i| format!("benchswarm{i}:{hash}"))
        .collect();
    let t = Instant::now();
    let starts = ids
        .iter()
        .map(|id| on_swarm.start(request(id, &package.id)));
    let started = futures_util::future::join_all(starts).await;
    let all_returned = t.elapsed().as_secs_f64();
    let mut containers = Vec::new();
    for s in started {
        containers.push(s?.container);
    }
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    let mut last = t;
    for container in &containers {
        let (ran, line) = first.wait(container).await?;
        last = last.max(ran);
        let host = line.strip_prefix("host ").unwrap_or(&line).to_string();
        *per_node.entry(host).or_default() += 1;
    }
    let all_ran = last.duration_since(t).as_secs_f64();
    let stopping = Instant::now();
    let stops = ids.iter().map(|id| on_swarm.stop(id));
    for stopped in futures_util::future::join_all(stops).await {
        stopped?;
    }
    let stopped = stopping.elapsed().as_secs_f64();
    println!("### {AT_ONCE} chaincodes launched at once on the swarm\n");
    println!("| measure | value |\n|---|---|");
    println!("| every `start` returned | {all_returned:.2} s |");
    println!("| every chaincode ran (first line mirrored) | {all_ran:.2} s |");
    println!("| all {AT_ONCE} stopped (services, secrets, configs removed) | {stopped:.2} s |");
    let spread: Vec<String> = per_node.iter().map(|(n, c)| format!("{n}: {c}")).collect();
    println!("| chaincodes per node | {} |", spread.join(", "));
    println!();
    Ok(())
}
