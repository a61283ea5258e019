//! The output mirror is rate-limited per chaincode: a chaincode writing as
//! fast as it can (`yes`) reaches the sidecar's stderr at the configured
//! rate, the drops are summed up in the log and counted in /metrics, a
//! chaincode at a normal rate loses nothing, and dropped lines still count
//! in the mirror's checkpoint. Against a real `serve` on the real engine.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cclaunch::proto::v1 as pb;
use cclaunch::proto::v1::launcher_client::LauncherClient;
use common::sidecar::Sidecar;
use common::{checkpoint_dir, eventually, Env};
use tonic::transport::Channel;

const LINES_PER_SECOND: u64 = 200;
const BYTES_PER_SECOND: u64 = 4000;
const FLOOD_LINE: &str = "flood-line-0123456789012345678901234567";

/// Builds and starts a shell chaincode; its package id and container.
async fn start(
    client: &mut LauncherClient<Channel>,
    env: &Env,
    label: &str,
    script: &str,
) -> (String, String) {
    let package = env.shell_package(label, script);
    let container = common::sidecar::build_and_start(client, &package).await;
    (package.id, container)
}

/// The messages the sidecar logged under a chaincode's logger.
fn mirrored(log: &str, container: &str) -> Vec<String> {
    let target = format!("peer.chaincode.{container}: ");
    log.lines()
        .filter_map(|l| l.split_once(&target).map(|(_, m)| m.to_string()))
        .collect()
}

fn checkpointed_stdout(peer: &str, container: &str) -> u64 {
    let file = checkpoint_dir(peer).join(format!("{container}.json"));
    std::fs::read(file)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|record| record["stdout"].as_u64())
        .unwrap_or(0)
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).expect("sidecar log")).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_chaincode_is_mirrored_at_the_configured_rate_and_the_drops_said() {
    let env = Env::new("mirrorrate", &[]).await;
    let log_path = env.dir.path().join("sidecar.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let sidecar = Sidecar::spawn(
        &env,
        "",
        &[
            (
                "CCLAUNCH_OUTPUT_MAXLINESPERSECOND",
                &LINES_PER_SECOND.to_string(),
            ),
            (
                "CCLAUNCH_OUTPUT_MAXBYTESPERSECOND",
                &BYTES_PER_SECOND.to_string(),
            ),
            ("CCLAUNCH_OUTPUT_BURST", "1s"),
            ("NO_COLOR", "1"),
        ],
        Stdio::from(log_file),
    );
    let mut client = sidecar.client().await;

    // At a normal rate: 30 short lines, 20 a second.
    let (_, calm) = start(
        &mut client,
        &env,
        "calm",
        "i=0\nwhile [ $i -lt 30 ]; do echo \"calm $i\"; i=$((i+1)); sleep 0.05; done\nsleep 600\n",
    )
    .await;
    // 5001 lines at once: more than the burst.
    let (_, counted) = start(
        &mut client,
        &env,
        "counted",
        "seq 1 5000 | sed 's/^/n /'\necho last\nsleep 600\n",
    )
    .await;
    // As fast as it can, for a few seconds.
    // Timed from before the start call, so the window holds every line the
    // flood could have printed (a loaded machine answers the call late).
    let flooding = Instant::now();
    let (flood_id, flood) = start(&mut client, &env, "flood", &format!("yes {FLOOD_LINE}\n")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    client
        .stop(pb::ChaincodeRef {
            package_id: flood_id,
        })
        .await
        .expect("stop the flood");
    let flooded = flooding.elapsed();

    // Every line counts in the checkpoint, mirrored or dropped.
    assert!(
        eventually(Duration::from_secs(30), || checkpointed_stdout(
            &env.peer, &counted
        ) == 5001)
        .await,
        "checkpoint of {counted} at {} lines, not 5001",
        checkpointed_stdout(&env.peer, &counted)
    );
    assert!(
        eventually(Duration::from_secs(30), || mirrored(
            &read(&log_path),
            &calm
        )
        .len()
            == 30)
        .await,
        "the calm chaincode's lines all arrive: {:?}",
        mirrored(&read(&log_path), &calm)
    );
    let (_, metrics) = common::http(&sidecar.operations, "GET", "/metrics", "").await;
    let log = read(&log_path);

    // The flood reached the log at the configured rate, not at its own.
    let flood_lines = mirrored(&log, &flood);
    // Killed mid-line, the flood may end with a piece of one.
    let odd: Vec<&String> = flood_lines.iter().filter(|l| *l != FLOOD_LINE).collect();
    assert!(
        odd.len() <= 1 && odd.iter().all(|l| FLOOD_LINE.starts_with(l.as_str())),
        "{odd:?}"
    );
    let seconds = flooded.as_secs_f64() + 1.0; // the burst, one second's worth
    let most_lines = (LINES_PER_SECOND as f64 * seconds) as usize;
    let most_bytes = (BYTES_PER_SECOND as f64 * seconds) as usize;
    let flood_bytes = flood_lines.len() * FLOOD_LINE.len();
    println!(
        "flood for {flooded:?}: {} lines ({flood_bytes} bytes) mirrored; sidecar log {} bytes in all",
        flood_lines.len(),
        log.len()
    );
    assert!(
        flood_lines.len() <= most_lines && flood_bytes <= most_bytes,
        "{} lines, {flood_bytes} bytes mirrored in {flooded:?} (at most {most_lines}, {most_bytes})",
        flood_lines.len()
    );
    assert!(
        !flood_lines.is_empty(),
        "the flood is mirrored up to the rate"
    );
    assert!(
        log.len() < 1 << 20,
        "the sidecar wrote {} bytes to stderr",
        log.len()
    );
    // The drops are said in the log, and counted in /metrics.
    let summaries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("not mirrored") && l.contains(&flood))
        .collect();
    assert!(!summaries.is_empty(), "a drop summary for {flood}");
    println!("{}", summaries[0]);
    assert!(
        summaries.len() <= 1 + flooded.as_secs() as usize / 5 + 1,
        "at most one summary an interval: {summaries:#?}"
    );
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cclaunch_chaincode_output_lines_dropped_total "))
        .and_then(|n| n.parse().ok())
        .expect("the dropped-lines metric");
    assert!(dropped > 10_000, "{dropped} lines dropped");

    // A normal rate loses nothing; a burst loses its excess only.
    let calm_lines = mirrored(&log, &calm);
    let expected: Vec<String> = (0..30).map(|i| format!("calm {i}")).collect();
    assert_eq!(calm_lines, expected);
    assert!(!log
        .lines()
        .any(|l| l.contains("not mirrored") && l.contains(&calm)));
    let counted_lines = mirrored(&log, &counted);
    assert!(
        !counted_lines.is_empty() && counted_lines.len() < 5001,
        "{} of 5001 lines mirrored",
        counted_lines.len()
    );
}
