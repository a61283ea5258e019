//! A 10 MiB line without a newline is mirrored in bounded pieces: nothing is
//! lost and the process's memory high-water mark barely moves. Alone in its
//! own test binary so the high-water mark is this test's.

mod common;

use common::{captured_counting, Env, SHENV};

const TEN_MIB: u64 = 10 << 20;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_mib_line_does_not_blow_up_memory() {
    let captured = captured_counting();
    let env = Env::new("hugeline", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let package = env.shell_package("huge", "head -c 10485760 /dev/zero | tr '\\0' x\n");
    env.launcher
        .build(&package, &|_: &str| {})
        .await
        .expect("build");

    let before = peak_rss_kib();
    env.launcher
        .start(common::request(&package.id))
        .await
        .expect("start");
    assert_eq!(env.launcher.wait(&package.id).await.expect("wait"), 0);
    let pieces = env
        .launcher
        .output_closed(&package.id)
        .await
        .expect("mirrored");
    let grown_kib = peak_rss_kib().saturating_sub(before);

    let max_line = env.launcher.config().cclaunch.output.max_line_bytes as u64;
    assert_eq!(
        *captured.bytes.lock().unwrap(),
        TEN_MIB,
        "every byte arrives"
    );
    assert_eq!(
        pieces,
        TEN_MIB.div_ceil(max_line),
        "in pieces of {max_line} bytes"
    );
    println!("peak RSS grew by {grown_kib} KiB while mirroring a 10 MiB line");
    assert!(
        grown_kib < 8 * 1024,
        "peak RSS grew by {grown_kib} KiB: the line was buffered whole"
    );
}
