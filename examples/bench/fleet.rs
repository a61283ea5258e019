//! Section 6: many chaincodes under one sidecar. A real `cclaunch serve`
//! process (the release binary beside this one) starts `CCLAUNCH_BENCH_FLEET`
//! chaincode containers (default 1,000; busybox-based shell image, each
//! printing one numbered line a second) through its own `Start`, so it
//! mirrors each one as a sidecar does. Measured:
//!
//! - the sidecar's RSS idle and with the fleet running: per chaincode;
//! - `List` and a `/metrics` scrape (uncached: spaced past the endpoint's
//!   1 s answer cache) with the fleet running;
//! - a restart (SIGTERM, then a new process): time until every mirror has
//!   logged a line again; every chaincode's numbers, across both
//!   processes, must follow on with no gap and no repeat;
//! - RSS sampled over `CCLAUNCH_BENCH_STEADY_SECS` (default 600) of steady
//!   output.
//!
//! Every container carries this run's own peer id and is removed at the end,
//! after a failure and on Ctrl-C too.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cclaunch::client::{self, Address};
use cclaunch::config::Config;
use cclaunch::launcher::{Launcher, Selection};
use cclaunch::proto::v1::{self as pb, build_event::Event, build_request::Source};
use cclaunch::runtime::docker::Docker;
use cclaunch::runtime::{self, Runner};
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

use super::{median, p90, shell_package, Result, SHENV};

type Client = pb::launcher_client::LauncherClient<Channel>;

/// Starts (and removals) in flight at once: the engine does them.
const CONCURRENCY: usize = 16;
const SAMPLES: usize = 15;
const LATENCY_TARGET_MS: f64 = 50.0;
const RSS_TARGET_KB: f64 = 100.0;
const RESUME_TARGET: Duration = Duration::from_secs(10);
/// How long the fleet may take to show its first lines, or a restart to
/// resume them, before the section gives up.
const PATIENCE: Duration = Duration::from_secs(600);

fn env_number(key: &str, default: u64) -> Result<u64> {
    match std::env::var(key) {
        Ok(v) => Ok(v.parse().map_err(|e| format!("{key}={v}: {e}"))?),
        Err(_) => Ok(default),
    }
}

pub async fn fleet(docker: Arc<Docker>, dir: &Path) -> Result<()> {
    let n = env_number("CCLAUNCH_BENCH_FLEET", 1000)? as usize;
    let steady = Duration::from_secs(env_number("CCLAUNCH_BENCH_STEADY_SECS", 600)?);
    let peer_id = format!("bench-fleet-{}", std::process::id());
    let run = Run {
        dir: dir.join("fleet"),
        peer_id: peer_id.clone(),
    };
    std::fs::create_dir_all(run.dir.join("run"))?;
    let outcome = tokio::select! {
        outcome = measure(&run, n, steady) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    // The sidecar went with the measuring future (killed on drop); now
    // everything this run made goes, whatever happened.
    let t = Instant::now();
    let cleaned = clean_up(&docker, &run).await;
    eprintln!("fleet: clean-up took {:.0} s", t.elapsed().as_secs_f64());
    outcome?;
    cleaned
}

struct Run {
    dir: PathBuf,
    peer_id: String,
}

impl Run {
    fn socket(&self) -> PathBuf {
        self.dir.join("run/api.sock")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn config(&self) -> Result<PathBuf> {
        let file = self.dir.join("fleet.yaml");
        std::fs::write(
            &file,
            format!(
                "chaincode:\n  node:\n    runtime: {SHENV}\npeer:\n  id: {}\n  networkId: bench\ncclaunch:\n  stateDir: {:?}\n  api:\n    packageDirs: [{:?}]\n",
                self.peer_id,
                self.state_dir().display().to_string(),
                self.dir.display().to_string()
            ),
        )?;
        Ok(file)
    }
}

/// What the sidecar's log says about the fleet's lines.
#[derive(Default)]
struct Seen {
    /// The last line number mirrored, by container.
    last: HashMap<String, u32>,
    /// Containers with a line mirrored by the current sidecar process.
    fresh: HashSet<String>,
    lines: u64,
    gaps: u64,
    repeats: u64,
}

/// A `cclaunch serve` process; killed when dropped.
struct Sidecar {
    child: tokio::process::Child,
    pid: u32,
    operations: String,
}

impl Sidecar {
    async fn spawn(run: &Run, config: &Path, seen: Arc<Mutex<Seen>>) -> Result<Sidecar> {
        let bin = std::env::current_exe()?
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("cclaunch"))
            .ok_or("no target dir")?;
        let mut child = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .arg("--socket")
            .arg(run.socket())
            .args(["--operations", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("the sidecar exited at once")?;
        seen.lock().map_err(|_| "poisoned")?.fresh.clear();
        let stderr = child.stderr.take().ok_or("stderr")?;
        tokio::spawn(async move {
            let line = regex::Regex::new(
                r"peer\.chaincode\.([A-Za-z0-9_.-]+).* fleet output .* line (\d+)$",
            )
            .expect("a valid pattern");
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(text)) = lines.next_line().await {
                let Some(c) = line.captures(&text) else {
                    continue;
                };
                let Ok(number) = c[2].parse::<u32>() else {
                    continue;
                };
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                let last = seen.last.entry(c[1].to_string()).or_insert(0);
                let before = *last;
                *last = number.max(before);
                if number <= before {
                    seen.repeats += 1;
                } else if number > before + 1 {
                    seen.gaps += 1;
                }
                seen.lines += 1;
                seen.fresh.insert(c[1].to_string());
            }
        });
        let stdout = child.stdout.take().ok_or("stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let operations = tokio::time::timeout(PATIENCE, async {
            while let Ok(Some(text)) = lines.next_line().await {
                if let Some(rest) = text.strip_prefix("operations endpoint on http://") {
                    return rest.split_whitespace().next().map(str::to_string);
                }
            }
            None
        })
        .await?
        .ok_or("the sidecar never served its operations endpoint")?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Sidecar {
            child,
            pid,
            operations,
        })
    }

    /// Resident memory now, in KiB.
    fn rss_kib(&self) -> Result<u64> {
        self.status("VmRSS")
    }

    /// Threads now: the runtime's workers and its blocking pool, which
    /// grows with checkpoint writes queued at once.
    fn threads(&self) -> Result<u64> {
        self.status("Threads")
    }

    /// A number from /proc/PID/status (its unit, if any, dropped).
    fn status(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no {field} in /proc/PID/status").into())
    }

    /// CPU time used so far (user + system), in seconds.
    fn cpu_secs(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command (which may hold spaces): state is the 3rd.
        let rest = stat.rsplit_once(')').ok_or("stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields.get(11).ok_or("utime")?.parse::<u64>()?
            + fields.get(12).ok_or("stime")?.parse::<u64>()?;
        // SAFETY: sysconf only reads a constant of the system.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Ok(ticks as f64 / per_second.max(1) as f64)
    }

    /// `GET /metrics`: the time it took and the running chaincodes it says.
    async fn scrape(&self) -> Result<(f64, u64)> {
        let t = Instant::now();
        let mut stream = tokio::net::TcpStream::connect(&self.operations).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        let took = ms(t);
        if !body.starts_with("HTTP/1.1 200") {
            return Err(format!("/metrics answered {}", body.lines().next().unwrap_or("")).into());
        }
        let running = body
            .lines()
            .find_map(|l| l.strip_prefix("cclaunch_running_chaincodes "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("/metrics has no cclaunch_running_chaincodes")?;
        Ok((took, running))
    }

    /// Asks for a clean shutdown and waits for the process to end.
    async fn terminate(mut self) -> Result<Duration> {
        let t = Instant::now();
        let pid = rustix::process::Pid::from_raw(self.pid as i32).ok_or("pid")?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
        tokio::time::timeout(PATIENCE, self.child.wait()).await??;
        Ok(t.elapsed())
    }
}

async fn connect(socket: &Path) -> Result<Client> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if socket.exists() {
            let address = Address::Unix(socket.to_path_buf());
            if let Ok(client) = client::connect(&address, None, Duration::from_secs(5)).await {
                return Ok(client);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("the sidecar never listened on {}", socket.display()).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `done` holds of what the log said, or gives up.
async fn until(seen: &Mutex<Seen>, what: &str, done: impl Fn(&Seen) -> bool) -> Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if done(&*seen.lock().map_err(|_| "poisoned")?) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("fleet: gave up waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn build(client: &mut Client, package: &Path) -> Result<pb::BuildDone> {
    let requests = vec![pb::BuildRequest {
        source: Some(Source::Path(package.display().to_string())),
    }];
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

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn measure(run: &Run, n: usize, steady: Duration) -> Result<()> {
    let config = run.config()?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sidecar = Sidecar::spawn(run, &config, seen.clone()).await?;
    let mut client = connect(&run.socket()).await?;
    let package = shell_package(
        &run.dir,
        "fleet",
        "i=0\nwhile true; do i=$((i+1)); echo \"fleet output of about the length a Fabric shim's log line has: line $i\"; sleep 1; done\n",
    )?;
    let built = build(&mut client, &package.file).await?;
    client.list(pb::ListRequest::default()).await?;
    sidecar.scrape().await?;
    let rss_idle = sidecar.rss_kib()?;

    // The fleet, started through the sidecar: N chaincode ids from the one
    // image (image_of), TLS off (it changes nothing the sidecar keeps).
    let hash = built.package_id.rsplit(':').next().unwrap_or("");
    let ids: Vec<String> = (0..n).map(|i| format!("fleet{i}:{hash}")).collect();
    let t = Instant::now();
    let starts = futures_util::stream::iter(ids.iter().map(|id| {
        let mut client = client.clone();
        let request = pb::StartRequest {
            package_id: id.clone(),
            peer_address: "127.0.0.1:7052".into(),
            image_of: built.package_id.clone(),
            ..Default::default()
        };
        async move { client.start(request).await }
    }))
    .buffer_unordered(CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    for started in starts {
        started?;
    }
    let started_in = t.elapsed();
    until(&seen, "a line of every chaincode", |s| s.fresh.len() >= n).await?;
    // Two more lines from each, so every mirror is in its steady state.
    let settled = seen.lock().map_err(|_| "poisoned")?.lines + 2 * n as u64;
    until(&seen, "steady output", |s| s.lines >= settled).await?;
    let rss_fleet = sidecar.rss_kib()?;

    let mut list = Vec::new();
    let mut scrape = Vec::new();
    for _ in 0..SAMPLES {
        let t = Instant::now();
        let listed = client.list(pb::ListRequest::default()).await?.into_inner();
        list.push(ms(t));
        if listed.chaincodes.len() != n {
            return Err(
                format!("List said {} chaincodes, not {n}", listed.chaincodes.len()).into(),
            );
        }
        // Past the operations endpoint's 1 s answer cache: each scrape asks.
        tokio::time::sleep(cclaunch::api::operations::ANSWER_TTL).await;
        let (took, running) = sidecar.scrape().await?;
        scrape.push(took);
        if running != n as u64 {
            return Err(format!("/metrics said {running} running, not {n}").into());
        }
    }

    // Restart: a clean shutdown (every checkpoint written), a new process.
    let stopped_in = sidecar.terminate().await?;
    let t = Instant::now();
    let sidecar = Sidecar::spawn(run, &config, seen.clone()).await?;
    let mut client = connect(&run.socket()).await?;
    client.list(pb::ListRequest::default()).await?;
    let serving_in = t.elapsed();
    until(&seen, "every mirror resumed", |s| s.fresh.len() >= n).await?;
    let resumed_in = t.elapsed();

    // Steady output: RSS sampled ten times over the period; threads every
    // second, the most in each tenth kept (the blocking pool's threads come
    // and go within seconds).
    let mut samples = vec![(
        0.0,
        sidecar.rss_kib()?,
        sidecar.threads()?,
        seen.lock().map_err(|_| "poisoned")?.lines,
    )];
    let cpu_before = sidecar.cpu_secs()?;
    let t = Instant::now();
    for i in 1..=10u32 {
        let end = t + steady * i / 10;
        let mut threads = sidecar.threads()?;
        while Instant::now() < end {
            let next = (Instant::now() + Duration::from_secs(1)).min(end);
            tokio::time::sleep_until(next.into()).await;
            threads = threads.max(sidecar.threads()?);
        }
        let lines = seen.lock().map_err(|_| "poisoned")?.lines;
        samples.push((
            t.elapsed().as_secs_f64(),
            sidecar.rss_kib()?,
            threads,
            lines,
        ));
    }
    let cpu = (sidecar.cpu_secs()? - cpu_before) / t.elapsed().as_secs_f64();
    let (after, _) = sidecar.scrape().await?;
    let (gaps, repeats, lines) = {
        let s = seen.lock().map_err(|_| "poisoned")?;
        (s.gaps, s.repeats, s.lines)
    };
    drop(sidecar);

    println!("## {n} chaincodes under one sidecar\n");
    println!(
        "A `cclaunch serve` process mirrors {n} running chaincode containers (a busybox shell image, one numbered line a second each), started through its own `Start` ({CONCURRENCY} at a time; all {n} in {:.0} s).\n",
        started_in.as_secs_f64()
    );
    let per = (rss_fleet as f64 - rss_idle as f64) / n as f64;
    let verdict = |ok: bool| if ok { "within" } else { "over" };
    println!("| measure | figure | target |\n|---|---|---|");
    println!(
        "| sidecar RSS idle / with {n} running | {:.1} MB / {:.1} MB | |",
        mb(rss_idle),
        mb(rss_fleet)
    );
    println!(
        "| RSS per running chaincode, fleet just started | {per:.0} KiB | under {RSS_TARGET_KB} KB: {} |",
        verdict(per < RSS_TARGET_KB)
    );
    // After the steady period: what a mirror holds once it has run a while
    // (its read buffers at their size after the restart's catch-up).
    let rss_end = samples.last().map_or(0, |s| s.1);
    let per_end = (rss_end as f64 - rss_idle as f64) / n as f64;
    println!(
        "| RSS per running chaincode, after the restart and the steady period | {per_end:.0} KiB | under {RSS_TARGET_KB} KB: {} |",
        verdict(per_end < RSS_TARGET_KB)
    );
    for (name, samples) in [
        (format!("`List` at {n}, median / p90"), &mut list),
        (
            format!("`/metrics` scrape at {n} (uncached), median / p90"),
            &mut scrape,
        ),
    ] {
        let m = median(samples);
        println!(
            "| {name} | {m:.1} / {:.1} ms | under {LATENCY_TARGET_MS} ms: {} |",
            p90(samples),
            verdict(m < LATENCY_TARGET_MS)
        );
    }
    println!(
        "| restart: clean shutdown (SIGTERM to exit) | {:.2} s | |",
        stopped_in.as_secs_f64()
    );
    println!(
        "| restart: new process to its first `List` answered | {:.2} s | |",
        serving_in.as_secs_f64()
    );
    println!(
        "| restart: new process to every mirror logging again | {:.2} s | under {} s: {} |",
        resumed_in.as_secs_f64(),
        RESUME_TARGET.as_secs(),
        verdict(resumed_in < RESUME_TARGET)
    );
    println!(
        "| lines mirrored in all; gaps; repeats (across the restart) | {lines}; {gaps}; {repeats} | 0 gaps, 0 repeats |"
    );
    println!(
        "\nSidecar RSS over {} s of steady output ({n} lines/s):\n",
        steady.as_secs()
    );
    println!(
        "| s | RSS MB | threads (most in the tenth) | lines mirrored since |\n|---|---|---|---|"
    );
    for (at, rss, threads, lines) in &samples {
        println!(
            "| {at:.0} | {:.1} | {threads} | {} |",
            mb(*rss),
            lines - samples[0].3
        );
    }
    println!(
        "\nThe sidecar used {:.1} % of one core over the period; a last scrape after it took {after:.1} ms.\n",
        cpu * 100.0
    );
    Ok(())
}

/// Removes every container of this run's peer ({CONCURRENCY} at a time;
/// an engine this busy may fail a removal, so up to three rounds), then its
/// image (gc).
async fn clean_up(docker: &Arc<Docker>, run: &Run) -> Result<()> {
    let mut failed = None;
    for _ in 0..3 {
        let containers = docker
            .list_containers(&[(runtime::LABEL_PEER_ID, run.peer_id.as_str())])
            .await?;
        if containers.is_empty() {
            failed = None;
            break;
        }
        let removals = futures_util::stream::iter(containers.iter().map(|c| {
            let docker = docker.clone();
            let id = c.id.clone();
            async move { docker.remove_container(&id).await }
        }))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
        failed = removals.into_iter().find_map(|removed| match removed {
            Ok(()) | Err(runtime::Error::NotFound { .. }) => None,
            Err(e) => Some(e),
        });
    }
    let config = Config::load(Some(&run.config()?))?;
    let launcher = Launcher::new(docker.clone(), config);
    launcher.gc(&Selection::AllBut(Vec::new())).await?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
