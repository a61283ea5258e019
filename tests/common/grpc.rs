//! A gRPC client on a sidecar's Unix socket, and the sidecar's own numbers.

use std::path::Path;
use std::time::Duration;

use cclaunch::proto::v1::launcher_client::LauncherClient;
use cclaunch::proto::v1::{self as pb, build_event::Event, build_request::Source};
use futures_util::StreamExt;
use tonic::transport::Channel;

/// A channel to the sidecar listening (or about to) on `socket`.
pub async fn connect(socket: &Path) -> Channel {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let path = socket.to_path_buf();
        let connected = tonic::transport::Endpoint::from_static("http://sidecar")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await;
        match connected {
            Ok(channel) => return channel,
            Err(e) if tokio::time::Instant::now() > deadline => {
                panic!("sidecar never listened on {}: {e}", socket.display())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A channel to the sidecar on `socket` once it serves. A sidecar binds its
/// socket before its start-up engine calls (leftovers, resume) and answers
/// nothing until they end, so a call made meanwhile times the start-up too.
/// The standard health service answers from memory: its answer is the
/// moment serving began. Fails if that is not within `limit` of now.
pub async fn serving(socket: &Path, limit: Duration) -> Channel {
    let began = tokio::time::Instant::now();
    let channel = connect(socket).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let check = health.check(tonic_health::pb::HealthCheckRequest {
        service: "cclaunch.v1.Launcher".into(),
    });
    let answer = tokio::time::timeout_at(began + limit, check)
        .await
        .unwrap_or_else(|_| panic!("the sidecar did not serve within {limit:?}"))
        .expect("the standard health service answers");
    assert_eq!(
        answer.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    channel
}

/// A Launcher client of the sidecar listening (or about to) on `socket`.
pub async fn launcher(socket: &Path) -> LauncherClient<Channel> {
    LauncherClient::new(connect(socket).await)
}

/// Builds the package at `file` (a path in the sidecar's packageDirs) and
/// starts it; returns its package id.
pub async fn build_and_start(client: &mut LauncherClient<Channel>, file: &Path) -> String {
    let request = pb::BuildRequest {
        source: Some(Source::Path(file.display().to_string())),
    };
    let mut events = client
        .build(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let mut package_id = None;
    while let Some(event) = events.next().await {
        if let Some(Event::Done(done)) = event.unwrap().event {
            package_id = Some(done.package_id);
        }
    }
    let package_id = package_id.expect("build done");
    client
        .start(pb::StartRequest {
            package_id: package_id.clone(),
            peer_address: "127.0.0.1:7052".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    package_id
}

/// The peak resident size of process `pid` so far (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}
