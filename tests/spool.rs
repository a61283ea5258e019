//! Package uploads (Build chunks) are bounded: by their compressed size
//! (`cclaunch.package.maxPackageBytes`), by how many are spooled at once
//! (`maxConcurrentUploads`) and by how long one may stall
//! (`uploadIdleTimeout`); they are spooled under `<stateDir>/spool` (0700),
//! and a `serve` starting removes what a killed one left there, never what
//! a live one holds. Against real `serve` processes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cclaunch::proto::v1::{self as pb, build_event::Event, build_request::Source};
use common::sidecar::{chunks, Sidecar};
use common::{eventually, state_dir, Env};
use futures_util::StreamExt;
use tokio::sync::mpsc;

fn spool_dir(peer: &str) -> PathBuf {
    state_dir(peer).join("spool")
}

/// The upload files in a spool directory.
fn uploads(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.contains("upload-"))
                .collect()
        })
        .unwrap_or_default()
}

fn chunk(bytes: Vec<u8>) -> pb::BuildRequest {
    pb::BuildRequest {
        source: Some(Source::Chunk(bytes)),
    }
}

/// A Build whose upload sends one chunk and then stalls, its stream left
/// open; the call ends (and its stream closes) when this is dropped.
struct Stalled {
    _more: mpsc::Sender<pb::BuildRequest>,
    call: tokio::task::JoinHandle<Result<(), tonic::Status>>,
}

impl Stalled {
    async fn start(sidecar: &Sidecar) -> Stalled {
        let mut client = sidecar.client().await;
        let (more, requests) = mpsc::channel(1);
        more.send(chunk(vec![0x1f; 4096])).await.unwrap();
        let call = tokio::spawn(async move {
            let mut events = client
                .build(tokio_stream::wrappers::ReceiverStream::new(requests))
                .await?
                .into_inner();
            while let Some(event) = events.next().await {
                event?;
            }
            Ok(())
        });
        Stalled { _more: more, call }
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        self.call.abort();
    }
}

/// Runs a Build to its end: its Done, or the status it failed with.
async fn build(
    sidecar: &Sidecar,
    requests: Vec<pb::BuildRequest>,
) -> Result<pb::BuildDone, tonic::Status> {
    let mut client = sidecar.client().await;
    let mut events = client
        .build(futures_util::stream::iter(requests))
        .await?
        .into_inner();
    while let Some(event) = events.next().await {
        if let Some(Event::Done(done)) = event?.event {
            return Ok(done);
        }
    }
    Err(tonic::Status::internal("no Done"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_max_package_bytes_is_refused_and_leaves_no_file() {
    let env = Env::new("spoolsize", &[]).await;
    let sidecar = Sidecar::spawn(
        &env,
        "",
        &[
            ("CCLAUNCH_PACKAGE_MAXPACKAGEBYTES", "65536"),
            // The inflated-size cap no longer bounds the upload.
            ("CCLAUNCH_PACKAGE_MAXUNPACKEDBYTES", "1073741824"),
        ],
        Stdio::null(),
    );
    let big = (0..4).map(|_| chunk(vec![7; 32 << 10])).collect();
    let status = build(&sidecar, big).await.expect_err("too large");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("larger than 65536 bytes (cclaunch.package.maxPackageBytes)"),
        "{status:?}"
    );
    assert_eq!(uploads(&spool_dir(&env.peer)), Vec::<String>::new());

    // A package under the cap is built as ever.
    let package = env.shell_package("small", "echo hi\n");
    let done = build(&sidecar, chunks(&package.file, 16 << 10))
        .await
        .expect("a small package builds");
    assert_eq!(done.package_id, package.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_abandoned_after_the_idle_timeout_and_its_file_removed() {
    let env = Env::new("spoolidle", &[]).await;
    let sidecar = Sidecar::spawn(
        &env,
        "",
        &[("CCLAUNCH_PACKAGE_UPLOADIDLETIMEOUT", "2s")],
        Stdio::null(),
    );
    let dir = spool_dir(&env.peer);
    let mut stalled = Stalled::start(&sidecar).await;
    let status = tokio::time::timeout(Duration::from_secs(30), &mut stalled.call)
        .await
        .expect("the stalled upload is ended")
        .unwrap()
        .expect_err("it fails");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(
        status
            .message()
            .contains("cclaunch.package.uploadIdleTimeout"),
        "{status:?}"
    );
    assert!(
        eventually(Duration::from_secs(5), || uploads(&dir).is_empty()).await,
        "its spool file is removed: {:?}",
        uploads(&dir)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_cap_are_refused_until_one_ends() {
    let env = Env::new("spoolcap", &[]).await;
    let sidecar = Sidecar::spawn(
        &env,
        "",
        &[("CCLAUNCH_PACKAGE_MAXCONCURRENTUPLOADS", "1")],
        Stdio::null(),
    );
    let dir = spool_dir(&env.peer);
    let stalled = Stalled::start(&sidecar).await;
    assert!(eventually(Duration::from_secs(10), || uploads(&dir).len() == 1).await);

    let package = env.shell_package("capped", "echo hi\n");
    let status = build(&sidecar, chunks(&package.file, 16 << 10))
        .await
        .expect_err("over the cap");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains("cclaunch.package.maxConcurrentUploads"),
        "{status:?}"
    );
    assert_eq!(uploads(&dir).len(), 1, "the refused upload spooled nothing");

    // The stalled client goes: its slot and its file go with it.
    drop(stalled);
    assert!(eventually(Duration::from_secs(10), || uploads(&dir).is_empty()).await);
    let done = build(&sidecar, chunks(&package.file, 16 << 10))
        .await
        .expect("a slot is free again");
    assert_eq!(done.package_id, package.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sidecars_spool_files_are_removed_by_the_next_serve_but_not_a_live_ones() {
    let env = Env::new("spoolkill", &[]).await;
    let other = Env::new("spoollive", &[]).await;
    let dir = spool_dir(&env.peer);
    // Another peer's sidecar sharing this state directory, alive throughout.
    let shared = state_dir(&env.peer).display().to_string();
    let live = Sidecar::spawn(&other, "", &[("CCLAUNCH_STATEDIR", &shared)], Stdio::null());
    let _live_upload = Stalled::start(&live).await;
    // Spooled where cclaunch's state lives, in a directory only it reads.
    assert!(
        eventually(Duration::from_secs(10), || uploads(&dir).len() == 1).await,
        "the upload is spooled in {}",
        dir.display()
    );
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "spool directory mode");
    let held_by_live = uploads(&dir);

    // A sidecar killed (SIGKILL) in the middle of an upload.
    let mut killed = Sidecar::spawn(&env, "", &[], Stdio::null());
    let upload = Stalled::start(&killed).await;
    assert!(eventually(Duration::from_secs(10), || uploads(&dir).len() == 2).await);
    killed.child.kill().await.expect("SIGKILL");
    drop(upload);
    assert_eq!(uploads(&dir).len(), 2, "a killed sidecar's file stays");

    // The next one removes it as it starts (before it answers a call), and
    // leaves the live one's.
    let next = Sidecar::spawn(&env, "", &[], Stdio::null());
    next.client()
        .await
        .list(pb::ListRequest {})
        .await
        .expect("the next sidecar answers");
    assert_eq!(
        uploads(&dir),
        held_by_live,
        "only the live sidecar's upload is left"
    );
}
